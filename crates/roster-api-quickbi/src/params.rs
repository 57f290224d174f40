//! The API parameters of an RPC request: the query string and, for actions with body
//! parameters, an `application/x-www-form-urlencoded` body (spec 3.2), with typed getters
//! that fail in Quick BI's envelope.

use crate::error::QuickBiError;

/// Longest value of any one parameter; `FeishuUsers` of a full batch fits easily.
const MAX_VALUE_LEN: usize = 256 * 1024;

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
            Some(v) if v.len() > MAX_VALUE_LEN => Err(QuickBiError::invalid(name, "too long")),
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

/// Decodes `a=b&c=d` (query or form body).
pub(crate) fn decode(raw: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(raw)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_parse_in_either_case_and_bad_ones_are_refused() {
        let p = Params::new(&decode(b"A=True&B=false&C=yes"), &[]);
        assert_eq!(p.bool("A").unwrap(), Some(true));
        assert_eq!(p.bool("B").unwrap(), Some(false));
        assert!(p.bool("C").is_err());
        assert_eq!(p.bool("D").unwrap(), None);
    }

    #[test]
    fn query_wins_over_the_body_and_lists_split_on_commas() {
        let p = Params::new(&decode(b"X=1&L=a,+b,,c"), &decode(b"X=2&Y=3"));
        assert_eq!(p.get("X"), Some("1"));
        assert_eq!(p.get("Y"), Some("3"));
        assert_eq!(p.list("L").unwrap(), ["a", "b", "c"]);
        assert!(p.int("L").is_err());
        assert!(p.required("Z").is_err());
    }
}
