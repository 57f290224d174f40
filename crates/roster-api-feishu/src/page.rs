//! Page sizes and page tokens (spec §2 "Pagination").
//!
//! A token names the last item the previous page returned, by its internal key, so a page
//! resumes after that item and never repeats one, even when items were added meanwhile.
//! Tokens are opaque to clients: `p` followed by the key in hex.

use http::StatusCode;

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
}
