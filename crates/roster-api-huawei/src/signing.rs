//! SDK-HMAC-SHA256, exactly as `huaweicloudsdkcore/signer/signer.py` signs (spec 2.5): the
//! canonical request is rebuilt from what was received (raw path, raw query decoded and
//! re-encoded, the listed headers' received values, SHA-256 of the raw body bytes) and the
//! HMAC compared in constant time. Pure functions, so the spec's vectors test them directly.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The algorithm name in `Authorization` and the string to sign.
pub(crate) const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// How far `X-Sdk-Date` may be from the server's clock (API Gateway's rule), ms.
pub(crate) const MAX_SKEW_MS: i64 = 15 * 60 * 1000;

/// A parsed `Authorization: SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authorization {
    pub(crate) access: String,
    pub(crate) signed_headers: Vec<String>,
    pub(crate) signature: String,
}

/// Parses the header; `None` when it is not a well-formed SDK-HMAC-SHA256 value.
pub(crate) fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.strip_prefix(ALGORITHM)?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let mut access = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.trim().split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Access" => access = Some(v.to_owned()),
            "SignedHeaders" => signed = Some(v.to_owned()),
            "Signature" => signature = Some(v.to_owned()),
            _ => return None,
        }
    }
    let signature = signature?;
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let signed_headers: Vec<String> = signed?.split(';').map(str::to_owned).collect();
    if signed_headers.iter().any(String::is_empty) {
        return None;
    }
    Some(Authorization {
        access: access.filter(|a| !a.is_empty())?,
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// RFC 3986 percent-encoding as the SDK does it (`quote(s, safe='~')`): unreserved
/// characters kept, everything else `%XX` in upper case.
fn encode(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 15)]));
        }
    }
    out
}

/// Percent-decoding of a path (no `+` rule; invalid escapes are kept as they are, as
/// Python's `unquote` does).
fn decode_path(s: &str) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The canonical URI: the decoded path's segments each encoded, joined with `/`, with a
/// trailing `/`.
pub(crate) fn canonical_uri(path: &str) -> String {
    let decoded = decode_path(path);
    let mut uri = decoded
        .split(|b| *b == b'/')
        .map(encode)
        .collect::<Vec<_>>()
        .join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// The canonical query: pairs decoded (`parse_qsl`, blanks kept, `+` as space), sorted by
/// key then value, each side encoded, `k=v` joined with `&`.
pub(crate) fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned().into_bytes(), v.into_owned().into_bytes()))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// What the verifier needs of a received request.
pub(crate) struct Received<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
    /// Lowercase header name → received value (first occurrence), already trimmed.
    pub(crate) header: &'a dyn Fn(&str) -> Option<String>,
    pub(crate) body: &'a [u8],
}

/// The canonical request for the listed headers; `None` when a listed header is missing.
pub(crate) fn canonical_request(req: &Received<'_>, signed: &[String]) -> Option<String> {
    let mut headers = String::new();
    for name in signed {
        let value = (req.header)(name)?;
        headers.push_str(name);
        headers.push(':');
        headers.push_str(value.trim());
        headers.push('\n');
    }
    let payload = payload_hash(req, signed);
    Some(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method.to_ascii_uppercase(),
        canonical_uri(req.path),
        canonical_query(req.query),
        headers,
        signed.join(";"),
        payload
    ))
}

/// The canonical request's payload hash: the SHA-256 of the bytes received. The SDK puts
/// `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` on requests whose Content-Type is not JSON (its
/// body-less GETs and DELETEs) and signs that literal instead of a hash; it is honoured only
/// when the header is itself signed and the body is empty. Taking any other value of that
/// header (or an unsigned one) as the hash would let whoever holds one signed request swap
/// its body.
fn payload_hash(req: &Received<'_>, signed: &[String]) -> String {
    let header_signed = signed.iter().any(|h| h == "x-sdk-content-sha256");
    if header_signed
        && req.body.is_empty()
        && (req.header)("x-sdk-content-sha256").as_deref() == Some(UNSIGNED_PAYLOAD)
    {
        return UNSIGNED_PAYLOAD.to_owned();
    }
    hex::encode(Sha256::digest(req.body))
}

/// The payload marker the SDK signs for requests whose body it does not hash.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// `SDK-HMAC-SHA256\n<date>\n<hex sha256 of the canonical request>`.
pub(crate) fn string_to_sign(date: &str, canonical: &str) -> String {
    format!(
        "{ALGORITHM}\n{date}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

/// hex(HMAC-SHA256(secret, string to sign)).
pub(crate) fn sign(secret: &str, string_to_sign: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Constant-time comparison of two hex signatures.
pub(crate) fn signatures_match(expected: &str, presented: &str) -> bool {
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// Parses `YYYYMMDDTHHMMSSZ` into ms since the epoch.
#[allow(clippy::many_single_char_names)] // y, d, h: the calendar's own names.
pub(crate) fn parse_sdk_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some((days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se) * 1000)
}

pub(crate) use roster_core::days_from_civil;

#[cfg(test)]
mod tests {
    use super::*;

    const SK: &str = "hwTestSecretKey0000000000000000000000001";
    const PROJECT: &str = "0123456789abcdef0123456789abcdef";
    const H1_BODY: &str = r#"{"users": [{"user_name": "alice01", "user_email": "alice@example.com", "active_type": "USER_ACTIVATE", "description": "first user"}]}"#;
    const SIGNED: &str = "content-type;host;user-agent;x-project-id;x-sdk-date";

    fn headers(name: &str) -> Option<String> {
        match name {
            "content-type" => Some("application/json".into()),
            "host" => Some("127.0.0.1:18080".into()),
            "user-agent" => Some("huaweicloud-usdk-python/3.0; roster-test".into()),
            "x-project-id" => Some(PROJECT.into()),
            "x-sdk-date" => Some("20250101T000000Z".into()),
            _ => None,
        }
    }

    fn signature_of(
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        sk: &str,
        hdr: &dyn Fn(&str) -> Option<String>,
    ) -> String {
        let signed: Vec<String> = SIGNED.split(';').map(str::to_owned).collect();
        let req = Received {
            method,
            path,
            query,
            header: hdr,
            body,
        };
        let creq = canonical_request(&req, &signed).unwrap();
        sign(sk, &string_to_sign("20250101T000000Z", &creq))
    }

    #[test]
    fn h1_batch_create_matches_the_captured_canonical_request_and_signature() {
        let path = format!("/v2/{PROJECT}/users/batch-create");
        let signed: Vec<String> = SIGNED.split(';').map(str::to_owned).collect();
        let req = Received {
            method: "POST",
            path: &path,
            query: "",
            header: &headers,
            body: H1_BODY.as_bytes(),
        };
        let creq = canonical_request(&req, &signed).unwrap();
        assert_eq!(
            creq,
            format!(
                "POST\n/v2/{PROJECT}/users/batch-create/\n\ncontent-type:application/json\nhost:127.0.0.1:18080\nuser-agent:huaweicloud-usdk-python/3.0; roster-test\nx-project-id:{PROJECT}\nx-sdk-date:20250101T000000Z\n\n{SIGNED}\nbdf00b51c47f702a0c3d77ad7b7fd67377a7637488e4a97fd2267a034fb38485"
            )
        );
        let sts = string_to_sign("20250101T000000Z", &creq);
        assert_eq!(
            sts,
            "SDK-HMAC-SHA256\n20250101T000000Z\n794dce6cb43fa74727f4eb562a11c356ae972f641ca9f00b5780b8527d650eac"
        );
        assert_eq!(
            sign(SK, &sts),
            "5c44353a2efb37391e21d5b921c92ef7fff0302aca5d362015df8b084c6e5fbe"
        );
    }

    #[test]
    fn h1_with_the_wrong_key_gives_the_spec_negative_vector() {
        let sig = signature_of(
            "POST",
            &format!("/v2/{PROJECT}/users/batch-create"),
            "",
            H1_BODY.as_bytes(),
            "x",
            &headers,
        );
        assert!(
            sig.starts_with("df6d6772") && sig.ends_with("a946"),
            "{sig}"
        );
    }

    #[test]
    fn h2_to_h5_match_the_spec() {
        let users = format!("/v2/{PROJECT}/users");
        let one = format!("/v2/{PROJECT}/users/u-123");
        let cases = [
            (
                "GET",
                users.as_str(),
                "limit=10&offset=0&user_name=alice01",
                "00537efc51c42b906a482552e1db47cfe2b87e0d768bb557ae6e6bd2938ecabc",
            ),
            (
                "GET",
                one.as_str(),
                "",
                "4493143266aafe6cc7e8d87f8ecf2e5a988e5336823dd34cd799c73ef286605c",
            ),
            (
                "DELETE",
                one.as_str(),
                "",
                "c62d27d39e0b28286bf80d3e11acf53c0192d3912102462e72e5a6444d7699ed",
            ),
            (
                "GET",
                users.as_str(),
                "description=a%20b%2Fc%2Bd%2A~%C3%A9&disabled=false&user_names=amy&user_names=zed",
                "381346120534cfd216bbe087611ecbde98e9af0c9c356b39b0b0ac71c27e5495",
            ),
        ];
        for (method, path, query, expected) in cases {
            assert_eq!(
                signature_of(method, path, query, b"", SK, &headers),
                expected,
                "{method} {path}?{query}"
            );
        }
    }

    #[test]
    fn tampering_with_body_header_path_method_or_query_changes_the_signature() {
        let path = format!("/v2/{PROJECT}/users/batch-create");
        let good = "5c44353a2efb37391e21d5b921c92ef7fff0302aca5d362015df8b084c6e5fbe";
        let changed_body = H1_BODY.replace("alice01", "alice02");
        assert_ne!(
            signature_of("POST", &path, "", changed_body.as_bytes(), SK, &headers),
            good
        );
        let other_host = |n: &str| {
            if n == "host" {
                Some("evil:1".to_owned())
            } else {
                headers(n)
            }
        };
        assert_ne!(
            signature_of("POST", &path, "", H1_BODY.as_bytes(), SK, &other_host),
            good
        );
        let other_date = |n: &str| {
            if n == "x-sdk-date" {
                Some("20250101T000001Z".to_owned())
            } else {
                headers(n)
            }
        };
        assert_ne!(
            signature_of("POST", &path, "", H1_BODY.as_bytes(), SK, &other_date),
            good
        );
        let other_project = path.replace("0123", "9123");
        assert_ne!(
            signature_of("POST", &other_project, "", H1_BODY.as_bytes(), SK, &headers),
            good
        );
        assert_ne!(
            signature_of("PUT", &path, "", H1_BODY.as_bytes(), SK, &headers),
            good
        );
        assert_ne!(
            signature_of("POST", &path, "a=1", H1_BODY.as_bytes(), SK, &headers),
            good
        );
        assert!(signatures_match(good, good));
        assert!(!signatures_match(good, &good.replace('5', "6")));
    }

    /// A signature over one body must not verify another body, whatever payload header the
    /// request carries: an unsigned `X-Sdk-Content-Sha256` holding the original body's hash
    /// (the body-swap attack), or a signed `UNSIGNED-PAYLOAD` on a request with a body.
    #[test]
    fn the_payload_hash_is_always_of_the_body_received_unless_signed_unsigned_and_empty() {
        let path = format!("/v2/{PROJECT}/users/batch-create");
        let signed: Vec<String> = SIGNED.split(';').map(str::to_owned).collect();
        let original_hash = hex::encode(Sha256::digest(H1_BODY.as_bytes()));
        let with_hash = |n: &str| {
            if n == "x-sdk-content-sha256" {
                Some(original_hash.clone())
            } else {
                headers(n)
            }
        };
        let swapped = H1_BODY.replace("alice01", "mallory");
        let creq = |body: &[u8], hdr: &dyn Fn(&str) -> Option<String>, signed: &[String]| {
            canonical_request(
                &Received {
                    method: "POST",
                    path: &path,
                    query: "",
                    header: hdr,
                    body,
                },
                signed,
            )
            .unwrap()
        };
        assert_ne!(
            creq(swapped.as_bytes(), &with_hash, &signed),
            creq(H1_BODY.as_bytes(), &headers, &signed),
            "an unsigned payload header must not stand in for the body"
        );
        let unsigned = |n: &str| {
            if n == "x-sdk-content-sha256" {
                Some(UNSIGNED_PAYLOAD.to_owned())
            } else {
                headers(n)
            }
        };
        let mut with_header = signed.clone();
        with_header.push("x-sdk-content-sha256".into());
        with_header.sort();
        assert!(creq(b"", &unsigned, &with_header).ends_with("\nUNSIGNED-PAYLOAD"));
        assert!(creq(b"", &unsigned, &signed).ends_with(&hex::encode(Sha256::digest(b""))));
        assert!(creq(swapped.as_bytes(), &unsigned, &with_header)
            .ends_with(&hex::encode(Sha256::digest(swapped.as_bytes()))));
    }

    #[test]
    fn query_order_and_encoding_do_not_matter_only_content() {
        assert_eq!(canonical_query("b=2&a=1"), "a=1&b=2");
        assert_eq!(canonical_query("d=a+b"), canonical_query("d=a%20b"));
        assert_eq!(canonical_query("x=%7e"), "x=~");
        assert_eq!(canonical_query(""), "");
    }

    #[test]
    fn authorization_header_parses_as_the_sdk_writes_it() {
        let a = parse_authorization(&format!("SDK-HMAC-SHA256 Access=HWTESTAK0000000000001, SignedHeaders={SIGNED}, Signature=5c44353a2efb37391e21d5b921c92ef7fff0302aca5d362015df8b084c6e5fbe")).unwrap();
        assert_eq!(a.access, "HWTESTAK0000000000001");
        assert_eq!(a.signed_headers.len(), 5);
        assert!(
            parse_authorization("SDK-HMAC-SHA256 Access=A, SignedHeaders=host, Signature=zz")
                .is_none()
        );
        assert!(parse_authorization("Bearer x").is_none());
        assert!(
            parse_authorization("SDK-HMAC-SHA256Access=A, SignedHeaders=host, Signature=00")
                .is_none()
        );
    }

    #[test]
    fn sdk_dates_parse_and_junk_does_not() {
        assert_eq!(parse_sdk_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_sdk_date("20250101T000000Z"), Some(1_735_689_600_000));
        assert!(parse_sdk_date("2025-01-01T00:00:00Z").is_none());
        assert!(parse_sdk_date("20251301T000000Z").is_none());
    }

    #[test]
    fn canonical_uri_reencodes_segments_and_adds_the_trailing_slash() {
        assert_eq!(canonical_uri("/v2/p/users"), "/v2/p/users/");
        assert_eq!(canonical_uri("/v2/p/users/"), "/v2/p/users/");
        assert_eq!(canonical_uri("/v2/a%20b/x"), "/v2/a%20b/x/");
        assert_eq!(
            canonical_uri("/v2/%7Bproject_id%7D/users"),
            "/v2/%7Bproject_id%7D/users/"
        );
    }
}
