//! Server plumbing: health, envelopes for framework-level failures, limits, shutdown,
//! persistence across restarts.

use std::time::Duration;

use serde_json::json;

use crate::harness::{read, TestServer};

#[tokio::test]
async fn health_and_readiness_answer() {
    let s = TestServer::spawn();
    let r = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = read(s.http.get(s.url("/readyz")).send().await.unwrap()).await;
    assert_eq!((status, body["store"].as_str()), (200, Some("sqlite")));
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_in_the_feishu_envelope() {
    let s = TestServer::spawn();
    let (status, body) = s.get("/open-apis/no/such/thing", None).await;
    assert_eq!((status, body["code"].as_i64()), (404, Some(99_991_201)));
    let resp = s
        .http
        .delete(s.url("/open-apis/auth/v3/tenant_access_token/internal"))
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!((status, body["code"].as_i64()), (405, Some(99_991_301)));
}

/// The plain routes beside the dialects answer in JSON too: another method on them is a
/// JSON 405, and an activation link that does not decode (bad UTF-8, a NUL) a JSON 400.
#[tokio::test]
async fn the_plain_routes_answer_bad_requests_in_json() {
    let s = TestServer::spawn();
    for path in ["/healthz", "/readyz", "/activate/abc"] {
        let (status, body) = read(s.http.post(s.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 405, "POST {path}");
        assert_eq!(body["status"], "error", "POST {path}: {body}");
    }
    for path in ["/activate/%ff", "/activate/a%00b"] {
        let (status, body) = s.get(path, None).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (400, Some("invalid")),
            "{path}: {body}"
        );
    }
    let (status, body) = s.get("/activate/no-such-link", None).await;
    assert_eq!((status, body["status"].as_str()), (404, Some("invalid")));
}

/// A chunked token request over the body limit is 413, as one with a Content-Length is
/// (`bodies_over_the_limit_are_refused_with_413_in_the_envelope`), not the token
/// endpoint's 10003 for a malformed body.
#[tokio::test]
async fn a_chunked_oversize_token_request_is_413() {
    let s = TestServer::spawn();
    let path = s.url("/open-apis/auth/v3/tenant_access_token/internal");
    // Just over the 64 KiB limit of token requests (read before any credential is known),
    // so that the server has read nearly all of it when it answers and the client is not
    // cut off while still sending.
    let big = vec![b' '; 64 * 1024 + 1];
    let chunks = futures::stream::iter(
        big.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let resp = s
        .http
        .post(&path)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (413, Some(40001)),
        "chunked: {body}"
    );
}

#[tokio::test]
async fn responses_use_title_case_header_names() {
    // lark-oapi looks up "Content-Type" in a plain dict, so the exact case matters on the
    // wire. reqwest normalises names, so read the raw bytes.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::spawn();
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    sock.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("\r\nContent-Type: "), "{text}");
}

#[tokio::test]
async fn malformed_json_is_a_40001_envelope_and_changes_nothing() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let resp = s
        .http
        .post(s.url("/open-apis/contact/v3/departments"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(40001)));
    // A key sent twice is refused on create as on every other body, not "last one wins".
    let resp = s
        .http
        .post(s.url("/open-apis/contact/v3/departments"))
        .bearer_auth(&token)
        .body(r#"{"name":"A","name":"B","parent_department_id":"0"}"#)
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (400, Some(40001)),
        "{body}"
    );
    // An array is no body object, though serde would read one field by field; bytes that
    // are not UTF-8 are no JSON text, even in a member that nothing reads.
    let bodies: [(&str, Vec<u8>); 4] = [
        ("an array", br#"["Arr",null,"0","arr"]"#.to_vec()),
        (
            "an array for a nested object",
            br#"{"name":"N","parent_department_id":"0","i18n_name":["a","b","c"]}"#.to_vec(),
        ),
        (
            "a token request as an array",
            br#"["cli_x","secret"]"#.to_vec(),
        ),
        (
            "invalid UTF-8 in an unknown member",
            b"{\"name\":\"U\",\"parent_department_id\":\"0\",\"x\":\"\xff\"}".to_vec(),
        ),
    ];
    for (what, body) in bodies {
        let path = if what.starts_with("a token") {
            "/open-apis/auth/v3/tenant_access_token/internal"
        } else {
            "/open-apis/contact/v3/departments"
        };
        let resp = s
            .http
            .post(s.url(path))
            .bearer_auth(&token)
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, body) = read(resp).await;
        let expected = if what.starts_with("a token") {
            10003
        } else {
            40001
        };
        assert_eq!(
            (status, body["code"].as_i64()),
            (400, Some(expected)),
            "{what}: {body}"
        );
    }
    let (_, root) = s
        .get("/open-apis/contact/v3/departments/0/children", Some(&token))
        .await;
    assert_eq!(root["code"], 0);
    assert_eq!(
        root["data"]["items"],
        json!([]),
        "nothing was created: {root}"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_413_in_the_envelope() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("roster.toml"), "body_limit = 1024\n").unwrap();
    let s = TestServer::spawn_with(tmp.path(), &[]);
    let token = s.token().await;
    let big = json!({"name": "x".repeat(4096), "parent_department_id": "0"});
    let (status, body) = s
        .post_json("/open-apis/contact/v3/departments", Some(&token), &big)
        .await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (413, Some(40001)),
        "{body}"
    );
}

/// Writes `request` on a fresh connection to `addr` and returns the server's first answer
/// (within 5 s; `what` names the request in a failure).
async fn raw_answer(addr: &str, request: &str, what: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(request.as_bytes()).await.unwrap();
    let mut raw = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut raw))
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 5 s"))
        .unwrap();
    String::from_utf8_lossy(&raw[..n]).into_owned()
}

/// A client that declares a body over the limit and sends none of it gets its 413 at once,
/// in the envelope of the front door it called, instead of a request held open.
#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_sent() {
    let s = TestServer::spawn();
    let addr = s.base.trim_start_matches("http://").to_owned();
    let doors = [
        ("/open-apis/contact/v3/departments", "\"code\":40001"),
        ("/", "\"Code\":\"InvalidParameter\""),
        (
            "/v2/0123456789abcdef0123456789abcdef/users/batch-create",
            "\"error_code\":",
        ),
    ];
    for (path, envelope) in doors {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{{"
        );
        let text = raw_answer(&addr, &head, path).await;
        assert!(text.starts_with("HTTP/1.1 413"), "{path}: {text}");
        assert!(text.contains(envelope), "{path}: {text}");
    }
}

/// A body that breaks off (here a malformed chunk) is a 400 that says it could not be
/// read, in the front door's envelope; only a body over the limit is "too large".
#[tokio::test]
async fn a_broken_body_is_not_called_too_large() {
    let s = TestServer::spawn();
    let addr = s.base.trim_start_matches("http://").to_owned();
    let doors = [
        (
            "/",
            "application/x-www-form-urlencoded",
            "\"Code\":\"InvalidParameter\"",
        ),
        // Huawei's `/v2` routes check the credential first and read no body without one
        // (`requests_without_credentials_cost_no_body`); they answer a broken body with
        // the same `unreadable_body` as the token route.
        ("/v3/auth/tokens", "application/json", "\"error_code\":"),
    ];
    for (path, ctype, envelope) in doors {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\nzz\r\n"
        );
        let text = raw_answer(&addr, &head, path).await;
        assert!(text.starts_with("HTTP/1.1 400"), "{path}: {text}");
        assert!(text.contains(envelope), "{path}: {text}");
        assert!(text.contains("could not be read"), "{path}: {text}");
    }
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let mut s = TestServer::spawn();
    let _ = s.token().await;
    let status = s.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn data_and_tokens_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut first = TestServer::spawn_with(tmp.path(), &[]);
    let token = first.token().await;
    let (_, body) = first
        .post_json(
            "/open-apis/contact/v3/departments",
            Some(&token),
            &json!({"name": "Sales", "parent_department_id": "0", "department_id": "sales"}),
        )
        .await;
    assert_eq!(body["code"], 0, "{body}");
    let (app_id, secret) = (first.app_id.clone(), first.app_secret.clone());
    assert!(first.terminate().success());
    drop(first);

    let second = TestServer::spawn_with(tmp.path(), &[]);
    assert!(
        second.app_id.is_empty(),
        "no second bootstrap on a non-empty store"
    );
    // The SDKs cache tokens for up to two hours and never refresh on 99991663, so a token
    // issued before the restart must still work.
    let (_, body) = second
        .get(
            "/open-apis/contact/v3/departments/sales?department_id_type=department_id",
            Some(&token),
        )
        .await;
    assert_eq!(body["code"], 0, "{body}");
    assert_eq!(body["data"]["department"]["name"], "Sales");
    let _ = second.token_for(&app_id, &secret).await;
}

/// A user's avatar URLs are absolute, at the server's address, and answer with a picture;
/// a size Feishu does not name is a 404 in the envelope.
#[tokio::test]
async fn avatar_urls_are_absolute_and_answer_with_a_picture() {
    let s = TestServer::spawn();
    let token = s.token().await;
    let (status, body) = s
        .post_json(
            "/open-apis/contact/v3/users",
            Some(&token),
            &json!({"name": "Avatar", "mobile": "+8613000000077", "department_ids": ["0"]}),
        )
        .await;
    assert_eq!((status, body["code"].as_i64()), (200, Some(0)), "{body}");
    let url = body["data"]["user"]["avatar"]["avatar_72"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with(&s.url("/avatars/ou_")), "{url}");
    let resp = s.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()[reqwest::header::CONTENT_TYPE],
        "image/svg+xml"
    );
    assert!(resp.text().await.unwrap().starts_with("<svg"));
    let (status, body) = read(s.http.get(url.replace("/72", "/73")).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_i64()), (404, Some(99_991_201)));
}

/// Sends `head` and then `body` on a fresh connection and returns the status line of the
/// answer, or `None` when none came within `wait`.
async fn status_line(addr: &str, head: &str, body: &[u8], wait: Duration) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(body).await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(wait, sock.read(&mut buf))
        .await
        .ok()?
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().map(str::to_owned)
}

/// A request that carries no credential is answered before its body is read: it used to
/// be read whole first (up to `body_limit`, 8 MiB) on the Huawei routes, so anyone could
/// make the server hold that much per connection. Token requests, which are read before
/// any credential is known, take at most 64 KiB.
#[tokio::test]
async fn requests_without_credentials_cost_no_body() {
    let s = TestServer::spawn();
    let addr = s.base.trim_start_matches("http://").to_owned();
    let head = "POST /v2/0123456789abcdef0123456789abcdef/users/batch-create HTTP/1.1\r\n\
                Host: x\r\nContent-Type: application/json\r\nContent-Length: 8000000\r\n\r\n";
    let line = status_line(&addr, head, b"{", Duration::from_secs(5)).await;
    assert_eq!(line.as_deref(), Some("HTTP/1.1 401 Unauthorized"));
    // Quick BI must read the body to check a signature, but only of a request that names
    // a known key: an unsigned one may send 64 KiB at most.
    let head = "POST /?Action=QueryUserList HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\n";
    let line = status_line(&addr, head, &[b'a'; 70_000], Duration::from_secs(5)).await;
    assert_eq!(line.as_deref(), Some("HTTP/1.1 413 Payload Too Large"));

    let big = format!(r#"{{"app_id":"{}"}}"#, "a".repeat(70_000));
    for path in [
        "/open-apis/auth/v3/tenant_access_token/internal",
        "/open-apis/auth/v3/app_access_token/internal",
        "/v3/auth/tokens",
    ] {
        let resp = s
            .http
            .post(s.url(path))
            .header("content-type", "application/json")
            // A stream, so that no Content-Length lets a layer answer before the handler.
            .body(reqwest::Body::wrap_stream(futures::stream::once({
                let big = big.clone().into_bytes();
                async move { Ok::<_, std::io::Error>(big) }
            })))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 413, "{path}");
    }
}

/// At most `max_connections` connections are open at once; the next one waits in the
/// listen backlog until one closes, instead of taking a file descriptor the server needs.
#[tokio::test]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("roster.toml"), "max_connections = 3\n").unwrap();
    let s = TestServer::spawn_with(tmp.path(), &[]);
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let health = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    // Give the server a moment to take the three connections it holds.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = tokio::spawn({
        let addr = addr.clone();
        async move { status_line(&addr, health, b"", Duration::from_secs(20)).await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !waiting.is_finished(),
        "a fourth connection was served beside three held ones"
    );
    held.pop();
    let line = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("served once a slot was free")
        .unwrap();
    assert_eq!(line.as_deref(), Some("HTTP/1.1 200 OK"));
}

/// A client that pipelines requests and never reads the answers cannot hold its connection
/// (and its slot under `max_connections`) for ever: a write that waits 30 s for the client
/// ends the connection.
#[tokio::test]
async fn a_client_that_never_reads_its_answers_is_let_go() {
    use tokio::io::AsyncWriteExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("roster.toml"), "max_connections = 1\n").unwrap();
    let s = TestServer::spawn_with(tmp.path(), &[]);
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut greedy = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // Far more answer bytes than the two sockets' buffers hold.
    let request = b"GET /avatars/ou_x/640 HTTP/1.1\r\nHost: x\r\n\r\n";
    let pipelined: Vec<u8> = request.repeat(40_000);
    let writer = tokio::spawn(async move {
        let _ = greedy.write_all(&pipelined).await;
        // Kept open (and never read) until the test ends.
        tokio::time::sleep(Duration::from_secs(120)).await;
        drop(greedy);
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let health = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let line = status_line(&addr, health, b"", Duration::from_secs(60)).await;
    assert_eq!(
        line.as_deref(),
        Some("HTTP/1.1 200 OK"),
        "the only slot was freed from the client that does not read"
    );
    writer.abort();
}

/// The Huawei router's catch-all answers unknown `/v2/…` paths in the Huawei envelope
/// (the API Gateway's 404) while the API paths beside it still reach their handlers
/// (here refused for want of a credential, 401, before anything else).
#[tokio::test]
async fn huawei_unknown_paths_are_its_404_and_api_paths_reach_their_handlers() {
    let s = TestServer::spawn();
    let project = "0123456789abcdef0123456789abcdef";
    let huawei = |resp: &serde_json::Value| {
        (
            resp["error_code"].as_str().map(str::to_owned),
            resp["error_msg"].is_string(),
        )
    };
    for path in [
        format!("/v2/{project}"),
        format!("/v2/{project}/"),
        format!("/v2/{project}/nope"),
        format!("/v2/{project}/users/batch-create/extra"),
    ] {
        let (status, body) = s.get(&path, None).await;
        assert_eq!(
            (status, huawei(&body)),
            (404, (Some("APIGW.0101".to_owned()), true)),
            "{path}: {body}"
        );
    }
    let (status, body) = s
        .post_json(
            &format!("/v2/{project}/users/batch-create"),
            None,
            &serde_json::json!({"users": []}),
        )
        .await;
    assert_eq!(
        (status, huawei(&body)),
        (401, (Some("APIGW.0301".to_owned()), true)),
        "{body}"
    );
    let (status, body) = s.get(&format!("/v2/{project}/users/u1"), None).await;
    assert_eq!(
        (status, huawei(&body)),
        (401, (Some("APIGW.0301".to_owned()), true)),
        "{body}"
    );
}
