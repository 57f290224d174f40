//! roster-api-feishu: the Feishu (Lark) open platform contact API, wire-compatible with the
//! official SDKs (lark-oapi 1.7.5, @larksuiteoapi/node-sdk 1.74.0). The wire details it
//! follows are in `shared/spec/feishu-wire.md`; section numbers in comments refer to it.
//!
//! Implemented: A1 (tenant and app access tokens), U1-U12, the department operations
//! and the contact v2 asynchronous `batch_add` with its task status. Every answer, errors included, is JSON in the
//! `{code, msg, data}` envelope.
//!
//! It knows the domain (`roster-core`) and the shared HTTP plumbing (`roster-http`); it
//! never touches a store, SQL or another dialect.

// The whole code table is kept, used or not yet, so it can be reviewed against the spec.
#[allow(dead_code)]
mod codes;
mod convert;
mod envelope;
mod error;
mod extract;
mod handlers;
mod page;
mod routes;
mod wire;
mod wire_v2;

pub use envelope::JSON_UTF8;
pub use error::FeishuError;
pub use extract::FeishuState;
pub use routes::not_found;

use axum::Router;
use roster_core::Directory;

/// Settings of the Feishu dialect.
#[derive(Debug, Clone)]
pub struct FeishuConfig {
    /// Most users one v2 `batch_add` call may carry (Feishu documents no limit; 50 by
    /// default, as the spec chooses).
    pub batch_add_max_users: usize,
    /// Largest request body, bytes (the server's `body_limit`).
    pub body_limit: usize,
    /// The server's public base URL (`public_url`, else the bound address), which the
    /// avatar URLs of users start with: Feishu's are absolute, and clients fetch them.
    pub public_url: std::sync::Arc<str>,
}

impl Default for FeishuConfig {
    fn default() -> Self {
        Self {
            batch_add_max_users: 50,
            body_limit: 8 * 1024 * 1024,
            public_url: std::sync::Arc::from(""),
        }
    }
}

/// The Feishu routes over a directory.
pub fn router(dir: Directory, config: FeishuConfig) -> Router {
    let limit = config.body_limit;
    roster_http::front_door(
        routes::routes(FeishuState { dir, config }),
        roster_http::FrontDoor {
            limit,
            too_large: |_| axum::response::IntoResponse::into_response(extract::body_too_large()),
            bad_request: |_| {
                axum::response::IntoResponse::into_response(error::FeishuError::param(
                    roster_http::NUL_MESSAGE,
                ))
            },
        },
    )
}
