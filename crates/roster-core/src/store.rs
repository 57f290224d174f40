//! The storage port. Backends (`roster-store-sqlite`, `roster-store-postgres`) implement it;
//! `roster-store-conformance` is the one test suite they must both pass.
//!
//! Conventions: reads return `Ok(None)` for "absent" (only the core turns that into
//! `CoreError::NotFound`); every uniqueness rule listed on `UniqueKey` is enforced by the
//! database itself, so that racing writers can never both win; the licence cap is enforced
//! by the store inside the transaction that changes the number of active users.

use std::collections::HashSet;

use async_trait::async_trait;

use crate::app::{App, TokenRecord};
use crate::audit::{Change, ChangeEvent};
use crate::department::{Department, DeptKey, DeptLookup};
use crate::error::StoreError;
use crate::group::Group;
use crate::ids::{AppId, OpenId, TenantId};
use crate::search::{SearchCursor, SearchQuery};
use crate::tenant::{NewTenant, Tenant};
use crate::user::{User, UserKey};

/// How a user is looked up. Text keys are compared in their folded form where the key is
/// case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserLookup {
    /// Internal key.
    Key(UserKey),
    /// `ou_…`.
    OpenId(String),
    /// `on_…`.
    UnionId(String),
    /// Custom user id. An active user wins over resigned ones that once held the id.
    UserId(String),
    /// E-mail (any case), active users first.
    Email(String),
    /// Mobile in E.164, active users first.
    Mobile(String),
}

/// What an idempotency key is scoped to: one app's calls of one operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    /// The tenant.
    pub tenant: TenantId,
    /// The calling app.
    pub app_id: AppId,
    /// The operation, e.g. `feishu.users.create`.
    pub operation: String,
    /// The client's key.
    pub key: String,
}

/// How long a claimed idempotency key without a result holds (ms). A claim that old belongs
/// to a request whose process died (or that was abandoned some other way), so the next
/// request with the key takes it over instead of waiting for a result that never comes.
/// Well above any write's time: a request still running when its claim is taken over could
/// only race the new one to the same unique values, one of which then loses.
pub const IDEMPOTENCY_CLAIM_LEASE_MS: i64 = 60_000;

/// The `updated_at` of users and departments as a read-modify-write read them (see
/// `Store::save_checked`). Every write of an entity moves its `updated_at` forward (the core
/// makes it at least one more than the value read), so an unchanged value means an
/// unchanged row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadVersions {
    /// Users and the `updated_at` read.
    pub users: Vec<(UserKey, i64)>,
    /// Departments and the `updated_at` read.
    pub departments: Vec<(DeptKey, i64)>,
}

impl ReadVersions {
    /// The version read of a user, if it is to be checked.
    pub fn user(&self, key: UserKey) -> Option<i64> {
        self.users.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// The version read of a department, if it is to be checked.
    pub fn department(&self, key: DeptKey) -> Option<i64> {
        self.departments
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

/// The state of an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key was new, or its claim had outlived [`IDEMPOTENCY_CLAIM_LEASE_MS`] without a
    /// result, and is now claimed by this request.
    Claimed,
    /// The key was claimed before, by a request with `fingerprint`; `result` is the entity
    /// id it produced, or `None` while that request is still running.
    Existing {
        /// The earlier request's fingerprint.
        fingerprint: String,
        /// The earlier request's result.
        result: Option<String>,
    },
}

/// One chunk of a task, committed in one transaction (see `Store::commit_task_chunk`).
#[derive(Debug)]
pub struct TaskChunk<'a> {
    /// The task's tenant.
    pub tenant: TenantId,
    /// The task.
    pub task_id: &'a crate::task::TaskId,
    /// The worker that must still hold the lease.
    pub worker: &'a str,
    /// Users to insert (best effort), each with its item index, leaders first.
    pub users: &'a [(u32, User)],
    /// Items refused before the write, with their errors.
    pub failures: &'a [(u32, crate::task::ItemError)],
    /// Invitations, each written only if its item's user is.
    pub mails: &'a [(u32, crate::outbox::OutboxMessage)],
    /// Who.
    pub change: &'a Change,
}

/// Values to test for uniqueness before a batch is written, all in folded form.
#[derive(Debug, Clone, Default)]
pub struct UniqueProbe {
    /// Folded custom user ids.
    pub user_ids: Vec<String>,
    /// Folded e-mails.
    pub emails: Vec<String>,
    /// E.164 mobiles.
    pub mobiles: Vec<String>,
    /// Folded login names.
    pub usernames: Vec<String>,
    /// Employee numbers.
    pub employee_nos: Vec<String>,
}

/// The subset of a probe already held by active users.
#[derive(Debug, Clone, Default)]
pub struct TakenValues {
    /// Folded custom user ids in use.
    pub user_ids: HashSet<String>,
    /// Folded e-mails in use.
    pub emails: HashSet<String>,
    /// Mobiles in use.
    pub mobiles: HashSet<String>,
    /// Folded login names in use.
    pub usernames: HashSet<String>,
    /// Employee numbers in use.
    pub employee_nos: HashSet<String>,
}

/// The storage port.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`, for logs and `/readyz`.
    fn backend(&self) -> &'static str;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    // ----- tenants -----

    /// Creates a tenant and its root department (ids `"0"`) in one transaction.
    async fn create_tenant(
        &self,
        tenant: &NewTenant,
        tenant_key: &str,
        now: i64,
    ) -> Result<Tenant, StoreError>;

    /// Reads a tenant.
    async fn get_tenant(&self, id: TenantId) -> Result<Option<Tenant>, StoreError>;

    /// All tenants, oldest first.
    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError>;

    // ----- apps and tokens -----

    /// Stores a new app; a clash of `app_id` is `Duplicate(AppId)`.
    async fn insert_app(&self, app: &App) -> Result<(), StoreError>;

    /// Reads an app.
    async fn get_app(&self, app_id: &AppId) -> Result<Option<App>, StoreError>;

    /// Apps of one tenant, or of all tenants, oldest first.
    async fn list_apps(&self, tenant: Option<TenantId>) -> Result<Vec<App>, StoreError>;

    /// Replaces an app's secret hash and revokes all of its tokens, in one transaction.
    /// Returns false when the app does not exist.
    async fn set_app_secret(&self, app_id: &AppId, secret_hash: &str) -> Result<bool, StoreError>;

    /// Stores an issued token.
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError>;

    /// Finds a token by the hash of its text.
    async fn find_token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// Deletes tokens that expired before `now`; returns how many.
    async fn purge_expired_tokens(&self, now: i64) -> Result<u64, StoreError>;

    // ----- vendor access keys -----

    /// Stores an access-key app and its key in ONE transaction (see `crate::access_key`).
    /// A clash of the app id or of the key id is `Duplicate(AppId)`.
    async fn insert_access_key(
        &self,
        app: &App,
        key: &crate::access_key::AccessKey,
    ) -> Result<(), StoreError>;

    /// Replaces the sealed secret of the app's access key and revokes the app's tokens, in
    /// ONE transaction, so that the old secret and everything issued under it stop working
    /// together. False when the app has no access key.
    async fn set_access_key_secret(
        &self,
        app_id: &AppId,
        sealed_secret: &[u8],
    ) -> Result<bool, StoreError>;

    /// Reads an access key by its public id (exact, case-sensitive match).
    async fn get_access_key(
        &self,
        key_id: &str,
    ) -> Result<Option<crate::access_key::AccessKey>, StoreError>;

    /// Inserts users all-or-nothing together with their invitations (outbox rows and
    /// activations), in ONE transaction: exactly `insert_users(.., atomic = true, ..)`, and
    /// the messages are written only when every user is. Used by the synchronous vendor
    /// batch APIs (Huawei `batch-create`) whose invitations must not outlive a refused batch.
    /// A user naming a group (`UserProfile::groups`) that no longer exists is refused with
    /// `Gone("group_ids")` (checked inside the transaction, against a racing
    /// `delete_group`), the others with `Conflict(NotWritten)`.
    async fn insert_users_invited(
        &self,
        tenant: TenantId,
        users: &[User],
        mails: &[crate::outbox::OutboxMessage],
        change: &Change,
    ) -> Result<Vec<Result<crate::user::UserKey, StoreError>>, StoreError>;

    /// Deletes a group of the tenant for good; false when there was none. The caller has
    /// made sure no user still lists it (`UserProfile::groups`) and no BI member either;
    /// `Stale` (nothing deleted) when one does inside the transaction, having joined since.
    async fn delete_group(&self, tenant: TenantId, group_id: &str) -> Result<bool, StoreError>;

    /// Access keys of one tenant, or of all tenants, oldest first.
    async fn list_access_keys(
        &self,
        tenant: Option<TenantId>,
    ) -> Result<Vec<crate::access_key::AccessKey>, StoreError>;

    // ----- departments -----

    /// Stores a new department (its `key` is ignored) and returns it as stored, with a
    /// `Created` event in the same transaction.
    async fn insert_department(
        &self,
        dept: &Department,
        change: &Change,
    ) -> Result<Department, StoreError>;

    /// Reads a department, deleted ones included.
    async fn get_department(
        &self,
        tenant: TenantId,
        lookup: &DeptLookup,
    ) -> Result<Option<Department>, StoreError>;

    /// Direct children that are not deleted, by descending order then key.
    async fn child_departments(
        &self,
        tenant: TenantId,
        parent: DeptKey,
    ) -> Result<Vec<Department>, StoreError>;

    /// Number of departments (not deleted) of the tenant, the root included.
    async fn count_departments(&self, tenant: TenantId) -> Result<u64, StoreError>;

    /// Writes a department's parent, fields and deleted flag (see `save`).
    async fn update_department(
        &self,
        dept: &Department,
        change: &Change,
    ) -> Result<(), StoreError> {
        self.save(dept.tenant, &[], std::slice::from_ref(dept), &[], change)
            .await
    }

    /// Live departments that name this user: as the main leader, a deputy or an HR
    /// business partner (everything a deleted user must be taken off).
    async fn departments_led_by(
        &self,
        tenant: TenantId,
        leader: &OpenId,
    ) -> Result<Vec<Department>, StoreError>;

    /// Feishu's `member_count` and `primary_member_count` of a department that is not the
    /// root: the active users with a membership in it or in any department below it (each
    /// once), and those of them whose primary department is there.
    async fn department_subtree_counts(
        &self,
        tenant: TenantId,
        dept: DeptKey,
    ) -> Result<(u64, u64), StoreError>;

    /// Number of active users directly in a department.
    async fn department_member_count(
        &self,
        tenant: TenantId,
        dept: DeptKey,
    ) -> Result<u64, StoreError>;

    // ----- users -----

    /// Which of the probe's values active users of the tenant already hold.
    async fn taken_user_values(
        &self,
        tenant: TenantId,
        probe: &UniqueProbe,
    ) -> Result<TakenValues, StoreError>;

    /// Inserts users (their `key` is ignored) and returns one result per user, in order.
    ///
    /// With `atomic`, everything is one transaction: if any result is an error, nothing
    /// was written and the `Ok` keys are void. Without it, the store may commit in several
    /// transactions, and each user is written or refused on its own. A refusal is a
    /// `Duplicate` (the database's constraint fired) or `LicenceExceeded` (the tenant's cap,
    /// checked in the same transaction). Other failures abort the call with `Err`.
    ///
    /// Every user written gets a `Created` event in the same transaction.
    async fn insert_users(
        &self,
        tenant: TenantId,
        users: &[User],
        atomic: bool,
        change: &Change,
    ) -> Result<Vec<Result<UserKey, StoreError>>, StoreError>;

    /// Reads a user, resigned ones included.
    async fn get_user(
        &self,
        tenant: TenantId,
        lookup: &UserLookup,
    ) -> Result<Option<User>, StoreError>;

    /// Reads a user (resigned ones included) with the departments of its memberships
    /// (deleted ones included, in membership order; missing ones left out): what rendering
    /// a user needs. A backend that can should read them in one snapshot and one round
    /// trip; this default reads them one by one.
    async fn get_user_with_departments(
        &self,
        tenant: TenantId,
        lookup: &UserLookup,
    ) -> Result<Option<(User, Vec<Department>)>, StoreError> {
        let Some(user) = self.get_user(tenant, lookup).await? else {
            return Ok(None);
        };
        let mut departments = Vec::with_capacity(user.profile.departments.len());
        for m in &user.profile.departments {
            if let Some(d) = self
                .get_department(tenant, &DeptLookup::Key(m.department))
                .await?
            {
                departments.push(d);
            }
        }
        Ok(Some((user, departments)))
    }

    /// Writes every field of an existing user (see `save`).
    async fn update_user(&self, user: &User, change: &Change) -> Result<(), StoreError> {
        self.save(user.tenant, std::slice::from_ref(user), &[], &[], change)
            .await
    }

    /// Writes every field of each listed user, department and group (found by `key`; a
    /// missing one is `Backend`) in ONE transaction, with one event per entity whose action the store
    /// infers from the stored row: resigned/deleted flag set → `Deleted`, resigned flag
    /// cleared → `Resurrected`, otherwise `Updated`. The tenant's active-user count follows
    /// the resigned flags, under the licence cap (`LicenceExceeded`); unique indexes apply
    /// (`Duplicate`). On any error nothing is written.
    async fn save(
        &self,
        tenant: TenantId,
        users: &[User],
        departments: &[Department],
        groups: &[Group],
        change: &Change,
    ) -> Result<(), StoreError> {
        self.save_checked(
            tenant,
            users,
            departments,
            groups,
            &ReadVersions::default(),
            change,
        )
        .await
    }

    /// `save`, but only if every user and department named in `read` still carries, in the
    /// transaction, the `updated_at` it had when the caller read it; otherwise `Stale` and
    /// nothing is written. A read-modify-write thus never overwrites a write that came in
    /// between (a lost update): the caller reads again and reapplies its change.
    async fn save_checked(
        &self,
        tenant: TenantId,
        users: &[User],
        departments: &[Department],
        groups: &[Group],
        read: &ReadVersions,
        change: &Change,
    ) -> Result<(), StoreError>;

    /// Users by several lookups at once (any order, each user once; unknown ones left out).
    async fn get_users(
        &self,
        tenant: TenantId,
        lookups: &[UserLookup],
    ) -> Result<Vec<User>, StoreError>;

    /// Every user, active or resigned, whose folded e-mail is in `emails` or whose mobile is
    /// in `mobiles`.
    async fn users_by_contact(
        &self,
        tenant: TenantId,
        emails: &[String],
        mobiles: &[String],
    ) -> Result<Vec<User>, StoreError>;

    /// Active direct members of a department with a key above `after`, by ascending key, at
    /// most `limit`.
    async fn department_members(
        &self,
        tenant: TenantId,
        dept: DeptKey,
        after: Option<UserKey>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError>;

    /// Active users matching `query` (see `crate::search`), in ascending order of their
    /// place (`SearchCursor`: tier, matching term, key), each once at its best place,
    /// strictly after `after`, at most `limit`; each with its place, which resumes the
    /// search right after it.
    async fn search_users(
        &self,
        tenant: TenantId,
        query: &SearchQuery,
        after: Option<SearchCursor>,
        limit: usize,
    ) -> Result<Vec<(User, SearchCursor)>, StoreError>;

    /// Active users whose leader is this user.
    async fn users_led_by(
        &self,
        tenant: TenantId,
        leader: &OpenId,
    ) -> Result<Vec<User>, StoreError>;

    /// Active users who name this user among their dotted-line leaders.
    async fn users_with_dotted_leader(
        &self,
        tenant: TenantId,
        leader: &OpenId,
    ) -> Result<Vec<User>, StoreError>;

    /// Deletes for good the users that resigned before `before` (ms), with a `Deleted`
    /// event (no `after`) each; returns how many.
    async fn purge_resigned(&self, before: i64) -> Result<u64, StoreError>;

    // ----- idempotency keys (client_token) -----

    /// Claims an idempotency key for a request with this fingerprint. If the key is new it
    /// is recorded (unfinished) and `Claimed` is returned; otherwise the stored claim.
    async fn claim_idempotency_key(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: i64,
    ) -> Result<IdempotencyClaim, StoreError>;

    /// Records the result (an entity id) of a claimed key.
    async fn complete_idempotency_key(
        &self,
        key: &IdempotencyKey,
        result: &str,
    ) -> Result<(), StoreError>;

    /// Forgets a claimed key (its request failed, so a retry may run again).
    async fn release_idempotency_key(&self, key: &IdempotencyKey) -> Result<(), StoreError>;

    /// Forgets keys claimed before `before` (ms); returns how many.
    async fn purge_idempotency_keys(&self, before: i64) -> Result<u64, StoreError>;

    /// Deletes up to `limit` tasks (v2 batch adds and imports) that finished (`done` or
    /// `failed`) before `before` (ms), with their items, import chunks and per-row results;
    /// returns how many. Tasks that are receiving, queued or running are never touched.
    async fn purge_finished_tasks(&self, before: i64, limit: u64) -> Result<u64, StoreError>;

    // ----- JSAPI tickets -----

    /// The current JSAPI ticket of an app and its expiry (ms), if any.
    async fn jsapi_ticket(&self, app_id: &AppId) -> Result<Option<(String, i64)>, StoreError>;

    /// Stores an app's JSAPI ticket unless it has one that expires at or after
    /// `replace_before`, and returns the ticket stored now with its expiry: of several
    /// processes asking for a new ticket at once, all hand out the one that was stored.
    async fn put_jsapi_ticket(
        &self,
        app_id: &AppId,
        ticket: &str,
        expires_at: i64,
        replace_before: i64,
    ) -> Result<(String, i64), StoreError>;

    // ----- change events -----

    /// Events with an id above `after`, oldest first, at most `limit`, of one tenant or all.
    async fn list_events(
        &self,
        tenant: Option<TenantId>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<ChangeEvent>, StoreError>;

    // ----- groups -----

    /// Stores a new group (its `key` is ignored); a clash of name is `Duplicate(GroupName)`.
    async fn insert_group(&self, group: &Group) -> Result<Group, StoreError>;

    /// Reads a group by its external id.
    async fn get_group(
        &self,
        tenant: TenantId,
        group_id: &str,
    ) -> Result<Option<Group>, StoreError>;

    /// Groups of a tenant, oldest first.
    async fn list_groups(&self, tenant: TenantId) -> Result<Vec<Group>, StoreError>;

    /// Groups owned by this user.
    async fn groups_owned_by(
        &self,
        tenant: TenantId,
        owner: &OpenId,
    ) -> Result<Vec<Group>, StoreError>;

    // ----- tasks -----

    /// Stores a task and its items in one transaction.
    async fn create_task(
        &self,
        task: &crate::task::Task,
        items: &[crate::task::TaskItem],
    ) -> Result<(), StoreError>;

    /// A task of this tenant.
    async fn get_task(
        &self,
        tenant: TenantId,
        id: &crate::task::TaskId,
    ) -> Result<Option<crate::task::Task>, StoreError>;

    /// Items of a task with an index above `after`, by index, at most `limit`; with
    /// `pending_only`, only those without an outcome.
    async fn task_items(
        &self,
        id: &crate::task::TaskId,
        after: Option<u32>,
        limit: usize,
        pending_only: bool,
    ) -> Result<Vec<crate::task::TaskItem>, StoreError>;

    /// Claims one queued task, or one whose lease ran out, for `worker` until
    /// `now + lease_ms`; several processes never get the same task.
    async fn claim_task(
        &self,
        worker: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<crate::task::Task>, StoreError>;

    /// `claim_task` of the task `id` alone: `None` when it is not claimable (done, or
    /// leased to a live worker). For a process that runs its own task and no other's.
    async fn claim_this_task(
        &self,
        worker: &str,
        now: i64,
        lease_ms: i64,
        id: &crate::task::TaskId,
    ) -> Result<Option<crate::task::Task>, StoreError>;

    /// Extends a lease the worker still holds; false when it lost it.
    async fn renew_task_lease(
        &self,
        id: &crate::task::TaskId,
        worker: &str,
        until: i64,
    ) -> Result<bool, StoreError>;

    /// Writes one chunk in one transaction: the users (best effort, with events), every
    /// item's outcome, the task's counters and the written users' invitations. `Ok(None)`
    /// when the worker no longer holds the lease (nothing written).
    async fn commit_task_chunk(
        &self,
        chunk: &TaskChunk<'_>,
    ) -> Result<Option<Vec<Result<UserKey, StoreError>>>, StoreError>;

    /// Ends a task the worker holds; false when it lost the lease.
    async fn finish_task(
        &self,
        id: &crate::task::TaskId,
        worker: &str,
        status: crate::task::TaskStatus,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// A hint that a large write (a bulk import) has ended: the store may give back memory
    /// it grew for it, such as page cache, and refresh what it knows about the data that
    /// the write moved, such as search statistics. The default does nothing.
    async fn bulk_write_ended(&self) {}

    // ----- imports (crate::import) -----

    /// Stores an import task in the `Receiving` state with no rows; `task.lease_until` is
    /// the deadline for its first chunk.
    async fn create_import(&self, task: &crate::task::Task) -> Result<(), StoreError>;

    /// Appends one chunk of rows to an import that is still receiving, adds them to its
    /// total and moves its deadline to `deadline`, in one transaction. False (nothing
    /// written) when the task is not receiving any more.
    async fn append_import_chunk(
        &self,
        id: &crate::task::TaskId,
        chunk: &crate::import::ImportChunk,
        deadline: i64,
    ) -> Result<bool, StoreError>;

    /// Ends an import's upload: `Receiving` → `Queued`. False when it was not receiving.
    async fn seal_import(&self, id: &crate::task::TaskId) -> Result<bool, StoreError>;

    /// Gives up an import whose upload failed: `Receiving` → `Failed`, its rows deleted.
    /// False when it was not receiving.
    async fn abort_import(&self, id: &crate::task::TaskId, now: i64) -> Result<bool, StoreError>;

    /// Fails every receiving import whose deadline is before `now` (its uploader is gone)
    /// and deletes its rows; returns how many.
    async fn expire_imports(&self, now: i64) -> Result<u64, StoreError>;

    /// Chunks of an import with no outcomes yet and a position above `after`, by
    /// position, at most `limit`.
    async fn pending_import_chunks(
        &self,
        id: &crate::task::TaskId,
        after: Option<u32>,
        limit: usize,
    ) -> Result<Vec<crate::import::ImportChunk>, StoreError>;

    /// The results of the chunks holding rows with an index at or above `from_row`, by
    /// position, at most `limit` chunks.
    async fn import_outcomes(
        &self,
        id: &crate::task::TaskId,
        from_row: u32,
        limit: usize,
    ) -> Result<Vec<crate::import::ImportOutcomes>, StoreError>;

    /// Writes one processed chunk in one transaction: the lease check, the users (best
    /// effort, with their events), the chunk's outcomes (one per row), the task's counters
    /// and the written users' invitations. `Ok(None)` when the worker no longer holds the
    /// lease or the chunk already has its outcomes (nothing written).
    async fn commit_import_chunk(
        &self,
        chunk: &crate::import::ImportCommit<'_>,
    ) -> Result<Option<Vec<Result<UserKey, StoreError>>>, StoreError>;

    /// Active users of a tenant with a key above `after`, by ascending key, at most
    /// `limit` (for exports).
    async fn list_users(
        &self,
        tenant: TenantId,
        after: Option<UserKey>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError>;

    // ----- BI organisation (Quick BI, crate::bi) -----

    /// Adds members to the tenant's BI organisation in ONE transaction, with a `Created`
    /// event (entity `BiMember`) each, and returns one result per member in order. A user
    /// who is already a member is refused by the primary key as `Duplicate(OpenId)`; the
    /// others are written. If the members written would take the organisation above
    /// `max_members`, nothing is written and the call fails with `LicenceExceeded` (the
    /// count is a database rule, so racing batches cannot pass the cap together). `Stale`
    /// (nothing written) when a group the members join no longer exists.
    async fn insert_bi_members(
        &self,
        tenant: TenantId,
        members: &[crate::bi::BiMember],
        max_members: u64,
        change: &Change,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError>;

    /// Reads one member.
    async fn get_bi_member(
        &self,
        tenant: TenantId,
        open_id: &OpenId,
    ) -> Result<Option<crate::bi::BiMember>, StoreError>;

    /// One page of members, oldest first (join time, then open id), skipping `offset`,
    /// at most `limit`; with a keyword, only those whose nickname contains it (`keyword`
    /// is given in lower case and compared with the lower-cased nickname). Also returns
    /// how many members match in all.
    async fn list_bi_members(
        &self,
        tenant: TenantId,
        keyword: Option<&str>,
        offset: u64,
        limit: usize,
    ) -> Result<(Vec<crate::bi::BiMember>, u64), StoreError>;

    /// Rewrites a member's nickname, roles, groups and update time, with an `Updated`
    /// event, if the stored member's update time is still `read_at` (the one its writer
    /// read; every write moves it forward): `Stale` when another write came between, so
    /// that concurrent changes never overwrite each other, and when a group the member
    /// joins no longer exists. False (nothing written) when the user is not a member.
    async fn update_bi_member(
        &self,
        member: &crate::bi::BiMember,
        read_at: i64,
        change: &Change,
    ) -> Result<bool, StoreError>;

    /// Removes a member, with a `Deleted` event, freeing a licence. False when the user
    /// was not a member.
    async fn delete_bi_member(
        &self,
        tenant: TenantId,
        open_id: &OpenId,
        at: i64,
        change: &Change,
    ) -> Result<bool, StoreError>;

    /// Claims a request signature's nonce for an access key until `expires_at` (ms). True
    /// when the nonce was unused (or its earlier claim has expired); false when it is
    /// still claimed. Racing claims of one nonce: exactly one wins, by the primary key.
    async fn claim_signature_nonce(
        &self,
        access_key_id: &str,
        nonce: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError>;

    /// Forgets nonces whose claim expired at or before `now`; returns how many.
    async fn purge_signature_nonces(&self, now: i64) -> Result<u64, StoreError>;

    // ----- outbox -----

    /// Reserves up to `limit` due e-mails for one delivery attempt.
    async fn claim_outbox(
        &self,
        now: i64,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<crate::outbox::OutboxMessage>, StoreError>;

    /// Records a delivery.
    async fn mark_outbox_sent(&self, id: i64, now: i64) -> Result<(), StoreError>;

    /// Records a failed attempt and when to try again.
    async fn mark_outbox_failed(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: i64,
    ) -> Result<(), StoreError>;

    /// Messages, newest first.
    async fn list_outbox(
        &self,
        tenant: Option<TenantId>,
        unsent_only: bool,
        limit: usize,
    ) -> Result<Vec<crate::outbox::OutboxMessage>, StoreError>;

    /// Uses an activation: marks it used and the user activated, in one transaction.
    async fn activate(&self, token_hash: &str, now: i64) -> Result<Option<User>, StoreError>;
}
