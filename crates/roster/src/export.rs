//! `roster export`: writes a tenant's active users in the import row format (CSV or
//! NDJSON), reading the database directly, every user after its leader, so that the file
//! imports again.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use roster_api_admin::export::{csv_header_line, csv_line, ExportOrder, RowWriter};
use roster_app::Config;
use roster_core::{Caller, ContactScope, Scope, Scopes};

#[derive(Args)]
pub(crate) struct ExportArgs {
    /// csv or ndjson.
    #[arg(long, default_value = "csv")]
    format: String,
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The tenant (default: the first).
    #[arg(long)]
    tenant: Option<i64>,
}

pub(crate) async fn run(config: &Config, args: ExportArgs) -> anyhow::Result<()> {
    let csv = match args.format.as_str() {
        "csv" => true,
        "ndjson" | "jsonl" => false,
        other => bail!("--format must be csv or ndjson, not {other:?}"),
    };
    let dir = roster_app::open_existing_directory(config).await?;
    let tenant = match args.tenant {
        Some(t) => dir.get_tenant(roster_core::TenantId(t)).await?,
        None => dir
            .list_tenants()
            .await?
            .into_iter()
            .next()
            .context("the database has no tenant yet")?,
    };
    // An administrator at the database sees the whole directory; the app id only names
    // the reader and is never stored.
    let caller = Caller {
        tenant: tenant.id,
        app_id: roster_core::AppId::from_trusted("cli".to_owned()),
        scopes: Scopes::new([Scope::ContactRead]),
        contact_scope: ContactScope::All,
    };
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    if csv {
        out.write_all(&csv_header_line())?;
    }
    let mut writer = RowWriter::new(&dir, &caller);
    // Leaders first, so that the file imports again (see `ExportOrder`).
    let mut order = ExportOrder::plan(&dir, &caller).await?;
    let mut n = 0_u64;
    while let Some(users) = order.next_page(&dir, &caller).await? {
        for u in &users {
            let row = writer.row(u).await?;
            if csv {
                out.write_all(&csv_line(&row))?;
            } else {
                out.write_all(row.to_json().as_bytes())?;
                out.write_all(b"\n")?;
            }
            n += 1;
        }
    }
    out.flush().context("write the export")?;
    if args.out.is_some() {
        #[allow(clippy::print_stderr)] // A count for the person; stdout may be the data.
        {
            eprintln!("exported {n} users");
        }
    }
    Ok(())
}
