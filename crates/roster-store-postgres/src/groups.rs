//! User groups.

use roster_core::{Group, OpenId, StoreError, TenantId};
use roster_store_common::fold_group_name;
use sqlx::{PgConnection, PgPool};

use crate::errors::Context;

#[derive(sqlx::FromRow)]
struct GroupRow {
    id: i64,
    tenant_id: i64,
    group_id: String,
    name: String,
    description: Option<String>,
    owner_open_id: Option<String>,
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
            owner: r.owner_open_id.map(OpenId::from_trusted),
            created_at: r.created_at,
        }
    }
}

/// The columns of `GroupRow`, as a macro so that queries stay `&'static str`.
macro_rules! group_columns {
    () => {
        "id, tenant_id, group_id, name, description, owner_open_id, created_at"
    };
}

pub(crate) async fn insert_group(pool: &PgPool, group: &Group) -> Result<Group, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO groups (tenant_id, group_id, name, name_fold, description, \
         owner_open_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(group.tenant.0)
    .bind(&group.group_id)
    .bind(&group.name)
    .bind(fold_group_name(&group.name))
    .bind(&group.description)
    .bind(group.owner.as_ref().map(OpenId::as_str))
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

/// Groups owned by `owner`, oldest first, through `groups_owner_idx`.
pub(crate) async fn groups_owned_by(
    pool: &PgPool,
    tenant: TenantId,
    owner: &OpenId,
) -> Result<Vec<Group>, StoreError> {
    let rows = sqlx::query_as::<_, GroupRow>(concat!(
        "SELECT ",
        group_columns!(),
        " FROM groups WHERE tenant_id = $1 AND owner_open_id = $2 ORDER BY created_at, id"
    ))
    .bind(tenant.0)
    .bind(owner.as_str())
    .fetch_all(pool)
    .await
    .context("list groups by owner")?;
    Ok(rows.into_iter().map(Group::from).collect())
}

// ----- save (see save.rs) -----

/// Reads and locks the stored rows of the given groups, in key order (the one lock order of
/// every writer), for the rest of the caller's transaction. A key that is not a group of the
/// tenant is a backend error: the core saves only what it has just read.
pub(crate) async fn lock_groups(
    conn: &mut PgConnection,
    tenant: TenantId,
    keys: &[i64],
) -> Result<Vec<Group>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as::<_, GroupRow>(concat!(
        "SELECT ",
        group_columns!(),
        " FROM groups WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE"
    ))
    .bind(tenant.0)
    .bind(keys)
    .fetch_all(&mut *conn)
    .await
    .context("lock groups")?;
    if let Some(missing) = keys.iter().find(|k| !rows.iter().any(|r| r.id == **k)) {
        return Err(StoreError::Backend(format!(
            "group {missing} of tenant {tenant} does not exist"
        )));
    }
    Ok(rows.into_iter().map(Group::from).collect())
}

/// Rewrites the changeable columns (name, its fold, description, owner) of the given
/// (existing, locked) groups in one statement. The group id and creation time never change.
pub(crate) async fn write_groups(
    conn: &mut PgConnection,
    tenant: TenantId,
    groups: &[&Group],
) -> Result<(), StoreError> {
    if groups.is_empty() {
        return Ok(());
    }
    let n = groups.len();
    let mut id = Vec::with_capacity(n);
    let mut name = Vec::with_capacity(n);
    let mut name_fold = Vec::with_capacity(n);
    let mut description = Vec::with_capacity(n);
    let mut owner_open_id = Vec::with_capacity(n);
    for g in groups {
        id.push(g.key);
        name.push(g.name.clone());
        name_fold.push(fold_group_name(&g.name));
        description.push(g.description.clone());
        owner_open_id.push(g.owner.as_ref().map(|o| o.as_str().to_owned()));
    }
    sqlx::query(
        "UPDATE groups AS g SET name = v.name, name_fold = v.name_fold, \
         description = v.description, owner_open_id = v.owner_open_id \
         FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[]) \
         AS v(id, name, name_fold, description, owner_open_id) \
         WHERE g.tenant_id = $1 AND g.id = v.id",
    )
    .bind(tenant.0)
    .bind(id)
    .bind(name)
    .bind(name_fold)
    .bind(description)
    .bind(owner_open_id)
    .execute(&mut *conn)
    .await
    .context("update groups")?;
    Ok(())
}
