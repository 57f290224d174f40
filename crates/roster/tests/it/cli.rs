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
