//! Feishu error codes, one constant each, with the document they come from. The table is
//! kept in the order of `shared/spec/feishu-wire.md` §11 so that it can be reviewed
//! against it.

/// A Feishu error: its number and its `msg` text as Feishu writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Code(pub i64, pub &'static str);

// Authentication (server error codes page, ugjM14COyUjL4ITN).
/// A1 with a missing `app_id`/`app_secret` or a malformed body.
pub(crate) const INVALID_PARAM: Code = Code(10003, "invalid param");
/// A1 with a wrong secret.
pub(crate) const APP_SECRET_INVALID: Code = Code(10014, "app secret invalid");
/// A1 with an unknown app id (same code, other text, seen in client fixtures).
pub(crate) const APP_ID_NOT_EXISTS: Code = Code(10014, "app id not exists");
/// No Authorization header.
pub(crate) const NEED_TOKEN: Code = Code(99_991_661, "Need a token");
/// A bearer token that does not start with `t-` or `u-`.
pub(crate) const TOKEN_MALFORMED: Code = Code(99_991_671, "Invalid token: must start with t-/u-");
/// An unknown, expired or revoked token.
pub(crate) const TOKEN_INVALID: Code = Code(
    99_991_663,
    "Invalid access token for authorization. Please make a request with token attached",
);
/// The app lacks the scope the operation needs.
pub(crate) const SCOPE_REQUIRED: Code = Code(
    99_991_672,
    "Access denied. One of the following scopes is required: contact:contact",
);
/// Unknown path.
pub(crate) const NOT_FOUND: Code = Code(99_991_201, "resource not find");
/// Known path, wrong method.
pub(crate) const METHOD_MISMATCH: Code = Code(99_991_301, "request method doesn't match");

// Contact v3 (per-API error tables of contact-v3/user/* and contact-v3/department/*).
/// Malformed body, bad enum, batch size, empty query.
pub(crate) const PARAM_ERROR: Code = Code(40001, "param error");
/// Server fault.
pub(crate) const INTERNAL: Code = Code(40003, "internal error");
/// Department outside the app's contact scope.
pub(crate) const NO_DEPT_AUTHORITY: Code = Code(40004, "no dept authority error");
/// Page size out of range.
pub(crate) const PAGE_SIZE_INVALID: Code = Code(40011, "page size is invalid");
/// Page token not issued by this server.
pub(crate) const PAGE_TOKEN_INVALID: Code = Code(40012, "page token is invalid error");
/// Unknown department.
pub(crate) const DEPARTMENT_NOT_EXIST: Code = Code(40015, "department not exist");
/// `client_token` reused with another request.
pub(crate) const NOT_SAME_REQUEST: Code = Code(40021, "no a same request error");
/// Mobile already used by an active user.
pub(crate) const MOBILE_EXISTS: Code = Code(41001, "mobile has already exist error");
/// E-mail already used by an active user.
pub(crate) const EMAIL_EXISTS: Code = Code(41002, "email has already exist error");
/// Mobile malformed.
pub(crate) const MOBILE_INVALID: Code = Code(41004, "mobile is invalid error");
/// E-mail malformed.
pub(crate) const EMAIL_INVALID: Code = Code(41005, "email is invalid error");
/// No name.
pub(crate) const NO_USER_NAME: Code = Code(41006, "no user name error");
/// The tenant's seats are used up (create user doc: "exceed bill seat limit error").
pub(crate) const SEAT_LIMIT: Code = Code(41008, "exceed bill seat limit error");
/// No mobile.
pub(crate) const NO_MOBILE: Code = Code(41010, "no mobile error");
/// `user_id` taken.
pub(crate) const USER_ID_EXISTS: Code = Code(41011, "user id already exist error");
/// Malformed or unknown user id.
pub(crate) const USER_ID_INVALID: Code = Code(41012, "user id invalid error");
/// No department.
pub(crate) const DEPARTMENT_REQUIRED: Code = Code(41017, "department is required");
/// Leader is the user.
pub(crate) const LEADER_SELF: Code = Code(41030, "set leader to oneself error");
/// More than 50 departments.
pub(crate) const TOO_MANY_DEPARTMENTS: Code = Code(41033, "user in too many departments error");
/// Gender out of range.
pub(crate) const GENDER_INVALID: Code = Code(41038, "gender is invalid error");
/// Employee type out of range.
pub(crate) const EMPLOYEE_TYPE_INVALID: Code = Code(41059, "employee type is invalid error");
/// Job title too long.
pub(crate) const JOB_TITLE_TOO_LONG: Code = Code(41063, "job title is too long error");
/// Name too long.
pub(crate) const NAME_TOO_LONG: Code = Code(41070, "name is too long error");
/// English name too long.
pub(crate) const EN_NAME_TOO_LONG: Code = Code(41071, "en_name is too long error");
/// Nickname too long.
pub(crate) const NICKNAME_TOO_LONG: Code = Code(41072, "nickname is too long error");
/// Resign acceptor invalid.
pub(crate) const ACCEPTOR_INVALID: Code = Code(41052, "user resign acceptor is invalid error");
/// U2 without `new_user_id`.
pub(crate) const NEW_USER_ID_REQUIRED: Code = Code(41054, "new user id is required error");
/// Patch/delete a resigned user.
pub(crate) const USER_RESIGNED: Code = Code(42006, "user has resigned error");
/// Resurrect with a mobile an active user holds.
pub(crate) const RESURRECT_MOBILE_TAKEN: Code = Code(44030, "Mobile duplicated");
/// Resurrect with an e-mail an active user holds.
pub(crate) const RESURRECT_EMAIL_TAKEN: Code = Code(44031, "Email duplicated");
/// Resurrect with a user id an active user holds.
pub(crate) const RESURRECT_USER_ID_TAKEN: Code = Code(44032, "UserID duplicated");
/// Resurrect an active user.
pub(crate) const USER_NOT_RESIGNED: Code = Code(44033, "User not resigned");
/// Changing `orders` without `department_ids`.
pub(crate) const ORDERS_NEED_DEPARTMENTS: Code =
    Code(44002, "orders must come with department_ids");
/// U7 missing or wrong parameter, or an unknown user.
pub(crate) const LOGOUT_PARAM_INVALID: Code = Code(1_080_001, "param is invalid");
/// U7 with an unknown session id.
pub(crate) const LOGOUT_SID_INVALID: Code = Code(1_084_001, "sid is invalid");
/// U7 with a logout reason outside 34, 35, 36.
pub(crate) const LOGOUT_REASON_INVALID: Code = Code(1_084_002, "logout_reason is invalid");
/// No e-mail and no mobile.
pub(crate) const NO_EMAIL_OR_MOBILE: Code = Code(41009, "no email or mobile error");
/// Custom department id taken.
pub(crate) const DEPT_ID_EXISTS: Code = Code(43007, "duplicated custom department id");
/// Custom department id malformed.
pub(crate) const DEPT_ID_INVALID: Code = Code(43008, "invalid custom department id");
/// Deleting a department that still has members (department delete doc).
pub(crate) const DEPT_HAS_MEMBERS: Code = Code(43011, "delete has member dept error");
/// Deleting a department that still has child departments (department delete doc).
pub(crate) const DEPT_HAS_CHILDREN: Code = Code(43012, "delete has sub dept department error");
/// Deleting, moving or changing the root department (department delete and patch docs).
pub(crate) const ROOT_DEPT: Code = Code(40002, "process root dept error");
/// D1 without a name (department create doc).
pub(crate) const DEPT_NAME_EMPTY: Code = Code(40016, "dept name can not be nul error");
/// D1 without `parent_department_id` (department create doc).
pub(crate) const MISSING_PARENT_ID: Code = Code(44101, "miss parent department id error");
/// `GET /departments/parent` without `department_id` (department parent doc).
pub(crate) const MISSING_DEPARTMENT_ID: Code = Code(44102, "miss department_id error");
/// Too many children under one department.
pub(crate) const DEPT_TOO_MANY_CHILDREN: Code = Code(43013, "department children exceed limit");
/// Tree too deep.
pub(crate) const DEPT_TOO_DEEP: Code = Code(43019, "department level exceed limit");
/// Duplicate name under one parent.
pub(crate) const DEPT_NAME_EXISTS: Code = Code(43022, "department name duplicated");
/// Department name with a `/`.
pub(crate) const DEPT_NAME_INVALID: Code = Code(43029, "department name is invalid");
/// Leader resigned.
pub(crate) const LEADER_RESIGNED: Code = Code(44021, "leader is resigned");
/// Leader unknown.
pub(crate) const LEADER_INVALID: Code = Code(44022, "leaderID is Invalid");
/// Unknown department in a user body.
pub(crate) const DEPARTMENT_ID_INVALID: Code = Code(44035, "departmentID is invaild");
/// Employee number taken.
pub(crate) const EMPLOYEE_NO_EXISTS: Code = Code(44051, "employee no has already exist error");

// Contact v2 (historic-version batch_add / task get).
/// A v2 row with a malformed user id (the v2 task example's code).
pub(crate) const V2_INVALID_USER_ID: Code = Code(40013, "invalid user_id");
