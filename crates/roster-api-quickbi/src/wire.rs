//! Response bodies, field names exactly as the SDK's models read them
//! (`alibabacloud_quickbi_public20220101` 1.19.0, `models/_*_response_body.py`).

use serde::Serialize;

/// Every success: `{RequestId, Success, Result}` (spec 3.6).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Envelope<T: Serialize> {
    pub(crate) request_id: String,
    pub(crate) success: bool,
    pub(crate) result: T,
}

/// `BatchAddFeishuUsersResponseBodyResult`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BatchResult {
    pub(crate) ok_count: usize,
    pub(crate) fail_count: usize,
    pub(crate) fail_results: Vec<FailResult>,
}

/// `...ResultFailResults`: one per failed entry.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct FailResult {
    pub(crate) fail_infos: Vec<FailInfo>,
}

/// `...ResultFailResultsFailInfos`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct FailInfo {
    pub(crate) code: &'static str,
    pub(crate) code_desc: &'static str,
    pub(crate) input: String,
}

/// A member as `QueryUserList` (`ResultData`) and `QueryUserInfoByUserId` (`Result`) show
/// it; `Email` and `Phone` only in the latter.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UserInfo {
    pub(crate) account_id: String,
    pub(crate) account_name: String,
    pub(crate) admin_user: bool,
    pub(crate) auth_admin_user: bool,
    pub(crate) is_deleted: bool,
    pub(crate) joined_date: i64,
    pub(crate) nick_name: String,
    pub(crate) role_id_list: Vec<i64>,
    pub(crate) user_id: String,
    pub(crate) user_type: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) phone: Option<String>,
}

/// `QueryUserListResponseBodyResult`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UserPage {
    pub(crate) data: Vec<UserInfo>,
    pub(crate) page_num: u64,
    pub(crate) page_size: usize,
    pub(crate) total_num: u64,
    pub(crate) total_pages: u64,
}

/// `QueryUserGroupListByParentIdResponseBodyResult`.
#[derive(Debug, Serialize)]
#[allow(clippy::struct_field_names)] // The names are the wire's (`UserGroupId`, ...).
#[serde(rename_all = "PascalCase")]
pub(crate) struct UserGroup {
    pub(crate) user_group_id: String,
    pub(crate) user_group_name: String,
    pub(crate) user_group_description: Option<String>,
    pub(crate) parent_user_group_id: String,
    pub(crate) identified_path: String,
    pub(crate) create_time: String,
}

/// `ListUserGroupsByUserIdResponseBodyResult` (Quick BI spells these `Usergroup…`).
#[derive(Debug, Serialize)]
pub(crate) struct MemberGroup {
    #[serde(rename = "UsergroupId")]
    pub(crate) usergroup_id: String,
    #[serde(rename = "UsergroupName")]
    pub(crate) usergroup_name: String,
    #[serde(rename = "UsergroupDesc")]
    pub(crate) usergroup_desc: Option<String>,
    #[serde(rename = "ParentUsergroupId")]
    pub(crate) parent_usergroup_id: String,
    #[serde(rename = "IdentifiedPath")]
    pub(crate) identified_path: String,
    #[serde(rename = "CreateTime")]
    pub(crate) create_time: String,
}
