//! The stored form of a user's search terms: `users.search_text`.
//!
//! It is a JSON array of the terms `roster_core::search::terms` derives from the profile,
//! for example `["张三","zhangsan","zs","13800138000","\u{e000}三"]` (the suffix mark is
//! written as the character itself). Both stores expand it inside the database (SQLite
//! `json_each`, PostgreSQL `jsonb_array_elements_text`) in the triggers that keep the
//! `user_search_terms` table and the trigram index in step with every write of a user row,
//! so no write path has to maintain the index itself: writing `search_text` is enough.
//!
//! Terms never contain `"`, `\` or control characters (normalisation removes them), so the
//! array needs no escapes, and a query (normalised the same way) can never match across
//! the `","` between two terms in the trigram index.

use roster_core::search::{self, SearchQuery, SearchTier};
use roster_core::user::UserProfile;
use roster_core::StoreError;

/// The `users.search_text` of a profile.
pub fn search_text(p: &UserProfile) -> String {
    serde_json::to_string(&search::terms(p)).unwrap_or_else(|_| "[]".to_owned())
}

/// The terms of a stored `search_text`. The empty string (a row written before migration
/// 0006 and not yet backfilled) has none.
pub fn decode_search_text(s: &str) -> Result<Vec<String>, StoreError> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(s).map_err(|e| StoreError::Backend(format!("bad search_text: {e}")))
}

/// Where a stored row ranks for `q` (see `roster_core::search::position`); a row that does
/// not decode does not match.
pub fn place_of(search_text: &str, q: &SearchQuery) -> Option<(SearchTier, String)> {
    let terms = decode_search_text(search_text).ok()?;
    search::position(&terms, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_is_a_json_array_of_the_terms() {
        let p = UserProfile {
            name: "张三".to_owned(),
            ..UserProfile::default()
        };
        let s = search_text(&p);
        assert_eq!(s, "[\"张三\",\"zhangsan\",\"zs\",\"\u{e000}三\"]");
        assert_eq!(decode_search_text(&s).unwrap(), search::terms(&p));
        assert!(decode_search_text("").unwrap().is_empty());
        assert!(decode_search_text("not json").is_err());
    }
}
