//! Authentication of `/v2/{project_id}/…` requests (spec 2.3, 2.5): either a valid
//! `SDK-HMAC-SHA256` signature by a Huawei access key, or (when no `Authorization` is sent)
//! an `X-Auth-Token` from `POST /v3/auth/tokens`. Either way the credential's project must
//! be the path's project. The body is read here (bounded), after every check that needs no
//! body, because the signature covers its raw bytes; handlers get it back unchanged.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;
use roster_core::access_key::SigningKey;
use roster_core::{AppKind, Caller, ProjectId};

use crate::codes;
use crate::error::HuaweiError;
use crate::signing::{self, Received};
use crate::HuaweiState;

/// Who an authenticated request is, as a request extension.
#[derive(Debug, Clone)]
pub(crate) struct Authed {
    pub(crate) caller: Caller,
}

/// The answer to a body over the size limit.
pub(crate) fn body_too_large() -> HuaweiError {
    HuaweiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::PARAM_INVALID,
        "the request body is too large",
    )
}

/// The answer to a body that could not be read: over the limit (413), or stalled or
/// broken off by the client (400, saying so).
pub(crate) fn unreadable_body(e: &axum::Error) -> HuaweiError {
    if roster_http::body_over_limit(e) {
        body_too_large()
    } else {
        HuaweiError::param(format!("the request body could not be read: {e}"))
    }
}

/// The project id of a `/v2/{project_id}/…` path.
fn path_project(path: &str) -> Option<&str> {
    path.strip_prefix("/v2/")?.split('/').next()
}

pub(crate) async fn authenticate(
    State(state): State<HuaweiState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    // Everything that needs no body is checked before the body is read, so that a request
    // without a known key or token costs no memory: reading first let anyone hold
    // `body_limit` bytes per connection without any credential.
    let credential = match credential(&state, &parts).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let bytes = match to_bytes(body, state.config.body_limit).await {
        Ok(bytes) => bytes,
        Err(e) => return unreadable_body(&e).into_response(),
    };
    match verify(&parts, &bytes, credential) {
        Ok(caller) => {
            parts.extensions.insert(Authed { caller });
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => e.into_response(),
    }
}

/// A header's value as text. The bytes are decoded leniently (as the Quick BI verifier
/// does) rather than with `to_str`, which fails on any byte that is not visible ASCII and
/// would make a header that is there look absent. The values read this way (the
/// credentials, the date, the project) must be ASCII to be valid, so a replaced byte can
/// only make them fail their own checks.
fn header(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
}

/// A header's value as the bytes received, trimmed, for the canonical request: the SDK signs
/// a header's text and sends its UTF-8 bytes (`Signer._process_canonical_headers`), so a
/// signed `User-Agent` of "café" must be read byte for byte, neither refused nor altered.
fn header_bytes(parts: &Parts, name: &str) -> Option<Vec<u8>> {
    parts
        .headers
        .get(name)
        .map(|v| v.as_bytes().trim_ascii().to_vec())
}

/// What the request's head proves before its body is read.
enum Credential {
    /// A well-formed signature within its date window by a known key; its HMAC, which
    /// covers the body, is still to be checked.
    Signed {
        auth: signing::Authorization,
        date: String,
        // Boxed: a key with its caller is several times the size of the token variant.
        key: Box<SigningKey>,
    },
    /// A valid `X-Auth-Token`, which needs no body.
    Token {
        project: Option<ProjectId>,
        caller: Caller,
    },
}

/// The checks of spec §2.5 that need no body: the `Authorization` header parses, signs the
/// host and the date, the date is within 15 minutes and the key exists; or the token is
/// valid.
async fn credential(state: &HuaweiState, parts: &Parts) -> Result<Credential, HuaweiError> {
    if let Some(value) = header(parts, "authorization") {
        let auth = signing::parse_authorization(&value)
            .ok_or_else(|| HuaweiError::auth("the Authorization header is malformed"))?;
        // The host and the date must be signed, or a signature could be replayed against
        // another host or forever (API Gateway demands both too).
        for required in ["host", "x-sdk-date"] {
            if !auth.signed_headers.iter().any(|h| h == required) {
                return Err(HuaweiError::auth(format!("{required} must be signed")));
            }
        }
        let date = header(parts, "x-sdk-date").unwrap_or_default();
        let at = signing::parse_sdk_date(&date)
            .ok_or_else(|| HuaweiError::auth("X-Sdk-Date is missing or malformed"))?;
        if (state.dir.clock().now_ms() - at).abs() > signing::MAX_SKEW_MS {
            return Err(HuaweiError::auth(
                "X-Sdk-Date is more than 15 minutes from the server time",
            ));
        }
        let key = state
            .dir
            .signing_key(&auth.access, AppKind::Huawei)
            .await?
            .ok_or_else(|| HuaweiError::auth("Get secretKey failed, ak not exist"))?;
        Ok(Credential::Signed {
            auth,
            date,
            key: Box::new(key),
        })
    } else if let Some(token) = header(parts, "x-auth-token") {
        let (key, caller) = state
            .dir
            .authenticate_access_key_token(&token, AppKind::Huawei)
            .await?
            .ok_or_else(|| HuaweiError::auth("the token is invalid or expired"))?;
        // A token is whole without the body: its project is checked now, before the body
        // is read.
        check_project(parts, key.project_id.as_ref())?;
        Ok(Credential::Token {
            project: key.project_id,
            caller,
        })
    } else {
        Err(HuaweiError::auth(
            "no Authorization signature and no X-Auth-Token",
        ))
    }
}

/// The rest of the checks, once the body is read: the HMAC, then the project (spec §2.5:
/// parse, date, HMAC, then the project), so that a request without valid credentials
/// learns nothing about projects and gets the 401 an SDK expects for a bad signature.
fn verify(parts: &Parts, body: &[u8], credential: Credential) -> Result<Caller, HuaweiError> {
    let (key_project, caller) = match credential {
        Credential::Signed { auth, date, key } => {
            check_signature(parts, body, &auth, &date, &key.secret)?;
            (key.key.project_id, key.caller)
        }
        Credential::Token { project, caller } => (project, caller),
    };
    check_project(parts, key_project.as_ref())?;
    Ok(caller)
}

/// The path's project must be the credential's, and `X-Project-Id`, when sent, the path's.
fn check_project(parts: &Parts, key_project: Option<&ProjectId>) -> Result<(), HuaweiError> {
    let project = path_project(parts.uri.path()).unwrap_or_default();
    if let Some(sent) = header(parts, "x-project-id") {
        if sent != project {
            return Err(HuaweiError::new(
                StatusCode::FORBIDDEN,
                codes::FORBIDDEN,
                "X-Project-Id does not match the project in the path",
            ));
        }
    }
    if key_project.map(ProjectId::as_str) != Some(project) {
        return Err(HuaweiError::new(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            "the credential is not valid for this project",
        ));
    }
    Ok(())
}

/// Rebuilds the canonical request from what was received, compares the HMAC, and then makes
/// sure the signature covers the body the handlers will act on.
fn check_signature(
    parts: &Parts,
    body: &[u8],
    auth: &signing::Authorization,
    date: &str,
    secret: &str,
) -> Result<(), HuaweiError> {
    let lookup = |name: &str| header_bytes(parts, name);
    let received = Received {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        header: &lookup,
        body,
    };
    let canonical = signing::canonical_request(&received, &auth.signed_headers)
        .map_err(|name| HuaweiError::auth(format!("the signed header {name} is missing")))?;
    let expected = signing::sign(secret, &signing::string_to_sign(date, &canonical));
    if !signing::signatures_match(&expected, &auth.signature) {
        return Err(HuaweiError::auth("verify aksk signature fail"));
    }
    match signing::body_cover(&received) {
        signing::BodyCover::Signed => Ok(()),
        // The SDK's signer does sign this (a body with a non-JSON Content-Type), and the
        // signature verified, but it vouches for no particular body: acting on it would let
        // anyone who saw the request send another body under its signature. Every body
        // Roster takes is JSON, which the SDK signs in full.
        signing::BodyCover::Unsigned => Err(HuaweiError::auth(
            "the body is not signed (X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD); \
             send it as application/json so that its hash is signed",
        )),
        signing::BodyCover::Mismatch => Err(HuaweiError::auth(
            "X-Sdk-Content-Sha256 is not the SHA-256 of the body",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SK: &str = "hwTestSecretKey0000000000000000000000001";
    const PROJECT: &str = "0123456789abcdef0123456789abcdef";
    const DATE: &str = "20250101T000000Z";

    /// A request as it arrives, header values given as raw bytes.
    fn parts(method: &str, uri: &str, headers: &[(&str, &[u8])]) -> Parts {
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(
                *name,
                http::HeaderValue::from_bytes(value).expect("a valid header value"),
            );
        }
        builder.body(()).expect("a valid request").into_parts().0
    }

    fn authorization(signed: &str, signature: &str) -> signing::Authorization {
        signing::parse_authorization(&format!(
            "SDK-HMAC-SHA256 Access=HWTESTAK0000000000001, SignedHeaders={signed}, Signature={signature}"
        ))
        .expect("a well-formed Authorization")
    }

    /// The official SDK with `HttpConfig.user_agent = "café"` sends the UTF-8 bytes and signs
    /// the text (signature printed by huaweicloudsdkcore 3.1.219). The verifier used to read
    /// headers with `to_str`, which refused the value, and answered "a signed header is
    /// missing".
    #[test]
    fn a_signed_header_with_non_ascii_bytes_verifies() {
        let p = parts(
            "GET",
            &format!("/v2/{PROJECT}/users?limit=1"),
            &[
                ("content-type", b"application/json"),
                ("host", b"127.0.0.1:18080"),
                ("user-agent", "café".as_bytes()),
                ("x-sdk-date", DATE.as_bytes()),
            ],
        );
        let auth = authorization(
            "content-type;host;user-agent;x-sdk-date",
            "7e018872574325424da7a4239361871c5eac5d0c39a39e8b5cf6ccadaca1ed66",
        );
        check_signature(&p, b"", &auth, DATE, SK).expect("the SDK's signature verifies");
        // Another byte in the value is another signature.
        let other = parts(
            "GET",
            &format!("/v2/{PROJECT}/users?limit=1"),
            &[
                ("content-type", b"application/json"),
                ("host", b"127.0.0.1:18080"),
                ("user-agent", "cafè".as_bytes()),
                ("x-sdk-date", DATE.as_bytes()),
            ],
        );
        let err = check_signature(&other, b"", &auth, DATE, SK).unwrap_err();
        assert!(
            err.msg.contains("verify aksk signature fail"),
            "{}",
            err.msg
        );
    }

    /// A GET that the SDK signs with a non-JSON Content-Type carries a signed
    /// `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` and signs the empty hash (signature printed
    /// by the SDK); it used to get 401.
    #[test]
    fn a_bodyless_request_with_unsigned_payload_verifies() {
        let p = parts(
            "GET",
            &format!("/v2/{PROJECT}/users?limit=1"),
            &[
                ("content-type", b"text/plain"),
                ("host", b"127.0.0.1:18080"),
                ("user-agent", b"huaweicloud-usdk-python/3.0"),
                ("x-sdk-content-sha256", b"UNSIGNED-PAYLOAD"),
                ("x-sdk-date", DATE.as_bytes()),
            ],
        );
        let auth = authorization(
            "content-type;host;user-agent;x-sdk-content-sha256;x-sdk-date",
            "8e12d4e7d00705c9bb241131c8a1efa406e01682fa70f57b9acb8b85dcd01b2f",
        );
        check_signature(&p, b"", &auth, DATE, SK).expect("the SDK's signature verifies");
    }

    /// A body the SDK signed as `UNSIGNED-PAYLOAD` verifies as the SDK signed it, but is not
    /// acted on, with an answer that says why.
    #[test]
    fn a_body_signed_as_unsigned_payload_is_refused_with_its_reason() {
        let p = parts(
            "POST",
            &format!("/v2/{PROJECT}/users/batch-create"),
            &[
                ("content-type", b"text/plain"),
                ("host", b"127.0.0.1:18080"),
                ("user-agent", b"huaweicloud-usdk-python/3.0"),
                ("x-sdk-content-sha256", b"UNSIGNED-PAYLOAD"),
                ("x-sdk-date", DATE.as_bytes()),
            ],
        );
        let auth = authorization(
            "content-type;host;user-agent;x-sdk-content-sha256;x-sdk-date",
            "61f15ecf979dafb753fca84b3652b65689483fca7b63c2a7f3dea6a4c282c1c7",
        );
        let err = check_signature(&p, br#"{"users": []}"#, &auth, DATE, SK).unwrap_err();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::UNAUTHORIZED, "APIGW.0301")
        );
        assert!(err.msg.contains("not signed"), "{}", err.msg);
    }

    /// The body-swap: a request signed over one body, sent with another and an added,
    /// unsigned `X-Sdk-Content-Sha256` naming the first body's hash. Under the SDK's rule the
    /// HMAC matches, so the hash must be checked against the body received.
    #[test]
    fn a_swapped_body_under_the_original_hash_is_refused() {
        let body = br#"{"users": []}"#;
        let headers: [(&str, &[u8]); 4] = [
            ("content-type", b"application/json"),
            ("host", b"127.0.0.1:18080"),
            ("user-agent", b"huaweicloud-usdk-python/3.0"),
            ("x-sdk-date", DATE.as_bytes()),
        ];
        let uri = format!("/v2/{PROJECT}/users/batch-create");
        let signed = "content-type;host;user-agent;x-sdk-date";
        let original = parts("POST", &uri, &headers);
        let lookup = |name: &str| header_bytes(&original, name);
        let received = Received {
            method: "POST",
            path: &uri,
            query: "",
            header: &lookup,
            body,
        };
        let names: Vec<String> = signed.split(';').map(str::to_owned).collect();
        let canonical = signing::canonical_request(&received, &names).unwrap();
        let signature = signing::sign(SK, &signing::string_to_sign(DATE, &canonical));
        let auth = authorization(signed, &signature);
        check_signature(&original, body, &auth, DATE, SK).expect("the original verifies");

        let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body));
        let mut swapped_headers = headers.to_vec();
        swapped_headers.push(("x-sdk-content-sha256", hash.as_bytes()));
        let swapped = parts("POST", &uri, &swapped_headers);
        let err = check_signature(&swapped, br#"{"users": [{}]}"#, &auth, DATE, SK).unwrap_err();
        assert!(
            err.msg.contains("not the SHA-256 of the body"),
            "{}",
            err.msg
        );
    }
}
