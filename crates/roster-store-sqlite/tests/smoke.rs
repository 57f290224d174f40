//! Focused checks of the SQLite store's own behaviour: the root department, user round
//! trips, the two batch modes, the licence cap, lookup preferences, and the contact v3
//! additions (change events, `save`, search, department pages, idempotency keys, JSAPI
//! tickets) and group owners. The shared contract is covered by the conformance suite in
//! `conformance.rs`.

// Setup helpers panic on failure by design; clippy's test exemption for `unwrap` covers only
// `#[test]` functions, not the helpers beside them.
#![allow(clippy::unwrap_used)]
// Tests read like the conformance suite: `s` the store, `t` the tenant, `r` its root.
#![allow(clippy::many_single_char_names)]

use roster_core::ids::{DepartmentId, UserId};
use roster_core::values::{Email, Mobile, Username};
use roster_core::{
    Actor, App, AppKind, Change, ChangeAction, ChangeEvent, ContactScope, Department,
    DepartmentFields, DeptKey, DeptLookup, Entity, Group, IdGen, IdempotencyClaim, IdempotencyKey,
    Membership, NewTenant, OpenId, RandomIds, Scope, Scopes, Store, StoreError, Tenant, TenantId,
    TokenRecord, UniqueKey, UniqueProbe, User, UserKey, UserLookup, UserProfile, UserStatus,
};
use roster_store_sqlite::SqliteStore;
use tempfile::TempDir;

/// A fresh store in its own directory; the directory lives as long as the returned guard.
fn store() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("roster.db")).unwrap();
    (store, dir)
}

async fn tenant(store: &SqliteStore, name: &str, cap: Option<u32>) -> Tenant {
    store
        .create_tenant(
            &NewTenant::parse(name, cap).unwrap(),
            &RandomIds.hex(8),
            1_000,
        )
        .await
        .unwrap()
}

/// A change by the command line, with no note.
fn cli() -> Change {
    Change::by(Actor::Cli)
}

async fn root(store: &SqliteStore, t: TenantId) -> Department {
    store
        .get_department(t, &DeptLookup::OpenId("0".into()))
        .await
        .unwrap()
        .unwrap()
}

fn user(t: TenantId, user_id: &str, email: Option<&str>) -> User {
    User {
        key: UserKey(0),
        tenant: t,
        open_id: RandomIds.open_id(),
        union_id: RandomIds.union_id(),
        user_id: UserId::parse(user_id).unwrap(),
        profile: UserProfile {
            name: format!("User {user_id}"),
            email: email.map(|e| Email::parse("email", e).unwrap()),
            ..UserProfile::default()
        },
        status: UserStatus {
            is_activated: true,
            ..UserStatus::default()
        },
        created_at: 1_000,
        updated_at: 1_000,
        resigned_at: None,
        logout_at: None,
    }
}

async fn dept(
    store: &SqliteStore,
    t: TenantId,
    parent: DeptKey,
    name: &str,
    order: i64,
) -> Department {
    store
        .insert_department(
            &Department {
                key: DeptKey(0),
                tenant: t,
                open_department_id: RandomIds.open_department_id(),
                department_id: DepartmentId::parse(&format!("D-{name}")).unwrap(),
                parent: Some(parent),
                fields: DepartmentFields {
                    name: name.into(),
                    order,
                    ..DepartmentFields::default()
                },
                is_deleted: false,
                created_at: 1_000,
                updated_at: 1_000,
            },
            &cli(),
        )
        .await
        .unwrap()
}

async fn active_users(store: &SqliteStore, t: TenantId) -> u64 {
    store.get_tenant(t).await.unwrap().unwrap().active_users
}

#[tokio::test]
async fn a_tenant_comes_with_its_root_department() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let r = root(&s, t.id).await;
    assert!(r.is_root());
    assert_eq!(r.department_id.as_str(), "0");
    assert_eq!(r.open_department_id.as_str(), "0");
    assert_eq!(r.fields.name, "Acme");
    let by_custom = s
        .get_department(t.id, &DeptLookup::CustomId("0".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_custom, r);
    assert_eq!(s.count_departments(t.id).await.unwrap(), 1);
    assert_eq!(s.get_tenant(t.id).await.unwrap(), Some(t.clone()));

    let again = s
        .create_tenant(&NewTenant::parse("Acme", None).unwrap(), "other", 2_000)
        .await;
    assert!(matches!(
        again,
        Err(StoreError::Duplicate(UniqueKey::TenantName))
    ));
    assert_eq!(s.list_tenants().await.unwrap(), vec![t]);
}

#[tokio::test]
async fn a_user_round_trips_with_departments_in_order() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let r = root(&s, t.id).await;
    let a = dept(&s, t.id, r.key, "a", 0).await;
    let b = dept(&s, t.id, r.key, "b", 0).await;

    let mut u = user(t.id, "Zhang", Some("Zhang@Example.com"));
    u.profile.mobile = Some(Mobile::parse("mobile", "13011111111").unwrap());
    u.profile.username = Some(Username::parse("zhang.san").unwrap());
    u.profile.employee_no = Some("E1".into());
    // The primary department is listed first but has the larger key, so reading back in
    // key order would show the mistake.
    u.profile.departments = vec![
        Membership {
            department: b.key,
            user_order: 3,
            department_order: 1,
            is_primary: true,
        },
        Membership {
            department: a.key,
            user_order: 4,
            department_order: 2,
            is_primary: false,
        },
    ];
    let written = s
        .insert_users(t.id, std::slice::from_ref(&u), true, &cli())
        .await
        .unwrap();
    let key = *written[0].as_ref().unwrap();
    u.key = key;

    for lookup in [
        UserLookup::Key(key),
        UserLookup::OpenId(u.open_id.to_string()),
        UserLookup::UnionId(u.union_id.to_string()),
        UserLookup::UserId("ZHANG".into()),
        UserLookup::Email("zhang@EXAMPLE.com".into()),
        UserLookup::Mobile("+8613011111111".into()),
    ] {
        let got = s.get_user(t.id, &lookup).await.unwrap();
        assert_eq!(got.as_ref(), Some(&u), "lookup {lookup:?}");
    }
    assert_eq!(
        s.get_user(t.id, &UserLookup::Key(UserKey(key.0 + 1)))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.get_user(TenantId(t.id.0 + 1), &UserLookup::Key(key))
            .await
            .unwrap(),
        None
    );
    assert_eq!(active_users(&s, t.id).await, 1);
    assert_eq!(s.department_member_count(t.id, a.key).await.unwrap(), 1);

    // An update rewrites memberships and derived columns.
    u.profile.departments.truncate(1);
    u.profile.email = Some(Email::parse("email", "new@example.com").unwrap());
    s.update_user(&u, &cli()).await.unwrap();
    assert_eq!(
        s.get_user(t.id, &UserLookup::Key(key)).await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(
        s.get_user(t.id, &UserLookup::Email("zhang@example.com".into()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.department_member_count(t.id, a.key).await.unwrap(), 0);

    let probe = UniqueProbe {
        user_ids: vec!["zhang".into(), "li".into()],
        emails: vec!["new@example.com".into(), "zhang@example.com".into()],
        mobiles: vec!["+8613011111111".into()],
        usernames: vec!["zhang.san".into()],
        employee_nos: vec!["E2".into()],
    };
    let taken = s.taken_user_values(t.id, &probe).await.unwrap();
    assert_eq!(
        taken.user_ids.into_iter().collect::<Vec<_>>(),
        vec!["zhang".to_owned()]
    );
    assert_eq!(
        taken.emails.into_iter().collect::<Vec<_>>(),
        vec!["new@example.com".to_owned()]
    );
    assert_eq!(taken.mobiles.len(), 1);
    assert_eq!(taken.usernames.len(), 1);
    assert!(taken.employee_nos.is_empty());
}

#[tokio::test]
async fn a_duplicate_fails_alone_in_best_effort_and_voids_an_atomic_batch() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let first = s
        .insert_users(
            t.id,
            &[user(t.id, "taken", Some("taken@example.com"))],
            true,
            &cli(),
        )
        .await
        .unwrap();
    assert!(first[0].is_ok());

    let batch = || {
        vec![
            user(t.id, "one", None),
            user(t.id, "two", Some("TAKEN@example.com")),
            user(t.id, "three", None),
        ]
    };

    let atomic = s.insert_users(t.id, &batch(), true, &cli()).await.unwrap();
    assert!(atomic[0].is_ok() && atomic[2].is_ok());
    assert!(matches!(
        atomic[1],
        Err(StoreError::Duplicate(UniqueKey::Email))
    ));
    for id in ["one", "three"] {
        assert_eq!(
            s.get_user(t.id, &UserLookup::UserId(id.into()))
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(active_users(&s, t.id).await, 1);

    let best = s.insert_users(t.id, &batch(), false, &cli()).await.unwrap();
    assert!(best[0].is_ok() && best[2].is_ok());
    assert!(matches!(
        best[1],
        Err(StoreError::Duplicate(UniqueKey::Email))
    ));
    for id in ["one", "three"] {
        assert!(s
            .get_user(t.id, &UserLookup::UserId(id.into()))
            .await
            .unwrap()
            .is_some());
    }
    assert_eq!(
        s.get_user(t.id, &UserLookup::UserId("two".into()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(active_users(&s, t.id).await, 3);

    // A clash inside one batch is caught by the database too.
    let clash = s
        .insert_users(
            t.id,
            &[
                user(t.id, "x1", Some("x@example.com")),
                user(t.id, "X1", None),
            ],
            false,
            &cli(),
        )
        .await
        .unwrap();
    assert!(clash[0].is_ok());
    assert!(matches!(
        clash[1],
        Err(StoreError::Duplicate(UniqueKey::UserId))
    ));
}

#[tokio::test]
async fn the_licence_cap_holds_for_inserts_and_resurrections() {
    let (s, _dir) = store();
    let t = tenant(&s, "Small", Some(2)).await;

    let atomic = s
        .insert_users(
            t.id,
            &[
                user(t.id, "a", None),
                user(t.id, "b", None),
                user(t.id, "c", None),
            ],
            true,
            &cli(),
        )
        .await
        .unwrap();
    assert!(matches!(atomic[2], Err(StoreError::LicenceExceeded)));
    assert_eq!(active_users(&s, t.id).await, 0);

    let best = s
        .insert_users(
            t.id,
            &[
                user(t.id, "a", None),
                user(t.id, "b", None),
                user(t.id, "c", None),
            ],
            false,
            &cli(),
        )
        .await
        .unwrap();
    assert!(best[0].is_ok() && best[1].is_ok());
    assert!(matches!(best[2], Err(StoreError::LicenceExceeded)));
    assert_eq!(active_users(&s, t.id).await, 2);

    // Resigning frees a seat, which a new user takes; bringing the resigned one back is then
    // past the cap.
    let mut a = s
        .get_user(t.id, &UserLookup::UserId("a".into()))
        .await
        .unwrap()
        .unwrap();
    a.status.is_resigned = true;
    a.resigned_at = Some(5_000);
    s.update_user(&a, &cli()).await.unwrap();
    assert_eq!(active_users(&s, t.id).await, 1);
    let c = s
        .insert_users(t.id, &[user(t.id, "c", None)], false, &cli())
        .await
        .unwrap();
    assert!(c[0].is_ok());
    assert_eq!(active_users(&s, t.id).await, 2);

    a.status.is_resigned = false;
    a.resigned_at = None;
    assert!(matches!(
        s.update_user(&a, &cli()).await,
        Err(StoreError::LicenceExceeded)
    ));
    let still = s
        .get_user(t.id, &UserLookup::Key(a.key))
        .await
        .unwrap()
        .unwrap();
    assert!(still.status.is_resigned);
    assert_eq!(active_users(&s, t.id).await, 2);
}

#[tokio::test]
async fn lookups_prefer_the_active_user_then_the_latest_resignation() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    for (resigned_at, name) in [(Some(10), "old"), (Some(20), "newer"), (None, "active")] {
        let mut u = user(t.id, "alice", Some("alice@example.com"));
        u.profile.name = name.into();
        u.status.is_resigned = resigned_at.is_some();
        u.resigned_at = resigned_at;
        let r = s.insert_users(t.id, &[u], false, &cli()).await.unwrap();
        assert!(r[0].is_ok(), "{name}: {r:?}");
    }
    assert_eq!(active_users(&s, t.id).await, 1);
    let by_id = |id: &'static str| {
        let s = s.clone();
        async move {
            s.get_user(t.id, &UserLookup::UserId(id.into()))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let mut active = by_id("ALICE").await;
    assert_eq!(active.profile.name, "active");
    let by_mail = s
        .get_user(t.id, &UserLookup::Email("Alice@Example.com".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_mail.key, active.key);

    active.status.is_resigned = true;
    active.resigned_at = Some(5);
    s.update_user(&active, &cli()).await.unwrap();
    assert_eq!(by_id("alice").await.profile.name, "newer");
    assert_eq!(active_users(&s, t.id).await, 0);
}

#[tokio::test]
async fn children_sort_by_order_then_key_and_skip_deleted_ones() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let r = root(&s, t.id).await;
    let low = dept(&s, t.id, r.key, "low", 1).await;
    let high = dept(&s, t.id, r.key, "high", 9).await;
    let low2 = dept(&s, t.id, r.key, "low2", 1).await;
    let mut gone = dept(&s, t.id, r.key, "gone", 5).await;

    let same_name = s
        .insert_department(
            &Department {
                key: DeptKey(0),
                open_department_id: RandomIds.open_department_id(),
                department_id: DepartmentId::parse("other").unwrap(),
                ..high.clone()
            },
            &cli(),
        )
        .await;
    assert!(matches!(
        same_name,
        Err(StoreError::Duplicate(UniqueKey::DepartmentName))
    ));

    gone.is_deleted = true;
    s.update_department(&gone, &cli()).await.unwrap();
    let keys: Vec<DeptKey> = s
        .child_departments(t.id, r.key)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(
        keys,
        vec![low.key, low2.key, high.key],
        "smaller orders first"
    );
    assert_eq!(s.count_departments(t.id).await.unwrap(), 4);

    // A deleted department gives up its custom id and name, yet stays readable.
    let reborn = dept(&s, t.id, r.key, "gone", 0).await;
    let by_custom = s
        .get_department(t.id, &DeptLookup::CustomId("d-GONE".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_custom.key, reborn.key);
    let old = s
        .get_department(t.id, &DeptLookup::Key(gone.key))
        .await
        .unwrap()
        .unwrap();
    assert!(old.is_deleted);
}

#[tokio::test]
async fn apps_tokens_and_groups() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let app = App {
        app_id: RandomIds.app_id(),
        tenant: t.id,
        name: "app".into(),
        kind: AppKind::Feishu,
        secret_hash: "h1".into(),
        scopes: Scopes::new([Scope::ContactRead]),
        contact_scope: ContactScope::Departments(vec![DeptKey(1)]),
        created_at: 1,
    };
    s.insert_app(&app).await.unwrap();
    assert!(matches!(
        s.insert_app(&app).await,
        Err(StoreError::Duplicate(UniqueKey::AppId))
    ));
    assert_eq!(s.get_app(&app.app_id).await.unwrap(), Some(app.clone()));
    assert_eq!(s.list_apps(Some(t.id)).await.unwrap(), vec![app.clone()]);
    assert_eq!(s.list_apps(None).await.unwrap().len(), 1);
    assert!(s.list_apps(Some(TenantId(999))).await.unwrap().is_empty());

    let token = |hash: &str, expires_at| TokenRecord {
        token_hash: hash.into(),
        app_id: app.app_id.clone(),
        tenant: t.id,
        issued_at: 0,
        expires_at,
    };
    s.insert_token(&token("old", 10)).await.unwrap();
    s.insert_token(&token("new", 100)).await.unwrap();
    assert_eq!(s.purge_expired_tokens(50).await.unwrap(), 1);
    assert_eq!(s.find_token("new").await.unwrap(), Some(token("new", 100)));
    assert!(s.set_app_secret(&app.app_id, "h2").await.unwrap());
    assert_eq!(s.find_token("new").await.unwrap(), None);
    assert_eq!(
        s.get_app(&app.app_id).await.unwrap().unwrap().secret_hash,
        "h2"
    );
    assert!(!s.set_app_secret(&RandomIds.app_id(), "h3").await.unwrap());

    let group = |id: &str, name: &str| Group {
        key: 0,
        tenant: t.id,
        group_id: id.into(),
        name: name.into(),
        description: None,
        owner: None,
        created_at: 1,
    };
    let g = s.insert_group(&group("g1", "Ops")).await.unwrap();
    assert!(matches!(
        s.insert_group(&group("g2", "OPS")).await,
        Err(StoreError::Duplicate(UniqueKey::GroupName))
    ));
    assert_eq!(s.get_group(t.id, "g1").await.unwrap(), Some(g.clone()));
    assert_eq!(s.list_groups(t.id).await.unwrap(), vec![g]);
}

#[tokio::test]
async fn reopening_keeps_the_data_and_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roster.db");
    let t = {
        let s = SqliteStore::open(&path).unwrap();
        tenant(&s, "Acme", None).await
    };
    let s = SqliteStore::open(&path).unwrap();
    s.ping().await.unwrap();
    assert_eq!(s.backend(), "sqlite");
    assert_eq!(s.get_tenant(t.id).await.unwrap(), Some(t));
}

/// Every event of the store after `mark`, oldest first, read in small pages so that paging
/// by id is exercised too.
async fn events_after(s: &SqliteStore, tenant: Option<TenantId>, mark: i64) -> Vec<ChangeEvent> {
    let mut out: Vec<ChangeEvent> = Vec::new();
    let mut cursor = mark;
    loop {
        let page = s.list_events(tenant, cursor, 2).await.unwrap();
        let Some(last) = page.last() else {
            return out;
        };
        cursor = last.id;
        out.extend(page);
    }
}

async fn mark(s: &SqliteStore) -> i64 {
    events_after(s, None, 0).await.last().map_or(0, |e| e.id)
}

fn member(dept: DeptKey) -> Membership {
    Membership {
        department: dept,
        user_order: 0,
        department_order: 0,
        is_primary: true,
    }
}

/// Inserts one user, which must be written, and returns it as stored.
async fn insert_one(s: &SqliteStore, mut u: User) -> User {
    let r = s
        .insert_users(u.tenant, std::slice::from_ref(&u), true, &cli())
        .await
        .unwrap();
    u.key = *r[0].as_ref().unwrap();
    u
}

#[tokio::test]
async fn inserts_saves_and_purges_record_their_events() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let other = tenant(&s, "Other", None).await;
    let r = root(&s, t.id).await;
    let start = mark(&s).await;

    // A department with a note.
    let noted = Change {
        actor: Actor::Cli,
        note: Some("initial load".into()),
        completes: None,
    };
    let d = s
        .insert_department(
            &Department {
                key: DeptKey(0),
                tenant: t.id,
                open_department_id: RandomIds.open_department_id(),
                department_id: DepartmentId::parse("D-sales").unwrap(),
                parent: Some(r.key),
                fields: DepartmentFields {
                    name: "Sales".into(),
                    ..DepartmentFields::default()
                },
                is_deleted: false,
                created_at: 1_000,
                updated_at: 1_500,
            },
            &noted,
        )
        .await
        .unwrap();
    let ev = events_after(&s, None, start).await;
    assert_eq!(ev.len(), 1, "{ev:#?}");
    let e = &ev[0];
    assert_eq!(
        (e.tenant, e.entity, e.action),
        (t.id, Entity::Department, ChangeAction::Created)
    );
    assert_eq!(e.entity_id, d.open_department_id.as_str());
    assert_eq!(e.actor, "cli");
    assert_eq!(e.note.as_deref(), Some("initial load"));
    assert_eq!(e.at, 1_500, "an event is dated by the row's updated_at");
    assert_eq!(e.before, None);
    assert!(e.after.as_deref().unwrap().contains("Sales"));

    // Best effort: the duplicate gets no event, the two written users one each.
    let app = RandomIds.app_id();
    let by_app = Change::by(Actor::App(app.clone()));
    let m = mark(&s).await;
    let mut a = user(t.id, "ann", Some("ann@example.com"));
    a.profile.name = "Ann Before".into();
    a.profile.departments = vec![member(d.key)];
    let b = user(t.id, "bob", Some("bob@example.com"));
    let dup = user(t.id, "ANN", None);
    let written = s
        .insert_users(t.id, &[a.clone(), dup, b.clone()], false, &by_app)
        .await
        .unwrap();
    assert!(matches!(
        written[1],
        Err(StoreError::Duplicate(UniqueKey::UserId))
    ));
    a.key = *written[0].as_ref().unwrap();
    let mut b = User {
        key: *written[2].as_ref().unwrap(),
        ..b
    };
    let ev = events_after(&s, Some(t.id), m).await;
    let ids: Vec<&str> = ev.iter().map(|e| e.entity_id.as_str()).collect();
    assert_eq!(ids, vec![a.open_id.as_str(), b.open_id.as_str()]);
    for e in &ev {
        assert_eq!((e.entity, e.action), (Entity::User, ChangeAction::Created));
        assert_eq!(e.actor, format!("app:{app}"));
        assert_eq!(e.note, None);
        assert_eq!(e.before, None);
        assert!(e.after.as_deref().unwrap().contains(&e.entity_id));
    }
    assert!(ev[0].after.as_deref().unwrap().contains("Ann Before"));

    // An atomic batch that is refused records nothing.
    let m = mark(&s).await;
    let refused = s
        .insert_users(
            t.id,
            &[user(t.id, "new", None), user(t.id, "bob", None)],
            true,
            &cli(),
        )
        .await
        .unwrap();
    assert!(refused[1].is_err());
    assert!(events_after(&s, None, m).await.is_empty());

    // One save: a rename, a resignation, a department deletion.
    let m = mark(&s).await;
    let mut a2 = a.clone();
    a2.profile.name = "Ann After".into();
    // Ann leaves the department, which a deletion needs (the store refuses to delete a
    // department that keeps an active member).
    a2.profile.departments.clear();
    a2.updated_at = 2_000;
    let mut b2 = b.clone();
    b2.status.is_resigned = true;
    b2.resigned_at = Some(2_000);
    b2.updated_at = 2_000;
    let mut d2 = d.clone();
    d2.is_deleted = true;
    d2.updated_at = 2_000;
    let handover = Change {
        actor: Actor::App(app.clone()),
        note: Some("handover: docs -> x".into()),
        completes: None,
    };
    s.save(
        t.id,
        &[a2.clone(), b2.clone()],
        &[d2.clone()],
        &[],
        &handover,
    )
    .await
    .unwrap();
    assert_eq!(active_users(&s, t.id).await, 1);
    let ev = events_after(&s, None, m).await;
    let got: Vec<(&str, Entity, ChangeAction)> = ev
        .iter()
        .map(|e| (e.entity_id.as_str(), e.entity, e.action))
        .collect();
    assert_eq!(
        got,
        vec![
            (a.open_id.as_str(), Entity::User, ChangeAction::Updated),
            (b.open_id.as_str(), Entity::User, ChangeAction::Deleted),
            (
                d.open_department_id.as_str(),
                Entity::Department,
                ChangeAction::Deleted
            ),
        ]
    );
    for e in &ev {
        assert_eq!(e.note.as_deref(), Some("handover: docs -> x"));
        assert_eq!(e.at, 2_000);
        assert_ne!(e.before, e.after);
    }
    assert!(ev[0].before.as_deref().unwrap().contains("Ann Before"));
    assert!(ev[0].after.as_deref().unwrap().contains("Ann After"));
    // The user snapshot lists departments by key: the stored ones before.
    assert!(ev[0]
        .before
        .as_deref()
        .unwrap()
        .contains(&format!("\"departments\":[{}]", d.key.0)));
    assert!(ev[1]
        .before
        .as_deref()
        .unwrap()
        .contains("\"is_resigned\":false"));
    assert!(ev[1]
        .after
        .as_deref()
        .unwrap()
        .contains("\"is_resigned\":true"));
    assert!(ev[2]
        .after
        .as_deref()
        .unwrap()
        .contains("\"is_deleted\":true"));

    // Bringing bob back is a resurrection; editing a resigned user an update.
    b = b2.clone();
    b.status.is_resigned = false;
    b.resigned_at = None;
    let m = mark(&s).await;
    s.update_user(&b, &Change::by(Actor::System)).await.unwrap();
    let ev = events_after(&s, None, m).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].action, ChangeAction::Resurrected);
    assert_eq!(ev[0].actor, "system");
    assert_eq!(active_users(&s, t.id).await, 2);
    s.update_user(&b2, &cli()).await.unwrap();
    let mut b3 = b2.clone();
    b3.profile.name = "Still gone".into();
    let m = mark(&s).await;
    s.update_user(&b3, &cli()).await.unwrap();
    assert_eq!(
        events_after(&s, None, m)
            .await
            .iter()
            .map(|e| e.action)
            .collect::<Vec<_>>(),
        vec![ChangeAction::Updated]
    );

    // The purge: bob resigned at 2 000, a user of the other tenant at 100, a third after the
    // cut-off; the cut-off is 3 000.
    let mut gone = user(other.id, "gone", None);
    gone.status.is_resigned = true;
    gone.resigned_at = Some(100);
    let gone = insert_one(&s, gone).await;
    let mut late = user(t.id, "late", None);
    late.status.is_resigned = true;
    late.resigned_at = Some(5_000);
    let late = insert_one(&s, late).await;
    let m = mark(&s).await;
    assert_eq!(s.purge_resigned(3_000).await.unwrap(), 2);
    let ev = events_after(&s, None, m).await;
    assert_eq!(
        ev.iter()
            .map(|e| (e.tenant, e.entity_id.as_str()))
            .collect::<Vec<_>>(),
        // Oldest resignation first: `gone` left at 100, bob at 2 000.
        vec![
            (other.id, gone.open_id.as_str()),
            (t.id, b.open_id.as_str())
        ]
    );
    for e in &ev {
        assert_eq!((e.entity, e.action), (Entity::User, ChangeAction::Deleted));
        assert_eq!(e.actor, "system");
        assert_eq!(e.note.as_deref(), Some("purged after retention"));
        assert!(e.before.as_deref().unwrap().contains(&e.entity_id));
        assert_eq!(e.after, None);
    }
    assert!(ev[1].before.as_deref().unwrap().contains("Still gone"));
    assert_eq!(
        s.get_user(t.id, &UserLookup::Key(b.key)).await.unwrap(),
        None
    );
    assert!(s
        .get_user(t.id, &UserLookup::Key(late.key))
        .await
        .unwrap()
        .is_some());
    assert_eq!(s.purge_resigned(3_000).await.unwrap(), 0);
    assert!(events_after(&s, None, m).await.len() == 2);

    // Per-tenant reads see only their tenant, in id order.
    let theirs = events_after(&s, Some(other.id), 0).await;
    assert!(theirs.iter().all(|e| e.tenant == other.id));
    assert_eq!(theirs.len(), 2, "gone's creation and purge: {theirs:#?}");
    let all = events_after(&s, None, 0).await;
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(s.list_events(None, 0, 0).await.unwrap(), vec![]);
}

#[tokio::test]
async fn a_refused_save_changes_nothing_and_records_nothing() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let r = root(&s, t.id).await;
    let one = dept(&s, t.id, r.key, "one", 0).await;
    let two = dept(&s, t.id, r.key, "two", 0).await;
    let a = insert_one(&s, user(t.id, "a", Some("a@example.com"))).await;
    let b = insert_one(&s, user(t.id, "b", None)).await;
    let c = insert_one(&s, user(t.id, "c", Some("c@example.com"))).await;
    let m = mark(&s).await;

    // The first user resigns and its department is renamed; then the second takes c's
    // e-mail.
    let mut a2 = a.clone();
    a2.status.is_resigned = true;
    a2.resigned_at = Some(9);
    let mut one2 = one.clone();
    one2.fields.name = "renamed".into();
    let mut b2 = b.clone();
    b2.profile.email = Some(Email::parse("email", "C@example.com").unwrap());
    let err = s
        .save(t.id, &[a2.clone(), b2], &[one2.clone()], &[], &cli())
        .await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::Email))),
        "{err:?}"
    );
    // A department clash after a valid user.
    let mut two2 = two.clone();
    two2.fields.name = "one".into();
    let err = s.save(t.id, &[a2.clone()], &[two2], &[], &cli()).await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::DepartmentName))),
        "{err:?}"
    );
    // A key that does not exist.
    let ghost = User {
        key: UserKey(c.key.0 + 1_000),
        ..user(t.id, "ghost", None)
    };
    let err = s.save(t.id, &[a2.clone(), ghost], &[], &[], &cli()).await;
    assert!(matches!(err, Err(StoreError::Backend(_))), "{err:?}");
    let ghost_dept = Department {
        key: DeptKey(two.key.0 + 1_000),
        ..two.clone()
    };
    let err = s.save(t.id, &[a2], &[ghost_dept], &[], &cli()).await;
    assert!(matches!(err, Err(StoreError::Backend(_))), "{err:?}");

    for u in [&a, &b, &c] {
        assert_eq!(
            s.get_user(t.id, &UserLookup::Key(u.key))
                .await
                .unwrap()
                .as_ref(),
            Some(u)
        );
    }
    for d in [&one, &two] {
        assert_eq!(
            s.get_department(t.id, &DeptLookup::Key(d.key))
                .await
                .unwrap()
                .as_ref(),
            Some(d)
        );
    }
    assert_eq!(active_users(&s, t.id).await, 3);
    assert_eq!(events_after(&s, None, m).await, vec![]);
    let renamed = roster_core::SearchQuery::parse("renamed").unwrap();
    assert!(s
        .search_users(t.id, &renamed, None, 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_save_past_the_cap_is_refused_whole() {
    let (s, _dir) = store();
    let t = tenant(&s, "Small", Some(2)).await;
    let x = insert_one(&s, user(t.id, "x", None)).await;
    let y = insert_one(&s, user(t.id, "y", None)).await;
    let mut z = user(t.id, "z", None);
    z.status.is_resigned = true;
    z.resigned_at = Some(5);
    let z = insert_one(&s, z).await;
    let m = mark(&s).await;

    let mut z_back = z.clone();
    z_back.status.is_resigned = false;
    z_back.resigned_at = None;
    let err = s.save(t.id, &[z_back.clone()], &[], &[], &cli()).await;
    assert!(matches!(err, Err(StoreError::LicenceExceeded)), "{err:?}");
    assert!(events_after(&s, None, m).await.is_empty());

    // Net zero: y resigns and z comes back in the same save.
    let mut y_gone = y.clone();
    y_gone.status.is_resigned = true;
    y_gone.resigned_at = Some(6);
    s.save(t.id, &[z_back, y_gone], &[], &[], &cli())
        .await
        .unwrap();
    assert_eq!(active_users(&s, t.id).await, 2);
    assert!(s
        .get_user(t.id, &UserLookup::Key(x.key))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn department_members_page_by_key_over_active_members() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let r = root(&s, t.id).await;
    let a = dept(&s, t.id, r.key, "a", 0).await;
    let b = dept(&s, t.id, r.key, "b", 0).await;
    let mut members = Vec::new();
    for i in 0..5 {
        let mut u = user(t.id, &format!("m{i}"), None);
        // Every other member is also in b, listed first, so memberships must come back in
        // profile order.
        u.profile.departments = if i % 2 == 0 {
            vec![
                member(b.key),
                Membership {
                    is_primary: false,
                    ..member(a.key)
                },
            ]
        } else {
            vec![member(a.key)]
        };
        if i == 2 {
            u.status.is_resigned = true;
            u.resigned_at = Some(1);
        }
        members.push(insert_one(&s, u).await);
    }
    insert_one(
        &s,
        User {
            profile: UserProfile {
                departments: vec![member(b.key)],
                ..user(t.id, "only-b", None).profile
            },
            ..user(t.id, "only-b", None)
        },
    )
    .await;
    let active: Vec<&User> = members.iter().filter(|u| !u.status.is_resigned).collect();

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s.department_members(t.id, a.key, after, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.key);
        seen.extend(page);
    }
    assert_eq!(seen.len(), active.len());
    for (got, want) in seen.iter().zip(&active) {
        assert_eq!(&got, want, "members come whole, memberships in order");
    }
    assert_eq!(
        s.department_members(t.id, a.key, None, 0).await.unwrap(),
        vec![]
    );
    assert_eq!(
        s.department_members(TenantId(t.id.0 + 1), a.key, None, 10)
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(
        s.department_members(t.id, b.key, None, 10)
            .await
            .unwrap()
            .len(),
        3,
        "m0, m4 and only-b"
    );
}

#[tokio::test]
async fn batch_reads_by_lookups_contacts_and_leaders() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let r = root(&s, t.id).await;
    let mut boss = user(t.id, "boss", Some("boss@example.com"));
    boss.profile.mobile = Some(Mobile::parse("mobile", "13011111111").unwrap());
    boss.profile.departments = vec![member(r.key)];
    let boss = insert_one(&s, boss).await;
    let mut old = user(t.id, "old", Some("old@example.com"));
    old.status.is_resigned = true;
    old.resigned_at = Some(7);
    let old = insert_one(&s, old).await;
    let mut report = user(t.id, "report", Some("Old@Example.com"));
    report.profile.leader = Some(boss.open_id.clone());
    let report = insert_one(&s, report).await;
    let mut gone_report = user(t.id, "gone-report", None);
    gone_report.profile.leader = Some(boss.open_id.clone());
    gone_report.status.is_resigned = true;
    gone_report.resigned_at = Some(8);
    insert_one(&s, gone_report).await;

    let got = s
        .get_users(
            t.id,
            &[
                UserLookup::UserId("BOSS".into()),
                UserLookup::Key(boss.key),
                UserLookup::OpenId(report.open_id.to_string()),
                UserLookup::UnionId(old.union_id.to_string()),
                UserLookup::Email("OLD@example.com".into()),
                UserLookup::Mobile("+8613011111111".into()),
                UserLookup::UserId("nobody".into()),
                UserLookup::Key(UserKey(999_999)),
            ],
        )
        .await
        .unwrap();
    // The e-mail lookup prefers the active holder (report) over the resigned one.
    assert_eq!(got, vec![boss.clone(), old.clone(), report.clone()]);
    assert_eq!(s.get_users(t.id, &[]).await.unwrap(), vec![]);
    assert_eq!(
        s.get_users(TenantId(t.id.0 + 1), &[UserLookup::Key(boss.key)])
            .await
            .unwrap(),
        vec![]
    );

    let by_contact = s
        .users_by_contact(
            t.id,
            &["old@example.com".into(), "none@example.com".into()],
            &["+8613011111111".into()],
        )
        .await
        .unwrap();
    assert_eq!(by_contact, vec![boss.clone(), old.clone(), report.clone()]);
    assert_eq!(s.users_by_contact(t.id, &[], &[]).await.unwrap(), vec![]);

    assert_eq!(
        s.users_led_by(t.id, &boss.open_id).await.unwrap(),
        vec![report.clone()],
        "resigned reports are left out"
    );

    // Departments led by boss: the leader column follows inserts and saves.
    let mut led = dept(&s, t.id, r.key, "led", 0).await;
    assert_eq!(
        s.departments_led_by(t.id, &boss.open_id).await.unwrap(),
        vec![]
    );
    led.fields.leader = Some(boss.open_id.clone());
    s.update_department(&led, &cli()).await.unwrap();
    let fresh = s
        .insert_department(
            &Department {
                key: DeptKey(0),
                open_department_id: RandomIds.open_department_id(),
                department_id: DepartmentId::parse("D-fresh").unwrap(),
                fields: DepartmentFields {
                    name: "fresh".into(),
                    leader: Some(boss.open_id.clone()),
                    ..DepartmentFields::default()
                },
                ..led.clone()
            },
            &cli(),
        )
        .await
        .unwrap();
    let mut deleted = dept(&s, t.id, r.key, "deleted", 0).await;
    deleted.fields.leader = Some(boss.open_id.clone());
    deleted.is_deleted = true;
    s.update_department(&deleted, &cli()).await.unwrap();
    assert_eq!(
        s.departments_led_by(t.id, &boss.open_id).await.unwrap(),
        vec![led.clone(), fresh]
    );
    assert_eq!(
        s.departments_led_by(t.id, &OpenId::from_trusted("ou_nobody".into()))
            .await
            .unwrap(),
        vec![]
    );
}

#[tokio::test]
async fn idempotency_keys_are_claimed_completed_released_and_purged() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let key = |k: &str| IdempotencyKey {
        tenant: t.id,
        app_id: roster_core::AppId::from_trusted("cli_app".into()),
        operation: "feishu.users.create".into(),
        key: k.into(),
    };
    let k1 = key("k1");
    assert_eq!(
        s.claim_idempotency_key(&k1, "fp1", 100).await.unwrap(),
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        s.claim_idempotency_key(&k1, "fp2", 101).await.unwrap(),
        IdempotencyClaim::Existing {
            fingerprint: "fp1".into(),
            result: None
        },
        "the stored claim, unfinished"
    );
    s.complete_idempotency_key(&k1, "ou_1").await.unwrap();
    assert_eq!(
        s.claim_idempotency_key(&k1, "fp1", 102).await.unwrap(),
        IdempotencyClaim::Existing {
            fingerprint: "fp1".into(),
            result: Some("ou_1".into())
        }
    );
    // The same client key for another operation is another key.
    let other_op = IdempotencyKey {
        operation: "feishu.departments.create".into(),
        ..k1.clone()
    };
    assert_eq!(
        s.claim_idempotency_key(&other_op, "fp1", 103)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );

    // A failed request releases its key, and a retry claims it again.
    let k2 = key("k2");
    assert_eq!(
        s.claim_idempotency_key(&k2, "fp", 200).await.unwrap(),
        IdempotencyClaim::Claimed
    );
    s.release_idempotency_key(&k2).await.unwrap();
    assert_eq!(
        s.claim_idempotency_key(&k2, "fp-retry", 300).await.unwrap(),
        IdempotencyClaim::Claimed
    );
    // Completing a key that is gone is harmless.
    s.complete_idempotency_key(&key("never"), "x")
        .await
        .unwrap();

    // Purge: k1 (100) and other_op (103) are older than 250, k2 (300) is not.
    assert_eq!(s.purge_idempotency_keys(250).await.unwrap(), 2);
    assert_eq!(
        s.claim_idempotency_key(&k1, "fp-new", 400).await.unwrap(),
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        s.claim_idempotency_key(&k2, "fp", 400).await.unwrap(),
        IdempotencyClaim::Existing {
            fingerprint: "fp-retry".into(),
            result: None
        }
    );
}

#[tokio::test]
async fn a_jsapi_ticket_is_stored_and_replaced() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let app = App {
        app_id: RandomIds.app_id(),
        tenant: t.id,
        name: "app".into(),
        kind: AppKind::Feishu,
        secret_hash: "h".into(),
        scopes: Scopes::new([Scope::ContactRead]),
        contact_scope: ContactScope::All,
        created_at: 1,
    };
    s.insert_app(&app).await.unwrap();
    assert_eq!(s.jsapi_ticket(&app.app_id).await.unwrap(), None);
    s.put_jsapi_ticket(&app.app_id, "first", 1_000, i64::MAX)
        .await
        .unwrap();
    assert_eq!(
        s.jsapi_ticket(&app.app_id).await.unwrap(),
        Some(("first".into(), 1_000))
    );
    s.put_jsapi_ticket(&app.app_id, "second", 2_000, i64::MAX)
        .await
        .unwrap();
    assert_eq!(
        s.jsapi_ticket(&app.app_id).await.unwrap(),
        Some(("second".into(), 2_000))
    );
    assert_eq!(s.jsapi_ticket(&RandomIds.app_id()).await.unwrap(), None);
    // A ticket belongs to an existing app.
    assert!(matches!(
        s.put_jsapi_ticket(&RandomIds.app_id(), "orphan", 1, i64::MAX)
            .await,
        Err(StoreError::Backend(_))
    ));
}

#[tokio::test]
async fn a_save_writes_an_entity_listed_twice_once_and_refuses_other_tenants() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let other = tenant(&s, "Other", None).await;
    let a = insert_one(&s, user(t.id, "a", None)).await;
    let b = insert_one(&s, user(t.id, "b", None)).await;
    let m = mark(&s).await;

    let mut a1 = a.clone();
    a1.profile.name = "first".into();
    let mut a2 = a.clone();
    a2.profile.name = "last".into();
    let mut b2 = b.clone();
    b2.profile.name = "bee".into();
    s.save(t.id, &[a1, b2.clone(), a2.clone()], &[], &[], &cli())
        .await
        .unwrap();
    assert_eq!(
        s.get_user(t.id, &UserLookup::Key(a.key)).await.unwrap(),
        Some(a2)
    );
    let ev = events_after(&s, None, m).await;
    assert_eq!(
        ev.iter().map(|e| e.entity_id.as_str()).collect::<Vec<_>>(),
        vec![a.open_id.as_str(), b.open_id.as_str()],
        "one event per entity, in order of first mention"
    );
    assert!(ev[0].after.as_deref().unwrap().contains("last"));

    // A user of another tenant listed under this one is a fault, and nothing is written.
    let m = mark(&s).await;
    let stray = User {
        tenant: other.id,
        ..b2.clone()
    };
    let mut b3 = b2.clone();
    b3.profile.name = "never".into();
    let err = s.save(t.id, &[b3, stray], &[], &[], &cli()).await;
    assert!(matches!(err, Err(StoreError::Backend(_))), "{err:?}");
    assert_eq!(
        s.get_user(t.id, &UserLookup::Key(b.key)).await.unwrap(),
        Some(b2)
    );
    assert!(events_after(&s, None, m).await.is_empty());
}

#[tokio::test]
async fn groups_keep_their_owner_and_a_save_rewrites_them_with_one_event_each() {
    let (s, _dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let other = tenant(&s, "Other", None).await;
    let ann = RandomIds.open_id();
    let bob = RandomIds.open_id();
    let group = |t: TenantId, id: &str, name: &str, owner: Option<&OpenId>| Group {
        key: 0,
        tenant: t,
        group_id: id.into(),
        name: name.into(),
        description: None,
        owner: owner.cloned(),
        created_at: 1,
    };
    let g1 = s
        .insert_group(&group(t.id, "g1", "Ops", Some(&ann)))
        .await
        .unwrap();
    let g2 = s
        .insert_group(&group(t.id, "g2", "Dev", None))
        .await
        .unwrap();
    let foreign = s
        .insert_group(&group(other.id, "g1", "Ops", Some(&ann)))
        .await
        .unwrap();
    assert_eq!(s.get_group(t.id, "g1").await.unwrap(), Some(g1.clone()));
    assert_eq!(
        s.list_groups(t.id).await.unwrap(),
        vec![g1.clone(), g2.clone()]
    );
    assert_eq!(
        s.groups_owned_by(t.id, &ann).await.unwrap(),
        vec![g1.clone()]
    );

    // Listed twice, a group is written once, in its last state, with one event.
    let m = mark(&s).await;
    let mut first = g1.clone();
    first.description = Some("first".into());
    let mut last = g1.clone();
    last.owner = Some(bob.clone());
    last.description = Some("last".into());
    s.save(t.id, &[], &[], &[first, g2.clone(), last.clone()], &cli())
        .await
        .unwrap();
    assert_eq!(s.get_group(t.id, "g1").await.unwrap(), Some(last.clone()));
    assert_eq!(s.groups_owned_by(t.id, &ann).await.unwrap(), vec![]);
    assert_eq!(
        s.groups_owned_by(t.id, &bob).await.unwrap(),
        vec![last.clone()]
    );
    let ev = events_after(&s, None, m).await;
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
    let m = mark(&s).await;
    let mut renamed = last.clone();
    renamed.name = "Renamed".into();
    let mut clash = g2.clone();
    clash.name = "OPS".into();
    assert!(matches!(
        s.save(t.id, &[], &[], &[clash, renamed.clone()], &cli())
            .await,
        Err(StoreError::Duplicate(UniqueKey::GroupName))
    ));
    let err = s
        .save(t.id, &[], &[], &[renamed, foreign.clone()], &cli())
        .await;
    assert!(matches!(err, Err(StoreError::Backend(_))), "{err:?}");
    assert_eq!(s.get_group(t.id, "g1").await.unwrap(), Some(last));
    assert_eq!(s.get_group(other.id, "g1").await.unwrap(), Some(foreign));
    assert!(events_after(&s, None, m).await.is_empty());
}

/// Migration 0017 brings data written before three fixes in line with what the fixed code
/// writes: a delivered invitation keeps no body, change events hold no password hash, and a
/// resigned user is on no active user's dotted-line leaders. The rows are written here the
/// way older versions left them (raw SQL under the store), then the migration's SQL runs
/// again (each statement touches only rows still written the old way) and the store reads
/// the result.
#[tokio::test]
async fn migration_0017_scrubs_data_written_before_the_fixes() {
    let (s, dir) = store();
    let t = tenant(&s, "Acme", None).await;
    let r = root(&s, t.id).await;
    let in_root = |mut u: User| {
        u.profile.departments = vec![member(r.key)];
        u
    };
    let x = insert_one(&s, in_root(user(t.id, "x", None))).await;
    let gone = insert_one(&s, in_root(user(t.id, "gone", None))).await;
    let y = insert_one(&s, in_root(user(t.id, "y", None))).await;
    let mut a = in_root(user(t.id, "a", None));
    a.profile.dotted_line_leaders =
        vec![x.open_id.clone(), gone.open_id.clone(), y.open_id.clone()];
    a.profile.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
    let a = insert_one(&s, a).await;
    let mut only = in_root(user(t.id, "only", None));
    only.profile.dotted_line_leaders = vec![gone.open_id.clone()];
    let only = insert_one(&s, only).await;
    let mark = mark(&s).await;

    let db = rusqlite::Connection::open(dir.path().join("roster.db")).unwrap();
    // An older delete resigned the user and left it on the dotted-line lists, without
    // remembering the departments it left but in the change log (an earlier deletion, since
    // undone, left other departments).
    db.execute(
        "UPDATE users SET is_resigned = 1, resigned_at = 2000 WHERE open_id = ?1",
        [gone.open_id.as_str()],
    )
    .unwrap();
    for departments in ["[999]", &format!("[{}]", r.key.0)] {
        db.execute(
            "INSERT INTO change_events (tenant_id, entity, entity_id, action, actor, at, before) \
             VALUES (?1, 'user', ?2, 'deleted', 'cli', 2000, ?3)",
            rusqlite::params![
                t.id.0,
                gone.open_id.as_str(),
                format!(
                    "{{\"open_id\":\"{}\",\"departments\":{departments}}}",
                    gone.open_id
                )
            ],
        )
        .unwrap();
    }
    // An older version recorded the hash itself in the creation's event.
    let n = db
        .execute(
            "UPDATE change_events SET after = replace(after, '(redacted)', ?1) \
             WHERE entity_id = ?2",
            [
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
                a.open_id.as_str(),
            ],
        )
        .unwrap();
    assert_eq!(n, 1, "the creation event of the user with a password");
    // And kept the body of a delivered invitation.
    db.execute(
        "INSERT INTO outbox (tenant_id, channel, recipient, subject, body, created_at, \
         next_attempt_at, sent_at) VALUES (?1, 'email', 'a@example.com', 'Welcome', \
         'Activate: https://roster.example.com/activate/secret-token', 1000, 1000, 1500)",
        [t.id.0],
    )
    .unwrap();
    db.execute_batch(include_str!(
        "../migrations/0017_scrub_data_written_before_fixes.sql"
    ))
    .unwrap();
    drop(db);

    let read = |u: &User| {
        let s = &s;
        let key = u.key;
        async move {
            s.get_user(t.id, &UserLookup::Key(key))
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert_eq!(
        read(&a).await.profile.dotted_line_leaders,
        vec![x.open_id.clone(), y.open_id.clone()],
        "the resigned user left the list, which kept its order"
    );
    assert!(read(&only).await.profile.dotted_line_leaders.is_empty());
    assert_eq!(
        read(&gone).await.profile.former_departments,
        vec![r.key],
        "the departments its latest deletion left"
    );
    assert!(read(&x).await.profile.former_departments.is_empty());
    assert_eq!(
        read(&a).await.profile.password_hash.as_deref(),
        Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"),
        "the user's own password hash is kept"
    );
    let events = s.list_events(Some(t.id), 0, 1000).await.unwrap();
    assert!(events.iter().all(|e| {
        !e.after.as_deref().unwrap_or("").contains("argon2id")
            && !e.before.as_deref().unwrap_or("").contains("argon2id")
    }));
    let created = events
        .iter()
        .find(|e| e.entity_id == a.open_id.as_str() && e.id <= mark)
        .unwrap();
    assert!(created
        .after
        .as_deref()
        .unwrap()
        .contains("\"password_hash\":\"(redacted)\""));
    let outbox = s.list_outbox(Some(t.id), false, 10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].body, roster_store_common::DELIVERED_BODY);
}
