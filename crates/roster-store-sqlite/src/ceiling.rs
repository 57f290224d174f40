//! The storage ceiling that `roster-bench` compares imports with: the same users written by
//! plain prepared inserts into Roster's own schema and indexes, in one transaction, with the
//! connection set up as the store's writer is. Nothing else happens (no validation, no
//! licence check, no change events, no task bookkeeping), so this is the most SQLite can take
//! of these rows on this machine, and Roster's import rate is reported as a fraction of it.

use std::path::Path;

use roster_core::{StoreError, TenantId, User};
use rusqlite::{Connection, TransactionBehavior};

use crate::errors::SqlContext;
use crate::users::{insert_rows_plain, UserRow};

/// Users encoded into rows ahead of time, so the timed part is the inserts alone.
pub struct Rows(Vec<UserRow>);

/// Encodes the users as the store would.
pub fn encode(users: &[User]) -> Rows {
    Rows(users.iter().map(UserRow::of).collect())
}

/// Inserts the rows into the (already migrated) database at `path`, in one transaction.
pub fn insert_plain(path: &Path, tenant: TenantId, rows: &Rows) -> Result<(), StoreError> {
    let mut conn = Connection::open(path).context("open database file")?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .context("set synchronous mode")?;
    conn.pragma_update(None, "foreign_keys", true)
        .context("enable foreign keys")?;
    crate::configure(&conn, crate::WRITER_CACHE_KIB).context("configure connection")?;
    conn.pragma_update(None, "wal_autocheckpoint", crate::WAL_AUTOCHECKPOINT_PAGES)
        .context("set WAL checkpoint interval")?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin")?;
    insert_rows_plain(&tx, tenant, &rows.0)?;
    tx.commit().context("commit")?;
    Ok(())
}
