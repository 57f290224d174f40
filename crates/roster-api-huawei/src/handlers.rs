//! The handlers: decode, call the core, encode. Validation of Workspace's field rules
//! (spec 2.7) happens in `new_user`, before anything is written; the batch is all-or-nothing.

use std::collections::HashMap;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::{HeaderValue, StatusCode};
use roster_core::password;
use roster_core::values::{bounded_text, Activation, Email, Mobile, Username};
use roster_core::{CoreError, Group, Handover, NewUser, User, UserLookup, UserProfile};
use serde::de::DeserializeOwned;

use crate::auth::Authed;
use crate::codes;
use crate::error::HuaweiError;
use crate::wire;
use crate::HuaweiState;

/// Most user ids one `batch-delete` may carry (Workspace: 100).
const BATCH_DELETE_MAX: usize = 100;
/// The pages of the list APIs, as the SDK's model documents them (the vendor's API
/// definition: `list_users_request.py`, `list_users_of_group_request.py`,
/// `list_user_groups_request.py`).
///
/// Users: "without a limit, all matching users" are answered; Roster stops at
/// `USERS_ALL_MAX` so that one call cannot render a whole large tenant (`total_count` still
/// counts every match, so a client sees that there is more), and an explicit `limit` may be
/// up to `USERS_MAX_LIMIT`.
const USERS_ALL_MAX: usize = 10_000;
const USERS_MAX_LIMIT: usize = 1000;
/// Members of a group: "absent or 0: 2000; at most 10000".
const MEMBERS_DEFAULT_LIMIT: usize = 2000;
const MEMBERS_MAX_LIMIT: usize = 10_000;
/// Groups: "absent or 0: 100". The documented maximum is 100 too; Roster takes up to
/// `GROUPS_MAX_LIMIT` rather than refuse a client that asks for a few more.
const GROUPS_DEFAULT_LIMIT: usize = 100;
const GROUPS_MAX_LIMIT: usize = 1000;

/// Decodes a JSON body, the one way every handler does: an empty body is Workspace's
/// `WKS.0001`; anything else that is not the request's JSON object, including an array
/// where an object is expected at any depth (`strict`), is `WKS.00010001`, before the
/// handler reads a field, so nothing is written.
fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, HuaweiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(HuaweiError::new(
            StatusCode::BAD_REQUEST,
            codes::EMPTY_BODY,
            "",
        ));
    }
    if roster_http::json_has_nul(body) {
        return Err(HuaweiError::param(roster_http::NUL_MESSAGE));
    }
    roster_http::strict::from_slice(body)
        .map_err(|e| HuaweiError::param(format!("the request body is malformed: {e}")))
}

/// Query pairs, repeated keys kept in order.
/// The query's parameters; escapes that are not UTF-8 are refused (`WKS.00010001`), as
/// every front door refuses them, rather than read as U+FFFD and matched as such.
fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, HuaweiError> {
    roster_http::query_pairs(raw.unwrap_or_default())
        .ok_or_else(|| HuaweiError::param(roster_http::QUERY_UTF8_MESSAGE))
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn number(
    pairs: &[(String, String)],
    key: &str,
    default: usize,
    max: usize,
) -> Result<usize, HuaweiError> {
    match first(pairs, key) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| HuaweiError::param(format!("{key} must be an integer from 0 to {max}"))),
    }
}

/// A page size of 0 stands for the default where the vendor's definition says so (groups
/// and group members).
fn zero_is_default(limit: usize, default: usize) -> usize {
    if limit == 0 {
        default
    } else {
        limit
    }
}

// ------------------------------------------------------------------------------ tokens

/// `POST /v3/auth/tokens`: a Keystone-style token for a Huawei access key, scoped to its
/// project. The credential is the AK/SK pair, given either as Keystone's password method
/// (`user.name` = AK, `user.password` = SK) or as `hw_ak_sk` (`access.key`, `secret.key`);
/// the token comes back in `X-Subject-Token` (201), valid 24 hours.
pub(crate) async fn issue_token(State(state): State<HuaweiState>, body: Body) -> Response {
    match issue_token_inner(&state, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Largest body of a token request: its JSON is a few short strings, and it is read before
/// any credential is known, so the dialect's `body_limit` (megabytes) would let anyone hold
/// that much memory per connection for nothing.
const TOKEN_BODY_LIMIT: usize = 64 * 1024;

async fn issue_token_inner(state: &HuaweiState, body: Body) -> Result<Response, HuaweiError> {
    let bytes = to_bytes(body, TOKEN_BODY_LIMIT)
        .await
        .map_err(|e| crate::auth::unreadable_body(&e))?;
    let req: wire::TokenRequest = json(&bytes)?;
    let auth = req
        .auth
        .ok_or_else(|| HuaweiError::param("auth is required"))?;
    let identity = auth
        .identity
        .ok_or_else(|| HuaweiError::param("auth.identity is required"))?;
    let methods = identity.methods.unwrap_or_default();
    let (ak, sk) = if methods.iter().any(|m| m == "hw_ak_sk") {
        let p = identity
            .hw_ak_sk
            .ok_or_else(|| HuaweiError::param("auth.identity.hw_ak_sk is required"))?;
        (p.access.and_then(|a| a.key), p.secret.and_then(|s| s.key))
    } else if methods.iter().any(|m| m == "password") {
        let u = identity
            .password
            .and_then(|p| p.user)
            .ok_or_else(|| HuaweiError::param("auth.identity.password.user is required"))?;
        (u.name, u.password)
    } else {
        return Err(HuaweiError::param(
            "auth.identity.methods must be [\"password\"] or [\"hw_ak_sk\"]",
        ));
    };
    let (Some(ak), Some(sk)) = (ak, sk) else {
        return Err(HuaweiError::param(
            "the access key and its secret are required",
        ));
    };
    let project = auth
        .scope
        .and_then(|s| s.project)
        .and_then(|p| p.id)
        .ok_or_else(|| HuaweiError::param("auth.scope.project.id is required"))?;
    let issued = state.dir.issue_access_key_token(&ak, &sk, &project).await?;
    let now = state.dir.clock().now_ms();
    let body = serde_json::json!({
        "token": {
            "methods": methods,
            "issued_at": crate::time::format_keystone(now),
            "expires_at": crate::time::format_keystone(now + issued.expire_s * 1000),
            "project": { "id": project },
        }
    });
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    let value = HeaderValue::from_str(&issued.token)
        .map_err(|e| HuaweiError::internal(format!("token header: {e}")))?;
    response.headers_mut().insert("x-subject-token", value);
    Ok(response)
}

// ------------------------------------------------------------------------- batch-create

/// `POST /v2/{project_id}/users/batch-create`.
pub(crate) async fn batch_create(
    State(state): State<HuaweiState>,
    Extension(authed): Extension<Authed>,
    body: Bytes,
) -> Result<Response, HuaweiError> {
    // A key that may not write is refused before its body is read, and above all before
    // its passwords are hashed (argon2id, tens of milliseconds each).
    authed.caller.require(roster_core::Scope::ContactWrite)?;
    let req: wire::BatchCreateUsersReq = json(&body)?;
    let users = req
        .users
        .ok_or_else(|| HuaweiError::param("users is required"))?;
    let max = state.config.batch_create_max_users;
    if users.is_empty() || users.len() > max {
        return Err(HuaweiError::param(format!(
            "users must hold 1 to {max} items"
        )));
    }
    // Every item is checked before anything is hashed or written; the first bad one
    // rejects the request.
    let mut parsed = Vec::with_capacity(users.len());
    for (i, u) in users.into_iter().enumerate() {
        parsed.push(new_user(u).map_err(|e| at_item(i, e))?);
    }
    // A value given twice fails the batch in the directory too, with the same answer;
    // found here, it costs nothing, where hashing the passwords first cost 20 ms of CPU per
    // password for a batch that then wrote nothing.
    if let Some((i, field)) = roster_core::first_batch_duplicate(parsed.iter().map(|(new, _)| new))
    {
        return Err(at_item(
            i,
            CoreError::AlreadyExists {
                entity: roster_core::Entity::User,
                field,
            },
        ));
    }
    let passwords: Vec<String> = parsed.iter().filter_map(|(_, p)| p.clone()).collect();
    let mut hashes = password::hash_all(passwords).await?.into_iter();
    let items = parsed
        .into_iter()
        .map(|(mut new, pw)| {
            if pw.is_some() {
                new.profile.password_hash = hashes.next();
            }
            Ok(new)
        })
        .collect();
    let report = state
        .dir
        .create_accounts(&authed.caller, items, &state.config.invitations)
        .await?;
    // All-or-nothing: report the first item that really failed (the others only say "not
    // written").
    let failure = report
        .items
        .into_iter()
        .enumerate()
        .find_map(|(i, r)| match r {
            Err(CoreError::Conflict {
                kind: roster_core::ConflictKind::NotWritten,
                ..
            })
            | Ok(_) => None,
            Err(e) => Some((i, e)),
        });
    if let Some((i, e)) = failure {
        return Err(at_item(i, e));
    }
    Ok((StatusCode::OK, Json(serde_json::json!({}))).into_response())
}

/// Prefixes an item's error message with its place in the request.
fn at_item(i: usize, e: CoreError) -> HuaweiError {
    let mut err = HuaweiError::from(e);
    if err.hidden.is_none() {
        err.msg = format!("users[{i}]: {}", err.msg);
    }
    err
}

/// Workspace's user-name rule (spec 2.7): 1-20 characters of letters, digits, `-` and `_`,
/// not starting with a digit.
fn parse_user_name(s: &str) -> Result<Username, CoreError> {
    let bad = |why: &'static str| CoreError::invalid("user_name", why);
    if s.is_empty() || s.chars().count() > 20 {
        return Err(bad("must be 1 to 20 characters"));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(bad("may hold only letters, digits, - and _"));
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(bad("must not start with a digit"));
    }
    Username::parse(s)
}

/// One `CreateUserRequest` as a core `NewUser`, plus its password to hash.
fn new_user(u: wire::CreateUserRequest) -> Result<(NewUser, Option<String>), CoreError> {
    let name = u
        .user_name
        .ok_or_else(|| CoreError::invalid("user_name", "is required"))?;
    let username = parse_user_name(&name)?;
    let email = u
        .user_email
        .filter(|e| !e.is_empty())
        .map(|e| Email::parse("user_email", &e))
        .transpose()?;
    let mobile = u
        .user_phone
        .filter(|p| !p.is_empty())
        .map(|p| Mobile::parse("user_phone", &p))
        .transpose()?;
    let account_expires = match u.account_expires.as_deref() {
        None | Some("0") => None,
        Some(s) if s.len() > 55 => {
            return Err(CoreError::invalid(
                "account_expires",
                "must be at most 55 characters",
            ))
        }
        Some(s) => Some(crate::time::parse_expiry(s).ok_or_else(|| {
            CoreError::invalid(
                "account_expires",
                "must be 0 or yyyy-MM-ddTHH:mm:ssZ or yyyy-MM-ddTHH:mm:ss.SSSZ",
            )
        })?),
    };
    let activation = match u.active_type.as_deref() {
        None | Some("USER_ACTIVATE") => Activation::ByUser,
        Some("ADMIN_ACTIVATE") => Activation::ByAdmin,
        Some(_) => {
            return Err(CoreError::invalid(
                "active_type",
                "must be USER_ACTIVATE or ADMIN_ACTIVATE",
            ))
        }
    };
    let password = match (activation, u.password) {
        (Activation::ByAdmin, None) => {
            return Err(CoreError::invalid(
                "password",
                "is required for ADMIN_ACTIVATE",
            ))
        }
        (Activation::ByAdmin, Some(p)) => {
            password::check_policy(&p, &name)?;
            Some(p)
        }
        // The seed and the API definition require a password only for ADMIN_ACTIVATE and
        // forbid it nowhere. With USER_ACTIVATE the owner activates the account through the
        // invitation link, so a password sent along is not stored: keeping it would let the
        // account be used before its owner activated it (Roster sets none on activation).
        (Activation::ByUser, _) => None,
    };
    if activation == Activation::ByUser && email.is_none() && mobile.is_none() {
        return Err(CoreError::invalid(
            "user_email",
            "USER_ACTIVATE needs user_email or user_phone to send the invitation to",
        ));
    }
    // The API definition gives group_ids 1 to 5 items: leave the field out for none.
    if u.group_ids.as_ref().is_some_and(Vec::is_empty) {
        return Err(CoreError::invalid(
            "group_ids",
            "must hold 1 to 5 groups when sent (leave it out for none)",
        ));
    }
    let mut groups = u.group_ids.unwrap_or_default();
    if groups.len() > 5 {
        return Err(CoreError::invalid("group_ids", "may hold at most 5 groups"));
    }
    // A group named twice is joined once (and listed once), as on the Quick BI side.
    let mut seen = std::collections::HashSet::new();
    groups.retain(|g| seen.insert(g.clone()));
    for g in &groups {
        bounded_text("group_ids", g, 55, true)?;
    }
    let description = u
        .description
        .map(|d| bounded_text("description", &d, 255, false))
        .transpose()?;
    let alias = u
        .alias_name
        .filter(|a| !a.is_empty())
        .map(|a| bounded_text("alias_name", &a, 55, false))
        .transpose()?;
    let profile = UserProfile {
        name: alias.clone().unwrap_or_else(|| name.clone()),
        email,
        mobile,
        username: Some(username),
        account_expires,
        activation,
        enable_change_password: u.enable_change_password.unwrap_or(true),
        next_login_change_password: u.next_login_change_password.unwrap_or(true),
        description,
        alias,
        groups,
        ..UserProfile::default()
    };
    // The login name is the user id too (it passes the user id's rules): a directory user
    // without a login name is listed under its user id, and the user id's uniqueness (any
    // case, among active users, kept by the store) then keeps every listed name unique.
    let user_id = roster_core::UserId::parse(&name).ok();
    Ok((
        NewUser {
            user_id,
            profile,
            leader: None,
            activated: activation == Activation::ByAdmin,
        },
        password,
    ))
}

// ------------------------------------------------------------------------------- users

fn active_type(a: Activation) -> &'static str {
    match a {
        Activation::ByUser => "USER_ACTIVATE",
        Activation::ByAdmin => "ADMIN_ACTIVATE",
    }
}

fn group_names(user: &User, groups: &HashMap<String, Group>) -> Vec<String> {
    user.profile
        .groups
        .iter()
        .filter_map(|g| groups.get(g).map(|g| g.name.clone()))
        .collect()
}

fn expired(user: &User, now_s: i64) -> bool {
    user.profile.account_expires.is_some_and(|t| t <= now_s)
}

/// The login name a user is shown and filtered under: the Workspace user name, or, for a
/// directory user that has none (created through another dialect), its user id. Listing
/// and filtering must use the same name, or a shown user could not be found by it.
fn login_name(user: &User) -> String {
    user.profile
        .username
        .as_ref()
        .map_or_else(|| user.user_id.to_string(), |u| u.as_str().to_owned())
}

/// `login_name`, folded for the case-insensitive filters.
fn login_folded(user: &User) -> String {
    user.profile
        .username
        .as_ref()
        .map_or_else(|| user.user_id.to_string().to_lowercase(), Username::folded)
}

fn wire_user(user: &User, groups: &HashMap<String, Group>, now_s: i64) -> wire::User {
    let p = &user.profile;
    wire::User {
        id: user.open_id.to_string(),
        sid: user.user_id.to_string(),
        user_name: login_name(user),
        user_email: p.email.as_ref().map(|e| e.as_str().to_owned()),
        user_phone: p.mobile.as_ref().map(|m| m.as_str().to_owned()),
        total_desktops: 0,
        active_type: active_type(p.activation),
        is_pre_user: !user.status.is_activated,
        account_expires: p
            .account_expires
            .map_or_else(|| "0".to_owned(), crate::time::format_seconds),
        password_never_expired: false,
        account_expired: expired(user, now_s),
        enable_change_password: p.enable_change_password,
        next_login_change_password: p.next_login_change_password,
        description: p.description.clone(),
        alias_name: p.alias.clone(),
        locked: false,
        disabled: user.status.is_frozen,
        share_space_subscription: false,
        share_space_desktops: 0,
        group_names: group_names(user, groups),
        platform_type: "LOCAL",
    }
}

async fn group_map(
    state: &HuaweiState,
    authed: &Authed,
) -> Result<HashMap<String, Group>, HuaweiError> {
    Ok(state
        .dir
        .list_groups(&authed.caller)
        .await?
        .into_iter()
        .map(|g| (g.group_id.clone(), g))
        .collect())
}

/// The user filters the SDK's list requests carry (`ListUsersRequest`,
/// `ListUsersOfGroupRequest`): `user_name` (contains, any case), `user_names` (repeated,
/// exact, any case), `description` (contains), `active_type`, `disabled`, `platform_type`.
/// Every filter sent is applied: a filter quietly ignored would return users it excludes,
/// and a client acting on "the users of group G named X" would act on all of G.
struct UserFilter {
    name: Option<String>,
    names: Vec<String>,
    description: Option<String>,
    active: Option<Activation>,
    disabled: Option<bool>,
    /// Roster's users are all `LOCAL`: another platform type matches nobody.
    other_platform: bool,
}

impl UserFilter {
    fn parse(q: &[(String, String)]) -> Result<Self, HuaweiError> {
        let active = match first(q, "active_type") {
            None | Some("") => None,
            Some("USER_ACTIVATE") => Some(Activation::ByUser),
            Some("ADMIN_ACTIVATE") => Some(Activation::ByAdmin),
            Some(_) => {
                return Err(HuaweiError::param(
                    "active_type must be USER_ACTIVATE or ADMIN_ACTIVATE",
                ))
            }
        };
        let disabled = match first(q, "disabled") {
            None | Some("") => None,
            Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
            Some(_) => return Err(HuaweiError::param("disabled must be true or false")),
        };
        Ok(Self {
            name: first(q, "user_name")
                .map(str::to_ascii_lowercase)
                .filter(|s| !s.is_empty()),
            names: q
                .iter()
                .filter(|(k, _)| k == "user_names")
                .map(|(_, v)| v.to_ascii_lowercase())
                .collect(),
            description: first(q, "description")
                .filter(|s| !s.is_empty())
                .map(str::to_lowercase),
            active,
            disabled,
            other_platform: other_platform(q)?,
        })
    }

    fn matches(&self, u: &User) -> bool {
        let p = &u.profile;
        let login = login_folded(u);
        !self.other_platform
            && self
                .name
                .as_ref()
                .is_none_or(|n| login.contains(n.as_str()))
            && (self.names.is_empty() || self.names.contains(&login))
            && self.description.as_ref().is_none_or(|d| {
                p.description
                    .as_ref()
                    .is_some_and(|x| x.to_lowercase().contains(d.as_str()))
            })
            && self.active.is_none_or(|a| p.activation == a)
            && self.disabled.is_none_or(|d| u.status.is_frozen == d)
    }
}

/// Whether a `platform_type` filter (the SDK repeats the key for a list) leaves out
/// `LOCAL`, naming only `AD`, which no user or group of Roster's is on; an unknown value is
/// a parameter error.
fn other_platform(q: &[(String, String)]) -> Result<bool, HuaweiError> {
    let mut named = false;
    let mut local = false;
    for (_, v) in q
        .iter()
        .filter(|(k, v)| k == "platform_type" && !v.is_empty())
    {
        named = true;
        if v.eq_ignore_ascii_case("LOCAL") {
            local = true;
        } else if !v.eq_ignore_ascii_case("AD") {
            return Err(HuaweiError::param("platform_type must be AD or LOCAL"));
        }
    }
    Ok(named && !local)
}

/// `GET /v2/{project_id}/users`: the filters of `UserFilter` and `group_name`; paging by
/// `offset` and `limit` (at most 1000; without one, every match up to `USERS_ALL_MAX`).
pub(crate) async fn list_users(
    State(state): State<HuaweiState>,
    Extension(authed): Extension<Authed>,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::ListUsersResponse>, HuaweiError> {
    let q = query_pairs(query.as_deref())?;
    let limit = number(&q, "limit", USERS_ALL_MAX, USERS_MAX_LIMIT)?;
    let offset = number(&q, "offset", 0, usize::MAX)?;
    let filter = UserFilter::parse(&q)?;
    let groups = group_map(&state, &authed).await?;
    let group_filter = first(&q, "group_name").filter(|s| !s.is_empty()).map(|g| {
        // An unknown group name matches nobody.
        groups
            .values()
            .find(|x| x.name.eq_ignore_ascii_case(g))
            .map(|x| x.group_id.clone())
            .unwrap_or_default()
    });
    let now_s = state.dir.clock().now_s();
    let mut page = Page::new(offset, limit);
    state
        .dir
        .scan_users(&authed.caller, |u| {
            let matches = filter.matches(&u)
                && group_filter
                    .as_ref()
                    .is_none_or(|g| u.profile.groups.contains(g));
            if matches {
                page.offer(u);
            }
        })
        .await?;
    Ok(Json(wire::ListUsersResponse {
        total_count: page.total,
        users: page
            .kept
            .iter()
            .map(|u| wire_user(u, &groups, now_s))
            .collect(),
    }))
}

/// One page of a listing that counts every match: the matches from `offset` on, at most
/// `limit` of them, and how many there were in all. Only the page is kept.
struct Page<T> {
    offset: usize,
    limit: usize,
    total: usize,
    kept: Vec<T>,
}

impl<T> Page<T> {
    fn new(offset: usize, limit: usize) -> Self {
        Self {
            offset,
            limit,
            total: 0,
            kept: Vec::new(),
        }
    }

    /// Counts one match (in listing order), keeping it if it falls on the page.
    fn offer(&mut self, item: T) {
        if self.total >= self.offset && self.kept.len() < self.limit {
            self.kept.push(item);
        }
        self.total += 1;
    }
}

async fn active_user(state: &HuaweiState, authed: &Authed, id: &str) -> Result<User, HuaweiError> {
    let user = state
        .dir
        .get_user(&authed.caller, &UserLookup::OpenId(id.to_owned()))
        .await?;
    if user.status.is_resigned {
        return Err(CoreError::not_found(roster_core::Entity::User, id).into());
    }
    Ok(user)
}

/// Path parameters; one that is not valid UTF-8 after percent-decoding is a parameter
/// error in Huawei's envelope, not axum's plain-text 400, which the SDK cannot parse.
pub(crate) struct HuaweiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for HuaweiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = HuaweiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(HuaweiError::param(format!(
                "invalid path parameter: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// `GET /v2/{project_id}/users/{user_id}`.
pub(crate) async fn show_user(
    State(state): State<HuaweiState>,
    Extension(authed): Extension<Authed>,
    HuaweiPath((_project, id)): HuaweiPath<(String, String)>,
) -> Result<Json<wire::ListUserDetailResponse>, HuaweiError> {
    let user = active_user(&state, &authed, &id).await?;
    let groups = group_map(&state, &authed).await?;
    let p = &user.profile;
    let login = login_name(&user);
    Ok(Json(wire::ListUserDetailResponse {
        user_detail: wire::UserDetail {
            id: user.open_id.to_string(),
            description: p.description.clone(),
            user_name: login.clone(),
            user_email: p.email.as_ref().map(|e| e.as_str().to_owned()),
            user_phone: p.mobile.as_ref().map(|m| m.as_str().to_owned()),
            active_type: active_type(p.activation),
            object_sid: user.user_id.to_string(),
            sam_account_name: login.clone(),
            user_principal_name: login.clone(),
            full_name: p.name.clone(),
            distinguished_name: format!("CN={login}"),
            account_type: 0,
            when_created: crate::time::format_seconds(user.created_at / 1000),
            account_expires: p.account_expires.map_or(0, |s| s * 1000),
            is_pre_user: !user.status.is_activated,
            user_expired: expired(&user, state.dir.clock().now_s()),
            locked: false,
            enable_change_password: p.enable_change_password,
            password_never_expired: false,
            next_login_change_password: p.next_login_change_password,
            disabled: user.status.is_frozen,
            group_names: group_names(&user, &groups),
            share_space_subscription: false,
            share_space_desktops: 0,
            total_desktops: 0,
        },
    }))
}

/// `DELETE /v2/{project_id}/users/{user_id}`: deletes (resigns) the user; 200, empty body.
pub(crate) async fn delete_user(
    State(state): State<HuaweiState>,
    Extension(authed): Extension<Authed>,
    HuaweiPath((_project, id)): HuaweiPath<(String, String)>,
) -> Result<Response, HuaweiError> {
    // As in `batch_delete`: a key that may not write learns nothing of which ids exist.
    authed.caller.require(roster_core::Scope::ContactWrite)?;
    let user = active_user(&state, &authed, &id).await?;
    state
        .dir
        .delete_user(
            &authed.caller,
            &UserLookup::Key(user.key),
            Handover::default(),
        )
        .await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /v2/{project_id}/users/batch-delete` with `{user_ids: [...]}` (1..100): every user
/// must exist before any is deleted.
pub(crate) async fn batch_delete(
    State(state): State<HuaweiState>,
    Extension(authed): Extension<Authed>,
    body: Bytes,
) -> Result<Response, HuaweiError> {
    // A key that may not write learns nothing of which ids exist.
    authed.caller.require(roster_core::Scope::ContactWrite)?;
    let req: wire::BatchDeleteUserReq = json(&body)?;
    let ids = req
        .user_ids
        .ok_or_else(|| HuaweiError::param("user_ids is required"))?;
    if ids.is_empty() || ids.len() > BATCH_DELETE_MAX {
        return Err(HuaweiError::param(format!(
            "user_ids must hold 1 to {BATCH_DELETE_MAX} items"
        )));
    }
    let mut users = Vec::with_capacity(ids.len());
    for id in &ids {
        let user = active_user(&state, &authed, id).await?;
        if !users.iter().any(|u: &User| u.key == user.key) {
            users.push(user);
        }
    }
    for user in users {
        let deleted = state
            .dir
            .delete_user(
                &authed.caller,
                &UserLookup::Key(user.key),
                Handover::default(),
            )
            .await;
        match deleted {
            // Every id existed when the request was checked; one that another request
            // deleted since is gone as this one asked. Answering 404 here would report a
            // failure after the users before it were deleted, and the call is all or nothing.
            Ok(())
            | Err(
                CoreError::NotFound { .. }
                | CoreError::Conflict {
                    kind: roster_core::ConflictKind::UserResigned,
                    ..
                },
            ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(StatusCode::OK.into_response())
}

// ------------------------------------------------------------------------------ groups

/// `GET /v2/{project_id}/groups`: `keyword` (name contains, any case), `platform_type`
/// (`AD` matches nothing), `limit`, `offset`.
pub(crate) async fn list_groups(
    State(state): State<HuaweiState>,
    Extension(authed): Extension<Authed>,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::ListUserGroupsResponse>, HuaweiError> {
    let q = query_pairs(query.as_deref())?;
    let limit = zero_is_default(
        number(&q, "limit", GROUPS_DEFAULT_LIMIT, GROUPS_MAX_LIMIT)?,
        GROUPS_DEFAULT_LIMIT,
    );
    let offset = number(&q, "offset", 0, usize::MAX)?;
    let keyword = first(&q, "keyword")
        .map(str::to_lowercase)
        .filter(|k| !k.is_empty());
    let other_platform = other_platform(&q)?;
    let groups: Vec<Group> = state
        .dir
        .list_groups(&authed.caller)
        .await?
        .into_iter()
        .filter(|g| {
            !other_platform
                && keyword
                    .as_ref()
                    .is_none_or(|k| g.name.to_lowercase().contains(k.as_str()))
        })
        .collect();
    let total_count = groups.len();
    let shown: Vec<Group> = groups.into_iter().skip(offset).take(limit).collect();
    // Members are counted for the groups shown only, in one pass over the tenant's users.
    let mut quantity: std::collections::HashMap<String, usize> =
        shown.iter().map(|g| (g.group_id.clone(), 0)).collect();
    if !shown.is_empty() {
        state
            .dir
            .scan_users(&authed.caller, |u| {
                for g in &u.profile.groups {
                    if let Some(n) = quantity.get_mut(g) {
                        *n += 1;
                    }
                }
            })
            .await?;
    }
    Ok(Json(wire::ListUserGroupsResponse {
        total_count,
        user_groups: shown
            .into_iter()
            .map(|g| wire::UserGroupInfo {
                user_quantity: quantity.get(&g.group_id).copied().unwrap_or(0),
                id: g.group_id,
                name: g.name,
                create_time: crate::time::format_seconds(g.created_at / 1000),
                description: g.description,
                platform_type: "LOCAL",
            })
            .collect(),
    }))
}

/// `POST /v2/{project_id}/groups` with `{group_name, platform_type, description}`.
pub(crate) async fn create_group(
    State(state): State<HuaweiState>,
    Extension(authed): Extension<Authed>,
    body: Bytes,
) -> Result<Response, HuaweiError> {
    let req: wire::CreateUserGroupReq = json(&body)?;
    let name = req
        .group_name
        .ok_or_else(|| HuaweiError::param("group_name is required"))?;
    if let Some(p) = req.platform_type.as_deref() {
        if p != "LOCAL" {
            return Err(HuaweiError::param(
                "platform_type must be LOCAL (Roster keeps its own users)",
            ));
        }
    }
    let group = state
        .dir
        .create_group(
            &authed.caller,
            &name,
            req.description.filter(|d| !d.is_empty()),
            None,
        )
        .await?;
    // The SDK's CreateUserGroupResponse has no fields; the id helps other clients.
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({ "id": group.group_id })),
    )
        .into_response())
}

/// `DELETE /v2/{project_id}/groups/{group_id}`: refused while the group has users.
pub(crate) async fn delete_group(
    State(state): State<HuaweiState>,
    Extension(authed): Extension<Authed>,
    HuaweiPath((_project, id)): HuaweiPath<(String, String)>,
) -> Result<Response, HuaweiError> {
    state.dir.delete_group(&authed.caller, &id).await?;
    Ok(StatusCode::OK.into_response())
}

/// `GET /v2/{project_id}/groups/{group_id}/users`: the filters of `UserFilter`, `limit`,
/// `offset`.
pub(crate) async fn group_users(
    State(state): State<HuaweiState>,
    Extension(authed): Extension<Authed>,
    HuaweiPath((_project, id)): HuaweiPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<wire::ListUsersOfGroupResponse>, HuaweiError> {
    let q = query_pairs(query.as_deref())?;
    let limit = zero_is_default(
        number(&q, "limit", MEMBERS_DEFAULT_LIMIT, MEMBERS_MAX_LIMIT)?,
        MEMBERS_DEFAULT_LIMIT,
    );
    let offset = number(&q, "offset", 0, usize::MAX)?;
    let filter = UserFilter::parse(&q)?;
    let group = state.dir.get_group(&authed.caller, &id).await?;
    let mut page = Page::new(offset, limit);
    state
        .dir
        .scan_users(&authed.caller, |u| {
            if u.profile.groups.contains(&group.group_id) && filter.matches(&u) {
                page.offer(u);
            }
        })
        .await?;
    Ok(Json(wire::ListUsersOfGroupResponse {
        total_count: page.total,
        users: page
            .kept
            .iter()
            .map(|u| wire::UserInGroup {
                id: u.open_id.to_string(),
                user_name: login_name(u),
                user_email: u.profile.email.as_ref().map(|e| e.as_str().to_owned()),
                user_phone: u.profile.mobile.as_ref().map(|m| m.as_str().to_owned()),
                total_desktops: 0,
                description: u.profile.description.clone(),
            })
            .collect(),
    }))
}

// ----------------------------------------------------------------------------- fallbacks

/// Any other `/v2/…` path: API Gateway's "no such API", in the Huawei envelope.
pub(crate) async fn no_api() -> HuaweiError {
    HuaweiError::new(StatusCode::NOT_FOUND, codes::NO_API, "")
}

/// A known path with the wrong method.
pub(crate) async fn method_not_allowed() -> HuaweiError {
    HuaweiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused<T: DeserializeOwned + std::fmt::Debug>(body: &str) -> HuaweiError {
        json::<T>(body.as_bytes()).expect_err(body)
    }

    /// The robustness audit's bodies: serde fills a struct from an array by position, so
    /// these created a user and issued a token. Every body goes through `json`, so every
    /// handler refuses them before it reads a field.
    #[test]
    fn an_array_in_place_of_an_object_is_refused_at_any_depth() {
        let user =
            r#"{"user_name":"arrayuser","active_type":"USER_ACTIVATE","user_email":"a@x.com"}"#;
        for body in [
            format!("[[{user}]]"),
            r#"{"users":[["arrayuser",null,null,"USER_ACTIVATE"]]}"#.to_owned(),
            format!(r#"{{"users":[{user},["b"]]}}"#),
            "[]".to_owned(),
        ] {
            let e = refused::<wire::BatchCreateUsersReq>(&body);
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, "WKS.00010001")
            );
            assert!(
                e.msg.contains("expected a JSON object"),
                "{body}: {}",
                e.msg
            );
        }
        let identity =
            r#"{"methods":["hw_ak_sk"],"hw_ak_sk":{"access":{"key":"AK"},"secret":{"key":"SK"}}}"#;
        for body in [
            format!(r#"[{{"identity":{identity},"scope":{{"project":{{"id":"p"}}}}}}]"#),
            format!(r#"{{"auth":[{identity}]}}"#),
            r#"{"auth":{"identity":{"methods":["password"],"password":[["AK","SK"]]}}}"#.to_owned(),
            r#"{"auth":{"scope":{"project":["p"]}}}"#.to_owned(),
        ] {
            let e = refused::<wire::TokenRequest>(&body);
            assert_eq!(e.code, "WKS.00010001", "{body}");
        }
        assert_eq!(
            refused::<wire::BatchDeleteUserReq>(r#"[["ou_1"]]"#).code,
            "WKS.00010001"
        );
        assert_eq!(
            refused::<wire::CreateUserGroupReq>(r#"["g"]"#).code,
            "WKS.00010001"
        );
    }

    #[test]
    fn objects_still_parse_and_other_faults_keep_their_codes() {
        let req: wire::BatchCreateUsersReq =
            json(br#" {"users":[{"user_name":"a1","group_ids":["g"]}]} "#).unwrap();
        let users = req.users.unwrap();
        assert_eq!(users[0].user_name.as_deref(), Some("a1"));
        assert_eq!(users[0].group_ids.as_deref(), Some(&["g".to_owned()][..]));
        assert_eq!(refused::<wire::BatchCreateUsersReq>("  ").code, "WKS.0001");
        for body in [
            r#"{"users":[],"users":[]}"#,
            r#"{"users":"x"}"#,
            r#"{"users":[]} {}"#,
            r#"{"users":"#,
        ] {
            assert_eq!(
                refused::<wire::BatchCreateUsersReq>(body).code,
                "WKS.00010001",
                "{body}"
            );
        }
    }
}
