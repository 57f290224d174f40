//! `GET /api/v1/users/export?format=ndjson|csv`: every active user the caller may see, in
//! the import row format (so an export imports again), streamed page by page.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};
use roster_core::{Caller, CoreError, DeptKey, Directory, User, UserKey, UserLookup};

use crate::error::AdminError;
use crate::rows::{RawRow, FIELDS};
use crate::{query, AdminState, Auth};

/// Users read per page.
const PAGE: usize = 1000;
/// Most cached department and leader ids (exports of huge directories stay bounded).
const CACHE: usize = 100_000;

/// Renders users as import rows, resolving department keys and leader open ids to the ids
/// a row names them by.
pub struct RowWriter<'a> {
    dir: &'a Directory,
    caller: &'a Caller,
    departments: HashMap<DeptKey, String>,
    leaders: HashMap<String, String>,
}

impl<'a> RowWriter<'a> {
    /// A writer for the caller's tenant.
    pub fn new(dir: &'a Directory, caller: &'a Caller) -> Self {
        Self {
            dir,
            caller,
            departments: HashMap::new(),
            leaders: HashMap::new(),
        }
    }

    /// One user as an import row.
    pub async fn row(&mut self, u: &User) -> Result<RawRow, CoreError> {
        let p = &u.profile;
        let mut row = RawRow::default();
        let mut set = |name: &str, v: Option<String>| {
            if let Some(v) = v {
                // Every name used here is in FIELDS, so `set` cannot refuse it.
                let _ = row.set(name, &v);
            }
        };
        set("user_id", Some(u.user_id.as_str().to_owned()));
        set("name", Some(p.name.clone()));
        set("en_name", p.en_name.clone());
        set("nickname", p.nickname.clone());
        set("email", p.email.as_ref().map(|e| e.as_str().to_owned()));
        set(
            "enterprise_email",
            p.enterprise_email.as_ref().map(|e| e.as_str().to_owned()),
        );
        set("mobile", p.mobile.as_ref().map(|m| m.as_str().to_owned()));
        set("employee_no", p.employee_no.clone());
        set("employee_type", Some(p.employee_type.code().to_string()));
        set("job_title", p.job_title.clone());
        set("gender", Some(p.gender.code().to_string()));
        set("city", p.city.clone());
        set("country", p.country.as_ref().map(|c| c.as_str().to_owned()));
        set("work_station", p.work_station.clone());
        set("join_time", p.join_time.map(|t| t.to_string()));
        set(
            "username",
            p.username.as_ref().map(|n| n.as_str().to_owned()),
        );
        set("description", p.description.clone());
        let mut ids = Vec::with_capacity(p.departments.len());
        for m in &p.departments {
            ids.push(self.department_id(m.department).await?);
        }
        // The root is where a row without departments goes anyway.
        if ids != ["0"] {
            let _ = row.set("department_ids", &ids.join(";"));
        }
        if let Some(leader) = &p.leader {
            if let Some(id) = self.leader_id(leader.as_str()).await? {
                let _ = row.set("leader_user_id", &id);
            }
        }
        Ok(row)
    }

    async fn department_id(&mut self, key: DeptKey) -> Result<String, CoreError> {
        if let Some(id) = self.departments.get(&key) {
            return Ok(id.clone());
        }
        let id = self
            .dir
            .department_for_display(self.caller.tenant, key)
            .await?
            .map_or_else(String::new, |d| d.department_id.as_str().to_owned());
        if self.departments.len() < CACHE {
            self.departments.insert(key, id.clone());
        }
        Ok(id)
    }

    async fn leader_id(&mut self, open_id: &str) -> Result<Option<String>, CoreError> {
        if let Some(id) = self.leaders.get(open_id) {
            return Ok(Some(id.clone()));
        }
        let Some(leader) = self
            .dir
            .user_for_display(self.caller.tenant, &UserLookup::OpenId(open_id.to_owned()))
            .await?
        else {
            return Ok(None);
        };
        let id = leader.user_id.as_str().to_owned();
        if self.leaders.len() < CACHE {
            self.leaders.insert(open_id.to_owned(), id.clone());
        }
        Ok(Some(id))
    }
}

/// The CSV header line of an export.
pub fn csv_header_line() -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = w.write_record(FIELDS);
    w.into_inner().unwrap_or_default()
}

/// One row as a CSV line.
pub fn csv_line(row: &RawRow) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(row.cells());
    w.into_inner().unwrap_or_default()
}

/// State of the export stream between pages.
struct Cursor {
    dir: Directory,
    caller: Caller,
    csv: bool,
    after: Option<UserKey>,
    started: bool,
    done: bool,
}

async fn next_page(mut c: Cursor) -> Option<(Result<Bytes, CoreError>, Cursor)> {
    if c.done {
        return None;
    }
    let mut out = Vec::new();
    if !c.started {
        c.started = true;
        if c.csv {
            out.extend(csv_header_line());
        }
    }
    let page = c.dir.export_users(&c.caller, c.after, PAGE).await;
    let (users, last) = match page {
        Ok(p) => p,
        Err(e) => {
            c.done = true;
            return Some((Err(e), c));
        }
    };
    let rendered = {
        let mut writer = RowWriter::new(&c.dir, &c.caller);
        let mut lines = Vec::with_capacity(users.len() * 200);
        let mut failure = None;
        for u in &users {
            match writer.row(u).await {
                Ok(row) => {
                    if c.csv {
                        lines.extend(csv_line(&row));
                    } else {
                        lines.extend(row.to_json().into_bytes());
                        lines.push(b'\n');
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(lines),
        }
    };
    match rendered {
        Ok(lines) => out.extend(lines),
        Err(e) => {
            c.done = true;
            return Some((Err(e), c));
        }
    }
    match last {
        Some(k) => c.after = Some(k),
        None => c.done = true,
    }
    Some((Ok(Bytes::from(out)), c))
}

/// `GET /api/v1/users/export?format=ndjson|csv`.
pub(crate) async fn export(
    State(state): State<AdminState>,
    Auth(caller): Auth,
    uri: Uri,
) -> Result<Response, AdminError> {
    caller.require(roster_core::Scope::ContactRead)?;
    let q = query(&uri)?;
    let csv = match q.get("format").map(String::as_str) {
        None | Some("ndjson") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(AdminError::bad_request(format!(
                "format must be ndjson or csv, not {other:?}"
            )))
        }
    };
    let cursor = Cursor {
        dir: state.dir.clone(),
        caller,
        csv,
        after: None,
        started: false,
        done: false,
    };
    // A failure after the first bytes can only cut the stream short (the status is sent);
    // it is logged, and the client sees a truncated body.
    let stream = futures::stream::unfold(cursor, next_page);
    let stream = futures::StreamExt::map(stream, |r| {
        r.map_err(|e| {
            tracing::error!("failed to export users: {e}");
            std::io::Error::other("export failed")
        })
    });
    let ctype = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    Ok(([(header::CONTENT_TYPE, ctype)], Body::from_stream(stream)).into_response())
}
