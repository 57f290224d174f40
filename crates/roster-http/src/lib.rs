//! roster-http: the HTTP plumbing every front door shares.
//!
//! - `serve`: runs an axum `Router` on a listener through hyper directly, because the
//!   Feishu Python SDK looks response headers up by their exact title-case names
//!   (`Content-Type`), which `axum::serve` cannot emit; it also drains connections on
//!   shutdown.
//! - `layers`: request ids, the request span, and the one place where hidden internal
//!   errors are logged.
//!
//! It knows no dialect: envelopes and error codes live in the `roster-api-*` crates.

mod layers;
mod serve;

pub use layers::{
    refuse_declared_over, with_common_layers, HiddenError, RequestId, REQUEST_ID_HEADER,
};
pub use serve::serve;
