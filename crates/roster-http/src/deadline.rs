//! A deadline for a whole request body, on the routes that read their body whole.
//!
//! The body timeout of `with_common_layers` bounds the pause between two pieces of a body,
//! so a client sending one byte every few seconds keeps its request (and the connection,
//! and whatever was read so far) open for ever. On a route whose body is read whole before
//! anything is done with it, the whole body must arrive within a deadline instead. The bulk
//! import's upload is not such a route: it streams uploads of any size.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::middleware;
use axum::Router;
use http_body::{Frame, SizeHint};

/// How long a body read whole may take to arrive: 8 MiB (the default body limit) in this
/// time is a rate of about 140 KiB/s, far below any client that is not stalling on purpose.
pub const BODY_DEADLINE: Duration = Duration::from_mins(1);

/// The error a body gives once its deadline has passed. Its text reaches the client in the
/// dialect's envelope ("the request body could not be read: …"), as a stalled body does.
#[derive(Debug)]
pub struct BodyDeadlineExceeded(Duration);

impl std::fmt::Display for BodyDeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {:.1} s",
            self.0.as_secs_f64()
        )
    }
}

impl std::error::Error for BodyDeadlineExceeded {}

/// Gives every request body of `router` at most `deadline`, counted from when the request
/// reached the router, to arrive whole. The dialects get this through
/// [`crate::front_door`]; it is a layer of its own for routers without a front door.
pub fn body_deadline(router: Router, deadline: Duration) -> Router {
    router.layer(middleware::map_request(
        move |request: Request| async move { with_deadline(request, deadline) },
    ))
}

/// `request` with a body that fails once `deadline` has passed.
pub(crate) fn with_deadline(request: Request, deadline: Duration) -> Request {
    // A request without a body (every GET) has nothing to wait for. The body's own
    // `is_end_stream` cannot tell: the idle-timeout wrapper around it always says "more may
    // come". HTTP/1.1 frames a body by one of these two headers only.
    let headers = request.headers();
    let no_body = !headers.contains_key(http::header::TRANSFER_ENCODING)
        && headers
            .get(http::header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0");
    if no_body {
        return request;
    }
    request.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            sleep: Box::pin(tokio::time::sleep(deadline)),
            deadline,
        })
    })
}

struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    deadline: Duration,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        // What has arrived is handed on first, so a body that is complete is never failed
        // by a deadline that passes while nobody reads it.
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyDeadlineExceeded(this.deadline)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn echo_len(body: Bytes) -> String {
        body.len().to_string()
    }

    fn app(deadline: Duration) -> Router {
        body_deadline(Router::new().route("/", post(echo_len)), deadline)
    }

    /// A body whose pieces keep coming, each well within any idle timeout, is cut off when
    /// the whole deadline has passed.
    #[tokio::test]
    async fn a_trickled_body_fails_at_the_deadline() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        tokio::spawn(async move {
            for _ in 0..100 {
                if tx
                    .send(Ok(Frame::data(Bytes::from_static(b" "))))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let body = Body::new(http_body_util::StreamBody::new(tokio_stream_from(rx)));
        let started = tokio::time::Instant::now();
        let response = app(Duration::from_millis(300))
            .oneshot(
                Request::post("/")
                    .header(http::header::TRANSFER_ENCODING, "chunked")
                    .body(body)
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), http::StatusCode::BAD_REQUEST);
        let text = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&text);
        assert!(text.contains("did not arrive within"), "{text}");
        // The trickle would take 2 s; the deadline ends it.
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
    }

    /// A body that arrives in time is read whole.
    #[tokio::test]
    async fn a_prompt_body_is_read() {
        let response = app(Duration::from_secs(5))
            .oneshot(
                Request::post("/")
                    .header(http::header::CONTENT_LENGTH, "5")
                    .body(Body::from("hello"))
                    .expect("request"),
            )
            .await
            .expect("response");
        let text = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(&text[..], b"5");
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>,
    ) -> impl futures::Stream<Item = Result<Frame<Bytes>, std::io::Error>> {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
