//! All-or-nothing user inserts that carry invitations (Huawei Workspace `batch-create`).

use std::collections::HashSet;

use roster_core::{Change, ConflictKind, OutboxMessage, StoreError, TenantId, User, UserKey};
use sqlx::{PgConnection, PgPool};

use crate::errors::Context;
use crate::{outbox, users};

/// Writes every user or none, and the messages only when every user was written, in one
/// transaction.
pub(crate) async fn insert_users_invited(
    pool: &PgPool,
    tenant: TenantId,
    batch: &[User],
    mails: &[OutboxMessage],
    change: &Change,
) -> Result<Vec<Result<UserKey, StoreError>>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let batch: Vec<&User> = batch.iter().collect();
    users::check_tenant(tenant, &batch)?;
    let mut tx = pool.begin().await.context("begin insert invited users")?;
    // A group deleted since the core checked it refuses the rows naming it (and so the
    // batch); the rows found are locked against a racing delete until the commit.
    let missing = missing_groups(
        &mut tx,
        tenant,
        batch.iter().flat_map(|u| &u.profile.groups),
    )
    .await?;
    if !missing.is_empty() {
        tx.rollback()
            .await
            .context("roll back insert invited users")?;
        return Ok(batch
            .iter()
            .map(|u| {
                Err(if u.profile.groups.iter().any(|g| missing.contains(g)) {
                    StoreError::Gone("group_ids")
                } else {
                    StoreError::Conflict(ConflictKind::NotWritten)
                })
            })
            .collect());
    }
    let results = users::insert_users_in_tx(&mut tx, tenant, &batch, true, change).await?;
    if results.iter().any(Result::is_err) {
        tx.rollback()
            .await
            .context("roll back insert invited users")?;
        return Ok(results);
    }
    let mails: Vec<&OutboxMessage> = mails.iter().collect();
    outbox::insert_messages(&mut tx, &mails).await?;
    crate::idempotency::complete_pending(&mut tx, change).await?;
    tx.commit().await.context("commit insert invited users")?;
    Ok(results)
}

/// The groups among `ids` that the tenant does not have (any more). The ones it has are
/// locked `FOR KEY SHARE` until the transaction ends: a racing `delete_group` (which locks
/// the row `FOR UPDATE`) waits for this transaction, and then sees what it wrote; one that
/// locked first makes this wait, and the deleted row is then missing here.
pub(crate) async fn missing_groups<'a>(
    conn: &mut PgConnection,
    tenant: TenantId,
    ids: impl IntoIterator<Item = &'a String>,
) -> Result<HashSet<String>, StoreError> {
    let wanted: HashSet<&String> = ids.into_iter().collect();
    if wanted.is_empty() {
        return Ok(HashSet::new());
    }
    let mut sorted: Vec<&str> = wanted.iter().map(|s| s.as_str()).collect();
    sorted.sort_unstable();
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT group_id FROM groups WHERE tenant_id = $1 AND group_id = ANY($2) \
         ORDER BY group_id FOR KEY SHARE",
    )
    .bind(tenant.0)
    .bind(&sorted)
    .fetch_all(&mut *conn)
    .await
    .context("check groups")?;
    Ok(wanted
        .into_iter()
        .filter(|id| !found.contains(id))
        .cloned()
        .collect())
}

/// Deletes a group row; false when the tenant has no such group. `Stale` (nothing deleted)
/// when an active user or a BI member still names the group: the core checked that none
/// did, and one joined since; it reads again and answers with the rule's own error.
pub(crate) async fn delete_group(
    pool: &PgPool,
    tenant: TenantId,
    group_id: &str,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.context("begin delete group")?;
    let locked: Option<i64> = sqlx::query_scalar(
        "SELECT 1::BIGINT FROM groups WHERE tenant_id = $1 AND group_id = $2 FOR UPDATE",
    )
    .bind(tenant.0)
    .bind(group_id)
    .fetch_optional(&mut *tx)
    .await
    .context("lock group")?;
    if locked.is_none() {
        return Ok(false);
    }
    let held: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = $1 AND NOT is_resigned \
                        AND jsonb_exists(doc::jsonb -> 'groups', $2)) \
             OR EXISTS (SELECT 1 FROM bi_members WHERE tenant_id = $1 \
                        AND jsonb_exists(group_ids::jsonb, $2))",
    )
    .bind(tenant.0)
    .bind(group_id)
    .fetch_one(&mut *tx)
    .await
    .context("check group members")?;
    if held {
        return Err(StoreError::Stale);
    }
    let done = sqlx::query("DELETE FROM groups WHERE tenant_id = $1 AND group_id = $2")
        .bind(tenant.0)
        .bind(group_id)
        .execute(&mut *tx)
        .await
        .context("delete group")?;
    tx.commit().await.context("commit delete group")?;
    Ok(done.rows_affected() > 0)
}
