//! The BI organisation (Quick BI members, migration 0009) and the nonces of signed requests.

use roster_core::values::UserType;
use roster_core::{
    BiMember, Change, ChangeAction, Entity, OpenId, StoreError, TenantId, UniqueKey,
};
use roster_store_common::{bi_member_snapshot, decode_bi_groups, encode_bi_groups};
use sqlx::{PgConnection, PgPool};

use crate::errors::{corrupt, Context};
use crate::events::{write_events, NewEvent};

#[derive(sqlx::FromRow)]
struct MemberRow {
    tenant_id: i64,
    open_id: String,
    nickname: String,
    is_admin: bool,
    is_auth_admin: bool,
    user_type: i16,
    group_ids: String,
    created_at: i64,
    updated_at: i64,
}

impl MemberRow {
    fn into_member(self) -> Result<BiMember, StoreError> {
        Ok(BiMember {
            tenant: TenantId(self.tenant_id),
            open_id: OpenId::from_trusted(self.open_id),
            nickname: self.nickname,
            is_admin: self.is_admin,
            is_auth_admin: self.is_auth_admin,
            user_type: UserType::from_code(i64::from(self.user_type))
                .map_err(|_| corrupt("bi_members.user_type"))?,
            groups: decode_bi_groups(&self.group_ids)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The columns of `MemberRow`, as a macro so that queries stay `&'static str`.
macro_rules! member_columns {
    () => {
        "tenant_id, open_id, nickname, is_admin, is_auth_admin, user_type, group_ids, \
         created_at, updated_at"
    };
}

fn code(t: UserType) -> i16 {
    // The codes are 1 to 3.
    i16::try_from(t.code()).unwrap_or(0)
}

pub(crate) async fn insert_members(
    pool: &PgPool,
    tenant: TenantId,
    members: &[BiMember],
    max_members: u64,
    change: &Change,
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let mut tx = pool.begin().await.context("begin insert bi members")?;
    // A group deleted since the core checked it: `Stale`, and the core reads again.
    if !crate::accounts::missing_groups(&mut tx, tenant, members.iter().flat_map(|m| &m.groups))
        .await?
        .is_empty()
    {
        return Err(StoreError::Stale);
    }
    // Rows are inserted in open-id order: two batches naming the same users in different
    // orders then wait on each other's rows in one direction only, never in a cycle.
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| members[a].open_id.cmp(&members[b].open_id));
    let mut written_flags = vec![false; members.len()];
    for &i in &order {
        let m = &members[i];
        // ON CONFLICT DO NOTHING waits for a racing insert of the same member to commit and
        // then reports no row, so the primary key decides who added the user.
        let inserted = sqlx::query(
            "INSERT INTO bi_members (tenant_id, open_id, nickname, nickname_fold, is_admin, \
             is_auth_admin, user_type, group_ids, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.0)
        .bind(m.open_id.as_str())
        .bind(&m.nickname)
        .bind(m.nickname.to_lowercase())
        .bind(m.is_admin)
        .bind(m.is_auth_admin)
        .bind(code(m.user_type))
        .bind(encode_bi_groups(&m.groups))
        .bind(m.created_at)
        .bind(m.updated_at)
        .execute(&mut *tx)
        .await
        .context("insert bi member")?
        .rows_affected();
        written_flags[i] = inserted == 1;
    }
    let mut results = Vec::with_capacity(members.len());
    let mut events = Vec::new();
    for (m, written) in members.iter().zip(&written_flags) {
        if *written {
            events.push(NewEvent {
                tenant,
                entity: Entity::BiMember,
                entity_id: m.open_id.as_str().to_owned(),
                action: ChangeAction::Created,
                at: m.created_at,
                before: None,
                after: Some(bi_member_snapshot(m)),
            });
            results.push(Ok(()));
        } else {
            results.push(Err(StoreError::Duplicate(UniqueKey::OpenId)));
        }
    }
    let written = events.len() as i64;
    if written > 0 {
        sqlx::query(
            "INSERT INTO bi_orgs (tenant_id, member_count) VALUES ($1, 0) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.0)
        .execute(&mut *tx)
        .await
        .context("create bi org")?;
        // The row lock serialises racing batches, and PostgreSQL re-evaluates the condition
        // on the row as the earlier batch left it, so together they never pass the cap.
        let cap = i64::try_from(max_members).unwrap_or(i64::MAX);
        let counted = sqlx::query(
            "UPDATE bi_orgs SET member_count = member_count + $2 \
             WHERE tenant_id = $1 AND member_count + $2 <= $3",
        )
        .bind(tenant.0)
        .bind(written)
        .bind(cap)
        .execute(&mut *tx)
        .await
        .context("count bi members")?
        .rows_affected();
        if counted == 0 {
            // Dropping the transaction rolls the members back.
            return Err(StoreError::LicenceExceeded);
        }
        write_events(
            &mut tx,
            &change.actor.to_string(),
            change.note.as_deref(),
            events,
        )
        .await?;
    }
    tx.commit().await.context("commit insert bi members")?;
    Ok(results)
}

async fn load(
    conn: &mut PgConnection,
    tenant: TenantId,
    open_id: &str,
    lock: bool,
) -> Result<Option<BiMember>, StoreError> {
    let sql = if lock {
        concat!(
            "SELECT ",
            member_columns!(),
            " FROM bi_members WHERE tenant_id = $1 AND open_id = $2 FOR UPDATE"
        )
    } else {
        concat!(
            "SELECT ",
            member_columns!(),
            " FROM bi_members WHERE tenant_id = $1 AND open_id = $2"
        )
    };
    sqlx::query_as::<_, MemberRow>(sql)
        .bind(tenant.0)
        .bind(open_id)
        .fetch_optional(conn)
        .await
        .context("load bi member")?
        .map(MemberRow::into_member)
        .transpose()
}

pub(crate) async fn get_member(
    pool: &PgPool,
    tenant: TenantId,
    open_id: &OpenId,
) -> Result<Option<BiMember>, StoreError> {
    let mut conn = pool.acquire().await.context("acquire connection")?;
    load(&mut conn, tenant, open_id.as_str(), false).await
}

pub(crate) async fn list_members(
    pool: &PgPool,
    tenant: TenantId,
    keyword: Option<&str>,
    offset: u64,
    limit: usize,
) -> Result<(Vec<BiMember>, u64), StoreError> {
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // `strpos` rather than LIKE, so that `%` and `_` in the keyword are plain characters.
    let rows = sqlx::query_as::<_, MemberRow>(concat!(
        "SELECT ",
        member_columns!(),
        " FROM bi_members WHERE tenant_id = $1 \
         AND ($2::text IS NULL OR strpos(nickname_fold, $2) > 0) \
         ORDER BY created_at, open_id LIMIT $3 OFFSET $4"
    ))
    .bind(tenant.0)
    .bind(keyword)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
    .context("list bi members")?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bi_members WHERE tenant_id = $1 \
         AND ($2::text IS NULL OR strpos(nickname_fold, $2) > 0)",
    )
    .bind(tenant.0)
    .bind(keyword)
    .fetch_one(pool)
    .await
    .context("count bi members")?;
    let members = rows
        .into_iter()
        .map(MemberRow::into_member)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((members, total.max(0) as u64))
}

pub(crate) async fn update_member(
    pool: &PgPool,
    member: &BiMember,
    read_at: i64,
    change: &Change,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.context("begin update bi member")?;
    // Locked (FOR UPDATE) until the commit, so that the check below holds for the write.
    let Some(stored) = load(&mut tx, member.tenant, member.open_id.as_str(), true).await? else {
        return Ok(false);
    };
    if stored.updated_at != read_at
        || !crate::accounts::missing_groups(&mut tx, member.tenant, &member.groups)
            .await?
            .is_empty()
    {
        return Err(StoreError::Stale);
    }
    sqlx::query(
        "UPDATE bi_members SET nickname = $3, nickname_fold = $4, is_admin = $5, \
         is_auth_admin = $6, user_type = $7, group_ids = $8, updated_at = $9 \
         WHERE tenant_id = $1 AND open_id = $2",
    )
    .bind(member.tenant.0)
    .bind(member.open_id.as_str())
    .bind(&member.nickname)
    .bind(member.nickname.to_lowercase())
    .bind(member.is_admin)
    .bind(member.is_auth_admin)
    .bind(code(member.user_type))
    .bind(encode_bi_groups(&member.groups))
    .bind(member.updated_at)
    .execute(&mut *tx)
    .await
    .context("update bi member")?;
    write_events(
        &mut tx,
        &change.actor.to_string(),
        change.note.as_deref(),
        vec![NewEvent {
            tenant: member.tenant,
            entity: Entity::BiMember,
            entity_id: member.open_id.as_str().to_owned(),
            action: ChangeAction::Updated,
            at: member.updated_at,
            before: Some(bi_member_snapshot(&stored)),
            after: Some(bi_member_snapshot(member)),
        }],
    )
    .await?;
    tx.commit().await.context("commit update bi member")?;
    Ok(true)
}

pub(crate) async fn delete_member(
    pool: &PgPool,
    tenant: TenantId,
    open_id: &OpenId,
    at: i64,
    change: &Change,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.context("begin delete bi member")?;
    let Some(stored) = load(&mut tx, tenant, open_id.as_str(), true).await? else {
        return Ok(false);
    };
    sqlx::query("DELETE FROM bi_members WHERE tenant_id = $1 AND open_id = $2")
        .bind(tenant.0)
        .bind(open_id.as_str())
        .execute(&mut *tx)
        .await
        .context("delete bi member")?;
    sqlx::query("UPDATE bi_orgs SET member_count = member_count - 1 WHERE tenant_id = $1")
        .bind(tenant.0)
        .execute(&mut *tx)
        .await
        .context("uncount bi member")?;
    write_events(
        &mut tx,
        &change.actor.to_string(),
        change.note.as_deref(),
        vec![NewEvent {
            tenant,
            entity: Entity::BiMember,
            entity_id: open_id.as_str().to_owned(),
            action: ChangeAction::Deleted,
            at,
            before: Some(bi_member_snapshot(&stored)),
            after: None,
        }],
    )
    .await?;
    tx.commit().await.context("commit delete bi member")?;
    Ok(true)
}

/// One statement: a new nonce is inserted, an expired claim is taken over, and a live claim
/// (including one a racing request committed a moment ago) makes it return no row.
pub(crate) async fn claim_nonce(
    pool: &PgPool,
    access_key_id: &str,
    nonce: &str,
    now: i64,
    expires_at: i64,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "INSERT INTO signature_nonces (access_key_id, nonce, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (access_key_id, nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at \
         WHERE signature_nonces.expires_at <= $4",
    )
    .bind(access_key_id)
    .bind(nonce)
    .bind(expires_at)
    .bind(now)
    .execute(pool)
    .await
    .context("claim signature nonce")?
    .rows_affected();
    Ok(n == 1)
}

pub(crate) async fn purge_nonces(pool: &PgPool, now: i64) -> Result<u64, StoreError> {
    Ok(
        sqlx::query("DELETE FROM signature_nonces WHERE expires_at <= $1")
            .bind(now)
            .execute(pool)
            .await
            .context("purge signature nonces")?
            .rows_affected(),
    )
}
