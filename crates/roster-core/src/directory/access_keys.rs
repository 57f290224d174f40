//! Vendor access keys (see `crate::access_key`): creating them, finding one to verify a
//! signature, and Huawei's Keystone-style tokens issued against them.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tracing::instrument;

use super::{Directory, IssuedToken};
use crate::access_key::{generate_pair, key_id_looks_valid, AccessKey, ProjectId, SigningKey};
use crate::app::{hash_secret, App, AppKind, Caller, ContactScope, Scopes, TokenRecord};
use crate::error::{CoreError, StoreError};
use crate::ids::TenantId;

/// Lifetime of a Huawei token, seconds: Keystone's (and Huawei IAM's) 24 hours.
pub const ACCESS_KEY_TOKEN_TTL_S: i64 = 86_400;

/// A freshly created access key with its secret, which is shown once and kept only sealed.
#[derive(Clone)]
pub struct CreatedAccessKey {
    /// The app that carries the key's name and scopes.
    pub app: App,
    /// The key as stored.
    pub key: AccessKey,
    /// The secret in clear.
    pub secret: String,
}

impl std::fmt::Debug for CreatedAccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedAccessKey")
            .field("key_id", &self.key.key_id)
            .finish_non_exhaustive()
    }
}

fn no_sealer() -> CoreError {
    CoreError::Storage(StoreError::Backend(
        "no secret sealer is configured for access keys".into(),
    ))
}

impl Directory {
    /// Whether this directory can seal access-key secrets (it was given a key).
    pub fn can_seal(&self) -> bool {
        self.inner.sealer.is_some()
    }

    pub(super) fn sealer(&self) -> Result<&Arc<dyn crate::access_key::SecretSealer>, CoreError> {
        self.inner.sealer.as_ref().ok_or_else(no_sealer)
    }

    /// Creates an access-key app of `kind` (Alibaba or Huawei) with one key pair, and
    /// returns the secret once. A Huawei key is bound to a project: the one given, or a
    /// fresh one. A project belongs to one tenant only, so that a path's project id can
    /// never name another tenant's directory; a tenant may own several projects (which then
    /// share the tenant's one user namespace).
    #[instrument(skip_all, fields(tenant = %tenant, kind = kind.as_str()))]
    pub async fn create_access_key(
        &self,
        tenant: TenantId,
        kind: AppKind,
        name: &str,
        project_id: Option<&str>,
        scopes: Scopes,
    ) -> Result<CreatedAccessKey, CoreError> {
        self.get_tenant(tenant).await?;
        let name = crate::values::bounded_text("name", name.trim(), 100, true)?;
        let project = match (kind, project_id) {
            (AppKind::Huawei, Some(p)) => Some(ProjectId::parse(p)?),
            (AppKind::Huawei, None) => Some(ProjectId::from_trusted(self.inner.ids.hex(16))),
            (AppKind::Alibaba, None) => None,
            (AppKind::Alibaba, Some(_)) => {
                return Err(CoreError::invalid(
                    "project_id",
                    "only Huawei keys are bound to a project",
                ))
            }
            (AppKind::Feishu, _) => {
                return Err(CoreError::invalid(
                    "kind",
                    "feishu apps use an app secret, not an access key",
                ))
            }
        };
        if let Some(p) = &project {
            let taken_elsewhere = self
                .inner
                .store
                .list_access_keys(None)
                .await?
                .iter()
                .any(|k| k.project_id.as_ref() == Some(p) && k.tenant != tenant);
            if taken_elsewhere {
                return Err(CoreError::invalid(
                    "project_id",
                    "the project belongs to another tenant",
                ));
            }
        }
        let (key_id, secret) = generate_pair(self.inner.ids.as_ref(), kind)?;
        let sealed_secret = self.sealer()?.seal(secret.as_bytes());
        let now = self.inner.clock.now_ms();
        let app = App {
            app_id: self.inner.ids.app_id(),
            tenant,
            name,
            kind,
            // The app itself has no usable secret (the token call refuses non-Feishu apps);
            // a hash of discarded random bits keeps the column's meaning intact.
            secret_hash: hash_secret(&self.inner.ids.secret()),
            scopes,
            contact_scope: ContactScope::All,
            created_at: now,
        };
        let key = AccessKey {
            key_id,
            app_id: app.app_id.clone(),
            tenant,
            kind,
            project_id: project,
            sealed_secret,
            created_at: now,
        };
        self.inner.store.insert_access_key(&app, &key).await?;
        Ok(CreatedAccessKey { app, key, secret })
    }

    /// Access keys of a tenant, or of all tenants, oldest first.
    pub async fn list_access_keys(
        &self,
        tenant: Option<TenantId>,
    ) -> Result<Vec<AccessKey>, CoreError> {
        Ok(self.inner.store.list_access_keys(tenant).await?)
    }

    /// The key a request claims to be signed with, with its secret in clear and the caller
    /// it acts as; `None` when no key of `kind` has this id (or its app is gone), which a
    /// dialect reports as an unknown key. Verifiers compute the HMAC themselves: the wire
    /// format of a signature is the dialect's business.
    pub async fn signing_key(
        &self,
        key_id: &str,
        kind: AppKind,
    ) -> Result<Option<SigningKey>, CoreError> {
        if !key_id_looks_valid(key_id) {
            return Ok(None);
        }
        let Some(key) = self.inner.store.get_access_key(key_id).await? else {
            return Ok(None);
        };
        if key.kind != kind {
            return Ok(None);
        }
        let Some(caller) = self.caller_of_key(&key).await? else {
            return Ok(None);
        };
        let plain = self.sealer()?.open(&key.sealed_secret)?;
        let secret = String::from_utf8(plain).map_err(|_| {
            CoreError::Storage(StoreError::Backend("a sealed secret is not text".into()))
        })?;
        Ok(Some(SigningKey {
            key,
            secret,
            caller,
        }))
    }

    async fn caller_of_key(&self, key: &AccessKey) -> Result<Option<Caller>, CoreError> {
        Ok(self
            .inner
            .store
            .get_app(&key.app_id)
            .await?
            .filter(|app| app.tenant == key.tenant && app.kind == key.kind)
            .map(|app| Caller {
                tenant: app.tenant,
                app_id: app.app_id,
                scopes: app.scopes,
                contact_scope: app.contact_scope,
            }))
    }

    /// Huawei's Keystone-style token call (`POST /v3/auth/tokens`): exchanges a Huawei
    /// key's id and secret, scoped to the key's project, for a token valid 24 hours. Only
    /// the token's hash is stored (in the same table as Feishu tokens, under the key's app;
    /// each side refuses the other's tokens by the app's kind).
    #[instrument(skip_all)]
    pub async fn issue_access_key_token(
        &self,
        key_id: &str,
        secret: &str,
        project: &str,
    ) -> Result<IssuedToken, CoreError> {
        let denied = || CoreError::Unauthenticated("the access key or its secret is wrong".into());
        let key = self
            .signing_key(key_id, AppKind::Huawei)
            .await?
            .ok_or_else(denied)?;
        if !bool::from(key.secret.as_bytes().ct_eq(secret.as_bytes())) {
            return Err(denied());
        }
        if key.key.project_id.as_ref().map(ProjectId::as_str) != Some(project) {
            return Err(CoreError::Forbidden(
                "the access key is not bound to this project".into(),
            ));
        }
        let token = format!("hw-{}", self.inner.ids.hex(32));
        let now = self.inner.clock.now_ms();
        self.inner
            .store
            .insert_token(&TokenRecord {
                token_hash: hash_secret(&token),
                app_id: key.key.app_id.clone(),
                tenant: key.key.tenant,
                issued_at: now,
                expires_at: now + ACCESS_KEY_TOKEN_TTL_S * 1000,
            })
            .await?;
        Ok(IssuedToken {
            token,
            expire_s: ACCESS_KEY_TOKEN_TTL_S,
        })
    }

    /// Resolves a token from `issue_access_key_token` to the key it was issued for and the
    /// caller; `None` for an unknown, expired or foreign token.
    pub async fn authenticate_access_key_token(
        &self,
        token: &str,
        kind: AppKind,
    ) -> Result<Option<(AccessKey, Caller)>, CoreError> {
        let Some(record) = self.inner.store.find_token(&hash_secret(token)).await? else {
            return Ok(None);
        };
        if record.expires_at <= self.inner.clock.now_ms() {
            return Ok(None);
        }
        let keys = self
            .inner
            .store
            .list_access_keys(Some(record.tenant))
            .await?;
        let Some(key) = keys
            .into_iter()
            .find(|k| k.app_id == record.app_id && k.kind == kind)
        else {
            return Ok(None);
        };
        let Some(caller) = self.caller_of_key(&key).await? else {
            return Ok(None);
        };
        Ok(Some((key, caller)))
    }
}
