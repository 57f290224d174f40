//! Idempotency keys (Feishu's `client_token`). The primary key makes a claim a database
//! rule: of several requests racing with one key, exactly one inserts the row.

use roster_core::store::IDEMPOTENCY_CLAIM_LEASE_MS;
use roster_core::{Change, IdempotencyClaim, IdempotencyKey, StoreError};
use sqlx::{PgConnection, PgPool};

use crate::errors::Context;

/// How often a claim retries when the key it collided with disappears (its request failed
/// and released it) before the stored claim could be read.
const CLAIM_ATTEMPTS: usize = 8;

pub(crate) async fn claim(
    pool: &PgPool,
    key: &IdempotencyKey,
    fingerprint: &str,
    now: i64,
) -> Result<IdempotencyClaim, StoreError> {
    for _ in 0..CLAIM_ATTEMPTS {
        // A concurrent insert of the same key makes this one wait for it to commit, then do
        // nothing: exactly one caller gets a row back.
        let inserted: Option<i32> = sqlx::query_scalar(
            "INSERT INTO idempotency_keys (tenant_id, app_id, operation, key, fingerprint, \
             result, created_at) VALUES ($1, $2, $3, $4, $5, NULL, $6) \
             ON CONFLICT (tenant_id, app_id, operation, key) DO UPDATE \
             SET fingerprint = excluded.fingerprint, created_at = excluded.created_at \
             WHERE idempotency_keys.result IS NULL AND idempotency_keys.created_at < $7 \
             RETURNING 1",
        )
        .bind(key.tenant.0)
        .bind(key.app_id.as_str())
        .bind(&key.operation)
        .bind(&key.key)
        .bind(fingerprint)
        .bind(now)
        .bind(now - IDEMPOTENCY_CLAIM_LEASE_MS)
        .fetch_optional(pool)
        .await
        .context("claim idempotency key")?;
        if inserted.is_some() {
            return Ok(IdempotencyClaim::Claimed);
        }
        let existing: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT fingerprint, result FROM idempotency_keys \
             WHERE tenant_id = $1 AND app_id = $2 AND operation = $3 AND key = $4",
        )
        .bind(key.tenant.0)
        .bind(key.app_id.as_str())
        .bind(&key.operation)
        .bind(&key.key)
        .fetch_optional(pool)
        .await
        .context("load idempotency key")?;
        if let Some((fingerprint, result)) = existing {
            return Ok(IdempotencyClaim::Existing {
                fingerprint,
                result,
            });
        }
        // Released (or purged) between the two statements: try to claim it again.
    }
    Err(StoreError::Backend(
        "idempotency key kept disappearing while being claimed".to_owned(),
    ))
}

pub(crate) async fn complete(
    pool: &PgPool,
    key: &IdempotencyKey,
    result: &str,
) -> Result<(), StoreError> {
    let done = set_result(pool, key, result, false)
        .await
        .context("complete idempotency key")?;
    if done == 0 {
        // Only a purge can remove a claim under a running request. The operation itself
        // succeeded, so failing now would report an error for a change that was made.
        tracing::warn!(
            operation = %key.operation,
            "completed an idempotency key that no longer exists"
        );
    }
    Ok(())
}

/// Completes the key a write carries (`Change::completes`) inside that write's transaction,
/// unless the key has a result already (a later request took the claim over and finished).
pub(crate) async fn complete_pending(
    conn: &mut PgConnection,
    change: &Change,
) -> Result<(), StoreError> {
    if let Some((key, result)) = &change.completes {
        set_result(conn, key, result, true)
            .await
            .context("complete idempotency key with its write")?;
    }
    Ok(())
}

/// Sets a key's result (only while it has none, with `unfinished_only`); returns the rows
/// changed.
async fn set_result<'e>(
    db: impl sqlx::PgExecutor<'e>,
    key: &IdempotencyKey,
    result: &str,
    unfinished_only: bool,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE idempotency_keys SET result = $5 \
         WHERE tenant_id = $1 AND app_id = $2 AND operation = $3 AND key = $4 \
         AND (NOT $6 OR result IS NULL)",
    )
    .bind(key.tenant.0)
    .bind(key.app_id.as_str())
    .bind(&key.operation)
    .bind(&key.key)
    .bind(result)
    .bind(unfinished_only)
    .execute(db)
    .await?
    .rows_affected())
}

pub(crate) async fn release(pool: &PgPool, key: &IdempotencyKey) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM idempotency_keys \
         WHERE tenant_id = $1 AND app_id = $2 AND operation = $3 AND key = $4",
    )
    .bind(key.tenant.0)
    .bind(key.app_id.as_str())
    .bind(&key.operation)
    .bind(&key.key)
    .execute(pool)
    .await
    .context("release idempotency key")?;
    Ok(())
}

pub(crate) async fn purge(pool: &PgPool, before: i64) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(before)
        .execute(pool)
        .await
        .context("purge idempotency keys")?;
    Ok(done.rows_affected())
}
