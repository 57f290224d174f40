//! Every Quick BI / Alibaba Cloud error code Roster sends, one const each, with the page it
//! comes from, so that the table can be reviewed against the vendor's documentation.
//!
//! Sources: "Quick BI: `BatchAddFeishuUsers`", error codes (seed `000_2ed0657152716cee.txt`,
//! spec 3.6); the group-member actions' error codes (spec 3.7); the common error catalogue
//! of Alibaba Cloud POP gateways (spec 3.6, "Gateway errors").

// ----- gateway (authentication and request form), Alibaba Cloud common error codes -----

/// 400 `SignatureDoesNotMatch`: "Specified signature is not matched with our calculation."
pub(crate) const SIGNATURE_DOES_NOT_MATCH: &str = "SignatureDoesNotMatch";
/// 404 `InvalidAccessKeyId.NotFound`: "Specified access key is not found."
pub(crate) const ACCESS_KEY_NOT_FOUND: &str = "InvalidAccessKeyId.NotFound";
/// 400 `IncompleteSignature`: the signature (header or parameters) is malformed.
pub(crate) const INCOMPLETE_SIGNATURE: &str = "IncompleteSignature";
/// 400 `SignatureNonceUsed`: "Specified signature nonce was used already."
pub(crate) const SIGNATURE_NONCE_USED: &str = "SignatureNonceUsed";
/// 400 `InvalidTimeStamp.Expired`: the timestamp is more than 15 minutes off.
pub(crate) const TIMESTAMP_EXPIRED: &str = "InvalidTimeStamp.Expired";
/// 400 `InvalidTimeStamp.Format`: the timestamp is not `YYYY-MM-DDThh:mm:ssZ`.
pub(crate) const TIMESTAMP_FORMAT: &str = "InvalidTimeStamp.Format";
/// 400 `MissingParameter`: a mandatory parameter is absent.
pub(crate) const MISSING_PARAMETER: &str = "MissingParameter";
/// 400 `InvalidParameter`: a parameter has a bad value.
pub(crate) const INVALID_PARAMETER: &str = "InvalidParameter";
/// 404 `InvalidAction.NotFound`: "Specified api is not found, please check your url and method."
pub(crate) const ACTION_NOT_FOUND: &str = "InvalidAction.NotFound";
/// 400 `InvalidVersion`: "Specified parameter Version is not valid."
pub(crate) const INVALID_VERSION: &str = "InvalidVersion";
/// 403 `Forbidden.RAM`: the key's app lacks the permission (RAM policy) for the action.
pub(crate) const FORBIDDEN: &str = "Forbidden.RAM";
/// 500 `InternalError`: "The request processing has failed due to some unknown error."
pub(crate) const INTERNAL_ERROR: &str = "InternalError";

// ----- Quick BI, BatchAddFeishuUsers (all HTTP 400) -----

/// `Feishu.Parameter.Error`: "Feishu config error: %s." (`FeishuUsers` unusable).
pub(crate) const FEISHU_PARAMETER_ERROR: &str = "Feishu.Parameter.Error";
/// `Usergroup.Not.Exist`: "The user group does not exist."
pub(crate) const USERGROUP_NOT_EXIST: &str = "Usergroup.Not.Exist";
/// `Instance.Over.MaxLicense`: the organisation is at its licence cap.
pub(crate) const OVER_MAX_LICENSE: &str = "Instance.Over.MaxLicense";
/// `Viewer.CannotHave.CustomRole`: "Organization viewer cannot have custom roles."
pub(crate) const VIEWER_CANNOT_HAVE_ROLE: &str = "Viewer.CannotHave.CustomRole";
/// `UserAnalyst.NotSupport.ThisRole`: "This role has permissions that analysts cannot grant."
pub(crate) const ANALYST_NOT_SUPPORT_ROLE: &str = "UserAnalyst.NotSupport.ThisRole";

// ----- Quick BI, per-entry FailInfos codes of BatchAddFeishuUsers -----

/// `ACCOUNT_EXIST` (docs example): the user is already a member.
pub(crate) const ACCOUNT_EXIST: &str = "ACCOUNT_EXIST";
/// `Feishu.User.Need.Sync.Contact`: the id names no user of the synced directory.
pub(crate) const USER_NEED_SYNC_CONTACT: &str = "Feishu.User.Need.Sync.Contact";
/// `Mail.Invalid`: "Email/phone number is invalid." (the user has neither).
pub(crate) const MAIL_INVALID: &str = "Mail.Invalid";

// ----- Quick BI, user and group-member actions (all HTTP 400) -----

/// `User.Not.In.Organization`: the user id names no member of the organisation.
pub(crate) const USER_NOT_IN_ORGANIZATION: &str = "User.Not.In.Organization";
/// `Invalid.Parameter`: a Quick BI parameter has a bad value.
pub(crate) const QB_INVALID_PARAMETER: &str = "Invalid.Parameter";
/// `Parameter.Length.Exceed`: a text parameter is too long.
pub(crate) const PARAMETER_LENGTH_EXCEED: &str = "Parameter.Length.Exceed";
/// `Usergroup.Name.Duplicated`: another group already has this name.
pub(crate) const USERGROUP_NAME_DUPLICATED: &str = "Usergroup.Name.Duplicated";
