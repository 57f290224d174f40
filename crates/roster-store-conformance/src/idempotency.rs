//! Idempotency keys (Feishu's `client_token`) and JSAPI tickets on the raw store.

use std::sync::Arc;

use roster_core::{AppId, IdGen, IdempotencyClaim, IdempotencyKey, RandomIds, Store, TenantId};

use crate::support::{app, now_ms, tenant};

/// A key of `operation` for the app.
pub(crate) fn idem_key(
    tenant: TenantId,
    app_id: &AppId,
    operation: &str,
    key: &str,
) -> IdempotencyKey {
    IdempotencyKey {
        tenant,
        app_id: app_id.clone(),
        operation: operation.to_owned(),
        key: key.to_owned(),
    }
}

async fn claim(
    store: &dyn Store,
    key: &IdempotencyKey,
    fingerprint: &str,
    now: i64,
) -> IdempotencyClaim {
    store
        .claim_idempotency_key(key, fingerprint, now)
        .await
        .expect("claim_idempotency_key must not fail")
}

fn existing(fingerprint: &str, result: Option<&str>) -> IdempotencyClaim {
    IdempotencyClaim::Existing {
        fingerprint: fingerprint.to_owned(),
        result: result.map(str::to_owned),
    }
}

/// A claim without a result outlives its lease when its request died: a later claim with
/// the key then takes it over (whatever its fingerprint), while a younger claim, or one
/// with a result, stands.
pub async fn check_a_claim_past_its_lease_is_taken_over(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let a = app(t.id, "a");
    s.insert_app(&a).await.expect("insert app");
    let lease = roster_core::store::IDEMPOTENCY_CLAIM_LEASE_MS;
    let t0 = now_ms();
    let k = idem_key(t.id, &a.app_id, "feishu.users.create", "died");
    assert_eq!(claim(s, &k, "fp-1", t0).await, IdempotencyClaim::Claimed);
    assert_eq!(
        claim(s, &k, "fp-2", t0 + lease - 1).await,
        existing("fp-1", None),
        "within the lease the first claim stands"
    );
    assert_eq!(
        claim(s, &k, "fp-2", t0 + lease + 1).await,
        IdempotencyClaim::Claimed,
        "past the lease the claim is taken over"
    );
    assert_eq!(
        claim(s, &k, "fp-1", t0 + lease + 2).await,
        existing("fp-2", None),
        "the new claim is young again"
    );
    s.complete_idempotency_key(&k, "ou_done")
        .await
        .expect("complete");
    assert_eq!(
        claim(s, &k, "fp-2", t0 + 10 * lease).await,
        existing("fp-2", Some("ou_done")),
        "a key with a result is never taken over"
    );
}

/// A new key is `Claimed`; a later claim sees the first claim's fingerprint and, once the
/// key is completed, its result; a released key can be claimed afresh; keys are scoped to
/// tenant, app, operation and key text; purging forgets exactly the keys claimed before the
/// cut-off.
pub async fn check_idempotency_keys_claim_complete_release_and_purge(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let other = tenant(s, "Other", None).await;
    let a = app(t.id, "a");
    let b = app(t.id, "b");
    let c = app(other.id, "c");
    for x in [&a, &b, &c] {
        s.insert_app(x).await.expect("insert app");
    }
    let now = now_ms();
    let op = "feishu.users.create";
    let k = idem_key(t.id, &a.app_id, op, "token-1");

    assert_eq!(claim(s, &k, "fp-1", now).await, IdempotencyClaim::Claimed);
    assert_eq!(
        claim(s, &k, "fp-1", now).await,
        existing("fp-1", None),
        "a running request's key answers with no result"
    );
    assert_eq!(
        claim(s, &k, "fp-2", now).await,
        existing("fp-1", None),
        "a claim with another fingerprint sees the first one, and does not replace it"
    );
    s.complete_idempotency_key(&k, "ou_result")
        .await
        .expect("complete");
    assert_eq!(
        claim(s, &k, "fp-1", now).await,
        existing("fp-1", Some("ou_result"))
    );
    assert_eq!(
        claim(s, &k, "fp-9", now).await,
        existing("fp-1", Some("ou_result"))
    );

    // The same key text in another scope is another key.
    for scoped in [
        idem_key(t.id, &a.app_id, "feishu.users.delete", "token-1"),
        idem_key(t.id, &b.app_id, op, "token-1"),
        idem_key(other.id, &c.app_id, op, "token-1"),
        idem_key(t.id, &a.app_id, op, "TOKEN-1"),
    ] {
        assert_eq!(
            claim(s, &scoped, "fp-x", now).await,
            IdempotencyClaim::Claimed,
            "{scoped:?} is a key of its own"
        );
    }
    assert_eq!(
        claim(s, &k, "fp-1", now).await,
        existing("fp-1", Some("ou_result"))
    );

    // Release: the failed request's key may be claimed again, by any fingerprint.
    let k2 = idem_key(t.id, &a.app_id, op, "token-2");
    assert_eq!(claim(s, &k2, "fp-a", now).await, IdempotencyClaim::Claimed);
    s.release_idempotency_key(&k2).await.expect("release");
    assert_eq!(claim(s, &k2, "fp-b", now).await, IdempotencyClaim::Claimed);
    assert_eq!(claim(s, &k2, "fp-a", now).await, existing("fp-b", None));
    s.release_idempotency_key(&idem_key(t.id, &a.app_id, op, "never-claimed"))
        .await
        .expect("releasing an unknown key is harmless");

    // Purge by claim time: only the keys claimed before the cut-off.
    let old1 = idem_key(t.id, &a.app_id, op, "old-1");
    let old2 = idem_key(other.id, &c.app_id, op, "old-2");
    let young = idem_key(t.id, &a.app_id, op, "young");
    assert_eq!(
        claim(s, &old1, "fp", now - 100_000).await,
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        claim(s, &old2, "fp", now - 100_000).await,
        IdempotencyClaim::Claimed
    );
    s.complete_idempotency_key(&old2, "ou_old")
        .await
        .expect("complete");
    assert_eq!(
        claim(s, &young, "fp", now + 100_000).await,
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        s.purge_idempotency_keys(now - 50_000).await.expect("purge"),
        2,
        "old-1 (unfinished) and old-2 (completed, another tenant)"
    );
    assert_eq!(
        claim(s, &old1, "fp-new", now).await,
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        claim(s, &old2, "fp-new", now).await,
        IdempotencyClaim::Claimed
    );
    assert_eq!(claim(s, &young, "fp-new", now).await, existing("fp", None));
    assert_eq!(
        claim(s, &k, "fp-1", now).await,
        existing("fp-1", Some("ou_result"))
    );
    // Everything claimed so far was claimed before now + 200 s.
    let left = s
        .purge_idempotency_keys(now + 200_000)
        .await
        .expect("purge");
    assert_eq!(
        left, 9,
        "token-1 in five scopes, token-2, old-1, old-2 and young"
    );
    assert_eq!(claim(s, &k, "fp-2", now).await, IdempotencyClaim::Claimed);
}

/// An app has no JSAPI ticket until one is put; a put replaces the ticket and its expiry;
/// tickets are per app.
pub async fn check_jsapi_tickets_are_stored_per_app_and_replaced(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let t = tenant(s, "Acme", None).await;
    let a = app(t.id, "a");
    let b = app(t.id, "b");
    for x in [&a, &b] {
        s.insert_app(x).await.expect("insert app");
    }
    let get = |id: AppId| async move { s.jsapi_ticket(&id).await.expect("jsapi_ticket") };
    assert_eq!(get(a.app_id.clone()).await, None);
    assert_eq!(
        get(RandomIds.app_id()).await,
        None,
        "an unknown app has none"
    );

    let exp = now_ms() + 7_200_000;
    s.put_jsapi_ticket(&a.app_id, "ticket-1", exp, i64::MAX)
        .await
        .expect("put");
    assert_eq!(
        get(a.app_id.clone()).await,
        Some(("ticket-1".to_owned(), exp))
    );
    assert_eq!(get(b.app_id.clone()).await, None);

    s.put_jsapi_ticket(&a.app_id, "ticket-2", exp + 1_000, i64::MAX)
        .await
        .expect("replace");
    assert_eq!(
        get(a.app_id.clone()).await,
        Some(("ticket-2".to_owned(), exp + 1_000)),
        "a put replaces the ticket and its expiry"
    );
    assert_eq!(
        s.put_jsapi_ticket(&a.app_id, "ticket-3", exp + 9_000, exp)
            .await
            .expect("a put while the stored ticket is good"),
        ("ticket-2".to_owned(), exp + 1_000),
        "a ticket that expires after `replace_before` stays, and is what the put returns"
    );
    s.put_jsapi_ticket(&b.app_id, "ticket-b", exp - 5, i64::MAX)
        .await
        .expect("put");
    assert_eq!(
        get(b.app_id.clone()).await,
        Some(("ticket-b".to_owned(), exp - 5))
    );
    assert_eq!(
        get(a.app_id.clone()).await,
        Some(("ticket-2".to_owned(), exp + 1_000)),
        "another app's ticket leaves this one alone"
    );
}
