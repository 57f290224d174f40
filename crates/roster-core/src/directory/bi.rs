//! Use cases of the BI organisation (Quick BI): adding directory users as members, reading,
//! changing and removing members, BI user groups, and the replay guard of signed requests.
//!
//! The callers are authenticated by their dialect (an access key's signature), so these
//! take the tenant and the acting identity directly rather than a bearer-token `Caller`.

use std::collections::HashSet;

use tracing::instrument;

use super::{retry_stale, Directory};
use crate::audit::{Actor, Change};
use crate::bi::{
    merge_groups, parse_nickname, BiBatchReport, BiEntryFailure, BiEntryOutcome, BiMember,
    BiMemberPatch, BiRoles, MAX_BATCH_ENTRIES, MAX_GROUPS_PER_CALL,
};
use crate::error::{CoreError, Entity, StoreError, UniqueKey};
use crate::group::{parse_group_name, Group};
use crate::ids::{OpenId, TenantId};
use crate::store::UserLookup;
use crate::user::User;

/// How a Feishu user id names a user: `ou_…` is an open id, `on_…` a union id, anything
/// else the custom user id.
fn feishu_lookup(id: &str) -> UserLookup {
    if id.starts_with("ou_") {
        UserLookup::OpenId(id.to_owned())
    } else if id.starts_with("on_") {
        UserLookup::UnionId(id.to_owned())
    } else {
        UserLookup::UserId(id.to_owned())
    }
}

/// A member's Quick BI `UserId` is the user's open id; anything else names no member.
fn member_id(user_id: &str) -> Result<OpenId, CoreError> {
    OpenId::parse(user_id.trim()).map_err(|_| CoreError::not_found(Entity::BiMember, user_id))
}

impl Directory {
    /// Adds directory users to the tenant's BI organisation (`BatchAddFeishuUsers`).
    ///
    /// `entries` pairs a Feishu user id (open id, union id or user id) with a nickname
    /// (empty: the user's nickname or name). Whole-request failures, which change nothing:
    /// no or too many entries, a role combination the rules forbid, an unknown group, or
    /// more members than `max_members`. Every other problem fails only its entry, so the
    /// report has exactly one outcome per entry.
    #[instrument(skip_all, fields(tenant = %tenant, entries = entries.len()))]
    pub async fn bi_add_members(
        &self,
        tenant: TenantId,
        actor: Actor,
        entries: Vec<(String, String)>,
        roles: BiRoles,
        groups: Vec<String>,
        max_members: u64,
    ) -> Result<BiBatchReport, CoreError> {
        // A group deleted between the check and the write makes the store answer `Stale`;
        // the batch is then prepared again and refused with `Usergroup.Not.Exist`.
        retry_stale(|| {
            self.bi_add_members_once(
                tenant,
                actor.clone(),
                entries.clone(),
                roles.clone(),
                groups.clone(),
                max_members,
            )
        })
        .await
    }

    async fn bi_add_members_once(
        &self,
        tenant: TenantId,
        actor: Actor,
        entries: Vec<(String, String)>,
        roles: BiRoles,
        groups: Vec<String>,
        max_members: u64,
    ) -> Result<BiBatchReport, CoreError> {
        if entries.is_empty() {
            return Err(CoreError::invalid(
                "feishu_users",
                "must name at least one user",
            ));
        }
        if entries.len() > MAX_BATCH_ENTRIES {
            return Err(CoreError::invalid(
                "feishu_users",
                format!("at most {MAX_BATCH_ENTRIES} users per call"),
            ));
        }
        roles.check()?;
        let groups = self.bi_existing_groups(tenant, groups).await?;
        let now = self.inner.clock.now_ms();

        let mut outcomes: Vec<BiEntryOutcome> = Vec::with_capacity(entries.len());
        // Members to write, each with the index of its outcome.
        let mut pending: Vec<(usize, BiMember)> = Vec::new();
        let mut seen: HashSet<OpenId> = HashSet::new();
        for (input, nick) in entries {
            let result = self.bi_candidate(tenant, &input, &nick).await?;
            let result = match result {
                Ok(user) if !seen.insert(user.open_id.clone()) => {
                    Err(BiEntryFailure::AlreadyMember)
                }
                Ok(user) => {
                    if self
                        .inner
                        .store
                        .get_bi_member(tenant, &user.open_id)
                        .await?
                        .is_some()
                    {
                        Err(BiEntryFailure::AlreadyMember)
                    } else {
                        let nickname = match parse_nickname(&nick) {
                            Ok(n) if !n.is_empty() => n,
                            _ => user
                                .profile
                                .nickname
                                .clone()
                                .filter(|n| !n.trim().is_empty())
                                .unwrap_or_else(|| user.profile.name.clone()),
                        };
                        pending.push((
                            outcomes.len(),
                            BiMember {
                                tenant,
                                open_id: user.open_id.clone(),
                                nickname,
                                is_admin: roles.is_admin,
                                is_auth_admin: roles.is_auth_admin,
                                user_type: roles.user_type,
                                groups: groups.clone(),
                                created_at: now,
                                updated_at: now,
                            },
                        ));
                        Ok(user.open_id)
                    }
                }
                Err(f) => Err(f),
            };
            outcomes.push(BiEntryOutcome { input, result });
        }

        if !pending.is_empty() {
            let members: Vec<BiMember> = pending.iter().map(|(_, m)| m.clone()).collect();
            let written = self
                .inner
                .store
                .insert_bi_members(tenant, &members, max_members, &Change::by(actor))
                .await?;
            for ((index, _), result) in pending.iter().zip(written) {
                match result {
                    Ok(()) => {}
                    // Another request added the user since the pre-check: the primary key
                    // decided, and this entry lost.
                    Err(StoreError::Duplicate(UniqueKey::OpenId)) => {
                        outcomes[*index].result = Err(BiEntryFailure::AlreadyMember);
                    }
                    Err(other) => return Err(other.into()),
                }
            }
        }
        Ok(BiBatchReport { entries: outcomes })
    }

    /// Resolves one entry to an active directory user with a way to sign in, or says why
    /// it cannot be one.
    async fn bi_candidate(
        &self,
        tenant: TenantId,
        input: &str,
        nick: &str,
    ) -> Result<Result<User, BiEntryFailure>, CoreError> {
        if parse_nickname(nick).is_err() {
            return Ok(Err(BiEntryFailure::BadNickname));
        }
        let input = input.trim();
        if input.is_empty() || input.len() > 128 {
            return Ok(Err(BiEntryFailure::NotInDirectory));
        }
        let user = match self
            .inner
            .store
            .get_user(tenant, &feishu_lookup(input))
            .await?
        {
            Some(u) if !u.status.is_resigned => u,
            _ => return Ok(Err(BiEntryFailure::NotInDirectory)),
        };
        if user.profile.email.is_none()
            && user.profile.enterprise_email.is_none()
            && user.profile.mobile.is_none()
        {
            return Ok(Err(BiEntryFailure::NoContact));
        }
        Ok(Ok(user))
    }

    /// Checks that every group exists; returns the ids trimmed, each once, in order.
    async fn bi_existing_groups(
        &self,
        tenant: TenantId,
        groups: Vec<String>,
    ) -> Result<Vec<String>, CoreError> {
        let mut out: Vec<String> = Vec::new();
        let wanted: Vec<String> = groups
            .into_iter()
            .map(|g| g.trim().to_owned())
            .filter(|g| !g.is_empty())
            .collect();
        merge_groups(&mut out, &wanted);
        if out.len() > MAX_GROUPS_PER_CALL {
            return Err(CoreError::invalid(
                "user_group_ids",
                format!("at most {MAX_GROUPS_PER_CALL} groups per call"),
            ));
        }
        for g in &out {
            if self.inner.store.get_group(tenant, g).await?.is_none() {
                return Err(CoreError::not_found(Entity::Group, g.clone()));
            }
        }
        Ok(out)
    }

    /// One member and their directory user, by Quick BI `UserId` (the open id).
    pub async fn bi_member(
        &self,
        tenant: TenantId,
        user_id: &str,
    ) -> Result<(BiMember, Option<User>), CoreError> {
        let open_id = member_id(user_id)?;
        let member = self
            .inner
            .store
            .get_bi_member(tenant, &open_id)
            .await?
            .ok_or_else(|| CoreError::not_found(Entity::BiMember, user_id))?;
        let user = self
            .inner
            .store
            .get_user(tenant, &UserLookup::OpenId(open_id.as_str().to_owned()))
            .await?;
        Ok((member, user))
    }

    /// Whether a user is a member of the organisation.
    pub async fn bi_is_member(&self, tenant: TenantId, user_id: &str) -> Result<bool, CoreError> {
        match OpenId::parse(user_id.trim()) {
            Ok(id) => Ok(self.inner.store.get_bi_member(tenant, &id).await?.is_some()),
            Err(_) => Ok(false),
        }
    }

    /// A page of members with their directory users (`page` from 1), and the total.
    pub async fn bi_members(
        &self,
        tenant: TenantId,
        keyword: Option<&str>,
        page: u64,
        page_size: usize,
    ) -> Result<(Vec<(BiMember, Option<User>)>, u64), CoreError> {
        if page == 0 {
            return Err(CoreError::invalid("page_num", "must be at least 1"));
        }
        if page_size == 0 || page_size > 1000 {
            return Err(CoreError::invalid("page_size", "must be 1 to 1000"));
        }
        let keyword = keyword
            .map(|k| k.trim().to_lowercase())
            .filter(|k| !k.is_empty());
        let offset = (page - 1).saturating_mul(page_size as u64);
        let (members, total) = self
            .inner
            .store
            .list_bi_members(tenant, keyword.as_deref(), offset, page_size)
            .await?;
        let lookups: Vec<UserLookup> = members
            .iter()
            .map(|m| UserLookup::OpenId(m.open_id.as_str().to_owned()))
            .collect();
        let users = self.inner.store.get_users(tenant, &lookups).await?;
        let rows = members
            .into_iter()
            .map(|m| {
                let u = users.iter().find(|u| u.open_id == m.open_id).cloned();
                (m, u)
            })
            .collect();
        Ok((rows, total))
    }

    /// Changes a member's nickname, type or roles (`UpdateUser`), under the role rules.
    /// A change made meanwhile by another request is read again and kept: two concurrent
    /// updates of different fields both take effect.
    #[instrument(skip_all, fields(tenant = %tenant))]
    pub async fn bi_update_member(
        &self,
        tenant: TenantId,
        actor: Actor,
        user_id: &str,
        patch: BiMemberPatch,
    ) -> Result<BiMember, CoreError> {
        let nickname = match patch.nickname {
            Some(n) => {
                let n = parse_nickname(&n)?;
                if n.is_empty() {
                    return Err(CoreError::invalid("nickname", "must not be empty"));
                }
                Some(n)
            }
            None => None,
        };
        let patch = BiMemberPatch { nickname, ..patch };
        retry_stale(|| self.bi_update_member_once(tenant, actor.clone(), user_id, &patch)).await
    }

    async fn bi_update_member_once(
        &self,
        tenant: TenantId,
        actor: Actor,
        user_id: &str,
        patch: &BiMemberPatch,
    ) -> Result<BiMember, CoreError> {
        let (mut member, _) = self.bi_member(tenant, user_id).await?;
        let read_at = member.updated_at;
        if let Some(n) = &patch.nickname {
            member.nickname.clone_from(n);
        }
        if let Some(t) = patch.user_type {
            member.user_type = t;
        }
        if let Some(a) = patch.is_admin {
            member.is_admin = a;
        }
        if let Some(a) = patch.is_auth_admin {
            member.is_auth_admin = a;
        }
        BiRoles {
            is_admin: member.is_admin,
            is_auth_admin: member.is_auth_admin,
            user_type: member.user_type,
        }
        .check()?;
        self.bi_save(member, read_at, actor, user_id).await
    }

    /// Adds a member to more groups (`AddUserGroupMembers`); groups added meanwhile by
    /// another request stay.
    #[instrument(skip_all, fields(tenant = %tenant))]
    pub async fn bi_add_member_groups(
        &self,
        tenant: TenantId,
        actor: Actor,
        user_id: &str,
        groups: Vec<String>,
    ) -> Result<BiMember, CoreError> {
        retry_stale(|| async {
            // Checked on every attempt: a group deleted since makes the store answer `Stale`.
            let groups = self.bi_existing_groups(tenant, groups.clone()).await?;
            if groups.is_empty() {
                return Err(CoreError::invalid(
                    "user_group_ids",
                    "must name at least one group",
                ));
            }
            let (mut member, _) = self.bi_member(tenant, user_id).await?;
            let read_at = member.updated_at;
            merge_groups(&mut member.groups, &groups);
            self.bi_save(member, read_at, actor.clone(), user_id).await
        })
        .await
    }

    /// Writes a member read at `read_at` (its update time then). The new update time is
    /// later than that even within one millisecond, so that it works as the member's
    /// version: a writer that read the same version finds it moved (`Stale`) and tries again.
    async fn bi_save(
        &self,
        mut member: BiMember,
        read_at: i64,
        actor: Actor,
        user_id: &str,
    ) -> Result<BiMember, CoreError> {
        member.updated_at = self.inner.clock.now_ms().max(read_at + 1);
        if self
            .inner
            .store
            .update_bi_member(&member, read_at, &Change::by(actor))
            .await?
        {
            Ok(member)
        } else {
            // Removed by another request between the read and the write.
            Err(CoreError::not_found(Entity::BiMember, user_id))
        }
    }

    /// Removes a member from the organisation (`DeleteUser`); the directory user stays.
    #[instrument(skip_all, fields(tenant = %tenant))]
    pub async fn bi_delete_member(
        &self,
        tenant: TenantId,
        actor: Actor,
        user_id: &str,
    ) -> Result<(), CoreError> {
        let open_id = member_id(user_id)?;
        if self
            .inner
            .store
            .delete_bi_member(
                tenant,
                &open_id,
                self.inner.clock.now_ms(),
                &Change::by(actor),
            )
            .await?
        {
            Ok(())
        } else {
            Err(CoreError::not_found(Entity::BiMember, user_id))
        }
    }

    /// Creates a BI user group, which is one of the tenant's ordinary groups, under the id
    /// the client chose (`Duplicate(GroupId)` when the tenant has it) or a generated one.
    #[instrument(skip_all, fields(tenant = %tenant))]
    pub async fn bi_create_group(
        &self,
        tenant: TenantId,
        group_id: Option<&str>,
        name: &str,
        description: Option<String>,
    ) -> Result<Group, CoreError> {
        let group_id = group_id.map(crate::group::parse_group_id).transpose()?;
        let name = parse_group_name(name)?;
        let description = description
            .map(|d| crate::values::bounded_text("description", &d, 255, false))
            .transpose()?;
        let group = Group {
            key: 0,
            tenant,
            group_id: group_id.unwrap_or_else(|| self.inner.ids.hex(16)),
            name,
            description,
            owner: None,
            created_at: self.inner.clock.now_ms(),
        };
        Ok(self.inner.store.insert_group(&group).await?)
    }

    /// The tenant's groups, oldest first, optionally only those whose name contains
    /// `keyword` (case-insensitively).
    pub async fn bi_groups(
        &self,
        tenant: TenantId,
        keyword: Option<&str>,
    ) -> Result<Vec<Group>, CoreError> {
        let groups = self.inner.store.list_groups(tenant).await?;
        Ok(match keyword.map(str::trim).filter(|k| !k.is_empty()) {
            Some(k) => {
                let k = k.to_lowercase();
                groups
                    .into_iter()
                    .filter(|g| g.name.to_lowercase().contains(&k))
                    .collect()
            }
            None => groups,
        })
    }

    /// Claims a signed request's nonce for `window_ms`. False: the nonce was used within
    /// the window, so the request is a replay.
    pub async fn claim_signature_nonce(
        &self,
        access_key_id: &str,
        nonce: &str,
        window_ms: i64,
    ) -> Result<bool, CoreError> {
        let now = self.inner.clock.now_ms();
        Ok(self
            .inner
            .store
            .claim_signature_nonce(access_key_id, nonce, now, now + window_ms)
            .await?)
    }

    /// Forgets nonces whose window has passed; returns how many.
    pub async fn purge_signature_nonces(&self) -> Result<u64, CoreError> {
        Ok(self
            .inner
            .store
            .purge_signature_nonces(self.inner.clock.now_ms())
            .await?)
    }
}
