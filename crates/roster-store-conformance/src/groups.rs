//! Groups on the raw store.

use std::sync::Arc;

use roster_core::{Group, IdGen, RandomIds, Store, StoreError, TenantId, UniqueKey};

use crate::support::{now_ms, tenant};

fn group(tenant: TenantId, name: &str, description: Option<&str>, created_at: i64) -> Group {
    Group {
        key: 0,
        tenant,
        group_id: RandomIds.hex(16),
        name: name.to_owned(),
        description: description.map(str::to_owned),
        created_at,
    }
}

/// Groups keep every field, are found by group id within their tenant, are listed oldest
/// first, and a name repeated in another case is `Duplicate(GroupName)` (but free in another
/// tenant).
pub async fn check_groups_round_trip_and_names_are_unique_case_insensitively(
    store: Arc<dyn Store>,
) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let now = now_ms();

    let eng = group(t.id, "Engineering", Some("Builds things"), now);
    let stored_eng = s.insert_group(&eng).await.expect("insert group");
    assert_eq!(
        stored_eng,
        Group {
            key: stored_eng.key,
            ..eng.clone()
        },
        "insert_group returns the group as given, with its new key"
    );
    let ops = s
        .insert_group(&group(t.id, "Operations", None, now + 1))
        .await
        .expect("insert group");
    assert_ne!(ops.key, stored_eng.key);
    assert_eq!(ops.description, None);

    assert_eq!(
        s.get_group(t.id, &eng.group_id).await.expect("get group"),
        Some(stored_eng.clone())
    );
    assert_eq!(
        s.get_group(other.id, &eng.group_id)
            .await
            .expect("get group"),
        None,
        "another tenant does not see the group"
    );
    assert_eq!(
        s.get_group(t.id, &RandomIds.hex(16))
            .await
            .expect("get group"),
        None
    );

    let err = s
        .insert_group(&group(t.id, "ENGINEERING", None, now + 2))
        .await;
    assert!(
        matches!(err, Err(StoreError::Duplicate(UniqueKey::GroupName))),
        "expected Duplicate(GroupName), got {err:?}"
    );
    let elsewhere = s
        .insert_group(&group(other.id, "Engineering", None, now + 3))
        .await
        .expect("the same name is free in another tenant");

    assert_eq!(
        s.list_groups(t.id).await.expect("list groups"),
        vec![stored_eng, ops],
        "groups of one tenant, oldest first; the refused one left no row"
    );
    assert_eq!(
        s.list_groups(other.id).await.expect("list groups"),
        vec![elsewhere]
    );
}
