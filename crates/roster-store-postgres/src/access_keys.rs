//! Vendor access keys (migration 0008): the key row and its app, written together.

use roster_core::{AccessKey, App, AppId, AppKind, ProjectId, StoreError, TenantId};
use roster_store_common::encode_contact_scope;
use sqlx::PgPool;

use crate::errors::{corrupt, Context};

macro_rules! key_columns {
    () => {
        "key_id, app_id, tenant_id, kind, project_id, sealed_secret, created_at"
    };
}

#[derive(sqlx::FromRow)]
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
pub(crate) async fn insert_access_key(
    pool: &PgPool,
    app: &App,
    key: &AccessKey,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.context("begin insert access key")?;
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
    .execute(&mut *tx)
    .await
    .context("insert access key app")?;
    sqlx::query(concat!(
        "INSERT INTO access_keys (",
        key_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(&key.key_id)
    .bind(key.app_id.as_str())
    .bind(key.tenant.0)
    .bind(key.kind.as_str())
    .bind(key.project_id.as_ref().map(ProjectId::as_str))
    .bind(&key.sealed_secret)
    .bind(key.created_at)
    .execute(&mut *tx)
    .await
    .context("insert access key")?;
    tx.commit().await.context("commit insert access key")?;
    Ok(())
}

/// Replaces the app's key secret and revokes its tokens in one transaction.
pub(crate) async fn set_access_key_secret(
    pool: &PgPool,
    app_id: &AppId,
    sealed_secret: &[u8],
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.context("begin set access key secret")?;
    let updated = sqlx::query("UPDATE access_keys SET sealed_secret = $2 WHERE app_id = $1")
        .bind(app_id.as_str())
        .bind(sealed_secret)
        .execute(&mut *tx)
        .await
        .context("update access key secret")?
        .rows_affected();
    if updated == 0 {
        // Nothing changed; dropping the transaction rolls it back.
        return Ok(false);
    }
    sqlx::query("DELETE FROM tokens WHERE app_id = $1")
        .bind(app_id.as_str())
        .execute(&mut *tx)
        .await
        .context("revoke access key tokens")?;
    tx.commit().await.context("commit set access key secret")?;
    Ok(true)
}

pub(crate) async fn get_access_key(
    pool: &PgPool,
    key_id: &str,
) -> Result<Option<AccessKey>, StoreError> {
    sqlx::query_as::<_, KeyRow>(concat!(
        "SELECT ",
        key_columns!(),
        " FROM access_keys WHERE key_id = $1"
    ))
    .bind(key_id)
    .fetch_optional(pool)
    .await
    .context("load access key")?
    .map(KeyRow::into_key)
    .transpose()
}

pub(crate) async fn list_access_keys(
    pool: &PgPool,
    tenant: Option<TenantId>,
) -> Result<Vec<AccessKey>, StoreError> {
    sqlx::query_as::<_, KeyRow>(concat!(
        "SELECT ",
        key_columns!(),
        " FROM access_keys WHERE ($1::bigint IS NULL OR tenant_id = $1) \
         ORDER BY created_at, key_id"
    ))
    .bind(tenant.map(|t| t.0))
    .fetch_all(pool)
    .await
    .context("list access keys")?
    .into_iter()
    .map(KeyRow::into_key)
    .collect()
}
