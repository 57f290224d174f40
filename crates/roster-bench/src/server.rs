//! Running servers for the benchmark: a real `roster serve` process over a fresh data
//! directory (SQLite) or a fresh PostgreSQL database, and the fixed-body axum server that
//! stands for the HTTP ceiling. Both are separate processes, so the load generator's own CPU
//! use is not counted in their memory and they are measured the same way.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

/// A fresh scratch directory. With `ROSTER_BENCH_KEEP` set it is kept after the run (and
/// its path printed), so that a loaded database can be examined afterwards.
pub(crate) fn scratch_dir() -> anyhow::Result<tempfile::TempDir> {
    let mut b = tempfile::Builder::new();
    b.prefix("roster-bench-");
    if std::env::var_os("ROSTER_BENCH_KEEP").is_some() {
        b.disable_cleanup(true);
    }
    let dir = b.tempdir()?;
    // Private, as a data directory Roster creates itself is (this tempfile version makes it
    // 0755, which the server warns about at start).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    }
    if std::env::var_os("ROSTER_BENCH_KEEP").is_some() {
        println!("(keeping {})", dir.path().display());
    }
    Ok(dir)
}

/// A running `roster serve`.
pub(crate) struct Roster {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
    /// The first-start app id.
    pub(crate) app_id: String,
    /// The first-start app secret.
    pub(crate) app_secret: String,
    /// Kept alive so the data directory outlives the process.
    _dir: tempfile::TempDir,
}

impl Roster {
    /// Starts `bin serve` over a fresh data directory; with `database_url`, over that
    /// database instead of SQLite. `toml` is written to the data directory's roster.toml.
    pub(crate) fn start(
        bin: &Path,
        database_url: Option<&str>,
        toml: &str,
    ) -> anyhow::Result<Self> {
        let dir = scratch_dir()?;
        std::fs::write(dir.path().join("roster.toml"), toml)?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir.path())
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = database_url {
            cmd.arg("--database-url").arg(url);
        }
        // The benchmark's own environment must not reconfigure the server.
        for (k, _) in std::env::vars() {
            if k.starts_with("ROSTER_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let (tx, rx) = std_mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut app_id, mut app_secret, mut base) = (String::new(), String::new(), String::new());
        while base.is_empty() {
            let line = rx
                .recv_timeout(Duration::from_mins(2))
                .map_err(|_| anyhow!("roster did not report its address"))?;
            let t = line.trim();
            if let Some(v) = t.strip_prefix("app_id:") {
                v.trim().clone_into(&mut app_id);
            } else if let Some(v) = t.strip_prefix("app_secret:") {
                v.trim().clone_into(&mut app_secret);
            } else if let Some(rest) = line.strip_prefix("roster listening on ") {
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .clone_into(&mut base);
            }
        }
        if app_id.is_empty() {
            bail!("roster did not print first-start credentials (is the data directory fresh?)");
        }
        let addr = base.trim_start_matches("http://").to_owned();
        Ok(Self {
            child,
            base,
            addr,
            app_id,
            app_secret,
            _dir: dir,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `tenant_access_token` for the first-start app.
    pub(crate) async fn token(&self, http: &reqwest::Client) -> anyhow::Result<String> {
        let v: serde_json::Value = http
            .post(format!(
                "{}/open-apis/auth/v3/tenant_access_token/internal",
                self.base
            ))
            .json(&serde_json::json!({"app_id": self.app_id, "app_secret": self.app_secret}))
            .send()
            .await?
            .json()
            .await?;
        v["tenant_access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no token in {v}"))
    }

    /// Peak resident memory so far, in MiB (Linux `VmHWM`).
    pub(crate) fn peak_rss_mb(&self) -> Option<f64> {
        peak_rss_mb(self.pid())
    }

    /// Starts a new peak: the kernel sets `VmHWM` back to the current resident memory
    /// (writing 5 to `/proc/PID/clear_refs`, Linux 4.0 and later).
    pub(crate) fn reset_peak_rss(&self) -> anyhow::Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5")
            .context("reset the server's peak RSS")
    }

    /// Resident memory now, in MiB (Linux `VmRSS`).
    pub(crate) fn rss_mb(&self) -> Option<f64> {
        proc_status_mb(self.pid(), "VmRSS:")
    }

    /// Stops the server (SIGKILL is fine: the benchmark's data directories are thrown away).
    pub(crate) fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Roster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmHWM` of a process in MiB.
pub(crate) fn peak_rss_mb(pid: u32) -> Option<f64> {
    proc_status_mb(pid, "VmHWM:")
}

/// A memory line of `/proc/PID/status`, in MiB.
fn proc_status_mb(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The fixed-body server, started as a child process of this same executable
/// (`roster-bench serve-ceiling`), so it runs on its own runtime like Roster does.
pub(crate) struct Ceiling {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
}

impl Ceiling {
    /// Starts the ceiling server answering `body` to every GET.
    pub(crate) fn start(body: &[u8]) -> anyhow::Result<Self> {
        let body_file = tempfile::NamedTempFile::new()?;
        std::fs::write(body_file.path(), body)?;
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("serve-ceiling")
            .arg(body_file.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("ceiling stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| anyhow!("ceiling server said {line:?}"))?
            .to_owned();
        Ok(Self { child, addr })
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of `roster-bench serve-ceiling FILE`: an axum server on the same kind of
/// multi-threaded tokio runtime as `roster serve`, answering every GET with the file's bytes
/// as JSON. This is the most a Rust HTTP stack on this machine can do per request, so Roster's
/// GET throughput is compared with it.
pub(crate) fn serve_ceiling(body_file: &PathBuf) -> anyhow::Result<()> {
    let body = bytes::Bytes::from(std::fs::read(body_file)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let app = axum::Router::new().fallback(axum::routing::get(move || {
            let body = body.clone();
            async move { ([(http::header::CONTENT_TYPE, "application/json")], body) }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on {addr}")?;
            out.flush()?;
        }
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}
