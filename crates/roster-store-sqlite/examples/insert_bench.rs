//! Measures `insert_users` against plain prepared inserts of the same rows in one
//! transaction, the bulk-import target being "within 2x of the plain inserts".
//!
//! `cargo run --release -p roster-store-sqlite --example insert_bench [users]`

// A benchmark talks to the person who runs it, and stops at the first failure.
#![allow(clippy::print_stdout, clippy::unwrap_used)]
// Rates are printed as floats; row counts are far below 2^52.
#![allow(clippy::cast_precision_loss)]
// `s` the store, `t` the tenant, `u`/`m` the two statements.
#![allow(clippy::many_single_char_names)]

use std::time::Instant;

use roster_core::values::Email;
use roster_core::{
    Actor, Change, DeptLookup, IdGen, Membership, NewTenant, RandomIds, Store, TenantId, User,
    UserId, UserKey, UserProfile, UserStatus,
};
use roster_store_common::{encode_profile, UserColumns};
use roster_store_sqlite::SqliteStore;

fn users(t: TenantId, n: usize, root: roster_core::DeptKey, tag: &str) -> Vec<User> {
    (0..n)
        .map(|i| User {
            key: UserKey(0),
            tenant: t,
            open_id: RandomIds.open_id(),
            union_id: RandomIds.union_id(),
            user_id: UserId::parse(&format!("{tag}{i}")).unwrap(),
            profile: UserProfile {
                name: format!("User {i}"),
                email: Some(Email::parse("email", &format!("{tag}{i}@example.com")).unwrap()),
                employee_no: Some(format!("{tag}E{i}")),
                departments: vec![Membership {
                    department: root,
                    user_order: 0,
                    department_order: 0,
                    is_primary: true,
                }],
                ..UserProfile::default()
            },
            status: UserStatus::default(),
            created_at: 1,
            updated_at: 1,
            resigned_at: None,
            logout_at: None,
        })
        .collect()
}

async fn fresh(dir: &std::path::Path, name: &str) -> (SqliteStore, TenantId, roster_core::DeptKey) {
    let s = SqliteStore::open(&dir.join(name)).unwrap();
    let t = s
        .create_tenant(&NewTenant::parse("bench", None).unwrap(), "k", 0)
        .await
        .unwrap();
    let root = s
        .get_department(t.id, &DeptLookup::OpenId("0".into()))
        .await
        .unwrap()
        .unwrap();
    (s, t.id, root.key)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();

    // Baseline: the same rows, plain prepared statements, one transaction, no store.
    let (s, t, root) = fresh(dir.path(), "plain.db").await;
    let rows = users(t, n, root, "p");
    let path = s.path().to_owned();
    drop(s);
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.pragma_update(None, "cache_size", -65536).unwrap();
    let chunk: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(n);
    let start = Instant::now();
    for part in rows.chunks(chunk) {
        let tx = conn.transaction().unwrap();
        {
            let mut u = tx
                .prepare(
                    "INSERT INTO users (tenant_id, open_id, union_id, user_id, user_id_fold, \
                 email_fold, mobile, username_fold, employee_no, name, leader_open_id, \
                 is_resigned, is_frozen, is_activated, is_exited, is_unjoin, created_at, \
                 updated_at, resigned_at, logout_at, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
                 ?8, ?9, ?10, ?11, 0, 0, 0, 0, 0, 1, 1, NULL, NULL, ?12)",
                )
                .unwrap();
            let mut m = tx
                .prepare(
                    "INSERT INTO user_departments (user_id, department_id, tenant_id, position, \
                 user_order, department_order, is_primary) VALUES (?1, ?2, ?3, 0, 0, 0, 1)",
                )
                .unwrap();
            for user in part {
                let c = UserColumns::of(user);
                let id = u
                    .insert(rusqlite::params![
                        t.0,
                        user.open_id.as_str(),
                        user.union_id.as_str(),
                        user.user_id.as_str(),
                        c.user_id_fold,
                        c.email_fold,
                        c.mobile,
                        c.username_fold,
                        c.employee_no,
                        user.profile.name,
                        c.leader_open_id,
                        encode_profile(&user.profile),
                    ])
                    .unwrap();
                m.execute(rusqlite::params![id, root.0, t.0]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let plain = start.elapsed();
    println!(
        "plain prepared inserts: {n} users in {plain:?} ({:.0}/s)",
        n as f64 / plain.as_secs_f64()
    );

    for (name, atomic, chunk) in [
        ("atomic, one call", true, n),
        ("best-effort, 1000 per call", false, 1000),
    ] {
        let (s, t, root) = fresh(dir.path(), &format!("{atomic}.db")).await;
        let rows = users(t, n, root, "s");
        let start = Instant::now();
        for c in rows.chunks(chunk) {
            let r = s
                .insert_users(t, c, atomic, &Change::by(Actor::Cli))
                .await
                .unwrap();
            assert!(r.iter().all(Result::is_ok));
        }
        let took = start.elapsed();
        println!(
            "insert_users {name}: {n} users in {took:?} ({:.0}/s, {:.2}x plain)",
            n as f64 / took.as_secs_f64(),
            took.as_secs_f64() / plain.as_secs_f64()
        );
    }
}
