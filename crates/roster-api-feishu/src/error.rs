//! The Feishu error type, the one table from `CoreError` to Feishu codes, and the envelope.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use roster_core::{ConflictKind, CoreError, Entity, UniqueKey};
use roster_http::HiddenError;

use crate::codes::{self, Code};
use crate::envelope::json_response;

/// An error as Feishu reports it: an HTTP status and `{code, msg}`.
#[derive(Debug)]
pub struct FeishuError {
    /// HTTP status. Clients key off `code`; the status follows Feishu's per-API tables.
    pub status: StatusCode,
    /// Feishu's numeric code.
    pub code: i64,
    /// A message; Feishu's text, sometimes with detail after a colon.
    pub msg: String,
    /// The cause of an internal error, logged by roster-http and never sent.
    pub hidden: Option<String>,
}

impl FeishuError {
    /// An error with Feishu's own text.
    pub(crate) fn new(status: StatusCode, code: Code) -> Self {
        Self {
            status,
            code: code.0,
            msg: code.1.to_owned(),
            hidden: None,
        }
    }

    /// An error with Feishu's text followed by a detail for the person reading it.
    pub(crate) fn with_detail(
        status: StatusCode,
        code: Code,
        detail: impl std::fmt::Display,
    ) -> Self {
        Self {
            status,
            code: code.0,
            msg: format!("{}: {detail}", code.1),
            hidden: None,
        }
    }

    /// 400 with 40001 and a detail.
    pub fn param(detail: impl std::fmt::Display) -> Self {
        Self::with_detail(StatusCode::BAD_REQUEST, codes::PARAM_ERROR, detail)
    }

    /// An internal error: the detail is kept for the log, the client sees 40003.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self {
            hidden: Some(detail.to_string()),
            ..Self::new(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL)
        }
    }
}

/// The one mapping from domain errors to Feishu codes. Every variant is handled here; no
/// `_` arm on `CoreError`, so a new variant breaks the build until it is mapped.
impl From<CoreError> for FeishuError {
    fn from(err: CoreError) -> Self {
        let bad = StatusCode::BAD_REQUEST;
        match &err {
            CoreError::NotFound { entity, key } => match entity {
                Entity::User => Self::with_detail(bad, codes::USER_ID_INVALID, key),
                Entity::Department => Self::with_detail(bad, codes::DEPARTMENT_NOT_EXIST, key),
                Entity::Tenant
                | Entity::App
                | Entity::Group
                | Entity::Token
                | Entity::Task
                | Entity::BiMember => Self::param(err.to_string()),
            },
            CoreError::AlreadyExists { field, .. } => {
                let code = match field {
                    UniqueKey::Mobile => codes::MOBILE_EXISTS,
                    UniqueKey::Email => codes::EMAIL_EXISTS,
                    UniqueKey::UserId | UniqueKey::OpenId | UniqueKey::UnionId => {
                        codes::USER_ID_EXISTS
                    }
                    UniqueKey::EmployeeNo => codes::EMPLOYEE_NO_EXISTS,
                    UniqueKey::DepartmentId | UniqueKey::OpenDepartmentId => codes::DEPT_ID_EXISTS,
                    UniqueKey::DepartmentName => codes::DEPT_NAME_EXISTS,
                    UniqueKey::Username
                    | UniqueKey::TenantName
                    | UniqueKey::AppId
                    | UniqueKey::GroupName
                    | UniqueKey::GroupId => {
                        return Self::param(err.to_string());
                    }
                };
                Self::new(bad, code)
            }
            CoreError::Invalid { field, reason } => {
                let code = match *field {
                    "email" | "enterprise_email" => codes::EMAIL_INVALID,
                    "mobile" => codes::MOBILE_INVALID,
                    "name" if reason.contains("empty") => codes::NO_USER_NAME,
                    "name" => codes::NAME_TOO_LONG,
                    "en_name" => codes::EN_NAME_TOO_LONG,
                    "nickname" => codes::NICKNAME_TOO_LONG,
                    "user_id" | "open_id" | "union_id" => codes::USER_ID_INVALID,
                    "gender" => codes::GENDER_INVALID,
                    "employee_type" => codes::EMPLOYEE_TYPE_INVALID,
                    "job_title" => codes::JOB_TITLE_TOO_LONG,
                    "department_id" => codes::DEPT_ID_INVALID,
                    "department_ids" => codes::TOO_MANY_DEPARTMENTS,
                    _ => return Self::param(format!("{field}: {reason}")),
                };
                Self::with_detail(bad, code, format!("{field}: {reason}"))
            }
            CoreError::BadReference { field, reason } => {
                let code = match *field {
                    // Dotted-line leaders are leaders too: the same three codes.
                    "leader_user_id" | "dotted_line_leader_user_ids"
                        if reason.contains("resigned") =>
                    {
                        codes::LEADER_RESIGNED
                    }
                    "leader_user_id" | "dotted_line_leader_user_ids"
                        if reason.contains("themselves") || reason.contains("their own") =>
                    {
                        codes::LEADER_SELF
                    }
                    "leader_user_id" | "dotted_line_leader_user_ids" => codes::LEADER_INVALID,
                    "department_ids" => codes::DEPARTMENT_ID_INVALID,
                    "parent_department_id" => codes::DEPARTMENT_NOT_EXIST,
                    "acceptor" => codes::ACCEPTOR_INVALID,
                    _ => return Self::param(format!("{field}: {reason}")),
                };
                Self::with_detail(bad, code, reason)
            }
            CoreError::Conflict { kind, reason } => {
                let code = match kind {
                    ConflictKind::UserResigned => codes::USER_RESIGNED,
                    ConflictKind::UserNotResigned => codes::USER_NOT_RESIGNED,
                    ConflictKind::TreeTooDeep => codes::DEPT_TOO_DEEP,
                    ConflictKind::TooManyChildren => codes::DEPT_TOO_MANY_CHILDREN,
                    // The core says which of the two it is; Feishu has a code for each.
                    ConflictKind::DepartmentNotEmpty if reason.contains("members") => {
                        codes::DEPT_HAS_MEMBERS
                    }
                    ConflictKind::DepartmentNotEmpty => codes::DEPT_HAS_CHILDREN,
                    ConflictKind::RootImmutable => codes::ROOT_DEPT,
                    ConflictKind::InFlight => codes::NOT_SAME_REQUEST,
                    ConflictKind::TooManyDepartments
                    | ConflictKind::Cycle
                    | ConflictKind::NotWritten => return Self::param(reason),
                };
                Self::with_detail(bad, code, reason)
            }
            CoreError::IdempotencyMismatch => Self::new(bad, codes::NOT_SAME_REQUEST),
            CoreError::LicenceExceeded => Self::new(bad, codes::SEAT_LIMIT),
            CoreError::Unauthenticated(_) => Self::new(bad, codes::TOKEN_INVALID),
            CoreError::Forbidden(reason) => {
                if reason.contains("scope") && !reason.contains("contact scope") {
                    Self::new(bad, codes::SCOPE_REQUIRED)
                } else {
                    Self::with_detail(StatusCode::FORBIDDEN, codes::NO_DEPT_AUTHORITY, reason)
                }
            }
            CoreError::Storage(source) => Self::internal(format!("{err}: {source}")),
        }
    }
}

impl IntoResponse for FeishuError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.code, "msg": self.msg });
        let mut response = json_response(self.status, &body);
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
    fn duplicate_email_is_41002() {
        let e: FeishuError = CoreError::AlreadyExists {
            entity: Entity::User,
            field: UniqueKey::Email,
        }
        .into();
        assert_eq!(e.code, 41002);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn storage_failure_hides_its_detail() {
        let e: FeishuError = CoreError::Storage(StoreError::Backend("disk on fire".into())).into();
        assert_eq!(e.code, 40003);
        assert!(!e.msg.contains("disk"));
        assert!(e.hidden.unwrap().contains("disk on fire"));
    }

    #[test]
    fn unknown_user_is_41012_and_unknown_department_40015() {
        let u: FeishuError = CoreError::not_found(Entity::User, "ou_x").into();
        let d: FeishuError = CoreError::not_found(Entity::Department, "od-x").into();
        assert_eq!((u.code, d.code), (41012, 40015));
    }

    #[test]
    fn contact_scope_is_40004_with_403() {
        let e: FeishuError =
            CoreError::Forbidden("the department is outside the app's contact scope".into()).into();
        assert_eq!((e.code, e.status), (40004, StatusCode::FORBIDDEN));
    }
}
