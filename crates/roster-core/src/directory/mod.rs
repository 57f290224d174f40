//! The use cases. Every front door (Feishu, Quick BI, Huawei, SCIM, the CLI) calls these,
//! so the rules live here once.

mod access_keys;
mod accounts;
mod imports;
pub use access_keys::{CreatedAccessKey, ACCESS_KEY_TOKEN_TTL_S};
mod bi;
mod lifecycle;
mod tasks;

pub use imports::{DryRun, MAX_RESULTS_PAGE};
pub use lifecycle::{Handover, IdempotentOutcome, JSAPI_TICKET_TTL_S};
pub use tasks::{Invitations, TaskSubmission, TASK_CHUNK};

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tracing::instrument;

use crate::audit::{Actor, Change};

use crate::app::{
    hash_secret, secret_matches, App, AppKind, Caller, ContactScope, Scope, Scopes, TokenRecord,
};
use crate::batch::{BatchItem, BatchMode, BatchReport, CreatedUser};
use crate::clock::Clock;
use crate::department::{
    Department, DepartmentPatch, DeptKey, DeptLookup, NewDepartment, MAX_CHILDREN, MAX_DEPARTMENTS,
    MAX_DEPTH,
};
use crate::error::{ConflictKind, CoreError, Entity, StoreError, UniqueKey};
use crate::group::Group;
use crate::ids::{AppId, IdGen, OpenDepartmentId, OpenId, TenantId, UserId};
use crate::store::{ReadVersions, Store, TakenValues, UniqueProbe, UserLookup};
use crate::tenant::{NewTenant, Tenant};
use crate::user::{NewUser, User, UserProfile, UserStatus};

/// Lifetime of a tenant access token, seconds (Feishu: 2 hours).
pub const TOKEN_TTL_S: i64 = 7200;
/// A cached token with less than this left is not handed out again (Feishu: 30 minutes).
pub const TOKEN_REUSE_MIN_S: i64 = 1800;
/// Users per write transaction in best-effort batches: large enough that per-transaction
/// costs vanish, small enough that a failure re-runs little work.
pub const BATCH_CHUNK: usize = 1000;

/// Most dotted-line leaders one user may have. Feishu documents no number; ten keeps a
/// user's rendering to a bounded number of reads.
pub const MAX_DOTTED_LINE_LEADERS: usize = 10;
/// At most this many entries in each of a department's lists of HRBPs, unit ids and group
/// chat employee types. Feishu documents no limit; without one a single request could make a
/// department document of any size, which every read of the department then carries.
pub const MAX_DEPARTMENT_LIST: usize = 100;

/// A token handed to a client.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// `t-` and 64 hex digits (256 random bits).
    pub token: String,
    /// Seconds until it expires.
    pub expire_s: i64,
}

/// The directory service. Cloning is one reference count: every request clones it (axum
/// hands each handler and extractor its own copy of the state), and with a count per field
/// the two cores spent about 3% of a GET's time bouncing those counters between them.
#[derive(Clone)]
pub struct Directory {
    inner: Arc<Shared>,
}

/// What every clone of a [`Directory`] shares. Its own clone is shallow (every field is
/// shared), which is what the builder methods rely on.
#[derive(Clone)]
struct Shared {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGen>,
    /// The last token issued per app by this process, in clear. Only hashes are stored, so
    /// this cache is what lets the token call return the same token while it has 30 minutes
    /// left, as Feishu does. After a restart (or on another node) a fresh token is issued;
    /// earlier ones stay valid until they expire, which is also Feishu's behaviour.
    recent_tokens: Arc<Mutex<HashMap<AppId, (String, i64)>>>,
    /// Held from the look into `recent_tokens` to the insert of a new token, so that
    /// concurrent first calls of one app get one token, not one each. Token calls are rare
    /// (one per app per two hours), so one lock for all apps costs nothing.
    token_issue: Arc<tokio::sync::Mutex<()>>,
    /// Wakes this process's task workers when a task is submitted here, so that they need
    /// not poll fast; workers still poll slowly for tasks submitted on other nodes.
    task_wakeup: Arc<tokio::sync::Notify>,
    /// Imports this process is receiving (begun, neither sealed nor aborted), so that a
    /// shutdown can fail them at once instead of leaving them to the receive timeout.
    open_uploads: Arc<Mutex<HashSet<crate::task::TaskId>>>,
    /// Seals vendor signing secrets at rest (see `crate::access_key`); without one, access
    /// keys can be neither created nor used.
    sealer: Option<Arc<dyn crate::access_key::SecretSealer>>,
    /// Bearer tokens this process has verified recently (see [`AUTH_CACHE_TTL_MS`]), by
    /// their SHA-256 digest: the cache holds no token that a memory dump could replay, and
    /// a hit spends no time spelling the digest in hex as the store's key is.
    auth_cache: Arc<Mutex<HashMap<[u8; 32], CachedAuth>>>,
    /// Departments' open ids by key, for rendering references (see
    /// [`Directory::department_open_id`]).
    dept_open_ids: Arc<Mutex<HashMap<(TenantId, DeptKey), OpenDepartmentId>>>,
    /// Hands memory freed after a burst (a bulk import) back to the operating system. The
    /// allocator is the program's choice, not the core's, so the program supplies this.
    return_memory: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// How long a verified bearer token is trusted without asking the store again. Reads are
/// the hot path (a GET costs one token check and one user read), and the token check was two
/// of the four store reads a GET made. The price is that a token revoked by another process
/// (`roster app rotate-secret`) keeps working on a running server for at most this long; a
/// token's own expiry is still checked on every request.
pub const AUTH_CACHE_TTL_MS: i64 = 5_000;

/// At most this many tokens are cached; when full, the cache starts over, which is cheap and
/// bounds memory whatever the number of clients.
const AUTH_CACHE_MAX: usize = 10_000;

/// At most this many departments' open ids are cached; when full, the cache starts over.
/// An entry is a few dozen bytes, so this bounds it to a few megabytes.
const DEPT_OPEN_IDS_MAX: usize = 65_536;

/// A verified token: who it is, until when the token is valid, and when it was verified.
#[derive(Clone)]
struct CachedAuth {
    caller: Caller,
    expires_at: i64,
    verified_at: i64,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("store", &self.inner.store.backend())
            .finish_non_exhaustive()
    }
}

/// What `bootstrap` created on an empty store.
#[derive(Debug)]
pub struct Bootstrapped {
    /// The default tenant.
    pub tenant: Tenant,
    /// Its first app.
    pub app: App,
    /// The app's secret, shown once.
    pub secret: String,
}

impl Directory {
    /// Builds the service over a store.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGen>) -> Self {
        Self {
            inner: Arc::new(Shared {
                store,
                clock,
                ids,
                recent_tokens: Arc::default(),
                token_issue: Arc::default(),
                task_wakeup: Arc::default(),
                open_uploads: Arc::default(),
                sealer: None,
                auth_cache: Arc::default(),
                dept_open_ids: Arc::default(),
                return_memory: None,
            }),
        }
    }

    /// Changes a setting of a directory being built (if clones of it exist, they keep the
    /// old setting and still share its caches with the new one).
    fn configured(self, set: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.inner);
        set(&mut shared);
        Self {
            inner: Arc::new(shared),
        }
    }

    /// Installs what hands freed memory back to the operating system after a bulk import
    /// (for example a forced collection of the program's allocator).
    #[must_use]
    pub fn with_memory_return(self, f: Arc<dyn Fn() + Send + Sync>) -> Self {
        self.configured(|s| s.return_memory = Some(f))
    }

    /// Installs the sealer that protects vendor signing secrets at rest.
    #[must_use]
    pub fn with_sealer(self, sealer: Arc<dyn crate::access_key::SecretSealer>) -> Self {
        self.configured(|s| s.sealer = Some(sealer))
    }

    /// The store, for health checks.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    // ----------------------------------------------------------------- tenants and apps

    /// On an empty store, creates a default tenant and an app with every scope.
    pub async fn bootstrap(&self) -> Result<Option<Bootstrapped>, CoreError> {
        if !self.inner.store.list_tenants().await?.is_empty() {
            return Ok(None);
        }
        // Several nodes may start on one empty database at once: the tenant name's unique
        // index picks one winner, and the others simply find the store initialised.
        let tenant = match self.create_tenant(NewTenant::parse("default", None)?).await {
            Ok(t) => t,
            Err(CoreError::AlreadyExists {
                field: UniqueKey::TenantName,
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let (app, secret) = self
            .create_app(
                tenant.id,
                "default",
                Scopes::new([Scope::ContactRead, Scope::ContactWrite]),
                ContactScope::All,
            )
            .await?;
        Ok(Some(Bootstrapped {
            tenant,
            app,
            secret,
        }))
    }

    /// Creates a tenant with its root department.
    #[instrument(skip_all, fields(tenant.name = %new.name))]
    pub async fn create_tenant(&self, new: NewTenant) -> Result<Tenant, CoreError> {
        let key = self.inner.ids.hex(8);
        Ok(self
            .inner
            .store
            .create_tenant(&new, &key, self.inner.clock.now_ms())
            .await?)
    }

    /// All tenants.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, CoreError> {
        Ok(self.inner.store.list_tenants().await?)
    }

    /// Reads a tenant.
    pub async fn get_tenant(&self, id: TenantId) -> Result<Tenant, CoreError> {
        self.inner
            .store
            .get_tenant(id)
            .await?
            .ok_or_else(|| CoreError::not_found(Entity::Tenant, id.to_string()))
    }

    /// Creates an app and returns it with its secret, which is not kept anywhere.
    #[instrument(skip_all, fields(tenant = %tenant))]
    pub async fn create_app(
        &self,
        tenant: TenantId,
        name: &str,
        scopes: Scopes,
        contact_scope: ContactScope,
    ) -> Result<(App, String), CoreError> {
        self.get_tenant(tenant).await?;
        if let ContactScope::Departments(keys) = &contact_scope {
            for key in keys {
                self.department(tenant, &DeptLookup::Key(*key)).await?;
            }
        }
        let name = crate::values::bounded_text("name", name.trim(), 100, true)?;
        let secret = self.inner.ids.secret();
        let app = App {
            app_id: self.inner.ids.app_id(),
            tenant,
            name,
            kind: AppKind::Feishu,
            secret_hash: hash_secret(&secret),
            scopes,
            contact_scope,
            created_at: self.inner.clock.now_ms(),
        };
        self.inner.store.insert_app(&app).await?;
        Ok((app, secret))
    }

    /// Apps of a tenant, or of all tenants.
    pub async fn list_apps(&self, tenant: Option<TenantId>) -> Result<Vec<App>, CoreError> {
        Ok(self.inner.store.list_apps(tenant).await?)
    }

    /// Gives an app a new secret and revokes its tokens. Returns the new secret: the app
    /// secret of a Feishu app, the access-key secret of an Alibaba or Huawei app (whose
    /// key id stays, so only the secret has to be redistributed).
    #[instrument(skip_all, fields(app_id = %app_id))]
    pub async fn rotate_secret(&self, app_id: &AppId) -> Result<String, CoreError> {
        let not_found = || CoreError::not_found(Entity::App, app_id.as_str());
        let app = self
            .inner
            .store
            .get_app(app_id)
            .await?
            .ok_or_else(not_found)?;
        let secret = if app.kind.uses_access_key() {
            let (_, secret) = crate::access_key::generate_pair(self.inner.ids.as_ref(), app.kind)?;
            let sealed = self.sealer()?.seal(secret.as_bytes());
            if !self
                .inner
                .store
                .set_access_key_secret(app_id, &sealed)
                .await?
            {
                return Err(not_found());
            }
            secret
        } else {
            let secret = self.inner.ids.secret();
            if !self
                .inner
                .store
                .set_app_secret(app_id, &hash_secret(&secret))
                .await?
            {
                return Err(not_found());
            }
            secret
        };
        self.inner
            .recent_tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(app_id);
        self.forget_app_tokens(app_id);
        Ok(secret)
    }

    /// Exchanges an app's id and secret for a tenant access token.
    #[instrument(skip_all, fields(app_id = %app_id))]
    pub async fn issue_tenant_token(
        &self,
        app_id: &str,
        secret: &str,
    ) -> Result<IssuedToken, CoreError> {
        let unknown = || CoreError::Unauthenticated("app id not exists".into());
        let app_id = AppId::parse(app_id).map_err(|_| unknown())?;
        let app = self
            .inner
            .store
            .get_app(&app_id)
            .await?
            .ok_or_else(unknown)?;
        // Access-key apps (Alibaba, Huawei) sign requests; they have no usable app secret.
        if app.kind != AppKind::Feishu {
            return Err(unknown());
        }
        if !secret_matches(secret, &app.secret_hash) {
            return Err(CoreError::Unauthenticated("app secret invalid".into()));
        }
        let _issuing = self.inner.token_issue.lock().await;
        let now = self.inner.clock.now_ms();
        let cached = {
            let cache = self
                .inner
                .recent_tokens
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.get(&app_id).cloned()
        };
        if let Some((token, expires_at)) = cached {
            let left_s = (expires_at - now) / 1000;
            // The store is asked too, so that a token revoked by a secret rotation on
            // another node is never handed out again.
            if left_s >= TOKEN_REUSE_MIN_S
                && self
                    .inner
                    .store
                    .find_token(&hash_secret(&token))
                    .await?
                    .is_some()
            {
                return Ok(IssuedToken {
                    token,
                    expire_s: left_s,
                });
            }
        }
        let token = format!("t-{}", self.inner.ids.hex(32));
        let expires_at = now + TOKEN_TTL_S * 1000;
        self.inner
            .store
            .insert_token(&TokenRecord {
                token_hash: hash_secret(&token),
                app_id: app_id.clone(),
                tenant: app.tenant,
                issued_at: now,
                expires_at,
            })
            .await?;
        self.inner
            .recent_tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(app_id, (token.clone(), expires_at));
        Ok(IssuedToken {
            token,
            expire_s: TOKEN_TTL_S,
        })
    }

    /// Resolves a bearer token to its caller. A wrong, expired or revoked token, or one
    /// whose app is gone, is `Unauthenticated`.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, CoreError> {
        let invalid = || CoreError::Unauthenticated("invalid access token".into());
        let digest = crate::app::secret_digest(token);
        let now = self.inner.clock.now_ms();
        if let Some(hit) = self.cached_auth(&digest, now) {
            return Ok(hit);
        }
        let hash = hex::encode(digest);
        let record = self
            .inner
            .store
            .find_token(&hash)
            .await?
            .ok_or_else(invalid)?;
        if record.expires_at <= self.inner.clock.now_ms() {
            return Err(invalid());
        }
        let app = self
            .inner
            .store
            .get_app(&record.app_id)
            .await?
            .ok_or_else(invalid)?;
        // A Huawei Keystone-style token lives in the same table but is no Feishu token.
        if app.tenant != record.tenant || app.kind != AppKind::Feishu {
            return Err(invalid());
        }
        let caller = Caller {
            tenant: app.tenant,
            app_id: app.app_id,
            scopes: app.scopes,
            contact_scope: app.contact_scope,
        };
        if let Ok(mut cache) = self.inner.auth_cache.lock() {
            if cache.len() >= AUTH_CACHE_MAX {
                cache.clear();
            }
            cache.insert(
                digest,
                CachedAuth {
                    caller: caller.clone(),
                    expires_at: record.expires_at,
                    verified_at: now,
                },
            );
        }
        Ok(caller)
    }

    /// A token verified less than [`AUTH_CACHE_TTL_MS`] ago and not yet expired.
    fn cached_auth(&self, digest: &[u8; 32], now: i64) -> Option<Caller> {
        let cache = self.inner.auth_cache.lock().ok()?;
        let hit = cache.get(digest)?;
        (hit.expires_at > now && now - hit.verified_at < AUTH_CACHE_TTL_MS)
            .then(|| hit.caller.clone())
    }

    /// Forgets every cached token of an app (its secret was rotated by this process).
    fn forget_app_tokens(&self, app_id: &AppId) {
        if let Ok(mut cache) = self.inner.auth_cache.lock() {
            cache.retain(|_, v| &v.caller.app_id != app_id);
        }
    }

    /// Deletes expired tokens; returns how many.
    pub async fn purge_expired_tokens(&self) -> Result<u64, CoreError> {
        Ok(self
            .inner
            .store
            .purge_expired_tokens(self.inner.clock.now_ms())
            .await?)
    }

    // ----------------------------------------------------------------------- departments

    async fn department(
        &self,
        tenant: TenantId,
        lookup: &DeptLookup,
    ) -> Result<Department, CoreError> {
        match self.inner.store.get_department(tenant, lookup).await? {
            Some(d) if !d.is_deleted => Ok(d),
            _ => Err(CoreError::not_found(Entity::Department, lookup.shown())),
        }
    }

    /// The department an idempotent create made, for replaying its answer: deleted ones
    /// included, since a replay answers as the first request did (code 0, the same ids)
    /// even when the department has gone since.
    pub async fn replayed_department(
        &self,
        caller: &Caller,
        lookup: &DeptLookup,
    ) -> Result<Department, CoreError> {
        caller.require(Scope::ContactRead)?;
        match self
            .inner
            .store
            .get_department(caller.tenant, lookup)
            .await?
        {
            Some(d) => Ok(d),
            None => Err(CoreError::not_found(Entity::Department, lookup.shown())),
        }
    }

    /// Finds a live department for an administrator (the CLI), without a caller's scope.
    pub async fn admin_department(
        &self,
        tenant: TenantId,
        lookup: &DeptLookup,
    ) -> Result<Department, CoreError> {
        self.department(tenant, lookup).await
    }

    /// The chain from a department up to the root, the department first.
    async fn ancestry(&self, dept: &Department) -> Result<Vec<Department>, CoreError> {
        let mut chain = vec![dept.clone()];
        let mut next = dept.parent;
        while let Some(key) = next {
            // A well-formed tree is at most MAX_DEPTH deep; stop on anything longer so a
            // damaged table cannot loop forever.
            if chain.len() > MAX_DEPTH + 1 {
                return Err(CoreError::Storage(StoreError::Backend(
                    "department tree deeper than allowed".into(),
                )));
            }
            let parent = self
                .inner
                .store
                .get_department(dept.tenant, &DeptLookup::Key(key))
                .await?
                .ok_or_else(|| CoreError::Storage(StoreError::Backend("dangling parent".into())))?;
            next = parent.parent;
            chain.push(parent);
        }
        Ok(chain)
    }

    /// Whether the caller's contact scope covers a department.
    pub async fn can_see_department(
        &self,
        caller: &Caller,
        dept: &Department,
    ) -> Result<bool, CoreError> {
        match &caller.contact_scope {
            ContactScope::All => Ok(true),
            ContactScope::Departments(keys) => Ok(self
                .ancestry(dept)
                .await?
                .iter()
                .any(|d| keys.contains(&d.key))),
        }
    }

    async fn ensure_visible(&self, caller: &Caller, dept: &Department) -> Result<(), CoreError> {
        if self.can_see_department(caller, dept).await? {
            Ok(())
        } else {
            Err(CoreError::Forbidden(
                "the department is outside the app's contact scope".into(),
            ))
        }
    }

    /// The key of a department of the caller's tenant named as the new parent of a
    /// department patch, whether or not the caller may see it: [`Self::update_department`]
    /// checks the parent's visibility itself, and only when the patch moves the department.
    /// A client that sends the whole department back (Feishu's PUT) names the parent it has
    /// now, which an app limited to that department does not see, and must not be refused
    /// for a move it does not make.
    pub async fn parent_for_patch(
        &self,
        caller: &Caller,
        lookup: &DeptLookup,
    ) -> Result<DeptKey, CoreError> {
        caller.require(Scope::ContactWrite)?;
        Ok(self.department(caller.tenant, lookup).await?.key)
    }

    /// Finds a department the caller may see.
    pub async fn get_department(
        &self,
        caller: &Caller,
        lookup: &DeptLookup,
    ) -> Result<Department, CoreError> {
        caller.require(Scope::ContactRead)?;
        let dept = self.department(caller.tenant, lookup).await?;
        self.ensure_visible(caller, &dept).await?;
        Ok(dept)
    }

    /// The parent chain of a department, nearest first, without the department itself.
    pub async fn department_parents(
        &self,
        caller: &Caller,
        lookup: &DeptLookup,
    ) -> Result<Vec<Department>, CoreError> {
        let dept = self.get_department(caller, lookup).await?;
        let mut chain = self.ancestry(&dept).await?;
        chain.remove(0);
        // Feishu's parent list never holds the root, and holds only the parents within the
        // app's contact scope: those at or below the highest one the scope names (the chain
        // is nearest first, so everything before it hangs from it).
        chain.retain(|d| !d.is_root());
        if let ContactScope::Departments(keys) = &caller.contact_scope {
            let top = chain.iter().rposition(|d| keys.contains(&d.key));
            chain.truncate(top.map_or(0, |i| i + 1));
        }
        Ok(chain)
    }

    /// Children of a department; with `recursive`, the whole subtree in breadth-first order.
    pub async fn child_departments(
        &self,
        caller: &Caller,
        lookup: &DeptLookup,
        recursive: bool,
    ) -> Result<Vec<Department>, CoreError> {
        let dept = self.get_department(caller, lookup).await?;
        let mut out = Vec::new();
        let mut frontier = std::collections::VecDeque::from([dept.key]);
        // Each department once: the stores refuse moves that would close a cycle, and this
        // keeps a damaged table (edited by hand, say) from making the walk endless.
        let mut seen = HashSet::from([dept.key]);
        while let Some(key) = frontier.pop_front() {
            let mut children = self
                .inner
                .store
                .child_departments(caller.tenant, key)
                .await?;
            children.retain(|c| seen.insert(c.key));
            if recursive {
                frontier.extend(children.iter().map(|c| c.key));
            }
            out.extend(children);
            if !recursive {
                break;
            }
        }
        Ok(out)
    }

    /// Creates a department under a parent the caller may see, within Feishu's limits.
    #[instrument(skip_all, fields(tenant = %caller.tenant))]
    pub async fn create_department(
        &self,
        caller: &Caller,
        new: NewDepartment,
    ) -> Result<Department, CoreError> {
        // `Stale`: the parent was deleted after this read it; the next round says so.
        retry_stale(|| self.create_department_once(caller, new.clone())).await
    }

    async fn create_department_once(
        &self,
        caller: &Caller,
        new: NewDepartment,
    ) -> Result<Department, CoreError> {
        caller.require(Scope::ContactWrite)?;
        let parent = self
            .department(caller.tenant, &DeptLookup::Key(new.parent))
            .await
            .map_err(|_| CoreError::BadReference {
                field: "parent_department_id",
                reason: "the parent department does not exist".into(),
            })?;
        self.ensure_visible(caller, &parent).await?;
        if self.ancestry(&parent).await?.len() > MAX_DEPTH {
            return Err(CoreError::conflict(
                ConflictKind::TreeTooDeep,
                format!("departments may be at most {MAX_DEPTH} levels deep"),
            ));
        }
        let siblings = self.children_with_room(caller.tenant, parent.key).await?;
        if self.inner.store.count_departments(caller.tenant).await? >= MAX_DEPARTMENTS {
            return Err(CoreError::conflict(
                ConflictKind::TooManyDepartments,
                format!("a tenant may have at most {MAX_DEPARTMENTS} departments"),
            ));
        }
        if let Some(leader) = &new.fields.leader {
            self.active_user(
                caller.tenant,
                &UserLookup::OpenId(leader.to_string()),
                "leader_user_id",
            )
            .await?;
        }
        let mut fields = new.fields;
        check_deputies(&fields.deputies)?;
        self.check_department_lists(
            caller.tenant,
            &mut fields.hrbps,
            &mut fields.unit_ids,
            &mut fields.group_chat_employee_types,
        )
        .await?;
        let main = fields.leader.clone();
        fields.deputies.retain(|d| Some(d) != main.as_ref());
        if new.order_after_siblings {
            fields.order = siblings
                .iter()
                .map(|d| d.fields.order)
                .max()
                .map_or(0, |max| max.saturating_add(1));
        }
        let now = self.inner.clock.now_ms();
        let dept = Department {
            key: DeptKey(0),
            tenant: caller.tenant,
            open_department_id: self.inner.ids.open_department_id(),
            department_id: new
                .department_id
                .unwrap_or_else(|| self.inner.ids.department_id()),
            parent: Some(parent.key),
            fields,
            is_deleted: false,
            created_at: now,
            updated_at: now,
        };
        Ok(self
            .inner
            .store
            .insert_department(
                &dept,
                &lifecycle::change_completing(caller, dept.open_department_id.as_str()),
            )
            .await?)
    }

    /// Changes a department; a new parent moves its whole subtree, which must not create a
    /// cycle or exceed the depth limit.
    #[instrument(skip_all, fields(tenant = %caller.tenant))]
    pub async fn update_department(
        &self,
        caller: &Caller,
        lookup: &DeptLookup,
        patch: DepartmentPatch,
    ) -> Result<Department, CoreError> {
        retry_stale(|| self.update_department_once(caller, lookup, patch.clone())).await
    }

    async fn update_department_once(
        &self,
        caller: &Caller,
        lookup: &DeptLookup,
        patch: DepartmentPatch,
    ) -> Result<Department, CoreError> {
        caller.require(Scope::ContactWrite)?;
        let mut dept = self.department(caller.tenant, lookup).await?;
        self.ensure_visible(caller, &dept).await?;
        // The root stands for the tenant itself; Feishu refuses every operation on it
        // ("process root dept error"), a rename or a new leader as much as a move.
        if dept.is_root() {
            return Err(CoreError::conflict(
                ConflictKind::RootImmutable,
                "the root department cannot be changed",
            ));
        }
        if let Some(new_parent) = patch.parent {
            if Some(new_parent) != dept.parent {
                let parent = self
                    .department(caller.tenant, &DeptLookup::Key(new_parent))
                    .await
                    .map_err(|_| CoreError::BadReference {
                        field: "parent_department_id",
                        reason: "the parent department does not exist".into(),
                    })?;
                self.ensure_visible(caller, &parent).await?;
                let chain = self.ancestry(&parent).await?;
                if chain.iter().any(|d| d.key == dept.key) {
                    return Err(CoreError::conflict(
                        ConflictKind::Cycle,
                        "a department cannot move under itself or its own subtree",
                    ));
                }
                let height = self.subtree_height(caller.tenant, dept.key).await?;
                if chain.len() + height > MAX_DEPTH + 1 {
                    return Err(CoreError::conflict(
                        ConflictKind::TreeTooDeep,
                        format!("departments may be at most {MAX_DEPTH} levels deep"),
                    ));
                }
                self.children_with_room(caller.tenant, parent.key).await?;
                dept.parent = Some(parent.key);
            }
        }
        if let Some(id) = patch.department_id {
            // The store's unique index refuses an id another department holds.
            dept.department_id = id;
        }
        if let Some(name) = patch.name {
            dept.fields.name = name;
        }
        // A patch changes the languages it names (an empty name clears one) and keeps
        // the others, as a PATCH changes only what it sends.
        if let Some(i18n) = patch.i18n_name {
            let names = &mut dept.fields.i18n_name;
            for (new, old) in [
                (i18n.zh_cn, &mut names.zh_cn),
                (i18n.ja_jp, &mut names.ja_jp),
                (i18n.en_us, &mut names.en_us),
            ] {
                if let Some(v) = new {
                    *old = Some(v).filter(|v| !v.is_empty());
                }
            }
        }
        if let Some(leader) = patch.leader {
            if let Some(l) = &leader {
                self.active_user(
                    caller.tenant,
                    &UserLookup::OpenId(l.to_string()),
                    "leader_user_id",
                )
                .await?;
            }
            dept.fields.leader = leader;
        }
        if let Some(deputies) = patch.deputies {
            check_deputies(&deputies)?;
            for d in &deputies {
                self.active_user(
                    caller.tenant,
                    &UserLookup::OpenId(d.to_string()),
                    "leader_user_id",
                )
                .await?;
            }
            dept.fields.deputies = deputies;
        }
        if let Some(order) = patch.order {
            dept.fields.order = order;
        }
        // The lists are checked only when the patch sends one: the stored ones were checked
        // when they were written, and a deleted user is taken off them.
        let lists_sent = patch.hrbps.is_some()
            || patch.unit_ids.is_some()
            || patch.group_chat_employee_types.is_some();
        if let Some(hrbps) = patch.hrbps {
            dept.fields.hrbps = hrbps;
        }
        if let Some(units) = patch.unit_ids {
            dept.fields.unit_ids = units;
        }
        if let Some(types) = patch.group_chat_employee_types {
            dept.fields.group_chat_employee_types = types;
        }
        if lists_sent {
            let f = &mut dept.fields;
            self.check_department_lists(
                caller.tenant,
                &mut f.hrbps,
                &mut f.unit_ids,
                &mut f.group_chat_employee_types,
            )
            .await?;
        }
        // The main leader is not also a deputy (a new leader may have been one).
        let main = dept.fields.leader.clone();
        dept.fields.deputies.retain(|d| Some(d) != main.as_ref());
        self.save_read_department(caller, &mut dept).await?;
        Ok(dept)
    }

    /// Checks a department's HRBPs (each an active user of the tenant), unit ids and group
    /// chat employee types, and drops repeats, keeping the first of each. Each list holds
    /// at most [`MAX_DEPARTMENT_LIST`] entries.
    async fn check_department_lists(
        &self,
        tenant: TenantId,
        hrbps: &mut Vec<OpenId>,
        unit_ids: &mut Vec<String>,
        types: &mut Vec<i64>,
    ) -> Result<(), CoreError> {
        for (field, len) in [
            ("department_hrbps", hrbps.len()),
            ("unit_ids", unit_ids.len()),
            ("group_chat_employee_types", types.len()),
        ] {
            if len > MAX_DEPARTMENT_LIST {
                return Err(CoreError::invalid(
                    field,
                    format!("at most {MAX_DEPARTMENT_LIST} entries"),
                ));
            }
        }
        for h in hrbps.iter() {
            self.active_user(
                tenant,
                &UserLookup::OpenId(h.to_string()),
                "department_hrbps",
            )
            .await?;
        }
        for u in unit_ids.iter() {
            if u.is_empty() || u.chars().count() > 64 {
                return Err(CoreError::invalid(
                    "unit_ids",
                    "each unit id must be 1 to 64 characters",
                ));
            }
        }
        // Employee type ids are small; the bound keeps every value exact in clients that
        // read JSON numbers as doubles (JavaScript), which a read-modify-write relies on.
        if let Some(t) = types
            .iter()
            .find(|t| !(1..=i64::from(i32::MAX)).contains(*t))
        {
            return Err(CoreError::invalid(
                "group_chat_employee_types",
                format!("{t} is not an employee type (1 to {})", i32::MAX),
            ));
        }
        dedup_keep_first(hrbps);
        dedup_keep_first(unit_ids);
        dedup_keep_first(types);
        Ok(())
    }

    /// The live children of `parent`, or `TooManyChildren` when it has no room for one more
    /// (the store checks again inside the write, where a racing create is seen).
    async fn children_with_room(
        &self,
        tenant: TenantId,
        parent: DeptKey,
    ) -> Result<Vec<Department>, CoreError> {
        let children = self.inner.store.child_departments(tenant, parent).await?;
        if children.len() as u64 >= MAX_CHILDREN {
            return Err(CoreError::conflict(
                ConflictKind::TooManyChildren,
                format!("a department may have at most {MAX_CHILDREN} children"),
            ));
        }
        Ok(children)
    }

    /// Levels below and including a department (1 for a leaf).
    async fn subtree_height(&self, tenant: TenantId, key: DeptKey) -> Result<usize, CoreError> {
        let mut level = vec![key];
        let mut seen = HashSet::from([key]);
        let mut height = 0;
        while !level.is_empty() {
            height += 1;
            let mut next = Vec::new();
            for k in level {
                next.extend(
                    self.inner
                        .store
                        .child_departments(tenant, k)
                        .await?
                        .into_iter()
                        .map(|d| d.key)
                        // A damaged table with a cycle must not make this endless.
                        .filter(|k| seen.insert(*k)),
                );
            }
            level = next;
        }
        Ok(height)
    }

    /// Deletes an empty department: refused while it has children or members, as Feishu does.
    #[instrument(skip_all, fields(tenant = %caller.tenant))]
    pub async fn delete_department(
        &self,
        caller: &Caller,
        lookup: &DeptLookup,
    ) -> Result<(), CoreError> {
        retry_stale(|| self.delete_department_once(caller, lookup)).await
    }

    async fn delete_department_once(
        &self,
        caller: &Caller,
        lookup: &DeptLookup,
    ) -> Result<(), CoreError> {
        caller.require(Scope::ContactWrite)?;
        let mut dept = self.department(caller.tenant, lookup).await?;
        self.ensure_visible(caller, &dept).await?;
        if dept.is_root() {
            return Err(CoreError::conflict(
                ConflictKind::RootImmutable,
                "the root department cannot be deleted",
            ));
        }
        if !self
            .inner
            .store
            .child_departments(caller.tenant, dept.key)
            .await?
            .is_empty()
        {
            return Err(CoreError::conflict(
                ConflictKind::DepartmentNotEmpty,
                "the department still has child departments",
            ));
        }
        if self
            .inner
            .store
            .department_member_count(caller.tenant, dept.key)
            .await?
            > 0
        {
            return Err(CoreError::conflict(
                ConflictKind::DepartmentNotEmpty,
                "the department still has members",
            ));
        }
        dept.is_deleted = true;
        self.save_read_department(caller, &mut dept).await?;
        Ok(())
    }

    /// Writes users and departments that this request read and changed, only if no other
    /// write changed them since the read (`Store::save_checked`; `Stale` otherwise, and the
    /// caller tries again from its read). Their `updated_at`, still the value read, moves to
    /// now, or one past the value read, so that every write changes it.
    pub(crate) async fn save_read(
        &self,
        tenant: TenantId,
        users: &mut [User],
        departments: &mut [Department],
        groups: &[Group],
        change: &Change,
    ) -> Result<(), CoreError> {
        let now = self.inner.clock.now_ms();
        let read = ReadVersions {
            users: users.iter().map(|u| (u.key, u.updated_at)).collect(),
            departments: departments.iter().map(|d| (d.key, d.updated_at)).collect(),
        };
        for u in users.iter_mut() {
            u.updated_at = now.max(u.updated_at.saturating_add(1));
        }
        for d in departments.iter_mut() {
            d.updated_at = now.max(d.updated_at.saturating_add(1));
        }
        self.inner
            .store
            .save_checked(tenant, users, departments, groups, &read, change)
            .await?;
        Ok(())
    }

    /// `save_read` of one user the caller changed.
    pub(crate) async fn save_read_user(
        &self,
        caller: &Caller,
        user: &mut User,
    ) -> Result<(), CoreError> {
        self.save_read(
            caller.tenant,
            std::slice::from_mut(user),
            &mut [],
            &[],
            &change_of(caller),
        )
        .await
    }

    /// `save_read` of one department the caller changed.
    pub(crate) async fn save_read_department(
        &self,
        caller: &Caller,
        dept: &mut Department,
    ) -> Result<(), CoreError> {
        self.save_read(
            caller.tenant,
            &mut [],
            std::slice::from_mut(dept),
            &[],
            &change_of(caller),
        )
        .await
    }

    /// Reads a department by key for rendering references (ids in responses); no scope
    /// check, because a visible record may name departments the caller cannot open.
    pub async fn department_for_display(
        &self,
        tenant: TenantId,
        key: DeptKey,
    ) -> Result<Option<Department>, CoreError> {
        Ok(self
            .inner
            .store
            .get_department(tenant, &DeptLookup::Key(key))
            .await?)
    }

    /// The open id of a department by key, for rendering a reference to it (the department
    /// ids of a search result); no scope check, as for [`Self::department_for_display`].
    ///
    /// Answered from memory once read: a department's open id is given when it is created
    /// and never changes, keys are never reused, and a deleted department keeps its row
    /// (deletion is a flag), so a cached answer is the store's answer on every node. A search
    /// at a million users on PostgreSQL spent one of its four statements (0.15-0.2 ms and a
    /// round trip) reading the one department its users belong to.
    pub async fn department_open_id(
        &self,
        tenant: TenantId,
        key: DeptKey,
    ) -> Result<Option<OpenDepartmentId>, CoreError> {
        if let Some(id) = self
            .inner
            .dept_open_ids
            .lock()
            .ok()
            .and_then(|cache| cache.get(&(tenant, key)).cloned())
        {
            return Ok(Some(id));
        }
        let Some(d) = self
            .inner
            .store
            .get_department(tenant, &DeptLookup::Key(key))
            .await?
        else {
            // Not cached: a department this process has not seen may yet be created with a
            // key another node handed out.
            return Ok(None);
        };
        if let Ok(mut cache) = self.inner.dept_open_ids.lock() {
            if cache.len() >= DEPT_OPEN_IDS_MAX {
                cache.clear();
            }
            cache.insert((tenant, key), d.open_department_id.clone());
        }
        Ok(Some(d.open_department_id))
    }

    /// Reads a user for rendering a reference (a leader's id in another id type); no scope
    /// check, for the same reason.
    pub async fn user_for_display(
        &self,
        tenant: TenantId,
        lookup: &UserLookup,
    ) -> Result<Option<User>, CoreError> {
        Ok(self.inner.store.get_user(tenant, lookup).await?)
    }

    /// A user of the caller's tenant (resigned ones included) named by a reference the
    /// caller makes (a department's leader, a hand-over's acceptor), or `None` when nobody
    /// by that id is there or the caller may not see them: to an app limited to some
    /// departments a user outside them does not exist, whichever field names them, so that
    /// no reference reaches or probes for users outside the app's scope.
    pub async fn user_visible_to(
        &self,
        caller: &Caller,
        lookup: &UserLookup,
    ) -> Result<Option<User>, CoreError> {
        match self.inner.store.get_user(caller.tenant, lookup).await? {
            Some(u) if self.can_see_user(caller, &u).await? => Ok(Some(u)),
            _ => Ok(None),
        }
    }

    /// Feishu's `member_count` and `primary_member_count`: the active users in the
    /// department or below it, and those whose primary department is there. For the root
    /// that is every active user of the tenant (each has one primary department), which
    /// the tenant row keeps.
    pub async fn department_counts(&self, dept: &Department) -> Result<(u64, u64), CoreError> {
        if dept.is_root() {
            let active = self
                .inner
                .store
                .get_tenant(dept.tenant)
                .await?
                .map_or(0, |t| t.active_users);
            return Ok((active, active));
        }
        Ok(self
            .inner
            .store
            .department_subtree_counts(dept.tenant, dept.key)
            .await?)
    }

    /// Number of active users directly in a department.
    pub async fn department_member_count(
        &self,
        tenant: TenantId,
        key: DeptKey,
    ) -> Result<u64, CoreError> {
        Ok(self
            .inner
            .store
            .department_member_count(tenant, key)
            .await?)
    }

    // ---------------------------------------------------------------------------- groups

    /// Creates a user group, optionally owned by an active user.
    #[instrument(skip_all, fields(tenant = %caller.tenant))]
    pub async fn create_group(
        &self,
        caller: &Caller,
        name: &str,
        description: Option<String>,
        owner: Option<&UserLookup>,
    ) -> Result<crate::group::Group, CoreError> {
        caller.require(Scope::ContactWrite)?;
        let name = crate::group::parse_group_name(name)?;
        let description = description
            .map(|d| crate::values::bounded_text("description", &d, 255, false))
            .transpose()?;
        let owner = match owner {
            Some(l) => Some(self.active_user(caller.tenant, l, "owner").await?.open_id),
            None => None,
        };
        let group = crate::group::Group {
            key: 0,
            tenant: caller.tenant,
            group_id: self.inner.ids.hex(16),
            name,
            description,
            owner,
            created_at: self.inner.clock.now_ms(),
        };
        Ok(self.inner.store.insert_group(&group).await?)
    }

    /// The tenant's groups, oldest first.
    pub async fn list_groups(
        &self,
        caller: &Caller,
    ) -> Result<Vec<crate::group::Group>, CoreError> {
        caller.require(Scope::ContactRead)?;
        Ok(self.inner.store.list_groups(caller.tenant).await?)
    }

    // ----------------------------------------------------------------------------- users

    /// An active user the caller may see, as a leader: one outside the app's contact scope
    /// is "no such user", so that naming a leader cannot probe for users the app cannot read.
    pub(crate) async fn visible_leader(
        &self,
        caller: &Caller,
        lookup: &UserLookup,
    ) -> Result<User, CoreError> {
        let leader = self
            .active_user(caller.tenant, lookup, "leader_user_id")
            .await?;
        if !self.can_see_user(caller, &leader).await? {
            return Err(CoreError::BadReference {
                field: "leader_user_id",
                reason: "no such user".into(),
            });
        }
        Ok(leader)
    }

    async fn active_user(
        &self,
        tenant: TenantId,
        lookup: &UserLookup,
        field: &'static str,
    ) -> Result<User, CoreError> {
        match self.inner.store.get_user(tenant, lookup).await? {
            Some(u) if !u.status.is_resigned => Ok(u),
            Some(_) => Err(CoreError::BadReference {
                field,
                reason: "the user has resigned".into(),
            }),
            None => Err(CoreError::BadReference {
                field,
                reason: "no such user".into(),
            }),
        }
    }

    /// Resolves dotted-line leader references (Feishu `dotted_line_leader_user_ids`) to open
    /// ids: each an active user of the caller's tenant that the caller may see, duplicates
    /// dropped, at most
    /// `MAX_DOTTED_LINE_LEADERS`. Adapters call it before `create_user`/`patch_user`.
    pub async fn dotted_line_leaders(
        &self,
        caller: &Caller,
        lookups: &[UserLookup],
    ) -> Result<Vec<OpenId>, CoreError> {
        const FIELD: &str = "dotted_line_leader_user_ids";
        if lookups.len() > MAX_DOTTED_LINE_LEADERS {
            return Err(CoreError::invalid(
                FIELD,
                format!("may name at most {MAX_DOTTED_LINE_LEADERS} users"),
            ));
        }
        let mut out: Vec<OpenId> = Vec::with_capacity(lookups.len());
        for lookup in lookups {
            let leader = self.active_user(caller.tenant, lookup, FIELD).await?;
            if !self.can_see_user(caller, &leader).await? {
                return Err(CoreError::BadReference {
                    field: FIELD,
                    reason: "no such user".into(),
                });
            }
            if !out.contains(&leader.open_id) {
                out.push(leader.open_id);
            }
        }
        Ok(out)
    }

    /// Reads a user (resigned ones included) that the caller may see.
    pub async fn get_user(&self, caller: &Caller, lookup: &UserLookup) -> Result<User, CoreError> {
        caller.require(Scope::ContactRead)?;
        let found = self.inner.store.get_user(caller.tenant, lookup).await?;
        self.visible(caller, lookup, found, |u| u).await
    }

    /// Reads a user as `get_user` does, with the departments of its memberships (deleted
    /// ones included, in membership order) from the same read: what rendering needs.
    pub async fn get_user_with_departments(
        &self,
        caller: &Caller,
        lookup: &UserLookup,
    ) -> Result<(User, Vec<Department>), CoreError> {
        caller.require(Scope::ContactRead)?;
        let found = self
            .inner
            .store
            .get_user_with_departments(caller.tenant, lookup)
            .await?;
        self.visible(caller, lookup, found, |(u, _)| u).await
    }

    /// What a read of `lookup` found, if it is a user the caller may see. Outside the scope
    /// a user is reported as absent, so that scopes leak nothing.
    async fn visible<T>(
        &self,
        caller: &Caller,
        lookup: &UserLookup,
        found: Option<T>,
        user: impl Fn(&T) -> &User,
    ) -> Result<T, CoreError> {
        let not_found = || CoreError::not_found(Entity::User, lookup_text(lookup));
        let found = found.ok_or_else(not_found)?;
        if !self.can_see_user(caller, user(&found)).await? {
            return Err(not_found());
        }
        Ok(found)
    }

    /// Whether any of the user's departments is in the caller's scope; for a resigned user,
    /// any of the departments it left when deleted.
    pub async fn can_see_user(&self, caller: &Caller, user: &User) -> Result<bool, CoreError> {
        self.can_see_user_memo(caller, user, &mut HashMap::new())
            .await
    }

    /// `can_see_user`, remembering each department's answer for the rest of a request.
    pub(crate) async fn can_see_user_memo(
        &self,
        caller: &Caller,
        user: &User,
        memo: &mut HashMap<crate::department::DeptKey, bool>,
    ) -> Result<bool, CoreError> {
        if matches!(caller.contact_scope, ContactScope::All) {
            return Ok(true);
        }
        let former = user.profile.former_departments.iter();
        for key in user
            .profile
            .departments
            .iter()
            .map(|m| &m.department)
            .chain(former)
        {
            let visible = if let Some(v) = memo.get(key) {
                *v
            } else {
                let v = match self
                    .inner
                    .store
                    .get_department(caller.tenant, &DeptLookup::Key(*key))
                    .await?
                {
                    Some(d) => self.can_see_department(caller, &d).await?,
                    None => false,
                };
                memo.insert(*key, v);
                v
            };
            if visible {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Creates one user through the batch path, so that single and batch writes share rules.
    pub async fn create_user(&self, caller: &Caller, new: NewUser) -> Result<User, CoreError> {
        let report = self
            .create_users(caller, vec![Ok(new)], BatchMode::Atomic)
            .await?;
        let created = report.items.into_iter().next().ok_or_else(|| {
            CoreError::Storage(StoreError::Backend("empty batch report".into()))
        })??;
        self.inner
            .store
            .get_user(caller.tenant, &UserLookup::Key(created.key))
            .await?
            .ok_or_else(|| CoreError::Storage(StoreError::Backend("created user vanished".into())))
    }

    /// The one batch write path: validates every item, resolves leaders (also to other
    /// items of the same batch, in dependency order), checks uniqueness within the batch and
    /// against the store, then writes in chunked multi-row transactions. Results come back
    /// in request order. In `Atomic` mode nothing is written unless every item is good.
    #[instrument(skip_all, fields(tenant = %caller.tenant, items = items.len(), ?mode))]
    pub async fn create_users(
        &self,
        caller: &Caller,
        items: Vec<BatchItem>,
        mode: BatchMode,
    ) -> Result<BatchReport, CoreError> {
        caller.require(Scope::ContactWrite)?;
        let tenant = caller.tenant;
        let PreparedBatch {
            mut results,
            mut pending,
            levels,
        } = self.prepare_batch(caller, items).await?;

        if mode == BatchMode::Atomic && results.iter().any(|r| matches!(r, Some(Err(_)))) {
            return Ok(finish_atomic_failure(results));
        }

        let mut failed_open_ids: HashSet<String> = HashSet::new();
        if mode == BatchMode::Atomic {
            let order: Vec<usize> = levels.into_iter().flatten().collect();
            let users: Vec<User> = order
                .iter()
                .filter_map(|&i| pending[i].as_ref().map(|p| p.user.clone()))
                .collect();
            let written = self
                .inner
                .store
                .insert_users(tenant, &users, true, &change_creating(caller, &users))
                .await?;
            if written.iter().any(Result::is_err) {
                for (&i, r) in order.iter().zip(written) {
                    if let Err(e) = r {
                        results[i] = Some(Err(e.into()));
                    }
                }
                return Ok(finish_atomic_failure(results));
            }
            for (&i, r) in order.iter().zip(written) {
                if let (Ok(key), Some(p)) = (r, pending[i].take()) {
                    results[i] = Some(Ok(p.created(key)));
                }
            }
        } else {
            for level in levels {
                for chunk in level.chunks(BATCH_CHUNK) {
                    let mut idx = Vec::with_capacity(chunk.len());
                    let mut users = Vec::with_capacity(chunk.len());
                    for &i in chunk {
                        let Some(p) = pending[i].as_ref() else {
                            continue;
                        };
                        // A follower of a leader that failed to be written fails too.
                        if let Some(l) = &p.user.profile.leader {
                            if failed_open_ids.contains(l.as_str()) {
                                failed_open_ids.insert(p.user.open_id.to_string());
                                results[i] = Some(Err(CoreError::BadReference {
                                    field: "leader_user_id",
                                    reason: "the leader could not be created".into(),
                                }));
                                pending[i] = None;
                                continue;
                            }
                        }
                        idx.push(i);
                        users.push(p.user.clone());
                    }
                    if users.is_empty() {
                        continue;
                    }
                    let written = self
                        .inner
                        .store
                        .insert_users(tenant, &users, false, &change_of(caller))
                        .await?;
                    for (&i, r) in idx.iter().zip(written) {
                        let Some(p) = pending[i].take() else { continue };
                        results[i] = Some(match r {
                            Ok(key) => Ok(p.created(key)),
                            Err(e) => {
                                failed_open_ids.insert(p.user.open_id.to_string());
                                Err(e.into())
                            }
                        });
                    }
                }
            }
        }
        Ok(BatchReport {
            items: results
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| {
                        Err(CoreError::conflict(
                            ConflictKind::NotWritten,
                            "item was not processed",
                        ))
                    })
                })
                .collect(),
        })
    }

    /// Everything of the batch path before the write: parse results, department checks,
    /// duplicates within the batch and against the store, leader resolution in dependency
    /// levels. Shared by `create_users` and the task engine.
    async fn prepare_batch(
        &self,
        caller: &Caller,
        items: Vec<BatchItem>,
    ) -> Result<PreparedBatch, CoreError> {
        let tenant = caller.tenant;
        let n = items.len();
        let mut results: Vec<Option<Result<CreatedUser, CoreError>>> =
            (0..n).map(|_| None).collect();
        let mut pending: Vec<Option<PreparedItem>> = Vec::with_capacity(n);
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Ok(new) => pending.push(Some(self.prepare(tenant, new))),
                Err(e) => {
                    results[i] = Some(Err(e));
                    pending.push(None);
                }
            }
        }
        self.check_departments(caller, &mut pending, &mut results)
            .await?;
        // Every check that does not depend on the other items runs before the duplicates
        // within the batch are settled, so that an item refused for its own reasons (a
        // value an active user holds, a leader who does not exist) keeps no later item
        // from the values it named.
        self.check_taken(tenant, &mut pending, &mut results).await?;
        self.resolve_outside_leaders(caller, &mut pending, &mut results)
            .await?;
        // Within the batch the first item to claim a value keeps it, but only if it is
        // written: an item that then fails on its leader inside the batch (a cycle, a
        // leader that failed) gives its values back to the items that lost them to it, and
        // the duplicates and leaders are settled again without it. Each round drops at
        // least one item for good, and a round is only a pass over the batch in memory.
        let snapshot = has_batch_duplicates(&pending).then(|| pending.clone());
        let mut dropped: Vec<(usize, Option<Result<CreatedUser, CoreError>>)> = Vec::new();
        let levels = loop {
            let winners = check_batch_duplicates(&mut pending, &mut results);
            let levels = link_batch_leaders(&mut pending, &mut results);
            let Some(snapshot) = &snapshot else {
                break levels;
            };
            let failed: Vec<usize> = winners
                .into_iter()
                .filter(|&w| pending[w].is_none())
                .collect();
            if failed.is_empty() {
                break levels;
            }
            for w in failed {
                dropped.push((w, results[w].take()));
            }
            for (i, item) in snapshot.iter().enumerate() {
                if item.is_some() {
                    results[i] = None;
                }
            }
            pending.clone_from(snapshot);
            for (i, _) in &dropped {
                pending[*i] = None;
            }
        };
        for (i, result) in dropped {
            results[i] = result;
        }
        Ok(PreparedBatch {
            results,
            pending,
            levels,
        })
    }

    fn prepare(&self, tenant: TenantId, new: NewUser) -> PreparedItem {
        let now = self.inner.clock.now_ms();
        let mut profile = new.profile;
        // A department named twice would break the membership key; keep the first mention.
        let mut seen = HashSet::new();
        profile.departments.retain(|m| seen.insert(m.department));
        if profile.join_time.is_none() {
            profile.join_time = Some(now / 1000);
        }
        PreparedItem {
            leader_ref: new.leader,
            user: User {
                key: crate::user::UserKey(0),
                tenant,
                open_id: self.inner.ids.open_id(),
                union_id: self.inner.ids.union_id(),
                user_id: new.user_id.unwrap_or_else(|| self.inner.ids.user_id()),
                profile,
                status: UserStatus {
                    is_activated: new.activated,
                    is_unjoin: !new.activated,
                    ..UserStatus::default()
                },
                created_at: now,
                updated_at: now,
                resigned_at: None,
                logout_at: None,
            },
        }
    }

    /// Every department named by an item must exist, not be deleted, and be visible to the
    /// caller. An item with no department goes to the root, which must be visible too.
    async fn check_departments(
        &self,
        caller: &Caller,
        pending: &mut [Option<PreparedItem>],
        results: &mut [Option<Result<CreatedUser, CoreError>>],
    ) -> Result<(), CoreError> {
        let mut verdicts: HashMap<DeptKey, Result<(), &'static str>> = HashMap::new();
        let root = self
            .department(
                caller.tenant,
                &DeptLookup::OpenId(crate::department::ROOT_ID.into()),
            )
            .await?;
        for (i, slot) in pending.iter_mut().enumerate() {
            let Some(p) = slot else { continue };
            if p.user.profile.departments.is_empty() {
                p.user.profile.departments.push(crate::user::Membership {
                    department: root.key,
                    user_order: 0,
                    department_order: 0,
                    is_primary: true,
                });
            }
            let mut failure = None;
            for m in &p.user.profile.departments {
                let verdict = if let Some(v) = verdicts.get(&m.department) {
                    *v
                } else {
                    let v = match self
                        .inner
                        .store
                        .get_department(caller.tenant, &DeptLookup::Key(m.department))
                        .await?
                    {
                        Some(d) if !d.is_deleted => {
                            if self.can_see_department(caller, &d).await? {
                                Ok(())
                            } else {
                                Err("outside")
                            }
                        }
                        _ => Err("missing"),
                    };
                    verdicts.insert(m.department, v);
                    v
                };
                if let Err(kind) = verdict {
                    failure = Some(if kind == "outside" {
                        CoreError::Forbidden(
                            "the department is outside the app's contact scope".into(),
                        )
                    } else {
                        CoreError::BadReference {
                            field: "department_ids",
                            reason: "the department does not exist".into(),
                        }
                    });
                    break;
                }
            }
            if let Some(e) = failure {
                results[i] = Some(Err(e));
                *slot = None;
            }
        }
        Ok(())
    }

    /// Values that active users already hold fail the items that carry them.
    async fn check_taken(
        &self,
        tenant: TenantId,
        pending: &mut [Option<PreparedItem>],
        results: &mut [Option<Result<CreatedUser, CoreError>>],
    ) -> Result<(), CoreError> {
        let live: Vec<usize> = (0..pending.len())
            .filter(|&i| pending[i].is_some())
            .collect();
        for chunk in live.chunks(BATCH_CHUNK) {
            let mut probe = UniqueProbe::default();
            for &i in chunk {
                if let Some(p) = &pending[i] {
                    probe_values_of(&mut probe, &p.user);
                }
            }
            let taken: TakenValues = self.inner.store.taken_user_values(tenant, &probe).await?;
            for &i in chunk {
                let Some(p) = &pending[i] else { continue };
                let clash = unique_values(&p.user)
                    .into_iter()
                    .find(|(key, value)| match key {
                        UniqueKey::UserId => taken.user_ids.contains(value),
                        UniqueKey::Email => taken.emails.contains(value),
                        UniqueKey::Mobile => taken.mobiles.contains(value),
                        UniqueKey::Username => taken.usernames.contains(value),
                        UniqueKey::EmployeeNo => taken.employee_nos.contains(value),
                        _ => false,
                    });
                if let Some((field, _)) = clash {
                    results[i] = Some(Err(CoreError::AlreadyExists {
                        entity: Entity::User,
                        field,
                    }));
                    pending[i] = None;
                }
            }
        }
        Ok(())
    }

    /// Resolves in the store the leader references that name no item of the batch (an
    /// item names another by its user id): each must be an active user the caller may see,
    /// or the item fails on its own. References to items of the batch are left for
    /// [`link_batch_leaders`], as the user ids that items of the batch claim are never those
    /// of active users (`check_taken` ran first).
    async fn resolve_outside_leaders(
        &self,
        caller: &Caller,
        pending: &mut [Option<PreparedItem>],
        results: &mut [Option<Result<CreatedUser, CoreError>>],
    ) -> Result<(), CoreError> {
        let batch_ids: HashSet<String> = pending
            .iter()
            .flatten()
            .map(|p| p.user.user_id.folded())
            .collect();
        for i in 0..pending.len() {
            let Some(p) = &pending[i] else { continue };
            let Some(lookup) = p.leader_ref.clone() else {
                continue;
            };
            if let UserLookup::UserId(u) = &lookup {
                if batch_ids.contains(&u.to_ascii_lowercase()) {
                    continue;
                }
            }
            match self.visible_leader(caller, &lookup).await {
                Ok(leader) => {
                    if let Some(p) = pending[i].as_mut() {
                        p.user.profile.leader = Some(leader.open_id);
                        p.leader_ref = None;
                    }
                }
                Err(e) => {
                    results[i] = Some(Err(e));
                    pending[i] = None;
                }
            }
        }
        Ok(())
    }
}

/// Drops the repeats of a list, keeping each value's first place.
fn dedup_keep_first<T: Eq + std::hash::Hash + Clone>(list: &mut Vec<T>) {
    let mut seen = HashSet::with_capacity(list.len());
    list.retain(|x| seen.insert(x.clone()));
}

/// Links each item whose leader is another item of the batch (named by user id) to it, and
/// returns the items grouped in dependency levels: level 0 has no leader inside the batch,
/// level k+1 has its leader in level k. Items in a leader cycle, or whose leader is
/// themselves or a failed item, fail on their own. Leaders outside the batch were resolved
/// by `resolve_outside_leaders`, which left `leader_ref` set only on the others.
fn link_batch_leaders(
    pending: &mut [Option<PreparedItem>],
    results: &mut [Option<Result<CreatedUser, CoreError>>],
) -> Vec<Vec<usize>> {
    let leader_failed = |reason: &'static str| CoreError::BadReference {
        field: "leader_user_id",
        reason: reason.into(),
    };
    let mut by_user_id: HashMap<String, usize> = HashMap::new();
    for (i, p) in pending.iter().enumerate() {
        if let Some(p) = p {
            by_user_id.insert(p.user.user_id.folded(), i);
        }
    }
    // parent[i] = Some(j) when item i's leader is item j of this batch.
    let mut parent: Vec<Option<usize>> = vec![None; pending.len()];
    for i in 0..pending.len() {
        let Some(p) = &pending[i] else { continue };
        let Some(UserLookup::UserId(u)) = &p.leader_ref else {
            continue;
        };
        match by_user_id.get(&u.to_ascii_lowercase()).copied() {
            Some(j) if j == i => {
                results[i] = Some(Err(leader_failed("a user cannot lead themselves")));
                pending[i] = None;
            }
            Some(j) => parent[i] = Some(j),
            // Every item claiming that user id failed.
            None => {
                results[i] = Some(Err(leader_failed("the leader could not be created")));
                pending[i] = None;
            }
        }
    }
    // Level assignment by walking up; a walk that revisits an item is a cycle.
    let mut level: Vec<Option<usize>> = vec![None; pending.len()];
    for start in 0..pending.len() {
        if pending[start].is_none() || level[start].is_some() {
            continue;
        }
        let mut path = vec![start];
        let mut seen: HashSet<usize> = HashSet::from([start]);
        let mut cur = start;
        let base: Result<usize, &'static str> = loop {
            match parent[cur] {
                None => break Ok(0),
                Some(j) => {
                    if pending[j].is_none() {
                        break Err("the leader could not be created");
                    }
                    if let Some(l) = level[j] {
                        break Ok(l + 1);
                    }
                    if !seen.insert(j) {
                        break Err("leaders form a cycle");
                    }
                    path.push(j);
                    cur = j;
                }
            }
        };
        match base {
            Ok(mut l) => {
                // The walk ended at the item nearest the top, which sits at level `l`;
                // each item below it on the path is one level deeper.
                for &k in path.iter().rev() {
                    level[k] = Some(l);
                    l += 1;
                }
            }
            Err(reason) => {
                for &k in &path {
                    results[k] = Some(Err(leader_failed(reason)));
                    pending[k] = None;
                }
            }
        }
    }
    // Items whose leader sits in the batch take the leader's generated open id.
    for i in 0..pending.len() {
        if let (Some(j), true) = (parent[i], pending[i].is_some()) {
            let leader_open = pending[j].as_ref().map(|p| p.user.open_id.clone());
            match (leader_open, pending[i].as_mut()) {
                (Some(open), Some(p)) => p.user.profile.leader = Some(open),
                (None, Some(_)) => {
                    results[i] = Some(Err(leader_failed("the leader could not be created")));
                    pending[i] = None;
                }
                _ => {}
            }
        }
    }
    let depth = level.iter().flatten().max().map_or(0, |m| m + 1);
    let mut levels: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (i, l) in level.iter().enumerate() {
        if let (Some(l), true) = (l, pending[i].is_some()) {
            levels[*l].push(i);
        }
    }
    levels
}

/// The change context of a caller's write.
pub(crate) fn change_of(caller: &Caller) -> Change {
    Change::by(Actor::App(caller.app_id.clone()))
}

/// The change record of a write that creates `users`: a single user created inside
/// [`Directory::idempotent`] completes its key in the same transaction (a batch has no one
/// entity to answer with, so it is never keyed that way).
pub(crate) fn change_creating(caller: &Caller, users: &[User]) -> Change {
    match users {
        [one] => lifecycle::change_completing(caller, one.open_id.as_str()),
        _ => change_of(caller),
    }
}

/// A department's deputies are bounded like its other lists: each costs a user lookup on
/// every write and every answer.
fn check_deputies(deputies: &[OpenId]) -> Result<(), CoreError> {
    if deputies.len() > MAX_DEPARTMENT_LIST {
        return Err(CoreError::invalid(
            "leaders",
            format!("at most {MAX_DEPARTMENT_LIST} deputies"),
        ));
    }
    Ok(())
}

/// How long a read-modify-write keeps trying while other writes keep changing its entities
/// between its read and its write. Each round of racing writers lets one of them through,
/// but which one is luck: a count of attempts (64 before) let the unluckiest of 40 clients
/// patching one user on PostgreSQL run out and fail. A time bound lets every writer of a
/// pile-up through while still ending a write that can never succeed.
const STALE_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest pause between two attempts.
const STALE_MAX_PAUSE_US: u64 = 20_000;

/// Runs a read-modify-write until it writes without finding its entities changed since
/// its read (`StoreError::Stale`), each attempt reading afresh after a random pause whose
/// bound doubles with the attempts (to 20 ms: "full jitter", so that racing writers spread
/// out instead of meeting again in lockstep); after [`STALE_RETRY_FOR`] the last error
/// stands.
pub(crate) async fn retry_stale<T, F, Fut>(mut attempt: F) -> Result<T, CoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CoreError>>,
{
    use rand::Rng;
    let deadline = tokio::time::Instant::now() + STALE_RETRY_FOR;
    let mut n: u32 = 0;
    loop {
        match attempt().await {
            Err(CoreError::Storage(StoreError::Stale))
                if tokio::time::Instant::now() < deadline =>
            {
                let bound = (250_u64 << n.min(7)).min(STALE_MAX_PAUSE_US);
                let pause = rand::thread_rng().gen_range(0..=bound);
                tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
                n += 1;
            }
            other => return other,
        }
    }
}

/// A batch after `prepare_batch`: `results[i]` is set for items already refused,
/// `pending[i]` holds the others, and `levels` orders the pending ones leaders first.
pub(crate) struct PreparedBatch {
    pub(crate) results: Vec<Option<Result<CreatedUser, CoreError>>>,
    pub(crate) pending: Vec<Option<PreparedItem>>,
    pub(crate) levels: Vec<Vec<usize>>,
}

/// An item on its way into the store.
#[derive(Clone)]
pub(crate) struct PreparedItem {
    pub(crate) user: User,
    leader_ref: Option<UserLookup>,
}

impl PreparedItem {
    fn created(self, key: crate::user::UserKey) -> CreatedUser {
        CreatedUser {
            key,
            open_id: self.user.open_id,
            union_id: self.user.union_id,
            user_id: self.user.user_id,
        }
    }
}

/// Adds a user's unique values to a probe of the store.
pub(crate) fn probe_values_of(probe: &mut UniqueProbe, user: &User) {
    for (key, value) in unique_values(user) {
        match key {
            UniqueKey::UserId => probe.user_ids.push(value),
            UniqueKey::Email => probe.emails.push(value),
            UniqueKey::Mobile => probe.mobiles.push(value),
            UniqueKey::Username => probe.usernames.push(value),
            UniqueKey::EmployeeNo => probe.employee_nos.push(value),
            _ => {}
        }
    }
}

/// The values of a user that must be unique among active users, in folded form.
pub(crate) fn unique_values(user: &User) -> Vec<(UniqueKey, String)> {
    profile_unique_values(Some(&user.user_id), &user.profile)
}

/// `unique_values` of a user that may not have its user id yet (one is generated later).
fn profile_unique_values(user_id: Option<&UserId>, p: &UserProfile) -> Vec<(UniqueKey, String)> {
    let mut v: Vec<(UniqueKey, String)> = user_id
        .map(|id| (UniqueKey::UserId, id.folded()))
        .into_iter()
        .collect();
    if let Some(e) = &p.email {
        v.push((UniqueKey::Email, e.folded()));
    }
    if let Some(m) = &p.mobile {
        v.push((UniqueKey::Mobile, m.as_str().to_owned()));
    }
    if let Some(u) = &p.username {
        v.push((UniqueKey::Username, u.folded()));
    }
    if let Some(n) = &p.employee_no {
        v.push((UniqueKey::EmployeeNo, n.clone()));
    }
    v
}

/// The first item of a batch that repeats a unique value of an earlier item, and which
/// value: what `create_users` (and `create_accounts`) refuse that item for, found before
/// a dialect spends work on the batch (Huawei hashes every password first, about 20 ms
/// each). The values are the directory's own (`unique_values`), folded as it compares them.
#[must_use]
pub fn first_batch_duplicate<'a>(
    items: impl IntoIterator<Item = &'a NewUser>,
) -> Option<(usize, UniqueKey)> {
    let mut seen: HashSet<(UniqueKey, String)> = HashSet::new();
    items.into_iter().enumerate().find_map(|(i, item)| {
        profile_unique_values(item.user_id.as_ref(), &item.profile)
            .into_iter()
            .find_map(|kv| {
                let field = kv.0;
                (!seen.insert(kv)).then_some((i, field))
            })
    })
}

/// Within one batch, the first item to claim a unique value keeps it; later ones fail.
/// Returns the items that kept a value another item lost.
fn check_batch_duplicates(
    pending: &mut [Option<PreparedItem>],
    results: &mut [Option<Result<CreatedUser, CoreError>>],
) -> HashSet<usize> {
    let mut seen: HashMap<(UniqueKey, String), usize> = HashMap::new();
    let mut winners = HashSet::new();
    for i in 0..pending.len() {
        let Some(p) = &pending[i] else { continue };
        let values = unique_values(&p.user);
        if let Some((kv, &holder)) = values
            .iter()
            .find_map(|kv| seen.get(kv).map(|holder| (kv, holder)))
        {
            results[i] = Some(Err(CoreError::AlreadyExists {
                entity: Entity::User,
                field: kv.0,
            }));
            pending[i] = None;
            winners.insert(holder);
        } else {
            seen.extend(values.into_iter().map(|kv| (kv, i)));
        }
    }
    winners
}

/// Whether two items of the batch claim one unique value.
fn has_batch_duplicates(pending: &[Option<PreparedItem>]) -> bool {
    let mut seen: HashSet<(UniqueKey, String)> = HashSet::new();
    pending
        .iter()
        .flatten()
        .flat_map(|p| unique_values(&p.user))
        .any(|kv| !seen.insert(kv))
}

/// An atomic batch with any bad item: the bad items keep their errors, every other item is
/// reported as not written.
fn finish_atomic_failure(results: Vec<Option<Result<CreatedUser, CoreError>>>) -> BatchReport {
    BatchReport {
        items: results
            .into_iter()
            .map(|r| match r {
                Some(Err(e)) => Err(e),
                _ => Err(CoreError::conflict(
                    ConflictKind::NotWritten,
                    "not written: another item of this all-or-nothing batch failed",
                )),
            })
            .collect(),
    }
}

pub(crate) fn lookup_text(lookup: &UserLookup) -> String {
    match lookup {
        UserLookup::Key(k) => k.0.to_string(),
        UserLookup::OpenId(s)
        | UserLookup::UnionId(s)
        | UserLookup::UserId(s)
        | UserLookup::Email(s)
        | UserLookup::Mobile(s) => s.clone(),
    }
}

/// Splits submitted items for `prepare_batch`: each item as a batch input, and beside it the
/// error of an item refused before the batch (at parsing or submission), which is reported
/// as it is, so that a dialect's own code survives, rather than in its core form.
fn split_refused(
    items: impl IntoIterator<Item = Result<NewUser, crate::task::ItemError>>,
) -> (Vec<Option<crate::task::ItemError>>, Vec<BatchItem>) {
    let items = items.into_iter();
    let mut refused = Vec::with_capacity(items.size_hint().0);
    let mut inputs = Vec::with_capacity(items.size_hint().0);
    for i in items {
        match i {
            Ok(new) => {
                refused.push(None);
                inputs.push(Ok(new));
            }
            Err(e) => {
                inputs.push(Err(e.to_core()));
                refused.push(Some(e));
            }
        }
    }
    (refused, inputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::{Email, Mobile};

    fn user(id: Option<&str>, email: &str, mobile: Option<&str>) -> NewUser {
        NewUser {
            user_id: id.map(|i| UserId::parse(i).expect("a fixture id")),
            profile: UserProfile {
                name: "N".into(),
                email: Some(Email::parse("email", email).expect("a fixture e-mail")),
                mobile: mobile.map(|m| Mobile::parse("mobile", m).expect("a fixture mobile")),
                ..UserProfile::default()
            },
            leader: None,
            activated: true,
        }
    }

    /// The repeat is found as the directory compares values: e-mails in any case, mobiles
    /// in any spelling of one number, and a missing user id repeats nothing.
    #[test]
    fn the_first_repeat_of_a_batch_is_named_with_its_value() {
        let batch = [
            user(None, "a@example.com", Some("+8613800000001")),
            user(None, "b@example.com", None),
            user(Some("c"), "A@Example.com", None),
        ];
        assert_eq!(first_batch_duplicate(&batch), Some((2, UniqueKey::Email)));
        let batch = [
            user(None, "a@example.com", Some("+8613800000001")),
            user(None, "b@example.com", Some("13800000001")),
        ];
        assert_eq!(first_batch_duplicate(&batch), Some((1, UniqueKey::Mobile)));
        let batch = [
            user(Some("Same"), "a@example.com", None),
            user(Some("same"), "b@example.com", None),
        ];
        assert_eq!(first_batch_duplicate(&batch), Some((1, UniqueKey::UserId)));
        let batch = [
            user(None, "a@example.com", None),
            user(None, "b@example.com", None),
        ];
        assert_eq!(first_batch_duplicate(&batch), None);
    }
}
