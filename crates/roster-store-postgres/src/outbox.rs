//! The outbox and activations (docs/schema.md, "Migration 0004"): invitations are written in
//! the transaction of the change that causes them (`insert_messages`, called by
//! `commit_task_chunk`), claimed for delivery by any number of mailers with
//! `FOR UPDATE SKIP LOCKED`, and their activation links used once.

use roster_core::outbox::Activation;
use roster_core::{
    Actor, ChangeAction, Channel, Entity, OutboxMessage, StoreError, TenantId, User,
};
use roster_store_common::user_snapshot;
use sqlx::{PgConnection, PgPool};

use crate::errors::{corrupt, Context};
use crate::events::{write_events, NewEvent};
use crate::users::lock_users;

/// The note of the event an activation records.
const ACTIVATION_NOTE: &str = "activated by invitation";

#[derive(sqlx::FromRow)]
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
    token_hash: Option<String>,
    user_open_id: Option<String>,
    expires_at: Option<i64>,
}

impl OutboxRow {
    fn into_message(self) -> Result<OutboxMessage, StoreError> {
        let activation = match (self.token_hash, self.user_open_id, self.expires_at) {
            (Some(token_hash), Some(user_open_id), Some(expires_at)) => Some(Activation {
                token_hash,
                user_open_id,
                expires_at,
            }),
            _ => None,
        };
        Ok(OutboxMessage {
            id: self.id,
            tenant: TenantId(self.tenant_id),
            channel: Channel::from_str_opt(&self.channel)
                .ok_or_else(|| corrupt("outbox.channel"))?,
            recipient: self.recipient,
            subject: self.subject,
            body: self.body,
            activation,
            created_at: self.created_at,
            attempts: u32::try_from(self.attempts).map_err(|_| corrupt("outbox.attempts"))?,
            next_attempt_at: self.next_attempt_at,
            sent_at: self.sent_at,
            last_error: self.last_error,
        })
    }
}

/// The columns of `OutboxRow` from `outbox` as `o` joined with `activations` as `a`, as a
/// macro so that queries stay `&'static str`. `activations` has no index on `outbox_id`
/// (docs/schema.md lists none); the join reads it once per statement.
macro_rules! message_columns {
    () => {
        "o.id, o.tenant_id, o.channel, o.recipient, o.subject, o.body, o.created_at, \
         o.attempts, o.next_attempt_at, o.sent_at, o.last_error, a.token_hash, \
         a.user_open_id, a.expires_at"
    };
}

// ----- writing -----

/// All messages of one write, and their activations, in one statement. The ids are drawn
/// from the outbox's sequence first, in the order of the messages, so that each activation
/// row can name its message's id (RETURNING gives no promise about row order).
const INSERT_MESSAGES: &str = "WITH m AS ( \
       SELECT nextval('outbox_id_seq') AS id, v.* \
       FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], \
         $12::text[], $13::bigint[]) WITH ORDINALITY AS v(tenant_id, channel, recipient, \
         subject, body, created_at, attempts, next_attempt_at, sent_at, last_error, \
         token_hash, user_open_id, expires_at, n) \
       ORDER BY v.n), \
     messages AS ( \
       INSERT INTO outbox (id, tenant_id, channel, recipient, subject, body, created_at, \
         attempts, next_attempt_at, sent_at, last_error) \
       SELECT id, tenant_id, channel, recipient, subject, body, created_at, attempts, \
         next_attempt_at, sent_at, last_error FROM m) \
     INSERT INTO activations (token_hash, tenant_id, user_open_id, outbox_id, expires_at) \
     SELECT token_hash, tenant_id, user_open_id, id, expires_at FROM m \
     WHERE token_hash IS NOT NULL";

/// Stores messages (their `id` is ignored) and their activations in the caller's
/// transaction.
pub(crate) async fn insert_messages(
    conn: &mut PgConnection,
    messages: &[&OutboxMessage],
) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    let n = messages.len();
    let mut tenant_id = Vec::with_capacity(n);
    let mut channel = Vec::with_capacity(n);
    let mut recipient = Vec::with_capacity(n);
    let mut subject = Vec::with_capacity(n);
    let mut body = Vec::with_capacity(n);
    let mut created_at = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut next_attempt_at = Vec::with_capacity(n);
    let mut sent_at = Vec::with_capacity(n);
    let mut last_error = Vec::with_capacity(n);
    let mut token_hash = Vec::with_capacity(n);
    let mut user_open_id = Vec::with_capacity(n);
    let mut expires_at = Vec::with_capacity(n);
    for m in messages {
        tenant_id.push(m.tenant.0);
        channel.push(m.channel.as_str());
        recipient.push(m.recipient.as_str());
        subject.push(m.subject.as_str());
        body.push(m.body.as_str());
        created_at.push(m.created_at);
        attempts.push(i64::from(m.attempts));
        next_attempt_at.push(m.next_attempt_at);
        sent_at.push(m.sent_at);
        last_error.push(m.last_error.as_deref());
        token_hash.push(m.activation.as_ref().map(|a| a.token_hash.as_str()));
        user_open_id.push(m.activation.as_ref().map(|a| a.user_open_id.as_str()));
        expires_at.push(m.activation.as_ref().map(|a| a.expires_at));
    }
    sqlx::query(INSERT_MESSAGES)
        .bind(tenant_id)
        .bind(channel)
        .bind(recipient)
        .bind(subject)
        .bind(body)
        .bind(created_at)
        .bind(attempts)
        .bind(next_attempt_at)
        .bind(sent_at)
        .bind(last_error)
        .bind(token_hash)
        .bind(user_open_id)
        .bind(expires_at)
        .execute(&mut *conn)
        .await
        .context("insert outbox messages")?;
    Ok(())
}

// ----- delivery -----

pub(crate) async fn claim_outbox(
    pool: &PgPool,
    now: i64,
    limit: usize,
    lease_ms: i64,
) -> Result<Vec<OutboxMessage>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await.context("begin outbox claim")?;
    // SKIP LOCKED passes over messages another mailer is claiming right now; a message
    // claimed and committed meanwhile no longer matches once re-checked under its lock.
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM outbox \
         WHERE channel = 'email' AND sent_at IS NULL AND next_attempt_at <= $1 \
         ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *tx)
    .await
    .context("find due outbox messages")?;
    if ids.is_empty() {
        tx.rollback().await.context("end outbox claim")?;
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as::<_, OutboxRow>(concat!(
        "WITH o AS (UPDATE outbox SET next_attempt_at = $2 WHERE id = ANY($1) RETURNING *) \
         SELECT ",
        message_columns!(),
        " FROM o LEFT JOIN activations a ON a.outbox_id = o.id ORDER BY o.created_at, o.id"
    ))
    .bind(&ids)
    .bind(now.saturating_add(lease_ms))
    .fetch_all(&mut *tx)
    .await
    .context("claim outbox messages")?;
    tx.commit().await.context("commit outbox claim")?;
    rows.into_iter().map(OutboxRow::into_message).collect()
}

pub(crate) async fn mark_outbox_sent(pool: &PgPool, id: i64, now: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE outbox SET sent_at = $2, last_error = NULL, body = $3 WHERE id = $1")
        .bind(id)
        .bind(now)
        .bind(roster_store_common::DELIVERED_BODY)
        .execute(pool)
        .await
        .context("mark outbox message sent")?;
    Ok(())
}

pub(crate) async fn mark_outbox_failed(
    pool: &PgPool,
    id: i64,
    error: &str,
    next_attempt_at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(next_attempt_at)
    .execute(pool)
    .await
    .context("mark outbox message failed")?;
    Ok(())
}

pub(crate) async fn list_outbox(
    pool: &PgPool,
    tenant: Option<TenantId>,
    unsent_only: bool,
    limit: usize,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let rows = sqlx::query_as::<_, OutboxRow>(concat!(
        "SELECT ",
        message_columns!(),
        " FROM outbox o LEFT JOIN activations a ON a.outbox_id = o.id \
         WHERE ($1::bigint IS NULL OR o.tenant_id = $1) AND (NOT $2 OR o.sent_at IS NULL) \
         ORDER BY o.created_at DESC, o.id DESC LIMIT $3"
    ))
    .bind(tenant.map(|t| t.0))
    .bind(unsent_only)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .context("list outbox messages")?;
    rows.into_iter().map(OutboxRow::into_message).collect()
}

// ----- activation -----

pub(crate) async fn activate(
    pool: &PgPool,
    token_hash: &str,
    now: i64,
) -> Result<Option<User>, StoreError> {
    let mut tx = pool.begin().await.context("begin activation")?;
    // Checks and uses the activation in one statement: of two concurrent uses, the second
    // waits for the first's row lock, then finds the row used and matches nothing.
    let used: Option<(i64, String)> = sqlx::query_as(
        "UPDATE activations SET used_at = $2 \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
         RETURNING tenant_id, user_open_id",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await
    .context("use activation")?;
    let Some((tenant, open_id)) = used else {
        tx.rollback().await.context("end activation")?;
        return Ok(None);
    };
    let tenant = TenantId(tenant);
    let key: Option<i64> =
        sqlx::query_scalar("SELECT id FROM users WHERE tenant_id = $1 AND open_id = $2")
            .bind(tenant.0)
            .bind(&open_id)
            .fetch_optional(&mut *tx)
            .await
            .context("find activated user")?;
    // A user purged since the invitation leaves the link unusable (and unused).
    let Some(key) = key else {
        tx.rollback().await.context("end activation")?;
        return Ok(None);
    };
    let Some(before) = lock_users(&mut tx, tenant, &[key]).await?.pop() else {
        return Err(StoreError::Backend(format!(
            "user {key} was locked but not read back"
        )));
    };
    // A user deleted since the invitation cannot be activated by it: the link is dead.
    if before.status.is_resigned {
        tx.rollback().await.context("end activation")?;
        return Ok(None);
    }
    let mut after = before.clone();
    after.status.is_activated = true;
    after.status.is_unjoin = false;
    after.updated_at = now;
    sqlx::query(
        "UPDATE users SET is_activated = true, is_unjoin = false, updated_at = $2 WHERE id = $1",
    )
    .bind(key)
    .bind(now)
    .execute(&mut *tx)
    .await
    .context("activate user")?;
    write_events(
        &mut tx,
        &Actor::System.to_string(),
        Some(ACTIVATION_NOTE),
        vec![NewEvent {
            tenant,
            entity: Entity::User,
            entity_id: open_id,
            action: ChangeAction::Updated,
            at: now,
            before: Some(user_snapshot(&before)),
            after: Some(user_snapshot(&after)),
        }],
    )
    .await?;
    tx.commit().await.context("commit activation")?;
    Ok(Some(after))
}
