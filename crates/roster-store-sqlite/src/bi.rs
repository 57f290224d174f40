//! The BI organisation (Quick BI members, migration 0009) and the nonces of signed requests.

use roster_core::values::UserType;
use roster_core::{BiMember, ChangeAction, OpenId, StoreError, TenantId, UniqueKey};
use roster_store_common::{bi_member_snapshot, decode_bi_groups, encode_bi_groups};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::errors::{corrupt, SqlContext};
use crate::events::{self, ChangeCtx, EventEntity, NewEvent};

macro_rules! member_select {
    ($rest:literal) => {
        concat!(
            "SELECT tenant_id, open_id, nickname, is_admin, is_auth_admin, user_type, \
             group_ids, created_at, updated_at FROM bi_members ",
            $rest
        )
    };
}

/// A member row before its JSON and codes are decoded.
struct MemberRow {
    tenant_id: i64,
    open_id: String,
    nickname: String,
    is_admin: bool,
    is_auth_admin: bool,
    user_type: i64,
    group_ids: String,
    created_at: i64,
    updated_at: i64,
}

impl MemberRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            tenant_id: r.get(0)?,
            open_id: r.get(1)?,
            nickname: r.get(2)?,
            is_admin: r.get(3)?,
            is_auth_admin: r.get(4)?,
            user_type: r.get(5)?,
            group_ids: r.get(6)?,
            created_at: r.get(7)?,
            updated_at: r.get(8)?,
        })
    }

    fn into_member(self) -> Result<BiMember, StoreError> {
        Ok(BiMember {
            tenant: TenantId(self.tenant_id),
            open_id: OpenId::from_trusted(self.open_id),
            nickname: self.nickname,
            is_admin: self.is_admin,
            is_auth_admin: self.is_auth_admin,
            user_type: UserType::from_code(self.user_type)
                .map_err(|_| corrupt("bi_members.user_type"))?,
            groups: decode_bi_groups(&self.group_ids)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn load(
    conn: &Connection,
    tenant: TenantId,
    open_id: &str,
) -> Result<Option<BiMember>, StoreError> {
    conn.prepare_cached(member_select!("WHERE tenant_id = ?1 AND open_id = ?2"))
        .and_then(|mut s| {
            s.query_row(params![tenant.0, open_id], MemberRow::read)
                .optional()
        })
        .context("load bi member")?
        .map(MemberRow::into_member)
        .transpose()
}

pub(crate) fn insert_members(
    conn: &mut Connection,
    tenant: TenantId,
    members: &[BiMember],
    max_members: u64,
    ctx: &ChangeCtx,
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin insert bi members")?;
    // A group deleted since the core checked it: `Stale`, and the core reads again.
    if !crate::accounts::missing_groups(&tx, tenant, members.iter().flat_map(|m| &m.groups))?
        .is_empty()
    {
        return Err(StoreError::Stale);
    }
    let mut results = Vec::with_capacity(members.len());
    let mut written: i64 = 0;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO bi_members (tenant_id, open_id, nickname, nickname_fold, is_admin, \
                 is_auth_admin, user_type, group_ids, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
            )
            .context("prepare insert bi member")?;
        let mut event = events::prepare(&tx)?;
        for m in members {
            let n = insert
                .execute(params![
                    tenant.0,
                    m.open_id.as_str(),
                    m.nickname,
                    m.nickname.to_lowercase(),
                    m.is_admin,
                    m.is_auth_admin,
                    m.user_type.code(),
                    encode_bi_groups(&m.groups),
                    m.created_at,
                    m.updated_at,
                ])
                .context("insert bi member")?;
            if n == 1 {
                written += 1;
                let after = bi_member_snapshot(m);
                events::record(
                    &mut event,
                    ctx,
                    &NewEvent {
                        tenant,
                        entity: EventEntity::BiMember,
                        entity_id: m.open_id.as_str(),
                        action: ChangeAction::Created,
                        at: m.created_at,
                        before: None,
                        after: Some(&after),
                    },
                )?;
                results.push(Ok(()));
            } else {
                results.push(Err(StoreError::Duplicate(UniqueKey::OpenId)));
            }
        }
    }
    if written > 0 {
        tx.execute(
            "INSERT INTO bi_orgs (tenant_id, member_count) VALUES (?1, 0) ON CONFLICT DO NOTHING",
            [tenant.0],
        )
        .context("create bi org")?;
        let cap = i64::try_from(max_members).unwrap_or(i64::MAX);
        let counted = tx
            .execute(
                "UPDATE bi_orgs SET member_count = member_count + ?2 \
                 WHERE tenant_id = ?1 AND member_count + ?2 <= ?3",
                params![tenant.0, written, cap],
            )
            .context("count bi members")?;
        if counted == 0 {
            // Dropping the transaction rolls the members back.
            return Err(StoreError::LicenceExceeded);
        }
    }
    tx.commit().context("commit insert bi members")?;
    Ok(results)
}

pub(crate) fn get_member(
    conn: &Connection,
    tenant: TenantId,
    open_id: &OpenId,
) -> Result<Option<BiMember>, StoreError> {
    load(conn, tenant, open_id.as_str())
}

pub(crate) fn list_members(
    conn: &Connection,
    tenant: TenantId,
    keyword: Option<&str>,
    offset: u64,
    limit: usize,
) -> Result<(Vec<BiMember>, u64), StoreError> {
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // `instr` rather than LIKE, so that `%` and `_` in the keyword are plain characters.
    let rows = conn
        .prepare_cached(member_select!(
            "WHERE tenant_id = ?1 AND (?2 IS NULL OR instr(nickname_fold, ?2) > 0) \
             ORDER BY created_at, open_id LIMIT ?3 OFFSET ?4"
        ))
        .and_then(|mut s| {
            s.query_map(params![tenant.0, keyword, limit, offset], MemberRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .context("list bi members")?;
    let total: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM bi_members \
             WHERE tenant_id = ?1 AND (?2 IS NULL OR instr(nickname_fold, ?2) > 0)",
        )
        .and_then(|mut s| s.query_row(params![tenant.0, keyword], |r| r.get(0)))
        .context("count bi members")?;
    let members = rows
        .into_iter()
        .map(MemberRow::into_member)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((members, total.max(0) as u64))
}

pub(crate) fn update_member(
    conn: &mut Connection,
    member: &BiMember,
    read_at: i64,
    ctx: &ChangeCtx,
) -> Result<bool, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin update bi member")?;
    let Some(stored) = load(&tx, member.tenant, member.open_id.as_str())? else {
        return Ok(false);
    };
    if stored.updated_at != read_at
        || !crate::accounts::missing_groups(&tx, member.tenant, &member.groups)?.is_empty()
    {
        return Err(StoreError::Stale);
    }
    tx.prepare_cached(
        "UPDATE bi_members SET nickname = ?3, nickname_fold = ?4, is_admin = ?5, \
         is_auth_admin = ?6, user_type = ?7, group_ids = ?8, updated_at = ?9 \
         WHERE tenant_id = ?1 AND open_id = ?2",
    )
    .and_then(|mut s| {
        s.execute(params![
            member.tenant.0,
            member.open_id.as_str(),
            member.nickname,
            member.nickname.to_lowercase(),
            member.is_admin,
            member.is_auth_admin,
            member.user_type.code(),
            encode_bi_groups(&member.groups),
            member.updated_at,
        ])
    })
    .context("update bi member")?;
    let before = bi_member_snapshot(&stored);
    let after = bi_member_snapshot(member);
    events::record(
        &mut events::prepare(&tx)?,
        ctx,
        &NewEvent {
            tenant: member.tenant,
            entity: EventEntity::BiMember,
            entity_id: member.open_id.as_str(),
            action: ChangeAction::Updated,
            at: member.updated_at,
            before: Some(&before),
            after: Some(&after),
        },
    )?;
    tx.commit().context("commit update bi member")?;
    Ok(true)
}

pub(crate) fn delete_member(
    conn: &mut Connection,
    tenant: TenantId,
    open_id: &OpenId,
    at: i64,
    ctx: &ChangeCtx,
) -> Result<bool, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin delete bi member")?;
    let Some(stored) = load(&tx, tenant, open_id.as_str())? else {
        return Ok(false);
    };
    tx.execute(
        "DELETE FROM bi_members WHERE tenant_id = ?1 AND open_id = ?2",
        params![tenant.0, open_id.as_str()],
    )
    .context("delete bi member")?;
    tx.execute(
        "UPDATE bi_orgs SET member_count = member_count - 1 WHERE tenant_id = ?1",
        [tenant.0],
    )
    .context("uncount bi member")?;
    let before = bi_member_snapshot(&stored);
    events::record(
        &mut events::prepare(&tx)?,
        ctx,
        &NewEvent {
            tenant,
            entity: EventEntity::BiMember,
            entity_id: open_id.as_str(),
            action: ChangeAction::Deleted,
            at,
            before: Some(&before),
            after: None,
        },
    )?;
    tx.commit().context("commit delete bi member")?;
    Ok(true)
}

/// One statement: a new nonce is inserted, an expired claim is taken over, and a live claim
/// makes the statement change nothing.
pub(crate) fn claim_nonce(
    conn: &Connection,
    access_key_id: &str,
    nonce: &str,
    now: i64,
    expires_at: i64,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO signature_nonces (access_key_id, nonce, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (access_key_id, nonce) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE signature_nonces.expires_at <= ?4",
        )
        .and_then(|mut s| s.execute(params![access_key_id, nonce, expires_at, now]))
        .context("claim signature nonce")?;
    Ok(n == 1)
}

pub(crate) fn purge_nonces(conn: &Connection, now: i64) -> Result<u64, StoreError> {
    let n = conn
        .execute("DELETE FROM signature_nonces WHERE expires_at <= ?1", [now])
        .context("purge signature nonces")?;
    Ok(n as u64)
}
