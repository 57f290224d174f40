//! Administration commands. Output is for people, so this module prints.
#![allow(clippy::print_stdout)]
// Doc comments on the clap types are `--help` text for people, not rustdoc.
#![allow(clippy::doc_markdown)]

use clap::Subcommand;
use roster_app::Config;
use roster_core::{AppId, AppKind, ContactScope, DeptLookup, NewTenant, Scopes, TenantId};

#[derive(Subcommand)]
pub(crate) enum TenantCommand {
    /// Create a tenant (with its root department).
    Create {
        /// Unique name.
        #[arg(long)]
        name: String,
        /// Licence cap: the most active users the tenant may hold.
        #[arg(long)]
        max_users: Option<u32>,
    },
    /// List tenants.
    List,
}

#[derive(Subcommand)]
pub(crate) enum AppCommand {
    /// Create an app and print its id and secret (shown once).
    Create {
        /// Tenant id (see `roster tenant list`).
        #[arg(long)]
        tenant: i64,
        /// A name for people.
        #[arg(long, default_value = "app")]
        name: String,
        /// Comma-separated scopes: contact:read, contact:write.
        #[arg(long, default_value = "contact:read,contact:write")]
        scopes: String,
        /// Limit the app to these departments' subtrees (open_department_id or
        /// department_id, comma-separated); default: the whole directory.
        #[arg(long)]
        departments: Option<String>,
        /// Credential kind: feishu (app secret for tokens), alibaba (Quick BI AccessKey
        /// pair) or huawei (Workspace AK/SK bound to a project).
        #[arg(long, default_value = "feishu")]
        kind: String,
        /// Huawei only: the project id (32 lowercase hex digits) the key may address;
        /// default: a new one.
        #[arg(long)]
        project_id: Option<String>,
    },
    /// List apps.
    List {
        /// Only this tenant's apps.
        #[arg(long)]
        tenant: Option<i64>,
    },
    /// Give an app a new secret; its tokens stop working at once.
    RotateSecret {
        /// The app id (`cli_…`).
        app_id: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum OutboxCommand {
    /// List messages, newest first.
    List {
        /// Only this tenant's messages.
        #[arg(long)]
        tenant: Option<i64>,
        /// Only messages not delivered yet.
        #[arg(long)]
        unsent: bool,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Also print each message's body (it holds the activation link).
        #[arg(long)]
        full: bool,
    },
}

/// How an administration command opens the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// It only reads: an existing database, and no secret key is created, so that listing
    /// from another working directory with `--database-url` leaves no stray `secret.key`
    /// behind (a key that a later command there would seal with, which no server could open).
    Read,
    /// It writes to an existing directory (`app create`, `app rotate-secret`): a mistyped
    /// path is an error, not a new empty database.
    Write,
    /// It may start a new directory (`tenant create`).
    Create,
}

/// Opens the directory for a command (see [`Open`] and `roster_app::open_admin_directory`).
async fn open_for(config: &Config, how: Open) -> anyhow::Result<roster_core::Directory> {
    match how {
        Open::Read => roster_app::open_existing_directory(config).await,
        Open::Write => roster_app::open_admin_directory(config, false).await,
        Open::Create => roster_app::open_admin_directory(config, true).await,
    }
}

/// Refuses, before anything is written, a command that must seal an access-key secret in a
/// directory opened without a key: with `--database-url` no key is made up, because the
/// servers on that database would not have it.
fn ensure_can_seal(dir: &roster_core::Directory) -> anyhow::Result<()> {
    anyhow::ensure!(
        dir.can_seal(),
        "no secret key to seal the access-key secret with: with --database-url, set \
         `secret_key` (ROSTER_SECRET_KEY) to the key the servers on this database use, or \
         point --data-dir at a server's data directory (its secret.key)"
    );
    Ok(())
}

pub(crate) async fn outbox(config: &Config, cmd: OutboxCommand) -> anyhow::Result<()> {
    let dir = roster_app::open_existing_directory(config).await?;
    let OutboxCommand::List {
        tenant,
        unsent,
        limit,
        full,
    } = cmd;
    println!(
        "{:<8} {:<6} {:<6} {:<32} {:<9} {:>8} LAST_ERROR",
        "ID", "TENANT", "KIND", "RECIPIENT", "STATE", "ATTEMPTS"
    );
    for m in dir.list_outbox(tenant.map(TenantId), unsent, limit).await? {
        let state = match (m.sent_at, m.channel) {
            (Some(_), _) => "sent",
            (None, _) if m.next_attempt_at == roster_core::outbox::GIVEN_UP => "failed",
            (None, roster_core::Channel::Sms) => "recorded",
            (None, roster_core::Channel::Email) => "pending",
        };
        println!(
            "{:<8} {:<6} {:<6} {:<32} {:<9} {:>8} {}",
            m.id,
            m.tenant,
            m.channel.as_str(),
            m.recipient,
            state,
            m.attempts,
            m.last_error.as_deref().unwrap_or("")
        );
        if full {
            println!("         subject: {}", m.subject);
            for line in m.body.lines() {
                println!("         | {line}");
            }
        }
    }
    Ok(())
}

pub(crate) async fn tenant(config: &Config, cmd: TenantCommand) -> anyhow::Result<()> {
    let how = match cmd {
        TenantCommand::List => Open::Read,
        TenantCommand::Create { .. } => Open::Create,
    };
    let dir = open_for(config, how).await?;
    match cmd {
        TenantCommand::Create { name, max_users } => {
            let t = dir
                .create_tenant(NewTenant::parse(&name, max_users)?)
                .await?;
            println!(
                "tenant {} created: name={} tenant_key={}",
                t.id, t.name, t.tenant_key
            );
        }
        TenantCommand::List => {
            println!(
                "{:<6} {:<24} {:<18} {:>8} {:>10}",
                "ID", "NAME", "TENANT_KEY", "ACTIVE", "MAX"
            );
            for t in dir.list_tenants().await? {
                let max = t
                    .max_active_users
                    .map_or_else(|| "-".to_owned(), |m| m.to_string());
                println!(
                    "{:<6} {:<24} {:<18} {:>8} {:>10}",
                    t.id, t.name, t.tenant_key, t.active_users, max
                );
            }
        }
    }
    Ok(())
}

pub(crate) async fn app(config: &Config, cmd: AppCommand) -> anyhow::Result<()> {
    let how = match cmd {
        AppCommand::List { .. } => Open::Read,
        _ => Open::Write,
    };
    let dir = open_for(config, how).await?;
    match cmd {
        AppCommand::Create {
            tenant,
            name,
            scopes,
            departments,
            kind,
            project_id,
        } => {
            let tenant = TenantId(tenant);
            let scopes = Scopes::parse_list(&scopes)?;
            let kind = AppKind::from_str_opt(&kind).ok_or_else(|| {
                anyhow::anyhow!("unknown --kind {kind:?}: use feishu, alibaba or huawei")
            })?;
            if kind.uses_access_key() {
                anyhow::ensure!(
                    departments.is_none(),
                    "--departments applies to feishu apps only"
                );
                ensure_can_seal(&dir)?;
                let created = dir
                    .create_access_key(tenant, kind, &name, project_id.as_deref(), scopes)
                    .await?;
                println!("app_id:            {}", created.app.app_id);
                println!("kind:              {}", kind.as_str());
                if let Some(p) = &created.key.project_id {
                    println!("project_id:        {p}");
                }
                println!("access_key_id:     {}", created.key.key_id);
                println!("access_key_secret: {}", created.secret);
                println!("(the secret is shown only now)");
                return Ok(());
            }
            anyhow::ensure!(
                project_id.is_none(),
                "--project-id applies to huawei keys only"
            );
            let contact_scope = match departments {
                None => ContactScope::All,
                Some(list) => {
                    let mut keys = Vec::new();
                    for id in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        let lookup = if id.starts_with("od-") || id == "0" {
                            DeptLookup::OpenId(id.to_owned())
                        } else {
                            DeptLookup::CustomId(id.to_owned())
                        };
                        keys.push(dir.admin_department(tenant, &lookup).await?.key);
                    }
                    ContactScope::Departments(keys)
                }
            };
            let (app, secret) = dir.create_app(tenant, &name, scopes, contact_scope).await?;
            println!("app_id:     {}", app.app_id);
            println!("app_secret: {secret}");
            println!("(the secret is shown only now; `roster app rotate-secret` makes a new one)");
        }
        AppCommand::List { tenant } => {
            println!(
                "{:<22} {:<6} {:<8} {:<16} {:<28} {:<14} {:<24} PROJECT_ID",
                "APP_ID", "TENANT", "KIND", "NAME", "SCOPES", "CONTACT_SCOPE", "ACCESS_KEY_ID"
            );
            let keys = dir.list_access_keys(tenant.map(TenantId)).await?;
            for a in dir.list_apps(tenant.map(TenantId)).await? {
                let scope = match &a.contact_scope {
                    ContactScope::All => "all".to_owned(),
                    ContactScope::Departments(k) => format!("{} departments", k.len()),
                };
                let key = keys.iter().find(|k| k.app_id == a.app_id);
                println!(
                    "{:<22} {:<6} {:<8} {:<16} {:<28} {scope:<14} {:<24} {}",
                    a.app_id,
                    a.tenant,
                    a.kind.as_str(),
                    a.name,
                    a.scopes.to_list(),
                    key.map_or("-", |k| k.key_id.as_str()),
                    key.and_then(|k| k.project_id.as_ref())
                        .map_or("-", roster_core::ProjectId::as_str),
                );
            }
        }
        AppCommand::RotateSecret { app_id } => {
            let app_id = AppId::parse(&app_id)?;
            let uses_access_key = dir
                .list_access_keys(None)
                .await?
                .iter()
                .any(|k| k.app_id == app_id);
            if uses_access_key {
                ensure_can_seal(&dir)?;
            }
            let secret = dir.rotate_secret(&app_id).await?;
            // An Alibaba or Huawei app's secret is its access key's: the key id stays.
            let key = dir
                .list_access_keys(None)
                .await?
                .into_iter()
                .find(|k| k.app_id == app_id);
            if let Some(k) = key {
                println!("app_id:            {app_id}");
                println!("access_key_id:     {}", k.key_id);
                println!("access_key_secret: {secret}");
            } else {
                println!("app_id:     {app_id}");
                println!("app_secret: {secret}");
            }
            println!("(the old secret and every token issued under it no longer work)");
        }
    }
    Ok(())
}

pub(crate) async fn audit(
    config: &Config,
    tenant: Option<i64>,
    after: i64,
    limit: usize,
    full: bool,
) -> anyhow::Result<()> {
    let dir = roster_app::open_existing_directory(config).await?;
    let events = dir.list_events(tenant.map(TenantId), after, limit).await?;
    println!(
        "{:<8} {:<6} {:<25} {:<12} {:<38} {:<26} NOTE",
        "ID", "TENANT", "AT (UTC ms)", "ACTION", "ENTITY", "ACTOR"
    );
    for e in &events {
        println!(
            "{:<8} {:<6} {:<25} {:<12} {:<38} {:<26} {}",
            e.id,
            e.tenant,
            e.at,
            e.action.as_str(),
            format!("{}:{}", e.entity, e.entity_id),
            e.actor,
            e.note.as_deref().unwrap_or("")
        );
        if full {
            println!("         before: {}", e.before.as_deref().unwrap_or("-"));
            println!("         after:  {}", e.after.as_deref().unwrap_or("-"));
        }
    }
    if events.len() == limit {
        if let Some(last) = events.last() {
            println!("(more: --after {})", last.id);
        }
    }
    Ok(())
}
