//! Users: the full Feishu v3 field set plus what the Huawei, Quick BI and SCIM front doors
//! need (login name, expiry, activation, password hash, admin flags, BI user type, groups).

use crate::department::DeptKey;
use crate::ids::{OpenId, TenantId, UnionId, UserId};
use crate::values::{Activation, Country, Email, EmployeeType, Gender, Mobile, UserType, Username};

/// A user's internal key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserKey(pub i64);

/// Feishu's status flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(clippy::struct_excessive_bools)] // These are five independent flags of the wire model.
pub struct UserStatus {
    /// Suspended by an administrator.
    pub is_frozen: bool,
    /// Deleted (soft): kept for resurrection, out of lists and uniqueness.
    pub is_resigned: bool,
    /// Has activated the account.
    pub is_activated: bool,
    /// Has left voluntarily.
    pub is_exited: bool,
    /// Has not accepted the invitation yet.
    pub is_unjoin: bool,
}

/// One custom attribute (Feishu `custom_attrs[]`), kept as the client gave it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomAttr {
    /// `TEXT`, `HREF`, `ENUMERATION`, `PICTURE_ENUM` or `GENERIC_USER`.
    pub kind: Option<String>,
    /// The attribute's id, e.g. `C-6702376000044400907`.
    pub id: String,
    /// Text value.
    pub text: Option<String>,
    /// Link value (mobile).
    pub url: Option<String>,
    /// Link value (desktop).
    pub pc_url: Option<String>,
    /// Enumeration option id.
    pub option_id: Option<String>,
    /// Enumeration option value.
    pub option_value: Option<String>,
    /// Name of the value.
    pub name: Option<String>,
    /// Picture URL.
    pub picture_url: Option<String>,
    /// Referenced user id (`GENERIC_USER`).
    pub generic_user_id: Option<String>,
    /// Referenced user's type (`GENERIC_USER`).
    pub generic_user_type: Option<i64>,
}

/// The parts of a departments change that the client did not send. Feishu's patch changes
/// only the fields present, so a user who stays in a department keeps its orders there, and
/// keeps their primary department, unless the request says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrdersLeftOut {
    /// Departments of the change without orders of their own: where the user already was
    /// a member, the current `user_order` and `department_order` stay.
    pub departments: Vec<DeptKey>,
    /// No department was named the primary: the current primary stays the primary if the
    /// user remains in it (the first department of the change otherwise).
    pub primary: bool,
}

/// A user's place in one department.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// The department.
    pub department: DeptKey,
    /// Order of the user within the department.
    pub user_order: i64,
    /// Order of the department among the user's departments.
    pub department_order: i64,
    /// Whether this is the user's main department.
    pub is_primary: bool,
}

/// Every field a client may set on a user. All values here have been parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(clippy::struct_excessive_bools)] // Flags from four vendors' wire models.
pub struct UserProfile {
    /// Display name, 1-255 characters.
    pub name: String,
    /// English name.
    pub en_name: Option<String>,
    /// Nickname.
    pub nickname: Option<String>,
    /// Personal e-mail; unique among active users.
    pub email: Option<Email>,
    /// Corporate e-mail.
    pub enterprise_email: Option<Email>,
    /// Mobile in E.164; unique among active users.
    pub mobile: Option<Mobile>,
    /// Whether colleagues may see the mobile.
    pub mobile_visible: bool,
    /// Gender.
    pub gender: Gender,
    /// Key of an uploaded avatar image.
    pub avatar_key: Option<String>,
    /// City, ≤ 100 characters.
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2 country.
    pub country: Option<Country>,
    /// Desk location.
    pub work_station: Option<String>,
    /// Joining date, unix seconds.
    pub join_time: Option<i64>,
    /// Employee number; unique among active users.
    pub employee_no: Option<String>,
    /// Kind of employment.
    pub employee_type: EmployeeType,
    /// Job title, ≤ 100 characters.
    pub job_title: Option<String>,
    /// Custom attributes.
    pub custom_attrs: Vec<CustomAttr>,
    /// The direct leader, by open id (so a batch can name a leader created in the same batch).
    pub leader: Option<OpenId>,
    /// Departments, the primary one first. Empty means the root department.
    pub departments: Vec<Membership>,
    /// Login name, unique case-insensitively per tenant.
    pub username: Option<Username>,
    /// When the account stops working, unix seconds; `None` never.
    pub account_expires: Option<i64>,
    /// How the account is activated.
    pub activation: Activation,
    /// PHC-format argon2id hash of the password, if one was set.
    pub password_hash: Option<String>,
    /// Whether the user may change the password.
    pub enable_change_password: bool,
    /// Whether the password must be changed at the next login.
    pub next_login_change_password: bool,
    /// Free text, ≤ 255 characters.
    pub description: Option<String>,
    /// Alias, ≤ 64 characters.
    pub alias: Option<String>,
    /// BI organisation administrator.
    pub is_admin: bool,
    /// BI authorisation administrator.
    pub is_auth_admin: bool,
    /// BI user type.
    pub user_type: Option<UserType>,
    /// Groups the user belongs to, by group id.
    pub groups: Vec<String>,
    /// Whether the user manages the tenant.
    pub is_tenant_manager: bool,
    /// Feishu's data-residency region (`geo`), kept as the client gave it.
    pub geo: Option<String>,
    /// Feishu job level id, an opaque reference kept as given (Roster has no job levels).
    pub job_level_id: Option<String>,
    /// Feishu job family id, an opaque reference kept as given.
    pub job_family_id: Option<String>,
    /// Feishu seat subscription ids, opaque references kept as given.
    pub subscription_ids: Vec<String>,
    /// Dotted-line leaders, by open id: active users of the tenant when they were set.
    pub dotted_line_leaders: Vec<OpenId>,
    /// The departments a resigned user left when deleted (empty while active). A resigned
    /// user belongs to no department, so these alone decide whether an app limited to some
    /// departments still sees (and may resurrect) the user it deleted.
    pub former_departments: Vec<crate::department::DeptKey>,
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Internal key (assigned by the store; ignored on insert).
    pub key: UserKey,
    /// Owning tenant.
    pub tenant: TenantId,
    /// `ou_…`, never changes.
    pub open_id: OpenId,
    /// `on_…`, never changes.
    pub union_id: UnionId,
    /// Custom id, changeable.
    pub user_id: UserId,
    /// Editable fields.
    pub profile: UserProfile,
    /// Status flags.
    pub status: UserStatus,
    /// Creation time, ms.
    pub created_at: i64,
    /// Last change, ms.
    pub updated_at: i64,
    /// When the user was deleted (resigned), ms.
    pub resigned_at: Option<i64>,
    /// Every session or user token issued before this time (ms) is invalid.
    pub logout_at: Option<i64>,
}

/// What a client supplies to create a user; the directory assigns the ids it leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Custom id; generated when absent.
    pub user_id: Option<UserId>,
    /// The fields. `profile.leader` is filled in by the directory from `leader`.
    pub profile: UserProfile,
    /// The direct leader as the client named it: an existing user, or (by user id) another
    /// user of the same batch.
    pub leader: Option<crate::store::UserLookup>,
    /// Whether the account starts activated (no invitation pending).
    pub activated: bool,
}

/// A partial change of a user (Feishu's patch): `None` leaves a field alone; for optional
/// fields `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    /// New display name.
    pub name: Option<String>,
    /// New English name.
    pub en_name: Option<Option<String>>,
    /// New nickname.
    pub nickname: Option<Option<String>>,
    /// New e-mail.
    pub email: Option<Option<Email>>,
    /// New corporate e-mail.
    pub enterprise_email: Option<Option<Email>>,
    /// New mobile.
    pub mobile: Option<Option<Mobile>>,
    /// New mobile visibility.
    pub mobile_visible: Option<bool>,
    /// New gender.
    pub gender: Option<Gender>,
    /// New avatar key.
    pub avatar_key: Option<Option<String>>,
    /// New city.
    pub city: Option<Option<String>>,
    /// New country.
    pub country: Option<Option<Country>>,
    /// New desk.
    pub work_station: Option<Option<String>>,
    /// New joining date.
    pub join_time: Option<i64>,
    /// New employee number.
    pub employee_no: Option<Option<String>>,
    /// New employment type.
    pub employee_type: Option<EmployeeType>,
    /// New job title.
    pub job_title: Option<Option<String>>,
    /// New description (free text, ≤ 255 characters).
    pub description: Option<Option<String>>,
    /// New custom attributes (replacing all).
    pub custom_attrs: Option<Vec<CustomAttr>>,
    /// New departments (replacing all).
    pub departments: Option<Vec<Membership>>,
    /// What the new departments left out, for which the user's current values stand.
    pub orders_left_out: OrdersLeftOut,
    /// New leader; `Some(None)` removes it.
    pub leader: Option<Option<crate::store::UserLookup>>,
    /// Freeze or unfreeze.
    pub is_frozen: Option<bool>,
    /// New data-residency region.
    pub geo: Option<Option<String>>,
    /// New job level id.
    pub job_level_id: Option<Option<String>>,
    /// New job family id.
    pub job_family_id: Option<Option<String>>,
    /// New subscription ids (replacing all).
    pub subscription_ids: Option<Vec<String>>,
    /// New dotted-line leaders (replacing all), resolved by
    /// `Directory::dotted_line_leaders`.
    pub dotted_line_leaders: Option<Vec<OpenId>>,
    /// New custom user id, checked for uniqueness as `Directory::update_user_id` does.
    pub user_id: Option<UserId>,
}
