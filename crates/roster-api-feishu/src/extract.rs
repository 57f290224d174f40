//! Extractors whose failures answer in the Feishu envelope, never as axum's plain text.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use http::request::Parts;
use http::{header, Method, StatusCode};
use roster_core::{Caller, Directory};
use serde::de::DeserializeOwned;

use crate::codes;
use crate::error::FeishuError;

/// Shared state of the Feishu routes.
#[derive(Clone, Debug)]
pub struct FeishuState {
    /// The directory service.
    pub dir: Directory,
    /// The dialect's settings.
    pub config: crate::FeishuConfig,
}

/// A JSON body, parsed whatever the Content-Type says: lark-oapi sends the token request
/// with none at all. An absent or empty body means `{}`, and bodies on GET are ignored (the
/// Node SDK sends `{}` on GETs).
#[derive(Debug)]
pub(crate) struct FeishuJson<T>(pub T);

impl<S, T> FromRequest<S> for FeishuJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = FeishuError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let text = body_text(req, state).await?;
        parse(&text).map(FeishuJson)
    }
}

/// The body as JSON text: `{}` when it is absent or blank, or on GET and HEAD.
async fn body_text<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, FeishuError> {
    let ignore_body = req.method() == Method::GET || req.method() == Method::HEAD;
    let bytes = Bytes::from_request(req, state)
        .await
        .map_err(|r| body_rejection(&r))?;
    if ignore_body || bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Bytes::from_static(b"{}"));
    }
    // Checked once here, for every body of this dialect, before any parse of it.
    if roster_http::json_has_nul(&bytes) {
        return Err(FeishuError::param(roster_http::NUL_MESSAGE));
    }
    // serde_json checks the UTF-8 of the strings it reads, not of the members it skips, so
    // a body with invalid bytes in an unknown member would be applied; JSON is UTF-8 text.
    if std::str::from_utf8(&bytes).is_err() {
        return Err(FeishuError::param(
            "malformed JSON body: the body is not UTF-8",
        ));
    }
    Ok(bytes)
}

fn parse<T: DeserializeOwned>(text: &[u8]) -> Result<T, FeishuError> {
    // serde reads a struct from a JSON array too, taking its items as the fields in order,
    // so `["name", null, "0"]` would pass for a body (or an `orders` entry); every object
    // of this dialect must be one (`roster_http::strict`).
    roster_http::strict::from_slice(text)
        .map_err(|e| FeishuError::param(format!("malformed JSON body: {e}")))
}

/// The answer to a body over the size limit: 413 in the Feishu envelope.
pub(crate) fn body_too_large() -> FeishuError {
    FeishuError::with_detail(
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::PARAM_ERROR,
        "request body too large",
    )
}

/// Turns a failure to read the body into a Feishu error (413 when over the size limit).
pub(crate) fn body_rejection(rejection: &BytesRejection) -> FeishuError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        body_too_large()
    } else {
        FeishuError::with_detail(status, codes::PARAM_ERROR, rejection.body_text())
    }
}

/// The query string as repeated key/value pairs, as both SDKs send arrays
/// (`user_ids=a&user_ids=b`), with typed getters that answer in the Feishu envelope.
#[derive(Debug, Default)]
pub(crate) struct FeishuQuery(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for FeishuQuery {
    type Rejection = FeishuError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or_default();
        let pairs = roster_http::query_pairs(raw)
            .ok_or_else(|| FeishuError::param(roster_http::QUERY_UTF8_MESSAGE))?;
        Ok(Self(pairs))
    }
}

impl FeishuQuery {
    /// A query of the given pairs, for tests of the code that reads one.
    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    /// The first value of `key`, if given and not empty.
    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// A boolean: `true`/`false` in any case (lark-oapi sends Python's `True`).
    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, FeishuError> {
        match self.str(key) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(Some(false)),
            Some(v) => Err(FeishuError::param(format!(
                "{key} must be true or false, not {v:?}"
            ))),
        }
    }

    /// An integer.
    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>, FeishuError> {
        self.str(key)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| FeishuError::param(format!("{key} must be an integer, not {v:?}")))
            })
            .transpose()
    }
}

/// Path parameters; one that is not valid UTF-8 after percent-decoding (`/users/%FF`) is a
/// parameter error in the Feishu envelope, not axum's plain-text 400, which the SDKs cannot
/// parse.
#[derive(Debug)]
pub(crate) struct FeishuPath<T>(pub T);

impl<S, T> FromRequestParts<S> for FeishuPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = FeishuError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(FeishuError::param(format!(
                "invalid path parameter: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// The caller behind a `tenant_access_token`.
#[derive(Debug, Clone)]
pub(crate) struct TenantAuth(pub Caller);

impl<S> FromRequestParts<S> for TenantAuth
where
    S: Send + Sync,
    FeishuState: FromRef<S>,
{
    type Rejection = FeishuError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let bad = StatusCode::BAD_REQUEST;
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(FeishuError::new(bad, codes::NEED_TOKEN));
        };
        let value = value
            .to_str()
            .map_err(|_| FeishuError::new(bad, codes::TOKEN_MALFORMED))?
            .trim();
        // "Bearer" with nothing after it is a missing token, not a malformed one; a bare
        // token without the scheme is taken as it is, as Feishu does.
        let token = roster_http::bearer_token(value).unwrap_or(value);
        if token.is_empty() {
            return Err(FeishuError::new(bad, codes::NEED_TOKEN));
        }
        if !token.starts_with("t-") && !token.starts_with("u-") {
            return Err(FeishuError::new(bad, codes::TOKEN_MALFORMED));
        }
        let state = FeishuState::from_ref(state);
        let caller = state.dir.authenticate(token).await?;
        Ok(TenantAuth(caller))
    }
}

/// A JSON body together with its canonical text (keys sorted, no white space), for request
/// fingerprints: two requests that differ only in formatting are the same request.
#[derive(Debug)]
pub(crate) struct FeishuBody<T> {
    pub(crate) value: T,
    pub(crate) canonical: String,
}

impl<S, T> FromRequest<S> for FeishuBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = FeishuError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let text = body_text(req, state).await?;
        // Parsed into the wire struct from the text, not from a `Value`, so that a key sent
        // twice is refused here as by every other body (a `Value` keeps the last one).
        let value = parse(&text)?;
        // serde_json's default map is ordered by key, so this text is canonical. A member
        // whose value is `null` is the same as one left out (spec §2), so it is dropped:
        // a client that sends `"city": null` on its retry sends the same request.
        let mut canonical = parse::<serde_json::Value>(&text)?;
        drop_nulls(&mut canonical);
        Ok(Self {
            value,
            canonical: canonical.to_string(),
        })
    }
}

impl FeishuQuery {
    /// Every value of `key`, in order (arrays come as repeated keys).
    pub(crate) fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The query without `client_token`, sorted, as text: part of a request fingerprint.
    pub(crate) fn canonical_without_client_token(&self) -> String {
        let mut pairs: Vec<&(String, String)> =
            self.0.iter().filter(|(k, _)| k != "client_token").collect();
        pairs.sort();
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Removes every object member whose value is `null`, at any depth (array elements stay,
/// as a `null` there holds a place).
fn drop_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// The fingerprint of a request for idempotency: path, query without the key, and body.
pub(crate) fn fingerprint(path: &str, query: &FeishuQuery, canonical_body: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(query.canonical_without_client_token().as_bytes());
    h.update(b"\n");
    h.update(canonical_body.as_bytes());
    hex::encode(h.finalize())
}
