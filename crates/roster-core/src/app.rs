//! Applications: the credentials through which programs call Roster, and the scopes and
//! department visibility each one carries.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::department::DeptKey;
use crate::error::CoreError;
use crate::ids::{AppId, TenantId};

/// Which family of front doors an app's credentials are for. Feishu apps exchange an
/// app secret for a bearer token; Alibaba and Huawei apps hold an access key pair
/// (`crate::access_key`) whose secret signs every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// `app_id` + `app_secret`, exchanged for a `tenant_access_token`.
    Feishu,
    /// An Alibaba Cloud `AccessKey` pair (Quick BI): ACS3-HMAC-SHA256 or RPC HMAC-SHA1.
    Alibaba,
    /// A Huawei Cloud AK/SK pair bound to one project (Workspace): SDK-HMAC-SHA256.
    Huawei,
}

impl AppKind {
    /// Stable name for storage and the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            AppKind::Feishu => "feishu",
            AppKind::Alibaba => "alibaba",
            AppKind::Huawei => "huawei",
        }
    }

    /// Inverse of `as_str`.
    pub fn from_str_opt(s: &str) -> Option<Self> {
        match s {
            "feishu" => Some(AppKind::Feishu),
            "alibaba" => Some(AppKind::Alibaba),
            "huawei" => Some(AppKind::Huawei),
            _ => None,
        }
    }

    /// Whether the app authenticates with a signing access key rather than a bearer token.
    pub fn uses_access_key(self) -> bool {
        matches!(self, AppKind::Alibaba | AppKind::Huawei)
    }
}

/// One permission an app may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read users, departments and groups (`contact:read`).
    ContactRead,
    /// Create, change and delete them (`contact:write`, implies read).
    ContactWrite,
}

impl Scope {
    /// The scope's name in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ContactRead => "contact:read",
            Scope::ContactWrite => "contact:write",
        }
    }

    /// Parses a scope name.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        match s.trim() {
            "contact:read" => Ok(Scope::ContactRead),
            "contact:write" => Ok(Scope::ContactWrite),
            other => Err(CoreError::invalid(
                "scopes",
                format!("unknown scope {other:?} (known: contact:read, contact:write)"),
            )),
        }
    }
}

/// The set of scopes an app holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Builds a set, dropping repeats.
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        let mut v: Vec<Scope> = Vec::new();
        for s in scopes {
            if !v.contains(&s) {
                v.push(s);
            }
        }
        Self(v)
    }

    /// Parses a comma-separated list such as `contact:read,contact:write`.
    pub fn parse_list(s: &str) -> Result<Self, CoreError> {
        let scopes = s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Scope::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(scopes))
    }

    /// Whether the set allows `scope`; write implies read.
    pub fn allows(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
            || (scope == Scope::ContactRead && self.0.contains(&Scope::ContactWrite))
    }

    /// The scopes, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// The comma-separated form (the inverse of `parse_list`).
    pub fn to_list(&self) -> String {
        self.0
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Which part of the department tree an app may see and change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactScope {
    /// The whole directory.
    All,
    /// Only these departments and their subtrees.
    Departments(Vec<DeptKey>),
}

/// An application as stored. The secret itself is never stored: only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// `cli_` + 16 hex digits.
    pub app_id: AppId,
    /// The tenant whose directory the app works on.
    pub tenant: TenantId,
    /// A name for people.
    pub name: String,
    /// What kind of credential this is.
    pub kind: AppKind,
    /// Hex SHA-256 of the secret. The secret is 256 random bits, so a fast hash is as safe
    /// as a slow one here (nothing to brute-force), and the token call stays cheap.
    pub secret_hash: String,
    /// Permissions.
    pub scopes: Scopes,
    /// Department visibility.
    pub contact_scope: ContactScope,
    /// Creation time, ms.
    pub created_at: i64,
}

/// Hex SHA-256, the one-way form under which secrets and tokens are stored.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(secret_digest(secret))
}

/// The SHA-256 digest of a secret, as bytes: what [`hash_secret`] spells in hex, for keys
/// that never leave the process (the token cache), without the text.
pub(crate) fn secret_digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares a presented secret with a stored hash without leaking timing.
pub fn secret_matches(presented: &str, stored_hash: &str) -> bool {
    let presented = hash_secret(presented);
    presented.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// A bearer token as stored: only its hash, the app that owns it and its lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Hex SHA-256 of the token text.
    pub token_hash: String,
    /// The app the token was issued to.
    pub app_id: AppId,
    /// The app's tenant.
    pub tenant: TenantId,
    /// Issue time, ms.
    pub issued_at: i64,
    /// Expiry time, ms.
    pub expires_at: i64,
}

/// Who is calling: the result of authenticating a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The tenant whose directory is addressed.
    pub tenant: TenantId,
    /// The calling app.
    pub app_id: AppId,
    /// What it may do.
    pub scopes: Scopes,
    /// Where it may do it.
    pub contact_scope: ContactScope,
}

impl Caller {
    /// Fails with `Forbidden` unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), CoreError> {
        if self.scopes.allows(scope) {
            Ok(())
        } else {
            Err(CoreError::Forbidden(
                format!("the app lacks the {} scope", scope.as_str()).into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_scope_implies_read() {
        let s = Scopes::new([Scope::ContactWrite]);
        assert!(s.allows(Scope::ContactRead));
        let r = Scopes::new([Scope::ContactRead]);
        assert!(!r.allows(Scope::ContactWrite));
    }

    #[test]
    fn scope_list_round_trips_and_rejects_unknown_names() {
        let s = Scopes::parse_list("contact:read, contact:write").unwrap();
        assert_eq!(s.to_list(), "contact:read,contact:write");
        assert!(Scopes::parse_list("contact:everything").is_err());
    }

    #[test]
    fn secret_check_accepts_only_the_same_secret() {
        let h = hash_secret("s3cret");
        assert!(secret_matches("s3cret", &h));
        assert!(!secret_matches("s3cret ", &h));
    }
}
