//! Fresh PostgreSQL databases for the benchmark, created beside the one the URL names and
//! dropped afterwards, so each phase starts from an empty schema.

use anyhow::Context;
use sqlx::Connection as _;

/// A database created for one phase.
pub(crate) struct FreshDb {
    admin_url: String,
    name: String,
    /// The URL of the fresh database.
    pub(crate) url: String,
}

impl FreshDb {
    /// Creates `roster_bench_<label>_<pid>` on the server of `admin_url`.
    pub(crate) async fn create(admin_url: &str, label: &str) -> anyhow::Result<Self> {
        let name = format!("roster_bench_{label}_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .context("connect to PostgreSQL")?;
        // The name is built from a fixed label and the pid, so quoting it is enough.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\""
        )))
        .execute(&mut conn)
        .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await?;
        let mut url = url_with_db(admin_url, &name);
        if url.is_empty() {
            admin_url.clone_into(&mut url);
        }
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url,
        })
    }

    /// Drops the database, unless `ROSTER_BENCH_KEEP` is set (as for the SQLite scratch
    /// directories): then it stays, for studying query plans at the run's size, and its URL
    /// is printed.
    pub(crate) async fn drop_db(self) -> anyhow::Result<()> {
        if std::env::var_os("ROSTER_BENCH_KEEP").is_some() {
            println!("  kept PostgreSQL database {}", self.url);
            return Ok(());
        }
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await?;
        Ok(())
    }
}

/// `postgres://u@h:p/db?x` with the database replaced by `name`.
fn url_with_db(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let Some(scheme_end) = base.find("://") else {
        return String::new();
    };
    let after = &base[scheme_end + 3..];
    let host_part = after.split_once('/').map_or(after, |(h, _)| h);
    let mut out = format!("{}://{}/{}", &base[..scheme_end], host_part, name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database() {
        assert_eq!(
            super::url_with_db("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::url_with_db("postgres://h/test?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
