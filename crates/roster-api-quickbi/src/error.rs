//! The Quick BI error: the `CoreError` table and the `{RequestId, Code, Message}` envelope.
//!
//! The SDK keeps the HTTP status only when the error body is JSON (spec 3.6), so every
//! error, internal ones included, is JSON with an explicit status: 4xx for the client's
//! mistakes, 5xx only for Roster's own faults, whose details are logged, never sent.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use roster_core::bi::role_rule;
use roster_core::{CoreError, Entity, UniqueKey};
use roster_http::HiddenError;

use crate::codes;

/// An error in Quick BI's terms.
#[derive(Debug)]
pub(crate) struct QuickBiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// The internal detail behind a 5xx, for the log only.
    pub(crate) hidden: Option<String>,
}

impl QuickBiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            hidden: None,
        }
    }

    /// 400 with `code`.
    pub(crate) fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 400 `MissingParameter` naming the parameter, in Alibaba's words.
    pub(crate) fn missing(name: &str) -> Self {
        Self::bad(
            codes::MISSING_PARAMETER,
            format!(
                "The input parameter \"{name}\" that is mandatory for processing this request is not supplied."
            ),
        )
    }

    /// 400 `InvalidParameter` naming the parameter.
    pub(crate) fn invalid(name: &str, why: impl std::fmt::Display) -> Self {
        Self::bad(
            codes::INVALID_PARAMETER,
            format!("The specified parameter \"{name}\" is not valid: {why}"),
        )
    }

    fn internal(detail: String) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: codes::INTERNAL_ERROR,
            message: "The request processing has failed due to some unknown error.".into(),
            hidden: Some(detail),
        }
    }

    /// The response, with the request's id in the body.
    pub(crate) fn into_response_with(self, request_id: &str) -> Response {
        let body = serde_json::json!({
            "RequestId": request_id,
            "Code": self.code,
            "Message": self.message,
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(detail) = self.hidden {
            response.extensions_mut().insert(HiddenError(detail));
        }
        response
    }
}

impl From<CoreError> for QuickBiError {
    /// The one table from domain errors to Quick BI codes. No `_` arm on `CoreError`: a new
    /// variant must be decided here.
    fn from(err: CoreError) -> Self {
        let message = err.to_string();
        match &err {
            CoreError::NotFound { entity, key } => match entity {
                // The documented message, word for word (seed 000); which group it was is
                // in the request the client sent.
                Entity::Group => Self::bad(codes::USERGROUP_NOT_EXIST, "The user group does not exist."),
                Entity::BiMember | Entity::User => Self::bad(
                    codes::USER_NOT_IN_ORGANIZATION,
                    format!("The user {key} is not in the organization."),
                ),
                Entity::Tenant | Entity::App | Entity::Token => Self::new(
                    StatusCode::NOT_FOUND,
                    codes::ACCESS_KEY_NOT_FOUND,
                    "Specified access key is not found.",
                ),
                Entity::Department | Entity::Task => {
                    Self::bad(codes::QB_INVALID_PARAMETER, message)
                }
            },
            CoreError::AlreadyExists { field, .. } => match field {
                UniqueKey::GroupName => Self::bad(
                    codes::USERGROUP_NAME_DUPLICATED,
                    "A user group with this name already exists.",
                ),
                UniqueKey::GroupId => {
                    Self::invalid("UserGroupId", "a user group with this id already exists")
                }
                _ => Self::bad(codes::ACCOUNT_EXIST, message),
            },
            CoreError::Invalid { field, reason } => match *field {
                role_rule::VISITOR_ROLE => Self::bad(
                    codes::VIEWER_CANNOT_HAVE_ROLE,
                    "Organization viewer cannot have custom roles.",
                ),
                role_rule::ANALYST_ROLE => Self::bad(
                    codes::ANALYST_NOT_SUPPORT_ROLE,
                    "This role has permissions that analysts cannot grant.",
                ),
                "feishu_users" => Self::bad(
                    codes::FEISHU_PARAMETER_ERROR,
                    format!("Feishu config error: {reason}."),
                ),
                _ if reason.contains("at most") => {
                    Self::bad(codes::PARAMETER_LENGTH_EXCEED, message)
                }
                _ => Self::bad(codes::QB_INVALID_PARAMETER, message),
            },
            CoreError::BadReference { .. }
            | CoreError::Conflict { .. }
            | CoreError::IdempotencyMismatch => Self::bad(codes::QB_INVALID_PARAMETER, message),
            CoreError::LicenceExceeded => Self::bad(
                codes::OVER_MAX_LICENSE,
                "You have reached the maximum number of users that can be added. Please upgrade the configurations or remove some users first.",
            ),
            CoreError::Unauthenticated(_) => Self::bad(
                codes::SIGNATURE_DOES_NOT_MATCH,
                "Specified signature is not matched with our calculation.",
            ),
            CoreError::Forbidden(reason) => Self::new(
                StatusCode::FORBIDDEN,
                codes::FORBIDDEN,
                format!("User not authorized to operate on the specified resource: {reason}."),
            ),
            CoreError::Storage(_) => Self::internal(format!("{err:#}: {err:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::many_single_char_names)] // One letter per mapped code reads as a table.
    fn domain_errors_map_to_the_documented_codes() {
        let g: QuickBiError = CoreError::not_found(Entity::Group, "g1").into();
        assert_eq!(
            (g.status, g.code),
            (StatusCode::BAD_REQUEST, "Usergroup.Not.Exist")
        );
        let l: QuickBiError = CoreError::LicenceExceeded.into();
        assert_eq!(l.code, "Instance.Over.MaxLicense");
        let v: QuickBiError = CoreError::invalid(role_rule::VISITOR_ROLE, "x").into();
        assert_eq!(v.code, "Viewer.CannotHave.CustomRole");
        let a: QuickBiError = CoreError::invalid(role_rule::ANALYST_ROLE, "x").into();
        assert_eq!(a.code, "UserAnalyst.NotSupport.ThisRole");
        let f: QuickBiError = CoreError::invalid("feishu_users", "bad").into();
        assert_eq!(f.code, "Feishu.Parameter.Error");
    }

    #[test]
    fn storage_failures_are_hidden_500s() {
        let e: QuickBiError =
            CoreError::Storage(roster_core::StoreError::Backend("disk on fire".into())).into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("disk"));
        let r = e.into_response_with("R1");
        assert!(r.extensions().get::<HiddenError>().is_some());
    }
}
