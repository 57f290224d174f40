//! User operations after creation: patch, change of user id, lookups and lists, deletion
//! with hand-over, resurrection, sign-out, JSAPI tickets, idempotency keys and retention.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use tracing::instrument;

use super::{change_of, retry_stale, unique_values, Directory};
use crate::app::{Caller, ContactScope, Scope};
use crate::audit::Change;
use crate::department::{Department, DeptLookup, ROOT_ID};
use crate::error::{ConflictKind, CoreError, Entity, UniqueKey};
use crate::ids::UserId;
use crate::search::{SearchCursor, SearchQuery};
use crate::store::{IdempotencyClaim, IdempotencyKey, UniqueProbe, UserLookup};
use crate::user::{Membership, OrdersLeftOut, User, UserKey, UserPatch};

tokio::task_local! {
    /// The idempotency key that the [`Directory::idempotent`] run this task is inside has
    /// claimed, so that the create it runs can record the key's result in its own write.
    static CLAIMED_KEY: IdempotencyKey;
}

/// The change record of a write that creates the entity `entity_id` for `caller`: when the
/// write runs inside [`Directory::idempotent`], it completes the claimed key with that id in
/// the same transaction, marked as waiting for its first answer (see [`split_result`]).
pub(crate) fn change_completing(caller: &Caller, entity_id: &str) -> Change {
    let mut change = change_of(caller);
    change.completes = CLAIMED_KEY
        .try_with(Clone::clone)
        .ok()
        .map(|key| (key, answer_pending(entity_id)));
    change
}

/// A key's stored result while its entity exists and the first request is still rendering
/// the answer it will record: the id and an empty answer.
fn answer_pending(entity_id: &str) -> String {
    format!("{entity_id}\n")
}

/// Search candidates read per store call for an app limited to some departments, where
/// many candidates may be skipped.
const SCOPED_SEARCH_BATCH: usize = 500;
/// Search candidates one request examines at most for such an app before it ends the page
/// early with a place to resume from.
const SCOPED_SEARCH_BUDGET: usize = 5_000;
use crate::values::{Email, Mobile};

/// Lifetime of a JSAPI ticket, seconds (Feishu: 2 hours).
pub const JSAPI_TICKET_TTL_S: i64 = 7200;
/// How long a request waits for an earlier request with the same idempotency key.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(5);
/// Longest leader chain followed when looking for a cycle.
const MAX_LEADER_CHAIN: usize = 10_000;

/// Where a deleted user's resources go.
#[derive(Debug, Clone, Default)]
pub struct Handover {
    /// Takes over the user's direct reports (as their leader), the departments the user
    /// led and the groups the user owned. `None`: the deleted user's own leader, if active.
    pub successor: Option<UserLookup>,
    /// Other named transfers (resource kind, acceptor), validated and recorded.
    pub transfers: Vec<(String, UserLookup)>,
}

/// The result of an idempotent operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentOutcome {
    /// The id of the entity the operation produced.
    pub entity_id: String,
    /// Whether it was produced by an earlier request with the same key.
    pub replayed: bool,
    /// On a replay, the answer the first request got, when its dialect recorded one with
    /// [`Directory::record_idempotent_answer`] (opaque to the core).
    pub answer: Option<String>,
}

/// What a stored idempotency result says of the first request's answer.
#[derive(Debug, PartialEq, Eq)]
enum FirstAnswer {
    /// Recorded: replays answer it.
    Recorded(String),
    /// Not recorded yet: the first request committed its entity and is still rendering the
    /// answer (or died before it recorded one).
    Pending,
    /// None will come (a key stored before answers were kept): replays render the entity.
    Never,
}

/// Splits a stored idempotency result: the entity id, then after a newline the first
/// answer, empty while it is pending (ids never hold a newline, answers are never empty).
fn split_result(stored: String) -> (String, FirstAnswer) {
    match stored.split_once('\n') {
        Some((id, "")) => (id.to_owned(), FirstAnswer::Pending),
        Some((id, answer)) => (id.to_owned(), FirstAnswer::Recorded(answer.to_owned())),
        None => (stored, FirstAnswer::Never),
    }
}

impl Directory {
    /// Reads an active or resigned user the caller may see, for a change.
    async fn user_for_change(
        &self,
        caller: &Caller,
        lookup: &UserLookup,
    ) -> Result<User, CoreError> {
        caller.require(Scope::ContactWrite)?;
        self.get_user(caller, lookup).await
    }

    /// Every department of a membership list must exist and be visible to the caller.
    async fn check_memberships(
        &self,
        caller: &Caller,
        memberships: &[Membership],
    ) -> Result<(), CoreError> {
        let mut seen = HashSet::new();
        for m in memberships {
            if !seen.insert(m.department) {
                continue;
            }
            let dept = self
                .department(caller.tenant, &DeptLookup::Key(m.department))
                .await
                .map_err(|_| CoreError::BadReference {
                    field: "department_ids",
                    reason: "the department does not exist".into(),
                })?;
            if !self.can_see_department(caller, &dept).await? {
                return Err(CoreError::Forbidden(
                    "the department is outside the app's contact scope".into(),
                ));
            }
        }
        Ok(())
    }

    /// An app limited to some departments may not take a user out of a department outside
    /// them: it cannot see that department, so it cannot mean to.
    async fn check_leaving(
        &self,
        caller: &Caller,
        before: &[Membership],
        after: &[Membership],
    ) -> Result<(), CoreError> {
        if matches!(caller.contact_scope, crate::app::ContactScope::All) {
            return Ok(());
        }
        for m in before {
            if after.iter().any(|n| n.department == m.department) {
                continue;
            }
            let dept = self
                .inner
                .store
                .get_department(caller.tenant, &DeptLookup::Key(m.department))
                .await?;
            if let Some(d) = dept {
                if !self.can_see_department(caller, &d).await? {
                    return Err(CoreError::Forbidden(
                        "the user is in a department outside the app's contact scope, which \
                         this app cannot take them out of"
                            .into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The root as a membership list, for users placed nowhere in particular.
    async fn root_membership(&self, caller: &Caller) -> Result<Vec<Membership>, CoreError> {
        let root = self
            .department(caller.tenant, &DeptLookup::OpenId(ROOT_ID.into()))
            .await?;
        Ok(vec![Membership {
            department: root.key,
            user_order: 0,
            department_order: 0,
            is_primary: true,
        }])
    }

    /// Fails with `AlreadyExists` when an active user other than `user` holds one of the
    /// unique values in `changed`.
    async fn check_unique_against_others(
        &self,
        user: &User,
        changed: &[(UniqueKey, String)],
    ) -> Result<(), CoreError> {
        if changed.is_empty() {
            return Ok(());
        }
        let mut probe = UniqueProbe::default();
        for (k, v) in changed {
            match k {
                UniqueKey::UserId => probe.user_ids.push(v.clone()),
                UniqueKey::Email => probe.emails.push(v.clone()),
                UniqueKey::Mobile => probe.mobiles.push(v.clone()),
                UniqueKey::Username => probe.usernames.push(v.clone()),
                UniqueKey::EmployeeNo => probe.employee_nos.push(v.clone()),
                _ => {}
            }
        }
        let taken = self
            .inner
            .store
            .taken_user_values(user.tenant, &probe)
            .await?;
        for (k, v) in changed {
            let hit = match k {
                UniqueKey::UserId => taken.user_ids.contains(v),
                UniqueKey::Email => taken.emails.contains(v),
                UniqueKey::Mobile => taken.mobiles.contains(v),
                UniqueKey::Username => taken.usernames.contains(v),
                UniqueKey::EmployeeNo => taken.employee_nos.contains(v),
                _ => false,
            };
            if hit {
                return Err(CoreError::AlreadyExists {
                    entity: Entity::User,
                    field: *k,
                });
            }
        }
        Ok(())
    }

    /// Resolves a new leader for `user`: active, not the user, and not led (directly or not)
    /// by the user, which would make a cycle.
    async fn resolve_leader(
        &self,
        caller: &Caller,
        user: &User,
        lookup: &UserLookup,
    ) -> Result<User, CoreError> {
        let leader = self.visible_leader(caller, lookup).await?;
        if leader.key == user.key {
            return Err(CoreError::BadReference {
                field: "leader_user_id",
                reason: "a user cannot lead themselves".into(),
            });
        }
        let mut next = leader.profile.leader.clone();
        let mut steps = 0;
        while let Some(open_id) = next {
            if open_id == user.open_id {
                return Err(CoreError::BadReference {
                    field: "leader_user_id",
                    reason: "leaders form a cycle".into(),
                });
            }
            steps += 1;
            if steps > MAX_LEADER_CHAIN {
                break;
            }
            next = self
                .inner
                .store
                .get_user(user.tenant, &UserLookup::OpenId(open_id.to_string()))
                .await?
                .and_then(|u| u.profile.leader);
        }
        Ok(leader)
    }

    /// Changes only the fields the patch names (Feishu U9).
    #[instrument(skip_all, fields(tenant = %caller.tenant))]
    pub async fn patch_user(
        &self,
        caller: &Caller,
        lookup: &UserLookup,
        patch: UserPatch,
    ) -> Result<User, CoreError> {
        retry_stale(|| self.patch_user_once(caller, lookup, patch.clone())).await
    }

    async fn patch_user_once(
        &self,
        caller: &Caller,
        lookup: &UserLookup,
        patch: UserPatch,
    ) -> Result<User, CoreError> {
        let mut user = self.user_for_change(caller, lookup).await?;
        if user.status.is_resigned {
            return Err(CoreError::conflict(
                ConflictKind::UserResigned,
                "the user has resigned",
            ));
        }
        let before = unique_values(&user);
        let p = &mut user.profile;
        if let Some(v) = patch.name {
            p.name = v;
        }
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = patch.$field { p.$field = v; } )* };
        }
        set!(
            en_name,
            nickname,
            email,
            enterprise_email,
            mobile,
            avatar_key,
            city,
            country,
            work_station,
            employee_no,
            job_title,
            description,
            custom_attrs,
            geo,
            job_level_id,
            job_family_id,
            subscription_ids
        );
        if let Some(v) = patch.mobile_visible {
            p.mobile_visible = v;
        }
        if let Some(v) = patch.gender {
            p.gender = v;
        }
        if let Some(v) = patch.join_time {
            p.join_time = Some(v);
        }
        if let Some(v) = patch.employee_type {
            p.employee_type = v;
        }
        if let Some(mut deps) = patch.departments {
            if deps.is_empty() {
                deps = self.root_membership(caller).await?;
            } else {
                keep_left_out_orders(&mut deps, &user.profile.departments, &patch.orders_left_out);
            }
            self.check_memberships(caller, &deps).await?;
            self.check_leaving(caller, &user.profile.departments, &deps)
                .await?;
            let mut seen = HashSet::new();
            deps.retain(|m| seen.insert(m.department));
            user.profile.departments = deps;
        }
        if let Some(v) = patch.is_frozen {
            user.status.is_frozen = v;
        }
        if let Some(dotted) = patch.dotted_line_leaders {
            if dotted.contains(&user.open_id) {
                return Err(CoreError::BadReference {
                    field: "dotted_line_leader_user_ids",
                    reason: "a user cannot be their own dotted-line leader".into(),
                });
            }
            user.profile.dotted_line_leaders = dotted;
        }
        if let Some(leader) = patch.leader {
            user.profile.leader = match leader {
                Some(l) => Some(self.resolve_leader(caller, &user, &l).await?.open_id),
                None => None,
            };
        }
        // A new user id in a patch is the same change as `update_user_id`, made in the same
        // write as the other fields, so that a patch never lands half.
        if let Some(id) = patch.user_id {
            user.user_id = id;
        }
        let changed: Vec<(UniqueKey, String)> = unique_values(&user)
            .into_iter()
            .filter(|kv| !before.contains(kv))
            .collect();
        self.check_unique_against_others(&user, &changed).await?;
        self.save_read_user(caller, &mut user).await?;
        Ok(user)
    }

    /// Gives a user a new custom user id; the old one stops resolving (Feishu U2).
    #[instrument(skip_all, fields(tenant = %caller.tenant))]
    pub async fn update_user_id(
        &self,
        caller: &Caller,
        lookup: &UserLookup,
        new_id: UserId,
    ) -> Result<User, CoreError> {
        retry_stale(|| self.update_user_id_once(caller, lookup, new_id.clone())).await
    }

    async fn update_user_id_once(
        &self,
        caller: &Caller,
        lookup: &UserLookup,
        new_id: UserId,
    ) -> Result<User, CoreError> {
        let mut user = self.user_for_change(caller, lookup).await?;
        if user.status.is_resigned {
            return Err(CoreError::conflict(
                ConflictKind::UserResigned,
                "the user has resigned",
            ));
        }
        if user.user_id == new_id {
            return Ok(user);
        }
        if user.user_id.folded() != new_id.folded() {
            self.check_unique_against_others(&user, &[(UniqueKey::UserId, new_id.folded())])
                .await?;
        }
        user.user_id = new_id;
        self.save_read_user(caller, &mut user).await?;
        Ok(user)
    }

    /// Reads several users (Feishu U11); unknown or invisible ones are left out.
    pub async fn get_users(
        &self,
        caller: &Caller,
        lookups: &[UserLookup],
    ) -> Result<Vec<User>, CoreError> {
        caller.require(Scope::ContactRead)?;
        let users = self.inner.store.get_users(caller.tenant, lookups).await?;
        let mut out = Vec::with_capacity(users.len());
        for u in users {
            if self.can_see_user(caller, &u).await? {
                out.push(u);
            }
        }
        Ok(out)
    }

    /// For each e-mail and mobile, the user holding it (Feishu U3): the active holder, or
    /// with `include_resigned` the most recently resigned one when no active user holds it.
    pub async fn users_by_contact(
        &self,
        caller: &Caller,
        emails: &[Email],
        mobiles: &[Mobile],
        include_resigned: bool,
    ) -> Result<(Vec<Option<User>>, Vec<Option<User>>), CoreError> {
        caller.require(Scope::ContactRead)?;
        let folded: Vec<String> = emails.iter().map(Email::folded).collect();
        let phones: Vec<String> = mobiles.iter().map(|m| m.as_str().to_owned()).collect();
        let mut found = self
            .inner
            .store
            .users_by_contact(caller.tenant, &folded, &phones)
            .await?;
        let mut visible = Vec::with_capacity(found.len());
        for u in found.drain(..) {
            // Resigned users belong to no department, so only whole-directory apps see them.
            if (include_resigned || !u.status.is_resigned) && self.can_see_user(caller, &u).await? {
                visible.push(u);
            }
        }
        let best = |pred: &dyn Fn(&User) -> bool| -> Option<User> {
            visible
                .iter()
                .filter(|u| pred(u))
                .max_by_key(|u| (!u.status.is_resigned, u.resigned_at.unwrap_or(0), u.key.0))
                .cloned()
        };
        let by_email = folded
            .iter()
            .map(|e| best(&|u: &User| u.profile.email.as_ref().is_some_and(|m| &m.folded() == e)))
            .collect();
        let by_mobile = phones
            .iter()
            .map(|m| best(&|u: &User| u.profile.mobile.as_ref().is_some_and(|x| x.as_str() == m)))
            .collect();
        Ok((by_email, by_mobile))
    }

    /// Fills a page from a source of key-ordered batches, dropping users the caller may not
    /// see; returns the page and whether more follow.
    async fn visible_page<F, Fut>(
        &self,
        caller: &Caller,
        after: Option<UserKey>,
        limit: usize,
        fetch: F,
    ) -> Result<(Vec<User>, bool), CoreError>
    where
        F: Fn(Option<UserKey>, usize) -> Fut,
        Fut: Future<Output = Result<Vec<User>, crate::error::StoreError>>,
    {
        let mut out = Vec::with_capacity(limit);
        let mut cursor = after;
        loop {
            let batch = fetch(cursor, limit + 1).await?;
            let exhausted = batch.len() <= limit;
            for u in batch {
                cursor = Some(u.key);
                if self.can_see_user(caller, &u).await? {
                    if out.len() == limit {
                        return Ok((out, true));
                    }
                    out.push(u);
                }
            }
            if exhausted {
                return Ok((out, false));
            }
        }
    }

    /// Active direct members of a department, a page at a time (Feishu U12).
    pub async fn department_users(
        &self,
        caller: &Caller,
        dept: &DeptLookup,
        after: Option<UserKey>,
        limit: usize,
    ) -> Result<(Vec<User>, bool), CoreError> {
        let dept = self.get_department(caller, dept).await?;
        let (users, more) = self
            .visible_page(caller, after, limit, |a, n| {
                self.inner
                    .store
                    .department_members(caller.tenant, dept.key, a, n)
            })
            .await?;
        Ok((users, more))
    }

    /// Active users matching `query` (names, pinyin, e-mail, mobile, employee number; see
    /// `crate::search`), best matches first, a page at a time after `after` (Feishu U4).
    /// Each user comes with its place; the second value is the place the next page resumes
    /// from, `None` when no more follow. Users the caller may not see are skipped, as in
    /// every list.
    ///
    /// For an app limited to some departments most matches may lie outside them, so the
    /// skipping is bounded: candidates are read in large batches, each department's
    /// visibility is decided once per request, and after `SCOPED_SEARCH_BUDGET` candidates
    /// the page ends early (possibly short, even empty) with a place to resume from. A page
    /// therefore costs about the same whatever the share of invisible matches.
    pub async fn search_users(
        &self,
        caller: &Caller,
        query: &str,
        after: Option<SearchCursor>,
        limit: usize,
    ) -> Result<(Vec<(User, SearchCursor)>, Option<SearchCursor>), CoreError> {
        caller.require(Scope::ContactRead)?;
        let query = SearchQuery::parse(query)?;
        let scoped = !matches!(caller.contact_scope, ContactScope::All);
        let batch_size = if scoped {
            (limit + 1).max(SCOPED_SEARCH_BATCH)
        } else {
            limit + 1
        };
        let mut visible_depts: HashMap<crate::department::DeptKey, bool> = HashMap::new();
        let mut out: Vec<(User, SearchCursor)> = Vec::with_capacity(limit);
        let mut cursor = after;
        let mut examined = 0usize;
        loop {
            let batch = self
                .inner
                .store
                .search_users(caller.tenant, &query, cursor.clone(), batch_size)
                .await?;
            let exhausted = batch.len() < batch_size;
            for (u, place) in batch {
                if self
                    .can_see_user_memo(caller, &u, &mut visible_depts)
                    .await?
                {
                    if out.len() == limit {
                        // One more visible match exists: the page is full and more follow.
                        let next = out.last().map(|(_, p)| p.clone());
                        return Ok((out, next));
                    }
                    out.push((u, place.clone()));
                }
                cursor = Some(place);
                examined += 1;
                if scoped && examined >= SCOPED_SEARCH_BUDGET {
                    // Enough work for one request: resume after the last candidate seen.
                    return Ok((out, cursor));
                }
            }
            if exhausted {
                return Ok((out, None));
            }
        }
    }

    /// Deletes (resigns) a user: the user leaves every department, the successor takes over
    /// direct reports and led departments, and the hand-over is recorded, all in one
    /// transaction (Feishu U5).
    #[instrument(skip_all, fields(tenant = %caller.tenant))]
    pub async fn delete_user(
        &self,
        caller: &Caller,
        lookup: &UserLookup,
        handover: Handover,
    ) -> Result<(), CoreError> {
        retry_stale(|| self.delete_user_once(caller, lookup, &handover)).await
    }

    async fn delete_user_once(
        &self,
        caller: &Caller,
        lookup: &UserLookup,
        handover: &Handover,
    ) -> Result<(), CoreError> {
        let mut user = self.user_for_change(caller, lookup).await?;
        if user.status.is_resigned {
            return Err(CoreError::conflict(
                ConflictKind::UserResigned,
                "the user has already resigned",
            ));
        }
        let acceptor = |reason: &'static str| CoreError::BadReference {
            field: "acceptor",
            reason: reason.into(),
        };
        let check_acceptor = |u: Option<User>| -> Result<User, CoreError> {
            match u {
                None => Err(acceptor("no such user")),
                Some(a) if a.key == user.key => Err(acceptor(
                    "the deleted user cannot accept their own resources",
                )),
                Some(a) if a.status.is_resigned => Err(acceptor("the acceptor has resigned")),
                Some(a) => Ok(a),
            }
        };
        let mut notes = Vec::new();
        // Acceptors the caller names must be users it may see (an app limited to some
        // departments cannot hand anything to, or probe for, a user outside them); the
        // default successor, the user's own leader, is the directory's choice, not the
        // caller's, and is taken wherever they are.
        for (kind, l) in &handover.transfers {
            let a = check_acceptor(self.user_visible_to(caller, l).await?)?;
            notes.push(format!("{kind} -> {}", a.open_id));
        }
        let successor = match &handover.successor {
            Some(l) => Some(check_acceptor(self.user_visible_to(caller, l).await?)?),
            None => match &user.profile.leader {
                Some(l) => self
                    .inner
                    .store
                    .get_user(caller.tenant, &UserLookup::OpenId(l.to_string()))
                    .await?
                    .filter(|u| !u.status.is_resigned && u.key != user.key),
                None => None,
            },
        };
        let successor_id = successor.as_ref().map(|s| s.open_id.clone());
        if let Some(s) = &successor_id {
            notes.push(format!("reports and departments -> {s}"));
        }
        // When the successor sits below the deleted user, the direct report on the path
        // from the successor up (possibly the successor itself) must not be put under the
        // successor, which would close a cycle: it takes the deleted user's own leader.
        let on_path = match &successor {
            Some(s) => self.report_above(&user, s).await?,
            None => None,
        };
        let now = self.inner.clock.now_ms();
        let mut reports = self
            .inner
            .store
            .users_led_by(caller.tenant, &user.open_id)
            .await?;
        for r in &mut reports {
            r.profile.leader = if on_path.as_ref() == Some(&r.open_id) {
                user.profile.leader.clone()
            } else {
                successor_id.clone()
            };
        }
        // A resigned user is nobody's dotted-line leader any more either, so that bringing
        // the user back later does not bring these links back with them.
        for mut d in self
            .inner
            .store
            .users_with_dotted_leader(caller.tenant, &user.open_id)
            .await?
        {
            if d.key == user.key {
                continue;
            }
            // A direct report may name the user as a dotted-line leader too: it is saved once.
            if let Some(r) = reports.iter_mut().find(|r| r.key == d.key) {
                r.profile.dotted_line_leaders.retain(|l| *l != user.open_id);
            } else {
                d.profile.dotted_line_leaders.retain(|l| *l != user.open_id);
                reports.push(d);
            }
        }
        let mut depts: Vec<Department> = self
            .inner
            .store
            .departments_led_by(caller.tenant, &user.open_id)
            .await?;
        for d in &mut depts {
            if d.fields.leader.as_ref() == Some(&user.open_id) {
                d.fields.leader.clone_from(&successor_id);
            }
            // A resigned user is nobody's deputy either, and a deputy who takes over as
            // the main leader is listed once.
            let main = d.fields.leader.clone();
            d.fields
                .deputies
                .retain(|x| *x != user.open_id && Some(x) != main.as_ref());
            // Nor anybody's HR business partner: the successor does not take that over,
            // because an HRBP is chosen by HR, not inherited down a reporting line.
            d.fields.hrbps.retain(|x| *x != user.open_id);
        }
        let mut groups = self
            .inner
            .store
            .groups_owned_by(caller.tenant, &user.open_id)
            .await?;
        for g in &mut groups {
            g.owner.clone_from(&successor_id);
        }
        user.status.is_resigned = true;
        user.resigned_at = Some(now);
        user.profile.former_departments = user
            .profile
            .departments
            .iter()
            .map(|m| m.department)
            .collect();
        user.profile.departments.clear();
        user.profile.leader = None;
        user.profile.dotted_line_leaders.clear();
        let mut users = vec![user];
        users.extend(reports);
        let mut change = change_of(caller);
        if !notes.is_empty() {
            change.note = Some(format!("handover: {}", notes.join("; ")));
        }
        self.save_read(caller.tenant, &mut users, &mut depts, &groups, &change)
            .await?;
        Ok(())
    }

    /// If `member` reports (directly or not) to `user`, the direct report of `user` on that
    /// chain; otherwise `None`.
    async fn report_above(
        &self,
        user: &User,
        member: &User,
    ) -> Result<Option<crate::ids::OpenId>, CoreError> {
        let mut current = member.clone();
        for _ in 0..MAX_LEADER_CHAIN {
            match &current.profile.leader {
                None => return Ok(None),
                Some(l) if *l == user.open_id => return Ok(Some(current.open_id)),
                Some(l) => {
                    match self
                        .inner
                        .store
                        .get_user(user.tenant, &UserLookup::OpenId(l.to_string()))
                        .await?
                    {
                        Some(next) => current = next,
                        None => return Ok(None),
                    }
                }
            }
        }
        Ok(None)
    }

    /// Brings a resigned user back, into `departments` or the root (Feishu U6), with
    /// `subscription_ids` replacing the seats the user had when they are given.
    #[instrument(skip_all, fields(tenant = %caller.tenant))]
    pub async fn resurrect_user(
        &self,
        caller: &Caller,
        lookup: &UserLookup,
        departments: Option<Vec<Membership>>,
        subscription_ids: Option<Vec<String>>,
    ) -> Result<User, CoreError> {
        retry_stale(|| {
            self.resurrect_user_once(
                caller,
                lookup,
                departments.clone(),
                subscription_ids.clone(),
            )
        })
        .await
    }

    async fn resurrect_user_once(
        &self,
        caller: &Caller,
        lookup: &UserLookup,
        departments: Option<Vec<Membership>>,
        subscription_ids: Option<Vec<String>>,
    ) -> Result<User, CoreError> {
        caller.require(Scope::ContactWrite)?;
        let mut user = self
            .inner
            .store
            .get_user(caller.tenant, lookup)
            .await?
            .ok_or_else(|| CoreError::not_found(Entity::User, super::lookup_text(lookup)))?;
        if !self.can_see_user(caller, &user).await? {
            return Err(CoreError::not_found(
                Entity::User,
                super::lookup_text(lookup),
            ));
        }
        if !user.status.is_resigned {
            return Err(CoreError::conflict(
                ConflictKind::UserNotResigned,
                "the user has not resigned",
            ));
        }
        let deps = match departments.filter(|d| !d.is_empty()) {
            Some(d) => d,
            None => self.root_membership(caller).await?,
        };
        self.check_memberships(caller, &deps).await?;
        let mut seen = HashSet::new();
        user.profile.departments = deps
            .into_iter()
            .filter(|m| seen.insert(m.department))
            .collect();
        if let Some(ids) = subscription_ids {
            user.profile.subscription_ids = ids;
        }
        // A group is deleted once no active user is in it, so a resigned user may still
        // name one that is gone, or whose id (a client may choose it) a new, unrelated
        // group has taken since. The user comes back in the groups that existed when they
        // left and still do.
        if !user.profile.groups.is_empty() {
            let left_at = user.resigned_at.unwrap_or(i64::MAX);
            let kept: HashSet<String> = self
                .inner
                .store
                .list_groups(caller.tenant)
                .await?
                .into_iter()
                .filter(|g| g.created_at <= left_at)
                .map(|g| g.group_id)
                .collect();
            user.profile.groups.retain(|g| kept.contains(g));
        }
        let values = unique_values(&user);
        let key = user.key;
        let written = async {
            self.check_unique_against_others(&user, &values).await?;
            user.status.is_resigned = false;
            user.resigned_at = None;
            user.profile.former_departments.clear();
            self.save_read_user(caller, &mut user).await
        }
        .await;
        if let Err(CoreError::AlreadyExists { .. }) = &written {
            // A racing resurrect of this very user may have committed after this one read
            // it: the value is then held by the user itself, and the answer is that it is
            // no longer resigned, as a later request would be told.
            let now = self
                .inner
                .store
                .get_user(caller.tenant, &UserLookup::Key(key))
                .await?;
            if now.is_some_and(|u| !u.status.is_resigned) {
                return Err(CoreError::conflict(
                    ConflictKind::UserNotResigned,
                    "the user has not resigned",
                ));
            }
        }
        written.map(|()| user)
    }

    /// Signs a user out everywhere: sessions and user tokens issued before now are invalid
    /// from now on (Feishu U7).
    pub async fn logout_user(&self, caller: &Caller, lookup: &UserLookup) -> Result<(), CoreError> {
        retry_stale(|| async {
            let mut user = self.user_for_change(caller, lookup).await?;
            user.logout_at = Some(self.inner.clock.now_ms());
            self.save_read_user(caller, &mut user).await
        })
        .await
    }

    /// The app's JSAPI ticket: the same one while it is valid, then a new one (Feishu U8).
    /// Returns the ticket and its remaining seconds.
    pub async fn jsapi_ticket(&self, caller: &Caller) -> Result<(String, i64), CoreError> {
        let now = self.inner.clock.now_ms();
        if let Some((ticket, expires_at)) = self.inner.store.jsapi_ticket(&caller.app_id).await? {
            // A ticket is handed out only with a minute to spare, so that a client never
            // caches one that expires before it can use it.
            if expires_at - now > 60_000 {
                return Ok((ticket, (expires_at - now) / 1000));
            }
        }
        let ticket = self.inner.ids.hex(20);
        let expires_at = now + JSAPI_TICKET_TTL_S * 1000;
        // A request that raced this one may have stored its ticket first: that one is
        // handed out, so that every caller gets the same ticket while it is valid.
        let (ticket, expires_at) = self
            .inner
            .store
            .put_jsapi_ticket(&caller.app_id, &ticket, expires_at, now + 60_000)
            .await?;
        Ok((ticket, (expires_at - now) / 1000))
    }

    /// Runs `op` at most once per idempotency key: a repeat with the same fingerprint gets
    /// the first run's entity id back, one with another fingerprint is refused. A failed run
    /// releases the key so that the client may retry.
    pub async fn idempotent<F, Fut>(
        &self,
        caller: &Caller,
        operation: &str,
        key: &str,
        fingerprint: &str,
        op: F,
    ) -> Result<IdempotentOutcome, CoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String, CoreError>>,
    {
        if key.is_empty() || key.len() > 128 {
            return Err(CoreError::invalid(
                "client_token",
                "must be 1 to 128 characters",
            ));
        }
        let key = IdempotencyKey {
            tenant: caller.tenant,
            app_id: caller.app_id.clone(),
            operation: operation.to_owned(),
            key: key.to_owned(),
        };
        let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
        loop {
            match self
                .inner
                .store
                .claim_idempotency_key(&key, fingerprint, self.inner.clock.now_ms())
                .await?
            {
                IdempotencyClaim::Claimed => break,
                IdempotencyClaim::Existing { fingerprint: f, .. } if f != fingerprint => {
                    return Err(CoreError::IdempotencyMismatch)
                }
                IdempotencyClaim::Existing {
                    result: Some(stored),
                    ..
                } => {
                    let (entity_id, answer) = split_result(stored);
                    let answer = match answer {
                        FirstAnswer::Recorded(answer) => Some(answer),
                        // The first request committed but has not recorded its answer yet;
                        // answering from the entity now could show changes made since. Wait
                        // for the answer, and render the entity only once the first request
                        // has had time to record one (it may have died after its commit).
                        FirstAnswer::Pending if tokio::time::Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                        FirstAnswer::Pending | FirstAnswer::Never => None,
                    };
                    return Ok(IdempotentOutcome {
                        entity_id,
                        replayed: true,
                        answer,
                    });
                }
                IdempotencyClaim::Existing { result: None, .. } => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(CoreError::conflict(
                            ConflictKind::InFlight,
                            "a request with this client_token is still being processed",
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        // The create inside `op` records the key's result in its own transaction (see
        // `change_completing`); completing it again here covers an `op` that wrote nothing
        // new, and is harmless otherwise.
        match CLAIMED_KEY.scope(key.clone(), op()).await {
            Ok(id) => {
                self.inner
                    .store
                    .complete_idempotency_key(&key, &answer_pending(&id))
                    .await?;
                Ok(IdempotentOutcome {
                    entity_id: id,
                    replayed: false,
                    answer: None,
                })
            }
            Err(e) => {
                self.inner.store.release_idempotency_key(&key).await?;
                Err(e)
            }
        }
    }

    /// Records the answer the first request of an idempotency key got, so that its
    /// replays answer the same (Feishu: "replay the original response"), not the entity as
    /// it is by then. Called by the dialect after it rendered that answer; the answer is
    /// opaque here. Best effort: when it cannot be stored, replays render the entity as it
    /// is, as they did before, and the first request still gets its answer.
    pub async fn record_idempotent_answer(
        &self,
        caller: &Caller,
        operation: &str,
        key: &str,
        entity_id: &str,
        answer: &str,
    ) {
        let key = IdempotencyKey {
            tenant: caller.tenant,
            app_id: caller.app_id.clone(),
            operation: operation.to_owned(),
            key: key.to_owned(),
        };
        let stored = format!("{entity_id}\n{answer}");
        if let Err(err) = self
            .inner
            .store
            .complete_idempotency_key(&key, &stored)
            .await
        {
            tracing::warn!(
                operation,
                "failed to record the first answer of a client_token: {err}"
            );
        }
    }

    /// Deletes for good the users resigned longer than `retention_ms` ago, and forgets
    /// idempotency keys older than `key_retention_ms`. Returns the number of users purged.
    pub async fn purge_expired(
        &self,
        retention_ms: i64,
        key_retention_ms: i64,
    ) -> Result<u64, CoreError> {
        let now = self.inner.clock.now_ms();
        let users = self.inner.store.purge_resigned(now - retention_ms).await?;
        self.inner
            .store
            .purge_idempotency_keys(now - key_retention_ms)
            .await?;
        Ok(users)
    }

    /// Deletes the tasks (v2 batch adds and imports, with their per-item results) that
    /// finished more than `retention_ms` ago; returns how many. They go a hundred per write,
    /// so that a sweep after a busy month does not hold SQLite's writer for long at a time.
    pub async fn purge_finished_tasks(&self, retention_ms: i64) -> Result<u64, CoreError> {
        const PER_WRITE: u64 = 100;
        let before = self.inner.clock.now_ms() - retention_ms;
        let mut purged = 0;
        loop {
            let n = self
                .inner
                .store
                .purge_finished_tasks(before, PER_WRITE)
                .await?;
            purged += n;
            if n < PER_WRITE {
                return Ok(purged);
            }
        }
    }

    /// Change events, oldest first (for `roster audit`).
    pub async fn list_events(
        &self,
        tenant: Option<crate::ids::TenantId>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<crate::audit::ChangeEvent>, CoreError> {
        Ok(self.inner.store.list_events(tenant, after, limit).await?)
    }

    /// Whether an app sees the whole directory (used to skip per-user checks in lists).
    pub fn sees_everything(caller: &Caller) -> bool {
        matches!(caller.contact_scope, ContactScope::All)
    }
}

/// Fills in what a departments change left out from the user's current memberships: the
/// orders of departments the user stays in, and the primary department if the user stays
/// in it. The primary goes first, as in every membership list.
fn keep_left_out_orders(new: &mut [Membership], current: &[Membership], left_out: &OrdersLeftOut) {
    for m in new.iter_mut() {
        if !left_out.departments.contains(&m.department) {
            continue;
        }
        if let Some(old) = current.iter().find(|o| o.department == m.department) {
            m.user_order = old.user_order;
            m.department_order = old.department_order;
        }
    }
    if left_out.primary {
        let kept = current
            .iter()
            .find(|o| o.is_primary)
            .map(|o| o.department)
            .filter(|d| new.iter().any(|m| m.department == *d));
        if let Some(primary) = kept {
            for m in new.iter_mut() {
                m.is_primary = m.department == primary;
            }
            new.sort_by_key(|m| !m.is_primary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::keep_left_out_orders;
    use crate::department::DeptKey;
    use crate::user::{Membership, OrdersLeftOut};

    fn m(dept: i64, user_order: i64, department_order: i64, is_primary: bool) -> Membership {
        Membership {
            department: DeptKey(dept),
            user_order,
            department_order,
            is_primary,
        }
    }

    #[test]
    fn departments_sent_without_orders_keep_the_current_orders_and_primary() {
        let current = [m(1, 50, 9, false), m(2, 70, 8, true)];
        // The adapter's view of `department_ids: [1, 2, 3]` without `orders`.
        let mut new = vec![m(1, 0, 0, true), m(2, 0, 0, false), m(3, 0, 0, false)];
        let left_out = OrdersLeftOut {
            departments: vec![DeptKey(1), DeptKey(2), DeptKey(3)],
            primary: true,
        };
        keep_left_out_orders(&mut new, &current, &left_out);
        assert_eq!(
            new,
            [m(2, 70, 8, true), m(1, 50, 9, false), m(3, 0, 0, false)]
        );
    }

    #[test]
    fn orders_sent_win_and_a_removed_primary_falls_to_the_first() {
        let current = [m(1, 50, 9, true), m(2, 70, 8, false)];
        // `department_ids: [2, 3]` with an `orders` entry for 3 only, none primary.
        let mut new = vec![m(2, 0, 0, true), m(3, 5, 6, false)];
        let left_out = OrdersLeftOut {
            departments: vec![DeptKey(2)],
            primary: true,
        };
        keep_left_out_orders(&mut new, &current, &left_out);
        assert_eq!(new, [m(2, 70, 8, true), m(3, 5, 6, false)]);

        // Nothing left out: the change stands as sent.
        let mut new = vec![m(2, 1, 1, false), m(1, 2, 2, true)];
        keep_left_out_orders(&mut new, &current, &OrdersLeftOut::default());
        assert_eq!(new, [m(2, 1, 1, false), m(1, 2, 2, true)]);
    }
}
