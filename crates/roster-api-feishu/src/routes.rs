//! Every Feishu path in one table, with the 404 and 405 answers in Feishu's envelope.

use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{get, patch, post};
use axum::Router;
use http::StatusCode;

use crate::codes;
use crate::error::FeishuError;
use crate::extract::FeishuState;
use crate::handlers::{auth, departments, tasks, users};

/// The Feishu routes, rooted at `/open-apis`.
pub(crate) fn routes(state: FeishuState) -> Router {
    Router::new()
        // A1
        .route(
            "/open-apis/auth/v3/tenant_access_token/internal",
            post(auth::tenant_access_token).layer(DefaultBodyLimit::max(auth::BODY_LIMIT)),
        )
        .route(
            "/open-apis/auth/v3/app_access_token/internal",
            post(auth::app_access_token).layer(DefaultBodyLimit::max(auth::BODY_LIMIT)),
        )
        // U1 and the legacy list form of U12
        .route(
            "/open-apis/contact/v3/users",
            post(users::create).get(users::find_by_department),
        )
        // U3, U11, U12 (static segments win over `{user_id}`)
        .route(
            "/open-apis/contact/v3/users/batch_get_id",
            post(users::batch_get_id),
        )
        .route("/open-apis/contact/v3/users/batch", get(users::batch))
        .route(
            "/open-apis/contact/v3/users/find_by_department",
            get(users::find_by_department),
        )
        // U10, U9, U5
        .route(
            "/open-apis/contact/v3/users/{user_id}",
            get(users::get)
                .patch(users::patch)
                .put(users::update)
                .delete(users::delete),
        )
        // U2, U6
        .route(
            "/open-apis/contact/v3/users/{user_id}/update_user_id",
            patch(users::update_user_id),
        )
        .route(
            "/open-apis/contact/v3/users/{user_id}/resurrect",
            post(users::resurrect),
        )
        // U4, U7, U8
        .route("/open-apis/search/v1/user", get(users::search))
        .route(
            "/open-apis/passport/v1/sessions/logout",
            post(users::logout),
        )
        .route("/open-apis/jssdk/ticket/get", post(users::jsapi_ticket))
        // D1-D3 and their neighbours (`department.list`, the legacy form of D3)
        .route(
            "/open-apis/contact/v3/departments",
            post(departments::create).get(departments::list),
        )
        .route(
            "/open-apis/contact/v3/departments/parent",
            get(departments::parent),
        )
        .route(
            "/open-apis/contact/v3/departments/batch",
            get(departments::batch),
        )
        .route(
            "/open-apis/contact/v3/departments/{department_id}",
            get(departments::get)
                .patch(departments::patch)
                .put(departments::update)
                .delete(departments::delete),
        )
        .route(
            "/open-apis/contact/v3/departments/{department_id}/update_department_id",
            patch(departments::update_department_id),
        )
        .route(
            "/open-apis/contact/v3/departments/{department_id}/children",
            get(departments::children),
        )
        // V1, V2
        .route(
            "/open-apis/contact/v2/user/batch_add",
            post(tasks::batch_add),
        )
        .route("/open-apis/contact/v2/task/get", get(tasks::get))
        // The pictures the users' `avatar` URLs name.
        .route("/avatars/{open_id}/{size}", get(users::avatar))
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
