//! Tenants, apps, tokens and JSAPI tickets.

use roster_core::{
    App, AppId, AppKind, NewTenant, Scopes, StoreError, Tenant, TenantId, TokenRecord,
};
use roster_store_common::{decode_contact_scope, encode_contact_scope};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::departments;
use crate::errors::{corrupt, SqlContext};

/// A `tenants` row as read, before its integers are checked.
struct TenantRow {
    id: i64,
    name: String,
    tenant_key: String,
    max_active_users: Option<i64>,
    active_users: i64,
    created_at: i64,
}

const TENANT_COLUMNS: &str = "id, name, tenant_key, max_active_users, active_users, created_at";

impl TenantRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            name: r.get(1)?,
            tenant_key: r.get(2)?,
            max_active_users: r.get(3)?,
            active_users: r.get(4)?,
            created_at: r.get(5)?,
        })
    }

    fn into_tenant(self) -> Result<Tenant, StoreError> {
        Ok(Tenant {
            id: TenantId(self.id),
            name: self.name,
            tenant_key: self.tenant_key,
            max_active_users: self
                .max_active_users
                .map(u32::try_from)
                .transpose()
                .map_err(|_| corrupt("tenants.max_active_users"))?,
            active_users: u64::try_from(self.active_users)
                .map_err(|_| corrupt("tenants.active_users"))?,
            created_at: self.created_at,
        })
    }
}

/// Creates the tenant and its root department in one transaction, so that no tenant ever
/// exists without a root.
pub(crate) fn create_tenant(
    conn: &mut Connection,
    tenant: &NewTenant,
    tenant_key: &str,
    now: i64,
) -> Result<Tenant, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin create tenant")?;
    let id = tx
        .prepare_cached(
            "INSERT INTO tenants (name, tenant_key, max_active_users, active_users, created_at) \
             VALUES (?1, ?2, ?3, 0, ?4)",
        )
        .and_then(|mut s| {
            s.insert(params![
                tenant.name,
                tenant_key,
                tenant.max_active_users,
                now
            ])
        })
        .context("insert tenant")?;
    let id = TenantId(id);
    departments::insert_root(&tx, id, &tenant.name, now)?;
    tx.commit().context("commit create tenant")?;
    Ok(Tenant {
        id,
        name: tenant.name.clone(),
        tenant_key: tenant_key.to_owned(),
        max_active_users: tenant.max_active_users,
        active_users: 0,
        created_at: now,
    })
}

pub(crate) fn get_tenant(conn: &Connection, id: TenantId) -> Result<Option<Tenant>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?1"
    ))
    .and_then(|mut s| s.query_row([id.0], TenantRow::read).optional())
    .context("load tenant row")?
    .map(TenantRow::into_tenant)
    .transpose()
}

pub(crate) fn list_tenants(conn: &Connection) -> Result<Vec<Tenant>, StoreError> {
    let rows = conn
        .prepare_cached(&format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id"))
        .and_then(|mut s| {
            s.query_map([], TenantRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .context("list tenant rows")?;
    rows.into_iter().map(TenantRow::into_tenant).collect()
}

/// An `apps` row as read, before its text columns are parsed.
struct AppRow {
    app_id: String,
    tenant_id: i64,
    name: String,
    kind: String,
    secret_hash: String,
    scopes: String,
    contact_scope: String,
    created_at: i64,
}

const APP_COLUMNS: &str =
    "app_id, tenant_id, name, kind, secret_hash, scopes, contact_scope, created_at";

impl AppRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            app_id: r.get(0)?,
            tenant_id: r.get(1)?,
            name: r.get(2)?,
            kind: r.get(3)?,
            secret_hash: r.get(4)?,
            scopes: r.get(5)?,
            contact_scope: r.get(6)?,
            created_at: r.get(7)?,
        })
    }

    fn into_app(self) -> Result<App, StoreError> {
        Ok(App {
            app_id: AppId::from_trusted(self.app_id),
            tenant: TenantId(self.tenant_id),
            name: self.name,
            kind: AppKind::from_str_opt(&self.kind).ok_or_else(|| corrupt("apps.kind"))?,
            secret_hash: self.secret_hash,
            scopes: Scopes::parse_list(&self.scopes).map_err(|_| corrupt("apps.scopes"))?,
            contact_scope: decode_contact_scope(&self.contact_scope)?,
            created_at: self.created_at,
        })
    }
}

pub(crate) fn insert_app(conn: &Connection, app: &App) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO apps (app_id, tenant_id, name, kind, secret_hash, scopes, contact_scope, \
         created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut s| {
        s.execute(params![
            app.app_id.as_str(),
            app.tenant.0,
            app.name,
            app.kind.as_str(),
            app.secret_hash,
            app.scopes.to_list(),
            encode_contact_scope(&app.contact_scope),
            app.created_at,
        ])
    })
    .context("insert app")?;
    Ok(())
}

pub(crate) fn get_app(conn: &Connection, app_id: &AppId) -> Result<Option<App>, StoreError> {
    conn.prepare_cached(&format!("SELECT {APP_COLUMNS} FROM apps WHERE app_id = ?1"))
        .and_then(|mut s| s.query_row([app_id.as_str()], AppRow::read).optional())
        .context("load app row")?
        .map(AppRow::into_app)
        .transpose()
}

pub(crate) fn list_apps(
    conn: &Connection,
    tenant: Option<TenantId>,
) -> Result<Vec<App>, StoreError> {
    // `?1 IS NULL` lets one cached statement serve both the per-tenant and the global list.
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE ?1 IS NULL OR tenant_id = ?1 \
             ORDER BY created_at, app_id"
        ))
        .and_then(|mut s| {
            s.query_map([tenant.map(|t| t.0)], AppRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .context("list app rows")?;
    rows.into_iter().map(AppRow::into_app).collect()
}

/// Replaces the secret and revokes every token of the app in one transaction, so that no
/// token issued under the old secret outlives the rotation.
pub(crate) fn set_app_secret(
    conn: &mut Connection,
    app_id: &AppId,
    secret_hash: &str,
) -> Result<bool, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("begin set app secret")?;
    let changed = tx
        .prepare_cached("UPDATE apps SET secret_hash = ?2 WHERE app_id = ?1")
        .and_then(|mut s| s.execute(params![app_id.as_str(), secret_hash]))
        .context("update app secret")?;
    if changed == 0 {
        return Ok(false);
    }
    tx.prepare_cached("DELETE FROM tokens WHERE app_id = ?1")
        .and_then(|mut s| s.execute([app_id.as_str()]))
        .context("revoke app tokens")?;
    tx.commit().context("commit set app secret")?;
    Ok(true)
}

pub(crate) fn insert_token(conn: &Connection, token: &TokenRecord) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO tokens (token_hash, app_id, tenant_id, issued_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| {
        s.execute(params![
            token.token_hash,
            token.app_id.as_str(),
            token.tenant.0,
            token.issued_at,
            token.expires_at,
        ])
    })
    .context("insert token")?;
    Ok(())
}

pub(crate) fn find_token(
    conn: &Connection,
    token_hash: &str,
) -> Result<Option<TokenRecord>, StoreError> {
    conn.prepare_cached(
        "SELECT token_hash, app_id, tenant_id, issued_at, expires_at FROM tokens \
         WHERE token_hash = ?1",
    )
    .and_then(|mut s| {
        s.query_row([token_hash], |r| {
            Ok(TokenRecord {
                token_hash: r.get(0)?,
                app_id: AppId::from_trusted(r.get(1)?),
                tenant: TenantId(r.get(2)?),
                issued_at: r.get(3)?,
                expires_at: r.get(4)?,
            })
        })
        .optional()
    })
    .context("load token row")
}

pub(crate) fn purge_expired_tokens(conn: &Connection, now: i64) -> Result<u64, StoreError> {
    let n = conn
        .prepare_cached("DELETE FROM tokens WHERE expires_at < ?1")
        .and_then(|mut s| s.execute([now]))
        .context("delete expired tokens")?;
    Ok(n as u64)
}

/// The app's JSAPI ticket and its expiry, if one was stored.
pub(crate) fn jsapi_ticket(
    conn: &Connection,
    app_id: &AppId,
) -> Result<Option<(String, i64)>, StoreError> {
    conn.prepare_cached("SELECT ticket, expires_at FROM jsapi_tickets WHERE app_id = ?1")
        .and_then(|mut s| {
            s.query_row([app_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .context("load JSAPI ticket")
}

/// Stores the app's JSAPI ticket unless the stored one expires at or after
/// `replace_before`; returns the ticket stored now.
pub(crate) fn put_jsapi_ticket(
    conn: &Connection,
    app_id: &AppId,
    ticket: &str,
    expires_at: i64,
    replace_before: i64,
) -> Result<(String, i64), StoreError> {
    conn.prepare_cached(
        "INSERT INTO jsapi_tickets (app_id, ticket, expires_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (app_id) DO UPDATE SET ticket = excluded.ticket, \
         expires_at = excluded.expires_at WHERE jsapi_tickets.expires_at < ?4",
    )
    .and_then(|mut s| s.execute(params![app_id.as_str(), ticket, expires_at, replace_before]))
    .context("store JSAPI ticket")?;
    jsapi_ticket(conn, app_id)?
        .ok_or_else(|| StoreError::Backend("the stored JSAPI ticket vanished".into()))
}
