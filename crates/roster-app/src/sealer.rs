//! The `SecretSealer` for vendor signing secrets: XChaCha20-Poly1305 with a 32-byte key from
//! the `secret_key` setting, or from `<data_dir>/secret.key` (generated once, mode 0600).
//!
//! `XChaCha`'s 192-bit nonce is drawn at random for every seal, so nonces never need to be
//! counted or coordinated between nodes. A sealed value is `version byte || nonce || ciphertext
//! and tag`; the version byte leaves room for key rotation later.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use roster_core::{CoreError, SecretSealer, StoreError};

/// Format version of a sealed value.
const VERSION: u8 = 1;
/// `XChaCha20` nonce length.
const NONCE_LEN: usize = 24;
/// File name of the generated key under the data directory.
pub const KEY_FILE: &str = "secret.key";

/// Seals with one fixed key.
pub struct ChaChaSealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for ChaChaSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is never printed.
        f.debug_struct("ChaChaSealer").finish_non_exhaustive()
    }
}

impl ChaChaSealer {
    /// A sealer over a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Decodes a base64 key (standard alphabet, padding optional) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .context("decode secret_key as base64")?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("secret_key must be 32 bytes, got {}", bytes.len()))?;
        Ok(Self::new(&key))
    }

    /// The configured key, or the one in `<data_dir>/secret.key`, created there (base64, mode
    /// 0600) on first use. Several processes starting at once on one data directory agree on
    /// one key: the file is created exclusively and a loser reads the winner's file.
    pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        if let Some(text) = configured {
            return Self::from_base64(text);
        }
        let path = data_dir.join(KEY_FILE);
        if !path.exists() {
            crate::create_private_dir(data_dir)
                .with_context(|| format!("create the data directory {}", data_dir.display()))?;
            let key: [u8; 32] = rand::random();
            let text = base64::engine::general_purpose::STANDARD.encode(key);
            match create_private(&path, text.as_bytes()) {
                Ok(()) => return Ok(Self::new(&key)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("create {}", path.display()));
                }
            }
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("read the secret key file {}", path.display()))?;
        Self::from_base64(&text).with_context(|| format!("load {}", path.display()))
    }
}

impl ChaChaSealer {
    /// The configured key, or the one in `<data_dir>/secret.key` if that file exists; `None`
    /// when there is neither. For commands that only read or write directory data (import,
    /// export) and must not leave a new key behind.
    pub fn load_existing(
        configured: Option<&str>,
        data_dir: &Path,
    ) -> anyhow::Result<Option<Self>> {
        if configured.is_some() || data_dir.join(KEY_FILE).exists() {
            Self::load_or_create(configured, data_dir).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Creates a file that must not exist yet, readable by the owner only.
fn create_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

impl SecretSealer for ChaChaSealer {
    fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, plaintext)
            .expect("XChaCha20-Poly1305 encryption cannot fail for inputs below 256 GiB");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, CoreError> {
        let fail = |why: &str| {
            CoreError::Storage(StoreError::Backend(format!("open a sealed secret: {why}")))
        };
        let Some((&version, rest)) = sealed.split_first() else {
            return Err(fail("empty value"));
        };
        if version != VERSION || rest.len() < NONCE_LEN {
            return Err(fail("unknown format"));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| fail("wrong secret_key or damaged data"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_and_differ_each_time() {
        let s = ChaChaSealer::new(&[7; 32]);
        let a = s.seal(b"hwTestSecretKey");
        let b = s.seal(b"hwTestSecretKey");
        assert_ne!(a, b, "a fresh nonce per seal");
        assert_eq!(s.open(&a).unwrap(), b"hwTestSecretKey");
        assert!(!a.windows(15).any(|w| w == b"hwTestSecretKey"));
    }

    #[test]
    fn tampering_or_another_key_fails_to_open() {
        let s = ChaChaSealer::new(&[7; 32]);
        let mut a = s.seal(b"secret");
        assert!(ChaChaSealer::new(&[8; 32]).open(&a).is_err());
        let last = a.len() - 1;
        a[last] ^= 1;
        assert!(s.open(&a).is_err());
        assert!(s.open(&[]).is_err());
        assert!(s.open(&[9, 1, 2]).is_err());
    }

    #[test]
    fn key_file_is_created_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = ChaChaSealer::load_or_create(None, dir.path()).unwrap();
        let sealed = first.seal(b"x");
        let again = ChaChaSealer::load_or_create(None, dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn configured_key_must_be_32_bytes_of_base64() {
        let key = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        assert!(ChaChaSealer::from_base64(&key).is_ok());
        assert!(ChaChaSealer::from_base64("c2hvcnQ=").is_err());
        assert!(ChaChaSealer::from_base64("not base64 !").is_err());
    }
}
