//! roster-app: what the server and the CLI share at start-up.
//!
//! - `config`: one `Config`, loaded in layers (defaults, `roster.toml`, `ROSTER_*`
//!   environment variables, command-line flags), so each binary sees the same settings.
//! - `open_store`: the one place that chooses a storage backend, by the URL's scheme.
//! - `init_tracing`: logs to standard error, so that standard output stays for what a
//!   person asked for (credentials, listings).
//!
//! The core never sees `Config`: this crate hands it plain values.

pub mod config;
pub mod mail;
pub mod sealer;

use std::sync::Arc;

use anyhow::Context;
use roster_core::{Directory, RandomIds, Store, SystemClock};

pub use config::Config;

/// Creates a data directory (and missing parents) that only its owner may enter: the store
/// holds unsent invitation links and the sealing key lives beside it. A directory that
/// already exists keeps the mode its owner gave it.
pub(crate) fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// The permission bits that let users other than the owner into `path`, if any: a data
/// directory Roster creates is private (0700), but one an older version (or a person)
/// created keeps whatever mode it has, and its database holds token hashes, the outbox and
/// the change log.
#[cfg(unix)]
pub(crate) fn open_to_others(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

/// Warns once at start when the data directory lets other users in; Roster does not
/// change the mode of a directory it did not create, which may be shared on purpose.
fn warn_if_open_to_others(dir: &std::path::Path) {
    #[cfg(unix)]
    if let Some(mode) = open_to_others(dir) {
        tracing::warn!(
            "the data directory {} has mode {mode:o}: other users of this machine can read \
             the database (token hashes, the outbox, the change log); `chmod 700` it",
            dir.display()
        );
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Opens (and migrates) the store that `config` names.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.database_url();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = std::path::Path::new(path);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent)
                .with_context(|| format!("create the data directory {}", parent.display()))?;
            warn_if_open_to_others(parent);
        }
        let options = roster_store_sqlite::SqliteOptions {
            mmap_bytes: config.sqlite_mmap_mb.saturating_mul(1024 * 1024),
        };
        let store = roster_store_sqlite::SqliteStore::open_with(path, options)
            .with_context(|| format!("open the SQLite database {}", path.display()))?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = roster_store_postgres::PgStore::connect(&url)
            .await
            .with_context(|| format!("connect to PostgreSQL at {}", config::redact_url(&url)))?;
        Ok(Arc::new(store))
    } else {
        anyhow::bail!(
            "unsupported database URL {}: use sqlite://PATH or postgres://…",
            config::redact_url(&url)
        )
    }
}

/// Opens the store and builds the directory over it with the real clock and ids, and the
/// sealer for access-key secrets (`secret_key`, or `<data_dir>/secret.key`).
pub async fn open_directory(config: &Config) -> anyhow::Result<Directory> {
    let store = open_store(config).await?;
    let sample = sealed_sample(store.as_ref()).await?;
    let sealer = if sample.is_some() {
        // A database that already holds sealed secrets was sealed under some key: a process
        // without one must not make up its own (it would seal what no other node can open).
        sealer::ChaChaSealer::load_existing(config.secret_key.as_deref(), &config.data_dir)
            .context("load the key that seals access-key secrets")?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "this database holds access-key secrets sealed under a key, but no key is \
                     configured: set `secret_key` (ROSTER_SECRET_KEY) to the key of the node \
                     that created them, or put its secret.key into {}",
                    config.data_dir.display()
                )
            })?
    } else {
        sealer::ChaChaSealer::load_or_create(config.secret_key.as_deref(), &config.data_dir)
            .context("load the key that seals access-key secrets")?
    };
    check_key_opens(&sealer, sample.as_deref())?;
    Ok(
        Directory::new(store, Arc::new(SystemClock), Arc::new(RandomIds))
            .with_sealer(Arc::new(sealer)),
    )
}

/// One sealed access-key secret of the database, if it holds any: what a process's key
/// must open for it to share the database with the processes that sealed them.
async fn sealed_sample(store: &dyn roster_core::Store) -> anyhow::Result<Option<Vec<u8>>> {
    Ok(store
        .list_access_keys(None)
        .await
        .map_err(|e| anyhow::anyhow!("read the access keys: {e}"))?
        .into_iter()
        .map(|k| k.sealed_secret)
        .find(|s| !s.is_empty()))
}

/// Refuses a key that does not open the database's sealed secrets: every node and command
/// on one database must share one key (README, "Access keys"), and a process with another
/// would answer every signed request with an error and seal secrets no other node can open.
fn check_key_opens(sealer: &sealer::ChaChaSealer, sample: Option<&[u8]>) -> anyhow::Result<()> {
    use roster_core::SecretSealer as _;
    if let Some(sealed) = sample {
        sealer.open(sealed).map_err(|_| {
            anyhow::anyhow!(
                "the configured secret key does not open the access-key secrets stored in this \
                 database: every node and command working on one database must use the same \
                 `secret_key` (ROSTER_SECRET_KEY or <data_dir>/secret.key)"
            )
        })?;
    }
    Ok(())
}

/// `open_directory` for commands that work on an existing directory (`import` straight to
/// the database, `export`): a SQLite file that does not exist, or a database (SQLite or
/// PostgreSQL) without Roster's tables, is an error rather than a new, empty directory, so
/// that a mistyped path or URL creates nothing, and no secret key is created
/// (with `--database-url` the data directory may be wherever the command runs; these
/// commands seal nothing, so they use the key only if there is one).
pub async fn open_existing_directory(config: &Config) -> anyhow::Result<Directory> {
    ensure_roster_database(config).await?;
    with_existing_key(open_store(config).await?, config).await
}

/// The directory over `store`, sealing with the configured or the data directory's key if
/// there is one (checked against the database's sealed secrets), and without a sealer if not.
async fn with_existing_key(store: Arc<dyn Store>, config: &Config) -> anyhow::Result<Directory> {
    let sample = sealed_sample(store.as_ref()).await?;
    let dir = Directory::new(store, Arc::new(SystemClock), Arc::new(RandomIds));
    let sealer =
        sealer::ChaChaSealer::load_existing(config.secret_key.as_deref(), &config.data_dir)
            .context("load the key that seals access-key secrets")?;
    if let Some(s) = &sealer {
        check_key_opens(s, sample.as_deref())?;
    }
    Ok(match sealer {
        Some(s) => dir.with_sealer(Arc::new(s)),
        None => dir,
    })
}

/// Opens the directory for an administration command that writes (`tenant create`,
/// `app create`, `app rotate-secret`). `may_create_store`: the command may start a new
/// directory (`tenant create` on a fresh data directory); otherwise a missing or foreign
/// database is an error, as for the reading commands, so that a mistyped path leaves nothing
/// behind. The sealing key is the configured one or the data directory's; a new one is made
/// only where `roster serve` would keep it, beside the data directory's own SQLite file. With
/// `--database-url` the data directory is wherever the command runs, and a key made there
/// would seal secrets that no server could open, so the directory then has no sealer and a
/// command that must seal says what to configure ([`Directory::can_seal`]).
pub async fn open_admin_directory(
    config: &Config,
    may_create_store: bool,
) -> anyhow::Result<Directory> {
    if !may_create_store {
        ensure_roster_database(config).await?;
    }
    if config.database_url.is_none() {
        open_directory(config).await
    } else {
        with_existing_key(open_store(config).await?, config).await
    }
}

/// Refuses a SQLite file that does not exist, or a database (SQLite or PostgreSQL) without
/// Roster's tables, creating nothing.
async fn ensure_roster_database(config: &Config) -> anyhow::Result<()> {
    let url = config.database_url();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = std::path::Path::new(path);
        anyhow::ensure!(
            path.is_file(),
            "no database at {} (`roster serve` or `roster migrate` creates one)",
            path.display()
        );
        let roster = roster_store_sqlite::SqliteStore::is_roster_database(path)
            .with_context(|| format!("open the SQLite database {}", path.display()))?;
        anyhow::ensure!(
            roster,
            "{} is not a Roster database (`roster serve` or `roster migrate` makes one)",
            path.display()
        );
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let roster = roster_store_postgres::PgStore::is_roster_database(&url)
            .await
            .with_context(|| format!("connect to PostgreSQL at {}", config::redact_url(&url)))?;
        anyhow::ensure!(
            roster,
            "the database at {} holds no Roster tables (`roster serve` or `roster migrate` \
             makes them)",
            config::redact_url(&url)
        );
    }
    Ok(())
}

/// Sends logs to standard error, filtered by `RUST_LOG` or else the configured level.
pub fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: a log file, a pipe or journald would keep
    // the escape codes as text. `NO_COLOR` is honoured either way.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    // A second initialisation (tests) is harmless, so its error is ignored.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_directory_others_can_enter_is_noticed_and_a_private_one_is_not() {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let made = tmp.path().join("made");
        super::create_private_dir(&made).expect("create");
        assert_eq!(
            super::open_to_others(&made),
            None,
            "Roster's own is private"
        );
        let old = tmp.path().join("old");
        std::fs::create_dir(&old).expect("create");
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(super::open_to_others(&old), Some(0o755));
    }
}
