//! roster-api-quickbi: Alibaba Cloud Quick BI user management (RPC style, API version
//! 2022-01-01), wire-compatible with the official SDK `alibabacloud_quickbi_public20220101`
//! (see `shared/spec/vendor-clients.md` section 3).
//!
//! Every action is `POST /` (or `GET /`) with the action named by the `x-acs-action` header
//! or the `Action` parameter, parameters in the query (and a form body for some), signed
//! with ACS3-HMAC-SHA256 or the legacy RPC HMAC-SHA1 signature by an Alibaba access key
//! (`roster app create --kind alibaba`). Implemented actions: `BatchAddFeishuUsers`,
//! `QueryUserList`, `QueryUserInfoByUserId`, `CheckOrganizationMember`, `UpdateUser`,
//! `DeleteUser`, `CreateUserGroup`, `QueryUserGroupListByParentId`,
//! `ListUserGroupsByUserId`, `AddUserGroupMembers`. Others answer 404
//! `InvalidAction.NotFound`.
//!
//! This crate knows the Quick BI wire format and nothing of SQL or other dialects; it calls
//! `roster_core::Directory` only.

mod auth;
mod codes;
mod error;
mod handlers;
mod params;
mod sign;
mod wire;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use http::{Method, StatusCode};
use roster_core::Directory;
use roster_http::RequestId;

use crate::error::QuickBiError;
use crate::handlers::Ctx;
use crate::params::Params;

/// The API version every action belongs to.
pub const API_VERSION: &str = "2022-01-01";
/// Largest request body read. The SDK puts parameters in the query, but a client may send
/// them as a form body, and the longest legal one is a full `BatchAddFeishuUsers`: the
/// longest `FeishuUsers` (`params::MAX_VALUE_LEN`, 1.28 MB of JSON) percent-encoded as
/// Python's `urlencode` does (`\uXXXX` becomes `%5CuXXXX`, an `@` in an id `%40`) is about
/// 1.81 MB. 1 MiB refused full batches of long CJK nicknames sent unescaped, let alone
/// emoji; 2 MiB takes the longest with room for the other parameters.
const MAX_BODY: usize = 2 * 1024 * 1024;

/// Largest body of a request whose head names no known access key (`auth::known_key`):
/// it will be refused, and until then it should cost next to nothing.
const UNSIGNED_BODY: usize = 64 * 1024;

// A parameter at its longest must fit in a body.
const _: () = assert!(params::MAX_VALUE_LEN < MAX_BODY);

/// Settings of the Quick BI front door.
#[derive(Debug, Clone, Copy)]
pub struct QuickBiConfig {
    /// Licence cap of each tenant's BI organisation (`quickbi_max_members`).
    pub max_members: u64,
}

#[derive(Clone)]
struct QuickBiState {
    dir: Directory,
    config: QuickBiConfig,
}

/// The Quick BI route: the root path, every method (unsupported ones answer in Quick BI's
/// envelope). Other paths are left to the other dialects and the fallback.
pub fn router(dir: Directory, config: QuickBiConfig) -> Router {
    let routes = Router::new()
        .route("/", any(entry))
        .with_state(QuickBiState { dir, config });
    roster_http::front_door(
        routes,
        roster_http::FrontDoor {
            limit: MAX_BODY,
            too_large: |request| {
                body_too_large(MAX_BODY).into_response_with(&request_id_of(request))
            },
            bad_request: |request| {
                QuickBiError::bad(codes::INVALID_PARAMETER, roster_http::NUL_MESSAGE)
                    .into_response_with(&request_id_of(request))
            },
        },
    )
}

/// The answer to a body over `MAX_BODY`.
fn body_too_large(limit: usize) -> QuickBiError {
    let whose = if limit < MAX_BODY {
        " (the request names no known access key)"
    } else {
        ""
    };
    QuickBiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::INVALID_PARAMETER,
        format!("The request body is larger than {limit} bytes{whose}."),
    )
}

/// The request id the envelope names: the request's own, or a fresh one.
fn request_id_of(request: &Request) -> String {
    request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string().to_uppercase())
}

async fn entry(State(state): State<QuickBiState>, request: Request) -> Response {
    let request_id = request_id_of(&request);
    match handle(&state, request, &request_id).await {
        Ok(result) => (
            StatusCode::OK,
            Json(wire::Envelope {
                request_id,
                success: true,
                result,
            }),
        )
            .into_response(),
        Err(err) => err.into_response_with(&request_id),
    }
}

/// The action (or version) a request names: in `header` (the `x-acs-*` header) or in the
/// parameter `param`. Under ACS3 the header is signed and wins; under the RPC signature
/// only the parameter is, so an unsigned header never chooses (`headers_signed` false). Both present and different
/// is refused, whichever signature is used.
fn signed_choice(
    param: &str,
    header_name: &str,
    header: Option<String>,
    params: &Params,
    headers_signed: bool,
) -> Result<String, QuickBiError> {
    let header = header.filter(|h| !h.is_empty());
    let param_value = params.get(param).filter(|p| !p.is_empty());
    if let (Some(h), Some(p)) = (&header, param_value) {
        if h != p {
            return Err(QuickBiError::bad(
                codes::INVALID_PARAMETER,
                format!("The {header_name} header ({h}) and the {param} parameter ({p}) disagree."),
            ));
        }
    }
    let chosen = if headers_signed {
        header.or_else(|| param_value.map(str::to_owned))
    } else {
        param_value.map(str::to_owned)
    };
    chosen.ok_or_else(|| QuickBiError::missing(param))
}

fn header(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

async fn handle(
    state: &QuickBiState,
    request: Request,
    _request_id: &str,
) -> Result<serde_json::Value, QuickBiError> {
    let method = request.method().clone();
    if method != Method::GET && method != Method::POST {
        return Err(QuickBiError::new(
            StatusCode::NOT_FOUND,
            codes::ACTION_NOT_FOUND,
            "Specified api is not found, please check your url and method.",
        ));
    }
    let query = params::decode(request.uri().query().unwrap_or("").as_bytes())?;
    let path = request.uri().path().to_owned();
    let is_form = header(&request, "content-type").is_some_and(|c| {
        c.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    let header_action = header(&request, "x-acs-action");
    let header_version = header(&request, "x-acs-version");
    let acs3 =
        header(&request, "authorization").is_some_and(|a| a.trim_start().starts_with(sign::ACS3));
    let known = auth::known_key(&state.dir, request.headers(), &Params::new(&query, &[])).await;
    let (parts, body) = request.into_parts();
    let limit = if known.is_some() {
        MAX_BODY
    } else {
        UNSIGNED_BODY
    };
    let body = axum::body::to_bytes(Body::new(body), limit)
        .await
        .map_err(|e| {
            if roster_http::body_over_limit(&e) {
                body_too_large(limit)
            } else {
                QuickBiError::bad(
                    codes::INVALID_PARAMETER,
                    format!("The request body could not be read: {e}"),
                )
            }
        })?;
    let form = if is_form {
        params::decode(&body)?
    } else {
        Vec::new()
    };
    let params = Params::new(&query, &form);
    // No parameter may hold the NUL character (the query's `%00` never gets here): it is
    // refused before the signature check, whose nonce claim would carry it to the store.
    if params
        .all()
        .iter()
        .any(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(QuickBiError::bad(
            codes::INVALID_PARAMETER,
            roster_http::NUL_MESSAGE,
        ));
    }

    // Which of the two places naming the action (and version) is signed depends on the
    // signature: ACS3 must sign the `x-acs-*` headers, the legacy RPC signature covers only
    // the parameters. The signed place decides, so that a captured request cannot be sent
    // to another action by an unsigned header; a request whose two places disagree is
    // refused outright.
    // The RPC signature is the one `auth::authenticate` checks when there is no ACS3
    // header and a `Signature` parameter; an unsigned request fails authentication anyway,
    // and may name its action either way for the errors that come first.
    let headers_signed = acs3 || params.get("Signature").is_none();
    let action = signed_choice(
        "Action",
        "x-acs-action",
        header_action,
        &params,
        headers_signed,
    )?;
    let version = signed_choice(
        "Version",
        "x-acs-version",
        header_version,
        &params,
        headers_signed,
    )?;
    if version != API_VERSION {
        return Err(QuickBiError::bad(
            codes::INVALID_VERSION,
            "Specified parameter Version is not valid.",
        ));
    }

    let req = auth::RequestParts {
        method: method.as_str(),
        path: &path,
        headers: &parts.headers,
        body: &body,
        query: &query,
        known_key: known.as_ref(),
    };
    let key = auth::authenticate(&state.dir, &req, &params).await?;
    let ctx = Ctx {
        dir: &state.dir,
        key: &key,
        params: &params,
        max_members: state.config.max_members,
    };
    match action.as_str() {
        "BatchAddFeishuUsers" => handlers::batch_add_feishu_users(&ctx).await,
        "QueryUserList" => handlers::query_user_list(&ctx).await,
        "QueryUserInfoByUserId" => handlers::query_user_info_by_user_id(&ctx).await,
        "CheckOrganizationMember" => handlers::check_organization_member(&ctx).await,
        "UpdateUser" => handlers::update_user(&ctx).await,
        "DeleteUser" => handlers::delete_user(&ctx).await,
        "CreateUserGroup" => handlers::create_user_group(&ctx).await,
        "QueryUserGroupListByParentId" => handlers::query_user_group_list_by_parent_id(&ctx).await,
        "ListUserGroupsByUserId" => handlers::list_user_groups_by_user_id(&ctx).await,
        "AddUserGroupMembers" => handlers::add_user_group_members(&ctx).await,
        _ => Err(QuickBiError::new(
            StatusCode::NOT_FOUND,
            codes::ACTION_NOT_FOUND,
            format!("Specified api is not found, please check your url and method: {action}."),
        )),
    }
}
