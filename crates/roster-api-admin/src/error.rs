//! The admin API's error: `{"error":{"code","message"}}` with an HTTP status, and THE table
//! from `CoreError` to it. Internal details are hidden from the client and handed to
//! `roster-http` (`HiddenError`), which logs them once.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use roster_core::{CoreError, ItemError};
use serde_json::json;

/// An error answer of the admin API.
#[derive(Debug)]
pub struct AdminError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `invalid_request`.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// The hidden cause of an internal error, for the log only.
    pub hidden: Option<String>,
}

impl AdminError {
    /// A client mistake in the request as a whole.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// Any answer with this status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            hidden: None,
        }
    }

    /// An internal failure: the client learns only that one happened.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal_error",
            message: "internal error".into(),
            hidden: Some(detail.to_string()),
        }
    }
}

impl From<CoreError> for AdminError {
    fn from(err: CoreError) -> Self {
        let (status, code) = match &err {
            CoreError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            CoreError::AlreadyExists { .. } => (StatusCode::CONFLICT, "already_exists"),
            CoreError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            CoreError::BadReference { .. } => (StatusCode::BAD_REQUEST, "bad_reference"),
            CoreError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            CoreError::IdempotencyMismatch => (StatusCode::CONFLICT, "idempotency_mismatch"),
            CoreError::LicenceExceeded => (StatusCode::FORBIDDEN, "licence_exceeded"),
            CoreError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            CoreError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            CoreError::Storage(_) => return Self::internal(format!("{err:#}: {err:?}")),
        };
        Self::new(status, code, err.to_string())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(detail) = self.hidden {
            response
                .extensions_mut()
                .insert(roster_http::HiddenError(detail));
        }
        response
    }
}

/// The per-row error code of a stored refusal: the variant's stable name (`invalid`,
/// `exists`, `bad_reference`, `not_found`, `forbidden`, `licence`, `conflict`, `storage`,
/// or `format` for a row that could not be read at all).
pub fn row_error_code(e: &ItemError) -> &str {
    if e.kind == "dialect" {
        // The admin API records a row it could not read under its own code in `field`.
        "format"
    } else {
        &e.kind
    }
}

/// The field a per-row error names (empty when none).
pub fn row_error_field(e: &ItemError) -> &str {
    match e.kind.as_str() {
        "invalid" | "bad_reference" | "exists" => &e.field,
        "dialect" => e.detail.split_once(':').map_or("", |(f, _)| f),
        _ => "",
    }
}

/// The message of a per-row error.
pub fn row_error_message(e: &ItemError) -> String {
    match e.kind.as_str() {
        "dialect" => e
            .detail
            .split_once(": ")
            .map_or_else(|| e.detail.clone(), |(_, m)| m.to_owned()),
        "exists" => format!("another active user already has this {}", e.field),
        _ => e.detail.clone(),
    }
}
