//! The change-event log (`change_events`, migration 0002).
//!
//! Events are written by the write paths themselves (`users.rs`, `departments.rs`,
//! `groups.rs`), inside the transaction of the change they record, through the helpers here;
//! this module also reads the log back.

use roster_core::{Change, ChangeAction, ChangeEvent, Entity, StoreError, TenantId};
use rusqlite::{params, CachedStatement, Connection, Row};

use crate::errors::{corrupt, SqlContext};

/// The statement that records one event.
pub(crate) const INSERT_EVENT: &str = "INSERT INTO change_events (tenant_id, entity, \
    entity_id, action, actor, at, before, after, note) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// The part of an event that comes from the caller's `Change`, rendered once per call.
#[derive(Debug, Clone)]
pub(crate) struct ChangeCtx {
    actor: String,
    note: Option<String>,
    /// The idempotency key this write completes, with its result (`Change::completes`).
    pub(crate) completes: Option<(roster_core::IdempotencyKey, String)>,
}

impl ChangeCtx {
    pub(crate) fn of(change: &Change) -> Self {
        Self {
            actor: change.actor.to_string(),
            note: change.note.clone(),
            completes: change.completes.clone(),
        }
    }
}

/// The kinds of entity that have events, with their stored names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EventEntity {
    User,
    Department,
    Group,
    BiMember,
}

impl EventEntity {
    fn as_str(self) -> &'static str {
        match self {
            EventEntity::User => "user",
            EventEntity::Department => "department",
            EventEntity::Group => "group",
            EventEntity::BiMember => "bi_member",
        }
    }
}

/// One event to record.
pub(crate) struct NewEvent<'a> {
    pub(crate) tenant: TenantId,
    pub(crate) entity: EventEntity,
    pub(crate) entity_id: &'a str,
    pub(crate) action: ChangeAction,
    pub(crate) at: i64,
    pub(crate) before: Option<&'a str>,
    pub(crate) after: Option<&'a str>,
}

/// Records an event with a statement prepared from [`INSERT_EVENT`] (the bulk paths prepare
/// it once per call).
pub(crate) fn record(
    stmt: &mut CachedStatement<'_>,
    ctx: &ChangeCtx,
    ev: &NewEvent<'_>,
) -> Result<(), StoreError> {
    stmt.execute(params![
        ev.tenant.0,
        ev.entity.as_str(),
        ev.entity_id,
        ev.action.as_str(),
        ctx.actor,
        ev.at,
        ev.before,
        ev.after,
        ctx.note,
    ])
    .context("record change event")?;
    Ok(())
}

/// Prepares (from the connection's cache) the event statement.
pub(crate) fn prepare(conn: &Connection) -> Result<CachedStatement<'_>, StoreError> {
    conn.prepare_cached(INSERT_EVENT)
        .context("prepare change event")
}

/// The select list matching `read`.
macro_rules! event_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, tenant_id, entity, entity_id, action, actor, at, before, after, note \
             FROM change_events ",
            $rest
        )
    };
}

/// An event row as read, before its names are parsed.
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
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            tenant_id: r.get(1)?,
            entity: r.get(2)?,
            entity_id: r.get(3)?,
            action: r.get(4)?,
            actor: r.get(5)?,
            at: r.get(6)?,
            before: r.get(7)?,
            after: r.get(8)?,
            note: r.get(9)?,
        })
    }

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

/// Events above `after`, oldest first. Two statements rather than `?1 IS NULL OR …`, so that
/// the per-tenant read can use `change_events_tenant_idx`.
pub(crate) fn list_events(
    conn: &Connection,
    tenant: Option<TenantId>,
    after: i64,
    limit: usize,
) -> Result<Vec<ChangeEvent>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = match tenant {
        Some(t) => conn
            .prepare_cached(event_select!(
                "WHERE tenant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
            ))
            .and_then(|mut s| {
                s.query_map(params![t.0, after, limit], EventRow::read)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            }),
        None => conn
            .prepare_cached(event_select!("WHERE id > ?1 ORDER BY id LIMIT ?2"))
            .and_then(|mut s| {
                s.query_map(params![after, limit], EventRow::read)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            }),
    }
    .context("list change events")?;
    rows.into_iter().map(EventRow::into_event).collect()
}
