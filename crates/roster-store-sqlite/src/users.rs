//! Users and their department memberships.
//!
//! A user is one `users` row (indexed columns derived by `roster_store_common::UserColumns`
//! plus the profile document) and one `user_departments` row per membership, kept in the
//! profile's order through `position`.

use roster_core::values::Email;
use roster_core::{
    DeptKey, Membership, OpenId, StoreError, TakenValues, TenantId, UnionId, UniqueProbe, User,
    UserId, UserKey, UserLookup, UserStatus,
};
use roster_store_common::{decode_profile, encode_profile, UserColumns};
use rusqlite::{params, CachedStatement, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::errors::{map_sqlite, SqlContext};

/// Everything written for one user, encoded ahead of the blocking task.
pub(crate) struct UserRow {
    open_id: String,
    union_id: String,
    user_id: String,
    columns: UserColumns,
    name: String,
    status: UserStatus,
    created_at: i64,
    updated_at: i64,
    resigned_at: Option<i64>,
    logout_at: Option<i64>,
    doc: String,
    memberships: Vec<Membership>,
}

impl UserRow {
    pub(crate) fn of(user: &User) -> Self {
        Self {
            open_id: user.open_id.as_str().to_owned(),
            union_id: user.union_id.as_str().to_owned(),
            user_id: user.user_id.as_str().to_owned(),
            columns: UserColumns::of(user),
            name: user.profile.name.clone(),
            status: user.status,
            created_at: user.created_at,
            updated_at: user.updated_at,
            resigned_at: user.resigned_at,
            logout_at: user.logout_at,
            doc: encode_profile(&user.profile),
            memberships: user.profile.departments.clone(),
        }
    }
}

const INSERT_USER: &str = "INSERT INTO users (tenant_id, open_id, union_id, user_id, \
    user_id_fold, email_fold, mobile, username_fold, employee_no, name, leader_open_id, \
    is_resigned, is_frozen, is_activated, is_exited, is_unjoin, created_at, updated_at, \
    resigned_at, logout_at, doc) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
    ?19, ?20, ?21)";

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

/// Inserts a batch in one transaction.
///
/// Rows do not need a savepoint each: SQLite undoes a statement that violates a constraint
/// and leaves the transaction open, and the `users` insert is the only statement of a row
/// that can be refused (a duplicate). A failing membership insert is not a refusal but a
/// fault (a department that vanished), which aborts the whole call, so there is never half
/// a row to undo. This keeps the hot path at one statement per row plus one per membership.
pub(crate) fn insert_users(
    conn: &mut Connection,
    tenant: TenantId,
    rows: &[UserRow],
    atomic: bool,
) -> Result<Vec<Result<UserKey, StoreError>>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin insert users")?;
    let mut room = licence_room(&tx, tenant)?;
    let mut added: i64 = 0;
    let mut results = Vec::with_capacity(rows.len());
    {
        let mut insert_user = tx
            .prepare_cached(INSERT_USER)
            .context("prepare insert user")?;
        let mut insert_membership = tx
            .prepare_cached(INSERT_MEMBERSHIP)
            .context("prepare insert user department")?;
        for row in rows {
            let active = !row.status.is_resigned;
            if active && room == Some(0) {
                results.push(Err(StoreError::LicenceExceeded));
                continue;
            }
            let c = &row.columns;
            let s = &row.status;
            let inserted = insert_user.insert(params![
                tenant.0,
                row.open_id,
                row.union_id,
                row.user_id,
                c.user_id_fold,
                c.email_fold,
                c.mobile,
                c.username_fold,
                c.employee_no,
                row.name,
                c.leader_open_id,
                s.is_resigned,
                s.is_frozen,
                s.is_activated,
                s.is_exited,
                s.is_unjoin,
                row.created_at,
                row.updated_at,
                row.resigned_at,
                row.logout_at,
                row.doc,
            ]);
            match inserted {
                Ok(id) => {
                    insert_memberships(&mut insert_membership, tenant, id, &row.memberships)?;
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
    if atomic && results.iter().any(Result::is_err) {
        // Dropping the transaction rolls it back: nothing of the batch is written.
        drop(tx);
        tracing::debug!("atomic batch refused; rolled back");
        return Ok(results);
    }
    add_active_users(&tx, tenant, added)?;
    tx.commit().context("commit insert users")?;
    Ok(results)
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
}

/// The select list matching `UserRowRead::read`.
macro_rules! user_select {
    ($($rest:expr),+) => {
        concat!(
            "SELECT id, tenant_id, open_id, union_id, user_id, is_resigned, is_frozen, \
             is_activated, is_exited, is_unjoin, created_at, updated_at, resigned_at, \
             logout_at, doc FROM users ",
            $($rest),+
        )
    };
}

/// Among users sharing a changeable value, the active one, else the most recently resigned
/// (SQLite sorts NULL last in descending order, so a resigned row without a time comes
/// after those with one).
macro_rules! prefer_active {
    ($where:literal) => {
        user_select!(
            $where,
            " ORDER BY is_resigned, resigned_at DESC, id DESC LIMIT 1"
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
        })
    }

    fn into_user(self, departments: Vec<Membership>) -> Result<User, StoreError> {
        let mut profile = decode_profile(&self.doc)?;
        profile.departments = departments;
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

fn memberships(conn: &Connection, user: i64) -> Result<Vec<Membership>, StoreError> {
    conn.prepare_cached(
        "SELECT department_id, user_order, department_order, is_primary \
         FROM user_departments WHERE user_id = ?1 ORDER BY position",
    )
    .and_then(|mut s| {
        s.query_map([user], |r| {
            Ok(Membership {
                department: DeptKey(r.get(0)?),
                user_order: r.get(1)?,
                department_order: r.get(2)?,
                is_primary: r.get(3)?,
            })
        })?
        .collect()
    })
    .context("load user departments")
}

pub(crate) fn get_user(
    conn: &mut Connection,
    tenant: TenantId,
    lookup: &UserLookup,
) -> Result<Option<User>, StoreError> {
    // One read transaction, so that the row and its memberships come from one snapshot.
    let tx = conn.transaction().context("begin read user")?;
    let t = tenant.0;
    let row = match lookup {
        UserLookup::Key(key) => tx
            .prepare_cached(user_select!("WHERE tenant_id = ?1 AND id = ?2"))
            .and_then(|mut s| s.query_row(params![t, key.0], UserRowRead::read).optional()),
        UserLookup::OpenId(open) => tx
            .prepare_cached(user_select!("WHERE tenant_id = ?1 AND open_id = ?2"))
            .and_then(|mut s| s.query_row(params![t, open], UserRowRead::read).optional()),
        UserLookup::UnionId(union) => tx
            .prepare_cached(user_select!("WHERE tenant_id = ?1 AND union_id = ?2"))
            .and_then(|mut s| s.query_row(params![t, union], UserRowRead::read).optional()),
        UserLookup::UserId(id) => {
            let folded = UserId::from_trusted(id.clone()).folded();
            tx.prepare_cached(prefer_active!("WHERE tenant_id = ?1 AND user_id_fold = ?2"))
                .and_then(|mut s| {
                    s.query_row(params![t, folded], UserRowRead::read)
                        .optional()
                })
        }
        UserLookup::Email(email) => {
            let folded = Email::from_trusted(email.clone()).folded();
            tx.prepare_cached(prefer_active!("WHERE tenant_id = ?1 AND email_fold = ?2"))
                .and_then(|mut s| {
                    s.query_row(params![t, folded], UserRowRead::read)
                        .optional()
                })
        }
        UserLookup::Mobile(mobile) => tx
            .prepare_cached(prefer_active!("WHERE tenant_id = ?1 AND mobile = ?2"))
            .and_then(|mut s| {
                s.query_row(params![t, mobile], UserRowRead::read)
                    .optional()
            }),
    }
    .context("load user row")?;
    let Some(row) = row else {
        return Ok(None);
    };
    let departments = memberships(&tx, row.id)?;
    row.into_user(departments).map(Some)
}

/// Rewrites every column, the document and the memberships of an existing user, and moves
/// the tenant's active count when the resigned flag changes.
pub(crate) fn update_user(
    conn: &mut Connection,
    tenant: TenantId,
    key: UserKey,
    row: &UserRow,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin update user")?;
    let was_resigned: bool = tx
        .prepare_cached("SELECT is_resigned FROM users WHERE tenant_id = ?1 AND id = ?2")
        .and_then(|mut s| {
            s.query_row(params![tenant.0, key.0], |r| r.get(0))
                .optional()
        })
        .context("load user state")?
        .ok_or_else(|| {
            // The core only updates users it has just read, so a miss is a fault.
            StoreError::Backend(format!("update user: no user {} in tenant {tenant}", key.0))
        })?;
    let delta: i64 = match (was_resigned, row.status.is_resigned) {
        (true, false) => 1,
        (false, true) => -1,
        _ => 0,
    };
    if delta > 0 && licence_room(&tx, tenant)? == Some(0) {
        return Err(StoreError::LicenceExceeded);
    }
    let c = &row.columns;
    let s = &row.status;
    tx.prepare_cached(
        "UPDATE users SET open_id = ?3, union_id = ?4, user_id = ?5, user_id_fold = ?6, \
         email_fold = ?7, mobile = ?8, username_fold = ?9, employee_no = ?10, name = ?11, \
         leader_open_id = ?12, is_resigned = ?13, is_frozen = ?14, is_activated = ?15, \
         is_exited = ?16, is_unjoin = ?17, created_at = ?18, updated_at = ?19, \
         resigned_at = ?20, logout_at = ?21, doc = ?22 WHERE tenant_id = ?1 AND id = ?2",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            tenant.0,
            key.0,
            row.open_id,
            row.union_id,
            row.user_id,
            c.user_id_fold,
            c.email_fold,
            c.mobile,
            c.username_fold,
            c.employee_no,
            row.name,
            c.leader_open_id,
            s.is_resigned,
            s.is_frozen,
            s.is_activated,
            s.is_exited,
            s.is_unjoin,
            row.created_at,
            row.updated_at,
            row.resigned_at,
            row.logout_at,
            row.doc,
        ])
    })
    .context("update user")?;
    tx.prepare_cached("DELETE FROM user_departments WHERE user_id = ?1")
        .and_then(|mut stmt| stmt.execute([key.0]))
        .context("clear user departments")?;
    {
        let mut insert = tx
            .prepare_cached(INSERT_MEMBERSHIP)
            .context("prepare insert user department")?;
        insert_memberships(&mut insert, tenant, key.0, &row.memberships)?;
    }
    add_active_users(&tx, tenant, delta)?;
    tx.commit().context("commit update user")
}

/// Which probe values active users hold. Each value is one indexed point query (the
/// `NOT is_resigned` term lets SQLite use the partial unique indexes), all in one read
/// transaction so that the answer is one snapshot.
pub(crate) fn taken_values(
    conn: &mut Connection,
    tenant: TenantId,
    probe: &UniqueProbe,
) -> Result<TakenValues, StoreError> {
    let tx = conn.transaction().context("begin probe")?;
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
}
