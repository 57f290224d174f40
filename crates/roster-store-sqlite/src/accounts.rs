//! All-or-nothing user inserts that carry invitations (Huawei Workspace `batch-create`).

use std::collections::HashSet;

use roster_core::{ConflictKind, OutboxMessage, StoreError, TenantId, UserKey};
use rusqlite::{Connection, TransactionBehavior};

use crate::errors::SqlContext;
use crate::events::ChangeCtx;
use crate::{outbox, users};

/// Writes every row or none, and the messages only when every row was written, in one
/// IMMEDIATE transaction (so the licence room read by `insert_rows` holds until commit).
/// `groups[i]` are the groups row `i` joins: a row naming one deleted since the core
/// checked it is refused with `Gone("group_ids")`, and then nothing is written.
pub(crate) fn insert_users_invited(
    conn: &mut Connection,
    tenant: TenantId,
    rows: &[users::UserRow],
    groups: &[Vec<String>],
    mails: &[OutboxMessage],
    ctx: &ChangeCtx,
) -> Result<Vec<Result<UserKey, StoreError>>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin insert invited users")?;
    let missing = missing_groups(&tx, tenant, groups.iter().flatten())?;
    if !missing.is_empty() {
        return Ok(groups
            .iter()
            .map(|g| {
                Err(if g.iter().any(|g| missing.contains(g)) {
                    StoreError::Gone("group_ids")
                } else {
                    StoreError::Conflict(ConflictKind::NotWritten)
                })
            })
            .collect());
    }
    let results = users::insert_rows(&tx, tenant, rows, ctx)?;
    if results.iter().any(Result::is_err) {
        // Dropping the transaction rolls it back: no user, event, count or message remains.
        drop(tx);
        return Ok(results);
    }
    outbox::insert_messages(&tx, mails)?;
    crate::idempotency::complete_pending(&tx, ctx)?;
    tx.commit().context("commit insert invited users")?;
    Ok(results)
}

/// The groups among `ids` that the tenant does not have (any more).
pub(crate) fn missing_groups<'a>(
    conn: &Connection,
    tenant: TenantId,
    ids: impl IntoIterator<Item = &'a String>,
) -> Result<HashSet<String>, StoreError> {
    let mut exists = conn
        .prepare_cached("SELECT 1 FROM groups WHERE tenant_id = ?1 AND group_id = ?2")
        .context("prepare group check")?;
    let mut missing = HashSet::new();
    for id in ids.into_iter().collect::<HashSet<_>>() {
        let found = exists
            .exists(rusqlite::params![tenant.0, id])
            .context("check group")?;
        if !found {
            missing.insert(id.clone());
        }
    }
    Ok(missing)
}

/// Deletes a group row; false when the tenant has no such group. `Stale` (nothing deleted)
/// when an active user or a BI member still names the group: the core checked that none
/// did, and one joined since; it reads again and answers with the rule's own error.
pub(crate) fn delete_group(
    conn: &mut Connection,
    tenant: TenantId,
    group_id: &str,
) -> Result<bool, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin delete group")?;
    let held: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM users u, json_each(u.doc, '$.groups') g \
                            WHERE u.tenant_id = ?1 AND NOT u.is_resigned AND g.value = ?2) \
                 OR EXISTS (SELECT 1 FROM bi_members b, json_each(b.group_ids) g \
                            WHERE b.tenant_id = ?1 AND g.value = ?2)",
        )
        .and_then(|mut s| s.query_row(rusqlite::params![tenant.0, group_id], |r| r.get(0)))
        .context("check group members")?;
    if held {
        return Err(StoreError::Stale);
    }
    let n = tx
        .prepare_cached("DELETE FROM groups WHERE tenant_id = ?1 AND group_id = ?2")
        .and_then(|mut s| s.execute(rusqlite::params![tenant.0, group_id]))
        .context("delete group")?;
    tx.commit().context("commit delete group")?;
    Ok(n > 0)
}
