//! Vendor access keys (migration 0008) on the raw store and through the directory, the
//! all-or-nothing insert with invitations (`insert_users_invited`), group deletion, and the
//! directory's account use cases (Huawei Workspace).

use std::sync::Arc;

use roster_core::{
    AccessKey, App, AppKind, BatchMode, ContactScope, CoreError, IdGen, OutboxMessage, ProjectId,
    RandomIds, Scope, Scopes, SecretSealer, Store, StoreError, UniqueKey, UserLookup,
};

use roster_core::values::Email;

use crate::support::{cli, directory, email, env, now_ms, plain_user, root, tenant};

/// A reversible test sealer (XOR with a fixed pad and a marker byte). The real AEAD sealer
/// lives in roster-app, which this crate cannot depend on; what these checks need is only a
/// sealer whose output differs from its input and opens back.
struct TestSealer;

impl SecretSealer for TestSealer {
    fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        std::iter::once(0xA5)
            .chain(plaintext.iter().map(|b| b ^ 0x5A))
            .collect()
    }

    fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, CoreError> {
        match sealed.split_first() {
            Some((0xA5, rest)) => Ok(rest.iter().map(|b| b ^ 0x5A).collect()),
            _ => Err(CoreError::Storage(StoreError::Backend("bad seal".into()))),
        }
    }
}

fn key_app(tenant: roster_core::TenantId, kind: AppKind) -> App {
    App {
        app_id: RandomIds.app_id(),
        tenant,
        name: "keys".into(),
        kind,
        secret_hash: "unused".into(),
        scopes: Scopes::new([Scope::ContactRead]),
        contact_scope: ContactScope::All,
        created_at: now_ms(),
    }
}

fn key_of(app: &App, key_id: &str, project: Option<&str>) -> AccessKey {
    AccessKey {
        key_id: key_id.to_owned(),
        app_id: app.app_id.clone(),
        tenant: app.tenant,
        kind: app.kind,
        project_id: project.map(|p| ProjectId::parse(p).expect("fixture project id")),
        sealed_secret: vec![0, 1, 2, 255],
        created_at: now_ms(),
    }
}

/// Keys round-trip with their sealed bytes and project, are listed per tenant and globally,
/// and each key's app is stored with it (same kind).
pub async fn check_access_keys_round_trip_with_their_app_and_are_listed_per_tenant(
    s: Arc<dyn Store>,
) {
    let a = tenant(s.as_ref(), "keys-a", None).await;
    let b = tenant(s.as_ref(), "keys-b", None).await;
    let hw_app = key_app(a.id, AppKind::Huawei);
    let hw = key_of(&hw_app, "HWKEYAAAAAAAAAAAAAA1", Some(&"a".repeat(32)));
    let ali_app = key_app(b.id, AppKind::Alibaba);
    let ali = key_of(&ali_app, "LTAIkeyBBBBBBBBBBBBBBBB1", None);
    s.insert_access_key(&hw_app, &hw)
        .await
        .expect("insert huawei key");
    s.insert_access_key(&ali_app, &ali)
        .await
        .expect("insert alibaba key");
    assert_eq!(
        s.get_access_key(&hw.key_id).await.expect("get"),
        Some(hw.clone())
    );
    assert_eq!(
        s.get_access_key(&ali.key_id).await.expect("get"),
        Some(ali.clone())
    );
    assert_eq!(
        s.get_access_key("hwkeyaaaaaaaaaaaaaa1").await.expect("get"),
        None,
        "ids are case-sensitive"
    );
    assert_eq!(
        s.list_access_keys(Some(a.id)).await.expect("list"),
        vec![hw.clone()]
    );
    assert_eq!(s.list_access_keys(None).await.expect("list").len(), 2);
    let app = s
        .get_app(&hw_app.app_id)
        .await
        .expect("get app")
        .expect("the key's app");
    assert_eq!(app.kind, AppKind::Huawei);
}

/// A clashing key id is `Duplicate(AppId)` and leaves neither the key nor its new app.
pub async fn check_duplicate_access_key_id_is_refused_and_writes_no_app(s: Arc<dyn Store>) {
    let t = tenant(s.as_ref(), "keys-dup", None).await;
    let first = key_app(t.id, AppKind::Huawei);
    s.insert_access_key(
        &first,
        &key_of(&first, "HWDUPLICATEKEY000001", Some(&"b".repeat(32))),
    )
    .await
    .expect("first key");
    let second = key_app(t.id, AppKind::Huawei);
    let err = s
        .insert_access_key(
            &second,
            &key_of(&second, "HWDUPLICATEKEY000001", Some(&"b".repeat(32))),
        )
        .await
        .expect_err("same key id");
    assert!(
        matches!(err, StoreError::Duplicate(UniqueKey::AppId)),
        "{err:?}"
    );
    assert_eq!(
        s.get_app(&second.app_id).await.expect("get app"),
        None,
        "one transaction"
    );
    assert_eq!(s.list_access_keys(Some(t.id)).await.expect("list").len(), 1);
}

fn invitation(tenant: roster_core::TenantId, to: &str) -> OutboxMessage {
    OutboxMessage {
        id: 0,
        tenant,
        channel: roster_core::Channel::Email,
        recipient: to.to_owned(),
        subject: "invite".into(),
        body: "hello".into(),
        activation: None,
        created_at: now_ms(),
        attempts: 0,
        next_attempt_at: now_ms(),
        sent_at: None,
        last_error: None,
    }
}

/// Users and their invitations are written together, or (one duplicate) nothing at all.
pub async fn check_insert_users_invited_writes_users_and_mails_all_or_nothing(s: Arc<dyn Store>) {
    let t = tenant(s.as_ref(), "invited", None).await;
    let r = root(s.as_ref(), t.id).await;
    let mut a = plain_user(t.id, r.key, "inv-a");
    a.profile.email = Some(email("inv-a@example.com"));
    let b = plain_user(t.id, r.key, "inv-b");
    let mails = [
        invitation(t.id, "inv-a@example.com"),
        invitation(t.id, "inv-b@example.com"),
    ];
    let results = s
        .insert_users_invited(t.id, &[a.clone(), b], &mails, &cli())
        .await
        .expect("insert invited");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        s.list_outbox(Some(t.id), false, 10)
            .await
            .expect("outbox")
            .len(),
        2
    );

    let mut clash = plain_user(t.id, r.key, "inv-c");
    clash.profile.email = Some(Email::from_trusted("INV-A@example.com".into()));
    let fresh = plain_user(t.id, r.key, "inv-d");
    let results = s
        .insert_users_invited(
            t.id,
            &[fresh.clone(), clash],
            &[invitation(t.id, "x@example.com")],
            &cli(),
        )
        .await
        .expect("insert invited");
    assert!(
        matches!(results[1], Err(StoreError::Duplicate(UniqueKey::Email))),
        "{results:?}"
    );
    assert!(
        s.get_user(t.id, &UserLookup::OpenId(fresh.open_id.to_string()))
            .await
            .expect("get")
            .is_none(),
        "nothing of a refused batch is written"
    );
    assert_eq!(
        s.list_outbox(Some(t.id), false, 10)
            .await
            .expect("outbox")
            .len(),
        2,
        "no mail either"
    );
}

/// `delete_group` removes the tenant's group only, once.
pub async fn check_delete_group_removes_only_the_tenants_group(s: Arc<dyn Store>) {
    let e = env(s.clone(), "groups-del", None).await;
    let other = env(s.clone(), "groups-del-2", None).await;
    let g = e
        .dir
        .create_group(&e.caller, "doomed", None, None)
        .await
        .expect("group");
    assert!(
        !s.delete_group(other.tenant.id, &g.group_id)
            .await
            .expect("delete"),
        "another tenant's"
    );
    assert!(s
        .delete_group(e.tenant.id, &g.group_id)
        .await
        .expect("delete"));
    assert!(s
        .get_group(e.tenant.id, &g.group_id)
        .await
        .expect("get")
        .is_none());
    assert!(!s
        .delete_group(e.tenant.id, &g.group_id)
        .await
        .expect("delete again"));
}

/// Through the directory: a created key's secret is sealed at rest and opens for the
/// verifier; the Huawei token exchange checks secret and project; tokens of one kind never
/// authenticate as the other.
pub async fn check_access_keys_sign_and_issue_tokens_through_the_directory(s: Arc<dyn Store>) {
    let dir = directory(s.clone()).with_sealer(Arc::new(TestSealer));
    let e = env(s.clone(), "keys-dir", None).await;
    let project = "c".repeat(32);
    let created = dir
        .create_access_key(
            e.tenant.id,
            AppKind::Huawei,
            "hw",
            Some(&project),
            Scopes::new([Scope::ContactWrite]),
        )
        .await
        .expect("create key");
    assert_eq!(created.key.key_id.len(), 20);
    let stored = s
        .get_access_key(&created.key.key_id)
        .await
        .expect("get")
        .expect("stored");
    assert!(!stored
        .sealed_secret
        .windows(created.secret.len())
        .any(|w| w == created.secret.as_bytes()));
    let signing = dir
        .signing_key(&created.key.key_id, AppKind::Huawei)
        .await
        .expect("signing key")
        .expect("found");
    assert_eq!(signing.secret, created.secret);
    assert_eq!(signing.caller.tenant, e.tenant.id);
    assert!(dir
        .signing_key(&created.key.key_id, AppKind::Alibaba)
        .await
        .expect("lookup")
        .is_none());
    assert!(dir
        .signing_key("NOSUCHKEY", AppKind::Huawei)
        .await
        .expect("lookup")
        .is_none());

    let wrong = dir
        .issue_access_key_token(&created.key.key_id, "nope", &project)
        .await;
    assert!(
        matches!(wrong, Err(CoreError::Unauthenticated(_))),
        "{wrong:?}"
    );
    let elsewhere = dir
        .issue_access_key_token(&created.key.key_id, &created.secret, &"d".repeat(32))
        .await;
    assert!(
        matches!(elsewhere, Err(CoreError::Forbidden(_))),
        "{elsewhere:?}"
    );
    let token = dir
        .issue_access_key_token(&created.key.key_id, &created.secret, &project)
        .await
        .expect("token");
    let (key, caller) = dir
        .authenticate_access_key_token(&token.token, AppKind::Huawei)
        .await
        .expect("lookup")
        .expect("valid token");
    assert_eq!(
        (key.key_id, caller.app_id),
        (created.key.key_id.clone(), created.app.app_id.clone())
    );
    assert!(
        dir.authenticate(&token.token).await.is_err(),
        "no Feishu bearer"
    );
    assert!(dir
        .issue_tenant_token(created.app.app_id.as_str(), &created.secret)
        .await
        .is_err());

    // A project belongs to one tenant; an Alibaba key has none.
    let other = env(s.clone(), "keys-dir-2", None).await;
    let project_taken = dir
        .create_access_key(
            other.tenant.id,
            AppKind::Huawei,
            "hw",
            Some(&project),
            Scopes::default(),
        )
        .await;
    assert!(
        matches!(
            project_taken,
            Err(CoreError::Invalid {
                field: "project_id",
                ..
            })
        ),
        "{project_taken:?}"
    );
    let ali = dir
        .create_access_key(
            other.tenant.id,
            AppKind::Alibaba,
            "bi",
            None,
            Scopes::default(),
        )
        .await
        .expect("alibaba key");
    assert!(ali.key.key_id.starts_with("LTAI") && ali.key.project_id.is_none());
    // Without a sealer nothing can be created.
    let bare = directory(s);
    assert!(bare
        .create_access_key(e.tenant.id, AppKind::Alibaba, "x", None, Scopes::default())
        .await
        .is_err());
}

/// Rotating an access-key app's secret replaces the key's secret (the key id stays): the
/// old secret no longer signs or buys tokens, tokens issued under it stop authenticating,
/// and the new secret works. Another app's key is untouched.
pub async fn check_rotating_an_access_key_app_replaces_its_secret_and_revokes_tokens(
    s: Arc<dyn Store>,
) {
    let dir = directory(s.clone()).with_sealer(Arc::new(TestSealer));
    let e = env(s.clone(), "keys-rotate", None).await;
    let project = "e".repeat(32);
    let created = dir
        .create_access_key(
            e.tenant.id,
            AppKind::Huawei,
            "hw",
            Some(&project),
            Scopes::new([Scope::ContactWrite]),
        )
        .await
        .expect("create key");
    let bystander = dir
        .create_access_key(e.tenant.id, AppKind::Alibaba, "bi", None, Scopes::default())
        .await
        .expect("create another key");
    let old_token = dir
        .issue_access_key_token(&created.key.key_id, &created.secret, &project)
        .await
        .expect("token");

    let new_secret = dir
        .rotate_secret(&created.app.app_id)
        .await
        .expect("rotate");
    assert_ne!(new_secret, created.secret);
    assert_eq!(
        new_secret.len(),
        created.secret.len(),
        "a secret of the same form"
    );
    let signing = dir
        .signing_key(&created.key.key_id, AppKind::Huawei)
        .await
        .expect("signing key")
        .expect("the key id stays");
    assert_eq!(signing.secret, new_secret);
    assert!(
        dir.authenticate_access_key_token(&old_token.token, AppKind::Huawei)
            .await
            .expect("lookup")
            .is_none(),
        "a token issued under the old secret is revoked"
    );
    let with_old = dir
        .issue_access_key_token(&created.key.key_id, &created.secret, &project)
        .await;
    assert!(
        matches!(with_old, Err(CoreError::Unauthenticated(_))),
        "{with_old:?}"
    );
    dir.issue_access_key_token(&created.key.key_id, &new_secret, &project)
        .await
        .expect("the new secret buys a token");
    let other = dir
        .signing_key(&bystander.key.key_id, AppKind::Alibaba)
        .await
        .expect("signing key")
        .expect("found");
    assert_eq!(
        other.secret, bystander.secret,
        "another app's key is untouched"
    );
    assert!(
        !s.set_access_key_secret(&RandomIds.app_id(), b"x")
            .await
            .expect("an unknown app is not an error"),
        "nothing to change"
    );
}

/// `create_accounts` writes all users with one invitation per self-activating user, or
/// nothing when any item fails (an unknown group included).
pub async fn check_create_accounts_is_all_or_nothing_with_invitations(s: Arc<dyn Store>) {
    let e = env(s.clone(), "accounts", None).await;
    let inv = roster_core::Invitations {
        base_url: "http://127.0.0.1:1".into(),
        ttl_ms: 60_000,
        lease_ms: 30_000,
    };
    let g = e
        .dir
        .create_group(&e.caller, "team", None, None)
        .await
        .expect("group");
    let account = |id: &str, by_admin: bool, groups: Vec<String>| {
        let mut new = crate::support::new_user(id);
        new.profile.email = Some(email(&format!("{id}@example.com")));
        new.profile.username = Some(roster_core::values::Username::parse(id).expect("name"));
        new.profile.activation = if by_admin {
            roster_core::values::Activation::ByAdmin
        } else {
            roster_core::values::Activation::ByUser
        };
        new.profile.groups = groups;
        new.activated = by_admin;
        Ok(new)
    };
    let report = e
        .dir
        .create_accounts(
            &e.caller,
            vec![
                account("acc-a", false, vec![g.group_id.clone()]),
                account("acc-b", true, vec![]),
            ],
            &inv,
        )
        .await
        .expect("create accounts");
    assert!(report.items.iter().all(Result::is_ok), "{:?}", report.items);
    let outbox = s
        .list_outbox(Some(e.tenant.id), false, 10)
        .await
        .expect("outbox");
    assert_eq!(outbox.len(), 1, "only the self-activating user is invited");
    assert_eq!(outbox[0].recipient, "acc-a@example.com");
    assert_eq!(
        e.dir
            .group_members(&e.caller, &g.group_id)
            .await
            .expect("members")
            .len(),
        1
    );

    let report = e
        .dir
        .create_accounts(
            &e.caller,
            vec![
                account("acc-c", false, vec![]),
                account("acc-d", false, vec!["nope".into()]),
            ],
            &inv,
        )
        .await
        .expect("create accounts");
    assert!(matches!(
        report.items[1],
        Err(CoreError::BadReference {
            field: "group_ids",
            ..
        })
    ));
    assert!(report.items[0].is_err(), "all-or-nothing");
    assert_eq!(
        s.list_outbox(Some(e.tenant.id), false, 10)
            .await
            .expect("outbox")
            .len(),
        1
    );
    assert!(matches!(
        e.dir.delete_group(&e.caller, &g.group_id).await,
        Err(CoreError::Conflict { .. })
    ));
    // The batch path and this one agree on duplicates (login names, any case).
    let dup = e
        .dir
        .create_users(
            &e.caller,
            vec![
                account("acc-z", false, vec![]).map(|mut n: roster_core::NewUser| {
                    n.profile.username =
                        Some(roster_core::values::Username::parse("ACC-A").expect("name"));
                    n.profile.email = None;
                    n
                }),
            ],
            BatchMode::Atomic,
        )
        .await
        .expect("batch");
    assert!(matches!(
        dup.items[0],
        Err(CoreError::AlreadyExists {
            field: UniqueKey::Username,
            ..
        })
    ));
}

/// A group and the users joining it never part ways unseen: the store refuses a user
/// naming a group deleted since the core checked it, a BI member joining one, and the
/// deletion of a group a user or BI member joined since the core's check; racing
/// batch-creates and a delete of their group leave either the group or no member of it.
pub async fn check_a_group_is_never_deleted_under_its_members(s: Arc<dyn Store>) {
    let e = env(s.clone(), "group-race", None).await;
    let inv = roster_core::Invitations {
        base_url: "http://127.0.0.1:1".into(),
        ttl_ms: 60_000,
        lease_ms: 30_000,
    };
    let account = |id: &str, groups: Vec<String>| {
        let mut new = crate::support::new_user(id);
        new.profile.email = Some(email(&format!("{id}@example.com")));
        new.profile.username = Some(roster_core::values::Username::parse(id).expect("name"));
        new.profile.activation = roster_core::values::Activation::ByAdmin;
        new.profile.groups = groups;
        new.activated = true;
        new
    };

    // The store's own checks, past the core's.
    let g = e
        .dir
        .create_group(&e.caller, "kept", None, None)
        .await
        .expect("group");
    let mut lone = plain_user(e.tenant.id, e.root.key, "lone");
    lone.profile.groups = vec!["gone-group".into()];
    let written = s
        .insert_users_invited(e.tenant.id, std::slice::from_ref(&lone), &[], &cli())
        .await
        .expect("insert");
    assert!(
        matches!(written[..], [Err(StoreError::Gone("group_ids"))]),
        "{written:?}"
    );
    lone.profile.groups = vec![g.group_id.clone()];
    let written = s
        .insert_users_invited(e.tenant.id, std::slice::from_ref(&lone), &[], &cli())
        .await
        .expect("insert");
    assert!(written[0].is_ok(), "{written:?}");
    let refused = s.delete_group(e.tenant.id, &g.group_id).await;
    assert!(matches!(refused, Err(StoreError::Stale)), "{refused:?}");
    assert!(s
        .get_group(e.tenant.id, &g.group_id)
        .await
        .expect("get")
        .is_some());
    let mut m = crate::bi::member(e.tenant.id, "Bi", now_ms());
    m.groups = vec!["gone-group".into()];
    let bi = s
        .insert_bi_members(e.tenant.id, std::slice::from_ref(&m), 10, &cli())
        .await;
    assert!(matches!(bi, Err(StoreError::Stale)), "{bi:?}");

    // Racing batch-creates and a delete of their group, through the directory.
    for round in 0..6 {
        let g = e
            .dir
            .create_group(&e.caller, &format!("race{round}"), None, None)
            .await
            .expect("group");
        let mut tasks = Vec::new();
        for i in 0..4 {
            let dir = e.dir.clone();
            let caller = e.caller.clone();
            let inv = inv.clone();
            let new = account(&format!("r{round}x{i}"), vec![g.group_id.clone()]);
            tasks.push(tokio::spawn(async move {
                dir.create_accounts(&caller, vec![Ok(new)], &inv)
                    .await
                    .map(|_| ())
            }));
        }
        let deleted = e.dir.delete_group(&e.caller, &g.group_id).await;
        for t in tasks {
            t.await.expect("join").expect("create accounts");
        }
        let exists = s
            .get_group(e.tenant.id, &g.group_id)
            .await
            .expect("get")
            .is_some();
        assert_eq!(exists, deleted.is_err(), "round {round}: {deleted:?}");
        if !exists {
            let members = e
                .dir
                .all_users(&e.caller)
                .await
                .expect("users")
                .into_iter()
                .filter(|u| u.profile.groups.contains(&g.group_id))
                .count();
            assert_eq!(members, 0, "round {round}: members of a deleted group");
        }
    }
}
