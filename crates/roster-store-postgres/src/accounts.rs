//! All-or-nothing user inserts that carry invitations (Huawei Workspace `batch-create`).

use roster_core::{Change, OutboxMessage, StoreError, TenantId, User, UserKey};
use sqlx::PgPool;

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
    let results = users::insert_users_in_tx(&mut tx, tenant, &batch, true, change).await?;
    if results.iter().any(Result::is_err) {
        tx.rollback()
            .await
            .context("roll back insert invited users")?;
        return Ok(results);
    }
    let mails: Vec<&OutboxMessage> = mails.iter().collect();
    outbox::insert_messages(&mut tx, &mails).await?;
    tx.commit().await.context("commit insert invited users")?;
    Ok(results)
}

/// Deletes a group row; false when the tenant has no such group.
pub(crate) async fn delete_group(
    pool: &PgPool,
    tenant: TenantId,
    group_id: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM groups WHERE tenant_id = $1 AND group_id = $2")
        .bind(tenant.0)
        .bind(group_id)
        .execute(pool)
        .await
        .context("delete group")?;
    Ok(done.rows_affected() > 0)
}
