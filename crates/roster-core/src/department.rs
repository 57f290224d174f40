//! Departments: a tree per tenant, rooted at the department whose ids are both `"0"`.

use crate::error::CoreError;
use crate::ids::{DepartmentId, OpenDepartmentId, OpenId, TenantId};
use crate::values::bounded_text;

/// A department's internal key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeptKey(pub i64);

/// The id under which the root department is known in both id types.
pub const ROOT_ID: &str = "0";

/// Feishu's limits on the tree.
pub const MAX_DEPTH: usize = 25;
/// At most this many direct children under one department.
pub const MAX_CHILDREN: u64 = 1_000;
/// At most this many departments per tenant.
pub const MAX_DEPARTMENTS: u64 = 30_000;

/// Names in other languages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct I18nName {
    /// Chinese.
    pub zh_cn: Option<String>,
    /// Japanese.
    pub ja_jp: Option<String>,
    /// English.
    pub en_us: Option<String>,
}

/// A department as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    /// Internal key.
    pub key: DeptKey,
    /// Owning tenant.
    pub tenant: TenantId,
    /// Generated open id; `"0"` for the root.
    pub open_department_id: OpenDepartmentId,
    /// Custom id (generated when not given); `"0"` for the root.
    pub department_id: DepartmentId,
    /// Parent; `None` only for the root.
    pub parent: Option<DeptKey>,
    /// Fields a client may change.
    pub fields: DepartmentFields,
    /// Soft-deleted departments keep their ids for reads of old references.
    pub is_deleted: bool,
    /// Creation time, ms.
    pub created_at: i64,
    /// Last change, ms.
    pub updated_at: i64,
}

impl Department {
    /// Whether this is the tenant's root.
    pub fn is_root(&self) -> bool {
        self.parent.is_none()
    }
}

/// The client-editable part of a department.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DepartmentFields {
    /// Display name: 1-100 characters, no `/`.
    pub name: String,
    /// Names in other languages.
    pub i18n_name: I18nName,
    /// The main leader.
    pub leader: Option<OpenId>,
    /// Deputy leaders, in order.
    pub deputies: Vec<OpenId>,
    /// The department's HR business partners (Feishu `department_hrbps`), active users, in
    /// order. A deleted user is taken off every list it is on, as it is off leaders'.
    pub hrbps: Vec<OpenId>,
    /// Units the department belongs to (Feishu `unit_ids`). Roster has no units of its own;
    /// the ids are the client's, kept and returned as given.
    pub unit_ids: Vec<String>,
    /// Employee types allowed in the department's group chat (Feishu
    /// `group_chat_employee_types`): 1-5 are Feishu's built-in types, larger numbers a
    /// tenant's own.
    pub group_chat_employee_types: Vec<i64>,
    /// Sort order among siblings: smaller first, as Feishu's department `order` documents
    /// ("数值越小，排序越靠前"); ties keep creation order.
    pub order: i64,
}

/// Validates a department name as Feishu does (43029 for a `/`).
pub fn parse_department_name(name: &str) -> Result<String, CoreError> {
    let name = bounded_text("name", name, 100, true)?;
    if name.contains('/') {
        return Err(CoreError::invalid("name", "must not contain /"));
    }
    Ok(name)
}

/// What is needed to create a department.
#[derive(Debug, Clone)]
pub struct NewDepartment {
    /// Parent department.
    pub parent: DeptKey,
    /// Custom id, generated when absent.
    pub department_id: Option<DepartmentId>,
    /// Editable fields.
    pub fields: DepartmentFields,
    /// No order was given: the department goes after its current siblings (its order is
    /// one more than the largest of theirs, 0 for the first child) and `fields.order` is
    /// ignored. Feishu places a new department without `order` after the existing ones.
    pub order_after_siblings: bool,
}

/// A partial change of a department: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct DepartmentPatch {
    /// New parent (a move).
    pub parent: Option<DeptKey>,
    /// New custom id (Feishu `update_department_id`); unique in the tenant, as on create.
    pub department_id: Option<DepartmentId>,
    /// New name.
    pub name: Option<String>,
    /// New i18n names.
    pub i18n_name: Option<I18nName>,
    /// New leader; `Some(None)` clears it.
    #[allow(clippy::option_option)] // Three states: keep, clear, set.
    pub leader: Option<Option<OpenId>>,
    /// New deputy leaders (replacing all).
    pub deputies: Option<Vec<OpenId>>,
    /// New HR business partners (replacing all).
    pub hrbps: Option<Vec<OpenId>>,
    /// New unit ids (replacing all).
    pub unit_ids: Option<Vec<String>>,
    /// New group chat employee types (replacing all).
    pub group_chat_employee_types: Option<Vec<i64>>,
    /// New order.
    pub order: Option<i64>,
}

/// How a department is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeptLookup {
    /// By internal key.
    Key(DeptKey),
    /// By `open_department_id` (`"0"` is the root).
    OpenId(String),
    /// By custom `department_id` (`"0"` is the root).
    CustomId(String),
}

impl DeptLookup {
    /// The id as the client gave it, for "no such department" messages.
    pub fn shown(&self) -> String {
        match self {
            Self::Key(k) => k.0.to_string(),
            Self::OpenId(s) | Self::CustomId(s) => s.clone(),
        }
    }
}
