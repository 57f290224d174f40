//! roster-store-sqlite: the `roster_core::Store` port on SQLite, Roster's default database.
//!
//! It knows SQL, the SQLite file format and the shared document encoding of
//! `roster-store-common`; it must not know HTTP, any vendor's JSON or the directory's rules
//! (those live in `roster-core`, which calls this crate only through the `Store` trait).
//!
//! Concurrency model: SQLite admits one writer at a time, so every write goes through one
//! dedicated connection behind a mutex. Serialising writers in-process means they queue on
//! the mutex instead of spinning on `SQLITE_BUSY`. Reads use a pool of separate
//! `query_only` connections, which in WAL mode run alongside the writer on a committed
//! snapshot. SQLite calls block, so they run on tokio's blocking pool, except point lookups
//! (one row by a unique key), which take tens of microseconds and run right on the async
//! worker, on point readers that keep their snapshot while nothing is written
//! (`point_readers.rs`).
//!
//! Files mirror `roster-store-postgres`: `tenants.rs` (tenants, apps, tokens, JSAPI
//! tickets), `departments.rs`, `users.rs` (users and the multi-entity `save`), `groups.rs`,
//! `events.rs` (the change-event log), `idempotency.rs`, and `errors.rs` for the error
//! mapping.

mod access_keys;
mod accounts;
mod bi;
pub mod ceiling;
mod departments;
mod errors;
mod events;
mod groups;
mod idempotency;
mod imports;
mod outbox;
mod point_readers;
mod search;
mod snapshot;
mod tasks;
mod tenants;
mod users;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use r2d2_sqlite::SqliteConnectionManager;
use roster_core::search::{SearchCursor, SearchQuery};
use roster_core::{
    App, AppId, Change, ChangeEvent, Department, DeptKey, DeptLookup, Group, IdempotencyClaim,
    IdempotencyKey, NewTenant, OpenId, ReadVersions, Store, StoreError, TakenValues, Tenant,
    TenantId, TokenRecord, UniqueProbe, User, UserKey, UserLookup,
};
use roster_store_common::{decode_profile, department_snapshot};
use rusqlite::{params, Connection, OpenFlags, Transaction};
use rusqlite_migration::{HookResult, Migrations, M};
use tracing::{instrument, Span};

use crate::errors::SqlContext;
use crate::events::ChangeCtx;

/// The schema, applied in order at open. A migration that has shipped is never edited; a
/// change is a new file (and, where SQL alone cannot do it, a hook here).
pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../migrations/0001_init.sql")),
        M::up_with_hook(
            include_str!("../migrations/0002_contact_v3.sql"),
            refold_search_text,
        ),
        M::up(include_str!("../migrations/0003_group_owner.sql")),
        M::up(include_str!("../migrations/0004_tasks.sql")),
        M::up(include_str!("../migrations/0005_activation_index.sql")),
        M::up_with_hook(
            include_str!("../migrations/0006_search.sql"),
            search::backfill,
        ),
        M::up(include_str!("../migrations/0007_imports.sql")),
        M::up(include_str!("../migrations/0008_access_keys.sql")),
        M::up(include_str!("../migrations/0009_quickbi.sql")),
        M::up(include_str!("../migrations/0010_fts_hashsize.sql")),
        M::up(include_str!("../migrations/0011_resigned_index.sql")),
        M::up(include_str!("../migrations/0012_fts_vocab.sql")),
        M::up(include_str!(
            "../migrations/0013_department_member_count.sql"
        )),
        M::up(include_str!(
            "../migrations/0014_memberships_without_rowid.sql"
        )),
        M::up_with_hook(
            include_str!("../migrations/0015_search_terms_reindex.sql"),
            search::reindex_non_ascii,
        ),
        M::up(include_str!("../migrations/0016_dotted_leaders_index.sql")),
        M::up(include_str!(
            "../migrations/0017_scrub_data_written_before_fixes.sql"
        )),
        M::up(include_str!(
            "../migrations/0018_memberships_in_user_row.sql"
        )),
    ])
}

/// Completes the `search_text` backfill of migration 0002. SQLite's `lower()` folds ASCII
/// only, so rows whose names hold other characters (`Émile`, `Ωmega`) are recomputed with the
/// same Unicode lower-casing that every write uses. Such rows are found by their text having
/// fewer characters than bytes.
fn refold_search_text(tx: &Transaction<'_>) -> HookResult {
    let rows: Vec<(i64, String)> = tx
        .prepare(
            "SELECT id, doc FROM users \
             WHERE length(search_text) <> length(CAST(search_text AS BLOB))",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = tx.prepare("UPDATE users SET search_text = ?2 WHERE id = ?1")?;
    for (id, doc) in rows {
        // A document that does not decode keeps the SQL backfill rather than failing the
        // migration; reading that user fails loudly anyway.
        if let Ok(profile) = decode_profile(&doc) {
            update.execute(params![id, users::search_text(&profile)])?;
        }
    }
    Ok(())
}

/// Users purged per transaction, so that a large purge does not hold the writer for long.
const PURGE_CHUNK: usize = 500;

/// How long a connection waits for a lock held by another process before giving up. Within
/// this process writers never wait on SQLite's lock, because they queue on the mutex first.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Page cache of the writer, in KiB (a negative `cache_size` is KiB in SQLite). Bulk imports
/// touch a dozen user indexes and the search index per row at random places; at a million
/// users a 64 MiB cache missed on most of them (every miss a `pread`, hundreds of gigabytes
/// read per import), so the writer keeps 128 MiB (256 MiB imported about 6% faster but
/// peaked 240 MB higher). This is the largest part of the server's memory during an import;
/// the pages are only allocated as they are used, so a small directory stays small, and
/// `bulk_write_ended` hands them back when an import ends.
const WRITER_CACHE_KIB: i64 = 128 * 1024;
/// Page cache of each reader, in KiB. Readers are many and mostly do point lookups, and the
/// operating system's file cache (which is not the process's memory) holds the rest.
const READER_CACHE_KIB: i64 = 8 * 1024;
/// WAL pages after which a commit checkpoints (SQLite's default is 1 000). Bulk imports
/// commit thousands of pages per chunk; checkpointing every 4 MiB made the writer copy
/// pages back into the database file several times per chunk (7% of an import's time).
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: i64 = 16 * 1024;
/// Prepared statements kept per connection. The store has a few dozen distinct statements;
/// the default of 16 would evict hot ones.
const STATEMENT_CACHE: usize = 64;

/// Settings of the SQLite store that an operator may change (`roster.toml`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteOptions {
    /// Bytes of the database file that every reader connection memory-maps (`PRAGMA
    /// mmap_size`, which SQLite caps at its compile-time maximum of 2 GiB); 0 reads pages
    /// with `pread`. Mapped reads skip a system call and a copy per page that is not in the
    /// connection's own cache: GET user at a million users went from 3.2 reads and about
    /// 50 µs of server CPU to 0.2 reads and about 43 µs. The cost is that the mapped pages
    /// count in the process's resident memory (at a million users the whole 2.5 GB file
    /// once it has been read), although they are the kernel's file cache, shared and
    /// dropped under memory pressure like any other; and an I/O error on the file then
    /// kills the process (`SIGBUS`) instead of failing one statement. So it is off unless
    /// asked for. Writes still go through the writer connection, which does not map.
    pub mmap_bytes: u64,
}

/// The SQLite store. Cloning is cheap and shares the connections.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// A tokio mutex, so that writers waiting their turn wait as tasks, not as blocked
    /// threads of the blocking pool.
    writer: Arc<tokio::sync::Mutex<Connection>>,
    readers: r2d2::Pool<SqliteConnectionManager>,
    /// Readers for point lookups, keeping their snapshot while nothing is written.
    points: Arc<point_readers::PointReaders>,
    /// How common search trigrams are, remembered between searches.
    trigram_counts: Arc<search::TrigramCounts>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The sweeper thread holds the point readers too; it ends, and their connections
        // close, only when told.
        self.points.close();
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("readers", &self.inner.readers.max_size())
            .finish_non_exhaustive()
    }
}

/// Settings every connection needs, reader or writer.
fn configure(conn: &Connection, cache_kib: i64) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    // Sorts and temporary indexes of the few larger reads stay off the disk.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, applies pending migrations
    /// and starts the reader pool. The parent directory must exist. This blocks; call it
    /// at startup or from `spawn_blocking`.
    /// Whether the file at `path` already holds a Roster database (its `tenants` table),
    /// read without writing anything: commands that only read a directory must not turn
    /// some other SQLite file into one.
    pub fn is_roster_database(path: &Path) -> Result<bool, StoreError> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .context("open database file")?;
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'tenants'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .context("look for Roster's tables")
        .map(|n| n > 0)
    }

    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// [`Self::open`] with an operator's settings.
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        let mut writer = Connection::open(path).context("open database file")?;
        // SQLite opens a file it may not write read-only without a word; every write would
        // then fail while the server looked ready. Refuse to start instead, saying why.
        if writer
            .is_readonly(rusqlite::MAIN_DB)
            .context("check that the database is writable")?
        {
            return Err(StoreError::Backend(format!(
                "the database file {} is read-only: Roster must be able to write it (and \
                 its directory, for the -wal and -shm files)",
                path.display()
            )));
        }
        // WAL lets readers work on a snapshot while the writer commits, and makes a commit
        // one sequential append. It is a property of the file, so setting it once on the
        // writer covers the readers too; the pragma answers with the mode now in effect.
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .context("switch to WAL journal")?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "switch to WAL journal: SQLite kept journal mode {mode}"
            )));
        }
        // In WAL mode NORMAL loses at most the last commits on power loss, never
        // consistency, and saves an fsync per transaction.
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .context("set synchronous mode")?;
        writer
            .pragma_update(None, "foreign_keys", true)
            .context("enable foreign keys")?;
        configure(&writer, WRITER_CACHE_KIB).context("configure writer")?;
        writer
            .pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
            .context("set WAL checkpoint interval")?;
        migrations()
            .to_latest(&mut writer)
            .map_err(|e| StoreError::Backend(format!("apply migrations: {e}")))?;

        // Readers open the existing file without the right to create it, and are
        // `query_only` so that a write slipping onto the read path fails loudly instead of
        // racing the writer.
        let reader_flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mmap_bytes = i64::try_from(options.mmap_bytes).unwrap_or(i64::MAX);
        let reader_init = move |conn: &mut Connection| {
            configure(conn, READER_CACHE_KIB)?;
            if mmap_bytes > 0 {
                conn.pragma_update(None, "mmap_size", mmap_bytes)?;
            }
            conn.pragma_update(None, "query_only", true)
        };
        let manager = SqliteConnectionManager::file(path)
            .with_flags(reader_flags)
            .with_init(reader_init);
        // The async workers, one per core, run the point lookups.
        let cores = std::thread::available_parallelism().map_or(4, std::num::NonZeroUsize::get);
        // Twice the cores, at least 4: longer reads run on the blocking pool, and point
        // lookups fall back to this pool when every point reader is busy; neither should
        // wait for the other.
        let readers = (cores * 2).clamp(4, 32) as u32;
        let pool = r2d2::Pool::builder()
            .max_size(readers)
            // r2d2 checks a connection on every checkout by running a statement; a local
            // file's connection does not go stale the way a network one does, and the check
            // was 3% of a GET's CPU. A broken connection still fails its own statement.
            .test_on_check_out(false)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| StoreError::Backend(format!("open reader pool: {e}")))?;
        // One point reader per async worker. Started after everything else that can fail,
        // since its sweeper thread runs until the store is dropped.
        let point_conns = (0..cores)
            .map(|_| {
                let mut conn = Connection::open_with_flags(path, reader_flags)?;
                reader_init(&mut conn)?;
                Ok(conn)
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .context("open point readers")?;
        if mmap_bytes > 0 {
            // SQLite lowers a size over its maximum without a word; say what is in effect.
            let mapped: i64 = point_conns
                .first()
                .map(|c| c.query_row("PRAGMA mmap_size", [], |r| r.get(0)))
                .transpose()
                .context("read the memory-map size")?
                .unwrap_or_default();
            tracing::info!(
                "readers memory-map up to {} MiB of the database",
                mapped / (1024 * 1024)
            );
        }
        let points = point_readers::PointReaders::start(
            point_conns,
            point_readers::MAX_REUSE_AGE,
            point_readers::SWEEP_AGE,
        )?;
        tracing::info!(path = %path.display(), readers, "opened SQLite store");
        // The common trigrams' counts are read in the background from the start, so that
        // the first searches need not count them one by one.
        let trigram_counts = Arc::new(search::TrigramCounts::new(pool.clone()));
        trigram_counts.refresh_if_stale();
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Arc::new(tokio::sync::Mutex::new(writer)),
                readers: pool,
                points,
                trigram_counts: Arc::clone(&trigram_counts),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs a point lookup (one row by a unique key, plus its few dependent rows) on a reader
    /// connection right here on the async worker, without the blocking pool. Such a read
    /// takes tens of microseconds from the page cache, while handing it to the blocking pool
    /// and back costs two thread switches, which profiling showed to be most of a GET's time.
    /// Only reads bounded by an index lookup may use this; scans and pages of results go
    /// through [`Self::read`]. The lookup runs on a point reader, in a snapshot that reader
    /// may keep for the next lookup (see `point_readers`); when all of them are busy, on a
    /// connection of the general pool, which is sized above the number of async workers, so
    /// that one is almost always free (when none is, this waits at most the pool's timeout).
    fn read_point<T, F>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Connection) -> Result<T, StoreError>,
    {
        let f = match self.inner.points.run(f) {
            Ok(done) => return done,
            Err(f) => f,
        };
        let mut conn = self
            .inner
            .readers
            .get()
            .map_err(|e| StoreError::Backend(format!("{what}: get reader connection: {e}")))?;
        f(&mut conn)
    }

    /// Runs `f` on the writer connection, on the blocking pool, holding the writer mutex.
    async fn write<T, F>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let mut conn = Arc::clone(&self.inner.writer).lock_owned().await;
        let points = Arc::clone(&self.inner.points);
        let span = Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            // A panic in an earlier write unwound through its `Transaction` guard, which
            // rolls back, so the connection is still usable. Should a transaction still be
            // open anyway, end it rather than let this writer commit someone else's half.
            if !conn.is_autocommit() {
                conn.execute_batch("ROLLBACK")
                    .context("roll back an abandoned transaction")?;
            }
            let done = f(&mut conn);
            // Counted whether it committed or not (a failed write may have committed part
            // of a bulk chunk, and counting costs nothing), before the caller hears of it.
            points.wrote();
            done
        })
        .await
        .map_err(|e| StoreError::Backend(format!("{what}: blocking task failed: {e}")))?
    }

    /// Runs `f` on a pooled reader connection, on the blocking pool.
    async fn read<T, F>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let span = Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = inner
                .readers
                .get()
                .map_err(|e| StoreError::Backend(format!("{what}: get reader connection: {e}")))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("{what}: blocking task failed: {e}")))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read("ping", |conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .context("ping database")
        })
        .await
    }

    // ----- tenants -----

    #[instrument(skip_all, fields(tenant.name = %tenant.name))]
    async fn create_tenant(
        &self,
        tenant: &NewTenant,
        tenant_key: &str,
        now: i64,
    ) -> Result<Tenant, StoreError> {
        let tenant = tenant.clone();
        let tenant_key = tenant_key.to_owned();
        self.write("create tenant", move |conn| {
            tenants::create_tenant(conn, &tenant, &tenant_key, now)
        })
        .await
    }

    async fn get_tenant(&self, id: TenantId) -> Result<Option<Tenant>, StoreError> {
        self.read("get tenant", move |conn| tenants::get_tenant(conn, id))
            .await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.read("list tenants", |conn| tenants::list_tenants(conn))
            .await
    }

    // ----- apps and tokens -----

    #[instrument(skip_all, fields(app_id = %app.app_id))]
    async fn insert_app(&self, app: &App) -> Result<(), StoreError> {
        let app = app.clone();
        self.write("insert app", move |conn| tenants::insert_app(conn, &app))
            .await
    }

    async fn get_app(&self, app_id: &AppId) -> Result<Option<App>, StoreError> {
        let app_id = app_id.clone();
        self.read_point("get app", move |conn| tenants::get_app(conn, &app_id))
    }

    async fn list_apps(&self, tenant: Option<TenantId>) -> Result<Vec<App>, StoreError> {
        self.read("list apps", move |conn| tenants::list_apps(conn, tenant))
            .await
    }

    #[instrument(skip_all, fields(app_id = %app_id))]
    async fn set_app_secret(&self, app_id: &AppId, secret_hash: &str) -> Result<bool, StoreError> {
        let app_id = app_id.clone();
        let secret_hash = secret_hash.to_owned();
        self.write("set app secret", move |conn| {
            tenants::set_app_secret(conn, &app_id, &secret_hash)
        })
        .await
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let token = token.clone();
        self.write("insert token", move |conn| {
            tenants::insert_token(conn, &token)
        })
        .await
    }

    async fn find_token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.read_point("find token", move |conn| {
            tenants::find_token(conn, &token_hash)
        })
    }

    #[instrument(skip_all)]
    async fn purge_expired_tokens(&self, now: i64) -> Result<u64, StoreError> {
        self.write("purge expired tokens", move |conn| {
            tenants::purge_expired_tokens(conn, now)
        })
        .await
    }

    // ----- vendor access keys -----

    #[instrument(skip_all, fields(app_id = %app.app_id))]
    async fn insert_access_key(
        &self,
        app: &App,
        key: &roster_core::AccessKey,
    ) -> Result<(), StoreError> {
        let (app, key) = (app.clone(), key.clone());
        self.write("insert access key", move |conn| {
            access_keys::insert_access_key(conn, &app, &key)
        })
        .await
    }

    async fn set_access_key_secret(
        &self,
        app_id: &AppId,
        sealed_secret: &[u8],
    ) -> Result<bool, StoreError> {
        let app_id = app_id.clone();
        let sealed_secret = sealed_secret.to_vec();
        self.write("set access key secret", move |conn| {
            access_keys::set_access_key_secret(conn, &app_id, &sealed_secret)
        })
        .await
    }

    async fn get_access_key(
        &self,
        key_id: &str,
    ) -> Result<Option<roster_core::AccessKey>, StoreError> {
        let key_id = key_id.to_owned();
        self.read("get access key", move |conn| {
            access_keys::get_access_key(conn, &key_id)
        })
        .await
    }

    async fn list_access_keys(
        &self,
        tenant: Option<TenantId>,
    ) -> Result<Vec<roster_core::AccessKey>, StoreError> {
        self.read("list access keys", move |conn| {
            access_keys::list_access_keys(conn, tenant)
        })
        .await
    }

    async fn delete_group(&self, tenant: TenantId, group_id: &str) -> Result<bool, StoreError> {
        let group_id = group_id.to_owned();
        self.write("delete group", move |conn| {
            accounts::delete_group(conn, tenant, &group_id)
        })
        .await
    }

    #[instrument(skip_all, fields(%tenant, users = users.len(), mails = mails.len()))]
    async fn insert_users_invited(
        &self,
        tenant: TenantId,
        users: &[User],
        mails: &[roster_core::OutboxMessage],
        change: &Change,
    ) -> Result<Vec<Result<UserKey, StoreError>>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<users::UserRow> = users.iter().map(users::UserRow::of).collect();
        let groups: Vec<Vec<String>> = users.iter().map(|u| u.profile.groups.clone()).collect();
        let mails = mails.to_vec();
        let ctx = ChangeCtx::of(change);
        self.write("insert invited users", move |conn| {
            accounts::insert_users_invited(conn, tenant, &rows, &groups, &mails, &ctx)
        })
        .await
    }

    // ----- departments -----

    #[instrument(skip_all, fields(tenant = %dept.tenant))]
    async fn insert_department(
        &self,
        dept: &Department,
        change: &Change,
    ) -> Result<Department, StoreError> {
        let dept = dept.clone();
        let ctx = ChangeCtx::of(change);
        self.write("insert department", move |conn| {
            departments::insert_department(conn, dept, &ctx)
        })
        .await
    }

    async fn get_department(
        &self,
        tenant: TenantId,
        lookup: &DeptLookup,
    ) -> Result<Option<Department>, StoreError> {
        let lookup = lookup.clone();
        self.read_point("get department", move |conn| {
            departments::get_department(conn, tenant, &lookup)
        })
    }

    async fn child_departments(
        &self,
        tenant: TenantId,
        parent: DeptKey,
    ) -> Result<Vec<Department>, StoreError> {
        self.read("list child departments", move |conn| {
            departments::child_departments(conn, tenant, parent)
        })
        .await
    }

    async fn count_departments(&self, tenant: TenantId) -> Result<u64, StoreError> {
        self.read("count departments", move |conn| {
            departments::count_departments(conn, tenant)
        })
        .await
    }

    async fn departments_led_by(
        &self,
        tenant: TenantId,
        leader: &OpenId,
    ) -> Result<Vec<Department>, StoreError> {
        let leader = leader.clone();
        self.read("list departments by leader", move |conn| {
            departments::departments_led_by(conn, tenant, &leader)
        })
        .await
    }

    async fn department_subtree_counts(
        &self,
        tenant: TenantId,
        dept: DeptKey,
    ) -> Result<(u64, u64), StoreError> {
        self.read("department subtree counts", move |conn| {
            departments::subtree_counts(conn, tenant, dept)
        })
        .await
    }

    async fn department_member_count(
        &self,
        tenant: TenantId,
        dept: DeptKey,
    ) -> Result<u64, StoreError> {
        self.read("count department members", move |conn| {
            departments::member_count(conn, tenant, dept)
        })
        .await
    }

    // ----- users -----

    async fn taken_user_values(
        &self,
        tenant: TenantId,
        probe: &UniqueProbe,
    ) -> Result<TakenValues, StoreError> {
        let probe = probe.clone();
        self.read("probe unique user values", move |conn| {
            users::taken_values(conn, tenant, &probe)
        })
        .await
    }

    #[instrument(skip_all, fields(tenant = %tenant, users = users.len(), atomic))]
    async fn insert_users(
        &self,
        tenant: TenantId,
        users: &[User],
        atomic: bool,
        change: &Change,
    ) -> Result<Vec<Result<UserKey, StoreError>>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        // Encoding happens here rather than in the blocking task because it replaces the
        // deep copy of the users that the task would otherwise need.
        let rows: Vec<users::UserRow> = users.iter().map(users::UserRow::of).collect();
        let ctx = ChangeCtx::of(change);
        self.write("insert users", move |conn| {
            users::insert_users(conn, tenant, &rows, atomic, &ctx)
        })
        .await
    }

    async fn get_user(
        &self,
        tenant: TenantId,
        lookup: &UserLookup,
    ) -> Result<Option<User>, StoreError> {
        let lookup = lookup.clone();
        self.read_point("get user", move |conn| {
            users::get_user(conn, tenant, &lookup)
        })
    }

    async fn get_user_with_departments(
        &self,
        tenant: TenantId,
        lookup: &UserLookup,
    ) -> Result<Option<(User, Vec<Department>)>, StoreError> {
        let lookup = lookup.clone();
        self.read_point("get user with departments", move |conn| {
            users::get_user_with_departments(conn, tenant, &lookup)
        })
    }

    #[instrument(skip_all, fields(tenant = %tenant, users = users.len(), departments = departments.len(), groups = groups.len()))]
    async fn save_checked(
        &self,
        tenant: TenantId,
        users: &[User],
        departments: &[Department],
        groups: &[Group],
        read: &ReadVersions,
        change: &Change,
    ) -> Result<(), StoreError> {
        let set = roster_store_common::SaveSet::new(tenant, users, departments, groups)?;
        if set.is_empty() {
            return Ok(());
        }
        let (users, departments, groups) = (set.users, set.departments, set.groups);
        let users: Vec<(UserKey, users::UserRow)> = users
            .iter()
            .map(|u| (u.key, users::UserRow::of(u)))
            .collect();
        let depts: Vec<users::DeptSave> = departments
            .iter()
            .map(|d| ((*d).clone(), department_snapshot(d)))
            .collect();
        let groups: Vec<Group> = groups.into_iter().cloned().collect();
        let ctx = ChangeCtx::of(change);
        let read = read.clone();
        self.write("save", move |conn| {
            users::save(conn, tenant, &users, &depts, &groups, &read, &ctx)
        })
        .await
    }

    async fn get_users(
        &self,
        tenant: TenantId,
        lookups: &[UserLookup],
    ) -> Result<Vec<User>, StoreError> {
        if lookups.is_empty() {
            return Ok(Vec::new());
        }
        let lookups = lookups.to_vec();
        self.read("get users", move |conn| {
            users::get_users(conn, tenant, &lookups)
        })
        .await
    }

    async fn users_by_contact(
        &self,
        tenant: TenantId,
        emails: &[String],
        mobiles: &[String],
    ) -> Result<Vec<User>, StoreError> {
        let emails = emails.to_vec();
        let mobiles = mobiles.to_vec();
        self.read("get users by contact", move |conn| {
            users::users_by_contact(conn, tenant, &emails, &mobiles)
        })
        .await
    }

    async fn department_members(
        &self,
        tenant: TenantId,
        dept: DeptKey,
        after: Option<UserKey>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        self.read("list department members", move |conn| {
            users::department_members(conn, tenant, dept, after, limit)
        })
        .await
    }

    async fn search_users(
        &self,
        tenant: TenantId,
        query: &SearchQuery,
        after: Option<SearchCursor>,
        limit: usize,
    ) -> Result<Vec<(User, SearchCursor)>, StoreError> {
        let query = query.clone();
        let counts = Arc::clone(&self.inner.trigram_counts);
        counts.refresh_if_stale();
        self.read("search users", move |conn| {
            search::search_users(conn, &counts, tenant, &query, after, limit)
        })
        .await
    }

    async fn users_led_by(
        &self,
        tenant: TenantId,
        leader: &OpenId,
    ) -> Result<Vec<User>, StoreError> {
        let leader = leader.clone();
        self.read("list users by leader", move |conn| {
            users::users_led_by(conn, tenant, &leader)
        })
        .await
    }

    async fn users_with_dotted_leader(
        &self,
        tenant: TenantId,
        leader: &OpenId,
    ) -> Result<Vec<User>, StoreError> {
        let leader = leader.clone();
        self.read("list users by dotted-line leader", move |conn| {
            users::users_with_dotted_leader(conn, tenant, &leader)
        })
        .await
    }

    #[instrument(skip_all)]
    async fn purge_resigned(&self, before: i64) -> Result<u64, StoreError> {
        // One transaction per chunk, releasing the writer in between so that other writes
        // are not held up by a large purge. Each chunk is whole: its deletions and their
        // events commit together.
        let mut total = 0;
        loop {
            let n = self
                .write("purge resigned users", move |conn| {
                    users::purge_resigned(conn, before, PURGE_CHUNK)
                })
                .await?;
            total += n;
            if n < PURGE_CHUNK as u64 {
                break;
            }
        }
        if total > 0 {
            tracing::info!(users = total, "purged resigned users");
        }
        Ok(total)
    }

    // ----- idempotency keys -----

    async fn claim_idempotency_key(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: i64,
    ) -> Result<IdempotencyClaim, StoreError> {
        let key = key.clone();
        let fingerprint = fingerprint.to_owned();
        self.write("claim idempotency key", move |conn| {
            idempotency::claim(conn, &key, &fingerprint, now)
        })
        .await
    }

    async fn complete_idempotency_key(
        &self,
        key: &IdempotencyKey,
        result: &str,
    ) -> Result<(), StoreError> {
        let key = key.clone();
        let result = result.to_owned();
        self.write("complete idempotency key", move |conn| {
            idempotency::complete(conn, &key, &result)
        })
        .await
    }

    async fn release_idempotency_key(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.write("release idempotency key", move |conn| {
            idempotency::release(conn, &key)
        })
        .await
    }

    #[instrument(skip_all)]
    async fn purge_idempotency_keys(&self, before: i64) -> Result<u64, StoreError> {
        self.write("purge idempotency keys", move |conn| {
            idempotency::purge(conn, before)
        })
        .await
    }

    async fn purge_finished_tasks(&self, before: i64, limit: u64) -> Result<u64, StoreError> {
        self.write("purge finished tasks", move |conn| {
            tasks::purge_finished(conn, before, limit)
        })
        .await
    }

    // ----- JSAPI tickets -----

    async fn jsapi_ticket(&self, app_id: &AppId) -> Result<Option<(String, i64)>, StoreError> {
        let app_id = app_id.clone();
        self.read("load JSAPI ticket", move |conn| {
            tenants::jsapi_ticket(conn, &app_id)
        })
        .await
    }

    async fn put_jsapi_ticket(
        &self,
        app_id: &AppId,
        ticket: &str,
        expires_at: i64,
        replace_before: i64,
    ) -> Result<(String, i64), StoreError> {
        let app_id = app_id.clone();
        let ticket = ticket.to_owned();
        self.write("store JSAPI ticket", move |conn| {
            tenants::put_jsapi_ticket(conn, &app_id, &ticket, expires_at, replace_before)
        })
        .await
    }

    // ----- change events -----

    async fn list_events(
        &self,
        tenant: Option<TenantId>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<ChangeEvent>, StoreError> {
        self.read("list change events", move |conn| {
            events::list_events(conn, tenant, after, limit)
        })
        .await
    }

    // ----- groups -----

    #[instrument(skip_all, fields(tenant = %group.tenant))]
    async fn insert_group(&self, group: &Group) -> Result<Group, StoreError> {
        let group = group.clone();
        self.write("insert group", move |conn| {
            groups::insert_group(conn, group)
        })
        .await
    }

    async fn get_group(
        &self,
        tenant: TenantId,
        group_id: &str,
    ) -> Result<Option<Group>, StoreError> {
        let group_id = group_id.to_owned();
        self.read("get group", move |conn| {
            groups::get_group(conn, tenant, &group_id)
        })
        .await
    }

    async fn list_groups(&self, tenant: TenantId) -> Result<Vec<Group>, StoreError> {
        self.read("list groups", move |conn| groups::list_groups(conn, tenant))
            .await
    }

    async fn groups_owned_by(
        &self,
        tenant: TenantId,
        owner: &OpenId,
    ) -> Result<Vec<Group>, StoreError> {
        let owner = owner.clone();
        self.read("list groups by owner", move |conn| {
            groups::groups_owned_by(conn, tenant, &owner)
        })
        .await
    }

    // ----- tasks -----

    #[instrument(skip_all, fields(task = %task.id, items = items.len()))]
    async fn create_task(
        &self,
        task: &roster_core::Task,
        items: &[roster_core::TaskItem],
    ) -> Result<(), StoreError> {
        let task = task.clone();
        let items = tasks::item_rows(items);
        self.write("create task", move |conn| {
            tasks::create_task(conn, &task, &items)
        })
        .await
    }

    async fn get_task(
        &self,
        tenant: TenantId,
        id: &roster_core::TaskId,
    ) -> Result<Option<roster_core::Task>, StoreError> {
        let id = id.clone();
        self.read("get task", move |conn| {
            tasks::get_task(conn, tenant, id.as_str())
        })
        .await
    }

    async fn task_items(
        &self,
        id: &roster_core::TaskId,
        after: Option<u32>,
        limit: usize,
        pending_only: bool,
    ) -> Result<Vec<roster_core::TaskItem>, StoreError> {
        let id = id.clone();
        self.read("list task items", move |conn| {
            tasks::task_items(conn, id.as_str(), after, limit, pending_only)
        })
        .await
    }

    async fn claim_task(
        &self,
        worker: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<roster_core::Task>, StoreError> {
        let worker = worker.to_owned();
        self.write("claim task", move |conn| {
            tasks::claim_task(conn, &worker, now, lease_ms, None)
        })
        .await
    }

    async fn claim_this_task(
        &self,
        worker: &str,
        now: i64,
        lease_ms: i64,
        id: &roster_core::TaskId,
    ) -> Result<Option<roster_core::Task>, StoreError> {
        let (worker, id) = (worker.to_owned(), id.to_string());
        self.write("claim task", move |conn| {
            tasks::claim_task(conn, &worker, now, lease_ms, Some(&id))
        })
        .await
    }

    async fn renew_task_lease(
        &self,
        id: &roster_core::TaskId,
        worker: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let id = id.clone();
        let worker = worker.to_owned();
        self.write("renew task lease", move |conn| {
            tasks::renew_lease(conn, id.as_str(), &worker, until)
        })
        .await
    }

    #[instrument(skip_all, fields(task = %chunk.task_id, users = chunk.users.len(), failures = chunk.failures.len()))]
    async fn commit_task_chunk(
        &self,
        chunk: &roster_core::TaskChunk<'_>,
    ) -> Result<Option<Vec<Result<UserKey, StoreError>>>, StoreError> {
        // Encoded here, as in `insert_users`, instead of deep-copying the users.
        let rows = tasks::ChunkRows::of(chunk);
        self.write("commit task chunk", move |conn| {
            tasks::commit_chunk(conn, &rows)
        })
        .await
    }

    async fn bulk_write_ended(&self) {
        // The writer's page cache fills up to its size during an import and would stay that
        // large; a directory at rest needs little of it. Pages are read back from the
        // operating system's cache when needed again.
        let shrunk = self
            .write("release memory", |conn| {
                conn.execute_batch("PRAGMA shrink_memory")
                    .context("shrink writer cache")
            })
            .await;
        if let Err(err) = shrunk {
            tracing::warn!("failed to release the writer's cache: {err}");
        }
        // An import moves the trigram counts that substring searches choose by; read them
        // again now rather than when they are ten minutes old.
        self.inner.trigram_counts.refresh_now();
    }

    #[instrument(skip_all, fields(task = %id, status = status.as_str()))]
    async fn finish_task(
        &self,
        id: &roster_core::TaskId,
        worker: &str,
        status: roster_core::TaskStatus,
        now: i64,
    ) -> Result<bool, StoreError> {
        let id = id.clone();
        let worker = worker.to_owned();
        self.write("finish task", move |conn| {
            tasks::finish_task(conn, id.as_str(), &worker, status, now)
        })
        .await
    }

    // ----- imports -----

    async fn create_import(&self, task: &roster_core::Task) -> Result<(), StoreError> {
        let task = task.clone();
        self.write("create import", move |conn| {
            imports::create_import(conn, &task)
        })
        .await
    }

    #[instrument(skip_all, fields(task = %id, seq = chunk.seq, rows = chunk.items.len()))]
    async fn append_import_chunk(
        &self,
        id: &roster_core::TaskId,
        chunk: &roster_core::ImportChunk,
        deadline: i64,
    ) -> Result<bool, StoreError> {
        // Encoded before taking the writer, so that encoding never holds up other writes.
        let c = imports::ChunkIn::of(id, chunk, deadline);
        self.write("append import chunk", move |conn| {
            imports::append_chunk(conn, &c)
        })
        .await
    }

    async fn seal_import(&self, id: &roster_core::TaskId) -> Result<bool, StoreError> {
        let id = id.clone();
        self.write("seal import", move |conn| imports::seal(conn, id.as_str()))
            .await
    }

    async fn abort_import(&self, id: &roster_core::TaskId, now: i64) -> Result<bool, StoreError> {
        let id = id.clone();
        self.write("abort import", move |conn| {
            imports::abort(conn, id.as_str(), now)
        })
        .await
    }

    async fn expire_imports(&self, now: i64) -> Result<u64, StoreError> {
        self.write("expire imports", move |conn| imports::expire(conn, now))
            .await
    }

    async fn pending_import_chunks(
        &self,
        id: &roster_core::TaskId,
        after: Option<u32>,
        limit: usize,
    ) -> Result<Vec<roster_core::ImportChunk>, StoreError> {
        let id = id.clone();
        self.read("pending import chunks", move |conn| {
            imports::pending_chunks(conn, id.as_str(), after, limit)
        })
        .await
    }

    async fn import_outcomes(
        &self,
        id: &roster_core::TaskId,
        from_row: u32,
        limit: usize,
    ) -> Result<Vec<roster_core::ImportOutcomes>, StoreError> {
        let id = id.clone();
        self.read("import outcomes", move |conn| {
            imports::outcomes(conn, id.as_str(), from_row, limit)
        })
        .await
    }

    #[instrument(skip_all, fields(task = %chunk.task_id, seq = chunk.seq, users = chunk.users.len()))]
    async fn commit_import_chunk(
        &self,
        chunk: &roster_core::ImportCommit<'_>,
    ) -> Result<Option<Vec<Result<UserKey, StoreError>>>, StoreError> {
        let rows = imports::CommitRows::of(chunk);
        self.write("commit import chunk", move |conn| {
            imports::commit_chunk(conn, &rows)
        })
        .await
    }

    async fn list_users(
        &self,
        tenant: TenantId,
        after: Option<UserKey>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        self.read("list users", move |conn| {
            users::list_users(conn, tenant, after, limit)
        })
        .await
    }

    // ----- BI organisation (Quick BI) -----

    #[instrument(skip_all, fields(tenant = %tenant, members = members.len()))]
    async fn insert_bi_members(
        &self,
        tenant: TenantId,
        members: &[roster_core::BiMember],
        max_members: u64,
        change: &Change,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let members = members.to_vec();
        let ctx = ChangeCtx::of(change);
        self.write("insert bi members", move |conn| {
            bi::insert_members(conn, tenant, &members, max_members, &ctx)
        })
        .await
    }

    async fn get_bi_member(
        &self,
        tenant: TenantId,
        open_id: &OpenId,
    ) -> Result<Option<roster_core::BiMember>, StoreError> {
        let open_id = open_id.clone();
        self.read("get bi member", move |conn| {
            bi::get_member(conn, tenant, &open_id)
        })
        .await
    }

    async fn list_bi_members(
        &self,
        tenant: TenantId,
        keyword: Option<&str>,
        offset: u64,
        limit: usize,
    ) -> Result<(Vec<roster_core::BiMember>, u64), StoreError> {
        let keyword = keyword.map(str::to_owned);
        self.read("list bi members", move |conn| {
            bi::list_members(conn, tenant, keyword.as_deref(), offset, limit)
        })
        .await
    }

    async fn update_bi_member(
        &self,
        member: &roster_core::BiMember,
        read_at: i64,
        change: &Change,
    ) -> Result<bool, StoreError> {
        let member = member.clone();
        let ctx = ChangeCtx::of(change);
        self.write("update bi member", move |conn| {
            bi::update_member(conn, &member, read_at, &ctx)
        })
        .await
    }

    async fn delete_bi_member(
        &self,
        tenant: TenantId,
        open_id: &OpenId,
        at: i64,
        change: &Change,
    ) -> Result<bool, StoreError> {
        let open_id = open_id.clone();
        let ctx = ChangeCtx::of(change);
        self.write("delete bi member", move |conn| {
            bi::delete_member(conn, tenant, &open_id, at, &ctx)
        })
        .await
    }

    async fn claim_signature_nonce(
        &self,
        access_key_id: &str,
        nonce: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let access_key_id = access_key_id.to_owned();
        let nonce = nonce.to_owned();
        self.write("claim signature nonce", move |conn| {
            bi::claim_nonce(conn, &access_key_id, &nonce, now, expires_at)
        })
        .await
    }

    async fn purge_signature_nonces(&self, now: i64) -> Result<u64, StoreError> {
        self.write("purge signature nonces", move |conn| {
            bi::purge_nonces(conn, now)
        })
        .await
    }

    // ----- outbox -----

    async fn claim_outbox(
        &self,
        now: i64,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<roster_core::OutboxMessage>, StoreError> {
        self.write("claim outbox messages", move |conn| {
            outbox::claim(conn, now, limit, lease_ms)
        })
        .await
    }

    async fn mark_outbox_sent(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.write("mark outbox message sent", move |conn| {
            outbox::mark_sent(conn, id, now)
        })
        .await
    }

    async fn mark_outbox_failed(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: i64,
    ) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.write("mark outbox message failed", move |conn| {
            outbox::mark_failed(conn, id, &error, next_attempt_at)
        })
        .await
    }

    async fn list_outbox(
        &self,
        tenant: Option<TenantId>,
        unsent_only: bool,
        limit: usize,
    ) -> Result<Vec<roster_core::OutboxMessage>, StoreError> {
        self.read("list outbox messages", move |conn| {
            outbox::list(conn, tenant, unsent_only, limit)
        })
        .await
    }

    #[instrument(skip_all)]
    async fn activate(&self, token_hash: &str, now: i64) -> Result<Option<User>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.write("activate", move |conn| {
            outbox::activate(conn, &token_hash, now)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    /// Rows written under 0001 get `departments.leader_open_id` (0002) and their search
    /// terms, indexed (0006).
    #[test]
    fn migration_0002_backfills_search_text_and_department_leaders() {
        let mut conn = Connection::open_in_memory().unwrap();
        let m = super::migrations();
        m.to_version(&mut conn, 1).unwrap();
        conn.execute_batch(
            r#"
            INSERT INTO tenants (id, name, tenant_key, created_at) VALUES (1, 't', 'k', 0);
            INSERT INTO departments (id, tenant_id, open_department_id, department_id,
                department_id_fold, parent_id, name, doc, created_at, updated_at)
            VALUES (1, 1, '0', '0', '0', NULL, 't', '{}', 0, 0),
                   (2, 1, 'od-2', 'd2', 'd2', 1, 'led', '{"leader":"ou_boss"}', 0, 0);
            INSERT INTO users (id, tenant_id, open_id, union_id, user_id, user_id_fold, name,
                is_resigned, is_frozen, is_activated, is_exited, is_unjoin, created_at,
                updated_at, doc)
            VALUES (1, 1, 'ou_1', 'on_1', 'u1', 'u1', 'Alice', 0, 0, 0, 0, 0, 0, 0,
                    '{"name":"Alice","en_name":"ALICE Smith"}'),
                   (2, 1, 'ou_2', 'on_2', 'u2', 'u2', '张三', 0, 0, 0, 0, 0, 0, 0,
                    '{"name":"张三","en_name":"Zhang SAN","nickname":"Émile"}');
            "#,
        )
        .unwrap();
        m.to_latest(&mut conn).unwrap();
        let text = |id: i64| -> String {
            conn.query_row("SELECT search_text FROM users WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
        };
        // Migration 0006 then recomputes every user's terms (pinyin included) in its hook,
        // and its triggers index them.
        assert_eq!(text(1), "[\"alice\",\"alice smith\",\"\u{e000}smith\"]");
        assert_eq!(
            text(2),
            "[\"张三\",\"zhang san\",\"émile\",\"zhangsan\",\"zs\",\"\u{e000}三\",\"\u{e000}san\"]"
        );
        let indexed: Vec<(String, i64)> = conn
            .prepare("SELECT term, user_key FROM user_search_terms WHERE term IN ('zs', 'alice')")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(indexed, [("alice".to_owned(), 1), ("zs".to_owned(), 2)]);
        let substring: i64 = conn
            .query_row(
                "SELECT rowid FROM users_fts WHERE users_fts MATCH '\"ngs\"'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(substring, 2);
        let leader = |id: i64| -> Option<String> {
            conn.query_row(
                "SELECT leader_open_id FROM departments WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(leader(1), None);
        assert_eq!(leader(2).as_deref(), Some("ou_boss"));
    }

    /// A database migrated to `version`, holding one tenant with a root and one child
    /// department, three users (the second resigned), and the given `user_departments`
    /// rows (`VALUES` lists of user, department, position, user order, department order,
    /// primary), for the migration tests that follow.
    fn migrated_to_with_members(version: usize, memberships: &str) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        super::migrations().to_version(&mut conn, version).unwrap();
        conn.execute_batch(&format!(
            r"
            INSERT INTO tenants (id, name, tenant_key, created_at) VALUES (1, 't', 'k', 0);
            INSERT INTO departments (id, tenant_id, open_department_id, department_id,
                department_id_fold, parent_id, name, doc, created_at, updated_at)
            VALUES (1, 1, '0', '0', '0', NULL, 't', '{{}}', 0, 0),
                   (2, 1, 'od-2', 'd2', 'd2', 1, 'two', '{{}}', 0, 0);
            INSERT INTO users (id, tenant_id, open_id, union_id, user_id, user_id_fold, name,
                is_resigned, is_frozen, is_activated, is_exited, is_unjoin, created_at,
                updated_at, doc)
            VALUES (1, 1, 'ou_1', 'on_1', 'u1', 'u1', 'A', 0, 0, 0, 0, 0, 0, 0, '{{}}'),
                   (2, 1, 'ou_2', 'on_2', 'u2', 'u2', 'B', 1, 0, 0, 0, 0, 0, 0, '{{}}'),
                   (3, 1, 'ou_3', 'on_3', 'u3', 'u3', 'C', 0, 0, 0, 0, 0, 0, 0, '{{}}');
            INSERT INTO user_departments (user_id, department_id, tenant_id, position,
                user_order, department_order, is_primary)
            SELECT column1, column2, 1, column3, column4, column5, column6
            FROM (VALUES {memberships});
            "
        ))
        .unwrap();
        conn
    }

    /// Migration 0013 counts the active members that exist when it runs (the store keeps
    /// the count from then on; the conformance suite checks that).
    #[test]
    fn migration_0013_counts_existing_active_members() {
        let mut conn = migrated_to_with_members(
            12,
            "(1, 2, 0, 0, 0, 1), (2, 2, 0, 0, 0, 1), (3, 2, 0, 0, 0, 1), (3, 1, 1, 0, 0, 0)",
        );
        super::migrations().to_latest(&mut conn).unwrap();
        let counts = |conn: &Connection| -> Vec<i64> {
            conn.prepare("SELECT member_count FROM departments ORDER BY id")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(counts(&conn), [1, 2], "the resigned user is not counted");
    }

    /// Migration 0015 recomputes the search terms of users with non-ASCII terms: a user
    /// indexed under the old rules (one reading of a polyphonic surname) gains the other
    /// readings in `search_text` and in the term index, and an ASCII user is left alone.
    #[test]
    fn migration_0015_recomputes_the_terms_of_non_ascii_names() {
        let mut conn = migrated_to_with_members(14, "(1, 2, 0, 0, 0, 1)");
        let profile = roster_core::UserProfile {
            name: "单雄信".into(),
            ..roster_core::UserProfile::default()
        };
        let old = "[\"单雄信\",\"danxiongxin\",\"dxx\",\"\u{E000}雄信\",\"\u{E000}信\"]";
        conn.execute(
            "UPDATE users SET doc = ?2, name = '单雄信', search_text = ?3 WHERE id = ?1",
            rusqlite::params![1, roster_store_common::encode_profile(&profile), old],
        )
        .unwrap();
        conn.execute("UPDATE users SET search_text = '[\"c\"]' WHERE id = 3", [])
            .unwrap();
        let terms = |conn: &Connection, user: i64| -> Vec<String> {
            conn.prepare("SELECT term FROM user_search_terms WHERE user_key = ?1 ORDER BY term")
                .unwrap()
                .query_map([user], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert!(!terms(&conn, 1).contains(&"shanxiongxin".to_owned()));
        super::migrations().to_latest(&mut conn).unwrap();
        let text: String = conn
            .query_row("SELECT search_text FROM users WHERE id = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(text, super::users::search_text(&profile));
        let t = terms(&conn, 1);
        for want in ["shanxiongxin", "sxx", "danxiongxin", "dxx"] {
            assert!(t.contains(&want.to_owned()), "{want} in {t:?}");
        }
        assert_eq!(terms(&conn, 3), ["c"], "ASCII terms are not rewritten");
    }

    /// Migration 0014 rebuilds `user_departments` WITHOUT ROWID and keeps every membership,
    /// the primary key, the index by department and the cascade from `users`.
    #[test]
    fn migration_0014_keeps_memberships_in_a_table_without_rowid() {
        let mut conn = migrated_to_with_members(
            13,
            "(2, 2, 0, 5, 6, 1), (2, 1, 1, 7, 8, 0), (1, 2, 0, 3, 4, 1)",
        );
        super::migrations().to_latest(&mut conn).unwrap();
        let rows = |conn: &Connection| -> Vec<(i64, i64, i64, i64, i64, bool)> {
            conn.prepare(
                "SELECT user_id, department_id, position, user_order, department_order, \
                 is_primary FROM user_departments ORDER BY user_id, position",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        assert_eq!(
            rows(&conn),
            [
                (1, 2, 0, 3, 4, true),
                (2, 2, 0, 5, 6, true),
                (2, 1, 1, 7, 8, false)
            ]
        );
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'user_departments'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sql.ends_with("WITHOUT ROWID"), "{sql}");
        let index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'user_departments_dept_idx'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 1);
        let clash = conn
            .execute(
                "INSERT INTO user_departments (user_id, department_id, tenant_id, position, \
                 user_order, department_order, is_primary) VALUES (1, 2, 1, 1, 0, 0, 0)",
                [],
            )
            .unwrap_err();
        assert!(
            clash
                .to_string()
                .contains("user_departments.user_id, user_departments.department_id"),
            "{clash}"
        );
        conn.execute("DELETE FROM users WHERE id = 2", []).unwrap();
        assert_eq!(
            rows(&conn),
            [(1, 2, 0, 3, 4, true)],
            "deleting a user cascades"
        );
    }

    /// A user's memberships as a read gives them, in the user's order, beside the keys of
    /// the departments read with them.
    fn read_memberships(
        conn: &mut Connection,
        user: i64,
    ) -> (Vec<super::users::MembershipFields>, Vec<i64>) {
        let lookup = roster_core::UserLookup::Key(roster_core::UserKey(user));
        let tenant = roster_core::TenantId(1);
        let (u, depts) = super::users::get_user_with_departments(conn, tenant, &lookup)
            .unwrap()
            .unwrap();
        let plain = super::users::get_user(conn, tenant, &lookup)
            .unwrap()
            .unwrap();
        assert_eq!(plain.profile.departments, u.profile.departments);
        let memberships = u
            .profile
            .departments
            .iter()
            .map(super::users::membership_fields)
            .collect();
        (memberships, depts.iter().map(|d| d.key.0).collect())
    }

    /// Migration 0018 copies every user's memberships into its row, in position order
    /// (the positions given out of order here), and reads take them from the row alone.
    #[test]
    fn migration_0018_copies_memberships_into_the_user_row() {
        let mut conn = migrated_to_with_members(
            17,
            "(3, 1, 1, 7, 8, 1), (3, 2, 0, 5, 6, 0), (1, 2, 0, 3, 4, 1)",
        );
        super::migrations().to_latest(&mut conn).unwrap();
        let column = |conn: &Connection, id: i64| -> String {
            conn.query_row("SELECT memberships FROM users WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(column(&conn, 3), "[[2,5,6,false],[1,7,8,true]]");
        assert_eq!(column(&conn, 1), "[[2,3,4,true]]");
        assert_eq!(column(&conn, 2), "[]", "a user without memberships");
        let profile = roster_core::UserProfile {
            name: "C".into(),
            ..roster_core::UserProfile::default()
        };
        conn.execute(
            "UPDATE users SET doc = ?1 WHERE id = 3",
            [roster_store_common::encode_profile(&profile)],
        )
        .unwrap();
        assert_eq!(
            read_memberships(&mut conn, 3),
            (vec![(2, 5, 6, false), (1, 7, 8, true)], vec![2, 1])
        );
        // Only the row says department 1 alone, so this read shows where reads look.
        conn.execute(
            "UPDATE users SET memberships = '[[1,9,10,true]]' WHERE id = 3",
            [],
        )
        .unwrap();
        assert_eq!(
            read_memberships(&mut conn, 3),
            (vec![(1, 9, 10, true)], vec![1])
        );
    }

    /// The memory-map size of the readers that serve reads of `store`: a pooled reader and
    /// a point reader.
    async fn reader_mmap_sizes(store: &super::SqliteStore) -> (i64, i64) {
        let size = |c: &mut Connection| -> Result<i64, roster_core::StoreError> {
            Ok(c.query_row("PRAGMA mmap_size", [], |r| r.get(0)).unwrap())
        };
        let pooled = store.read("test", size).await.unwrap();
        let point = store.read_point("test", size).unwrap();
        (pooled, point)
    }

    /// Readers map the file only when the operator asks, and then every kind of reader does
    /// (the point readers serve GETs, the pool everything else); the writer never does.
    #[tokio::test(flavor = "multi_thread")]
    async fn readers_memory_map_the_database_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let plain = super::SqliteStore::open(&dir.path().join("plain.db")).unwrap();
        assert_eq!(reader_mmap_sizes(&plain).await, (0, 0));
        let options = super::SqliteOptions {
            mmap_bytes: 64 * 1024 * 1024,
        };
        let mapped = super::SqliteStore::open_with(&dir.path().join("mapped.db"), options).unwrap();
        assert_eq!(
            reader_mmap_sizes(&mapped).await,
            (64 * 1024 * 1024, 64 * 1024 * 1024)
        );
        let writer: i64 = mapped
            .write("test", |c| {
                Ok(c.query_row("PRAGMA mmap_size", [], |r| r.get(0)).unwrap())
            })
            .await
            .unwrap();
        assert_eq!(writer, 0);
    }
}
