//! roster-api-huawei: Huawei Cloud Workspace's user APIs, wire-compatible with the official
//! Python SDK `huaweicloudsdkworkspace` 3.1.219. The wire facts it follows are in
//! `shared/spec/vendor-clients.md` section 2; section numbers in comments refer to it.
//!
//! Implemented: AK/SK `SDK-HMAC-SHA256` verification and Keystone-style tokens
//! (`POST /v3/auth/tokens`, `X-Auth-Token`); `users/batch-create` (all-or-nothing, argon2id
//! passwords, invitations through the outbox); list, show, delete and batch-delete users;
//! list, create and delete user groups and list a group's users. Every error is JSON
//! `{error_code, error_msg}`, and every response carries `X-Request-Id` (roster-http).
//!
//! Mapping: a Huawei project belongs to one Roster tenant (each AK/SK is bound to one
//! project, `roster app create --kind huawei`); Workspace's "user name unique per project"
//! is Roster's login name (`UniqueKey::Username`), unique case-insensitively per tenant, so
//! several projects of one tenant share one user namespace. Users are addressed by their
//! open id (`ou_…`) as the Workspace `id`.
//!
//! It knows the domain (`roster-core`) and the shared HTTP plumbing (`roster-http`); it
//! never touches a store, SQL or another dialect.

mod auth;
#[allow(dead_code)] // The whole code table is kept, so it can be reviewed in one place.
mod codes;
mod error;
mod handlers;
mod signing;
mod time;
mod wire;

pub use error::HuaweiError;

use axum::routing::{delete, get, post};
use axum::Router;
use roster_core::{Directory, Invitations};

/// Settings of the Huawei dialect.
#[derive(Debug, Clone)]
pub struct HuaweiConfig {
    /// Where invitation links point and how long they work.
    pub invitations: Invitations,
    /// Most users one `batch-create` may carry (Workspace: 200).
    pub batch_create_max_users: usize,
    /// Largest request body read for signature verification, bytes.
    pub body_limit: usize,
}

/// What every handler gets.
#[derive(Debug, Clone)]
pub(crate) struct HuaweiState {
    pub(crate) dir: Directory,
    pub(crate) config: HuaweiConfig,
}

/// The Huawei routes over a directory: `/v3/auth/tokens` and `/v2/{project_id}/…`.
pub fn router(dir: Directory, config: HuaweiConfig) -> Router {
    let limit = config.body_limit;
    roster_http::front_door(
        routes(HuaweiState { dir, config }),
        roster_http::FrontDoor {
            limit,
            too_large: |_| axum::response::IntoResponse::into_response(auth::body_too_large()),
            bad_request: |_| {
                axum::response::IntoResponse::into_response(error::HuaweiError::param(
                    roster_http::NUL_MESSAGE,
                ))
            },
        },
    )
}

fn routes(state: HuaweiState) -> Router {
    let v2 = Router::new()
        .route(
            "/v2/{project_id}/users/batch-create",
            post(handlers::batch_create),
        )
        .route(
            "/v2/{project_id}/users/batch-delete",
            post(handlers::batch_delete),
        )
        .route("/v2/{project_id}/users", get(handlers::list_users))
        .route(
            "/v2/{project_id}/users/{user_id}",
            get(handlers::show_user).delete(handlers::delete_user),
        )
        .route(
            "/v2/{project_id}/groups",
            get(handlers::list_groups).post(handlers::create_group),
        )
        .route(
            "/v2/{project_id}/groups/{group_id}",
            delete(handlers::delete_group),
        )
        .route(
            "/v2/{project_id}/groups/{group_id}/users",
            get(handlers::group_users),
        )
        // Signature or token first: a request that fails it learns nothing else.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        // Unknown `/v2/…` paths answer in the Huawei envelope, not the global fallback's.
        .route("/v2/{project_id}", axum::routing::any(handlers::no_api))
        .route("/v2/{project_id}/", axum::routing::any(handlers::no_api))
        .route(
            "/v2/{project_id}/{*rest}",
            axum::routing::any(handlers::no_api),
        );
    Router::new()
        .route("/v3/auth/tokens", post(handlers::issue_token))
        .merge(v2)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(state)
}
