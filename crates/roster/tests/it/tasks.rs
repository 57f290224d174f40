//! The task engine end to end: Feishu v2 `batch_add` and `task/get` against the real binary,
//! crash recovery with SIGKILL, and two nodes on one PostgreSQL database.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::TestServer;

const BATCH_ADD: &str = "/open-apis/contact/v2/user/batch_add";

/// A config that allows big v2 batches and short leases, so tests need not wait long.
fn write_config(dir: &Path) {
    std::fs::write(
        dir.join("roster.toml"),
        "feishu_batch_add_max_users = 20000\ntask_lease_seconds = 2\n",
    )
    .unwrap();
}

fn users(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"name": format!("User {i}"), "user_id": format!("u{i}"),
                   "mobile": format!("+86138{:08}", i), "departments": ["0"]})
        })
        .collect()
}

async fn task(s: &TestServer, token: &str, id: &str) -> Value {
    let (_, body) = s
        .get(
            &format!("/open-apis/contact/v2/task/get?task_id={id}"),
            Some(token),
        )
        .await;
    assert_eq!(body["code"], 0, "{body}");
    body["data"].clone()
}

async fn wait_done(s: &TestServer, token: &str, id: &str, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let t = task(s, token, id).await;
        if t["status"] == 9 || t["status"] == 10 {
            return t;
        }
        assert!(
            start.elapsed() < limit,
            "task not done within {limit:?}: {t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn batch_add_returns_a_task_whose_results_come_in_request_order() {
    let s = TestServer::spawn();
    let token = s.token().await;
    // The seed's own example: the second user's leader is the first, named by user_id; and a
    // leader named later in the batch, a two-user cycle and a duplicate mobile.
    let body = json!({"users": [
        {"name": "张三", "departments": ["0"], "user_id": "id_zhangsan", "email": "zhangsan@example.com",
         "mobile": "+8613822235671", "mobile_visible": false, "city": "北京", "country": "CN", "gender": 1,
         "employee_type": 1, "join_time": 1534222800, "employee_no": "323463", "work_station": "Poly, F6-123",
         "custom_attrs": [{"id": "C-6702376000044400907", "value": {"url": "http://www.feishu.cn/"}}]},
        {"name": "李四", "departments": ["0"], "user_id": "id_lisi", "mobile": "+8613822235672",
         "leader_user_id": "id_zhangsan"},
        {"name": "王五", "departments": ["0"], "user_id": "id_wangwu", "mobile": "+8613822235673",
         "leader_user_id": "id_zhaoliu"},
        {"name": "赵六", "departments": ["0"], "user_id": "id_zhaoliu", "mobile": "+8613822235674"},
        {"name": "A", "departments": ["0"], "user_id": "cyc_a", "mobile": "+8613822235675", "leader_user_id": "cyc_b"},
        {"name": "B", "departments": ["0"], "user_id": "cyc_b", "mobile": "+8613822235676", "leader_user_id": "cyc_a"},
        {"name": "Dup", "departments": ["0"], "user_id": "dup", "mobile": "+8613822235671"},
        {"name": "Bad", "departments": ["0"], "user_id": "_bad", "mobile": "+8613822235677"},
        {"name": "NoDept", "user_id": "nodept", "mobile": "+8613822235678"},
        {"name": "Ghost", "departments": ["od-00000000000000000000000000000000"], "user_id": "ghost", "mobile": "+8613822235679"}
    ], "need_send_notification": false});
    let (status, resp) = s.post_json(BATCH_ADD, Some(&token), &body).await;
    assert_eq!((status, resp["code"].as_i64()), (200, Some(0)), "{resp}");
    let id = resp["data"]["task_id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    let t = wait_done(&s, &token, &id, Duration::from_secs(60)).await;
    assert_eq!(
        (t["status"].as_i64(), t["progress"].as_i64()),
        (Some(9), Some(100)),
        "{t}"
    );
    assert_eq!(
        (
            t["total_num"].as_i64(),
            t["success_num"].as_i64(),
            t["fail_num"].as_i64()
        ),
        (Some(10), Some(4), Some(6)),
        "{t}"
    );
    assert!(t["finish_time"].as_i64().unwrap() >= t["create_time"].as_i64().unwrap());
    let info = t["task_info"].as_array().unwrap();
    let codes: Vec<i64> = info.iter().map(|i| i["code"].as_i64().unwrap()).collect();
    assert_eq!(
        codes,
        vec![0, 0, 0, 0, 44022, 44022, 41001, 40013, 41017, 44035],
        "{t}"
    );
    assert_eq!(info[0]["user_id"], "id_zhangsan");
    assert_eq!(info[0]["action"], 1);
    assert!(info[0]["open_id"].as_str().unwrap().starts_with("ou_"));
    assert_eq!(info[1]["name"], "李四");
    assert!(info[6].get("open_id").is_none() && info[6].get("action").is_none());

    // The leaders were resolved: 李四 reports to 张三, 王五 to 赵六 (named later).
    let (_, li) = s
        .get(
            "/open-apis/contact/v3/users/id_lisi?user_id_type=user_id",
            Some(&token),
        )
        .await;
    assert_eq!(li["data"]["user"]["leader_user_id"], "id_zhangsan");
    let (_, wang) = s
        .get(
            "/open-apis/contact/v3/users/id_wangwu?user_id_type=user_id",
            Some(&token),
        )
        .await;
    assert_eq!(wang["data"]["user"]["leader_user_id"], "id_zhaoliu");
    let (_, zs) = s
        .get(
            "/open-apis/contact/v3/users/id_zhangsan?user_id_type=user_id",
            Some(&token),
        )
        .await;
    assert_eq!(zs["data"]["user"]["city"], "北京");
    assert_eq!(zs["data"]["user"]["mobile_visible"], false);
}

#[tokio::test]
async fn batch_add_applies_the_field_limits_of_every_other_write() {
    let s = TestServer::spawn();
    let token = s.token().await;
    // v3 create refuses a work station over 255 characters and an employee number over 64;
    // so must batch_add, or it would store users that no export could import again.
    let body = json!({"users": [
        {"name": "Long station", "departments": ["0"], "mobile": "+8613900000001",
         "work_station": "w".repeat(256)},
        {"name": "Long number", "departments": ["0"], "mobile": "+8613900000002",
         "employee_no": "e".repeat(65)},
        {"name": "Fits", "departments": ["0"], "mobile": "+8613900000003",
         "work_station": "w".repeat(255), "employee_no": "e".repeat(64)},
        {"name": "Bad time", "departments": ["0"], "mobile": "+8613900000004",
         "join_time": "x"}
    ], "need_send_notification": false});
    let (status, resp) = s.post_json(BATCH_ADD, Some(&token), &body).await;
    assert_eq!((status, resp["code"].as_i64()), (200, Some(0)), "{resp}");
    let id = resp["data"]["task_id"].as_str().unwrap().to_owned();
    let t = wait_done(&s, &token, &id, Duration::from_secs(60)).await;
    let info = t["task_info"].as_array().unwrap();
    let codes: Vec<i64> = info.iter().map(|i| i["code"].as_i64().unwrap()).collect();
    // The same users through v3 create fail with the same codes.
    let mut v3_codes = Vec::new();
    for (i, field, value) in [
        (1, "work_station", "w".repeat(256)),
        (2, "employee_no", "e".repeat(65)),
    ] {
        let (_, resp) = s
            .post_json(
                "/open-apis/contact/v3/users",
                Some(&token),
                &json!({"name": "Via v3", "department_ids": ["0"],
                        "mobile": format!("+861390000010{i}"), field: value}),
            )
            .await;
        v3_codes.push(resp["code"].as_i64().unwrap_or_default());
    }
    assert!(v3_codes.iter().all(|c| *c != 0), "{v3_codes:?}");
    assert_eq!(codes[..2], v3_codes[..], "{t}");
    assert_eq!(codes[2], 0, "{t}");
    // A row that does not parse is still echoed with the fields that did, so that the
    // client can tell which of its users failed.
    assert_eq!(codes[3], 40001, "{t}");
    assert_eq!(
        (
            &info[3]["name"],
            &info[3]["mobile"],
            &info[3]["departments"]
        ),
        (&json!("Bad time"), &json!("+8613900000004"), &json!(["0"])),
        "{t}"
    );
    assert!(
        info[0]["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("work_station"),
        "{t}"
    );
    assert!(
        info[1]["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("employee_no"),
        "{t}"
    );
}

/// The v2 document: a custom attribute whose id "does not exist or is illegal" is ignored,
/// and the user is created with the others. A user sent as an array is no user object, even
/// though serde would read its items as the fields in order.
#[tokio::test]
async fn batch_add_ignores_illegal_attribute_ids_and_refuses_array_users() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let body = json!({"users": [
        {"name": "Attrs", "user_id": "attrs1", "departments": ["0"], "mobile": "+8613900000011",
         "custom_attrs": [
            {"id": "", "value": {"text": "no id"}},
            {"value": {"text": "missing id"}},
            {"id": "x".repeat(65), "value": {"text": "long id"}},
            {"id": "C-1", "value": {"text": "kept"}}
         ]},
        ["Array", ["0"], "array1", null, "+8613900000012"]
    ], "need_send_notification": false});
    let (status, resp) = s.post_json(BATCH_ADD, Some(&token), &body).await;
    assert_eq!((status, resp["code"].as_i64()), (200, Some(0)), "{resp}");
    let id = resp["data"]["task_id"].as_str().unwrap().to_owned();
    let t = wait_done(&s, &token, &id, Duration::from_secs(60)).await;
    let info = t["task_info"].as_array().unwrap();
    assert_eq!(info[0]["code"], 0, "{t}");
    assert_eq!(info[1]["code"], 40001, "{t}");
    let (_, user) = s
        .get(
            "/open-apis/contact/v3/users/attrs1?user_id_type=user_id",
            Some(&token),
        )
        .await;
    let attrs = user["data"]["user"]["custom_attrs"].as_array().unwrap();
    assert_eq!(attrs.len(), 1, "{user}");
    assert_eq!(attrs[0]["id"], "C-1", "{user}");
    let (_, missing) = s
        .get(
            "/open-apis/contact/v3/users/array1?user_id_type=user_id",
            Some(&token),
        )
        .await;
    assert_eq!(
        missing["code"], 41012,
        "the array user was not created: {missing}"
    );
}

#[tokio::test]
async fn batch_add_rejects_request_level_problems_at_once() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let (_, b) = s
        .post_json(BATCH_ADD, Some(&token), &json!({"users": []}))
        .await;
    assert_eq!(b["code"], 40001);
    let (_, b) = s
        .post_json(BATCH_ADD, Some(&token), &json!({"users": users(51)}))
        .await;
    assert_eq!(b["code"], 40001, "over the default limit of 50");
    let (_, b) = s
        .post_json(BATCH_ADD, None, &json!({"users": users(1)}))
        .await;
    assert_eq!(b["code"], 99_991_661);
    let (_, b) = s
        .get(
            "/open-apis/contact/v2/task/get?task_id=0123456789abcdef0123456789abcdef",
            Some(&token),
        )
        .await;
    assert_eq!(b["code"], 40001, "unknown task");
    // Another tenant cannot read this tenant's task.
    let (_, resp) = s
        .post_json(BATCH_ADD, Some(&token), &json!({"users": users(1)}))
        .await;
    let id = resp["data"]["task_id"].as_str().unwrap().to_owned();
    let (ok, out, _) = crate::harness::cli(&s.data_dir, &["tenant", "create", "--name", "other"]);
    assert!(ok);
    let tid = out.split_whitespace().nth(1).unwrap().to_owned();
    let (_, out, _) = crate::harness::cli(&s.data_dir, &["app", "create", "--tenant", &tid]);
    let other = s
        .token_for(
            &crate::harness::field(&out, "app_id:"),
            &crate::harness::field(&out, "app_secret:"),
        )
        .await;
    let (_, b) = s
        .get(
            &format!("/open-apis/contact/v2/task/get?task_id={id}"),
            Some(&other),
        )
        .await;
    assert_eq!(b["code"], 40001, "{b}");
}

#[tokio::test]
async fn the_licence_cap_fails_users_past_it_with_the_seat_code() {
    let s = TestServer::spawn();
    let (ok, out, _) = crate::harness::cli(
        &s.data_dir,
        &["tenant", "create", "--name", "small", "--max-users", "3"],
    );
    assert!(ok);
    let tid = out.split_whitespace().nth(1).unwrap().to_owned();
    let (_, out, _) = crate::harness::cli(&s.data_dir, &["app", "create", "--tenant", &tid]);
    let token = s
        .token_for(
            &crate::harness::field(&out, "app_id:"),
            &crate::harness::field(&out, "app_secret:"),
        )
        .await;
    let (_, resp) = s
        .post_json(BATCH_ADD, Some(&token), &json!({"users": users(5)}))
        .await;
    let id = resp["data"]["task_id"].as_str().unwrap().to_owned();
    let t = wait_done(&s, &token, &id, Duration::from_secs(30)).await;
    assert_eq!(
        (t["success_num"].as_i64(), t["fail_num"].as_i64()),
        (Some(3), Some(2)),
        "{t}"
    );
    let codes: Vec<i64> = t["task_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![0, 0, 0, 41008, 41008]);
}

/// A task whose every attempt fails in the store (here a trigger refuses one of its users,
/// as a value the database cannot hold would) ends as failed after a few leases instead of
/// being claimed again every lease forever, while the rest of the directory goes on.
#[tokio::test]
async fn a_task_failing_on_storage_every_attempt_ends_as_failed() {
    let tmp = tempfile::tempdir().unwrap();
    write_config(tmp.path());
    let s = TestServer::spawn_with(tmp.path(), &[]);
    let token = s.token().await;
    let conn = rusqlite::Connection::open(tmp.path().join("data").join("roster.db")).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER poison BEFORE INSERT ON users WHEN NEW.name = 'Poison' \
         BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;",
    )
    .unwrap();
    let mut batch = users(3);
    batch[1]["name"] = json!("Poison");
    let (_, resp) = s
        .post_json(BATCH_ADD, Some(&token), &json!({"users": batch}))
        .await;
    let id = resp["data"]["task_id"].as_str().unwrap().to_owned();
    // Five attempts, each after a two-second lease ran out.
    let t = wait_done(&s, &token, &id, Duration::from_secs(60)).await;
    assert_eq!(t["status"].as_i64(), Some(10), "{t}");
    assert_eq!(t["success_num"].as_i64(), Some(0), "{t}");
    assert_eq!(
        sqlite_counts(tmp.path()).0,
        0,
        "nothing of the chunk was written"
    );
    // The worker is free again: the next task runs to its end.
    let (_, resp) = s
        .post_json(BATCH_ADD, Some(&token), &json!({"users": users(2)}))
        .await;
    let id = resp["data"]["task_id"].as_str().unwrap().to_owned();
    let t = wait_done(&s, &token, &id, Duration::from_secs(30)).await;
    assert_eq!(
        (t["status"].as_i64(), t["success_num"].as_i64()),
        (Some(9), Some(2)),
        "{t}"
    );
}

fn sqlite_counts(dir: &Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(dir.join("data").join("roster.db")).unwrap();
    conn.query_row(
        "SELECT count(*), count(DISTINCT mobile) FROM users",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_killed_mid_way_resumes_and_writes_every_user_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    write_config(tmp.path());
    let mut first = TestServer::spawn_with(tmp.path(), &[]);
    let token = first.token().await;
    let (app_id, secret) = (first.app_id.clone(), first.app_secret.clone());
    let (_, resp) = first
        .post_json(BATCH_ADD, Some(&token), &json!({"users": users(20_000)}))
        .await;
    assert_eq!(resp["code"], 0, "{resp}");
    let id = resp["data"]["task_id"].as_str().unwrap().to_owned();
    // Kill as soon as some users are written and before all are.
    let start = Instant::now();
    loop {
        let t = task(&first, &token, &id).await;
        let done = t["success_num"].as_i64().unwrap_or(0);
        assert!(
            t["status"] != 9,
            "the task finished before it could be killed: {t}"
        );
        if done > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no progress: {t}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let (written, _) = sqlite_counts(tmp.path());
    assert!(
        written > 0 && written < 20_000,
        "killed mid-way: {written} users written"
    );

    let second = TestServer::spawn_with(tmp.path(), &[]);
    let token = second.token_for(&app_id, &secret).await;
    let t = wait_done(&second, &token, &id, Duration::from_secs(300)).await;
    assert_eq!(
        (
            t["status"].as_i64(),
            t["success_num"].as_i64(),
            t["fail_num"].as_i64()
        ),
        (Some(9), Some(20_000), Some(0)),
        "{}",
        t["status"]
    );
    assert_eq!(
        sqlite_counts(tmp.path()),
        (20_000, 20_000),
        "every user exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_second_node_finishes_the_task_of_a_killed_node() {
    let Some(url) = crate::postgres::fresh_database().await else {
        return;
    };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_config(a_dir.path());
    write_config(b_dir.path());
    let mut a = TestServer::spawn_with(a_dir.path(), &["--database-url", &url]);
    let mut b = TestServer::spawn_with(b_dir.path(), &["--database-url", &url]);
    let token = a.token_for(&a.app_id.clone(), &a.app_secret.clone()).await;
    let (_, resp) = a
        .post_json(BATCH_ADD, Some(&token), &json!({"users": users(20_000)}))
        .await;
    let id = resp["data"]["task_id"].as_str().unwrap().to_owned();

    // Find which node holds the task, once it has written something, and kill it.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let start = Instant::now();
    let owner: String = loop {
        let row: Option<(Option<String>, i64, String)> =
            sqlx::query_as("SELECT lease_owner, succeeded, status FROM tasks WHERE id = $1")
                .bind(&id)
                .fetch_optional(&mut conn)
                .await
                .unwrap();
        if let Some((Some(owner), done, status)) = row {
            assert_ne!(
                status, "done",
                "the task finished before it could be killed"
            );
            if done > 0 {
                break owner;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no node took the task"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let pid = owner.split('-').next().unwrap().parse::<u32>().unwrap();
    let survivor = if a.child.id() == pid {
        a.child.kill().unwrap();
        a.child.wait().unwrap();
        &b
    } else {
        assert_eq!(b.child.id(), pid, "the lease owner is one of the two nodes");
        b.child.kill().unwrap();
        b.child.wait().unwrap();
        &a
    };
    let token = survivor
        .token_for(&a.app_id.clone(), &a.app_secret.clone())
        .await;
    let t = wait_done(survivor, &token, &id, Duration::from_secs(300)).await;
    assert_eq!(
        (t["success_num"].as_i64(), t["fail_num"].as_i64()),
        (Some(20_000), Some(0))
    );
    let (n, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT mobile) FROM users")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((n, distinct), (20_000, 20_000), "every user exactly once");
    let owner_now: Option<String> =
        sqlx::query_scalar("SELECT lease_owner FROM tasks WHERE id = $1")
            .bind(&id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(owner_now.is_none(), "a finished task holds no lease");
}

#[tokio::test]
async fn without_smtp_invitations_wait_in_the_outbox() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let body = json!({"users": [
        {"name": "Mailed", "departments": ["0"], "user_id": "m1", "email": "m1@example.com", "mobile": "+8613700000001"},
        {"name": "Texted", "departments": ["0"], "user_id": "m2", "mobile": "+8613700000002"}
    ], "need_send_notification": true});
    let (_, resp) = s.post_json(BATCH_ADD, Some(&token), &body).await;
    let id = resp["data"]["task_id"].as_str().unwrap().to_owned();
    let t = wait_done(&s, &token, &id, Duration::from_secs(30)).await;
    assert_eq!(t["success_num"], 2, "{t}");
    let (ok, out, err) =
        crate::harness::cli(&s.data_dir, &["outbox", "list", "--unsent", "--full"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("m1@example.com") && out.contains("pending"),
        "{out}"
    );
    assert!(
        out.contains("+8613700000002") && out.contains("recorded"),
        "{out}"
    );
    assert!(
        out.contains("/activate/"),
        "the body holds the activation link: {out}"
    );
    // Invited users start unactivated.
    let (_, u) = s
        .get(
            "/open-apis/contact/v3/users/m1?user_id_type=user_id",
            Some(&token),
        )
        .await;
    assert_eq!(u["data"]["user"]["status"]["is_activated"], false);
    assert_eq!(u["data"]["user"]["status"]["is_unjoin"], true);

    // Each message's link, by its recipient: the listing prints a message's line (with the
    // recipient) and then its body, newest message first.
    let mut links: Vec<(&str, String)> = Vec::new();
    let mut recipient = None;
    for line in out.lines() {
        if let Some(r) = ["m1@example.com", "+8613700000002"]
            .into_iter()
            .find(|r| line.contains(r) && !line.contains("/activate/"))
        {
            recipient = Some(r);
        }
        if let Some(at) = line.find("/activate/") {
            let link: String = line[at..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            let r = recipient
                .take()
                .unwrap_or_else(|| panic!("a link before its message: {out}"));
            links.push((r, link));
        }
    }
    let link_of = |r: &str| {
        links
            .iter()
            .find(|(to, _)| *to == r)
            .map(|(_, l)| l.clone())
            .unwrap_or_else(|| panic!("no link for {r}: {out}"))
    };
    let (mailed, texted) = (link_of("m1@example.com"), link_of("+8613700000002"));
    assert_ne!(mailed, texted, "each invitation has its own link: {out}");
    let status_of = |u: &serde_json::Value| {
        (
            u["data"]["user"]["status"]["is_activated"].clone(),
            u["data"]["user"]["status"]["is_unjoin"].clone(),
        )
    };

    // A HEAD of the link (a mail scanner checking it) activates nothing; the GET does.
    let head = s.http.head(s.url(&mailed)).send().await.unwrap();
    assert_eq!(head.status(), 405);
    let (_, u) = s
        .get(
            "/open-apis/contact/v3/users/m1?user_id_type=user_id",
            Some(&token),
        )
        .await;
    assert_eq!(status_of(&u), (json!(false), json!(true)), "{u}");
    for (user, link) in [("m1", &mailed), ("m2", &texted)] {
        let (status, body) = s.get(link, None).await;
        assert_eq!(
            (status, &body["status"]),
            (200, &json!("activated")),
            "{user}: {body}"
        );
        let (_, u) = s
            .get(
                &format!("/open-apis/contact/v3/users/{user}?user_id_type=user_id"),
                Some(&token),
            )
            .await;
        assert_eq!(status_of(&u), (json!(true), json!(false)), "{user}: {u}");
    }
    // A link works once.
    let (status, body) = s.get(&mailed, None).await;
    assert_eq!(
        (status, &body["status"]),
        (404, &json!("invalid")),
        "{body}"
    );
}

#[tokio::test]
async fn task_get_does_not_report_a_bulk_import_as_a_v2_task() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let resp = s
        .http
        .post(s.url("/api/v1/imports"))
        .bearer_auth(&token)
        .header("content-type", "application/x-ndjson")
        .body("{\"name\":\"Imported\",\"mobile\":\"+8613900000011\"}\n")
        .send()
        .await
        .unwrap();
    let (status, body) = crate::harness::read(resp).await;
    assert_eq!(status, 202, "{body}");
    let id = body["task_id"].as_str().unwrap();
    let (status, body) = s
        .get(
            &format!("/open-apis/contact/v2/task/get?task_id={id}"),
            Some(&token),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (400, Some(40001)),
        "{body}"
    );
}

/// A task whose writes keep failing (here a trigger refuses every user insert, and even the
/// task's `failed` mark, as a full disk refuses every write) is not retried in a tight loop.
/// Before, the worker claimed its own task back at once and, unable to mark it failed
/// either, spun at full CPU, logging tens of thousands of lines a minute. Now the task
/// keeps its lease until it runs out, and the worker pauses after each failure. Claims are
/// counted by a trigger of their own.
#[tokio::test]
async fn a_task_that_keeps_failing_is_not_retried_in_a_tight_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::spawn_with(tmp.path(), &[]);
    let token = s.token().await;
    let db = rusqlite::Connection::open(tmp.path().join("data").join("roster.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(
        "CREATE TABLE test_claims (at INTEGER NOT NULL);
         CREATE TRIGGER test_count_claims AFTER UPDATE OF status ON tasks
           WHEN NEW.status = 'running' BEGIN
             INSERT INTO test_claims VALUES (unixepoch('subsec') * 1000);
           END;
         CREATE TRIGGER test_full_disk BEFORE INSERT ON users BEGIN
           SELECT RAISE(FAIL, 'database or disk is full (test)');
         END;
         CREATE TRIGGER test_full_disk_too BEFORE UPDATE OF status ON tasks
           WHEN NEW.status = 'failed' BEGIN
             SELECT RAISE(FAIL, 'database or disk is full (test)');
           END;",
    )
    .unwrap();
    let (status, resp) = s
        .post_json(
            BATCH_ADD,
            Some(&token),
            &json!({"users": users(3), "need_send_notification": false}),
        )
        .await;
    assert_eq!((status, resp["code"].as_i64()), (200, Some(0)), "{resp}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let claims: i64 = db
        .query_row("SELECT count(*) FROM test_claims", [], |r| r.get(0))
        .unwrap();
    // The first claim fails and the task is not claimed again while its lease holds (a
    // tight loop made thousands of claims in these four seconds).
    assert_eq!(claims, 1, "{claims} claims of a failing task in 4 s");
    // Once writes work again the task finishes, every user written once.
    db.execute_batch(
        "DROP TRIGGER test_full_disk; DROP TRIGGER test_full_disk_too;
         DROP TRIGGER test_count_claims;",
    )
    .unwrap();
    let id = resp["data"]["task_id"].as_str().unwrap().to_owned();
    let t = wait_done(&s, &token, &id, Duration::from_secs(60)).await;
    assert_eq!(t["success_num"].as_i64(), Some(3), "{t}");
}
