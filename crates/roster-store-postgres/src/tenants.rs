//! Tenants, and the apps and tokens that belong to them.

use roster_core::department::ROOT_ID;
use roster_core::{
    App, AppId, AppKind, DepartmentFields, NewTenant, Scopes, StoreError, Tenant, TenantId,
    TokenRecord,
};
use roster_store_common::{decode_contact_scope, encode_contact_scope, encode_department};
use sqlx::PgPool;

use crate::errors::{corrupt, Context};

#[derive(sqlx::FromRow)]
struct TenantRow {
    id: i64,
    name: String,
    tenant_key: String,
    max_active_users: Option<i64>,
    active_users: i64,
    created_at: i64,
}

impl TenantRow {
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

/// The columns of `TenantRow`, as a macro so that queries stay `&'static str` (sqlx only
/// accepts SQL it can see is not built from data).
macro_rules! tenant_columns {
    () => {
        "id, name, tenant_key, max_active_users, active_users, created_at"
    };
}

pub(crate) async fn create_tenant(
    pool: &PgPool,
    tenant: &NewTenant,
    tenant_key: &str,
    now: i64,
) -> Result<Tenant, StoreError> {
    let mut tx = pool.begin().await.context("begin tenant creation")?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO tenants (name, tenant_key, max_active_users, active_users, created_at) \
         VALUES ($1, $2, $3, 0, $4) RETURNING id",
    )
    .bind(&tenant.name)
    .bind(tenant_key)
    .bind(tenant.max_active_users.map(i64::from))
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .context("insert tenant")?;

    // The root department carries the tenant's name and the fixed id "0" in both id
    // columns, so that clients can address it before they know any generated id.
    let root_fields = DepartmentFields {
        name: tenant.name.clone(),
        ..DepartmentFields::default()
    };
    sqlx::query(
        "INSERT INTO departments (tenant_id, open_department_id, department_id, \
         department_id_fold, parent_id, name, sort_order, doc, is_deleted, created_at, updated_at) \
         VALUES ($1, $2, $2, $2, NULL, $3, 0, $4, false, $5, $5)",
    )
    .bind(id)
    .bind(ROOT_ID)
    .bind(&tenant.name)
    .bind(encode_department(&root_fields))
    .bind(now)
    .execute(&mut *tx)
    .await
    .context("insert root department")?;
    tx.commit().await.context("commit tenant creation")?;

    Ok(Tenant {
        id: TenantId(id),
        name: tenant.name.clone(),
        tenant_key: tenant_key.to_owned(),
        max_active_users: tenant.max_active_users,
        active_users: 0,
        created_at: now,
    })
}

pub(crate) async fn get_tenant(pool: &PgPool, id: TenantId) -> Result<Option<Tenant>, StoreError> {
    sqlx::query_as::<_, TenantRow>(concat!(
        "SELECT ",
        tenant_columns!(),
        " FROM tenants WHERE id = $1"
    ))
    .bind(id.0)
    .fetch_optional(pool)
    .await
    .context("load tenant")?
    .map(TenantRow::into_tenant)
    .transpose()
}

pub(crate) async fn list_tenants(pool: &PgPool) -> Result<Vec<Tenant>, StoreError> {
    sqlx::query_as::<_, TenantRow>(concat!(
        "SELECT ",
        tenant_columns!(),
        " FROM tenants ORDER BY created_at, id"
    ))
    .fetch_all(pool)
    .await
    .context("list tenants")?
    .into_iter()
    .map(TenantRow::into_tenant)
    .collect()
}

// ----- apps -----

#[derive(sqlx::FromRow)]
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

impl AppRow {
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

/// The columns of `AppRow`.
macro_rules! app_columns {
    () => {
        "app_id, tenant_id, name, kind, secret_hash, scopes, contact_scope, created_at"
    };
}

pub(crate) async fn insert_app(pool: &PgPool, app: &App) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO apps (app_id, tenant_id, name, kind, secret_hash, scopes, contact_scope, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(app.app_id.as_str())
    .bind(app.tenant.0)
    .bind(&app.name)
    .bind(app.kind.as_str())
    .bind(&app.secret_hash)
    .bind(app.scopes.to_list())
    .bind(encode_contact_scope(&app.contact_scope))
    .bind(app.created_at)
    .execute(pool)
    .await
    .context("insert app")?;
    Ok(())
}

pub(crate) async fn get_app(pool: &PgPool, app_id: &AppId) -> Result<Option<App>, StoreError> {
    sqlx::query_as::<_, AppRow>(concat!(
        "SELECT ",
        app_columns!(),
        " FROM apps WHERE app_id = $1"
    ))
    .bind(app_id.as_str())
    .fetch_optional(pool)
    .await
    .context("load app")?
    .map(AppRow::into_app)
    .transpose()
}

pub(crate) async fn list_apps(
    pool: &PgPool,
    tenant: Option<TenantId>,
) -> Result<Vec<App>, StoreError> {
    sqlx::query_as::<_, AppRow>(concat!(
        "SELECT ",
        app_columns!(),
        " FROM apps WHERE ($1::bigint IS NULL OR tenant_id = $1) ORDER BY created_at, app_id"
    ))
    .bind(tenant.map(|t| t.0))
    .fetch_all(pool)
    .await
    .context("list apps")?
    .into_iter()
    .map(AppRow::into_app)
    .collect()
}

pub(crate) async fn set_app_secret(
    pool: &PgPool,
    app_id: &AppId,
    secret_hash: &str,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.context("begin secret rotation")?;
    let updated = sqlx::query("UPDATE apps SET secret_hash = $2 WHERE app_id = $1")
        .bind(app_id.as_str())
        .bind(secret_hash)
        .execute(&mut *tx)
        .await
        .context("update app secret")?
        .rows_affected();
    if updated == 0 {
        // Nothing was changed, so there is nothing to commit; dropping the transaction
        // rolls it back.
        return Ok(false);
    }
    // Tokens issued under the old secret must stop working in the same instant as the
    // secret changes, hence the same transaction.
    sqlx::query("DELETE FROM tokens WHERE app_id = $1")
        .bind(app_id.as_str())
        .execute(&mut *tx)
        .await
        .context("revoke app tokens")?;
    tx.commit().await.context("commit secret rotation")?;
    Ok(true)
}

// ----- tokens -----

#[derive(sqlx::FromRow)]
struct TokenRow {
    token_hash: String,
    app_id: String,
    tenant_id: i64,
    issued_at: i64,
    expires_at: i64,
}

impl From<TokenRow> for TokenRecord {
    fn from(r: TokenRow) -> Self {
        TokenRecord {
            token_hash: r.token_hash,
            app_id: AppId::from_trusted(r.app_id),
            tenant: TenantId(r.tenant_id),
            issued_at: r.issued_at,
            expires_at: r.expires_at,
        }
    }
}

pub(crate) async fn insert_token(pool: &PgPool, token: &TokenRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tokens (token_hash, app_id, tenant_id, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&token.token_hash)
    .bind(token.app_id.as_str())
    .bind(token.tenant.0)
    .bind(token.issued_at)
    .bind(token.expires_at)
    .execute(pool)
    .await
    .context("insert token")?;
    Ok(())
}

pub(crate) async fn find_token(
    pool: &PgPool,
    token_hash: &str,
) -> Result<Option<TokenRecord>, StoreError> {
    let row = sqlx::query_as::<_, TokenRow>(
        "SELECT token_hash, app_id, tenant_id, issued_at, expires_at FROM tokens \
         WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await
    .context("load token")?;
    Ok(row.map(TokenRecord::from))
}

pub(crate) async fn purge_expired_tokens(pool: &PgPool, now: i64) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM tokens WHERE expires_at < $1")
        .bind(now)
        .execute(pool)
        .await
        .context("purge expired tokens")?;
    Ok(done.rows_affected())
}

// ----- JSAPI tickets -----

pub(crate) async fn jsapi_ticket(
    pool: &PgPool,
    app_id: &AppId,
) -> Result<Option<(String, i64)>, StoreError> {
    sqlx::query_as("SELECT ticket, expires_at FROM jsapi_tickets WHERE app_id = $1")
        .bind(app_id.as_str())
        .fetch_optional(pool)
        .await
        .context("load JSAPI ticket")
}

/// Stores the app's JSAPI ticket unless the stored one expires at or after
/// `replace_before`; returns the ticket stored now. The upsert waits for a racing one on
/// the same row, so the read after it sees whichever was stored.
pub(crate) async fn put_jsapi_ticket(
    pool: &PgPool,
    app_id: &AppId,
    ticket: &str,
    expires_at: i64,
    replace_before: i64,
) -> Result<(String, i64), StoreError> {
    sqlx::query(
        "INSERT INTO jsapi_tickets (app_id, ticket, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (app_id) DO UPDATE SET ticket = EXCLUDED.ticket, \
         expires_at = EXCLUDED.expires_at WHERE jsapi_tickets.expires_at < $4",
    )
    .bind(app_id.as_str())
    .bind(ticket)
    .bind(expires_at)
    .bind(replace_before)
    .execute(pool)
    .await
    .context("store JSAPI ticket")?;
    jsapi_ticket(pool, app_id)
        .await?
        .ok_or_else(|| StoreError::Backend("the stored JSAPI ticket vanished".into()))
}
