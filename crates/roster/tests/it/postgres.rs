//! The same server on PostgreSQL: the token flow, and racing creates of one e-mail over
//! HTTP leaving exactly one user.

use std::io::Write as _;

use serde_json::json;

use crate::harness::TestServer;

/// A fresh, empty database on the server named by `ROSTER_TEST_POSTGRES_URL`, or None
/// (with a loud SKIPPED line) when the variable is unset.
pub async fn fresh_database() -> Option<String> {
    let Ok(base) = std::env::var("ROSTER_TEST_POSTGRES_URL") else {
        // Written to the stderr handle rather than through `eprintln!`, which the test
        // harness captures and hides for passing tests: a skip must be seen (and counted
        // by scripts/test.sh).
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED: ROSTER_TEST_POSTGRES_URL not set; PostgreSQL end-to-end tests did not run"
        );
        return None;
    };
    let name = format!("roster_e2e_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&base)
        .await
        .expect("connect to the PostgreSQL test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    let (prefix, _) = base.rsplit_once('/').expect("URL has a database path");
    Some(format!("{prefix}/{name}"))
}

#[tokio::test]
async fn token_flow_works_on_postgres() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::spawn_with(tmp.path(), &["--database-url", &url]);
    let token = s.token().await;
    let (_, body) = s.get("/readyz", None).await;
    assert_eq!(body["store"], "postgres");
    let (_, body) = s
        .get("/open-apis/contact/v3/departments/0", Some(&token))
        .await;
    assert_eq!(body["code"], 0, "{body}");
}

#[tokio::test]
async fn racing_creates_of_one_email_leave_exactly_one_user_on_postgres() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::spawn_with(tmp.path(), &["--database-url", &url]);
    let token = s.token().await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let http = s.http.clone();
        let url = s.url("/open-apis/contact/v3/users");
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({
                "name": format!("Racer {i}"),
                "email": "same@example.com",
                "mobile": format!("+86130{:08}", 10_000_000 + i),
                "department_ids": ["0"],
            });
            let resp = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            crate::harness::read(resp).await.1
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let body = t.await.unwrap();
        match body["code"].as_i64() {
            Some(0) => ok += 1,
            Some(41002) => {}
            other => panic!("unexpected answer {other:?}: {body}"),
        }
    }
    assert_eq!(ok, 1, "exactly one create wins");
    // Count in the database itself, not through the API under test.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE email_fold = 'same@example.com'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(n, 1, "exactly one row holds the e-mail");
}

/// PostgreSQL cannot store or compare text holding the NUL character: every front door
/// refuses it with a 400 in its own envelope (a bulk-import row fails alone), so it never
/// reaches the store as a 500, and nothing is written.
#[tokio::test]
async fn nul_characters_are_refused_at_the_front_doors_on_postgres() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::spawn_with(tmp.path(), &["--database-url", &url]);
    let token = s.token().await;
    let users = "/open-apis/contact/v3/users";
    for (path, body) in [
        (
            users,
            json!({"name": "a\u{0}b", "mobile": "+8613011110001", "department_ids": ["0"]}),
        ),
        (
            users,
            json!({"name": "ab", "mobile": "+8613011110001", "job_title": "x\u{0}"}),
        ),
        (
            "/open-apis/contact/v3/departments",
            json!({"name": "d\u{0}", "parent_department_id": "0"}),
        ),
        (
            "/open-apis/contact/v3/users/batch_get_id",
            json!({"emails": ["a\u{0}@example.com"]}),
        ),
    ] {
        let (status, body) = s.post_json(path, Some(&token), &body).await;
        assert_eq!(
            (status, body["code"].as_i64()),
            (400, Some(40001)),
            "{path}: {body}"
        );
    }
    for path in [
        "/open-apis/contact/v3/users/a%00b?user_id_type=user_id",
        "/open-apis/contact/v3/departments/a%00b?department_id_type=department_id",
        "/open-apis/contact/v3/users/find_by_department?department_id=0&page_token=p%00",
    ] {
        let (status, body) = s.get(path, Some(&token)).await;
        assert_eq!(
            (status, body["code"].as_i64()),
            (400, Some(40001)),
            "{path}: {body}"
        );
    }
    let (status, body) = s.get("/api/v1/imports/a%00", Some(&token)).await;
    assert_eq!(status, 400, "{body}");

    // A bulk import: the row with a NUL fails alone, the other is written.
    let rows = "{\"name\":\"Ok\",\"mobile\":\"+8613011110002\"}\n\
                {\"name\":\"N\\u0000\",\"mobile\":\"+8613011110003\"}\n";
    let resp = s
        .http
        .post(s.url("/api/v1/imports"))
        .bearer_auth(&token)
        .header("Content-Type", "application/x-ndjson")
        .body(rows)
        .send()
        .await
        .unwrap();
    let (status, task) = crate::harness::read(resp).await;
    assert!(status == 200 || status == 202, "{task}");
    let id = task["task_id"].as_str().expect("task id").to_owned();
    let done =
        crate::import::wait_import(&s, &token, &id, std::time::Duration::from_secs(60)).await;
    assert_eq!(
        (done["succeeded"].as_u64(), done["failed"].as_u64()),
        (Some(1), Some(1)),
        "{done}"
    );

    // Nothing else was written: the tenant holds the one imported user.
    let (_, body) = s
        .get(
            "/open-apis/contact/v3/users/find_by_department?department_id=0&page_size=50",
            Some(&token),
        )
        .await;
    let items = body["data"]["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["name"], "Ok");
}
