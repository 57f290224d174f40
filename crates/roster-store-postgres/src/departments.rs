//! Departments: one tree per tenant, soft-deleted rather than removed.

use roster_core::department::{MAX_CHILDREN, MAX_DEPARTMENTS, MAX_DEPTH};
use roster_core::ids::DepartmentId;
use roster_core::{
    Change, ChangeAction, ConflictKind, Department, DeptKey, DeptLookup, Entity, OpenDepartmentId,
    OpenId, StoreError, TenantId,
};
use roster_store_common::{
    decode_department, department_snapshot, encode_department, fold_department_id,
};
use sqlx::{PgConnection, PgPool};

use crate::errors::{corrupt, Context};
use crate::events::{write_events, NewEvent};

#[derive(sqlx::FromRow)]
struct DeptRow {
    id: i64,
    tenant_id: i64,
    open_department_id: String,
    department_id: String,
    parent_id: Option<i64>,
    name: String,
    sort_order: i64,
    doc: String,
    is_deleted: bool,
    created_at: i64,
    updated_at: i64,
}

impl DeptRow {
    fn into_department(self) -> Result<Department, StoreError> {
        Ok(Department {
            key: DeptKey(self.id),
            tenant: TenantId(self.tenant_id),
            open_department_id: OpenDepartmentId::from_trusted(self.open_department_id),
            department_id: DepartmentId::from_trusted(self.department_id),
            parent: self.parent_id.map(DeptKey),
            fields: decode_department(&self.doc, self.name, self.sort_order)?,
            is_deleted: self.is_deleted,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The columns of `DeptRow`, as a macro so that queries stay `&'static str` (sqlx only
/// accepts SQL it can see is not built from data).
macro_rules! dept_columns {
    () => {
        "id, tenant_id, open_department_id, department_id, parent_id, name, sort_order, doc, \
         is_deleted, created_at, updated_at"
    };
}

/// The `leader_open_id` column: the leader of `doc`, copied out so that it can be indexed.
fn leader_column(dept: &Department) -> Option<String> {
    dept.fields.leader.as_ref().map(|l| l.as_str().to_owned())
}

pub(crate) async fn insert_department(
    pool: &PgPool,
    dept: &Department,
    change: &Change,
) -> Result<Department, StoreError> {
    let mut tx = pool.begin().await.context("begin department insert")?;
    if let Some(parent) = dept.parent {
        // Under the tree lock, a delete of the parent either committed (and is seen here)
        // or waits for this insert (and then sees the child).
        lock_tenant_for(&mut tx, dept.tenant, TenantLock::DepartmentTree).await?;
        parent_is_live(&mut tx, parent).await?;
    }
    named_users_active(&mut tx, dept.tenant, &dept.fields, None).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO departments (tenant_id, open_department_id, department_id, \
         department_id_fold, parent_id, name, sort_order, doc, leader_open_id, is_deleted, \
         created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(dept.tenant.0)
    .bind(dept.open_department_id.as_str())
    .bind(dept.department_id.as_str())
    .bind(fold_department_id(dept.department_id.as_str()))
    .bind(dept.parent.map(|p| p.0))
    .bind(&dept.fields.name)
    .bind(dept.fields.order)
    .bind(encode_department(&dept.fields))
    .bind(leader_column(dept))
    .bind(dept.is_deleted)
    .bind(dept.created_at)
    .bind(dept.updated_at)
    .fetch_one(&mut *tx)
    .await
    .context("insert department")?;
    let stored = Department {
        key: DeptKey(id),
        ..dept.clone()
    };
    if dept.parent.is_some() {
        within_tree_limits(&mut tx, dept.tenant, stored.key, true).await?;
    }
    write_events(
        &mut tx,
        &change.actor.to_string(),
        change.note.as_deref(),
        vec![NewEvent {
            tenant: stored.tenant,
            entity: Entity::Department,
            entity_id: stored.open_department_id.as_str().to_owned(),
            action: ChangeAction::Created,
            at: stored.created_at,
            before: None,
            after: Some(department_snapshot(&stored)),
        }],
    )
    .await?;
    crate::idempotency::complete_pending(&mut tx, change).await?;
    tx.commit().await.context("commit department insert")?;
    Ok(stored)
}

pub(crate) async fn get_department(
    pool: &PgPool,
    tenant: TenantId,
    lookup: &DeptLookup,
) -> Result<Option<Department>, StoreError> {
    let row = match lookup {
        DeptLookup::Key(key) => {
            sqlx::query_as::<_, DeptRow>(concat!(
                "SELECT ",
                dept_columns!(),
                " FROM departments WHERE tenant_id = $1 AND id = $2"
            ))
            .bind(tenant.0)
            .bind(key.0)
            .fetch_optional(pool)
            .await
        }
        DeptLookup::OpenId(open_id) => {
            sqlx::query_as::<_, DeptRow>(concat!(
                "SELECT ",
                dept_columns!(),
                " FROM departments WHERE tenant_id = $1 AND open_department_id = $2"
            ))
            .bind(tenant.0)
            .bind(open_id)
            .fetch_optional(pool)
            .await
        }
        // A custom id is unique only among live departments, and deleted ones may share it;
        // the live one wins, then the most recently created of the deleted ones.
        DeptLookup::CustomId(custom_id) => {
            sqlx::query_as::<_, DeptRow>(concat!(
                "SELECT ",
                dept_columns!(),
                " FROM departments WHERE tenant_id = $1 AND department_id_fold = $2 \
                 ORDER BY is_deleted, id DESC LIMIT 1"
            ))
            .bind(tenant.0)
            .bind(fold_department_id(custom_id))
            .fetch_optional(pool)
            .await
        }
    }
    .context("load department")?;
    row.map(DeptRow::into_department).transpose()
}

pub(crate) async fn child_departments(
    pool: &PgPool,
    tenant: TenantId,
    parent: DeptKey,
) -> Result<Vec<Department>, StoreError> {
    sqlx::query_as::<_, DeptRow>(concat!(
        "SELECT ",
        dept_columns!(),
        " FROM departments WHERE tenant_id = $1 AND parent_id = $2 AND NOT is_deleted \
         ORDER BY sort_order ASC, id ASC"
    ))
    .bind(tenant.0)
    .bind(parent.0)
    .fetch_all(pool)
    .await
    .context("list child departments")?
    .into_iter()
    .map(DeptRow::into_department)
    .collect()
}

pub(crate) async fn count_departments(pool: &PgPool, tenant: TenantId) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM departments WHERE tenant_id = $1 AND NOT is_deleted",
    )
    .bind(tenant.0)
    .fetch_one(pool)
    .await
    .context("count departments")?;
    u64::try_from(n).map_err(|_| corrupt("department count"))
}

/// The active users with a membership in a department or below it (each once), and those
/// whose primary membership is there. `UNION` visits each department once.
pub(crate) async fn subtree_counts(
    pool: &PgPool,
    tenant: TenantId,
    dept: DeptKey,
) -> Result<(u64, u64), StoreError> {
    let (all, primary): (i64, i64) = sqlx::query_as(
        "WITH RECURSIVE sub(id) AS ( \
             SELECT $2::bigint \
             UNION \
             SELECT d.id FROM departments d JOIN sub ON d.parent_id = sub.id \
             WHERE d.tenant_id = $1 AND NOT d.is_deleted) \
         SELECT count(DISTINCT ud.user_id), \
                count(DISTINCT ud.user_id) FILTER (WHERE ud.is_primary) \
         FROM sub JOIN user_departments ud ON ud.department_id = sub.id \
         JOIN users u ON u.id = ud.user_id \
         WHERE ud.tenant_id = $1 AND NOT u.is_resigned",
    )
    .bind(tenant.0)
    .bind(dept.0)
    .fetch_one(pool)
    .await
    .context("count department subtree members")?;
    Ok((
        u64::try_from(all).map_err(|_| corrupt("member count"))?,
        u64::try_from(primary).map_err(|_| corrupt("member count"))?,
    ))
}

pub(crate) async fn department_member_count(
    pool: &PgPool,
    tenant: TenantId,
    dept: DeptKey,
) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM user_departments ud JOIN users u ON u.id = ud.user_id \
         WHERE ud.tenant_id = $1 AND ud.department_id = $2 AND NOT u.is_resigned",
    )
    .bind(tenant.0)
    .bind(dept.0)
    .fetch_one(pool)
    .await
    .context("count department members")?;
    u64::try_from(n).map_err(|_| corrupt("member count"))
}

/// Refuses (`Gone`) a department write that names a user, as leader, deputy or HRBP, who
/// is not an active user of the tenant. Checked inside the write, because the core's check
/// before it cannot see a delete committed in between, which would leave the department
/// naming a resigned user for good. The rows are read `FOR SHARE`: a delete of one of them
/// running now has it locked, so this waits for it and then sees it resigned, and a delete
/// that starts later waits for this write and then finds the department naming its user
/// (`save` refuses it as `Stale`, and the core takes the user off this department too).
/// Only the users the write adds (against `stored`) are checked: the others were checked
/// when they were named, and a delete takes them off.
pub(crate) async fn named_users_active(
    conn: &mut PgConnection,
    tenant: TenantId,
    fields: &roster_core::DepartmentFields,
    stored: Option<&roster_core::DepartmentFields>,
) -> Result<(), StoreError> {
    let named = roster_store_common::newly_named(fields, stored);
    if named.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = named.iter().map(|(_, u)| u.as_str()).collect();
    let active: Vec<String> = sqlx::query_scalar(
        "SELECT open_id FROM users WHERE tenant_id = $1 AND open_id = ANY($2) \
         AND NOT is_resigned ORDER BY id FOR SHARE",
    )
    .bind(tenant.0)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .context("check a department's users")?;
    match named
        .iter()
        .find(|(_, u)| !active.iter().any(|a| a == u.as_str()))
    {
        Some((field, _)) => Err(StoreError::Gone(field)),
        None => Ok(()),
    }
}

/// Live departments that name `leader` as leader, deputy or HRBP, by key; on the pool or
/// inside a transaction (`save` checks a resigned user is on none).
pub(crate) async fn departments_led_by<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant: TenantId,
    leader: &OpenId,
) -> Result<Vec<Department>, StoreError> {
    sqlx::query_as::<_, DeptRow>(concat!(
        "SELECT ",
        dept_columns!(),
        " FROM departments WHERE tenant_id = $1 AND NOT is_deleted AND (leader_open_id = $2 \
         OR (strpos(doc, $2) > 0 AND (jsonb_exists(doc::jsonb -> 'deputies', $2) \
                                      OR jsonb_exists(doc::jsonb -> 'hrbps', $2)))) ORDER BY id"
    ))
    .bind(tenant.0)
    .bind(leader.as_str())
    .fetch_all(db)
    .await
    .context("list departments led by a user")?
    .into_iter()
    .map(DeptRow::into_department)
    .collect()
}

// ----- save (see save.rs) -----

/// A tenant-wide advisory lock, held until the transaction ends: writes that must see each
/// other's rows for a check made inside them take turns on it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TenantLock {
    /// Department writes (moves, creates, deletes).
    DepartmentTree,
    /// Saves that change a leader or resign a user.
    Leaders,
}

/// Takes one of the tenant's advisory locks until the transaction ends.
pub(crate) async fn lock_tenant_for(
    conn: &mut PgConnection,
    tenant: TenantId,
    lock: TenantLock,
) -> Result<(), StoreError> {
    tenant_advisory_lock(conn, tenant, lock, false).await
}

/// Takes one of the tenant's advisory locks in shared mode until the transaction ends.
/// User inserts take these: they only need the departments and leaders they name to stay
/// as their check found them until they commit, so they do not wait for each other, only
/// for (and hold off) the department writes and leader changes that take the lock itself.
pub(crate) async fn share_tenant_lock(
    conn: &mut PgConnection,
    tenant: TenantId,
    lock: TenantLock,
) -> Result<(), StoreError> {
    tenant_advisory_lock(conn, tenant, lock, true).await
}

async fn tenant_advisory_lock(
    conn: &mut PgConnection,
    tenant: TenantId,
    lock: TenantLock,
    shared: bool,
) -> Result<(), StoreError> {
    let (class, what) = match lock {
        TenantLock::DepartmentTree => (0x7472_6565, "lock the department tree"), // "tree"
        TenantLock::Leaders => (0x6c65_6164, "lock the leader relations"),       // "lead"
    };
    // The two-key form takes 32-bit keys; tenants are numbered from 1, far below that.
    let key = i32::try_from(tenant.0 % i64::from(i32::MAX)).unwrap_or_default();
    let sql = if shared {
        "SELECT pg_advisory_xact_lock_shared($1, $2)"
    } else {
        "SELECT pg_advisory_xact_lock($1, $2)"
    };
    sqlx::query(sql)
        .bind(class)
        .bind(key)
        .execute(&mut *conn)
        .await
        .context(what)?;
    Ok(())
}

/// `Stale` unless the parent department is live (a delete committed since the core read it).
pub(crate) async fn parent_is_live(
    conn: &mut PgConnection,
    parent: DeptKey,
) -> Result<(), StoreError> {
    let deleted: Option<bool> =
        sqlx::query_scalar("SELECT is_deleted FROM departments WHERE id = $1")
            .bind(parent.0)
            .fetch_optional(&mut *conn)
            .await
            .context("check the parent department")?;
    match deleted {
        Some(false) => Ok(()),
        _ => Err(StoreError::Stale),
    }
}

/// `Stale` if a department has live children or active members (a child or member added
/// since the delete's check; the core reads again and refuses the delete).
pub(crate) async fn still_empty(conn: &mut PgConnection, dept: DeptKey) -> Result<(), StoreError> {
    let busy: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM departments WHERE parent_id = $1 AND NOT is_deleted) \
         OR EXISTS (SELECT 1 FROM user_departments ud JOIN users u ON u.id = ud.user_id \
                    WHERE ud.department_id = $1 AND NOT u.is_resigned)",
    )
    .bind(dept.0)
    .fetch_one(&mut *conn)
    .await
    .context("check the department is empty")?;
    if busy {
        return Err(StoreError::Stale);
    }
    Ok(())
}

/// Feishu's limits on the tree (1 000 children, 25 levels, 30 000 departments per tenant),
/// checked again after a department was inserted or moved, inside the writing transaction:
/// the core checked them on an earlier read, and two writes that each passed that check
/// could together exceed a limit (two creates under a parent with 999 children, a move and
/// a create deepening the same chain). The caller holds the tenant's department-tree lock,
/// so every department write committed before this one is seen here.
pub(crate) async fn within_tree_limits(
    conn: &mut PgConnection,
    tenant: TenantId,
    dept: DeptKey,
    inserted: bool,
) -> Result<(), StoreError> {
    // The levels from the root down to the deepest department of the subtree: the
    // subtree root's ancestors (root included) and the subtree's own height (1 for a leaf).
    let (siblings, levels, departments): (i64, i64, i64) = sqlx::query_as(
        "WITH RECURSIVE \
             up(id, n) AS ( \
                SELECT parent_id, 1 FROM departments WHERE id = $1 \
                UNION ALL \
                SELECT d.parent_id, up.n + 1 FROM departments d JOIN up ON d.id = up.id \
                WHERE up.n < 64), \
             down(id, n) AS ( \
                SELECT $1::bigint, 1 \
                UNION ALL \
                SELECT d.id, down.n + 1 FROM departments d JOIN down ON d.parent_id = down.id \
                WHERE NOT d.is_deleted AND down.n < 64) \
         SELECT \
             (SELECT count(*) FROM departments WHERE NOT is_deleted \
              AND parent_id = (SELECT parent_id FROM departments WHERE id = $1)), \
             (SELECT count(id) FROM up) + (SELECT coalesce(max(n), 1) FROM down)::bigint, \
             CASE WHEN $3 THEN (SELECT count(*) FROM departments \
                                WHERE tenant_id = $2 AND NOT is_deleted) ELSE 0 END",
    )
    .bind(dept.0)
    .bind(tenant.0)
    .bind(inserted)
    .fetch_one(&mut *conn)
    .await
    .context("check the department tree's limits")?;
    if u64::try_from(siblings).unwrap_or(0) > MAX_CHILDREN {
        return Err(StoreError::Conflict(ConflictKind::TooManyChildren));
    }
    if usize::try_from(levels).unwrap_or(0) > MAX_DEPTH + 1 {
        return Err(StoreError::Conflict(ConflictKind::TreeTooDeep));
    }
    if u64::try_from(departments).unwrap_or(0) > MAX_DEPARTMENTS {
        return Err(StoreError::Conflict(ConflictKind::TooManyDepartments));
    }
    Ok(())
}

/// Whether a department is its own ancestor after this transaction's writes: the walk up
/// through `parent_id` comes back to it (bounded, so that it ends on any table).
pub(crate) async fn closes_cycle(
    conn: &mut PgConnection,
    dept: DeptKey,
) -> Result<bool, StoreError> {
    sqlx::query_scalar(
        "WITH RECURSIVE up(id, n) AS ( \
             SELECT parent_id, 1 FROM departments WHERE id = $1 \
             UNION ALL \
             SELECT d.parent_id, up.n + 1 FROM departments d JOIN up ON d.id = up.id \
             WHERE up.id <> $1 AND up.n < 64) \
         SELECT EXISTS (SELECT 1 FROM up WHERE id = $1)",
    )
    .bind(dept.0)
    .fetch_one(&mut *conn)
    .await
    .context("check the department tree for a cycle")
}

/// Reads and locks the stored rows of the given departments, in key order (the one lock
/// order of every writer), for the rest of the caller's transaction. A key that is not a
/// department of the tenant is a backend error: the core saves only what it has just read.
pub(crate) async fn lock_departments(
    conn: &mut PgConnection,
    tenant: TenantId,
    keys: &[i64],
) -> Result<Vec<Department>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as::<_, DeptRow>(concat!(
        "SELECT ",
        dept_columns!(),
        " FROM departments WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id FOR NO KEY UPDATE"
    ))
    .bind(tenant.0)
    .bind(keys)
    .fetch_all(&mut *conn)
    .await
    .context("lock departments")?;
    if let Some(missing) = keys.iter().find(|k| !rows.iter().any(|r| r.id == **k)) {
        return Err(StoreError::Backend(format!(
            "department {missing} of tenant {tenant} does not exist"
        )));
    }
    rows.into_iter().map(DeptRow::into_department).collect()
}

/// Rewrites every column of the given (existing, locked) departments in one statement.
pub(crate) async fn write_departments(
    conn: &mut PgConnection,
    tenant: TenantId,
    depts: &[&Department],
) -> Result<(), StoreError> {
    if depts.is_empty() {
        return Ok(());
    }
    let n = depts.len();
    let mut id = Vec::with_capacity(n);
    let mut open_department_id = Vec::with_capacity(n);
    let mut department_id = Vec::with_capacity(n);
    let mut department_id_fold = Vec::with_capacity(n);
    let mut parent_id = Vec::with_capacity(n);
    let mut name = Vec::with_capacity(n);
    let mut sort_order = Vec::with_capacity(n);
    let mut doc = Vec::with_capacity(n);
    let mut leader_open_id = Vec::with_capacity(n);
    let mut is_deleted = Vec::with_capacity(n);
    let mut created_at = Vec::with_capacity(n);
    let mut updated_at = Vec::with_capacity(n);
    for d in depts {
        id.push(d.key.0);
        open_department_id.push(d.open_department_id.as_str().to_owned());
        department_id.push(d.department_id.as_str().to_owned());
        department_id_fold.push(fold_department_id(d.department_id.as_str()));
        parent_id.push(d.parent.map(|p| p.0));
        name.push(d.fields.name.clone());
        sort_order.push(d.fields.order);
        doc.push(encode_department(&d.fields));
        leader_open_id.push(leader_column(d));
        is_deleted.push(d.is_deleted);
        created_at.push(d.created_at);
        updated_at.push(d.updated_at);
    }
    sqlx::query(
        "UPDATE departments AS d SET open_department_id = v.open_department_id, \
         department_id = v.department_id, department_id_fold = v.department_id_fold, \
         parent_id = v.parent_id, name = v.name, sort_order = v.sort_order, doc = v.doc, \
         leader_open_id = v.leader_open_id, is_deleted = v.is_deleted, \
         created_at = v.created_at, updated_at = v.updated_at \
         FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], \
         $7::text[], $8::bigint[], $9::text[], $10::text[], $11::boolean[], $12::bigint[], \
         $13::bigint[]) AS v(id, open_department_id, department_id, department_id_fold, \
         parent_id, name, sort_order, doc, leader_open_id, is_deleted, created_at, updated_at) \
         WHERE d.tenant_id = $1 AND d.id = v.id",
    )
    .bind(tenant.0)
    .bind(id)
    .bind(open_department_id)
    .bind(department_id)
    .bind(department_id_fold)
    .bind(parent_id)
    .bind(name)
    .bind(sort_order)
    .bind(doc)
    .bind(leader_open_id)
    .bind(is_deleted)
    .bind(created_at)
    .bind(updated_at)
    .execute(&mut *conn)
    .await
    .context("update departments")?;
    Ok(())
}
