//! Storage ceilings: the fastest the storage engine takes the same rows into the same schema
//! and indexes, with none of Roster's work around them (no validation, no task, no change
//! events, no HTTP). The stores expose the plain writers (`ceiling` modules), so the ceiling
//! always uses Roster's current schema and row encoding, including the search index.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use roster_core::{
    values::{Email, Mobile},
    DeptLookup, Membership, NewTenant, OpenId, Store, TenantId, UnionId, User, UserId, UserKey,
    UserProfile, UserStatus,
};

use crate::data::GenUser;

/// Creates the benchmark tenant in a fresh store and returns it with its root department.
async fn tenant(store: &Arc<dyn Store>) -> anyhow::Result<(TenantId, roster_core::DeptKey)> {
    let t = store
        .create_tenant(&NewTenant::parse("bench", None)?, "bench-tenant", 0)
        .await?;
    let root = store
        .get_department(t.id, &DeptLookup::OpenId("0".into()))
        .await?
        .context("the new tenant has a root department")?;
    Ok((t.id, root.key))
}

/// The core users the generated rows stand for, with ids generated the way Roster does.
fn core_users(
    tenant: TenantId,
    root: roster_core::DeptKey,
    users: &[GenUser],
) -> anyhow::Result<Vec<User>> {
    let now = 1_700_000_000;
    users
        .iter()
        .map(|u| {
            let k = u.index as u128;
            Ok(User {
                key: UserKey(0),
                tenant,
                open_id: OpenId::from_trusted(format!("ou_{:032x}", k * 7919 + 1)),
                union_id: UnionId::from_trusted(format!("on_{:032x}", k * 7927 + 3)),
                user_id: UserId::parse(&u.user_id)?,
                profile: UserProfile {
                    name: u.name.clone(),
                    en_name: Some(u.en_name.clone()),
                    email: Some(Email::parse("email", &u.email)?),
                    mobile: Some(Mobile::parse("mobile", &u.mobile)?),
                    employee_no: Some(u.employee_no.clone()),
                    departments: vec![Membership {
                        department: root,
                        user_order: 0,
                        department_order: 0,
                        is_primary: true,
                    }],
                    ..UserProfile::default()
                },
                status: UserStatus::default(),
                created_at: now,
                updated_at: now,
                resigned_at: None,
                logout_at: None,
            })
        })
        .collect()
}

/// Plain rusqlite prepared inserts of the users into a fresh database with Roster's schema,
/// in one transaction. Rows are encoded before the clock starts. Returns rows/s and the time.
pub(crate) async fn sqlite(dir: &Path, users: &[GenUser]) -> anyhow::Result<(f64, Duration)> {
    let path = dir.join("ceiling.db");
    let (tenant, root) = {
        let store: Arc<dyn Store> = Arc::new(roster_store_sqlite::SqliteStore::open(&path)?);
        tenant(&store).await?
    };
    let rows = roster_store_sqlite::ceiling::encode(&core_users(tenant, root, users)?);
    let elapsed = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        roster_store_sqlite::ceiling::insert_plain(&path, tenant, &rows)?;
        anyhow::Ok(start.elapsed())
    })
    .await??;
    Ok((users.len() as f64 / elapsed.as_secs_f64(), elapsed))
}

/// COPY of the users into a fresh PostgreSQL database with Roster's schema. Returns rows/s.
pub(crate) async fn postgres(url: &str, users: &[GenUser]) -> anyhow::Result<(f64, Duration)> {
    let store = roster_store_postgres::PgStore::connect(url).await?;
    let store: Arc<dyn Store> = Arc::new(store);
    let (tenant, root) = tenant(&store).await?;
    let rows = roster_store_postgres::ceiling::encode(&core_users(tenant, root, users)?);
    drop(store);
    let start = Instant::now();
    roster_store_postgres::ceiling::copy_plain(url, tenant, &rows).await?;
    let elapsed = start.elapsed();
    Ok((users.len() as f64 / elapsed.as_secs_f64(), elapsed))
}
