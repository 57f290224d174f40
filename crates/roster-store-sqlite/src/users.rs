//! Users and their department memberships.
//!
//! A user is one `users` row (indexed columns derived by `roster_store_common::UserColumns`,
//! the profile document and the memberships as JSON) and one `user_departments` row per
//! membership, kept in the profile's order through `position`. Every write of a user writes
//! both in the same transaction, and records its change event there too (see `events.rs`).
//!
//! Reads of users take the memberships from the row (migration 0018), so a read of one
//! user or of a page of them is one statement over `users`; `user_departments` serves the
//! department side (member pages and counts, the foreign key). Lists of values are passed
//! to SQLite as one JSON array parameter and expanded with `json_each`, so each statement
//! stays cacheable whatever the number of values.

use std::collections::{HashMap, HashSet};

use roster_core::values::Email;
use roster_core::{
    Actor, Change, ChangeAction, Clock, Department, DeptKey, DeptLookup, Group, Membership, OpenId,
    ReadVersions, StoreError, SystemClock, TakenValues, TenantId, UnionId, UniqueProbe, User,
    UserId, UserKey, UserLookup, UserProfile, UserStatus,
};
use roster_store_common::{decode_profile, encode_profile, user_snapshot, UserColumns};
use rusqlite::{params, CachedStatement, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::errors::{map_sqlite, SqlContext};
use crate::events::{self, ChangeCtx, EventEntity, NewEvent};
use crate::snapshot::ReadSnapshot;
use crate::{departments, groups};

/// The `users.search_text` of a profile: its search terms as a JSON array, from which
/// `index_new_user` and the migration-0006 triggers maintain the search index (see `roster_store_common::search_text`).
pub(crate) fn search_text(p: &UserProfile) -> String {
    roster_store_common::search_text(p)
}

/// Everything written for one user, encoded ahead of the blocking task.
pub(crate) struct UserRow {
    open_id: String,
    union_id: String,
    user_id: String,
    columns: UserColumns,
    name: String,
    search_text: String,
    status: UserStatus,
    created_at: i64,
    updated_at: i64,
    resigned_at: Option<i64>,
    logout_at: Option<i64>,
    doc: String,
    memberships: Vec<Membership>,
    /// `memberships` encoded for the row's own column (see [`encode_memberships`]).
    memberships_text: String,
    /// `user_snapshot` of the user as written, the `after` of its event.
    snapshot: String,
}

impl UserRow {
    /// The values of the `users` columns after `tenant_id`, in the order of [`INSERT_USER`]
    /// (`open_id` … `memberships`); the single-row insert, the multi-row insert and the update
    /// all bind these, so the three cannot drift apart.
    fn values(&self) -> [&dyn rusqlite::ToSql; USER_VALUES] {
        let c = &self.columns;
        let s = &self.status;
        [
            &self.open_id,
            &self.union_id,
            &self.user_id,
            &c.user_id_fold,
            &c.email_fold,
            &c.mobile,
            &c.username_fold,
            &c.employee_no,
            &self.name,
            &c.leader_open_id,
            &s.is_resigned,
            &s.is_frozen,
            &s.is_activated,
            &s.is_exited,
            &s.is_unjoin,
            &self.created_at,
            &self.updated_at,
            &self.resigned_at,
            &self.logout_at,
            &self.doc,
            &self.search_text,
            &self.memberships_text,
        ]
    }

    pub(crate) fn of(user: &User) -> Self {
        Self {
            open_id: user.open_id.as_str().to_owned(),
            union_id: user.union_id.as_str().to_owned(),
            user_id: user.user_id.as_str().to_owned(),
            columns: UserColumns::of(user),
            name: user.profile.name.clone(),
            search_text: search_text(&user.profile),
            status: user.status,
            created_at: user.created_at,
            updated_at: user.updated_at,
            resigned_at: user.resigned_at,
            logout_at: user.logout_at,
            doc: encode_profile(&user.profile),
            memberships: user.profile.departments.clone(),
            memberships_text: encode_memberships(&user.profile.departments),
            snapshot: user_snapshot(user),
        }
    }
}

const INSERT_USER: &str = "INSERT INTO users (tenant_id, open_id, union_id, user_id, \
    user_id_fold, email_fold, mobile, username_fold, employee_no, name, leader_open_id, \
    is_resigned, is_frozen, is_activated, is_exited, is_unjoin, created_at, updated_at, \
    resigned_at, logout_at, doc, search_text, memberships) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
    ?19, ?20, ?21, ?22, ?23)";

/// The values [`UserRow::values`] binds: every column of [`INSERT_USER`] after `tenant_id`.
const USER_VALUES: usize = 22;

/// A membership as `users.memberships` holds it: department, user order, department order,
/// primary.
pub(crate) type MembershipFields = (i64, i64, i64, bool);

/// The fields of `m` in the order of [`MembershipFields`].
pub(crate) fn membership_fields(m: &Membership) -> MembershipFields {
    (
        m.department.0,
        m.user_order,
        m.department_order,
        m.is_primary,
    )
}

/// The `users.memberships` text of a user's memberships (migration 0018): a JSON array of
/// [`MembershipFields`], in the profile's order. It is written in the same transaction as
/// the `user_departments` rows, by the same insert or save, so the two always agree; reads
/// of a user take it from here and skip the memberships' B-tree, one page read fewer per
/// GET at a million users.
fn encode_memberships(memberships: &[Membership]) -> String {
    let items: Vec<MembershipFields> = memberships.iter().map(membership_fields).collect();
    // A list of integers and booleans always serialises.
    serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_owned())
}

/// The memberships of a `users.memberships` text (see [`encode_memberships`]).
fn decode_memberships(text: &str) -> Result<Vec<Membership>, StoreError> {
    let items: Vec<MembershipFields> = serde_json::from_str(text)
        .map_err(|e| StoreError::Backend(format!("decode user memberships: {e}")))?;
    Ok(items
        .into_iter()
        .map(
            |(department, user_order, department_order, is_primary)| Membership {
                department: DeptKey(department),
                user_order,
                department_order,
                is_primary,
            },
        )
        .collect())
}

const INSERT_MEMBERSHIP: &str = "INSERT INTO user_departments (user_id, department_id, \
    tenant_id, position, user_order, department_order, is_primary) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

fn insert_memberships(
    stmt: &mut CachedStatement<'_>,
    tenant: TenantId,
    user: i64,
    memberships: &[Membership],
) -> Result<(), StoreError> {
    for (position, m) in memberships.iter().enumerate() {
        stmt.execute(params![
            user,
            m.department.0,
            tenant.0,
            position as i64,
            m.user_order,
            m.department_order,
            m.is_primary,
        ])
        .context("insert user department")?;
    }
    Ok(())
}

/// Changes to `departments.member_count` (migration 0013: active users with a membership
/// directly in the department), gathered while a transaction writes users and applied once
/// per department before it commits. The store counts in code rather than by triggers on
/// `user_departments` because a trigger makes every membership insert open a statement
/// savepoint, at which FTS5 writes out its pending search entries: measured at a million
/// users, an import took 113 s with such triggers against 82 s without.
#[derive(Debug, Default)]
pub(crate) struct MemberCounts(std::collections::BTreeMap<i64, i64>);

impl MemberCounts {
    /// Counts (`by` = 1) or uncounts (`by` = -1) a user's memberships, if the user is active.
    pub(crate) fn add(&mut self, memberships: &[Membership], active: bool, by: i64) {
        if active {
            for m in memberships {
                *self.0.entry(m.department.0).or_default() += by;
            }
        }
    }

    /// Applies the changes inside the caller's transaction.
    pub(crate) fn write(self, tx: &Connection) -> Result<(), StoreError> {
        let mut update = tx
            .prepare_cached("UPDATE departments SET member_count = member_count + ?2 WHERE id = ?1")
            .context("prepare member count")?;
        for (dept, delta) in self.0 {
            if delta != 0 {
                update
                    .execute(params![dept, delta])
                    .context("update member count")?;
            }
        }
        Ok(())
    }
}

/// How many more active users the tenant may take (`None`: no cap). Read inside the
/// caller's write transaction, so the answer holds until it commits.
fn licence_room(conn: &Connection, tenant: TenantId) -> Result<Option<u64>, StoreError> {
    let (max, active): (Option<i64>, i64) = conn
        .prepare_cached("SELECT max_active_users, active_users FROM tenants WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([tenant.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .context("load licence cap")?
        .ok_or_else(|| StoreError::Backend(format!("tenant {tenant} does not exist")))?;
    Ok(max.map(|max| u64::try_from(max - active).unwrap_or(0)))
}

fn add_active_users(conn: &Connection, tenant: TenantId, delta: i64) -> Result<(), StoreError> {
    if delta != 0 {
        // The CHECK on tenants re-checks the cap here; licence_room has already refused
        // everything past it, so this only fires if the file was changed by another program.
        conn.prepare_cached("UPDATE tenants SET active_users = active_users + ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![tenant.0, delta]))
            .context("update active user count")?;
    }
    Ok(())
}

/// A JSON array of values, the parameter of `json_each`.
fn json_list<T: serde::Serialize>(values: &[T]) -> String {
    // A slice of integers or strings always serialises.
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_owned())
}

/// Inserts a batch in one transaction, with a `created` event per written user (see
/// [`insert_rows`]). With `atomic`, any refusal rolls the whole batch back.
pub(crate) fn insert_users(
    conn: &mut Connection,
    tenant: TenantId,
    rows: &[UserRow],
    atomic: bool,
    ctx: &ChangeCtx,
) -> Result<Vec<Result<UserKey, StoreError>>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin insert users")?;
    let results = insert_rows(&tx, tenant, rows, ctx)?;
    if atomic && results.iter().any(Result::is_err) {
        // Dropping the transaction rolls it back: nothing of the batch is written, events
        // and the active count included.
        drop(tx);
        tracing::debug!("atomic batch refused; rolled back");
        return Ok(results);
    }
    if results.iter().all(Result::is_ok) {
        crate::idempotency::complete_pending(&tx, ctx)?;
    }
    tx.commit().context("commit insert users")?;
    Ok(results)
}

/// Inserts one `users` row through a statement prepared from [`INSERT_USER`], returning the
/// new key or SQLite's error untouched (the caller decides what a constraint failure means).
/// The write path and the benchmark's ceiling (`ceiling.rs`) both use it, so the ceiling
/// always writes exactly the columns Roster writes.
pub(crate) fn insert_user_row(
    insert_user: &mut CachedStatement<'_>,
    tenant: TenantId,
    row: &UserRow,
) -> rusqlite::Result<i64> {
    let tenant: &dyn rusqlite::ToSql = &tenant.0;
    insert_user.insert(rusqlite::params_from_iter(
        std::iter::once(tenant).chain(row.values()),
    ))
}

/// Adds a newly inserted user to the search index (migration 0006): its row in the FTS5
/// trigram table and its terms. This is done here rather than by an `AFTER INSERT` trigger
/// because FTS5 writes out its pending entries at every statement savepoint, and a trigger
/// opens one per inserted row: measured, the trigger made each insert about three times as
/// expensive as these two explicit statements inside the caller's transaction. Updates and
/// deletes, which are rare, keep their triggers.
pub(crate) fn index_new_user(
    tx: &Connection,
    tenant: TenantId,
    id: i64,
    row: &UserRow,
) -> Result<(), StoreError> {
    if row.status.is_resigned || row.search_text.is_empty() {
        return Ok(());
    }
    tx.prepare_cached("INSERT INTO users_fts (rowid, search_text) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![id, row.search_text]))
        .context("index user text")?;
    tx.prepare_cached(
        "INSERT OR IGNORE INTO user_search_terms (tenant_id, term, user_key) \
         SELECT ?1, value, ?2 FROM json_each(?3)",
    )
    .and_then(|mut s| s.execute(params![tenant.0, id, row.search_text]))
    .context("index user terms")?;
    Ok(())
}

/// The benchmark's storage ceiling: the rows and their memberships with plain prepared
/// inserts inside the caller's transaction; no licence check, no change events, no
/// duplicate handling (the rows are known to be unique).
pub(crate) fn insert_rows_plain(
    tx: &Connection,
    tenant: TenantId,
    rows: &[UserRow],
) -> Result<(), StoreError> {
    let mut insert_user = tx
        .prepare_cached(INSERT_USER)
        .context("prepare insert user")?;
    let mut insert_membership = tx
        .prepare_cached(INSERT_MEMBERSHIP)
        .context("prepare insert user department")?;
    for row in rows {
        let id = insert_user_row(&mut insert_user, tenant, row).context("insert user")?;
        index_new_user(tx, tenant, id, row)?;
        insert_memberships(&mut insert_membership, tenant, id, &row.memberships)?;
    }
    Ok(())
}

/// The references of inserted users checked again inside the write transaction: every
/// department a row names must still be live, and its leader (if any) still active. The
/// core checked both before the transaction began; a department delete or a resignation
/// may have committed since, and without this check a user would be written into a deleted
/// department or under a resigned leader. The writer is the only one, so what this reads
/// holds until the commit. Department verdicts are remembered for the whole call; leaders
/// are not, because a leader may be a row of the same batch written a moment before.
#[derive(Default)]
pub(crate) struct LiveRefs {
    departments: HashMap<i64, bool>,
}

impl LiveRefs {
    /// The field of the first reference of `row` that is gone (`department_ids`,
    /// `leader_user_id`), if any.
    pub(crate) fn gone(
        &mut self,
        tx: &Connection,
        tenant: TenantId,
        row: &UserRow,
    ) -> Result<Option<&'static str>, StoreError> {
        self.gone_but_leaders_in(tx, tenant, row, &HashSet::new())
    }

    /// `gone`, counting the leaders in `written_with` as active: the users of a bulk insert
    /// are all written or none, so a leader among them is there when its reports are.
    pub(crate) fn gone_but_leaders_in(
        &mut self,
        tx: &Connection,
        tenant: TenantId,
        row: &UserRow,
        written_with: &HashSet<&str>,
    ) -> Result<Option<&'static str>, StoreError> {
        for m in &row.memberships {
            let live = if let Some(&live) = self.departments.get(&m.department.0) {
                live
            } else {
                let live = department_live(tx, tenant, m.department.0)?;
                self.departments.insert(m.department.0, live);
                live
            };
            if !live {
                return Ok(Some("department_ids"));
            }
        }
        if let Some(leader) = row
            .columns
            .leader_open_id
            .as_deref()
            .filter(|l| !written_with.contains(l))
        {
            let active: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = ?1 AND open_id = ?2 \
                     AND NOT is_resigned)",
                )
                .and_then(|mut s| s.query_row(params![tenant.0, leader], |r| r.get(0)))
                .context("check the leader is active")?;
            if !active {
                return Ok(Some("leader_user_id"));
            }
        }
        Ok(None)
    }
}

/// Whether a department of the tenant exists and is not deleted.
fn department_live(tx: &Connection, tenant: TenantId, dept: i64) -> Result<bool, StoreError> {
    let deleted: Option<bool> = tx
        .prepare_cached("SELECT is_deleted FROM departments WHERE tenant_id = ?1 AND id = ?2")
        .and_then(|mut s| {
            s.query_row(params![tenant.0, dept], |r| r.get(0))
                .optional()
        })
        .context("check a department is live")?;
    Ok(deleted == Some(false))
}

/// The best-effort insert of a batch inside the caller's write transaction (which must have
/// been begun IMMEDIATE, so that the licence room read here holds until it commits): each
/// row is written with its memberships and a `created` event, or refused with `Duplicate`
/// (a unique index fired) or `LicenceExceeded` (no room left under the tenant's cap); the
/// tenant's active count then moves by the number of active users written. Shared by
/// `insert_users` and the task engine's `commit_task_chunk`.
///
/// Rows do not need a savepoint each: SQLite undoes a statement that violates a constraint
/// and leaves the transaction open, and the `users` insert is the only statement of a row
/// that can be refused (a duplicate). A failing membership or event insert is not a refusal
/// but a fault (a department that vanished, a full disk), which aborts the whole call, so
/// there is never half a row to undo. This keeps the hot path at one statement per row, one
/// per membership and one for the event, all prepared once per call.
pub(crate) fn insert_rows(
    tx: &Connection,
    tenant: TenantId,
    rows: &[UserRow],
    ctx: &ChangeCtx,
) -> Result<Vec<Result<UserKey, StoreError>>, StoreError> {
    let mut room = licence_room(tx, tenant)?;
    let mut added: i64 = 0;
    let mut counts = MemberCounts::default();
    let mut results = Vec::with_capacity(rows.len());
    {
        let mut insert_user = tx
            .prepare_cached(INSERT_USER)
            .context("prepare insert user")?;
        let mut insert_membership = tx
            .prepare_cached(INSERT_MEMBERSHIP)
            .context("prepare insert user department")?;
        let mut insert_event = events::prepare(tx)?;
        let mut refs = LiveRefs::default();
        for row in rows {
            let active = !row.status.is_resigned;
            if let Some(field) = refs.gone(tx, tenant, row)? {
                results.push(Err(StoreError::Gone(field)));
                continue;
            }
            if active && room == Some(0) {
                results.push(Err(StoreError::LicenceExceeded));
                continue;
            }
            let inserted = insert_user_row(&mut insert_user, tenant, row);
            match inserted {
                Ok(id) => {
                    index_new_user(tx, tenant, id, row)?;
                    insert_memberships(&mut insert_membership, tenant, id, &row.memberships)?;
                    counts.add(&row.memberships, active, 1);
                    events::record(
                        &mut insert_event,
                        ctx,
                        &NewEvent {
                            tenant,
                            entity: EventEntity::User,
                            entity_id: &row.open_id,
                            action: ChangeAction::Created,
                            at: row.updated_at,
                            before: None,
                            after: Some(&row.snapshot),
                        },
                    )?;
                    if active {
                        added += 1;
                        room = room.map(|r| r - 1);
                    }
                    results.push(Ok(UserKey(id)));
                }
                Err(e) => match map_sqlite(&e, "insert user") {
                    refused @ StoreError::Duplicate(_) => results.push(Err(refused)),
                    fault => return Err(fault),
                },
            }
        }
    }
    counts.write(tx)?;
    add_active_users(tx, tenant, added)?;
    Ok(results)
}

/// Users per multi-row INSERT of [`insert_rows_bulk`] (23 parameters each, well under
/// SQLite's limit of 32 766 parameters per statement).
const BULK_ROWS: usize = 500;

/// The writes of [`insert_rows`] for a large chunk of rows expected to be good (bulk
/// imports), with the users inserted by multi-row statements of 500 rows. Returns `None`,
/// having written nothing, when the rows cannot all be written: a unique value is taken
/// (checked first, on this transaction; the caller then falls back to [`insert_rows`], which
/// refuses rows one by one) or the licence cap would be passed. Memberships, one `created` event per user and the active count are written as
/// `insert_rows` writes them.
pub(crate) fn insert_rows_bulk(
    tx: &Connection,
    tenant: TenantId,
    rows: &[UserRow],
    ctx: &ChangeCtx,
) -> Result<Option<Vec<Result<UserKey, StoreError>>>, StoreError> {
    let active = rows.iter().filter(|r| !r.status.is_resigned).count() as u64;
    if licence_room(tx, tenant)?.is_some_and(|room| room < active) {
        return Ok(None);
    }
    if any_taken(tx, tenant, rows)? {
        return Ok(None);
    }
    let mut refs = LiveRefs::default();
    let written_with: HashSet<&str> = rows.iter().map(|r| r.open_id.as_str()).collect();
    for row in rows {
        if refs
            .gone_but_leaders_in(tx, tenant, row, &written_with)?
            .is_some()
        {
            return Ok(None);
        }
    }
    // The probe ran inside this write transaction, so nothing can take a value before the
    // inserts: they cannot be refused, and any error is a fault that rolls back the whole
    // transaction. That is why no savepoint surrounds them. A savepoint over a whole chunk
    // made SQLite copy every page the chunk touched into an in-memory sub-journal (measured:
    // over a gigabyte of the server's memory at 20 000 rows per chunk, and a few percent of
    // its time).
    let ids = bulk_user_rows(tx, tenant, rows).map_err(|e| map_sqlite(&e, "bulk insert users"))?;
    let mut counts = MemberCounts::default();
    {
        let mut insert_membership = tx
            .prepare_cached(INSERT_MEMBERSHIP)
            .context("prepare insert user department")?;
        let mut insert_event = events::prepare(tx)?;
        for (row, &id) in rows.iter().zip(&ids) {
            index_new_user(tx, tenant, id, row)?;
            insert_memberships(&mut insert_membership, tenant, id, &row.memberships)?;
            counts.add(&row.memberships, !row.status.is_resigned, 1);
            events::record(
                &mut insert_event,
                ctx,
                &NewEvent {
                    tenant,
                    entity: EventEntity::User,
                    entity_id: &row.open_id,
                    action: ChangeAction::Created,
                    at: row.updated_at,
                    before: None,
                    after: Some(&row.snapshot),
                },
            )?;
        }
    }
    counts.write(tx)?;
    add_active_users(tx, tenant, active as i64)?;
    Ok(Some(ids.into_iter().map(|id| Ok(UserKey(id))).collect()))
}

/// Whether a unique index of `users` would refuse any of `rows` (see [`insert_rows_bulk`]):
/// open and union ids are unique among all users, the other values among active users
/// only, matching the partial indexes of migration 0001. The caller has removed duplicates
/// within the rows.
fn any_taken(tx: &Connection, tenant: TenantId, rows: &[UserRow]) -> Result<bool, StoreError> {
    // Each probe names its index's columns and `WHERE`, so SQLite answers it from that index.
    const BY_OPEN_ID: &str = "SELECT 1 FROM users WHERE tenant_id = ?1 AND open_id = ?2";
    const BY_UNION_ID: &str = "SELECT 1 FROM users WHERE tenant_id = ?1 AND union_id = ?2";
    const ACTIVE: [&str; 5] = [
        "SELECT 1 FROM users WHERE tenant_id = ?1 AND user_id_fold = ?2 AND NOT is_resigned",
        "SELECT 1 FROM users WHERE tenant_id = ?1 AND email_fold = ?2 AND NOT is_resigned",
        "SELECT 1 FROM users WHERE tenant_id = ?1 AND mobile = ?2 AND NOT is_resigned",
        "SELECT 1 FROM users WHERE tenant_id = ?1 AND username_fold = ?2 AND NOT is_resigned",
        "SELECT 1 FROM users WHERE tenant_id = ?1 AND employee_no = ?2 AND NOT is_resigned",
    ];
    let mut by_open = tx.prepare_cached(BY_OPEN_ID).context("prepare probe")?;
    let mut by_union = tx.prepare_cached(BY_UNION_ID).context("prepare probe")?;
    let mut active: Vec<_> = ACTIVE
        .iter()
        .map(|sql| tx.prepare_cached(sql))
        .collect::<Result<_, _>>()
        .context("prepare probe")?;
    for row in rows {
        if by_open
            .exists(params![tenant.0, row.open_id])
            .context("probe open id")?
            || by_union
                .exists(params![tenant.0, row.union_id])
                .context("probe union id")?
        {
            return Ok(true);
        }
        if row.status.is_resigned {
            continue;
        }
        let c = &row.columns;
        let values = [
            Some(&c.user_id_fold),
            c.email_fold.as_ref(),
            c.mobile.as_ref(),
            c.username_fold.as_ref(),
            c.employee_no.as_ref(),
        ];
        for (stmt, value) in active.iter_mut().zip(values) {
            if let Some(v) = value {
                if stmt.exists(params![tenant.0, v]).context("probe value")? {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// The multi-row INSERTs of [`insert_rows_bulk`]: the new keys in row order, or SQLite's
/// error untouched.
fn bulk_user_rows(
    tx: &Connection,
    tenant: TenantId,
    rows: &[UserRow],
) -> rusqlite::Result<Vec<i64>> {
    let head = INSERT_USER
        .split_once("VALUES")
        .map_or(INSERT_USER, |(h, _)| h);
    let one = format!("({})", vec!["?"; USER_VALUES + 1].join(", "));
    let mut ids = Vec::with_capacity(rows.len());
    for part in rows.chunks(BULK_ROWS) {
        let sql = format!(
            "{head} VALUES {} RETURNING id, open_id",
            vec![one.as_str(); part.len()].join(", ")
        );
        let mut stmt = tx.prepare_cached(&sql)?;
        let mut values: Vec<&dyn rusqlite::ToSql> =
            Vec::with_capacity(part.len() * (USER_VALUES + 1));
        for row in part {
            values.push(&tenant.0);
            values.extend(row.values());
        }
        // RETURNING promises no order, so keys are matched to rows by open id.
        let mut by_open: HashMap<String, i64> = HashMap::with_capacity(part.len());
        let mut returned = stmt.query(rusqlite::params_from_iter(values))?;
        while let Some(r) = returned.next()? {
            by_open.insert(r.get(1)?, r.get(0)?);
        }
        for row in part {
            let id = by_open
                .get(&row.open_id)
                .copied()
                .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            ids.push(id);
        }
    }
    Ok(ids)
}

/// A `users` row as read, before its document is decoded.
struct UserRowRead {
    id: i64,
    tenant_id: i64,
    open_id: String,
    union_id: String,
    user_id: String,
    status: UserStatus,
    created_at: i64,
    updated_at: i64,
    resigned_at: Option<i64>,
    logout_at: Option<i64>,
    doc: String,
    /// `users.memberships` (see [`encode_memberships`]).
    memberships: String,
}

/// The columns matching `UserRowRead::read`, of a `users` table aliased `u`.
macro_rules! user_cols {
    () => {
        "u.id, u.tenant_id, u.open_id, u.union_id, u.user_id, u.is_resigned, u.is_frozen, \
         u.is_activated, u.is_exited, u.is_unjoin, u.created_at, u.updated_at, \
         u.resigned_at, u.logout_at, u.doc, u.memberships"
    };
}

/// A select of `UserRowRead` columns from `users u`.
macro_rules! user_select {
    ($($rest:expr),+) => {
        concat!("SELECT ", user_cols!(), " FROM users u ", $($rest),+)
    };
}

/// Among users sharing a changeable value, the active one, else the most recently resigned
/// (SQLite sorts NULL last in descending order, so a resigned row without a time comes
/// after those with one).
macro_rules! prefer_active {
    ($where:literal) => {
        user_select!(
            $where,
            " ORDER BY u.is_resigned, u.resigned_at DESC, u.id DESC LIMIT 1"
        )
    };
}

/// `prefer_active` for a list of values at once (`?2`, a JSON array): the preferred user of
/// each value of `$col`.
macro_rules! prefer_active_in {
    ($col:literal) => {
        concat!(
            "SELECT ",
            user_cols!(),
            " FROM (SELECT *, row_number() OVER (PARTITION BY ",
            $col,
            " ORDER BY is_resigned, resigned_at DESC, id DESC) AS rn FROM users \
             WHERE tenant_id = ?1 AND ",
            $col,
            " IN (SELECT value FROM json_each(?2))) u WHERE u.rn = 1"
        )
    };
}

impl UserRowRead {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            tenant_id: r.get(1)?,
            open_id: r.get(2)?,
            union_id: r.get(3)?,
            user_id: r.get(4)?,
            status: UserStatus {
                is_resigned: r.get(5)?,
                is_frozen: r.get(6)?,
                is_activated: r.get(7)?,
                is_exited: r.get(8)?,
                is_unjoin: r.get(9)?,
            },
            created_at: r.get(10)?,
            updated_at: r.get(11)?,
            resigned_at: r.get(12)?,
            logout_at: r.get(13)?,
            doc: r.get(14)?,
            memberships: r.get(15)?,
        })
    }

    fn into_user(self) -> Result<User, StoreError> {
        let mut profile = decode_profile(&self.doc)?;
        profile.departments = decode_memberships(&self.memberships)?;
        Ok(User {
            key: UserKey(self.id),
            tenant: TenantId(self.tenant_id),
            open_id: OpenId::from_trusted(self.open_id),
            union_id: UnionId::from_trusted(self.union_id),
            user_id: UserId::from_trusted(self.user_id),
            profile,
            status: self.status,
            created_at: self.created_at,
            updated_at: self.updated_at,
            resigned_at: self.resigned_at,
            logout_at: self.logout_at,
        })
    }
}

/// Turns rows into users, in the rows' order.
fn assemble(rows: Vec<UserRowRead>) -> Result<Vec<User>, StoreError> {
    rows.into_iter().map(UserRowRead::into_user).collect()
}

/// Runs a cached select of `UserRowRead` rows.
fn query_rows<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    what: &str,
) -> Result<Vec<UserRowRead>, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_map(params, UserRowRead::read)?.collect())
        .context(what)
}

pub(crate) fn get_user(
    conn: &mut Connection,
    tenant: TenantId,
    lookup: &UserLookup,
) -> Result<Option<User>, StoreError> {
    // One read transaction, so that the row and its memberships come from one snapshot.
    let tx = ReadSnapshot::begin(conn, "begin read user")?;
    read_user(&tx, tenant, lookup)
}

/// A user and the departments of its memberships (deleted ones included, in membership
/// order), all from one snapshot: what rendering a user needs, in one read transaction
/// instead of one per department.
pub(crate) fn get_user_with_departments(
    conn: &mut Connection,
    tenant: TenantId,
    lookup: &UserLookup,
) -> Result<Option<(User, Vec<Department>)>, StoreError> {
    let tx = ReadSnapshot::begin(conn, "begin read user")?;
    let Some(row) = read_user_row(&tx, tenant, lookup)? else {
        return Ok(None);
    };
    let user = row.into_user()?;
    // The memberships come with the row (migration 0018); their departments are a few rows
    // of a small table, whose pages the reader's cache holds.
    let mut depts = Vec::with_capacity(user.profile.departments.len());
    for m in &user.profile.departments {
        let lookup = DeptLookup::Key(m.department);
        let dept = departments::get_department(&tx, tenant, &lookup)?.ok_or_else(|| {
            // `user_departments.department_id` is a foreign key of `departments`, and
            // departments are only ever marked deleted, never removed.
            StoreError::Backend(format!(
                "user {} names department {} that does not exist",
                user.key.0, m.department.0
            ))
        })?;
        depts.push(dept);
    }
    Ok(Some((user, depts)))
}

/// Reads a user with its memberships on a connection that is already in a transaction
/// (the caller's own, or the snapshot of `get_user`).
pub(crate) fn read_user(
    tx: &Connection,
    tenant: TenantId,
    lookup: &UserLookup,
) -> Result<Option<User>, StoreError> {
    read_user_row(tx, tenant, lookup)?
        .map(UserRowRead::into_user)
        .transpose()
}

/// The `users` row a lookup finds, without its memberships.
fn read_user_row(
    tx: &Connection,
    tenant: TenantId,
    lookup: &UserLookup,
) -> Result<Option<UserRowRead>, StoreError> {
    let t = tenant.0;
    let row = match lookup {
        UserLookup::Key(key) => one_row(
            tx,
            user_select!("WHERE u.tenant_id = ?1 AND u.id = ?2"),
            params![t, key.0],
        ),
        UserLookup::OpenId(open) => one_row(
            tx,
            user_select!("WHERE u.tenant_id = ?1 AND u.open_id = ?2"),
            params![t, open],
        ),
        UserLookup::UnionId(union) => one_row(
            tx,
            user_select!("WHERE u.tenant_id = ?1 AND u.union_id = ?2"),
            params![t, union],
        ),
        // Values that resigned users may share: the active holder (through the partial
        // unique index, one probe and no sort), else the preferred resigned one.
        UserLookup::UserId(id) => {
            let folded = UserId::from_trusted(id.clone()).folded();
            active_else_preferred(
                tx,
                user_select!(
                    "WHERE u.tenant_id = ?1 AND u.user_id_fold = ?2 AND NOT u.is_resigned"
                ),
                prefer_active!("WHERE u.tenant_id = ?1 AND u.user_id_fold = ?2"),
                params![t, folded],
            )
        }
        UserLookup::Email(email) => {
            let folded = Email::from_trusted(email.clone()).folded();
            active_else_preferred(
                tx,
                user_select!("WHERE u.tenant_id = ?1 AND u.email_fold = ?2 AND NOT u.is_resigned"),
                prefer_active!("WHERE u.tenant_id = ?1 AND u.email_fold = ?2"),
                params![t, folded],
            )
        }
        UserLookup::Mobile(mobile) => active_else_preferred(
            tx,
            user_select!("WHERE u.tenant_id = ?1 AND u.mobile = ?2 AND NOT u.is_resigned"),
            prefer_active!("WHERE u.tenant_id = ?1 AND u.mobile = ?2"),
            params![t, mobile],
        ),
    }
    .context("load user row")?;
    Ok(row)
}

/// At most one `UserRowRead` row of a cached select.
fn one_row<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<Option<UserRowRead>> {
    conn.prepare_cached(sql)?
        .query_row(params, UserRowRead::read)
        .optional()
}

/// The row of `active` (a select of the active user, unique), else that of `preferred`
/// (the same value among all users, ordered by preference), with the same parameters.
fn active_else_preferred<P: rusqlite::Params + Copy>(
    conn: &Connection,
    active: &str,
    preferred: &str,
    params: P,
) -> rusqlite::Result<Option<UserRowRead>> {
    match one_row(conn, active, params)? {
        Some(row) => Ok(Some(row)),
        None => one_row(conn, preferred, params),
    }
}

/// Several lookups at once: one query per kind of lookup present (at most six), each taking
/// all values of its kind, then one query for the memberships. Lookups by user id, e-mail
/// and mobile resolve as `get_user` does (the active holder, else the latest resigned one).
pub(crate) fn get_users(
    conn: &mut Connection,
    tenant: TenantId,
    lookups: &[UserLookup],
) -> Result<Vec<User>, StoreError> {
    let mut keys = Vec::new();
    let mut open_ids = Vec::new();
    let mut union_ids = Vec::new();
    let mut user_ids = Vec::new();
    let mut emails = Vec::new();
    let mut mobiles = Vec::new();
    for lookup in lookups {
        match lookup {
            UserLookup::Key(k) => keys.push(k.0),
            UserLookup::OpenId(v) => open_ids.push(v.as_str()),
            UserLookup::UnionId(v) => union_ids.push(v.as_str()),
            UserLookup::UserId(v) => user_ids.push(UserId::from_trusted(v.clone()).folded()),
            UserLookup::Email(v) => emails.push(Email::from_trusted(v.clone()).folded()),
            UserLookup::Mobile(v) => mobiles.push(v.as_str()),
        }
    }
    let tx = ReadSnapshot::begin(conn, "begin read users")?;
    let t = tenant.0;
    let mut rows = Vec::new();
    if !keys.is_empty() {
        rows.extend(query_rows(
            &tx,
            // `+u.tenant_id` keeps the planner on the primary key: without statistics it
            // would otherwise walk a (tenant_id, …) index over every user of the tenant.
            user_select!("WHERE +u.tenant_id = ?1 AND u.id IN (SELECT value FROM json_each(?2))"),
            params![t, json_list(&keys)],
            "load users by key",
        )?);
    }
    if !open_ids.is_empty() {
        rows.extend(query_rows(
            &tx,
            user_select!(
                "WHERE u.tenant_id = ?1 AND u.open_id IN (SELECT value FROM json_each(?2))"
            ),
            params![t, json_list(&open_ids)],
            "load users by open id",
        )?);
    }
    if !union_ids.is_empty() {
        rows.extend(query_rows(
            &tx,
            user_select!(
                "WHERE u.tenant_id = ?1 AND u.union_id IN (SELECT value FROM json_each(?2))"
            ),
            params![t, json_list(&union_ids)],
            "load users by union id",
        )?);
    }
    for (sql, values, what) in [
        (
            prefer_active_in!("user_id_fold"),
            json_list(&user_ids),
            "load users by user id",
        ),
        (
            prefer_active_in!("email_fold"),
            json_list(&emails),
            "load users by e-mail",
        ),
        (
            prefer_active_in!("mobile"),
            json_list(&mobiles),
            "load users by mobile",
        ),
    ] {
        if values != "[]" {
            rows.extend(query_rows(&tx, sql, params![t, values], what)?);
        }
    }
    let mut seen = HashSet::with_capacity(rows.len());
    rows.retain(|r| seen.insert(r.id));
    rows.sort_unstable_by_key(|r| r.id);
    assemble(rows)
}

/// Every user, active or resigned, holding one of the folded e-mails or mobiles, by key.
pub(crate) fn users_by_contact(
    conn: &mut Connection,
    tenant: TenantId,
    emails: &[String],
    mobiles: &[String],
) -> Result<Vec<User>, StoreError> {
    if emails.is_empty() && mobiles.is_empty() {
        return Ok(Vec::new());
    }
    let tx = ReadSnapshot::begin(conn, "begin read users by contact")?;
    let rows = query_rows(
        &tx,
        user_select!(
            "WHERE u.tenant_id = ?1 AND (u.email_fold IN (SELECT value FROM json_each(?2)) \
             OR u.mobile IN (SELECT value FROM json_each(?3))) ORDER BY u.id"
        ),
        params![tenant.0, json_list(emails), json_list(mobiles)],
        "load users by contact",
    )?;
    assemble(rows)
}

/// `after` as a lower bound of keys (none: below every key).
fn key_floor(after: Option<UserKey>) -> i64 {
    after.map_or(i64::MIN, |k| k.0)
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A page of a department's active direct members, walking `user_departments_dept_idx`
/// `(department_id, user_id)` from `after`.
pub(crate) fn department_members(
    conn: &mut Connection,
    tenant: TenantId,
    dept: DeptKey,
    after: Option<UserKey>,
    limit: usize,
) -> Result<Vec<User>, StoreError> {
    let tx = conn
        .transaction()
        .context("begin read department members")?;
    let rows = query_rows(
        &tx,
        user_select!(
            "JOIN user_departments ud ON ud.user_id = u.id \
             WHERE ud.department_id = ?2 AND ud.user_id > ?3 AND u.tenant_id = ?1 \
             AND NOT u.is_resigned ORDER BY ud.user_id LIMIT ?4"
        ),
        params![tenant.0, dept.0, key_floor(after), sql_limit(limit)],
        "list department members",
    )?;
    assemble(rows)
}

/// The page query of `list_users`.
const LIST_USERS: &str = user_select!(
    "WHERE +u.tenant_id = ?1 AND NOT u.is_resigned AND u.id > ?2 \
     ORDER BY u.id LIMIT ?3"
);

/// A page of a tenant's active users by key (exports, migration 0007).
pub(crate) fn list_users(
    conn: &mut Connection,
    tenant: TenantId,
    after: Option<UserKey>,
    limit: usize,
) -> Result<Vec<User>, StoreError> {
    let tx = ReadSnapshot::begin(conn, "begin list users")?;
    let rows = query_rows(
        &tx,
        // `+u.tenant_id` keeps the planner off the indexes that lead with `tenant_id`
        // (`users_leader_idx`): without statistics it took one of them and sorted the whole
        // tenant for every page, so that walking a million users read them a thousand
        // times (a Huawei listing or an export took over three minutes). The key range
        // reads one page.
        LIST_USERS,
        params![tenant.0, key_floor(after), sql_limit(limit)],
        "list users",
    )?;
    assemble(rows)
}

/// Active users whose leader is `leader`, by key, through `users_leader_idx`.
pub(crate) fn users_led_by(
    conn: &mut Connection,
    tenant: TenantId,
    leader: &OpenId,
) -> Result<Vec<User>, StoreError> {
    let tx = ReadSnapshot::begin(conn, "begin read reports")?;
    let rows = query_rows(
        &tx,
        user_select!(
            "WHERE u.tenant_id = ?1 AND u.leader_open_id = ?2 AND NOT u.is_resigned \
             ORDER BY u.id"
        ),
        params![tenant.0, leader.as_str()],
        "list users by leader",
    )?;
    assemble(rows)
}

/// Active users whose dotted-line leaders include `leader`, by key: the users with any
/// dotted-line leader come from `users_dotted_idx`, the document's text narrows them, and
/// the decoded list decides.
pub(crate) fn users_with_dotted_leader(
    conn: &mut Connection,
    tenant: TenantId,
    leader: &OpenId,
) -> Result<Vec<User>, StoreError> {
    let tx = ReadSnapshot::begin(conn, "begin read dotted reports")?;
    let rows = query_rows(
        &tx,
        // The planner would rather walk the tenant through another index on `tenant_id`
        // (every user of a million); the partial index holds only users with dotted-line
        // leaders, and naming it makes a query that cannot use it an error, not a scan.
        concat!(
            "SELECT ",
            user_cols!(),
            " FROM users u INDEXED BY users_dotted_idx \
             WHERE u.tenant_id = ?1 AND instr(u.doc, '\"dotted_line_leaders\"') > 0 \
             AND instr(u.doc, ?2) > 0 AND NOT u.is_resigned ORDER BY u.id"
        ),
        params![tenant.0, format!("\"{}\"", leader.as_str())],
        "list users by dotted-line leader",
    )?;
    let mut users = assemble(rows)?;
    users.retain(|u| u.profile.dotted_line_leaders.contains(leader));
    Ok(users)
}

/// Rewrites every column, the document and the memberships of an existing user and records
/// its event, inside the caller's transaction. Returns the change of the tenant's active
/// count (-1, 0 or +1), which the caller applies once for the whole save.
fn save_user(
    conn: &Connection,
    tenant: TenantId,
    key: UserKey,
    row: &UserRow,
    read_version: Option<i64>,
    ctx: &ChangeCtx,
    tally: &mut SaveTally,
) -> Result<i64, StoreError> {
    let stored = conn
        .prepare_cached(user_select!("WHERE u.tenant_id = ?1 AND u.id = ?2"))
        .and_then(|mut s| {
            s.query_row(params![tenant.0, key.0], UserRowRead::read)
                .optional()
        })
        .context("load stored user")?
        .ok_or_else(|| {
            // The core only saves users it has just read, so a miss is a fault.
            StoreError::Backend(format!("save: no user {} in tenant {tenant}", key.0))
        })?;
    if read_version.is_some_and(|v| v != stored.updated_at) {
        return Err(StoreError::Stale);
    }
    let stored = stored.into_user()?;
    // A department the user joins may have been deleted since the core checked it; the
    // core then reads again and refuses the move with the department's own error.
    for m in &row.memberships {
        let joins = !stored
            .profile
            .departments
            .iter()
            .any(|old| old.department == m.department);
        if joins && !department_live(conn, tenant, m.department.0)? {
            return Err(StoreError::Stale);
        }
    }
    let new_leader = row.columns.leader_open_id.as_deref();
    let leader_changed = stored.profile.leader.as_ref().map(OpenId::as_str) != new_leader;
    let resigns = !stored.status.is_resigned && row.status.is_resigned;
    if resigns {
        tally
            .leader_checks
            .push(LeaderCheck::Resigned(row.open_id.clone()));
    } else if let Some(leader) = new_leader.filter(|_| leader_changed && !row.status.is_resigned) {
        tally.leader_checks.push(LeaderCheck::Leads {
            user: row.open_id.clone(),
            leader: leader.to_owned(),
        });
    }
    let (action, delta) = match (stored.status.is_resigned, row.status.is_resigned) {
        (false, true) => (ChangeAction::Deleted, -1),
        (true, false) => (ChangeAction::Resurrected, 1),
        _ => (ChangeAction::Updated, 0),
    };
    conn.prepare_cached(
        "UPDATE users SET open_id = ?3, union_id = ?4, user_id = ?5, user_id_fold = ?6, \
         email_fold = ?7, mobile = ?8, username_fold = ?9, employee_no = ?10, name = ?11, \
         leader_open_id = ?12, is_resigned = ?13, is_frozen = ?14, is_activated = ?15, \
         is_exited = ?16, is_unjoin = ?17, created_at = ?18, updated_at = ?19, \
         resigned_at = ?20, logout_at = ?21, doc = ?22, search_text = ?23, \
         memberships = ?24 WHERE tenant_id = ?1 AND id = ?2",
    )
    .and_then(|mut stmt| {
        let head: [&dyn rusqlite::ToSql; 2] = [&tenant.0, &key.0];
        stmt.execute(rusqlite::params_from_iter(
            head.into_iter().chain(row.values()),
        ))
    })
    .context("update user")?;
    conn.prepare_cached("DELETE FROM user_departments WHERE user_id = ?1")
        .and_then(|mut stmt| stmt.execute([key.0]))
        .context("clear user departments")?;
    {
        let mut insert = conn
            .prepare_cached(INSERT_MEMBERSHIP)
            .context("prepare insert user department")?;
        insert_memberships(&mut insert, tenant, key.0, &row.memberships)?;
    }
    tally
        .counts
        .add(&stored.profile.departments, !stored.status.is_resigned, -1);
    tally
        .counts
        .add(&row.memberships, !row.status.is_resigned, 1);
    let before = user_snapshot(&stored);
    events::record(
        &mut events::prepare(conn)?,
        ctx,
        &NewEvent {
            tenant,
            entity: EventEntity::User,
            entity_id: &row.open_id,
            action,
            at: row.updated_at,
            before: Some(&before),
            after: Some(&row.snapshot),
        },
    )?;
    Ok(delta)
}

/// What a save gathers while it writes users: member count changes, and the leader rules to
/// check once every row is written.
#[derive(Debug, Default)]
pub(crate) struct SaveTally {
    counts: MemberCounts,
    leader_checks: Vec<LeaderCheck>,
}

/// A leader rule a save re-checks once all its rows are written, because the core checked
/// it on an earlier read that a write committed since may have changed.
#[derive(Debug)]
pub(crate) enum LeaderCheck {
    /// `user` got `leader`, who must be active and must not report to `user`.
    Leads { user: String, leader: String },
    /// The user resigned: nobody active may still report to them, and no live department
    /// may still be led by them (a delete hands both over).
    Resigned(String),
}

/// `Stale` when a leader rule does not hold after the save's writes (the core reads again
/// and answers with the rule's error).
fn check_leader(tx: &Connection, tenant: TenantId, check: &LeaderCheck) -> Result<(), StoreError> {
    let broken: bool = match check {
        LeaderCheck::Leads { user, leader } => tx
            .prepare_cached(
                "WITH RECURSIVE up(oid, n) AS ( \
                     SELECT ?2, 0 \
                     UNION ALL \
                     SELECT u.leader_open_id, up.n + 1 FROM users u JOIN up \
                     ON u.tenant_id = ?1 AND u.open_id = up.oid \
                     WHERE up.oid <> ?3 AND up.n < 64) \
                 SELECT NOT EXISTS (SELECT 1 FROM users WHERE tenant_id = ?1 AND open_id = ?2 \
                                    AND NOT is_resigned) \
                     OR EXISTS (SELECT 1 FROM up WHERE oid = ?3)",
            )
            .and_then(|mut s| s.query_row(params![tenant.0, leader, user], |r| r.get(0)))
            .context("check a new leader")?,
        LeaderCheck::Resigned(user) => tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = ?1 AND leader_open_id = ?2 \
                                AND NOT is_resigned) \
                     OR EXISTS (SELECT 1 FROM departments WHERE tenant_id = ?1 \
                                AND leader_open_id = ?2 AND NOT is_deleted)",
            )
            .and_then(|mut s| s.query_row(params![tenant.0, user], |r| r.get(0)))
            .context("check a resigned user leads nobody")?,
    };
    if broken {
        return Err(StoreError::Stale);
    }
    Ok(())
}

/// A department to save with the `department_snapshot` of it as written.
pub(crate) type DeptSave = (Department, String);

/// Writes the users, then the departments, then the groups, each with its event, then moves
/// the tenant's active count by the net change of resigned flags, all in one transaction: any
/// error returns before the commit, and dropping the transaction rolls everything back.
pub(crate) fn save(
    conn: &mut Connection,
    tenant: TenantId,
    users: &[(UserKey, UserRow)],
    depts: &[DeptSave],
    groups: &[Group],
    read: &ReadVersions,
    ctx: &ChangeCtx,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin save")?;
    let mut delta: i64 = 0;
    let mut tally = SaveTally::default();
    let mut resigned_now = Vec::new();
    for (key, row) in users {
        let moved = save_user(&tx, tenant, *key, row, read.user(*key), ctx, &mut tally)?;
        if moved < 0 {
            resigned_now.push(row.open_id.as_str());
        }
        delta += moved;
    }
    let SaveTally {
        counts,
        leader_checks,
    } = tally;
    counts.write(&tx)?;
    for (dept, after) in depts {
        let expected = read.department(dept.key);
        departments::save_department(&tx, tenant, dept, after, expected, ctx)?;
    }
    for check in &leader_checks {
        check_leader(&tx, tenant, check)?;
    }
    // A user resigned by this save must be off every department: the core took it off the
    // departments it read, and one that named the user in a write committed since is
    // still here. Stale makes the core read them again and take it off that one too.
    for open_id in resigned_now {
        let named = departments::departments_led_by(
            &tx,
            tenant,
            &OpenId::from_trusted(open_id.to_owned()),
        )?;
        if !named.is_empty() {
            return Err(StoreError::Stale);
        }
    }
    if !groups.is_empty() {
        // A group has no update time of its own; its events are dated by the wall clock.
        let at = SystemClock.now_ms();
        for group in groups {
            groups::save_group(&tx, tenant, group, at, ctx)?;
        }
    }
    if delta > 0 {
        if let Some(room) = licence_room(&tx, tenant)? {
            if room < delta as u64 {
                return Err(StoreError::LicenceExceeded);
            }
        }
    }
    add_active_users(&tx, tenant, delta)?;
    tx.commit().context("commit save")
}

/// The note of a purge's events.
const PURGE_NOTE: &str = "purged after retention";

/// The resigned users a purge takes, oldest resignation first: a range of the partial index
/// `users_resigned_idx` (migration 0011), so that a purge tick reads only resigned users.
const PURGE_SELECT: &str = user_select!(
    "WHERE u.is_resigned AND u.resigned_at < ?1 ORDER BY u.resigned_at, u.id LIMIT ?2"
);

/// Deletes up to `limit` users (of any tenant) that resigned before `before`, each with a
/// `deleted` event by the system carrying its last snapshot, in one transaction. Their
/// memberships go by `ON DELETE CASCADE`; resigned users hold no seat and are not counted as
/// department members, so neither the active counts nor the member counts move. Returns how
/// many were deleted; fewer than `limit` means none are left.
pub(crate) fn purge_resigned(
    conn: &mut Connection,
    before: i64,
    limit: usize,
) -> Result<u64, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin purge resigned users")?;
    let rows = query_rows(
        &tx,
        PURGE_SELECT,
        params![before, sql_limit(limit)],
        "list resigned users to purge",
    )?;
    let users = assemble(rows)?;
    let ctx = ChangeCtx::of(&Change {
        actor: Actor::System,
        note: Some(PURGE_NOTE.to_owned()),
        completes: None,
    });
    // A purge is not a change of the entity, so it has no entity time to take; it happens now.
    let at = SystemClock.now_ms();
    {
        let mut insert_event = events::prepare(&tx)?;
        let mut delete = tx
            .prepare_cached("DELETE FROM users WHERE id = ?1")
            .context("prepare delete user")?;
        for user in &users {
            let before = user_snapshot(user);
            events::record(
                &mut insert_event,
                &ctx,
                &NewEvent {
                    tenant: user.tenant,
                    entity: EventEntity::User,
                    entity_id: user.open_id.as_str(),
                    action: ChangeAction::Deleted,
                    at,
                    before: Some(&before),
                    after: None,
                },
            )?;
            delete.execute([user.key.0]).context("delete user")?;
        }
    }
    tx.commit().context("commit purge resigned users")?;
    Ok(users.len() as u64)
}

/// Which probe values active users hold. Each value is one indexed point query (the
/// `NOT is_resigned` term lets SQLite use the partial unique indexes), all in one read
/// transaction so that the answer is one snapshot.
pub(crate) fn taken_values(
    conn: &mut Connection,
    tenant: TenantId,
    probe: &UniqueProbe,
) -> Result<TakenValues, StoreError> {
    let tx = ReadSnapshot::begin(conn, "begin probe")?;
    let mut taken = TakenValues::default();
    let checks = [
        (
            "SELECT 1 FROM users WHERE tenant_id = ?1 AND user_id_fold = ?2 AND NOT is_resigned",
            &probe.user_ids,
            &mut taken.user_ids,
        ),
        (
            "SELECT 1 FROM users WHERE tenant_id = ?1 AND email_fold = ?2 AND NOT is_resigned",
            &probe.emails,
            &mut taken.emails,
        ),
        (
            "SELECT 1 FROM users WHERE tenant_id = ?1 AND mobile = ?2 AND NOT is_resigned",
            &probe.mobiles,
            &mut taken.mobiles,
        ),
        (
            "SELECT 1 FROM users WHERE tenant_id = ?1 AND username_fold = ?2 AND NOT is_resigned",
            &probe.usernames,
            &mut taken.usernames,
        ),
        (
            "SELECT 1 FROM users WHERE tenant_id = ?1 AND employee_no = ?2 AND NOT is_resigned",
            &probe.employee_nos,
            &mut taken.employee_nos,
        ),
    ];
    for (sql, values, out) in checks {
        if values.is_empty() {
            continue;
        }
        let mut stmt = tx.prepare_cached(sql).context("prepare probe")?;
        for v in values {
            if !out.contains(v) && stmt.exists(params![tenant.0, v]).context("probe value")? {
                out.insert(v.clone());
            }
        }
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    /// A page of `list_users` is a range of the primary key: taken through an index on
    /// `tenant_id` and sorted, every page read the whole tenant.
    #[test]
    fn a_page_of_users_is_a_key_range() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::migrations().to_latest(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", super::LIST_USERS))
            .unwrap()
            .query_map(rusqlite::params![1, 0, 1000], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("; ");
        assert!(
            plan.contains("INTEGER PRIMARY KEY") && !plan.contains("TEMP B-TREE"),
            "{plan}"
        );
    }

    /// The probe runs once per value of every batch, so each of its queries must be an
    /// index lookup; the `NOT is_resigned` term is what lets SQLite pick the partial unique
    /// indexes for the columns that have no plain index.
    #[test]
    fn probe_queries_use_an_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::migrations().to_latest(&mut conn).unwrap();
        for column in [
            "user_id_fold",
            "email_fold",
            "mobile",
            "username_fold",
            "employee_no",
        ] {
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT 1 FROM users \
                 WHERE tenant_id = ?1 AND {column} = ?2 AND NOT is_resigned"
            );
            let plan: Vec<String> = conn
                .prepare(&sql)
                .unwrap()
                .query_map(["1", "x"], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join("; ");
            // Both key columns must be used, not just `tenant_id` of some other index.
            assert!(
                plan.contains("INDEX") && plan.contains(&format!("{column}=?")),
                "{column}: {plan}"
            );
        }
    }

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        // Numbered parameters may repeat (`?2` three times is one parameter).
        let args: Vec<i64> = vec![1; stmt.parameter_count()];
        stmt.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .join("; ")
    }

    /// The periodic purge runs on every server at every tick; at a million users a scan of
    /// the users table took seconds and filled the writer's cache.
    #[test]
    fn purge_reads_only_resigned_users() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::migrations().to_latest(&mut conn).unwrap();
        let purge = plan(&conn, super::PURGE_SELECT);
        assert!(
            purge.contains("users_resigned_idx") && !purge.contains("TEMP B-TREE"),
            "{purge}"
        );
    }

    /// Department pages walk `user_departments_dept_idx` from the cursor and need no sort;
    /// leader lookups, per-tenant event reads and group owner lookups use their indexes.
    #[test]
    fn list_queries_use_their_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::migrations().to_latest(&mut conn).unwrap();
        let members = plan(
            &conn,
            user_select!(
                "JOIN user_departments ud ON ud.user_id = u.id \
                 WHERE ud.department_id = ?2 AND ud.user_id > ?3 AND u.tenant_id = ?1 \
                 AND NOT u.is_resigned ORDER BY ud.user_id LIMIT ?4"
            ),
        );
        assert!(
            members.contains("user_departments_dept_idx") && !members.contains("TEMP B-TREE"),
            "{members}"
        );
        // The store's own statement: deputies and HRBPs are in the document, so it reads the
        // tenant's departments through an index on the tenant, never the whole table.
        let leaders = plan(&conn, crate::departments::DEPARTMENTS_LED_BY);
        assert!(
            leaders.contains("SEARCH departments USING INDEX")
                && leaders.contains("(tenant_id=?")
                && !leaders.contains("SCAN departments"),
            "{leaders}"
        );
        let events = plan(
            &conn,
            "SELECT id FROM change_events WHERE tenant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        );
        assert!(
            events.contains("change_events_tenant_idx") && !events.contains("TEMP B-TREE"),
            "{events}"
        );
        let owned = plan(
            &conn,
            "SELECT id FROM groups WHERE tenant_id = ?1 AND owner_open_id = ?2 \
             ORDER BY created_at, id",
        );
        assert!(owned.contains("groups_owner_idx"), "{owned}");
    }

    #[test]
    fn search_text_lowercases_each_name_into_a_json_array() {
        let p = roster_core::UserProfile {
            name: "Émile ZOLA".into(),
            en_name: None,
            nickname: Some("Ωmega".into()),
            ..roster_core::UserProfile::default()
        };
        assert_eq!(
            super::search_text(&p),
            "[\"émile zola\",\"ωmega\",\"\u{e000}zola\"]"
        );
    }
}
