//! `GET /api/v1/users/export?format=ndjson|csv`: every active user the caller may see, in
//! the import row format (so an export imports again), streamed page by page, every user
//! after its leader (see `ExportOrder`).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};
use roster_core::{Caller, CoreError, DeptKey, Directory, OpenId, User, UserKey, UserLookup};

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

/// The users of an export in the order it writes them: every user after its leader, so
/// that the file imports again (an import resolves a leader only among existing users,
/// earlier rows and the rows of the same chunk). Users otherwise keep their creation order.
///
/// The order is planned in a first pass that keeps only each user's key and its leader's
/// key (a few dozen bytes a user), and the users are then read again page by page by key, so
/// that an export of a million users never holds more than one page of whole users.
pub struct ExportOrder {
    keys: Vec<UserKey>,
    next: usize,
}

impl ExportOrder {
    /// Reads the keys and leaders of every active user the caller may see and plans the
    /// order. Users created after this pass are not exported; users deleted after it are
    /// left out when their page is read.
    pub async fn plan(dir: &Directory, caller: &Caller) -> Result<Self, CoreError> {
        let mut keys = Vec::new();
        let mut leaders = Vec::new();
        let mut after = None;
        loop {
            let (users, last) = dir.export_users(caller, after, PAGE).await?;
            // One read per page turns the page's leader open ids into keys. A leader the
            // caller may not see is left out, and so is not a dependency within the export.
            let wanted: HashSet<&str> = users
                .iter()
                .filter_map(|u| u.profile.leader.as_ref().map(OpenId::as_str))
                .collect();
            let lookups: Vec<UserLookup> = wanted
                .iter()
                .map(|id| UserLookup::OpenId((*id).to_owned()))
                .collect();
            let found: HashMap<String, UserKey> = if lookups.is_empty() {
                HashMap::new()
            } else {
                dir.get_users(caller, &lookups)
                    .await?
                    .into_iter()
                    .map(|l| (l.open_id.as_str().to_owned(), l.key))
                    .collect()
            };
            for u in &users {
                keys.push(u.key);
                leaders.push(
                    u.profile
                        .leader
                        .as_ref()
                        .and_then(|l| found.get(l.as_str()).copied()),
                );
            }
            match last {
                Some(k) => after = Some(k),
                None => break,
            }
        }
        let (keys, forced) = leaders_first(&keys, &leaders);
        if forced > 0 {
            // The directory refuses leader cycles, so this only happens to data written
            // around it; the users are exported anyway, and the import reports the cycle.
            tracing::warn!(
                users = forced,
                "leader chains form a cycle; written without waiting for their leaders"
            );
        }
        Ok(Self { keys, next: 0 })
    }

    /// The next page of users in the planned order, `None` at the end. A page may hold
    /// fewer than `PAGE` users (or none) when some were deleted or moved out of the
    /// caller's sight since the plan.
    pub async fn next_page(
        &mut self,
        dir: &Directory,
        caller: &Caller,
    ) -> Result<Option<Vec<User>>, CoreError> {
        if self.next >= self.keys.len() {
            return Ok(None);
        }
        let end = self.keys.len().min(self.next + PAGE);
        let page = &self.keys[self.next..end];
        let lookups: Vec<UserLookup> = page.iter().map(|k| UserLookup::Key(*k)).collect();
        // The store answers in any order and includes resigned users.
        let mut found: HashMap<UserKey, User> = dir
            .get_users(caller, &lookups)
            .await?
            .into_iter()
            .filter(|u| !u.status.is_resigned)
            .map(|u| (u.key, u))
            .collect();
        let users = page.iter().filter_map(|k| found.remove(k)).collect();
        self.next = end;
        Ok(Some(users))
    }
}

/// Orders users so that each comes after its leader, and otherwise as early as its place
/// in `keys` allows: of the users whose leader is already written (or who have none, or
/// whose leader is not exported), the first in `keys` comes next. That is the order of
/// `keys` itself when it already puts leaders first, and a user held back for its leader
/// follows it at once, with its own reports. `keys` is ascending (the order the store
/// lists users in); `leaders[i]` is the key of the leader of `keys[i]`.
///
/// A leader cycle cannot be ordered: each one is broken at one of its users, written
/// without waiting for its leader, and the number of such users is returned with the order.
pub fn leaders_first(keys: &[UserKey], leaders: &[Option<UserKey>]) -> (Vec<UserKey>, usize) {
    let n = keys.len();
    // The position of a user's leader, when the leader is exported and is not the user.
    let leader_of = |i: usize| -> Option<usize> {
        let key = leaders.get(i).copied().flatten()?;
        keys.binary_search(&key).ok().filter(|&j| j != i)
    };
    let mut order = Vec::with_capacity(n);
    let mut written = vec![false; n];
    // Users held back, as (leader position, user position): only those whose leader is not
    // written yet when their turn comes, so a directory that already puts leaders first
    // costs nothing here.
    let mut waiting: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut ready: BinaryHeap<Reverse<usize>> = BinaryHeap::new();
    // Writes a ready user, then every user that its writing makes ready, the earliest
    // first. Each held-back user comes before the next user of `keys` since it is earlier
    // in `keys` than the user being written.
    let mut write = |first: usize,
                     order: &mut Vec<UserKey>,
                     written: &mut Vec<bool>,
                     waiting: &mut BTreeSet<(usize, usize)>| {
        ready.push(Reverse(first));
        while let Some(Reverse(i)) = ready.pop() {
            if written[i] {
                continue;
            }
            written[i] = true;
            order.push(keys[i]);
            let reports: Vec<(usize, usize)> =
                waiting.range((i, 0)..=(i, usize::MAX)).copied().collect();
            for pair in reports {
                waiting.remove(&pair);
                ready.push(Reverse(pair.1));
            }
        }
    };
    for i in 0..n {
        match leader_of(i) {
            Some(j) if !written[j] => {
                waiting.insert((j, i));
            }
            _ => write(i, &mut order, &mut written, &mut waiting),
        }
    }
    // What is left waits, directly or through its leaders, on a cycle. Following the
    // leaders of the first such user reaches a user of the cycle, which is written
    // without its leader, and with it every user held back behind the cycle.
    let mut forced = 0;
    for i in 0..n {
        if written[i] {
            continue;
        }
        let mut path = HashSet::new();
        let mut at = i;
        while path.insert(at) {
            match leader_of(at) {
                Some(j) if !written[j] => at = j,
                _ => break,
            }
        }
        forced += 1;
        write(at, &mut order, &mut written, &mut waiting);
    }
    (order, forced)
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
    order: ExportOrder,
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
    let users = match c.order.next_page(&c.dir, &c.caller).await {
        Ok(Some(users)) => users,
        Ok(None) => {
            c.done = true;
            // An empty export still sends its CSV header.
            return (!out.is_empty()).then(|| (Ok(Bytes::from(out)), c));
        }
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
    Some((Ok(Bytes::from(out)), c))
}

/// `GET /api/v1/users/export?format=ndjson|csv`.
pub(crate) async fn export(
    State(state): State<AdminState>,
    Auth(caller): Auth,
    uri: Uri,
) -> Result<Response, AdminError> {
    caller.require(roster_core::Scope::ContactRead)?;
    let q = query(&uri, &["format"])?;
    let csv = match q.get("format").map(String::as_str) {
        None | Some("ndjson") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(AdminError::bad_request(format!(
                "format must be ndjson or csv, not {other:?}"
            )))
        }
    };
    // The order is planned before the answer starts, so that a failure of the first pass
    // is answered in the envelope rather than as a cut-off body.
    let order = ExportOrder::plan(&state.dir, &caller).await?;
    let cursor = Cursor {
        dir: state.dir.clone(),
        caller,
        csv,
        order,
        started: false,
        done: false,
    };
    // A failure after the first bytes can only cut the stream short (the status is sent);
    // it is logged, and the client sees a truncated body.
    // The body is read after the handler has returned, outside the request's span, so the
    // span goes with the stream and the failure is logged with the request's id and path.
    let span = tracing::Span::current();
    let stream = futures::stream::unfold(cursor, next_page);
    let stream = futures::StreamExt::map(stream, move |r| {
        r.map_err(|e| {
            let _entered = span.enter();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Orders users 1..=n (keys 1..=n) whose leaders are given as (user, leader) pairs.
    fn order(n: i64, pairs: &[(i64, i64)]) -> (Vec<i64>, usize) {
        let keys: Vec<UserKey> = (1..=n).map(UserKey).collect();
        let leaders: Vec<Option<UserKey>> = (1..=n)
            .map(|k| {
                pairs
                    .iter()
                    .find(|(u, _)| *u == k)
                    .map(|(_, l)| UserKey(*l))
            })
            .collect();
        let (keys, forced) = leaders_first(&keys, &leaders);
        (keys.into_iter().map(|k| k.0).collect(), forced)
    }

    #[test]
    fn an_order_that_puts_leaders_first_is_kept() {
        assert_eq!(
            order(5, &[(2, 1), (3, 1), (5, 4)]),
            (vec![1, 2, 3, 4, 5], 0)
        );
        assert_eq!(order(0, &[]), (vec![], 0));
    }

    #[test]
    fn a_user_held_back_follows_its_leader_with_its_reports() {
        // 1 reports to 5 and 2 to 1: both wait for 5, then come in their own order.
        assert_eq!(
            order(6, &[(1, 5), (2, 1), (4, 3)]),
            (vec![3, 4, 5, 1, 2, 6], 0)
        );
        // A chain created from the bottom up comes out from the top down.
        assert_eq!(order(4, &[(1, 2), (2, 3), (3, 4)]), (vec![4, 3, 2, 1], 0));
        // Reports released together come in creation order, whatever their depth.
        assert_eq!(
            order(5, &[(1, 5), (3, 5), (2, 1)]),
            (vec![4, 5, 1, 2, 3], 0)
        );
    }

    #[test]
    fn a_leader_outside_the_export_is_no_dependency() {
        assert_eq!(order(3, &[(1, 99), (2, 1)]), (vec![1, 2, 3], 0));
    }

    #[test]
    fn cycles_are_broken_and_every_user_is_written_once() {
        // 1 → 2 → 3 → 2, and 4 → 1; 5 leads itself, which is no dependency at all.
        let (keys, forced) = order(6, &[(1, 2), (2, 3), (3, 2), (4, 1), (5, 5)]);
        assert_eq!(forced, 1);
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![1, 2, 3, 4, 5, 6]);
        // Outside the cycle, leaders still come first.
        let at = |k: i64| keys.iter().position(|x| *x == k).unwrap();
        assert!(at(2) < at(1) && at(1) < at(4), "{keys:?}");
        // The cycle is broken at the first of its users that the walk from 1 reaches.
        assert!(at(2) < at(3), "{keys:?}");
    }
}
