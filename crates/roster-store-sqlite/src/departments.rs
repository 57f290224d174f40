//! Departments: the tree of each tenant, rooted at the department whose ids are both `"0"`.

use roster_core::department::ROOT_ID;
use roster_core::ids::DepartmentId;
use roster_core::{
    Department, DepartmentFields, DeptKey, DeptLookup, OpenDepartmentId, StoreError, TenantId,
};
use roster_store_common::{decode_department, encode_department};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::errors::{corrupt, SqlContext};

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
        Ok(Self {
            id: r.get(0)?,
            tenant_id: r.get(1)?,
            open_department_id: r.get(2)?,
            department_id: r.get(3)?,
            parent_id: r.get(4)?,
            name: r.get(5)?,
            sort_order: r.get(6)?,
            doc: r.get(7)?,
            is_deleted: r.get(8)?,
            created_at: r.get(9)?,
            updated_at: r.get(10)?,
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

/// The folded form under which custom department ids are unique. Custom ids are ASCII by
/// construction (`DepartmentId::parse`), so ASCII folding is complete, and it matches
/// PostgreSQL's `lower()` on the same values.
fn fold_id(id: &str) -> String {
    id.to_ascii_lowercase()
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

pub(crate) fn insert_department(
    conn: &Connection,
    mut dept: Department,
) -> Result<Department, StoreError> {
    let id = conn
        .prepare_cached(
            "INSERT INTO departments (tenant_id, open_department_id, department_id, \
             department_id_fold, parent_id, name, sort_order, doc, is_deleted, created_at, \
             updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .and_then(|mut s| {
            s.insert(params![
                dept.tenant.0,
                dept.open_department_id.as_str(),
                dept.department_id.as_str(),
                fold_id(dept.department_id.as_str()),
                dept.parent.map(|p| p.0),
                dept.fields.name,
                dept.fields.order,
                encode_department(&dept.fields),
                dept.is_deleted,
                dept.created_at,
                dept.updated_at,
            ])
        })
        .context("insert department")?;
    dept.key = DeptKey(id);
    Ok(dept)
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
                s.query_row(params![tenant.0, fold_id(custom)], DeptRow::read)
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
             ORDER BY sort_order DESC, id"
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

/// Writes the parent, the editable fields and the deleted flag. The ids never change.
pub(crate) fn update_department(conn: &Connection, dept: &Department) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE departments SET parent_id = ?3, name = ?4, sort_order = ?5, doc = ?6, \
             is_deleted = ?7, updated_at = ?8 WHERE tenant_id = ?1 AND id = ?2",
        )
        .and_then(|mut s| {
            s.execute(params![
                dept.tenant.0,
                dept.key.0,
                dept.parent.map(|p| p.0),
                dept.fields.name,
                dept.fields.order,
                encode_department(&dept.fields),
                dept.is_deleted,
                dept.updated_at,
            ])
        })
        .context("update department")?;
    if changed == 0 {
        // The core only updates departments it has just read, so a miss means the row
        // vanished or the caller's key is wrong; either is a fault, not a client error.
        return Err(StoreError::Backend(format!(
            "update department: no department {} in tenant {}",
            dept.key.0, dept.tenant
        )));
    }
    Ok(())
}

/// Active users whose memberships include the department directly.
pub(crate) fn member_count(
    conn: &Connection,
    tenant: TenantId,
    dept: DeptKey,
) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM user_departments ud JOIN users u ON u.id = ud.user_id \
             WHERE ud.department_id = ?2 AND ud.tenant_id = ?1 AND NOT u.is_resigned",
        )
        .and_then(|mut s| s.query_row(params![tenant.0, dept.0], |r| r.get(0)))
        .context("count department members")?;
    u64::try_from(n).map_err(|_| corrupt("member count"))
}
