//! User groups.

use roster_core::{Group, StoreError, TenantId};
use roster_store_common::fold_group_name;
use sqlx::PgPool;

use crate::errors::Context;

#[derive(sqlx::FromRow)]
struct GroupRow {
    id: i64,
    tenant_id: i64,
    group_id: String,
    name: String,
    description: Option<String>,
    created_at: i64,
}

impl From<GroupRow> for Group {
    fn from(r: GroupRow) -> Self {
        Group {
            key: r.id,
            tenant: TenantId(r.tenant_id),
            group_id: r.group_id,
            name: r.name,
            description: r.description,
            created_at: r.created_at,
        }
    }
}

/// The columns of `GroupRow`, as a macro so that queries stay `&'static str`.
macro_rules! group_columns {
    () => {
        "id, tenant_id, group_id, name, description, created_at"
    };
}

pub(crate) async fn insert_group(pool: &PgPool, group: &Group) -> Result<Group, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO groups (tenant_id, group_id, name, name_fold, description, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(group.tenant.0)
    .bind(&group.group_id)
    .bind(&group.name)
    .bind(fold_group_name(&group.name))
    .bind(&group.description)
    .bind(group.created_at)
    .fetch_one(pool)
    .await
    .context("insert group")?;
    Ok(Group {
        key: id,
        ..group.clone()
    })
}

pub(crate) async fn get_group(
    pool: &PgPool,
    tenant: TenantId,
    group_id: &str,
) -> Result<Option<Group>, StoreError> {
    let row = sqlx::query_as::<_, GroupRow>(concat!(
        "SELECT ",
        group_columns!(),
        " FROM groups WHERE tenant_id = $1 AND group_id = $2"
    ))
    .bind(tenant.0)
    .bind(group_id)
    .fetch_optional(pool)
    .await
    .context("load group")?;
    Ok(row.map(Group::from))
}

pub(crate) async fn list_groups(pool: &PgPool, tenant: TenantId) -> Result<Vec<Group>, StoreError> {
    let rows = sqlx::query_as::<_, GroupRow>(concat!(
        "SELECT ",
        group_columns!(),
        " FROM groups WHERE tenant_id = $1 ORDER BY created_at, id"
    ))
    .bind(tenant.0)
    .fetch_all(pool)
    .await
    .context("list groups")?;
    Ok(rows.into_iter().map(Group::from).collect())
}
