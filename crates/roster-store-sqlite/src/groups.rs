//! User groups.

use roster_core::{ChangeAction, Group, OpenId, StoreError, TenantId};
use roster_store_common::{fold_group_name, group_snapshot};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::errors::SqlContext;
use crate::events::{self, ChangeCtx, EventEntity, NewEvent};

macro_rules! group_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, tenant_id, group_id, name, description, owner_open_id, created_at \
             FROM groups ",
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
        owner: r.get::<_, Option<String>>(5)?.map(OpenId::from_trusted),
        created_at: r.get(6)?,
    })
}

pub(crate) fn insert_group(conn: &Connection, mut group: Group) -> Result<Group, StoreError> {
    group.key = conn
        .prepare_cached(
            "INSERT INTO groups (tenant_id, group_id, name, name_fold, description, \
             owner_open_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut s| {
            s.insert(params![
                group.tenant.0,
                group.group_id,
                group.name,
                fold_group_name(&group.name),
                group.description,
                group.owner.as_ref().map(OpenId::as_str),
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

/// Groups owned by `owner`, oldest first, through `groups_owner_idx`.
pub(crate) fn groups_owned_by(
    conn: &Connection,
    tenant: TenantId,
    owner: &OpenId,
) -> Result<Vec<Group>, StoreError> {
    conn.prepare_cached(group_select!(
        "WHERE tenant_id = ?1 AND owner_open_id = ?2 ORDER BY created_at, id"
    ))
    .and_then(|mut s| {
        s.query_map(params![tenant.0, owner.as_str()], read)?
            .collect()
    })
    .context("list groups by owner")
}

/// Rewrites the changeable columns of an existing group (name, its fold, description,
/// owner) and records its `updated` event, inside the caller's transaction (`users::save`).
/// The group id and creation time are not changeable, so the event names the stored group
/// id and its `after` is the row as now stored. `at` is the wall clock: a group has no
/// update time of its own.
pub(crate) fn save_group(
    conn: &Connection,
    tenant: TenantId,
    group: &Group,
    at: i64,
    ctx: &ChangeCtx,
) -> Result<(), StoreError> {
    let stored = conn
        .prepare_cached(group_select!("WHERE tenant_id = ?1 AND id = ?2"))
        .and_then(|mut s| s.query_row(params![tenant.0, group.key], read).optional())
        .context("load stored group")?
        .ok_or_else(|| {
            // The core only saves groups it has just read, so a miss means the row vanished
            // or the caller's key is wrong; either is a fault, not a client error.
            StoreError::Backend(format!("save: no group {} in tenant {tenant}", group.key))
        })?;
    conn.prepare_cached(
        "UPDATE groups SET name = ?3, name_fold = ?4, description = ?5, owner_open_id = ?6 \
         WHERE tenant_id = ?1 AND id = ?2",
    )
    .and_then(|mut s| {
        s.execute(params![
            tenant.0,
            group.key,
            group.name,
            fold_group_name(&group.name),
            group.description,
            group.owner.as_ref().map(OpenId::as_str),
        ])
    })
    .context("update group")?;
    let before = group_snapshot(&stored);
    let after = group_snapshot(&Group {
        name: group.name.clone(),
        description: group.description.clone(),
        owner: group.owner.clone(),
        ..stored.clone()
    });
    events::record(
        &mut events::prepare(conn)?,
        ctx,
        &NewEvent {
            tenant,
            entity: EventEntity::Group,
            entity_id: &stored.group_id,
            action: ChangeAction::Updated,
            at,
            before: Some(&before),
            after: Some(&after),
        },
    )
}
