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
}
