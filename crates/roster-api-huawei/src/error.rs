//! The Huawei error type, the one table from `CoreError` to Huawei codes, and the
//! `{error_code, error_msg}` envelope the SDK parses (spec 2.6). The request id travels in
//! the `X-Request-Id` header that roster-http sets on every response.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use roster_core::{ConflictKind, CoreError, Entity, UniqueKey};
use roster_http::HiddenError;

use crate::codes::{self, Code};

/// An error as Huawei reports it.
#[derive(Debug)]
pub struct HuaweiError {
    /// HTTP status (the SDK raises `ClientRequestException` for 4xx).
    pub status: StatusCode,
    /// `error_code`.
    pub code: &'static str,
    /// `error_msg`.
    pub msg: String,
    /// The cause of an internal error, logged by roster-http and never sent.
    pub hidden: Option<String>,
}

impl HuaweiError {
    pub(crate) fn new(status: StatusCode, code: Code, detail: impl std::fmt::Display) -> Self {
        let detail = detail.to_string();
        Self {
            status,
            code: code.0,
            msg: if detail.is_empty() {
                code.1.to_owned()
            } else {
                format!("{}: {detail}", code.1)
            },
            hidden: None,
        }
    }

    /// 400 with a parameter error.
    pub(crate) fn param(detail: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::PARAM_INVALID, detail)
    }

    /// 401.
    pub(crate) fn auth(detail: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, codes::AUTH_FAILED, detail)
    }

    /// 500 with the detail hidden.
    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        Self {
            hidden: Some(detail.to_string()),
            ..Self::new(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, "")
        }
    }
}

/// The one mapping from domain errors to Huawei codes; no `_` arm on `CoreError`.
impl From<CoreError> for HuaweiError {
    fn from(err: CoreError) -> Self {
        let bad = StatusCode::BAD_REQUEST;
        match &err {
            CoreError::NotFound { entity, key } => match entity {
                Entity::User => Self::new(StatusCode::NOT_FOUND, codes::USER_NOT_FOUND, key),
                Entity::Group => Self::new(StatusCode::NOT_FOUND, codes::GROUP_NOT_FOUND, key),
                Entity::Tenant
                | Entity::App
                | Entity::Department
                | Entity::Token
                | Entity::Task
                | Entity::BiMember => Self::new(StatusCode::NOT_FOUND, codes::NO_API, &err),
            },
            CoreError::AlreadyExists { field, .. } => match field {
                // A Workspace user's user id is its login name, and a directory user without
                // a login name is listed under its user id: either way the name is taken.
                UniqueKey::Username | UniqueKey::UserId => {
                    Self::new(bad, codes::USER_NAME_EXISTS, "")
                }
                UniqueKey::Email => Self::new(bad, codes::EMAIL_EXISTS, ""),
                UniqueKey::Mobile => Self::new(bad, codes::PHONE_EXISTS, ""),
                UniqueKey::GroupName => Self::new(bad, codes::GROUP_NAME_EXISTS, ""),
                UniqueKey::OpenId
                | UniqueKey::UnionId
                | UniqueKey::EmployeeNo
                | UniqueKey::DepartmentId
                | UniqueKey::OpenDepartmentId
                | UniqueKey::DepartmentName
                | UniqueKey::TenantName
                | UniqueKey::AppId
                | UniqueKey::GroupId => Self::param(&err),
            },
            CoreError::Invalid { field, reason } => {
                let code = match *field {
                    "user_email" | "email" => codes::EMAIL_INVALID,
                    "user_phone" | "mobile" => codes::PHONE_INVALID,
                    "password" => codes::PASSWORD_INVALID,
                    "account_expires" => codes::EXPIRY_INVALID,
                    "user_name" | "username" => codes::USER_NAME_INVALID,
                    _ => codes::PARAM_INVALID,
                };
                Self::new(bad, code, format!("{field}: {reason}"))
            }
            CoreError::BadReference { field, reason } => match *field {
                "group_ids" => Self::new(bad, codes::GROUP_NOT_EXIST, reason),
                _ => Self::param(format!("{field}: {reason}")),
            },
            CoreError::Conflict { kind, reason } => match kind {
                ConflictKind::DepartmentNotEmpty => Self::new(bad, codes::GROUP_NOT_EMPTY, reason),
                ConflictKind::UserResigned => {
                    Self::new(StatusCode::NOT_FOUND, codes::USER_NOT_FOUND, reason)
                }
                ConflictKind::UserNotResigned
                | ConflictKind::TreeTooDeep
                | ConflictKind::TooManyChildren
                | ConflictKind::TooManyDepartments
                | ConflictKind::Cycle
                | ConflictKind::RootImmutable
                | ConflictKind::InFlight
                | ConflictKind::NotWritten => Self::new(bad, codes::CONFLICT, reason),
            },
            CoreError::IdempotencyMismatch => Self::new(bad, codes::CONFLICT, &err),
            CoreError::LicenceExceeded => Self::new(bad, codes::QUOTA_EXCEEDED, ""),
            CoreError::Unauthenticated(reason) => Self::auth(reason),
            CoreError::Forbidden(reason) => {
                Self::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, reason)
            }
            CoreError::Storage(source) => Self::internal(format!("{err}: {source}")),
        }
    }
}

impl IntoResponse for HuaweiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error_code": self.code, "error_msg": self.msg });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(hidden) = self.hidden {
            response.extensions_mut().insert(HiddenError(hidden));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_core::StoreError;

    #[test]
    fn duplicate_user_name_is_wks_00010002() {
        let e: HuaweiError = CoreError::AlreadyExists {
            entity: Entity::User,
            field: UniqueKey::Username,
        }
        .into();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "WKS.00010002")
        );
    }

    #[test]
    fn storage_failures_are_hidden() {
        let e: HuaweiError = CoreError::Storage(StoreError::Backend("disk on fire".into())).into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.msg.contains("disk"));
        assert!(e.hidden.unwrap().contains("disk on fire"));
    }
}
