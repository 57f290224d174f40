//! The token endpoint and the bearer check, exactly as spec §3 and §2 describe them.

use serde_json::json;

use crate::harness::{read, TestServer};

const TOKEN_PATH: &str = "/open-apis/auth/v3/tenant_access_token/internal";

#[tokio::test]
async fn printed_credentials_get_a_token_of_the_documented_shape() {
    let s = TestServer::spawn();
    let (status, body) = s
        .post_json(
            TOKEN_PATH,
            None,
            &json!({"app_id": s.app_id, "app_secret": s.app_secret}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["code"], 0);
    assert_eq!(body["msg"], "ok");
    assert_eq!(body["expire"], 7200);
    let token = body["tenant_access_token"].as_str().unwrap();
    assert!(token.starts_with("t-"));
    assert_eq!(token.len(), 2 + 64, "256 random bits in hex");
    assert!(body.get("data").is_none(), "A1 has no data object");
}

#[tokio::test]
async fn the_same_token_is_returned_while_it_has_time_left() {
    let s = TestServer::spawn();
    assert_eq!(s.token().await, s.token().await);
}

#[tokio::test]
async fn token_request_without_content_type_is_accepted() {
    // lark-oapi sends the body as raw bytes with no Content-Type at all.
    let s = TestServer::spawn();
    let resp = s
        .http
        .post(s.url(TOKEN_PATH))
        .body(format!(
            r#"{{"app_id":"{}","app_secret":"{}"}}"#,
            s.app_id, s.app_secret
        ))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("content-type").is_some());
    let (status, body) = read(resp).await;
    assert_eq!((status, body["code"].as_i64()), (200, Some(0)));
}

#[tokio::test]
async fn app_access_token_carries_both_names() {
    let s = TestServer::spawn();
    let (_, body) = s
        .post_json(
            "/open-apis/auth/v3/app_access_token/internal",
            None,
            &json!({"app_id": s.app_id, "app_secret": s.app_secret}),
        )
        .await;
    assert_eq!(body["code"], 0);
    assert_eq!(body["app_access_token"], body["tenant_access_token"]);
}

#[tokio::test]
async fn bad_credentials_get_10014_and_missing_fields_10003() {
    let s = TestServer::spawn();
    let (status, body) = s
        .post_json(
            TOKEN_PATH,
            None,
            &json!({"app_id": s.app_id, "app_secret": "wrong"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_i64(), body["msg"].as_str()),
        (200, Some(10014), Some("app secret invalid"))
    );
    let (_, body) = s
        .post_json(
            TOKEN_PATH,
            None,
            &json!({"app_id": "cli_0000000000000000", "app_secret": "x"}),
        )
        .await;
    assert_eq!(
        (body["code"].as_i64(), body["msg"].as_str()),
        (Some(10014), Some("app id not exists"))
    );
    let (status, body) = s
        .post_json(TOKEN_PATH, None, &json!({"app_id": s.app_id}))
        .await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(10003)));
    let resp = s
        .http
        .post(s.url(TOKEN_PATH))
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(10003)));
}

#[tokio::test]
async fn missing_malformed_and_unknown_bearer_tokens_get_their_codes() {
    let s = TestServer::spawn();
    let path = "/open-apis/contact/v3/departments/0";
    let (status, body) = s.get(path, None).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(99_991_661)));
    let (_, body) = s.get(path, Some("abc")).await;
    assert_eq!(body["code"], 99_991_671);
    let (_, body) = s.get(path, Some(&format!("t-{}", "0".repeat(64)))).await;
    assert_eq!(body["code"], 99_991_663);
    assert!(
        body.get("data")
            .is_none_or(|d| d.as_object().is_some_and(serde_json::Map::is_empty)),
        "no data with an auth error"
    );
    // And the real token works, under the scheme's name in any case, or bare.
    let token = s.token().await;
    let (status, body) = s.get(path, Some(&token)).await;
    assert_eq!((status, body["code"].as_i64()), (200, Some(0)), "{body}");
    for header in [
        format!("BEARER {token}"),
        format!("bearer  {token}"),
        token.clone(),
    ] {
        let resp = s
            .http
            .get(s.url(path))
            .header("Authorization", &header)
            .send()
            .await
            .unwrap();
        let (status, body) = read(resp).await;
        assert_eq!(
            (status, body["code"].as_i64()),
            (200, Some(0)),
            "{header}: {body}"
        );
    }
    let resp = s
        .http
        .get(s.url(path))
        .header("Authorization", format!("Basic {token}"))
        .send()
        .await
        .unwrap();
    let (_, body) = read(resp).await;
    assert_eq!(
        body["code"], 99_991_671,
        "another scheme is a malformed token"
    );
}

#[tokio::test]
async fn a_token_of_another_tenant_sees_nothing_of_this_one() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let (_, body) = s
        .post_json(
            "/open-apis/contact/v3/users",
            Some(&token),
            &json!({"name": "Ana", "mobile": "+8613011111111", "department_ids": ["0"]}),
        )
        .await;
    assert_eq!(body["code"], 0, "{body}");
    let open_id = body["data"]["user"]["open_id"].as_str().unwrap().to_owned();

    // A second tenant with its own app, made with the CLI while the server runs.
    let (ok, out, err) = crate::harness::cli(&s.data_dir, &["tenant", "create", "--name", "other"]);
    assert!(ok, "{err}");
    let tenant_id = out.split_whitespace().nth(1).unwrap().to_owned();
    let (ok, out, err) =
        crate::harness::cli(&s.data_dir, &["app", "create", "--tenant", &tenant_id]);
    assert!(ok, "{err}");
    let other = s
        .token_for(
            &crate::harness::field(&out, "app_id:"),
            &crate::harness::field(&out, "app_secret:"),
        )
        .await;

    let (_, mine) = s
        .get(
            &format!("/open-apis/contact/v3/users/{open_id}"),
            Some(&token),
        )
        .await;
    assert_eq!(mine["code"], 0);
    let (status, theirs) = s
        .get(
            &format!("/open-apis/contact/v3/users/{open_id}"),
            Some(&other),
        )
        .await;
    assert_eq!(
        (status, theirs["code"].as_i64()),
        (400, Some(41012)),
        "{theirs}"
    );
    assert!(theirs.get("data").is_none());
}

#[tokio::test]
async fn rotating_the_secret_revokes_tokens_and_the_old_secret() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let (ok, out, err) = crate::harness::cli(&s.data_dir, &["app", "rotate-secret", &s.app_id]);
    assert!(ok, "{err}");
    let new_secret = crate::harness::field(&out, "app_secret:");
    let (_, body) = s
        .get("/open-apis/contact/v3/departments/0", Some(&token))
        .await;
    assert_eq!(body["code"], 99_991_663);
    let (_, body) = s
        .post_json(
            TOKEN_PATH,
            None,
            &json!({"app_id": s.app_id, "app_secret": s.app_secret}),
        )
        .await;
    assert_eq!(body["code"], 10014);
    let fresh = s.token_for(&s.app_id.clone(), &new_secret).await;
    let (_, body) = s
        .get("/open-apis/contact/v3/departments/0", Some(&fresh))
        .await;
    assert_eq!(body["code"], 0);
}

#[tokio::test]
async fn a_read_only_app_cannot_write() {
    let s = TestServer::spawn();
    let (ok, out, err) = crate::harness::cli(
        &s.data_dir,
        &["app", "create", "--tenant", "1", "--scopes", "contact:read"],
    );
    assert!(ok, "{err}");
    let token = s
        .token_for(
            &crate::harness::field(&out, "app_id:"),
            &crate::harness::field(&out, "app_secret:"),
        )
        .await;
    let (_, body) = s
        .post_json(
            "/open-apis/contact/v3/departments",
            Some(&token),
            &json!({"name": "X", "parent_department_id": "0"}),
        )
        .await;
    assert_eq!(body["code"], 99_991_672, "{body}");
    let (_, body) = s
        .get("/open-apis/contact/v3/departments/0", Some(&token))
        .await;
    assert_eq!(body["code"], 0);
}
