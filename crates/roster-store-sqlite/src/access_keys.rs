//! Vendor access keys (migration 0008): the key row and its app, written together.

use roster_core::{AccessKey, App, AppId, AppKind, ProjectId, StoreError, TenantId};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::errors::{corrupt, SqlContext};
use crate::tenants;

const KEY_COLUMNS: &str = "key_id, app_id, tenant_id, kind, project_id, sealed_secret, created_at";

/// An `access_keys` row as read, before its text columns are parsed.
struct KeyRow {
    key_id: String,
    app_id: String,
    tenant_id: i64,
    kind: String,
    project_id: Option<String>,
    sealed_secret: Vec<u8>,
    created_at: i64,
}

impl KeyRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            key_id: r.get(0)?,
            app_id: r.get(1)?,
            tenant_id: r.get(2)?,
            kind: r.get(3)?,
            project_id: r.get(4)?,
            sealed_secret: r.get(5)?,
            created_at: r.get(6)?,
        })
    }

    fn into_key(self) -> Result<AccessKey, StoreError> {
        Ok(AccessKey {
            key_id: self.key_id,
            app_id: AppId::from_trusted(self.app_id),
            tenant: TenantId(self.tenant_id),
            kind: AppKind::from_str_opt(&self.kind).ok_or_else(|| corrupt("access_keys.kind"))?,
            project_id: self.project_id.map(ProjectId::from_trusted),
            sealed_secret: self.sealed_secret,
            created_at: self.created_at,
        })
    }
}

/// Inserts the app and its key in one transaction, so that neither exists without the other.
pub(crate) fn insert_access_key(
    conn: &mut Connection,
    app: &App,
    key: &AccessKey,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin insert access key")?;
    tenants::insert_app(&tx, app)?;
    tx.prepare_cached(&format!(
        "INSERT INTO access_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))
    .and_then(|mut s| {
        s.execute(params![
            key.key_id,
            key.app_id.as_str(),
            key.tenant.0,
            key.kind.as_str(),
            key.project_id.as_ref().map(ProjectId::as_str),
            key.sealed_secret,
            key.created_at,
        ])
    })
    .context("insert access key")?;
    tx.commit().context("commit insert access key")?;
    Ok(())
}

/// Replaces the app's key secret and revokes its tokens in one transaction.
pub(crate) fn set_access_key_secret(
    conn: &mut Connection,
    app_id: &AppId,
    sealed_secret: &[u8],
) -> Result<bool, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin set access key secret")?;
    let changed = tx
        .prepare_cached("UPDATE access_keys SET sealed_secret = ?2 WHERE app_id = ?1")
        .and_then(|mut s| s.execute(params![app_id.as_str(), sealed_secret]))
        .context("update access key secret")?;
    if changed == 0 {
        return Ok(false);
    }
    tx.prepare_cached("DELETE FROM tokens WHERE app_id = ?1")
        .and_then(|mut s| s.execute([app_id.as_str()]))
        .context("revoke access key tokens")?;
    tx.commit().context("commit set access key secret")?;
    Ok(true)
}

pub(crate) fn get_access_key(
    conn: &Connection,
    key_id: &str,
) -> Result<Option<AccessKey>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {KEY_COLUMNS} FROM access_keys WHERE key_id = ?1"
    ))
    .and_then(|mut s| s.query_row([key_id], KeyRow::read).optional())
    .context("load access key row")?
    .map(KeyRow::into_key)
    .transpose()
}

pub(crate) fn list_access_keys(
    conn: &Connection,
    tenant: Option<TenantId>,
) -> Result<Vec<AccessKey>, StoreError> {
    // `?1 IS NULL` lets one cached statement serve both the per-tenant and the global list.
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM access_keys WHERE ?1 IS NULL OR tenant_id = ?1 \
             ORDER BY created_at, key_id"
        ))
        .and_then(|mut s| {
            s.query_map([tenant.map(|t| t.0)], KeyRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .context("list access key rows")?;
    rows.into_iter().map(KeyRow::into_key).collect()
}
