//! Request and response bodies, field names exactly as Feishu's contact v3 documents them
//! (contact-v3/user/field-overview, contact-v3/department/field-overview) and as lark-oapi
//! 1.7.5 / @larksuiteoapi/node-sdk 1.74.0 send them.

// Field names are Feishu's (`avatar.avatar_72`, `orders[].user_order`), not ours to shorten.
#![allow(clippy::struct_field_names)]

use serde::{Deserialize, Deserializer, Serialize};

/// Integers that some SDK models type as strings (and the docs as ints, or the other way
/// round): accept a JSON number or a numeric string.
pub(crate) fn flex_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flex {
        Int(i64),
        Float(f64),
        Str(String),
    }
    match Option::<Flex>::deserialize(d)? {
        None => Ok(None),
        Some(Flex::Int(i)) => Ok(Some(i)),
        #[allow(clippy::cast_precision_loss, clippy::float_cmp)]
        Some(Flex::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
        Some(Flex::Float(f)) => Err(serde::de::Error::custom(format!(
            "expected an integer, got {f}"
        ))),
        Some(Flex::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(Flex::Str(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("expected an integer, got {s:?}"))),
    }
}

/// Strings that some SDK models type as ints: accept either.
pub(crate) fn flex_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flex {
        Int(i64),
        Str(String),
    }
    Ok(match Option::<Flex>::deserialize(d)? {
        None => None,
        Some(Flex::Int(i)) => Some(i.to_string()),
        Some(Flex::Str(s)) => Some(s),
    })
}

/// String lists that lark-oapi's model types as int lists (`dotted_line_leader_user_ids`,
/// `subscription_ids`): accept ints or strings in the array.
pub(crate) fn flex_strings<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flex {
        Int(i64),
        Str(String),
    }
    Ok(Option::<Vec<Flex>>::deserialize(d)?.map(|v| {
        v.into_iter()
            .map(|f| match f {
                Flex::Int(i) => i.to_string(),
                Flex::Str(s) => s,
            })
            .collect()
    }))
}

/// Integer lists that a client may send as numeric strings (`group_chat_employee_types`,
/// which the docs type as ints and some clients build from strings): each entry as
/// [`flex_i64`] reads one, and a null or empty entry is an error, not a zero.
pub(crate) fn flex_i64s<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<i64>>, D::Error> {
    #[derive(Deserialize)]
    struct One(#[serde(deserialize_with = "flex_i64")] Option<i64>);
    Option::<Vec<One>>::deserialize(d)?
        .map(|v| {
            v.into_iter()
                .map(|One(i)| i.ok_or_else(|| serde::de::Error::custom("expected an integer")))
                .collect()
        })
        .transpose()
}

/// `i18n_name` of departments.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct I18nName {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zh_cn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ja_jp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub en_us: Option<String>,
}

/// `orders[]` of a user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserOrder {
    #[serde(default, deserialize_with = "flex_string")]
    pub department_id: Option<String>,
    #[serde(default, deserialize_with = "flex_i64")]
    pub user_order: Option<i64>,
    #[serde(default, deserialize_with = "flex_i64")]
    pub department_order: Option<i64>,
    #[serde(default)]
    pub is_primary_dept: Option<bool>,
}

/// `custom_attrs[].value`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct CustomAttrValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pc_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic_user: Option<GenericUser>,
}

/// `custom_attrs[].value.generic_user`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct GenericUser {
    #[serde(default)]
    pub id: String,
    #[serde(default, deserialize_with = "flex_i64")]
    #[serde(rename = "type")]
    pub kind: Option<i64>,
}

/// `custom_attrs[]`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct CustomAttr {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub value: Option<CustomAttrValue>,
}

/// The body of U1 (create) and, with every field optional, U9 (patch).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct UserBody {
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub en_name: Option<String>,
    pub nickname: Option<String>,
    pub email: Option<String>,
    pub enterprise_email: Option<String>,
    pub mobile: Option<String>,
    pub mobile_visible: Option<bool>,
    #[serde(default, deserialize_with = "flex_i64")]
    pub gender: Option<i64>,
    pub avatar_key: Option<String>,
    pub department_ids: Option<Vec<String>>,
    pub leader_user_id: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub work_station: Option<String>,
    #[serde(default, deserialize_with = "flex_i64")]
    pub join_time: Option<i64>,
    pub employee_no: Option<String>,
    #[serde(default, deserialize_with = "flex_i64")]
    pub employee_type: Option<i64>,
    pub job_title: Option<String>,
    pub description: Option<String>,
    pub orders: Option<Vec<UserOrder>>,
    pub custom_attrs: Option<Vec<CustomAttr>>,
    pub geo: Option<String>,
    pub job_level_id: Option<String>,
    pub job_family_id: Option<String>,
    #[serde(default, deserialize_with = "flex_strings")]
    pub subscription_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flex_strings")]
    pub dotted_line_leader_user_ids: Option<Vec<String>>,
    // Read by the patch operation (U9); create ignores it, as Feishu does.
    #[allow(dead_code)]
    pub is_frozen: Option<bool>,
}

/// `avatar` of a user.
#[derive(Debug, Serialize)]
pub(crate) struct Avatar {
    pub avatar_72: String,
    pub avatar_240: String,
    pub avatar_640: String,
    pub avatar_origin: String,
}

/// `status` of a user.
#[derive(Debug, Serialize)]
#[allow(clippy::struct_excessive_bools)] // Five independent wire flags.
pub(crate) struct UserStatus {
    pub is_frozen: bool,
    pub is_resigned: bool,
    pub is_activated: bool,
    pub is_exited: bool,
    pub is_unjoin: bool,
}

/// The user object of responses (contact-v3/user/get response table).
#[derive(Debug, Serialize)]
pub(crate) struct User {
    pub union_id: String,
    pub user_id: String,
    pub open_id: String,
    pub name: String,
    pub en_name: String,
    pub nickname: String,
    pub email: String,
    pub enterprise_email: String,
    pub mobile: String,
    pub mobile_visible: bool,
    pub gender: i64,
    pub avatar: Avatar,
    pub status: UserStatus,
    pub department_ids: Vec<String>,
    pub leader_user_id: String,
    pub city: String,
    pub country: String,
    pub work_station: String,
    pub join_time: i64,
    pub is_tenant_manager: bool,
    pub employee_no: String,
    pub employee_type: i64,
    pub orders: Vec<UserOrder>,
    pub custom_attrs: Vec<CustomAttr>,
    pub job_title: String,
    pub description: String,
    pub geo: String,
    pub job_level_id: String,
    pub job_family_id: String,
    pub subscription_ids: Vec<String>,
    pub dotted_line_leader_user_ids: Vec<String>,
}

/// `{"user": …}`.
#[derive(Debug, Serialize)]
pub(crate) struct UserData {
    pub user: User,
}

/// A department leader in either spelling: the docs' `{leaderType, leaderID}` or
/// lark-oapi's `{leader_type, leader_id}`, or both at once, as Roster answers them (a
/// client that sends back the leaders it read sends both). Both spellings of one field
/// must agree.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "LeaderInWire")]
pub(crate) struct LeaderIn {
    pub leader_type: Option<i64>,
    pub leader_id: Option<String>,
}

/// [`LeaderIn`] as sent, each spelling on its own.
#[derive(Deserialize)]
struct LeaderInWire {
    #[serde(default, deserialize_with = "flex_i64")]
    leader_type: Option<i64>,
    #[serde(rename = "leaderType", default, deserialize_with = "flex_i64")]
    leader_type_docs: Option<i64>,
    #[serde(default)]
    leader_id: Option<String>,
    #[serde(rename = "leaderID", default)]
    leader_id_docs: Option<String>,
}

impl TryFrom<LeaderInWire> for LeaderIn {
    type Error = String;

    fn try_from(w: LeaderInWire) -> Result<Self, Self::Error> {
        fn one<T: PartialEq>(a: Option<T>, b: Option<T>, what: &str) -> Result<Option<T>, String> {
            match (a, b) {
                (Some(a), Some(b)) if a != b => Err(format!(
                    "leaders: {what} is given in both spellings with different values"
                )),
                (a, b) => Ok(a.or(b)),
            }
        }
        Ok(Self {
            leader_type: one(w.leader_type, w.leader_type_docs, "leader_type/leaderType")?,
            leader_id: one(w.leader_id, w.leader_id_docs, "leader_id/leaderID")?,
        })
    }
}

/// The body of D1 (create) and the department patch.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DepartmentBody {
    pub name: Option<String>,
    pub i18n_name: Option<I18nName>,
    pub parent_department_id: Option<String>,
    pub department_id: Option<String>,
    pub leader_user_id: Option<String>,
    #[serde(default, deserialize_with = "flex_i64")]
    pub order: Option<i64>,
    // Accepted and ignored: Roster has no group chats to create.
    #[allow(dead_code)]
    pub create_group_chat: Option<bool>,
    pub leaders: Option<Vec<LeaderIn>>,
    /// HR business partners, in the request's `user_id_type`.
    pub department_hrbps: Option<Vec<String>>,
    pub unit_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flex_i64s")]
    pub group_chat_employee_types: Option<Vec<i64>>,
}

/// `leaders[]` in responses, in both spellings: the docs' `{leaderType, leaderID}`, which
/// the Node SDK and raw clients read, and lark-oapi's `{leader_type, leader_id}`, the only
/// keys its `DepartmentLeader` model reads (with the docs' spelling alone it parses every
/// leader as empty).
#[derive(Debug)]
pub(crate) struct LeaderOut {
    pub leader_type: i64,
    pub leader_id: String,
}

impl Serialize for LeaderOut {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("leaderType", &self.leader_type)?;
        map.serialize_entry("leaderID", &self.leader_id)?;
        map.serialize_entry("leader_type", &self.leader_type)?;
        map.serialize_entry("leader_id", &self.leader_id)?;
        map.end()
    }
}

/// `status` of a department.
#[derive(Debug, Serialize)]
pub(crate) struct DepartmentStatus {
    pub is_deleted: bool,
}

/// The department object of responses.
#[derive(Debug, Serialize)]
pub(crate) struct Department {
    pub name: String,
    pub i18n_name: I18nName,
    pub parent_department_id: String,
    pub department_id: String,
    pub open_department_id: String,
    pub leader_user_id: String,
    pub chat_id: String,
    pub order: String,
    pub unit_ids: Vec<String>,
    pub member_count: u64,
    pub primary_member_count: u64,
    pub status: DepartmentStatus,
    pub leaders: Vec<LeaderOut>,
    pub group_chat_employee_types: Vec<i64>,
    pub department_hrbps: Vec<String>,
}

/// `{"department": …}`.
#[derive(Debug, Serialize)]
pub(crate) struct DepartmentData {
    pub department: Department,
}

/// A page of items (`data{has_more, page_token, items}`); `page_token` only when there is
/// more, and `has_more` always, because the Node SDK's iterators loop on it.
#[derive(Debug, Serialize)]
pub(crate) struct Page<T> {
    pub has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
    pub items: Vec<T>,
}

/// `{}` for operations that return nothing.
#[derive(Debug, Serialize, Default)]
pub(crate) struct Empty {}

/// U2 body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct UpdateUserIdBody {
    #[serde(default, deserialize_with = "flex_string")]
    pub new_user_id: Option<String>,
}

/// The body of `PATCH …/departments/:department_id/update_department_id`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct UpdateDepartmentIdBody {
    #[serde(default, deserialize_with = "flex_string")]
    pub new_department_id: Option<String>,
}

/// U3 body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BatchGetIdBody {
    pub emails: Option<Vec<String>>,
    pub mobiles: Option<Vec<String>>,
    pub include_resigned: Option<bool>,
}

/// One entry of U3's `user_list`: the queried value, and the id and status when found.
#[derive(Debug, Serialize)]
pub(crate) struct UserContactInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<UserStatus>,
}

/// U3 data.
#[derive(Debug, Serialize)]
pub(crate) struct UserListData {
    pub user_list: Vec<UserContactInfo>,
}

/// `email_acceptor` of U5.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EmailAcceptor {
    #[serde(default, deserialize_with = "flex_string")]
    pub processing_type: Option<String>,
    #[serde(default, deserialize_with = "flex_string")]
    pub acceptor_user_id: Option<String>,
}

/// U5 body: who takes over what.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeleteUserBody {
    #[serde(default, deserialize_with = "flex_string")]
    pub department_chat_acceptor_user_id: Option<String>,
    #[serde(default, deserialize_with = "flex_string")]
    pub external_chat_acceptor_user_id: Option<String>,
    #[serde(default, deserialize_with = "flex_string")]
    pub docs_acceptor_user_id: Option<String>,
    #[serde(default, deserialize_with = "flex_string")]
    pub calendar_acceptor_user_id: Option<String>,
    #[serde(default, deserialize_with = "flex_string")]
    pub application_acceptor_user_id: Option<String>,
    #[serde(default, deserialize_with = "flex_string")]
    pub minutes_acceptor_user_id: Option<String>,
    #[serde(default, deserialize_with = "flex_string")]
    pub survey_acceptor_user_id: Option<String>,
    #[serde(default, deserialize_with = "flex_string")]
    pub anycross_acceptor_user_id: Option<String>,
    pub email_acceptor: Option<EmailAcceptor>,
}

/// One department of U6.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ResurrectDepartment {
    #[serde(default, deserialize_with = "flex_string")]
    pub department_id: Option<String>,
    #[serde(default, deserialize_with = "flex_i64")]
    pub user_order: Option<i64>,
    #[serde(default, deserialize_with = "flex_i64")]
    pub department_order: Option<i64>,
}

/// U6 body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ResurrectBody {
    pub departments: Option<Vec<ResurrectDepartment>>,
    /// The departments as bare ids, as the seed interface's example sends them
    /// (`department_ids: ["od-…"]`); `departments` wins when both are sent.
    pub department_ids: Option<Vec<String>>,
    /// Seats for the returning user; they replace the user's when sent (as on create).
    #[serde(default, deserialize_with = "flex_strings")]
    pub subscription_ids: Option<Vec<String>>,
}

/// U7 body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LogoutBody {
    #[serde(default, deserialize_with = "flex_i64")]
    pub logout_type: Option<i64>,
    #[serde(default, deserialize_with = "flex_string")]
    pub user_id: Option<String>,
    pub idp_credential_id: Option<String>,
    pub sid: Option<String>,
    pub terminal_type: Option<Vec<serde_json::Value>>,
    #[serde(default, deserialize_with = "flex_i64")]
    pub logout_reason: Option<i64>,
}

/// U8 data.
#[derive(Debug, Serialize)]
pub(crate) struct TicketData {
    pub expire_in: i64,
    pub ticket: String,
}

/// One user of U4's `users`.
#[derive(Debug, Serialize)]
pub(crate) struct SearchUser {
    pub avatar: Avatar,
    pub department_ids: Vec<String>,
    pub name: String,
    pub open_id: String,
    pub user_id: String,
}

/// U4 data: results under `users`, not `items`.
#[derive(Debug, Serialize)]
pub(crate) struct SearchData {
    pub has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
    pub users: Vec<SearchUser>,
}

/// U11 data.
#[derive(Debug, Serialize)]
pub(crate) struct ItemsData<T> {
    pub items: Vec<T>,
}

/// The data of a create with a `client_token`: rendered now, or the first request's data
/// replayed as it was stored.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Answer<T> {
    /// Rendered for this request.
    Fresh(T),
    /// The first request's data, replayed.
    Replayed(serde_json::Value),
}
