//! Focused checks of the PostgreSQL-specific parts of the store: the bulk insert path and
//! its fallbacks, the licence cap under the tenant lock, and racing writers. The shared
//! behaviour of every store is checked by `tests/conformance.rs`.
//!
//! Every test gets its own database on the server named by `ROSTER_TEST_POSTGRES_URL`, and
//! prints `SKIPPED: ROSTER_TEST_POSTGRES_URL not set` and returns when the variable is unset.

// clippy.toml allows unwrap in test functions only; the helpers below are test code too,
// and a failed setup should stop the test on the spot.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use roster_core::values::{Email, Mobile, Username};
use roster_core::{
    Department, DepartmentFields, DeptKey, DeptLookup, IdGen, Membership, NewTenant, RandomIds,
    Store, StoreError, Tenant, TenantId, UniqueKey, User, UserKey, UserLookup, UserProfile,
    UserStatus,
};
use roster_store_postgres::{test_store, PgStore};
use tokio::sync::Barrier;

async fn store(test: &str) -> Option<PgStore> {
    test_store(test)
        .await
        .expect("ROSTER_TEST_POSTGRES_URL is set, so a fresh test database must be made")
}

async fn tenant(store: &PgStore, name: &str, cap: Option<u32>) -> Tenant {
    store
        .create_tenant(
            &NewTenant::parse(name, cap).unwrap(),
            &RandomIds.hex(8),
            1_700_000_000_000,
        )
        .await
        .unwrap()
}

async fn root(store: &PgStore, tenant: TenantId) -> Department {
    store
        .get_department(tenant, &DeptLookup::OpenId("0".into()))
        .await
        .unwrap()
        .expect("every tenant has a root department")
}

async fn department(store: &PgStore, parent: &Department, name: &str, order: i64) -> Department {
    store
        .insert_department(&Department {
            key: DeptKey(0),
            tenant: parent.tenant,
            open_department_id: RandomIds.open_department_id(),
            department_id: RandomIds.department_id(),
            parent: Some(parent.key),
            fields: DepartmentFields {
                name: name.into(),
                order,
                ..DepartmentFields::default()
            },
            is_deleted: false,
            created_at: 1,
            updated_at: 1,
        })
        .await
        .unwrap()
}

/// An active user in `dept` with the given e-mail (if any) and fresh ids.
fn user(tenant: TenantId, dept: DeptKey, name: &str, email: Option<&str>) -> User {
    User {
        key: UserKey(0),
        tenant,
        open_id: RandomIds.open_id(),
        union_id: RandomIds.union_id(),
        user_id: RandomIds.user_id(),
        profile: UserProfile {
            name: name.into(),
            email: email.map(|e| Email::parse("email", e).unwrap()),
            departments: vec![Membership {
                department: dept,
                user_order: 0,
                department_order: 0,
                is_primary: true,
            }],
            ..UserProfile::default()
        },
        status: UserStatus {
            is_activated: true,
            ..UserStatus::default()
        },
        created_at: 1_700_000_000_000,
        updated_at: 1_700_000_000_000,
        resigned_at: None,
        logout_at: None,
    }
}

async fn active_users(store: &PgStore, tenant: TenantId) -> u64 {
    store
        .get_tenant(tenant)
        .await
        .unwrap()
        .unwrap()
        .active_users
}

fn is_duplicate(r: &Result<UserKey, StoreError>, key: UniqueKey) -> bool {
    matches!(r, Err(StoreError::Duplicate(k)) if *k == key)
}

#[tokio::test]
async fn creating_a_tenant_creates_its_root_department() {
    let Some(db) = store("creating_a_tenant_creates_its_root_department").await else {
        return;
    };
    let t = tenant(&db, "Acme", Some(10)).await;
    assert_eq!(t.active_users, 0);
    assert_eq!(db.get_tenant(t.id).await.unwrap(), Some(t.clone()));

    let r = root(&db, t.id).await;
    assert!(r.is_root());
    assert_eq!(r.fields.name, "Acme");
    assert_eq!(r.department_id.as_str(), "0");
    let by_custom = db
        .get_department(t.id, &DeptLookup::CustomId("0".into()))
        .await
        .unwrap();
    assert_eq!(by_custom, Some(r.clone()));
    assert_eq!(db.count_departments(t.id).await.unwrap(), 1);

    // Children come by descending order, then by creation.
    let first = department(&db, &r, "A", 0).await;
    let high = department(&db, &r, "B", 5).await;
    let second = department(&db, &r, "C", 0).await;
    let children: Vec<DeptKey> = db
        .child_departments(t.id, r.key)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(children, vec![high.key, first.key, second.key]);

    let clash = db
        .create_tenant(&NewTenant::parse("Acme", None).unwrap(), "k2", 1)
        .await;
    assert!(matches!(
        clash,
        Err(StoreError::Duplicate(UniqueKey::TenantName))
    ));
}

#[tokio::test]
async fn inserted_user_reads_back_by_every_lookup() {
    let Some(db) = store("inserted_user_reads_back_by_every_lookup").await else {
        return;
    };
    let t = tenant(&db, "Acme", None).await;
    let r = root(&db, t.id).await;
    let sales = department(&db, &r, "Sales", 0).await;

    let mut u = user(t.id, sales.key, "Zhang San", Some("Zhang.San@Example.com"));
    u.profile.mobile = Some(Mobile::parse("mobile", "+8613011111111").unwrap());
    u.profile.username = Some(Username::parse("ZhangSan").unwrap());
    u.profile.employee_no = Some("E-001".into());
    // Two memberships, the primary one second in department terms but first in the list:
    // the list order is what must survive.
    u.profile.departments.push(Membership {
        department: r.key,
        user_order: 7,
        department_order: 3,
        is_primary: false,
    });
    let written = db
        .insert_users(t.id, std::slice::from_ref(&u), true)
        .await
        .unwrap();
    let key = match written.as_slice() {
        [Ok(key)] => *key,
        other => panic!("unexpected {other:?}"),
    };
    let expected = User { key, ..u.clone() };

    for lookup in [
        UserLookup::Key(key),
        UserLookup::OpenId(u.open_id.to_string()),
        UserLookup::UnionId(u.union_id.to_string()),
        UserLookup::UserId(u.user_id.as_str().to_ascii_uppercase()),
        UserLookup::Email("zhang.san@EXAMPLE.com".into()),
        UserLookup::Mobile("+8613011111111".into()),
    ] {
        let got = db.get_user(t.id, &lookup).await.unwrap();
        assert_eq!(got.as_ref(), Some(&expected), "lookup {lookup:?}");
    }
    assert_eq!(active_users(&db, t.id).await, 1);
    assert_eq!(
        db.department_member_count(t.id, sales.key).await.unwrap(),
        1
    );

    // An update rewrites fields and memberships.
    let mut changed = expected.clone();
    changed.profile.name = "Zhang Three".into();
    changed.profile.departments.reverse();
    changed.updated_at += 1;
    db.update_user(&changed).await.unwrap();
    let got = db.get_user(t.id, &UserLookup::Key(key)).await.unwrap();
    assert_eq!(got, Some(changed.clone()));

    // Resigning frees the count, and a new active holder of the e-mail wins lookups.
    let mut resigned = changed.clone();
    resigned.status.is_resigned = true;
    resigned.resigned_at = Some(1_700_000_000_500);
    db.update_user(&resigned).await.unwrap();
    assert_eq!(active_users(&db, t.id).await, 0);
    assert_eq!(
        db.department_member_count(t.id, sales.key).await.unwrap(),
        0
    );
    let successor = user(t.id, r.key, "Successor", Some("zhang.san@example.com"));
    let written = db
        .insert_users(t.id, std::slice::from_ref(&successor), true)
        .await
        .unwrap();
    assert!(written[0].is_ok(), "{written:?}");
    let got = db
        .get_user(t.id, &UserLookup::Email("ZHANG.SAN@example.com".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.open_id, successor.open_id);

    // With the e-mail taken again, bringing the old holder back is a duplicate.
    let mut back = resigned.clone();
    back.status.is_resigned = false;
    back.resigned_at = None;
    let refused = db.update_user(&back).await;
    assert!(
        matches!(refused, Err(StoreError::Duplicate(UniqueKey::Email))),
        "{refused:?}"
    );
    assert_eq!(active_users(&db, t.id).await, 1);
}

#[tokio::test]
async fn duplicate_email_fails_an_atomic_batch_but_only_its_row_in_best_effort() {
    let Some(db) = store("duplicate_email_fails_an_atomic_batch").await else {
        return;
    };
    let t = tenant(&db, "Acme", None).await;
    let r = root(&db, t.id).await;
    let first = db
        .insert_users(
            t.id,
            &[user(t.id, r.key, "X", Some("taken@example.com"))],
            false,
        )
        .await
        .unwrap();
    assert!(first[0].is_ok());

    let batch = vec![
        user(t.id, r.key, "B", Some("b@example.com")),
        user(t.id, r.key, "C", Some("TAKEN@example.com")),
        user(t.id, r.key, "D", Some("d@example.com")),
    ];

    let atomic = db.insert_users(t.id, &batch, true).await.unwrap();
    assert_eq!(atomic.len(), 3);
    assert!(atomic[0].is_ok() && atomic[2].is_ok(), "{atomic:?}");
    assert!(is_duplicate(&atomic[1], UniqueKey::Email), "{atomic:?}");
    for e in ["b@example.com", "d@example.com"] {
        let found = db
            .get_user(t.id, &UserLookup::Email(e.into()))
            .await
            .unwrap();
        assert!(found.is_none(), "an atomic batch with a failure wrote {e}");
    }
    assert_eq!(active_users(&db, t.id).await, 1);

    let best = db.insert_users(t.id, &batch, false).await.unwrap();
    assert!(is_duplicate(&best[1], UniqueKey::Email), "{best:?}");
    for (i, e) in [(0, "b@example.com"), (2, "d@example.com")] {
        let Ok(key) = best[i] else {
            panic!("row {i} failed: {best:?}")
        };
        let found = db
            .get_user(t.id, &UserLookup::Email(e.into()))
            .await
            .unwrap();
        assert_eq!(found.map(|u| u.key), Some(key));
    }
    assert_eq!(active_users(&db, t.id).await, 3);
}

#[tokio::test]
async fn licence_cap_refuses_users_past_it() {
    let Some(db) = store("licence_cap_refuses_users_past_it").await else {
        return;
    };
    let t = tenant(&db, "Acme", Some(2)).await;
    let r = root(&db, t.id).await;

    let batch: Vec<User> = (0..3)
        .map(|i| user(t.id, r.key, &format!("U{i}"), None))
        .collect();
    let atomic = db.insert_users(t.id, &batch, true).await.unwrap();
    assert!(
        matches!(atomic[2], Err(StoreError::LicenceExceeded)),
        "{atomic:?}"
    );
    assert_eq!(
        active_users(&db, t.id).await,
        0,
        "an atomic batch past the cap wrote rows"
    );

    let best = db.insert_users(t.id, &batch, false).await.unwrap();
    assert!(best[0].is_ok() && best[1].is_ok(), "{best:?}");
    assert!(
        matches!(best[2], Err(StoreError::LicenceExceeded)),
        "{best:?}"
    );
    assert_eq!(active_users(&db, t.id).await, 2);

    // Resigning makes room; bringing a resigned user back past the cap is refused.
    let Ok(first) = best[0] else { unreachable!() };
    let mut u = db
        .get_user(t.id, &UserLookup::Key(first))
        .await
        .unwrap()
        .unwrap();
    u.status.is_resigned = true;
    u.resigned_at = Some(5);
    db.update_user(&u).await.unwrap();
    assert_eq!(active_users(&db, t.id).await, 1);
    let filler = db
        .insert_users(t.id, &[batch[2].clone()], false)
        .await
        .unwrap();
    assert!(filler[0].is_ok(), "{filler:?}");
    u.status.is_resigned = false;
    u.resigned_at = None;
    let refused = db.update_user(&u).await;
    assert!(
        matches!(refused, Err(StoreError::LicenceExceeded)),
        "{refused:?}"
    );
    let stored = db
        .get_user(t.id, &UserLookup::Key(first))
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.status.is_resigned,
        "a refused resurrection changed the user"
    );
    assert_eq!(active_users(&db, t.id).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_inserts_of_the_same_email_leave_exactly_one_user() {
    let Some(db) = store("racing_inserts_of_the_same_email_leave_exactly_one_user").await else {
        return;
    };
    let db = Arc::new(db);
    let t = tenant(&db, "Acme", None).await;
    let r = root(&db, t.id).await;

    // Several rounds, both modes, so that the loser is sometimes inside the bulk statement
    // and sometimes waiting for the tenant lock when the winner commits.
    for round in 0..10 {
        let email = format!("race{round}@example.com");
        let atomic = round % 2 == 0;
        let barrier = Arc::new(Barrier::new(2));
        let tasks: Vec<_> = (0..2)
            .map(|i| {
                let (db, barrier) = (Arc::clone(&db), Arc::clone(&barrier));
                // Each side carries a second, harmless row, so the bulk path is exercised.
                let rows = vec![
                    user(t.id, r.key, &format!("other{round}-{i}"), None),
                    user(t.id, r.key, &format!("racer{i}"), Some(&email)),
                ];
                tokio::spawn(async move {
                    barrier.wait().await;
                    db.insert_users(t.id, &rows, atomic).await
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            let results = task.await.unwrap().unwrap();
            match &results[1] {
                Ok(_) => winners += 1,
                Err(StoreError::Duplicate(UniqueKey::Email)) => {}
                other => panic!("unexpected result {other:?}"),
            }
        }
        assert_eq!(winners, 1, "round {round}: both or neither writer won");
        assert!(db
            .get_user(t.id, &UserLookup::Email(email.clone()))
            .await
            .unwrap()
            .is_some());
    }
    // Per round: the winner's two rows, plus the loser's harmless row in best-effort mode.
    assert_eq!(active_users(&db, t.id).await, 5 * 2 + 5 * 3);
}
