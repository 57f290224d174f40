//! Focused checks of the SQLite store's own behaviour: the root department, user round
//! trips, the two batch modes, the licence cap and lookup preferences. The shared contract
//! is covered by the conformance suite in `conformance.rs`.

// Setup helpers panic on failure by design; clippy's test exemption for `unwrap` covers only
// `#[test]` functions, not the helpers beside them.
#![allow(clippy::unwrap_used)]
// Tests read like the conformance suite: `s` the store, `t` the tenant, `r` its root.
#![allow(clippy::many_single_char_names)]

use roster_core::ids::{DepartmentId, UserId};
use roster_core::values::{Email, Mobile, Username};
use roster_core::{
    App, AppKind, ContactScope, Department, DepartmentFields, DeptKey, DeptLookup, Group, IdGen,
    Membership, NewTenant, RandomIds, Scope, Scopes, Store, StoreError, Tenant, TenantId,
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
        .insert_department(&Department {
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
        })
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
        .insert_users(t.id, std::slice::from_ref(&u), true)
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
    s.update_user(&u).await.unwrap();
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

    let atomic = s.insert_users(t.id, &batch(), true).await.unwrap();
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

    let best = s.insert_users(t.id, &batch(), false).await.unwrap();
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
    s.update_user(&a).await.unwrap();
    assert_eq!(active_users(&s, t.id).await, 1);
    let c = s
        .insert_users(t.id, &[user(t.id, "c", None)], false)
        .await
        .unwrap();
    assert!(c[0].is_ok());
    assert_eq!(active_users(&s, t.id).await, 2);

    a.status.is_resigned = false;
    a.resigned_at = None;
    assert!(matches!(
        s.update_user(&a).await,
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
        let r = s.insert_users(t.id, &[u], false).await.unwrap();
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
    s.update_user(&active).await.unwrap();
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
        .insert_department(&Department {
            key: DeptKey(0),
            open_department_id: RandomIds.open_department_id(),
            department_id: DepartmentId::parse("other").unwrap(),
            ..high.clone()
        })
        .await;
    assert!(matches!(
        same_name,
        Err(StoreError::Duplicate(UniqueKey::DepartmentName))
    ));

    gone.is_deleted = true;
    s.update_department(&gone).await.unwrap();
    let keys: Vec<DeptKey> = s
        .child_departments(t.id, r.key)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(keys, vec![high.key, low.key, low2.key]);
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
