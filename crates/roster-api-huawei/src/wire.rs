//! Wire structs, field names exactly as the SDK models (spec 2.4, 2.7, 2.8). Unknown request
//! fields (newer SDK fields such as `enterprise_project_id`) are ignored, as the service does.

// Field names and flags are the SDK models' own.
#![allow(clippy::struct_field_names, clippy::struct_excessive_bools)]

use serde::{Deserialize, Serialize};

/// `BatchCreateUsersReq`.
#[derive(Debug, Deserialize)]
pub(crate) struct BatchCreateUsersReq {
    pub(crate) users: Option<Vec<CreateUserRequest>>,
}

/// `CreateUserRequest` (spec 2.7).
#[derive(Debug, Deserialize)]
pub(crate) struct CreateUserRequest {
    pub(crate) user_name: Option<String>,
    pub(crate) user_email: Option<String>,
    pub(crate) account_expires: Option<String>,
    pub(crate) active_type: Option<String>,
    pub(crate) user_phone: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) enable_change_password: Option<bool>,
    pub(crate) next_login_change_password: Option<bool>,
    pub(crate) group_ids: Option<Vec<String>>,
    pub(crate) description: Option<String>,
    pub(crate) alias_name: Option<String>,
}

/// `BatchDeleteUserReq`.
#[derive(Debug, Deserialize)]
pub(crate) struct BatchDeleteUserReq {
    pub(crate) user_ids: Option<Vec<String>>,
}

/// `CreateUserGroupReq`.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateUserGroupReq {
    pub(crate) group_name: Option<String>,
    pub(crate) platform_type: Option<String>,
    pub(crate) description: Option<String>,
}

/// `User` of `ListUsersResponse`.
#[derive(Debug, Serialize)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) sid: String,
    pub(crate) user_name: String,
    pub(crate) user_email: Option<String>,
    pub(crate) user_phone: Option<String>,
    pub(crate) total_desktops: i64,
    pub(crate) active_type: &'static str,
    pub(crate) is_pre_user: bool,
    pub(crate) account_expires: String,
    pub(crate) password_never_expired: bool,
    pub(crate) account_expired: bool,
    pub(crate) enable_change_password: bool,
    pub(crate) next_login_change_password: bool,
    pub(crate) description: Option<String>,
    pub(crate) alias_name: Option<String>,
    pub(crate) locked: bool,
    pub(crate) disabled: bool,
    pub(crate) share_space_subscription: bool,
    pub(crate) share_space_desktops: i64,
    pub(crate) group_names: Vec<String>,
    pub(crate) platform_type: &'static str,
}

/// `ListUsersResponse`.
#[derive(Debug, Serialize)]
pub(crate) struct ListUsersResponse {
    pub(crate) total_count: usize,
    pub(crate) users: Vec<User>,
}

/// `UserDetail` (note `account_expires` is an integer here: ms, 0 = never).
#[derive(Debug, Serialize)]
pub(crate) struct UserDetail {
    pub(crate) id: String,
    pub(crate) description: Option<String>,
    pub(crate) user_name: String,
    pub(crate) user_email: Option<String>,
    pub(crate) user_phone: Option<String>,
    pub(crate) active_type: &'static str,
    pub(crate) object_sid: String,
    pub(crate) sam_account_name: String,
    pub(crate) user_principal_name: String,
    pub(crate) full_name: String,
    pub(crate) distinguished_name: String,
    pub(crate) account_type: i64,
    pub(crate) when_created: String,
    pub(crate) account_expires: i64,
    pub(crate) is_pre_user: bool,
    pub(crate) user_expired: bool,
    pub(crate) locked: bool,
    pub(crate) enable_change_password: bool,
    pub(crate) password_never_expired: bool,
    pub(crate) next_login_change_password: bool,
    pub(crate) disabled: bool,
    pub(crate) group_names: Vec<String>,
    pub(crate) share_space_subscription: bool,
    pub(crate) share_space_desktops: i64,
    pub(crate) total_desktops: i64,
}

/// `ListUserDetailResponse`.
#[derive(Debug, Serialize)]
pub(crate) struct ListUserDetailResponse {
    pub(crate) user_detail: UserDetail,
}

/// `UserGroupInfo`.
#[derive(Debug, Serialize)]
pub(crate) struct UserGroupInfo {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) create_time: String,
    pub(crate) description: Option<String>,
    pub(crate) user_quantity: usize,
    pub(crate) platform_type: &'static str,
}

/// `ListUserGroupsResponse`.
#[derive(Debug, Serialize)]
pub(crate) struct ListUserGroupsResponse {
    pub(crate) total_count: usize,
    pub(crate) user_groups: Vec<UserGroupInfo>,
}

/// `UserInGroup`.
#[derive(Debug, Serialize)]
pub(crate) struct UserInGroup {
    pub(crate) id: String,
    pub(crate) user_name: String,
    pub(crate) user_email: Option<String>,
    pub(crate) user_phone: Option<String>,
    pub(crate) total_desktops: i64,
    pub(crate) description: Option<String>,
}

/// `ListUsersOfGroupResponse`.
#[derive(Debug, Serialize)]
pub(crate) struct ListUsersOfGroupResponse {
    pub(crate) total_count: usize,
    pub(crate) users: Vec<UserInGroup>,
}

/// Keystone `POST /v3/auth/tokens` request (the parts Roster reads).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenRequest {
    pub(crate) auth: Option<TokenAuth>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenAuth {
    pub(crate) identity: Option<Identity>,
    pub(crate) scope: Option<Scope>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Identity {
    pub(crate) methods: Option<Vec<String>>,
    pub(crate) password: Option<PasswordIdentity>,
    pub(crate) hw_ak_sk: Option<AkSkIdentity>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PasswordIdentity {
    pub(crate) user: Option<PasswordUser>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PasswordUser {
    pub(crate) name: Option<String>,
    pub(crate) password: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AkSkIdentity {
    pub(crate) access: Option<KeyValue>,
    pub(crate) secret: Option<KeyValue>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct KeyValue {
    pub(crate) key: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Scope {
    pub(crate) project: Option<ProjectRef>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ProjectRef {
    pub(crate) id: Option<String>,
}
