//! Use cases of the account-style vendor APIs (Huawei Workspace): all-or-nothing batch
//! creation with invitations written in the same transaction, whole-tenant user listings
//! for the dialect's filters, and group membership.

use std::collections::HashSet;

use tracing::instrument;

use super::{change_creating, finish_atomic_failure, Directory, Invitations, PreparedBatch};
use crate::app::{Caller, Scope};
use crate::batch::{BatchItem, BatchReport};
use crate::error::{ConflictKind, CoreError, Entity};
use crate::group::Group;
use crate::user::User;
use crate::values::Activation;

/// BI members read per page when a group deletion checks that none is left in the group.
const BI_PAGE: usize = 1_000;

/// Users read per store call when a listing walks the whole tenant.
const PAGE: usize = 1000;

impl Directory {
    /// Creates users all-or-nothing (like `create_users` in `Atomic` mode) and, for every
    /// user who activates the account themselves (`Activation::ByUser`), an invitation in
    /// the outbox, written in the same transaction as the users. Every group a user names
    /// must exist. Passwords must already be hashed (`crate::password::hash_all`).
    #[instrument(skip_all, fields(tenant = %caller.tenant, items = items.len()))]
    pub async fn create_accounts(
        &self,
        caller: &Caller,
        items: Vec<BatchItem>,
        invitations: &Invitations,
    ) -> Result<BatchReport, CoreError> {
        caller.require(Scope::ContactWrite)?;
        let known: HashSet<String> = self
            .inner
            .store
            .list_groups(caller.tenant)
            .await?
            .into_iter()
            .map(|g| g.group_id)
            .collect();
        let items: Vec<BatchItem> = items
            .into_iter()
            .map(|item| {
                let new = item?;
                match new.profile.groups.iter().find(|g| !known.contains(*g)) {
                    Some(missing) => Err(CoreError::BadReference {
                        field: "group_ids",
                        reason: format!("the group {missing} does not exist").into(),
                    }),
                    None => Ok(new),
                }
            })
            .collect();
        let PreparedBatch {
            mut results,
            mut pending,
            levels,
        } = self.prepare_batch(caller, items).await?;
        if results.iter().any(|r| matches!(r, Some(Err(_)))) {
            return Ok(finish_atomic_failure(results));
        }
        let order: Vec<usize> = levels.into_iter().flatten().collect();
        let mut users = Vec::with_capacity(order.len());
        let mut mails = Vec::new();
        for &i in &order {
            if let Some(p) = &pending[i] {
                if p.user.profile.activation == Activation::ByUser && !p.user.status.is_activated {
                    mails.extend(self.invitation(&p.user, invitations));
                }
                users.push(p.user.clone());
            }
        }
        let written = self
            .inner
            .store
            .insert_users_invited(
                caller.tenant,
                &users,
                &mails,
                &change_creating(caller, &users),
            )
            .await?;
        if written.iter().any(Result::is_err) {
            for (&i, r) in order.iter().zip(written) {
                if let Err(e) = r {
                    results[i] = Some(Err(e.into()));
                }
            }
            return Ok(finish_atomic_failure(results));
        }
        for (&i, r) in order.iter().zip(written) {
            if let (Ok(key), Some(p)) = (r, pending[i].take()) {
                results[i] = Some(Ok(p.created(key)));
            }
        }
        Ok(BatchReport {
            items: results
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| {
                        Err(CoreError::conflict(
                            ConflictKind::NotWritten,
                            "item was not processed",
                        ))
                    })
                })
                .collect(),
        })
    }

    /// Every active user of the caller's tenant that the caller may see, by key.
    pub async fn all_users(&self, caller: &Caller) -> Result<Vec<User>, CoreError> {
        let mut out = Vec::new();
        self.scan_users(caller, |user| out.push(user)).await?;
        Ok(out)
    }

    /// Hands every active user of the caller's tenant that the caller may see to `visit`,
    /// by key, one page at a time. Vendor listings filter on fields that have no index
    /// (description, activation, groups) and count every match, so they read the whole
    /// tenant; through this they hold one page and what they keep, not the tenant (a
    /// million users would be about a gigabyte).
    pub async fn scan_users<F>(&self, caller: &Caller, mut visit: F) -> Result<(), CoreError>
    where
        F: FnMut(User) + Send,
    {
        caller.require(Scope::ContactRead)?;
        let mut after = None;
        loop {
            let page = self
                .inner
                .store
                .list_users(caller.tenant, after, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key);
            let full = page.len() == PAGE;
            for user in page {
                if self.can_see_user(caller, &user).await? {
                    visit(user);
                }
            }
            if !full {
                break;
            }
        }
        Ok(())
    }

    /// Reads a group of the caller's tenant.
    pub async fn get_group(&self, caller: &Caller, group_id: &str) -> Result<Group, CoreError> {
        caller.require(Scope::ContactRead)?;
        self.inner
            .store
            .get_group(caller.tenant, group_id)
            .await?
            .ok_or_else(|| CoreError::not_found(Entity::Group, group_id))
    }

    /// Active users who belong to a group, by key.
    pub async fn group_members(
        &self,
        caller: &Caller,
        group_id: &str,
    ) -> Result<Vec<User>, CoreError> {
        let group = self.get_group(caller, group_id).await?;
        let mut members = Vec::new();
        self.scan_users(caller, |u| {
            if u.profile.groups.contains(&group.group_id) {
                members.push(u);
            }
        })
        .await?;
        Ok(members)
    }

    /// Deletes a group; refused while active users still belong to it, so that no user is
    /// left naming a group that does not exist.
    #[instrument(skip_all, fields(tenant = %caller.tenant))]
    pub async fn delete_group(&self, caller: &Caller, group_id: &str) -> Result<(), CoreError> {
        caller.require(Scope::ContactWrite)?;
        // The store checks again inside its transaction (a user or member may join between
        // this check and the delete) and answers `Stale`; the check then runs again and
        // refuses with its own error.
        super::retry_stale(|| self.delete_group_once(caller, group_id)).await
    }

    async fn delete_group_once(&self, caller: &Caller, group_id: &str) -> Result<(), CoreError> {
        if !self.group_members(caller, group_id).await?.is_empty() {
            return Err(CoreError::conflict(
                ConflictKind::DepartmentNotEmpty,
                "the group still has members",
            ));
        }
        // The group may also hold members of the BI organisation (Quick BI adds users to
        // the tenant's groups in its own membership); deleting it would drop them from the
        // group without a word. The organisation is bounded by its licence cap, so reading
        // it a page at a time is cheap enough for this rare call.
        let mut offset = 0_u64;
        loop {
            let (page, _) = self
                .inner
                .store
                .list_bi_members(caller.tenant, None, offset, BI_PAGE)
                .await?;
            if page.iter().any(|m| m.groups.iter().any(|g| g == group_id)) {
                return Err(CoreError::conflict(
                    ConflictKind::DepartmentNotEmpty,
                    "the group still has members in the BI organisation",
                ));
            }
            if page.len() < BI_PAGE {
                break;
            }
            offset += page.len() as u64;
        }
        if self
            .inner
            .store
            .delete_group(caller.tenant, group_id)
            .await?
        {
            Ok(())
        } else {
            Err(CoreError::not_found(Entity::Group, group_id))
        }
    }
}
