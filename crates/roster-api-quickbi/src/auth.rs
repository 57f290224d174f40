//! Authentication of one RPC request: which signature it carries, the timestamp window,
//! the access key, the signature itself, and the nonce (claimed last, so that unsigned
//! junk cannot use up nonces).

use http::{HeaderMap, StatusCode};
use roster_core::access_key::SigningKey;
use roster_core::{AppKind, Directory};

use crate::codes;
use crate::error::QuickBiError;
use crate::params::Params;
use crate::sign;

/// How far a request's timestamp may be from the server's clock (Alibaba: 15 minutes).
pub(crate) const TIME_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Longest accepted nonce; the SDK sends 32 hex digits.
const MAX_NONCE_LEN: usize = 128;

/// What the handlers need of a request beyond its parameters.
pub(crate) struct RequestParts<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
    /// Decoded query parameters only (the ACS3 canonical query excludes the body).
    pub(crate) query: &'a [(String, String)],
    /// The key the request's head named, found before the body was read
    /// (`known_key`), so that the signature check does not look it up again.
    pub(crate) known_key: Option<&'a SigningKey>,
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn signature_mismatch() -> QuickBiError {
    QuickBiError::bad(
        codes::SIGNATURE_DOES_NOT_MATCH,
        "Specified signature is not matched with our calculation.",
    )
}

fn incomplete(why: &str) -> QuickBiError {
    QuickBiError::bad(
        codes::INCOMPLETE_SIGNATURE,
        format!("The request signature does not conform to Aliyun standards: {why}."),
    )
}

/// Checks a timestamp against the window and returns it in ms.
fn check_time(value: &str, now: i64) -> Result<i64, QuickBiError> {
    let ts = sign::parse_timestamp(value).ok_or_else(|| {
        QuickBiError::bad(
            codes::TIMESTAMP_FORMAT,
            "Specified time stamp or date value is not well formatted.",
        )
    })?;
    if (now - ts).abs() > TIME_WINDOW_MS {
        return Err(QuickBiError::bad(
            codes::TIMESTAMP_EXPIRED,
            "Specified time stamp or date value is expired.",
        ));
    }
    Ok(ts)
}

async fn key(
    dir: &Directory,
    req: &RequestParts<'_>,
    key_id: &str,
) -> Result<SigningKey, QuickBiError> {
    if let Some(known) = req.known_key.filter(|k| k.key.key_id == key_id) {
        return Ok(known.clone());
    }
    dir.signing_key(key_id, AppKind::Alibaba)
        .await?
        .ok_or_else(|| {
            QuickBiError::new(
                StatusCode::NOT_FOUND,
                codes::ACCESS_KEY_NOT_FOUND,
                "Specified access key is not found.",
            )
        })
}

async fn claim_nonce(
    dir: &Directory,
    key_id: &str,
    nonce: &str,
    ts: i64,
    now: i64,
) -> Result<(), QuickBiError> {
    // The nonce must stay claimed for as long as its timestamp is acceptable.
    let window = (ts + TIME_WINDOW_MS - now).max(1);
    if dir.claim_signature_nonce(key_id, nonce, window).await? {
        Ok(())
    } else {
        Err(QuickBiError::bad(
            codes::SIGNATURE_NONCE_USED,
            "Specified signature nonce was used already.",
        ))
    }
}

fn check_nonce(nonce: &str, name: &str) -> Result<(), QuickBiError> {
    if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN {
        return Err(QuickBiError::invalid(
            name,
            format!("must be 1 to {MAX_NONCE_LEN} characters"),
        ));
    }
    Ok(())
}

/// The known access key the request's head names (an ACS3 `Authorization`, or a legacy
/// `AccessKeyId` in the query, where the SDK puts it). Only such a request has its body
/// read up to `MAX_BODY`; any other is read up to `UNSIGNED_BODY`, so that a client
/// without a key cannot make the server hold megabytes. It refuses nothing itself: the
/// full check after the body answers as before, in its own order, with this key.
pub(crate) async fn known_key(
    dir: &Directory,
    headers: &HeaderMap,
    query: &Params,
) -> Option<SigningKey> {
    let key_id = match header(headers, "authorization") {
        Some(auth) if auth.trim_start().starts_with(sign::ACS3) => {
            sign::parse_acs3_authorization(auth).map(|a| a.key_id)
        }
        _ => query.get("AccessKeyId").map(str::to_owned),
    };
    // A failed lookup is no key here; the full check looks again and answers for it.
    dir.signing_key(&key_id?, AppKind::Alibaba)
        .await
        .ok()
        .flatten()
}

/// Verifies the request's signature and returns the key it was signed with.
pub(crate) async fn authenticate(
    dir: &Directory,
    req: &RequestParts<'_>,
    params: &Params,
) -> Result<SigningKey, QuickBiError> {
    let now = dir.clock().now_ms();
    if let Some(auth) = header(req.headers, "authorization") {
        if auth.trim_start().starts_with(sign::ACS3) {
            return acs3(dir, req, auth, now).await;
        }
    }
    if params.get("Signature").is_some() {
        return rpc_v1(dir, req, params, now).await;
    }
    if req.headers.contains_key("x-acs-bearer-token") {
        return Err(incomplete(
            "bearer tokens are not supported; sign with an access key",
        ));
    }
    // A legacy RPC request that names its key but carries no signature misses the
    // signature, not the key it sent.
    if params.get("AccessKeyId").is_some() {
        return Err(QuickBiError::missing("Signature"));
    }
    Err(QuickBiError::missing("AccessKeyId"))
}

async fn acs3(
    dir: &Directory,
    req: &RequestParts<'_>,
    authorization: &str,
    now: i64,
) -> Result<SigningKey, QuickBiError> {
    let auth = sign::parse_acs3_authorization(authorization)
        .ok_or_else(|| incomplete("malformed Authorization header"))?;
    for required in sign::ACS3_REQUIRED_SIGNED {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(incomplete(&format!("the header {required} must be signed")));
        }
    }
    let date =
        header(req.headers, "x-acs-date").ok_or_else(|| QuickBiError::missing("x-acs-date"))?;
    let ts = check_time(date, now)?;
    let nonce = header(req.headers, "x-acs-signature-nonce")
        .ok_or_else(|| QuickBiError::missing("x-acs-signature-nonce"))?;
    check_nonce(nonce, "x-acs-signature-nonce")?;
    let payload = sign::sha256_hex(req.body);
    let claimed = header(req.headers, "x-acs-content-sha256")
        .ok_or_else(|| QuickBiError::missing("x-acs-content-sha256"))?;
    if !sign::same(&payload, claimed) {
        return Err(signature_mismatch());
    }
    let key = key(dir, req, &auth.key_id).await?;
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let canonical = sign::acs3_canonical_request(
        req.method,
        req.path,
        req.query,
        &headers,
        &auth.signed_headers,
        &payload,
    )
    .ok_or_else(|| incomplete("a signed header is missing from the request"))?;
    if !sign::same(
        &sign::acs3_signature(&key.secret, &canonical),
        &auth.signature,
    ) {
        return Err(signature_mismatch());
    }
    claim_nonce(dir, &auth.key_id, nonce, ts, now).await?;
    Ok(key)
}

async fn rpc_v1(
    dir: &Directory,
    req: &RequestParts<'_>,
    params: &Params,
    now: i64,
) -> Result<SigningKey, QuickBiError> {
    let require = |name: &str| params.get(name).ok_or_else(|| QuickBiError::missing(name));
    let key_id = require("AccessKeyId")?;
    let method = require("SignatureMethod")?;
    let version = require("SignatureVersion")?;
    if method != "HMAC-SHA1" {
        return Err(incomplete("SignatureMethod must be HMAC-SHA1"));
    }
    if version != "1.0" {
        return Err(incomplete("SignatureVersion must be 1.0"));
    }
    let ts = check_time(require("Timestamp")?, now)?;
    let nonce = require("SignatureNonce")?;
    check_nonce(nonce, "SignatureNonce")?;
    let signature = require("Signature")?;
    let key = key(dir, req, key_id).await?;
    let expected = sign::rpc_signature(
        &key.secret,
        &sign::rpc_string_to_sign(req.method, params.all()),
    );
    if !sign::same(&expected, signature) {
        return Err(signature_mismatch());
    }
    claim_nonce(dir, key_id, nonce, ts, now).await?;
    Ok(key)
}
