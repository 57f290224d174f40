//! All-or-nothing user inserts that carry invitations (Huawei Workspace `batch-create`).

use roster_core::{OutboxMessage, StoreError, TenantId, UserKey};
use rusqlite::{Connection, TransactionBehavior};

use crate::errors::SqlContext;
use crate::events::ChangeCtx;
use crate::{outbox, users};

/// Writes every row or none, and the messages only when every row was written, in one
/// IMMEDIATE transaction (so the licence room read by `insert_rows` holds until commit).
pub(crate) fn insert_users_invited(
    conn: &mut Connection,
    tenant: TenantId,
    rows: &[users::UserRow],
    mails: &[OutboxMessage],
    ctx: &ChangeCtx,
) -> Result<Vec<Result<UserKey, StoreError>>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin insert invited users")?;
    let results = users::insert_rows(&tx, tenant, rows, ctx)?;
    if results.iter().any(Result::is_err) {
        // Dropping the transaction rolls it back: no user, event, count or message remains.
        drop(tx);
        return Ok(results);
    }
    outbox::insert_messages(&tx, mails)?;
    tx.commit().context("commit insert invited users")?;
    Ok(results)
}

/// Deletes a group row; false when the tenant has no such group.
pub(crate) fn delete_group(
    conn: &Connection,
    tenant: TenantId,
    group_id: &str,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached("DELETE FROM groups WHERE tenant_id = ?1 AND group_id = ?2")
        .and_then(|mut s| s.execute(rusqlite::params![tenant.0, group_id]))
        .context("delete group")?;
    Ok(n > 0)
}
