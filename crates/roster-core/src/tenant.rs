//! Tenants: one company's directory each.

use crate::error::CoreError;
use crate::ids::TenantId;

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Internal key.
    pub id: TenantId,
    /// Unique display name.
    pub name: String,
    /// Feishu's `tenant_key`: 16 hex digits, stable, safe to show.
    pub tenant_key: String,
    /// The licence cap: how many active (not resigned) users the tenant may hold.
    pub max_active_users: Option<u32>,
    /// How many active users it holds now. Kept by the store in the same transaction as
    /// every change of a user's state, so that the cap is enforced by the database.
    pub active_users: u64,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
}

/// What is needed to create a tenant.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// Unique display name, 1-100 characters.
    pub name: String,
    /// Optional licence cap.
    pub max_active_users: Option<u32>,
}

impl NewTenant {
    /// Validates the name.
    pub fn parse(name: &str, max_active_users: Option<u32>) -> Result<Self, CoreError> {
        let name = crate::values::bounded_text("name", name.trim(), 100, true)?;
        Ok(Self {
            name,
            max_active_users,
        })
    }
}
