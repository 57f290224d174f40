//! The shared store conformance suite (`roster-store-conformance`) on SQLite. Every test gets
//! a fresh database file in a temporary directory of its own; it always runs.

use std::sync::Arc;

use roster_core::Store;
use roster_store_sqlite::SqliteStore;

/// Opens a new store in a new temporary directory. The directory must outlive the store,
/// which the generated test owns, so it is leaked: it stays in the system's temporary
/// directory after the test process exits.
async fn sqlite_store() -> Option<Arc<dyn Store>> {
    let dir: &'static tempfile::TempDir = Box::leak(Box::new(
        tempfile::Builder::new()
            .prefix("roster-conformance-")
            .tempdir()
            .expect("create a temporary directory"),
    ));
    let path = dir.path().join("roster.db");
    // Opening blocks (file I/O, migrations), so it runs off the async workers.
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
        .await
        .expect("the open task ran")
        .expect("open a fresh SQLite store");
    Some(Arc::new(store))
}

roster_store_conformance::conformance_tests!(sqlite_store());
