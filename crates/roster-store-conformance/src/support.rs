//! Fixtures shared by the checks: tenants, departments and users built directly as stored
//! values (for the raw `Store` checks) and a `Directory` with an authenticated caller (for
//! the use-case checks).

use std::sync::Arc;

use roster_core::app::hash_secret;
use roster_core::ids::DepartmentId;
use roster_core::values::{Email, Mobile, Username};
use roster_core::{
    Actor, App, AppKind, Caller, Change, ChangeEvent, Clock, ContactScope, CoreError, Department,
    DepartmentFields, DeptKey, DeptLookup, Directory, IdGen, Membership, NewTenant, NewUser,
    RandomIds, Scope, Scopes, Store, StoreError, SystemClock, Tenant, TenantId, UniqueKey, User,
    UserId, UserKey, UserLookup, UserProfile, UserStatus,
};

/// The change context of raw-store writes in the checks: an administrator at the command line.
pub(crate) fn cli() -> Change {
    Change::by(Actor::Cli)
}

/// The wall clock in milliseconds, as the stores see it through the core.
pub(crate) fn now_ms() -> i64 {
    SystemClock.now_ms()
}

/// A parsed e-mail address; the fixtures only use valid ones.
pub(crate) fn email(s: &str) -> Email {
    Email::parse("email", s).expect("fixture e-mail is valid")
}

/// A valid mainland China mobile, distinct for each `n` below 10^8, in E.164 form.
pub(crate) fn mobile(n: u32) -> Mobile {
    Mobile::parse("mobile", &format!("+86130{n:08}")).expect("fixture mobile is valid")
}

/// A parsed login name.
pub(crate) fn username(s: &str) -> Username {
    Username::parse(s).expect("fixture username is valid")
}

/// A parsed custom user id.
pub(crate) fn user_id(s: &str) -> UserId {
    UserId::parse(s).expect("fixture user id is valid")
}

/// Creates a tenant directly in the store, with a fresh tenant key.
pub(crate) async fn tenant(store: &dyn Store, name: &str, cap: Option<u32>) -> Tenant {
    store
        .create_tenant(
            &NewTenant::parse(name, cap).expect("fixture tenant name is valid"),
            &RandomIds.hex(8),
            now_ms(),
        )
        .await
        .expect("create a tenant")
}

/// The tenant's root department, found by its open id `"0"`.
pub(crate) async fn root(store: &dyn Store, tenant: TenantId) -> Department {
    store
        .get_department(tenant, &DeptLookup::OpenId("0".into()))
        .await
        .expect("read the root department")
        .expect("every tenant has a root department")
}

/// The stored count of active users of a tenant.
pub(crate) async fn active_users(store: &dyn Store, tenant: TenantId) -> u64 {
    store
        .get_tenant(tenant)
        .await
        .expect("read the tenant")
        .expect("the tenant exists")
        .active_users
}

/// A department value ready for `insert_department`.
pub(crate) fn department(
    tenant: TenantId,
    parent: DeptKey,
    custom_id: &str,
    name: &str,
    order: i64,
) -> Department {
    let now = now_ms();
    Department {
        key: DeptKey(0),
        tenant,
        open_department_id: RandomIds.open_department_id(),
        department_id: DepartmentId::parse(custom_id).expect("fixture department id is valid"),
        parent: Some(parent),
        fields: DepartmentFields {
            name: name.to_owned(),
            order,
            ..DepartmentFields::default()
        },
        is_deleted: false,
        created_at: now,
        updated_at: now,
    }
}

/// Inserts a department through the raw store and returns it as stored.
pub(crate) async fn insert_department(
    store: &dyn Store,
    tenant: TenantId,
    parent: DeptKey,
    custom_id: &str,
    name: &str,
    order: i64,
) -> Department {
    store
        .insert_department(&department(tenant, parent, custom_id, name, order), &cli())
        .await
        .expect("insert a department")
}

/// A primary membership with zero orders.
pub(crate) fn member_of(dept: DeptKey) -> Membership {
    Membership {
        department: dept,
        user_order: 0,
        department_order: 0,
        is_primary: true,
    }
}

/// An active user with only a name, fresh open and union ids, the given custom user id and a
/// primary membership in `dept`. Checks add the unique values they need.
pub(crate) fn plain_user(tenant: TenantId, dept: DeptKey, custom_id: &str) -> User {
    let now = now_ms();
    User {
        key: UserKey(0),
        tenant,
        open_id: RandomIds.open_id(),
        union_id: RandomIds.union_id(),
        user_id: user_id(custom_id),
        profile: UserProfile {
            name: format!("User {custom_id}"),
            departments: vec![member_of(dept)],
            ..UserProfile::default()
        },
        status: UserStatus {
            is_activated: true,
            ..UserStatus::default()
        },
        created_at: now,
        updated_at: now,
        resigned_at: None,
        logout_at: None,
    }
}

/// Inserts users best-effort and returns the per-user results.
pub(crate) async fn insert(
    store: &dyn Store,
    tenant: TenantId,
    users: &[User],
    atomic: bool,
) -> Vec<Result<UserKey, StoreError>> {
    let results = store
        .insert_users(tenant, users, atomic, &cli())
        .await
        .expect("insert_users must not fail as a whole for duplicates or the cap");
    assert_eq!(
        results.len(),
        users.len(),
        "insert_users returns one result per user"
    );
    results
}

/// Inserts one user best-effort, expects success, and returns it as it should now be stored.
pub(crate) async fn insert_ok(store: &dyn Store, user: &User) -> User {
    let results = insert(store, user.tenant, std::slice::from_ref(user), false).await;
    let key = match &results[0] {
        Ok(key) => *key,
        Err(e) => panic!("inserting user {} failed: {e:?}", user.user_id),
    };
    User {
        key,
        ..user.clone()
    }
}

/// Reads a user through the raw store.
pub(crate) async fn get_user(
    store: &dyn Store,
    tenant: TenantId,
    lookup: UserLookup,
) -> Option<User> {
    store
        .get_user(tenant, &lookup)
        .await
        .expect("get_user must not fail")
}

/// Marks a user resigned at `at` through `update_user` and returns the new stored value.
pub(crate) async fn resign(store: &dyn Store, user: &User, at: i64) -> User {
    let mut resigned = user.clone();
    resigned.status.is_resigned = true;
    resigned.resigned_at = Some(at);
    resigned.updated_at = at;
    store
        .update_user(&resigned, &cli())
        .await
        .expect("resigning an active user succeeds");
    resigned
}

/// Asserts that a per-user result is `Duplicate(key)`.
pub(crate) fn assert_duplicate(result: &Result<UserKey, StoreError>, key: UniqueKey, what: &str) {
    assert!(
        matches!(result, Err(StoreError::Duplicate(k)) if *k == key),
        "{what}: expected Duplicate({key:?}), got {result:?}"
    );
}

/// Asserts that a core result failed with `AlreadyExists { User, field }`.
pub(crate) fn assert_user_exists_err<T: std::fmt::Debug>(
    result: &Result<T, CoreError>,
    field: UniqueKey,
    what: &str,
) {
    assert!(
        matches!(
            result,
            Err(CoreError::AlreadyExists { entity: roster_core::Entity::User, field: f }) if *f == field
        ),
        "{what}: expected AlreadyExists {{ User, {field:?} }}, got {result:?}"
    );
}

/// A directory over the store with the wall clock and random ids, as production builds it.
pub(crate) fn directory(store: Arc<dyn Store>) -> Directory {
    Directory::new(store, Arc::new(SystemClock), Arc::new(RandomIds))
}

/// A directory, a tenant made through it, and a caller with every scope over the whole tree,
/// obtained the way a client obtains one: app secret, then token, then authentication.
pub(crate) struct Env {
    pub(crate) dir: Directory,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) tenant: Tenant,
    pub(crate) root: Department,
    pub(crate) caller: Caller,
}

/// Builds an `Env` on a new tenant named `name` with the given licence cap.
pub(crate) async fn env(store: Arc<dyn Store>, name: &str, cap: Option<u32>) -> Env {
    let dir = directory(store.clone());
    let tenant = dir
        .create_tenant(NewTenant::parse(name, cap).expect("fixture tenant name is valid"))
        .await
        .expect("create a tenant through the directory");
    let root = root(store.as_ref(), tenant.id).await;
    let caller = caller(
        &dir,
        tenant.id,
        Scopes::new([Scope::ContactRead, Scope::ContactWrite]),
        ContactScope::All,
    )
    .await;
    Env {
        dir,
        store,
        tenant,
        root,
        caller,
    }
}

/// Creates an app and authenticates as it through a token.
pub(crate) async fn caller(
    dir: &Directory,
    tenant: TenantId,
    scopes: Scopes,
    contact_scope: ContactScope,
) -> Caller {
    let (app, secret) = dir
        .create_app(tenant, "conformance", scopes, contact_scope)
        .await
        .expect("create an app");
    let token = dir
        .issue_tenant_token(app.app_id.as_str(), &secret)
        .await
        .expect("issue a token for a fresh app");
    dir.authenticate(&token.token)
        .await
        .expect("a fresh token authenticates")
}

/// A new user for the directory with a custom id, a name and nothing else.
pub(crate) fn new_user(custom_id: &str) -> NewUser {
    NewUser {
        user_id: Some(user_id(custom_id)),
        profile: UserProfile {
            name: format!("User {custom_id}"),
            ..UserProfile::default()
        },
        leader: None,
        activated: true,
    }
}

/// Every change event with an id above `after`, of one tenant or all, read a page at a time.
pub(crate) async fn events_since(
    store: &dyn Store,
    tenant: Option<TenantId>,
    after: i64,
) -> Vec<ChangeEvent> {
    let mut out: Vec<ChangeEvent> = Vec::new();
    let mut cursor = after;
    loop {
        let page = store
            .list_events(tenant, cursor, 500)
            .await
            .expect("list_events must not fail");
        let Some(last) = page.last() else {
            return out;
        };
        cursor = last.id;
        out.extend(page);
    }
}

/// The id of the newest change event, 0 when there is none: events recorded after this
/// mark are the ones a check caused.
pub(crate) async fn event_mark(store: &dyn Store) -> i64 {
    events_since(store, None, 0)
        .await
        .last()
        .map_or(0, |e| e.id)
}

/// An app of the tenant, ready for `insert_app`.
pub(crate) fn app(tenant: TenantId, name: &str) -> App {
    App {
        app_id: RandomIds.app_id(),
        tenant,
        name: name.to_owned(),
        kind: AppKind::Feishu,
        secret_hash: hash_secret("conformance secret"),
        scopes: Scopes::new([Scope::ContactRead, Scope::ContactWrite]),
        contact_scope: ContactScope::All,
        created_at: now_ms(),
    }
}

/// The users as the store holds them now, by key, in the given order.
pub(crate) async fn reread(store: &dyn Store, users: &[&User]) -> Vec<User> {
    let mut out = Vec::with_capacity(users.len());
    for u in users {
        out.push(
            get_user(store, u.tenant, UserLookup::Key(u.key))
                .await
                .unwrap_or_else(|| panic!("user {} vanished", u.user_id)),
        );
    }
    out
}

/// Reads a department through the raw store, deleted ones included.
pub(crate) async fn get_department(
    store: &dyn Store,
    tenant: TenantId,
    key: DeptKey,
) -> Department {
    store
        .get_department(tenant, &DeptLookup::Key(key))
        .await
        .expect("get_department must not fail")
        .unwrap_or_else(|| panic!("department {key:?} vanished"))
}

/// A clock the check moves by hand.
pub(crate) struct ManualClock(pub(crate) std::sync::atomic::AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
