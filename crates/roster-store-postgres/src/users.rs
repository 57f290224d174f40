//! Users, their department memberships, and the tenant's active-user count.
//!
//! Every write that changes how many active users a tenant has also updates
//! `tenants.active_users` in the same transaction, so the CHECK on that table makes the
//! licence cap a database rule. Writers that touch the count lock the tenant row first
//! (`SELECT … FOR UPDATE`), before any user row or unique-index entry: with one lock order,
//! two batches carrying the same values in different orders queue instead of deadlocking.
//! Every user written or deleted gets its change event in the same transaction (`events.rs`);
//! `save` (see `save.rs`) builds on the locking and writing helpers here.

use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use roster_core::{
    Actor, Change, ChangeAction, DeptKey, Entity, Membership, OpenId, StoreError, TakenValues,
    TenantId, UnionId, UniqueProbe, User, UserId, UserKey, UserLookup, UserProfile, UserStatus,
};
use roster_store_common::{decode_profile, encode_profile, user_snapshot, UserColumns};
use sqlx::{PgConnection, PgExecutor, PgPool};

use crate::departments::{share_tenant_lock, TenantLock};
use crate::errors::{corrupt, Context};
use crate::events::{write_events, NewEvent};

// ----- reads -----

#[derive(sqlx::FromRow)]
#[allow(clippy::struct_excessive_bools)] // One field per status column of the table.
struct UserRow {
    id: i64,
    tenant_id: i64,
    open_id: String,
    union_id: String,
    user_id: String,
    is_resigned: bool,
    is_frozen: bool,
    is_activated: bool,
    is_exited: bool,
    is_unjoin: bool,
    created_at: i64,
    updated_at: i64,
    resigned_at: Option<i64>,
    logout_at: Option<i64>,
    doc: String,
}

#[derive(sqlx::FromRow)]
struct MembershipRow {
    user_id: i64,
    department_id: i64,
    user_order: i64,
    department_order: i64,
    is_primary: bool,
}

/// The columns of `UserRow`, as a macro so that queries stay `&'static str` (sqlx only
/// accepts SQL it can see is not built from data).
macro_rules! user_columns {
    () => {
        "id, tenant_id, open_id, union_id, user_id, is_resigned, is_frozen, is_activated, \
         is_exited, is_unjoin, created_at, updated_at, resigned_at, logout_at, doc"
    };
}

/// The same columns of the `users` table under the alias `u`, for joins.
macro_rules! user_columns_u {
    () => {
        "u.id, u.tenant_id, u.open_id, u.union_id, u.user_id, u.is_resigned, u.is_frozen, \
         u.is_activated, u.is_exited, u.is_unjoin, u.created_at, u.updated_at, u.resigned_at, \
         u.logout_at, u.doc"
    };
}

impl UserRow {
    fn into_user(self, departments: Vec<Membership>) -> Result<User, StoreError> {
        let mut profile = decode_profile(&self.doc)?;
        profile.departments = departments;
        Ok(User {
            key: UserKey(self.id),
            tenant: TenantId(self.tenant_id),
            open_id: OpenId::from_trusted(self.open_id),
            union_id: UnionId::from_trusted(self.union_id),
            user_id: UserId::from_trusted(self.user_id),
            profile,
            status: UserStatus {
                is_frozen: self.is_frozen,
                is_resigned: self.is_resigned,
                is_activated: self.is_activated,
                is_exited: self.is_exited,
                is_unjoin: self.is_unjoin,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
            resigned_at: self.resigned_at,
            logout_at: self.logout_at,
        })
    }
}

/// Completes user rows with their memberships, read in one extra query for all of them,
/// keeping the rows' order.
async fn into_users<'e>(
    executor: impl PgExecutor<'e>,
    rows: Vec<UserRow>,
) -> Result<Vec<User>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let memberships = sqlx::query_as::<_, MembershipRow>(
        "SELECT user_id, department_id, user_order, department_order, is_primary \
         FROM user_departments WHERE user_id = ANY($1) ORDER BY user_id, position",
    )
    .bind(&ids)
    .fetch_all(executor)
    .await
    .context("load user departments")?;
    let mut by_user: HashMap<i64, Vec<Membership>> = HashMap::new();
    for m in memberships {
        by_user.entry(m.user_id).or_default().push(Membership {
            department: DeptKey(m.department_id),
            user_order: m.user_order,
            department_order: m.department_order,
            is_primary: m.is_primary,
        });
    }
    rows.into_iter()
        .map(|r| {
            let departments = by_user.remove(&r.id).unwrap_or_default();
            r.into_user(departments)
        })
        .collect()
}

/// A user by one text column. For keys that only active users hold uniquely, the active
/// user wins, then the most recently resigned one (the newest key breaks ties among users
/// resigned at the same moment).
macro_rules! user_by {
    ($condition:literal) => {
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE tenant_id = $1 AND ",
            $condition
        )
    };
    ($condition:literal, prefer_active) => {
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE tenant_id = $1 AND ",
            $condition,
            " ORDER BY is_resigned, resigned_at DESC NULLS LAST, id DESC LIMIT 1"
        )
    };
}

pub(crate) async fn get_user(
    pool: &PgPool,
    tenant: TenantId,
    lookup: &UserLookup,
) -> Result<Option<User>, StoreError> {
    let row = match lookup {
        UserLookup::Key(key) => {
            sqlx::query_as::<_, UserRow>(user_by!("id = $2"))
                .bind(tenant.0)
                .bind(key.0)
                .fetch_optional(pool)
                .await
        }
        UserLookup::OpenId(s) => fetch_by_text(pool, tenant, user_by!("open_id = $2"), s).await,
        UserLookup::UnionId(s) => fetch_by_text(pool, tenant, user_by!("union_id = $2"), s).await,
        // Folding matches UserId::folded (ASCII) and Email::folded (Unicode) exactly, since
        // those produced the stored columns.
        UserLookup::UserId(s) => {
            let sql = user_by!("user_id_fold = $2", prefer_active);
            fetch_by_text(pool, tenant, sql, &s.to_ascii_lowercase()).await
        }
        UserLookup::Email(s) => {
            let sql = user_by!("email_fold = $2", prefer_active);
            fetch_by_text(pool, tenant, sql, &s.to_lowercase()).await
        }
        UserLookup::Mobile(s) => {
            let sql = user_by!("mobile = $2", prefer_active);
            fetch_by_text(pool, tenant, sql, s).await
        }
    }
    .context("load user")?;
    let Some(row) = row else { return Ok(None) };
    Ok(into_users(pool, vec![row]).await?.pop())
}

async fn fetch_by_text(
    pool: &PgPool,
    tenant: TenantId,
    sql: &'static str,
    value: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as::<_, UserRow>(sql)
        .bind(tenant.0)
        .bind(value)
        .fetch_optional(pool)
        .await
}

pub(crate) async fn taken_user_values(
    pool: &PgPool,
    tenant: TenantId,
    probe: &UniqueProbe,
) -> Result<TakenValues, StoreError> {
    // One round trip for all five keys. Each branch can use its partial unique index,
    // whose predicate (`NOT is_resigned`, value not null) the branch's WHERE implies.
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT 'user_id', user_id_fold FROM users \
           WHERE tenant_id = $1 AND NOT is_resigned AND user_id_fold = ANY($2) \
         UNION ALL SELECT 'email', email_fold FROM users \
           WHERE tenant_id = $1 AND NOT is_resigned AND email_fold = ANY($3) \
         UNION ALL SELECT 'mobile', mobile FROM users \
           WHERE tenant_id = $1 AND NOT is_resigned AND mobile = ANY($4) \
         UNION ALL SELECT 'username', username_fold FROM users \
           WHERE tenant_id = $1 AND NOT is_resigned AND username_fold = ANY($5) \
         UNION ALL SELECT 'employee_no', employee_no FROM users \
           WHERE tenant_id = $1 AND NOT is_resigned AND employee_no = ANY($6)",
    )
    .bind(tenant.0)
    .bind(&probe.user_ids)
    .bind(&probe.emails)
    .bind(&probe.mobiles)
    .bind(&probe.usernames)
    .bind(&probe.employee_nos)
    .fetch_all(pool)
    .await
    .context("probe unique user values")?;

    let mut taken = TakenValues::default();
    for (kind, value) in rows {
        let set = match kind.as_str() {
            "user_id" => &mut taken.user_ids,
            "email" => &mut taken.emails,
            "mobile" => &mut taken.mobiles,
            "username" => &mut taken.usernames,
            "employee_no" => &mut taken.employee_nos,
            _ => return Err(corrupt("unique probe kind")),
        };
        set.insert(value);
    }
    Ok(taken)
}

// ----- the bulk write path -----

/// One multi-row insert of users. The tenant is bound once; every other column travels as
/// one array per column, so the statement has 22 parameters whatever the number of rows
/// and costs a single round trip.
const INSERT_USERS: &str = "INSERT INTO users (tenant_id, open_id, union_id, user_id, \
     user_id_fold, email_fold, mobile, username_fold, employee_no, name, leader_open_id, \
     is_resigned, is_frozen, is_activated, is_exited, is_unjoin, created_at, updated_at, \
     resigned_at, logout_at, doc, search_text) \
     SELECT $1::bigint, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
     $12::boolean[], $13::boolean[], $14::boolean[], $15::boolean[], $16::boolean[], \
     $17::bigint[], $18::bigint[], $19::bigint[], $20::bigint[], $21::text[], $22::text[]) \
     RETURNING id, open_id";

/// The same columns written over existing rows, found by key (`$23`), in one statement.
const UPDATE_USERS: &str = "UPDATE users AS u SET open_id = v.open_id, union_id = v.union_id, \
     user_id = v.user_id, user_id_fold = v.user_id_fold, email_fold = v.email_fold, \
     mobile = v.mobile, username_fold = v.username_fold, employee_no = v.employee_no, \
     name = v.name, leader_open_id = v.leader_open_id, is_resigned = v.is_resigned, \
     is_frozen = v.is_frozen, is_activated = v.is_activated, is_exited = v.is_exited, \
     is_unjoin = v.is_unjoin, created_at = v.created_at, updated_at = v.updated_at, \
     resigned_at = v.resigned_at, logout_at = v.logout_at, doc = v.doc, \
     search_text = v.search_text \
     FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
     $12::boolean[], $13::boolean[], $14::boolean[], $15::boolean[], $16::boolean[], \
     $17::bigint[], $18::bigint[], $19::bigint[], $20::bigint[], $21::text[], $22::text[], \
     $23::bigint[]) AS v(open_id, union_id, user_id, user_id_fold, email_fold, mobile, \
     username_fold, employee_no, name, leader_open_id, is_resigned, is_frozen, is_activated, \
     is_exited, is_unjoin, created_at, updated_at, resigned_at, logout_at, doc, search_text, id) \
     WHERE u.tenant_id = $1 AND u.id = v.id";

/// The `users.search_text` of a profile: its search terms as a JSON array, from which the
/// migration-0006 triggers maintain the search index (see `roster_store_common::search_text`).
pub(crate) fn search_text(p: &UserProfile) -> String {
    roster_store_common::search_text(p)
}

/// The same shape for the join table.
const INSERT_MEMBERSHIPS: &str = "INSERT INTO user_departments (tenant_id, user_id, \
     department_id, position, user_order, department_order, is_primary) \
     SELECT $1::bigint, * FROM UNNEST($2::bigint[], $3::bigint[], $4::integer[], \
     $5::bigint[], $6::bigint[], $7::boolean[])";

/// Binds the 21 column arrays of a `UserArrays` as `$2` to `$22` (after the tenant) to a
/// query or `query_as`.
macro_rules! bind_user_arrays {
    ($query:expr, $a:expr) => {
        $query
            .bind($a.open_id)
            .bind($a.union_id)
            .bind($a.user_id)
            .bind($a.user_id_fold)
            .bind($a.email_fold)
            .bind($a.mobile)
            .bind($a.username_fold)
            .bind($a.employee_no)
            .bind($a.name)
            .bind($a.leader_open_id)
            .bind($a.is_resigned)
            .bind($a.is_frozen)
            .bind($a.is_activated)
            .bind($a.is_exited)
            .bind($a.is_unjoin)
            .bind($a.created_at)
            .bind($a.updated_at)
            .bind($a.resigned_at)
            .bind($a.logout_at)
            .bind($a.doc)
            .bind($a.search_text)
    };
}

/// Column arrays for `INSERT_USERS` and `UPDATE_USERS`, one entry per user.
#[derive(Default)]
pub(crate) struct UserArrays {
    pub(crate) open_id: Vec<String>,
    pub(crate) union_id: Vec<String>,
    pub(crate) user_id: Vec<String>,
    pub(crate) user_id_fold: Vec<String>,
    pub(crate) email_fold: Vec<Option<String>>,
    pub(crate) mobile: Vec<Option<String>>,
    pub(crate) username_fold: Vec<Option<String>>,
    pub(crate) employee_no: Vec<Option<String>>,
    pub(crate) name: Vec<String>,
    pub(crate) leader_open_id: Vec<Option<String>>,
    pub(crate) is_resigned: Vec<bool>,
    pub(crate) is_frozen: Vec<bool>,
    pub(crate) is_activated: Vec<bool>,
    pub(crate) is_exited: Vec<bool>,
    pub(crate) is_unjoin: Vec<bool>,
    pub(crate) created_at: Vec<i64>,
    pub(crate) updated_at: Vec<i64>,
    pub(crate) resigned_at: Vec<Option<i64>>,
    pub(crate) logout_at: Vec<Option<i64>>,
    pub(crate) doc: Vec<String>,
    pub(crate) search_text: Vec<String>,
}

impl UserArrays {
    pub(crate) fn of(users: &[&User]) -> Self {
        let mut a = Self::default();
        for u in users {
            let c = UserColumns::of(u);
            a.open_id.push(u.open_id.as_str().to_owned());
            a.union_id.push(u.union_id.as_str().to_owned());
            a.user_id.push(u.user_id.as_str().to_owned());
            a.user_id_fold.push(c.user_id_fold);
            a.email_fold.push(c.email_fold);
            a.mobile.push(c.mobile);
            a.username_fold.push(c.username_fold);
            a.employee_no.push(c.employee_no);
            a.name.push(u.profile.name.clone());
            a.leader_open_id.push(c.leader_open_id);
            a.is_resigned.push(u.status.is_resigned);
            a.is_frozen.push(u.status.is_frozen);
            a.is_activated.push(u.status.is_activated);
            a.is_exited.push(u.status.is_exited);
            a.is_unjoin.push(u.status.is_unjoin);
            a.created_at.push(u.created_at);
            a.updated_at.push(u.updated_at);
            a.resigned_at.push(u.resigned_at);
            a.logout_at.push(u.logout_at);
            a.doc.push(encode_profile(&u.profile));
            a.search_text.push(search_text(&u.profile));
        }
        a
    }
}

/// Writes users and their memberships with two statements, whatever their number, and
/// returns their keys in input order. On a unique violation the caller's transaction is
/// aborted and must be rolled back (to a savepoint or entirely).
async fn write_users(
    conn: &mut PgConnection,
    tenant: TenantId,
    users: &[&User],
) -> Result<Vec<UserKey>, StoreError> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let a = UserArrays::of(users);
    let returned: Vec<(i64, String)> =
        bind_user_arrays!(sqlx::query_as(INSERT_USERS).bind(tenant.0), a)
            .fetch_all(&mut *conn)
            .await
            .context("insert users")?;

    // RETURNING gives no promise about row order, so keys are matched back through the
    // open id, which the tenant's unique index guarantees is unambiguous.
    let by_open_id: HashMap<String, i64> = returned.into_iter().map(|(id, o)| (o, id)).collect();
    let keys = users
        .iter()
        .map(|u| {
            by_open_id
                .get(u.open_id.as_str())
                .map(|&id| UserKey(id))
                .ok_or_else(|| {
                    StoreError::Backend(format!("inserted user {} has no key", u.open_id))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let pairs: Vec<(UserKey, &User)> = keys.iter().copied().zip(users.iter().copied()).collect();
    write_memberships(conn, tenant, &pairs).await?;
    Ok(keys)
}

/// Inserts the join-table rows of the given users in one statement.
async fn write_memberships(
    conn: &mut PgConnection,
    tenant: TenantId,
    users: &[(UserKey, &User)],
) -> Result<(), StoreError> {
    let mut user_id = Vec::new();
    let mut department_id = Vec::new();
    let mut position = Vec::new();
    let mut user_order = Vec::new();
    let mut department_order = Vec::new();
    let mut is_primary = Vec::new();
    for (key, user) in users {
        for (i, m) in user.profile.departments.iter().enumerate() {
            user_id.push(key.0);
            department_id.push(m.department.0);
            position.push(i32::try_from(i).map_err(|_| corrupt("membership position"))?);
            user_order.push(m.user_order);
            department_order.push(m.department_order);
            is_primary.push(m.is_primary);
        }
    }
    if user_id.is_empty() {
        return Ok(());
    }
    sqlx::query(INSERT_MEMBERSHIPS)
        .bind(tenant.0)
        .bind(user_id)
        .bind(department_id)
        .bind(position)
        .bind(user_order)
        .bind(department_order)
        .bind(is_primary)
        .execute(&mut *conn)
        .await
        .context("insert user departments")?;
    Ok(())
}

/// Locks the tenant row for the rest of the transaction and returns how many more active
/// users it may take (`None`: no cap).
///
/// The lock is `FOR NO KEY UPDATE`, the lock an update of the count takes anyway, and not
/// `FOR UPDATE`: every insert into a table that references `tenants` (a department, say)
/// checks its reference with `FOR KEY SHARE` on this row, which `FOR UPDATE` excludes. A
/// user insert holds this row and then waits for the department tree in shared mode, while
/// a department insert holds the tree and then checked its tenant reference: with
/// `FOR UPDATE` the two waited on each other and PostgreSQL failed one as a deadlock.
pub(crate) async fn lock_room(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Option<u64>, StoreError> {
    let row: Option<(Option<i64>, i64)> = sqlx::query_as(
        "SELECT max_active_users, active_users FROM tenants WHERE id = $1 FOR NO KEY UPDATE",
    )
    .bind(tenant.0)
    .fetch_optional(&mut *conn)
    .await
    .context("lock tenant")?;
    let Some((max, active)) = row else {
        return Err(StoreError::Backend(format!(
            "tenant {tenant} does not exist"
        )));
    };
    // A count above the cap (a cap lowered by hand) leaves no room rather than failing.
    Ok(max.map(|m| u64::try_from(m.saturating_sub(active)).unwrap_or(0)))
}

/// Adds `delta` to the tenant's active-user count; the CHECK turns an overshoot into
/// `LicenceExceeded`.
pub(crate) async fn add_active(
    conn: &mut PgConnection,
    tenant: TenantId,
    delta: i64,
) -> Result<(), StoreError> {
    if delta == 0 {
        return Ok(());
    }
    sqlx::query("UPDATE tenants SET active_users = active_users + $2 WHERE id = $1")
        .bind(tenant.0)
        .bind(delta)
        .execute(&mut *conn)
        .await
        .context("update active user count")?;
    Ok(())
}

/// Runs a statement without parameters or results (savepoint control), naming it in errors.
async fn exec(conn: &mut PgConnection, sql: &'static str) -> Result<(), StoreError> {
    sqlx::query(sql).execute(&mut *conn).await.context(sql)?;
    Ok(())
}

fn count_active(users: &[&User]) -> i64 {
    users.iter().filter(|u| !u.status.is_resigned).count() as i64
}

/// The `Created` events of freshly inserted users, in input order.
fn created_events(written: &[(UserKey, &User)]) -> Vec<NewEvent> {
    written
        .iter()
        .map(|(key, u)| {
            let stored = User {
                key: *key,
                ..(*u).clone()
            };
            NewEvent {
                tenant: stored.tenant,
                entity: Entity::User,
                entity_id: stored.open_id.as_str().to_owned(),
                action: ChangeAction::Created,
                at: stored.created_at,
                before: None,
                after: Some(user_snapshot(&stored)),
            }
        })
        .collect()
}

pub(crate) async fn insert_users(
    pool: &PgPool,
    tenant: TenantId,
    users: &[User],
    atomic: bool,
    change: &Change,
) -> Result<Vec<Result<UserKey, StoreError>>, StoreError> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let users: Vec<&User> = users.iter().collect();
    check_tenant(tenant, &users)?;
    let mut tx = pool.begin().await.context("begin user insert")?;
    let results = insert_users_in_tx(&mut tx, tenant, &users, atomic, change).await?;
    if atomic && results.iter().any(Result::is_err) {
        // Nothing of the batch is left in the transaction; end it without a commit.
        tx.rollback().await.context("roll back user insert")?;
    } else {
        if results.iter().all(Result::is_ok) {
            crate::idempotency::complete_pending(&mut tx, change).await?;
        }
        tx.commit().await.context("commit user insert")?;
    }
    Ok(results)
}

/// Refuses, as a backend error, users of another tenant than the one written.
pub(crate) fn check_tenant(tenant: TenantId, users: &[&User]) -> Result<(), StoreError> {
    match users.iter().find(|u| u.tenant != tenant) {
        Some(user) => Err(StoreError::Backend(format!(
            "user {} of tenant {} given to an insert into tenant {tenant}",
            user.open_id, user.tenant
        ))),
        None => Ok(()),
    }
}

/// The one implementation of `Store::insert_users`' semantics, inside the caller's
/// transaction: `insert_users` wraps it in a transaction of its own, and
/// `commit_task_chunk` (tasks.rs) runs it in the transaction that also records the items'
/// outcomes. Returns one result per user, in order.
///
/// It locks the tenant row (before any user row or unique-index entry: the one lock order of
/// every writer), then tries the hot path inside a savepoint. When that path cannot tell
/// which rows were at fault, the savepoint is rolled back and the rows are written one by
/// one, each in a savepoint of its own. With `atomic`, if any result is an error, nothing of
/// this call is left in the transaction; without it, every written user is (with its
/// `Created` event and its seat in the tenant's count), and the caller commits.
pub(crate) async fn insert_users_in_tx(
    conn: &mut PgConnection,
    tenant: TenantId,
    users: &[&User],
    atomic: bool,
    change: &Change,
) -> Result<Vec<Result<UserKey, StoreError>>, StoreError> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    // Taken before the savepoint, because rolling back to a savepoint also gives up the row
    // locks taken after it: the tenant stays locked until the caller's transaction ends.
    let room = lock_room(conn, tenant).await?;
    let gone = gone_references(conn, tenant, users).await?;
    if gone.iter().any(Option::is_some) {
        return insert_all_but_gone(conn, tenant, users, &gone, atomic, change).await;
    }
    exec(conn, "SAVEPOINT roster_insert").await?;
    if let Some(results) = insert_in_bulk(conn, tenant, users, atomic, room, change).await? {
        exec(conn, "RELEASE SAVEPOINT roster_insert").await?;
        return Ok(results);
    }
    exec(conn, "ROLLBACK TO SAVEPOINT roster_insert").await?;
    // The bulk statement could not tell which rows were at fault. This happens only when
    // a concurrent writer took a value after the core's uniqueness probe, or when an
    // all-or-nothing batch does not fit the licence, so the slower path is rare.
    tracing::debug!(
        rows = users.len(),
        atomic,
        "bulk user insert refused; writing row by row"
    );
    let results = insert_one_by_one(conn, tenant, users, atomic, room, change).await?;
    if atomic && results.iter().any(Result::is_err) {
        exec(conn, "ROLLBACK TO SAVEPOINT roster_insert").await?;
    }
    exec(conn, "RELEASE SAVEPOINT roster_insert").await?;
    Ok(results)
}

/// For each user, the field of a reference that is gone (`department_ids`: a department
/// it names is deleted; `leader_user_id`: its leader resigned), or `None`. The core checked
/// both before this transaction began, and a department delete or a resignation may have
/// committed since. The shared tenant locks taken first make the answer hold until the
/// caller commits: department writes and leader changes take the same locks exclusively,
/// so one that committed before is seen here, and one that starts after waits for this
/// transaction and then sees its users (a delete finds the department not empty, a
/// resignation finds the reports).
async fn gone_references(
    conn: &mut PgConnection,
    tenant: TenantId,
    users: &[&User],
) -> Result<Vec<Option<&'static str>>, StoreError> {
    let mut dept_keys: Vec<i64> = users
        .iter()
        .flat_map(|u| u.profile.departments.iter().map(|m| m.department.0))
        .collect();
    dept_keys.sort_unstable();
    dept_keys.dedup();
    let leaders: Vec<&str> = users
        .iter()
        .filter_map(|u| u.profile.leader.as_ref().map(OpenId::as_str))
        .collect();
    share_tenant_lock(conn, tenant, TenantLock::DepartmentTree).await?;
    let live: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM departments WHERE tenant_id = $1 AND id = ANY($2) AND NOT is_deleted",
    )
    .bind(tenant.0)
    .bind(&dept_keys)
    .fetch_all(&mut *conn)
    .await
    .context("check the departments are live")?;
    let live: HashSet<i64> = live.into_iter().collect();
    let mut active: HashSet<String> = HashSet::new();
    if !leaders.is_empty() {
        share_tenant_lock(conn, tenant, TenantLock::Leaders).await?;
        let found: Vec<String> = sqlx::query_scalar(
            "SELECT open_id FROM users WHERE tenant_id = $1 AND open_id = ANY($2) \
             AND NOT is_resigned",
        )
        .bind(tenant.0)
        .bind(&leaders)
        .fetch_all(&mut *conn)
        .await
        .context("check the leaders are active")?;
        active.extend(found);
    }
    // A leader may be an earlier user of the same batch (the core orders leaders first),
    // which counts once it is admitted itself.
    let mut verdicts = Vec::with_capacity(users.len());
    for u in users {
        let verdict = if u
            .profile
            .departments
            .iter()
            .any(|m| !live.contains(&m.department.0))
        {
            Some("department_ids")
        } else if u
            .profile
            .leader
            .as_ref()
            .is_some_and(|l| !active.contains(l.as_str()))
        {
            Some("leader_user_id")
        } else {
            active.insert(u.open_id.as_str().to_owned());
            None
        };
        verdicts.push(verdict);
    }
    Ok(verdicts)
}

/// `insert_users_in_tx` when some users name a reference that is gone: those are refused
/// with `Gone`; with `atomic` nothing is written (the `Ok` keys of the others are void, as
/// for any refused atomic batch), otherwise the others are written as usual.
async fn insert_all_but_gone(
    conn: &mut PgConnection,
    tenant: TenantId,
    users: &[&User],
    gone: &[Option<&'static str>],
    atomic: bool,
    change: &Change,
) -> Result<Vec<Result<UserKey, StoreError>>, StoreError> {
    if atomic {
        return Ok(gone
            .iter()
            .map(|g| g.map_or(Ok(UserKey(0)), |field| Err(StoreError::Gone(field))))
            .collect());
    }
    let admitted: Vec<&User> = users
        .iter()
        .zip(gone)
        .filter(|(_, g)| g.is_none())
        .map(|(u, _)| *u)
        .collect();
    let mut written = Box::pin(insert_users_in_tx(conn, tenant, &admitted, false, change))
        .await?
        .into_iter();
    gone.iter()
        .map(|g| match g {
            Some(field) => Ok(Err(StoreError::Gone(field))),
            None => written
                .next()
                .ok_or_else(|| StoreError::Backend("fewer results than admitted users".into())),
        })
        .collect()
}

/// The hot path: three multi-row inserts (users, memberships, events) and one count update,
/// under the tenant lock the caller holds (`room` is what it read). Returns `None` when the
/// rows must be retried one by one to find the failing ones; the caller then rolls back to
/// its savepoint, since the statement that failed aborted the transaction.
async fn insert_in_bulk(
    conn: &mut PgConnection,
    tenant: TenantId,
    users: &[&User],
    atomic: bool,
    mut room: Option<u64>,
    change: &Change,
) -> Result<Option<Vec<Result<UserKey, StoreError>>>, StoreError> {
    // Best effort: active users past the remaining room are refused, in input order.
    // Resigned users do not count against the licence and are always attempted.
    let mut admitted: Vec<&User> = Vec::with_capacity(users.len());
    let mut refused = vec![false; users.len()];
    for (i, u) in users.iter().enumerate() {
        if !u.status.is_resigned {
            match room {
                Some(0) => {
                    refused[i] = true;
                    continue;
                }
                Some(ref mut r) => *r -= 1,
                None => {}
            }
        }
        admitted.push(u);
    }
    if atomic && refused.iter().any(|&r| r) {
        // The row-by-row path names every failing row, duplicates included, and writes
        // nothing.
        return Ok(None);
    }

    let keys = match write_users(conn, tenant, &admitted).await {
        Ok(keys) => keys,
        Err(StoreError::Duplicate(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    match add_active(conn, tenant, count_active(&admitted)).await {
        Ok(()) => {}
        // The room was read under the lock, so the CHECK cannot fire unless something
        // outside this crate changed the count; let the careful path sort it out.
        Err(StoreError::LicenceExceeded) => return Ok(None),
        Err(e) => return Err(e),
    }
    let written: Vec<(UserKey, &User)> = keys.iter().copied().zip(admitted).collect();
    write_events(
        conn,
        &change.actor.to_string(),
        change.note.as_deref(),
        created_events(&written),
    )
    .await?;

    let mut keys = keys.into_iter();
    let results = refused
        .into_iter()
        .map(|refused| {
            if refused {
                Ok(Err(StoreError::LicenceExceeded))
            } else {
                keys.next()
                    .map(Ok)
                    .ok_or_else(|| StoreError::Backend("fewer keys than inserted users".to_owned()))
            }
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(results))
}

/// The careful path, under the tenant lock the caller holds (`room` is what it read): each
/// row inside its own savepoint so that a refused row leaves the others intact. With
/// `atomic`, it stops writing at the end if any row was refused and returns the results, and
/// the caller rolls back what was written.
async fn insert_one_by_one(
    conn: &mut PgConnection,
    tenant: TenantId,
    users: &[&User],
    atomic: bool,
    mut room: Option<u64>,
    change: &Change,
) -> Result<Vec<Result<UserKey, StoreError>>, StoreError> {
    let mut results = Vec::with_capacity(users.len());
    let mut written: Vec<(UserKey, &User)> = Vec::with_capacity(users.len());
    let mut added = 0i64;
    for &u in users {
        let active = !u.status.is_resigned;
        if active && room == Some(0) {
            results.push(Err(StoreError::LicenceExceeded));
            continue;
        }
        exec(conn, "SAVEPOINT roster_user").await?;
        match write_users(conn, tenant, &[u]).await {
            Ok(keys) => {
                exec(conn, "RELEASE SAVEPOINT roster_user").await?;
                let key = keys
                    .into_iter()
                    .next()
                    .ok_or_else(|| StoreError::Backend("inserted user has no key".to_owned()))?;
                results.push(Ok(key));
                written.push((key, u));
                if active {
                    added += 1;
                    room = room.map(|r| r.saturating_sub(1));
                }
            }
            Err(e @ StoreError::Duplicate(_)) => {
                exec(conn, "ROLLBACK TO SAVEPOINT roster_user").await?;
                results.push(Err(e));
            }
            Err(e) => return Err(e),
        }
    }

    if atomic && results.iter().any(Result::is_err) {
        return Ok(results);
    }
    // An all-or-nothing batch can get here with every row written, when the writer that
    // beat the bulk attempt has since rolled back; then committing is exactly "all".
    // If the count update trips the CHECK after all, the error aborts the call: nothing
    // was committed, which is what both modes promise for a refusal of the whole call.
    add_active(conn, tenant, added).await?;
    // Refused rows were rolled back to their savepoints, so only written users get an
    // event, all in one statement.
    write_events(
        conn,
        &change.actor.to_string(),
        change.note.as_deref(),
        created_events(&written),
    )
    .await?;
    Ok(results)
}

// ----- save (see save.rs) -----

/// Reads and locks the stored rows of the given users, memberships included, in key order
/// (the one lock order of every writer), for the rest of the caller's transaction. A key
/// that is not a user of the tenant is a backend error: the core saves only what it has
/// just read.
pub(crate) async fn lock_users(
    conn: &mut PgConnection,
    tenant: TenantId,
    keys: &[i64],
) -> Result<Vec<User>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as::<_, UserRow>(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE"
    ))
    .bind(tenant.0)
    .bind(keys)
    .fetch_all(&mut *conn)
    .await
    .context("lock users")?;
    if let Some(missing) = keys.iter().find(|k| !rows.iter().any(|r| r.id == **k)) {
        return Err(StoreError::Backend(format!(
            "user {missing} of tenant {tenant} does not exist"
        )));
    }
    into_users(&mut *conn, rows).await
}

/// Rewrites every column of the given (existing, locked) users in one statement, and
/// replaces their memberships in two more.
pub(crate) async fn write_saved_users(
    conn: &mut PgConnection,
    tenant: TenantId,
    users: &[&User],
) -> Result<(), StoreError> {
    if users.is_empty() {
        return Ok(());
    }
    let keys: Vec<i64> = users.iter().map(|u| u.key.0).collect();
    let a = UserArrays::of(users);
    bind_user_arrays!(sqlx::query(UPDATE_USERS).bind(tenant.0), a)
        .bind(&keys)
        .execute(&mut *conn)
        .await
        .context("update users")?;
    sqlx::query("DELETE FROM user_departments WHERE user_id = ANY($1)")
        .bind(&keys)
        .execute(&mut *conn)
        .await
        .context("clear user departments")?;
    let pairs: Vec<(UserKey, &User)> = users.iter().map(|u| (u.key, *u)).collect();
    write_memberships(conn, tenant, &pairs).await
}

// ----- reads of several users -----

/// How a paged read starts: keys are positive, so "no cursor" is "above the smallest".
fn cursor(after: Option<UserKey>) -> i64 {
    after.map_or(i64::MIN, |k| k.0)
}

fn page_size(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The preferred holder of each value of a column that only active users hold uniquely:
/// the active user, then the most recently resigned (as in `get_user`).
macro_rules! preferred_ids_by {
    ($column:literal, $param:literal) => {
        concat!(
            "(SELECT DISTINCT ON (",
            $column,
            ") id FROM users WHERE tenant_id = $1 AND ",
            $column,
            " = ANY(",
            $param,
            ") ORDER BY ",
            $column,
            ", is_resigned, resigned_at DESC NULLS LAST, id DESC)"
        )
    };
}

pub(crate) async fn get_users(
    pool: &PgPool,
    tenant: TenantId,
    lookups: &[UserLookup],
) -> Result<Vec<User>, StoreError> {
    if lookups.is_empty() {
        return Ok(Vec::new());
    }
    let mut keys = Vec::new();
    let mut open_ids = Vec::new();
    let mut union_ids = Vec::new();
    let mut user_ids = Vec::new();
    let mut emails = Vec::new();
    let mut mobiles = Vec::new();
    for lookup in lookups {
        // Folded as in get_user.
        match lookup {
            UserLookup::Key(k) => keys.push(k.0),
            UserLookup::OpenId(s) => open_ids.push(s.clone()),
            UserLookup::UnionId(s) => union_ids.push(s.clone()),
            UserLookup::UserId(s) => user_ids.push(s.to_ascii_lowercase()),
            UserLookup::Email(s) => emails.push(s.to_lowercase()),
            UserLookup::Mobile(s) => mobiles.push(s.clone()),
        }
    }
    // One statement for every kind of lookup; `IN` makes each user appear once however
    // many lookups found it.
    let rows = sqlx::query_as::<_, UserRow>(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE tenant_id = $1 AND id IN (",
        "SELECT id FROM users WHERE tenant_id = $1 AND id = ANY($2) ",
        "UNION ALL SELECT id FROM users WHERE tenant_id = $1 AND open_id = ANY($3) ",
        "UNION ALL SELECT id FROM users WHERE tenant_id = $1 AND union_id = ANY($4) ",
        "UNION ALL ",
        preferred_ids_by!("user_id_fold", "$5"),
        " UNION ALL ",
        preferred_ids_by!("email_fold", "$6"),
        " UNION ALL ",
        preferred_ids_by!("mobile", "$7"),
        ") ORDER BY id"
    ))
    .bind(tenant.0)
    .bind(keys)
    .bind(open_ids)
    .bind(union_ids)
    .bind(user_ids)
    .bind(emails)
    .bind(mobiles)
    .fetch_all(pool)
    .await
    .context("load users")?;
    into_users(pool, rows).await
}

/// A user row with its memberships in position order, as parallel arrays (empty for a
/// user in no department).
#[derive(sqlx::FromRow)]
struct UserWithMemberships {
    #[sqlx(flatten)]
    user: UserRow,
    department_ids: Vec<i64>,
    user_orders: Vec<i64>,
    department_orders: Vec<i64>,
    primaries: Vec<bool>,
}

/// Users by key with their memberships, in no particular order, in one statement (a
/// search's page: a round trip fewer than [`into_users`]' two, 0.2-0.3 ms each at a
/// million users). A statement of its own rather than [`get_users`] with keys only: that
/// one's branches for the other lookups make the server plan it afresh on every call
/// (0.6-0.8 ms at a million users, more than running it), while this one is planned once
/// per connection.
pub(crate) async fn get_users_by_keys(
    conn: &mut PgConnection,
    tenant: TenantId,
    keys: &[i64],
) -> Result<Vec<User>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as::<_, UserWithMemberships>(concat!(
        "SELECT ",
        user_columns_u!(),
        ", COALESCE(m.department_ids, '{}') AS department_ids, \
         COALESCE(m.user_orders, '{}') AS user_orders, \
         COALESCE(m.department_orders, '{}') AS department_orders, \
         COALESCE(m.primaries, '{}') AS primaries \
         FROM users u LEFT JOIN LATERAL (SELECT \
           array_agg(d.department_id ORDER BY d.position) AS department_ids, \
           array_agg(d.user_order ORDER BY d.position) AS user_orders, \
           array_agg(d.department_order ORDER BY d.position) AS department_orders, \
           array_agg(d.is_primary ORDER BY d.position) AS primaries \
           FROM user_departments d WHERE d.user_id = u.id) m ON true \
         WHERE u.tenant_id = $1 AND u.id = ANY($2)"
    ))
    .bind(tenant.0)
    .bind(keys)
    .fetch_all(conn)
    .await
    .context("load users by key")?;
    rows.into_iter()
        .map(|r| {
            let departments = r
                .department_ids
                .iter()
                .zip(&r.user_orders)
                .zip(&r.department_orders)
                .zip(&r.primaries)
                .map(
                    |(((&department, &user_order), &department_order), &is_primary)| Membership {
                        department: DeptKey(department),
                        user_order,
                        department_order,
                        is_primary,
                    },
                )
                .collect();
            r.user.into_user(departments)
        })
        .collect()
}

pub(crate) async fn users_by_contact(
    pool: &PgPool,
    tenant: TenantId,
    emails: &[String],
    mobiles: &[String],
) -> Result<Vec<User>, StoreError> {
    if emails.is_empty() && mobiles.is_empty() {
        return Ok(Vec::new());
    }
    // users_email_idx and users_mobile_idx include resigned users.
    let rows = sqlx::query_as::<_, UserRow>(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE tenant_id = $1 AND (email_fold = ANY($2) OR mobile = ANY($3)) \
         ORDER BY id"
    ))
    .bind(tenant.0)
    .bind(emails)
    .bind(mobiles)
    .fetch_all(pool)
    .await
    .context("load users by contact")?;
    into_users(pool, rows).await
}

pub(crate) async fn department_members(
    pool: &PgPool,
    tenant: TenantId,
    dept: DeptKey,
    after: Option<UserKey>,
    limit: usize,
) -> Result<Vec<User>, StoreError> {
    // Walks user_departments_dept_idx (department_id, user_id) from the cursor, skipping
    // resigned users (who normally have no memberships left anyway).
    let rows = sqlx::query_as::<_, UserRow>(concat!(
        "SELECT ",
        user_columns_u!(),
        " FROM user_departments ud JOIN users u ON u.id = ud.user_id \
         WHERE ud.department_id = $2 AND ud.user_id > $3 AND ud.tenant_id = $1 \
         AND u.tenant_id = $1 AND NOT u.is_resigned \
         ORDER BY ud.user_id LIMIT $4"
    ))
    .bind(tenant.0)
    .bind(dept.0)
    .bind(cursor(after))
    .bind(page_size(limit))
    .fetch_all(pool)
    .await
    .context("list department members")?;
    into_users(pool, rows).await
}

/// A page of a tenant's active users by key, through `users_active_key_idx` (migration
/// 0016). The tenant is bounded by a row comparison and `<=` rather than `=`, and the order
/// names it: with `tenant_id = $1` the planner drops the tenant from the order, and the
/// generic plan a connection keeps walked the primary key instead, reading every other
/// tenant's rows first (600 ms for a small tenant beside a million users).
pub(crate) const LIST_USERS: &str = concat!(
    "SELECT ",
    user_columns_u!(),
    " FROM users u WHERE (u.tenant_id, u.id) > ($1, $2) AND u.tenant_id <= $1 \
     AND NOT u.is_resigned ORDER BY u.tenant_id, u.id LIMIT $3"
);

/// A page of a tenant's active users by key (exports, migration 0007).
pub(crate) async fn list_users(
    pool: &PgPool,
    tenant: TenantId,
    after: Option<UserKey>,
    limit: usize,
) -> Result<Vec<User>, StoreError> {
    let rows = sqlx::query_as::<_, UserRow>(LIST_USERS)
        .bind(tenant.0)
        .bind(cursor(after))
        .bind(page_size(limit))
        .fetch_all(pool)
        .await
        .context("list users")?;
    into_users(pool, rows).await
}

pub(crate) async fn users_led_by(
    pool: &PgPool,
    tenant: TenantId,
    leader: &OpenId,
) -> Result<Vec<User>, StoreError> {
    let rows = sqlx::query_as::<_, UserRow>(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE tenant_id = $1 AND leader_open_id = $2 AND NOT is_resigned \
         ORDER BY id"
    ))
    .bind(tenant.0)
    .bind(leader.as_str())
    .fetch_all(pool)
    .await
    .context("list users led by a user")?;
    into_users(pool, rows).await
}

/// Active users whose dotted-line leaders include `leader`, by key: the users with any
/// dotted-line leader come from `users_dotted_idx`, the document's text narrows them, and
/// the decoded list decides.
pub(crate) async fn users_with_dotted_leader(
    pool: &PgPool,
    tenant: TenantId,
    leader: &OpenId,
) -> Result<Vec<User>, StoreError> {
    let rows = sqlx::query_as::<_, UserRow>(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE tenant_id = $1 AND strpos(doc, '\"dotted_line_leaders\"') > 0 \
         AND strpos(doc, $2) > 0 AND NOT is_resigned ORDER BY id"
    ))
    .bind(tenant.0)
    .bind(format!("\"{}\"", leader.as_str()))
    .fetch_all(pool)
    .await
    .context("list users by dotted-line leader")?;
    let mut users = into_users(pool, rows).await?;
    users.retain(|u| u.profile.dotted_line_leaders.contains(leader));
    Ok(users)
}

// ----- retention -----

/// Users purged per transaction, so that a large backlog neither holds locks for long nor
/// loads every snapshot at once.
const PURGE_BATCH: i64 = 500;

/// The note of every purge event.
const PURGE_NOTE: &str = "purged after retention";

pub(crate) async fn purge_resigned(pool: &PgPool, before: i64) -> Result<u64, StoreError> {
    let actor = Actor::System.to_string();
    let mut purged = 0u64;
    loop {
        let mut tx = pool.begin().await.context("begin purge")?;
        // Resigned users hold no licence seat, so the tenant count is untouched and no
        // tenant lock is needed. FOR UPDATE waits for a concurrent save of the same user
        // (a resurrection) and then re-checks the condition.
        let rows = sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE is_resigned AND resigned_at < $1 ORDER BY resigned_at, id LIMIT $2 FOR UPDATE"
        ))
        .bind(before)
        .bind(PURGE_BATCH)
        .fetch_all(&mut *tx)
        .await
        .context("find users to purge")?;
        if rows.is_empty() {
            tx.rollback().await.context("end purge")?;
            return Ok(purged);
        }
        let users = into_users(&mut *tx, rows).await?;
        let keys: Vec<i64> = users.iter().map(|u| u.key.0).collect();
        // Memberships go with the rows (ON DELETE CASCADE).
        let deleted = sqlx::query("DELETE FROM users WHERE id = ANY($1)")
            .bind(&keys)
            .execute(&mut *tx)
            .await
            .context("purge resigned users")?
            .rows_affected();
        let at = now_ms();
        let events = users
            .iter()
            .map(|u| NewEvent {
                tenant: u.tenant,
                entity: Entity::User,
                entity_id: u.open_id.as_str().to_owned(),
                action: ChangeAction::Deleted,
                at,
                before: Some(user_snapshot(u)),
                after: None,
            })
            .collect();
        write_events(&mut tx, &actor, Some(PURGE_NOTE), events).await?;
        tx.commit().await.context("commit purge")?;
        purged += deleted;
    }
}

/// The wall clock in ms, for events that no entity timestamp dates (purges, groups).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
