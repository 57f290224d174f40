//! Search latency at scale on PostgreSQL: loads N generated users through the store into a
//! fresh database on the server named by `ROSTER_TEST_POSTGRES_URL`, then prints p50/p99 per
//! kind of query (`roster_store_conformance::search_bench`).
//!
//! `ROSTER_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1/test \
//!  cargo run --release -p roster-store-postgres --example pg_search_bench [users] [queries]`

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let q: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let url = std::env::var(roster_store_postgres::TEST_URL_ENV).unwrap();
    let store = roster_store_postgres::fresh_test_store(&url).await.unwrap();
    roster_store_conformance::search_bench::run(Arc::new(store), n, q).await;
}
