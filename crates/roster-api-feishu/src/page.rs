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

/// Where a page of a list computed whole (a department's children, its parents) resumes:
/// the last item returned, by key, and its position then. The position is the fallback for
/// when that item is gone by the next request (deleted or moved away): the items that
/// followed it have moved up by one, so the next page starts where it stood instead of at
/// the top, and a client walking the pages sees no item twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListCursor {
    key: i64,
    index: Option<usize>,
}

/// Reads the `page_token` of a list: `p`, the last key in hex, then `_` and its position in
/// hex (tokens without the position, as issued before it was added, still resume while
/// their item exists). Anything else, or a position-less token whose item is gone, is 40012.
pub(crate) fn list_after(q: &FeishuQuery) -> Result<Option<ListCursor>, FeishuError> {
    let Some(token) = q.str("page_token") else {
        return Ok(None);
    };
    decode_list_token(token)
        .map(Some)
        .ok_or_else(|| FeishuError::new(StatusCode::BAD_REQUEST, codes::PAGE_TOKEN_INVALID))
}

fn decode_list_token(token: &str) -> Option<ListCursor> {
    let rest = token.strip_prefix('p')?;
    let (key, index) = match rest.split_once('_') {
        Some((k, i)) => (k, Some(i)),
        None => (rest, None),
    };
    let fits = |s: &str| !s.is_empty() && s.len() <= 16;
    if !fits(key) || index.is_some_and(|i| !fits(i)) {
        return None;
    }
    let key = i64::from_str_radix(key, 16).ok().filter(|k| *k >= 0)?;
    let index = match index {
        Some(i) => Some(usize::from_str_radix(i, 16).ok()?),
        None => None,
    };
    Some(ListCursor { key, index })
}

/// Cuts one page out of an ordered list: the items after the cursor's, at most `size` of
/// them. A cursor whose item is gone resumes at its recorded position; one without a
/// position is a token this server never issued for this list (40012).
pub(crate) fn slice<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> i64,
    after: Option<ListCursor>,
    size: usize,
) -> Result<(Vec<T>, Option<String>), FeishuError> {
    let start = match after {
        None => 0,
        Some(c) => match items.iter().position(|i| key(i) == c.key) {
            Some(p) => p + 1,
            None => c.index.ok_or_else(|| {
                FeishuError::new(StatusCode::BAD_REQUEST, codes::PAGE_TOKEN_INVALID)
            })?,
        },
    };
    let total = items.len();
    let start = start.min(total);
    let page: Vec<T> = items.into_iter().skip(start).take(size).collect();
    let more = start + page.len() < total;
    let token = if more {
        page.last()
            .map(|i| format!("p{:x}_{:x}", key(i), start + page.len() - 1))
    } else {
        None
    };
    Ok((page, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks every page; `between` may change the list after each page, knowing the last
    /// item that page returned.
    fn walk(items: &[i64], size: usize, mut between: impl FnMut(&mut Vec<i64>, i64)) -> Vec<i64> {
        let mut items = items.to_vec();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (page, token) = slice(items.clone(), |i| *i, after, size).unwrap();
            let last = page.last().copied();
            seen.extend(page);
            match token {
                Some(t) => after = Some(decode_list_token(&t).unwrap()),
                None => break,
            }
            if let Some(last) = last {
                between(&mut items, last);
            }
        }
        seen
    }

    #[test]
    fn pages_cover_everything_once() {
        let items: Vec<i64> = (1..=25).collect();
        assert_eq!(walk(&items, 10, |_, _| {}), items);
    }

    /// The audit's case: the last item of a page is deleted before the next page is asked
    /// for. The walk goes on after it instead of starting again from the top.
    #[test]
    fn a_page_whose_last_item_is_gone_resumes_where_it_stood() {
        let items: Vec<i64> = (1..=10).collect();
        let seen = walk(&items, 2, |items, last| items.retain(|i| *i != last));
        assert_eq!(seen, items, "no item twice, none skipped");
    }

    #[test]
    fn list_tokens_reject_forgeries_and_positionless_tokens_of_gone_items() {
        assert_eq!(
            decode_list_token("p1f_3"),
            Some(ListCursor {
                key: 0x1f,
                index: Some(3)
            })
        );
        assert_eq!(
            decode_list_token("p1f"),
            Some(ListCursor {
                key: 0x1f,
                index: None
            })
        );
        for bad in [
            "",
            "p",
            "p_",
            "p1_",
            "p_1",
            "pzz",
            "p1_zz",
            "s1",
            "p-1",
            "p11111111111111111",
        ] {
            assert_eq!(decode_list_token(bad), None, "{bad}");
        }
        let gone = decode_list_token("p99").unwrap();
        assert!(slice(vec![1i64, 2, 3], |i| *i, Some(gone), 2).is_err());
        let past_the_end = decode_list_token("p99_40").unwrap();
        let (page, token) = slice(vec![1i64, 2, 3], |i| *i, Some(past_the_end), 2).unwrap();
        assert!(page.is_empty() && token.is_none());
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
