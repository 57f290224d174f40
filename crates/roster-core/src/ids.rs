//! Identifiers. Each is a newtype that can only be built by parsing or generating, so a value
//! of the type is always well-formed.

use std::fmt;

use rand::{Rng, RngCore};

use crate::error::CoreError;

/// A tenant's internal key. Tenants are few and never addressed by clients over the wire
/// except through their apps, so a plain integer is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(pub i64);

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

macro_rules! prefixed_hex_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $len:literal, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The fixed prefix of every value.
            pub const PREFIX: &'static str = $prefix;

            /// Parses a value received from outside.
            pub fn parse(s: &str) -> Result<Self, CoreError> {
                match s.strip_prefix($prefix) {
                    Some(rest) if rest.len() == $len && is_lower_hex(rest) => Ok(Self(s.to_owned())),
                    _ => Err(CoreError::invalid(
                        $field,
                        concat!("must be \"", $prefix, "\" followed by ", $len, " lowercase hex digits"),
                    )),
                }
            }

            /// Wraps a value read back from the store, which only ever holds parsed values.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_hex_id!(
    /// A user's `open_id`: `ou_` and 32 hex digits, generated, never changes.
    OpenId, "ou_", 32, "open_id"
);
prefixed_hex_id!(
    /// A user's `union_id`: `on_` and 32 hex digits, generated, never changes.
    UnionId, "on_", 32, "union_id"
);
prefixed_hex_id!(
    /// A department's `open_department_id`: `od-` and 32 hex digits, generated, never changes.
    OpenDepartmentId, "od-", 32, "open_department_id"
);
prefixed_hex_id!(
    /// An application id: `cli_` and 16 hex digits.
    AppId, "cli_", 16, "app_id"
);

/// Checks the shape shared by custom user ids and custom department ids:
/// 1-64 characters of letters, digits and `_-@.`, the first a letter or digit.
fn check_custom_id(s: &str, field: &'static str) -> Result<(), CoreError> {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return Err(CoreError::invalid(field, "must not be empty"));
    };
    if s.len() > 64 {
        return Err(CoreError::invalid(field, "must be at most 64 characters"));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(CoreError::invalid(
            field,
            "must start with a letter or digit",
        ));
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '@' | '.')) {
        return Err(CoreError::invalid(
            field,
            "may hold only letters, digits and _-@.",
        ));
    }
    Ok(())
}

/// A user's custom `user_id`: chosen by the caller or generated, unique case-insensitively
/// among the tenant's active users, and changeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Parses a caller-chosen user id.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        check_custom_id(s, "user_id")?;
        Ok(Self(s.to_owned()))
    }

    /// Wraps a value read back from the store.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form under which uniqueness is checked.
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A department's custom `department_id`: same alphabet as a user id, but never `0` (the
/// root) or `1` (reserved too: the department create doc forbids both), and never starting
/// with `od-` (which would be confused with an open id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DepartmentId(String);

impl DepartmentId {
    /// Parses a caller-chosen department id.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        check_custom_id(s, "department_id")?;
        if s == "0" || s == "1" || s.starts_with("od-") {
            return Err(CoreError::invalid(
                "department_id",
                "must not be 0 or 1 and must not start with od-",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// Wraps a value read back from the store.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DepartmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Makes new identifiers. A trait so that tests can make them deterministic.
pub trait IdGen: Send + Sync + 'static {
    /// `n` random bytes, hex-encoded.
    fn hex(&self, bytes: usize) -> String;

    /// A fresh `open_id`.
    fn open_id(&self) -> OpenId {
        OpenId(format!("ou_{}", self.hex(16)))
    }
    /// A fresh `union_id`.
    fn union_id(&self) -> UnionId {
        UnionId(format!("on_{}", self.hex(16)))
    }
    /// A fresh generated `user_id`. Feishu makes 8 hex digits, but at a million users 32
    /// bits collide by the hundred (birthday bound), so Roster uses 64 bits.
    fn user_id(&self) -> UserId {
        UserId(self.hex(8))
    }
    /// A fresh `open_department_id`.
    fn open_department_id(&self) -> OpenDepartmentId {
        OpenDepartmentId(format!("od-{}", self.hex(16)))
    }
    /// A fresh generated `department_id`.
    fn department_id(&self) -> DepartmentId {
        DepartmentId(self.hex(4))
    }
    /// A fresh application id.
    fn app_id(&self) -> AppId {
        AppId(format!("cli_{}", self.hex(8)))
    }
    /// A secret of 256 random bits, as 32 characters of an unambiguous alphabet.
    fn secret(&self) -> String;
}

/// Identifiers from the operating system's CSPRNG (through `rand::thread_rng`, which is
/// seeded from it and reseeds periodically).
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomIds;

impl RandomIds {
    /// 32 hex digits ordered by time, as `UUIDv7` orders its bits: 48 bits of milliseconds
    /// since the Unix epoch, then 80 random bits. Open and union ids are the keys of two unique
    /// indexes on every store, and a bulk import writes hundreds of thousands of them: with
    /// wholly random ids each insert lands on a random leaf page, so every commit rewrites
    /// pages all over both indexes (measured at a million users, most of the pages an import
    /// chunk wrote), while time-ordered ids append to the right edge of the index. Eighty
    /// random bits keep ids unguessable; what they reveal, the creation time, is in the user
    /// record anyway.
    fn time_ordered() -> String {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut tail = [0u8; 10];
        rand::thread_rng().fill_bytes(&mut tail);
        format!("{:012x}{}", millis & 0xFFFF_FFFF_FFFF, hex::encode(tail))
    }
}

impl IdGen for RandomIds {
    fn hex(&self, bytes: usize) -> String {
        let mut buf = vec![0u8; bytes];
        rand::thread_rng().fill_bytes(&mut buf);
        hex::encode(buf)
    }

    fn open_id(&self) -> OpenId {
        OpenId(format!("ou_{}", Self::time_ordered()))
    }

    fn union_id(&self) -> UnionId {
        UnionId(format!("on_{}", Self::time_ordered()))
    }

    fn secret(&self) -> String {
        // 62 symbols, 43 characters: a little over 256 bits.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::thread_rng();
        (0..43)
            .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let ids = RandomIds;
        assert!(OpenId::parse(ids.open_id().as_str()).is_ok());
        assert!(UnionId::parse(ids.union_id().as_str()).is_ok());
        assert!(OpenDepartmentId::parse(ids.open_department_id().as_str()).is_ok());
        assert!(AppId::parse(ids.app_id().as_str()).is_ok());
        assert!(UserId::parse(ids.user_id().as_str()).is_ok());
    }

    #[test]
    fn generated_open_ids_are_ordered_by_time_and_distinct() {
        let a = RandomIds.open_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = RandomIds.open_id();
        assert!(a.as_str() < b.as_str(), "{a} then {b}");
        assert_eq!(a.as_str().len(), 35);
        let same_ms: std::collections::HashSet<String> = (0..1000)
            .map(|_| RandomIds.union_id().to_string())
            .collect();
        assert_eq!(same_ms.len(), 1000);
    }

    #[test]
    fn open_id_with_wrong_prefix_or_length_is_rejected() {
        assert!(OpenId::parse("on_0123456789abcdef0123456789abcdef").is_err());
        assert!(OpenId::parse("ou_0123").is_err());
        assert!(OpenId::parse("ou_0123456789ABCDEF0123456789ABCDEF").is_err());
    }

    #[test]
    fn custom_user_id_rules() {
        assert!(UserId::parse("id_zhangsan").is_ok());
        assert!(UserId::parse("a.b-c@d").is_ok());
        assert!(UserId::parse("_custom_2").is_err());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"a".repeat(65)).is_err());
        assert!(UserId::parse("has space").is_err());
    }

    #[test]
    fn department_id_may_not_be_root_or_look_like_an_open_id() {
        assert!(DepartmentId::parse("D096").is_ok());
        assert!(DepartmentId::parse("0").is_err());
        assert!(DepartmentId::parse("od-abc").is_err());
    }

    #[test]
    fn secrets_are_long_and_distinct() {
        let a = RandomIds.secret();
        assert_eq!(a.len(), 43);
        assert_ne!(a, RandomIds.secret());
    }
}
