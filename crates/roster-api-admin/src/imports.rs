//! `POST /api/v1/imports` (a streamed NDJSON or CSV upload → one import task),
//! `GET /api/v1/imports/{task_id}` (status and counts) and
//! `GET /api/v1/imports/{task_id}/results` (per-row results by row number).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::Json;
use futures::StreamExt;
use roster_core::{
    Caller, CoreError, Directory, ImportChunk, ItemError, ItemOutcome, NewUser, Task, TaskId,
    TaskStatus, IMPORT_CHUNK_ROWS,
};
use serde_json::{json, Value};

use crate::error::{row_error_code, row_error_field, row_error_message, AdminError};
use crate::rows::{self, Departments, RawRow};
use crate::split::{Record, Splitter};
use crate::{flag, query, AdminState, Auth};

/// Most errors a dry run lists; the counts stay exact beyond it.
const MAX_DRY_RUN_ERRORS: usize = 100_000;
/// Most rows one upload may hold (row indexes are 32-bit).
const MAX_ROWS: u64 = u32::MAX as u64 - 1;

/// The upload's encoding, from `?format=` or the Content-Type.
fn is_csv(
    headers: &HeaderMap,
    q: &std::collections::HashMap<String, String>,
) -> Result<bool, AdminError> {
    // The body is read as it comes; a compressed one would be parsed as rows of binary.
    if let Some(enc) = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|e| !e.eq_ignore_ascii_case("identity"))
    {
        return Err(AdminError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Encoding {enc:?} is not accepted: send the rows uncompressed"),
        ));
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = ctype
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    // Rows are read as UTF-8; a declared other charset (a spreadsheet's GBK export, say)
    // would fail every row that is not plain ASCII, so it is refused up front.
    if let Some(charset) = ctype.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"'))
    }) {
        if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("utf8") {
            return Err(AdminError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("charset {charset:?} is not accepted: send the rows as UTF-8"),
            ));
        }
    }
    if let Some(f) = q.get("format") {
        return match f.as_str() {
            "csv" => Ok(true),
            "ndjson" | "jsonl" => Ok(false),
            other => Err(AdminError::bad_request(format!(
                "format must be ndjson or csv, not {other:?}"
            ))),
        };
    }
    match essence.as_str() {
        "text/csv" => Ok(true),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines" => Ok(false),
        _ => Err(AdminError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type application/x-ndjson or text/csv (or ?format=ndjson|csv)",
        )),
    }
}

/// Turns records into parsed rows: the CSV header first, then one item per row.
struct RowReader {
    csv: bool,
    columns: Option<Vec<usize>>,
    notify: bool,
}

impl RowReader {
    /// The next item of a record, or `None` for a CSV header; a bad header fails the
    /// whole upload.
    async fn item(
        &mut self,
        record: Record,
        depts: &mut Departments<'_>,
    ) -> Result<Option<Result<NewUser, ItemError>>, AdminError> {
        let raw = match record {
            // A CSV header too long to read refuses the upload, as any bad header does:
            // taking the next record for the header would shift every row's number.
            Record::TooLong if self.csv && self.columns.is_none() => {
                return Err(AdminError::bad_request(format!(
                    "the CSV header is longer than {} bytes",
                    rows::MAX_ROW_BYTES
                )));
            }
            Record::TooLong => Err(rows::too_long_row(self.csv)),
            Record::Data(bytes) if self.csv => {
                let record = rows::csv_record(&bytes);
                match (&self.columns, record) {
                    (None, Ok(header)) => {
                        self.columns =
                            Some(rows::csv_header(&header).map_err(AdminError::bad_request)?);
                        return Ok(None);
                    }
                    (None, Err(e)) => {
                        return Err(AdminError::bad_request(format!(
                            "unreadable CSV header: {e}"
                        )))
                    }
                    (Some(columns), Ok(r)) => rows::from_csv(columns, &r),
                    (Some(_), Err(e)) => Err(rows::format_error("row", e)),
                }
            }
            Record::Data(bytes) => RawRow::from_json(&bytes),
        };
        Ok(Some(match raw {
            Ok(row) => rows::to_new_user(&row, self.notify, depts).await?,
            Err(e) => Err(e),
        }))
    }
}

/// Gives up an unsealed import when the upload handler ends without sealing it (an error,
/// or the client went away and the handler was dropped), so it never runs half.
struct Unsealed {
    dir: Directory,
    id: Option<TaskId>,
}

impl Drop for Unsealed {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let dir = self.dir.clone();
            tokio::spawn(async move {
                if let Err(err) = dir.abort_import(&id).await {
                    tracing::warn!(task = %id, "failed to abort an unfinished upload: {err}");
                }
            });
        }
    }
}

/// How long a receiving upload keeps rows unstored before it stores a short chunk: well
/// inside the task's ten-minute receive deadline, which every stored chunk extends.
const TRICKLE_FLUSH: std::time::Duration = std::time::Duration::from_mins(2);

/// Uploads (dry runs included) one process receives at once. Each holds up to a chunk of
/// parsed rows (20 000, tens of megabytes) until it is stored, so eight at once took the
/// server past half a gigabyte and slowed every other client; one more is answered 429
/// and may try again when one of these ends.
pub(crate) const UPLOADS_AT_ONCE: usize = 4;

/// `POST /api/v1/imports`.
pub(crate) async fn create(
    State(state): State<AdminState>,
    Auth(caller): Auth,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    caller.require(roster_core::Scope::ContactWrite)?;
    let q = query(&uri, &["format", "mode", "notify", "dry_run"])?;
    let csv = is_csv(&headers, &q)?;
    match q.get("mode").map(String::as_str) {
        None | Some("best_effort") => {}
        Some(other) => {
            return Err(AdminError::bad_request(format!(
                "mode must be best_effort, not {other:?}"
            )))
        }
    }
    let notify = flag(&q, "notify")?;
    let Ok(_receiving) = state.uploads.clone().try_acquire_owned() else {
        return Err(AdminError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_uploads",
            format!(
                "this server is receiving {UPLOADS_AT_ONCE} uploads already; \
                 send this one when one of them has ended"
            ),
        ));
    };
    let reader = RowReader {
        csv,
        columns: None,
        notify,
    };
    if flag(&q, "dry_run")? {
        return dry_run(&state.dir, &caller, reader, body).await;
    }
    upload(&state.dir, &caller, reader, body, notify).await
}

async fn upload(
    dir: &Directory,
    caller: &Caller,
    mut reader: RowReader,
    body: Body,
    notify: bool,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    // The task is made when the first chunk is ready (or at the end): an upload refused on
    // its first record (a bad CSV header, say) leaves no task behind.
    let mut guard = Unsealed {
        dir: dir.clone(),
        id: None,
    };
    let mut depts = Departments::new(dir, caller);
    let mut splitter = Splitter::new(reader.csv);
    let mut records = Vec::new();
    let mut items: Vec<Result<NewUser, ItemError>> = Vec::with_capacity(IMPORT_CHUNK_ROWS);
    let (mut seq, mut rows) = (0_u32, 0_u64);
    // One chunk is written while the next is parsed.
    let mut in_flight: Option<tokio::task::JoinHandle<Result<(), CoreError>>> = None;
    let mut stream = body.into_data_stream();
    let mut ended = false;
    let mut last_stored = std::time::Instant::now();
    while !ended {
        match stream.next().await {
            Some(Ok(bytes)) => splitter.feed(&bytes, &mut records),
            Some(Err(e)) => {
                return Err(AdminError::bad_request(format!(
                    "the upload broke off: {e}"
                )));
            }
            None => {
                splitter.finish(&mut records);
                ended = true;
            }
        }
        for record in records.drain(..) {
            let Some(item) = reader.item(record, &mut depts).await? else {
                continue;
            };
            items.push(item);
            rows += 1;
            if rows > MAX_ROWS {
                return Err(AdminError::bad_request("too many rows in one upload"));
            }
            // A slow upload stores what it has every `TRICKLE_FLUSH`: each stored chunk
            // extends the task's receive deadline, which would otherwise run out under a
            // client that sends fewer than a chunk's rows in ten minutes.
            if items.len() == IMPORT_CHUNK_ROWS
                || (!items.is_empty() && last_stored.elapsed() >= TRICKLE_FLUSH)
            {
                let id = open_task(dir, caller, notify, &mut guard).await?;
                send(dir, &id, &mut in_flight, &mut seq, rows, &mut items).await?;
                last_stored = std::time::Instant::now();
            }
        }
    }
    if reader.csv && reader.columns.is_none() {
        return Err(AdminError::bad_request("the CSV upload has no header row"));
    }
    let id = open_task(dir, caller, notify, &mut guard).await?;
    if !items.is_empty() {
        send(dir, &id, &mut in_flight, &mut seq, rows, &mut items).await?;
    }
    if let Some(h) = in_flight.take() {
        h.await.map_err(AdminError::internal)??;
    }
    dir.seal_import(&id).await?;
    guard.id = None;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"task_id": id.as_str(), "status": "queued", "rows": rows})),
    ))
}

/// The upload's task, made on first use; from then on the guard fails it if the upload
/// does not finish.
async fn open_task(
    dir: &Directory,
    caller: &Caller,
    notify: bool,
    guard: &mut Unsealed,
) -> Result<TaskId, AdminError> {
    if let Some(id) = &guard.id {
        return Ok(id.clone());
    }
    let task = dir.begin_import(caller, notify).await?;
    guard.id = Some(task.id.clone());
    Ok(task.id)
}

/// Hands the gathered rows to a background append, after the previous one has finished
/// (chunks are appended in order).
async fn send(
    dir: &Directory,
    id: &TaskId,
    in_flight: &mut Option<tokio::task::JoinHandle<Result<(), CoreError>>>,
    seq: &mut u32,
    rows: u64,
    items: &mut Vec<Result<NewUser, ItemError>>,
) -> Result<(), AdminError> {
    if let Some(h) = in_flight.take() {
        h.await.map_err(AdminError::internal)??;
    }
    let items = std::mem::replace(items, Vec::with_capacity(IMPORT_CHUNK_ROWS));
    let chunk = ImportChunk {
        seq: *seq,
        first_row: (rows - items.len() as u64) as u32,
        items,
    };
    *seq += 1;
    let dir = dir.clone();
    let id = id.clone();
    *in_flight = Some(tokio::spawn(async move {
        dir.append_import_chunk(&id, &chunk).await
    }));
    Ok(())
}

/// `?dry_run=true`: every row through the core's validation, nothing written.
async fn dry_run(
    dir: &Directory,
    caller: &Caller,
    mut reader: RowReader,
    body: Body,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let mut depts = Departments::new(dir, caller);
    let mut dry = dir.begin_dry_run(caller).await?;
    let mut splitter = Splitter::new(reader.csv);
    let mut records = Vec::new();
    let mut items = Vec::with_capacity(IMPORT_CHUNK_ROWS);
    let (mut rows, mut invalid) = (0_u64, 0_u64);
    let mut errors = Vec::new();
    let mut stream = body.into_data_stream();
    let mut ended = false;
    while !ended {
        match stream.next().await {
            Some(Ok(bytes)) => splitter.feed(&bytes, &mut records),
            Some(Err(e)) => {
                return Err(AdminError::bad_request(format!(
                    "the upload broke off: {e}"
                )));
            }
            None => {
                splitter.finish(&mut records);
                ended = true;
            }
        }
        for record in records.drain(..) {
            let Some(item) = reader.item(record, &mut depts).await? else {
                continue;
            };
            items.push(item);
            rows += 1;
            if items.len() == IMPORT_CHUNK_ROWS {
                invalid += check(dir, caller, &mut dry, &mut items, rows, &mut errors).await?;
            }
        }
    }
    if reader.csv && reader.columns.is_none() {
        return Err(AdminError::bad_request("the CSV upload has no header row"));
    }
    invalid += check(dir, caller, &mut dry, &mut items, rows, &mut errors).await?;
    let truncated = errors.len() as u64 != invalid;
    Ok((
        StatusCode::OK,
        Json(json!({
            "dry_run": true,
            "rows": rows,
            "valid": rows - invalid,
            "invalid": invalid,
            "errors": errors,
            "errors_truncated": truncated,
        })),
    ))
}

/// Validates the gathered rows (the last of which is row number `rows`); returns how many
/// were refused and lists their errors.
async fn check(
    dir: &Directory,
    caller: &Caller,
    dry: &mut roster_core::DryRun,
    items: &mut Vec<Result<NewUser, ItemError>>,
    rows: u64,
    errors: &mut Vec<Value>,
) -> Result<u64, AdminError> {
    if items.is_empty() {
        return Ok(0);
    }
    let first = rows - items.len() as u64 + 1;
    let verdicts = dir
        .validate_users(caller, std::mem::take(items), dry)
        .await?;
    let mut invalid = 0;
    for (i, v) in verdicts.iter().enumerate() {
        if let Some(e) = v {
            invalid += 1;
            if errors.len() < MAX_DRY_RUN_ERRORS {
                errors.push(row_error(first + i as u64, e));
            }
        }
    }
    Ok(invalid)
}

/// One row's error as JSON: `{"row","field","code","message"}`.
fn row_error(row: u64, e: &ItemError) -> Value {
    json!({
        "row": row,
        "field": row_error_field(e),
        "code": row_error_code(e),
        "message": row_error_message(e),
    })
}

fn task_id(raw: &str) -> Result<TaskId, AdminError> {
    TaskId::parse(raw).map_err(|_| {
        AdminError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no import {raw:?}"),
        )
    })
}

fn status_json(task: &Task) -> Value {
    let status = match task.status {
        TaskStatus::Receiving => "receiving",
        TaskStatus::Queued => "queued",
        TaskStatus::Running => "running",
        TaskStatus::Done => "done",
        TaskStatus::Failed => "failed",
    };
    json!({
        "task_id": task.id.as_str(),
        "status": status,
        "total": task.total,
        "processed": task.processed(),
        "succeeded": task.succeeded,
        "failed": task.failed,
        "progress": task.progress(),
        "created_at": task.created_at,
        "finished_at": task.finished_at,
    })
}

/// `GET /api/v1/imports/{task_id}`.
pub(crate) async fn status(
    State(state): State<AdminState>,
    Auth(caller): Auth,
    crate::AdminPath(raw): crate::AdminPath<String>,
) -> Result<Json<Value>, AdminError> {
    let task = state.dir.get_import(&caller, &task_id(&raw)?).await?;
    Ok(Json(status_json(&task)))
}

/// `GET /api/v1/imports/{task_id}/results?after=&limit=`.
pub(crate) async fn results(
    State(state): State<AdminState>,
    Auth(caller): Auth,
    crate::AdminPath(raw): crate::AdminPath<String>,
    uri: Uri,
) -> Result<Json<Value>, AdminError> {
    let q = query(&uri, &["after", "limit"])?;
    let number = |name: &str, default: u32| -> Result<u32, AdminError> {
        q.get(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| AdminError::bad_request(format!("{name} must be a whole number")))
        })
    };
    let after = number("after", 0)?;
    let limit = number("limit", 1000)?;
    if limit == 0 || limit as usize > roster_core::directory::MAX_RESULTS_PAGE {
        return Err(AdminError::bad_request(format!(
            "limit must be 1 to {}",
            roster_core::directory::MAX_RESULTS_PAGE
        )));
    }
    let (task, page) = state
        .dir
        .import_results(&caller, &task_id(&raw)?, after, limit as usize)
        .await?;
    let next = page.last().map(|r| r.row).filter(|&r| r < task.total);
    let results: Vec<Value> = page
        .iter()
        .map(|r| match &r.outcome {
            Some(ItemOutcome::Created {
                open_id,
                union_id,
                user_id,
            }) => json!({"row": r.row, "status": "created", "open_id": open_id,
                         "union_id": union_id, "user_id": user_id}),
            Some(ItemOutcome::Failed(e)) => json!({"row": r.row, "status": "failed",
                "error": {"code": row_error_code(e), "field": row_error_field(e),
                          "message": row_error_message(e)}}),
            None => json!({"row": r.row, "status": "pending"}),
        })
        .collect();
    let mut body = status_json(&task);
    body["results"] = Value::Array(results);
    body["next_after"] = next.map_or(Value::Null, Value::from);
    Ok(Json(body))
}
