//! The `{code, msg, data}` envelope, always JSON with an explicit charset.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

/// The Content-Type of every Feishu response, success or error.
pub const JSON_UTF8: &str = "application/json; charset=utf-8";

/// The buffer a response is serialised into starts at this size.
const RESPONSE_CAPACITY: usize = 2048;

/// Serialises `body` as the whole response.
pub(crate) fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    // A user is about 1.2 KB of JSON; serde_json's own start of 128 bytes would grow and
    // copy the buffer four times on the way there.
    let mut bytes = Vec::with_capacity(RESPONSE_CAPACITY);
    match serde_json::to_writer(&mut bytes, body) {
        Ok(()) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
            response
        }
        Err(err) => {
            crate::error::FeishuError::internal(format!("failed to serialise a response: {err}"))
                .into_response()
        }
    }
}

/// A success: `{"code":0,"msg":"success","data":…}`.
#[derive(Debug)]
pub(crate) struct Envelope<T>(pub T);

#[derive(Serialize)]
struct Wire<'a, T> {
    code: i64,
    msg: &'a str,
    data: &'a T,
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        json_response(
            StatusCode::OK,
            &Wire {
                code: 0,
                msg: "success",
                data: &self.0,
            },
        )
    }
}

/// A success of the older open APIs (search v1, the JSSDK ticket), which say
/// `{"code":0,"msg":"ok","data":…}` where contact v3 says `"success"` (spec §7, §9).
#[derive(Debug)]
pub(crate) struct OkEnvelope<T>(pub T);

impl<T: Serialize> IntoResponse for OkEnvelope<T> {
    fn into_response(self) -> Response {
        json_response(
            StatusCode::OK,
            &Wire {
                code: 0,
                msg: "ok",
                data: &self.0,
            },
        )
    }
}
