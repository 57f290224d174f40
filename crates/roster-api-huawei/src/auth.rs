//! Authentication of `/v2/{project_id}/…` requests (spec 2.3, 2.5): either a valid
//! `SDK-HMAC-SHA256` signature by a Huawei access key, or (when no `Authorization` is sent)
//! an `X-Auth-Token` from `POST /v3/auth/tokens`. Either way the credential's project must
//! be the path's project. The body is read here (bounded) because the signature covers its
//! raw bytes; handlers get it back unchanged.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;
use roster_core::{AppKind, Caller, ProjectId};

use crate::codes;
use crate::error::HuaweiError;
use crate::signing::{self, Received};
use crate::HuaweiState;

/// Who an authenticated request is, as a request extension.
#[derive(Debug, Clone)]
pub(crate) struct Authed {
    pub(crate) caller: Caller,
}

/// The answer to a body over the size limit.
pub(crate) fn body_too_large() -> HuaweiError {
    HuaweiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::PARAM_INVALID,
        "the request body is too large",
    )
}

/// The answer to a body that could not be read: over the limit (413), or stalled or
/// broken off by the client (400, saying so).
pub(crate) fn unreadable_body(e: &axum::Error) -> HuaweiError {
    if roster_http::body_over_limit(e) {
        body_too_large()
    } else {
        HuaweiError::param(format!("the request body could not be read: {e}"))
    }
}

/// The project id of a `/v2/{project_id}/…` path.
fn path_project(path: &str) -> Option<&str> {
    path.strip_prefix("/v2/")?.split('/').next()
}

pub(crate) async fn authenticate(
    State(state): State<HuaweiState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let bytes = match to_bytes(body, state.config.body_limit).await {
        Ok(bytes) => bytes,
        Err(e) => return unreadable_body(&e).into_response(),
    };
    match verify(&state, &parts, &bytes).await {
        Ok(caller) => {
            parts.extensions.insert(Authed { caller });
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => e.into_response(),
    }
}

fn header(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

async fn verify(state: &HuaweiState, parts: &Parts, body: &[u8]) -> Result<Caller, HuaweiError> {
    let path = parts.uri.path();
    let project = path_project(path).unwrap_or_default();
    // Authentication comes first (spec §2.5: parse, date, HMAC, then the project), so that a
    // request without valid credentials learns nothing about projects and gets the 401 an
    // SDK expects for a bad signature.
    let (key_project, caller) = if let Some(value) = header(parts, "authorization") {
        verify_signature(state, parts, body, &value).await?
    } else if let Some(token) = header(parts, "x-auth-token") {
        let (key, caller) = state
            .dir
            .authenticate_access_key_token(&token, AppKind::Huawei)
            .await?
            .ok_or_else(|| HuaweiError::auth("the token is invalid or expired"))?;
        (key.project_id, caller)
    } else {
        return Err(HuaweiError::auth(
            "no Authorization signature and no X-Auth-Token",
        ));
    };
    if let Some(sent) = header(parts, "x-project-id") {
        if sent != project {
            return Err(HuaweiError::new(
                StatusCode::FORBIDDEN,
                codes::FORBIDDEN,
                "X-Project-Id does not match the project in the path",
            ));
        }
    }
    if key_project.as_ref().map(ProjectId::as_str) != Some(project) {
        return Err(HuaweiError::new(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            "the credential is not valid for this project",
        ));
    }
    Ok(caller)
}

async fn verify_signature(
    state: &HuaweiState,
    parts: &Parts,
    body: &[u8],
    value: &str,
) -> Result<(Option<ProjectId>, Caller), HuaweiError> {
    let auth = signing::parse_authorization(value)
        .ok_or_else(|| HuaweiError::auth("the Authorization header is malformed"))?;
    // The host and the date must be signed, or a signature could be replayed against another
    // host or forever (API Gateway demands both too).
    for required in ["host", "x-sdk-date"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(HuaweiError::auth(format!("{required} must be signed")));
        }
    }
    let date = header(parts, "x-sdk-date").unwrap_or_default();
    let at = signing::parse_sdk_date(&date)
        .ok_or_else(|| HuaweiError::auth("X-Sdk-Date is missing or malformed"))?;
    if (state.dir.clock().now_ms() - at).abs() > signing::MAX_SKEW_MS {
        return Err(HuaweiError::auth(
            "X-Sdk-Date is more than 15 minutes from the server time",
        ));
    }
    let key = state
        .dir
        .signing_key(&auth.access, AppKind::Huawei)
        .await?
        .ok_or_else(|| HuaweiError::auth("Get secretKey failed, ak not exist"))?;
    let lookup = |name: &str| header(parts, name);
    let received = Received {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        header: &lookup,
        body,
    };
    let canonical = signing::canonical_request(&received, &auth.signed_headers)
        .ok_or_else(|| HuaweiError::auth("a signed header is missing"))?;
    let expected = signing::sign(&key.secret, &signing::string_to_sign(&date, &canonical));
    if !signing::signatures_match(&expected, &auth.signature) {
        return Err(HuaweiError::auth("verify aksk signature fail"));
    }
    Ok((key.key.project_id, key.caller))
}
