//! `roster serve`: open the store, create the first tenant on an empty store, mount the
//! front doors and serve until SIGTERM or Ctrl-C.

use std::time::Duration;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use roster_app::Config;
use roster_core::Directory;

/// Builds the whole HTTP application over a directory.
pub(crate) fn app(dir: Directory, body_limit: usize) -> Router {
    let ops = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(dir.clone());
    let app = Router::new()
        .merge(ops)
        .merge(roster_api_feishu::router(dir))
        // Unknown paths answer in the Feishu envelope: it is the dialect whose SDKs parse
        // every body as JSON and fail on anything else.
        .fallback(roster_api_feishu::not_found)
        .layer(DefaultBodyLimit::max(body_limit));
    roster_http::with_common_layers(app)
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(dir): State<Directory>) -> impl IntoResponse {
    match dir.store().ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "ready", "store": dir.store().backend() })),
        ),
        Err(err) => {
            tracing::warn!("failed to reach the store: {err}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    serde_json::json!({ "status": "unavailable", "store": dir.store().backend() }),
                ),
            )
        }
    }
}

#[allow(clippy::print_stdout)] // First-start credentials and the address are for the person at the terminal.
pub(crate) async fn run(config: Config) -> anyhow::Result<()> {
    let dir = roster_app::open_directory(&config).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("listen on {}", config.listen))?;
    let addr = listener
        .local_addr()
        .context("read the listening address")?;
    if let Some(first) = dir.bootstrap().await? {
        println!(
            "Created tenant {:?} (id {}) and its first app.",
            first.tenant.name, first.tenant.id
        );
        println!("  app_id:     {}", first.app.app_id);
        println!("  app_secret: {}", first.secret);
        println!("The secret is shown only now. Try:");
        println!(
            "  curl -s -X POST http://{addr}/open-apis/auth/v3/tenant_access_token/internal \\\n    -H 'Content-Type: application/json' \\\n    -d '{{\"app_id\":\"{}\",\"app_secret\":\"{}\"}}'",
            first.app.app_id, first.secret
        );
    }
    println!(
        "roster listening on http://{addr} (store: {})",
        dir.store().backend()
    );
    tracing::info!(%addr, store = dir.store().backend(), "listening");

    let purge_dir = dir.clone();
    let every = Duration::from_secs(config.token_purge_interval_s.max(1));
    let retention_ms = i64::from(config.resigned_retention_days) * 86_400_000;
    let key_retention_ms = i64::from(config.idempotency_retention_hours) * 3_600_000;
    let purger = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match purge_dir.purge_expired_tokens().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired tokens removed"),
                Err(err) => tracing::warn!("failed to purge expired tokens: {err}"),
            }
            match purge_dir
                .purge_expired(retention_ms, key_retention_ms)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "resigned users past retention removed"),
                Err(err) => tracing::warn!("failed to purge resigned users: {err}"),
            }
        }
    });

    roster_http::serve(listener, app(dir, config.body_limit), shutdown_signal())
        .await
        .context("serve HTTP")?;
    purger.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM (what service managers send) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!("failed to listen for Ctrl-C: {err}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::warn!("failed to listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; draining connections");
}
