//! Every Feishu path in one table, with the 404 and 405 answers in Feishu's envelope.

use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use http::StatusCode;

use crate::codes;
use crate::error::FeishuError;
use crate::extract::FeishuState;
use crate::handlers::{auth, departments, users};

/// The Feishu routes, rooted at `/open-apis`.
pub(crate) fn routes(state: FeishuState) -> Router {
    Router::new()
        .route(
            "/open-apis/auth/v3/tenant_access_token/internal",
            post(auth::tenant_access_token),
        )
        .route(
            "/open-apis/auth/v3/app_access_token/internal",
            post(auth::app_access_token),
        )
        .route("/open-apis/contact/v3/users", post(users::create))
        .route("/open-apis/contact/v3/users/{user_id}", get(users::get))
        .route(
            "/open-apis/contact/v3/departments",
            post(departments::create),
        )
        .route(
            "/open-apis/contact/v3/departments/{department_id}",
            get(departments::get),
        )
        .route(
            "/open-apis/contact/v3/departments/{department_id}/children",
            get(departments::children),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// 404 for an unknown path, in Feishu's envelope.
pub async fn not_found() -> impl IntoResponse {
    FeishuError::new(StatusCode::NOT_FOUND, codes::NOT_FOUND)
}

async fn method_not_allowed() -> impl IntoResponse {
    FeishuError::new(StatusCode::METHOD_NOT_ALLOWED, codes::METHOD_MISMATCH)
}
