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

/// Builds the whole HTTP application over a directory. `invitations` carries the address
/// activation links point at (the bound address when no `public_url` is set).
pub(crate) fn app(
    dir: Directory,
    config: &Config,
    invitations: roster_core::Invitations,
) -> Router {
    // Another method on these paths answers 405 in JSON, as every other route does.
    let ops = Router::new()
        .route("/healthz", get(healthz).fallback(ops_method_not_allowed))
        .route("/readyz", get(readyz).fallback(ops_method_not_allowed))
        // A HEAD would run the GET handler and use the link up: mail scanners and link
        // previews check links with HEAD, and an account must not activate behind its owner.
        .route(
            "/activate/{token}",
            get(activate)
                .head(ops_method_not_allowed)
                .fallback(ops_method_not_allowed),
        )
        .with_state(dir.clone());
    let feishu = roster_api_feishu::FeishuConfig {
        batch_add_max_users: config.feishu_batch_add_max_users,
        body_limit: config.body_limit,
        public_url: std::sync::Arc::from(invitations.base_url.as_str()),
    };
    let app = Router::new()
        .merge(ops)
        .merge(roster_api_feishu::router(dir.clone(), feishu))
        // Quick BI's RPC actions live at the root path only (`POST /`, `GET /`), chosen by
        // `x-acs-action` or `Action`; every other path still reaches its own dialect.
        .merge(roster_api_quickbi::router(
            dir.clone(),
            roster_api_quickbi::QuickBiConfig {
                max_members: config.quickbi_max_members,
            },
        ))
        // Huawei Workspace: `/v3/auth/tokens` and `/v2/{project_id}/…` (AK/SK-signed).
        .merge(roster_api_huawei::router(
            dir.clone(),
            roster_api_huawei::HuaweiConfig {
                invitations,
                batch_create_max_users: 200,
                body_limit: config.body_limit,
            },
        ))
        // Roster's own API; its upload route streams and lifts the body limit below.
        .merge(roster_api_admin::router(dir))
        // Unknown paths answer in the Feishu envelope: it is the dialect whose SDKs parse
        // every body as JSON and fail on anything else.
        .fallback(roster_api_feishu::not_found)
        .layer(DefaultBodyLimit::max(config.body_limit));
    roster_http::with_common_layers(app)
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn ops_method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(serde_json::json!({ "status": "error", "message": "method not allowed" })),
    )
}

/// The invitation link: activates the account once.
async fn activate(
    State(dir): State<Directory>,
    token: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> impl IntoResponse {
    // A token that does not decode to UTF-8, or holds a NUL, is no token Roster issued:
    // answered in this route's JSON like any other bad link, never axum's plain text.
    let token = match token {
        Ok(axum::extract::Path(t)) if !t.contains('\0') => t,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(
                    serde_json::json!({ "status": "invalid", "message": "this link is malformed" }),
                ),
            )
        }
    };
    match dir.activate_invitation(&token).await {
        Ok(user) => (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "activated", "name": user.profile.name })),
        ),
        Err(roster_core::CoreError::NotFound { .. }) => (
            StatusCode::NOT_FOUND,
            Json(
                serde_json::json!({ "status": "invalid", "message": "this link is unknown, used or expired" }),
            ),
        ),
        Err(err) => {
            tracing::error!("failed to activate an account: {err}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({ "status": "error" })),
            )
        }
    }
}

/// File descriptors kept for the server's own use beside its client connections: the
/// database and its WAL, the PostgreSQL pool, the listener, the standard streams and the
/// files a command or the mailer opens.
const RESERVED_FDS: u64 = 256;

/// Raises the soft limit of open files to the hard one (a service manager's default soft
/// limit is 1 024, which a few hundred slow clients would fill) and returns how many client
/// connections fit under it beside `RESERVED_FDS`, at most `wanted`.
fn connection_cap(wanted: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!("failed to raise the limit of open files: {err}");
            match rlimit::getrlimit(rlimit::Resource::NOFILE) {
                Ok((soft, _)) => soft,
                // Nothing known: `wanted` stands, as it did before the limit was looked at.
                Err(_) => return wanted,
            }
        }
    };
    let fits = usize::try_from(limit.saturating_sub(RESERVED_FDS).max(16)).unwrap_or(usize::MAX);
    if fits < wanted {
        tracing::warn!(
            max_connections = wanted,
            open_files_limit = limit,
            "the limit of open files allows {fits} client connections; serving at most that many"
        );
    }
    wanted.min(fits)
}

/// How long a readiness probe waits for the store. A database that is down makes a pooled
/// connection wait for its own timeout (10 s on PostgreSQL), longer than load balancers
/// wait for a probe: the probe says "unavailable" well within theirs.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

async fn readyz(State(dir): State<Directory>) -> impl IntoResponse {
    let ping = tokio::time::timeout(READY_WITHIN, dir.store().ping())
        .await
        .unwrap_or_else(|_| {
            Err(roster_core::StoreError::Backend(format!(
                "no answer within {} s",
                READY_WITHIN.as_secs()
            )))
        });
    match ping {
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
    // A bad smtp_url is refused before anything starts, not after "listening".
    let mail_sender = config
        .smtp_url
        .as_deref()
        .map(|url| roster_app::mail::SmtpSender::new(url, &config.mail_from))
        .transpose()?;
    let dir = roster_app::open_directory(&config)
        .await?
        .with_memory_return(std::sync::Arc::new(crate::return_freed_memory));
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
    let shutdown = shutdown_signal();
    println!(
        "roster listening on http://{addr} (store: {})",
        dir.store().backend()
    );
    tracing::info!(%addr, store = dir.store().backend(), "listening");

    let purge_dir = dir.clone();
    let every = Duration::from_secs(config.token_purge_interval_s.max(1));
    let retention_ms = i64::from(config.resigned_retention_days) * 86_400_000;
    let key_retention_ms = i64::from(config.idempotency_retention_hours) * 3_600_000;
    let task_retention_ms = i64::from(config.task_retention_days) * 86_400_000;
    let purger = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match purge_dir.purge_expired_tokens().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired tokens removed"),
                Err(err) => tracing::warn!("failed to purge expired tokens: {err}"),
            }
            match purge_dir.purge_signature_nonces().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired signature nonces removed"),
                Err(err) => tracing::warn!("failed to purge signature nonces: {err}"),
            }
            match purge_dir
                .purge_expired(retention_ms, key_retention_ms)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "resigned users past retention removed"),
                Err(err) => tracing::warn!("failed to purge resigned users: {err}"),
            }
            match purge_dir.purge_finished_tasks(task_retention_ms).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "finished tasks past retention removed"),
                Err(err) => tracing::warn!("failed to purge finished tasks: {err}"),
            }
        }
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let invitations = roster_core::Invitations {
        base_url: config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}")),
        ttl_ms: i64::from(config.invitation_ttl_hours) * 3_600_000,
        lease_ms: i64::from(config.task_lease_seconds.max(1)) * 1000,
    };
    let mut background = Vec::new();
    // Worker names tell nodes apart in leases: host process id plus a random tag.
    let node = format!(
        "{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    // Zero workers (allowed on PostgreSQL only) makes an API-only node: other nodes run the
    // tasks it accepts.
    for n in 0..config.task_workers {
        let d = dir.clone();
        let inv = invitations.clone();
        let stop = stop_rx.clone();
        let worker = format!("{node}-w{n}");
        background.push(tokio::spawn(async move {
            d.run_task_worker(worker, inv, stop).await;
        }));
    }
    match mail_sender {
        Some(sender) => {
            let d = dir.clone();
            let stop = stop_rx.clone();
            background.push(tokio::spawn(async move {
                d.run_mailer(std::sync::Arc::new(sender), stop).await;
            }));
        }
        None => {
            tracing::info!("no smtp_url: invitations stay in the outbox (`roster outbox list`)");
        }
    }

    let max_connections = connection_cap(config.max_connections);
    roster_http::serve(
        listener,
        app(dir.clone(), &config, invitations),
        shutdown,
        max_connections,
    )
    .await
    .context("serve HTTP")?;
    // An upload still open after the drain will never be sealed: fail it now, not when its
    // receive timeout runs out.
    let aborted = dir.abort_open_uploads().await;
    if aborted > 0 {
        tracing::info!("failed {aborted} import upload(s) cut off by the shutdown");
    }
    // Workers finish the chunk in hand (its transaction) and stop; an unfinished task is
    // resumed by the next process that claims it.
    let _ = stop_tx.send(true);
    for handle in background {
        let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
    }
    purger.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM (what service managers send) or Ctrl-C. The handlers are installed
/// when this is called, not when the future is first polled: `run` calls it before it says
/// it is listening, so that a SIGTERM sent as soon as the server answers is always a drain,
/// never the default action that ends the process on the spot.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let listen = |kind: tokio::signal::unix::SignalKind, name: &str| {
        tokio::signal::unix::signal(kind)
            .map_err(|err| tracing::warn!("failed to listen for {name}: {err}"))
            .ok()
    };
    #[cfg(unix)]
    let (mut term, mut int) = (
        listen(tokio::signal::unix::SignalKind::terminate(), "SIGTERM"),
        listen(tokio::signal::unix::SignalKind::interrupt(), "Ctrl-C"),
    );
    async move {
        #[cfg(unix)]
        {
            tokio::select! {
                () = delivered(term.as_mut()) => {},
                () = delivered(int.as_mut()) => {},
            }
        }
        #[cfg(not(unix))]
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!("failed to listen for Ctrl-C: {err}");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutdown requested; draining connections");
    }
}

/// Completes when the signal arrives; never, when it could not be listened for.
#[cfg(unix)]
async fn delivered(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
