//! Vendor access keys: the AK/SK pairs with which Alibaba Cloud (Quick BI) and Huawei Cloud
//! (Workspace) SDKs sign every request.
//!
//! Unlike a Feishu app secret, which is only ever compared with a stored hash, a signing
//! secret must be available in clear to recompute each request's HMAC. It is therefore kept
//! *sealed*: encrypted with an AEAD key that the store never sees, through the
//! `SecretSealer` port (implemented in `roster-app`). A stolen database alone reveals no
//! secret.
//!
//! Each access key belongs to an `App` of the same kind (created with it, in one
//! transaction), which carries the name, scopes and contact scope, so that a verified
//! request becomes an ordinary `Caller` and its writes are recorded as that app's.

use crate::app::AppKind;
use crate::error::CoreError;
use crate::ids::{AppId, IdGen, TenantId};

/// Encrypts and decrypts signing secrets at rest. `seal` must use a fresh random nonce per
/// call, so two seals of one secret differ; `open` must authenticate (a flipped bit fails).
pub trait SecretSealer: Send + Sync + 'static {
    /// Encrypts a secret; the output is self-contained (nonce included).
    fn seal(&self, plaintext: &[u8]) -> Vec<u8>;

    /// Decrypts what `seal` produced. A wrong key or damaged data is an error, which the
    /// directory reports as a hidden internal failure (it is never the client's fault).
    fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, CoreError>;
}

/// An access key as stored. The secret is only ever stored sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// The public half: Huawei `AK` (20 upper-case letters and digits) or Alibaba
    /// `AccessKeyId` (`LTAI` and 20 letters and digits). Unique across all tenants.
    pub key_id: String,
    /// The app (same kind) that carries the key's name, scopes and contact scope.
    pub app_id: AppId,
    /// The tenant whose directory the key works on.
    pub tenant: TenantId,
    /// `Alibaba` or `Huawei`.
    pub kind: AppKind,
    /// Huawei only: the project the key may address (`/v2/{project_id}/…`).
    pub project_id: Option<ProjectId>,
    /// The secret, sealed by the `SecretSealer`.
    pub sealed_secret: Vec<u8>,
    /// Creation time, ms.
    pub created_at: i64,
}

/// A key found for verifying a signature: the record, its secret in clear, and the caller
/// a request signed with it acts as.
#[derive(Clone)]
pub struct SigningKey {
    /// The stored key.
    pub key: AccessKey,
    /// The secret in clear (ASCII), the HMAC key of the vendor's signature.
    pub secret: String,
    /// Who a request signed with this key is.
    pub caller: crate::app::Caller,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never printed, not even in debug logs.
        f.debug_struct("SigningKey")
            .field("key_id", &self.key.key_id)
            .field("tenant", &self.key.tenant)
            .finish_non_exhaustive()
    }
}

/// A Huawei Cloud project id: 32 lower-case hex digits, the form Huawei IAM assigns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProjectId(String);

impl ProjectId {
    /// Parses a project id given by an administrator or found in a request path.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        if s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(CoreError::invalid(
                "project_id",
                "must be 32 lowercase hex digits",
            ))
        }
    }

    /// Wraps a value read back from the store.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ProjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `n` characters drawn uniformly from `alphabet`, using the id generator's random bytes
/// (rejection sampling, so no character is more likely than another).
fn random_chars(ids: &dyn IdGen, alphabet: &[u8], n: usize) -> String {
    let len = alphabet.len();
    // Bytes at or above the largest multiple of `len` would bias the draw; they are skipped.
    let limit = 256 - (256 % len);
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let Ok(bytes) = hex::decode(ids.hex(64)) else {
            continue;
        };
        for b in bytes {
            if usize::from(b) < limit && out.len() < n {
                out.push(char::from(alphabet[usize::from(b) % len]));
            }
        }
    }
    out
}

/// A fresh key pair in the vendor's format: Huawei AK 20 upper-case alphanumerics and SK 40
/// alphanumerics (what the console issues and the SDK accepts); Alibaba `LTAI` + 20
/// alphanumerics and a 30-character secret. The secrets carry ≥ 178 random bits.
pub fn generate_pair(ids: &dyn IdGen, kind: AppKind) -> Result<(String, String), CoreError> {
    match kind {
        AppKind::Huawei => Ok((
            random_chars(ids, UPPER_ALNUM, 20),
            random_chars(ids, ALNUM, 40),
        )),
        AppKind::Alibaba => Ok((
            format!("LTAI{}", random_chars(ids, ALNUM, 20)),
            random_chars(ids, ALNUM, 30),
        )),
        AppKind::Feishu => Err(CoreError::invalid(
            "kind",
            "feishu apps use an app secret, not an access key",
        )),
    }
}

/// Whether a presented key id could be a key at all: 1-64 ASCII letters and digits (keys
/// issued here are 20 or 24 characters, but vendors' own ids vary in length, e.g. the SDK
/// test vectors). Anything else is refused without a store lookup.
pub fn key_id_looks_valid(key_id: &str) -> bool {
    (1..=64).contains(&key_id.len()) && key_id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RandomIds;

    #[test]
    fn generated_pairs_have_the_vendor_shapes() {
        let (ak, sk) = generate_pair(&RandomIds, AppKind::Huawei).unwrap();
        assert_eq!(ak.len(), 20);
        assert!(ak.bytes().all(|b| UPPER_ALNUM.contains(&b)), "{ak}");
        assert_eq!(sk.len(), 40);
        assert!(sk.bytes().all(|b| b.is_ascii_alphanumeric()));
        let (id, secret) = generate_pair(&RandomIds, AppKind::Alibaba).unwrap();
        assert!(
            id.starts_with("LTAI") && id.len() == 24 && key_id_looks_valid(&id),
            "{id}"
        );
        assert_eq!(secret.len(), 30);
        assert!(generate_pair(&RandomIds, AppKind::Feishu).is_err());
        assert_ne!(generate_pair(&RandomIds, AppKind::Huawei).unwrap().1, sk);
    }

    #[test]
    fn project_ids_are_32_lowercase_hex() {
        assert!(ProjectId::parse("0123456789abcdef0123456789abcdef").is_ok());
        assert!(ProjectId::parse("0123456789ABCDEF0123456789ABCDEF").is_err());
        assert!(ProjectId::parse("p1").is_err());
    }

    #[test]
    fn junk_key_ids_are_refused_before_any_lookup() {
        assert!(key_id_looks_valid("HWTESTAK0000000000001"));
        assert!(key_id_looks_valid("LTAItestAccessKeyId01"));
        assert!(!key_id_looks_valid(""));
        assert!(!key_id_looks_valid("AK WITH SPACE"));
        assert!(!key_id_looks_valid(&"A".repeat(65)));
    }
}
