//! The change-event log. Writers append to it inside their own transaction (see
//! `users.rs`, `departments.rs` and `save.rs`), so an event exists exactly when its change
//! committed.

use roster_core::{ChangeAction, ChangeEvent, Entity, StoreError, TenantId};
use sqlx::{PgConnection, PgPool};

use crate::errors::{corrupt, Context};

/// One event on its way into `change_events`.
pub(crate) struct NewEvent {
    pub(crate) tenant: TenantId,
    pub(crate) entity: Entity,
    pub(crate) entity_id: String,
    pub(crate) action: ChangeAction,
    pub(crate) at: i64,
    pub(crate) before: Option<String>,
    pub(crate) after: Option<String>,
}

/// All events of one write in one statement. `WITH ORDINALITY … ORDER BY` makes the ids
/// follow the order of the given events.
const INSERT_EVENTS: &str = "INSERT INTO change_events (tenant_id, entity, entity_id, action, \
     actor, at, before, after, note) \
     SELECT e.tenant_id, e.entity, e.entity_id, e.action, $1, e.at, e.before, e.after, $2 \
     FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], \
     $9::text[]) WITH ORDINALITY AS e(tenant_id, entity, entity_id, action, at, before, after, n) \
     ORDER BY e.n";

/// Appends `events`, all with the same actor and note, in the caller's transaction.
pub(crate) async fn write_events(
    conn: &mut PgConnection,
    actor: &str,
    note: Option<&str>,
    events: Vec<NewEvent>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let n = events.len();
    let mut tenant_id = Vec::with_capacity(n);
    let mut entity = Vec::with_capacity(n);
    let mut entity_id = Vec::with_capacity(n);
    let mut action = Vec::with_capacity(n);
    let mut at = Vec::with_capacity(n);
    let mut before = Vec::with_capacity(n);
    let mut after = Vec::with_capacity(n);
    for e in events {
        tenant_id.push(e.tenant.0);
        entity.push(e.entity.to_string());
        entity_id.push(e.entity_id);
        action.push(e.action.as_str());
        at.push(e.at);
        before.push(e.before);
        after.push(e.after);
    }
    sqlx::query(INSERT_EVENTS)
        .bind(actor)
        .bind(note)
        .bind(tenant_id)
        .bind(entity)
        .bind(entity_id)
        .bind(action)
        .bind(at)
        .bind(before)
        .bind(after)
        .execute(&mut *conn)
        .await
        .context("record change events")?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    tenant_id: i64,
    entity: String,
    entity_id: String,
    action: String,
    actor: String,
    at: i64,
    before: Option<String>,
    after: Option<String>,
    note: Option<String>,
}

impl EventRow {
    fn into_event(self) -> Result<ChangeEvent, StoreError> {
        let entity = match self.entity.as_str() {
            "user" => Entity::User,
            "department" => Entity::Department,
            "group" => Entity::Group,
            "bi_member" => Entity::BiMember,
            _ => return Err(corrupt("change_events.entity")),
        };
        Ok(ChangeEvent {
            id: self.id,
            tenant: TenantId(self.tenant_id),
            entity,
            entity_id: self.entity_id,
            action: ChangeAction::from_str_opt(&self.action)
                .ok_or_else(|| corrupt("change_events.action"))?,
            actor: self.actor,
            at: self.at,
            before: self.before,
            after: self.after,
            note: self.note,
        })
    }
}

macro_rules! event_columns {
    () => {
        "id, tenant_id, entity, entity_id, action, actor, at, before, after, note"
    };
}

pub(crate) async fn list_events(
    pool: &PgPool,
    tenant: Option<TenantId>,
    after: i64,
    limit: usize,
) -> Result<Vec<ChangeEvent>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // Two statements rather than `$1 IS NULL OR tenant_id = $1`, so that each keeps a plan
    // on its own index (change_events_tenant_idx, the primary key).
    let rows = match tenant {
        Some(t) => {
            sqlx::query_as::<_, EventRow>(concat!(
                "SELECT ",
                event_columns!(),
                " FROM change_events WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ))
            .bind(t.0)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
        None => {
            sqlx::query_as::<_, EventRow>(concat!(
                "SELECT ",
                event_columns!(),
                " FROM change_events WHERE id > $1 ORDER BY id LIMIT $2"
            ))
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
    }
    .context("list change events")?;
    rows.into_iter().map(EventRow::into_event).collect()
}
