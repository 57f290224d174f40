//! Wire <-> core: the only place where Feishu's vocabulary and the domain's meet.

use std::collections::HashMap;

use http::StatusCode;
use roster_core::department::{parse_department_name, DepartmentFields};
use roster_core::ids::{DepartmentId, OpenId};
use roster_core::user::{CustomAttr, Membership, UserProfile};
use roster_core::values::{bounded_text, join_time, Country, Email, EmployeeType, Gender, Mobile};
use roster_core::{Caller, Department, DeptKey, DeptLookup, Directory, NewUser, User, UserLookup};

use crate::codes;
use crate::error::FeishuError;
use crate::extract::FeishuQuery;
use crate::wire;

/// Which id a user reference is in (`user_id_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserIdType {
    Open,
    Union,
    Custom,
}

/// Which id a department reference is in (`department_id_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeptIdType {
    Open,
    Custom,
}

/// The id types of one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdTypes {
    pub user: UserIdType,
    pub dept: DeptIdType,
}

impl IdTypes {
    /// Reads `user_id_type` and `department_id_type`; an unknown value is 40001.
    pub(crate) fn from_query(q: &FeishuQuery) -> Result<Self, FeishuError> {
        let user = match q.str("user_id_type") {
            None | Some("open_id") => UserIdType::Open,
            Some("union_id") => UserIdType::Union,
            Some("user_id") => UserIdType::Custom,
            Some(other) => {
                return Err(FeishuError::param(format!(
                    "unknown user_id_type {other:?}"
                )))
            }
        };
        let dept = match q.str("department_id_type") {
            None | Some("open_department_id") => DeptIdType::Open,
            Some("department_id") => DeptIdType::Custom,
            Some(other) => {
                return Err(FeishuError::param(format!(
                    "unknown department_id_type {other:?}"
                )))
            }
        };
        Ok(Self { user, dept })
    }

    /// A user reference in this request's user id type.
    pub(crate) fn user_lookup(self, id: &str) -> UserLookup {
        match self.user {
            UserIdType::Open => UserLookup::OpenId(id.to_owned()),
            UserIdType::Union => UserLookup::UnionId(id.to_owned()),
            UserIdType::Custom => UserLookup::UserId(id.to_owned()),
        }
    }

    /// A department reference in this request's department id type (`"0"` is the root).
    pub(crate) fn dept_lookup(self, id: &str) -> DeptLookup {
        match self.dept {
            DeptIdType::Open => DeptLookup::OpenId(id.to_owned()),
            DeptIdType::Custom => DeptLookup::CustomId(id.to_owned()),
        }
    }

    /// A user's id in this request's type.
    pub(crate) fn user_id_of(self, u: &User) -> String {
        match self.user {
            UserIdType::Open => u.open_id.to_string(),
            UserIdType::Union => u.union_id.to_string(),
            UserIdType::Custom => u.user_id.to_string(),
        }
    }

    /// A department's id in this request's type.
    pub(crate) fn dept_id_of(self, d: &Department) -> String {
        match self.dept {
            DeptIdType::Open => d.open_department_id.to_string(),
            DeptIdType::Custom => d.department_id.to_string(),
        }
    }
}

pub(crate) fn opt_text(
    field: &'static str,
    v: Option<String>,
    max: usize,
) -> Result<Option<String>, roster_core::CoreError> {
    v.filter(|s| !s.is_empty())
        .map(|s| bounded_text(field, &s, max, false))
        .transpose()
}

/// Most subscription ids one user may carry (Roster's bound; Feishu documents none).
const MAX_SUBSCRIPTION_IDS: usize = 50;

/// `subscription_ids`: opaque seat references, kept as given, each 1 to 64 characters.
pub(crate) fn subscription_ids(
    v: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, roster_core::CoreError> {
    let Some(v) = v else { return Ok(None) };
    if v.len() > MAX_SUBSCRIPTION_IDS {
        return Err(roster_core::CoreError::invalid(
            "subscription_ids",
            format!("may hold at most {MAX_SUBSCRIPTION_IDS} ids"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for id in v {
        let id = bounded_text("subscription_ids", &id, 64, true)?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(Some(out))
}

/// `dotted_line_leader_user_ids` in the request's user id type, resolved to open ids of
/// active users (`Directory::dotted_line_leaders`).
async fn dotted_line_leaders(
    v: Option<Vec<String>>,
    ids: IdTypes,
    depts: &DeptResolver<'_>,
) -> Result<Option<Vec<OpenId>>, FeishuError> {
    let Some(v) = v else { return Ok(None) };
    let lookups: Vec<UserLookup> = v.iter().map(|id| ids.user_lookup(id)).collect();
    Ok(Some(
        depts
            .dir
            .dotted_line_leaders(depts.caller, &lookups)
            .await?,
    ))
}

/// Resolves department references of a request, remembering each answer.
pub(crate) struct DeptResolver<'a> {
    dir: &'a Directory,
    caller: &'a Caller,
    ids: IdTypes,
    seen: HashMap<String, DeptKey>,
}

impl<'a> DeptResolver<'a> {
    pub(crate) fn new(dir: &'a Directory, caller: &'a Caller, ids: IdTypes) -> Self {
        Self {
            dir,
            caller,
            ids,
            seen: HashMap::new(),
        }
    }

    /// The key of a department named in a user body; unknown is 44035.
    pub(crate) async fn key(&mut self, id: &str) -> Result<DeptKey, FeishuError> {
        if let Some(k) = self.seen.get(id) {
            return Ok(*k);
        }
        let dept = self
            .dir
            .get_department(self.caller, &self.ids.dept_lookup(id))
            .await
            .map_err(|e| match e {
                roster_core::CoreError::NotFound { .. } => FeishuError::with_detail(
                    StatusCode::BAD_REQUEST,
                    codes::DEPARTMENT_ID_INVALID,
                    id,
                ),
                other => other.into(),
            })?;
        self.seen.insert(id.to_owned(), dept.key);
        Ok(dept.key)
    }
}

/// Builds a new user from a U1 body.
pub(crate) async fn new_user(
    body: wire::UserBody,
    ids: IdTypes,
    depts: &mut DeptResolver<'_>,
) -> Result<NewUser, FeishuError> {
    let bad = StatusCode::BAD_REQUEST;
    let name = body.name.unwrap_or_default();
    if name.trim().is_empty() {
        return Err(FeishuError::new(bad, codes::NO_USER_NAME));
    }
    // Feishu requires a mobile (41010), and says 41009 when neither contact is given.
    let no_mobile = body.mobile.as_deref().unwrap_or("").is_empty();
    if no_mobile && body.email.as_deref().unwrap_or("").is_empty() {
        return Err(FeishuError::new(bad, codes::NO_EMAIL_OR_MOBILE));
    }
    if no_mobile {
        return Err(FeishuError::new(bad, codes::NO_MOBILE));
    }
    let department_ids = body.department_ids.unwrap_or_default();
    if department_ids.is_empty() {
        return Err(FeishuError::new(bad, codes::DEPARTMENT_REQUIRED));
    }
    if department_ids.len() > 50 {
        return Err(FeishuError::new(bad, codes::TOO_MANY_DEPARTMENTS));
    }
    let user_id = body
        .user_id
        .filter(|s| !s.is_empty())
        .map(|s| roster_core::UserId::parse(&s))
        .transpose()?;
    let (departments, _) = memberships(&department_ids, body.orders.as_deref(), depts).await?;
    let profile = UserProfile {
        name: bounded_text("name", &name, 255, true)?,
        en_name: opt_text("en_name", body.en_name, 255)?,
        nickname: opt_text("nickname", body.nickname, 255)?,
        email: body
            .email
            .filter(|s| !s.is_empty())
            .map(|e| Email::parse("email", &e))
            .transpose()?,
        enterprise_email: body
            .enterprise_email
            .filter(|s| !s.is_empty())
            .map(|e| Email::parse("enterprise_email", &e))
            .transpose()?,
        mobile: body
            .mobile
            .filter(|s| !s.is_empty())
            .map(|m| Mobile::parse("mobile", &m))
            .transpose()?,
        mobile_visible: body.mobile_visible.unwrap_or(true),
        gender: body
            .gender
            .map(Gender::from_code)
            .transpose()?
            .unwrap_or_default(),
        avatar_key: opt_text("avatar_key", body.avatar_key, 255)?,
        city: opt_text("city", body.city, 100)?,
        country: body
            .country
            .filter(|s| !s.is_empty())
            .map(|c| Country::parse(&c))
            .transpose()?,
        work_station: opt_text("work_station", body.work_station, 255)?,
        join_time: body.join_time.map(join_time).transpose()?,
        employee_no: opt_text("employee_no", body.employee_no, 64)?,
        employee_type: body
            .employee_type
            .map(EmployeeType::from_code)
            .transpose()?
            .unwrap_or_default(),
        job_title: opt_text("job_title", body.job_title, 100)?,
        description: opt_text("description", body.description, 255)?,
        custom_attrs: custom_attrs(body.custom_attrs)?.unwrap_or_default(),
        departments,
        geo: opt_text("geo", body.geo, 64)?,
        job_level_id: opt_text("job_level_id", body.job_level_id, 64)?,
        job_family_id: opt_text("job_family_id", body.job_family_id, 64)?,
        subscription_ids: subscription_ids(body.subscription_ids)?.unwrap_or_default(),
        dotted_line_leaders: dotted_line_leaders(body.dotted_line_leader_user_ids, ids, depts)
            .await?
            .unwrap_or_default(),
        ..UserProfile::default()
    };
    let leader = body
        .leader_user_id
        .filter(|s| !s.is_empty())
        .map(|l| ids.user_lookup(&l));
    Ok(NewUser {
        user_id,
        profile,
        leader,
        activated: true,
    })
}

/// The memberships that `department_ids` and `orders` describe, and what they leave out
/// (the departments without an `orders` entry, and whether none was named primary), which
/// a patch fills in from the user's current memberships.
async fn memberships(
    department_ids: &[String],
    orders: Option<&[wire::UserOrder]>,
    depts: &mut DeptResolver<'_>,
) -> Result<(Vec<Membership>, roster_core::OrdersLeftOut), FeishuError> {
    let mut out: Vec<Membership> = Vec::with_capacity(department_ids.len());
    for id in department_ids {
        let key = depts.key(id).await?;
        if out.iter().any(|m| m.department == key) {
            continue;
        }
        out.push(Membership {
            department: key,
            user_order: 0,
            department_order: 0,
            is_primary: false,
        });
    }
    // Each `orders` entry describes one of the user's departments (matched by department,
    // whichever id form names it), and at most one may be the primary: a user has one
    // primary department, which `primary_member_count` and the profile's order rely on.
    let mut primaries = 0;
    let mut ordered = Vec::new();
    let orders = orders.unwrap_or_default();
    // One entry per department at most, so never more entries than departments: checked
    // before any lookup, so that a body of thousands of entries costs nothing.
    if orders.len() > department_ids.len() {
        return Err(FeishuError::param(
            "orders: more entries than department_ids (one per department at most)",
        ));
    }
    for o in orders {
        let Some(id) = o.department_id.as_deref().filter(|d| !d.is_empty()) else {
            return Err(FeishuError::param(
                "orders: every entry needs a department_id",
            ));
        };
        let key = depts.key(id).await?;
        let Some(m) = out.iter_mut().find(|m| m.department == key) else {
            return Err(FeishuError::param(format!(
                "orders: department {id} is not one of department_ids"
            )));
        };
        if ordered.contains(&key) {
            return Err(FeishuError::param(format!(
                "orders: department {id} has more than one entry"
            )));
        }
        m.user_order = o.user_order.unwrap_or(0);
        m.department_order = o.department_order.unwrap_or(0);
        ordered.push(key);
        if o.is_primary_dept == Some(true) {
            primaries += 1;
            m.is_primary = true;
        }
    }
    if primaries > 1 {
        return Err(FeishuError::param(
            "orders: at most one department may be the primary (is_primary_dept)",
        ));
    }
    // Without an explicit primary the first department is; the primary goes first, as the
    // profile documents.
    if primaries == 0 {
        if let Some(first) = out.first_mut() {
            first.is_primary = true;
        }
    }
    let left_out = roster_core::OrdersLeftOut {
        departments: out
            .iter()
            .map(|m| m.department)
            .filter(|d| !ordered.contains(d))
            .collect(),
        primary: primaries == 0,
    };
    out.sort_by_key(|m| !m.is_primary);
    Ok((out, left_out))
}

/// Most custom attributes one user may carry (Roster's bound: a tenant defines a few
/// dozen at most, and every read returns them all).
const MAX_CUSTOM_ATTRS: usize = 100;

/// Longest value of a custom attribute field, characters (ids: 64).
const MAX_CUSTOM_ATTR_VALUE: usize = 1024;

/// Whether a custom attribute id may be stored: 1 to 64 characters, not blank.
pub(crate) fn custom_attr_id_is_legal(id: &str) -> bool {
    bounded_text("custom_attrs", id, 64, true).is_ok()
}

/// `custom_attrs` of a request, within `MAX_CUSTOM_ATTRS` and the field lengths.
pub(crate) fn custom_attrs(
    v: Option<Vec<wire::CustomAttr>>,
) -> Result<Option<Vec<CustomAttr>>, roster_core::CoreError> {
    let Some(v) = v else { return Ok(None) };
    if v.len() > MAX_CUSTOM_ATTRS {
        return Err(roster_core::CoreError::invalid(
            "custom_attrs",
            format!("may hold at most {MAX_CUSTOM_ATTRS} attributes"),
        ));
    }
    let attrs: Vec<CustomAttr> = v.into_iter().map(custom_attr).collect();
    for a in &attrs {
        bounded_text("custom_attrs", &a.id, 64, true)?;
        for (value, max) in [
            (&a.kind, 64),
            (&a.generic_user_id, 64),
            (&a.option_id, 64),
            (&a.text, MAX_CUSTOM_ATTR_VALUE),
            (&a.url, MAX_CUSTOM_ATTR_VALUE),
            (&a.pc_url, MAX_CUSTOM_ATTR_VALUE),
            (&a.option_value, MAX_CUSTOM_ATTR_VALUE),
            (&a.name, MAX_CUSTOM_ATTR_VALUE),
            (&a.picture_url, MAX_CUSTOM_ATTR_VALUE),
        ] {
            if let Some(value) = value {
                bounded_text("custom_attrs", value, max, false)?;
            }
        }
    }
    Ok(Some(attrs))
}

fn custom_attr(a: wire::CustomAttr) -> CustomAttr {
    let v = a.value.unwrap_or_default();
    CustomAttr {
        kind: a.kind,
        id: a.id,
        text: v.text,
        url: v.url,
        pc_url: v.pc_url,
        option_id: v.option_id,
        option_value: v.option_value,
        name: v.name,
        picture_url: v.picture_url,
        generic_user_id: v.generic_user.as_ref().map(|g| g.id.clone()),
        generic_user_type: v.generic_user.and_then(|g| g.kind),
    }
}

fn custom_attr_out(a: &CustomAttr) -> wire::CustomAttr {
    wire::CustomAttr {
        kind: a.kind.clone(),
        id: a.id.clone(),
        value: Some(wire::CustomAttrValue {
            text: a.text.clone(),
            url: a.url.clone(),
            pc_url: a.pc_url.clone(),
            option_id: a.option_id.clone(),
            option_value: a.option_value.clone(),
            name: a.name.clone(),
            picture_url: a.picture_url.clone(),
            generic_user: a.generic_user_id.as_ref().map(|id| wire::GenericUser {
                id: id.clone(),
                kind: a.generic_user_type,
            }),
        }),
    }
}

/// Renders users, translating every department and leader reference into the request's id
/// types. One renderer serves a whole response so that repeated references cost one read.
pub(crate) struct Renderer<'a> {
    dir: &'a Directory,
    public_url: &'a str,
    tenant: roster_core::TenantId,
    ids: IdTypes,
    depts: HashMap<DeptKey, Option<Department>>,
    leaders: HashMap<String, String>,
}

impl<'a> Renderer<'a> {
    pub(crate) fn new(
        state: &'a crate::extract::FeishuState,
        caller: &Caller,
        ids: IdTypes,
    ) -> Self {
        Self {
            dir: &state.dir,
            public_url: &state.config.public_url,
            tenant: caller.tenant,
            ids,
            depts: HashMap::new(),
            leaders: HashMap::new(),
        }
    }

    /// Departments already read (with the user, say), so that rendering does not read them
    /// again.
    pub(crate) fn knowing(mut self, departments: Vec<Department>) -> Self {
        for d in departments {
            self.depts.insert(d.key, Some(d));
        }
        self
    }

    async fn dept(&mut self, key: DeptKey) -> Result<Option<Department>, FeishuError> {
        if let Some(d) = self.depts.get(&key) {
            return Ok(d.clone());
        }
        let d = self.dir.department_for_display(self.tenant, key).await?;
        self.depts.insert(key, d.clone());
        Ok(d)
    }

    async fn dept_ref(&mut self, key: DeptKey) -> Result<String, FeishuError> {
        Ok(self
            .dept(key)
            .await?
            .map(|d| self.ids.dept_id_of(&d))
            .unwrap_or_default())
    }

    async fn leader_ref(&mut self, open_id: &str) -> Result<String, FeishuError> {
        if self.ids.user == UserIdType::Open {
            return Ok(open_id.to_owned());
        }
        if let Some(v) = self.leaders.get(open_id) {
            return Ok(v.clone());
        }
        let v = self
            .dir
            .user_for_display(self.tenant, &UserLookup::OpenId(open_id.to_owned()))
            .await?
            .map(|u| self.ids.user_id_of(&u))
            .unwrap_or_default();
        self.leaders.insert(open_id.to_owned(), v.clone());
        Ok(v)
    }

    /// A reference to a user who must still be active, in the request's id type; `None`
    /// when that user resigned or is gone.
    async fn active_leader_ref(&mut self, open_id: &str) -> Result<Option<String>, FeishuError> {
        let user = self
            .dir
            .user_for_display(self.tenant, &UserLookup::OpenId(open_id.to_owned()))
            .await?;
        Ok(user
            .filter(|u| !u.status.is_resigned)
            .map(|u| self.ids.user_id_of(&u)))
    }

    /// The full user object.
    pub(crate) async fn user(&mut self, u: &User) -> Result<wire::User, FeishuError> {
        let p = &u.profile;
        let mut department_ids = Vec::with_capacity(p.departments.len());
        let mut orders = Vec::with_capacity(p.departments.len());
        for m in &p.departments {
            let id = self.dept_ref(m.department).await?;
            orders.push(wire::UserOrder {
                department_id: Some(id.clone()),
                user_order: Some(m.user_order),
                department_order: Some(m.department_order),
                is_primary_dept: Some(m.is_primary),
            });
            department_ids.push(id);
        }
        let leader_user_id = match &p.leader {
            Some(l) => self.leader_ref(l.as_str()).await?,
            None => String::new(),
        };
        let mut dotted_line_leader_user_ids = Vec::with_capacity(p.dotted_line_leaders.len());
        for l in &p.dotted_line_leaders {
            // A user's delete takes it off every dotted-line list (migration 0016); lists
            // written before that rule may still name a resigned leader, who is not shown.
            if let Some(id) = self.active_leader_ref(l.as_str()).await? {
                dotted_line_leader_user_ids.push(id);
            }
        }
        Ok(wire::User {
            union_id: u.union_id.to_string(),
            user_id: u.user_id.to_string(),
            open_id: u.open_id.to_string(),
            name: p.name.clone(),
            en_name: p.en_name.clone().unwrap_or_default(),
            nickname: p.nickname.clone().unwrap_or_default(),
            email: p
                .email
                .as_ref()
                .map(|e| e.as_str().to_owned())
                .unwrap_or_default(),
            enterprise_email: p
                .enterprise_email
                .as_ref()
                .map(|e| e.as_str().to_owned())
                .unwrap_or_default(),
            mobile: p
                .mobile
                .as_ref()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
            mobile_visible: p.mobile_visible,
            gender: p.gender.code(),
            avatar: avatar(self.public_url, u),
            status: status(u),
            department_ids,
            leader_user_id,
            city: p.city.clone().unwrap_or_default(),
            country: p
                .country
                .as_ref()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            work_station: p.work_station.clone().unwrap_or_default(),
            join_time: p.join_time.unwrap_or(u.created_at / 1000),
            is_tenant_manager: p.is_tenant_manager,
            employee_no: p.employee_no.clone().unwrap_or_default(),
            employee_type: p.employee_type.code(),
            orders,
            custom_attrs: p.custom_attrs.iter().map(custom_attr_out).collect(),
            job_title: p.job_title.clone().unwrap_or_default(),
            description: p.description.clone().unwrap_or_default(),
            geo: p.geo.clone().unwrap_or_default(),
            job_level_id: p.job_level_id.clone().unwrap_or_default(),
            job_family_id: p.job_family_id.clone().unwrap_or_default(),
            subscription_ids: p.subscription_ids.clone(),
            dotted_line_leader_user_ids,
        })
    }

    /// A user as U4 lists it: department ids are always open ids there.
    pub(crate) async fn search_user(&mut self, u: &User) -> Result<wire::SearchUser, FeishuError> {
        let mut department_ids = Vec::with_capacity(u.profile.departments.len());
        for m in &u.profile.departments {
            // Only the open id is shown, which the directory answers from memory.
            if let Some(id) = self
                .dir
                .department_open_id(self.tenant, m.department)
                .await?
            {
                department_ids.push(id.to_string());
            }
        }
        Ok(wire::SearchUser {
            avatar: avatar(self.public_url, u),
            department_ids,
            name: u.profile.name.clone(),
            open_id: u.open_id.to_string(),
            user_id: u.user_id.to_string(),
        })
    }

    /// The department object.
    pub(crate) async fn department(
        &mut self,
        d: &Department,
    ) -> Result<wire::Department, FeishuError> {
        let parent = match d.parent {
            Some(p) => {
                let parent = self.dept(p).await?;
                match parent {
                    Some(pd) if pd.is_root() => "0".to_owned(),
                    Some(pd) => self.ids.dept_id_of(&pd),
                    None => String::new(),
                }
            }
            None => String::new(),
        };
        let leader = match &d.fields.leader {
            Some(l) => self.leader_ref(l.as_str()).await?,
            None => String::new(),
        };
        let mut leaders = Vec::new();
        if !leader.is_empty() {
            leaders.push(wire::LeaderOut {
                leader_type: 1,
                leader_id: leader.clone(),
            });
        }
        for deputy in &d.fields.deputies {
            leaders.push(wire::LeaderOut {
                leader_type: 2,
                leader_id: self.leader_ref(deputy.as_str()).await?,
            });
        }
        let (count, primary_count) = self.dir.department_counts(d).await?;
        let f: &DepartmentFields = &d.fields;
        let mut department_hrbps = Vec::with_capacity(f.hrbps.len());
        for h in &f.hrbps {
            department_hrbps.push(self.leader_ref(h.as_str()).await?);
        }
        Ok(wire::Department {
            name: f.name.clone(),
            i18n_name: wire::I18nName {
                zh_cn: f.i18n_name.zh_cn.clone(),
                ja_jp: f.i18n_name.ja_jp.clone(),
                en_us: f.i18n_name.en_us.clone(),
            },
            parent_department_id: parent,
            department_id: d.department_id.to_string(),
            open_department_id: d.open_department_id.to_string(),
            leaders,
            leader_user_id: leader,
            chat_id: String::new(),
            order: f.order.to_string(),
            unit_ids: f.unit_ids.clone(),
            member_count: count,
            primary_member_count: primary_count,
            status: wire::DepartmentStatus {
                is_deleted: d.is_deleted,
            },
            group_chat_employee_types: f.group_chat_employee_types.clone(),
            department_hrbps,
        })
    }
}

/// Parses a D1 body into the parent reference and the new department.
pub(crate) async fn new_department(
    dir: &Directory,
    caller: &Caller,
    ids: IdTypes,
    body: wire::DepartmentBody,
) -> Result<roster_core::NewDepartment, FeishuError> {
    let name = department_name(&body.name.unwrap_or_default())?;
    let i18n = i18n_names(body.i18n_name.unwrap_or_default())?;
    let order = department_order(body.order)?;
    let Some(parent_id) = body.parent_department_id.filter(|s| !s.is_empty()) else {
        return Err(FeishuError::with_detail(
            StatusCode::BAD_REQUEST,
            codes::MISSING_PARENT_ID,
            "parent_department_id is required",
        ));
    };
    let parent = dir
        .get_department(caller, &ids.dept_lookup(&parent_id))
        .await?;
    let department_id = body
        .department_id
        .filter(|s| !s.is_empty())
        .map(|s| DepartmentId::parse(&s))
        .transpose()?;
    let leaders = body.leaders.unwrap_or_default();
    check_leaders(body.leader_user_id.as_deref(), &leaders)?;
    let leader_ref = body.leader_user_id.filter(|s| !s.is_empty()).or_else(|| {
        leaders
            .iter()
            .find(|l| l.leader_type.unwrap_or(1) == 1)
            .and_then(|l| l.leader_id.clone())
    });
    let leader = match leader_ref {
        Some(l) => Some(active_leader(dir, caller, ids, &l).await?),
        None => None,
    };
    let deputies = deputy_leaders(dir, caller, ids, &leaders).await?;
    let hrbps = hrbp_users(dir, caller, ids, body.department_hrbps.unwrap_or_default()).await?;
    // On a create an empty translation is no translation.
    let none_if_empty = |v: Option<String>| v.filter(|v| !v.is_empty());
    Ok(roster_core::NewDepartment {
        parent: parent.key,
        department_id,
        fields: DepartmentFields {
            name,
            i18n_name: roster_core::I18nName {
                zh_cn: none_if_empty(i18n.zh_cn),
                ja_jp: none_if_empty(i18n.ja_jp),
                en_us: none_if_empty(i18n.en_us),
            },
            leader,
            deputies,
            hrbps,
            unit_ids: body.unit_ids.unwrap_or_default(),
            group_chat_employee_types: body.group_chat_employee_types.unwrap_or_default(),
            order: order.unwrap_or(0),
        },
        order_after_siblings: order.is_none(),
    })
}

/// A department's name (D1 and patch): 40016 when empty, 43029 with a `/` (the create
/// doc's codes), 40001 when too long.
fn department_name(name: &str) -> Result<String, FeishuError> {
    let bad = StatusCode::BAD_REQUEST;
    parse_department_name(name).map_err(|e| match e {
        roster_core::CoreError::Invalid { reason, .. } if reason.contains('/') => {
            FeishuError::new(bad, codes::DEPT_NAME_INVALID)
        }
        roster_core::CoreError::Invalid { reason, .. } if reason.contains("empty") => {
            FeishuError::new(bad, codes::DEPT_NAME_EMPTY)
        }
        other => FeishuError::param(other.to_string()),
    })
}

/// A department's translated names, each held to the rules of the name itself (the create
/// doc forbids the `/` in them too, and a translation is displayed where the name would
/// be, so it gets the same length). An empty one is kept empty: a patch clears it with that.
fn i18n_names(i18n: wire::I18nName) -> Result<roster_core::I18nName, FeishuError> {
    let one = |v: Option<String>| match v {
        Some(v) if !v.is_empty() => department_name(&v).map(Some),
        other => Ok(other),
    };
    Ok(roster_core::I18nName {
        zh_cn: one(i18n.zh_cn)?,
        ja_jp: one(i18n.ja_jp)?,
        en_us: one(i18n.en_us)?,
    })
}

/// A department's `order`: the create doc makes it a non-negative integer.
fn department_order(order: Option<i64>) -> Result<Option<i64>, FeishuError> {
    match order {
        Some(o) if o < 0 => Err(FeishuError::param("order: must not be negative")),
        other => Ok(other),
    }
}

/// Resolves a department leader: an active user; 44021 for one who resigned and 44022 for
/// an id that names nobody (or a user outside a department-limited app's scope), as for a
/// user's leader.
async fn active_leader(
    dir: &Directory,
    caller: &Caller,
    ids: IdTypes,
    id: &str,
) -> Result<roster_core::OpenId, FeishuError> {
    match dir.user_visible_to(caller, &ids.user_lookup(id)).await? {
        Some(u) if !u.status.is_resigned => Ok(u.open_id),
        Some(_) => Err(FeishuError::with_detail(
            StatusCode::BAD_REQUEST,
            codes::LEADER_RESIGNED,
            id,
        )),
        None => Err(FeishuError::with_detail(
            StatusCode::BAD_REQUEST,
            codes::LEADER_INVALID,
            id,
        )),
    }
}

/// A department's `department_hrbps`, each an active user the caller may see, named in the
/// request's `user_id_type`; an unknown or resigned one is 40001 naming it. Empty entries
/// are skipped, as an empty leader id is.
async fn hrbp_users(
    dir: &Directory,
    caller: &Caller,
    ids: IdTypes,
    list: Vec<String>,
) -> Result<Vec<roster_core::OpenId>, FeishuError> {
    if list.len() > roster_core::directory::MAX_DEPARTMENT_LIST {
        return Err(FeishuError::param(format!(
            "department_hrbps: at most {} users",
            roster_core::directory::MAX_DEPARTMENT_LIST
        )));
    }
    let mut out = Vec::with_capacity(list.len());
    for id in list.iter().filter(|s| !s.is_empty()) {
        match dir.user_visible_to(caller, &ids.user_lookup(id)).await? {
            Some(u) if !u.status.is_resigned => out.push(u.open_id),
            Some(_) => {
                return Err(FeishuError::param(format!(
                    "department_hrbps: user {id} has resigned"
                )))
            }
            None => {
                return Err(FeishuError::param(format!(
                    "department_hrbps: no user {id}"
                )))
            }
        }
    }
    Ok(out)
}

/// The deputies (`leaderType` 2) of a `leaders` list, in order.
/// Feishu's rules for a department's `leaders` (department create doc): a list that names
/// leaders names exactly one main leader (`leaderType` 1), who is the `leader_user_id` too
/// when both are sent. Refused with 40001 rather than one of the two quietly dropped.
fn check_leaders(
    leader_user_id: Option<&str>,
    leaders: &[wire::LeaderIn],
) -> Result<(), FeishuError> {
    let named: Vec<&wire::LeaderIn> = leaders
        .iter()
        .filter(|l| l.leader_id.as_deref().is_some_and(|id| !id.is_empty()))
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    // One main leader and at most the core's bound of deputies; refused here before each
    // of them costs a user lookup.
    let most = roster_core::directory::MAX_DEPARTMENT_LIST + 1;
    if named.len() > most {
        return Err(FeishuError::param(format!(
            "leaders: at most {most} (one main leader and {} deputies)",
            most - 1
        )));
    }
    if let Some(other) = named
        .iter()
        .filter_map(|l| l.leader_type)
        .find(|t| !matches!(t, 1 | 2))
    {
        return Err(FeishuError::param(format!(
            "leaders: leaderType {other} is neither 1 (main) nor 2 (deputy)"
        )));
    }
    let mut mains: Vec<&str> = named
        .iter()
        .filter(|l| l.leader_type.unwrap_or(1) == 1)
        .filter_map(|l| l.leader_id.as_deref())
        .collect();
    mains.dedup();
    match mains.as_slice() {
        [] => Err(FeishuError::param(
            "leaders: a main leader (leaderType 1) is required when leaders are given",
        )),
        [main] => match leader_user_id.filter(|l| !l.is_empty()) {
            Some(l) if l != *main => Err(FeishuError::param(
                "leaders: the main leader must be the leader_user_id",
            )),
            _ => Ok(()),
        },
        _ => Err(FeishuError::param(
            "leaders: at most one main leader (leaderType 1)",
        )),
    }
}

async fn deputy_leaders(
    dir: &Directory,
    caller: &Caller,
    ids: IdTypes,
    leaders: &[wire::LeaderIn],
) -> Result<Vec<roster_core::OpenId>, FeishuError> {
    let mut out = Vec::new();
    for l in leaders.iter().filter(|l| l.leader_type == Some(2)) {
        if let Some(id) = l.leader_id.as_deref().filter(|s| !s.is_empty()) {
            let open = active_leader(dir, caller, ids, id).await?;
            if !out.contains(&open) {
                out.push(open);
            }
        }
    }
    Ok(out)
}

/// A string field of a patch: absent leaves it, `""` clears it, anything else is checked.
#[allow(clippy::option_option)] // Three states, as in `roster_core::UserPatch`: keep, clear, set.
fn patch_text(
    field: &'static str,
    v: Option<String>,
    max: usize,
) -> Result<Option<Option<String>>, roster_core::CoreError> {
    match v {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(Some(None)),
        Some(s) => Ok(Some(Some(bounded_text(field, &s, max, false)?))),
    }
}

/// Builds a patch from a U9 body: only the fields present change.
pub(crate) async fn user_patch(
    body: wire::UserBody,
    ids: IdTypes,
    depts: &mut DeptResolver<'_>,
) -> Result<roster_core::UserPatch, FeishuError> {
    let bad = StatusCode::BAD_REQUEST;
    if body.orders.is_some() && body.department_ids.is_none() {
        return Err(FeishuError::new(bad, codes::ORDERS_NEED_DEPARTMENTS));
    }
    let name = match body.name {
        None => None,
        Some(n) if n.trim().is_empty() => return Err(FeishuError::new(bad, codes::NO_USER_NAME)),
        Some(n) => Some(bounded_text("name", &n, 255, true)?),
    };
    let departments = match body.department_ids {
        None => None,
        Some(ids) if ids.len() > 50 => {
            return Err(FeishuError::new(bad, codes::TOO_MANY_DEPARTMENTS))
        }
        // As at create (41017): a user belongs to at least one department; an empty list
        // would otherwise move the user to the root without saying so.
        Some(ids) if ids.is_empty() => {
            return Err(FeishuError::new(bad, codes::DEPARTMENT_REQUIRED))
        }
        Some(ids) => Some(memberships(&ids, body.orders.as_deref(), depts).await?),
    };
    let (departments, orders_left_out) = match departments {
        Some((d, left_out)) => (Some(d), left_out),
        None => (None, roster_core::OrdersLeftOut::default()),
    };
    let email = match body.email {
        None => None,
        Some(e) if e.is_empty() => Some(None),
        Some(e) => Some(Some(Email::parse("email", &e)?)),
    };
    let enterprise_email = match body.enterprise_email {
        None => None,
        Some(e) if e.is_empty() => Some(None),
        Some(e) => Some(Some(Email::parse("enterprise_email", &e)?)),
    };
    let mobile = match body.mobile {
        None => None,
        // A Feishu user has a mobile (U1 refuses one without, 41010), and U9 validates as
        // U1 does: clearing it would leave a user that create could not have made.
        Some(m) if m.is_empty() => return Err(FeishuError::new(bad, codes::NO_MOBILE)),
        Some(m) => Some(Some(Mobile::parse("mobile", &m)?)),
    };
    let country = match body.country {
        None => None,
        Some(c) if c.is_empty() => Some(None),
        Some(c) => Some(Some(Country::parse(&c)?)),
    };
    Ok(roster_core::UserPatch {
        name,
        en_name: patch_text("en_name", body.en_name, 255)?,
        nickname: patch_text("nickname", body.nickname, 255)?,
        email,
        enterprise_email,
        mobile,
        mobile_visible: body.mobile_visible,
        gender: body.gender.map(Gender::from_code).transpose()?,
        avatar_key: patch_text("avatar_key", body.avatar_key, 255)?,
        city: patch_text("city", body.city, 100)?,
        country,
        work_station: patch_text("work_station", body.work_station, 255)?,
        join_time: body.join_time.map(join_time).transpose()?,
        employee_no: patch_text("employee_no", body.employee_no, 64)?,
        employee_type: body
            .employee_type
            .map(EmployeeType::from_code)
            .transpose()?,
        job_title: patch_text("job_title", body.job_title, 100)?,
        description: patch_text("description", body.description, 255)?,
        custom_attrs: custom_attrs(body.custom_attrs)?,
        departments,
        orders_left_out,
        leader: body.leader_user_id.map(|l| {
            if l.is_empty() {
                None
            } else {
                Some(ids.user_lookup(&l))
            }
        }),
        is_frozen: body.is_frozen,
        geo: patch_text("geo", body.geo, 64)?,
        job_level_id: patch_text("job_level_id", body.job_level_id, 64)?,
        job_family_id: patch_text("job_family_id", body.job_family_id, 64)?,
        subscription_ids: subscription_ids(body.subscription_ids)?,
        dotted_line_leaders: dotted_line_leaders(body.dotted_line_leader_user_ids, ids, depts)
            .await?,
        // U9 takes any create field, the custom user id among them; an empty one is absent,
        // as at create.
        user_id: body
            .user_id
            .filter(|s| !s.is_empty())
            .map(|s| roster_core::UserId::parse(&s))
            .transpose()?,
    })
}

/// The avatar URLs of a user. Roster stores no images; the URLs are stable per user so
/// that clients which cache them by URL behave.
pub(crate) fn avatar(public_url: &str, u: &User) -> wire::Avatar {
    let base = format!("{}/avatars/{}", public_url.trim_end_matches('/'), u.open_id);
    wire::Avatar {
        avatar_72: format!("{base}/72"),
        avatar_240: format!("{base}/240"),
        avatar_640: format!("{base}/640"),
        avatar_origin: format!("{base}/origin"),
    }
}

/// The status object of a user.
pub(crate) fn status(u: &User) -> wire::UserStatus {
    wire::UserStatus {
        is_frozen: u.status.is_frozen,
        is_resigned: u.status.is_resigned,
        is_activated: u.status.is_activated,
        is_exited: u.status.is_exited,
        is_unjoin: u.status.is_unjoin,
    }
}

/// Builds a department patch: only the fields present change.
pub(crate) async fn department_patch(
    dir: &Directory,
    caller: &Caller,
    ids: IdTypes,
    body: wire::DepartmentBody,
) -> Result<roster_core::DepartmentPatch, FeishuError> {
    let name = body.name.as_deref().map(department_name).transpose()?;
    let i18n_name = body.i18n_name.map(i18n_names).transpose()?;
    let order = department_order(body.order)?;
    let parent = match body.parent_department_id.filter(|s| !s.is_empty()) {
        None => None,
        Some(p) => Some(dir.parent_for_patch(caller, &ids.dept_lookup(&p)).await?),
    };
    if let Some(ls) = &body.leaders {
        check_leaders(body.leader_user_id.as_deref(), ls)?;
    }
    let leader_ref = body.leader_user_id.or_else(|| {
        body.leaders.as_ref().map(|ls| {
            ls.iter()
                .find(|l| l.leader_type.unwrap_or(1) == 1)
                .and_then(|l| l.leader_id.clone())
                .unwrap_or_default()
        })
    });
    let leader = match leader_ref {
        None => None,
        Some(l) if l.is_empty() => Some(None),
        Some(l) => Some(Some(active_leader(dir, caller, ids, &l).await?)),
    };
    let deputies = match &body.leaders {
        None => None,
        Some(ls) => Some(deputy_leaders(dir, caller, ids, ls).await?),
    };
    let hrbps = match body.department_hrbps {
        None => None,
        Some(list) => Some(hrbp_users(dir, caller, ids, list).await?),
    };
    Ok(roster_core::DepartmentPatch {
        parent,
        department_id: None,
        name,
        i18n_name,
        leader,
        deputies,
        order,
        hrbps,
        unit_ids: body.unit_ids,
        group_chat_employee_types: body.group_chat_employee_types,
    })
}
