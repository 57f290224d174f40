//! The outbox and activations (`outbox`, `activations`, migration 0004).
//!
//! Messages are written by `tasks::commit_chunk` in the transaction of the users they
//! invite; the mailer then claims due e-mails (pushing their next attempt past a lease, so
//! that no other mailer sends them meanwhile) and records each delivery or failure. SMS
//! messages are recorded only and never claimed.
//!
//! Reads attach each message's activation through `activations_outbox_idx` (migration 0005).

use roster_core::{
    Actor, Change, ChangeAction, Channel, OutboxMessage, StoreError, TenantId, User, UserLookup,
};
use roster_store_common::user_snapshot;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::errors::{corrupt, SqlContext};
use crate::events::{self, ChangeCtx, EventEntity, NewEvent};
use crate::users;

/// The note of the event an activation records.
const ACTIVATION_NOTE: &str = "activated by invitation";

/// The select list matching `OutboxRow::read`.
const OUTBOX_COLS: &str = "id, tenant_id, channel, recipient, subject, body, created_at, \
    attempts, next_attempt_at, sent_at, last_error";

/// An `outbox` row as read, before its names are parsed.
struct OutboxRow {
    id: i64,
    tenant_id: i64,
    channel: String,
    recipient: String,
    subject: String,
    body: String,
    created_at: i64,
    attempts: i64,
    next_attempt_at: i64,
    sent_at: Option<i64>,
    last_error: Option<String>,
}

impl OutboxRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            tenant_id: r.get(1)?,
            channel: r.get(2)?,
            recipient: r.get(3)?,
            subject: r.get(4)?,
            body: r.get(5)?,
            created_at: r.get(6)?,
            attempts: r.get(7)?,
            next_attempt_at: r.get(8)?,
            sent_at: r.get(9)?,
            last_error: r.get(10)?,
        })
    }

    fn into_message(self) -> Result<OutboxMessage, StoreError> {
        Ok(OutboxMessage {
            id: self.id,
            tenant: TenantId(self.tenant_id),
            channel: Channel::from_str_opt(&self.channel)
                .ok_or_else(|| corrupt("outbox.channel"))?,
            recipient: self.recipient,
            subject: self.subject,
            body: self.body,
            activation: None,
            created_at: self.created_at,
            attempts: u32::try_from(self.attempts).map_err(|_| corrupt("outbox.attempts"))?,
            next_attempt_at: self.next_attempt_at,
            sent_at: self.sent_at,
            last_error: self.last_error,
        })
    }
}

/// Writes messages (their `id` is ignored) and each one's activation, inside the caller's
/// transaction, with statements prepared once per call.
pub(crate) fn insert_messages<'a>(
    tx: &Connection,
    messages: impl IntoIterator<Item = &'a OutboxMessage>,
) -> Result<(), StoreError> {
    let mut messages = messages.into_iter().peekable();
    if messages.peek().is_none() {
        return Ok(());
    }
    let mut insert_message = tx
        .prepare_cached(
            "INSERT INTO outbox (tenant_id, channel, recipient, subject, body, created_at, \
             attempts, next_attempt_at, sent_at, last_error) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .context("prepare insert outbox message")?;
    let mut insert_activation = tx
        .prepare_cached(
            "INSERT INTO activations (token_hash, tenant_id, user_open_id, outbox_id, \
             expires_at, used_at) VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
        )
        .context("prepare insert activation")?;
    for m in messages {
        let id = insert_message
            .insert(params![
                m.tenant.0,
                m.channel.as_str(),
                m.recipient,
                m.subject,
                m.body,
                m.created_at,
                m.attempts,
                m.next_attempt_at,
                m.sent_at,
                m.last_error,
            ])
            .context("insert outbox message")?;
        if let Some(a) = &m.activation {
            insert_activation
                .execute(params![
                    a.token_hash,
                    m.tenant.0,
                    a.user_open_id,
                    id,
                    a.expires_at
                ])
                .context("insert activation")?;
        }
    }
    Ok(())
}

/// Reserves up to `limit` due e-mails, oldest first, by pushing their next attempt to
/// `now + lease_ms` in the same statement. Returned as reserved (with the new time).
pub(crate) fn claim(
    conn: &Connection,
    now: i64,
    limit: usize,
    lease_ms: i64,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows: Vec<OutboxRow> = conn
        .prepare_cached(&format!(
            "UPDATE outbox SET next_attempt_at = ?2 \
             WHERE id IN (SELECT id FROM outbox \
                          WHERE channel = 'email' AND sent_at IS NULL AND next_attempt_at <= ?1 \
                          ORDER BY id LIMIT ?3) \
             RETURNING {OUTBOX_COLS}"
        ))
        .and_then(|mut s| {
            s.query_map(
                params![now, now.saturating_add(lease_ms), limit],
                OutboxRow::read,
            )?
            .collect()
        })
        .context("claim outbox messages")?;
    // RETURNING gives no order.
    rows.sort_unstable_by_key(|r| r.id);
    with_activations(conn, rows)
}

/// Converts rows to messages, each with the activation written with it (one indexed lookup
/// per message; reads are at most a page of messages).
fn with_activations(
    conn: &Connection,
    rows: Vec<OutboxRow>,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT token_hash, user_open_id, expires_at FROM activations WHERE outbox_id = ?1",
        )
        .context("prepare read activation")?;
    rows.into_iter()
        .map(|row| {
            let activation = stmt
                .query_row(params![row.id], |r| {
                    Ok(roster_core::outbox::Activation {
                        token_hash: r.get(0)?,
                        user_open_id: r.get(1)?,
                        expires_at: r.get(2)?,
                    })
                })
                .optional()
                .context("read activation")?;
            let mut message = row.into_message()?;
            message.activation = activation;
            Ok(message)
        })
        .collect()
}

/// Records a delivery.
pub(crate) fn mark_sent(conn: &Connection, id: i64, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE outbox SET sent_at = ?2, last_error = NULL, body = ?3 WHERE id = ?1",
    )
    .and_then(|mut s| s.execute(params![id, now, roster_store_common::DELIVERED_BODY]))
    .context("mark outbox message sent")?;
    Ok(())
}

/// Records a failed attempt and when to try again.
pub(crate) fn mark_failed(
    conn: &Connection,
    id: i64,
    error: &str,
    next_attempt_at: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 \
         WHERE id = ?1",
    )
    .and_then(|mut s| s.execute(params![id, error, next_attempt_at]))
    .context("mark outbox message failed")?;
    Ok(())
}

/// Messages, newest first. Four statements rather than `?1 IS NULL OR …`, so that each is a
/// plain walk of the primary key backwards.
pub(crate) fn list(
    conn: &Connection,
    tenant: Option<TenantId>,
    unsent_only: bool,
    limit: usize,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let filter = match (tenant.is_some(), unsent_only) {
        (false, false) => "",
        (false, true) => "WHERE sent_at IS NULL",
        (true, false) => "WHERE tenant_id = ?2",
        (true, true) => "WHERE tenant_id = ?2 AND sent_at IS NULL",
    };
    let sql = format!("SELECT {OUTBOX_COLS} FROM outbox {filter} ORDER BY id DESC LIMIT ?1");
    let rows: Vec<OutboxRow> = conn
        .prepare_cached(&sql)
        .and_then(|mut s| match tenant {
            Some(t) => s.query_map(params![limit, t.0], OutboxRow::read)?.collect(),
            None => s.query_map(params![limit], OutboxRow::read)?.collect(),
        })
        .context("list outbox messages")?;
    with_activations(conn, rows)
}

/// Uses an activation in one transaction: it must exist, be unused and unexpired
/// (`now < expires_at`), and its user must exist; then it is marked used, the user's
/// `is_activated` set and `is_unjoin` cleared (status flags are columns, so the profile
/// document stays as it is), and an `updated` event by the system recorded. Returns the
/// user as updated, or `None` (nothing written).
pub(crate) fn activate(
    conn: &mut Connection,
    token_hash: &str,
    now: i64,
) -> Result<Option<User>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin activate")?;
    let found: Option<(i64, String, i64, Option<i64>)> = tx
        .prepare_cached(
            "SELECT tenant_id, user_open_id, expires_at, used_at FROM activations \
             WHERE token_hash = ?1",
        )
        .and_then(|mut s| {
            s.query_row([token_hash], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
        })
        .context("load activation")?;
    let Some((tenant, open_id, expires_at, None)) = found else {
        return Ok(None);
    };
    if now >= expires_at {
        return Ok(None);
    }
    let tenant = TenantId(tenant);
    let Some(before) = users::read_user(&tx, tenant, &UserLookup::OpenId(open_id))? else {
        return Ok(None);
    };
    // A user deleted since the invitation cannot be activated by it: the link is dead.
    if before.status.is_resigned {
        return Ok(None);
    }
    tx.prepare_cached("UPDATE activations SET used_at = ?2 WHERE token_hash = ?1")
        .and_then(|mut s| s.execute(params![token_hash, now]))
        .context("mark activation used")?;
    tx.prepare_cached(
        "UPDATE users SET is_activated = 1, is_unjoin = 0, updated_at = ?3 \
         WHERE tenant_id = ?1 AND id = ?2",
    )
    .and_then(|mut s| s.execute(params![tenant.0, before.key.0, now]))
    .context("activate user")?;
    let mut after = before.clone();
    after.status.is_activated = true;
    after.status.is_unjoin = false;
    after.updated_at = now;
    let ctx = ChangeCtx::of(&Change {
        actor: Actor::System,
        note: Some(ACTIVATION_NOTE.to_owned()),
        completes: None,
    });
    let (before_snap, after_snap) = (user_snapshot(&before), user_snapshot(&after));
    events::record(
        &mut events::prepare(&tx)?,
        &ctx,
        &NewEvent {
            tenant,
            entity: EventEntity::User,
            entity_id: after.open_id.as_str(),
            action: ChangeAction::Updated,
            at: now,
            before: Some(&before_snap),
            after: Some(&after_snap),
        },
    )?;
    tx.commit().context("commit activate")?;
    Ok(Some(after))
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    /// The mailer's claim finds due e-mails through `outbox_due_idx`.
    #[test]
    fn claim_uses_the_due_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::migrations().to_latest(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT id FROM outbox WHERE channel = 'email' \
                 AND sent_at IS NULL AND next_attempt_at <= 5 ORDER BY id LIMIT 20",
            )
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("; ");
        assert!(plan.contains("outbox_due_idx"), "{plan}");
    }
}
