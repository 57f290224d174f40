//! The shared store conformance suite (`roster-store-conformance`) on PostgreSQL. Every test
//! gets a fresh database on the server named by `ROSTER_TEST_POSTGRES_URL`. Without the
//! variable every test prints `SKIPPED: …` and returns; a variable that is set but names an
//! unusable server fails the tests.

use std::sync::Arc;

use roster_core::Store;
use roster_store_postgres::{fresh_test_store, TEST_URL_ENV};

async fn postgres_store() -> Result<Arc<dyn Store>, String> {
    let url = match std::env::var(TEST_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => return Err(format!("{TEST_URL_ENV} not set")),
    };
    let store = fresh_test_store(&url).await.unwrap_or_else(|e| {
        panic!("{TEST_URL_ENV} is set, but no fresh test database could be made: {e}")
    });
    Ok(Arc::new(store))
}

roster_store_conformance::conformance_tests!(postgres_store());
