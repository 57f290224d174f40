//! Contact v3 departments (contact-v3/department/*).

use axum::extract::{OriginalUri, State};
use http::StatusCode;
use roster_core::{CoreError, DeptLookup};

use super::users::Rejected;
use crate::codes;
use crate::convert::{self, IdTypes, Renderer};
use crate::envelope::Envelope;
use crate::error::FeishuError;
use crate::extract::{
    fingerprint, FeishuBody, FeishuJson, FeishuPath, FeishuQuery, FeishuState, TenantAuth,
};
use crate::page;
use crate::wire;

/// D1 `POST /open-apis/contact/v3/departments` (idempotent with `client_token`).
pub(crate) async fn create(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    OriginalUri(uri): OriginalUri,
    query: FeishuQuery,
    body: FeishuBody<wire::DepartmentBody>,
) -> Result<Envelope<wire::Answer<wire::DepartmentData>>, FeishuError> {
    // As for users: a client that hangs up must not cancel the create between its commit
    // and the record of its `client_token` result.
    tokio::spawn(create_to_the_end(state, caller, uri, query, body))
        .await
        .map_err(|e| FeishuError::internal(format!("department create task failed: {e}")))?
}

async fn create_to_the_end(
    state: FeishuState,
    caller: roster_core::Caller,
    uri: http::Uri,
    query: FeishuQuery,
    body: FeishuBody<wire::DepartmentBody>,
) -> Result<Envelope<wire::Answer<wire::DepartmentData>>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let dir = &state.dir;
    let canonical = body.canonical;
    let value = body.value;
    let run = || async {
        let new = convert::new_department(dir, &caller, ids, value)
            .await
            .map_err(Rejected::Feishu)?;
        Ok::<_, Rejected>(
            dir.create_department(&caller, new)
                .await
                .map_err(Rejected::Core)?
                .open_department_id
                .to_string(),
        )
    };
    let (open_id, replayed, keyed) = match query.str("client_token") {
        None => (run().await?, false, None),
        Some(token) => {
            let print = fingerprint(uri.path(), &query, &canonical);
            // The body's references (parent, leaders, HRBPs) are resolved inside the keyed
            // run, as U1 does: a retry of a create that succeeded is answered with its first
            // answer even after something it named was deleted or renamed. A Feishu error of
            // the run travels through the core as a stand-in, which releases the key.
            let mut feishu_err = None;
            let outcome = dir
                .idempotent(
                    &caller,
                    CREATE_DEPARTMENT_OPERATION,
                    token,
                    &print,
                    || async {
                        match run().await {
                            Ok(id) => Ok(id),
                            Err(Rejected::Core(e)) => Err(e),
                            Err(Rejected::Feishu(e)) => {
                                feishu_err = Some(e);
                                Err(CoreError::invalid("request", "rejected"))
                            }
                        }
                    },
                )
                .await;
            let o = match (outcome, feishu_err) {
                (Ok(o), _) => o,
                (Err(_), Some(e)) => return Err(e),
                (Err(e), None) => return Err(e.into()),
            };
            // A replay answers what the first request was answered (spec §2); a key
            // recorded before answers were kept renders the department as it is.
            if let Some(first) = o.answer.as_deref().filter(|_| o.replayed) {
                if let Ok(first) = serde_json::from_str(first) {
                    return Ok(Envelope(wire::Answer::Replayed(first)));
                }
            }
            (o.entity_id, o.replayed, (!o.replayed).then_some(token))
        }
    };
    let lookup = DeptLookup::OpenId(open_id.clone());
    let dept = if replayed {
        dir.replayed_department(&caller, &lookup).await?
    } else {
        dir.get_department(&caller, &lookup).await?
    };
    let department = Renderer::new(&state, &caller, ids)
        .department(&dept)
        .await?;
    let data = wire::DepartmentData { department };
    if let Some(token) = keyed {
        let answer = serde_json::to_string(&data).map_err(FeishuError::internal)?;
        dir.record_idempotent_answer(
            &caller,
            CREATE_DEPARTMENT_OPERATION,
            token,
            &open_id,
            &answer,
        )
        .await;
    }
    Ok(Envelope(wire::Answer::Fresh(data)))
}

/// The idempotency operation of D1's `client_token`.
const CREATE_DEPARTMENT_OPERATION: &str = "feishu.departments.create";

/// D2 `GET /open-apis/contact/v3/departments/:department_id`.
pub(crate) async fn get(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    FeishuPath(department_id): FeishuPath<String>,
) -> Result<Envelope<wire::DepartmentData>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let dept = state
        .dir
        .get_department(&caller, &ids.dept_lookup(&department_id))
        .await?;
    let department = Renderer::new(&state, &caller, ids)
        .department(&dept)
        .await?;
    Ok(Envelope(wire::DepartmentData { department }))
}

/// `GET /open-apis/contact/v3/departments/batch?department_ids=…` (the SDK's
/// `department.batch`): up to 50 departments in the order asked, each once. An id that names
/// no department the app may see is left out, as `users/batch` leaves out unknown users.
pub(crate) async fn batch(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
) -> Result<Envelope<wire::ItemsData<wire::Department>>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let wanted = query.all("department_ids");
    if wanted.is_empty() || wanted.len() > 50 {
        return Err(FeishuError::param("department_ids must hold 1 to 50 ids"));
    }
    let mut renderer = Renderer::new(&state, &caller, ids);
    let mut seen = std::collections::HashSet::new();
    let mut items = Vec::with_capacity(wanted.len());
    for id in wanted {
        let dept = match state
            .dir
            .get_department(&caller, &ids.dept_lookup(id))
            .await
        {
            Ok(d) => d,
            Err(CoreError::NotFound { .. } | CoreError::Forbidden(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        if seen.insert(dept.key) {
            items.push(renderer.department(&dept).await?);
        }
    }
    Ok(Envelope(wire::ItemsData { items }))
}

/// `PATCH /open-apis/contact/v3/departments/:department_id`: only the fields sent change;
/// a new parent moves the subtree.
pub(crate) async fn patch(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    FeishuPath(department_id): FeishuPath<String>,
    FeishuJson(body): FeishuJson<wire::DepartmentBody>,
) -> Result<Envelope<wire::DepartmentData>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let patch = convert::department_patch(&state.dir, &caller, ids, body).await?;
    let dept = state
        .dir
        .update_department(&caller, &ids.dept_lookup(&department_id), patch)
        .await?;
    let department = Renderer::new(&state, &caller, ids)
        .department(&dept)
        .await?;
    Ok(Envelope(wire::DepartmentData { department }))
}

/// `PUT /open-apis/contact/v3/departments/:department_id` (the SDK's `department.update`):
/// the update document's required `name` and `parent_department_id` must be sent (40016,
/// 44101); every field sent is then set as the PATCH sets it, and a field left out keeps
/// its value, so that a client sending the whole department and one sending part of it
/// both get what they sent.
pub(crate) async fn update(
    state: State<FeishuState>,
    caller: TenantAuth,
    query: FeishuQuery,
    path: FeishuPath<String>,
    FeishuJson(body): FeishuJson<wire::DepartmentBody>,
) -> Result<Envelope<wire::DepartmentData>, FeishuError> {
    if body.name.as_deref().is_none_or(str::is_empty) {
        return Err(FeishuError::new(
            StatusCode::BAD_REQUEST,
            codes::DEPT_NAME_EMPTY,
        ));
    }
    if body
        .parent_department_id
        .as_deref()
        .is_none_or(str::is_empty)
    {
        return Err(FeishuError::with_detail(
            StatusCode::BAD_REQUEST,
            codes::MISSING_PARENT_ID,
            "parent_department_id is required",
        ));
    }
    patch(state, caller, query, path, FeishuJson(body)).await
}

/// `PATCH /open-apis/contact/v3/departments/:department_id/update_department_id`: gives a
/// department another custom `department_id` (43008 when malformed, 43007 when another
/// department holds it; the root's cannot change, 40002).
pub(crate) async fn update_department_id(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    FeishuPath(department_id): FeishuPath<String>,
    FeishuJson(body): FeishuJson<wire::UpdateDepartmentIdBody>,
) -> Result<Envelope<wire::Empty>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let Some(new_id) = body.new_department_id.filter(|s| !s.is_empty()) else {
        return Err(FeishuError::param("new_department_id is required"));
    };
    let new_id = roster_core::ids::DepartmentId::parse(&new_id)?;
    state
        .dir
        .update_department(
            &caller,
            &ids.dept_lookup(&department_id),
            roster_core::DepartmentPatch {
                department_id: Some(new_id),
                ..roster_core::DepartmentPatch::default()
            },
        )
        .await?;
    Ok(Envelope(wire::Empty {}))
}

/// `DELETE /open-apis/contact/v3/departments/:department_id`: refused while the
/// department has members or children.
pub(crate) async fn delete(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    FeishuPath(department_id): FeishuPath<String>,
) -> Result<Envelope<wire::Empty>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    state
        .dir
        .delete_department(&caller, &ids.dept_lookup(&department_id))
        .await?;
    Ok(Envelope(wire::Empty {}))
}

/// D3 `GET /open-apis/contact/v3/departments/:department_id/children`.
pub(crate) async fn children(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    FeishuPath(department_id): FeishuPath<String>,
) -> Result<Envelope<wire::Page<wire::Department>>, FeishuError> {
    list_children(&state, &caller, &query, &department_id).await
}

/// `GET /open-apis/contact/v3/departments?parent_department_id=` (the SDK's
/// `department.list`, the legacy form of D3): the children of `parent_department_id`, the
/// root's when it is left out, with D3's query, pages and tokens.
pub(crate) async fn list(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
) -> Result<Envelope<wire::Page<wire::Department>>, FeishuError> {
    let parent = query
        .str("parent_department_id")
        .filter(|p| !p.is_empty())
        .unwrap_or("0")
        .to_owned();
    list_children(&state, &caller, &query, &parent).await
}

async fn list_children(
    state: &FeishuState,
    caller: &roster_core::Caller,
    query: &FeishuQuery,
    department_id: &str,
) -> Result<Envelope<wire::Page<wire::Department>>, FeishuError> {
    let ids = IdTypes::from_query(query)?;
    let size = page::page_size(query, 10, 50)?;
    let recursive = query.bool("fetch_child")?.unwrap_or(false);
    let list = page::list_of(caller, &format!("children\n{department_id}\n{recursive}"));
    let after = page::list_after(query, &list)?;
    let all = state
        .dir
        .child_departments(caller, &ids.dept_lookup(department_id), recursive)
        .await?;
    render_page(state, caller, ids, all_placed(all), (&list, after, size)).await
}

/// Each department of a child listing with its place in it: its depth below the listed
/// department, then its own `order` and key. Ascending places are the store's order of
/// siblings (`order`, then creation) and, for a whole subtree, breadth-first order: all of
/// one level before the next, each level by `order` and creation. A place holds nothing of
/// the departments above, so that reordering a parent between two pages moves none of its
/// descendants in the walk (grouping each level by parent would: a parent moved ahead would
/// take its children past the cursor, unseen).
fn all_placed(all: Vec<roster_core::Department>) -> Vec<(Vec<i64>, roster_core::Department)> {
    let parents: std::collections::HashMap<i64, Option<i64>> = all
        .iter()
        .map(|d| (d.key.0, d.parent.map(|p| p.0)))
        .collect();
    all.into_iter()
        .map(|d| {
            let mut depth = 1_i64;
            let mut next = d.parent.map(|p| p.0);
            // The listed department is not in the list, so the walk ends at it; the bound
            // keeps a damaged table from making it endless.
            while let Some(Some(above)) = next.and_then(|k| parents.get(&k)).copied() {
                if depth > roster_core::department::MAX_DEPTH as i64 {
                    break;
                }
                depth += 1;
                next = Some(above);
            }
            (vec![depth, d.fields.order, d.key.0], d)
        })
        .collect()
}

/// `GET /open-apis/contact/v3/departments/parent?department_id=`: the parent chain,
/// nearest first.
pub(crate) async fn parent(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
) -> Result<Envelope<wire::Page<wire::Department>>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let Some(department_id) = query.str("department_id") else {
        return Err(FeishuError::with_detail(
            StatusCode::BAD_REQUEST,
            codes::MISSING_DEPARTMENT_ID,
            "department_id is required",
        ));
    };
    // The parent doc's default page size is 20 (children's is 10).
    let size = page::page_size(&query, 20, 50)?;
    let list = page::list_of(&caller, &format!("parent\n{department_id}"));
    let after = page::list_after(&query, &list)?;
    let chain = state
        .dir
        .department_parents(&caller, &ids.dept_lookup(department_id))
        .await?;
    // The chain is nearest first; a parent's place is its distance.
    let placed = chain
        .into_iter()
        .enumerate()
        .map(|(i, d)| (vec![i as i64], d))
        .collect();
    render_page(&state, &caller, ids, placed, (&list, after, size)).await
}

/// Renders the page of `placed` (each department with its place in the list) that follows
/// the cursor of the list named `list`.
async fn render_page(
    state: &FeishuState,
    caller: &roster_core::Caller,
    ids: IdTypes,
    placed: Vec<(Vec<i64>, roster_core::Department)>,
    (list, after, size): (&str, Option<page::ListCursor>, usize),
) -> Result<Envelope<wire::Page<wire::Department>>, FeishuError> {
    let (items, page_token) = page::slice(placed, |(p, _)| p.clone(), list, after, size);
    let mut renderer = Renderer::new(state, caller, ids);
    let mut out = Vec::with_capacity(items.len());
    for (_, d) in &items {
        out.push(renderer.department(d).await?);
    }
    Ok(Envelope(wire::Page {
        has_more: page_token.is_some(),
        page_token,
        items: out,
    }))
}
