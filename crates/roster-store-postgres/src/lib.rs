//! roster-store-postgres: the `roster_core::Store` port on `PostgreSQL`, through sqlx.
//!
//! It knows SQL, the schema in `migrations/` (which follows docs/schema.md and mirrors
//! `roster-store-sqlite` file for file), and the shared document encoding of
//! `roster-store-common`. It must not know HTTP, any vendor's wire format, configuration
//! files, or the use cases of `roster-core`: it stores what it is given and lets the
//! database enforce uniqueness and the licence cap, so that racing writers can never both
//! win.
//!
//! Queries are checked at run time (`sqlx::query`, not `query!`), so building the crate
//! needs neither a database nor prepared offline data.
//!
//! Tests get a database of their own through [`fresh_test_store`]; see [`test_store`] for
//! the way tests read `ROSTER_TEST_POSTGRES_URL` and skip loudly without it.

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
mod save;
mod search;
mod tasks;
mod tenants;
mod users;

use std::fmt;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use roster_core::search::{SearchCursor, SearchQuery};
use roster_core::{
    App, AppId, Change, ChangeEvent, Department, DeptKey, DeptLookup, Group, IdempotencyClaim,
    IdempotencyKey, NewTenant, OpenId, ReadVersions, Store, StoreError, TakenValues, Tenant,
    TenantId, TokenRecord, UniqueProbe, User, UserKey, UserLookup,
};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::ConnectOptions as _;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use tracing::instrument;

use crate::errors::Context;

/// The schema, embedded at build time (build.rs reruns the build when it changes).
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connections per process. Batch writes hold one connection per call, and reads are
/// short, so a small pool serves a busy server while leaving room for several Roster
/// processes under the server's default limit of 100 connections.
const MAX_CONNECTIONS: u32 = 16;

/// An idle connection is pinged before it is handed out only after this long unused.
/// sqlx pings every connection it hands out by default (`test_before_acquire`): a round
/// trip before every statement, so a search of three statements made six. At a million
/// users (2026-12-07, closed-loop `roster-bench load-get` on PostgreSQL, two runs each),
/// GET-user went from 1 706 and 1 696 to 2 192 and 2 095 requests/s, and its p50 at 1 000
/// requests/s from 1.15-1.70 to 0.98-1.04 ms. A connection the server closed (a restart,
/// `idle_session_timeout`, an administrator) while the server was quiet has been idle for
/// longer than this by the time it is wanted again, and is found by the ping and replaced.
/// Under load one can be handed out inside this window: its statement fails (the request
/// gets its dialect's internal error, as one whose connection is lost mid-statement does),
/// and sqlx's own check when the connection is handed back (a ping on every release, which
/// runs after the caller has its rows) closes it, so each pooled connection fails at most
/// one statement. The README says so beside the outage behaviour.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// How long a caller waits for a free connection before the store reports a failure. It
/// is also how long a request waits while the database is down (the pool keeps trying to
/// connect): long enough to ride out a quick restart and a pile-up behind a bulk import's
/// chunk, short enough that a client gets its dialect's error rather than its own timeout
/// (30 s answered every request of an outage after the SDKs had given up).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Statements slower than this are logged as warnings (see `connect_with`).
const SLOW_STATEMENT: Duration = Duration::from_secs(30);

/// The `PostgreSQL` store. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// A sample of the users' search texts that picks each substring search's plan.
    search_sample: Arc<search::TextSample>,
}

impl fmt::Debug for PgStore {
    /// Written by hand so that nothing of the connection options (the password among
    /// them) can ever reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}

/// The connection options a database URL names.
fn parse_url(url: &str) -> Result<PgConnectOptions, StoreError> {
    url.parse()
        .map_err(|e| StoreError::Backend(format!("failed to parse the database URL: {e}")))
}

/// One connection, with the reason it could not be made (refused, unknown host,
/// authentication, no such database) or a timeout after `ACQUIRE_TIMEOUT`.
async fn connect_one(options: &PgConnectOptions) -> Result<PgConnection, StoreError> {
    match tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(StoreError::Backend(format!(
            "failed to connect to PostgreSQL: {e}"
        ))),
        Err(_) => Err(StoreError::Backend(format!(
            "failed to connect to PostgreSQL: no answer within {} s",
            ACQUIRE_TIMEOUT.as_secs()
        ))),
    }
}

/// Settings of every pooled connection, sent once when it is opened (a `SET` rather than a
/// startup option, which connection poolers such as `PgBouncer` refuse by default).
///
/// No parallel query: the store's statements are short index reads, and a worker process
/// costs 5-8 ms to start. The planner starts two whenever it over-estimates a statement:
/// a substring search whose trigram it takes for 4% of the table (a custom plan's `LIKE`
/// estimate, 40 000 rows) ran 0.06 ms of index work and 8.8 ms in all behind a `Gather
/// Merge` at a million users (2026-12-06), on a machine whose two cores the workers then
/// took from the requests queued behind it.
async fn session_settings(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::Executor::execute(conn, "SET max_parallel_workers_per_gather = 0").await?;
    Ok(())
}

impl PgStore {
    /// Whether the database at `url` already holds Roster's tables (its `tenants` table on
    /// the search path), read without writing anything: commands that only read a directory
    /// must not create Roster's schema in some other database.
    pub async fn is_roster_database(url: &str) -> Result<bool, StoreError> {
        let mut conn = connect_one(&parse_url(url)?).await?;
        let found: bool = sqlx::query_scalar("SELECT to_regclass('tenants') IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .context("look for Roster's tables")?;
        let _ = conn.close().await;
        Ok(found)
    }

    /// Connects to `url` (`postgres://user:password@host:port/database`) and brings the
    /// schema up to date.
    ///
    /// Several Roster processes may start at once against one database: sqlx's migrator
    /// holds a session-level advisory lock while it checks and applies migrations, so exactly
    /// one of them applies each migration and the others wait, then find nothing to do.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(parse_url(url)?).await
    }

    async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        // sqlx warns of any statement slower than a second; a bulk import writes 20 000
        // users per statement, which takes seconds by design, and the warnings buried the
        // log. A statement slower than SLOW_STATEMENT is still a warning.
        let options = options.log_slow_statements(log::LevelFilter::Warn, SLOW_STATEMENT);
        // One connection first, on its own: a pool that cannot connect retries until its
        // acquire timeout and then reports only "pool timed out", while this reports why
        // (connection refused, unknown host, authentication failed, no such database).
        let _ = connect_one(&options).await?.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for < PING_AFTER_IDLE {
                        return Ok(true);
                    }
                    // An error closes the connection and another is tried.
                    conn.ping().await.map(|()| true)
                })
            })
            .after_connect(|conn, _| Box::pin(async move { session_settings(conn).await }))
            .connect_with(options)
            .await
            .context("connect to PostgreSQL")?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("failed to run migrations: {e}")))?;
        search::backfill(&pool).await?;
        let words = search::WordChars::of(&pool).await?;
        Ok(Self {
            pool,
            search_sample: Arc::new(search::TextSample::new(words)),
        })
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

// ----- test support -----

/// The environment variable from which tests read the base URL of a `PostgreSQL` server.
pub const TEST_URL_ENV: &str = "ROSTER_TEST_POSTGRES_URL";

/// Prefix of every database made by [`fresh_test_store`].
const TEST_DB_PREFIX: &str = "roster_test_";

/// Test databases older than this are dropped by later test runs (best effort).
const STALE_TEST_DB_SECS: u64 = 6 * 60 * 60;

/// Creates a new, empty database on the server at `base_url` and returns a migrated store
/// on it, so that every test starts from nothing and tests can run in parallel.
///
/// `base_url` names any database the user may connect to (it is used only to issue
/// `CREATE DATABASE`); the user needs the CREATEDB privilege. The new database is called
/// `roster_test_<hex>`, where the hex is the creation time (8 digits of Unix seconds)
/// followed by 16 random digits. Test databases are not dropped when a test ends (tests
/// cannot run async code on drop); instead each call drops, best effort, those that a
/// previous run left behind more than six hours ago.
pub async fn fresh_test_store(base_url: &str) -> Result<PgStore, StoreError> {
    PgStore::connect_with(create_test_database(base_url).await?).await
}

/// Creates an empty test database (no schema yet) and returns the options that reach it.
async fn create_test_database(base_url: &str) -> Result<PgConnectOptions, StoreError> {
    let base: PgConnectOptions = base_url
        .parse()
        .map_err(|e| StoreError::Backend(format!("failed to parse the test database URL: {e}")))?;
    let mut admin = PgConnection::connect_with(&base)
        .await
        .context("connect to the test server")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    drop_stale_test_databases(&mut admin, now).await;

    // The server's random() is seeded per connection from a strong source, which saves
    // this crate a dependency on a random number generator.
    let random: String = sqlx::query_scalar(
        "SELECT substr(md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text), 1, 16)",
    )
    .fetch_one(&mut admin)
    .await
    .context("make a test database name")?;
    let name = format!("{TEST_DB_PREFIX}{now:08x}{random}");
    if !is_test_db_name(&name) {
        return Err(StoreError::Backend(format!(
            "made an unexpected test database name {name:?}"
        )));
    }
    // CREATE DATABASE cannot take parameters; the name is checked above to be the prefix
    // and hex digits, so formatting it in is safe. raw_sql uses the simple protocol, which
    // runs the statement outside any transaction, as CREATE DATABASE requires.
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .context("create the test database")?;
    // A failed close only leaks one idle connection of a test process.
    let _ = admin.close().await;
    Ok(base.database(&name))
}

/// For tests: a fresh store when [`TEST_URL_ENV`] is set, or `Ok(None)` after printing
/// `SKIPPED: ROSTER_TEST_POSTGRES_URL not set` to stderr, so that a run without
/// a server is visibly a skip and never a silent pass. `test` names the caller in the
/// message. A URL that is set but unusable is an error, not a skip.
///
/// ```no_run
/// # async fn example() {
/// let Some(store) = roster_store_postgres::test_store("my_test").await.unwrap() else {
///     return;
/// };
/// # }
/// ```
pub async fn test_store(test: &str) -> Result<Option<PgStore>, StoreError> {
    Ok(test_store_and_options(test).await?.map(|(store, _)| store))
}

/// Like [`test_store`], with the options that reach the fresh database, for tests that
/// write rows under the store with SQL of their own (as older versions left them, say).
pub async fn test_store_and_options(
    test: &str,
) -> Result<Option<(PgStore, PgConnectOptions)>, StoreError> {
    match std::env::var(TEST_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => {
            let options = create_test_database(&url).await?;
            let store = PgStore::connect_with(options.clone()).await?;
            Ok(Some((store, options)))
        }
        _ => {
            // Written to the stderr handle rather than through `eprintln!`, which the test
            // harness captures and hides for passing tests: a skip must be seen.
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: {TEST_URL_ENV} not set ({test})"
            );
            Ok(None)
        }
    }
}

/// Whether `name` has exactly the shape `fresh_test_store` makes, so that cleanup can
/// never touch a database someone else named.
fn is_test_db_name(name: &str) -> bool {
    name.strip_prefix(TEST_DB_PREFIX).is_some_and(|rest| {
        rest.len() == 24
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Drops test databases made more than `STALE_TEST_DB_SECS` ago. Failures (a database still
/// in use, a concurrent drop) are ignored: cleanup must never fail a test.
async fn drop_stale_test_databases(admin: &mut PgConnection, now: u64) {
    let Ok(names) = sqlx::query_scalar::<_, String>(
        "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
    )
    .bind(TEST_DB_PREFIX)
    .fetch_all(&mut *admin)
    .await
    else {
        return;
    };
    // Only names of the helper's own shape are formatted into SQL below.
    for name in names.into_iter().filter(|n| is_test_db_name(n)) {
        let created = name
            .get(TEST_DB_PREFIX.len()..TEST_DB_PREFIX.len() + 8)
            .and_then(|h| u64::from_str_radix(h, 16).ok());
        if created.is_some_and(|t| now.saturating_sub(t) > STALE_TEST_DB_SECS) {
            let dropped = sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
                .execute(&mut *admin)
                .await;
            if let Err(e) = dropped {
                tracing::debug!(database = %name, "failed to drop stale test database: {e:#}");
            }
        }
    }
}

// ----- the port -----

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context("ping the database")?;
        Ok(())
    }

    #[instrument(skip_all, fields(tenant.name = %tenant.name))]
    async fn create_tenant(
        &self,
        tenant: &NewTenant,
        tenant_key: &str,
        now: i64,
    ) -> Result<Tenant, StoreError> {
        tenants::create_tenant(&self.pool, tenant, tenant_key, now).await
    }

    async fn get_tenant(&self, id: TenantId) -> Result<Option<Tenant>, StoreError> {
        tenants::get_tenant(&self.pool, id).await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        tenants::list_tenants(&self.pool).await
    }

    async fn insert_app(&self, app: &App) -> Result<(), StoreError> {
        tenants::insert_app(&self.pool, app).await
    }

    async fn get_app(&self, app_id: &AppId) -> Result<Option<App>, StoreError> {
        tenants::get_app(&self.pool, app_id).await
    }

    async fn list_apps(&self, tenant: Option<TenantId>) -> Result<Vec<App>, StoreError> {
        tenants::list_apps(&self.pool, tenant).await
    }

    #[instrument(skip_all, fields(%app_id))]
    async fn set_app_secret(&self, app_id: &AppId, secret_hash: &str) -> Result<bool, StoreError> {
        tenants::set_app_secret(&self.pool, app_id, secret_hash).await
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        tenants::insert_token(&self.pool, token).await
    }

    async fn find_token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        tenants::find_token(&self.pool, token_hash).await
    }

    async fn purge_expired_tokens(&self, now: i64) -> Result<u64, StoreError> {
        tenants::purge_expired_tokens(&self.pool, now).await
    }

    #[instrument(skip_all, fields(app_id = %app.app_id))]
    async fn insert_access_key(
        &self,
        app: &App,
        key: &roster_core::AccessKey,
    ) -> Result<(), StoreError> {
        access_keys::insert_access_key(&self.pool, app, key).await
    }

    async fn set_access_key_secret(
        &self,
        app_id: &AppId,
        sealed_secret: &[u8],
    ) -> Result<bool, StoreError> {
        access_keys::set_access_key_secret(&self.pool, app_id, sealed_secret).await
    }

    async fn get_access_key(
        &self,
        key_id: &str,
    ) -> Result<Option<roster_core::AccessKey>, StoreError> {
        access_keys::get_access_key(&self.pool, key_id).await
    }

    async fn list_access_keys(
        &self,
        tenant: Option<TenantId>,
    ) -> Result<Vec<roster_core::AccessKey>, StoreError> {
        access_keys::list_access_keys(&self.pool, tenant).await
    }

    async fn delete_group(&self, tenant: TenantId, group_id: &str) -> Result<bool, StoreError> {
        accounts::delete_group(&self.pool, tenant, group_id).await
    }

    #[instrument(skip_all, fields(%tenant, users = users.len(), mails = mails.len()))]
    async fn insert_users_invited(
        &self,
        tenant: TenantId,
        users: &[User],
        mails: &[roster_core::OutboxMessage],
        change: &Change,
    ) -> Result<Vec<Result<UserKey, StoreError>>, StoreError> {
        accounts::insert_users_invited(&self.pool, tenant, users, mails, change).await
    }

    #[instrument(skip_all, fields(tenant = %dept.tenant))]
    async fn insert_department(
        &self,
        dept: &Department,
        change: &Change,
    ) -> Result<Department, StoreError> {
        departments::insert_department(&self.pool, dept, change).await
    }

    async fn get_department(
        &self,
        tenant: TenantId,
        lookup: &DeptLookup,
    ) -> Result<Option<Department>, StoreError> {
        departments::get_department(&self.pool, tenant, lookup).await
    }

    async fn child_departments(
        &self,
        tenant: TenantId,
        parent: DeptKey,
    ) -> Result<Vec<Department>, StoreError> {
        departments::child_departments(&self.pool, tenant, parent).await
    }

    async fn count_departments(&self, tenant: TenantId) -> Result<u64, StoreError> {
        departments::count_departments(&self.pool, tenant).await
    }

    async fn departments_led_by(
        &self,
        tenant: TenantId,
        leader: &OpenId,
    ) -> Result<Vec<Department>, StoreError> {
        departments::departments_led_by(&self.pool, tenant, leader).await
    }

    async fn department_subtree_counts(
        &self,
        tenant: TenantId,
        dept: DeptKey,
    ) -> Result<(u64, u64), StoreError> {
        departments::subtree_counts(&self.pool, tenant, dept).await
    }

    async fn department_member_count(
        &self,
        tenant: TenantId,
        dept: DeptKey,
    ) -> Result<u64, StoreError> {
        departments::department_member_count(&self.pool, tenant, dept).await
    }

    async fn taken_user_values(
        &self,
        tenant: TenantId,
        probe: &UniqueProbe,
    ) -> Result<TakenValues, StoreError> {
        users::taken_user_values(&self.pool, tenant, probe).await
    }

    #[instrument(skip_all, fields(%tenant, rows = users.len(), atomic))]
    async fn insert_users(
        &self,
        tenant: TenantId,
        users: &[User],
        atomic: bool,
        change: &Change,
    ) -> Result<Vec<Result<UserKey, StoreError>>, StoreError> {
        users::insert_users(&self.pool, tenant, users, atomic, change).await
    }

    async fn get_user(
        &self,
        tenant: TenantId,
        lookup: &UserLookup,
    ) -> Result<Option<User>, StoreError> {
        users::get_user(&self.pool, tenant, lookup).await
    }

    #[instrument(skip_all, fields(%tenant, users = users.len(), departments = departments.len(), groups = groups.len()))]
    async fn save_checked(
        &self,
        tenant: TenantId,
        users: &[User],
        departments: &[Department],
        groups: &[Group],
        read: &ReadVersions,
        change: &Change,
    ) -> Result<(), StoreError> {
        save::save(&self.pool, tenant, users, departments, groups, read, change).await
    }

    async fn get_users(
        &self,
        tenant: TenantId,
        lookups: &[UserLookup],
    ) -> Result<Vec<User>, StoreError> {
        users::get_users(&self.pool, tenant, lookups).await
    }

    async fn users_by_contact(
        &self,
        tenant: TenantId,
        emails: &[String],
        mobiles: &[String],
    ) -> Result<Vec<User>, StoreError> {
        users::users_by_contact(&self.pool, tenant, emails, mobiles).await
    }

    async fn department_members(
        &self,
        tenant: TenantId,
        dept: DeptKey,
        after: Option<UserKey>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        users::department_members(&self.pool, tenant, dept, after, limit).await
    }

    async fn search_users(
        &self,
        tenant: TenantId,
        query: &SearchQuery,
        after: Option<SearchCursor>,
        limit: usize,
    ) -> Result<Vec<(User, SearchCursor)>, StoreError> {
        search::search_users(&self.pool, &self.search_sample, tenant, query, after, limit).await
    }

    async fn users_led_by(
        &self,
        tenant: TenantId,
        leader: &OpenId,
    ) -> Result<Vec<User>, StoreError> {
        users::users_led_by(&self.pool, tenant, leader).await
    }

    async fn users_with_dotted_leader(
        &self,
        tenant: TenantId,
        leader: &OpenId,
    ) -> Result<Vec<User>, StoreError> {
        users::users_with_dotted_leader(&self.pool, tenant, leader).await
    }

    #[instrument(skip_all, fields(before))]
    async fn purge_resigned(&self, before: i64) -> Result<u64, StoreError> {
        users::purge_resigned(&self.pool, before).await
    }

    async fn claim_idempotency_key(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: i64,
    ) -> Result<IdempotencyClaim, StoreError> {
        idempotency::claim(&self.pool, key, fingerprint, now).await
    }

    async fn complete_idempotency_key(
        &self,
        key: &IdempotencyKey,
        result: &str,
    ) -> Result<(), StoreError> {
        idempotency::complete(&self.pool, key, result).await
    }

    async fn release_idempotency_key(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        idempotency::release(&self.pool, key).await
    }

    async fn purge_idempotency_keys(&self, before: i64) -> Result<u64, StoreError> {
        idempotency::purge(&self.pool, before).await
    }

    async fn purge_finished_tasks(&self, before: i64, limit: u64) -> Result<u64, StoreError> {
        tasks::purge_finished(&self.pool, before, limit).await
    }

    async fn jsapi_ticket(&self, app_id: &AppId) -> Result<Option<(String, i64)>, StoreError> {
        tenants::jsapi_ticket(&self.pool, app_id).await
    }

    async fn put_jsapi_ticket(
        &self,
        app_id: &AppId,
        ticket: &str,
        expires_at: i64,
        replace_before: i64,
    ) -> Result<(String, i64), StoreError> {
        tenants::put_jsapi_ticket(&self.pool, app_id, ticket, expires_at, replace_before).await
    }

    async fn list_events(
        &self,
        tenant: Option<TenantId>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<ChangeEvent>, StoreError> {
        events::list_events(&self.pool, tenant, after, limit).await
    }

    #[instrument(skip_all, fields(tenant = %group.tenant))]
    async fn insert_group(&self, group: &Group) -> Result<Group, StoreError> {
        groups::insert_group(&self.pool, group).await
    }

    async fn get_group(
        &self,
        tenant: TenantId,
        group_id: &str,
    ) -> Result<Option<Group>, StoreError> {
        groups::get_group(&self.pool, tenant, group_id).await
    }

    async fn list_groups(&self, tenant: TenantId) -> Result<Vec<Group>, StoreError> {
        groups::list_groups(&self.pool, tenant).await
    }

    async fn groups_owned_by(
        &self,
        tenant: TenantId,
        owner: &OpenId,
    ) -> Result<Vec<Group>, StoreError> {
        groups::groups_owned_by(&self.pool, tenant, owner).await
    }

    #[instrument(skip_all, fields(task = %task.id, items = items.len()))]
    async fn create_task(
        &self,
        task: &roster_core::Task,
        items: &[roster_core::TaskItem],
    ) -> Result<(), StoreError> {
        tasks::create_task(&self.pool, task, items).await
    }

    async fn get_task(
        &self,
        tenant: TenantId,
        id: &roster_core::TaskId,
    ) -> Result<Option<roster_core::Task>, StoreError> {
        tasks::get_task(&self.pool, tenant, id).await
    }

    async fn task_items(
        &self,
        id: &roster_core::TaskId,
        after: Option<u32>,
        limit: usize,
        pending_only: bool,
    ) -> Result<Vec<roster_core::TaskItem>, StoreError> {
        tasks::task_items(&self.pool, id, after, limit, pending_only).await
    }

    async fn claim_task(
        &self,
        worker: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<roster_core::Task>, StoreError> {
        tasks::claim_task(&self.pool, worker, now, lease_ms, None).await
    }

    async fn claim_this_task(
        &self,
        worker: &str,
        now: i64,
        lease_ms: i64,
        id: &roster_core::TaskId,
    ) -> Result<Option<roster_core::Task>, StoreError> {
        tasks::claim_task(&self.pool, worker, now, lease_ms, Some(&id.to_string())).await
    }

    async fn renew_task_lease(
        &self,
        id: &roster_core::TaskId,
        worker: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        tasks::renew_task_lease(&self.pool, id, worker, until).await
    }

    #[instrument(skip_all, fields(task = %chunk.task_id, users = chunk.users.len(), failures = chunk.failures.len()))]
    async fn commit_task_chunk(
        &self,
        chunk: &roster_core::TaskChunk<'_>,
    ) -> Result<Option<Vec<Result<UserKey, StoreError>>>, StoreError> {
        tasks::commit_task_chunk(&self.pool, chunk).await
    }

    async fn create_import(&self, task: &roster_core::Task) -> Result<(), StoreError> {
        imports::create_import(&self.pool, task).await
    }

    async fn append_import_chunk(
        &self,
        id: &roster_core::TaskId,
        chunk: &roster_core::ImportChunk,
        deadline: i64,
    ) -> Result<bool, StoreError> {
        imports::append_chunk(&self.pool, id, chunk, deadline).await
    }

    async fn seal_import(&self, id: &roster_core::TaskId) -> Result<bool, StoreError> {
        imports::seal(&self.pool, id).await
    }

    async fn abort_import(&self, id: &roster_core::TaskId, now: i64) -> Result<bool, StoreError> {
        imports::abort(&self.pool, id, now).await
    }

    async fn expire_imports(&self, now: i64) -> Result<u64, StoreError> {
        imports::expire(&self.pool, now).await
    }

    async fn pending_import_chunks(
        &self,
        id: &roster_core::TaskId,
        after: Option<u32>,
        limit: usize,
    ) -> Result<Vec<roster_core::ImportChunk>, StoreError> {
        imports::pending_chunks(&self.pool, id, after, limit).await
    }

    async fn import_outcomes(
        &self,
        id: &roster_core::TaskId,
        from_row: u32,
        limit: usize,
    ) -> Result<Vec<roster_core::ImportOutcomes>, StoreError> {
        imports::outcomes(&self.pool, id, from_row, limit).await
    }

    async fn commit_import_chunk(
        &self,
        chunk: &roster_core::ImportCommit<'_>,
    ) -> Result<Option<Vec<Result<UserKey, StoreError>>>, StoreError> {
        let committed = imports::commit_chunk(&self.pool, chunk).await?;
        // A bulk import can grow `users` from nothing to a million rows faster than
        // autovacuum re-analyses it, and with statistics of a small table the planner
        // answers the next chunk's uniqueness probes by sequential scans (measured: 10 s per
        // probe at half a million users). Analysing after chunks 1, 2, 4, 8, … keeps the
        // statistics within a factor of two of the table at a few sampled reads each.
        if committed.is_some() && (chunk.seq + 1).is_power_of_two() {
            sqlx::query("ANALYZE users, user_departments, user_search_terms")
                .execute(&self.pool)
                .await
                .map_err(|e| StoreError::Backend(format!("analyze after import chunk: {e}")))?;
        }
        Ok(committed)
    }

    async fn list_users(
        &self,
        tenant: TenantId,
        after: Option<UserKey>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        users::list_users(&self.pool, tenant, after, limit).await
    }

    async fn bulk_write_ended(&self) {
        self.search_sample.bulk_write_ended(&self.pool).await;
    }

    async fn finish_task(
        &self,
        id: &roster_core::TaskId,
        worker: &str,
        status: roster_core::TaskStatus,
        now: i64,
    ) -> Result<bool, StoreError> {
        tasks::finish_task(&self.pool, id, worker, status, now).await
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
        bi::insert_members(&self.pool, tenant, members, max_members, change).await
    }

    async fn get_bi_member(
        &self,
        tenant: TenantId,
        open_id: &OpenId,
    ) -> Result<Option<roster_core::BiMember>, StoreError> {
        bi::get_member(&self.pool, tenant, open_id).await
    }

    async fn list_bi_members(
        &self,
        tenant: TenantId,
        keyword: Option<&str>,
        offset: u64,
        limit: usize,
    ) -> Result<(Vec<roster_core::BiMember>, u64), StoreError> {
        bi::list_members(&self.pool, tenant, keyword, offset, limit).await
    }

    async fn update_bi_member(
        &self,
        member: &roster_core::BiMember,
        read_at: i64,
        change: &Change,
    ) -> Result<bool, StoreError> {
        bi::update_member(&self.pool, member, read_at, change).await
    }

    async fn delete_bi_member(
        &self,
        tenant: TenantId,
        open_id: &OpenId,
        at: i64,
        change: &Change,
    ) -> Result<bool, StoreError> {
        bi::delete_member(&self.pool, tenant, open_id, at, change).await
    }

    async fn claim_signature_nonce(
        &self,
        access_key_id: &str,
        nonce: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        bi::claim_nonce(&self.pool, access_key_id, nonce, now, expires_at).await
    }

    async fn purge_signature_nonces(&self, now: i64) -> Result<u64, StoreError> {
        bi::purge_nonces(&self.pool, now).await
    }

    async fn claim_outbox(
        &self,
        now: i64,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<roster_core::OutboxMessage>, StoreError> {
        outbox::claim_outbox(&self.pool, now, limit, lease_ms).await
    }

    async fn mark_outbox_sent(&self, id: i64, now: i64) -> Result<(), StoreError> {
        outbox::mark_outbox_sent(&self.pool, id, now).await
    }

    async fn mark_outbox_failed(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: i64,
    ) -> Result<(), StoreError> {
        outbox::mark_outbox_failed(&self.pool, id, error, next_attempt_at).await
    }

    async fn list_outbox(
        &self,
        tenant: Option<TenantId>,
        unsent_only: bool,
        limit: usize,
    ) -> Result<Vec<roster_core::OutboxMessage>, StoreError> {
        outbox::list_outbox(&self.pool, tenant, unsent_only, limit).await
    }

    async fn activate(&self, token_hash: &str, now: i64) -> Result<Option<User>, StoreError> {
        outbox::activate(&self.pool, token_hash, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn processes_starting_together_apply_the_migrations_once() {
        let Ok(base) = std::env::var(TEST_URL_ENV) else {
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: {TEST_URL_ENV} not set (processes_starting_together_apply_the_migrations_once)"
            );
            return;
        };
        let options = create_test_database(&base).await.unwrap();
        let starts: Vec<_> = (0..6)
            .map(|_| tokio::spawn(PgStore::connect_with(options.clone())))
            .collect();
        let mut stores = Vec::new();
        for start in starts {
            stores.push(start.await.unwrap().unwrap());
        }
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(&stores[0].pool)
            .await
            .unwrap();
        assert_eq!(applied, i64::try_from(MIGRATOR.iter().count()).unwrap());
        for s in &stores {
            s.ping().await.unwrap();
        }
    }

    /// Every connection the pool opens plans without parallel workers (`session_settings`),
    /// not only the first.
    #[tokio::test]
    async fn every_pooled_connection_plans_without_parallel_workers() {
        let Ok(base) = std::env::var(TEST_URL_ENV) else {
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: {TEST_URL_ENV} not set (every_pooled_connection_plans_without_parallel_workers)"
            );
            return;
        };
        let store = fresh_test_store(&base).await.unwrap();
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut conn = store.pool.acquire().await.unwrap();
            let workers: String = sqlx::query_scalar("SHOW max_parallel_workers_per_gather")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(workers, "0");
            held.push(conn);
        }
        assert_eq!(held.len(), 3);
    }

    /// A pooled connection the server closes while it is idle (a restart, an
    /// administrator's `pg_terminate_backend`) is found by the ping it gets once idle for
    /// [`PING_AFTER_IDLE`], and replaced: the next statement does not fail.
    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced_before_use() {
        let Ok(base) = std::env::var(TEST_URL_ENV) else {
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: {TEST_URL_ENV} not set (a_connection_closed_while_idle_is_replaced_before_use)"
            );
            return;
        };
        let store = fresh_test_store(&base).await.unwrap();
        let pids: Vec<i32> = {
            let mut held = Vec::new();
            let mut pids = Vec::new();
            for _ in 0..3 {
                let mut conn = store.pool.acquire().await.unwrap();
                pids.push(
                    sqlx::query_scalar("SELECT pg_backend_pid()")
                        .fetch_one(&mut *conn)
                        .await
                        .unwrap(),
                );
                held.push(conn);
            }
            pids
        };
        // Terminated from outside the pool, as a restart or an administrator would.
        let mut admin = connect_one(&parse_url(&base).unwrap()).await.unwrap();
        for pid in &pids {
            let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .fetch_one(&mut admin)
                .await
                .unwrap();
            assert!(done, "backend {pid}");
        }
        tokio::time::sleep(PING_AFTER_IDLE + Duration::from_millis(200)).await;
        for _ in 0..3 {
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert!(!pids.contains(&pid), "a terminated backend was used: {pid}");
        }
    }

    /// Migration 0002 fills the new columns of rows written under 0001, and the store
    /// computes and indexes their search terms (0006) at open.
    #[tokio::test]
    async fn migration_0002_backfills_search_text_and_department_leaders() {
        let Ok(base) = std::env::var(TEST_URL_ENV) else {
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: {TEST_URL_ENV} not set (migration_0002_backfills_search_text_and_department_leaders)"
            );
            return;
        };
        let options = create_test_database(&base).await.unwrap();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .unwrap();
        MIGRATOR.run_to(1, &pool).await.unwrap();
        sqlx::raw_sql(
            "INSERT INTO tenants (id, name, tenant_key, created_at) VALUES (1, 'Acme', 'k', 0); \
             INSERT INTO departments (id, tenant_id, open_department_id, department_id, \
               department_id_fold, parent_id, name, doc, created_at, updated_at) VALUES \
               (1, 1, '0', '0', '0', NULL, 'Acme', '{}', 0, 0), \
               (2, 1, 'od-2', 'D2', 'd2', 1, 'Led', '{\"leader\":\"ou_boss\"}', 0, 0); \
             INSERT INTO users (id, tenant_id, open_id, union_id, user_id, user_id_fold, name, \
               is_resigned, is_frozen, is_activated, is_exited, is_unjoin, created_at, \
               updated_at, doc) VALUES \
               (1, 1, 'ou_1', 'on_1', 'u1', 'u1', 'Zhang', false, false, true, false, false, \
                0, 0, '{\"name\":\"张三 ZHANG\",\"en_name\":\"San\",\"nickname\":\"ÉMILE\"}'), \
               (2, 1, 'ou_2', 'on_2', 'u2', 'u2', 'Li', false, false, true, false, false, \
                0, 0, '{\"name\":\"Li\"}');",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = PgStore::connect_with(options).await.unwrap();
        let texts: Vec<String> = sqlx::query_scalar("SELECT search_text FROM users ORDER BY id")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        // Migration 0006 clears search_text and the store recomputes it at open (pinyin
        // needs Rust); the triggers index what it writes.
        assert_eq!(texts[1], "[\"li\"]");
        let indexed: Vec<(String, i64)> = sqlx::query_as(
            "SELECT term::text, user_key FROM user_search_terms \
             WHERE term IN ('zhangsanzhang', 'li') ORDER BY user_key",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        assert_eq!(
            indexed,
            [("zhangsanzhang".to_owned(), 1), ("li".to_owned(), 2)]
        );
        let leaders: Vec<Option<String>> =
            sqlx::query_scalar("SELECT leader_open_id FROM departments ORDER BY id")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert_eq!(leaders, vec![None, Some("ou_boss".to_owned())]);
        // What the store itself writes agrees with the backfill.
        let profile = roster_core::UserProfile {
            name: "张三 ZHANG".into(),
            en_name: Some("San".into()),
            nickname: Some("ÉMILE".into()),
            ..roster_core::UserProfile::default()
        };
        assert_eq!(users::search_text(&profile), texts[0]);
    }

    /// Migration 0011 has users with non-ASCII terms recomputed at open: a user indexed
    /// under the old rules (one reading of a polyphonic surname) gains the other readings,
    /// and an ASCII user keeps its terms untouched.
    #[tokio::test]
    async fn migration_0011_recomputes_the_terms_of_non_ascii_names() {
        let Ok(base) = std::env::var(TEST_URL_ENV) else {
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: {TEST_URL_ENV} not set (migration_0011_recomputes_the_terms_of_non_ascii_names)"
            );
            return;
        };
        let options = create_test_database(&base).await.unwrap();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .unwrap();
        MIGRATOR.run_to(10, &pool).await.unwrap();
        let profile = roster_core::UserProfile {
            name: "单雄信".into(),
            ..roster_core::UserProfile::default()
        };
        sqlx::raw_sql(
            "INSERT INTO tenants (id, name, tenant_key, created_at) VALUES (1, 'Acme', 'k', 0); \
             INSERT INTO departments (id, tenant_id, open_department_id, department_id, \
               department_id_fold, parent_id, name, doc, created_at, updated_at) VALUES \
               (1, 1, '0', '0', '0', NULL, 'Acme', '{}', 0, 0);",
        )
        .execute(&pool)
        .await
        .unwrap();
        for (id, name, doc, text) in [
            (
                1_i64,
                "单雄信",
                roster_store_common::encode_profile(&profile),
                "[\"单雄信\",\"danxiongxin\",\"dxx\",\"\u{E000}雄信\",\"\u{E000}信\"]",
            ),
            (
                2,
                "Li Lee",
                "{\"name\":\"Li Lee\"}".to_owned(),
                "[\"li lee\",\"\u{E000}lee\"]",
            ),
        ] {
            sqlx::query(
                "INSERT INTO users (id, tenant_id, open_id, union_id, user_id, user_id_fold, \
                   name, is_resigned, is_frozen, is_activated, is_exited, is_unjoin, \
                   created_at, updated_at, doc, search_text) \
                 VALUES ($1, 1, 'ou_' || $1, 'on_' || $1, 'u' || $1, 'u' || $1, $2, false, \
                   false, true, false, false, 0, 0, $3, $4)",
            )
            .bind(id)
            .bind(name)
            .bind(doc)
            .bind(text)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let store = PgStore::connect_with(options).await.unwrap();
        let texts: Vec<String> = sqlx::query_scalar("SELECT search_text FROM users ORDER BY id")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        assert_eq!(texts[0], users::search_text(&profile));
        assert_eq!(texts[1], "[\"li lee\",\"\u{E000}lee\"]", "ASCII terms stay");
        let terms: Vec<String> = sqlx::query_scalar(
            "SELECT term::text FROM user_search_terms WHERE user_key = 1 ORDER BY term",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        for want in ["shanxiongxin", "sxx", "danxiongxin", "dxx"] {
            assert!(terms.contains(&want.to_owned()), "{want} in {terms:?}");
        }
    }

    #[test]
    fn only_names_of_the_helper_s_own_shape_count_as_test_databases() {
        assert!(is_test_db_name("roster_test_6920a1b20123456789abcdef"));
        assert!(!is_test_db_name("roster_test_production"));
        assert!(!is_test_db_name("roster_test_6920a1b2"));
        assert!(!is_test_db_name("roster_test_6920A1B20123456789ABCDEF"));
        assert!(!is_test_db_name("roster"));
    }
}
