//! Reader connections for point lookups that keep their read snapshot from one lookup to
//! the next while nothing is written.
//!
//! Beginning and ending a read transaction in WAL mode takes and releases a read lock in
//! the shared-memory index (an `fcntl` on the `-shm` file, a process-wide mutex, and
//! futex wake-ups between the threads that take turns at that lock). On GET-user at a
//! million users that was 11-14% of the server's CPU, more than the lookup itself. A point
//! reader here begins a snapshot once and keeps it while it stays valid:
//!
//! - **No write of this store since it began.** [`PointReaders::wrote`] runs after every
//!   write of the store's writer, before the write returns to its caller: it counts the
//!   write and ends the snapshots of the idle readers. A reader in use at that moment sees
//!   the count changed when it is handed back and ends its own. So a read that starts after
//!   a write has returned always sees that write.
//! - **Younger than [`MAX_REUSE_AGE`].** Another process writing the same file (`roster
//!   import --database-url sqlite://…` beside a running server) is not counted; its commits
//!   become visible to point lookups within that bound, as if they had been made that much
//!   later.
//!
//! A snapshot held by an idle reader would also keep a checkpoint from copying later
//! commits into the database file. Writes of this store end them at once; a sweeper thread
//! ends any left idle for [`SWEEP_AGE`] (after another process's writes, say), and sleeps
//! without a timeout while no snapshot is open.
//!
//! When every point reader is busy (more threads than async workers are reading), the
//! lookup uses the general reader pool with a snapshot of its own instead of waiting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::errors::SqlContext;
use roster_core::StoreError;

/// How long a point reader may keep using one snapshot. Under load a reader serves several
/// lookups per millisecond, so this keeps nearly all of the saving, while another process's
/// commits reach point lookups within it.
pub(crate) const MAX_REUSE_AGE: Duration = Duration::from_millis(2);

/// How long an idle reader may hold a snapshot before the sweeper ends it.
pub(crate) const SWEEP_AGE: Duration = Duration::from_millis(100);

/// A snapshot a reader holds: when it began and how many writes the store had made then.
#[derive(Clone, Copy)]
struct Held {
    began: Instant,
    writes: u64,
}

struct Reader {
    conn: Connection,
    held: Option<Held>,
}

impl Reader {
    /// Ends the held snapshot, if any.
    fn end(&mut self) {
        if self.held.take().is_some() {
            crate::snapshot::end_read(&self.conn);
        }
    }
}

struct Idle {
    readers: Vec<Reader>,
    /// The sweeper is waiting without a timeout for a snapshot to be handed back.
    sweeper_parked: bool,
    closed: bool,
}

/// The point readers of one store.
pub(crate) struct PointReaders {
    idle: Mutex<Idle>,
    /// Wakes the sweeper (a snapshot was handed back while it was parked, or the store
    /// closed).
    wake: Condvar,
    /// Writes the store has made; a snapshot begun before the latest is not reused.
    writes: AtomicU64,
    max_reuse_age: Duration,
    sweep_age: Duration,
}

impl PointReaders {
    /// Point readers over `conns` (each configured as a reader, in autocommit), with the
    /// given ages (the constants above, shorter in tests), and their sweeper thread.
    pub(crate) fn start(
        conns: Vec<Connection>,
        max_reuse_age: Duration,
        sweep_age: Duration,
    ) -> Result<Arc<Self>, StoreError> {
        let readers = conns
            .into_iter()
            .map(|conn| Reader { conn, held: None })
            .collect();
        let this = Arc::new(Self {
            idle: Mutex::new(Idle {
                readers,
                sweeper_parked: false,
                closed: false,
            }),
            wake: Condvar::new(),
            writes: AtomicU64::new(0),
            max_reuse_age,
            sweep_age,
        });
        let sweeper = Arc::clone(&this);
        std::thread::Builder::new()
            .name("sqlite-sweeper".into())
            .spawn(move || sweeper.sweep())
            .map_err(|e| StoreError::Backend(format!("start the snapshot sweeper: {e}")))?;
        Ok(this)
    }

    fn lock(&self) -> MutexGuard<'_, Idle> {
        // A panic while the list was locked cannot leave it inconsistent (each operation
        // on it is a push, a pop or a flag), so a poisoned lock is used as it is.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on a point reader inside a snapshot (a kept one if still valid), or hands
    /// `f` back without running it when every point reader is busy.
    pub(crate) fn run<T, F>(&self, f: F) -> Result<Result<T, StoreError>, F>
    where
        F: FnOnce(&mut Connection) -> Result<T, StoreError>,
    {
        let Some(reader) = self.lock().readers.pop() else {
            return Err(f);
        };
        let mut out = Out {
            readers: self,
            reader: Some(reader),
            failed: true,
        };
        let Some(reader) = out.reader.as_mut() else {
            return Err(f);
        };
        // The count is read before the snapshot begins, so that the snapshot is at least
        // as new as the writes it is tagged with.
        let writes = self.writes.load(Ordering::SeqCst);
        if reader
            .held
            .is_some_and(|h| h.writes != writes || h.began.elapsed() > self.max_reuse_age)
        {
            reader.end();
        }
        if reader.held.is_none() {
            let begun = reader
                .conn
                .prepare_cached("BEGIN")
                .and_then(|mut s| s.execute([]))
                .context("begin point read");
            if let Err(e) = begun {
                return Ok(Err(e));
            }
            reader.held = Some(Held {
                began: Instant::now(),
                writes,
            });
        }
        let result = f(&mut reader.conn);
        out.failed = result.is_err();
        Ok(result)
    }

    /// Counts a write of the store and ends the idle readers' snapshots. Called after every
    /// write, before it returns to its caller.
    pub(crate) fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut idle = self.lock();
        for reader in &mut idle.readers {
            reader.end();
        }
    }

    /// Stops the sweeper; the connections close when the last reference goes.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }

    /// The sweeper thread: ends snapshots left idle for `sweep_age`.
    fn sweep(&self) {
        let mut idle = self.lock();
        loop {
            if idle.closed {
                return;
            }
            if !idle.readers.iter().any(|r| r.held.is_some()) {
                idle.sweeper_parked = true;
                idle = self
                    .wake
                    .wait(idle)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                idle.sweeper_parked = false;
                continue;
            }
            idle = self
                .wake
                .wait_timeout(idle, self.sweep_age)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
            for reader in &mut idle.readers {
                if reader
                    .held
                    .is_some_and(|h| h.began.elapsed() >= self.sweep_age)
                {
                    reader.end();
                }
            }
        }
    }

    /// Whether every idle reader is outside a transaction (for tests).
    #[cfg(test)]
    pub(crate) fn all_idle_in_autocommit(&self) -> bool {
        self.lock()
            .readers
            .iter()
            .all(|r| r.held.is_none() && r.conn.is_autocommit())
    }
}

/// Hands a reader back when a lookup ends, also when it failed or panicked. The snapshot is
/// ended first if the lookup failed (it may have left the transaction in any state) or if
/// the store wrote since the snapshot began; the check is made under the lock, so that a
/// write counted after it finds this reader in the idle list and ends the snapshot itself.
struct Out<'a> {
    readers: &'a PointReaders,
    reader: Option<Reader>,
    failed: bool,
}

impl Drop for Out<'_> {
    fn drop(&mut self) {
        let Some(mut reader) = self.reader.take() else {
            return;
        };
        let mut idle = self.readers.lock();
        let writes = self.readers.writes.load(Ordering::SeqCst);
        if self.failed
            || std::thread::panicking()
            || reader.held.is_some_and(|h| h.writes != writes)
            || (reader.held.is_none() && !reader.conn.is_autocommit())
        {
            reader.held.get_or_insert(Held {
                began: Instant::now(),
                writes,
            });
            reader.end();
        }
        let wake = reader.held.is_some() && idle.sweeper_parked;
        idle.readers.push(reader);
        drop(idle);
        if wake {
            self.readers.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAL database with table `t` (`sql` fills it), its writer, and point readers over
    /// `readers` connections with the given ages.
    fn setup(
        dir: &tempfile::TempDir,
        sql: &str,
        readers: usize,
        reuse: Duration,
        sweep: Duration,
    ) -> (Connection, Arc<PointReaders>) {
        let path = dir.path().join("t.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER); {sql}"
            ))
            .unwrap();
        let conns = (0..readers)
            .map(|_| Connection::open(&path).unwrap())
            .collect();
        (writer, PointReaders::start(conns, reuse, sweep).unwrap())
    }

    /// Two readers, ages too long to matter, `t` holding 1.
    fn setup_one(dir: &tempfile::TempDir) -> (Connection, Arc<PointReaders>) {
        let long = Duration::from_mins(1);
        setup(dir, "INSERT INTO t VALUES (1);", 2, long, long)
    }

    fn read_x(pr: &PointReaders) -> i64 {
        pr.run(|c| {
            c.query_row("SELECT max(x) FROM t", [], |r| r.get(0))
                .context("read")
        })
        .ok()
        .unwrap()
        .unwrap()
    }

    #[test]
    fn a_kept_snapshot_never_hides_a_write_the_store_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, pr) = setup_one(&dir);
        assert_eq!(read_x(&pr), 1);
        // The snapshot is kept: a write the store did not count is not seen yet...
        writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
        assert!(!pr.all_idle_in_autocommit());
        assert_eq!(read_x(&pr), 1);
        // ...and once counted, the very next read sees it.
        pr.wrote();
        assert!(pr.all_idle_in_autocommit());
        assert_eq!(read_x(&pr), 2);
        pr.close();
    }

    #[test]
    fn a_write_counted_during_a_read_ends_that_readers_snapshot_when_handed_back() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, pr) = setup_one(&dir);
        let seen = pr
            .run(|c| {
                let before: i64 = c
                    .query_row("SELECT max(x) FROM t", [], |r| r.get(0))
                    .context("read")?;
                writer
                    .execute("INSERT INTO t VALUES (3)", [])
                    .context("write")?;
                pr.wrote();
                Ok(before)
            })
            .ok()
            .unwrap()
            .unwrap();
        assert_eq!(seen, 1);
        assert!(pr.all_idle_in_autocommit());
        assert_eq!(read_x(&pr), 3);
        pr.close();
    }

    #[test]
    fn old_snapshots_are_not_reused_and_idle_ones_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, pr) = setup(
            &dir,
            "INSERT INTO t VALUES (1);",
            1,
            Duration::from_millis(1),
            Duration::from_millis(50),
        );
        assert_eq!(read_x(&pr), 1);
        // Another process's write: seen once the snapshot is older than the reuse age.
        writer.execute("INSERT INTO t VALUES (4)", []).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(read_x(&pr), 4);
        assert!(!pr.all_idle_in_autocommit());
        // Left idle, the snapshot is ended by the sweeper, so a checkpoint can copy and
        // truncate the whole WAL.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !pr.all_idle_in_autocommit() {
            assert!(
                Instant::now() < deadline,
                "the sweeper never ended the snapshot"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        writer.execute("INSERT INTO t VALUES (5)", []).unwrap();
        let (busy, _, _): (i64, i64, i64) = writer
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(busy, 0);
        pr.close();
    }

    #[test]
    fn a_failed_read_ends_its_snapshot_and_busy_readers_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let long = Duration::from_mins(1);
        let (_writer, pr) = setup(&dir, "", 1, long, long);
        let failed = pr
            .run(|c| {
                c.query_row("SELECT nope FROM t", [], |r| r.get::<_, i64>(0))
                    .context("read")
            })
            .ok()
            .unwrap();
        assert!(failed.is_err());
        assert!(pr.all_idle_in_autocommit());
        // The only reader is in use inside this closure, so a nested lookup is told so.
        let nested = pr.run(|_| Ok(pr.run(|_| Ok(())).is_err())).ok().unwrap();
        assert!(nested.unwrap());
        pr.close();
    }
}
