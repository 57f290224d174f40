//! User groups (Quick BI user groups, Huawei Workspace groups, SCIM groups).

use crate::error::CoreError;
use crate::ids::{OpenId, TenantId};
use crate::values::bounded_text;

/// A group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Internal key.
    pub key: i64,
    /// Owning tenant.
    pub tenant: TenantId,
    /// Stable external id: 32 hex digits, generated, or one the client chose
    /// ([`parse_group_id`]).
    pub group_id: String,
    /// Name, unique within the tenant, 1-255 characters.
    pub name: String,
    /// Free text, ≤ 255 characters.
    pub description: Option<String>,
    /// The user who owns (manages) the group; passes to the successor when they resign.
    pub owner: Option<OpenId>,
    /// Creation time, ms.
    pub created_at: i64,
}

/// Validates a group name: 1-255 characters, the length Quick BI documents for
/// `UserGroupName` (Huawei documents none).
pub fn parse_group_name(name: &str) -> Result<String, CoreError> {
    bounded_text("name", name.trim(), 255, true)
}

/// Validates a group id a client chose (Quick BI `CreateUserGroup`'s `UserGroupId`: at most
/// 64 characters, not `-1`, which names the root). Roster takes ASCII letters, digits, `-`,
/// `_` and `.` only, so that the id is safe in a URL path (Huawei's `/groups/{group_id}`)
/// and in the comma-separated lists that Quick BI's `UserGroupIds` parameters are.
pub fn parse_group_id(id: &str) -> Result<String, CoreError> {
    let invalid = |reason: &'static str| CoreError::Invalid {
        field: "group_id",
        reason: reason.into(),
    };
    if id.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if id == "-1" {
        return Err(invalid("-1 names the root group"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(invalid(
            "may hold only ASCII letters, digits, '-', '_' and '.'",
        ));
    }
    // Clients and proxies rewrite `.` and `..` path segments, so such a group could not be
    // named in Huawei's `/groups/{group_id}` (`..` would even name the project's users).
    if id.bytes().all(|b| b == b'.') {
        return Err(invalid("must not be only dots"));
    }
    // Checked after the characters, which are ASCII: bytes are characters.
    if id.len() > 64 {
        return Err(invalid("must be at most 64 characters"));
    }
    Ok(id.to_owned())
}
