//! Wire snapshots: the exact JSON of every Feishu response and error envelope, pinned with
//! insta. Values that change from run to run (generated ids, tokens, times) are replaced by
//! placeholders that keep their shape visible (`ou_<32 hex>`), so a change of shape or of a
//! field name shows up as a snapshot diff.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::TestServer;

/// Replaces run-dependent values with stable placeholders.
fn redact(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let red = match (k.as_str(), v) {
                        ("tenant_access_token" | "app_access_token", Value::String(_)) => {
                            json!("t-<64 hex>")
                        }
                        ("ticket", Value::String(_)) => json!("<40 hex>"),
                        ("join_time", Value::Number(_)) => json!("<unix seconds>"),
                        ("page_token", Value::String(_)) => json!("<page token>"),
                        _ => redact(v),
                    };
                    (k.clone(), red)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::String(s) => json!(redact_str(s)),
        other => other.clone(),
    }
}

fn redact_str(s: &str) -> String {
    let hexlen = |p: &str| {
        s.strip_prefix(p)
            .filter(|r| r.len() == 32 && r.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    if hexlen("ou_").is_some() {
        "ou_<32 hex>".into()
    } else if hexlen("on_").is_some() {
        "on_<32 hex>".into()
    } else if hexlen("od-").is_some() {
        "od-<32 hex>".into()
    } else if s.starts_with("http://127.0.0.1:") && s.contains("/avatars/ou_") {
        // Absolute, at the test server's address, which changes from run to run.
        let size = s.rsplit('/').next().unwrap_or_default();
        format!("http://127.0.0.1:<port>/avatars/ou_<32 hex>/{size}")
    } else if s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        "<16 hex>".into()
    } else {
        s.to_owned()
    }
}

macro_rules! snap {
    ($name:literal, $status:expr, $body:expr) => {
        insta::assert_json_snapshot!($name, json!({ "status": $status, "body": redact(&$body) }));
    };
}

#[tokio::test]
async fn every_response_and_error_envelope_keeps_its_shape() {
    let s = TestServer::spawn();
    // The first token call of a fresh server issues a new token, so `expire` is exactly
    // 7200; later calls return the same token with what is left of it.
    let (st, b) = s
        .post_json(
            "/open-apis/auth/v3/tenant_access_token/internal",
            None,
            &json!({"app_id": s.app_id, "app_secret": s.app_secret}),
        )
        .await;
    snap!("a1_token", st, b);
    let token = s.token().await;
    let t = Some(token.as_str());
    let (st, b) = s
        .post_json(
            "/open-apis/auth/v3/tenant_access_token/internal",
            None,
            &json!({"app_id": s.app_id, "app_secret": "x"}),
        )
        .await;
    snap!("a1_bad_secret", st, b);
    let (st, b) = s.get("/open-apis/contact/v3/departments/0", None).await;
    snap!("auth_missing_token", st, b);

    let (st, b) = s
        .post_json(
            "/open-apis/contact/v3/departments?department_id_type=department_id",
            t,
            &json!({"name": "研发", "parent_department_id": "0", "department_id": "rd",
                    "i18n_name": {"en_us": "R&D"}, "order": 100}),
        )
        .await;
    snap!("d1_create", st, b);
    let (st, b) = s
        .post_json(
            "/open-apis/contact/v3/departments?department_id_type=department_id",
            t,
            &json!({"name": "a/b", "parent_department_id": "0"}),
        )
        .await;
    snap!("d1_bad_name", st, b);
    let (st, b) = s
        .get(
            "/open-apis/contact/v3/departments/rd?department_id_type=department_id",
            t,
        )
        .await;
    snap!("d2_get", st, b);
    let (st, b) = s
        .get(
            "/open-apis/contact/v3/departments/nope?department_id_type=department_id",
            t,
        )
        .await;
    snap!("d2_unknown", st, b);
    let (st, b) = s
        .get(
            "/open-apis/contact/v3/departments/0/children?department_id_type=department_id",
            t,
        )
        .await;
    snap!("d3_children", st, b);

    let (st, b) = s
        .post_json(
            "/open-apis/contact/v3/users?department_id_type=department_id&user_id_type=user_id",
            t,
            &json!({"user_id": "zhangsan", "name": "张三", "en_name": "San Zhang", "email": "zhangsan@example.com",
                    "mobile": "13011111111", "gender": 1, "department_ids": ["rd"], "city": "杭州",
                    "country": "CN", "employee_no": "1", "employee_type": 1, "job_title": "Engineer",
                    "join_time": 1615381200,
                    "custom_attrs": [{"type": "TEXT", "id": "C-1", "value": {"text": "x"}}]}),
        )
        .await;
    snap!("u1_create", st, b);
    let (st, b) = s
        .post_json(
            "/open-apis/contact/v3/users?department_id_type=department_id&user_id_type=user_id",
            t,
            &json!({"user_id": "lisi", "name": "李四", "mobile": "+8613011111112", "department_ids": ["rd"],
                    "leader_user_id": "zhangsan"}),
        )
        .await;
    snap!("u1_create_with_leader", st, b);
    let (st, b) = s
        .post_json(
            "/open-apis/contact/v3/users",
            t,
            &json!({"name": "Dup", "email": "ZHANGSAN@example.com", "mobile": "+8613011111113", "department_ids": ["0"]}),
        )
        .await;
    snap!("u1_duplicate_email", st, b);
    let (st, b) = s
        .post_json(
            "/open-apis/contact/v3/users",
            t,
            &json!({"name": "X", "mobile": "12", "department_ids": ["0"]}),
        )
        .await;
    snap!("u1_bad_mobile", st, b);

    let (st, b) = s.get("/open-apis/contact/v3/users/zhangsan?user_id_type=user_id&department_id_type=department_id", t).await;
    snap!("u10_get", st, b);
    let (st, b) = s
        .get(
            "/open-apis/contact/v3/users/ou_00000000000000000000000000000000",
            t,
        )
        .await;
    snap!("u10_unknown", st, b);
    let (st, b) = s
        .get("/open-apis/contact/v3/users/batch?user_ids=zhangsan&user_ids=lisi&user_id_type=user_id", t)
        .await;
    let mut b = b;
    if let Some(items) = b["data"]["items"].as_array_mut() {
        items.sort_by_key(|u| u["user_id"].as_str().unwrap_or_default().to_owned());
    }
    snap!("u11_batch", st, b);
    let (st, b) = s
        .post_json(
            "/open-apis/contact/v3/users/batch_get_id?user_id_type=user_id",
            t,
            &json!({"emails": ["zhangsan@example.com", "nobody@example.com"], "mobiles": ["13011111112"]}),
        )
        .await;
    snap!("u3_batch_get_id", st, b);
    let (st, b) = s
        .get("/open-apis/contact/v3/users/find_by_department?department_id=rd&department_id_type=department_id&user_id_type=user_id&page_size=1", t)
        .await;
    snap!("u12_first_page", st, b);
    let (st, b) = s.get("/open-apis/contact/v3/users/find_by_department?department_id=rd&department_id_type=department_id&page_size=51", t).await;
    snap!("u12_bad_page_size", st, b);
    let (st, b) = s.get("/open-apis/search/v1/user?query=%E5%BC%A0", t).await;
    snap!("u4_search", st, b);
    let resp = s
        .http
        .patch(s.url("/open-apis/contact/v3/users/lisi?user_id_type=user_id"))
        .bearer_auth(&token)
        .json(&json!({"city": "北京", "leader_user_id": ""}))
        .send()
        .await
        .unwrap();
    let (st, b) = crate::harness::read(resp).await;
    snap!("u9_patch", st, b);
    let resp = s
        .http
        .patch(s.url("/open-apis/contact/v3/users/lisi/update_user_id?user_id_type=user_id"))
        .bearer_auth(&token)
        .json(&json!({"new_user_id": "lisi2"}))
        .send()
        .await
        .unwrap();
    let (st, b) = crate::harness::read(resp).await;
    snap!("u2_update_user_id", st, b);
    let (st, b) = s
        .post_json("/open-apis/jssdk/ticket/get", t, &json!({}))
        .await;
    snap!("u8_ticket", st, b);
    let (st, b) = s
        .post_json(
            "/open-apis/passport/v1/sessions/logout?user_id_type=user_id",
            t,
            &json!({"logout_type": 1, "user_id": "lisi2", "logout_reason": 34}),
        )
        .await;
    snap!("u7_logout", st, b);
    let resp = s
        .http
        .delete(s.url("/open-apis/contact/v3/users/lisi2?user_id_type=user_id"))
        .bearer_auth(&token)
        .json(&json!({"docs_acceptor_user_id": "zhangsan"}))
        .send()
        .await
        .unwrap();
    let (st, b) = crate::harness::read(resp).await;
    snap!("u5_delete", st, b);
    let (st, b) = s
        .post_json(
            "/open-apis/contact/v3/users/lisi2/resurrect?user_id_type=user_id",
            t,
            &json!({}),
        )
        .await;
    snap!("u6_resurrect", st, b);
    let (st, b) = s
        .post_json(
            "/open-apis/contact/v3/users/lisi2/resurrect?user_id_type=user_id",
            t,
            &json!({}),
        )
        .await;
    snap!("u6_resurrect_active", st, b);
    let (st, b) = s.get("/open-apis/nope", t).await;
    snap!("not_found", st, b);
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_a_param_error_in_the_envelope() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let t = Some(token.as_str());
    // `read` asserts a JSON body with a JSON content type, which axum's own rejection of
    // such a path (plain text) would fail.
    for path in [
        "/open-apis/contact/v3/users/%FF",
        "/open-apis/contact/v3/users/%FF/resurrect",
        "/open-apis/contact/v3/departments/%FF",
        "/open-apis/contact/v3/departments/%FF/children",
    ] {
        let (st, b) = if path.ends_with("resurrect") {
            s.post_json(path, t, &json!({})).await
        } else {
            s.get(path, t).await
        };
        assert_eq!((st, b["code"].as_i64()), (400, Some(40001)), "{path}: {b}");
    }
}

#[tokio::test]
async fn a_user_has_one_primary_department_and_orders_name_only_its_departments() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let t = Some(token.as_str());
    for id in ["pa", "pb"] {
        let (_, b) = s
            .post_json(
                "/open-apis/contact/v3/departments?department_id_type=department_id",
                t,
                &json!({"name": id, "parent_department_id": "0", "department_id": id}),
            )
            .await;
        assert_eq!(b["code"], 0, "{b}");
    }
    let create =
        "/open-apis/contact/v3/users?user_id_type=user_id&department_id_type=department_id";
    let orders = |a: bool, b: bool| {
        json!([{"department_id": "pa", "is_primary_dept": a},
               {"department_id": "pb", "is_primary_dept": b}])
    };
    // Two primaries, or an order for a department the user is not in, change nothing.
    let (st, b) = s
        .post_json(
            create,
            t,
            &json!({"user_id": "two", "name": "Two", "mobile": "13200000031",
                    "department_ids": ["pa", "pb"], "orders": orders(true, true)}),
        )
        .await;
    assert_eq!((st, b["code"].as_i64()), (400, Some(40001)), "{b}");
    let (st, b) = s
        .post_json(
            create,
            t,
            &json!({"user_id": "two", "name": "Two", "mobile": "13200000031",
                    "department_ids": ["pa"], "orders": orders(false, true)}),
        )
        .await;
    assert_eq!((st, b["code"].as_i64()), (400, Some(40001)), "{b}");
    let (_, b) = s
        .get("/open-apis/contact/v3/users/two?user_id_type=user_id", t)
        .await;
    assert_ne!(b["code"], 0, "nothing was created: {b}");

    // The primary named by orders is the only one, even when it is not listed first.
    let (_, b) = s
        .post_json(
            create,
            t,
            &json!({"user_id": "two", "name": "Two", "mobile": "13200000031",
                    "department_ids": ["pa", "pb"],
                    "orders": [{"department_id": "pb", "is_primary_dept": true}]}),
        )
        .await;
    assert_eq!(b["code"], 0, "{b}");
    let user = &b["data"]["user"];
    let primaries: Vec<&str> = user["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["is_primary_dept"] == true)
        .map(|o| o["department_id"].as_str().unwrap())
        .collect();
    assert_eq!(primaries, vec!["pb"], "{user}");

    // A PATCH that would leave the user in no department is refused as at create.
    let resp = s
        .http
        .patch(s.url("/open-apis/contact/v3/users/two?user_id_type=user_id"))
        .bearer_auth(&token)
        .json(&json!({"department_ids": []}))
        .send()
        .await
        .unwrap();
    let (st, b) = crate::harness::read(resp).await;
    assert_eq!((st, b["code"].as_i64()), (400, Some(41017)), "{b}");
}

/// A `null` member is the same as one left out (spec §2), so a retry that sends one where
/// the first request left it out replays the first answer; a body that really differs is
/// still 40021.
#[tokio::test]
async fn a_client_token_retry_with_null_members_is_the_same_request() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let path = "/open-apis/contact/v3/users?client_token=null-retry";
    let first = json!({"name": "Null", "mobile": "+8613900000011", "department_ids": ["0"],
                       "employee_type": 1});
    let (st, a) = s.post_json(path, Some(&token), &first).await;
    assert_eq!((st, a["code"].as_i64()), (200, Some(0)), "{a}");
    let retry = json!({"name": "Null", "mobile": "+8613900000011", "department_ids": ["0"],
                       "employee_type": 1, "city": null, "orders": null});
    let (st, b) = s.post_json(path, Some(&token), &retry).await;
    assert_eq!((st, b["code"].as_i64()), (200, Some(0)), "{b}");
    assert_eq!(a["data"]["user"]["open_id"], b["data"]["user"]["open_id"]);
    let other = json!({"name": "Null", "mobile": "+8613900000011", "department_ids": ["0"],
                       "employee_type": 1, "city": "Beijing"});
    let (st, c) = s.post_json(path, Some(&token), &other).await;
    assert_eq!((st, c["code"].as_i64()), (400, Some(40021)), "{c}");
}

/// Logout answers an unknown `user_id_type` with 40001, as every other endpoint does.
#[tokio::test]
async fn logout_refuses_an_unknown_user_id_type_with_40001() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let (st, b) = s
        .post_json(
            "/open-apis/passport/v1/sessions/logout?user_id_type=bogus",
            Some(&token),
            &json!({"logout_type": 1, "user_id": "ou_x"}),
        )
        .await;
    assert_eq!((st, b["code"].as_i64()), (400, Some(40001)), "{b}");
}

/// A `client_token` replay answers what the first request was answered (spec §2), even
/// after the user or department was changed or deleted: the same ids and the first data.
#[tokio::test]
async fn a_client_token_replay_answers_the_first_response() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let t = Some(token.as_str());
    let path = "/open-apis/contact/v3/users?client_token=replay-1";
    let body = json!({"name": "Idem", "mobile": "+8613900000010", "department_ids": ["0"],
                      "employee_type": 1});
    let (st, first) = s.post_json(path, t, &body).await;
    assert_eq!((st, first["code"].as_i64()), (200, Some(0)), "{first}");
    let open_id = first["data"]["user"]["open_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let user_path = format!("/open-apis/contact/v3/users/{open_id}");
    let (_, b) = s
        .send_json(
            Method::PATCH,
            &user_path,
            &token,
            &json!({"name": "Renamed"}),
        )
        .await;
    assert_eq!(b["code"], 0, "{b}");
    let (_, replay) = s.post_json(path, t, &body).await;
    assert_eq!(replay, first, "the replay is the first answer");
    let (_, b) = s
        .send_json(Method::DELETE, &user_path, &token, &json!({}))
        .await;
    assert_eq!(b["code"], 0, "{b}");
    let (_, replay) = s.post_json(path, t, &body).await;
    assert_eq!(replay, first, "a replay after the delete too");

    let path = "/open-apis/contact/v3/departments?client_token=replay-2";
    let body = json!({"name": "Eng", "parent_department_id": "0"});
    let (st, first) = s.post_json(path, t, &body).await;
    assert_eq!((st, first["code"].as_i64()), (200, Some(0)), "{first}");
    let od = first["data"]["department"]["open_department_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dept_path = format!("/open-apis/contact/v3/departments/{od}");
    let (_, b) = s
        .send_json(
            Method::PATCH,
            &dept_path,
            &token,
            &json!({"name": "Engineering"}),
        )
        .await;
    assert_eq!(b["code"], 0, "{b}");
    let (_, replay) = s.post_json(path, t, &body).await;
    assert_eq!(replay, first, "the department's replay is the first answer");
}
