//! Passwords that administrators set for users (Huawei Workspace `ADMIN_ACTIVATE`): the
//! policy they must meet and their storage as argon2id hashes.
//!
//! argon2id is deliberately slow (tens of milliseconds and 19 MiB per hash), so hashing runs
//! on tokio's blocking pool, never on the async workers, and a batch hashes in parallel on at
//! most as many threads as there are cores: more would only queue on the CPUs while holding
//! memory.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::error::{CoreError, StoreError};

/// Shortest password accepted.
pub const MIN_LEN: usize = 8;
/// Longest password accepted (Huawei Workspace: 20).
pub const MAX_LEN: usize = 20;

/// Checks the password policy: 8-20 characters of printable ASCII, at least three of the
/// four kinds (upper case, lower case, digit, other), and neither the login name nor its
/// reverse inside it (case-insensitively). These are Huawei Workspace's documented rules.
pub fn check_policy(password: &str, username: &str) -> Result<(), CoreError> {
    let bad = |reason: &'static str| CoreError::invalid("password", reason);
    let len = password.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&len) {
        return Err(bad("must be 8 to 20 characters"));
    }
    if !password.chars().all(|c| c.is_ascii_graphic()) {
        return Err(bad(
            "may hold only printable ASCII characters without spaces",
        ));
    }
    let kinds = [
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ];
    if kinds.iter().filter(|k| **k).count() < 3 {
        return Err(bad(
            "must mix at least three of: upper case, lower case, digits, special characters",
        ));
    }
    let lower = password.to_ascii_lowercase();
    let name = username.to_ascii_lowercase();
    let reversed: String = name.chars().rev().collect();
    if !name.is_empty() && (lower.contains(&name) || lower.contains(&reversed)) {
        return Err(bad("must not contain the user name or its reverse"));
    }
    Ok(())
}

/// One argon2id hash in PHC format (`$argon2id$v=19$m=19456,t=2,p=1$…`), with a random salt.
/// Blocking: call through `hash_all`.
pub fn hash_blocking(password: &str) -> Result<String, CoreError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CoreError::Storage(StoreError::Backend(format!("hash a password: {e}"))))
}

/// Whether `password` matches a PHC hash made by `hash_blocking`. Blocking.
pub fn verify_blocking(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// The process's hashing permits: one per core, shared by every request, so that concurrent
/// batches queue for the cores instead of each taking all of them (each argon2id hash holds
/// 19 MiB while it runs).
fn hashing_permits() -> Arc<tokio::sync::Semaphore> {
    static PERMITS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    Arc::clone(PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Arc::new(tokio::sync::Semaphore::new(cores))
    }))
}

/// Hashes every password on the blocking pool, at most one per core at a time in the whole
/// process, and returns the hashes in order.
pub async fn hash_all(passwords: Vec<String>) -> Result<Vec<String>, CoreError> {
    let permits = hashing_permits();
    let mut jobs = Vec::with_capacity(passwords.len());
    for password in passwords {
        let permits = Arc::clone(&permits);
        jobs.push(tokio::spawn(async move {
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = permits.acquire_owned().await.map_err(|e| {
                CoreError::Storage(StoreError::Backend(format!("hash a password: {e}")))
            })?;
            tokio::task::spawn_blocking(move || hash_blocking(&password))
                .await
                .map_err(|e| {
                    CoreError::Storage(StoreError::Backend(format!("hash a password: {e}")))
                })?
        }));
    }
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        out.push(job.await.map_err(|e| {
            CoreError::Storage(StoreError::Backend(format!("hash a password: {e}")))
        })??);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_accepts_a_mixed_password_and_names_what_is_wrong() {
        assert!(check_policy("Passw0rd!x", "bob02").is_ok());
        assert!(check_policy("Sh0rt!", "bob").is_err());
        assert!(check_policy("alllowercase1", "bob").is_err());
        assert!(check_policy("Bob02Pass!1", "bob02").is_err());
        assert!(
            check_policy("20boB!Xyzw", "bob02").is_err(),
            "reversed name"
        );
        assert!(check_policy("Pass w0rd!", "bob").is_err());
        assert!(
            check_policy("Aa1!Aa1!Aa1!Aa1!Aa1!X", "bob").is_err(),
            "21 chars"
        );
    }

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let hashes = hash_all(vec!["Passw0rd!x".into(), "Passw0rd!x".into()])
            .await
            .unwrap();
        assert!(hashes[0].starts_with("$argon2id$"));
        assert_ne!(hashes[0], hashes[1], "each hash has its own salt");
        assert!(verify_blocking("Passw0rd!x", &hashes[0]));
        assert!(!verify_blocking("Passw0rd!y", &hashes[0]));
    }
}
