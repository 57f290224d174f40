//! Layered configuration: defaults, then `roster.toml` (or the file given with `--config`),
//! then `ROSTER_*` environment variables, then command-line flags. Unknown keys are errors,
//! so a typo in the file does not silently fall back to a default.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// All settings.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Directory for the `SQLite` database (and anything else kept on disk).
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; defaults to `sqlite://<data_dir>/roster.db`.
    pub database_url: Option<String>,
    /// Log filter (`info`, `info,roster_http=debug` for a line per request, …) when
    /// `RUST_LOG` is unset.
    pub log: String,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Most client connections open at once. At start the process's soft limit of open
    /// files is raised to its hard limit, and this is lowered, if need be, to leave room for
    /// the files and database connections the server opens itself: a server that runs out
    /// of descriptors cannot open a database connection or log its own failure.
    pub max_connections: usize,
    /// Seconds between sweeps of expired tokens, old idempotency keys and users past
    /// their retention.
    pub token_purge_interval_s: u64,
    /// Days a deleted (resigned) user stays resurrectable before it is purged for good.
    pub resigned_retention_days: u32,
    /// Hours an idempotency key (`client_token`) is remembered.
    pub idempotency_retention_hours: u32,
    /// Days a finished task (a v2 `batch_add` or an import) and its per-item results stay
    /// readable before they are deleted. At least one (Feishu keeps tasks a day), and at
    /// least as long as idempotency keys, so that a replayed `client_token` never answers
    /// with a task that is gone.
    pub task_retention_days: u32,
    /// Base URL of this server as users reach it, for invitation links; defaults to
    /// `http://<listen>`.
    pub public_url: Option<String>,
    /// SMTP relay for invitations, e.g. `smtp://127.0.0.1:2525`, or with AUTH
    /// `smtp://user:pass@127.0.0.1:2525` (a local relay only: Roster speaks plain SMTP, and
    /// credentials to another host would cross the network in clear text); without it mails
    /// stay in the outbox.
    pub smtp_url: Option<String>,
    /// Sender address of invitations.
    pub mail_from: String,
    /// Hours an invitation link works.
    pub invitation_ttl_hours: u32,
    /// Most users one Feishu v2 `batch_add` call may carry.
    pub feishu_batch_add_max_users: usize,
    /// Licence cap of each tenant's Quick BI organisation: the most members it may have
    /// (`BatchAddFeishuUsers` beyond it fails with `Instance.Over.MaxLicense`).
    pub quickbi_max_members: u64,
    /// Background task workers in this process.
    pub task_workers: usize,
    /// Seconds a worker's claim on a task lasts without renewal (a dead node's task is
    /// taken over after this).
    pub task_lease_seconds: u32,
    /// Base64 of the 32-byte key that seals vendor access-key secrets at rest
    /// (XChaCha20-Poly1305). Unset: generated once into `<data_dir>/secret.key` (mode 0600)
    /// and reused. Nodes sharing one PostgreSQL database must share this key.
    pub secret_key: Option<String>,
    /// MiB of the SQLite database that reader connections memory-map (0: none, the
    /// default). Faster point reads (GET user about 15% at a million users), but the mapped
    /// file counts in the server's resident memory; see `SqliteOptions::mmap_bytes`.
    /// Ignored with PostgreSQL.
    pub sqlite_mmap_mb: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("roster-data"),
            database_url: None,
            log: "info".into(),
            body_limit: 8 * 1024 * 1024,
            max_connections: 10_000,
            token_purge_interval_s: 600,
            resigned_retention_days: 30,
            idempotency_retention_hours: 48,
            task_retention_days: 30,
            public_url: None,
            smtp_url: None,
            mail_from: "Roster <roster@localhost>".into(),
            invitation_ttl_hours: 168,
            feishu_batch_add_max_users: 50,
            quickbi_max_members: 10_000,
            task_workers: 1,
            task_lease_seconds: 30,
            secret_key: None,
            sqlite_mmap_mb: 0,
        }
    }
}

/// Settings given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

/// The keys of `Config` as `ROSTER_*` variables name them. Only these are read from the
/// environment, so other `ROSTER_*` variables (test harnesses, scripts) cannot break start-up.
const KNOWN_KEYS: &[&str] = &[
    "secret_key",
    "listen",
    "data_dir",
    "database_url",
    "log",
    "body_limit",
    "max_connections",
    "token_purge_interval_s",
    "resigned_retention_days",
    "idempotency_retention_hours",
    "task_retention_days",
    "public_url",
    "smtp_url",
    "mail_from",
    "invitation_ttl_hours",
    "feishu_batch_add_max_users",
    "quickbi_max_members",
    "task_workers",
    "task_lease_seconds",
    "sqlite_mmap_mb",
];

impl Config {
    /// Loads the layers. `file` is the `--config` path; without it `roster.toml` in the
    /// working directory is read when it exists.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                anyhow::ensure!(
                    path.exists(),
                    "config file {} does not exist",
                    path.display()
                );
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("roster.toml")),
        }
        let config: Config = figment
            .merge(Env::prefixed("ROSTER_").split("__").only(KNOWN_KEYS))
            .merge(Serialized::defaults(overrides))
            .extract()?;
        config.check()?;
        Ok(config)
    }

    /// Refuses settings that would leave the server running but broken, naming the key:
    /// a zero where a count or a duration must be positive, a log filter that does not
    /// parse (it used to fall back to `info` without a word), and no task worker on SQLite,
    /// where no other node would run the imports it accepts.
    fn check(&self) -> anyhow::Result<()> {
        let positive = [
            (
                "feishu_batch_add_max_users",
                self.feishu_batch_add_max_users as u64,
            ),
            ("task_lease_seconds", u64::from(self.task_lease_seconds)),
            ("invitation_ttl_hours", u64::from(self.invitation_ttl_hours)),
            ("token_purge_interval_s", self.token_purge_interval_s),
            // A zero would forget every `client_token` at the next sweep, so that a retry
            // minutes later created a second user, and would make every Quick BI add fail.
            (
                "idempotency_retention_hours",
                u64::from(self.idempotency_retention_hours),
            ),
            ("quickbi_max_members", self.quickbi_max_members),
            ("max_connections", self.max_connections as u64),
            ("task_retention_days", u64::from(self.task_retention_days)),
        ];
        for (key, value) in positive {
            anyhow::ensure!(value > 0, "{key} must be at least 1");
        }
        anyhow::ensure!(
            u64::from(self.task_retention_days) * 24 >= u64::from(self.idempotency_retention_hours),
            "task_retention_days ({}) must cover idempotency_retention_hours ({}): a replayed \
             client_token would otherwise answer with a task that is gone",
            self.task_retention_days,
            self.idempotency_retention_hours
        );
        anyhow::ensure!(
            self.body_limit >= 1024,
            "body_limit must be at least 1024 bytes (it is {})",
            self.body_limit
        );
        anyhow::ensure!(
            self.task_workers > 0 || self.database_url().starts_with("postgres"),
            "task_workers = 0 runs no background tasks, and on SQLite no other node would run \
             them: imports and batch_add tasks would never finish"
        );
        // Invitation links and avatar URLs start with it: a value that is not an absolute
        // http(s) URL would mail links that lead nowhere.
        if let Some(public) = &self.public_url {
            let ok = url::Url::parse(public).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
            });
            anyhow::ensure!(
                ok,
                "public_url {public:?} must be an absolute http:// or https:// URL without a \
                 query (the base of invitation links and avatar URLs)"
            );
        }
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .map_err(|e| anyhow::anyhow!("log filter {:?} does not parse: {e}", self.log))?;
        // `RUST_LOG`, when set, wins over `log` (`init_tracing`); one that does not parse
        // would otherwise be dropped without a word.
        if let Ok(env) = std::env::var("RUST_LOG") {
            tracing_subscriber::EnvFilter::try_new(&env)
                .map_err(|e| anyhow::anyhow!("RUST_LOG log filter {env:?} does not parse: {e}"))?;
        }
        Ok(())
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("roster.db").display()))
    }
}

/// Hides the password of a URL such as `postgres://user:secret@host/db`, wherever the
/// URL's reader (sqlx, lettre) would take one from: the user info, whose password may itself
/// hold an unescaped `@` (the user info ends at the authority's last `@`, as URL parsers
/// read it), and a `password` (or `sslpassword`) query parameter.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = query
                .split_once('#')
                .map_or((query, None), |(q, f)| (q, Some(f)));
            let query = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.to_ascii_lowercase().ends_with("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("&");
            match fragment {
                Some(f) => format!("{path}?{query}#{f}"),
                None => format!("{path}?{query}"),
            }
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url()))
            .field("log", &self.log)
            .field("body_limit", &self.body_limit)
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment's own large error.
mod tests {
    use super::*;

    #[test]
    fn a_public_url_must_be_an_absolute_http_url() {
        let with = |u: &str| Config {
            public_url: Some(u.to_owned()),
            ..Config::default()
        };
        for good in [
            "https://roster.example.com",
            "http://127.0.0.1:8080/",
            "https://example.com/roster",
        ] {
            assert!(with(good).check().is_ok(), "{good}");
        }
        for bad in [
            "not a url",
            "roster.example.com",
            "ftp://example.com",
            "https://example.com/?x=1",
            "/relative",
        ] {
            let err = with(bad).check().expect_err(bad).to_string();
            assert!(err.contains("public_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn finished_tasks_outlive_the_idempotency_keys_that_name_them() {
        let with = |days: u32, hours: u32| Config {
            task_retention_days: days,
            idempotency_retention_hours: hours,
            ..Config::default()
        };
        assert!(with(2, 48).check().is_ok());
        assert!(with(1, 24).check().is_ok());
        let err = with(1, 48)
            .check()
            .expect_err("a day of tasks for two days of keys");
        assert!(err.to_string().contains("task_retention_days"), "{err}");
        assert!(with(0, 0).check().is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://roster:hunter2@db:5432/roster"),
            "postgres://roster:***@db:5432/roster"
        );
        assert_eq!(redact_url("sqlite://x/roster.db"), "sqlite://x/roster.db");
        // A password holding `@`, and one in the query, as sqlx reads them.
        assert_eq!(
            redact_url("postgres://nouser:PG@SECRET3@127.0.0.1:5432/db"),
            "postgres://nouser:***@127.0.0.1:5432/db"
        );
        assert_eq!(
            redact_url("postgres://u@h:5432/db?sslmode=disable&password=PGSECRET4#x"),
            "postgres://u@h:5432/db?sslmode=disable&password=***#x"
        );
        assert_eq!(
            redact_url("postgresql://h/db?PassWord=a&sslpassword=b"),
            "postgresql://h/db?PassWord=***&sslpassword=***"
        );
    }

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "roster.toml",
                "listen = \"127.0.0.1:9000\"\nlog = \"debug\"",
            )?;
            jail.set_env("ROSTER_LOG", "warn");
            let flags = Overrides {
                data_dir: Some("elsewhere".into()),
                ..Overrides::default()
            };
            let c = Config::load(None, &flags).expect("loads");
            assert_eq!(c.listen, "127.0.0.1:9000");
            assert_eq!(c.log, "warn");
            assert_eq!(c.database_url(), "sqlite://elsewhere/roster.db");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_rejected() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("roster.toml", "lisen = \"127.0.0.1:9000\"")?;
            assert!(Config::load(None, &Overrides::default()).is_err());
            Ok(())
        });
    }

    /// Every setting can be given as a `ROSTER_*` variable, as the README promises: a key
    /// added to `Config` but not to `KNOWN_KEYS` would be silently ignored there.
    #[test]
    fn every_key_is_read_from_the_environment() {
        let value = serde_json::to_value(Config::default()).expect("serializes");
        let mut keys: Vec<&str> = value
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut known = KNOWN_KEYS.to_vec();
        known.sort_unstable();
        assert_eq!(keys, known);
        figment::Jail::expect_with(|jail| {
            jail.set_env("ROSTER_SQLITE_MMAP_MB", "256");
            let c = Config::load(None, &Overrides::default()).expect("loads");
            assert_eq!(c.sqlite_mmap_mb, 256);
            Ok(())
        });
    }
}
