//! Layers shared by every front door.

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use http::HeaderValue;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, SetRequestIdLayer};
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

/// Wraps a router in the request-id, tracing and error-logging layers.
pub fn with_common_layers(router: Router) -> Router {
    let header = http::HeaderName::from_static(REQUEST_ID_HEADER);
    router
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
                    path = %req.uri().path(),
                    request_id = %request_id,
                )
            },
        ))
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(SetRequestIdLayer::new(header, RandomRequestId))
}
