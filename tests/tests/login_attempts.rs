//! The login-defence counters on both stores: atomic counting, expiry, clearing by a success
//! and by an unlock.

use std::net::{IpAddr, Ipv4Addr};

use integration_tests::{Backend, on_both_backends};
use token_service::domain::{
    ClientId, FailureCount, Grant, GrantId, LoginKey, RefreshRecord, RefreshToken, ScopeSet,
    SourceAddress, TenantPath, Username,
};
use token_service::store::Stores;

const NOW: u64 = 1_800_000_000;
const UNTIL: u64 = NOW + 86_400;

fn key(source: u8) -> LoginKey {
    LoginKey::new(
        &TenantPath::parse("/acme").unwrap(),
        &Username::parse("alice").unwrap(),
        SourceAddress::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, source))),
    )
}

async fn stores(backend: Backend) -> Stores {
    backend.seeded().await
}

async fn twenty_concurrent_failures_count_twenty(backend: Backend) {
    let stores = stores(backend).await;
    let mut failures = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let store = stores.login_attempts.clone();
        failures.spawn(async move {
            store.record_login_failure(&key(1), &Default::default(), NOW, UNTIL).await
        });
    }
    while let Some(result) = failures.join_next().await {
        result.unwrap().unwrap();
    }
    let attempts = stores.login_attempts.login_attempts(&key(1), NOW).await.unwrap();
    let twenty = Some(FailureCount { failures: 20, last_failure_at: NOW });
    assert_eq!((attempts.by_source, attempts.by_username), (twenty, twenty));
}

async fn a_success_clears_its_source_and_the_username_but_not_other_sources(backend: Backend) {
    let stores = stores(backend).await;
    let store = &stores.login_attempts;
    for source in [1, 1, 2] {
        store.record_login_failure(&key(source), &Default::default(), NOW, UNTIL).await.unwrap();
    }
    let attempts = store.login_attempts(&key(2), NOW).await.unwrap();
    assert_eq!(attempts.by_username.unwrap().failures, 3, "across sources");
    assert_eq!(attempts.by_source.unwrap().failures, 1);
    store.clear_login_failures(&key(1)).await.unwrap();
    assert!(store.login_attempts(&key(1), NOW).await.unwrap().is_clear());
    let other = store.login_attempts(&key(2), NOW).await.unwrap();
    assert_eq!((other.by_source.map(|c| c.failures), other.by_username), (Some(1), None));
    let after =
        store.record_login_failure(&key(1), &Default::default(), NOW + 1, UNTIL).await.unwrap();
    assert_eq!(after.by_source.unwrap().failures, 1, "counting starts over");
    assert_eq!(after.by_username.unwrap().failures, 1);
}

async fn an_unlock_clears_every_source_and_counting_starts_over(backend: Backend) {
    let stores = stores(backend).await;
    let store = &stores.login_attempts;
    for source in [1, 2, 3, 3] {
        store.record_login_failure(&key(source), &Default::default(), NOW, UNTIL).await.unwrap();
    }
    let tenant = TenantPath::parse("/acme").unwrap();
    store.unlock_username(&tenant, &key(1).username_digest, NOW + 1, UNTIL + 1).await.unwrap();
    for source in [1, 2, 3] {
        assert!(store.login_attempts(&key(source), NOW + 1).await.unwrap().is_clear(), "{source}");
    }
    // A login reads the counters (and the unlock's stamp) before it records its failure.
    let fail = async |now| {
        let read = store.login_attempts(&key(3), now).await.unwrap();
        store.record_login_failure(&key(3), &read, now, UNTIL).await.unwrap()
    };
    let after = fail(NOW + 2).await;
    assert_eq!(after.by_source.unwrap().failures, 1);
    assert_eq!(after.by_username.unwrap().failures, 1);
    // Failures in the unlock's own second count on.
    store.unlock_username(&tenant, &key(1).username_digest, NOW + 3, UNTIL + 3).await.unwrap();
    for expected in 1..=3 {
        assert_eq!(fail(NOW + 3).await.by_source.unwrap().failures, expected);
    }
    assert!(store.login_attempts(&key(2), NOW + 2).await.unwrap().by_source.is_none());
}

async fn expired_counters_are_absent_and_start_over(backend: Backend) {
    let stores = stores(backend).await;
    let store = &stores.login_attempts;
    for _ in 0..3 {
        store.record_login_failure(&key(1), &Default::default(), NOW, NOW + 10).await.unwrap();
    }
    assert!(store.login_attempts(&key(1), NOW + 10).await.unwrap().is_clear());
    let after =
        store.record_login_failure(&key(1), &Default::default(), NOW + 11, NOW + 20).await.unwrap();
    assert_eq!(after.by_source.unwrap().failures, 1);
    assert_eq!(after.by_username.unwrap().failures, 1);
}

fn grant_of_alice() -> (Grant, RefreshRecord) {
    let grant = Grant {
        id: GrantId::generate(),
        client_id: ClientId::parse("app").unwrap(),
        tenant: TenantPath::parse("/acme").unwrap(),
        subject: "alice".into(),
        username: Some(Username::parse("alice").unwrap()),
        scope: ScopeSet::parse("read").unwrap(),
        created_at: NOW,
        expires_at: NOW + 3_600,
        revoked_at: None,
        last_refreshed_at: None,
        device_ids: Vec::new(),
    };
    let refresh = RefreshRecord {
        digest: RefreshToken::generate(&grant.id).digest(),
        grant_id: grant.id.clone(),
        client_id: grant.client_id.clone(),
        issued_at: NOW,
        expires_at: NOW + 600,
        used_at: None,
    };
    (grant, refresh)
}

/// A login's success is honoured only if nothing from its source was settled since it read the
/// counters: guesses sent at once all read the same revision, and a failure settled first
/// makes a right guess among them count for nothing.
async fn a_success_counts_only_if_nothing_from_its_source_settled_since_its_read(backend: Backend) {
    let stores = stores(backend).await;
    let (store, grants) = (&stores.login_attempts, &stores.grants);
    for _ in 0..4 {
        store.record_login_failure(&key(1), &Default::default(), NOW, UNTIL).await.unwrap();
    }
    let read = store.login_attempts(&key(1), NOW).await.unwrap();
    let start = async |source: u8, read| {
        let (grant, refresh) = grant_of_alice();
        grants.start_grant(&grant, &refresh, &[], Some((&key(source), read)), None).await.unwrap()
    };
    // Another guess from the source settled first: this one's result is not honoured.
    store.record_login_failure(&key(1), &Default::default(), NOW, UNTIL).await.unwrap();
    assert!(!start(1, &read).await);
    // Two successes from one read (two tabs): both hold, and the counters are cleared.
    let read = store.login_attempts(&key(1), NOW).await.unwrap();
    assert!(start(1, &read).await);
    assert!(start(1, &read).await);
    assert!(store.login_attempts(&key(1), NOW).await.unwrap().is_clear());
    // With nothing counted there is nothing to race: parallel tabs all sign in.
    let clean = store.login_attempts(&key(2), NOW).await.unwrap();
    assert!(start(2, &clean).await && start(2, &clean).await);
    // Another source's failures never stand in the way.
    let read = store.login_attempts(&key(1), NOW).await.unwrap();
    store.record_login_failure(&key(3), &Default::default(), NOW, UNTIL).await.unwrap();
    assert!(start(1, &read).await);
}

on_both_backends!(
    a_success_counts_only_if_nothing_from_its_source_settled_since_its_read,
    twenty_concurrent_failures_count_twenty,
    a_success_clears_its_source_and_the_username_but_not_other_sources,
    an_unlock_clears_every_source_and_counting_starts_over,
    expired_counters_are_absent_and_start_over,
);
