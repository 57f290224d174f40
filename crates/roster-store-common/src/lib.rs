//! roster-store-common: the storage encoding both backends share.
//!
//! A user row keeps the values the database must index or constrain (ids, folded e-mail,
//! mobile, login name, employee number, status flags, leader) as columns, and the rest of
//! the profile as one JSON document. The document is written and read only here, so that the
//! two backends cannot drift apart, and so that the core types need no serde derives (the
//! core stays free of any serialisation format). Departments of a user live in a join
//! table, not in the document, because lists by department must be indexed.

mod search;

pub use search::{decode_search_text, place_of, search_text};

use roster_core::department::{DepartmentFields, I18nName};
use roster_core::ids::OpenId;
use roster_core::user::{CustomAttr, UserProfile};
use roster_core::values::{
    Activation, Country, Email, EmployeeType, Gender, Mobile, UserType, Username,
};
use roster_core::{StoreError, User};
use serde::{Deserialize, Serialize};

/// The columns derived from a user for indexes and constraints.
#[derive(Debug, Clone)]
pub struct UserColumns {
    /// Lower-cased custom user id.
    pub user_id_fold: String,
    /// Lower-cased e-mail.
    pub email_fold: Option<String>,
    /// E.164 mobile.
    pub mobile: Option<String>,
    /// Lower-cased login name.
    pub username_fold: Option<String>,
    /// Employee number.
    pub employee_no: Option<String>,
    /// Leader's open id.
    pub leader_open_id: Option<String>,
}

impl UserColumns {
    /// Derives the columns of a user.
    pub fn of(user: &User) -> Self {
        let p = &user.profile;
        Self {
            user_id_fold: user.user_id.folded(),
            email_fold: p.email.as_ref().map(Email::folded),
            mobile: p.mobile.as_ref().map(|m| m.as_str().to_owned()),
            username_fold: p.username.as_ref().map(Username::folded),
            employee_no: p.employee_no.clone(),
            leader_open_id: p.leader.as_ref().map(|l| l.as_str().to_owned()),
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
struct AttrDoc {
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pc_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    option_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    option_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    picture_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generic_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generic_user_type: Option<i64>,
}

/// The stored form of a profile. Field names are part of the on-disk format: rename only
/// with a migration.
#[derive(Serialize, Deserialize, Default)]
#[allow(clippy::struct_excessive_bools)] // Mirrors UserProfile.
struct ProfileDoc {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    en_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nickname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enterprise_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mobile: Option<String>,
    #[serde(default)]
    mobile_visible: bool,
    #[serde(default)]
    gender: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    avatar_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    work_station: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    join_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    employee_no: Option<String>,
    #[serde(default = "one")]
    employee_type: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    job_title: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    custom_attrs: Vec<AttrDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    leader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account_expires: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    activation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_hash: Option<String>,
    #[serde(default)]
    enable_change_password: bool,
    #[serde(default)]
    next_login_change_password: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alias: Option<String>,
    #[serde(default)]
    is_admin: bool,
    #[serde(default)]
    is_auth_admin: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_type: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    groups: Vec<String>,
    #[serde(default)]
    is_tenant_manager: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    geo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    job_level_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    job_family_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    subscription_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dotted_line_leaders: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    former_departments: Vec<i64>,
}

/// What a delivered outbox message keeps of its body. The body held the activation link,
/// whose token must not outlive the delivery at rest (the activation keeps only its hash).
pub const DELIVERED_BODY: &str =
    "(delivered; the body, which held the activation link, is not kept)";

fn one() -> i64 {
    1
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("stored document is corrupt: {what}"))
}

/// Encodes a profile (without its departments) as the stored JSON document.
pub fn encode_profile(p: &UserProfile) -> String {
    let doc = ProfileDoc {
        name: p.name.clone(),
        en_name: p.en_name.clone(),
        nickname: p.nickname.clone(),
        email: p.email.as_ref().map(|e| e.as_str().to_owned()),
        enterprise_email: p.enterprise_email.as_ref().map(|e| e.as_str().to_owned()),
        mobile: p.mobile.as_ref().map(|m| m.as_str().to_owned()),
        mobile_visible: p.mobile_visible,
        gender: p.gender.code(),
        avatar_key: p.avatar_key.clone(),
        city: p.city.clone(),
        country: p.country.as_ref().map(|c| c.as_str().to_owned()),
        work_station: p.work_station.clone(),
        join_time: p.join_time,
        employee_no: p.employee_no.clone(),
        employee_type: p.employee_type.code(),
        job_title: p.job_title.clone(),
        custom_attrs: p
            .custom_attrs
            .iter()
            .map(|a| AttrDoc {
                kind: a.kind.clone(),
                id: a.id.clone(),
                text: a.text.clone(),
                url: a.url.clone(),
                pc_url: a.pc_url.clone(),
                option_id: a.option_id.clone(),
                option_value: a.option_value.clone(),
                name: a.name.clone(),
                picture_url: a.picture_url.clone(),
                generic_user_id: a.generic_user_id.clone(),
                generic_user_type: a.generic_user_type,
            })
            .collect(),
        leader: p.leader.as_ref().map(|l| l.as_str().to_owned()),
        username: p.username.as_ref().map(|u| u.as_str().to_owned()),
        account_expires: p.account_expires,
        activation: Some(p.activation.as_str().to_owned()),
        password_hash: p.password_hash.clone(),
        enable_change_password: p.enable_change_password,
        next_login_change_password: p.next_login_change_password,
        description: p.description.clone(),
        alias: p.alias.clone(),
        is_admin: p.is_admin,
        is_auth_admin: p.is_auth_admin,
        user_type: p.user_type.map(UserType::code),
        groups: p.groups.clone(),
        is_tenant_manager: p.is_tenant_manager,
        geo: p.geo.clone(),
        job_level_id: p.job_level_id.clone(),
        job_family_id: p.job_family_id.clone(),
        subscription_ids: p.subscription_ids.clone(),
        dotted_line_leaders: p
            .dotted_line_leaders
            .iter()
            .map(|l| l.as_str().to_owned())
            .collect(),
        former_departments: p.former_departments.iter().map(|d| d.0).collect(),
    };
    // Serialising a struct of strings, numbers and bools cannot fail.
    serde_json::to_string(&doc).expect("profile document serialises")
}

/// Decodes a stored document into a profile with no departments (the caller adds them from
/// the join table).
pub fn decode_profile(doc: &str) -> Result<UserProfile, StoreError> {
    let d: ProfileDoc = serde_json::from_str(doc).map_err(|e| corrupt(&e.to_string()))?;
    Ok(UserProfile {
        name: d.name,
        en_name: d.en_name,
        nickname: d.nickname,
        email: d.email.map(Email::from_trusted),
        enterprise_email: d.enterprise_email.map(Email::from_trusted),
        mobile: d.mobile.map(Mobile::from_trusted),
        mobile_visible: d.mobile_visible,
        gender: Gender::from_code(d.gender).map_err(|_| corrupt("gender"))?,
        avatar_key: d.avatar_key,
        city: d.city,
        country: d.country.map(Country::from_trusted),
        work_station: d.work_station,
        join_time: d.join_time,
        employee_no: d.employee_no,
        employee_type: EmployeeType::from_code(d.employee_type)
            .map_err(|_| corrupt("employee_type"))?,
        job_title: d.job_title,
        custom_attrs: d
            .custom_attrs
            .into_iter()
            .map(|a| CustomAttr {
                kind: a.kind,
                id: a.id,
                text: a.text,
                url: a.url,
                pc_url: a.pc_url,
                option_id: a.option_id,
                option_value: a.option_value,
                name: a.name,
                picture_url: a.picture_url,
                generic_user_id: a.generic_user_id,
                generic_user_type: a.generic_user_type,
            })
            .collect(),
        leader: d.leader.map(OpenId::from_trusted),
        departments: Vec::new(),
        username: d.username.map(Username::from_trusted),
        account_expires: d.account_expires,
        activation: d
            .activation
            .as_deref()
            .map_or(Some(Activation::ByUser), Activation::from_str_opt)
            .ok_or_else(|| corrupt("activation"))?,
        password_hash: d.password_hash,
        enable_change_password: d.enable_change_password,
        next_login_change_password: d.next_login_change_password,
        description: d.description,
        alias: d.alias,
        is_admin: d.is_admin,
        is_auth_admin: d.is_auth_admin,
        user_type: d
            .user_type
            .map(UserType::from_code)
            .transpose()
            .map_err(|_| corrupt("user_type"))?,
        groups: d.groups,
        is_tenant_manager: d.is_tenant_manager,
        geo: d.geo,
        job_level_id: d.job_level_id,
        job_family_id: d.job_family_id,
        subscription_ids: d.subscription_ids,
        dotted_line_leaders: d
            .dotted_line_leaders
            .into_iter()
            .map(OpenId::from_trusted)
            .collect(),
        former_departments: d
            .former_departments
            .into_iter()
            .map(roster_core::DeptKey)
            .collect(),
    })
}

#[derive(Serialize, Deserialize, Default)]
struct DeptDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zh_cn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ja_jp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    en_us: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    leader: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    deputies: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    hrbps: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    unit_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    group_chat_employee_types: Vec<i64>,
}

/// Encodes the parts of a department that have no column (i18n names, leaders, HRBPs,
/// units and group chat types). The name and order are columns because they are
/// constrained and sorted on.
pub fn encode_department(f: &DepartmentFields) -> String {
    let doc = DeptDoc {
        zh_cn: f.i18n_name.zh_cn.clone(),
        ja_jp: f.i18n_name.ja_jp.clone(),
        en_us: f.i18n_name.en_us.clone(),
        leader: f.leader.as_ref().map(|l| l.as_str().to_owned()),
        deputies: f.deputies.iter().map(|d| d.as_str().to_owned()).collect(),
        hrbps: f.hrbps.iter().map(|d| d.as_str().to_owned()).collect(),
        unit_ids: f.unit_ids.clone(),
        group_chat_employee_types: f.group_chat_employee_types.clone(),
    };
    serde_json::to_string(&doc).expect("department document serialises")
}

/// The users a department's fields name that `stored` (its fields before the write, if
/// any) did not, each with the field a client names it in: the main leader and deputies
/// under `leader_user_id`, HRBPs under `department_hrbps`. The users a write must find
/// active inside its transaction.
pub fn newly_named<'a>(
    fields: &'a DepartmentFields,
    stored: Option<&DepartmentFields>,
) -> Vec<(&'static str, &'a OpenId)> {
    let had = |id: &OpenId| {
        stored.is_some_and(|s| {
            s.leader.as_ref() == Some(id) || s.deputies.contains(id) || s.hrbps.contains(id)
        })
    };
    fields
        .leader
        .iter()
        .chain(&fields.deputies)
        .map(|u| ("leader_user_id", u))
        .chain(fields.hrbps.iter().map(|u| ("department_hrbps", u)))
        .filter(|(_, u)| !had(u))
        .collect()
}

/// Decodes a department document, given the name and order columns.
pub fn decode_department(
    doc: &str,
    name: String,
    order: i64,
) -> Result<DepartmentFields, StoreError> {
    let d: DeptDoc = serde_json::from_str(doc).map_err(|e| corrupt(&e.to_string()))?;
    Ok(DepartmentFields {
        name,
        i18n_name: I18nName {
            zh_cn: d.zh_cn,
            ja_jp: d.ja_jp,
            en_us: d.en_us,
        },
        leader: d.leader.map(OpenId::from_trusted),
        deputies: d.deputies.into_iter().map(OpenId::from_trusted).collect(),
        hrbps: d.hrbps.into_iter().map(OpenId::from_trusted).collect(),
        unit_ids: d.unit_ids,
        group_chat_employee_types: d.group_chat_employee_types,
        order,
    })
}

/// Encodes a contact scope for the `apps.contact_scope` column: `*` for everything, or the
/// department keys separated by commas.
pub fn encode_contact_scope(scope: &roster_core::ContactScope) -> String {
    match scope {
        roster_core::ContactScope::All => "*".to_owned(),
        roster_core::ContactScope::Departments(keys) => keys
            .iter()
            .map(|k| k.0.to_string())
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Inverse of `encode_contact_scope`.
pub fn decode_contact_scope(s: &str) -> Result<roster_core::ContactScope, StoreError> {
    if s == "*" {
        return Ok(roster_core::ContactScope::All);
    }
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<i64>()
                .map(roster_core::DeptKey)
                .map_err(|_| corrupt("contact scope"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(roster_core::ContactScope::Departments)
}

/// What a change event's snapshot holds in place of a password hash.
pub const REDACTED: &str = "(redacted)";

/// The snapshot of a user recorded in change events: ids, status, departments (by key) and
/// the profile document, as one JSON object. The profile goes in as the already-encoded
/// document (a raw JSON value), because re-parsing it cost more than the rest of an insert.
pub fn user_snapshot(u: &User) -> String {
    #[derive(Serialize)]
    #[allow(clippy::struct_excessive_bools)] // Five independent flags, as in UserStatus.
    struct Status {
        is_frozen: bool,
        is_resigned: bool,
        is_activated: bool,
        is_exited: bool,
        is_unjoin: bool,
    }
    #[derive(Serialize)]
    struct Snapshot<'a> {
        open_id: &'a str,
        union_id: &'a str,
        user_id: &'a str,
        status: Status,
        departments: Vec<i64>,
        logout_at: Option<i64>,
        profile: &'a serde_json::value::RawValue,
    }
    // The audit trail is read by people and outlives passwords: it records that a password
    // is set, never its hash.
    let profile = if u.profile.password_hash.is_some() {
        encode_profile(&UserProfile {
            password_hash: Some(REDACTED.to_owned()),
            ..u.profile.clone()
        })
    } else {
        encode_profile(&u.profile)
    };
    // The document is JSON that this crate just wrote, so it is always valid raw JSON.
    let raw = serde_json::value::RawValue::from_string(profile).expect("profile document is JSON");
    serde_json::to_string(&Snapshot {
        open_id: u.open_id.as_str(),
        union_id: u.union_id.as_str(),
        user_id: u.user_id.as_str(),
        status: Status {
            is_frozen: u.status.is_frozen,
            is_resigned: u.status.is_resigned,
            is_activated: u.status.is_activated,
            is_exited: u.status.is_exited,
            is_unjoin: u.status.is_unjoin,
        },
        departments: u
            .profile
            .departments
            .iter()
            .map(|m| m.department.0)
            .collect(),
        logout_at: u.logout_at,
        profile: &raw,
    })
    .expect("snapshot serialises")
}

/// The snapshot of a department recorded in change events.
pub fn department_snapshot(d: &roster_core::Department) -> String {
    serde_json::json!({
        "open_department_id": d.open_department_id.as_str(),
        "department_id": d.department_id.as_str(),
        "parent": d.parent.map(|p| p.0),
        "name": d.fields.name,
        "order": d.fields.order,
        "leader": d.fields.leader.as_ref().map(OpenId::as_str),
        "deputies": d.fields.deputies.iter().map(OpenId::as_str).collect::<Vec<_>>(),
        "hrbps": d.fields.hrbps.iter().map(OpenId::as_str).collect::<Vec<_>>(),
        "unit_ids": d.fields.unit_ids,
        "group_chat_employee_types": d.fields.group_chat_employee_types,
        "i18n_name": {
            "zh_cn": d.fields.i18n_name.zh_cn,
            "ja_jp": d.fields.i18n_name.ja_jp,
            "en_us": d.fields.i18n_name.en_us,
        },
        "is_deleted": d.is_deleted,
    })
    .to_string()
}

/// How group names are compared: Unicode lower case.
pub fn fold_group_name(name: &str) -> String {
    name.to_lowercase()
}

/// How custom department ids are compared: ASCII lower case (they are ASCII by rule).
pub fn fold_department_id(id: &str) -> String {
    id.to_ascii_lowercase()
}

/// The snapshot of a group recorded in change events.
pub fn group_snapshot(g: &roster_core::Group) -> String {
    serde_json::json!({
        "group_id": g.group_id,
        "name": g.name,
        "description": g.description,
        "owner": g.owner.as_ref().map(OpenId::as_str),
    })
    .to_string()
}

#[derive(Serialize, Deserialize)]
struct MembershipDoc {
    d: i64,
    #[serde(default)]
    uo: i64,
    #[serde(default)]
    dor: i64,
    #[serde(default)]
    p: bool,
}

#[derive(Serialize, Deserialize)]
struct LookupDoc {
    by: String,
    v: String,
}

#[derive(Serialize, Deserialize)]
struct NewUserDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    profile: Box<serde_json::value::RawValue>,
    #[serde(default)]
    departments: Vec<MembershipDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    leader: Option<LookupDoc>,
    #[serde(default)]
    activated: bool,
}

#[derive(Serialize, Deserialize)]
struct ItemErrorDoc {
    kind: String,
    field: String,
    detail: String,
}

/// The stored form of a task item's input (a parsed user, or its parse error).
#[derive(Serialize, Deserialize)]
enum InputDoc {
    #[serde(rename = "user")]
    User(NewUserDoc),
    #[serde(rename = "error")]
    Error(ItemErrorDoc),
}

/// The stored form of an item's outcome.
#[derive(Serialize, Deserialize)]
enum OutcomeDoc {
    #[serde(rename = "created")]
    Created {
        open_id: String,
        union_id: String,
        user_id: String,
    },
    #[serde(rename = "failed")]
    Failed(ItemErrorDoc),
}

fn lookup_doc(l: &roster_core::UserLookup) -> LookupDoc {
    use roster_core::UserLookup as L;
    let (by, v) = match l {
        L::Key(k) => ("key", k.0.to_string()),
        L::OpenId(v) => ("open_id", v.clone()),
        L::UnionId(v) => ("union_id", v.clone()),
        L::UserId(v) => ("user_id", v.clone()),
        L::Email(v) => ("email", v.clone()),
        L::Mobile(v) => ("mobile", v.clone()),
    };
    LookupDoc {
        by: by.to_owned(),
        v,
    }
}

fn lookup_of(d: LookupDoc) -> Result<roster_core::UserLookup, StoreError> {
    use roster_core::UserLookup as L;
    Ok(match d.by.as_str() {
        "key" => L::Key(roster_core::UserKey(
            d.v.parse().map_err(|_| corrupt("lookup key"))?,
        )),
        "open_id" => L::OpenId(d.v),
        "union_id" => L::UnionId(d.v),
        "user_id" => L::UserId(d.v),
        "email" => L::Email(d.v),
        "mobile" => L::Mobile(d.v),
        _ => return Err(corrupt("lookup kind")),
    })
}

fn error_doc(e: &roster_core::ItemError) -> ItemErrorDoc {
    ItemErrorDoc {
        kind: e.kind.clone(),
        field: e.field.clone(),
        detail: e.detail.clone(),
    }
}

fn error_of(d: ItemErrorDoc) -> roster_core::ItemError {
    roster_core::ItemError {
        kind: d.kind,
        field: d.field,
        detail: d.detail,
    }
}

/// Encodes a task item's input.
pub fn encode_item_input(input: &Result<roster_core::NewUser, roster_core::ItemError>) -> String {
    let doc = match input {
        Ok(n) => {
            let profile = serde_json::value::RawValue::from_string(encode_profile(&n.profile))
                .expect("profile document is JSON");
            InputDoc::User(NewUserDoc {
                user_id: n.user_id.as_ref().map(|u| u.as_str().to_owned()),
                profile,
                departments: n
                    .profile
                    .departments
                    .iter()
                    .map(|m| MembershipDoc {
                        d: m.department.0,
                        uo: m.user_order,
                        dor: m.department_order,
                        p: m.is_primary,
                    })
                    .collect(),
                leader: n.leader.as_ref().map(lookup_doc),
                activated: n.activated,
            })
        }
        Err(e) => InputDoc::Error(error_doc(e)),
    };
    serde_json::to_string(&doc).expect("task item serialises")
}

/// Decodes a task item's input.
pub fn decode_item_input(
    s: &str,
) -> Result<Result<roster_core::NewUser, roster_core::ItemError>, StoreError> {
    let doc: InputDoc = serde_json::from_str(s).map_err(|e| corrupt(&e.to_string()))?;
    Ok(match doc {
        InputDoc::Error(e) => Err(error_of(e)),
        InputDoc::User(u) => {
            let mut profile = decode_profile(u.profile.get())?;
            profile.departments = u
                .departments
                .into_iter()
                .map(|m| roster_core::Membership {
                    department: roster_core::DeptKey(m.d),
                    user_order: m.uo,
                    department_order: m.dor,
                    is_primary: m.p,
                })
                .collect();
            Ok(roster_core::NewUser {
                user_id: u.user_id.map(roster_core::UserId::from_trusted),
                profile,
                leader: u.leader.map(lookup_of).transpose()?,
                activated: u.activated,
            })
        }
    })
}

/// Encodes an item's outcome.
pub fn encode_outcome(o: &roster_core::ItemOutcome) -> String {
    let doc = match o {
        roster_core::ItemOutcome::Created {
            open_id,
            union_id,
            user_id,
        } => OutcomeDoc::Created {
            open_id: open_id.clone(),
            union_id: union_id.clone(),
            user_id: user_id.clone(),
        },
        roster_core::ItemOutcome::Failed(e) => OutcomeDoc::Failed(error_doc(e)),
    };
    serde_json::to_string(&doc).expect("outcome serialises")
}

/// Decodes an item's outcome.
pub fn decode_outcome(s: &str) -> Result<roster_core::ItemOutcome, StoreError> {
    let doc: OutcomeDoc = serde_json::from_str(s).map_err(|e| corrupt(&e.to_string()))?;
    Ok(match doc {
        OutcomeDoc::Created {
            open_id,
            union_id,
            user_id,
        } => roster_core::ItemOutcome::Created {
            open_id,
            union_id,
            user_id,
        },
        OutcomeDoc::Failed(e) => roster_core::ItemOutcome::Failed(error_of(e)),
    })
}

/// Encodes the inputs of an import chunk as ONE record: each row's `encode_item_input`
/// document on its own line (the documents are compact JSON, which never holds a raw
/// newline), so a chunk of thousands of rows is one row in the database.
pub fn encode_chunk_inputs(
    items: &[Result<roster_core::NewUser, roster_core::ItemError>],
) -> String {
    let mut out = String::with_capacity(items.len() * 256);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&encode_item_input(item));
    }
    out
}

/// Decodes `encode_chunk_inputs`.
pub fn decode_chunk_inputs(
    s: &str,
) -> Result<Vec<Result<roster_core::NewUser, roster_core::ItemError>>, StoreError> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split('\n').map(decode_item_input).collect()
}

/// Encodes the outcomes of an import chunk as ONE record, one `encode_outcome` per line.
pub fn encode_chunk_outcomes(outcomes: &[roster_core::ItemOutcome]) -> String {
    let mut out = String::with_capacity(outcomes.len() * 96);
    for (i, o) in outcomes.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&encode_outcome(o));
    }
    out
}

/// Decodes `encode_chunk_outcomes`.
pub fn decode_chunk_outcomes(s: &str) -> Result<Vec<roster_core::ItemOutcome>, StoreError> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split('\n').map(decode_outcome).collect()
}

/// The entities of one `Store::save`, checked and de-duplicated the same way by both
/// backends: every entity must belong to the saved tenant (else `Backend`), and an entity
/// listed twice is written once, in its last state, at the place of its first mention.
pub struct SaveSet<'a> {
    /// Users to write.
    pub users: Vec<&'a User>,
    /// Departments to write.
    pub departments: Vec<&'a roster_core::Department>,
    /// Groups to write.
    pub groups: Vec<&'a roster_core::Group>,
}

impl<'a> SaveSet<'a> {
    /// Checks tenants and removes repeats.
    pub fn new(
        tenant: roster_core::TenantId,
        users: &'a [User],
        departments: &'a [roster_core::Department],
        groups: &'a [roster_core::Group],
    ) -> Result<Self, StoreError> {
        let foreign = |what: &str, key: i64, of: roster_core::TenantId| {
            StoreError::Backend(format!(
                "save: {what} {key} of tenant {of} listed under tenant {tenant}"
            ))
        };
        if let Some(u) = users.iter().find(|u| u.tenant != tenant) {
            return Err(foreign("user", u.key.0, u.tenant));
        }
        if let Some(d) = departments.iter().find(|d| d.tenant != tenant) {
            return Err(foreign("department", d.key.0, d.tenant));
        }
        if let Some(g) = groups.iter().find(|g| g.tenant != tenant) {
            return Err(foreign("group", g.key, g.tenant));
        }
        Ok(Self {
            users: last_of_each(users, |u| u.key.0),
            departments: last_of_each(departments, |d| d.key.0),
            groups: last_of_each(groups, |g| g.key),
        })
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.departments.is_empty() && self.groups.is_empty()
    }
}

/// Each key once, in its last state, at the place of its first mention.
fn last_of_each<T>(items: &[T], key: impl Fn(&T) -> i64) -> Vec<&T> {
    use std::collections::hash_map::{Entry, HashMap};
    let mut out: Vec<&T> = Vec::with_capacity(items.len());
    let mut place: HashMap<i64, usize> = HashMap::with_capacity(items.len());
    for item in items {
        match place.entry(key(item)) {
            Entry::Occupied(e) => out[*e.get()] = item,
            Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(item);
            }
        }
    }
    out
}

/// The stored form of a BI member's group ids (`bi_members.group_ids`): a JSON array.
pub fn encode_bi_groups(groups: &[String]) -> String {
    serde_json::Value::from(groups.to_vec()).to_string()
}

/// Inverse of `encode_bi_groups`.
pub fn decode_bi_groups(s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Backend(format!("corrupt bi_members.group_ids: {e}")))
}

/// The snapshot of a BI organisation member recorded in change events.
pub fn bi_member_snapshot(m: &roster_core::BiMember) -> String {
    serde_json::json!({
        "open_id": m.open_id.as_str(),
        "nickname": m.nickname,
        "is_admin": m.is_admin,
        "is_auth_admin": m.is_auth_admin,
        "user_type": m.user_type.code(),
        "groups": m.groups,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The change log shows every field a client may change on a department, so that a
    /// change of any of them is visible in `roster audit` (before and after differ).
    #[test]
    fn a_department_snapshot_carries_every_client_field() {
        let d = roster_core::Department {
            key: roster_core::DeptKey(7),
            tenant: roster_core::TenantId(1),
            open_department_id: roster_core::OpenDepartmentId::from_trusted("od-1".into()),
            department_id: roster_core::ids::DepartmentId::from_trusted("D1".into()),
            parent: Some(roster_core::DeptKey(1)),
            fields: DepartmentFields {
                name: "Eng".into(),
                i18n_name: I18nName {
                    en_us: Some("Engineering".into()),
                    ..I18nName::default()
                },
                leader: Some(OpenId::from_trusted("ou_l".into())),
                deputies: vec![OpenId::from_trusted("ou_d".into())],
                hrbps: vec![OpenId::from_trusted("ou_h".into())],
                unit_ids: vec!["unit-1".into()],
                group_chat_employee_types: vec![1, 6],
                order: 3,
            },
            is_deleted: false,
            created_at: 0,
            updated_at: 0,
        };
        let snap: serde_json::Value =
            serde_json::from_str(&department_snapshot(&d)).expect("a JSON snapshot");
        assert_eq!(snap["deputies"], serde_json::json!(["ou_d"]));
        assert_eq!(snap["hrbps"], serde_json::json!(["ou_h"]));
        assert_eq!(snap["unit_ids"], serde_json::json!(["unit-1"]));
        assert_eq!(snap["group_chat_employee_types"], serde_json::json!([1, 6]));
        assert_eq!(snap["i18n_name"]["en_us"], "Engineering");
    }

    #[test]
    fn profile_round_trips_through_the_document() {
        let p = UserProfile {
            name: "张三".into(),
            email: Some(Email::parse("email", "Zhang@Example.com").unwrap()),
            mobile: Some(Mobile::parse("mobile", "13011111111").unwrap()),
            gender: Gender::Male,
            employee_type: EmployeeType::Intern,
            custom_attrs: vec![CustomAttr {
                id: "C-1".into(),
                url: Some("http://x".into()),
                ..CustomAttr::default()
            }],
            user_type: Some(UserType::Analyst),
            groups: vec!["g1".into()],
            activation: Activation::ByAdmin,
            geo: Some("cn".into()),
            job_level_id: Some("jl-1".into()),
            job_family_id: Some("jf-1".into()),
            subscription_ids: vec!["s1".into(), "s2".into()],
            dotted_line_leaders: vec![OpenId::from_trusted("ou_1".into())],
            former_departments: vec![roster_core::DeptKey(7)],
            ..UserProfile::default()
        };
        let back = decode_profile(&encode_profile(&p)).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn a_user_snapshot_records_that_a_password_is_set_never_its_hash() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
        let u = User {
            key: roster_core::UserKey(1),
            tenant: roster_core::TenantId(1),
            open_id: OpenId::from_trusted("ou_1".into()),
            union_id: roster_core::UnionId::from_trusted("on_1".into()),
            user_id: roster_core::UserId::from_trusted("u1".into()),
            profile: UserProfile {
                name: "a".into(),
                password_hash: Some(hash.into()),
                ..UserProfile::default()
            },
            status: roster_core::UserStatus::default(),
            created_at: 0,
            updated_at: 0,
            resigned_at: None,
            logout_at: None,
        };
        let snap = user_snapshot(&u);
        assert!(!snap.contains("argon2id"), "{snap}");
        assert!(snap.contains(REDACTED), "{snap}");
    }

    #[test]
    fn corrupt_document_is_a_backend_error_not_a_panic() {
        assert!(matches!(decode_profile("{"), Err(StoreError::Backend(_))));
        assert!(matches!(
            decode_profile(r#"{"name":"a","gender":9}"#),
            Err(StoreError::Backend(_))
        ));
    }

    #[test]
    fn contact_scope_round_trips() {
        use roster_core::{ContactScope, DeptKey};
        for s in [
            ContactScope::All,
            ContactScope::Departments(vec![DeptKey(3), DeptKey(7)]),
        ] {
            assert_eq!(decode_contact_scope(&encode_contact_scope(&s)).unwrap(), s);
        }
    }

    #[test]
    fn task_item_inputs_and_outcomes_round_trip() {
        let new = roster_core::NewUser {
            user_id: Some(roster_core::UserId::parse("id_zhangsan").unwrap()),
            profile: UserProfile {
                name: "张三".into(),
                mobile: Some(Mobile::parse("mobile", "+8613822235671").unwrap()),
                departments: vec![roster_core::Membership {
                    department: roster_core::DeptKey(7),
                    user_order: 1,
                    department_order: 2,
                    is_primary: true,
                }],
                ..UserProfile::default()
            },
            leader: Some(roster_core::UserLookup::UserId("id_lisi".into())),
            activated: false,
        };
        let input = Ok(new);
        assert_eq!(
            decode_item_input(&encode_item_input(&input)).unwrap(),
            input
        );
        let err: Result<roster_core::NewUser, _> = Err(roster_core::ItemError {
            kind: "invalid".into(),
            field: "email".into(),
            detail: "bad".into(),
        });
        assert_eq!(decode_item_input(&encode_item_input(&err)).unwrap(), err);
        let o = roster_core::ItemOutcome::Created {
            open_id: "ou_x".into(),
            union_id: "on_x".into(),
            user_id: "u".into(),
        };
        assert_eq!(decode_outcome(&encode_outcome(&o)).unwrap(), o);
    }
}
