//! The administration commands.

use crate::harness::{cli, field};

#[test]
fn tenants_and_apps_can_be_created_listed_and_rotated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ok, out, err) = cli(dir, &["migrate"]);
    assert!(ok, "{err}");
    assert!(out.contains("migrations applied"));

    let (ok, out, err) = cli(
        dir,
        &["tenant", "create", "--name", "Acme", "--max-users", "10"],
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("tenant 1 created"), "{out}");
    let (ok, _, err) = cli(dir, &["tenant", "create", "--name", "Acme"]);
    assert!(!ok, "a duplicate tenant name must fail");
    assert!(err.contains("already exists"), "{err}");

    let (ok, out, _) = cli(dir, &["tenant", "list"]);
    assert!(ok);
    assert!(out.contains("Acme") && out.contains("10"), "{out}");

    let (ok, out, err) = cli(
        dir,
        &["app", "create", "--tenant", "1", "--name", "hr-sync"],
    );
    assert!(ok, "{err}");
    let app_id = field(&out, "app_id:");
    let secret = field(&out, "app_secret:");
    assert!(app_id.starts_with("cli_") && app_id.len() == 20);
    assert!(secret.len() >= 32);

    let (ok, out, _) = cli(dir, &["app", "list", "--tenant", "1"]);
    assert!(
        ok && out.contains(&app_id) && out.contains("hr-sync"),
        "{out}"
    );
    assert!(!out.contains(&secret), "secrets are never listed");

    let (ok, out, _) = cli(dir, &["app", "rotate-secret", &app_id]);
    assert!(ok);
    assert_ne!(field(&out, "app_secret:"), secret);

    let (ok, _, err) = cli(dir, &["app", "create", "--tenant", "99"]);
    assert!(!ok && err.contains("tenant 99 not found"), "{err}");
    let (ok, _, err) = cli(
        dir,
        &["app", "create", "--tenant", "1", "--scopes", "everything"],
    );
    assert!(!ok && err.contains("unknown scope"), "{err}");
}

#[tokio::test]
async fn roster_audit_shows_who_changed_what_with_before_and_after() {
    let s = crate::harness::TestServer::spawn();
    let token = s.token().await;
    let (_, b) = s
        .post_json(
            "/open-apis/contact/v3/users?user_id_type=user_id",
            Some(&token),
            &serde_json::json!({"user_id": "audited", "name": "Before", "mobile": "+8613500000001", "department_ids": ["0"]}),
        )
        .await;
    assert_eq!(b["code"], 0, "{b}");
    let open_id = b["data"]["user"]["open_id"].as_str().unwrap().to_owned();
    let resp = s
        .http
        .patch(s.url("/open-apis/contact/v3/users/audited?user_id_type=user_id"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "After"}))
        .send()
        .await
        .unwrap();
    assert_eq!(crate::harness::read(resp).await.1["code"], 0);
    let resp = s
        .http
        .delete(s.url("/open-apis/contact/v3/users/audited?user_id_type=user_id"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(crate::harness::read(resp).await.1["code"], 0);

    let (ok, out, err) = cli(&s.data_dir, &["audit", "--tenant", "1", "--full"]);
    assert!(ok, "{err}");
    assert!(!out.contains("INFO"), "no log lines in the listing: {out}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(&format!("user:{open_id}")))
        .collect();
    let actions: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().nth(3).unwrap())
        .collect();
    assert_eq!(actions, vec!["created", "updated", "deleted"], "{out}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains(&format!("app:{}", s.app_id))),
        "{out}"
    );
    assert!(
        out.contains("\"name\":\"Before\"") && out.contains("\"name\":\"After\""),
        "{out}"
    );
    assert!(out.contains("\"is_resigned\":true"), "{out}");
}

#[test]
fn a_direct_import_acts_with_the_named_apps_scopes_and_never_creates_a_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ok, _, err) = cli(dir, &["tenant", "create", "--name", "Acme"]);
    assert!(ok, "{err}");
    let (ok, out, err) = cli(
        dir,
        &[
            "app",
            "create",
            "--tenant",
            "1",
            "--name",
            "reader",
            "--scopes",
            "contact:read",
        ],
    );
    assert!(ok, "{err}");
    let reader = field(&out, "app_id:");
    let csv = dir.join("people.csv");
    std::fs::write(&csv, "name,mobile\nAda,+8613500000001\n").unwrap();
    let csv = csv.to_str().unwrap();

    // An app without contact:write may not write through the database either, dry run
    // included: the direct path refuses what the server would.
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = vec!["import", csv, "--app-id", reader.as_str()];
        args.extend_from_slice(extra);
        let (ok, _, err) = cli(dir, &args);
        assert!(!ok && err.contains("contact:write"), "{extra:?}: {err}");
    }
    let (ok, out, _) = cli(dir, &["export", "--format", "csv"]);
    assert!(ok && !out.contains("Ada"), "nothing was written: {out}");

    // A database path that does not exist is an error, and neither the import (dry run or
    // not) nor an export creates a file or a directory there.
    let nowhere = dir.join("typo");
    let url = format!("sqlite://{}", nowhere.join("roster.db").display());
    for args in [
        vec!["import", csv, "--database-url", url.as_str(), "--dry-run"],
        vec!["import", csv, "--database-url", url.as_str()],
    ] {
        let (ok, _, err) = cli(dir, &args);
        assert!(!ok && err.contains("no database"), "{args:?}: {err}");
    }
    assert!(!nowhere.exists(), "a mistyped path creates nothing");

    // With only --database-url, run elsewhere, an export neither needs nor leaves a secret
    // key behind (the default data directory would be ./roster-data there).
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let url = format!("sqlite://{}", dir.join("data").join("roster.db").display());
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["export", "--database-url", url.as_str(), "--format", "csv"])
        .current_dir(&elsewhere)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "nothing created where the command ran"
    );
}

/// `roster import --url` keeps polling through a server restart: the task is durable, so
/// the CLI waits for the server to come back and reports the finished import, instead of
/// failing on the first refused connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_import_waits_for_a_restarted_server_and_reports_the_whole_import() {
    use std::io::Write as _;
    use std::time::{Duration, Instant};

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("roster.toml"), "task_lease_seconds = 2\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut first = crate::harness::TestServer::spawn_listen(dir, &listen, &[]);
    let (app_id, secret) = (first.app_id.clone(), first.app_secret.clone());
    let n = 40_000;
    let csv = dir.join("many.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
    writeln!(f, "name,user_id,mobile").unwrap();
    for i in 0..n {
        writeln!(f, "User {i},r{i},+86137{i:08}").unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["import", csv.to_str().unwrap(), "--url", &first.base])
        .args(["--app-id", &app_id, "--app-secret", &secret])
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // Kill the server once the upload is in and rows are being written.
    let db = dir.join("data").join("roster.db");
    let count = || -> i64 {
        rusqlite::Connection::open(&db)
            .and_then(|c| {
                c.query_row(
                    "SELECT count(*) FROM users WHERE user_id LIKE 'r%'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap_or(0)
    };
    let start = Instant::now();
    while count() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no rows written"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    assert!(count() < n, "killed before the import finished");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _second = crate::harness::TestServer::spawn_listen(dir, &listen, &[]);

    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{n} created")) || stderr.contains(&format!("{n} created")),
        "{stdout}\n{stderr}"
    );
    assert_eq!(count(), n, "every row exactly once");
}

/// A file or mapping problem found while the rows stream to the server is reported as
/// itself, not as the transport error that breaking the upload causes.
#[tokio::test]
async fn roster_import_to_a_server_reports_a_mapping_problem_as_such() {
    let s = crate::harness::TestServer::spawn();
    let csv = s.data_dir.join("people.csv");
    std::fs::write(&csv, "Full Name,mobile\nAda,+8613500000002\n").unwrap();
    let (ok, _, err) = cli(
        &s.data_dir,
        &[
            "import",
            csv.to_str().unwrap(),
            "--url",
            &s.base,
            "--app-id",
            &s.app_id,
            "--app-secret",
            &s.app_secret,
            "--map",
            "name=Nope",
        ],
    );
    assert!(!ok, "{err}");
    assert!(err.contains("Nope"), "{err}");
    assert!(!err.contains("error sending request"), "{err}");
}

#[test]
fn roster_export_of_a_directory_that_does_not_exist_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ok, _, err) = cli(dir, &["export", "--format", "csv"]);
    assert!(!ok && err.contains("no database"), "{err}");
    assert!(!dir.join("data").exists(), "no data directory was made");
}

/// A process whose secret key does not open the access-key secrets a database holds refuses
/// to work on it (it would fail every signed request and seal what no other node can open),
/// and one with no key at all does not make one up.
#[test]
fn a_process_with_another_secret_key_refuses_the_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ok, _, err) = cli(dir, &["tenant", "create", "--name", "Acme"]);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(
        dir,
        &[
            "app", "create", "--tenant", "1", "--kind", "huawei", "--name", "hw",
        ],
    );
    assert!(ok, "{err}");
    let key_file = dir.join("data").join("secret.key");
    assert!(key_file.is_file(), "the first sealing process made the key");

    // Another key, from the configuration file the commands read in their working directory.
    std::fs::write(
        dir.join("roster.toml"),
        "secret_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n",
    )
    .unwrap();
    let (ok, _, err) = cli(dir, &["app", "list", "--tenant", "1"]);
    assert!(!ok, "a process with another key must refuse");
    assert!(err.contains("does not open"), "{err}");
    std::fs::remove_file(dir.join("roster.toml")).unwrap();

    // No key at all: refused, and no new key is written.
    let saved = dir.join("secret.key.saved");
    std::fs::rename(&key_file, &saved).unwrap();
    let (ok, _, err) = cli(
        dir,
        &["app", "create", "--tenant", "1", "--kind", "alibaba"],
    );
    assert!(!ok, "a process without the key must refuse");
    assert!(err.contains("no key is configured"), "{err}");
    assert!(!key_file.exists(), "no key was made up");

    // The right key again: it works.
    std::fs::rename(&saved, &key_file).unwrap();
    let (ok, out, err) = cli(dir, &["app", "list", "--tenant", "1"]);
    assert!(ok, "{err}");
    assert!(out.contains("hw"), "{out}");
}

/// Commands that only read (the lists, the outbox, the audit record) make no secret key: run
/// with `--database-url` from another working directory, they must leave nothing behind
/// there, or a later command in that directory would seal secrets under a key of its own.
#[test]
fn read_only_commands_make_no_secret_key() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let (ok, _, err) = cli(&home, &["migrate"]);
    assert!(ok, "{err}");
    let url = format!("sqlite://{}", home.join("data").join("roster.db").display());
    for args in [
        &["tenant", "list"][..],
        &["app", "list"],
        &["outbox", "list"],
        &["audit"],
    ] {
        let mut full = vec!["--database-url", url.as_str()];
        full.extend_from_slice(args);
        let (ok, _, err) = cli(&elsewhere, &full);
        assert!(ok, "{args:?}: {err}");
        assert!(
            !elsewhere.join("data").join("secret.key").exists(),
            "{args:?} made a secret key"
        );
    }
}

/// Settings that would leave a server running but broken are refused at start, naming the
/// key, instead of accepting imports no worker runs or logging at a level nobody chose.
#[test]
fn settings_that_would_break_the_server_are_refused_with_their_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (toml, key) in [
        ("task_workers = 0\n", "task_workers"),
        ("task_lease_seconds = 0\n", "task_lease_seconds"),
        ("body_limit = 10\n", "body_limit"),
        (
            "feishu_batch_add_max_users = 0\n",
            "feishu_batch_add_max_users",
        ),
        ("log = \"roster=[[[\"\n", "log filter"),
    ] {
        std::fs::write(dir.join("roster.toml"), toml).unwrap();
        let (ok, _, err) = cli(dir, &["migrate"]);
        assert!(!ok && err.contains(key), "{toml}: {err}");
    }
    assert!(!dir.join("data").exists(), "nothing was created");
    std::fs::remove_file(dir.join("roster.toml")).unwrap();
    let (ok, _, err) = cli(dir, &["migrate"]);
    assert!(ok, "{err}");
}

/// A PostgreSQL server that cannot be reached is reported with the reason at once, not as
/// "pool timed out" after the pool's 30 s.
#[test]
fn an_unreachable_postgres_is_reported_with_its_reason_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (ok, _, err) = cli(
        tmp.path(),
        &[
            "--database-url",
            "postgres://postgres@127.0.0.1:1/x",
            "migrate",
        ],
    );
    assert!(!ok);
    assert!(err.contains("Connection refused"), "{err}");
    assert!(
        started.elapsed().as_secs() < 10,
        "took {:?}",
        started.elapsed()
    );
}
