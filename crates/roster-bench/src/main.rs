//! `roster-bench`: one command that measures Roster against the ceilings of its storage
//! engines and of HTTP on this machine, and prints a table and one JSON line.
//!
//! ```text
//! cargo run --release -p roster-bench -- --users 1000000 \
//!     [--postgres-url postgres://postgres@127.0.0.1:5432/test]
//! ```
//!
//! Phases (each on fresh data):
//! 1. `ceiling_sqlite`: plain rusqlite prepared inserts of the generated rows into Roster's
//!    schema and indexes, one transaction.
//! 2. `import_sqlite`: the same users through `POST /api/v1/imports` (NDJSON) into a running
//!    `roster serve` on SQLite, from the first byte sent to the task's completion.
//! 3. Search, on that server with N users: fixed-rate queries (substring, CJK, pinyin).
//! 4. GET user: closed-loop throughput against Roster and against a fixed-body axum server
//!    (the HTTP ceiling), then Roster's latency at half its throughput.
//! 5. Peak RSS of that server (`VmHWM`): during the import, and (reset when it ends) while
//!    it serves search and GET holding the N users.
//! 6. `batch_add`: the same users through many concurrent Feishu v2 `batch_add` calls.
//! 7. With `--postgres-url`: COPY ceiling and import on fresh PostgreSQL databases.

#![allow(clippy::print_stdout)]
// The benchmark's output is its report.
// Counts and durations become f64 rates; a count past 2^52 is not a benchmark size.
#![allow(clippy::cast_precision_loss)]

mod ceiling;
mod data;
mod load;
mod pg;
mod server;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use crate::load::{Latency, Target};
use crate::server::Roster;

#[derive(Parser, Debug)]
#[command(name = "roster-bench", about = "Measure Roster against its ceilings")]
struct Args {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Users to generate and load.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// A PostgreSQL server URL (its database is used to create and drop fresh databases);
    /// without it the PostgreSQL phases are skipped.
    #[arg(long, env = "ROSTER_BENCH_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// The roster binary (default: `roster` next to this executable, built if missing).
    #[arg(long)]
    roster_bin: Option<PathBuf>,
    /// Search rate, requests per second.
    #[arg(long, default_value_t = 200.0)]
    search_rate: f64,
    /// Seconds of searching per query kind.
    #[arg(long, default_value_t = 10.0)]
    search_seconds: f64,
    /// Seconds of each GET measurement.
    #[arg(long, default_value_t = 10.0)]
    get_seconds: f64,
    /// Connections of the GET throughput loop.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// `batch_add` calls in flight at once.
    #[arg(long, default_value_t = 16)]
    batch_add_concurrency: usize,
    /// Users per `batch_add` call (Feishu's limit is 50).
    #[arg(long, default_value_t = 50)]
    batch_add_size: usize,
    /// Users sent through `batch_add` (default: all of them).
    #[arg(long)]
    batch_add_users: Option<usize>,
    /// MiB of the database that the SQLite server's readers memory-map (its
    /// `sqlite_mmap_mb`; default 0, as a server has it out of the box).
    #[arg(long, default_value_t = 0)]
    sqlite_mmap_mb: u64,
    /// The phases to run (default: all): ceiling, import, search, get, `batch_add`, pg.
    /// Search and get run on the server the import filled, so they imply import.
    #[arg(long, value_delimiter = ',')]
    phases: Option<Vec<String>>,
}

impl Args {
    fn runs(&self, phase: &str) -> bool {
        self.phases
            .as_ref()
            .is_none_or(|p| p.iter().any(|x| x == phase))
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Internal: the fixed-body HTTP ceiling server.
    #[command(hide = true)]
    ServeCeiling { body: PathBuf },
    /// For profiling: GET-user throughput against a running server (users `u00000000`…).
    #[command(hide = true)]
    LoadGet {
        addr: String,
        token: String,
        users: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// A fixed path to load instead of GET-user paths (for comparing layers).
        #[arg(long)]
        path: Option<String>,
        /// Requests per second of an open loop, reporting latency, instead of a closed loop.
        #[arg(long)]
        rate: Option<f64>,
    },
    /// For profiling: the search phase alone (the same queries, rate and report) against a
    /// running server holding the benchmark's first USERS users (a kept data directory or
    /// database, `ROSTER_BENCH_KEEP=1`).
    #[command(hide = true)]
    LoadSearch {
        addr: String,
        token: String,
        users: usize,
        /// Label the figures as SQLite's (`search_…`) rather than PostgreSQL's.
        #[arg(long)]
        sqlite: bool,
    },
    /// For profiling: the SQLite store's read of a user with its departments (what a GET
    /// reads), called in a loop on a data directory's database, without HTTP.
    #[command(hide = true)]
    StoreGet {
        /// The `roster.db` of a data directory (`ROSTER_BENCH_KEEP=1` keeps one).
        db: PathBuf,
        users: u64,
        #[arg(long, default_value_t = 1)]
        threads: u64,
        #[arg(long, default_value_t = 200_000)]
        reads: u64,
    },
}

/// The server settings for benchmarking: quiet logs and room for large v2 tasks.
const SERVER_TOML: &str = "log = \"warn\"\n";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Cmd::ServeCeiling { body }) = &args.command {
        return server::serve_ceiling(body);
    }
    if let Some(Cmd::StoreGet {
        db,
        users,
        threads,
        reads,
    }) = &args.command
    {
        return store_get(db, *users, *threads, *reads);
    }
    if let Some(Cmd::LoadGet {
        addr,
        token,
        users,
        seconds,
        path,
        rate,
    }) = &args.command
    {
        let target = load::Target {
            addr: addr.clone(),
            auth: Some(format!("Bearer {token}")),
        };
        let (users, seconds, connections) = (*users as u64, *seconds, args.connections);
        let fixed = path.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let path = move |k: u64| {
            if let Some(p) = &fixed {
                return p.clone();
            }
            let i = spread(k, users);
            format!("/open-apis/contact/v3/users/u{i:08}?user_id_type=user_id")
        };
        let duration = Duration::from_secs_f64(seconds);
        if let Some(rate) = *rate {
            let samples = rt.block_on(load::fixed_rate(
                &target,
                connections,
                rate,
                duration,
                move |k| (path(k), "get"),
            ))?;
            let lat = Latency::of(samples.into_iter().map(|(_, d)| d).collect());
            println!(
                "{rate:.0} req/s: p50 {:.2} ms, p99 {:.2} ms ({} requests)",
                lat.p50_ms, lat.p99_ms, lat.count
            );
            return Ok(());
        }
        let rps = rt.block_on(load::throughput(&target, connections, duration, path))?;
        println!("{rps:.0} req/s");
        return Ok(());
    }
    if let Some(Cmd::LoadSearch {
        addr,
        token,
        users,
        sqlite,
    }) = &args.command
    {
        let generated = data::users(*users);
        let mut report = Report {
            rows: Vec::new(),
            json: serde_json::Map::new(),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(search(
            &args,
            addr,
            token,
            &generated,
            if *sqlite {
                Backend::Sqlite
            } else {
                Backend::Postgres
            },
            &mut report,
        ))?;
        println!("{}", Value::Object(report.json));
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

/// The index of the user that request `k` asks for, among `users`: a multiplicative hash,
/// so that consecutive requests spread over the whole table instead of walking it.
fn spread(k: u64, users: u64) -> u64 {
    (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % users.max(1)
}

/// `store-get`: reads users `u00000000`… of tenant 1 by user id, as a GET does, from
/// `threads` threads at once, and prints the time per read.
fn store_get(db: &Path, users: u64, threads: u64, reads: u64) -> anyhow::Result<()> {
    use roster_core::{Store as _, TenantId, UserLookup};
    let store = roster_store_sqlite::SqliteStore::open(db)?;
    let start = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let store = store.clone();
                s.spawn(move || {
                    for k in 0..reads {
                        let k = k + t * reads;
                        let i = spread(k, users);
                        let lookup = UserLookup::UserId(format!("u{i:08}"));
                        futures::executor::block_on(
                            store.get_user_with_departments(TenantId(1), &lookup),
                        )?
                        .with_context(|| format!("no user u{i:08}"))?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| anyhow::anyhow!("a reader panicked"))?)
    })?;
    let elapsed = start.elapsed();
    println!(
        "{} reads on {threads} threads in {elapsed:.2?}: {:.1} µs per read and thread, {:.0} reads/s",
        reads * threads,
        elapsed.as_secs_f64() * 1e6 / reads as f64,
        (reads * threads) as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// Finds the roster binary, building it (release) when it is not beside this executable.
fn roster_bin(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.roster_bin {
        // The server runs in its data directory, so a relative path must be made absolute.
        return std::fs::canonicalize(p)
            .with_context(|| format!("no roster binary at {}", p.display()));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("executable directory")?;
    let bin = dir.join("roster");
    if !bin.exists() {
        let release = dir.ends_with("release");
        println!(
            "building roster ({})…",
            if release { "release" } else { "debug" }
        );
        let mut cmd = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
        cmd.args(["build", "-p", "roster"]);
        if release {
            cmd.arg("--release");
        }
        if !cmd.status()?.success() {
            bail!("cargo build -p roster failed");
        }
    }
    Ok(bin)
}

struct Report {
    rows: Vec<(String, String, String)>,
    json: serde_json::Map<String, Value>,
}

impl Report {
    fn row(&mut self, what: &str, value: String, note: String) {
        println!("  {what:<34} {value:>16}   {note}");
        self.rows.push((what.to_owned(), value, note));
    }
    fn set(&mut self, key: &str, v: impl Into<Value>) {
        self.json.insert(key.to_owned(), v.into());
    }
}

fn round(x: f64, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (x * m).round() / m
}

async fn run(args: Args) -> anyhow::Result<()> {
    let bin = roster_bin(&args)?;
    let n = args.users;
    let mut report = Report {
        rows: Vec::new(),
        json: serde_json::Map::new(),
    };
    report.set("users", n);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!(
        "roster-bench: {n} users, {cores} cores, roster = {}",
        bin.display()
    );
    let t = Instant::now();
    let users = data::users(n);
    let ndjson = data::import_ndjson(&users);
    println!(
        "generated {n} users ({:.1} MB NDJSON) in {:.1}s\n",
        ndjson.len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_hours(1))
        .build()?;

    // 1. SQLite ceiling.
    let mut ceiling_sqlite = f64::NAN;
    if args.runs("ceiling") {
        let scratch = server::scratch_dir()?;
        let took;
        (ceiling_sqlite, took) = ceiling::sqlite(scratch.path(), &users).await?;
        report.row(
            "ceiling_sqlite (plain inserts)",
            format!("{ceiling_sqlite:.0} rows/s"),
            format!("{:.1}s", took.as_secs_f64()),
        );
        report.set("ceiling_sqlite_rows_s", round(ceiling_sqlite, 0));
    }

    if args.runs("import") || args.runs("search") || args.runs("get") {
        sqlite_server_phases(
            &args,
            &bin,
            &http,
            &users,
            ndjson.clone(),
            ceiling_sqlite,
            &mut report,
        )
        .await?;
    }
    if args.runs("batch_add") {
        batch_add_phase(&args, &bin, &http, &users, &mut report).await?;
    }
    if args.runs("pg") {
        pg_phases(&args, &bin, &http, &users, &ndjson, &mut report).await?;
    }
    print_table(&report);
    println!("{}", Value::Object(report.json));
    Ok(())
}

/// Import on SQLite, then search, GET and RSS on the server the import filled.
async fn sqlite_server_phases(
    args: &Args,
    bin: &std::path::Path,
    http: &reqwest::Client,
    users: &[data::GenUser],
    ndjson: Vec<u8>,
    ceiling_sqlite: f64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let n = users.len();
    // 2. Import through HTTP on SQLite; this server then serves the read phases.
    let server = Roster::start(
        bin,
        None,
        &format!("{SERVER_TOML}sqlite_mmap_mb = {}\n", args.sqlite_mmap_mb),
    )?;
    report.set("sqlite_mmap_mb", args.sqlite_mmap_mb);
    let token = server.token(http).await?;
    let (import_rate, took) = import(http, &server, &token, ndjson, n).await?;
    report.row(
        "import_sqlite (HTTP NDJSON)",
        format!("{import_rate:.0} users/s"),
        // Without the ceiling phase (`--phases` leaving it out) there is no ratio to give.
        if ceiling_sqlite.is_nan() {
            format!("{:.1}s, ceiling not measured", took.as_secs_f64())
        } else {
            format!(
                "{:.1}s, {:.2} of ceiling",
                took.as_secs_f64(),
                import_rate / ceiling_sqlite
            )
        },
    );
    report.set("import_sqlite_users_s", round(import_rate, 0));
    report.set(
        "import_sqlite_ratio",
        round(import_rate / ceiling_sqlite, 3),
    );
    // The import's own peak, then a fresh peak for serving the N users it left: a bulk
    // import grows the writer's page cache and holds chunks in flight, which the server
    // gives back when the import ends (`Store::bulk_write_ended`).
    let rss_import_peak = server.peak_rss_mb().unwrap_or(f64::NAN);
    let rss_import = server.rss_mb().unwrap_or(f64::NAN);
    report.row(
        "server peak RSS during import",
        format!("{rss_import_peak:.0} MB"),
        format!("{rss_import:.0} MB when the import ended"),
    );
    report.set("rss_import_peak_mb", round(rss_import_peak, 1));
    server.reset_peak_rss()?;

    // 3. Search at a fixed rate.
    if args.runs("search") {
        search(args, &server.addr, &token, users, Backend::Sqlite, report).await?;
    }
    let rss_search = server.rss_mb().unwrap_or(f64::NAN);

    // 4. GET user against the HTTP ceiling.
    if args.runs("get") {
        get_user(args, &server, &token, users, report).await?;
    }

    // 5. Peak RSS of the server holding N users, while it served the read phases.
    let rss = server.peak_rss_mb().unwrap_or(f64::NAN);
    report.row(
        "server peak RSS serving (SQLite)",
        format!("{rss:.0} MB"),
        format!(
            "holding {n} users, from the import's end through search and GET \
             (after search {rss_search:.0} MB, now {:.0} MB); target <= 256 MB",
            server.rss_mb().unwrap_or(f64::NAN)
        ),
    );
    report.set("rss_mb", round(rss, 1));
    server.stop();
    Ok(())
}

/// 6. The same users through concurrent Feishu v2 `batch_add` calls.
async fn batch_add_phase(
    args: &Args,
    bin: &std::path::Path,
    http: &reqwest::Client,
    users: &[data::GenUser],
    report: &mut Report,
) -> anyhow::Result<()> {
    let n = users.len();
    let ba_users = args.batch_add_users.unwrap_or(n).min(n);
    let server = Roster::start(
        bin,
        None,
        &format!(
            "{SERVER_TOML}feishu_batch_add_max_users = {}\n",
            args.batch_add_size.max(1)
        ),
    )?;
    let token = server.token(http).await?;
    let (ba_rate, took) = batch_add(args, http, &server, &token, &users[..ba_users]).await?;
    report.row(
        "batch_add_sqlite (v2, concurrent)",
        format!("{ba_rate:.0} users/s"),
        format!(
            "{ba_users} users, {} per call, {} in flight, {:.1}s",
            args.batch_add_size,
            args.batch_add_concurrency,
            took.as_secs_f64()
        ),
    );
    report.set("batch_add_users_s", round(ba_rate, 0));
    server.stop();
    Ok(())
}

/// Phase 7, PostgreSQL: the COPY ceiling and the import, each on a fresh database, then
/// search on the server the import filled.
async fn pg_phases(
    args: &Args,
    bin: &std::path::Path,
    http: &reqwest::Client,
    users: &[data::GenUser],
    ndjson: &[u8],
    report: &mut Report,
) -> anyhow::Result<()> {
    let n = users.len();
    if let Some(admin_url) = &args.postgres_url {
        let db = pg::FreshDb::create(admin_url, "ceiling").await?;
        let (ceiling_pg, took) = ceiling::postgres(&db.url, users).await?;
        report.row(
            "ceiling_pg (COPY)",
            format!("{ceiling_pg:.0} rows/s"),
            format!("{:.1}s", took.as_secs_f64()),
        );
        report.set("ceiling_pg_rows_s", round(ceiling_pg, 0));
        db.drop_db().await?;

        let db = pg::FreshDb::create(admin_url, "import").await?;
        let server = Roster::start(bin, Some(&db.url), SERVER_TOML)?;
        let token = server.token(http).await?;
        let (import_pg, took) = import(http, &server, &token, ndjson.to_vec(), n).await?;
        report.row(
            "import_pg (HTTP NDJSON)",
            format!("{import_pg:.0} users/s"),
            format!(
                "{:.1}s, {:.2} of ceiling",
                took.as_secs_f64(),
                import_pg / ceiling_pg
            ),
        );
        report.set("import_pg_users_s", round(import_pg, 0));
        report.set("import_pg_ratio", round(import_pg / ceiling_pg, 3));
        // The same searches against the same users on PostgreSQL: the issue's search
        // target holds for both stores' index structures, so the pg phase always has it.
        search(args, &server.addr, &token, users, Backend::Postgres, report).await?;
        server.stop();
        db.drop_db().await?;
    } else {
        println!("  PostgreSQL phases SKIPPED: no --postgres-url (or ROSTER_BENCH_POSTGRES_URL)");
        for k in [
            "ceiling_pg_rows_s",
            "import_pg_users_s",
            "import_pg_ratio",
            "search_pg_p50_ms",
            "search_pg_p99_ms",
        ] {
            report.set(k, Value::Null);
        }
    }
    Ok(())
}

fn print_table(report: &Report) {
    let mut out = String::new();
    let _ = writeln!(out, "\n| measure | value | notes |\n|---|---:|---|");
    for (what, value, note) in &report.rows {
        let _ = writeln!(out, "| {what} | {value} | {note} |");
    }
    println!("{out}");
}

/// Uploads the NDJSON and polls the import task until it is done. Returns users/s from the
/// first byte sent to the task's completion, and the time.
async fn import(
    http: &reqwest::Client,
    server: &Roster,
    token: &str,
    body: Vec<u8>,
    n: usize,
) -> anyhow::Result<(f64, Duration)> {
    let start = Instant::now();
    let resp = http
        .post(format!("{}/api/v1/imports", server.base))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let v: Value = resp.json().await?;
    if !status.is_success() {
        bail!("import upload answered {status}: {v}");
    }
    let task_id = v["task_id"]
        .as_str()
        .with_context(|| format!("no task_id in {v}"))?
        .to_owned();
    let uploaded = start.elapsed();
    let v = loop {
        let v: Value = http
            .get(format!("{}/api/v1/imports/{task_id}", server.base))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        match v["status"].as_str() {
            Some("done" | "failed") => break v,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let elapsed = start.elapsed();
    println!(
        "  (import: upload {:.1}s, then processing {:.1}s)",
        uploaded.as_secs_f64(),
        elapsed.saturating_sub(uploaded).as_secs_f64()
    );
    let ok = v["succeeded"].as_u64().unwrap_or(0);
    if v["status"] != "done" || ok != n as u64 {
        let first: Value = http
            .get(format!(
                "{}/api/v1/imports/{task_id}/results?after=0&limit=3",
                server.base
            ))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        bail!("import ended with {v}; first results: {}", first["results"]);
    }
    Ok((n as f64 / elapsed.as_secs_f64(), elapsed))
}

async fn batch_add(
    args: &Args,
    http: &reqwest::Client,
    server: &Roster,
    token: &str,
    users: &[data::GenUser],
) -> anyhow::Result<(f64, Duration)> {
    use futures::StreamExt as _;
    let bodies: Vec<Value> = users
        .chunks(args.batch_add_size.max(1))
        .map(|c| json!({ "users": c.iter().map(data::batch_add_user).collect::<Vec<_>>() }))
        .collect();
    let start = Instant::now();
    let base = server.base.clone();
    let results: Vec<anyhow::Result<u64>> = futures::stream::iter(bodies)
        .map(|body| {
            let (http, base, token) = (http.clone(), base.clone(), token.to_owned());
            async move {
                let v: Value = http
                    .post(format!("{base}/open-apis/contact/v2/user/batch_add"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await?
                    .json()
                    .await?;
                let task = v["data"]["task_id"]
                    .as_str()
                    .with_context(|| format!("batch_add answered {v}"))?
                    .to_owned();
                loop {
                    let v: Value = http
                        .get(format!(
                            "{base}/open-apis/contact/v2/task/get?task_id={task}"
                        ))
                        .bearer_auth(&token)
                        .send()
                        .await?
                        .json()
                        .await?;
                    if v["data"]["status"].as_u64().unwrap_or(0) >= 9 {
                        return Ok(v["data"]["success_num"].as_u64().unwrap_or(0));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        })
        .buffer_unordered(args.batch_add_concurrency.max(1))
        .collect()
        .await;
    let elapsed = start.elapsed();
    let mut ok = 0;
    for r in results {
        ok += r?;
    }
    if ok != users.len() as u64 {
        bail!("batch_add created {ok} of {} users", users.len());
    }
    Ok((users.len() as f64 / elapsed.as_secs_f64(), elapsed))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The store behind a server whose search is measured, which names its rows and keys.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The prefix of the JSON keys: `search_…` for SQLite (the keys the issue names),
    /// `search_pg_…` for PostgreSQL.
    fn key(self) -> &'static str {
        match self {
            Self::Sqlite => "search",
            Self::Postgres => "search_pg",
        }
    }
}

async fn search(
    args: &Args,
    addr: &str,
    token: &str,
    users: &[data::GenUser],
    backend: Backend,
    report: &mut Report,
) -> anyhow::Result<()> {
    let key = backend.key();
    let target = Target {
        addr: addr.to_owned(),
        auth: Some(format!("Bearer {token}")),
    };
    let queries = data::search_queries(users);
    // Every query must find something, or the latency would describe empty answers.
    for (_, q) in &queries {
        let (status, body) = load::get_once(
            &target,
            &format!(
                "/open-apis/search/v1/user?query={}&page_size=20",
                percent_encode(q)
            ),
        )
        .await?;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let found = v["data"]["users"].as_array().map_or(0, Vec::len);
        if status != 200 || found == 0 {
            bail!("search {q:?} found nothing: {status} {v}");
        }
    }
    let pin = load::IdleLatencyPin::hold();
    let kinds = ["substring", "cjk", "pinyin"];
    let mut all = Vec::new();
    let mut per_query: Vec<(&'static str, Latency)> = Vec::new();
    for kind in kinds {
        // Each request is tagged with its query, so that the slowest queries can be named.
        // The few dozen strings live as long as the process, as the tags must.
        let qs: Vec<(String, &'static str)> = queries
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, q)| (percent_encode(q), &*Box::leak(q.clone().into_boxed_str())))
            .collect();
        let samples = load::fixed_rate(
            &target,
            8,
            args.search_rate,
            Duration::from_secs_f64(args.search_seconds),
            move |k| {
                let (q, tag) = &qs[(k as usize) % qs.len()];
                (
                    format!("/open-apis/search/v1/user?query={q}&page_size=20"),
                    *tag,
                )
            },
        )
        .await?;
        let mut by_query: std::collections::HashMap<&'static str, Vec<Duration>> =
            std::collections::HashMap::new();
        for (tag, d) in &samples {
            by_query.entry(tag).or_default().push(*d);
        }
        per_query.extend(by_query.into_iter().map(|(q, ds)| (q, Latency::of(ds))));
        let lat = Latency::of(samples.iter().map(|(_, d)| *d).collect());
        report.row(
            &format!("{key} {kind} p50 / p99"),
            format!("{:.2} / {:.2} ms", lat.p50_ms, lat.p99_ms),
            format!(
                "{} requests at {} req/s, {} users",
                lat.count,
                args.search_rate,
                users.len()
            ),
        );
        report.set(&format!("{key}_{kind}_p99_ms"), round(lat.p99_ms, 3));
        all.extend(samples.into_iter().map(|(_, d)| d));
    }
    let lat = Latency::of(all);
    report.row(
        &format!("{key} all p50 / p99"),
        format!("{:.2} / {:.2} ms", lat.p50_ms, lat.p99_ms),
        format!("target p99 <= 5 ms at {} req/s", args.search_rate),
    );
    report.set(&format!("{key}_p50_ms"), round(lat.p50_ms, 3));
    report.set(&format!("{key}_p99_ms"), round(lat.p99_ms, 3));
    per_query.sort_by(|a, b| b.1.p99_ms.total_cmp(&a.1.p99_ms));
    let slowest: Vec<String> = per_query
        .iter()
        .take(4)
        .map(|(q, l)| format!("{q} {:.1} / {:.1}", l.p50_ms, l.p99_ms))
        .collect();
    report.row(
        &format!("{key}: slowest queries"),
        format!("{}", per_query.len()),
        format!(
            "queries; p50 / p99 ms of the slowest: {}",
            slowest.join(", ")
        ),
    );
    report.row(
        &format!("{key}: CPU idle states"),
        idle_note(&pin),
        "latency phases hold /dev/cpu_dma_latency at 0 when they can".to_owned(),
    );
    drop(pin);
    Ok(())
}

async fn get_user(
    args: &Args,
    server: &Roster,
    token: &str,
    users: &[data::GenUser],
    report: &mut Report,
) -> anyhow::Result<()> {
    let target = Target {
        addr: server.addr.clone(),
        auth: Some(format!("Bearer {token}")),
    };
    let ids: std::sync::Arc<Vec<String>> =
        std::sync::Arc::new(users.iter().map(|u| u.user_id.clone()).collect());
    let path = {
        let ids = ids.clone();
        move |k: u64| {
            let i = spread(k, ids.len() as u64) as usize;
            format!(
                "/open-apis/contact/v3/users/{}?user_id_type=user_id",
                ids[i]
            )
        }
    };
    // The ceiling answers with a real GET-user body, so both sides move the same bytes.
    let (status, sample) = load::get_once(&target, &path(1)).await?;
    if status != 200 {
        bail!("GET user answered {status}");
    }
    let ceiling = server::Ceiling::start(&sample)?;
    let ceiling_target = Target {
        addr: ceiling.addr.clone(),
        auth: Some(format!("Bearer {token}")),
    };
    let duration = Duration::from_secs_f64(args.get_seconds);
    let ceiling_rps = load::throughput(&ceiling_target, args.connections, duration, {
        let path = path.clone();
        move |k| path(k)
    })
    .await?;
    // A warm-up of three times that length first, reported but not measured: on this
    // project's machines (Firecracker VMs whose DAMON scheme pages out memory idle for
    // about 30 s) the kernel has dropped most of the users table from the file cache by
    // the time the search phase ends, and the first tens of seconds of GETs read it from
    // the virtual disk. The measured run is the server's steady state under this load.
    let warm = load::throughput(&target, args.connections, duration * 3, {
        let path = path.clone();
        move |k| path(k.wrapping_add(1 << 40))
    })
    .await?;
    let rps = load::throughput(&target, args.connections, duration, {
        let path = path.clone();
        move |k| path(k)
    })
    .await?;
    let half = (rps / 2.0).max(1.0);
    // The latency at half load, first with the CPUs' idle states as the machine has them,
    // then with them pinned (see `IdleLatencyPin`); the fixed-body server's latency at the
    // same rate, pinned too, is the floor that the machine and the client allow. Each loop
    // asks for other users than the loops before it, so none reads what another warmed.
    let open_loop = |target: Target, offset: u64| {
        let path = path.clone();
        async move {
            let samples = load::fixed_rate(&target, args.connections, half, duration, move |k| {
                (path(k.wrapping_add(offset)), "get")
            })
            .await?;
            anyhow::Ok(Latency::of(samples.into_iter().map(|(_, d)| d).collect()))
        }
    };
    let default_idle = open_loop(target.clone(), 2 << 40).await?;
    let pin = load::IdleLatencyPin::hold();
    let lat = open_loop(target.clone(), 3 << 40).await?;
    let floor = open_loop(ceiling_target.clone(), 4 << 40).await?;
    let (idle, pinned) = (idle_note(&pin), pin.is_ok());
    drop(pin);
    drop(ceiling);
    report.row(
        "HTTP ceiling (fixed JSON, axum)",
        format!("{ceiling_rps:.0} req/s"),
        format!("{} connections, {} B body", args.connections, sample.len()),
    );
    report.row(
        "GET user, warm-up (not measured)",
        format!("{warm:.0} req/s"),
        format!("{:.0} s", duration.as_secs_f64() * 3.0),
    );
    report.row(
        "GET user",
        format!("{rps:.0} req/s"),
        format!(
            "{:.2} of the HTTP ceiling (target >= 0.40)",
            rps / ceiling_rps
        ),
    );
    report.row(
        "GET user p50 / p99 at half load",
        format!("{:.2} / {:.2} ms", lat.p50_ms, lat.p99_ms),
        format!("{half:.0} req/s open loop, CPU idle states {idle} (target p99 <= 2 ms)"),
    );
    report.row(
        "  same, default idle states",
        format!("{:.2} / {:.2} ms", default_idle.p50_ms, default_idle.p99_ms),
        "the VM's halted vCPUs wake through the host".to_owned(),
    );
    report.row(
        "  floor: fixed-body server, same rate",
        format!("{:.2} / {:.2} ms", floor.p50_ms, floor.p99_ms),
        format!("CPU idle states {idle}"),
    );
    report.set("get_ceiling_rps", round(ceiling_rps, 0));
    report.set("get_rps", round(rps, 0));
    report.set("get_ratio", round(rps / ceiling_rps, 3));
    report.set("get_p50_ms", round(lat.p50_ms, 3));
    report.set("get_p99_ms", round(lat.p99_ms, 3));
    report.set("get_p99_default_idle_ms", round(default_idle.p99_ms, 3));
    report.set("get_p99_floor_ms", round(floor.p99_ms, 3));
    report.set("idle_states_pinned", pinned);
    Ok(())
}

/// How the latency phases found the CPUs' idle states, for the report.
fn idle_note(pin: &Result<load::IdleLatencyPin, String>) -> String {
    match pin {
        Ok(_) => "pinned".to_owned(),
        Err(why) => format!("not pinned ({why})"),
    }
}
