//! Contact v2 `batch_add` and `task/get` bodies (historic-version/…/uIDOwUjLygDM14iM4ATN and
//! uUDOwUjL1gDM14SN4ATN), field names as the v2 documents give them.

use serde::{Deserialize, Serialize};

use crate::wire::{flex_i64, flex_string, CustomAttr};

/// V1 body. `users` stays raw JSON so that one malformed user fails alone.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BatchAddBody {
    pub users: Option<Vec<serde_json::Value>>,
    pub need_send_notification: Option<bool>,
}

/// One user of V1.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct V2User {
    #[serde(default, deserialize_with = "flex_string")]
    pub name: Option<String>,
    pub departments: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flex_string")]
    pub user_id: Option<String>,
    pub email: Option<String>,
    #[serde(default, deserialize_with = "flex_string")]
    pub mobile: Option<String>,
    pub mobile_visible: Option<bool>,
    pub city: Option<String>,
    pub country: Option<String>,
    #[serde(default, deserialize_with = "flex_i64")]
    pub gender: Option<i64>,
    #[serde(default, deserialize_with = "flex_i64")]
    pub employee_type: Option<i64>,
    #[serde(default, deserialize_with = "flex_i64")]
    pub join_time: Option<i64>,
    #[serde(default, deserialize_with = "flex_string")]
    pub leader_user_id: Option<String>,
    #[serde(default, deserialize_with = "flex_string")]
    pub leader_open_id: Option<String>,
    #[serde(default, deserialize_with = "flex_string")]
    pub employee_no: Option<String>,
    pub custom_attrs: Option<Vec<CustomAttr>>,
    pub work_station: Option<String>,
}

/// What a task result echoes of each user, as sent.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Echo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub departments: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// V1 data.
#[derive(Debug, Serialize)]
pub(crate) struct TaskIdData {
    pub task_id: String,
}

/// One entry of `task_info`.
#[derive(Debug, Serialize)]
pub(crate) struct TaskInfo {
    pub code: i64,
    pub msg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub departments: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// V2 data.
#[derive(Debug, Serialize)]
pub(crate) struct TaskData {
    pub task_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: i64,
    pub progress: u32,
    pub total_num: u32,
    pub success_num: u32,
    pub fail_num: u32,
    pub create_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_info: Option<Vec<TaskInfo>>,
}
