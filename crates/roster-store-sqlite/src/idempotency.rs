//! Idempotency keys (Feishu's `client_token`, migration 0002).

use roster_core::store::IDEMPOTENCY_CLAIM_LEASE_MS;
use roster_core::{IdempotencyClaim, IdempotencyKey, StoreError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::errors::SqlContext;
use crate::events::ChangeCtx;

/// Claims the key (taking over a claim without a result older than the lease), or returns
/// the claim already stored. The insert and the read are one transaction, so the claim read
/// back is the one that stopped the insert.
pub(crate) fn claim(
    conn: &mut Connection,
    key: &IdempotencyKey,
    fingerprint: &str,
    now: i64,
) -> Result<IdempotencyClaim, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin claim idempotency key")?;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO idempotency_keys (tenant_id, app_id, operation, key, fingerprint, \
             result, created_at) VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6) \
             ON CONFLICT (tenant_id, app_id, operation, key) DO UPDATE \
             SET fingerprint = excluded.fingerprint, created_at = excluded.created_at \
             WHERE idempotency_keys.result IS NULL AND idempotency_keys.created_at < ?7",
        )
        .and_then(|mut s| {
            s.execute(params![
                key.tenant.0,
                key.app_id.as_str(),
                key.operation,
                key.key,
                fingerprint,
                now,
                now - IDEMPOTENCY_CLAIM_LEASE_MS,
            ])
        })
        .context("insert idempotency key")?;
    let claim = if inserted == 1 {
        IdempotencyClaim::Claimed
    } else {
        let (fingerprint, result): (String, Option<String>) = tx
            .prepare_cached(
                "SELECT fingerprint, result FROM idempotency_keys \
                 WHERE tenant_id = ?1 AND app_id = ?2 AND operation = ?3 AND key = ?4",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![key.tenant.0, key.app_id.as_str(), key.operation, key.key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
            })
            .context("load idempotency key")?
            .ok_or_else(|| {
                StoreError::Backend("claim idempotency key: the clashing row vanished".into())
            })?;
        IdempotencyClaim::Existing {
            fingerprint,
            result,
        }
    };
    tx.commit().context("commit claim idempotency key")?;
    Ok(claim)
}

/// Records the result of a claimed key. A key that is no longer there (purged while its
/// request ran) is not an error: the request itself succeeded, and failing it now would only
/// make the client retry a write that was done.
pub(crate) fn complete(
    conn: &Connection,
    key: &IdempotencyKey,
    result: &str,
) -> Result<(), StoreError> {
    if set_result(conn, key, result, false).context("complete idempotency key")? == 0 {
        tracing::warn!(operation = %key.operation, "completed an idempotency key that is gone");
    }
    Ok(())
}

/// Completes the key a write carries (`Change::completes`) inside that write's transaction,
/// unless the key has a result already (a later request took the claim over and finished).
pub(crate) fn complete_pending(conn: &Connection, ctx: &ChangeCtx) -> Result<(), StoreError> {
    if let Some((key, result)) = &ctx.completes {
        set_result(conn, key, result, true).context("complete idempotency key with its write")?;
    }
    Ok(())
}

/// Sets a key's result (only while it has none, with `unfinished_only`); returns the rows
/// changed.
fn set_result(
    conn: &Connection,
    key: &IdempotencyKey,
    result: &str,
    unfinished_only: bool,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE idempotency_keys SET result = ?5 \
         WHERE tenant_id = ?1 AND app_id = ?2 AND operation = ?3 AND key = ?4 \
         AND (NOT ?6 OR result IS NULL)",
    )?
    .execute(params![
        key.tenant.0,
        key.app_id.as_str(),
        key.operation,
        key.key,
        result,
        unfinished_only
    ])
}

/// Forgets a key, whatever its state.
pub(crate) fn release(conn: &Connection, key: &IdempotencyKey) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM idempotency_keys \
         WHERE tenant_id = ?1 AND app_id = ?2 AND operation = ?3 AND key = ?4",
    )
    .and_then(|mut s| {
        s.execute(params![
            key.tenant.0,
            key.app_id.as_str(),
            key.operation,
            key.key
        ])
    })
    .context("release idempotency key")?;
    Ok(())
}

/// Forgets keys claimed before `before`.
pub(crate) fn purge(conn: &Connection, before: i64) -> Result<u64, StoreError> {
    let n = conn
        .prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?1")
        .and_then(|mut s| s.execute([before]))
        .context("purge idempotency keys")?;
    Ok(n as u64)
}
