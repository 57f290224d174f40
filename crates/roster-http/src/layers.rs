//! Layers shared by every front door.

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use std::time::Duration;

use tower_http::timeout::RequestBodyTimeoutLayer;

/// Header carrying the request id (set when the client sent none, echoed either way).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id of the current request, as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// An internal error that a dialect hid from the client. Dialects put it into the response
/// extensions; the request layer (`request.rs`) logs it once, inside the request span, so
/// that adapters never log on ordinary paths.
#[derive(Debug, Clone)]
pub struct HiddenError(pub String);

/// Longest pause between two pieces of a request body. A body that stalls longer fails
/// to read (the handler answers in its dialect's envelope, an import upload breaks off), so a
/// client cannot hold a connection and its request open by sending nothing.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a dialect answers when its front door refuses a request before routing it.
#[derive(Clone, Copy)]
pub struct FrontDoor {
    /// The largest body a request may declare (`Content-Length`).
    pub limit: usize,
    /// The dialect's own 413, for a declared body over `limit`.
    pub too_large: fn(&Request) -> Response,
    /// The dialect's own 400, for a NUL character in the path or query.
    pub bad_request: fn(&Request) -> Response,
}

/// The checks every dialect makes before routing, as one layer over its routes:
///
/// - a request whose path or query holds the NUL character (`%00`) gets `bad_request`: no
///   id or parameter can hold it, and PostgreSQL cannot compare text with it, so it must
///   not reach a store;
/// - a request whose declared `Content-Length` is over `limit` gets `too_large`, before a
///   byte of the body is read: reading it would only end in the same answer after `limit`
///   bytes, and a client that declares a large body and sends little would hold the
///   request open until the body timeout;
/// - every other request's body must arrive whole within [`crate::BODY_DEADLINE`] (see
///   `deadline.rs`).
///
/// These were three layers; in axum each is a boxed future and a clone of the route's
/// service per request, so one layer does all three (about 2% of a GET's server CPU).
pub fn front_door(router: Router, door: FrontDoor) -> Router {
    router.layer(middleware::from_fn(
        move |request: Request, next: Next| async move {
            if uri_has_nul(&request) {
                return (door.bad_request)(&request);
            }
            if declares_over(&request, door.limit) {
                return (door.too_large)(&request);
            }
            next.run(crate::deadline::with_deadline(
                request,
                crate::BODY_DEADLINE,
            ))
            .await
        },
    ))
}

/// The NUL check of [`front_door`] alone, for a router whose bodies are not read whole (the
/// bulk import streams its uploads).
pub fn refuse_nul_in_uri(router: Router, bad_request: fn(&Request) -> Response) -> Router {
    router.layer(middleware::from_fn(
        move |request: Request, next: Next| async move {
            if uri_has_nul(&request) {
                bad_request(&request)
            } else {
                next.run(request).await
            }
        },
    ))
}

fn uri_has_nul(request: &Request) -> bool {
    request
        .uri()
        .path_and_query()
        .is_some_and(|pq| pq.as_str().contains("%00"))
}

fn declares_over(request: &Request, limit: usize) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
}

/// The path as the request log shows it: an activation link's token is a credential (it
/// activates an account), and logs are read more widely than the store.
pub(crate) fn loggable_path(path: &str) -> &str {
    if path.starts_with("/activate/") {
        "/activate/(token)"
    } else {
        path
    }
}

/// Wraps a router in the request layer (request id, span, logging; see `request.rs`) and
/// the body idle timeout.
pub fn with_common_layers(router: Router) -> Router {
    router
        .layer(RequestBodyTimeoutLayer::new(BODY_IDLE_TIMEOUT))
        .layer(crate::request::RequestLayer)
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn an_activation_token_never_reaches_the_request_log() {
        assert_eq!(loggable_path("/activate/0123abcd"), "/activate/(token)");
        assert_eq!(
            loggable_path("/open-apis/contact/v3/users"),
            "/open-apis/contact/v3/users"
        );
    }
}
