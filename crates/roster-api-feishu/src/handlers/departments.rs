//! Contact v3 departments (contact-v3/department/*).

use axum::extract::{Path, State};

use crate::convert::{self, IdTypes, Renderer};
use crate::envelope::Envelope;
use crate::error::FeishuError;
use crate::extract::{FeishuJson, FeishuQuery, FeishuState, TenantAuth};
use crate::page;
use crate::wire;

/// D1 `POST /open-apis/contact/v3/departments`.
pub(crate) async fn create(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    FeishuJson(body): FeishuJson<wire::DepartmentBody>,
) -> Result<Envelope<wire::DepartmentData>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let new = convert::new_department(&state.dir, &caller, ids, body).await?;
    let dept = state.dir.create_department(&caller, new).await?;
    let department = Renderer::new(&state.dir, &caller, ids)
        .department(&dept)
        .await?;
    Ok(Envelope(wire::DepartmentData { department }))
}

/// D2 `GET /open-apis/contact/v3/departments/:department_id`.
pub(crate) async fn get(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    Path(department_id): Path<String>,
) -> Result<Envelope<wire::DepartmentData>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let dept = state
        .dir
        .get_department(&caller, &ids.dept_lookup(&department_id))
        .await?;
    let department = Renderer::new(&state.dir, &caller, ids)
        .department(&dept)
        .await?;
    Ok(Envelope(wire::DepartmentData { department }))
}

/// D3 `GET /open-apis/contact/v3/departments/:department_id/children`.
pub(crate) async fn children(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    Path(department_id): Path<String>,
) -> Result<Envelope<wire::Page<wire::Department>>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let size = page::page_size(&query, 10, 50)?;
    let after = page::page_after(&query)?;
    let recursive = query.bool("fetch_child")?.unwrap_or(false);
    let all = state
        .dir
        .child_departments(&caller, &ids.dept_lookup(&department_id), recursive)
        .await?;
    let (items, page_token) = page::slice(all, |d| d.key.0, after, size);
    let mut renderer = Renderer::new(&state.dir, &caller, ids);
    let mut out = Vec::with_capacity(items.len());
    for d in &items {
        out.push(renderer.department(d).await?);
    }
    Ok(Envelope(wire::Page {
        has_more: page_token.is_some(),
        page_token,
        items: out,
    }))
}
