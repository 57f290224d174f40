//! Contact v3 users (contact-v3/user/*), U1-U12 of the spec. Handlers decode, call the
//! directory, encode; the only logic here is Feishu's choice of codes per operation.

use axum::extract::{OriginalUri, State};
use http::StatusCode;
use roster_core::{BatchMode, CoreError, Handover, Membership, UniqueKey, UserKey, UserLookup};

use crate::codes;
use crate::convert::{self, DeptResolver, IdTypes, Renderer};
use crate::envelope::{Envelope, OkEnvelope};
use crate::error::FeishuError;
use crate::extract::{
    fingerprint, FeishuBody, FeishuJson, FeishuPath, FeishuQuery, FeishuState, TenantAuth,
};
use crate::page;
use crate::wire;

/// U1 `POST /open-apis/contact/v3/users` (idempotent with `client_token`).
pub(crate) async fn create(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    OriginalUri(uri): OriginalUri,
    query: FeishuQuery,
    body: FeishuBody<wire::UserBody>,
) -> Result<Envelope<wire::Answer<wire::UserData>>, FeishuError> {
    // A client that hangs up drops this handler's future; the create runs in a task of its
    // own so that it still ends by recording its `client_token` result (or releasing the
    // key), instead of leaving the key claimed with no result behind a committed user.
    tokio::spawn(create_to_the_end(state, caller, uri, query, body))
        .await
        .map_err(|e| FeishuError::internal(format!("user create task failed: {e}")))?
}

async fn create_to_the_end(
    state: FeishuState,
    caller: roster_core::Caller,
    uri: http::Uri,
    query: FeishuQuery,
    body: FeishuBody<wire::UserBody>,
) -> Result<Envelope<wire::Answer<wire::UserData>>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let dir = &state.dir;
    let run = || async {
        let mut depts = DeptResolver::new(dir, &caller, ids);
        let new = convert::new_user(body.value, ids, &mut depts)
            .await
            .map_err(Rejected::Feishu)?;
        let report = dir
            .create_users(&caller, vec![Ok(new)], BatchMode::Atomic)
            .await
            .map_err(Rejected::Core)?;
        let created = report
            .items
            .into_iter()
            .next()
            .ok_or_else(|| Rejected::Feishu(FeishuError::internal("empty batch report")))?
            .map_err(Rejected::Core)?;
        Ok::<_, Rejected>(created.open_id.to_string())
    };
    let (open_id, keyed) = match query.str("client_token") {
        None => (run().await?, None),
        Some(token) => {
            let print = fingerprint(uri.path(), &query, &body.canonical);
            // The closure's own Feishu errors travel through the core as a stand-in and are
            // restored below, so that a failed create releases the key either way.
            let mut feishu_err = None;
            let outcome = dir
                .idempotent(&caller, CREATE_USER_OPERATION, token, &print, || async {
                    match run().await {
                        Ok(id) => Ok(id),
                        Err(Rejected::Core(e)) => Err(e),
                        Err(Rejected::Feishu(e)) => {
                            feishu_err = Some(e);
                            Err(CoreError::invalid("request", "rejected"))
                        }
                    }
                })
                .await;
            match (outcome, feishu_err) {
                (Ok(o), _) => {
                    // A replay answers what the first request was answered (spec §2), not
                    // the user as later changes left it; a key recorded before answers were
                    // kept, or whose answer could not be stored, renders the user.
                    if let Some(first) = o.answer.as_deref().filter(|_| o.replayed) {
                        if let Ok(first) = serde_json::from_str(first) {
                            return Ok(Envelope(wire::Answer::Replayed(first)));
                        }
                    }
                    (o.entity_id, (!o.replayed).then_some(token))
                }
                (Err(_), Some(e)) => return Err(e),
                (Err(e), None) => return Err(e.into()),
            }
        }
    };
    let user = dir
        .get_user(&caller, &UserLookup::OpenId(open_id.clone()))
        .await?;
    let user = Renderer::new(&state, &caller, ids).user(&user).await?;
    let data = wire::UserData { user };
    if let Some(token) = keyed {
        let answer = serde_json::to_string(&data).map_err(FeishuError::internal)?;
        dir.record_idempotent_answer(&caller, CREATE_USER_OPERATION, token, &open_id, &answer)
            .await;
    }
    Ok(Envelope(wire::Answer::Fresh(data)))
}

/// The idempotency operation of U1's `client_token`.
const CREATE_USER_OPERATION: &str = "feishu.users.create";

/// A failure inside a create: already a Feishu error (a wire-level check) or a domain one.
pub(crate) enum Rejected {
    Feishu(FeishuError),
    Core(CoreError),
}

impl From<Rejected> for FeishuError {
    fn from(r: Rejected) -> Self {
        match r {
            Rejected::Feishu(e) => e,
            Rejected::Core(e) => e.into(),
        }
    }
}

/// U10 `GET /open-apis/contact/v3/users/:user_id`: resigned users too.
pub(crate) async fn get(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    FeishuPath(user_id): FeishuPath<String>,
) -> Result<Envelope<wire::UserData>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let (user, departments) = state
        .dir
        .get_user_with_departments(&caller, &ids.user_lookup(&user_id))
        .await?;
    let user = Renderer::new(&state, &caller, ids)
        .knowing(departments)
        .user(&user)
        .await?;
    Ok(Envelope(wire::UserData { user }))
}

/// U9 `PATCH /open-apis/contact/v3/users/:user_id`: only the fields sent change.
pub(crate) async fn patch(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    FeishuPath(user_id): FeishuPath<String>,
    FeishuJson(body): FeishuJson<wire::UserBody>,
) -> Result<Envelope<wire::UserData>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let mut depts = DeptResolver::new(&state.dir, &caller, ids);
    let patch = convert::user_patch(body, ids, &mut depts).await?;
    let user = state
        .dir
        .patch_user(&caller, &ids.user_lookup(&user_id), patch)
        .await?;
    let user = Renderer::new(&state, &caller, ids).user(&user).await?;
    Ok(Envelope(wire::UserData { user }))
}

/// `PUT /open-apis/contact/v3/users/:user_id` (the SDK's `user.update`): the update
/// document's required `name` and `department_ids` must be sent (41006, 41017); every field
/// sent is then set as U9 (PATCH) sets it, and a field left out keeps its value, so that a
/// client sending the whole user and one sending part of it both get what they sent.
pub(crate) async fn update(
    state: State<FeishuState>,
    caller: TenantAuth,
    query: FeishuQuery,
    path: FeishuPath<String>,
    FeishuJson(body): FeishuJson<wire::UserBody>,
) -> Result<Envelope<wire::UserData>, FeishuError> {
    if body.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(FeishuError::new(
            StatusCode::BAD_REQUEST,
            codes::NO_USER_NAME,
        ));
    }
    if body.department_ids.as_ref().is_none_or(Vec::is_empty) {
        return Err(FeishuError::new(
            StatusCode::BAD_REQUEST,
            codes::DEPARTMENT_REQUIRED,
        ));
    }
    patch(state, caller, query, path, FeishuJson(body)).await
}

/// U2 `PATCH /open-apis/contact/v3/users/:user_id/update_user_id`.
pub(crate) async fn update_user_id(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    FeishuPath(user_id): FeishuPath<String>,
    FeishuJson(body): FeishuJson<wire::UpdateUserIdBody>,
) -> Result<Envelope<wire::Empty>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let Some(new_id) = body.new_user_id.filter(|s| !s.is_empty()) else {
        return Err(FeishuError::new(
            StatusCode::BAD_REQUEST,
            codes::NEW_USER_ID_REQUIRED,
        ));
    };
    let new_id = roster_core::UserId::parse(&new_id)?;
    state
        .dir
        .update_user_id(&caller, &ids.user_lookup(&user_id), new_id)
        .await?;
    Ok(Envelope(wire::Empty {}))
}

/// U3 `POST /open-apis/contact/v3/users/batch_get_id`: one entry per queried value.
pub(crate) async fn batch_get_id(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    FeishuJson(body): FeishuJson<wire::BatchGetIdBody>,
) -> Result<Envelope<wire::UserListData>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let emails = body.emails.unwrap_or_default();
    let mobiles = body.mobiles.unwrap_or_default();
    if emails.len() > 50 || mobiles.len() > 50 {
        return Err(FeishuError::param("at most 50 emails and 50 mobiles"));
    }
    // A value that is not a valid address or number matches nobody; it is echoed without
    // an id rather than failing the whole query.
    let parsed_emails: Vec<Option<roster_core::values::Email>> = emails
        .iter()
        .map(|e| roster_core::values::Email::parse("emails", e).ok())
        .collect();
    let parsed_mobiles: Vec<Option<roster_core::values::Mobile>> = mobiles
        .iter()
        .map(|m| roster_core::values::Mobile::parse("mobiles", m).ok())
        .collect();
    let valid_emails: Vec<_> = parsed_emails.iter().flatten().cloned().collect();
    let valid_mobiles: Vec<_> = parsed_mobiles.iter().flatten().cloned().collect();
    let (found_e, found_m) = state
        .dir
        .users_by_contact(
            &caller,
            &valid_emails,
            &valid_mobiles,
            body.include_resigned.unwrap_or(false),
        )
        .await?;
    let mut found_e = found_e.into_iter();
    let mut found_m = found_m.into_iter();
    let mut user_list = Vec::with_capacity(emails.len() + mobiles.len());
    for (raw, parsed) in emails.iter().zip(&parsed_emails) {
        let user = if parsed.is_some() {
            found_e.next().flatten()
        } else {
            None
        };
        user_list.push(wire::UserContactInfo {
            user_id: user.as_ref().map(|u| ids.user_id_of(u)),
            email: Some(raw.clone()),
            mobile: None,
            status: user.as_ref().map(convert::status),
        });
    }
    for (raw, parsed) in mobiles.iter().zip(&parsed_mobiles) {
        let user = if parsed.is_some() {
            found_m.next().flatten()
        } else {
            None
        };
        user_list.push(wire::UserContactInfo {
            user_id: user.as_ref().map(|u| ids.user_id_of(u)),
            email: None,
            mobile: Some(raw.clone()),
            status: user.as_ref().map(convert::status),
        });
    }
    Ok(Envelope(wire::UserListData { user_list }))
}

/// U11 `GET /open-apis/contact/v3/users/batch?user_ids=a&user_ids=b`.
pub(crate) async fn batch(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
) -> Result<Envelope<wire::ItemsData<wire::User>>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let wanted = query.all("user_ids");
    if wanted.is_empty() || wanted.len() > 50 {
        return Err(FeishuError::param("user_ids must hold 1 to 50 ids"));
    }
    let lookups: Vec<UserLookup> = wanted.iter().map(|id| ids.user_lookup(id)).collect();
    let mut users = state.dir.get_users(&caller, &lookups).await?;
    // An id asked twice (or a user named by two of its ids) is one user in the answer.
    let mut seen = std::collections::HashSet::new();
    users.retain(|u| seen.insert(u.key));
    let mut renderer = Renderer::new(&state, &caller, ids);
    let mut items = Vec::with_capacity(users.len());
    for u in &users {
        items.push(renderer.user(u).await?);
    }
    Ok(Envelope(wire::ItemsData { items }))
}

/// U12 `GET /open-apis/contact/v3/users/find_by_department` (and the legacy
/// `GET /open-apis/contact/v3/users?department_id=`): direct, active members only.
pub(crate) async fn find_by_department(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
) -> Result<Envelope<wire::Page<wire::User>>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let Some(dept_id) = query.str("department_id") else {
        return Err(FeishuError::param("department_id is required"));
    };
    let size = page::page_size(&query, 10, 50)?;
    let list = page::list_of(&caller, &format!("members\n{dept_id}"));
    let after = page::page_after(&query, &list)?.map(UserKey);
    let (users, more) = state
        .dir
        .department_users(&caller, &ids.dept_lookup(dept_id), after, size)
        .await?;
    let page_token = if more {
        users.last().map(|u| page::token_after(&list, u.key.0))
    } else {
        None
    };
    let mut renderer = Renderer::new(&state, &caller, ids);
    let mut items = Vec::with_capacity(users.len());
    for u in &users {
        items.push(renderer.user(u).await?);
    }
    Ok(Envelope(wire::Page {
        has_more: page_token.is_some(),
        page_token,
        items,
    }))
}

/// U4 `GET /open-apis/search/v1/user?query=`: tenant tokens accepted (spec §7 deviation).
pub(crate) async fn search(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
) -> Result<OkEnvelope<wire::SearchData>, FeishuError> {
    let Some(text) = query.str("query").filter(|q| !q.trim().is_empty()) else {
        return Err(FeishuError::param("query must not be empty"));
    };
    let size = page::page_size(&query, 20, 200)?;
    let list = page::list_of(&caller, &format!("search\n{text}"));
    let after = page::search_after(&query, &list)?;
    let (found, next) = state.dir.search_users(&caller, text, after, size).await?;
    let page_token = next.as_ref().map(|place| page::search_token(&list, place));
    let users: Vec<_> = found.into_iter().map(|(u, _)| u).collect();
    let mut renderer = Renderer::new(
        &state,
        &caller,
        IdTypes::from_query(&FeishuQuery::default())?,
    );
    let mut out = Vec::with_capacity(users.len());
    for u in &users {
        out.push(renderer.search_user(u).await?);
    }
    Ok(OkEnvelope(wire::SearchData {
        has_more: page_token.is_some(),
        page_token,
        users: out,
    }))
}

/// U5 `DELETE /open-apis/contact/v3/users/:user_id` with a JSON body of acceptors.
pub(crate) async fn delete(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    FeishuPath(user_id): FeishuPath<String>,
    FeishuJson(body): FeishuJson<wire::DeleteUserBody>,
) -> Result<Envelope<wire::Empty>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let mut transfers = Vec::new();
    let named = [
        ("department_chat", body.department_chat_acceptor_user_id),
        ("external_chat", body.external_chat_acceptor_user_id),
        ("docs", body.docs_acceptor_user_id),
        ("calendar", body.calendar_acceptor_user_id),
        ("application", body.application_acceptor_user_id),
        ("minutes", body.minutes_acceptor_user_id),
        ("survey", body.survey_acceptor_user_id),
        ("anycross", body.anycross_acceptor_user_id),
    ];
    for (kind, id) in named {
        if let Some(id) = id.filter(|s| !s.is_empty()) {
            transfers.push((kind.to_owned(), ids.user_lookup(&id)));
        }
    }
    if let Some(mail) = body.email_acceptor {
        match mail.processing_type.as_deref() {
            None | Some("1" | "2" | "3") => {}
            Some(other) => {
                return Err(FeishuError::param(format!(
                    "email_acceptor.processing_type {other:?}"
                )))
            }
        }
        if mail.processing_type.as_deref() == Some("1") {
            let Some(id) = mail.acceptor_user_id.filter(|s| !s.is_empty()) else {
                return Err(FeishuError::new(
                    StatusCode::BAD_REQUEST,
                    codes::ACCEPTOR_INVALID,
                ));
            };
            transfers.push(("email".to_owned(), ids.user_lookup(&id)));
        }
    }
    // Reports and led departments go to the department-chat acceptor when one is named
    // (it is the organisational hand-over in Feishu's list), else to the deleted user's own
    // leader, the default Feishu documents. An acceptor of documents, calendars or mail
    // takes those only: it does not become anyone's manager.
    let successor = transfers
        .iter()
        .find(|(k, _)| k == "department_chat")
        .map(|(_, l)| l.clone());
    state
        .dir
        .delete_user(
            &caller,
            &ids.user_lookup(&user_id),
            Handover {
                successor,
                transfers,
            },
        )
        .await?;
    Ok(Envelope(wire::Empty {}))
}

/// U6 `POST /open-apis/contact/v3/users/:user_id/resurrect`.
pub(crate) async fn resurrect(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    FeishuPath(user_id): FeishuPath<String>,
    FeishuJson(body): FeishuJson<wire::ResurrectBody>,
) -> Result<Envelope<wire::Empty>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    // An empty `departments` is what a client model with a list default sends beside the
    // bare `department_ids` it means (the seed interface's `ResurrectUserRequest`).
    let listed = body.departments.filter(|d| !d.is_empty()).or_else(|| {
        body.department_ids.map(|ids| {
            ids.into_iter()
                .map(|id| wire::ResurrectDepartment {
                    department_id: Some(id),
                    user_order: None,
                    department_order: None,
                })
                .collect()
        })
    });
    let departments = match listed {
        None => None,
        Some(list) if list.len() > 50 => return Err(FeishuError::param("at most 50 departments")),
        Some(list) => {
            let mut depts = DeptResolver::new(&state.dir, &caller, ids);
            let mut out = Vec::with_capacity(list.len());
            for (i, d) in list.into_iter().enumerate() {
                let Some(id) = d.department_id.filter(|s| !s.is_empty()) else {
                    return Err(FeishuError::param(
                        "departments[].department_id is required",
                    ));
                };
                out.push(Membership {
                    department: depts.key(&id).await?,
                    user_order: d.user_order.unwrap_or(0),
                    department_order: d.department_order.unwrap_or(0),
                    is_primary: i == 0,
                });
            }
            Some(out)
        }
    };
    let subscription_ids = crate::convert::subscription_ids(body.subscription_ids)?;
    let bad = StatusCode::BAD_REQUEST;
    state
        .dir
        .resurrect_user(
            &caller,
            &ids.user_lookup(&user_id),
            departments,
            subscription_ids,
        )
        .await
        .map_err(|e| match e {
            CoreError::AlreadyExists {
                field: UniqueKey::Mobile,
                ..
            } => FeishuError::new(bad, codes::RESURRECT_MOBILE_TAKEN),
            CoreError::AlreadyExists {
                field: UniqueKey::Email,
                ..
            } => FeishuError::new(bad, codes::RESURRECT_EMAIL_TAKEN),
            CoreError::AlreadyExists {
                field: UniqueKey::UserId,
                ..
            } => FeishuError::new(bad, codes::RESURRECT_USER_ID_TAKEN),
            other => other.into(),
        })?;
    Ok(Envelope(wire::Empty {}))
}

/// U7 `POST /open-apis/passport/v1/sessions/logout`.
pub(crate) async fn logout(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    FeishuJson(body): FeishuJson<wire::LogoutBody>,
) -> Result<Envelope<wire::Empty>, FeishuError> {
    let bad = StatusCode::BAD_REQUEST;
    let invalid = |detail: &str| FeishuError::with_detail(bad, codes::LOGOUT_PARAM_INVALID, detail);
    // An unknown id type is 40001 here as on every other endpoint (spec §2); 1080001 is
    // for the body's own fields.
    let ids = IdTypes::from_query(&query)?;
    if let Some(reason) = body.logout_reason {
        if !(34..=36).contains(&reason) {
            return Err(FeishuError::new(bad, codes::LOGOUT_REASON_INVALID));
        }
    }
    if let Some(types) = &body.terminal_type {
        let known = [1, 2, 3, 4, 5, 6, 8];
        if types
            .iter()
            .any(|t| t.as_i64().is_none_or(|n| !known.contains(&n)))
        {
            return Err(invalid("terminal_type"));
        }
    }
    match body.logout_type {
        Some(1) => {
            let Some(user_id) = body.user_id.filter(|s| !s.is_empty()) else {
                return Err(invalid("user_id is required when logout_type is 1"));
            };
            state
                .dir
                .logout_user(&caller, &ids.user_lookup(&user_id))
                .await
                .map_err(|e| match e {
                    CoreError::NotFound { .. } => invalid("no such user"),
                    other => other.into(),
                })?;
            Ok(Envelope(wire::Empty {}))
        }
        Some(2) => {
            // Roster has no identity-provider credentials yet, so no id can match one.
            let _ = body
                .idp_credential_id
                .filter(|s| !s.is_empty())
                .ok_or_else(|| invalid("idp_credential_id is required"))?;
            Err(invalid("unknown idp_credential_id"))
        }
        Some(3) => {
            // Nor sessions: every sid is unknown.
            let _ = body
                .sid
                .filter(|s| !s.is_empty())
                .ok_or_else(|| invalid("sid is required"))?;
            Err(FeishuError::new(bad, codes::LOGOUT_SID_INVALID))
        }
        _ => Err(invalid("logout_type must be 1, 2 or 3")),
    }
}

/// U8 `POST /open-apis/jssdk/ticket/get`.
pub(crate) async fn jsapi_ticket(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
) -> Result<OkEnvelope<wire::TicketData>, FeishuError> {
    let (ticket, expire_in) = state.dir.jsapi_ticket(&caller).await?;
    Ok(OkEnvelope(wire::TicketData { expire_in, ticket }))
}

/// `GET /avatars/:open_id/:size`: the picture a user's `avatar` URLs name. Roster keeps no
/// pictures (`avatar_key` refers to Feishu's image store), so every user has the same
/// neutral silhouette, in every size; it names nobody, so it needs no token, as Feishu's
/// CDN URLs need none.
pub(crate) async fn avatar(
    FeishuPath((_open_id, size)): FeishuPath<(String, String)>,
) -> Result<axum::response::Response, FeishuError> {
    use axum::response::IntoResponse as _;
    if !matches!(size.as_str(), "72" | "240" | "640" | "origin") {
        return Err(FeishuError::new(StatusCode::NOT_FOUND, codes::NOT_FOUND));
    }
    Ok((
        [
            (http::header::CONTENT_TYPE, "image/svg+xml"),
            (http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        AVATAR_SVG,
    )
        .into_response())
}

/// A grey head and shoulders on a light disc.
const AVATAR_SVG: &str = concat!(
    r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="640" height="640">"##,
    r##"<circle cx="32" cy="32" r="32" fill="#e4e7ec"/>"##,
    r##"<circle cx="32" cy="25" r="11" fill="#9aa3b2"/>"##,
    r##"<path d="M12 54c2-11 11-17 20-17s18 6 20 17" fill="#9aa3b2"/>"##,
    "</svg>"
);
