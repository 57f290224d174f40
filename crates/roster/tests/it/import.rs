//! The bulk import API (`/api/v1/imports`, `roster-api-admin`) and `roster import` /
//! `roster export` against the real binary: results by row number, bad uploads that change
//! nothing, a large upload, a SIGKILL mid-import, and the CLI over CSV, XLSX and NDJSON.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{cli, read, TestServer};

/// Short leases so a killed server's import is taken over quickly.
fn write_config(dir: &Path) {
    std::fs::write(dir.join("roster.toml"), "task_lease_seconds = 2\n").unwrap();
}

async fn upload(
    s: &TestServer,
    token: &str,
    ctype: &str,
    body: Vec<u8>,
    query: &str,
) -> (u16, Value) {
    let resp = s
        .http
        .post(s.url(&format!("/api/v1/imports{query}")))
        .bearer_auth(token)
        .header("Content-Type", ctype)
        .body(body)
        .send()
        .await
        .unwrap();
    crate::harness::read(resp).await
}

pub(crate) async fn wait_import(s: &TestServer, token: &str, id: &str, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let (status, t) = s.get(&format!("/api/v1/imports/{id}"), Some(token)).await;
        assert_eq!(status, 200, "{t}");
        if t["status"] == "done" || t["status"] == "failed" {
            return t;
        }
        assert!(
            start.elapsed() < limit,
            "import not done within {limit:?}: {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn all_results(s: &TestServer, token: &str, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = s
            .get(
                &format!("/api/v1/imports/{id}/results?after={after}&limit=10000"),
                Some(token),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        out.extend(page["results"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_u64() {
            Some(n) => after = n,
            None => return out,
        }
    }
}

fn sqlite_count(dir: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("data").join("roster.db")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn ndjson(rows: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in rows {
        out.extend(r.to_string().into_bytes());
        out.push(b'\n');
    }
    out
}

fn generated(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 100);
    for i in 0..n {
        writeln!(
            out,
            r#"{{"name":"User {i}","user_id":"u{i}","email":"u{i}@example.com","mobile":"+86138{i:08}"}}"#
        )
        .unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ndjson_upload_reports_every_row_by_number() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let rows = vec![
        json!({"name": "Boss", "user_id": "boss", "email": "boss@example.com", "gender": "female",
               "join_time": "2020-01-02", "employee_type": 2}),
        json!({"name": "Report", "user_id": "report", "leader_user_id": "boss", "department_ids": ["0"]}),
        json!({"name": "Bad mail", "email": "not-an-address"}),
        json!({"user_id": "nameless"}),
        json!({"name": "Typo", "mail": "x@example.com"}),
        json!({"name": "Dup", "user_id": "BOSS"}),
        json!({"name": "Ghost", "department_ids": "no-such-dept"}),
    ];
    let mut body = ndjson(&rows);
    body.extend(b"{not json}\n\n");
    body.extend(br#"{"name":"Last","mobile":"+8613800000001"}"#); // no final newline
    let (status, resp) = upload(&s, &token, "application/x-ndjson", body, "").await;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(resp["rows"], 9, "{resp}");
    let id = resp["task_id"].as_str().unwrap().to_owned();
    let t = wait_import(&s, &token, &id, Duration::from_secs(60)).await;
    assert_eq!(
        (
            t["status"].as_str(),
            t["total"].as_u64(),
            t["succeeded"].as_u64(),
            t["failed"].as_u64()
        ),
        (Some("done"), Some(9), Some(3), Some(6)),
        "{t}"
    );
    let results = all_results(&s, &token, &id).await;
    let summary: Vec<(u64, String, String)> = results
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap(),
                r["status"].as_str().unwrap().to_owned(),
                format!(
                    "{}/{}",
                    r["error"]["code"].as_str().unwrap_or(""),
                    r["error"]["field"].as_str().unwrap_or("")
                ),
            )
        })
        .collect();
    let expect = |row: u64, status: &str, err: &str| (row, status.to_owned(), err.to_owned());
    assert_eq!(
        summary,
        vec![
            expect(1, "created", "/"),
            expect(2, "created", "/"),
            expect(3, "failed", "invalid/email"),
            expect(4, "failed", "invalid/name"),
            expect(5, "failed", "format/mail"),
            expect(6, "failed", "exists/user_id"),
            expect(7, "failed", "bad_reference/department_ids"),
            expect(8, "failed", "format/row"),
            expect(9, "created", "/"),
        ]
    );
    assert_eq!(results[0]["user_id"], "boss");
    // The report's leader is the boss created one row earlier.
    let (_, user) = s
        .get(
            "/open-apis/contact/v3/users/report?user_id_type=user_id",
            Some(&token),
        )
        .await;
    assert_eq!(user["data"]["user"]["leader_user_id"], "boss", "{user}");
    // Paging by row number.
    let (_, page) = s
        .get(
            &format!("/api/v1/imports/{id}/results?after=7&limit=1"),
            Some(&token),
        )
        .await;
    assert_eq!(page["results"][0]["row"], 8, "{page}");
    assert_eq!(page["next_after"], 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_upload_with_old_mac_line_ends_and_stray_quotes_loses_no_row() {
    let s = TestServer::spawn();
    let token = s.token().await;
    // Bare `\r` line ends (Excel's "CSV (Macintosh)"), one CRLF, and a quote inside an
    // unquoted cell: every record is a row of its own, in order.
    let csv = "name,user_id\rAnn,mac-ann\rO\"Brien,mac-ob\r\nCarl,mac-carl\rDora,mac-dora";
    let (status, resp) = upload(&s, &token, "text/csv", csv.as_bytes().to_vec(), "").await;
    assert_eq!(status, 202, "{resp}");
    let id = resp["task_id"].as_str().unwrap().to_owned();
    let t = wait_import(&s, &token, &id, Duration::from_secs(60)).await;
    assert_eq!(
        (t["succeeded"].as_u64(), t["failed"].as_u64()),
        (Some(4), Some(0)),
        "{t}"
    );
    let (_, user) = s
        .get(
            "/open-apis/contact/v3/users/mac-ob?user_id_type=user_id",
            Some(&token),
        )
        .await;
    assert_eq!(user["data"]["user"]["name"], "O\"Brien", "{user}");
    let results = all_results(&s, &token, &id).await;
    let ids: Vec<&str> = results
        .iter()
        .map(|r| r["user_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        ids,
        ["mac-ann", "mac-ob", "mac-carl", "mac-dora"],
        "{results:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_upload_reads_quoted_cells_and_a_bad_header_changes_nothing() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let csv = "\u{feff}name,user_id,email,city,job_title\r\n\
               \"Smith, Ann\",ann,ann@example.com,\"New\nYork\",\"The \"\"Boss\"\"\"\r\n\
               Bob,bob,bad-mail,,\r\n\
               Carl,carl,,Paris\r\n";
    let (status, resp) = upload(&s, &token, "text/csv", csv.as_bytes().to_vec(), "").await;
    assert_eq!(status, 202, "{resp}");
    let id = resp["task_id"].as_str().unwrap().to_owned();
    let t = wait_import(&s, &token, &id, Duration::from_secs(60)).await;
    assert_eq!(
        (t["succeeded"].as_u64(), t["failed"].as_u64()),
        (Some(1), Some(2)),
        "{t}"
    );
    let results = all_results(&s, &token, &id).await;
    assert_eq!(results[1]["error"]["field"], "email");
    assert_eq!(
        results[2]["error"]["code"], "format",
        "a short record: {}",
        results[2]
    );
    let (_, user) = s
        .get(
            "/open-apis/contact/v3/users/ann?user_id_type=user_id",
            Some(&token),
        )
        .await;
    assert_eq!(user["data"]["user"]["name"], "Smith, Ann");
    assert_eq!(user["data"]["user"]["city"], "New\nYork");
    assert_eq!(user["data"]["user"]["job_title"], "The \"Boss\"");

    let (status, resp) = upload(
        &s,
        &token,
        "text/csv",
        b"name,mail\nA,a@example.com\n".to_vec(),
        "",
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["code"], "invalid_request");
    assert!(
        resp["error"]["message"].as_str().unwrap().contains("mail"),
        "{resp}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sqlite_count(
            &s.data_dir,
            "SELECT count(*) FROM tasks WHERE status NOT IN ('done', 'failed')"
        ),
        0,
        "a refused upload leaves no task that could run"
    );
    assert_eq!(
        sqlite_count(&s.data_dir, "SELECT count(*) FROM users WHERE name = 'A'"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_answers_errors_in_its_envelope() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let (status, body) = s
        .get("/api/v1/imports/00000000000000000000000000000000", None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated")),
        "{body}"
    );
    let (status, body) = s
        .get(
            "/api/v1/imports/00000000000000000000000000000000",
            Some("t-nope"),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated")),
        "{body}"
    );
    let (status, body) = s
        .get(
            "/api/v1/imports/00000000000000000000000000000000",
            Some(&token),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = s.get("/api/v1/imports/xyz/results", Some(&token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = s.get("/api/v1/nothing-here", Some(&token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = upload(&s, &token, "application/json", b"{}".to_vec(), "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (415, Some("unsupported_media_type")),
        "{body}"
    );
    let (status, body) = upload(
        &s,
        &token,
        "application/x-ndjson",
        b"".to_vec(),
        "?mode=atomic",
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    let (status, body) = s.get("/api/v1/users/export?format=xml", Some(&token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    // A row over 64 KiB fails alone; the body limit of other routes does not apply.
    let mut body = generated(2);
    body.extend(format!("{{\"name\":\"{}\"}}\n", "x".repeat(70_000)).into_bytes());
    let (status, resp) = upload(&s, &token, "application/x-ndjson", body, "").await;
    assert_eq!(status, 202, "{resp}");
    let id = resp["task_id"].as_str().unwrap().to_owned();
    wait_import(&s, &token, &id, Duration::from_secs(60)).await;
    let results = all_results(&s, &token, &id).await;
    assert_eq!(results[2]["error"]["code"], "format", "{}", results[2]);
    assert!(results[2]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("bytes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_validates_every_row_and_writes_nothing() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let mut body = generated(3);
    body.extend(b"{\"name\":\"\"}\n");
    let (status, resp) = upload(&s, &token, "application/x-ndjson", body, "?dry_run=true").await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        (
            resp["rows"].as_u64(),
            resp["valid"].as_u64(),
            resp["invalid"].as_u64()
        ),
        (Some(4), Some(3), Some(1))
    );
    assert_eq!(resp["errors"][0]["row"], 4, "{resp}");
    assert_eq!(resp["errors"][0]["field"], "name");
    assert_eq!(
        sqlite_count(
            &s.data_dir,
            "SELECT count(*) FROM users WHERE user_id LIKE 'u%'"
        ),
        0
    );
    assert_eq!(sqlite_count(&s.data_dir, "SELECT count(*) FROM tasks"), 0);
}

/// A misspelt option is refused rather than ignored (an ignored `dry-run=true` would write
/// what its sender meant only to check), and `?dry_run` alone is a dry run; a charset other
/// than UTF-8 is refused up front; a CSV cell holding a NUL fails its row alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_options_are_checked_and_a_nul_in_a_csv_cell_fails_its_row() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let nd = "application/x-ndjson";
    for query in ["?dry-run=true", "?dryRun=true", "?dry_run=true&notfy=false"] {
        let (status, resp) = upload(&s, &token, nd, generated(2), query).await;
        assert_eq!(status, 400, "{query}: {resp}");
        assert_eq!(resp["error"]["code"], "invalid_request", "{resp}");
        assert!(
            resp["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unknown query parameter"),
            "{resp}"
        );
    }
    let (status, resp) = upload(&s, &token, nd, generated(2), "?dry_run").await;
    assert_eq!(
        (status, resp["dry_run"].as_bool()),
        (200, Some(true)),
        "{resp}"
    );
    let (status, resp) = upload(
        &s,
        &token,
        "text/csv; charset=gbk",
        b"name,user_id\nA,a\n".to_vec(),
        "",
    )
    .await;
    assert_eq!(status, 415, "{resp}");
    // A value whose escapes are not UTF-8 is refused too, not read as U+FFFD.
    let (status, resp) = upload(&s, &token, nd, generated(2), "?dry_run=%ff").await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["code"], "invalid_request", "{resp}");
    assert_eq!(
        sqlite_count(
            &s.data_dir,
            "SELECT count(*) FROM users WHERE user_id LIKE 'u%'"
        ),
        0,
        "nothing was written"
    );
    assert_eq!(sqlite_count(&s.data_dir, "SELECT count(*) FROM tasks"), 0);

    let csv = b"name,user_id\nFirst,p1\nNul\0Here,p2\nThird,p3\n".to_vec();
    let (status, resp) = upload(&s, &token, "text/csv", csv.clone(), "?dry_run=true").await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        (resp["valid"].as_u64(), resp["invalid"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        (&resp["errors"][0]["row"], &resp["errors"][0]["field"]),
        (&json!(2), &json!("name"))
    );
    let (status, resp) = upload(&s, &token, "text/csv; charset=UTF-8", csv, "").await;
    assert_eq!(status, 202, "{resp}");
    let id = resp["task_id"].as_str().unwrap().to_owned();
    let t = wait_import(&s, &token, &id, Duration::from_secs(30)).await;
    assert_eq!(
        (t["succeeded"].as_u64(), t["failed"].as_u64()),
        (Some(2), Some(1)),
        "{t}"
    );
}

/// An import's per-row results name the users it created: a department-scoped app of the
/// same tenant cannot read another app's import (404), the submitting app can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_app_cannot_read_another_apps_import() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let dept = json!({"name": "Eng", "department_id": "eng", "parent_department_id": "0"});
    let (_, body) = s
        .post_json("/open-apis/contact/v3/departments", Some(&token), &dept)
        .await;
    assert_eq!(body["code"], 0, "{body}");
    let (ok, out, err) = crate::harness::cli(
        &s.data_dir,
        &["app", "create", "--tenant", "1", "--departments", "eng"],
    );
    assert!(ok, "{err}");
    let scoped = s
        .token_for(
            &crate::harness::field(&out, "app_id:"),
            &crate::harness::field(&out, "app_secret:"),
        )
        .await;
    let (status, resp) = upload(
        &s,
        &token,
        "application/x-ndjson",
        b"{\"name\":\"Root person\",\"user_id\":\"rootp\"}\n".to_vec(),
        "",
    )
    .await;
    assert_eq!(status, 202, "{resp}");
    let id = resp["task_id"].as_str().unwrap().to_owned();
    wait_import(&s, &token, &id, Duration::from_secs(30)).await;
    for path in [
        format!("/api/v1/imports/{id}"),
        format!("/api/v1/imports/{id}/results"),
    ] {
        let (status, body) = s.get(&path, Some(&scoped)).await;
        assert_eq!(status, 404, "{path}: {body}");
        let (status, _) = s.get(&path, Some(&token)).await;
        assert_eq!(status, 200, "{path}");
    }
}

/// A compressed upload is refused (415) rather than read as rows of binary, and
/// `notify=true` sends no invitation to a user with neither e-mail nor mobile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_uploads_are_refused_and_contactless_rows_get_no_invitation() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let resp = s
        .http
        .post(s.url("/api/v1/imports"))
        .bearer_auth(&token)
        .header("Content-Type", "application/x-ndjson")
        .header("Content-Encoding", "gzip")
        .body(vec![0x1f, 0x8b, 0x08, 0x00, b'\n', 0xff])
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    let rows = b"{\"name\":\"Nobody to tell\",\"user_id\":\"nocontact\"}\n{\"name\":\"Mail\",\"user_id\":\"withmail\",\"email\":\"withmail@example.com\"}\n";
    let (status, resp) = upload(
        &s,
        &token,
        "application/x-ndjson",
        rows.to_vec(),
        "?notify=true",
    )
    .await;
    assert_eq!(status, 202, "{resp}");
    let id = resp["task_id"].as_str().unwrap().to_owned();
    let done = wait_import(&s, &token, &id, Duration::from_secs(30)).await;
    assert_eq!(done["succeeded"], 2, "{done}");
    assert_eq!(sqlite_count(&s.data_dir, "SELECT count(*) FROM outbox"), 1);
    assert_eq!(
        sqlite_count(
            &s.data_dir,
            "SELECT count(*) FROM outbox WHERE recipient = ''"
        ),
        0
    );
}

/// A shutdown fails an upload it cut off at once, instead of leaving it `receiving` until
/// the receive timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_fails_an_upload_it_cut_off() {
    use tokio::io::AsyncWriteExt;
    let mut s = TestServer::spawn();
    let token = s.token().await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // More rows than one stored chunk, so that the task exists while the upload hangs.
    let rows = "{\"name\":\"Half\"}\n".repeat(20_001);
    let head = format!(
        "POST /api/v1/imports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{rows}\r\n",
        rows.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let start = Instant::now();
    while sqlite_count(
        &s.data_dir,
        "SELECT count(*) FROM tasks WHERE status = 'receiving'",
    ) == 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the upload never began"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = tokio::task::block_in_place(|| s.terminate());
    assert!(status.success(), "{status:?}");
    assert_eq!(
        sqlite_count(
            &s.data_dir,
            "SELECT count(*) FROM tasks WHERE status = 'failed'"
        ),
        1
    );
    drop(sock);
}

/// An upload refused on its first record (bad CSV header, duplicate column, empty CSV, a
/// header too long to read) answers 400 and leaves no task behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_refused_at_its_header_leaves_no_task() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let long_header = format!(
        "name,description{}\nname,user_id\nA,a1\n",
        " ".repeat(70_000)
    );
    for body in [
        "nmae,email\nA,a@example.com\n",
        "name,name\nA,B\n",
        "",
        long_header.as_str(),
    ] {
        let (status, resp) = upload(&s, &token, "text/csv", body.as_bytes().to_vec(), "").await;
        assert_eq!(status, 400, "{:?}: {resp}", &body[..body.len().min(40)]);
    }
    assert_eq!(sqlite_count(&s.data_dir, "SELECT count(*) FROM tasks"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_completes_with_exact_counts() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let n = 50_000;
    let mut body = generated(n);
    // Two bad rows at the end, after two full chunks.
    body.extend(b"{\"name\":\"dup\",\"user_id\":\"u7\"}\n{\"name\":\"x\",\"mobile\":\"12\"}\n");
    let (status, resp) = upload(&s, &token, "application/x-ndjson", body, "").await;
    assert_eq!(status, 202, "{resp}");
    let id = resp["task_id"].as_str().unwrap().to_owned();
    let t = wait_import(&s, &token, &id, Duration::from_secs(300)).await;
    assert_eq!(
        (
            t["status"].as_str(),
            t["total"].as_u64(),
            t["succeeded"].as_u64(),
            t["failed"].as_u64()
        ),
        (Some("done"), Some(n as u64 + 2), Some(n as u64), Some(2)),
        "{t}"
    );
    let results = all_results(&s, &token, &id).await;
    assert_eq!(results.len(), n + 2);
    assert!(results
        .iter()
        .enumerate()
        .all(|(i, r)| r["row"] == i as u64 + 1));
    assert_eq!(results[n]["error"]["field"], "user_id");
    assert_eq!(results[n + 1]["error"]["field"], "mobile");
    assert_eq!(
        sqlite_count(
            &s.data_dir,
            "SELECT count(*) FROM users WHERE user_id LIKE 'u%'"
        ),
        n as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_mid_way_resumes_and_writes_every_row_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    write_config(tmp.path());
    let n = 40_000_i64;
    let mut first = TestServer::spawn_with(tmp.path(), &[]);
    let token = first.token().await;
    let (app_id, secret) = (first.app_id.clone(), first.app_secret.clone());
    let (status, resp) = upload(
        &first,
        &token,
        "application/x-ndjson",
        generated(n as usize),
        "",
    )
    .await;
    assert_eq!(status, 202, "{resp}");
    let id = resp["task_id"].as_str().unwrap().to_owned();
    let start = Instant::now();
    loop {
        let (_, t) = first
            .get(&format!("/api/v1/imports/{id}"), Some(&token))
            .await;
        assert_ne!(
            t["status"], "done",
            "the import finished before it could be killed: {t}"
        );
        if t["succeeded"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no progress: {t}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let written = sqlite_count(
        tmp.path(),
        "SELECT count(*) FROM users WHERE user_id LIKE 'u%'",
    );
    assert!(
        written > 0 && written < n,
        "killed mid-way: {written} users written"
    );

    let second = TestServer::spawn_with(tmp.path(), &[]);
    let token = second.token_for(&app_id, &secret).await;
    let t = wait_import(&second, &token, &id, Duration::from_secs(300)).await;
    assert_eq!(
        (
            t["status"].as_str(),
            t["succeeded"].as_i64(),
            t["failed"].as_i64()
        ),
        (Some("done"), Some(n), Some(0)),
        "{t}"
    );
    assert_eq!(
        sqlite_count(
            tmp.path(),
            "SELECT count(DISTINCT user_id) FROM users WHERE user_id LIKE 'u%'"
        ),
        n
    );
    assert_eq!(
        sqlite_count(
            tmp.path(),
            "SELECT count(*) FROM users WHERE user_id LIKE 'u%'"
        ),
        n,
        "every row exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_breaks_off_never_runs() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    // A chunked upload of 45 000 rows (two full chunks of `IMPORT_CHUNK_ROWS` are stored)
    // that stops mid-row.
    write!(
        tcp,
        "POST /api/v1/imports HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let body = generated(45_000);
    for part in body.chunks(64 * 1024) {
        write!(tcp, "{:x}\r\n", part.len()).unwrap();
        tcp.write_all(part).unwrap();
        tcp.write_all(b"\r\n").unwrap();
    }
    write!(tcp, "5\r\n{{\"nam\r\n").unwrap();
    tcp.flush().unwrap();
    // Wait until the server has stored what it got, then vanish.
    let start = Instant::now();
    while sqlite_count(&s.data_dir, "SELECT count(*) FROM import_chunks") < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "chunks never stored"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    tcp.shutdown(std::net::Shutdown::Both).unwrap();
    let mut sink = Vec::new();
    let _ = tcp.read_to_end(&mut sink);
    drop(tcp);
    let start = Instant::now();
    while sqlite_count(
        &s.data_dir,
        "SELECT count(*) FROM tasks WHERE status = 'failed'",
    ) < 1
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the broken upload was not failed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        sqlite_count(&s.data_dir, "SELECT count(*) FROM import_chunks"),
        0
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sqlite_count(
            &s.data_dir,
            "SELECT count(*) FROM users WHERE user_id LIKE 'u%'"
        ),
        0
    );
}

// ----- the CLI -----

/// A stopped server's data directory: a tenant with an app, for the CLI to write to.
fn bootstrapped() -> (tempfile::TempDir, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = TestServer::spawn_with(tmp.path(), &[]);
    let creds = (s.app_id.clone(), s.app_secret.clone());
    s.terminate();
    (tmp, creds.0, creds.1)
}

/// A line of white space only is not a row for the CLI either, so its error report numbers
/// rows as the upload API does (here the empty-name row is row 2 for both).
#[test]
fn roster_import_numbers_rows_as_the_api_does_around_blank_lines() {
    let (tmp, _, _) = bootstrapped();
    let file = tmp.path().join("blank.csv");
    std::fs::write(
        &file,
        "name,user_id\n   \nA1,blankc_a1\n,\n\r\nA2,blankc_a2\n",
    )
    .unwrap();
    let report = tmp.path().join("errors.csv");
    let (ok, out, err) = cli(
        tmp.path(),
        &[
            "import",
            file.to_str().unwrap(),
            "--dry-run",
            "--errors",
            report.to_str().unwrap(),
        ],
    );
    assert!(!ok, "{out} {err}");
    assert!(
        out.contains("dry run: 3 rows, 2 valid, 1 invalid"),
        "{out} {err}"
    );
    let report = std::fs::read_to_string(&report).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 2, "{report}");
    assert!(lines[1].starts_with("2,name,invalid,"), "{report}");
}

#[test]
fn roster_import_reads_csv_with_a_mapping_and_writes_an_error_report() {
    let (tmp, _, _) = bootstrapped();
    let file = tmp.path().join("people.csv");
    std::fs::write(
        &file,
        "Full Name,Mail,Phone,Employee Number,Notes\n\
         Ann,ann@example.com,+8613800000001,E1,x\n\
         ,nobody@example.com,,,\n\
         Bob,bob@example,+8613800000002,E2,\n\
         Cid,cid@example.com,+8613800000003,E1,\n",
    )
    .unwrap();
    let report = tmp.path().join("errors.csv");
    // A mapping that leaves the name unmapped is refused at the header, and leaves no
    // import task behind.
    let (ok, out, err) = cli(
        tmp.path(),
        &["import", file.to_str().unwrap(), "--map", "name=Nope"],
    );
    assert!(!ok, "{out} {err}");
    assert_eq!(
        sqlite_count(tmp.path(), "SELECT count(*) FROM tasks"),
        0,
        "a file refused at its header leaves no task: {err}"
    );
    // A dry run first: it writes nothing but reports the same rows.
    let (ok, out, err) = cli(
        tmp.path(),
        &[
            "import",
            file.to_str().unwrap(),
            "--map",
            "name=Full Name,email=Mail",
            "--dry-run",
            "--errors",
            report.to_str().unwrap(),
        ],
    );
    assert!(!ok, "failed rows make the command fail: {out} {err}");
    assert!(
        out.contains("dry run: 4 rows, 1 valid, 3 invalid"),
        "{out} {err}"
    );
    assert_eq!(
        sqlite_count(
            tmp.path(),
            "SELECT count(*) FROM users WHERE name IN ('Ann','Bob','Cid')"
        ),
        0
    );
    let (ok, out, err) = cli(
        tmp.path(),
        &[
            "import",
            file.to_str().unwrap(),
            "--map",
            "name=Full Name,email=Mail",
            "--errors",
            report.to_str().unwrap(),
        ],
    );
    assert!(!ok, "{out} {err}");
    assert!(
        out.contains("imported 4 rows: 1 created, 3 failed"),
        "{out} {err}"
    );
    let report = std::fs::read_to_string(&report).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines[0], "row,field,code,message");
    assert!(lines[1].starts_with("2,name,invalid,"), "{report}");
    assert!(lines[2].starts_with("3,email,invalid,"), "{report}");
    // Cid repeats Ann's employee number in the same chunk: the batch path refuses the later.
    assert!(lines[3].starts_with("4,employee_no,exists,"), "{report}");
    assert_eq!(lines.len(), 4, "{report}");
    assert_eq!(
        sqlite_count(
            tmp.path(),
            "SELECT count(*) FROM users WHERE name IN ('Ann','Bob','Cid')"
        ),
        1
    );
    assert_eq!(
        sqlite_count(
            tmp.path(),
            "SELECT count(*) FROM users WHERE employee_no = 'E1'"
        ),
        1
    );
}

#[test]
fn roster_import_reads_xlsx_and_export_round_trips() {
    let (tmp, _, _) = bootstrapped();
    let file = tmp.path().join("people.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in [
        "name",
        "user_id",
        "mobile",
        "employee_type",
        "join_time",
        "leader_user_id",
    ]
    .iter()
    .enumerate()
    {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    sheet.write_string(1, 0, "Xia").unwrap();
    sheet.write_string(1, 1, "xia").unwrap();
    sheet.write_string(1, 2, "+8613900000001").unwrap();
    sheet.write_number(1, 3, 2.0).unwrap();
    sheet.write_number(1, 4, 1_600_000_000.0).unwrap();
    sheet.write_string(2, 0, "Yu").unwrap();
    sheet.write_string(2, 1, "yu").unwrap();
    sheet.write_string(2, 5, "xia").unwrap();
    // A date cell is read as the day it shows (unix seconds at midnight UTC).
    let date = rust_xlsxwriter::ExcelDateTime::from_ymd(2020, 1, 1).unwrap();
    let shown = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    sheet
        .write_datetime_with_format(2, 4, &date, &shown)
        .unwrap();
    book.save(&file).unwrap();
    let (ok, out, err) = cli(tmp.path(), &["import", file.to_str().unwrap()]);
    assert!(ok, "{out} {err}");
    assert!(out.contains("2 created, 0 failed"), "{out}");

    let export = tmp.path().join("users.csv");
    let (ok, out, err) = cli(
        tmp.path(),
        &[
            "export",
            "--format",
            "csv",
            "--out",
            export.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out} {err}");
    let text = std::fs::read_to_string(&export).unwrap();
    assert!(text.starts_with("user_id,name,"), "{text}");
    assert!(text.contains("xia,Xia,"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("yu,Yu,") && l.contains(",xia,")),
        "leader kept: {text}"
    );

    // The export imports into a fresh directory and exports the same again.
    let (other, _, _) = bootstrapped();
    let (ok, out, err) = cli(other.path(), &["import", export.to_str().unwrap()]);
    assert!(ok, "{out} {err}");
    let again = other.path().join("again.csv");
    let (ok, _, err) = cli(other.path(), &["export", "--out", again.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(&again).unwrap(), text);
    let (ok, nd, err) = cli(other.path(), &["export", "--format", "ndjson"]);
    assert!(ok, "{err}");
    let first: Value = serde_json::from_str(nd.lines().next().unwrap()).unwrap();
    assert_eq!(
        (first["user_id"].as_str(), first["employee_type"].as_str()),
        (Some("xia"), Some("2"))
    );
    assert_eq!(first["join_time"], "1600000000");
    let second: Value = serde_json::from_str(nd.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        (second["user_id"].as_str(), second["join_time"].as_str()),
        (Some("yu"), Some("1577836800")),
        "{second}"
    );
}

/// The user ids of an export, in file order (CSV: the first column is `user_id`).
fn exported_ids(text: &str, csv: bool) -> Vec<String> {
    if csv {
        let mut r = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(&r.headers().unwrap()[0], "user_id");
        r.records().map(|rec| rec.unwrap()[0].to_owned()).collect()
    } else {
        text.lines()
            .map(|l| {
                let row: Value = serde_json::from_str(l).unwrap();
                row["user_id"].as_str().unwrap().to_owned()
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_writes_every_user_after_its_leader_so_that_it_imports_again() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = TestServer::spawn_with(tmp.path(), &[]);
    let token = s.token().await;
    // A and B first, Y and Z last, a full chunk of others between: an import finds a
    // leader only among existing users, earlier rows and the rows of the same chunk.
    let n = 20_000;
    let mut body = ndjson(&[
        json!({"name": "A", "user_id": "a"}),
        json!({"name": "B", "user_id": "b", "leader_user_id": "a"}),
    ]);
    body.extend(generated(n));
    body.extend(ndjson(&[
        json!({"name": "Y", "user_id": "y"}),
        json!({"name": "Z", "user_id": "z", "leader_user_id": "y"}),
    ]));
    let (status, resp) = upload(&s, &token, "application/x-ndjson", body, "").await;
    assert_eq!(status, 202, "{resp}");
    let id = resp["task_id"].as_str().unwrap().to_owned();
    let t = wait_import(&s, &token, &id, Duration::from_secs(300)).await;
    assert_eq!(t["succeeded"].as_u64(), Some(n as u64 + 4), "{t}");
    // A, created first, now reports to Z, created last: B → A → Z → Y.
    let resp = s
        .http
        .patch(s.url("/open-apis/contact/v3/users/a?user_id_type=user_id"))
        .bearer_auth(&token)
        .json(&json!({"leader_user_id": "z"}))
        .send()
        .await
        .unwrap();
    let (_, patched) = read(resp).await;
    assert_eq!(patched["code"], 0, "{patched}");

    // NDJSON from the admin API of the running server, CSV from the CLI.
    let resp = s
        .http
        .get(s.url("/api/v1/users/export?format=ndjson"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let nd = tmp.path().join("users.ndjson");
    std::fs::write(&nd, resp.text().await.unwrap()).unwrap();
    s.terminate();
    let csv_file = tmp.path().join("users.csv");
    let (ok, out, err) = cli(
        tmp.path(),
        &[
            "export",
            "--format",
            "csv",
            "--out",
            csv_file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out} {err}");

    for (file, is_csv) in [(&csv_file, true), (&nd, false)] {
        let text = std::fs::read_to_string(file).unwrap();
        let ids = exported_ids(&text, is_csv);
        // Every row imports into a fresh directory, and the leaders survive.
        let total = ids.len();
        let (other, _, _) = bootstrapped();
        let url = format!(
            "sqlite://{}",
            other.path().join("data").join("roster.db").display()
        );
        let (ok, out, err) = cli(
            other.path(),
            &["import", file.to_str().unwrap(), "--database-url", &url],
        );
        assert!(
            out.contains(&format!("imported {total} rows: {total} created, 0 failed")),
            "{}: {out} {err}",
            file.display()
        );
        assert!(ok, "{}: {out} {err}", file.display());
        assert_eq!(
            sqlite_count(
                other.path(),
                "SELECT count(*) FROM users u JOIN users l \
                 ON l.tenant_id = u.tenant_id AND l.open_id = u.leader_open_id \
                 WHERE u.user_id || '>' || l.user_id IN ('b>a', 'a>z', 'z>y')"
            ),
            3,
            "{}",
            file.display()
        );

        let at = |id: &str| ids.iter().position(|x| x == id).unwrap();
        assert!(
            at("y") < at("z") && at("z") < at("a") && at("a") < at("b"),
            "leaders first in {}: y {} z {} a {} b {}",
            file.display(),
            at("y"),
            at("z"),
            at("a"),
            at("b")
        );
        // Users without a dependency to wait for keep their creation order.
        let others: Vec<&String> = ids.iter().filter(|i| i.starts_with('u')).collect();
        assert_eq!(others.len(), n, "{}", file.display());
        assert!(
            others
                .iter()
                .enumerate()
                .all(|(i, id)| **id == format!("u{i}")),
            "{}",
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_import_sends_ndjson_to_a_server_over_http() {
    let s = TestServer::spawn();
    let file = s.data_dir.join("people.ndjson");
    std::fs::write(
        &file,
        "{\"Name\":\"Zed\",\"Phone\":\"+8613700000001\"}\nnot json\n{\"Name\":\"Zoe\",\"Phone\":\"+8613700000001\"}\n",
    )
    .unwrap();
    let report = s.data_dir.join("errors.csv");
    let args = [
        "import",
        file.to_str().unwrap(),
        "--url",
        &s.base,
        "--app-id",
        &s.app_id,
        "--app-secret",
        &s.app_secret,
        "--errors",
        report.to_str().unwrap(),
    ];
    let run = |extra: &'static [&'static str]| {
        let dir = s.data_dir.clone();
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(&dir, &args)
        })
    };
    let (ok, out, err) = run(&["--dry-run"]).await.unwrap();
    assert!(!ok, "{out} {err}");
    assert!(
        out.contains("dry run: 3 rows, 1 valid, 2 invalid"),
        "{out} {err}"
    );
    assert_eq!(
        sqlite_count(&s.data_dir, "SELECT count(*) FROM users WHERE name = 'Zed'"),
        0
    );
    let (ok, out, err) = run(&[]).await.unwrap();
    assert!(!ok, "{out} {err}");
    assert!(
        out.contains("imported 3 rows: 1 created, 2 failed"),
        "{out} {err}"
    );
    let report = std::fs::read_to_string(&report).unwrap();
    assert!(
        report.contains("\n2,row,format,"),
        "the file's row 2 is reported as row 2: {report}"
    );
    assert!(report.contains("\n3,mobile,exists,"), "{report}");
    let token = s.token().await;
    let resp = s
        .http
        .get(s.url("/api/v1/users/export?format=ndjson"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(body.lines().any(|l| l.contains("\"Zed\"")), "{body}");
}

#[tokio::test]
async fn a_wrong_method_or_an_undecodable_task_id_answers_in_the_envelope() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let resp = s
        .http
        .delete(s.url("/api/v1/imports/0123456789abcdef0123456789abcdef"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    let (status, body) = s.get("/api/v1/imports/%FF", Some(&token)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
}

/// A query parameter given twice is refused on every admin route, naming it, before
/// anything is written: `?dry_run=true&dry_run=false` used to keep the last value and
/// import for real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_query_parameter_is_refused_on_every_admin_route() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let nd = "application/x-ndjson";
    for (query, name) in [
        ("?dry_run=true&dry_run=false", "dry_run"),
        ("?dry_run&dry_run=0", "dry_run"),
        ("?dry_run=true&dry%5Frun=false", "dry_run"),
        ("?format=csv&format=ndjson", "format"),
        ("?notify=false&notify=true", "notify"),
        ("?mode=best_effort&mode=best_effort", "mode"),
    ] {
        let (status, resp) = upload(&s, &token, nd, generated(2), query).await;
        assert_eq!(status, 400, "{query}: {resp}");
        assert_eq!(resp["error"]["code"], "invalid_request", "{query}: {resp}");
        let message = resp["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("\"{name}\"")) && message.contains("more than once"),
            "{query}: {resp}"
        );
    }
    assert_eq!(
        sqlite_count(
            &s.data_dir,
            "SELECT count(*) FROM users WHERE user_id LIKE 'u%'"
        ),
        0,
        "nothing was written"
    );
    assert_eq!(sqlite_count(&s.data_dir, "SELECT count(*) FROM tasks"), 0);

    // The read routes too, the status route included although it reads no parameter.
    let (status, resp) = upload(&s, &token, nd, generated(1), "").await;
    assert_eq!(status, 202, "{resp}");
    let id = resp["task_id"].as_str().unwrap().to_owned();
    wait_import(&s, &token, &id, Duration::from_secs(60)).await;
    for (path, name) in [
        (
            format!("/api/v1/imports/{id}/results?after=0&after=1"),
            "after",
        ),
        (
            format!("/api/v1/imports/{id}/results?limit=1&limit=2"),
            "limit",
        ),
        (format!("/api/v1/imports/{id}?x=1&x=2"), "x"),
        (
            "/api/v1/users/export?format=csv&format=ndjson".to_owned(),
            "format",
        ),
    ] {
        let (status, resp) = s.get(&path, Some(&token)).await;
        assert_eq!(status, 400, "{path}: {resp}");
        assert_eq!(resp["error"]["code"], "invalid_request", "{path}: {resp}");
        assert!(
            resp["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("\"{name}\"")),
            "{path}: {resp}"
        );
    }
    let (status, page) = s
        .get(
            &format!("/api/v1/imports/{id}/results?after=0&limit=1"),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "distinct parameters still read: {page}");
}

/// NDJSON rows: a boolean does not stand for text and a key sent twice is not settled by
/// keeping the last; each fails its own row, the others go on. A whole number still
/// stands for its digits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_booleans_and_repeated_keys_fail_their_rows() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let body = concat!(
        "{\"name\":true,\"user_id\":\"boolname1\",\"city\":false}\n",
        "{\"name\":\"Ann\",\"user_id\":\"boolcity1\",\"city\":false}\n",
        "{\"name\":\"first\",\"name\":\"second\",\"user_id\":\"dupkey1\"}\n",
        "{\"name\":\"Fine\",\"user_id\":\"fine1\",\"employee_no\":1234}\n",
    );
    let (status, resp) = upload(
        &s,
        &token,
        "application/x-ndjson",
        body.as_bytes().to_vec(),
        "?dry_run=true",
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        (resp["valid"].as_u64(), resp["invalid"].as_u64()),
        (Some(1), Some(3)),
        "{resp}"
    );
    let (status, resp) = upload(
        &s,
        &token,
        "application/x-ndjson",
        body.as_bytes().to_vec(),
        "",
    )
    .await;
    assert_eq!(status, 202, "{resp}");
    let id = resp["task_id"].as_str().unwrap().to_owned();
    let t = wait_import(&s, &token, &id, Duration::from_secs(60)).await;
    assert_eq!(
        (t["succeeded"].as_u64(), t["failed"].as_u64()),
        (Some(1), Some(3)),
        "{t}"
    );
    let results = all_results(&s, &token, &id).await;
    for (i, field, words) in [
        (0, "name", "boolean"),
        (1, "city", "boolean"),
        (2, "name", "more than once"),
    ] {
        let e = &results[i]["error"];
        assert_eq!(
            (e["code"].as_str(), e["field"].as_str()),
            (Some("format"), Some(field)),
            "{e}"
        );
        assert!(e["message"].as_str().unwrap().contains(words), "{e}");
    }
    assert_eq!(results[3]["user_id"], "fine1", "{}", results[3]);
    assert_eq!(
        sqlite_count(
            &s.data_dir,
            "SELECT count(*) FROM users WHERE user_id IN ('boolname1', 'boolcity1', 'dupkey1')"
        ),
        0
    );
    let (_, user) = s
        .get(
            "/open-apis/contact/v3/users/fine1?user_id_type=user_id",
            Some(&token),
        )
        .await;
    assert_eq!(user["data"]["user"]["employee_no"], "1234", "{user}");
}

/// A quote inside a quoted CSV cell that is not doubled (`"ab"c"`) fails its row instead
/// of being stored altered (the csv crate alone reads it as `abc"`); well-formed quoting
/// and a quote inside an unquoted cell still read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_badly_quoted_csv_cell_fails_its_row_instead_of_being_altered() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let csv = "name,user_id,city\n\
               \"ab\"c\",q1x,\"x\"\"y\"\n\
               \"ab\"\"c\",q2x,\"x\"\"y\"\n\
               O\"Brien,q3x,\"Paris\" \n\
               Dora,q4x,\"never closed";
    let (status, resp) = upload(&s, &token, "text/csv", csv.as_bytes().to_vec(), "").await;
    assert_eq!(status, 202, "{resp}");
    let id = resp["task_id"].as_str().unwrap().to_owned();
    let t = wait_import(&s, &token, &id, Duration::from_secs(60)).await;
    assert_eq!(
        (t["succeeded"].as_u64(), t["failed"].as_u64()),
        (Some(2), Some(2)),
        "{t}"
    );
    let results = all_results(&s, &token, &id).await;
    for (i, cell) in [(0, "cell 1"), (3, "cell 3")] {
        let e = &results[i]["error"];
        assert_eq!(
            (e["code"].as_str(), e["field"].as_str()),
            (Some("format"), Some("row")),
            "{e}"
        );
        let message = e["message"].as_str().unwrap();
        assert!(
            message.starts_with(cell) && message.contains("badly quoted"),
            "{e}"
        );
    }
    assert_eq!(
        sqlite_count(
            &s.data_dir,
            "SELECT count(*) FROM users WHERE user_id IN ('q1x', 'q4x')"
        ),
        0
    );
    for (user_id, name, city) in [("q2x", "ab\"c", "x\"y"), ("q3x", "O\"Brien", "Paris")] {
        let (_, user) = s
            .get(
                &format!("/open-apis/contact/v3/users/{user_id}?user_id_type=user_id"),
                Some(&token),
            )
            .await;
        assert_eq!(
            (&user["data"]["user"]["name"], &user["data"]["user"]["city"]),
            (&json!(name), &json!(city)),
            "{user}"
        );
    }
}

/// `roster import` refuses the same NDJSON and CSV rows as the upload API: a boolean for
/// text, a key sent twice, and a badly quoted CSV cell each fail their row in the report.
#[test]
fn roster_import_refuses_booleans_repeated_keys_and_bad_quoting_as_the_api_does() {
    let (tmp, _, _) = bootstrapped();
    let file = tmp.path().join("people.ndjson");
    std::fs::write(
        &file,
        concat!(
            "{\"name\":true,\"user_id\":\"cli_bool\"}\n",
            "{\"name\":\"first\",\"name\":\"second\",\"user_id\":\"cli_dup\"}\n",
            "{\"Name\":\"first\",\"name\":\"second\",\"user_id\":\"cli_dup2\"}\n",
            "{\"name\":\"Fine\",\"user_id\":\"cli_fine\",\"employee_no\":77}\n",
        ),
    )
    .unwrap();
    let report = tmp.path().join("errors.csv");
    let (ok, out, err) = cli(
        tmp.path(),
        &[
            "import",
            file.to_str().unwrap(),
            "--errors",
            report.to_str().unwrap(),
        ],
    );
    assert!(!ok, "{out} {err}");
    assert!(
        out.contains("imported 4 rows: 1 created, 3 failed"),
        "{out} {err}"
    );
    let text = std::fs::read_to_string(&report).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[1].starts_with("1,name,format,") && lines[1].contains("boolean"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("2,name,format,") && lines[2].contains("more than once"),
        "{text}"
    );
    assert!(lines[3].starts_with("3,name,format,"), "{text}");
    assert_eq!(
        sqlite_count(
            tmp.path(),
            "SELECT count(*) FROM users WHERE user_id LIKE 'cli\\_%' ESCAPE '\\'"
        ),
        1
    );
    assert_eq!(
        sqlite_count(
            tmp.path(),
            "SELECT count(*) FROM users WHERE user_id = 'cli_fine' AND employee_no = '77'"
        ),
        1
    );

    let file = tmp.path().join("people.csv");
    std::fs::write(
        &file,
        "name,user_id\n\"ab\"c\",cli_q1\n\"ab\"\"c\",cli_q2\n",
    )
    .unwrap();
    let (ok, out, err) = cli(
        tmp.path(),
        &[
            "import",
            file.to_str().unwrap(),
            "--errors",
            report.to_str().unwrap(),
        ],
    );
    assert!(!ok, "{out} {err}");
    assert!(
        out.contains("imported 2 rows: 1 created, 1 failed"),
        "{out} {err}"
    );
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("1,row,format,") && l.contains("badly quoted")),
        "{text}"
    );
    assert_eq!(
        sqlite_count(
            tmp.path(),
            "SELECT count(*) FROM users WHERE user_id = 'cli_q2' AND name = 'ab\"c'"
        ),
        1
    );
    assert_eq!(
        sqlite_count(
            tmp.path(),
            "SELECT count(*) FROM users WHERE user_id = 'cli_q1'"
        ),
        0
    );
}

/// A server receives at most four uploads at once (each holds up to a chunk of parsed rows
/// until it is stored); a fifth is 429 `too_many_uploads`, and once one of the four has
/// ended the next upload is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_upload_at_once_waits_its_turn() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let open = |addr: String, token: String| {
        let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            tcp,
            "POST /api/v1/imports HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .unwrap();
        let row = b"{\"name\":\"Slow\"}\n";
        write!(tcp, "{:x}\r\n", row.len()).unwrap();
        tcp.write_all(row).unwrap();
        tcp.write_all(b"\r\n").unwrap();
        tcp.flush().unwrap();
        tcp
    };
    let upload = |name: &'static str| {
        s.http
            .post(s.url("/api/v1/imports"))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(format!("{{\"name\":\"{name}\"}}\n"))
            .send()
    };
    let mut held: Vec<_> = (0..4).map(|_| open(addr.clone(), token.clone())).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The server has begun receiving all four once a fifth is refused.
    let mut refused = None;
    for _ in 0..100 {
        let resp = upload("Fifth").await.unwrap();
        if resp.status().as_u16() == 429 {
            refused = Some(read(resp).await.1);
            break;
        }
        // One of the four was not being received yet: ask again.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = refused.expect("a fifth upload at once is refused");
    assert_eq!(body["error"]["code"], "too_many_uploads", "{body}");
    // Finishing one upload frees its place.
    let mut done = held.pop().unwrap();
    done.write_all(b"0\r\n\r\n").unwrap();
    let mut answer = [0u8; 12];
    done.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 202");
    let resp = upload("Next").await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
}
