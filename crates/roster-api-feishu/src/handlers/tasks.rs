//! Contact v2 asynchronous batch import: V1 `batch_add` answers a task id at once (the
//! task is stored first), V2 `task/get` reports progress and, when done, every user's
//! result in request order.

use axum::extract::State;
use roster_core::user::UserProfile;
use roster_core::values::{bounded_text, Country, Email, EmployeeType, Gender, Mobile};
use roster_core::{
    ItemError, ItemOutcome, Membership, NewUser, TaskId, TaskStatus, TaskSubmission, UserLookup,
};
use serde::Deserialize;

use crate::codes::{self, Code};
use crate::convert::{DeptIdType, DeptResolver, IdTypes, UserIdType};
use crate::envelope::Envelope;
use crate::error::FeishuError;
use crate::extract::{FeishuJson, FeishuQuery, FeishuState, TenantAuth};
use crate::wire_v2::{BatchAddBody, Echo, TaskData, TaskIdData, TaskInfo, V2User};

/// V1 `POST /open-apis/contact/v2/user/batch_add`.
pub(crate) async fn batch_add(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    FeishuJson(body): FeishuJson<BatchAddBody>,
) -> Result<Envelope<TaskIdData>, FeishuError> {
    caller.require(roster_core::Scope::ContactWrite)?;
    let users = body.users.unwrap_or_default();
    if users.is_empty() || users.len() > state.config.batch_add_max_users {
        return Err(FeishuError::param(format!(
            "users must hold 1 to {} users",
            state.config.batch_add_max_users
        )));
    }
    let notify = body.need_send_notification.unwrap_or(false);
    // Departments are named as od-… or as custom ids, per user (the docs use both).
    let open = IdTypes {
        user: UserIdType::Custom,
        dept: DeptIdType::Open,
    };
    let custom = IdTypes {
        user: UserIdType::Custom,
        dept: DeptIdType::Custom,
    };
    let mut open_depts = DeptResolver::new(&state.dir, &caller, open);
    let mut custom_depts = DeptResolver::new(&state.dir, &caller, custom);
    let mut items = Vec::with_capacity(users.len());
    for raw in users {
        let (input, echo) = match roster_http::strict::deserialize::<V2User, _>(&raw) {
            Ok(u) => {
                let echo = Echo {
                    name: u.name.clone(),
                    email: u.email.clone(),
                    mobile: u.mobile.clone(),
                    departments: u.departments.clone(),
                    user_id: u.user_id.clone(),
                };
                (
                    v2_user(u, notify, &mut open_depts, &mut custom_depts).await,
                    echo,
                )
            }
            Err(e) => (
                Err(ItemError::dialect(
                    codes::PARAM_ERROR.0,
                    format!("malformed user: {e}"),
                )),
                // The fields that did arrive well-formed are echoed all the same, so that
                // the client can tell which of its users this result is about.
                Echo {
                    name: echo_text(&raw, "name"),
                    email: echo_text(&raw, "email"),
                    mobile: echo_text(&raw, "mobile"),
                    departments: raw
                        .get("departments")
                        .and_then(|d| Vec::<String>::deserialize(d).ok()),
                    user_id: echo_text(&raw, "user_id"),
                },
            ),
        };
        let echo = serde_json::to_string(&echo).map_err(FeishuError::internal)?;
        items.push((input, echo));
    }
    let task = state
        .dir
        .submit_task(
            &caller,
            TaskSubmission {
                kind: "add_user".into(),
                items,
                notify,
            },
        )
        .await?;
    Ok(Envelope(TaskIdData {
        task_id: task.id.to_string(),
    }))
}

fn refuse(code: Code, detail: impl std::fmt::Display) -> ItemError {
    ItemError::dialect(code.0, format!("{}: {detail}", code.1))
}

// Taken by value so that it fits `map_err` directly.
#[allow(clippy::needless_pass_by_value)]
fn core(e: roster_core::CoreError) -> ItemError {
    ItemError::from_core(&e)
}

/// One v2 user: Feishu's required fields and its codes, then the same parsing as v3.
async fn v2_user<'a>(
    u: V2User,
    notify: bool,
    open_depts: &mut DeptResolver<'a>,
    custom_depts: &mut DeptResolver<'a>,
) -> Result<NewUser, ItemError> {
    let name = u
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| refuse(codes::NO_USER_NAME, "name is required"))?;
    let mobile = u
        .mobile
        .filter(|m| !m.is_empty())
        .ok_or_else(|| refuse(codes::NO_MOBILE, "mobile is required"))?;
    let departments = u.departments.unwrap_or_default();
    let [dept] = departments.as_slice() else {
        return Err(refuse(
            codes::DEPARTMENT_REQUIRED,
            "departments must hold exactly one department",
        ));
    };
    let resolver = if dept.starts_with("od-") || dept == "0" {
        open_depts
    } else {
        custom_depts
    };
    let key = resolver
        .key(dept)
        .await
        .map_err(|e| ItemError::dialect(e.code, e.msg))?;
    let user_id = u
        .user_id
        .filter(|s| !s.is_empty())
        .map(|s| roster_core::UserId::parse(&s).map_err(|_| refuse(codes::V2_INVALID_USER_ID, s)))
        .transpose()?;
    let profile = UserProfile {
        name: bounded_text("name", &name, 255, true).map_err(core)?,
        email: u
            .email
            .filter(|s| !s.is_empty())
            .map(|e| Email::parse("email", &e))
            .transpose()
            .map_err(core)?,
        mobile: Some(Mobile::parse("mobile", &mobile).map_err(core)?),
        mobile_visible: u.mobile_visible.unwrap_or(true),
        city: u
            .city
            .filter(|s| !s.is_empty())
            .map(|c| bounded_text("city", &c, 100, false))
            .transpose()
            .map_err(core)?,
        country: u
            .country
            .filter(|s| !s.is_empty())
            .map(|c| Country::parse(&c))
            .transpose()
            .map_err(core)?,
        gender: u
            .gender
            .map(Gender::from_code)
            .transpose()
            .map_err(core)?
            .unwrap_or_default(),
        employee_type: u
            .employee_type
            .map(EmployeeType::from_code)
            .transpose()
            .map_err(core)?
            .unwrap_or_default(),
        join_time: u
            .join_time
            .map(roster_core::values::join_time)
            .transpose()
            .map_err(core)?,
        // The same limits as v3 create, so that every write path stores only what every
        // other one (and the bulk import of an export) accepts.
        employee_no: crate::convert::opt_text("employee_no", u.employee_no, 64).map_err(core)?,
        work_station: crate::convert::opt_text("work_station", u.work_station, 255)
            .map_err(core)?,
        // The v2 document: an attribute whose id "does not exist or is illegal" is ignored,
        // not a reason to refuse the user (v3 refuses it, as its own document does).
        custom_attrs: crate::convert::custom_attrs(u.custom_attrs.map(|attrs| {
            attrs
                .into_iter()
                .filter(|a| crate::convert::custom_attr_id_is_legal(&a.id))
                .collect()
        }))
        .map_err(core)?
        .unwrap_or_default(),
        departments: vec![Membership {
            department: key,
            user_order: 0,
            department_order: 0,
            is_primary: true,
        }],
        ..UserProfile::default()
    };
    // leader_user_id wins when both are sent (v2 doc).
    let leader = match (
        u.leader_user_id.filter(|s| !s.is_empty()),
        u.leader_open_id.filter(|s| !s.is_empty()),
    ) {
        (Some(uid), _) => Some(UserLookup::UserId(uid)),
        (None, Some(oid)) => Some(UserLookup::OpenId(oid)),
        (None, None) => None,
    };
    Ok(NewUser {
        user_id,
        profile,
        leader,
        // Invited users join when they follow the link; others are active at once.
        activated: !notify,
    })
}

/// V2 `GET /open-apis/contact/v2/task/get?task_id=`.
pub(crate) async fn get(
    State(state): State<FeishuState>,
    TenantAuth(caller): TenantAuth,
    query: FeishuQuery,
) -> Result<Envelope<TaskData>, FeishuError> {
    let unknown = || FeishuError::param("unknown task_id");
    let id = query
        .str("task_id")
        .ok_or_else(|| FeishuError::param("task_id is required"))?;
    let id = TaskId::parse(id).map_err(|_| unknown())?;
    let (task, items) = state
        .dir
        .get_task(&caller, &id)
        .await
        .map_err(|e| match e {
            roster_core::CoreError::NotFound { .. } => unknown(),
            other => other.into(),
        })?;
    // Only batch_add tasks are v2 tasks; a bulk import (Roster's own API) reports itself at
    // /api/v1/imports, and v2 has no shape for it.
    if task.kind == roster_core::import::IMPORT_KIND {
        return Err(unknown());
    }
    let status = match task.status {
        TaskStatus::Receiving | TaskStatus::Queued => 1,
        TaskStatus::Running => 2,
        TaskStatus::Done => 9,
        TaskStatus::Failed => 10,
    };
    let task_info =
        (task.status == TaskStatus::Done).then(|| items.iter().map(task_info).collect());
    Ok(Envelope(TaskData {
        task_id: task.id.to_string(),
        kind: task.kind.clone(),
        status,
        progress: task.progress(),
        total_num: task.total,
        success_num: task.succeeded,
        fail_num: task.failed,
        create_time: task.created_at / 1000,
        finish_time: task.finished_at.map(|t| t / 1000),
        task_info,
    }))
}

fn task_info(item: &roster_core::TaskItem) -> TaskInfo {
    let echo: Echo = serde_json::from_str(&item.echo).unwrap_or_default();
    let mut info = TaskInfo {
        code: 0,
        msg: "success".into(),
        action: None,
        departments: echo.departments,
        email: echo.email,
        mobile: echo.mobile,
        name: echo.name,
        open_id: None,
        user_id: echo.user_id,
    };
    match &item.outcome {
        Some(ItemOutcome::Created {
            open_id, user_id, ..
        }) => {
            info.action = Some(1);
            info.open_id = Some(open_id.clone());
            info.user_id = Some(user_id.clone());
        }
        Some(ItemOutcome::Failed(e)) => {
            let (code, msg) = if e.kind == "dialect" {
                (
                    e.field.parse().unwrap_or(codes::PARAM_ERROR.0),
                    e.detail.clone(),
                )
            } else {
                let f = FeishuError::from(e.to_core());
                (f.code, f.msg)
            };
            info.code = code;
            info.msg = msg;
        }
        None => {
            info.code = codes::INTERNAL.0;
            info.msg = "not processed".into();
        }
    }
    info
}

/// A member of a malformed v2 user that is text, for its echo.
fn echo_text(raw: &serde_json::Value, key: &str) -> Option<String> {
    raw.get(key).and_then(|v| v.as_str()).map(str::to_owned)
}
