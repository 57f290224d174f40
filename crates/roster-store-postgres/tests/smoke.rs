//! Focused checks of the PostgreSQL-specific parts of the store: the bulk insert path and
//! its fallbacks, the licence cap under the tenant lock, racing writers, the change events
//! written with each change, `save` as one transaction, search, paging, idempotency keys,
//! JSAPI tickets and group owners. The shared behaviour of every store is checked by
//! `tests/conformance.rs`.
//!
//! Every test gets its own database on the server named by `ROSTER_TEST_POSTGRES_URL`, and
//! prints `SKIPPED: ROSTER_TEST_POSTGRES_URL not set` and returns when the variable is unset.

// clippy.toml allows unwrap in test functions only; the helpers below are test code too,
// and a failed setup should stop the test on the spot.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use roster_core::values::{Email, Mobile, Username};
use roster_core::{
    Actor, App, AppKind, Change, ChangeAction, ChangeEvent, ContactScope, Department,
    DepartmentFields, DeptKey, DeptLookup, Entity, Group, IdGen, IdempotencyClaim, IdempotencyKey,
    Membership, NewTenant, OpenId, RandomIds, Scopes, Store, StoreError, Tenant, TenantId,
    UniqueKey, User, UserKey, UserLookup, UserProfile, UserStatus,
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

/// The change every write of these tests is made under, unless a test names its own.
fn cli() -> Change {
    Change::by(Actor::Cli)
}

async fn department(store: &PgStore, parent: &Department, name: &str, order: i64) -> Department {
    store
        .insert_department(
            &Department {
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
            },
            &cli(),
        )
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

    // Children come by ascending order (smaller first, as Feishu sorts), then by creation.
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
    assert_eq!(children, vec![first.key, second.key, high.key]);

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
        .insert_users(t.id, std::slice::from_ref(&u), true, &cli())
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
    db.update_user(&changed, &cli()).await.unwrap();
    let got = db.get_user(t.id, &UserLookup::Key(key)).await.unwrap();
    assert_eq!(got, Some(changed.clone()));

    // Resigning frees the count, and a new active holder of the e-mail wins lookups.
    let mut resigned = changed.clone();
    resigned.status.is_resigned = true;
    resigned.resigned_at = Some(1_700_000_000_500);
    db.update_user(&resigned, &cli()).await.unwrap();
    assert_eq!(active_users(&db, t.id).await, 0);
    assert_eq!(
        db.department_member_count(t.id, sales.key).await.unwrap(),
        0
    );
    let successor = user(t.id, r.key, "Successor", Some("zhang.san@example.com"));
    let written = db
        .insert_users(t.id, std::slice::from_ref(&successor), true, &cli())
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
    let refused = db.update_user(&back, &cli()).await;
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
            &cli(),
        )
        .await
        .unwrap();
    assert!(first[0].is_ok());

    let batch = vec![
        user(t.id, r.key, "B", Some("b@example.com")),
        user(t.id, r.key, "C", Some("TAKEN@example.com")),
        user(t.id, r.key, "D", Some("d@example.com")),
    ];

    let atomic = db.insert_users(t.id, &batch, true, &cli()).await.unwrap();
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

    let best = db.insert_users(t.id, &batch, false, &cli()).await.unwrap();
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
    let atomic = db.insert_users(t.id, &batch, true, &cli()).await.unwrap();
    assert!(
        matches!(atomic[2], Err(StoreError::LicenceExceeded)),
        "{atomic:?}"
    );
    assert_eq!(
        active_users(&db, t.id).await,
        0,
        "an atomic batch past the cap wrote rows"
    );

    let best = db.insert_users(t.id, &batch, false, &cli()).await.unwrap();
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
    db.update_user(&u, &cli()).await.unwrap();
    assert_eq!(active_users(&db, t.id).await, 1);
    let filler = db
        .insert_users(t.id, &[batch[2].clone()], false, &cli())
        .await
        .unwrap();
    assert!(filler[0].is_ok(), "{filler:?}");
    u.status.is_resigned = false;
    u.resigned_at = None;
    let refused = db.update_user(&u, &cli()).await;
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
                    db.insert_users(t.id, &rows, atomic, &cli()).await
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

// ----- change events, save, queries, idempotency keys, JSAPI tickets -----

/// Inserts one user (best effort) and returns it as stored.
async fn insert_ok(store: &PgStore, u: &User) -> User {
    let written = store
        .insert_users(u.tenant, std::slice::from_ref(u), false, &cli())
        .await
        .unwrap();
    match written.as_slice() {
        [Ok(key)] => User {
            key: *key,
            ..u.clone()
        },
        other => panic!("inserting {} failed: {other:?}", u.profile.name),
    }
}

/// The id of the newest event, as a cursor for `events_after`.
async fn event_mark(store: &PgStore) -> i64 {
    store
        .list_events(None, 0, 100_000)
        .await
        .unwrap()
        .last()
        .map_or(0, |e| e.id)
}

async fn events_after(store: &PgStore, mark: i64) -> Vec<ChangeEvent> {
    store.list_events(None, mark, 100_000).await.unwrap()
}

async fn reread(store: &PgStore, u: &User) -> User {
    store
        .get_user(u.tenant, &UserLookup::Key(u.key))
        .await
        .unwrap()
        .unwrap()
}

fn group(tenant: TenantId, group_id: &str, name: &str, owner: Option<&OpenId>) -> Group {
    Group {
        key: 0,
        tenant,
        group_id: group_id.into(),
        name: name.into(),
        description: None,
        owner: owner.cloned(),
        created_at: 1,
    }
}

#[tokio::test]
async fn inserts_saves_and_purges_record_their_events() {
    let Some(db) = store("inserts_saves_and_purges_record_their_events").await else {
        return;
    };
    let t = tenant(&db, "Acme", None).await;
    let r = root(&db, t.id).await;

    // A department, with a note.
    let load = Change {
        actor: Actor::Cli,
        note: Some("initial load".into()),
        completes: None,
    };
    let mut new_dept = Department {
        key: DeptKey(0),
        tenant: t.id,
        open_department_id: RandomIds.open_department_id(),
        department_id: RandomIds.department_id(),
        parent: Some(r.key),
        fields: DepartmentFields {
            name: "Sales Before".into(),
            ..DepartmentFields::default()
        },
        is_deleted: false,
        created_at: 1_700_000_000_100,
        updated_at: 1_700_000_000_100,
    };
    let sales = db.insert_department(&new_dept, &load).await.unwrap();
    let ev = events_after(&db, 0).await;
    assert_eq!(ev.len(), 1, "{ev:#?}");
    let e = &ev[0];
    assert_eq!(
        (e.tenant, e.entity, e.action),
        (t.id, Entity::Department, ChangeAction::Created)
    );
    assert_eq!(e.entity_id, sales.open_department_id.as_str());
    assert_eq!(e.actor, "cli");
    assert_eq!(e.note.as_deref(), Some("initial load"));
    assert_eq!(e.at, 1_700_000_000_100, "an insert is dated by created_at");
    assert_eq!(e.before, None);
    assert!(
        e.after.as_deref().unwrap().contains("Sales Before"),
        "{e:?}"
    );

    // A refused department records nothing.
    let mark = event_mark(&db).await;
    new_dept.open_department_id = RandomIds.open_department_id();
    let clash = db.insert_department(&new_dept, &load).await;
    assert!(
        matches!(clash, Err(StoreError::Duplicate(UniqueKey::DepartmentId))),
        "{clash:?}"
    );
    assert_eq!(events_after(&db, mark).await, vec![]);

    // Best effort: only the rows written get a `created` event, in input order.
    let app = Change::by(Actor::App(RandomIds.app_id()));
    insert_ok(&db, &user(t.id, r.key, "Holder", Some("dup@example.com"))).await;
    let mark = event_mark(&db).await;
    let batch = vec![
        user(t.id, sales.key, "Ann Before", Some("ann@example.com")),
        user(t.id, r.key, "Dup", Some("DUP@example.com")),
        user(t.id, sales.key, "Bob", Some("bob@example.com")),
    ];
    let results = db.insert_users(t.id, &batch, false, &app).await.unwrap();
    assert!(is_duplicate(&results[1], UniqueKey::Email), "{results:?}");
    let ev = events_after(&db, mark).await;
    assert_eq!(
        ev.iter().map(|e| e.entity_id.as_str()).collect::<Vec<_>>(),
        vec![batch[0].open_id.as_str(), batch[2].open_id.as_str()],
        "{ev:#?}"
    );
    for e in &ev {
        assert_eq!((e.entity, e.action), (Entity::User, ChangeAction::Created));
        assert_eq!(e.actor, app.actor.to_string());
        assert_eq!(e.note, None);
        assert_eq!(e.before, None);
        assert_eq!(e.at, 1_700_000_000_000);
    }
    assert!(ev[0].after.as_deref().unwrap().contains("Ann Before"));
    let (Ok(ann_key), Ok(bob_key)) = (&results[0], &results[2]) else {
        unreachable!()
    };
    let ann = db
        .get_user(t.id, &UserLookup::Key(*ann_key))
        .await
        .unwrap()
        .unwrap();
    let bob = db
        .get_user(t.id, &UserLookup::Key(*bob_key))
        .await
        .unwrap()
        .unwrap();

    // A save: one event per entity, users then departments, each in the order given.
    let mark = event_mark(&db).await;
    let mut ann2 = ann.clone();
    ann2.profile.name = "Ann After".into();
    ann2.updated_at = 1_700_000_001_000;
    let mut bob2 = bob.clone();
    bob2.status.is_resigned = true;
    bob2.resigned_at = Some(1_700_000_001_000);
    bob2.updated_at = 1_700_000_001_000;
    let mut sales2 = sales.clone();
    sales2.fields.name = "Sales After".into();
    sales2.fields.leader = Some(ann.open_id.clone());
    sales2.updated_at = 1_700_000_001_000;
    let review = Change {
        actor: Actor::Cli,
        note: Some("quarterly review".into()),
        completes: None,
    };
    db.save(
        t.id,
        &[ann2.clone(), bob2.clone()],
        &[sales2.clone()],
        &[],
        &review,
    )
    .await
    .unwrap();
    assert_eq!(reread(&db, &ann).await, ann2);
    assert_eq!(reread(&db, &bob).await, bob2);
    assert_eq!(active_users(&db, t.id).await, 2, "holder and ann");
    let ev = events_after(&db, mark).await;
    let summary: Vec<(&str, Entity, ChangeAction)> = ev
        .iter()
        .map(|e| (e.entity_id.as_str(), e.entity, e.action))
        .collect();
    assert_eq!(
        summary,
        vec![
            (ann.open_id.as_str(), Entity::User, ChangeAction::Updated),
            (bob.open_id.as_str(), Entity::User, ChangeAction::Deleted),
            (
                sales.open_department_id.as_str(),
                Entity::Department,
                ChangeAction::Updated
            ),
        ]
    );
    for e in &ev {
        assert_eq!(e.actor, "cli");
        assert_eq!(e.note.as_deref(), Some("quarterly review"));
        assert_eq!(e.at, 1_700_000_001_000, "a save is dated by updated_at");
    }
    assert!(ev[0].before.as_deref().unwrap().contains("Ann Before"));
    assert!(ev[0].after.as_deref().unwrap().contains("Ann After"));
    assert!(ev[2].before.as_deref().unwrap().contains("Sales Before"));
    assert!(ev[2].after.as_deref().unwrap().contains("Sales After"));
    assert_eq!(
        db.departments_led_by(t.id, &ann.open_id).await.unwrap(),
        vec![sales2.clone()],
        "the leader column follows the save"
    );

    // Clearing the resigned flag is a resurrection.
    let mark = event_mark(&db).await;
    let mut bob3 = bob2.clone();
    bob3.status.is_resigned = false;
    bob3.resigned_at = None;
    db.update_user(&bob3, &Change::by(Actor::System))
        .await
        .unwrap();
    let ev = events_after(&db, mark).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].action, ChangeAction::Resurrected);
    assert_eq!(ev[0].actor, "system");
    assert_eq!(active_users(&db, t.id).await, 3);

    // A purge deletes users resigned before the cut-off, memberships and all, with a
    // `deleted` event by the system that has no after.
    let mut bob4 = bob3.clone();
    bob4.status.is_resigned = true;
    bob4.resigned_at = Some(1_000);
    db.update_user(&bob4, &cli()).await.unwrap();
    let mut late = insert_ok(&db, &user(t.id, sales.key, "Late", None)).await;
    late.status.is_resigned = true;
    late.resigned_at = Some(3_000);
    db.update_user(&late, &cli()).await.unwrap();
    let mark = event_mark(&db).await;
    assert_eq!(db.purge_resigned(2_000).await.unwrap(), 1);
    let ev = events_after(&db, mark).await;
    assert_eq!(ev.len(), 1, "{ev:#?}");
    let e = &ev[0];
    assert_eq!(
        (e.tenant, e.entity, e.action),
        (t.id, Entity::User, ChangeAction::Deleted)
    );
    assert_eq!(e.entity_id, bob.open_id.as_str());
    assert_eq!(e.actor, "system");
    assert_eq!(e.note.as_deref(), Some("purged after retention"));
    assert_eq!(e.after, None);
    let before = e.before.as_deref().unwrap();
    assert!(before.contains(bob.open_id.as_str()) && before.contains("\"is_resigned\":true"));
    assert_eq!(
        db.get_user(t.id, &UserLookup::Key(bob.key)).await.unwrap(),
        None
    );
    assert!(db
        .get_user(t.id, &UserLookup::Key(late.key))
        .await
        .unwrap()
        .is_some());
    assert_eq!(db.purge_resigned(2_000).await.unwrap(), 0);
    assert_eq!(events_after(&db, mark).await.len(), 1);
    // The department a purged user belonged to can still lose its last member and go.
    assert_eq!(
        db.department_member_count(t.id, sales.key).await.unwrap(),
        1
    );

    // Events are per tenant on request.
    let other = tenant(&db, "Other", None).await;
    let o = insert_ok(
        &db,
        &user(other.id, root(&db, other.id).await.key, "O", None),
    )
    .await;
    let of_other = db.list_events(Some(other.id), 0, 100).await.unwrap();
    assert_eq!(of_other.len(), 1);
    assert_eq!(of_other[0].entity_id, o.open_id.as_str());
    assert!(db
        .list_events(Some(t.id), 0, 100)
        .await
        .unwrap()
        .iter()
        .all(|e| e.tenant == t.id));
}

#[tokio::test]
async fn a_refused_save_writes_nothing_and_records_no_event() {
    let Some(db) = store("a_refused_save_writes_nothing_and_records_no_event").await else {
        return;
    };
    let t = tenant(&db, "Acme", Some(10)).await;
    let r = root(&db, t.id).await;
    let d1 = department(&db, &r, "One", 0).await;
    let d2 = department(&db, &r, "Two", 0).await;
    let amy = insert_ok(&db, &user(t.id, d1.key, "A", Some("a@example.com"))).await;
    let ben = insert_ok(&db, &user(t.id, d1.key, "B", Some("b@example.com"))).await;
    let cat = insert_ok(&db, &user(t.id, d2.key, "C", Some("c@example.com"))).await;
    let mark = event_mark(&db).await;

    let mut a_renamed = amy.clone();
    a_renamed.profile.name = "Renamed".into();
    a_renamed.profile.departments[0].department = d2.key;
    let mut b_clash = ben.clone();
    b_clash.profile.email = Some(Email::parse("email", "C@Example.com").unwrap());
    let mut d1_renamed = d1.clone();
    d1_renamed.fields.name = "Uno".into();

    // Without a count change (no tenant lock).
    let err = db
        .save(
            t.id,
            &[a_renamed.clone(), b_clash.clone()],
            &[d1_renamed.clone()],
            &[],
            &cli(),
        )
        .await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::Email))),
        "{err:?}"
    );
    // With one (the tenant lock, then the clash on a department name).
    let mut a_resigned = a_renamed.clone();
    a_resigned.status.is_resigned = true;
    a_resigned.resigned_at = Some(5);
    let mut d1_clash = d1.clone();
    d1_clash.fields.name = "Two".into();
    let err = db
        .save(t.id, &[a_resigned.clone()], &[d1_clash], &[], &cli())
        .await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::DepartmentName))),
        "{err:?}"
    );
    // A key that does not exist.
    let ghost = User {
        key: UserKey(cat.key.0 + 1_000),
        ..user(t.id, r.key, "Ghost", None)
    };
    let err = db.save(t.id, &[a_resigned, ghost], &[], &[], &cli()).await;
    assert!(matches!(err, Err(StoreError::Backend(_))), "{err:?}");
    let mut ghost_dept = d1_renamed.clone();
    ghost_dept.key = DeptKey(d2.key.0 + 1_000);
    let err = db
        .save(t.id, &[a_renamed.clone()], &[ghost_dept], &[], &cli())
        .await;
    assert!(matches!(err, Err(StoreError::Backend(_))), "{err:?}");

    for u in [&amy, &ben, &cat] {
        assert_eq!(
            &reread(&db, u).await,
            u,
            "a refused save changed {}",
            u.profile.name
        );
    }
    for d in [&d1, &d2] {
        let got = db
            .get_department(t.id, &DeptLookup::Key(d.key))
            .await
            .unwrap();
        assert_eq!(got.as_ref(), Some(d));
    }
    assert_eq!(db.department_member_count(t.id, d1.key).await.unwrap(), 2);
    assert_eq!(active_users(&db, t.id).await, 3);
    assert_eq!(
        events_after(&db, mark).await,
        vec![],
        "refused saves record nothing"
    );

    // Without the clash the same save goes through, memberships included.
    let mut b_ok = ben.clone();
    b_ok.profile.email = Some(Email::parse("email", "b2@example.com").unwrap());
    db.save(
        t.id,
        &[a_renamed.clone(), b_ok.clone()],
        &[d1_renamed.clone()],
        &[],
        &cli(),
    )
    .await
    .unwrap();
    assert_eq!(reread(&db, &amy).await, a_renamed);
    assert_eq!(reread(&db, &ben).await, b_ok);
    assert_eq!(db.department_member_count(t.id, d1.key).await.unwrap(), 1);
    assert_eq!(db.department_member_count(t.id, d2.key).await.unwrap(), 2);
    assert_eq!(events_after(&db, mark).await.len(), 3);
}

#[tokio::test]
async fn department_members_pages_by_key() {
    let Some(db) = store("department_members_pages_by_key").await else {
        return;
    };
    let t = tenant(&db, "Acme", None).await;
    let r = root(&db, t.id).await;
    let dept = department(&db, &r, "Team", 0).await;
    let child = department(&db, &r, "Elsewhere", 0).await;

    let mut members = Vec::new();
    for i in 0..5 {
        members.push(insert_ok(&db, &user(t.id, dept.key, &format!("M{i}"), None)).await);
        // Users of other departments sit between them.
        insert_ok(&db, &user(t.id, child.key, &format!("X{i}"), None)).await;
    }
    // A secondary membership counts; a resigned member does not.
    let mut second = user(t.id, child.key, "Second", None);
    second.profile.departments.push(Membership {
        department: dept.key,
        user_order: 1,
        department_order: 2,
        is_primary: false,
    });
    members.push(insert_ok(&db, &second).await);
    let mut gone = user(t.id, dept.key, "Gone", None);
    gone.status.is_resigned = true;
    gone.resigned_at = Some(1);
    insert_ok(&db, &gone).await;

    let mut paged = Vec::new();
    let mut cursor = None;
    let mut sizes = Vec::new();
    loop {
        let page = db
            .department_members(t.id, dept.key, cursor, 2)
            .await
            .unwrap();
        sizes.push(page.len());
        let Some(last) = page.last() else { break };
        cursor = Some(last.key);
        paged.extend(page);
    }
    assert_eq!(sizes, vec![2, 2, 2, 0]);
    assert_eq!(
        paged, members,
        "whole users, memberships included, by ascending key"
    );
    assert_eq!(
        db.department_members(t.id, dept.key, None, 100)
            .await
            .unwrap(),
        members
    );
    let other = tenant(&db, "Other", None).await;
    assert_eq!(
        db.department_members(other.id, dept.key, None, 100)
            .await
            .unwrap(),
        vec![],
        "scoped to the tenant"
    );
}

#[tokio::test]
async fn get_users_and_users_by_contact_answer_in_one_call() {
    let Some(db) = store("get_users_and_users_by_contact_answer_in_one_call").await else {
        return;
    };
    let t = tenant(&db, "Acme", None).await;
    let r = root(&db, t.id).await;
    let mut a = user(t.id, r.key, "A", Some("a@example.com"));
    a.profile.mobile = Some(Mobile::parse("mobile", "+8613011111111").unwrap());
    let a = insert_ok(&db, &a).await;
    // An old holder of a's e-mail, resigned.
    let mut old = user(t.id, r.key, "Old", Some("A@example.com"));
    old.status.is_resigned = true;
    old.resigned_at = Some(1);
    let old = insert_ok(&db, &old).await;
    let b = insert_ok(&db, &user(t.id, r.key, "B", None)).await;
    insert_ok(&db, &user(t.id, r.key, "Bystander", None)).await;

    let mut got = db
        .get_users(
            t.id,
            &[
                UserLookup::Email("A@EXAMPLE.com".into()),
                UserLookup::Key(a.key),
                UserLookup::Mobile("+8613011111111".into()),
                UserLookup::UserId(b.user_id.as_str().to_ascii_uppercase()),
                UserLookup::OpenId(old.open_id.to_string()),
                UserLookup::UnionId(RandomIds.union_id().to_string()),
            ],
        )
        .await
        .unwrap();
    got.sort_by_key(|u| u.key);
    assert_eq!(got, vec![a.clone(), old.clone(), b.clone()]);

    let mut by_contact = db
        .users_by_contact(t.id, &["a@example.com".into()], &["+8613099999999".into()])
        .await
        .unwrap();
    by_contact.sort_by_key(|u| u.key);
    assert_eq!(by_contact, vec![a, old], "active and resigned holders");
}

fn idem_key(tenant: TenantId, app: &App, key: &str) -> IdempotencyKey {
    IdempotencyKey {
        tenant,
        app_id: app.app_id.clone(),
        operation: "feishu.users.create".into(),
        key: key.into(),
    }
}

fn app(tenant: TenantId) -> App {
    App {
        app_id: RandomIds.app_id(),
        tenant,
        name: "App".into(),
        kind: AppKind::Feishu,
        secret_hash: "x".into(),
        scopes: Scopes::new([]),
        contact_scope: ContactScope::All,
        created_at: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_keys_are_claimed_once_completed_and_released() {
    let Some(db) = store("idempotency_keys_are_claimed_once_completed_and_released").await else {
        return;
    };
    let db = Arc::new(db);
    let t = tenant(&db, "Acme", None).await;
    let a = app(t.id);
    db.insert_app(&a).await.unwrap();
    let k = idem_key(t.id, &a, "token-1");

    assert_eq!(
        db.claim_idempotency_key(&k, "fp-1", 100).await.unwrap(),
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        db.claim_idempotency_key(&k, "fp-2", 101).await.unwrap(),
        IdempotencyClaim::Existing {
            fingerprint: "fp-1".into(),
            result: None
        },
        "a running claim is reported with its fingerprint"
    );
    db.complete_idempotency_key(&k, "ou_1").await.unwrap();
    assert_eq!(
        db.claim_idempotency_key(&k, "fp-1", 102).await.unwrap(),
        IdempotencyClaim::Existing {
            fingerprint: "fp-1".into(),
            result: Some("ou_1".into())
        }
    );
    // Scoped by operation.
    let other_op = IdempotencyKey {
        operation: "feishu.departments.create".into(),
        ..k.clone()
    };
    assert_eq!(
        db.claim_idempotency_key(&other_op, "fp-9", 103)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );
    // A released key may be claimed again, by another request.
    let k2 = idem_key(t.id, &a, "token-2");
    assert_eq!(
        db.claim_idempotency_key(&k2, "fp-a", 200).await.unwrap(),
        IdempotencyClaim::Claimed
    );
    db.release_idempotency_key(&k2).await.unwrap();
    assert_eq!(
        db.claim_idempotency_key(&k2, "fp-b", 201).await.unwrap(),
        IdempotencyClaim::Claimed
    );

    // Racing claims of one new key: exactly one wins, the others see its fingerprint.
    for round in 0..5 {
        let k = idem_key(t.id, &a, &format!("race-{round}"));
        let barrier = Arc::new(Barrier::new(6));
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let (db, barrier, k) = (Arc::clone(&db), Arc::clone(&barrier), k.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let fp = format!("fp-{i}");
                    (
                        fp.clone(),
                        db.claim_idempotency_key(&k, &fp, 300).await.unwrap(),
                    )
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        let winners: Vec<&String> = outcomes
            .iter()
            .filter(|(_, c)| *c == IdempotencyClaim::Claimed)
            .map(|(fp, _)| fp)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        for (_, c) in &outcomes {
            if let IdempotencyClaim::Existing {
                fingerprint,
                result,
            } = c
            {
                assert_eq!(fingerprint, winners[0]);
                assert_eq!(result, &None);
            }
        }
    }

    // Purging forgets the keys claimed before the cut-off: token-1 and its twin of another
    // operation, not token-2 (claimed afresh at 201) nor the raced ones.
    assert_eq!(db.purge_idempotency_keys(201).await.unwrap(), 2);
    assert_eq!(
        db.claim_idempotency_key(&k, "fp-new", 400).await.unwrap(),
        IdempotencyClaim::Claimed
    );
    assert!(matches!(
        db.claim_idempotency_key(&k2, "fp-new", 400).await.unwrap(),
        IdempotencyClaim::Existing { .. }
    ));
}

#[tokio::test]
async fn jsapi_tickets_are_upserted_per_app() {
    let Some(db) = store("jsapi_tickets_are_upserted_per_app").await else {
        return;
    };
    let t = tenant(&db, "Acme", None).await;
    let (a, b) = (app(t.id), app(t.id));
    db.insert_app(&a).await.unwrap();
    db.insert_app(&b).await.unwrap();
    assert_eq!(db.jsapi_ticket(&a.app_id).await.unwrap(), None);
    db.put_jsapi_ticket(&a.app_id, "t-1", 1_000, i64::MAX)
        .await
        .unwrap();
    assert_eq!(
        db.jsapi_ticket(&a.app_id).await.unwrap(),
        Some(("t-1".to_owned(), 1_000))
    );
    db.put_jsapi_ticket(&a.app_id, "t-2", 2_000, i64::MAX)
        .await
        .unwrap();
    db.put_jsapi_ticket(&b.app_id, "t-b", 3_000, i64::MAX)
        .await
        .unwrap();
    assert_eq!(
        db.jsapi_ticket(&a.app_id).await.unwrap(),
        Some(("t-2".to_owned(), 2_000)),
        "a put replaces the ticket and its expiry"
    );
    assert_eq!(
        db.jsapi_ticket(&b.app_id).await.unwrap(),
        Some(("t-b".to_owned(), 3_000))
    );
    // A ticket goes with its app.
    assert!(db
        .put_jsapi_ticket(&RandomIds.app_id(), "t", 1, i64::MAX)
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_saves_and_inserts_neither_deadlock_nor_miscount() {
    let Some(db) = store("racing_saves_and_inserts_neither_deadlock_nor_miscount").await else {
        return;
    };
    let db = Arc::new(db);
    let t = tenant(&db, "Acme", Some(1_000)).await;
    let r = root(&db, t.id).await;
    let amy = insert_ok(&db, &user(t.id, r.key, "A", None)).await;
    let ben = insert_ok(&db, &user(t.id, r.key, "B", None)).await;
    let ga = db
        .insert_group(&group(t.id, "ga", "A", None))
        .await
        .unwrap();
    let gb = db
        .insert_group(&group(t.id, "gb", "B", None))
        .await
        .unwrap();
    let toggled = |u: &User, resigned: bool| {
        let mut u = u.clone();
        u.status.is_resigned = resigned;
        u.resigned_at = resigned.then_some(7);
        u
    };

    // Two saves list the same users and groups in opposite orders, one flipping a resigned
    // flag (so it takes the tenant lock) and one not, while a batch insert holds the tenant
    // lock.
    for round in 0..10 {
        let resigned = round % 2 == 0;
        let barrier = Arc::new(Barrier::new(3));
        let first = {
            let (db, barrier) = (Arc::clone(&db), Arc::clone(&barrier));
            let users = vec![toggled(&amy, resigned), ben.clone()];
            let groups = vec![ga.clone(), gb.clone()];
            tokio::spawn(async move {
                barrier.wait().await;
                db.save(t.id, &users, &[], &groups, &cli()).await
            })
        };
        let second = {
            let (db, barrier) = (Arc::clone(&db), Arc::clone(&barrier));
            let users = vec![ben.clone(), amy.clone()];
            let groups = vec![gb.clone(), ga.clone()];
            tokio::spawn(async move {
                barrier.wait().await;
                db.save(t.id, &users, &[], &groups, &cli()).await
            })
        };
        let third = {
            let (db, barrier) = (Arc::clone(&db), Arc::clone(&barrier));
            let rows = vec![
                user(t.id, r.key, &format!("N{round}a"), None),
                user(t.id, r.key, &format!("N{round}b"), None),
            ];
            tokio::spawn(async move {
                barrier.wait().await;
                db.insert_users(t.id, &rows, true, &cli()).await
            })
        };
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        let inserted = third.await.unwrap().unwrap();
        assert!(inserted.iter().all(Result::is_ok), "{inserted:?}");

        let a_now = reread(&db, &amy).await;
        let expected = 2 * (round + 1) + 1 + u64::from(!a_now.status.is_resigned);
        assert_eq!(active_users(&db, t.id).await, expected, "round {round}");
    }
}

#[tokio::test]
async fn groups_keep_their_owner_and_a_save_rewrites_them_with_one_event_each() {
    let Some(db) =
        store("groups_keep_their_owner_and_a_save_rewrites_them_with_one_event_each").await
    else {
        return;
    };
    let t = tenant(&db, "Acme", None).await;
    let other = tenant(&db, "Other", None).await;
    let ann = RandomIds.open_id();
    let bob = RandomIds.open_id();
    let g1 = db
        .insert_group(&group(t.id, "g1", "Ops", Some(&ann)))
        .await
        .unwrap();
    let g2 = db
        .insert_group(&group(t.id, "g2", "Dev", None))
        .await
        .unwrap();
    let foreign = db
        .insert_group(&group(other.id, "g1", "Ops", Some(&ann)))
        .await
        .unwrap();
    assert_eq!(db.get_group(t.id, "g1").await.unwrap(), Some(g1.clone()));
    assert_eq!(
        db.list_groups(t.id).await.unwrap(),
        vec![g1.clone(), g2.clone()]
    );
    assert_eq!(
        db.groups_owned_by(t.id, &ann).await.unwrap(),
        vec![g1.clone()]
    );

    // Listed twice, a group is written once, in its last state, with one event.
    let mark = event_mark(&db).await;
    let mut first = g1.clone();
    first.description = Some("first".into());
    let mut last = g1.clone();
    last.owner = Some(bob.clone());
    last.description = Some("last".into());
    db.save(t.id, &[], &[], &[first, g2.clone(), last.clone()], &cli())
        .await
        .unwrap();
    assert_eq!(db.get_group(t.id, "g1").await.unwrap(), Some(last.clone()));
    assert_eq!(db.groups_owned_by(t.id, &ann).await.unwrap(), vec![]);
    assert_eq!(
        db.groups_owned_by(t.id, &bob).await.unwrap(),
        vec![last.clone()]
    );
    let ev = events_after(&db, mark).await;
    assert_eq!(
        ev.iter()
            .map(|e| (e.entity, e.action, e.entity_id.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (Entity::Group, ChangeAction::Updated, "g1"),
            (Entity::Group, ChangeAction::Updated, "g2"),
        ]
    );
    assert!(ev[0].after.as_deref().unwrap().contains("last"));
    assert!(ev[0].after.as_deref().unwrap().contains(bob.as_str()));
    assert!(ev[0].before.as_deref().unwrap().contains(ann.as_str()));

    // A name clash (with a group the save leaves alone until after the clash) and a group of
    // another tenant are refused whole.
    let mark = event_mark(&db).await;
    let mut renamed = last.clone();
    renamed.name = "Renamed".into();
    let mut clash = g2.clone();
    clash.name = "OPS".into();
    assert!(matches!(
        db.save(t.id, &[], &[], &[clash, renamed.clone()], &cli())
            .await,
        Err(StoreError::Duplicate(UniqueKey::GroupName))
    ));
    let err = db
        .save(t.id, &[], &[], &[renamed, foreign.clone()], &cli())
        .await;
    assert!(matches!(err, Err(StoreError::Backend(_))), "{err:?}");
    assert_eq!(db.get_group(t.id, "g1").await.unwrap(), Some(last));
    assert_eq!(db.get_group(other.id, "g1").await.unwrap(), Some(foreign));
    assert!(events_after(&db, mark).await.is_empty());
}

/// Migration 0013 brings data written before three fixes in line with what the fixed code
/// writes: a delivered invitation keeps no body, change events hold no password hash, and a
/// resigned user is on no active user's dotted-line leaders. The rows are written here the
/// way older versions left them (raw SQL under the store), then the migration's SQL runs
/// again (each statement touches only rows still written the old way) and the store reads
/// the result.
#[tokio::test]
#[allow(clippy::many_single_char_names)] // As the SQLite twin: `s` store, `t` tenant, `r` root, users by letter.
async fn migration_0013_scrubs_data_written_before_the_fixes() {
    use sqlx::Connection as _;
    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
    let Some((s, options)) = roster_store_postgres::test_store_and_options("migration_0013")
        .await
        .unwrap()
    else {
        return;
    };
    let t = tenant(&s, "Acme", None).await;
    let r = root(&s, t.id).await;
    let x = insert_ok(&s, &user(t.id, r.key, "x", None)).await;
    let gone = insert_ok(&s, &user(t.id, r.key, "gone", None)).await;
    let y = insert_ok(&s, &user(t.id, r.key, "y", None)).await;
    let mut a = user(t.id, r.key, "a", None);
    a.profile.dotted_line_leaders =
        vec![x.open_id.clone(), gone.open_id.clone(), y.open_id.clone()];
    a.profile.password_hash = Some(HASH.into());
    let a = insert_ok(&s, &a).await;
    let mut only = user(t.id, r.key, "only", None);
    only.profile.dotted_line_leaders = vec![gone.open_id.clone()];
    let only = insert_ok(&s, &only).await;

    let mut db = sqlx::PgConnection::connect_with(&options).await.unwrap();
    // An older delete resigned the user and left it on the dotted-line lists, without
    // remembering the departments it left but in the change log (an earlier deletion, since
    // undone, left other departments).
    sqlx::query("UPDATE users SET is_resigned = true, resigned_at = 2000 WHERE open_id = $1")
        .bind(gone.open_id.as_str())
        .execute(&mut db)
        .await
        .unwrap();
    for departments in ["[999]".to_owned(), format!("[{}]", r.key.0)] {
        sqlx::query(
            "INSERT INTO change_events (tenant_id, entity, entity_id, action, actor, at, before) \
             VALUES ($1, 'user', $2, 'deleted', 'cli', 2000, $3)",
        )
        .bind(t.id.0)
        .bind(gone.open_id.as_str())
        .bind(format!(
            "{{\"open_id\":\"{}\",\"departments\":{departments}}}",
            gone.open_id
        ))
        .execute(&mut db)
        .await
        .unwrap();
    }
    // An older version recorded the hash itself in the creation's event.
    let n = sqlx::query(
        "UPDATE change_events SET after = replace(after, '(redacted)', $1) WHERE entity_id = $2",
    )
    .bind(HASH)
    .bind(a.open_id.as_str())
    .execute(&mut db)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(n, 1, "the creation event of the user with a password");
    // And kept the body of a delivered invitation.
    sqlx::query(
        "INSERT INTO outbox (tenant_id, channel, recipient, subject, body, created_at, \
         next_attempt_at, sent_at) VALUES ($1, 'email', 'a@example.com', 'Welcome', \
         'Activate: https://roster.example.com/activate/secret-token', 1000, 1000, 1500)",
    )
    .bind(t.id.0)
    .execute(&mut db)
    .await
    .unwrap();
    sqlx::raw_sql(include_str!(
        "../migrations/0013_scrub_data_written_before_fixes.sql"
    ))
    .execute(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();

    assert_eq!(
        reread(&s, &a).await.profile.dotted_line_leaders,
        vec![x.open_id.clone(), y.open_id.clone()],
        "the resigned user left the list, which kept its order"
    );
    assert!(reread(&s, &only)
        .await
        .profile
        .dotted_line_leaders
        .is_empty());
    assert_eq!(
        reread(&s, &gone).await.profile.former_departments,
        vec![r.key],
        "the departments its latest deletion left"
    );
    assert!(reread(&s, &x).await.profile.former_departments.is_empty());
    assert_eq!(
        reread(&s, &a).await.profile.password_hash.as_deref(),
        Some(HASH),
        "the user's own password hash is kept"
    );
    let events = s.list_events(Some(t.id), 0, 1000).await.unwrap();
    assert!(events.iter().all(|e| {
        !e.after.as_deref().unwrap_or("").contains("argon2id")
            && !e.before.as_deref().unwrap_or("").contains("argon2id")
    }));
    assert!(events.iter().any(|e| e.entity_id == a.open_id.as_str()
        && e.after
            .as_deref()
            .is_some_and(|after| after.contains("(redacted)"))));
    let outbox = s.list_outbox(Some(t.id), false, 10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].body, roster_store_common::DELIVERED_BODY);
}
