//! User groups.

use roster_core::{Group, StoreError, TenantId};
use roster_store_common::fold_group_name;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::errors::SqlContext;

macro_rules! group_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, tenant_id, group_id, name, description, created_at FROM groups ",
            $rest
        )
    };
}

fn read(r: &Row<'_>) -> rusqlite::Result<Group> {
    Ok(Group {
        key: r.get(0)?,
        tenant: TenantId(r.get(1)?),
        group_id: r.get(2)?,
        name: r.get(3)?,
        description: r.get(4)?,
        created_at: r.get(5)?,
    })
}

pub(crate) fn insert_group(conn: &Connection, mut group: Group) -> Result<Group, StoreError> {
    group.key = conn
        .prepare_cached(
            "INSERT INTO groups (tenant_id, group_id, name, name_fold, description, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut s| {
            s.insert(params![
                group.tenant.0,
                group.group_id,
                group.name,
                fold_group_name(&group.name),
                group.description,
                group.created_at,
            ])
        })
        .context("insert group")?;
    Ok(group)
}

pub(crate) fn get_group(
    conn: &Connection,
    tenant: TenantId,
    group_id: &str,
) -> Result<Option<Group>, StoreError> {
    conn.prepare_cached(group_select!("WHERE tenant_id = ?1 AND group_id = ?2"))
        .and_then(|mut s| s.query_row(params![tenant.0, group_id], read).optional())
        .context("load group row")
}

pub(crate) fn list_groups(conn: &Connection, tenant: TenantId) -> Result<Vec<Group>, StoreError> {
    conn.prepare_cached(group_select!(
        "WHERE tenant_id = ?1 ORDER BY created_at, id"
    ))
    .and_then(|mut s| s.query_map([tenant.0], read)?.collect())
    .context("list group rows")
}
