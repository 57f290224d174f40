//! Layers shared by every front door.

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

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
/// These were three layers, then one axum `from_fn`; an axum `from_fn` boxes its future
/// and clones the route's service into its `Next` on every request, so this is a tower
/// layer with an unboxed future (`FrontDoorService`), as the request layer is.
pub fn front_door(router: Router, door: FrontDoor) -> Router {
    router.layer(FrontDoorLayer { door })
}

/// The layer of [`front_door`].
#[derive(Clone, Copy)]
struct FrontDoorLayer {
    door: FrontDoor,
}

impl<S> Layer<S> for FrontDoorLayer {
    type Service = FrontDoorService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FrontDoorService {
            inner,
            door: self.door,
        }
    }
}

/// A route under [`FrontDoorLayer`].
#[derive(Clone)]
struct FrontDoorService<S> {
    inner: S,
    door: FrontDoor,
}

impl<S> Service<Request> for FrontDoorService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = FrontDoorFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let refused = if uri_has_nul(&request) {
            Some((self.door.bad_request)(&request))
        } else if declares_over(&request, self.door.limit) {
            Some((self.door.too_large)(&request))
        } else {
            None
        };
        match refused {
            Some(response) => FrontDoorFuture::Refused {
                response: Some(response),
            },
            None => FrontDoorFuture::Routed {
                inner: self.inner.call(crate::deadline::with_deadline(
                    request,
                    crate::BODY_DEADLINE,
                )),
            },
        }
    }
}

pin_project! {
    /// The response future of [`FrontDoorService`]: the refusal, or the route's own.
    #[project = FrontDoorProj]
    enum FrontDoorFuture<F> {
        Refused { response: Option<Response> },
        Routed { #[pin] inner: F },
    }
}

impl<F, E> Future for FrontDoorFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FrontDoorProj::Routed { inner } => inner.poll(cx),
            // Polled once: the future is done after it, and a future polled after that
            // breaks its contract, so an empty response is as good as any.
            FrontDoorProj::Refused { response } => {
                Poll::Ready(Ok(response.take().unwrap_or_default()))
            }
        }
    }
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
    use super::{front_door, loggable_path, FrontDoor};
    use axum::body::{Body, Bytes};
    use axum::extract::Request;
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::Router;
    use http::StatusCode;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// A route that reads its body whole and answers with its length, or with 400 and the
    /// reason when the body could not be read.
    async fn body_len(request: Request) -> Response {
        match request.into_body().collect().await {
            Ok(body) => body.to_bytes().len().to_string().into_response(),
            Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        }
    }

    fn app() -> Router {
        front_door(
            Router::new().route("/{*rest}", post(body_len)),
            FrontDoor {
                limit: 10,
                too_large: |_| (StatusCode::PAYLOAD_TOO_LARGE, "dialect 413").into_response(),
                bad_request: |_| (StatusCode::BAD_REQUEST, "dialect 400").into_response(),
            },
        )
    }

    /// A body that never sends a byte: a route that reads it waits until something ends it.
    fn silent_body() -> Body {
        Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>())
    }

    async fn answer(request: Request) -> (StatusCode, String) {
        let response = app().oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = response.into_body().collect().await.expect("body");
        (
            status,
            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        )
    }

    #[tokio::test]
    async fn a_plain_request_reaches_its_route() {
        let request = Request::post("/a?b=c")
            .header(http::header::CONTENT_LENGTH, "5")
            .body(Body::from("hello"))
            .expect("request");
        assert_eq!(answer(request).await, (StatusCode::OK, "5".to_owned()));
    }

    #[tokio::test]
    async fn a_nul_in_the_path_or_query_gets_the_dialects_400() {
        for uri in ["/a%00b", "/a?b=%00"] {
            let request = Request::post(uri).body(Body::empty()).expect("request");
            assert_eq!(
                answer(request).await,
                (StatusCode::BAD_REQUEST, "dialect 400".to_owned()),
                "{uri}"
            );
        }
    }

    /// The refusal comes without reading the body: this one never sends a byte, so a route
    /// that read it would never answer.
    #[tokio::test]
    async fn a_declared_body_over_the_limit_gets_the_dialects_413_unread() {
        let request = Request::post("/a")
            .header(http::header::CONTENT_LENGTH, "11")
            .body(silent_body())
            .expect("request");
        let answered = tokio::time::timeout(std::time::Duration::from_secs(5), answer(request));
        assert_eq!(
            answered.await.expect("answered at once"),
            (StatusCode::PAYLOAD_TOO_LARGE, "dialect 413".to_owned())
        );
    }

    /// A body that stalls fails once the whole-body deadline has passed (the clock is
    /// paused, so the test does not wait for it).
    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_at_the_body_deadline() {
        let request = Request::post("/a")
            .header(http::header::CONTENT_LENGTH, "5")
            .body(silent_body())
            .expect("request");
        let started = tokio::time::Instant::now();
        let (status, text) = tokio::time::timeout(crate::BODY_DEADLINE * 2, answer(request))
            .await
            .expect("answered by the deadline");
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(text.contains("did not arrive within"), "{text}");
        assert!(started.elapsed() >= crate::BODY_DEADLINE);
    }

    #[test]
    fn an_activation_token_never_reaches_the_request_log() {
        assert_eq!(loggable_path("/activate/0123abcd"), "/activate/(token)");
        assert_eq!(
            loggable_path("/open-apis/contact/v3/users"),
            "/open-apis/contact/v3/users"
        );
    }
}
