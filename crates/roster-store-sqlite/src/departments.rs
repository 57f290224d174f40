//! Departments: the tree of each tenant, rooted at the department whose ids are both `"0"`.

use roster_core::department::{MAX_CHILDREN, MAX_DEPARTMENTS, MAX_DEPTH, ROOT_ID};
use roster_core::ids::DepartmentId;
use roster_core::{
    ChangeAction, ConflictKind, Department, DepartmentFields, DeptKey, DeptLookup,
    OpenDepartmentId, OpenId, StoreError, TenantId,
};
use roster_store_common::{
    decode_department, department_snapshot, encode_department, fold_department_id,
};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::errors::{corrupt, SqlContext};
use crate::events::{self, ChangeCtx, EventEntity, NewEvent};

/// A `departments` row as read, before its document is decoded.
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

/// The select list matching `DeptRow::read`.
macro_rules! dept_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, tenant_id, open_department_id, department_id, parent_id, name, \
             sort_order, doc, is_deleted, created_at, updated_at FROM departments ",
            $rest
        )
    };
}

impl DeptRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Self::read_from(r, 0)
    }

    /// Reads the columns of `dept_select!` starting at column `first` (for joins that
    /// select other columns before them).
    fn read_from(r: &Row<'_>, first: usize) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(first)?,
            tenant_id: r.get(first + 1)?,
            open_department_id: r.get(first + 2)?,
            department_id: r.get(first + 3)?,
            parent_id: r.get(first + 4)?,
            name: r.get(first + 5)?,
            sort_order: r.get(first + 6)?,
            doc: r.get(first + 7)?,
            is_deleted: r.get(first + 8)?,
            created_at: r.get(first + 9)?,
            updated_at: r.get(first + 10)?,
        })
    }

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

/// Inserts a tenant's root department inside the caller's transaction.
pub(crate) fn insert_root(
    conn: &Connection,
    tenant: TenantId,
    name: &str,
    now: i64,
) -> Result<DeptKey, StoreError> {
    let fields = DepartmentFields {
        name: name.to_owned(),
        ..DepartmentFields::default()
    };
    conn.prepare_cached(
        "INSERT INTO departments (tenant_id, open_department_id, department_id, \
         department_id_fold, parent_id, name, sort_order, doc, is_deleted, created_at, \
         updated_at) VALUES (?1, ?2, ?2, ?2, NULL, ?3, 0, ?4, 0, ?5, ?5)",
    )
    .and_then(|mut s| {
        s.insert(params![
            tenant.0,
            ROOT_ID,
            name,
            encode_department(&fields),
            now
        ])
    })
    .map(DeptKey)
    .context("insert root department")
}

/// Inserts a department and its `created` event in one transaction.
pub(crate) fn insert_department(
    conn: &mut Connection,
    mut dept: Department,
    ctx: &ChangeCtx,
) -> Result<Department, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin insert department")?;
    if let Some(parent) = dept.parent {
        parent_is_live(&tx, parent)?;
    }
    named_users_active(&tx, dept.tenant, &dept.fields, None)?;
    let id = tx
        .prepare_cached(
            "INSERT INTO departments (tenant_id, open_department_id, department_id, \
             department_id_fold, parent_id, name, sort_order, doc, is_deleted, created_at, \
             updated_at, leader_open_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .and_then(|mut s| {
            s.insert(params![
                dept.tenant.0,
                dept.open_department_id.as_str(),
                dept.department_id.as_str(),
                fold_department_id(dept.department_id.as_str()),
                dept.parent.map(|p| p.0),
                dept.fields.name,
                dept.fields.order,
                encode_department(&dept.fields),
                dept.is_deleted,
                dept.created_at,
                dept.updated_at,
                dept.fields.leader.as_ref().map(OpenId::as_str),
            ])
        })
        .context("insert department")?;
    dept.key = DeptKey(id);
    if dept.parent.is_some() {
        within_tree_limits(&tx, dept.tenant, dept.key, true)?;
    }
    let after = department_snapshot(&dept);
    events::record(
        &mut events::prepare(&tx)?,
        ctx,
        &NewEvent {
            tenant: dept.tenant,
            entity: EventEntity::Department,
            entity_id: dept.open_department_id.as_str(),
            action: ChangeAction::Created,
            at: dept.updated_at,
            before: None,
            after: Some(&after),
        },
    )?;
    crate::idempotency::complete_pending(&tx, ctx)?;
    tx.commit().context("commit insert department")?;
    Ok(dept)
}

/// Refuses (`Gone`) a department write that names a user, as leader, deputy or HRBP, who
/// is not an active user of the tenant. Checked inside the write, because the core's check
/// before it cannot see a delete committed in between, which would leave the department
/// naming a resigned user for good (the delete takes the user off the departments it read).
/// Only the users the write adds (against `stored`) are checked: the others were checked
/// when they were named, and a delete takes them off.
fn named_users_active(
    conn: &Connection,
    tenant: TenantId,
    fields: &DepartmentFields,
    stored: Option<&DepartmentFields>,
) -> Result<(), StoreError> {
    for (field, user) in roster_store_common::newly_named(fields, stored) {
        let active: Option<bool> = conn
            .prepare_cached(
                "SELECT NOT is_resigned FROM users WHERE tenant_id = ?1 AND open_id = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![tenant.0, user.as_str()], |r| r.get(0))
                    .optional()
            })
            .context("check a department's users")?;
        if active != Some(true) {
            return Err(StoreError::Gone(field));
        }
    }
    Ok(())
}

pub(crate) fn get_department(
    conn: &Connection,
    tenant: TenantId,
    lookup: &DeptLookup,
) -> Result<Option<Department>, StoreError> {
    let row = match lookup {
        DeptLookup::Key(key) => conn
            .prepare_cached(dept_select!("WHERE tenant_id = ?1 AND id = ?2"))
            .and_then(|mut s| {
                s.query_row(params![tenant.0, key.0], DeptRow::read)
                    .optional()
            }),
        DeptLookup::OpenId(open) => conn
            .prepare_cached(dept_select!(
                "WHERE tenant_id = ?1 AND open_department_id = ?2"
            ))
            .and_then(|mut s| {
                s.query_row(params![tenant.0, open], DeptRow::read)
                    .optional()
            }),
        // Custom ids are unique only among live departments, so several deleted ones may
        // share an id; the live one wins, then the most recently changed.
        DeptLookup::CustomId(custom) => conn
            .prepare_cached(dept_select!(
                "WHERE tenant_id = ?1 AND department_id_fold = ?2 \
                 ORDER BY is_deleted, updated_at DESC, id DESC LIMIT 1"
            ))
            .and_then(|mut s| {
                s.query_row(params![tenant.0, fold_department_id(custom)], DeptRow::read)
                    .optional()
            }),
    }
    .context("load department row")?;
    row.map(DeptRow::into_department).transpose()
}

pub(crate) fn child_departments(
    conn: &Connection,
    tenant: TenantId,
    parent: DeptKey,
) -> Result<Vec<Department>, StoreError> {
    let rows = conn
        .prepare_cached(dept_select!(
            "WHERE tenant_id = ?1 AND parent_id = ?2 AND NOT is_deleted \
             ORDER BY sort_order, id"
        ))
        .and_then(|mut s| {
            s.query_map(params![tenant.0, parent.0], DeptRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .context("list child department rows")?;
    rows.into_iter().map(DeptRow::into_department).collect()
}

pub(crate) fn count_departments(conn: &Connection, tenant: TenantId) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM departments WHERE tenant_id = ?1 AND NOT is_deleted")
        .and_then(|mut s| s.query_row([tenant.0], |r| r.get(0)))
        .context("count departments")?;
    u64::try_from(n).map_err(|_| corrupt("department count"))
}

/// Writes every column of an existing department and records its event, inside the
/// caller's transaction (`users::save`). The event's action is inferred from the stored
/// row: the deleted flag being set is `deleted`, anything else `updated`.
/// `Stale` unless the parent department is live: a delete committed since the core read
/// it (the core reads again and answers that the parent does not exist).
fn parent_is_live(tx: &Connection, parent: DeptKey) -> Result<(), StoreError> {
    let deleted: Option<bool> = tx
        .prepare_cached("SELECT is_deleted FROM departments WHERE id = ?1")
        .and_then(|mut s| s.query_row([parent.0], |r| r.get(0)).optional())
        .context("check the parent department")?;
    match deleted {
        Some(false) => Ok(()),
        _ => Err(StoreError::Stale),
    }
}

/// `Stale` if a department has live children or active members: a delete checked that on
/// an earlier read, and a child or member added since must not end up under a deleted
/// department (the core reads again and refuses the delete).
fn still_empty(tx: &Connection, dept: DeptKey) -> Result<(), StoreError> {
    let busy: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM departments WHERE parent_id = ?1 AND NOT is_deleted) \
             OR (SELECT member_count FROM departments WHERE id = ?1) > 0",
        )
        .and_then(|mut s| s.query_row([dept.0], |r| r.get(0)))
        .context("check the department is empty")?;
    if busy {
        return Err(StoreError::Stale);
    }
    Ok(())
}

/// Whether a department is its own ancestor: the walk up from it through `parent_id` comes
/// back to it (bounded, so that it ends on any table). Checked in the transaction that moves
/// a department, after the write: the core's check ran on an earlier read, and a move
/// committed in between could otherwise close a cycle with this one.
pub(crate) const CLOSES_CYCLE: &str = "WITH RECURSIVE up(id, n) AS ( \
        SELECT parent_id, 1 FROM departments WHERE id = ?1 \
        UNION ALL \
        SELECT d.parent_id, up.n + 1 FROM departments d JOIN up ON d.id = up.id \
        WHERE up.id <> ?1 AND up.n < 64) \
     SELECT EXISTS (SELECT 1 FROM up WHERE id = ?1)";

/// Levels from the root down to the deepest department of a subtree: the subtree root's
/// ancestors (root included) and the subtree's own height (1 for a leaf). Bounded, so that
/// it ends on any table.
const TREE_LEVELS: &str = "WITH RECURSIVE \
     up(id, n) AS ( \
        SELECT parent_id, 1 FROM departments WHERE id = ?1 \
        UNION ALL \
        SELECT d.parent_id, up.n + 1 FROM departments d JOIN up ON d.id = up.id \
        WHERE up.n < 64), \
     down(id, n) AS ( \
        SELECT ?1, 1 \
        UNION ALL \
        SELECT d.id, down.n + 1 FROM departments d JOIN down ON d.parent_id = down.id \
        WHERE NOT d.is_deleted AND down.n < 64) \
     SELECT (SELECT count(id) FROM up) + (SELECT max(n) FROM down)";

/// Feishu's limits on the tree (1 000 children, 25 levels, 30 000 departments per tenant),
/// checked again after a department was inserted or moved, inside the writing transaction:
/// the core checked them on an earlier read, and two writes that each passed that check
/// could together exceed a limit (two creates under a parent with 999 children, a move and
/// a create deepening the same chain). Writes of one file are serial, so this sees every
/// write committed before it.
fn within_tree_limits(
    tx: &Connection,
    tenant: TenantId,
    dept: DeptKey,
    inserted: bool,
) -> Result<(), StoreError> {
    let siblings: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM departments WHERE NOT is_deleted \
             AND parent_id = (SELECT parent_id FROM departments WHERE id = ?1)",
        )
        .and_then(|mut s| s.query_row([dept.0], |r| r.get(0)))
        .context("count the parent's children")?;
    if u64::try_from(siblings).unwrap_or(0) > MAX_CHILDREN {
        return Err(StoreError::Conflict(ConflictKind::TooManyChildren));
    }
    let levels: i64 = tx
        .prepare_cached(TREE_LEVELS)
        .and_then(|mut s| s.query_row([dept.0], |r| r.get(0)))
        .context("measure the department tree's depth")?;
    if usize::try_from(levels).unwrap_or(0) > MAX_DEPTH + 1 {
        return Err(StoreError::Conflict(ConflictKind::TreeTooDeep));
    }
    if inserted && count_departments(tx, tenant)? > MAX_DEPARTMENTS {
        return Err(StoreError::Conflict(ConflictKind::TooManyDepartments));
    }
    Ok(())
}

pub(crate) fn save_department(
    conn: &Connection,
    tenant: TenantId,
    dept: &Department,
    after: &str,
    read_version: Option<i64>,
    ctx: &ChangeCtx,
) -> Result<(), StoreError> {
    let stored = conn
        .prepare_cached(dept_select!("WHERE tenant_id = ?1 AND id = ?2"))
        .and_then(|mut s| {
            s.query_row(params![tenant.0, dept.key.0], DeptRow::read)
                .optional()
        })
        .context("load stored department")?
        .ok_or_else(|| {
            // The core only saves departments it has just read, so a miss means the row
            // vanished or the caller's key is wrong; either is a fault, not a client error.
            StoreError::Backend(format!(
                "save: no department {} in tenant {tenant}",
                dept.key.0
            ))
        })?
        .into_department()?;
    if read_version.is_some_and(|v| v != stored.updated_at) {
        return Err(StoreError::Stale);
    }
    if dept.is_deleted && !stored.is_deleted {
        still_empty(conn, dept.key)?;
    }
    if !dept.is_deleted && dept.parent != stored.parent {
        if let Some(parent) = dept.parent {
            parent_is_live(conn, parent)?;
        }
    }
    if !dept.is_deleted {
        named_users_active(conn, tenant, &dept.fields, Some(&stored.fields))?;
    }
    let action = if dept.is_deleted && !stored.is_deleted {
        ChangeAction::Deleted
    } else {
        ChangeAction::Updated
    };
    conn.prepare_cached(
        "UPDATE departments SET open_department_id = ?3, department_id = ?4, \
         department_id_fold = ?5, parent_id = ?6, name = ?7, sort_order = ?8, doc = ?9, \
         is_deleted = ?10, created_at = ?11, updated_at = ?12, leader_open_id = ?13 \
         WHERE tenant_id = ?1 AND id = ?2",
    )
    .and_then(|mut s| {
        s.execute(params![
            tenant.0,
            dept.key.0,
            dept.open_department_id.as_str(),
            dept.department_id.as_str(),
            fold_department_id(dept.department_id.as_str()),
            dept.parent.map(|p| p.0),
            dept.fields.name,
            dept.fields.order,
            encode_department(&dept.fields),
            dept.is_deleted,
            dept.created_at,
            dept.updated_at,
            dept.fields.leader.as_ref().map(OpenId::as_str),
        ])
    })
    .context("update department")?;
    if !dept.is_deleted && dept.parent != stored.parent {
        let cycle: bool = conn
            .prepare_cached(CLOSES_CYCLE)
            .and_then(|mut s| s.query_row([dept.key.0], |r| r.get(0)))
            .context("check the department tree for a cycle")?;
        if cycle {
            return Err(StoreError::Conflict(ConflictKind::Cycle));
        }
        within_tree_limits(conn, tenant, dept.key, false)?;
    }
    let before = department_snapshot(&stored);
    events::record(
        &mut events::prepare(conn)?,
        ctx,
        &NewEvent {
            tenant,
            entity: EventEntity::Department,
            entity_id: dept.open_department_id.as_str(),
            action,
            at: dept.updated_at,
            before: Some(&before),
            after: Some(after),
        },
    )
}

/// The active users with a membership in a department or below it (each once), and those
/// whose primary membership is there. `UNION` (not `UNION ALL`) visits each department
/// once, so the walk ends on any table.
pub(crate) fn subtree_counts(
    conn: &Connection,
    tenant: TenantId,
    dept: DeptKey,
) -> Result<(u64, u64), StoreError> {
    let (all, primary): (i64, i64) = conn
        .prepare_cached(
            "WITH RECURSIVE sub(id) AS ( \
                 SELECT ?2 \
                 UNION \
                 SELECT d.id FROM departments d JOIN sub ON d.parent_id = sub.id \
                 WHERE d.tenant_id = ?1 AND NOT d.is_deleted) \
             SELECT count(DISTINCT ud.user_id), \
                    count(DISTINCT CASE WHEN ud.is_primary THEN ud.user_id END) \
             FROM sub JOIN user_departments ud ON ud.department_id = sub.id \
             JOIN users u ON u.id = ud.user_id \
             WHERE ud.tenant_id = ?1 AND NOT u.is_resigned",
        )
        .and_then(|mut s| s.query_row(params![tenant.0, dept.0], |r| Ok((r.get(0)?, r.get(1)?))))
        .context("count department subtree members")?;
    Ok((
        u64::try_from(all).map_err(|_| corrupt("member count"))?,
        u64::try_from(primary).map_err(|_| corrupt("member count"))?,
    ))
}

/// Live departments that name a leader (`?2`) as leader, deputy or HRBP, by key. Deputies
/// and HRBPs live in the document only, so this reads the tenant's departments (through
/// the tenant's index, never the whole table); the document's lists are only parsed where
/// `instr` finds the id in it at all.
pub(crate) const DEPARTMENTS_LED_BY: &str = dept_select!(
    "WHERE tenant_id = ?1 AND NOT is_deleted AND (leader_open_id = ?2 \
     OR (instr(doc, ?2) > 0 AND (EXISTS (SELECT 1 FROM json_each(doc, '$.deputies') \
                                         WHERE value = ?2) \
                                 OR EXISTS (SELECT 1 FROM json_each(doc, '$.hrbps') \
                                            WHERE value = ?2)))) ORDER BY id"
);

/// Live departments that name `leader` as leader, deputy or HRBP, by key.
pub(crate) fn departments_led_by(
    conn: &Connection,
    tenant: TenantId,
    leader: &OpenId,
) -> Result<Vec<Department>, StoreError> {
    let rows = conn
        .prepare_cached(DEPARTMENTS_LED_BY)
        .and_then(|mut s| {
            s.query_map(params![tenant.0, leader.as_str()], DeptRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .context("list departments by leader")?;
    rows.into_iter().map(DeptRow::into_department).collect()
}

/// Active users whose memberships include the department directly.
pub(crate) fn member_count(
    conn: &Connection,
    tenant: TenantId,
    dept: DeptKey,
) -> Result<u64, StoreError> {
    // Kept by the store's writes (`users::MemberCounts`, migration 0013); a department that
    // does not exist has none.
    let n: i64 = conn
        .prepare_cached("SELECT member_count FROM departments WHERE tenant_id = ?1 AND id = ?2")
        .and_then(|mut s| {
            s.query_row(params![tenant.0, dept.0], |r| r.get(0))
                .optional()
        })
        .context("count department members")?
        .unwrap_or(0);
    u64::try_from(n).map_err(|_| corrupt("member count"))
}
