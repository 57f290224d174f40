//! Users, their department memberships, and the tenant's active-user count.
//!
//! Every write that changes how many active users a tenant has also updates
//! `tenants.active_users` in the same transaction, so the CHECK on that table makes the
//! licence cap a database rule. Writers that touch the count lock the tenant row first
//! (`SELECT … FOR UPDATE`), before any user row or unique-index entry: with one lock order,
//! two batches carrying the same values in different orders queue instead of deadlocking.

use std::collections::HashMap;

use roster_core::{
    DeptKey, Membership, OpenId, StoreError, TakenValues, TenantId, UnionId, UniqueProbe, User,
    UserId, UserKey, UserLookup, UserStatus,
};
use roster_store_common::{decode_profile, encode_profile, UserColumns};
use sqlx::{PgConnection, PgPool};

use crate::errors::{corrupt, Context};

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

    let memberships = sqlx::query_as::<_, MembershipRow>(
        "SELECT department_id, user_order, department_order, is_primary \
         FROM user_departments WHERE user_id = $1 ORDER BY position",
    )
    .bind(row.id)
    .fetch_all(pool)
    .await
    .context("load user departments")?;

    let mut profile = decode_profile(&row.doc)?;
    profile.departments = memberships
        .into_iter()
        .map(|m| Membership {
            department: DeptKey(m.department_id),
            user_order: m.user_order,
            department_order: m.department_order,
            is_primary: m.is_primary,
        })
        .collect();
    Ok(Some(User {
        key: UserKey(row.id),
        tenant: TenantId(row.tenant_id),
        open_id: OpenId::from_trusted(row.open_id),
        union_id: UnionId::from_trusted(row.union_id),
        user_id: UserId::from_trusted(row.user_id),
        profile,
        status: UserStatus {
            is_frozen: row.is_frozen,
            is_resigned: row.is_resigned,
            is_activated: row.is_activated,
            is_exited: row.is_exited,
            is_unjoin: row.is_unjoin,
        },
        created_at: row.created_at,
        updated_at: row.updated_at,
        resigned_at: row.resigned_at,
        logout_at: row.logout_at,
    }))
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
/// one array per column, so the statement has 21 parameters whatever the number of rows
/// and costs a single round trip.
const INSERT_USERS: &str = "INSERT INTO users (tenant_id, open_id, union_id, user_id, \
     user_id_fold, email_fold, mobile, username_fold, employee_no, name, leader_open_id, \
     is_resigned, is_frozen, is_activated, is_exited, is_unjoin, created_at, updated_at, \
     resigned_at, logout_at, doc) \
     SELECT $1::bigint, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
     $12::boolean[], $13::boolean[], $14::boolean[], $15::boolean[], $16::boolean[], \
     $17::bigint[], $18::bigint[], $19::bigint[], $20::bigint[], $21::text[]) \
     RETURNING id, open_id";

/// The same shape for the join table.
const INSERT_MEMBERSHIPS: &str = "INSERT INTO user_departments (tenant_id, user_id, \
     department_id, position, user_order, department_order, is_primary) \
     SELECT $1::bigint, * FROM UNNEST($2::bigint[], $3::bigint[], $4::integer[], \
     $5::bigint[], $6::bigint[], $7::boolean[])";

/// Column arrays for `INSERT_USERS`, one entry per user.
#[derive(Default)]
struct UserArrays {
    open_id: Vec<String>,
    union_id: Vec<String>,
    user_id: Vec<String>,
    user_id_fold: Vec<String>,
    email_fold: Vec<Option<String>>,
    mobile: Vec<Option<String>>,
    username_fold: Vec<Option<String>>,
    employee_no: Vec<Option<String>>,
    name: Vec<String>,
    leader_open_id: Vec<Option<String>>,
    is_resigned: Vec<bool>,
    is_frozen: Vec<bool>,
    is_activated: Vec<bool>,
    is_exited: Vec<bool>,
    is_unjoin: Vec<bool>,
    created_at: Vec<i64>,
    updated_at: Vec<i64>,
    resigned_at: Vec<Option<i64>>,
    logout_at: Vec<Option<i64>>,
    doc: Vec<String>,
}

impl UserArrays {
    fn of(users: &[&User]) -> Self {
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
    let returned: Vec<(i64, String)> = sqlx::query_as(INSERT_USERS)
        .bind(tenant.0)
        .bind(a.open_id)
        .bind(a.union_id)
        .bind(a.user_id)
        .bind(a.user_id_fold)
        .bind(a.email_fold)
        .bind(a.mobile)
        .bind(a.username_fold)
        .bind(a.employee_no)
        .bind(a.name)
        .bind(a.leader_open_id)
        .bind(a.is_resigned)
        .bind(a.is_frozen)
        .bind(a.is_activated)
        .bind(a.is_exited)
        .bind(a.is_unjoin)
        .bind(a.created_at)
        .bind(a.updated_at)
        .bind(a.resigned_at)
        .bind(a.logout_at)
        .bind(a.doc)
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
async fn lock_room(conn: &mut PgConnection, tenant: TenantId) -> Result<Option<u64>, StoreError> {
    let row: Option<(Option<i64>, i64)> = sqlx::query_as(
        "SELECT max_active_users, active_users FROM tenants WHERE id = $1 FOR UPDATE",
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
async fn add_active(
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

pub(crate) async fn insert_users(
    pool: &PgPool,
    tenant: TenantId,
    users: &[User],
    atomic: bool,
) -> Result<Vec<Result<UserKey, StoreError>>, StoreError> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(results) = insert_in_bulk(pool, tenant, users, atomic).await? {
        return Ok(results);
    }
    // The bulk statement could not tell which rows were at fault. This happens only when
    // a concurrent writer took a value after the core's uniqueness probe, or when an
    // all-or-nothing batch does not fit the licence, so the slower path is rare.
    tracing::debug!(
        rows = users.len(),
        atomic,
        "bulk user insert refused; writing row by row"
    );
    insert_one_by_one(pool, tenant, users, atomic).await
}

/// The hot path: one transaction, one lock, two multi-row inserts, one count update.
/// Returns `None` when the rows must be retried one by one to find the failing ones.
async fn insert_in_bulk(
    pool: &PgPool,
    tenant: TenantId,
    users: &[User],
    atomic: bool,
) -> Result<Option<Vec<Result<UserKey, StoreError>>>, StoreError> {
    let mut tx = pool.begin().await.context("begin user insert")?;
    let mut room = lock_room(&mut tx, tenant).await?;

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
    // The rollbacks before each `Ok(None)` are explicit, not left to the transaction's
    // drop, because the row-by-row path starts by waiting for the tenant lock this
    // transaction holds; a drop would release it only when the pool gets round to it.
    if atomic && refused.iter().any(|&r| r) {
        // The row-by-row path names every failing row, duplicates included, and writes
        // nothing.
        tx.rollback()
            .await
            .context("roll back refused user insert")?;
        return Ok(None);
    }

    let keys = match write_users(&mut tx, tenant, &admitted).await {
        Ok(keys) => keys,
        Err(StoreError::Duplicate(_)) => {
            tx.rollback()
                .await
                .context("roll back refused user insert")?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    match add_active(&mut tx, tenant, count_active(&admitted)).await {
        Ok(()) => {}
        // The room was read under the lock, so the CHECK cannot fire unless something
        // outside this crate changed the count; let the careful path sort it out.
        Err(StoreError::LicenceExceeded) => {
            tx.rollback()
                .await
                .context("roll back refused user insert")?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    tx.commit().await.context("commit user insert")?;

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

/// The careful path: one transaction, each row inside its own savepoint so that a refused
/// row leaves the others intact. With `atomic`, any refusal rolls everything back.
async fn insert_one_by_one(
    pool: &PgPool,
    tenant: TenantId,
    users: &[User],
    atomic: bool,
) -> Result<Vec<Result<UserKey, StoreError>>, StoreError> {
    let mut tx = pool.begin().await.context("begin row-by-row user insert")?;
    let mut room = lock_room(&mut tx, tenant).await?;
    let mut results = Vec::with_capacity(users.len());
    let mut added = 0i64;
    for u in users {
        let active = !u.status.is_resigned;
        if active && room == Some(0) {
            results.push(Err(StoreError::LicenceExceeded));
            continue;
        }
        exec(&mut tx, "SAVEPOINT roster_user").await?;
        match write_users(&mut tx, tenant, &[u]).await {
            Ok(keys) => {
                exec(&mut tx, "RELEASE SAVEPOINT roster_user").await?;
                let key = keys
                    .into_iter()
                    .next()
                    .ok_or_else(|| StoreError::Backend("inserted user has no key".to_owned()))?;
                results.push(Ok(key));
                if active {
                    added += 1;
                    room = room.map(|r| r.saturating_sub(1));
                }
            }
            Err(e @ StoreError::Duplicate(_)) => {
                exec(&mut tx, "ROLLBACK TO SAVEPOINT roster_user").await?;
                results.push(Err(e));
            }
            Err(e) => return Err(e),
        }
    }

    if atomic && results.iter().any(Result::is_err) {
        tx.rollback().await.context("roll back user insert")?;
        return Ok(results);
    }
    // An all-or-nothing batch can get here with every row written, when the writer that
    // beat the bulk attempt has since rolled back; then committing is exactly "all".
    // If the count update trips the CHECK after all, the error aborts the call: nothing
    // was committed, which is what both modes promise for a refusal of the whole call.
    add_active(&mut tx, tenant, added).await?;
    tx.commit().await.context("commit row-by-row user insert")?;
    Ok(results)
}

// ----- update -----

enum UpdateOutcome {
    Done,
    /// The resigned flag changes, so the tenant's count must change too, and the first
    /// attempt did not hold the tenant lock.
    NeedsTenantLock,
}

pub(crate) async fn update_user(pool: &PgPool, user: &User) -> Result<(), StoreError> {
    // Most updates leave the resigned flag alone and need no tenant lock, which would
    // serialise every profile edit of a tenant. When the flag does change, the first
    // attempt notices after locking the user row and backs out, because taking the tenant
    // lock second could deadlock against a batch insert that took it first.
    match try_update_user(pool, user, false).await? {
        UpdateOutcome::Done => Ok(()),
        UpdateOutcome::NeedsTenantLock => match try_update_user(pool, user, true).await? {
            UpdateOutcome::Done => Ok(()),
            UpdateOutcome::NeedsTenantLock => Err(StoreError::Backend(
                "user update asked for the tenant lock while holding it".to_owned(),
            )),
        },
    }
}

async fn try_update_user(
    pool: &PgPool,
    user: &User,
    lock_tenant: bool,
) -> Result<UpdateOutcome, StoreError> {
    let tenant = user.tenant;
    let mut tx = pool.begin().await.context("begin user update")?;
    if lock_tenant {
        lock_room(&mut tx, tenant).await?;
    }
    let was_resigned: Option<bool> = sqlx::query_scalar(
        "SELECT is_resigned FROM users WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
    )
    .bind(user.key.0)
    .bind(tenant.0)
    .fetch_optional(&mut *tx)
    .await
    .context("lock user")?;
    let Some(was_resigned) = was_resigned else {
        return Err(StoreError::Backend(format!(
            "user {} of tenant {tenant} does not exist",
            user.key.0
        )));
    };
    let delta: i64 = match (was_resigned, user.status.is_resigned) {
        (true, false) => 1,
        (false, true) => -1,
        _ => 0,
    };
    if delta != 0 && !lock_tenant {
        tx.rollback().await.context("roll back user update")?;
        return Ok(UpdateOutcome::NeedsTenantLock);
    }

    let c = UserColumns::of(user);
    sqlx::query(
        "UPDATE users SET open_id = $3, union_id = $4, user_id = $5, user_id_fold = $6, \
         email_fold = $7, mobile = $8, username_fold = $9, employee_no = $10, name = $11, \
         leader_open_id = $12, is_resigned = $13, is_frozen = $14, is_activated = $15, \
         is_exited = $16, is_unjoin = $17, created_at = $18, updated_at = $19, \
         resigned_at = $20, logout_at = $21, doc = $22 \
         WHERE id = $1 AND tenant_id = $2",
    )
    .bind(user.key.0)
    .bind(tenant.0)
    .bind(user.open_id.as_str())
    .bind(user.union_id.as_str())
    .bind(user.user_id.as_str())
    .bind(c.user_id_fold)
    .bind(c.email_fold)
    .bind(c.mobile)
    .bind(c.username_fold)
    .bind(c.employee_no)
    .bind(&user.profile.name)
    .bind(c.leader_open_id)
    .bind(user.status.is_resigned)
    .bind(user.status.is_frozen)
    .bind(user.status.is_activated)
    .bind(user.status.is_exited)
    .bind(user.status.is_unjoin)
    .bind(user.created_at)
    .bind(user.updated_at)
    .bind(user.resigned_at)
    .bind(user.logout_at)
    .bind(encode_profile(&user.profile))
    .execute(&mut *tx)
    .await
    .context("update user")?;

    sqlx::query("DELETE FROM user_departments WHERE user_id = $1")
        .bind(user.key.0)
        .execute(&mut *tx)
        .await
        .context("clear user departments")?;
    write_memberships(&mut tx, tenant, &[(user.key, user)]).await?;

    // A resurrection past the cap trips the CHECK here and becomes LicenceExceeded; the
    // transaction is dropped, so nothing of the update survives.
    add_active(&mut tx, tenant, delta).await?;
    tx.commit().await.context("commit user update")?;
    Ok(UpdateOutcome::Done)
}
