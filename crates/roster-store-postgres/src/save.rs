//! `save`: several existing users, departments and groups written in one transaction, each
//! with its change event.
//!
//! Lock order, the same for every writer of the crate: the tenant row (only when the number
//! of active users changes), then user rows by ascending key, then department rows by
//! ascending key, then group rows by ascending key. Most saves leave every resigned flag
//! alone and need no tenant lock, which would serialise every profile edit of a tenant; when
//! the net count does change, the first attempt notices after locking the rows and backs
//! out, then a second attempt takes the tenant lock first, because taking it after the row
//! locks could deadlock against a batch insert (which holds the tenant lock) or another save.

use std::collections::HashMap;

use roster_core::{
    Change, ChangeAction, ConflictKind, Department, Entity, Group, ReadVersions, StoreError,
    TenantId, User,
};
use roster_store_common::{department_snapshot, group_snapshot, user_snapshot};
use sqlx::PgPool;

use crate::departments::{
    closes_cycle, departments_led_by, lock_departments, lock_tenant_for, named_users_active,
    parent_is_live, share_tenant_lock, still_empty, within_tree_limits, write_departments,
    TenantLock,
};
use crate::errors::Context;
use crate::events::{write_events, NewEvent};
use crate::groups::{lock_groups, write_groups};
use crate::users::{add_active, lock_room, lock_users, now_ms, write_saved_users};

enum Outcome {
    Done,
    /// The net number of active users changes, and this attempt did not hold the tenant
    /// lock.
    NeedsTenantLock,
}

pub(crate) async fn save(
    pool: &PgPool,
    tenant: TenantId,
    users: &[User],
    departments: &[Department],
    groups: &[Group],
    read: &ReadVersions,
    change: &Change,
) -> Result<(), StoreError> {
    let set = roster_store_common::SaveSet::new(tenant, users, departments, groups)?;
    if set.is_empty() {
        return Ok(());
    }
    match try_save(pool, tenant, &set, read, change, false).await? {
        Outcome::Done => Ok(()),
        Outcome::NeedsTenantLock => match try_save(pool, tenant, &set, read, change, true).await? {
            Outcome::Done => Ok(()),
            Outcome::NeedsTenantLock => Err(StoreError::Backend(
                "save asked for the tenant lock while holding it".to_owned(),
            )),
        },
    }
}

async fn try_save(
    pool: &PgPool,
    tenant: TenantId,
    set: &roster_store_common::SaveSet<'_>,
    read: &ReadVersions,
    change: &Change,
    lock_tenant: bool,
) -> Result<Outcome, StoreError> {
    let (users, departments, groups) = (&set.users, &set.departments, &set.groups);
    let mut tx = pool.begin().await.context("begin save")?;
    if lock_tenant {
        lock_room(&mut tx, tenant).await?;
    }
    let user_keys: Vec<i64> = users.iter().map(|u| u.key.0).collect();
    let stored_users: HashMap<i64, User> = lock_users(&mut tx, tenant, &user_keys)
        .await?
        .into_iter()
        .map(|u| (u.key.0, u))
        .collect();
    let dept_keys: Vec<i64> = departments.iter().map(|d| d.key.0).collect();
    if !dept_keys.is_empty() {
        // Department writes of one tenant take turns, so that the cycle check below sees
        // every move committed before this one (two moves that each pass the core's check
        // on an earlier read would otherwise close a cycle together).
        lock_tenant_for(&mut tx, tenant, TenantLock::DepartmentTree).await?;
    }
    let stored_depts: HashMap<i64, Department> = lock_departments(&mut tx, tenant, &dept_keys)
        .await?
        .into_iter()
        .map(|d| (d.key.0, d))
        .collect();
    let group_keys: Vec<i64> = groups.iter().map(|g| g.key).collect();
    let stored_groups: HashMap<i64, Group> = lock_groups(&mut tx, tenant, &group_keys)
        .await?
        .into_iter()
        .map(|g| (g.key, g))
        .collect();

    // A read-modify-write whose entity changed since it was read writes nothing (the core
    // reads again): the rows are locked now, so what they hold is what this would replace.
    let stale_user = stored_users
        .values()
        .any(|u| read.user(u.key).is_some_and(|v| v != u.updated_at));
    let stale_dept = stored_depts
        .values()
        .any(|d| read.department(d.key).is_some_and(|v| v != d.updated_at));
    if stale_user || stale_dept {
        return Err(StoreError::Stale);
    }
    joined_departments_live(&mut tx, tenant, users, &stored_users).await?;
    let mut events = Vec::with_capacity(users.len() + departments.len() + groups.len());
    let mut delta = 0i64;
    for u in users {
        let stored = stored_users
            .get(&u.key.0)
            .ok_or_else(|| missing("user", u.key.0))?;
        let action = match (stored.status.is_resigned, u.status.is_resigned) {
            (false, true) => {
                delta -= 1;
                ChangeAction::Deleted
            }
            (true, false) => {
                delta += 1;
                ChangeAction::Resurrected
            }
            _ => ChangeAction::Updated,
        };
        events.push(NewEvent {
            tenant,
            entity: Entity::User,
            entity_id: u.open_id.as_str().to_owned(),
            action,
            at: u.updated_at,
            before: Some(user_snapshot(stored)),
            after: Some(user_snapshot(u)),
        });
    }
    if delta != 0 && !lock_tenant {
        tx.rollback().await.context("roll back save")?;
        return Ok(Outcome::NeedsTenantLock);
    }
    for d in departments {
        let stored = stored_depts
            .get(&d.key.0)
            .ok_or_else(|| missing("department", d.key.0))?;
        let action = if !stored.is_deleted && d.is_deleted {
            ChangeAction::Deleted
        } else {
            ChangeAction::Updated
        };
        events.push(NewEvent {
            tenant,
            entity: Entity::Department,
            entity_id: d.open_department_id.as_str().to_owned(),
            action,
            at: d.updated_at,
            before: Some(department_snapshot(stored)),
            after: Some(department_snapshot(d)),
        });
    }
    // A group has no update time of its own; its events are dated by the wall clock. Only
    // the changeable columns are written, so the event names the stored group id and its
    // `after` is the row as it will be stored.
    let at = now_ms();
    for g in groups {
        let stored = stored_groups
            .get(&g.key)
            .ok_or_else(|| missing("group", g.key))?;
        let after = Group {
            name: g.name.clone(),
            description: g.description.clone(),
            owner: g.owner.clone(),
            ..stored.clone()
        };
        events.push(NewEvent {
            tenant,
            entity: Entity::Group,
            entity_id: stored.group_id.clone(),
            action: ChangeAction::Updated,
            at,
            before: Some(group_snapshot(stored)),
            after: Some(group_snapshot(&after)),
        });
    }

    // Any error from here on drops the transaction, which rolls everything back. A
    // resurrection past the cap trips the tenants CHECK in add_active (LicenceExceeded).
    write_saved_users(&mut tx, tenant, users).await?;
    for d in departments {
        let Some(stored) = stored_depts.get(&d.key.0) else {
            continue;
        };
        if d.is_deleted && !stored.is_deleted {
            still_empty(&mut tx, d.key).await?;
        }
        if !d.is_deleted && d.parent != stored.parent {
            if let Some(parent) = d.parent {
                parent_is_live(&mut tx, parent).await?;
            }
        }
        if !d.is_deleted {
            named_users_active(&mut tx, tenant, &d.fields, Some(&stored.fields)).await?;
        }
    }
    write_departments(&mut tx, tenant, departments).await?;
    // A user resigned by this save must be off every department: the core took it off the
    // departments it read, and one that named the user in a write committed since (its
    // `FOR SHARE` of the user row made it commit before this save locked the row) is still
    // here. Stale makes the core read them again and take it off that one too.
    for u in users {
        let resigns = stored_users
            .get(&u.key.0)
            .is_some_and(|s| !s.status.is_resigned && u.status.is_resigned);
        if resigns
            && !departments_led_by(&mut *tx, tenant, &u.open_id)
                .await?
                .is_empty()
        {
            return Err(StoreError::Stale);
        }
    }
    for d in departments {
        let moved = stored_depts
            .get(&d.key.0)
            .is_some_and(|stored| stored.parent != d.parent);
        if moved && !d.is_deleted {
            if closes_cycle(&mut tx, d.key).await? {
                return Err(StoreError::Conflict(ConflictKind::Cycle));
            }
            within_tree_limits(&mut tx, tenant, d.key, false).await?;
        }
    }
    check_leaders(&mut tx, tenant, users, &stored_users).await?;
    write_groups(&mut tx, tenant, groups).await?;
    add_active(&mut tx, tenant, delta).await?;
    write_events(
        &mut tx,
        &change.actor.to_string(),
        change.note.as_deref(),
        events,
    )
    .await?;
    tx.commit().await.context("commit save")?;
    Ok(Outcome::Done)
}

fn missing(what: &str, key: i64) -> StoreError {
    StoreError::Backend(format!("{what} {key} was locked but not read back"))
}

/// `Stale` when a user joins a department that was deleted since the core checked it (the
/// core reads again and refuses the move). The shared tree lock makes the answer hold until
/// the commit: a department delete takes it exclusively, so one committed before is seen
/// here, and one that starts later waits and then finds the new member.
async fn joined_departments_live(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    users: &[&User],
    stored: &HashMap<i64, User>,
) -> Result<(), StoreError> {
    let mut joined: Vec<i64> = Vec::new();
    for u in users {
        let before = stored.get(&u.key.0);
        for m in &u.profile.departments {
            let member_before = before.is_some_and(|b| {
                b.profile
                    .departments
                    .iter()
                    .any(|old| old.department == m.department)
            });
            if !member_before {
                joined.push(m.department.0);
            }
        }
    }
    if joined.is_empty() {
        return Ok(());
    }
    joined.sort_unstable();
    joined.dedup();
    share_tenant_lock(tx, tenant, TenantLock::DepartmentTree).await?;
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM departments WHERE tenant_id = $1 AND id = ANY($2) AND NOT is_deleted",
    )
    .bind(tenant.0)
    .bind(&joined)
    .fetch_one(&mut *tx)
    .await
    .context("check joined departments are live")?;
    if usize::try_from(live).ok() != Some(joined.len()) {
        return Err(StoreError::Stale);
    }
    Ok(())
}

/// Re-checks, after the save's writes, the leader rules the core checked on an earlier read:
/// a new leader is active and does not report to the user, and a user who resigns leads
/// nobody active and no live department any more. `Stale` otherwise (the core reads again
/// and answers with the rule's error). Saves that change leaders take turns on an advisory
/// lock taken here, after their own writes, so that the second one's check sees the
/// first's rows: two changes that each pass the core's check cannot close a cycle or hand
/// reports to a user who resigns meanwhile.
async fn check_leaders(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    users: &[&User],
    stored: &HashMap<i64, User>,
) -> Result<(), StoreError> {
    let mut checks: Vec<(&str, Option<&str>)> = Vec::new();
    for u in users {
        let Some(before) = stored.get(&u.key.0) else {
            continue;
        };
        if !before.status.is_resigned && u.status.is_resigned {
            checks.push((u.open_id.as_str(), None));
        } else if !u.status.is_resigned && u.profile.leader != before.profile.leader {
            if let Some(leader) = &u.profile.leader {
                checks.push((u.open_id.as_str(), Some(leader.as_str())));
            }
        }
    }
    if checks.is_empty() {
        return Ok(());
    }
    lock_tenant_for(tx, tenant, TenantLock::Leaders).await?;
    for (user, leader) in checks {
        let broken: bool = match leader {
            Some(leader) => sqlx::query_scalar(
                "WITH RECURSIVE up(oid, n) AS ( \
                     SELECT $2::text, 0 \
                     UNION ALL \
                     SELECT u.leader_open_id, up.n + 1 FROM users u JOIN up \
                     ON u.tenant_id = $1 AND u.open_id = up.oid \
                     WHERE up.oid <> $3 AND up.n < 64) \
                 SELECT NOT EXISTS (SELECT 1 FROM users WHERE tenant_id = $1 AND open_id = $2 \
                                    AND NOT is_resigned) \
                     OR EXISTS (SELECT 1 FROM up WHERE oid = $3)",
            )
            .bind(tenant.0)
            .bind(leader)
            .bind(user)
            .fetch_one(&mut *tx)
            .await
            .context("check a new leader")?,
            None => sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = $1 AND leader_open_id = $2 \
                                AND NOT is_resigned) \
                     OR EXISTS (SELECT 1 FROM departments WHERE tenant_id = $1 \
                                AND leader_open_id = $2 AND NOT is_deleted)",
            )
            .bind(tenant.0)
            .bind(user)
            .fetch_one(&mut *tx)
            .await
            .context("check a resigned user leads nobody")?,
        };
        if broken {
            return Err(StoreError::Stale);
        }
    }
    Ok(())
}
