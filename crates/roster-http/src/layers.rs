//! Layers shared by every front door.

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use http::HeaderValue;
use std::time::Duration;

use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

/// Header carrying the request id (set when the client sent none, echoed either way).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id of the current request, as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// An internal error that a dialect hid from the client. Dialects put it into the response
/// extensions; `log_hidden_errors` logs it once, inside the request span, so that adapters
/// never log on ordinary paths.
#[derive(Debug, Clone)]
pub struct HiddenError(pub String);

#[derive(Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(
        &mut self,
        _request: &http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        HeaderValue::from_str(&id)
            .ok()
            .map(tower_http::request_id::RequestId::new)
    }
}

async fn log_hidden_errors(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    request.extensions_mut().insert(RequestId(id));
    let response = next.run(request).await;
    if let Some(HiddenError(detail)) = response.extensions().get::<HiddenError>() {
        tracing::error!(status = %response.status(), "failed to serve request: {detail}");
    }
    response
}

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
fn loggable_path(path: &str) -> &str {
    if path.starts_with("/activate/") {
        "/activate/(token)"
    } else {
        path
    }
}

/// Wraps a router in the request-id, tracing, error-logging and body-timeout layers.
pub fn with_common_layers(router: Router) -> Router {
    let header = http::HeaderName::from_static(REQUEST_ID_HEADER);
    router
        .layer(RequestBodyTimeoutLayer::new(BODY_IDLE_TIMEOUT))
        .layer(middleware::from_fn(log_hidden_errors))
        .layer(TraceLayer::new_for_http().make_span_with(
            |req: &http::Request<axum::body::Body>| {
                let request_id = req
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!(
                    "request",
                    method = %req.method(),
                    path = %loggable_path(req.uri().path()),
                    request_id = %request_id,
                )
            },
        ))
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(SetRequestIdLayer::new(header, RandomRequestId))
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
