//! roster-http: the HTTP plumbing every front door shares.
//!
//! - `serve`: runs an axum `Router` on a listener through hyper directly, because the
//!   Feishu Python SDK looks response headers up by their exact title-case names
//!   (`Content-Type`), which `axum::serve` cannot emit; it also drains connections on
//!   shutdown.
//! - `request`: request ids, the request span, and the one place where hidden internal
//!   errors are logged, in one layer (`with_common_layers` in `layers`).
//! - `body_deadline`: the whole body of a request that is read whole must arrive within a
//!   deadline, so that a client trickling bytes cannot hold a request open for ever.
//! - `bearer_token`: the token of an `Authorization: Bearer …` header.
//! - `front_door`: the checks every dialect makes before routing (a NUL in the URI, a
//!   declared body over the limit, the body deadline), in one layer.
//! - `json_has_nul`, `front_door`, `refuse_nul_in_uri`: the NUL character is refused at
//!   every front door
//!   (PostgreSQL cannot store it in text, and no directory value needs it), so that both
//!   stores see the same inputs and a client's NUL is a 400, never a storage failure.
//! - `strict`: JSON bodies whose structs must come from objects, never from arrays read by
//!   position.
//!
//! It knows no dialect: envelopes and error codes live in the `roster-api-*` crates.

mod deadline;
mod layers;
mod request;
mod serve;
pub mod strict;

pub use deadline::{body_deadline, BodyDeadlineExceeded, BODY_DEADLINE};
pub use layers::{
    front_door, refuse_nul_in_uri, with_common_layers, FrontDoor, HiddenError, RequestId,
    REQUEST_ID_HEADER,
};
pub use serve::serve;

/// The token of an `Authorization` header value in the `Bearer` scheme, whose name is
/// case-insensitive (RFC 9110, section 11.1: `BEARER t-…` is as good as `Bearer t-…`);
/// `None` for another scheme. The token may be empty (`Bearer` alone), which callers
/// answer as a missing token.
#[must_use]
pub fn bearer_token(value: &str) -> Option<&str> {
    let value = value.trim();
    let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
}

/// Whether a JSON text holds a string with the NUL character: an escape `\u0000` whose
/// backslash is not itself escaped (a raw NUL byte is not valid JSON at all, and the JSON
/// parser refuses it). Front doors refuse such bodies before parsing them.
#[must_use]
pub fn json_has_nul(text: &[u8]) -> bool {
    const ESCAPE: &[u8] = b"u0000";
    text.windows(ESCAPE.len()).enumerate().any(|(at, w)| {
        w == ESCAPE && {
            // The escape is real when an odd number of backslashes runs up to the `u`.
            let backslashes = text[..at].iter().rev().take_while(|b| **b == b'\\').count();
            backslashes % 2 == 1
        }
    })
}

/// Whether reading a request body failed because it is over the size limit, rather than
/// because the client stalled or broke off (a timeout, a bad chunk): front doors answer the
/// first with their 413 and the others with a 400 that says what happened, so that a client
/// sending ten bytes and stalling is not told its body is too large.
#[must_use]
pub fn body_over_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The pairs of a query string, decoded (`+` as a space, percent escapes as bytes), in the
/// order sent, repeated keys kept. `None` when an escape decodes to bytes that are not UTF-8:
/// `form_urlencoded` would read them as U+FFFD, so that `%ff` and `%fe` became the same
/// value (one `client_token` for two requests, say). A U+FFFD the client really sent comes
/// escaped as `%EF%BF%BD`, so any more of them in the decoded pairs were invalid bytes.
#[must_use]
pub fn query_pairs(raw: &str) -> Option<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let decoded: usize = pairs
        .iter()
        .map(|(k, v)| k.matches('\u{fffd}').count() + v.matches('\u{fffd}').count())
        .sum();
    // Counted in the raw text only when there is something to count: most queries decode
    // without a single U+FFFD, and this runs on every request of the dialects that use it.
    (decoded == 0 || decoded <= raw.to_ascii_uppercase().matches("%EF%BF%BD").count())
        .then_some(pairs)
}

/// The message front doors give for a query string that is not percent-encoded UTF-8.
pub const QUERY_UTF8_MESSAGE: &str = "the query string is not valid percent-encoded UTF-8";

/// The message front doors give for a NUL character.
pub const NUL_MESSAGE: &str = "text must not contain the NUL character (U+0000)";

#[cfg(test)]
mod tests {
    #[test]
    fn query_pairs_refuse_escapes_that_are_not_utf8() {
        assert_eq!(
            super::query_pairs("a=1&a=%E5%BC%A0+x&b"),
            Some(vec![
                ("a".into(), "1".into()),
                ("a".into(), "张 x".into()),
                ("b".into(), String::new()),
            ])
        );
        assert_eq!(
            super::query_pairs("t=%ef%bf%bd"),
            Some(vec![("t".into(), "\u{fffd}".into())])
        );
        for bad in ["t=%ff", "t=%fe", "%ff=1", "t=%ef%bf%bd%ff", "t=%E5%BC"] {
            assert_eq!(super::query_pairs(bad), None, "{bad}");
        }
    }

    use super::{bearer_token, json_has_nul};

    #[test]
    fn a_nul_escape_is_found_only_when_it_is_one() {
        assert!(json_has_nul(br#"{"name":"a\u0000b"}"#));
        assert!(
            json_has_nul(br#"["\\\u0000"]"#),
            "an escaped backslash, then the escape"
        );
        assert!(
            !json_has_nul(br#"{"name":"a\\u0000b"}"#),
            "a backslash, then text"
        );
        assert!(!json_has_nul(br#"{"name":"u0000"}"#));
        assert!(!json_has_nul(br#"{"name":"\u0001"}"#));
        assert!(json_has_nul(br#"{"\u0000":1}"#), "in a key too");
        assert!(!json_has_nul(b""));
    }

    #[test]
    fn the_bearer_scheme_is_matched_whatever_its_case() {
        assert_eq!(bearer_token("Bearer t-1"), Some("t-1"));
        assert_eq!(bearer_token("BEARER  t-1 "), Some("t-1"));
        assert_eq!(bearer_token("bearer\tt-1"), Some("t-1"));
        assert_eq!(bearer_token("Bearer"), Some(""));
        assert_eq!(bearer_token("Basic dXNlcg=="), None);
        assert_eq!(bearer_token("t-1"), None);
        assert_eq!(bearer_token("Bearert-1"), None);
    }
}
