//! Contact v3 users (contact-v3/user/*).

use axum::extract::{Path, State};
use roster_core::BatchMode;

use crate::convert::{self, DeptResolver, IdTypes, Renderer};
use crate::envelope::Envelope;
use crate::error::FeishuError;
use crate::extract::{FeishuJson, FeishuQuery, FeishuState, TenantAuth};
use crate::wire;

/// U1 `POST /open-apis/contact/v3/users`.
pub(crate) async fn create(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    FeishuJson(body): FeishuJson<wire::UserBody>,
) -> Result<Envelope<wire::UserData>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let mut depts = DeptResolver::new(&state.dir, &caller, ids);
    let new = convert::new_user(body, ids, &mut depts).await?;
    let report = state
        .dir
        .create_users(&caller, vec![Ok(new)], BatchMode::Atomic)
        .await?;
    let created = report
        .items
        .into_iter()
        .next()
        .ok_or_else(|| FeishuError::internal("empty batch report"))??;
    let user = state
        .dir
        .get_user(&caller, &roster_core::UserLookup::Key(created.key))
        .await?;
    let user = Renderer::new(&state.dir, &caller, ids).user(&user).await?;
    Ok(Envelope(wire::UserData { user }))
}

/// U10 `GET /open-apis/contact/v3/users/:user_id`.
pub(crate) async fn get(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
    Path(user_id): Path<String>,
) -> Result<Envelope<wire::UserData>, FeishuError> {
    let ids = IdTypes::from_query(&query)?;
    let user = state
        .dir
        .get_user(&caller, &ids.user_lookup(&user_id))
        .await?;
    let user = Renderer::new(&state.dir, &caller, ids).user(&user).await?;
    Ok(Envelope(wire::UserData { user }))
}
