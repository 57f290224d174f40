//! A1: `tenant_access_token/internal` and `app_access_token/internal`
//! (auth-v3/auth/tenant_access_token_internal).

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use roster_core::CoreError;
use serde::{Deserialize, Serialize};

use crate::codes;
use crate::envelope::json_response;
use crate::error::FeishuError;
use crate::extract::{FeishuJson, FeishuState};

/// The request body; both fields are required, but absence is answered with 10003 rather
/// than a parse error, so they are optional here.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenRequest {
    app_id: Option<String>,
    app_secret: Option<String>,
}

/// Largest body of a token request. Its JSON is two short strings; these routes read the
/// body before any credential is known, so the dialect's `body_limit` (megabytes) would let
/// anyone hold that much memory per connection for nothing.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// A1's response has no `data`: the token sits at the top level.
#[derive(Debug, Serialize)]
struct TokenResponse<'a> {
    code: i64,
    msg: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_access_token: Option<&'a str>,
    tenant_access_token: &'a str,
    expire: i64,
}

async fn issue(
    state: &FeishuState,
    body: Result<FeishuJson<TokenRequest>, FeishuError>,
    app_token: bool,
) -> Result<Response, FeishuError> {
    let invalid = || FeishuError::new(StatusCode::BAD_REQUEST, codes::INVALID_PARAM);
    // A body over the size limit keeps its 413, however it was framed (with a
    // Content-Length the limit layer answers before this handler runs; a chunked body is
    // cut here), so that the two cannot answer differently.
    let FeishuJson(body) = body.map_err(|e| {
        if e.status == StatusCode::PAYLOAD_TOO_LARGE {
            e
        } else {
            invalid()
        }
    })?;
    let (Some(app_id), Some(secret)) = (body.app_id, body.app_secret) else {
        return Err(invalid());
    };
    match state.dir.issue_tenant_token(&app_id, &secret).await {
        Ok(t) => Ok(json_response(
            StatusCode::OK,
            &TokenResponse {
                code: 0,
                msg: "ok",
                app_access_token: app_token.then_some(t.token.as_str()),
                tenant_access_token: &t.token,
                expire: t.expire_s,
            },
        )),
        // Feishu answers bad credentials with HTTP 200 and 10014 (spec §3).
        Err(CoreError::Unauthenticated(reason)) => Err(FeishuError::new(
            StatusCode::OK,
            if reason.contains("app id") {
                codes::APP_ID_NOT_EXISTS
            } else {
                codes::APP_SECRET_INVALID
            },
        )),
        Err(other) => Err(other.into()),
    }
}

/// `POST /open-apis/auth/v3/tenant_access_token/internal`.
pub(crate) async fn tenant_access_token(
    State(state): State<FeishuState>,
    body: Result<FeishuJson<TokenRequest>, FeishuError>,
) -> Result<Response, FeishuError> {
    issue(&state, body, false).await
}

/// `POST /open-apis/auth/v3/app_access_token/internal`: the same token, under both names.
pub(crate) async fn app_access_token(
    State(state): State<FeishuState>,
    body: Result<FeishuJson<TokenRequest>, FeishuError>,
) -> Result<Response, FeishuError> {
    issue(&state, body, true).await
}
