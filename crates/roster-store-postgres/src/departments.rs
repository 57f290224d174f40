//! Departments: one tree per tenant, soft-deleted rather than removed.

use roster_core::ids::DepartmentId;
use roster_core::{Department, DeptKey, DeptLookup, OpenDepartmentId, StoreError, TenantId};
use roster_store_common::{decode_department, encode_department};
use sqlx::PgPool;

use crate::errors::{corrupt, Context};

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

/// The folded form of a custom department id. Department ids are ASCII by construction
/// (`DepartmentId::parse`), so ASCII lower-casing equals the schema's `lower(department_id)`.
fn fold(department_id: &str) -> String {
    department_id.to_ascii_lowercase()
}

pub(crate) async fn insert_department(
    pool: &PgPool,
    dept: &Department,
) -> Result<Department, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO departments (tenant_id, open_department_id, department_id, \
         department_id_fold, parent_id, name, sort_order, doc, is_deleted, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(dept.tenant.0)
    .bind(dept.open_department_id.as_str())
    .bind(dept.department_id.as_str())
    .bind(fold(dept.department_id.as_str()))
    .bind(dept.parent.map(|p| p.0))
    .bind(&dept.fields.name)
    .bind(dept.fields.order)
    .bind(encode_department(&dept.fields))
    .bind(dept.is_deleted)
    .bind(dept.created_at)
    .bind(dept.updated_at)
    .fetch_one(pool)
    .await
    .context("insert department")?;
    Ok(Department {
        key: DeptKey(id),
        ..dept.clone()
    })
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
            .bind(fold(custom_id))
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
         ORDER BY sort_order DESC, id ASC"
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

pub(crate) async fn update_department(pool: &PgPool, dept: &Department) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE departments SET parent_id = $3, name = $4, sort_order = $5, doc = $6, \
         is_deleted = $7, updated_at = $8 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(dept.tenant.0)
    .bind(dept.key.0)
    .bind(dept.parent.map(|p| p.0))
    .bind(&dept.fields.name)
    .bind(dept.fields.order)
    .bind(encode_department(&dept.fields))
    .bind(dept.is_deleted)
    .bind(dept.updated_at)
    .execute(pool)
    .await
    .context("update department")?;
    if done.rows_affected() == 0 {
        // The core only updates departments it has just read, so a missing row means it
        // was removed behind the store's back.
        return Err(StoreError::Backend(format!(
            "department {} of tenant {} does not exist",
            dept.key.0, dept.tenant
        )));
    }
    Ok(())
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
