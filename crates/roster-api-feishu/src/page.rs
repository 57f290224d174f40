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

/// The name a list's tokens are checked against (see [`check`]): the caller's tenant and
/// the list. A token works only in the tenant it was issued in: in another, the "same" list
/// (the root's children, say) is another list, and its token is 40012.
pub(crate) fn list_of(caller: &roster_core::Caller, list: &str) -> String {
    format!("{}\n{list}", caller.tenant.0)
}

/// Reads the `page_token` of a list keyed by user key (U12): the key of the last item
/// already returned and the check of the list it came from (see [`check`]). A token this
/// server did not issue for `list` is 40012.
pub(crate) fn page_after(q: &FeishuQuery, list: &str) -> Result<Option<i64>, FeishuError> {
    let Some(token) = q.str("page_token") else {
        return Ok(None);
    };
    token
        .strip_prefix('p')
        .and_then(|rest| rest.split_once('.'))
        .filter(|(hex, sum)| hex.len() <= 16 && *sum == check(list, hex))
        .and_then(|(hex, _)| i64::from_str_radix(hex, 16).ok())
        .filter(|k| *k >= 0)
        .map(Some)
        .ok_or_else(|| FeishuError::new(StatusCode::BAD_REQUEST, codes::PAGE_TOKEN_INVALID))
}

/// The token of `list` that resumes after the item with `key`.
pub(crate) fn token_after(list: &str, key: i64) -> String {
    let hex = format!("{key:x}");
    let sum = check(list, &hex);
    format!("p{hex}.{sum}")
}

/// Ties a token to the list it was issued for: the first 8 hex digits of the SHA-256 of the
/// list's name and the token's place. This is no secret and no access control (every page
/// is checked against the caller as the first one was); it makes a token used on another
/// list, or typed in, a clear 40012 instead of a page that starts somewhere unexpected, as
/// the spec asks of tokens the server did not issue.
fn check(list: &str, place: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(list.as_bytes());
    h.update(b"\n");
    h.update(place.as_bytes());
    hex::encode(&h.finalize()[..4])
}

/// The longest matching term a search token may carry, in bytes (normalised queries are at
/// most 64 characters, and terms of real users rarely exceed a few hundred bytes).
const MAX_SEARCH_TERM_BYTES: usize = 1024;

/// Reads the `page_token` of a user search: `s`, the tier (one digit), the user's key in
/// hex, `_`, and the matching term's UTF-8 bytes in hex. It names the place of the last user
/// already returned (see `roster_core::search`), so the next page resumes right after it
/// even when users are added meanwhile. Anything else is 40012, never an internal error.
pub(crate) fn search_after(
    q: &FeishuQuery,
    list: &str,
) -> Result<Option<SearchCursor>, FeishuError> {
    let Some(token) = q.str("page_token") else {
        return Ok(None);
    };
    token
        .rsplit_once('.')
        .filter(|(place, sum)| *sum == check(list, place))
        .and_then(|(place, _)| decode_search_token(place))
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

/// The search token of the search `list` (its query) that resumes after `place`, with the
/// check that ties it to that query (see [`check`]).
pub(crate) fn search_token(list: &str, place: &SearchCursor) -> String {
    let place = search_place(place);
    let sum = check(list, &place);
    format!("{place}.{sum}")
}

fn search_place(place: &SearchCursor) -> String {
    format!(
        "s{}{:x}_{}",
        place.tier.index(),
        place.key.0,
        hex::encode(place.term.as_bytes())
    )
}

/// The most numbers a list place may hold: a place in a whole subtree is the depth and an
/// `(order, key)` pair per level, and departments nest at most 25 deep.
const MAX_PLACE_LEN: usize = 64;

/// Where a page of a list computed whole (a department's children or subtree, its parents)
/// resumes: the sort place of the last item returned. The list is in ascending order of
/// places, and the next page starts at the first item whose place is greater, so an item
/// that was there for the whole walk is returned exactly once whatever was added, deleted
/// or moved meanwhile (an item that itself moves may show twice or not at all, as in any
/// keyset walk). A position would not do: deleting an item before it, or reordering the
/// last one returned, shifts every later item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListCursor {
    place: Vec<i64>,
}

/// Reads the `page_token` of a list: `k`, the place's numbers in hex (two's complement, as
/// an order may be negative) separated by `.`, then `.` and the list's check. Anything
/// else, including a token of another list, is 40012.
pub(crate) fn list_after(q: &FeishuQuery, list: &str) -> Result<Option<ListCursor>, FeishuError> {
    let Some(token) = q.str("page_token") else {
        return Ok(None);
    };
    decode_list_token(token, list)
        .map(Some)
        .ok_or_else(|| FeishuError::new(StatusCode::BAD_REQUEST, codes::PAGE_TOKEN_INVALID))
}

fn decode_list_token(token: &str, list: &str) -> Option<ListCursor> {
    let (place, sum) = token.strip_prefix('k')?.rsplit_once('.')?;
    if place.is_empty() || sum != check(list, place) {
        return None;
    }
    let place = place
        .split('.')
        .map(|n| {
            (!n.is_empty() && n.len() <= 16)
                .then(|| u64::from_str_radix(n, 16).ok())
                .flatten()
                // The hex is the number's two's complement, so the cast gives it back.
                .map(|v| v as i64)
        })
        .collect::<Option<Vec<i64>>>()?;
    (place.len() <= MAX_PLACE_LEN).then_some(ListCursor { place })
}

fn list_token(list: &str, place: &[i64]) -> String {
    let place = place
        .iter()
        .map(|n| format!("{n:x}"))
        .collect::<Vec<_>>()
        .join(".");
    let sum = check(list, &place);
    format!("k{place}.{sum}")
}

/// Cuts one page out of a list: the items whose place (`place`) comes after the cursor's,
/// in ascending order of place, at most `size` of them, and the token of the next page when
/// more follow. `list` names the list, so that its tokens work on it alone.
pub(crate) fn slice<T>(
    mut items: Vec<T>,
    place: impl Fn(&T) -> Vec<i64>,
    list: &str,
    after: Option<ListCursor>,
    size: usize,
) -> (Vec<T>, Option<String>) {
    let mut placed: Vec<(Vec<i64>, T)> = items.drain(..).map(|i| (place(&i), i)).collect();
    // Stable, so that callers' lists already in order keep it for equal places.
    placed.sort_by(|a, b| a.0.cmp(&b.0));
    let start = after.map_or(0, |c| placed.partition_point(|(p, _)| *p <= c.place));
    let total = placed.len();
    let mut page: Vec<(Vec<i64>, T)> = placed.into_iter().skip(start).take(size).collect();
    let more = start + page.len() < total;
    let token = if more {
        page.last().map(|(p, _)| list_token(list, p))
    } else {
        None
    };
    (page.drain(..).map(|(_, i)| i).collect(), token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "children\nD\nfalse";

    /// Walks every page of a list of `(order, key)` siblings; `between` may change the list
    /// after each page.
    fn walk(
        items: &[(i64, i64)],
        size: usize,
        mut between: impl FnMut(&mut Vec<(i64, i64)>, usize),
    ) -> Vec<i64> {
        let mut items = items.to_vec();
        let mut seen = Vec::new();
        let mut after = None;
        for page_no in 0.. {
            let (page, token) = slice(items.clone(), |(o, k)| vec![*o, *k], LIST, after, size);
            seen.extend(page.iter().map(|(_, k)| *k));
            match token {
                Some(t) => after = Some(decode_list_token(&t, LIST).unwrap()),
                None => break,
            }
            between(&mut items, page_no);
        }
        seen
    }

    fn siblings(n: i64) -> Vec<(i64, i64)> {
        (1..=n).map(|k| (k * 10, k)).collect()
    }

    #[test]
    fn pages_cover_everything_once() {
        let items = siblings(25);
        assert_eq!(walk(&items, 10, |_, _| {}), (1..=25).collect::<Vec<_>>());
    }

    /// The audit's cases: between two pages, the items already returned are deleted, the
    /// last one returned moves to the end or to the front, or a sibling is added before the
    /// cursor. Every item that stayed put is returned exactly once.
    #[test]
    fn items_that_stay_put_are_returned_once_whatever_moves_around_them() {
        let items = siblings(6);
        let deleted = walk(&items, 2, |items, p| {
            if p == 0 {
                items.retain(|(_, k)| *k > 2);
            }
        });
        assert_eq!(
            deleted,
            vec![1, 2, 3, 4, 5, 6],
            "deleting page 1 skips nothing"
        );

        let to_the_end = walk(&items, 2, |items, p| {
            if p == 0 {
                items[1].0 = 1000;
            }
        });
        assert_eq!(
            to_the_end,
            vec![1, 2, 3, 4, 5, 6, 2],
            "the moved item may show again"
        );

        let to_the_front = walk(&items, 3, |items, p| {
            if p == 0 {
                items[2].0 = 1;
            }
        });
        assert_eq!(to_the_front, vec![1, 2, 3, 4, 5, 6], "nothing is repeated");

        let added_before = walk(&items, 2, |items, p| {
            if p == 0 {
                items.push((5, 99));
                items.retain(|(_, k)| *k != 2);
            }
        });
        assert_eq!(added_before, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn negative_orders_round_trip() {
        let items = vec![(-5, 3), (-1, 1), (0, 2), (7, 4)];
        assert_eq!(walk(&items, 1, |_, _| {}), vec![3, 1, 2, 4]);
    }

    #[test]
    fn list_tokens_work_on_their_own_list_only() {
        let (_, token) = slice(siblings(3), |(o, k)| vec![*o, *k], LIST, None, 1);
        let token = token.unwrap();
        assert!(decode_list_token(&token, LIST).is_some());
        assert_eq!(decode_list_token(&token, "children\nE\nfalse"), None);
        for bad in [
            "",
            "k",
            "k.",
            "ka.b.c",
            "kzz.00000000",
            "p1f_3",
            "k1f",
            "k11111111111111111.00000000",
        ] {
            assert_eq!(decode_list_token(bad, LIST), None, "{bad}");
        }
        let long = vec![1_i64; MAX_PLACE_LEN + 1];
        assert_eq!(decode_list_token(&list_token(LIST, &long), LIST), None);
    }

    #[test]
    fn member_tokens_work_on_their_own_list_only() {
        let token = token_after("members\nD", 0x1f);
        let query = |t: &str| FeishuQuery::from_pairs(&[("page_token", t)]);
        assert_eq!(
            page_after(&query(&token), "members\nD").ok(),
            Some(Some(0x1f))
        );
        assert!(page_after(&query(&token), "members\nE").is_err());
        assert!(page_after(&query("p7fffffff"), "members\nD").is_err());
    }

    #[test]
    fn search_tokens_round_trip_and_reject_forgeries() {
        for place in [
            SearchCursor::new(SearchTier::Whole, "zhangsan".into(), UserKey(0x1f)),
            SearchCursor::new(SearchTier::Suffix, "\u{e000}三".into(), UserKey(7)),
            SearchCursor::new(SearchTier::Substring, String::new(), UserKey(123_456)),
        ] {
            let place = place.unwrap();
            assert_eq!(
                decode_search_token(&search_place(&place)),
                Some(place.clone())
            );
            let query = |t: &str| FeishuQuery::from_pairs(&[("page_token", t)]);
            let token = search_token("search\nzs", &place);
            assert_eq!(
                search_after(&query(&token), "search\nzs").ok(),
                Some(Some(place))
            );
            assert!(search_after(&query(&token), "search\nzhang").is_err());
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
