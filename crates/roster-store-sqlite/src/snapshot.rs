//! Read transactions begun and ended by cached statements.
//!
//! rusqlite's `Transaction` sends `BEGIN` and `ROLLBACK` through `execute_batch`, which
//! parses them anew every time; on GET-user at a million users that parsing was about 4%
//! of the server's CPU. A read transaction needs no more than a snapshot, so these are two
//! prepared statements from the connection's cache.

use std::ops::Deref;

use rusqlite::Connection;

use crate::errors::SqlContext;
use roster_core::StoreError;

/// One read snapshot on a connection, ended (rolled back: it wrote nothing) when dropped,
/// also when a read failed or a panic unwinds, so that a pooled reader never goes back to
/// the pool holding a snapshot that would keep the WAL from being checkpointed.
pub(crate) struct ReadSnapshot<'c> {
    conn: &'c Connection,
    /// Whether this snapshot began here (and so ends here); a point reader's kept snapshot
    /// (`point_readers`) is used as it is and left to its reader.
    owned: bool,
}

impl<'c> ReadSnapshot<'c> {
    /// Begins a deferred transaction (the snapshot is taken at the first read), or uses the
    /// one a point reader already holds.
    pub(crate) fn begin(conn: &'c Connection, what: &str) -> Result<Self, StoreError> {
        if !conn.is_autocommit() {
            return Ok(Self { conn, owned: false });
        }
        conn.prepare_cached("BEGIN")
            .and_then(|mut s| s.execute([]))
            .context(what)?;
        Ok(Self { conn, owned: true })
    }
}

impl Deref for ReadSnapshot<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for ReadSnapshot<'_> {
    fn drop(&mut self) {
        if self.owned {
            end_read(self.conn);
        }
    }
}

/// Ends the read transaction open on `conn` (it wrote nothing, so a rollback) with the
/// cached statement. Should that fail (it only can if the transaction is already gone),
/// the connection is made sure to be back in autocommit anyway.
pub(crate) fn end_read(conn: &Connection) {
    let ended = conn
        .prepare_cached("ROLLBACK")
        .and_then(|mut s| s.execute([]));
    if ended.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_inside_a_kept_one_leaves_it_open() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("BEGIN").unwrap();
        {
            let snap = ReadSnapshot::begin(&conn, "begin").unwrap();
            assert!(!snap.is_autocommit());
        }
        assert!(!conn.is_autocommit());
    }

    #[test]
    fn a_snapshot_ends_when_dropped_even_after_a_failed_read() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        {
            let snap = ReadSnapshot::begin(&conn, "begin").unwrap();
            assert!(!snap.is_autocommit());
            assert!(snap.prepare("SELECT nope FROM t").is_err());
        }
        assert!(conn.is_autocommit());
        // And the cached statements work again for the next snapshot.
        let snap = ReadSnapshot::begin(&conn, "begin").unwrap();
        let n: i64 = snap
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    /// The reader hot path relies on the build options in `.cargo/config.toml`: without them
    /// every page-cache access and allocation of every connection takes a process-wide
    /// mutex.
    #[test]
    fn sqlite_is_built_without_process_wide_hot_locks() {
        let conn = Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }
}
