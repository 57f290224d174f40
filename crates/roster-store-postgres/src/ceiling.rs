//! The storage ceiling that `roster-bench` compares imports with: the same users written with
//! `COPY … FROM STDIN` (PostgreSQL's fastest load path) into Roster's own schema and indexes,
//! in one transaction. Keys are taken from the table's sequence up front, so the memberships
//! can be copied too without a round trip per row. Nothing else happens (no validation, no
//! licence check, no change events, no task bookkeeping).

use roster_core::{StoreError, TenantId, User};
use sqlx::{Connection, PgConnection};

use crate::errors::Context;
use crate::users::UserArrays;

/// Users encoded into the store's column arrays ahead of time.
pub struct Rows {
    arrays: UserArrays,
    memberships: Vec<Vec<roster_core::Membership>>,
}

/// Encodes the users as the store would.
pub fn encode(users: &[User]) -> Rows {
    let refs: Vec<&User> = users.iter().collect();
    Rows {
        arrays: UserArrays::of(&refs),
        memberships: users
            .iter()
            .map(|u| u.profile.departments.clone())
            .collect(),
    }
}

/// Appends one value in COPY's text format: backslash escapes for the characters that
/// would end a field or a row.
fn field(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn opt(out: &mut String, v: Option<&str>) {
    match v {
        Some(v) => field(out, v),
        None => out.push_str("\\N"),
    }
}

fn flag(out: &mut String, v: bool) {
    out.push(if v { 't' } else { 'f' });
}

/// COPYs the rows into the (already migrated) database at `url`, in one transaction.
pub async fn copy_plain(url: &str, tenant: TenantId, rows: &Rows) -> Result<(), StoreError> {
    use std::fmt::Write as _;
    let mut conn = PgConnection::connect(url)
        .await
        .context("connect for the ceiling")?;
    let mut tx = conn.begin().await.context("begin")?;
    let a = &rows.arrays;
    let n = a.open_id.len();
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT nextval(pg_get_serial_sequence('users', 'id')) FROM generate_series(1, $1)",
    )
    .bind(n as i64)
    .fetch_all(&mut *tx)
    .await
    .context("reserve keys")?;

    let mut users = String::with_capacity(n * 600);
    let mut members = String::with_capacity(n * 40);
    for (i, id) in ids.iter().enumerate() {
        let out = &mut users;
        let _ = write!(out, "{id}\t{}\t", tenant.0);
        for v in [
            &a.open_id[i],
            &a.union_id[i],
            &a.user_id[i],
            &a.user_id_fold[i],
        ] {
            field(out, v);
            out.push('\t');
        }
        for v in [
            &a.email_fold[i],
            &a.mobile[i],
            &a.username_fold[i],
            &a.employee_no[i],
        ] {
            opt(out, v.as_deref());
            out.push('\t');
        }
        field(out, &a.name[i]);
        out.push('\t');
        opt(out, a.leader_open_id[i].as_deref());
        out.push('\t');
        for v in [
            a.is_resigned[i],
            a.is_frozen[i],
            a.is_activated[i],
            a.is_exited[i],
            a.is_unjoin[i],
        ] {
            flag(out, v);
            out.push('\t');
        }
        let _ = write!(out, "{}\t{}\t", a.created_at[i], a.updated_at[i]);
        for v in [a.resigned_at[i], a.logout_at[i]] {
            match v {
                Some(v) => {
                    let _ = write!(out, "{v}");
                }
                None => out.push_str("\\N"),
            }
            out.push('\t');
        }
        field(out, &a.doc[i]);
        out.push('\t');
        field(out, &a.search_text[i]);
        out.push('\n');
        for (pos, m) in rows.memberships[i].iter().enumerate() {
            let _ = writeln!(
                members,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                tenant.0,
                id,
                m.department.0,
                pos,
                m.user_order,
                m.department_order,
                if m.is_primary { 't' } else { 'f' }
            );
        }
    }
    let mut copy = tx
        .copy_in_raw(
            "COPY users (id, tenant_id, open_id, union_id, user_id, user_id_fold, email_fold, \
             mobile, username_fold, employee_no, name, leader_open_id, is_resigned, is_frozen, \
             is_activated, is_exited, is_unjoin, created_at, updated_at, resigned_at, \
             logout_at, doc, search_text) FROM STDIN",
        )
        .await
        .context("copy users")?;
    copy.send(users.as_bytes()).await.context("copy users")?;
    copy.finish().await.context("copy users")?;
    let mut copy = tx
        .copy_in_raw(
            "COPY user_departments (tenant_id, user_id, department_id, position, user_order, \
             department_order, is_primary) FROM STDIN",
        )
        .await
        .context("copy memberships")?;
    copy.send(members.as_bytes())
        .await
        .context("copy memberships")?;
    copy.finish().await.context("copy memberships")?;
    tx.commit().await.context("commit")?;
    Ok(())
}
