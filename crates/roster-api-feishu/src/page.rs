//! Page sizes and page tokens (spec §2 "Pagination").
//!
//! A token names the last item the previous page returned, by its internal key, so a page
//! resumes after that item and never repeats one, even when items were added meanwhile.
//! Tokens are opaque to clients: `p` followed by the key in hex.

use http::StatusCode;
use roster_core::search::{SearchCursor, SearchTier};
use roster_core::UserKey;

use crate::codes;
use crate::error::FeishuError;
use crate::extract::FeishuQuery;

/// Reads `page_size` (default and maximum per endpoint; out of range is 40011).
pub(crate) fn page_size(q: &FeishuQuery, default: usize, max: usize) -> Result<usize, FeishuError> {
    match q.int("page_size") {
        Ok(None) => Ok(default),
        Ok(Some(n)) if n >= 1 && (n as usize) <= max => Ok(n as usize),
        _ => Err(FeishuError::new(
            StatusCode::BAD_REQUEST,
            codes::PAGE_SIZE_INVALID,
        )),
    }
}

/// Reads `page_token`: the key of the last item already returned. A token this server did
/// not issue is 40012.
pub(crate) fn page_after(q: &FeishuQuery) -> Result<Option<i64>, FeishuError> {
    let Some(token) = q.str("page_token") else {
        return Ok(None);
    };
    token
        .strip_prefix('p')
        .and_then(|hex| i64::from_str_radix(hex, 16).ok())
        .filter(|k| *k >= 0)
        .map(Some)
        .ok_or_else(|| FeishuError::new(StatusCode::BAD_REQUEST, codes::PAGE_TOKEN_INVALID))
}

/// The token that resumes after the item with `key`.
pub(crate) fn token_after(key: i64) -> String {
    format!("p{key:x}")
}

/// The longest matching term a search token may carry, in bytes (normalised queries are at
/// most 64 characters, and terms of real users rarely exceed a few hundred bytes).
const MAX_SEARCH_TERM_BYTES: usize = 1024;

/// Reads the `page_token` of a user search: `s`, the tier (one digit), the user's key in
/// hex, `_`, and the matching term's UTF-8 bytes in hex. It names the place of the last user
/// already returned (see `roster_core::search`), so the next page resumes right after it
/// even when users are added meanwhile. Anything else is 40012, never an internal error.
pub(crate) fn search_after(q: &FeishuQuery) -> Result<Option<SearchCursor>, FeishuError> {
    let Some(token) = q.str("page_token") else {
        return Ok(None);
    };
    decode_search_token(token)
        .map(Some)
        .ok_or_else(|| FeishuError::new(StatusCode::BAD_REQUEST, codes::PAGE_TOKEN_INVALID))
}

fn decode_search_token(token: &str) -> Option<SearchCursor> {
    let rest = token.strip_prefix('s')?;
    let tier = SearchTier::from_index(rest.as_bytes().first()?.checked_sub(b'0')?)?;
    let (key, term) = rest.get(1..)?.split_once('_')?;
    if key.is_empty() || key.len() > 16 || term.len() > 2 * MAX_SEARCH_TERM_BYTES {
        return None;
    }
    let key = i64::from_str_radix(key, 16).ok()?;
    let term = String::from_utf8(hex::decode(term).ok()?).ok()?;
    SearchCursor::new(tier, term, UserKey(key))
}

/// The search token that resumes after `place`.
pub(crate) fn search_token(place: &SearchCursor) -> String {
    format!(
        "s{}{:x}_{}",
        place.tier.index(),
        place.key.0,
        hex::encode(place.term.as_bytes())
    )
}

/// Cuts one page out of an ordered list: the items after the one with key `after` (from
/// the start when it is absent or gone), at most `size` of them.
pub(crate) fn slice<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> i64,
    after: Option<i64>,
    size: usize,
) -> (Vec<T>, Option<String>) {
    let start = match after {
        None => 0,
        Some(k) => items.iter().position(|i| key(i) == k).map_or(0, |p| p + 1),
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(size).collect();
    let more = start + page.len() < total;
    let token = if more {
        page.last().map(|i| token_after(key(i)))
    } else {
        None
    };
    (page, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_everything_once() {
        let items: Vec<i64> = (1..=25).collect();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (page, token) = slice(items.clone(), |i| *i, after, 10);
            seen.extend(page);
            match token {
                Some(t) => after = Some(i64::from_str_radix(&t[1..], 16).unwrap()),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn search_tokens_round_trip_and_reject_forgeries() {
        for place in [
            SearchCursor::new(SearchTier::Whole, "zhangsan".into(), UserKey(0x1f)),
            SearchCursor::new(SearchTier::Suffix, "\u{e000}三".into(), UserKey(7)),
            SearchCursor::new(SearchTier::Substring, String::new(), UserKey(123_456)),
        ] {
            let place = place.unwrap();
            assert_eq!(decode_search_token(&search_token(&place)), Some(place));
        }
        for bad in [
            "",
            "s",
            "s3",
            "s01f",
            "s0_7a",
            "s0zz_7a",
            "s01f_7",
            "s01f_zz",
            "s01f_",
            "s21f_7a",
            "s11f_7a",
            "s0-1_7a",
            "p1f",
            "s0fffffffffffffffff_7a",
            "s01f_ff",
        ] {
            assert_eq!(decode_search_token(bad), None, "{bad}");
        }
    }
}
