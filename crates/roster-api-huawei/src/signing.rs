//! SDK-HMAC-SHA256, exactly as `huaweicloudsdkcore/signer/signer.py` signs (spec 2.5): the
//! canonical request is rebuilt from what was received (raw path, raw query decoded and
//! re-encoded, the listed headers' received bytes, the payload hash as the SDK's
//! `_process_hash_payload` makes it) and the HMAC compared in constant time; `body_cover`
//! then says whether that signature covers the body. Pure functions, so the spec's vectors
//! and vectors made with the SDK's own signer test them directly.

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
    /// Lowercase header name → the received value's bytes (first occurrence), with the
    /// surrounding whitespace trimmed. Bytes, not text: the SDK signs a header's text and
    /// sends its UTF-8 bytes, so a value such as a `User-Agent` of "café" must reach the
    /// canonical request byte for byte.
    pub(crate) header: &'a dyn Fn(&str) -> Option<Vec<u8>>,
    pub(crate) body: &'a [u8],
}

/// The canonical request for the listed headers, as bytes (header values may hold any
/// UTF-8). `Err` names a listed header the request does not carry.
pub(crate) fn canonical_request(req: &Received<'_>, signed: &[String]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(256 + 64 * signed.len());
    out.extend_from_slice(req.method.to_ascii_uppercase().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(req.path).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(req.query).as_bytes());
    out.push(b'\n');
    for name in signed {
        let value = (req.header)(name).ok_or_else(|| name.clone())?;
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(value.trim_ascii());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&payload_hash(req.body, content_sha256(req).as_deref()));
    Ok(out)
}

/// The header through which a client names the payload hash it signed.
const CONTENT_SHA256: &str = "x-sdk-content-sha256";

/// The payload marker the SDK puts in `X-Sdk-Content-Sha256` when the Content-Type is
/// neither JSON nor BSON (`Signer._process_content_header`).
const UNSIGNED_PAYLOAD: &[u8] = b"UNSIGNED-PAYLOAD";

/// The value of `X-Sdk-Content-Sha256`, trimmed, when the request carries a non-empty one.
/// The SDK reads it whether or not it is signed (it always signs it, as it signs every header
/// without `_` in its name); `body_cover` makes sure that an unsigned one gains nothing.
fn content_sha256(req: &Received<'_>) -> Option<Vec<u8>> {
    (req.header)(CONTENT_SHA256)
        .map(|v| v.trim_ascii().to_vec())
        .filter(|v| !v.is_empty())
}

/// The canonical request's payload hash, exactly as the SDK's
/// `Signer._process_hash_payload` computes it: an empty body is always the hash of nothing
/// (so a GET with `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`, which the SDK sends for any
/// non-JSON Content-Type, signs the empty hash); a non-empty body is the header's value when
/// the header is there (the literal `UNSIGNED-PAYLOAD`, or a hash the client computed), and
/// the SHA-256 of the body otherwise. Whether such a body may then be acted on is
/// `body_cover`'s question.
fn payload_hash(body: &[u8], content_sha256: Option<&[u8]>) -> Vec<u8> {
    if body.is_empty() {
        return hex::encode(Sha256::digest(b"")).into_bytes();
    }
    match content_sha256 {
        Some(value) => value.to_vec(),
        None => hex::encode(Sha256::digest(body)).into_bytes(),
    }
}

/// Whether a signature over the canonical request also vouches for the body received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyCover {
    /// The payload hash signed is the body's own: the body is what the signer sent.
    Signed,
    /// The payload hash signed is the literal `UNSIGNED-PAYLOAD` and there is a body, which
    /// the signature therefore does not cover.
    Unsigned,
    /// `X-Sdk-Content-Sha256` names a hash that is not the body's.
    Mismatch,
}

/// How the payload hash of `canonical_request` relates to the body received. Only
/// `Signed` may be acted on: with `Unsigned` anyone who saw one signed request could send
/// another body under its signature for 15 minutes, and with `Mismatch` (an added, unsigned
/// header naming the hash of the body originally signed) exactly that body-swap would verify.
pub(crate) fn body_cover(req: &Received<'_>) -> BodyCover {
    if req.body.is_empty() {
        return BodyCover::Signed;
    }
    match content_sha256(req) {
        None => BodyCover::Signed,
        Some(value) if value == UNSIGNED_PAYLOAD => BodyCover::Unsigned,
        Some(value) => {
            let actual = hex::encode(Sha256::digest(req.body));
            if value.eq_ignore_ascii_case(actual.as_bytes()) {
                BodyCover::Signed
            } else {
                BodyCover::Mismatch
            }
        }
    }
}

/// `SDK-HMAC-SHA256\n<date>\n<hex sha256 of the canonical request>`.
pub(crate) fn string_to_sign(date: &str, canonical: &[u8]) -> String {
    format!(
        "{ALGORITHM}\n{date}\n{}",
        hex::encode(Sha256::digest(canonical))
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

    fn headers(name: &str) -> Option<Vec<u8>> {
        let text: Option<String> = match name {
            "content-type" => Some("application/json".into()),
            "host" => Some("127.0.0.1:18080".into()),
            "user-agent" => Some("huaweicloud-usdk-python/3.0; roster-test".into()),
            "x-project-id" => Some(PROJECT.into()),
            "x-sdk-date" => Some("20250101T000000Z".into()),
            _ => None,
        };
        text.map(String::into_bytes)
    }

    fn signature_of(
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        sk: &str,
        hdr: &dyn Fn(&str) -> Option<Vec<u8>>,
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
            String::from_utf8(creq.clone()).unwrap(),
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
                Some(b"evil:1".to_vec())
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
                Some(b"20250101T000001Z".to_vec())
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

    /// Headers as `headers` gives them, with some replaced or added.
    fn with(extra: &[(&str, &[u8])]) -> impl Fn(&str) -> Option<Vec<u8>> {
        let extra: Vec<(String, Vec<u8>)> = extra
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
            .collect();
        move |name: &str| {
            extra
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .or_else(|| headers(name))
        }
    }

    /// The canonical request of a request signed with `signed` (names joined by `;`).
    fn creq(
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        hdr: &dyn Fn(&str) -> Option<Vec<u8>>,
        signed: &str,
    ) -> Vec<u8> {
        let signed: Vec<String> = signed.split(';').map(str::to_owned).collect();
        let req = Received {
            method,
            path,
            query,
            header: hdr,
            body,
        };
        canonical_request(&req, &signed).unwrap()
    }

    /// The signature the SDK's own signer made (vectors below printed by
    /// `huaweicloudsdkcore` 3.1.219's `Signer.sign` with `X-Sdk-Date` fixed).
    fn sdk_signature(canonical: &[u8]) -> String {
        sign(SK, &string_to_sign("20250101T000000Z", canonical))
    }

    const EMPTY_HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const SMALL_BODY: &[u8] = br#"{"users": []}"#;
    const UA: &[u8] = b"huaweicloud-usdk-python/3.0";

    /// The SDK adds a signed `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` whenever the
    /// Content-Type is not JSON, and for an empty body signs the empty hash all the same
    /// (`_process_hash_payload`). The server used to sign the literal there, so such a GET
    /// failed with 401.
    #[test]
    fn an_empty_body_signs_the_empty_hash_whatever_x_sdk_content_sha256_says() {
        let path = format!("/v2/{PROJECT}/users");
        let plain = with(&[
            ("content-type", b"text/plain"),
            ("user-agent", UA),
            ("x-sdk-content-sha256", b"UNSIGNED-PAYLOAD"),
        ]);
        let c = creq(
            "GET",
            &path,
            "limit=1",
            b"",
            &plain,
            "content-type;host;user-agent;x-sdk-content-sha256;x-sdk-date",
        );
        assert!(c.ends_with(format!("\n{EMPTY_HASH}").as_bytes()));
        assert_eq!(
            sdk_signature(&c),
            "8e12d4e7d00705c9bb241131c8a1efa406e01682fa70f57b9acb8b85dcd01b2f"
        );
        // Any other value is ignored for an empty body as well.
        let abc = with(&[("x-sdk-content-sha256", b"abc")]);
        let c = creq(
            "GET",
            &path,
            "",
            b"",
            &abc,
            "content-type;host;x-sdk-content-sha256;x-sdk-date",
        );
        assert_eq!(
            sdk_signature(&c),
            "4c0098904141552d822d024f6b776a964c64892382c69b702d8866d811fe59ca"
        );
    }

    /// For a non-empty body the SDK signs the header's value when there is one: the literal
    /// `UNSIGNED-PAYLOAD` (non-JSON Content-Type), or a hash the caller put there, verbatim
    /// (here in upper case).
    #[test]
    fn a_body_signs_the_value_of_x_sdk_content_sha256_when_it_is_sent() {
        let path = format!("/v2/{PROJECT}/users/batch-create");
        let plain = with(&[
            ("content-type", b"text/plain"),
            ("user-agent", UA),
            ("x-sdk-content-sha256", b"UNSIGNED-PAYLOAD"),
        ]);
        let c = creq(
            "POST",
            &path,
            "",
            SMALL_BODY,
            &plain,
            "content-type;host;user-agent;x-sdk-content-sha256;x-sdk-date",
        );
        assert!(c.ends_with(b"\nUNSIGNED-PAYLOAD"));
        assert_eq!(
            sdk_signature(&c),
            "61f15ecf979dafb753fca84b3652b65689483fca7b63c2a7f3dea6a4c282c1c7"
        );
        let upper = hex::encode_upper(Sha256::digest(SMALL_BODY));
        let hashed = with(&[("x-sdk-content-sha256", upper.as_bytes())]);
        let c = creq(
            "POST",
            &path,
            "",
            SMALL_BODY,
            &hashed,
            "content-type;host;x-sdk-content-sha256;x-sdk-date",
        );
        assert!(c.ends_with(format!("\n{upper}").as_bytes()));
        assert_eq!(
            sdk_signature(&c),
            "b8acc9d634b7876d829319f983616dd6d93b25a5457a2a87da0efe520d12e34d"
        );
    }

    /// The SDK signs a header's text and sends its UTF-8 bytes; the canonical request holds
    /// those bytes, trimmed.
    #[test]
    fn non_ascii_header_values_are_signed_as_their_utf8_bytes() {
        let path = format!("/v2/{PROJECT}/users");
        let signed = "content-type;host;user-agent;x-sdk-date";
        let cafe = with(&[("user-agent", "café".as_bytes())]);
        let c = creq("GET", &path, "limit=1", b"", &cafe, signed);
        assert_eq!(
            sdk_signature(&c),
            "7e018872574325424da7a4239361871c5eac5d0c39a39e8b5cf6ccadaca1ed66"
        );
        let cjk = with(&[("user-agent", " 客户端 ".as_bytes())]);
        let c = creq("GET", &path, "limit=1", b"", &cjk, signed);
        assert_eq!(
            sdk_signature(&c),
            "993078d97440d8465a2278605722b285a34bd000690cc3158e7d38201379be75"
        );
    }

    #[test]
    fn a_missing_signed_header_is_named() {
        let signed: Vec<String> = ["host", "x-custom", "x-sdk-date"]
            .map(str::to_owned)
            .to_vec();
        let req = Received {
            method: "GET",
            path: "/v2/p/users",
            query: "",
            header: &headers,
            body: b"",
        };
        assert_eq!(canonical_request(&req, &signed), Err("x-custom".to_owned()));
    }

    /// A signature over one body must not vouch for another body, whatever payload header the
    /// request carries: an added, unsigned `X-Sdk-Content-Sha256` naming the original body's
    /// hash makes the canonical request the original's (the SDK's rule), so the body is
    /// checked against that hash; and a body signed as `UNSIGNED-PAYLOAD` is not covered.
    #[test]
    fn only_a_body_whose_own_hash_was_signed_is_covered() {
        let path = format!("/v2/{PROJECT}/users/batch-create");
        let original_hash = hex::encode(Sha256::digest(H1_BODY.as_bytes()));
        let swapped = H1_BODY.replace("alice01", "mallory");
        let cover = |body: &[u8], hdr: &dyn Fn(&str) -> Option<Vec<u8>>| {
            body_cover(&Received {
                method: "POST",
                path: &path,
                query: "",
                header: hdr,
                body,
            })
        };
        let named_hash = with(&[("x-sdk-content-sha256", original_hash.as_bytes())]);
        assert_eq!(
            creq("POST", &path, "", swapped.as_bytes(), &named_hash, SIGNED),
            creq("POST", &path, "", H1_BODY.as_bytes(), &headers, SIGNED),
            "the SDK's rule makes the swapped request's canonical form the original's"
        );
        assert_eq!(cover(swapped.as_bytes(), &named_hash), BodyCover::Mismatch);
        assert_eq!(cover(H1_BODY.as_bytes(), &named_hash), BodyCover::Signed);
        let upper = original_hash.to_ascii_uppercase();
        let named_upper = with(&[("x-sdk-content-sha256", upper.as_bytes())]);
        assert_eq!(cover(H1_BODY.as_bytes(), &named_upper), BodyCover::Signed);
        assert_eq!(cover(H1_BODY.as_bytes(), &headers), BodyCover::Signed);
        let unsigned = with(&[("x-sdk-content-sha256", b"UNSIGNED-PAYLOAD")]);
        assert_eq!(cover(H1_BODY.as_bytes(), &unsigned), BodyCover::Unsigned);
        assert_eq!(cover(b"", &unsigned), BodyCover::Signed);
        let blank = with(&[("x-sdk-content-sha256", b"  ")]);
        assert_eq!(cover(H1_BODY.as_bytes(), &blank), BodyCover::Signed);
        assert!(
            creq("POST", &path, "", H1_BODY.as_bytes(), &blank, SIGNED)
                .ends_with(original_hash.as_bytes()),
            "a blank header is no header (the SDK tests its truth)"
        );
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
