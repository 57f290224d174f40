//! The BI organisation (Quick BI): which directory users are members of the tenant's BI
//! organisation, with their BI role flags, user type and BI user groups.
//!
//! Membership is its own record (`bi_members` in both stores), not the `is_admin`,
//! `is_auth_admin`, `user_type` and `groups` fields of `UserProfile`: "already a member"
//! must be decided by the database (a primary key, so that two racing batches cannot both
//! add the same user) and the organisation's licence cap must be a database rule (a counter
//! under a check, like `tenants.active_users`), neither of which a field inside the user
//! document can give. The profile fields stay for the other front doors.
//!
//! BI user groups are the tenant's ordinary groups (`group.rs`): one group store serves
//! Quick BI, Huawei and SCIM alike, so a group made in one front door is visible in the
//! others. Quick BI's group tree is flattened: every group hangs under the root (`-1`).

use crate::error::CoreError;
use crate::ids::{OpenId, TenantId};
use crate::values::UserType;

/// Entries allowed in one `BatchAddFeishuUsers` call. Quick BI documents no limit; this
/// bounds the work of one request (its membership writes are one transaction).
pub const MAX_BATCH_ENTRIES: usize = 1000;
/// Groups one member may be added to in one call.
pub const MAX_GROUPS_PER_CALL: usize = 100;
/// Longest nickname accepted, in characters.
pub const MAX_NICKNAME_CHARS: usize = 100;

/// A member of a tenant's BI organisation, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // Two independent role flags of the Quick BI model.
pub struct BiMember {
    /// The tenant.
    pub tenant: TenantId,
    /// The directory user; also the member's Quick BI `UserId`.
    pub open_id: OpenId,
    /// The name shown in BI (`NickName`).
    pub nickname: String,
    /// Organisation administrator.
    pub is_admin: bool,
    /// Authorisation administrator.
    pub is_auth_admin: bool,
    /// Developer, visitor or analyst.
    pub user_type: UserType,
    /// BI user groups, by group id, in the order they were added, each once.
    pub groups: Vec<String>,
    /// When the user joined the organisation, ms.
    pub created_at: i64,
    /// Last change, ms.
    pub updated_at: i64,
}

/// The roles requested for the members of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // Same two flags as `BiMember`.
pub struct BiRoles {
    /// Organisation administrator.
    pub is_admin: bool,
    /// Authorisation administrator.
    pub is_auth_admin: bool,
    /// User type.
    pub user_type: UserType,
}

/// The field names under which the role rules fail, so that a dialect can give each its own
/// code (Quick BI: `Viewer.CannotHave.CustomRole`, `UserAnalyst.NotSupport.ThisRole`).
pub mod role_rule {
    /// A visitor may hold no administrator role.
    pub const VISITOR_ROLE: &str = "bi_visitor_role";
    /// An analyst may not be the organisation administrator.
    pub const ANALYST_ROLE: &str = "bi_analyst_role";
}

impl BiRoles {
    /// Checks Quick BI's role rules: a visitor (who may only view) can hold neither
    /// administrator role, and an analyst cannot administer the organisation (that role
    /// needs a developer), though an analyst may administer authorisations.
    pub fn check(&self) -> Result<(), CoreError> {
        match self.user_type {
            UserType::Visitor if self.is_admin || self.is_auth_admin => Err(CoreError::invalid(
                role_rule::VISITOR_ROLE,
                "an organisation visitor cannot hold an administrator role",
            )),
            UserType::Analyst if self.is_admin => Err(CoreError::invalid(
                role_rule::ANALYST_ROLE,
                "an analyst cannot be the organisation administrator",
            )),
            _ => Ok(()),
        }
    }
}

/// Why one entry of a batch was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BiEntryFailure {
    /// The user is already a member (or named twice in the batch).
    AlreadyMember,
    /// No active user of the directory has this open id, union id or user id.
    NotInDirectory,
    /// The user has neither an e-mail nor a mobile, which a BI account needs to sign in.
    NoContact,
    /// The nickname is too long or has control characters.
    BadNickname,
}

/// One entry's outcome, with the id as the client gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BiEntryOutcome {
    /// The Feishu user id as sent.
    pub input: String,
    /// `Ok` with the member's open id, or why it failed.
    pub result: Result<OpenId, BiEntryFailure>,
}

/// The outcome of a batch, one entry per input entry in request order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BiBatchReport {
    /// Every entry, in request order.
    pub entries: Vec<BiEntryOutcome>,
}

impl BiBatchReport {
    /// Entries added.
    pub fn ok_count(&self) -> usize {
        self.entries.iter().filter(|e| e.result.is_ok()).count()
    }

    /// Entries refused.
    pub fn fail_count(&self) -> usize {
        self.entries.len() - self.ok_count()
    }
}

/// A change of one member (`UpdateUser`): `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BiMemberPatch {
    /// New nickname.
    pub nickname: Option<String>,
    /// New user type.
    pub user_type: Option<UserType>,
    /// New administrator flag.
    pub is_admin: Option<bool>,
    /// New authorisation administrator flag.
    pub is_auth_admin: Option<bool>,
}

/// Validates a nickname: trimmed, at most `MAX_NICKNAME_CHARS`, no control characters.
/// An empty one is allowed here; the caller falls back to the directory name.
pub fn parse_nickname(nick: &str) -> Result<String, CoreError> {
    let nick = nick.trim();
    if nick.chars().count() > MAX_NICKNAME_CHARS {
        return Err(CoreError::invalid(
            "nickname",
            format!("must be at most {MAX_NICKNAME_CHARS} characters"),
        ));
    }
    if nick.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            "nickname",
            "must not contain control characters",
        ));
    }
    Ok(nick.to_owned())
}

/// Adds group ids to a member's list, keeping order and each id once.
pub fn merge_groups(groups: &mut Vec<String>, more: &[String]) {
    for g in more {
        if !groups.contains(g) {
            groups.push(g.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(user_type: UserType, is_admin: bool, is_auth_admin: bool) -> BiRoles {
        BiRoles {
            is_admin,
            is_auth_admin,
            user_type,
        }
    }

    #[test]
    fn visitor_cannot_hold_an_administrator_role() {
        for (a, aa) in [(true, false), (false, true), (true, true)] {
            let err = roles(UserType::Visitor, a, aa).check().unwrap_err();
            assert!(
                matches!(err, CoreError::Invalid { field, .. } if field == role_rule::VISITOR_ROLE)
            );
        }
        assert!(roles(UserType::Visitor, false, false).check().is_ok());
    }

    #[test]
    fn analyst_may_administer_authorisations_but_not_the_organisation() {
        assert!(roles(UserType::Analyst, false, true).check().is_ok());
        let err = roles(UserType::Analyst, true, false).check().unwrap_err();
        assert!(
            matches!(err, CoreError::Invalid { field, .. } if field == role_rule::ANALYST_ROLE)
        );
    }

    #[test]
    fn developer_may_hold_every_role() {
        assert!(roles(UserType::Developer, true, true).check().is_ok());
    }

    #[test]
    fn nickname_is_trimmed_and_bounded() {
        assert_eq!(parse_nickname("  Ann ").unwrap(), "Ann");
        assert!(parse_nickname(&"x".repeat(MAX_NICKNAME_CHARS + 1)).is_err());
        assert!(parse_nickname("a\u{7}b").is_err());
    }

    #[test]
    fn merging_groups_keeps_order_and_drops_repeats() {
        let mut g = vec!["a".to_owned()];
        merge_groups(&mut g, &["b".to_owned(), "a".to_owned(), "b".to_owned()]);
        assert_eq!(g, ["a", "b"]);
    }

    #[test]
    fn report_counts_add_up_to_the_entries() {
        let r = BiBatchReport {
            entries: vec![
                BiEntryOutcome {
                    input: "x".into(),
                    result: Err(BiEntryFailure::NotInDirectory),
                },
                BiEntryOutcome {
                    input: "y".into(),
                    result: Err(BiEntryFailure::AlreadyMember),
                },
            ],
        };
        assert_eq!(r.ok_count() + r.fail_count(), 2);
        assert_eq!(r.fail_count(), 2);
    }
}
