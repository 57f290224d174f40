//! Tenants, apps and tokens on the raw store.

use std::sync::Arc;

use roster_core::app::hash_secret;
use roster_core::{
    App, AppKind, ContactScope, DeptLookup, IdGen, NewTenant, RandomIds, Scope, Scopes, Store,
    StoreError, TokenRecord, UniqueKey,
};

use crate::support::{now_ms, root, tenant};

/// The store names its backend and answers a ping.
pub async fn check_store_names_its_backend_and_answers_ping(store: Arc<dyn Store>) {
    assert!(
        matches!(store.backend(), "sqlite" | "postgres"),
        "backend() must be \"sqlite\" or \"postgres\", got {:?}",
        store.backend()
    );
    store.ping().await.expect("a fresh store answers ping");
}

/// `create_tenant` stores every field and creates the root department, known as `"0"` under
/// both ids, with no parent, in the same call.
pub async fn check_creating_a_tenant_creates_its_root_department(store: Arc<dyn Store>) {
    let now = now_ms();
    let new = NewTenant::parse("Acme", Some(42)).expect("valid name");
    let created = store
        .create_tenant(&new, "00112233aabbccdd", now)
        .await
        .expect("create a tenant");
    assert_eq!(created.name, "Acme");
    assert_eq!(created.tenant_key, "00112233aabbccdd");
    assert_eq!(created.max_active_users, Some(42));
    assert_eq!(created.active_users, 0, "a new tenant has no active users");
    assert_eq!(created.created_at, now);

    let read = store
        .get_tenant(created.id)
        .await
        .expect("read the tenant")
        .expect("the created tenant exists");
    assert_eq!(
        read, created,
        "get_tenant returns what create_tenant returned"
    );

    let by_open = store
        .get_department(created.id, &DeptLookup::OpenId("0".into()))
        .await
        .expect("read root by open id")
        .expect("the root department exists");
    assert_eq!(by_open.open_department_id.as_str(), "0");
    assert_eq!(by_open.department_id.as_str(), "0");
    assert_eq!(by_open.parent, None, "the root has no parent");
    assert!(by_open.is_root());
    assert!(!by_open.is_deleted);
    assert_eq!(by_open.tenant, created.id);

    let by_custom = store
        .get_department(created.id, &DeptLookup::CustomId("0".into()))
        .await
        .expect("read root by custom id")
        .expect("the root is found by custom id 0");
    assert_eq!(by_custom, by_open);
    let by_key = store
        .get_department(created.id, &DeptLookup::Key(by_open.key))
        .await
        .expect("read root by key")
        .expect("the root is found by key");
    assert_eq!(by_key, by_open);

    assert_eq!(
        store.count_departments(created.id).await.expect("count"),
        1,
        "a new tenant has exactly its root department"
    );
    assert!(store
        .child_departments(created.id, by_open.key)
        .await
        .expect("list children")
        .is_empty());

    // A second tenant gets a root of its own, not a view of the first one's.
    let other = tenant(store.as_ref(), "Other", None).await;
    let other_root = root(store.as_ref(), other.id).await;
    assert_ne!(other_root.key, by_open.key);
    assert_eq!(other.max_active_users, None);

    assert_eq!(
        store
            .get_tenant(roster_core::TenantId(other.id.0 + 1000))
            .await
            .expect("read"),
        None,
        "an unknown tenant reads as None"
    );
}

/// A second tenant with an existing name is `Duplicate(TenantName)` and leaves nothing
/// behind; tenants are listed oldest first.
pub async fn check_duplicate_tenant_name_is_refused(store: Arc<dyn Store>) {
    let first = tenant(store.as_ref(), "Acme", None).await;
    let second = tenant(store.as_ref(), "Beta", Some(5)).await;
    let err = store
        .create_tenant(
            &NewTenant::parse("Acme", None).expect("valid name"),
            "ffffffffffffffff",
            now_ms(),
        )
        .await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::TenantName))),
        "expected Duplicate(TenantName), got {err:?}"
    );
    let third = tenant(store.as_ref(), "Gamma", None).await;
    let all = store.list_tenants().await.expect("list tenants");
    assert_eq!(
        all,
        vec![first, second, third],
        "tenants are listed oldest first and the refused one left no row"
    );
}

fn app(
    tenant: roster_core::TenantId,
    name: &str,
    contact_scope: ContactScope,
    created_at: i64,
) -> App {
    App {
        app_id: RandomIds.app_id(),
        tenant,
        name: name.to_owned(),
        kind: AppKind::Feishu,
        secret_hash: hash_secret(&RandomIds.secret()),
        scopes: Scopes::new([Scope::ContactRead]),
        contact_scope,
        created_at,
    }
}

fn token(app: &App, issued_at: i64, expires_at: i64) -> TokenRecord {
    TokenRecord {
        token_hash: hash_secret(&format!("t-{}", RandomIds.hex(32))),
        app_id: app.app_id.clone(),
        tenant: app.tenant,
        issued_at,
        expires_at,
    }
}

/// Apps keep every field (scopes and department visibility included), are listed per tenant
/// oldest first, and a clash of app id is `Duplicate(AppId)`.
pub async fn check_apps_round_trip_and_are_listed_per_tenant(store: Arc<dyn Store>) {
    let t1 = tenant(store.as_ref(), "Acme", None).await;
    let t2 = tenant(store.as_ref(), "Beta", None).await;
    let r1 = root(store.as_ref(), t1.id).await;
    let now = now_ms();

    let mut a = app(
        t1.id,
        "reader",
        ContactScope::Departments(vec![r1.key]),
        now,
    );
    a.scopes = Scopes::new([Scope::ContactWrite, Scope::ContactRead]);
    let b = app(t2.id, "other tenant", ContactScope::All, now + 1);
    let c = app(t1.id, "second", ContactScope::All, now + 2);
    for x in [&a, &b, &c] {
        store.insert_app(x).await.expect("insert an app");
    }

    assert_eq!(
        store.get_app(&a.app_id).await.expect("read app"),
        Some(a.clone())
    );
    assert_eq!(
        store.get_app(&b.app_id).await.expect("read app"),
        Some(b.clone())
    );
    assert_eq!(
        store.get_app(&RandomIds.app_id()).await.expect("read app"),
        None,
        "an unknown app reads as None"
    );
    assert_eq!(
        store.list_apps(Some(t1.id)).await.expect("list apps"),
        vec![a.clone(), c.clone()],
        "apps of one tenant, oldest first"
    );
    assert_eq!(
        store.list_apps(Some(t2.id)).await.expect("list apps"),
        vec![b.clone()]
    );
    assert_eq!(
        store.list_apps(None).await.expect("list apps"),
        vec![a.clone(), b, c],
        "apps of all tenants, oldest first"
    );

    let mut clash = app(t2.id, "clash", ContactScope::All, now + 3);
    clash.app_id = a.app_id.clone();
    let err = store.insert_app(&clash).await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::AppId))),
        "expected Duplicate(AppId), got {err:?}"
    );
    assert_eq!(
        store.get_app(&a.app_id).await.expect("read app"),
        Some(a),
        "the refused app did not overwrite the first one"
    );
}

/// `set_app_secret` replaces the hash and revokes that app's tokens only; an unknown app is
/// reported as `false`.
pub async fn check_setting_an_app_secret_revokes_its_tokens(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "Acme", None).await;
    let now = now_ms();
    let a = app(t.id, "a", ContactScope::All, now);
    let b = app(t.id, "b", ContactScope::All, now + 1);
    store.insert_app(&a).await.expect("insert app");
    store.insert_app(&b).await.expect("insert app");
    let ta1 = token(&a, now, now + 7_200_000);
    let ta2 = token(&a, now, now + 3_600_000);
    let tb = token(&b, now, now + 7_200_000);
    for x in [&ta1, &ta2, &tb] {
        store.insert_token(x).await.expect("insert token");
    }

    let new_hash = hash_secret("a new secret");
    assert!(store
        .set_app_secret(&a.app_id, &new_hash)
        .await
        .expect("set secret"));
    let a_now = store
        .get_app(&a.app_id)
        .await
        .expect("read app")
        .expect("app exists");
    assert_eq!(a_now.secret_hash, new_hash);
    assert_eq!(
        App {
            secret_hash: a.secret_hash.clone(),
            ..a_now
        },
        a,
        "only the secret hash changed"
    );
    assert_eq!(store.find_token(&ta1.token_hash).await.expect("find"), None);
    assert_eq!(store.find_token(&ta2.token_hash).await.expect("find"), None);
    assert_eq!(
        store.find_token(&tb.token_hash).await.expect("find"),
        Some(tb),
        "another app's token survives the rotation"
    );
    assert_eq!(
        store
            .get_app(&b.app_id)
            .await
            .expect("read")
            .map(|x| x.secret_hash),
        Some(b.secret_hash)
    );

    assert!(
        !store
            .set_app_secret(&RandomIds.app_id(), &new_hash)
            .await
            .expect("set secret of unknown app"),
        "an unknown app is reported as false"
    );
}

/// Tokens are found by hash with every field, and `purge_expired_tokens` deletes exactly those
/// that expired before `now`.
pub async fn check_tokens_are_found_by_hash_and_purged_when_expired(store: Arc<dyn Store>) {
    let t = tenant(store.as_ref(), "Acme", None).await;
    let a = app(t.id, "a", ContactScope::All, 1);
    store.insert_app(&a).await.expect("insert app");
    let old1 = token(&a, 100, 1_000);
    let old2 = token(&a, 200, 1_500);
    let live = token(&a, 300, 3_000);
    for x in [&old1, &old2, &live] {
        store.insert_token(x).await.expect("insert token");
    }
    assert_eq!(
        store.find_token(&live.token_hash).await.expect("find"),
        Some(live.clone())
    );
    assert_eq!(
        store
            .find_token(&hash_secret("t-never-issued"))
            .await
            .expect("find"),
        None
    );

    assert_eq!(store.purge_expired_tokens(2_000).await.expect("purge"), 2);
    assert_eq!(
        store.find_token(&old1.token_hash).await.expect("find"),
        None
    );
    assert_eq!(
        store.find_token(&old2.token_hash).await.expect("find"),
        None
    );
    assert_eq!(
        store.find_token(&live.token_hash).await.expect("find"),
        Some(live),
        "a token that has not expired survives the purge"
    );
    assert_eq!(
        store
            .purge_expired_tokens(2_000)
            .await
            .expect("purge again"),
        0,
        "a second purge at the same time finds nothing"
    );
}
