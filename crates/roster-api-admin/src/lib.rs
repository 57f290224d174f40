//! roster-api-admin: Roster's own JSON API, starting with the streaming bulk import and
//! export of users (README.md, "Bulk import API").
//!
//! Clients authenticate with the same tenant access tokens Feishu apps use
//! (`Authorization: Bearer t-…`); imports need the `contact:write` scope, reads
//! `contact:read`. Every error answers `{"error":{"code","message"}}` (`error.rs`).
//!
//! This crate knows the import row format (`rows.rs`) and its NDJSON and CSV encodings; it
//! must not know SQL or any other dialect. Rows become one durable task on the core's task
//! engine (`roster_core::import`).

// Doc comments name wire fields as they are spelled on the wire.
#![allow(clippy::doc_markdown)]

pub mod error;
pub mod export;
mod imports;
pub mod rows;
pub mod split;

use std::collections::{HashMap, HashSet};

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use axum::Router;
use roster_core::{Caller, Directory};

pub use error::AdminError;

/// Shared state of the admin routes.
#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) dir: Directory,
    /// Uploads this process receives at once (`imports::UPLOADS_AT_ONCE`): each holds up
    /// to a chunk of parsed rows, tens of megabytes, until it is stored.
    pub(crate) uploads: std::sync::Arc<tokio::sync::Semaphore>,
}

/// The admin API's routes, under `/api/v1`.
pub fn router(dir: Directory) -> Router {
    let routes = Router::new()
        // The upload is streamed and limited per row, never as a whole: the body-size
        // limit of the other routes does not apply here.
        .route(
            "/api/v1/imports",
            post(imports::create)
                .fallback(method_not_allowed)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/imports/{task_id}",
            get(imports::status).fallback(method_not_allowed),
        )
        .route(
            "/api/v1/imports/{task_id}/results",
            get(imports::results).fallback(method_not_allowed),
        )
        .route(
            "/api/v1/users/export",
            get(export::export).fallback(method_not_allowed),
        )
        .route("/api/v1", any(not_found))
        // `{*rest}` does not match an empty rest, so `/api/v1/` needs its own route.
        .route("/api/v1/", any(not_found))
        .route("/api/v1/{*rest}", any(not_found))
        .with_state(AdminState {
            dir,
            uploads: std::sync::Arc::new(tokio::sync::Semaphore::new(imports::UPLOADS_AT_ONCE)),
        });
    // Every route, those that read no query parameter included, refuses a repeated one
    // before its handler runs: which of two values a handler would see is not for the
    // client to guess, and a request that says `dry_run=true` anywhere must never write.
    let routes = routes.layer(axum::middleware::from_fn(
        |request: axum::extract::Request, next: axum::middleware::Next| async move {
            match query_pairs(request.uri()) {
                Ok(_) => next.run(request).await,
                Err(e) => e.into_response(),
            }
        },
    ));
    roster_http::refuse_nul_in_uri(routes, |_| {
        AdminError::bad_request(roster_http::NUL_MESSAGE).into_response()
    })
}

/// Unknown paths under `/api/v1` answer in this API's envelope.
async fn not_found() -> AdminError {
    AdminError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// A known path with a method it does not take answers in this API's envelope too.
async fn method_not_allowed() -> AdminError {
    AdminError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// Path parameters; one that is not valid UTF-8 after percent-decoding is a bad request in
/// this API's envelope, not axum's plain text.
pub(crate) struct AdminPath<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for AdminPath<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(AdminError::bad_request(format!(
                "invalid path parameter: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// The authenticated caller, from `Authorization: Bearer <tenant_access_token>`.
pub(crate) struct Auth(pub(crate) Caller);

impl FromRequestParts<AdminState> for Auth {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let unauthenticated =
            |m: &str| AdminError::new(StatusCode::UNAUTHORIZED, "unauthenticated", m.to_owned());
        let value = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthenticated("missing Authorization: Bearer <token>"))?
            .to_str()
            .map_err(|_| unauthenticated("malformed Authorization header"))?;
        let token = roster_http::bearer_token(value)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthenticated("missing Authorization: Bearer <token>"))?;
        Ok(Auth(state.dir.authenticate(token).await?))
    }
}

/// The query string's parameters in the order sent, each name at most once. A malformed
/// query, or one that names a parameter twice, fails in this API's envelope: collected
/// into a map, `?dry_run=true&dry_run=false` would silently keep the last value and write
/// what its sender may have meant only to check.
pub(crate) fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, AdminError> {
    let pairs = roster_http::query_pairs(uri.query().unwrap_or_default())
        .ok_or_else(|| AdminError::bad_request(roster_http::QUERY_UTF8_MESSAGE))?;
    let mut seen = HashSet::with_capacity(pairs.len());
    for (name, _) in &pairs {
        if !seen.insert(name.as_str()) {
            return Err(AdminError::bad_request(format!(
                "query parameter {name:?} is given more than once; give it once"
            )));
        }
    }
    Ok(pairs)
}

/// The query string as a map, holding only the parameters `known`, each at most once; a
/// malformed query, a repeated parameter or one naming any other parameter fails in this
/// API's envelope. A misspelt option (`dry-run=true`) must not be ignored: the upload
/// would then write what its sender meant only to check.
pub(crate) fn query(uri: &Uri, known: &[&str]) -> Result<HashMap<String, String>, AdminError> {
    let q: HashMap<String, String> = query_pairs(uri)?.into_iter().collect();
    let mut unknown: Vec<&str> = q
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(AdminError::bad_request(format!(
            "unknown query parameter {}; this endpoint takes: {}",
            unknown
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            known.join(", ")
        )));
    }
    Ok(q)
}

/// A boolean query option (`true`/`false`/`1`/`0`), default false; named without a value
/// (`?dry_run`), it is on.
pub(crate) fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, AdminError> {
    match q.get(name).map(String::as_str) {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(other) => Err(AdminError::bad_request(format!(
            "{name} must be true or false, not {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().expect("a valid test URI")
    }

    #[test]
    fn a_repeated_query_parameter_is_refused_by_name() {
        for (q, name) in [
            ("/api/v1/imports?dry_run=true&dry_run=false", "dry_run"),
            ("/api/v1/imports?dry_run&dry_run=0", "dry_run"),
            (
                "/api/v1/imports?format=csv&notify=1&format=ndjson",
                "format",
            ),
            // The name is compared after decoding, so an encoded spelling is no way round.
            ("/api/v1/imports?dry_run=true&dry%5Frun=false", "dry_run"),
            ("/api/v1/imports/x/results?after=1&limit=5&after=2", "after"),
        ] {
            let e = query(
                &uri(q),
                &["format", "mode", "notify", "dry_run", "after", "limit"],
            )
            .expect_err(q);
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, "invalid_request")
            );
            assert!(
                e.message.contains(&format!("{name:?}")) && e.message.contains("more than once"),
                "{q}: {}",
                e.message
            );
            assert!(query_pairs(&uri(q)).is_err(), "{q}");
        }
    }

    #[test]
    fn distinct_query_parameters_still_read() {
        let q = query(&uri("/x?dry_run&notify=true"), &["dry_run", "notify"]).unwrap();
        assert_eq!(
            (flag(&q, "dry_run").unwrap(), flag(&q, "notify").unwrap()),
            (true, true)
        );
        assert!(query_pairs(&uri("/x")).unwrap().is_empty());
        let e = query(&uri("/x?dry-run=true"), &["dry_run"]).unwrap_err();
        assert!(
            e.message.contains("unknown query parameter"),
            "{}",
            e.message
        );
    }
}
