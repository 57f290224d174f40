//! `roster`: the server (`roster serve`) and the administration commands (tenants, apps,
//! migrations). Both open the store through `roster-app`, exactly the same way.

// Doc comments on the clap types are `--help` text for people, not rustdoc.
#![allow(clippy::doc_markdown)]

mod admin;
mod export;
mod import;
mod serve;

use std::path::PathBuf;

/// mimalloc instead of glibc's malloc: the server's memory comes in bursts (an import chunk
/// of thousands of rows, a page of search results) on many threads of the blocking pool, and
/// glibc keeps such bursts in per-thread arenas long after they are freed, which showed up
/// as hundreds of megabytes of resident memory after an import. mimalloc returns freed pages
/// to the system promptly.
///
/// With the `override` feature mimalloc is also the C `malloc`, so SQLite's page caches live
/// in the same allocator. Without it they lived in glibc arenas, which kept a bulk import's
/// writer cache resident after SQLite freed it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hands every page the allocator holds free back to the operating system now. mimalloc
/// does this on its own about a second after pages fall free, but only when some thread
/// next allocates; after a bulk import (hundreds of megabytes of page cache and rows in
/// flight freed at once) the server may well be idle, and a server at rest should be at
/// its resting size.
#[allow(unsafe_code)] // The one foreign call of the workspace; see the SAFETY note.
pub(crate) fn return_freed_memory() {
    // SAFETY: `mi_collect` takes a plain bool, touches only mimalloc's own state (which is
    // thread-safe), and may be called from any thread at any time; it frees no block that
    // is in use.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

use clap::{Parser, Subcommand};
use roster_app::config::{Config, Overrides};

#[derive(Parser)]
#[command(
    name = "roster",
    version,
    about = "Self-hosted enterprise user directory"
)]
struct Cli {
    /// Configuration file (default: ./roster.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Directory holding the SQLite database.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`.
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(admin::TenantCommand),
    /// Manage apps (API credentials).
    #[command(subcommand)]
    App(admin::AppCommand),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Inspect the outbox of invitation mails and SMS notices.
    #[command(subcommand)]
    Outbox(admin::OutboxCommand),
    /// Import users from a CSV, XLSX or NDJSON file (to a server or straight to the database).
    /// Exits 0 when every row is imported (or valid, with --dry-run), 2 when the import ran
    /// with some rows refused, 1 when it could not run.
    Import(import::ImportArgs),
    /// Export users as CSV or NDJSON (the import row format).
    Export(export::ExportArgs),
    /// Print the change record (who changed which user or department, when, how).
    Audit {
        /// Only this tenant's changes.
        #[arg(long)]
        tenant: Option<i64>,
        /// Start after this event id.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Also print the before and after snapshots.
        #[arg(long)]
        full: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("roster: failed to start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("roster: {err:#}");
            if err.downcast_ref::<import::RowsFailed>().is_some() {
                std::process::ExitCode::from(import::RowsFailed::EXIT_CODE)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let listen = match &cli.command {
        Command::Serve { listen } => listen.clone(),
        _ => None,
    };
    let overrides = Overrides {
        listen,
        data_dir: cli.data_dir,
        database_url: cli.database_url,
    };
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    // Administration commands talk to a person on standard output; their routine log lines
    // (store opened, migrations) would only clutter it, so they log warnings unless a level
    // was asked for explicitly.
    let level = match (&cli.command, config.log.as_str()) {
        (Command::Serve { .. }, level) => level.to_owned(),
        (_, "info") => "warn".to_owned(),
        (_, level) => level.to_owned(),
    };
    roster_app::init_tracing(&level);
    match cli.command {
        Command::Serve { .. } => serve::run(config).await,
        Command::Tenant(cmd) => admin::tenant(&config, cmd).await,
        Command::App(cmd) => admin::app(&config, cmd).await,
        Command::Outbox(cmd) => admin::outbox(&config, cmd).await,
        Command::Import(args) => import::run(&config, args).await,
        Command::Export(args) => export::run(&config, args).await,
        Command::Audit {
            tenant,
            after,
            limit,
            full,
        } => admin::audit(&config, tenant, after, limit, full).await,
        Command::Migrate => {
            roster_app::open_store(&config).await?;
            #[allow(clippy::print_stdout)] // The CLI talks to a person here.
            {
                println!(
                    "migrations applied to {}",
                    roster_app::config::redact_url(&config.database_url())
                );
            }
            Ok(())
        }
    }
}
