//! `TestServer`: spawns the built binary and reads its address and first credentials from
//! standard output.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_roster");

pub struct TestServer {
    pub child: Child,
    pub base: String,
    pub app_id: String,
    pub app_secret: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub http: reqwest::Client,
}

impl TestServer {
    /// A server over a fresh SQLite data directory.
    pub fn spawn() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Self::spawn_with(&dir, &[]);
        s._tmp = Some(tmp);
        s
    }

    /// A server with extra arguments after `serve` (e.g. `--database-url`), in `dir`.
    pub fn spawn_with(dir: &Path, extra: &[&str]) -> Self {
        Self::spawn_listen(dir, "127.0.0.1:0", extra)
    }

    /// A server in `dir` on a given address, so that a restarted server answers where its
    /// predecessor did.
    pub fn spawn_listen(dir: &Path, listen: &str, extra: &[&str]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(extra)
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn roster");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut app_id, mut app_secret, mut base) = (String::new(), String::new(), String::new());
        while base.is_empty() {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("roster printed its address in time");
            if let Some(v) = line.trim().strip_prefix("app_id:") {
                app_id = v.trim().to_owned();
            } else if let Some(v) = line.trim().strip_prefix("app_secret:") {
                app_secret = v.trim().to_owned();
            } else if let Some(rest) = line.strip_prefix("roster listening on ") {
                base = rest.split_whitespace().next().expect("address").to_owned();
            }
        }
        Self {
            child,
            base,
            app_id,
            app_secret,
            data_dir: dir.to_path_buf(),
            _tmp: None,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A tenant access token for the printed credentials.
    pub async fn token(&self) -> String {
        self.token_for(&self.app_id.clone(), &self.app_secret.clone())
            .await
    }

    pub async fn token_for(&self, app_id: &str, secret: &str) -> String {
        let body = self
            .post_json(
                "/open-apis/auth/v3/tenant_access_token/internal",
                None,
                &json!({"app_id": app_id, "app_secret": secret}),
            )
            .await
            .1;
        assert_eq!(body["code"], 0, "token call failed: {body}");
        body["tenant_access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.expect("request")).await
    }

    /// A request of any method with a JSON body and a bearer token.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: &Value,
    ) -> (u16, Value) {
        let req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(body);
        read(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.expect("request")).await
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
        // The server gives open connections ten seconds to finish, then stops.
        for _ in 0..400 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("roster did not stop within 20 s of SIGTERM");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status and JSON body; asserts that the body is JSON with the Feishu content type.
pub async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.expect("body");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text:?}"));
    assert!(
        ctype.starts_with("application/json"),
        "content-type {ctype:?} for {text}"
    );
    (status, body)
}

/// Runs the CLI with the given data directory and arguments; returns its whole output.
pub fn cli_output(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run roster")
}

/// Runs the CLI with the given data directory and arguments; returns (success, stdout,
/// stderr).
pub fn cli(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = cli_output(dir, args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value after `key:` on a line of CLI output.
pub fn field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}
