//! roster-api-feishu: the Feishu (Lark) open platform contact API, wire-compatible with the
//! official SDKs (lark-oapi 1.7.5, @larksuiteoapi/node-sdk 1.74.0). The wire details it
//! follows are in `shared/spec/feishu-wire.md`; section numbers in comments refer to it.
//!
//! Implemented so far: A1 (tenant and app access tokens), U1 create user, U10 get user,
//! D1 create department, D2 get department. Every answer, errors included, is JSON in the
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

pub use envelope::JSON_UTF8;
pub use error::FeishuError;
pub use extract::FeishuState;
pub use routes::not_found;

use axum::Router;
use roster_core::Directory;

/// The Feishu routes over a directory.
pub fn router(dir: Directory) -> Router {
    routes::routes(FeishuState { dir })
}
