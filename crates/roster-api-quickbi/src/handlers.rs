//! One function per action: read the parameters, call the core, shape the `Result`.

use roster_core::access_key::SigningKey;
use roster_core::values::UserType;
use roster_core::{
    Actor, BiEntryFailure, BiMember, BiMemberPatch, BiRoles, Directory, Group, Scope, User,
};
use serde_json::Value;

use crate::codes;
use crate::error::QuickBiError;
use crate::params::Params;
use crate::wire;

/// Quick BI's parent id of top-level groups. Roster's groups are flat: all hang here.
const ROOT_GROUP: &str = "-1";
/// Largest page of `QueryUserList`.
const MAX_PAGE_SIZE: usize = 1000;

/// What every action gets.
pub(crate) struct Ctx<'a> {
    pub(crate) dir: &'a Directory,
    pub(crate) key: &'a SigningKey,
    pub(crate) params: &'a Params,
    pub(crate) max_members: u64,
}

impl Ctx<'_> {
    fn require(&self, scope: Scope) -> Result<(), QuickBiError> {
        Ok(self.key.caller.require(scope)?)
    }

    fn tenant(&self) -> roster_core::TenantId {
        self.key.caller.tenant
    }

    fn actor(&self) -> Actor {
        Actor::App(self.key.caller.app_id.clone())
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, QuickBiError> {
    serde_json::to_value(v).map_err(|e| {
        QuickBiError::from(roster_core::CoreError::Storage(
            roster_core::StoreError::Backend(format!("encode response: {e}")),
        ))
    })
}

fn user_type(params: &Params, name: &str) -> Result<Option<UserType>, QuickBiError> {
    params
        .int(name)?
        .map(|c| {
            UserType::from_code(c).map_err(|_| QuickBiError::invalid(name, "must be 1, 2 or 3"))
        })
        .transpose()
}

/// Quick BI's built-in organisation role ids: administrator -1, authorisation
/// administrator -2, developer -3, analyst -4, visitor -5.
fn role_ids(m: &BiMember) -> Vec<i64> {
    let mut roles = Vec::new();
    if m.is_admin {
        roles.push(-1);
    }
    if m.is_auth_admin {
        roles.push(-2);
    }
    roles.push(match m.user_type {
        UserType::Developer => -3,
        UserType::Analyst => -4,
        UserType::Visitor => -5,
    });
    roles
}

fn user_info(m: &BiMember, u: Option<&User>, contact: bool) -> wire::UserInfo {
    let email = u.and_then(|u| {
        u.profile
            .email
            .as_ref()
            .or(u.profile.enterprise_email.as_ref())
            .map(|e| e.as_str().to_owned())
    });
    let phone = u.and_then(|u| u.profile.mobile.as_ref().map(|p| p.as_str().to_owned()));
    let account_id = u.map_or_else(String::new, |u| u.user_id.as_str().to_owned());
    let account_name = email
        .clone()
        .or_else(|| phone.clone())
        .unwrap_or_else(|| account_id.clone());
    wire::UserInfo {
        account_id,
        account_name,
        admin_user: m.is_admin,
        auth_admin_user: m.is_auth_admin,
        is_deleted: u.is_some_and(|u| u.status.is_resigned),
        joined_date: m.created_at,
        nick_name: m.nickname.clone(),
        role_id_list: role_ids(m),
        user_id: m.open_id.as_str().to_owned(),
        user_type: m.user_type.code(),
        email: if contact { email } else { None },
        phone: if contact { phone } else { None },
    }
}

fn group_row(g: &Group) -> wire::UserGroup {
    wire::UserGroup {
        user_group_id: g.group_id.clone(),
        user_group_name: g.name.clone(),
        user_group_description: g.description.clone(),
        parent_user_group_id: ROOT_GROUP.to_owned(),
        identified_path: format!("{ROOT_GROUP}/{}", g.group_id),
        create_time: g.created_at.to_string(),
    }
}

/// The members of a JSON object in the order sent, repeated keys included, so that the
/// report has one outcome per entry as the client wrote them (a map would sort and merge).
struct OrderedEntries(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for OrderedEntries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = OrderedEntries;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedEntries, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    out.push(entry);
                }
                Ok(OrderedEntries(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// `BatchAddFeishuUsers`.
pub(crate) async fn batch_add_feishu_users(ctx: &Ctx<'_>) -> Result<Value, QuickBiError> {
    ctx.require(Scope::ContactWrite)?;
    let p = ctx.params;
    let bad = |why: &str| {
        QuickBiError::bad(
            codes::FEISHU_PARAMETER_ERROR,
            format!("Feishu config error: {why}."),
        )
    };
    let raw = p
        .text("FeishuUsers")?
        .ok_or_else(|| bad("FeishuUsers is empty"))?;
    let Ok(OrderedEntries(pairs)) = serde_json::from_str::<OrderedEntries>(&raw) else {
        return Err(bad(
            "FeishuUsers must be a JSON object of user id to nickname",
        ));
    };
    let mut entries = Vec::with_capacity(pairs.len());
    for (id, nick) in pairs {
        match nick {
            Value::String(s) => entries.push((id, s)),
            Value::Null => entries.push((id, String::new())),
            _ => return Err(bad("every nickname in FeishuUsers must be a string")),
        }
    }
    let roles = BiRoles {
        is_admin: p.bool("IsAdmin")?.unwrap_or(false),
        is_auth_admin: p.bool("IsAuthAdmin")?.unwrap_or(false),
        // Quick BI documents no default; a visitor is the least privilege.
        user_type: user_type(p, "UserType")?.unwrap_or(UserType::Visitor),
    };
    let groups = p.list("UserGroupIds")?;
    let report = ctx
        .dir
        .bi_add_members(
            ctx.tenant(),
            ctx.actor(),
            entries,
            roles,
            groups,
            ctx.max_members,
        )
        .await?;
    let fail_results = report
        .entries
        .iter()
        .filter_map(|e| {
            let failure = e.result.as_ref().err()?;
            let (code, code_desc) = match failure {
                BiEntryFailure::AlreadyMember => (codes::ACCOUNT_EXIST, "账号已存在"),
                BiEntryFailure::NotInDirectory => (
                    codes::USER_NEED_SYNC_CONTACT,
                    "Feishu need to sync contact list.",
                ),
                BiEntryFailure::NoContact => {
                    (codes::MAIL_INVALID, "Email/phone number is invalid.")
                }
                BiEntryFailure::BadNickname => (
                    codes::FEISHU_PARAMETER_ERROR,
                    "Feishu config error: invalid nickname.",
                ),
            };
            Some(wire::FailResult {
                fail_infos: vec![wire::FailInfo {
                    code,
                    code_desc,
                    input: e.input.clone(),
                }],
            })
        })
        .collect();
    to_value(&wire::BatchResult {
        ok_count: report.ok_count(),
        fail_count: report.fail_count(),
        fail_results,
    })
}

/// `QueryUserList`: members, a page at a time (`PageNum` from 1, `PageSize`).
pub(crate) async fn query_user_list(ctx: &Ctx<'_>) -> Result<Value, QuickBiError> {
    ctx.require(Scope::ContactRead)?;
    let p = ctx.params;
    let page = p.int("PageNum")?.unwrap_or(1);
    let size = p.int("PageSize")?.unwrap_or(10);
    if page < 1 {
        return Err(QuickBiError::invalid("PageNum", "must be at least 1"));
    }
    if !(1..=MAX_PAGE_SIZE as i64).contains(&size) {
        return Err(QuickBiError::invalid(
            "PageSize",
            format!("must be 1 to {MAX_PAGE_SIZE}"),
        ));
    }
    let (page, size) = (page as u64, size as usize);
    let keyword = p.text("Keyword")?;
    let (rows, total) = ctx
        .dir
        .bi_members(ctx.tenant(), keyword.as_deref(), page, size)
        .await?;
    to_value(&wire::UserPage {
        data: rows
            .iter()
            .map(|(m, u)| user_info(m, u.as_ref(), false))
            .collect(),
        page_num: page,
        page_size: size,
        total_num: total,
        total_pages: total.div_ceil(size as u64),
    })
}

/// `QueryUserInfoByUserId`.
pub(crate) async fn query_user_info_by_user_id(ctx: &Ctx<'_>) -> Result<Value, QuickBiError> {
    ctx.require(Scope::ContactRead)?;
    let id = ctx.params.required("UserId")?;
    let (m, u) = ctx.dir.bi_member(ctx.tenant(), &id).await?;
    to_value(&user_info(&m, u.as_ref(), true))
}

/// `CheckOrganizationMember`.
pub(crate) async fn check_organization_member(ctx: &Ctx<'_>) -> Result<Value, QuickBiError> {
    ctx.require(Scope::ContactRead)?;
    let id = ctx.params.required("UserId")?;
    Ok(Value::Bool(ctx.dir.bi_is_member(ctx.tenant(), &id).await?))
}

/// `UpdateUser`: nickname, type and administrator flags. Custom roles do not exist in
/// Roster, and disabling (`IsDeleted`) is the directory's business, so both are refused.
pub(crate) async fn update_user(ctx: &Ctx<'_>) -> Result<Value, QuickBiError> {
    ctx.require(Scope::ContactWrite)?;
    let p = ctx.params;
    let id = p.required("UserId")?;
    if !p.list("RoleIds")?.is_empty() {
        return Err(QuickBiError::invalid(
            "RoleIds",
            "custom organisation roles are not supported",
        ));
    }
    if p.bool("IsDeleted")? == Some(true) {
        return Err(QuickBiError::invalid(
            "IsDeleted",
            "disable the user in the directory instead",
        ));
    }
    let patch = BiMemberPatch {
        nickname: p.text("NickName")?,
        user_type: user_type(p, "UserType")?,
        is_admin: p.bool("AdminUser")?,
        is_auth_admin: p.bool("AuthAdminUser")?,
    };
    ctx.dir
        .bi_update_member(ctx.tenant(), ctx.actor(), &id, patch)
        .await?;
    Ok(Value::Bool(true))
}

/// `DeleteUser`: the member leaves the organisation; `TransferUserId` has nothing to take
/// over, since Roster holds no BI content.
pub(crate) async fn delete_user(ctx: &Ctx<'_>) -> Result<Value, QuickBiError> {
    ctx.require(Scope::ContactWrite)?;
    let id = ctx.params.required("UserId")?;
    ctx.dir
        .bi_delete_member(ctx.tenant(), ctx.actor(), &id)
        .await?;
    Ok(Value::Bool(true))
}

/// `CreateUserGroup`: a top-level group; returns its id.
pub(crate) async fn create_user_group(ctx: &Ctx<'_>) -> Result<Value, QuickBiError> {
    ctx.require(Scope::ContactWrite)?;
    let p = ctx.params;
    let name = p.required("UserGroupName")?;
    // The client may choose the id (the SDK documents it as unique within the organization,
    // at most 64 characters, not -1); an empty one is absent. It is checked here so that the
    // answer names the parameter as the client sent it.
    let group_id = match p.text("UserGroupId")?.filter(|s| !s.is_empty()) {
        None => None,
        Some(id) => Some(
            roster_core::group::parse_group_id(&id).map_err(|e| match e {
                roster_core::CoreError::Invalid { reason, .. } if reason.contains("at most") => {
                    QuickBiError::bad(
                        codes::PARAMETER_LENGTH_EXCEED,
                        format!("UserGroupId: {reason}"),
                    )
                }
                roster_core::CoreError::Invalid { reason, .. } => {
                    QuickBiError::invalid("UserGroupId", reason)
                }
                other => other.into(),
            })?,
        ),
    };
    match p.text("ParentUserGroupId")?.as_deref() {
        None | Some(ROOT_GROUP) => {}
        Some(other) => {
            return Err(QuickBiError::invalid(
                "ParentUserGroupId",
                format!("groups are not nested here; use {ROOT_GROUP} instead of {other}"),
            ))
        }
    }
    let group = ctx
        .dir
        .bi_create_group(
            ctx.tenant(),
            group_id.as_deref(),
            &name,
            p.text("UserGroupDescription")?,
        )
        .await?;
    Ok(Value::String(group.group_id))
}

/// `QueryUserGroupListByParentId`: the root's children are every group; a group has none.
pub(crate) async fn query_user_group_list_by_parent_id(
    ctx: &Ctx<'_>,
) -> Result<Value, QuickBiError> {
    ctx.require(Scope::ContactRead)?;
    let parent = ctx.params.required("ParentUserGroupId")?;
    let groups = ctx.dir.bi_groups(ctx.tenant(), None).await?;
    let rows: Vec<wire::UserGroup> = if parent == ROOT_GROUP {
        groups.iter().map(group_row).collect()
    } else if groups.iter().any(|g| g.group_id == parent) {
        Vec::new()
    } else {
        return Err(QuickBiError::bad(
            codes::USERGROUP_NOT_EXIST,
            "The user group does not exist.",
        ));
    };
    to_value(&rows)
}

/// `ListUserGroupsByUserId`: the groups of one member.
pub(crate) async fn list_user_groups_by_user_id(ctx: &Ctx<'_>) -> Result<Value, QuickBiError> {
    ctx.require(Scope::ContactRead)?;
    let id = ctx.params.required("UserId")?;
    let (m, _) = ctx.dir.bi_member(ctx.tenant(), &id).await?;
    let groups = ctx.dir.bi_groups(ctx.tenant(), None).await?;
    let rows: Vec<wire::MemberGroup> = m
        .groups
        .iter()
        .filter_map(|gid| groups.iter().find(|g| &g.group_id == gid))
        .map(|g| wire::MemberGroup {
            usergroup_id: g.group_id.clone(),
            usergroup_name: g.name.clone(),
            usergroup_desc: g.description.clone(),
            parent_usergroup_id: ROOT_GROUP.to_owned(),
            identified_path: format!("{ROOT_GROUP}/{}", g.group_id),
            create_time: g.created_at.to_string(),
        })
        .collect();
    to_value(&rows)
}

/// `AddUserGroupMembers`: one member into several groups.
pub(crate) async fn add_user_group_members(ctx: &Ctx<'_>) -> Result<Value, QuickBiError> {
    ctx.require(Scope::ContactWrite)?;
    let p = ctx.params;
    let id = p.required("UserId")?;
    let groups = p.list("UserGroupIds")?;
    if groups.is_empty() {
        return Err(QuickBiError::missing("UserGroupIds"));
    }
    ctx.dir
        .bi_add_member_groups(ctx.tenant(), ctx.actor(), &id, groups)
        .await?;
    Ok(Value::Bool(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feishu_users_keep_request_order_and_repeated_keys() {
        let OrderedEntries(e) =
            serde_json::from_str(r#"{"ou_b": "B", "ou_a": "A", "ou_b": null}"#).unwrap();
        let ids: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(ids, ["ou_b", "ou_a", "ou_b"]);
        assert!(serde_json::from_str::<OrderedEntries>("[1]").is_err());
        assert!(serde_json::from_str::<OrderedEntries>("nope").is_err());
    }

    /// `FeishuUsers` as Python's `json.dumps` writes it: `": "` and `", "` between items,
    /// and with `ascii` every non-ASCII character escaped as `\uXXXX` (two for a character
    /// beyond the Basic Multilingual Plane).
    fn dumps(entries: &[(String, String)], ascii: bool) -> String {
        use std::fmt::Write as _;
        let quote = |s: &str| {
            let mut out = String::from("\"");
            for c in s.chars() {
                if ascii && !c.is_ascii() {
                    for unit in c.encode_utf16(&mut [0; 2]) {
                        write!(out, "\\u{unit:04x}").expect("writing to a String cannot fail");
                    }
                } else {
                    out.push(c);
                }
            }
            out.push('"');
            out
        };
        let items: Vec<String> = entries
            .iter()
            .map(|(id, nick)| format!("{}: {}", quote(id), quote(nick)))
            .collect();
        format!("{{{}}}", items.join(", "))
    }

    /// The audit's refused request, at its worst: 1 000 entries (the most allowed), each the
    /// longest user id (with `@`, which form encoding triples) and a nickname of the most
    /// characters allowed, sent as a form body. With 256 KiB per parameter even 40-character
    /// CJK nicknames were refused; with a 1 MiB body, 100 CJK characters unescaped were.
    #[test]
    fn the_longest_legal_feishu_users_fits_the_body_and_the_parameter_cap() {
        use roster_core::bi::{parse_nickname, MAX_BATCH_ENTRIES, MAX_NICKNAME_CHARS};

        for (nick_char, ascii) in [('😀', true), ('😀', false), ('中', true), ('中', false)] {
            let entries: Vec<(String, String)> = (0..MAX_BATCH_ENTRIES)
                .map(|i| {
                    let id = format!("{i:04}{}", "@".repeat(crate::params::LONGEST_USER_ID - 4));
                    (id, nick_char.to_string().repeat(MAX_NICKNAME_CHARS))
                })
                .collect();
            let json = dumps(&entries, ascii);
            let body = format!(
                "FeishuUsers={}&IsAdmin=False&IsAuthAdmin=False&UserType=1&UserGroupIds={}",
                form_urlencoded::byte_serialize(json.as_bytes()).collect::<String>(),
                vec!["g".repeat(64); roster_core::bi::MAX_GROUPS_PER_CALL].join("%2C"),
            );
            assert!(
                body.len() <= crate::MAX_BODY,
                "{nick_char} ascii={ascii}: {} bytes",
                body.len()
            );
            let params = Params::new(&[], &crate::params::decode(body.as_bytes()).unwrap());
            let raw = params
                .text("FeishuUsers")
                .expect("the longest legal FeishuUsers is accepted")
                .expect("present");
            let OrderedEntries(parsed) = serde_json::from_str(&raw).unwrap();
            assert_eq!(parsed.len(), MAX_BATCH_ENTRIES);
            for (id, nick) in parsed {
                roster_core::UserId::parse(&id).expect("a legal user id");
                let Value::String(nick) = nick else {
                    panic!("a string nickname")
                };
                assert_eq!(
                    parse_nickname(&nick).unwrap().chars().count(),
                    MAX_NICKNAME_CHARS
                );
            }
        }
    }

    #[test]
    fn role_ids_follow_the_flags_and_the_type() {
        let m = BiMember {
            tenant: roster_core::TenantId(1),
            open_id: roster_core::OpenId::from_trusted("ou_x".into()),
            nickname: "n".into(),
            is_admin: true,
            is_auth_admin: false,
            user_type: UserType::Developer,
            groups: vec![],
            created_at: 0,
            updated_at: 0,
        };
        assert_eq!(role_ids(&m), [-1, -3]);
    }
}
