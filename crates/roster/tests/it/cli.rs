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
    // The tenant's row ends with its licence cap, the MAX column (a bare "10" anywhere in
    // the output could be any id or count).
    assert!(
        out.lines()
            .any(|l| l.contains("Acme") && l.split_whitespace().last() == Some("10")),
        "{out}"
    );

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

    // A SQLite file that is not a Roster database is refused by every reading command, and
    // left as it was (no Roster table is created in it).
    let other = dir.join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE foo (x INTEGER)")
        .unwrap();
    let url = format!("sqlite://{}", other.display());
    for args in [
        &["export", "--format", "csv"][..],
        &["tenant", "list"][..],
        &["outbox", "list"][..],
    ] {
        let mut full = args.to_vec();
        full.extend_from_slice(&["--database-url", &url]);
        let (ok, _, err) = cli(dir, &full);
        assert!(
            !ok && err.contains("is not a Roster database"),
            "{args:?}: {err}"
        );
    }
    let tables: i64 = rusqlite::Connection::open(&other)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 1, "only foo: nothing was migrated into the file");
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

/// Commands that write keep to the directory they were pointed at: `app create` and
/// `app rotate-secret` on a mistyped path create no database there, and with `--database-url`
/// from another working directory no command makes up a secret key there (one that the
/// servers on the database would not have). A command that must seal a secret then refuses,
/// naming what to set, and writes nothing; one that seals nothing works.
#[test]
fn write_commands_need_their_directory_and_make_no_key_away_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let elsewhere = tmp.path().join("elsewhere");
    let typo = tmp.path().join("typo");
    for d in [&home, &elsewhere, &typo] {
        std::fs::create_dir_all(d).unwrap();
    }
    let (ok, _, err) = cli(&home, &["tenant", "create", "--name", "Acme"]);
    assert!(ok, "{err}");

    for args in [
        &["app", "create", "--tenant", "1", "--name", "hr"][..],
        &["app", "rotate-secret", "cli_0123456789abcdef"],
    ] {
        let (ok, _, err) = cli(&typo, args);
        assert!(!ok, "{args:?} on a mistyped path must fail");
        assert!(err.contains("no database"), "{args:?}: {err}");
        assert!(!typo.join("data").exists(), "{args:?} created a directory");
    }

    let url = format!("sqlite://{}", home.join("data").join("roster.db").display());
    let run = |args: &[&str]| {
        let mut full = vec!["--database-url", url.as_str()];
        full.extend_from_slice(args);
        cli(&elsewhere, &full)
    };
    let (ok, _, err) = run(&["tenant", "create", "--name", "Beta"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["app", "create", "--tenant", "1", "--name", "hr"]);
    assert!(ok, "a Feishu app seals nothing: {err}");
    let (ok, _, err) = run(&["app", "create", "--tenant", "1", "--kind", "alibaba"]);
    assert!(
        !ok,
        "an access key cannot be sealed without the servers' key"
    );
    assert!(err.contains("secret_key"), "{err}");
    assert!(
        !elsewhere.join("data").exists(),
        "nothing was made in the working directory"
    );
    let (ok, out, err) = cli(&home, &["app", "list"]);
    assert!(ok, "{err}");
    assert!(
        !out.contains("alibaba"),
        "the refused key was not written: {out}"
    );

    // Beside its database the key is made where `roster serve` keeps it.
    let (ok, _, err) = cli(
        &home,
        &["app", "create", "--tenant", "1", "--kind", "alibaba"],
    );
    assert!(ok, "{err}");
    assert!(home.join("data").join("secret.key").is_file());
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
        (
            "idempotency_retention_hours = 0\n",
            "idempotency_retention_hours",
        ),
        ("quickbi_max_members = 0\n", "quickbi_max_members"),
    ] {
        std::fs::write(dir.join("roster.toml"), toml).unwrap();
        let (ok, _, err) = cli(dir, &["migrate"]);
        assert!(!ok && err.contains(key), "{toml}: {err}");
    }
    assert!(!dir.join("data").exists(), "nothing was created");
    std::fs::remove_file(dir.join("roster.toml")).unwrap();
    // `RUST_LOG` wins over `log` when set, so it is held to the same rule.
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["--data-dir", "data", "migrate"])
        .current_dir(dir)
        .env("RUST_LOG", "roster=[[[")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("RUST_LOG"), "{err}");
    assert!(!dir.join("data").exists(), "nothing was created");
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

// ----- `roster import`: what it reads -----

/// A data directory with a tenant and an app, for imports straight to the database.
fn directory() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, _, err) = cli(tmp.path(), &["tenant", "create", "--name", "Acme"]);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(
        tmp.path(),
        &["app", "create", "--tenant", "1", "--name", "hr"],
    );
    assert!(ok, "{err}");
    tmp
}

/// One number from the directory's SQLite database.
fn sqlite_count(dir: &std::path::Path, sql: &str) -> i64 {
    rusqlite::Connection::open(dir.join("data").join("roster.db"))
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// Writes `name` in `dir` and runs `roster import` on it with `args` after the file.
fn import(dir: &std::path::Path, name: &str, body: &[u8], args: &[&str]) -> (bool, String, String) {
    let file = dir.join(name);
    std::fs::write(&file, body).unwrap();
    let mut full = vec!["import", file.to_str().unwrap()];
    full.extend_from_slice(args);
    cli(dir, &full)
}

/// Runs `roster import` of `body` (written as `name`) through the server `s` with its
/// first app's credentials, off the async runtime that serves the test.
async fn import_through(
    s: &crate::harness::TestServer,
    name: &'static str,
    body: Vec<u8>,
) -> (bool, String, String) {
    let dir = s.data_dir.clone();
    let args = [
        "--url".to_owned(),
        s.base.clone(),
        "--app-id".to_owned(),
        s.app_id.clone(),
        "--app-secret".to_owned(),
        s.app_secret.clone(),
    ];
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        import(&dir, name, &body, &args)
    })
    .await
    .unwrap()
}

/// Two columns that map to one field (`Mobile` and `Phone`, `Email` and `Mail`) refuse the
/// file before anything is imported, naming both; a later empty cell must never wipe the
/// earlier value. --map says which column is meant.
#[test]
fn roster_import_refuses_two_columns_for_one_field() {
    let tmp = directory();
    let dir = tmp.path();
    for (body, columns, field) in [
        (
            "Name,Mobile,Phone,User ID\nDup Phone,+8613800004441,,dupph1\n",
            ["\"Mobile\"", "\"Phone\""],
            "mobile",
        ),
        (
            "Name,Email,Mail\nDup Col,dupcol@example.com,\n",
            ["\"Email\"", "\"Mail\""],
            "email",
        ),
    ] {
        for extra in [&["--dry-run"][..], &[][..]] {
            let (ok, out, err) = import(dir, "dup.csv", body.as_bytes(), extra);
            assert!(!ok, "{out} {err}");
            assert!(
                columns.iter().all(|c| err.contains(c))
                    && err.contains(&format!("field {field}"))
                    && err.contains("--map"),
                "{err}"
            );
        }
    }
    assert_eq!(
        sqlite_count(dir, "SELECT count(*) FROM users WHERE name LIKE 'Dup%'"),
        0
    );
    assert_eq!(
        sqlite_count(dir, "SELECT count(*) FROM tasks"),
        0,
        "no task either"
    );

    // Saying which column is meant imports the row with its value.
    let (ok, out, err) = import(
        dir,
        "dup.csv",
        b"Name,Mobile,Phone,User ID\nDup Phone,+8613800004441,,dupph1\n",
        &["--map", "mobile=Mobile"],
    );
    assert!(ok, "{out} {err}");
    assert_eq!(
        sqlite_count(
            dir,
            "SELECT count(*) FROM users WHERE mobile = '+8613800004441'"
        ),
        1
    );

    // NDJSON keys vary by line: a line giving one field twice fails alone.
    let (ok, out, err) = import(
        dir,
        "dup.ndjson",
        b"{\"name\":\"N1\",\"mobile\":\"+8613800004442\",\"phone\":\"\"}\n{\"name\":\"N2\"}\n",
        &["--dry-run"],
    );
    assert!(!ok, "{out} {err}");
    assert!(
        out.contains("dry run: 2 rows, 1 valid, 1 invalid"),
        "{out} {err}"
    );
    assert!(
        out.contains("row 1: format mobile:")
            && out.contains("\"mobile\"")
            && out.contains("\"phone\""),
        "{out}"
    );
}

/// An XLSX error cell (#N/A, #DIV/0!, …) is not an empty cell: its row fails as a format
/// error naming the column and the error, in a dry run too; in a column the import does
/// not read, it is ignored with the column.
#[test]
fn roster_import_fails_a_row_holding_a_spreadsheet_error() {
    use rust_xlsxwriter::Formula;

    let tmp = directory();
    let dir = tmp.path();
    let file = dir.join("errors.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["name", "user_id", "email", "mobile", "Notes"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    let rows: [[&str; 5]; 4] = [
        ["Z1", "zr1", "#N/A", "+8613800003331", ""],
        ["Z2", "zr2", "zr2@example.com", "#VALUE!", ""],
        ["#DIV/0!", "zr3", "", "", ""],
        ["Z4", "zr4", "zr4@example.com", "", "#REF!"],
    ];
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            let (r, c) = (r as u32 + 1, c as u16);
            if v.starts_with('#') {
                // A formula whose cached result is the error, as Excel stores one.
                sheet
                    .write_formula(r, c, Formula::new("=1/0").set_result(*v))
                    .unwrap();
            } else if !v.is_empty() {
                sheet.write_string(r, c, *v).unwrap();
            }
        }
    }
    book.save(&file).unwrap();
    let report = dir.join("report.csv");
    let path = file.to_str().unwrap();
    for extra in [&["--dry-run"][..], &[][..]] {
        let mut args = vec!["import", path, "--errors", report.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (ok, out, err) = cli(dir, &args);
        assert!(!ok, "{out} {err}");
        let summary = if extra.is_empty() {
            "imported 4 rows: 1 created, 3 failed"
        } else {
            "dry run: 4 rows, 1 valid, 3 invalid"
        };
        assert!(out.contains(summary), "{out} {err}");
        let text = std::fs::read_to_string(&report).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1..],
            [
                "1,email,format,the spreadsheet cell holds the error #N/A",
                "2,mobile,format,the spreadsheet cell holds the error #VALUE!",
                "3,name,format,the spreadsheet cell holds the error #DIV/0!",
            ],
            "{extra:?}: {text}"
        );
    }
    assert_eq!(
        sqlite_count(dir, "SELECT count(*) FROM users WHERE user_id LIKE 'zr%'"),
        1,
        "only the row without an error in a read column"
    );
}

/// An XLSX sheet is read as it shows: a merged cell gives its value to every row of the
/// region, a date outside `join_time` stays the date it shows (`join_time` takes unix
/// seconds), and a number longer than a spreadsheet keeps exactly fails its row instead of
/// importing the rounded value.
#[test]
fn roster_import_reads_merged_cells_dates_and_long_numbers_as_the_sheet_shows_them() {
    use rust_xlsxwriter::{ExcelDateTime, Format};

    let tmp = directory();
    let dir = tmp.path();
    let file = dir.join("shown.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in [
        "name",
        "user_id",
        "city",
        "description",
        "join_time",
        "employee_no",
    ]
    .iter()
    .enumerate()
    {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let day = ExcelDateTime::from_ymd(2020, 1, 1).unwrap();
    for (r, (name, id)) in [("M1", "xm1"), ("M2", "xm2"), ("M3", "xm3"), ("M4", "xm4")]
        .iter()
        .enumerate()
    {
        let r = r as u32 + 1;
        sheet.write_string(r, 0, *name).unwrap();
        sheet.write_string(r, 1, *id).unwrap();
        sheet.write_datetime_with_format(r, 3, &day, &date).unwrap();
        sheet.write_datetime_with_format(r, 4, &day, &date).unwrap();
    }
    sheet
        .merge_range(1, 2, 3, 2, "Shanghai", &Format::new())
        .unwrap();
    sheet
        .write_number(4, 5, 1_234_567_890_123_456_789.0)
        .unwrap();
    book.save(&file).unwrap();
    let report = dir.join("report.csv");
    let (ok, out, err) = cli(
        dir,
        &[
            "import",
            file.to_str().unwrap(),
            "--errors",
            report.to_str().unwrap(),
        ],
    );
    assert!(!ok, "one row fails: {out} {err}");
    assert!(
        out.contains("imported 4 rows: 3 created, 1 failed"),
        "{out} {err}"
    );
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(
        text.contains("4,employee_no,format,the number")
            && text.contains("format the column as text"),
        "{text}"
    );
    assert_eq!(
        sqlite_count(
            dir,
            "SELECT count(*) FROM users WHERE user_id IN ('xm1','xm2','xm3') \
             AND json_extract(doc, '$.city') = 'Shanghai' \
             AND json_extract(doc, '$.description') = '2020-01-01' \
             AND json_extract(doc, '$.join_time') = 1577836800"
        ),
        3,
        "every row of the merged region has the city; dates read as the sheet shows them"
    );
}

/// An NDJSON file that starts with a UTF-8 byte-order mark is read as the upload API reads
/// it, straight to the database and through a server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_import_reads_ndjson_after_a_byte_order_mark() {
    let body = b"\xEF\xBB\xBF{\"name\":\"Bom\",\"user_id\":\"cbom1\"}\n{\"name\":\"Two\",\"user_id\":\"cbom2\"}\n";
    let tmp = directory();
    let (ok, out, err) = import(tmp.path(), "bom.ndjson", body, &["--dry-run"]);
    assert!(ok, "{out} {err}");
    assert!(out.contains("dry run: 2 rows, 2 valid, 0 invalid"), "{out}");

    let s = crate::harness::TestServer::spawn();
    let (ok, out, err) = import_through(&s, "bom.ndjson", body.to_vec()).await;
    assert!(ok, "{out} {err}");
    assert!(
        out.contains("imported 2 rows: 2 created, 0 failed"),
        "{out}"
    );
}

/// `--errors`: a report path that cannot be written fails the command before anything is
/// imported (and leaves no file behind); a report that still fails to write at the end is
/// told after the summary of what was imported.
#[test]
fn roster_import_checks_its_error_report_path_before_importing() {
    let tmp = directory();
    let dir = tmp.path();
    let body = b"name,user_id,email\nErrPath1,ep1,ep1@example.com\nErrPath2,ep2,bad\n";
    let nowhere = dir.join("nonexistent").join("e.csv");
    for extra in [&["--dry-run"][..], &[][..]] {
        let mut args = vec!["--errors", nowhere.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (ok, out, err) = import(dir, "ep.csv", body, &args);
        assert!(!ok, "{out} {err}");
        assert!(err.contains("e.csv"), "{err}");
    }
    assert_eq!(
        sqlite_count(dir, "SELECT count(*) FROM users WHERE user_id LIKE 'ep%'"),
        0
    );
    assert_eq!(sqlite_count(dir, "SELECT count(*) FROM tasks"), 0);

    // A file refused at its header writes no report: none is made, an old one is kept.
    let report = dir.join("report.csv");
    let (ok, _, err) = import(
        dir,
        "ep.csv",
        body,
        &["--errors", report.to_str().unwrap(), "--map", "name=Nope"],
    );
    assert!(!ok && err.contains("Nope"), "{err}");
    assert!(!report.exists(), "no empty report is left behind");

    // The report cannot be the input itself: that would overwrite what is being imported.
    let input = dir.join("ep.csv");
    let (ok, _, err) = import(dir, "ep.csv", body, &["--errors", input.to_str().unwrap()]);
    assert!(
        !ok && err.contains("names the file being imported"),
        "{err}"
    );
    assert_eq!(std::fs::read(&input).unwrap(), body, "the input is intact");
    assert_eq!(
        sqlite_count(dir, "SELECT count(*) FROM users WHERE user_id LIKE 'ep%'"),
        0
    );

    std::fs::write(&report, "old").unwrap();
    let (ok, _, err) = import(
        dir,
        "ep.csv",
        body,
        &["--errors", report.to_str().unwrap(), "--map", "name=Nope"],
    );
    assert!(!ok, "{err}");
    assert_eq!(std::fs::read_to_string(&report).unwrap(), "old");

    // A longer old report is replaced whole.
    std::fs::write(&report, "x".repeat(10_000)).unwrap();
    let (ok, _, _) = import(
        dir,
        "ep.csv",
        body,
        &["--errors", report.to_str().unwrap(), "--dry-run"],
    );
    assert!(!ok);
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(
        text.starts_with("row,field,code,message\n2,email,invalid,") && !text.contains('x'),
        "{text}"
    );

    // A report that opens but cannot be written (a full disk): the summary comes first.
    if std::path::Path::new("/dev/full").exists() {
        let (ok, out, err) = import(dir, "ep.csv", body, &["--errors", "/dev/full"]);
        assert!(!ok, "{out} {err}");
        assert!(
            out.contains("imported 2 rows: 1 created, 1 failed"),
            "{out} {err}"
        );
        assert!(out.contains("row 2: invalid email"), "{out}");
        assert!(err.contains("write the error report /dev/full"), "{err}");
        assert_eq!(
            sqlite_count(dir, "SELECT count(*) FROM users WHERE user_id = 'ep1'"),
            1
        );
    }
}

/// The upload API's 64 KiB row limit holds in the CLI too: a longer NDJSON line or CSV
/// record is that row's format error (and is never held whole), the rows after it are read
/// as usual, and a CSV header that long refuses the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_import_refuses_a_row_over_the_api_row_limit() {
    let long = "x".repeat(70 * 1024);
    let ndjson = format!(
        "{{\"name\":\"L1\"}}\n{{\"name\":\"L2\",\"description\":\"{long}\"}}\n{{\"name\":\"L3\"}}\n"
    );
    let csv = format!("name,description\nL1,a\nL2,\"{long}\"\nL3,b\n");
    // A quote that never closes swallows the rest of the file into one over-long row.
    let mut unclosed = String::from("name,user_id\nAlice,uc1\n\"Bob (Robert,uc2\n");
    for i in 0..5000 {
        unclosed.push_str(&format!("User {i},uq{i}\n"));
    }
    let tmp = directory();
    let dir = tmp.path();
    for (name, body, rows) in [
        ("long.ndjson", ndjson.as_bytes(), 3),
        ("long.csv", csv.as_bytes(), 3),
        ("unclosed.csv", unclosed.as_bytes(), 2),
    ] {
        let (ok, out, err) = import(dir, name, body, &["--dry-run"]);
        assert!(!ok, "{out} {err}");
        assert!(
            out.contains(&format!(
                "dry run: {rows} rows, {} valid, 1 invalid",
                rows - 1
            )),
            "{name}: {out} {err}"
        );
        assert!(
            out.contains("row 2: format row: longer than 65536 bytes"),
            "{name}: {out}"
        );
    }
    let (ok, out, err) = import(dir, "unclosed.csv", unclosed.as_bytes(), &["--dry-run"]);
    assert!(!ok && out.contains("never closes"), "{out} {err}");
    let header = format!("name,{long}\nA\n");
    let (ok, out, err) = import(dir, "header.csv", header.as_bytes(), &["--dry-run"]);
    assert!(!ok, "{out} {err}");
    assert!(
        err.contains("the CSV header is longer than 65536 bytes"),
        "{err}"
    );

    // Through a server, the refused row is reported under its file row as well.
    let s = crate::harness::TestServer::spawn();
    let (ok, out, err) = import_through(&s, "long.ndjson", ndjson.into_bytes()).await;
    assert!(!ok, "{out} {err}");
    assert!(
        out.contains("imported 3 rows: 2 created, 1 failed"),
        "{out} {err}"
    );
    assert!(
        out.contains("row 2: format row: longer than 65536 bytes"),
        "{out}"
    );
}

/// A direct import that sends invitations needs `public_url`: the links must lead to the
/// server, whose address this process cannot know. Without it nothing is written; with it
/// the invitations carry its links.
#[test]
fn a_direct_import_with_notify_needs_the_public_url() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ok, _, err) = cli(dir, &["tenant", "create", "--name", "Acme"]);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(dir, &["app", "create", "--tenant", "1"]);
    assert!(ok, "{err}");
    let csv = dir.join("people.csv");
    std::fs::write(&csv, "name,email\nAda,ada@example.com\n").unwrap();
    let csv = csv.to_str().unwrap();
    let (ok, _, err) = cli(dir, &["import", csv, "--notify"]);
    assert!(!ok && err.contains("public_url"), "{err}");
    let (ok, out, _) = cli(dir, &["export", "--format", "csv"]);
    assert!(ok && !out.contains("Ada"), "nothing was written: {out}");

    std::fs::write(
        dir.join("roster.toml"),
        "public_url = \"https://roster.example.com\"\n",
    )
    .unwrap();
    let (ok, _, err) = cli(dir, &["import", csv, "--notify"]);
    assert!(ok, "{err}");
    let (ok, out, err) = cli(dir, &["outbox", "list", "--full"]);
    assert!(
        ok && out.contains("https://roster.example.com/activate/"),
        "{out}{err}"
    );
}

/// `roster import` exits 0 when every row is imported, 2 when it ran with some rows refused
/// (a dry run too), and 1 when it could not run at all.
#[test]
fn roster_import_exit_codes_tell_refused_rows_from_a_failed_run() {
    let tmp = directory();
    let dir = tmp.path();
    let code = |args: &[&str]| crate::harness::cli_output(dir, args).status.code();
    std::fs::write(dir.join("good.csv"), "name,user_id\nGood,xc1\n").unwrap();
    std::fs::write(
        dir.join("some.csv"),
        "name,user_id,email\nFine,xc2,xc2@example.com\nBad,xc3,bad\n",
    )
    .unwrap();
    assert_eq!(code(&["import", "good.csv"]), Some(0));
    assert_eq!(code(&["import", "some.csv", "--dry-run"]), Some(2));
    assert_eq!(code(&["import", "some.csv"]), Some(2));
    assert_eq!(code(&["import", "missing.csv"]), Some(1));
    assert_eq!(
        sqlite_count(dir, "SELECT count(*) FROM users WHERE user_id LIKE 'xc%'"),
        2
    );
}

/// `roster import --url` speaks plain HTTP; an `https://` (or any other) address is refused
/// with that reason before anything is sent, not with a connection error from deep inside.
#[test]
fn roster_import_refuses_an_address_it_cannot_speak_to() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let csv = dir.join("people.csv");
    std::fs::write(&csv, "name\nAda\n").unwrap();
    for url in ["https://roster.example.com", "ftp://127.0.0.1:9"] {
        let (ok, _, err) = cli(
            dir,
            &[
                "import",
                csv.to_str().unwrap(),
                "--url",
                url,
                "--token",
                "t-x",
            ],
        );
        assert!(!ok, "{url}");
        assert!(err.contains("plain http://"), "{url}: {err}");
    }
    // The scheme is case-insensitive: an upper-case one is plain HTTP too, and goes as far
    // as the (closed) port.
    let (ok, _, err) = cli(
        dir,
        &[
            "import",
            csv.to_str().unwrap(),
            "--url",
            "HTTP://127.0.0.1:9",
            "--token",
            "t-x",
        ],
    );
    assert!(!ok);
    assert!(
        !err.contains("plain http://") && err.contains("Connection refused"),
        "{err}"
    );
}
