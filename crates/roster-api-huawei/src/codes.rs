//! Huawei error codes, one const per code. `APIGW.*` are API Gateway's authentication codes
//! (Huawei Cloud API Gateway error-code page, quoted in spec 2.6); `WKS.0001` is Workspace's
//! own (Workspace error-code page). The exact Workspace codes for the other validation
//! failures are not published (spec 2.6), so Roster defines stable `WKS.0001xxxx` codes of
//! its own for them, listed here and in README.

/// A code and its default message.
pub(crate) type Code = (&'static str, &'static str);

/// 401: any AK/SK or token authentication failure (API Gateway).
pub(crate) const AUTH_FAILED: Code = ("APIGW.0301", "Incorrect IAM authentication information");
/// 403: the credential is valid but not for this project (API Gateway).
pub(crate) const FORBIDDEN: Code = ("APIGW.0302", "The IAM authorization failed");
/// 404: no such API (API Gateway).
pub(crate) const NO_API: Code = (
    "APIGW.0101",
    "The API does not exist or has not been published in the environment",
);
/// 405: method not allowed on this API.
pub(crate) const METHOD_NOT_ALLOWED: Code = (
    "WKS.00010405",
    "The method specified in the request is not allowed",
);
/// 400: the request body is empty (Workspace documented code).
pub(crate) const EMPTY_BODY: Code = (
    "WKS.0001",
    "The request message input by the interface is empty.",
);
/// 400: a parameter is malformed or out of range (Roster's code).
pub(crate) const PARAM_INVALID: Code = ("WKS.00010001", "Invalid parameter");
/// 400: a user name is taken, case-insensitively (Roster's code; the SDK's own example
/// message is "user name already exist").
pub(crate) const USER_NAME_EXISTS: Code = ("WKS.00010002", "user name already exist");
/// 400: an e-mail address is taken.
pub(crate) const EMAIL_EXISTS: Code = ("WKS.00010003", "user email already exist");
/// 400: a phone number is taken.
pub(crate) const PHONE_EXISTS: Code = ("WKS.00010004", "user phone already exist");
/// 400: the e-mail address is invalid.
pub(crate) const EMAIL_INVALID: Code = ("WKS.00010005", "Invalid user email");
/// 400: the phone number is invalid.
pub(crate) const PHONE_INVALID: Code = ("WKS.00010006", "Invalid user phone");
/// 400: the password fails the password policy.
pub(crate) const PASSWORD_INVALID: Code = (
    "WKS.00010007",
    "The password does not meet the password policy",
);
/// 400: the expiry time is malformed.
pub(crate) const EXPIRY_INVALID: Code = ("WKS.00010008", "Invalid account_expires");
/// 400: a named user group does not exist.
pub(crate) const GROUP_NOT_EXIST: Code = ("WKS.00010009", "The user group does not exist");
/// 400: the user name breaks the naming rules.
pub(crate) const USER_NAME_INVALID: Code = ("WKS.00010010", "Invalid user name");
/// 400: the tenant's licence allows no more users.
pub(crate) const QUOTA_EXCEEDED: Code = ("WKS.00010011", "The user quota is insufficient");
/// 404: the user does not exist.
pub(crate) const USER_NOT_FOUND: Code = ("WKS.00010012", "The user does not exist");
/// 404: the user group does not exist (single-group APIs).
pub(crate) const GROUP_NOT_FOUND: Code = ("WKS.00010013", "The user group does not exist");
/// 400: a user group with this name exists.
pub(crate) const GROUP_NAME_EXISTS: Code = ("WKS.00010014", "The user group name already exists");
/// 400: the user group still has users.
pub(crate) const GROUP_NOT_EMPTY: Code = ("WKS.00010015", "The user group still has users");
/// 400: the request conflicts with the entity's state.
pub(crate) const CONFLICT: Code = (
    "WKS.00010016",
    "The operation conflicts with the current state",
);
/// 500: internal error (detail logged, never sent).
pub(crate) const INTERNAL: Code = ("WKS.00000500", "An internal service error occurred");
