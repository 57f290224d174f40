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
    /// Stable external id (32 hex digits, generated).
    pub group_id: String,
    /// Name, unique within the tenant, 1-128 characters.
    pub name: String,
    /// Free text, ≤ 255 characters.
    pub description: Option<String>,
    /// The user who owns (manages) the group; passes to the successor when they resign.
    pub owner: Option<OpenId>,
    /// Creation time, ms.
    pub created_at: i64,
}

/// Validates a group name.
pub fn parse_group_name(name: &str) -> Result<String, CoreError> {
    bounded_text("name", name.trim(), 128, true)
}
