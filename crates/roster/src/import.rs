//! `roster import FILE`: reads CSV, XLSX or NDJSON, maps its columns to the import row
//! fields, and either uploads the rows to a server's bulk import API (`--url`) or writes them
//! straight to the database through the same core path in this process. Output is for a
//! person, so this module prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// Doc comments on the clap types are `--help` text for people, not rustdoc.
#![allow(clippy::doc_markdown)]

use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use roster_api_admin::error::{row_error_code, row_error_field, row_error_message};
use roster_api_admin::rows::{self, format_error, Departments, RawRow, FIELDS, MAX_ROW_BYTES};
use roster_api_admin::split::{Record, Splitter};
use roster_app::Config;
use roster_core::{
    Caller, ContactScope, Directory, ImportChunk, ItemError, ItemOutcome, Scope, Scopes,
    TaskStatus, IMPORT_CHUNK_ROWS,
};
use serde_json::Value;

/// Rows handed from the file reader to the importer at a time.
const BATCH: usize = 1000;

#[derive(Args)]
pub(crate) struct ImportArgs {
    /// The file: .csv, .xlsx or .ndjson/.jsonl (or say --format).
    file: PathBuf,
    /// csv, xlsx or ndjson (default: from the file name).
    #[arg(long)]
    format: Option<String>,
    /// XLSX: the sheet to read (default: the first).
    #[arg(long)]
    sheet: Option<String>,
    /// Column mapping, field=Column pairs separated by commas, e.g.
    /// `name=Full Name,email=Mail`. Columns named like a field map themselves.
    #[arg(long)]
    map: Option<String>,
    /// Send the rows to this server's import API, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: Option<String>,
    /// With --url: the app to authenticate as (with --app-secret); without --url: the app
    /// the import acts as (default: the tenant's first app).
    #[arg(long)]
    app_id: Option<String>,
    /// With --url: the app's secret.
    #[arg(long, env = "ROSTER_APP_SECRET", hide_env_values = true)]
    app_secret: Option<String>,
    /// With --url: a tenant access token instead of --app-id/--app-secret.
    #[arg(long, env = "ROSTER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Without --url: the tenant (default: the first).
    #[arg(long)]
    tenant: Option<i64>,
    /// Send each created user an invitation.
    #[arg(long)]
    notify: bool,
    /// Validate every row with the directory's rules and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write the refused rows here as CSV: row,field,code,message.
    #[arg(long)]
    errors: Option<PathBuf>,
}

/// One refused row of the report.
struct RowError {
    row: u64,
    field: String,
    code: String,
    message: String,
}

impl RowError {
    fn of(row: u64, e: &ItemError) -> Self {
        Self {
            row,
            field: row_error_field(e).to_owned(),
            code: row_error_code(e).to_owned(),
            message: row_error_message(e),
        }
    }
}

/// A row read from the file: its number there (from 1, header excluded) and its values
/// or why it could not be read.
type ReadRow = (u64, Result<RawRow, ItemError>);

/// What the importer learns in the end.
struct Outcome {
    rows: u64,
    created: u64,
    errors: Vec<RowError>,
    /// Refused rows whose errors were not listed (a server dry run lists the first
    /// 100 000 errors and counts the rest).
    unlisted: u64,
}

pub(crate) async fn run(config: &Config, args: ImportArgs) -> anyhow::Result<()> {
    let format = match args.format.as_deref() {
        Some(f) => f.to_ascii_lowercase(),
        None => args
            .file
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default(),
    };
    let format = match format.as_str() {
        "csv" => Format::Csv,
        "xlsx" | "xlsm" | "xls" | "ods" => Format::Xlsx,
        "ndjson" | "jsonl" | "json" => Format::Ndjson,
        other => bail!("unknown format {other:?}: use --format csv, xlsx or ndjson"),
    };
    let mapping = parse_map(args.map.as_deref())?;
    if !args.file.is_file() {
        bail!("{} is not a readable file", args.file.display());
    }
    // Invitations written here carry links to the server, which this process does not
    // know: the server's `--listen` is its own flag, and a guessed default would send
    // every invited user a link that leads nowhere.
    if args.url.is_none() && args.notify && !args.dry_run && config.public_url.is_none() {
        bail!(
            "--notify straight to the database needs public_url (in roster.toml or \
             ROSTER_PUBLIC_URL), the address users reach the server at, for the invitation \
             links; or import through the server with --url"
        );
    }
    // The report is opened before anything is imported: a path it cannot be written to
    // then fails the command while nothing has been written, instead of after the import,
    // when running it again would meet every row it created as a duplicate.
    if let Some(errors) = args.errors.as_deref() {
        // The report overwrites its file: naming the input there would destroy the input.
        if same_file(errors, &args.file) {
            bail!(
                "--errors {} names the file being imported; the report would overwrite it",
                errors.display()
            );
        }
    }
    let report = args.errors.as_deref().map(Report::open).transpose()?;
    let (tx, rx) = tokio::sync::mpsc::channel::<anyhow::Result<Vec<ReadRow>>>(8);
    let file = args.file.clone();
    let sheet = args.sheet.clone();
    let reader = std::thread::spawn(move || {
        if let Err(e) = read_file(&file, format, sheet.as_deref(), &mapping, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let bar = progress_bar();
    let outcome = match &args.url {
        Some(url) => over_http(url, &args, rx, &bar).await,
        None => in_process(config, &args, rx, &bar).await,
    };
    let _ = reader.join();
    bar.finish_and_clear();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            if let Some(report) = report {
                report.discard();
            }
            return Err(e);
        }
    };
    let written = report.map(|r| r.write(&outcome.errors));
    let failed = outcome.errors.len() as u64 + outcome.unlisted;
    if args.dry_run {
        println!(
            "dry run: {} rows, {} valid, {} invalid; nothing was written",
            outcome.rows,
            outcome.rows.saturating_sub(failed),
            failed
        );
        if outcome.unlisted > 0 {
            println!(
                "the server listed the first {} errors; the error report holds those",
                outcome.errors.len()
            );
        }
    } else {
        println!(
            "imported {} rows: {} created, {} failed",
            outcome.rows, outcome.created, failed
        );
    }
    for e in outcome.errors.iter().take(10) {
        // An error of the whole row (the licence cap) names no field.
        if e.field.is_empty() {
            println!("  row {}: {}: {}", e.row, e.code, e.message);
        } else {
            println!("  row {}: {} {}: {}", e.row, e.code, e.field, e.message);
        }
    }
    if failed > 10 {
        println!("  … and {} more", failed - 10);
    }
    // A report that could not be written is told after the summary: the import has
    // happened, and the operator must still learn what it did.
    if let Some(Err(e)) = written {
        return Err(e);
    }
    if failed > 0 {
        return Err(RowsFailed(format!(
            "{failed} rows failed{}",
            args.errors
                .as_ref()
                .map(|p| format!(" (see {})", p.display()))
                .unwrap_or_default()
        ))
        .into());
    }
    Ok(())
}

/// An import (or dry run) that ran to its end with some rows refused: the command exits
/// with [`RowsFailed::EXIT_CODE`], so that a script can tell it from an import that did not
/// run (exit 1).
#[derive(Debug)]
pub(crate) struct RowsFailed(String);

impl RowsFailed {
    /// The exit code of an import that ran with some rows refused.
    pub(crate) const EXIT_CODE: u8 = 2;
}

impl std::fmt::Display for RowsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RowsFailed {}

#[derive(Clone, Copy)]
enum Format {
    Csv,
    Xlsx,
    Ndjson,
}

/// A progress bar on standard error with rows/s and ETA, hidden when that is not a
/// terminal.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {pos}/{len} rows ({per_sec}, ETA {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// `field=Column,…` into column → field.
fn parse_map(spec: Option<&str>) -> anyhow::Result<HashMap<String, &'static str>> {
    let mut out = HashMap::new();
    let Some(spec) = spec else { return Ok(out) };
    for pair in spec.split(',').filter(|p| !p.trim().is_empty()) {
        let (field, column) = pair
            .split_once('=')
            .with_context(|| format!("--map: {pair:?} is not field=Column"))?;
        let field = field.trim();
        let known = FIELDS
            .iter()
            .copied()
            .find(|f| *f == field)
            .with_context(|| {
                format!(
                    "--map: unknown field {field:?}; fields are {}",
                    FIELDS.join(", ")
                )
            })?;
        out.insert(column.trim().to_owned(), known);
    }
    Ok(out)
}

/// The field a source column goes to: the mapping, else its own name normalised (case,
/// spaces and dashes), else a few common spellings.
fn column_field(mapping: &HashMap<String, &'static str>, column: &str) -> Option<&'static str> {
    if let Some(f) = mapping.get(column.trim()) {
        return Some(f);
    }
    let norm: String = column
        .trim()
        .trim_start_matches('\u{feff}')
        .to_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect();
    if let Some(f) = FIELDS.iter().copied().find(|f| *f == norm) {
        // A column mapped explicitly elsewhere does not also map itself.
        return (!mapping.values().any(|m| *m == f)).then_some(f);
    }
    let alias = match norm.as_str() {
        "full_name" | "display_name" => "name",
        "mail" | "e_mail" | "email_address" => "email",
        "phone" | "mobile_phone" | "phone_number" | "cell" => "mobile",
        "department" | "departments" | "department_id" | "dept" => "department_ids",
        "leader" | "manager" | "leader_id" | "manager_user_id" => "leader_user_id",
        "title" | "job" | "position" => "job_title",
        "employee_number" | "employee_id" | "staff_no" => "employee_no",
        "login" | "login_name" => "username",
        "english_name" => "en_name",
        "id" | "userid" => "user_id",
        _ => return None,
    };
    (!mapping.values().any(|m| *m == alias)).then_some(alias)
}

/// The field of every column of a header; unknown columns are ignored with a note.
fn header_fields(
    mapping: &HashMap<String, &'static str>,
    header: &[String],
) -> anyhow::Result<Vec<Option<&'static str>>> {
    let fields: Vec<Option<&'static str>> =
        header.iter().map(|c| column_field(mapping, c)).collect();
    for (c, f) in header.iter().zip(&fields) {
        if f.is_none() && !c.trim().is_empty() {
            eprintln!("note: column {c:?} maps to no field and is ignored (see --map)");
        }
    }
    for column in mapping.keys() {
        if !header.iter().any(|h| h.trim() == column) {
            bail!("--map names column {column:?}, which the file does not have");
        }
    }
    // Two columns for one field (`Mobile` and `Phone`) would have the later cell overwrite
    // the earlier, even with nothing: the file is refused, as the upload API refuses a
    // repeated column, and --map says which column is meant.
    for (i, field) in fields.iter().enumerate() {
        let Some(field) = field else { continue };
        if let Some(first) = fields[..i].iter().position(|f| *f == Some(*field)) {
            bail!(
                "columns {:?} and {:?} both map to the field {field}; keep one, or say which \
                 with --map {field}=<column>",
                header[first],
                header[i]
            );
        }
    }
    if !fields.contains(&Some("name")) {
        bail!("no column maps to the required field name (use --map name=<column>)");
    }
    Ok(fields)
}

fn row_of(fields: &[Option<&'static str>], cells: &[String]) -> Result<RawRow, ItemError> {
    let mut row = RawRow::default();
    for (field, cell) in fields.iter().zip(cells) {
        if let Some(f) = field {
            row.set(f, cell)?;
        }
    }
    Ok(row)
}

/// Reads the file on this (blocking) thread and sends its rows in batches.
fn read_file(
    path: &Path,
    format: Format,
    sheet: Option<&str>,
    mapping: &HashMap<String, &'static str>,
    tx: &tokio::sync::mpsc::Sender<anyhow::Result<Vec<ReadRow>>>,
) -> anyhow::Result<()> {
    let mut batch: Vec<ReadRow> = Vec::with_capacity(BATCH);
    let mut emit = |row: ReadRow| -> anyhow::Result<()> {
        batch.push(row);
        if batch.len() == BATCH {
            tx.blocking_send(Ok(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))))
                .map_err(|_| anyhow::anyhow!("the importer stopped"))?;
        }
        Ok(())
    };
    match format {
        Format::Csv => {
            // The fields of the header's columns, once it has been read.
            let mut fields: Option<Vec<Option<&'static str>>> = None;
            let mut n = 0;
            split_file(path, true, |record| {
                let Some(fields) = &fields else {
                    let header = match record {
                        // A header too long to read refuses the file, as the upload API
                        // refuses it: taking the next record for the header would shift
                        // every row's number.
                        Record::TooLong => {
                            bail!("the CSV header is longer than {MAX_ROW_BYTES} bytes")
                        }
                        Record::Data(bytes) => cells_of(
                            &rows::csv_record(&bytes)
                                .map_err(|e| anyhow::anyhow!("unreadable CSV header: {e}"))?,
                        ),
                    };
                    fields = Some(header_fields(mapping, &header)?);
                    return Ok(());
                };
                n += 1;
                let row = match record {
                    Record::TooLong => Err(rows::too_long_row(true)),
                    Record::Data(bytes) => match rows::csv_record(&bytes).map(|r| cells_of(&r)) {
                        Ok(cells) if cells.len() != fields.len() => Err(format_error(
                            "row",
                            format!(
                                "has {} cells where the header has {}",
                                cells.len(),
                                fields.len()
                            ),
                        )),
                        Ok(cells) => row_of(fields, &cells),
                        Err(e) => Err(format_error("row", e)),
                    },
                };
                emit((n, row))
            })?;
            if fields.is_none() {
                bail!("the file is empty: it needs a header row");
            }
        }
        Format::Xlsx => {
            use calamine::{open_workbook_auto, Reader, Sheets};
            let mut book =
                open_workbook_auto(path).with_context(|| format!("open {}", path.display()))?;
            let name = match sheet {
                Some(s) => s.to_owned(),
                None => book
                    .sheet_names()
                    .first()
                    .cloned()
                    .context("the workbook has no sheet")?,
            };
            let mut range = book
                .worksheet_range(&name)
                .with_context(|| format!("read sheet {name:?}"))?;
            // HR sheets merge a department cell over the rows of its people; read as it is
            // stored, only the first row would hold the value and the others would land in
            // the root department without a word. Every cell of a merged region reads as its
            // top-left cell, as the sheet shows it.
            let merged = match &mut book {
                Sheets::Xlsx(x) => x.merge_cells_by_sheet_name(&name).unwrap_or_default(),
                Sheets::Xls(x) => x.merge_cells_by_sheet_name(&name).unwrap_or_default(),
                _ => Vec::new(),
            };
            fill_merged(&mut range, &merged);
            let mut rows = range.rows();
            // An error in the header is a column name like any other: it maps to no field.
            let header: Vec<String> = rows
                .next()
                .context("the sheet is empty: it needs a header row")?
                .iter()
                .map(|c| xlsx_cell(c, None).unwrap_or_else(|e| e))
                .collect();
            let fields = header_fields(mapping, &header)?;
            let mut n = 0;
            for r in rows {
                let mut cells = Vec::with_capacity(r.len());
                let mut error = None;
                for (c, field) in r.iter().zip(fields.iter().chain(std::iter::repeat(&None))) {
                    match xlsx_cell(c, *field) {
                        Ok(text) => cells.push(text),
                        Err(e) => {
                            // A cell that cannot be read as the user typed it is not an empty
                            // cell: read as one, it would import the user without the field
                            // (or with another value). In a column the import reads it fails
                            // the row; in an ignored column it is ignored with the column.
                            if let (None, Some(field)) = (&error, field) {
                                error = Some(format_error(field, e));
                            }
                            cells.push(String::new());
                        }
                    }
                }
                if error.is_none() && cells.iter().all(|c| c.trim().is_empty()) {
                    continue;
                }
                n += 1;
                let row = match error {
                    Some(e) => Err(e),
                    None => row_of(&fields, &cells),
                };
                emit((n, row))?;
            }
        }
        Format::Ndjson => {
            let mut n = 0;
            split_file(path, false, |record| {
                n += 1;
                let row = match record {
                    Record::TooLong => Err(rows::too_long_row(false)),
                    Record::Data(line) => ndjson_row(mapping, &line),
                };
                emit((n, row))
            })?;
        }
    }
    if !batch.is_empty() {
        tx.blocking_send(Ok(batch))
            .map_err(|_| anyhow::anyhow!("the importer stopped"))?;
    }
    Ok(())
}

/// Reads the records of a CSV (`csv`) or NDJSON file as the upload API splits its body:
/// blank lines are not records, and no more than one record of at most `MAX_ROW_BYTES` is
/// held at a time; a longer one is skipped to its end and handed on as too long, so that a
/// file without line ends (or a CSV quote that never closes) cannot exhaust the memory.
fn split_file(
    path: &Path,
    csv: bool,
    mut each: impl FnMut(Record) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut splitter = Splitter::new(csv);
    let mut buf = vec![0_u8; 64 * 1024];
    let mut records = Vec::new();
    loop {
        let read = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(anyhow::Error::new(e).context("read the file")),
        };
        splitter.feed(&buf[..read], &mut records);
        for record in records.drain(..) {
            each(record)?;
        }
    }
    splitter.finish(&mut records);
    for record in records.drain(..) {
        each(record)?;
    }
    Ok(())
}

/// The cells of one CSV record, as owned text.
fn cells_of(record: &csv::StringRecord) -> Vec<String> {
    record.iter().map(str::to_owned).collect()
}

/// An NDJSON line, its keys mapped like CSV columns, read by the upload API's own row
/// parser so that a row the server would refuse (a boolean for text, a key sent twice) is
/// refused here too; two keys that map to one field (`mobile` and `phone`) fail the row
/// there as well.
fn ndjson_row(mapping: &HashMap<String, &'static str>, line: &[u8]) -> Result<RawRow, ItemError> {
    RawRow::from_json_with(line, |key| {
        column_field(mapping, key)
            .ok_or_else(|| format_error(key, format!("unknown field {key:?} (see --map)")))
    })
}

/// The `--errors` report file, opened before the import and written after it.
struct Report {
    file: std::fs::File,
    path: PathBuf,
    /// Whether this run made the file (so that a run that writes no report removes it).
    made: bool,
}

/// Whether two paths name one file (after links and `..`); a path that does not exist yet
/// names no existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

impl Report {
    /// Opens (or makes) the file for writing. An existing file is not emptied yet: a run
    /// refused before its report (a bad header, say) leaves it as it was.
    fn open(path: &Path) -> anyhow::Result<Self> {
        let create = |new: bool| {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .create_new(new)
                .truncate(false)
                .open(path)
        };
        let (file, made) = match create(true) {
            Ok(file) => (Ok(file), true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => (create(false), false),
            Err(e) => (Err(e), false),
        };
        let file = file.with_context(|| format!("create {}", path.display()))?;
        Ok(Self {
            file,
            path: path.to_owned(),
            made,
        })
    }

    /// Gives the report up: a run that failed before its end writes none, and an empty
    /// file it made would read as a report of no refused rows.
    fn discard(self) {
        if self.made {
            drop(self.file);
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Writes the refused rows, replacing what the file held.
    fn write(self, errors: &[RowError]) -> anyhow::Result<()> {
        let Self { file, path, .. } = self;
        let write = || -> anyhow::Result<()> {
            // Only a regular file can be cut short (not a pipe or a device).
            if file.metadata()?.is_file() {
                file.set_len(0)?;
            }
            let mut w = csv::Writer::from_writer(&file);
            w.write_record(["row", "field", "code", "message"])?;
            for e in errors {
                w.write_record([
                    e.row.to_string(),
                    e.field.clone(),
                    e.code.clone(),
                    e.message.clone(),
                ])?;
            }
            w.flush()?;
            Ok(())
        };
        write().with_context(|| format!("write the error report {}", path.display()))
    }
}

// ----- straight to the database -----

/// The caller an in-process import acts as: the app named by `--app-id`, with that app's
/// own scopes and departments (so that the database path refuses what the server would,
/// dry run included); without `--app-id`, the tenant's first app (its id is the actor of
/// the changes and of the task) with both contact scopes over the whole directory, as an
/// administrator at the database has.
async fn admin_caller(
    dir: &Directory,
    tenant: Option<i64>,
    app_id: Option<&str>,
) -> anyhow::Result<Caller> {
    let tenant = match tenant {
        Some(t) => dir.get_tenant(roster_core::TenantId(t)).await?,
        None => dir.list_tenants().await?.into_iter().next().context(
            "the database has no tenant yet (run `roster serve` once or `roster tenant create`)",
        )?,
    };
    let apps = dir.list_apps(Some(tenant.id)).await?;
    let app = match app_id {
        Some(id) => {
            let app = apps
                .into_iter()
                .find(|a| a.app_id.as_str() == id)
                .with_context(|| format!("tenant {} has no app {id}", tenant.id))?;
            anyhow::ensure!(
                app.scopes.allows(Scope::ContactWrite),
                "app {id} lacks the contact:write scope"
            );
            return Ok(Caller {
                tenant: tenant.id,
                app_id: app.app_id,
                scopes: app.scopes,
                contact_scope: app.contact_scope,
            });
        }
        None => apps
            .into_iter()
            .next()
            .with_context(|| format!("tenant {} has no app (roster app create)", tenant.id))?,
    };
    Ok(Caller {
        tenant: tenant.id,
        app_id: app.app_id,
        scopes: Scopes::new([Scope::ContactRead, Scope::ContactWrite]),
        contact_scope: ContactScope::All,
    })
}

async fn in_process(
    config: &Config,
    args: &ImportArgs,
    mut rx: tokio::sync::mpsc::Receiver<anyhow::Result<Vec<ReadRow>>>,
    bar: &ProgressBar,
) -> anyhow::Result<Outcome> {
    let dir = roster_app::open_existing_directory(config).await?;
    let caller = admin_caller(&dir, args.tenant, args.app_id.as_deref()).await?;
    let mut depts = Departments::new(&dir, &caller);
    let mut errors = Vec::new();
    // Rows refused while reading are reported under their file row; the others go on in
    // order, and `numbers[i]` is the file row of the i-th row sent.
    let mut numbers: Vec<u64> = Vec::new();
    let mut items = Vec::with_capacity(IMPORT_CHUNK_ROWS);
    // The reader refuses a bad header (or an unreadable file) before any row: wait for its
    // first answer, so that a refused file leaves no import task behind.
    let mut first = rx.recv().await;
    if let Some(Err(e)) = first {
        return Err(e);
    }
    let (task, mut dry) = if args.dry_run {
        (None, Some(dir.begin_dry_run(&caller).await?))
    } else {
        (Some(dir.begin_import(&caller, args.notify).await?), None)
    };
    bar.set_message(if args.dry_run { "checking" } else { "reading" });
    let mut seq = 0;
    let mut rows = 0;
    loop {
        let batch = match first.take() {
            Some(batch) => batch,
            None => match rx.recv().await {
                Some(batch) => batch,
                None => break,
            },
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                // The file broke off midway: give the import up rather than leave it
                // receiving until the server's sweep fails it.
                if let Some(t) = &task {
                    if let Err(abort) = dir.abort_import(&t.id).await {
                        eprintln!("could not give up import {}: {abort:#}", t.id);
                    }
                }
                return Err(e);
            }
        };
        for (n, row) in batch {
            rows += 1;
            bar.inc_length(1);
            let item = match row {
                Ok(r) => rows::to_new_user(&r, args.notify, &mut depts).await?,
                Err(e) => Err(e),
            };
            numbers.push(n);
            items.push(item);
            if items.len() == IMPORT_CHUNK_ROWS {
                flush(
                    &dir,
                    &caller,
                    sink(task.as_ref(), dry.as_mut())?,
                    &mut items,
                    &mut seq,
                    &numbers,
                    &mut errors,
                )
                .await?;
                bar.set_position(numbers.len() as u64);
            }
        }
    }
    flush(
        &dir,
        &caller,
        sink(task.as_ref(), dry.as_mut())?,
        &mut items,
        &mut seq,
        &numbers,
        &mut errors,
    )
    .await?;
    bar.set_position(numbers.len() as u64);
    let Some(task) = task else {
        return Ok(Outcome {
            rows,
            created: 0,
            errors,
            unlisted: 0,
        });
    };
    dir.seal_import(&task.id).await?;
    // This process is the worker: the same engine `roster serve` runs.
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let worker_dir = dir.clone();
    let invitations = roster_core::Invitations {
        base_url: config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen)),
        ttl_ms: i64::from(config.invitation_ttl_hours) * 3_600_000,
        lease_ms: i64::from(config.task_lease_seconds.max(1)) * 1000,
    };
    let worker_task = task.id.clone();
    let worker = tokio::spawn(async move {
        let name = format!("import-{}", std::process::id());
        worker_dir
            .run_task_worker_for(name, invitations, stop_rx, worker_task)
            .await;
    });
    bar.set_message("writing");
    bar.set_position(0);
    let done = loop {
        let t = dir.get_import(&caller, &task.id).await?;
        bar.set_length(u64::from(t.total));
        bar.set_position(u64::from(t.processed()));
        if matches!(t.status, TaskStatus::Done | TaskStatus::Failed) {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.send_replace(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
    if done.status == TaskStatus::Failed {
        bail!("the import task {} failed", done.id);
    }
    let mut after = 0;
    loop {
        let (_, page) = dir.import_results(&caller, &task.id, after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.row;
        for r in &page {
            if let Some(ItemOutcome::Failed(e)) = &r.outcome {
                let n = numbers
                    .get(r.row as usize - 1)
                    .copied()
                    .unwrap_or(u64::from(r.row));
                errors.push(RowError::of(n, e));
            }
        }
    }
    errors.sort_by_key(|e| e.row);
    Ok(Outcome {
        rows,
        created: u64::from(done.succeeded),
        errors,
        unlisted: 0,
    })
}

/// Where gathered rows go: the import task, or a dry run's validation.
enum Sink<'a> {
    Import(&'a roster_core::Task),
    DryRun(&'a mut roster_core::DryRun),
}

/// The sink of an import that has either a task or a dry run.
fn sink<'a>(
    task: Option<&'a roster_core::Task>,
    dry: Option<&'a mut roster_core::DryRun>,
) -> anyhow::Result<Sink<'a>> {
    match (task, dry) {
        (Some(task), _) => Ok(Sink::Import(task)),
        (None, Some(dry)) => Ok(Sink::DryRun(dry)),
        (None, None) => bail!("an import has a task or a dry run"),
    }
}

/// Hands the gathered rows to the import (or, in a dry run, to the validation).
async fn flush(
    dir: &Directory,
    caller: &Caller,
    sink: Sink<'_>,
    items: &mut Vec<Result<roster_core::NewUser, ItemError>>,
    seq: &mut u32,
    numbers: &[u64],
    errors: &mut Vec<RowError>,
) -> anyhow::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let first = numbers.len() - items.len();
    let items = std::mem::take(items);
    match sink {
        Sink::Import(task) => {
            let chunk = ImportChunk {
                seq: *seq,
                first_row: first as u32,
                items,
            };
            dir.append_import_chunk(&task.id, &chunk).await?;
            *seq += 1;
        }
        Sink::DryRun(dry) => {
            for (i, v) in dir
                .validate_users(caller, items, dry)
                .await?
                .iter()
                .enumerate()
            {
                if let Some(e) = v {
                    errors.push(RowError::of(numbers[first + i], e));
                }
            }
        }
    }
    Ok(())
}

// ----- over HTTP -----

async fn over_http(
    url: &str,
    args: &ImportArgs,
    mut rx: tokio::sync::mpsc::Receiver<anyhow::Result<Vec<ReadRow>>>,
    bar: &ProgressBar,
) -> anyhow::Result<Outcome> {
    // The client is built without TLS, as the server serves plain HTTP behind whatever
    // proxy terminates TLS; say so rather than fail deep in the first request.
    // Schemes are case-insensitive (RFC 3986), so `HTTP://` is as plain as `http://`.
    if !url
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
    {
        bail!(
            "--url must be a plain http:// address of the server (roster import does not speak \
             TLS): run it where the server is reachable without the TLS proxy, or write \
             straight to the store with --database-url"
        );
    }
    let base = url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::new();
    let token = match (&args.token, &args.app_id, &args.app_secret) {
        (Some(t), _, _) => t.clone(),
        (None, Some(id), Some(secret)) => {
            let resp: Value = http
                .post(format!(
                    "{base}/open-apis/auth/v3/tenant_access_token/internal"
                ))
                .json(&serde_json::json!({"app_id": id, "app_secret": secret}))
                .send()
                .await
                .context("reach the server")?
                .json()
                .await
                .context("read the token answer")?;
            resp["tenant_access_token"]
                .as_str()
                .with_context(|| format!("the server refused the app credentials: {resp}"))?
                .to_owned()
        }
        _ => bail!("--url needs --token or both --app-id and --app-secret"),
    };
    // Rows refused while reading stay here; the others are streamed as NDJSON, and
    // `numbers[i]` is the file row of the server's row i + 1.
    let numbers = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let local_errors = Arc::new(std::sync::Mutex::new(Vec::<RowError>::new()));
    let (body_tx, body_rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(8);
    let feeder = {
        let numbers = Arc::clone(&numbers);
        let local_errors = Arc::clone(&local_errors);
        let bar = bar.clone();
        tokio::spawn(async move {
            let mut total = 0_u64;
            while let Some(batch) = rx.recv().await {
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        // Breaking the body makes the server drop the unsealed import.
                        let _ = body_tx
                            .send(Err(std::io::Error::other(e.to_string())))
                            .await;
                        return Err(e);
                    }
                };
                let mut body = Vec::with_capacity(batch.len() * 160);
                for (n, row) in batch {
                    total += 1;
                    match row {
                        Ok(r) => {
                            body.extend(r.to_json().into_bytes());
                            body.push(b'\n');
                            lock(&numbers).push(n);
                        }
                        Err(e) => lock(&local_errors).push(RowError::of(n, &e)),
                    }
                }
                bar.inc_length(0);
                bar.set_length(total);
                bar.set_position(total);
                if body_tx.send(Ok(body)).await.is_err() {
                    break;
                }
            }
            Ok(total)
        })
    };
    bar.set_message("uploading");
    let stream = futures::stream::unfold(body_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut request = http
        .post(format!("{base}/api/v1/imports"))
        .bearer_auth(&token)
        .header("Content-Type", "application/x-ndjson")
        .body(reqwest::Body::wrap_stream(stream));
    if args.dry_run {
        request = request.query(&[("dry_run", "true")]);
    }
    if args.notify {
        request = request.query(&[("notify", "true")]);
    }
    let resp = match request.send().await {
        Ok(resp) => resp,
        Err(send) => {
            // A file or mapping problem breaks the body on purpose; that problem, not the
            // transport error it causes, is what the user needs to read.
            if let Ok(Err(reading)) = feeder.await {
                return Err(reading);
            }
            return Err(anyhow::Error::new(send).context("upload the rows"));
        }
    };
    let total = feeder.await.context("the upload feeder failed")??;
    let status = resp.status();
    let answer: Value = resp.json().await.context("read the upload answer")?;
    if !status.is_success() {
        bail!("the server refused the upload ({status}): {answer}");
    }
    let mut errors = std::mem::take(&mut *lock(&local_errors));
    let numbers = std::mem::take(&mut *lock(&numbers));
    let file_row = |row: u64| numbers.get(row as usize - 1).copied().unwrap_or(row);
    if args.dry_run {
        let listed = answer["errors"].as_array().map_or(0, Vec::len) as u64;
        for e in answer["errors"].as_array().into_iter().flatten() {
            errors.push(report_of(file_row(e["row"].as_u64().unwrap_or(0)), e));
        }
        errors.sort_by_key(|e| e.row);
        return Ok(Outcome {
            rows: total,
            created: 0,
            errors,
            unlisted: answer["invalid"]
                .as_u64()
                .unwrap_or(listed)
                .saturating_sub(listed),
        });
    }
    let task = answer["task_id"]
        .as_str()
        .context("the server answered no task_id")?
        .to_owned();
    bar.set_message("writing");
    bar.set_position(0);
    let status = loop {
        let s = get_json_retrying(
            &http,
            &format!("{base}/api/v1/imports/{task}"),
            &[],
            &token,
            &task,
            bar,
        )
        .await?;
        bar.set_length(s["total"].as_u64().unwrap_or(0));
        bar.set_position(s["processed"].as_u64().unwrap_or(0));
        match s["status"].as_str() {
            Some("done") => break s,
            Some("failed") => bail!("the import task {task} failed"),
            Some(_) => {}
            None => bail!("unexpected status answer: {s}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut after = 0_u64;
    loop {
        let page = get_json_retrying(
            &http,
            &format!("{base}/api/v1/imports/{task}/results"),
            &[("after", after.to_string()), ("limit", "10000".to_owned())],
            &token,
            &task,
            bar,
        )
        .await?;
        for r in page["results"].as_array().into_iter().flatten() {
            if r["status"] == "failed" {
                errors.push(report_of(
                    file_row(r["row"].as_u64().unwrap_or(0)),
                    &r["error"],
                ));
            }
        }
        match page["next_after"].as_u64() {
            Some(n) if n > after => after = n,
            _ => break,
        }
    }
    errors.sort_by_key(|e| e.row);
    Ok(Outcome {
        rows: total,
        created: status["succeeded"].as_u64().unwrap_or(0),
        errors,
        unlisted: 0,
    })
}

/// How long the CLI keeps asking a server that does not answer (a restart, a crash) about
/// an import it has accepted. The task is durable: it goes on, or resumes, on the server
/// whatever happens to this process.
const POLL_PATIENCE: Duration = Duration::from_mins(5);

/// GETs a JSON answer about the accepted import `task`. A refused connection, a timeout or
/// a 5xx answer is retried (the server may be restarting; the task resumes there) for up
/// to `POLL_PATIENCE`; giving up names the task, which the server still completes.
async fn get_json_retrying(
    http: &reqwest::Client,
    url: &str,
    query: &[(&str, String)],
    token: &str,
    task: &str,
    bar: &ProgressBar,
) -> anyhow::Result<Value> {
    let started = std::time::Instant::now();
    let mut wait = Duration::from_millis(200);
    loop {
        let attempt = http.get(url).query(query).bearer_auth(token).send().await;
        let failure = match attempt {
            Ok(resp) if resp.status().is_server_error() => format!("answered {}", resp.status()),
            Ok(resp) if !resp.status().is_success() => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                bail!("the server refused to report on import task {task} ({status}): {body}");
            }
            Ok(resp) => match resp.json().await {
                Ok(v) => {
                    if wait > Duration::from_millis(200) {
                        bar.set_message("writing");
                    }
                    return Ok(v);
                }
                Err(e) => format!("sent an unreadable answer: {e}"),
            },
            Err(e) => format!("is unreachable: {e}"),
        };
        if started.elapsed() > POLL_PATIENCE {
            bail!(
                "the server {failure}; gave up after {} s. The import task {task} is durable and \
                 completes on the server: GET /api/v1/imports/{task} reports it",
                POLL_PATIENCE.as_secs()
            );
        }
        bar.set_message(format!(
            "server {failure}; retrying (task {task} continues there)"
        ));
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

fn report_of(row: u64, e: &Value) -> RowError {
    let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
    RowError {
        row,
        field: text("field"),
        code: text("code"),
        message: text("message"),
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The text of a spreadsheet cell for `field`, or why it cannot be read exactly.
fn xlsx_cell(c: &calamine::Data, field: Option<&str>) -> Result<String, String> {
    use calamine::Data;
    /// The largest whole number a spreadsheet's double keeps exactly (2^53).
    const EXACT: f64 = 9_007_199_254_740_992.0;
    Ok(match c {
        Data::Empty => String::new(),
        Data::Error(e) => return Err(format!("the spreadsheet cell holds the error {e}")),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        // Whole numbers (mobiles, ids, unix times) must not gain a ".0".
        #[allow(clippy::cast_possible_truncation)] // Whole and within ±2^53: exact.
        Data::Float(f) if f.fract() == 0.0 && f.abs() <= EXACT => format!("{}", *f as i64),
        // A longer number typed into a number cell (an 18-digit id) has already lost its
        // last digits in the file: importing what is left would store another value.
        Data::Float(f) if f.abs() > EXACT => {
            return Err(format!(
                "the number {f} is longer than a spreadsheet number keeps exactly; \
                 format the column as text and type it again"
            ))
        }
        Data::Float(f) => f.to_string(),
        Data::Int(i) => i.to_string(),
        Data::Bool(b) => b.to_string(),
        // A spreadsheet date, read in the workbook's own date system (1900 or 1904, which
        // calamine knows): `join_time` takes unix seconds; in any other column the date is
        // kept as the calendar date (and time) it shows, not as a number nobody typed.
        Data::DateTime(d) => {
            let (y, mo, day, h, mi, sec, ms) = d.to_ymd_hms_milli();
            if field == Some("join_time") {
                unix_seconds((y, mo, day, h, mi, sec, ms)).to_string()
            } else if d.is_datetime() && (h, mi, sec) != (0, 0, 0) {
                format!("{y:04}-{mo:02}-{day:02} {h:02}:{mi:02}:{sec:02}")
            } else {
                format!("{y:04}-{mo:02}-{day:02}")
            }
        }
    })
}

/// Copies the value of each merged region's top-left cell into the region's other cells
/// (within the range read; a region whose top-left cell is empty has nothing to copy).
fn fill_merged(range: &mut calamine::Range<calamine::Data>, merged: &[calamine::Dimensions]) {
    let (Some(start), Some(end)) = (range.start(), range.end()) else {
        return;
    };
    for region in merged {
        let Some(value) = range.get_value(region.start).cloned() else {
            continue;
        };
        if value == calamine::Data::Empty {
            continue;
        }
        for r in region.start.0.max(start.0)..=region.end.0.min(end.0) {
            for c in region.start.1.max(start.1)..=region.end.1.min(end.1) {
                if (r, c) != region.start {
                    range.set_value((r, c), value.clone());
                }
            }
        }
    }
}

/// Unix seconds of a calendar date and time (UTC).
fn unix_seconds((y, mo, d, h, mi, s, _ms): (u16, u8, u8, u8, u8, u8, u16)) -> i64 {
    let days = roster_core::days_from_civil(i64::from(y), i64::from(mo), i64::from(d));
    days * 86_400 + i64::from(h) * 3_600 + i64::from(mi) * 60 + i64::from(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn unix_seconds_of_calendar_dates() {
        assert_eq!(super::unix_seconds((1970, 1, 1, 0, 0, 0, 0)), 0);
        assert_eq!(super::unix_seconds((2020, 1, 1, 0, 0, 0, 0)), 1_577_836_800);
        assert_eq!(
            super::unix_seconds((2000, 2, 29, 12, 30, 15, 0)),
            951_827_415
        );
    }
}
