//! The API parameters of an RPC request: the query string and, for actions with body
//! parameters, an `application/x-www-form-urlencoded` body (spec 3.2), with typed getters
//! that fail in Quick BI's envelope.

use roster_core::bi::{MAX_BATCH_ENTRIES, MAX_NICKNAME_CHARS};

use crate::codes;
use crate::error::QuickBiError;

/// Longest id that can name a directory user in `FeishuUsers`: a custom user id has 1 to 64
/// characters (`roster_core::UserId`); open and union ids have 35.
pub(crate) const LONGEST_USER_ID: usize = 64;
/// Most bytes one nickname character takes in JSON: a character beyond the Basic
/// Multilingual Plane (an emoji) escaped as a surrogate pair, `\uD83D\uDE00`. Python's
/// `json.dumps` escapes every non-ASCII character by default; a CJK character takes 6.
const ESCAPED_CHAR_MAX: usize = 12;
/// Bytes around one entry: `"id": "nick", ` has 6 of quotes, colon and comma and 2 of
/// spaces; the rest leaves room for a pretty-printer's newline and indent.
const ENTRY_FRAMING: usize = 16;
/// Longest value of any one parameter: the longest legal `FeishuUsers`, which is the largest
/// parameter of any action: 1 000 entries, each the longest id and a nickname of the most
/// characters allowed, every one escaped at its longest, plus the braces (1 280 016 bytes).
/// A value longer than that cannot be a legal request, so it is refused before it is parsed.
/// It stays below the body limit (`MAX_BODY`), which the form-encoded request must fit in.
pub(crate) const MAX_VALUE_LEN: usize = MAX_BATCH_ENTRIES
    * (LONGEST_USER_ID + MAX_NICKNAME_CHARS * ESCAPED_CHAR_MAX + ENTRY_FRAMING)
    + ENTRY_FRAMING;

/// Decoded parameters, query first, then the form body.
#[derive(Debug, Default)]
pub(crate) struct Params {
    all: Vec<(String, String)>,
}

impl Params {
    /// Query and body pairs, decoded (`+` is a space, `%XX` a byte).
    pub(crate) fn new(query: &[(String, String)], form: &[(String, String)]) -> Self {
        let mut all = query.to_vec();
        all.extend_from_slice(form);
        Self { all }
    }

    /// Every pair, as the legacy signature covers them.
    pub(crate) fn all(&self) -> &[(String, String)] {
        &self.all
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.all
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A non-empty, trimmed text value, or `None`.
    pub(crate) fn text(&self, name: &str) -> Result<Option<String>, QuickBiError> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) if v.len() > MAX_VALUE_LEN => Err(QuickBiError::bad(
                codes::PARAMETER_LENGTH_EXCEED,
                format!(
                    "The specified parameter \"{name}\" is too long: at most {MAX_VALUE_LEN} bytes."
                ),
            )),
            // A NUL escaped in a parameter that holds JSON (`FeishuUsers`); raw ones are
            // refused with the request.
            Some(v) if roster_http::json_has_nul(v.as_bytes()) => {
                Err(QuickBiError::invalid(name, roster_http::NUL_MESSAGE))
            }
            Some(v) => Ok(Some(v.to_owned())),
        }
    }

    /// A mandatory text value.
    pub(crate) fn required(&self, name: &str) -> Result<String, QuickBiError> {
        self.text(name)?.ok_or_else(|| QuickBiError::missing(name))
    }

    /// A boolean: the Python SDK sends `True`/`False`, others `true`/`false`.
    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>, QuickBiError> {
        match self.text(name)? {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(QuickBiError::invalid(name, "must be true or false")),
        }
    }

    /// An integer.
    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>, QuickBiError> {
        match self.text(name)? {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| QuickBiError::invalid(name, "must be an integer")),
        }
    }

    /// A comma-separated list, items trimmed, empty items dropped.
    pub(crate) fn list(&self, name: &str) -> Result<Vec<String>, QuickBiError> {
        Ok(self
            .text(name)?
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// Decodes `a=b&c=d` (query or form body). Text that is not UTF-8, or escapes that do not
/// decode to UTF-8, are `InvalidParameter`, as at every front door: read leniently, `%FF`
/// became U+FFFD, was stored so, and matched every other such escape.
pub(crate) fn decode(raw: &[u8]) -> Result<Vec<(String, String)>, QuickBiError> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(roster_http::query_pairs)
        .ok_or_else(|| QuickBiError::bad(codes::INVALID_PARAMETER, roster_http::QUERY_UTF8_MESSAGE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_parse_in_either_case_and_bad_ones_are_refused() {
        let p = Params::new(&decode(b"A=True&B=false&C=yes").unwrap(), &[]);
        assert_eq!(p.bool("A").unwrap(), Some(true));
        assert_eq!(p.bool("B").unwrap(), Some(false));
        assert!(p.bool("C").is_err());
        assert_eq!(p.bool("D").unwrap(), None);
    }

    /// A parameter over the cap is `Parameter.Length.Exceed` (documented by Quick BI for a
    /// parameter that is too long), not a generic `InvalidParameter`; one at the cap is read.
    #[test]
    fn a_parameter_over_the_cap_is_parameter_length_exceed() {
        let at = Params::new(&[("V".into(), "x".repeat(MAX_VALUE_LEN))], &[]);
        assert_eq!(at.text("V").unwrap().map(|v| v.len()), Some(MAX_VALUE_LEN));
        let over = Params::new(&[("V".into(), "x".repeat(MAX_VALUE_LEN + 1))], &[]);
        let err = over.text("V").unwrap_err();
        assert_eq!(
            (err.status, err.code),
            (http::StatusCode::BAD_REQUEST, "Parameter.Length.Exceed")
        );
        assert!(err.message.contains("\"V\""), "{}", err.message);
    }

    /// `LONGEST_USER_ID` is the core's rule for user ids, the longest ids that name a user.
    #[test]
    fn the_longest_user_id_is_the_core_s() {
        assert!(roster_core::UserId::parse(&"a".repeat(LONGEST_USER_ID)).is_ok());
        assert!(roster_core::UserId::parse(&"a".repeat(LONGEST_USER_ID + 1)).is_err());
        assert!(LONGEST_USER_ID >= roster_core::OpenId::PREFIX.len() + 32);
    }

    #[test]
    fn query_wins_over_the_body_and_lists_split_on_commas() {
        let p = Params::new(
            &decode(b"X=1&L=a,+b,,c").unwrap(),
            &decode(b"X=2&Y=3").unwrap(),
        );
        assert_eq!(p.get("X"), Some("1"));
        assert_eq!(p.get("Y"), Some("3"));
        assert_eq!(p.list("L").unwrap(), ["a", "b", "c"]);
        assert!(p.int("L").is_err());
        assert!(p.required("Z").is_err());
    }
}
