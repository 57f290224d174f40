//! Search latency at scale on SQLite: loads N generated users through the store into a
//! temporary database, then prints p50/p99 per kind of query
//! (`roster_store_conformance::search_bench`).
//!
//! `cargo run --release -p roster-store-sqlite --example sqlite_search_bench [users] [queries]`
//!
//! With `SEARCH_BENCH_DB=path` naming a database this example loaded before (kept, not
//! temporary), the loading is skipped and only the queries run, on tenant 1.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use roster_store_sqlite::SqliteStore;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let q: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    if let Ok(path) = std::env::var("SEARCH_BENCH_DB") {
        let path = std::path::PathBuf::from(path);
        let existed = path.exists();
        let store = Arc::new(SqliteStore::open(&path).unwrap());
        if existed {
            let t = roster_core::TenantId(1);
            roster_store_conformance::search_bench::measure_only(store, t, q).await;
        } else {
            roster_store_conformance::search_bench::run(store, n, q).await;
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("search.db")).unwrap();
    roster_store_conformance::search_bench::run(Arc::new(store), n, q).await;
}
