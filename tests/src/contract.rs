//! The store contract: one suite every store implementation must pass. Each check takes a fresh
//! store, so implementations that share a backend (a DynamoDB table) stay independent.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use token_service::domain::{
    AuthMethod, Client, ClientId, ClientJwks, ClientSecret, Credentials, DeviceId, Grant, GrantId,
    GrantType, MAX_DEVICE_IDS, PreviousSecret, RefreshRecord, RefreshToken, ReplayKey, ScopeSet,
    Subject, TenantPath, TokenId, User, UserId, Username,
};
use token_service::store::dynamodb::{DynamoStore, cutoff_key};
use token_service::store::memory::MemoryStore;
use token_service::store::{
    ClientPosition, ClientStore, CutoffCopy, CutoffGuard, GrantStore, IssuanceFilter, IssuanceLog,
    IssuedToken, Page, PageRequest, ReplayStore, RevocationRecord, RevocationStore, Rotation,
    SubjectId, TenantDeletion, TenantStore, TokenKind, TokenRef, UserPosition, UserStore, layer,
};

#[async_trait::async_trait]
pub trait Store:
    TenantStore + ClientStore + UserStore + GrantStore + IssuanceLog + RevocationStore + ReplayStore
{
    /// Stores one copy of a cutoff alone, as only a function from before copies (or a lost race)
    /// leaves it: how a check puts one copy out of step with the others.
    async fn plant_cutoff_copy(&self, layer: &str, copy: CutoffCopy, not_before: u64, ttl: u64);
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn plant_cutoff_copy(&self, layer: &str, copy: CutoffCopy, not_before: u64, ttl: u64) {
        MemoryStore::plant_cutoff_copy(self, layer, copy, not_before, ttl).unwrap();
    }
}

#[async_trait::async_trait]
impl Store for DynamoStore {
    async fn plant_cutoff_copy(&self, layer: &str, copy: CutoffCopy, not_before: u64, ttl: u64) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let mut item = cutoff_key(layer, copy);
        item.insert("not_before".to_owned(), AttributeValue::N(not_before.to_string()));
        item.insert("ttl".to_owned(), AttributeValue::N(ttl.to_string()));
        let put = self.sdk_client().put_item().table_name(self.table_name()).set_item(Some(item));
        put.send().await.unwrap();
    }
}

fn tenant(path: &str) -> TenantPath {
    TenantPath::parse(path).unwrap()
}

fn client(id: &str) -> Client {
    Client {
        id: ClientId::parse(id).unwrap(),
        credentials: token_service::domain::Credentials::secret(ClientSecret::generate().digest()),
        tenant: tenant("/acme"),
        grants: BTreeSet::from([GrantType::ClientCredentials]),
        scopes: ScopeSet::parse("read write").unwrap(),
        max_access_token_lifetime: 600,
        refresh_idle_lifetime: 3600,
        refresh_absolute_lifetime: 86400,
        refresh_reuse_interval: 0,
        dpop_bound_access_tokens: false,
        enabled: true,
        version: 0,
    }
}

fn issued(
    tenant_path: &str,
    client_id: &str,
    subject: &str,
    issued_at: u64,
    expires_at: u64,
) -> IssuedToken {
    IssuedToken {
        id: TokenId::generate(),
        kind: TokenKind::Access,
        tenant: tenant(tenant_path),
        client_id: ClientId::parse(client_id).unwrap(),
        subject: subject.to_owned(),
        grant: Some(GrantId::generate()),
        issued_at,
        expires_at,
    }
}

pub async fn clients_round_trip(store: Arc<dyn Store>) {
    let stored = client("contract-client");
    store.put_client(&stored).await.unwrap();
    assert_eq!(store.client(&stored.id).await.unwrap(), Some(stored.clone()));

    let mut replaced = stored.clone();
    replaced.max_access_token_lifetime = 60;
    store.put_client(&replaced).await.unwrap();
    let expected = Client { version: 1, ..replaced };
    assert_eq!(store.client(&stored.id).await.unwrap(), Some(expected), "the next version");
}

pub async fn creating_a_client_never_replaces_one(store: Arc<dyn Store>) {
    let first = client("created-client");
    assert!(store.create_client(&first).await.unwrap());
    let mut second = client("created-client");
    second.max_access_token_lifetime = 60;
    assert!(!store.create_client(&second).await.unwrap(), "the id is taken");
    assert_eq!(store.client(&first.id).await.unwrap(), Some(first), "the first one stands");
}

pub async fn concurrent_client_creations_have_exactly_one_winner(store: Arc<dyn Store>) {
    let attempts = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.create_client(&client("contested")).await.unwrap() })
    });
    let mut created = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        created += usize::from(attempt.await.unwrap());
    }
    assert_eq!(created, 1);
}

pub async fn unknown_client_is_absent(store: Arc<dyn Store>) {
    assert_eq!(store.client(&ClientId::parse("nobody").unwrap()).await.unwrap(), None);
}

fn filter(path: &str, client: Option<&str>, subject: Option<SubjectId>) -> IssuanceFilter {
    IssuanceFilter {
        tenant: tenant(path),
        client_id: client.map(|c| ClientId::parse(c).unwrap()),
        subject,
    }
}

/// The stable id of user `name` of `tenant_path`, as the seed derives it.
fn user_id(tenant_path: &str, name: &str) -> UserId {
    UserId::derived(tenant_path, name)
}

fn user_subject(tenant_path: &str, name: &str) -> SubjectId {
    SubjectId::User { tenant: tenant(tenant_path), id: user_id(tenant_path, name) }
}

async fn live_count(store: &Arc<dyn Store>, filter: &IssuanceFilter, now: u64) -> usize {
    store.live_issued(filter, now).await.unwrap().len()
}

pub async fn issuance_log_covers_the_tenant_subtree_and_narrows(store: Arc<dyn Store>) {
    let alice = user_id("/acme", "alice").to_string();
    let bob = user_id("/acme/sales/eu", "bob").to_string();
    for token in [
        issued("/acme", "a", &alice, 100, 1_000),
        issued("/acme/sales", "a", "bob", 100, 1_000),
        issued("/acme/sales/eu", "b", &bob, 150, 1_000),
        issued("/acmeco", "a", &alice, 100, 1_000),
        issued("/acme", "a", &alice, 200, 1_000),
    ] {
        store.record_issued(&token).await.unwrap();
    }
    assert_eq!(live_count(&store, &filter("/acme", None, None), 500).await, 4, "not /acmeco");
    assert_eq!(live_count(&store, &filter("/acme/sales", None, None), 500).await, 2);
    assert_eq!(live_count(&store, &filter("/acme", Some("b"), None), 500).await, 1);
    let by_alice = filter("/acme", None, Some(user_subject("/acme", "alice")));
    assert_eq!(live_count(&store, &by_alice, 500).await, 2);
    let entries = store.live_issued(&filter("/acme/sales/eu", None, None), 500).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].subject.as_str(), entries[0].issued_at),
        (bob.as_str(), 150),
        "entries read back whole"
    );
}

pub async fn issuance_log_pages_through_many_entries(store: Arc<dyn Store>) {
    // Many more entries than a test page holds (see `dynamo::TEST_PAGE_SIZE`).
    for i in 0..120 {
        store.record_issued(&issued("/paged", "c", &format!("s{i}"), 100, 1_000)).await.unwrap();
    }
    assert_eq!(live_count(&store, &filter("/paged", None, None), 500).await, 120);
}

pub async fn expired_and_spent_log_entries_are_not_live(store: Arc<dyn Store>) {
    let expiring = issued("/expiry", "a", "s", 100, 200);
    let revoked = issued("/expiry", "a", "s", 100, 400);
    store.record_issued(&expiring).await.unwrap();
    store.record_issued(&revoked).await.unwrap();
    store.record_issued(&issued("/expiry", "a", "s", 100, 400)).await.unwrap();
    let all = filter("/expiry", None, None);
    assert_eq!(live_count(&store, &all, 199).await, 3);
    assert_eq!(live_count(&store, &all, 200).await, 2, "expired at 200, still stored");
    store.revoke_token(&revoked.id, 400, None, 250).await.unwrap();
    assert_eq!(live_count(&store, &all, 250).await, 1, "revoked on its own");
}

fn user(tenant_path: &str, name: &str, hash: &str) -> User {
    User {
        id: UserId::generate(),
        tenant: tenant(tenant_path),
        username: Username::parse(name).unwrap(),
        password_hash: hash.to_owned(),
        enabled: true,
        created_at: 0,
        version: 0,
    }
}

pub async fn users_are_unique_per_tenant(store: Arc<dyn Store>) {
    let alice = user("/acme", "alice", "h1");
    assert!(store.create_user(&alice).await.unwrap());
    assert!(!store.create_user(&user("/acme", "alice", "h2")).await.unwrap(), "taken in /acme");
    assert!(store.create_user(&user("/acme/sales", "alice", "h3")).await.unwrap());
    let found = store.user(&alice.tenant, &alice.username).await.unwrap();
    assert_eq!(found, Some(alice), "the first writer's record survives");
    let nobody = Username::parse("nobody").unwrap();
    assert_eq!(store.user(&tenant("/acme"), &nobody).await.unwrap(), None);
}

pub async fn password_rehash_never_overwrites_a_concurrent_change(store: Arc<dyn Store>) {
    let alice = user("/acme", "alice", "old");
    store.create_user(&alice).await.unwrap();
    assert!(store.replace_password_hash(&alice, "rehashed").await.unwrap());
    // `alice` still carries the old hash: a second, stale replacement must not apply.
    assert!(!store.replace_password_hash(&alice, "stale").await.unwrap());
    let stored = store.user(&alice.tenant, &alice.username).await.unwrap().unwrap();
    assert_eq!(stored.password_hash, "rehashed");
}

fn grant(now: u64, lifetime: u64) -> Grant {
    Grant {
        id: GrantId::generate(),
        client_id: ClientId::parse("app").unwrap(),
        tenant: tenant("/acme"),
        subject: UserId::generate().to_string(),
        username: Some(Username::parse("alice").unwrap()),
        scope: ScopeSet::parse("read write").unwrap(),
        created_at: now,
        expires_at: now + lifetime,
        revoked_at: None,
        last_refreshed_at: None,
        device_ids: Vec::new(),
    }
}

fn refresh_record(grant: &Grant, now: u64, idle: u64) -> RefreshRecord {
    RefreshRecord {
        digest: RefreshToken::generate(&grant.id).digest(),
        grant_id: grant.id.clone(),
        client_id: grant.client_id.clone(),
        issued_at: now,
        expires_at: (now + idle).min(grant.expires_at),
        used_at: None,
    }
}

pub async fn grants_and_refresh_tokens_round_trip(store: Arc<dyn Store>) {
    let grant = grant(1_000, 10_000);
    let first = refresh_record(&grant, 1_000, 500);
    store.start_grant(&grant, &first, &[], None, None).await.unwrap();
    let (record, stored_grant) =
        store.refresh_token(&grant.id, &first.digest, 1_100).await.unwrap().unwrap();
    assert_eq!((record, stored_grant), (first.clone(), grant.clone()));
    assert_eq!(store.grant(&grant.id, 1_100).await.unwrap(), Some(grant.clone()));
    let unknown = RefreshToken::generate(&grant.id).digest();
    assert_eq!(store.refresh_token(&grant.id, &unknown, 1_100).await.unwrap(), None);
    let other_grant = GrantId::generate();
    assert_eq!(
        store.refresh_token(&other_grant, &first.digest, 1_100).await.unwrap(),
        None,
        "a token is found only under the grant it belongs to"
    );
}

pub async fn expired_refresh_tokens_and_grants_are_absent(store: Arc<dyn Store>) {
    let grant = grant(1_000, 2_000);
    let first = refresh_record(&grant, 1_000, 500);
    store.start_grant(&grant, &first, &[], None, None).await.unwrap();
    assert!(store.refresh_token(&grant.id, &first.digest, 1_499).await.unwrap().is_some());
    assert_eq!(
        store.refresh_token(&grant.id, &first.digest, 1_500).await.unwrap(),
        None,
        "idle expiry"
    );
    assert!(store.grant(&grant.id, 2_999).await.unwrap().is_some());
    assert_eq!(store.grant(&grant.id, 3_000).await.unwrap(), None, "absolute expiry");
}

pub async fn rotation_succeeds_once_and_remembers_the_used_token(store: Arc<dyn Store>) {
    let grant = grant(1_000, 10_000);
    let first = refresh_record(&grant, 1_000, 500);
    store.start_grant(&grant, &first, &[], None, None).await.unwrap();
    let second = refresh_record(&grant, 1_200, 500);
    let rotated = store
        .rotate_refresh_token(&first, &second, &[], &no_cutoffs(&grant), None, 1_200)
        .await
        .unwrap();
    assert_eq!(rotated, Rotation::Rotated);
    let third = refresh_record(&grant, 1_300, 500);
    let again = store
        .rotate_refresh_token(&first, &third, &[], &no_cutoffs(&grant), None, 1_300)
        .await
        .unwrap();
    assert_eq!(again, Rotation::AlreadyUsed);
    let (used, _) = store.refresh_token(&grant.id, &first.digest, 1_300).await.unwrap().unwrap();
    assert_eq!(used.used_at, Some(1_200), "kept, marked used, for reuse detection");
    assert!(store.refresh_token(&grant.id, &second.digest, 1_300).await.unwrap().is_some());
    assert_eq!(
        store.refresh_token(&grant.id, &third.digest, 1_300).await.unwrap(),
        None,
        "loser stored nothing"
    );
}

pub async fn concurrent_rotations_have_exactly_one_winner(store: Arc<dyn Store>) {
    let grant = grant(1_000, 10_000);
    let first = refresh_record(&grant, 1_000, 500);
    store.start_grant(&grant, &first, &[], None, None).await.unwrap();
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let (store, first, next) =
                (store.clone(), first.clone(), refresh_record(&grant, 1_100, 500));
            let guard = no_cutoffs(&grant);
            tokio::spawn(async move {
                store.rotate_refresh_token(&first, &next, &[], &guard, None, 1_100).await
            })
        })
        .collect();
    let mut winners = 0;
    for attempt in attempts {
        if attempt.await.unwrap().unwrap() == Rotation::Rotated {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

pub async fn revoking_a_grant_keeps_the_first_revocation_time(store: Arc<dyn Store>) {
    let grant = grant(1_000, 10_000);
    store.start_grant(&grant, &refresh_record(&grant, 1_000, 500), &[], None, None).await.unwrap();
    store.revoke_grant(&grant.id, 1_100).await.unwrap();
    store.revoke_grant(&grant.id, 1_200).await.unwrap();
    let stored = store.grant(&grant.id, 1_300).await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, Some(1_100));
    store.revoke_grant(&GrantId::generate(), 1_300).await.unwrap();
}

pub async fn grant_tokens_are_logged_with_the_grant(store: Arc<dyn Store>) {
    let grant = grant(1_000, 10_000);
    let logged = [
        issued("/grantlog", "app", "s", 1_000, 2_000),
        issued("/grantlog", "app", "s", 1_000, 1_500),
    ];
    store
        .start_grant(&grant, &refresh_record(&grant, 1_000, 500), &logged, None, None)
        .await
        .unwrap();
    assert_eq!(live_count(&store, &filter("/grantlog", None, None), 1_100).await, 2);
}

fn no_cutoffs(grant: &Grant) -> CutoffGuard {
    CutoffGuard {
        layers: layer::applying_to(&grant.tenant, &grant.client_id, grant.subject_ref()),
        grant_created_at: grant.created_at,
    }
}

pub async fn rotation_marks_the_used_refresh_token_spent_in_the_log(store: Arc<dyn Store>) {
    let grant = grant(1_000, 10_000);
    let first = refresh_record(&grant, 1_000, 500);
    let mut logged = issued("/acme", "app", &grant.subject, 1_000, 1_500);
    logged.id = first.digest.token_id();
    logged.kind = TokenKind::Refresh;
    store.start_grant(&grant, &first, &[logged], None, None).await.unwrap();
    let acme = filter("/acme", None, None);
    assert_eq!(live_count(&store, &acme, 1_100).await, 1);
    let next = refresh_record(&grant, 1_100, 500);
    store.rotate_refresh_token(&first, &next, &[], &no_cutoffs(&grant), None, 1_100).await.unwrap();
    assert_eq!(live_count(&store, &acme, 1_100).await, 0, "a used refresh token is no longer live");
}

pub async fn a_cutoff_over_the_grant_stops_rotation(store: Arc<dyn Store>) {
    let grant = grant(1_000, 10_000);
    let first = refresh_record(&grant, 1_000, 5_000);
    store.start_grant(&grant, &first, &[], None, None).await.unwrap();
    let guard = no_cutoffs(&grant);
    // A cutoff at the grant's start does not cover it (only grants begun before it), nor does
    // an expired one; a later live one does, on any layer.
    store.raise_cutoff(&layer::tenant("/acme"), 1_000, 9_000, 1_100).await.unwrap();
    store.raise_cutoff(&layer::client(&grant.client_id), 1_050, 1_150, 1_100).await.unwrap();
    let second = refresh_record(&grant, 1_200, 5_000);
    assert_eq!(
        store.rotate_refresh_token(&first, &second, &[], &guard, None, 1_200).await.unwrap(),
        Rotation::Rotated
    );
    store.raise_cutoff(&layer::subject(grant.subject_ref()), 1_300, 9_000, 1_300).await.unwrap();
    let third = refresh_record(&grant, 1_400, 5_000);
    assert_eq!(
        store.rotate_refresh_token(&second, &third, &[], &guard, None, 1_400).await.unwrap(),
        Rotation::CutOff
    );
    let (record, _) = store.refresh_token(&grant.id, &second.digest, 1_400).await.unwrap().unwrap();
    assert_eq!(record.used_at, None, "a refused rotation changes nothing");
}

pub async fn cutoffs_are_raised_never_lowered(store: Arc<dyn Store>) {
    let acme = layer::tenant("/acme");
    assert_eq!(store.raise_cutoff(&acme, 500, 5_000, 100).await.unwrap(), None);
    assert_eq!(
        store.raise_cutoff(&acme, 400, 5_000, 100).await.unwrap(),
        Some(500),
        "earlier: kept"
    );
    assert_eq!(store.raise_cutoff(&acme, 600, 6_000, 100).await.unwrap(), Some(500));
    let layers = [acme.clone(), layer::tenant("/other")];
    assert_eq!(store.cutoffs(&layers, 100).await.unwrap(), HashMap::from([(acme.clone(), 600)]));
    assert_eq!(
        store.cutoffs(&layers, 6_000).await.unwrap(),
        HashMap::new(),
        "expired cutoffs are absent"
    );
    assert_eq!(
        store.raise_cutoff(&acme, 300, 9_000, 6_000).await.unwrap(),
        None,
        "an expired cutoff is replaced"
    );
    assert_eq!(store.cutoffs(&layers, 6_000).await.unwrap(), HashMap::from([(acme, 300)]));
}

/// Every copy of a cutoff answers a verification alike: the state read through each copy
/// carries every cutoff raised, and each raise after it.
pub async fn a_cutoff_written_is_seen_through_every_copy(store: Arc<dyn Store>) {
    let (id, client) = (TokenId::generate(), ClientId::parse("copied").unwrap());
    let path = tenant("/acme/sales");
    let subject = Subject::Client(&client);
    let token = TokenRef { id: &id, grant: None, tenant: &path, client_id: &client, subject };
    let through = async |copy| store.revocation_state_through(&token, copy, 100).await.unwrap();
    for copy in CutoffCopy::all() {
        assert_eq!(through(copy).await.not_before, None, "copy {copy:?}");
    }
    store.raise_cutoff(&layer::tenant("/acme"), 300, 9_000, 100).await.unwrap();
    for copy in CutoffCopy::all() {
        assert_eq!(through(copy).await.not_before, Some(300), "copy {copy:?}");
    }
    store.raise_cutoff(&layer::client(&client), 400, 9_000, 100).await.unwrap();
    for copy in CutoffCopy::all() {
        assert_eq!(through(copy).await.not_before, Some(400), "copy {copy:?}");
    }
    assert_eq!(
        store.raise_cutoff(&layer::client(&client), 500, 9_000, 100).await.unwrap(),
        Some(400)
    );
    for copy in CutoffCopy::all() {
        assert_eq!(through(copy).await.not_before, Some(500), "copy {copy:?}");
    }
    // The production read picks a copy at random; whichever it picks holds the cutoff.
    for _ in 0..4 * token_service::store::CUTOFF_COPIES {
        assert_eq!(store.revocation_state(&token, 100).await.unwrap().not_before, Some(500));
    }
}

/// A raise leaves every copy at the latest cutoff any copy held or the new one, whichever is
/// later, lowering none, and reports the latest that stood before: a copy left ahead of the
/// others (by a lost race) or alone (by a function from before copies, which wrote copy 0 only)
/// is repaired by the next raise of its layer, even one that changes nothing else.
pub async fn a_raise_brings_every_copy_to_the_latest_cutoff_and_lowers_none(store: Arc<dyn Store>) {
    let (id, client) = (TokenId::generate(), ClientId::parse("partial").unwrap());
    let path = tenant("/acme");
    let subject = Subject::Client(&client);
    let token = TokenRef { id: &id, grant: None, tenant: &path, client_id: &client, subject };
    let every_copy = async |expected: u64, why: &str| {
        for copy in CutoffCopy::all() {
            let state = store.revocation_state_through(&token, copy, 100).await.unwrap();
            assert_eq!(state.not_before, Some(expected), "copy {copy:?}: {why}");
        }
    };
    let cut = layer::client(&client);
    let ahead = CutoffCopy::new(token_service::store::CUTOFF_COPIES - 1).unwrap();
    store.raise_cutoff(&cut, 200, 9_000, 100).await.unwrap();
    store.plant_cutoff_copy(&cut, ahead, 900, 9_000).await;

    assert_eq!(store.raise_cutoff(&cut, 500, 9_000, 100).await.unwrap(), Some(900), "it stands");
    every_copy(900, "the later cutoff, everywhere").await;
    assert_eq!(store.cutoffs(std::slice::from_ref(&cut), 100).await.unwrap()[&cut], 900);
    assert_eq!(store.raise_cutoff(&cut, 1_000, 9_000, 100).await.unwrap(), Some(900));
    every_copy(1_000, "raised").await;

    // What a function from before copies leaves: copy 0 alone.
    let user = layer::subject(Subject::Client(&client));
    assert_ne!(user, cut);
    store.plant_cutoff_copy(&user, CutoffCopy::FIRST, 1_500, 9_000).await;
    assert_eq!(store.raise_cutoff(&user, 1_200, 9_000, 100).await.unwrap(), Some(1_500));
    for copy in CutoffCopy::all() {
        let state = store.revocation_state_through(&token, copy, 100).await.unwrap();
        assert_eq!(state.not_before, Some(1_500), "copy {copy:?} repaired");
    }
}

pub async fn revocation_state_takes_the_latest_cutoff_of_every_layer(store: Arc<dyn Store>) {
    let (id, client) = (TokenId::generate(), ClientId::parse("app").unwrap());
    let path = tenant("/acme/sales/eu");
    let read = async |store: &Arc<dyn Store>| {
        let subject = Subject::Client(&client);
        let token = TokenRef { id: &id, grant: None, tenant: &path, client_id: &client, subject };
        store.revocation_state(&token, 100).await.unwrap().not_before
    };
    assert_eq!(read(&store).await, None);
    store.raise_cutoff(&layer::tenant("/acme/sales"), 300, 9_000, 100).await.unwrap();
    assert_eq!(read(&store).await, Some(300), "an ancestor tenant applies");
    store.raise_cutoff(&layer::client(&client), 200, 9_000, 100).await.unwrap();
    store.raise_cutoff(&layer::tenant("/acme/salesforce"), 900, 9_000, 100).await.unwrap();
    store.raise_cutoff(&layer::tenant("/acme/sales/eu/x"), 900, 9_000, 100).await.unwrap();
    assert_eq!(read(&store).await, Some(300), "the latest wins; unrelated tenants do not apply");
    let own_tokens = layer::client_subject(&client, Subject::Client(&client));
    store.raise_cutoff(&own_tokens, 400, 9_000, 100).await.unwrap();
    assert_eq!(read(&store).await, Some(400));
    store.raise_cutoff(&layer::tenant("/acme"), 500, 9_000, 100).await.unwrap();
    assert_eq!(read(&store).await, Some(500));
}

/// One id, three subjects: a client, a user of `/victim` and a user of `/evil`. A cutoff on any
/// one of their subject layers (alone or through a client) reaches that subject's tokens only.
pub async fn subject_cutoffs_never_cross_kinds_or_tenants(store: Arc<dyn Store>) {
    let shared = UserId::generate().to_string();
    let client = ClientId::parse(&shared).unwrap();
    let app = ClientId::parse("app").unwrap();
    let (victim, evil) = (tenant("/victim"), tenant("/evil"));
    let subjects = [
        Subject::Client(&client),
        Subject::User { tenant: &victim, id: &shared },
        Subject::User { tenant: &evil, id: &shared },
    ];
    let ids: Vec<TokenId> = subjects.iter().map(|_| TokenId::generate()).collect();
    let grant = GrantId::generate();
    let token_of = |i: usize| {
        let (tenant, client_id, grant) = match subjects[i] {
            Subject::Client(id) => (&victim, id, None),
            Subject::User { tenant, .. } => (tenant, &app, Some(&grant)),
        };
        TokenRef { id: &ids[i], grant, tenant, client_id, subject: subjects[i] }
    };
    for (cut, subject) in subjects.iter().enumerate() {
        let now = 100 + cut as u64 * 100;
        let through_app = layer::client_subject(&app, *subject);
        let through_itself = layer::client_subject(&client, *subject);
        for layer in [layer::subject(*subject), through_app, through_itself] {
            store.raise_cutoff(&layer, now, 9_000, now).await.unwrap();
        }
        for other in 0..subjects.len() {
            let not_before =
                store.revocation_state(&token_of(other), now).await.unwrap().not_before;
            if other == cut {
                assert_eq!(not_before, Some(now), "{subject:?} is cut off");
            } else {
                assert!(not_before.is_none_or(|nb| nb < now), "{subject:?} reached {other}");
            }
        }
    }
}

pub async fn grants_are_read_in_bulk(store: Arc<dyn Store>) {
    let grants: Vec<Grant> = (0..130).map(|_| grant(1_000, 10_000)).collect();
    for grant in &grants {
        store
            .start_grant(grant, &refresh_record(grant, 1_000, 500), &[], None, None)
            .await
            .unwrap();
    }
    let mut ids: Vec<GrantId> = grants.iter().map(|g| g.id.clone()).collect();
    ids.push(GrantId::generate());
    let found = store.grants(&ids, 1_100).await.unwrap();
    assert_eq!(found.len(), 130, "more than one BatchGetItem's worth, unknown ids skipped");
    assert_eq!(found[&grants[7].id], grants[7]);
    assert!(store.grants(&ids, 11_000).await.unwrap().is_empty(), "expired grants are absent");
}

pub async fn users_are_found_by_id_for_their_tenant(store: Arc<dyn Store>) {
    let alice = user("/acme/sales", "alice", "h");
    store.create_user(&alice).await.unwrap();
    assert_eq!(store.tenant_of_user(&alice.id).await.unwrap(), Some(alice.tenant.clone()));
    assert_eq!(store.tenant_of_user(&UserId::generate()).await.unwrap(), None);
}

/// A user id names one user: no other user, of another tenant or the same, can be created or
/// put with it (the `sub` of its tokens, and what batch revocation by subject resolves), while
/// the user itself can be put again.
pub async fn a_user_id_is_never_shared_across_tenants(store: Arc<dyn Store>) {
    let victor = user("/victim", "victor", "h");
    store.create_user(&victor).await.unwrap();
    let mut namesake = user("/evil", "mallory", "h");
    namesake.id = victor.id.clone();
    assert!(!store.create_user(&namesake).await.unwrap(), "created with a taken id");
    assert!(store.put_user(&namesake).await.is_err(), "put with another tenant's id");
    let mut neighbour = user("/victim", "vera", "h");
    neighbour.id = victor.id.clone();
    assert!(store.put_user(&neighbour).await.is_err(), "put with a same-tenant user's id");
    assert_eq!(store.tenant_of_user(&victor.id).await.unwrap(), Some(victor.tenant.clone()));
    assert_eq!(store.user(&namesake.tenant, &namesake.username).await.unwrap(), None);
    assert_eq!(store.user(&neighbour.tenant, &neighbour.username).await.unwrap(), None);
    let mut rehashed = victor.clone();
    rehashed.password_hash = "new".into();
    store.put_user(&rehashed).await.unwrap();
    assert_eq!(store.user(&victor.tenant, &victor.username).await.unwrap(), Some(rehashed));
}

pub async fn putting_a_user_replaces_it_and_moves_its_id(store: Arc<dyn Store>) {
    let old = user("/acme", "alice", "old-hash");
    store.create_user(&old).await.unwrap();
    let new = user("/acme", "alice", "new-hash");
    store.put_user(&new).await.unwrap();
    store.put_user(&new).await.unwrap();
    assert_eq!(store.user(&new.tenant, &new.username).await.unwrap(), Some(new.clone()));
    assert_eq!(store.tenant_of_user(&new.id).await.unwrap(), Some(new.tenant.clone()));
    assert_eq!(store.tenant_of_user(&old.id).await.unwrap(), None, "the old id is gone");

    let fresh = user("/acme/sales", "bob", "h");
    store.put_user(&fresh).await.unwrap();
    assert_eq!(store.user(&fresh.tenant, &fresh.username).await.unwrap(), Some(fresh));
}

fn token_ref<'a>(
    id: &'a TokenId,
    grant: Option<&'a GrantId>,
    client: &'a ClientId,
    tenant: &'a TenantPath,
) -> TokenRef<'a> {
    TokenRef { id, grant, tenant, client_id: client, subject: Subject::Client(client) }
}

pub async fn revoked_tokens_stay_revoked_until_they_would_have_expired(store: Arc<dyn Store>) {
    let (id, other) = (TokenId::generate(), TokenId::generate());
    let (client, tenant) = (ClientId::parse("c").unwrap(), tenant("/acme/x"));
    store.revoke_token(&id, 2_000, Some("device-1"), 1_000).await.unwrap();
    store.revoke_token(&id, 2_000, None, 1_100).await.unwrap();
    let first = RevocationRecord { expires_at: 2_000, device_id: Some("device-1".into()) };
    assert_eq!(
        store.revocation_record(&id, 1_500).await.unwrap(),
        Some(first),
        "the first revocation's record stands"
    );
    assert_eq!(store.revocation_record(&other, 1_500).await.unwrap(), None);
    assert_eq!(store.revocation_record(&id, 2_000).await.unwrap(), None, "expired is absent");
    let state =
        store.revocation_state(&token_ref(&id, None, &client, &tenant), 1_500).await.unwrap();
    assert!(state.token_revoked);
    assert_eq!((state.grant, state.not_before), (None, None));
    assert!(
        !store
            .revocation_state(&token_ref(&other, None, &client, &tenant), 1_500)
            .await
            .unwrap()
            .token_revoked
    );
    let expired =
        store.revocation_state(&token_ref(&id, None, &client, &tenant), 2_000).await.unwrap();
    assert!(!expired.token_revoked, "expired record, still stored, reads as absent");
}

pub async fn revocation_state_carries_the_grant(store: Arc<dyn Store>) {
    let grant = grant(1_000, 10_000);
    store.start_grant(&grant, &refresh_record(&grant, 1_000, 500), &[], None, None).await.unwrap();
    let id = TokenId::generate();
    let state = store
        .revocation_state(&token_ref(&id, Some(&grant.id), &grant.client_id, &grant.tenant), 1_100)
        .await
        .unwrap();
    assert_eq!(state.grant, Some(grant.clone()));
    store.revoke_grant(&grant.id, 1_200).await.unwrap();
    let state = store
        .revocation_state(&token_ref(&id, Some(&grant.id), &grant.client_id, &grant.tenant), 1_300)
        .await
        .unwrap();
    assert_eq!(state.grant.and_then(|g| g.revoked_at), Some(1_200));
    let unknown = GrantId::generate();
    let state = store
        .revocation_state(&token_ref(&id, Some(&unknown), &grant.client_id, &grant.tenant), 1_300)
        .await
        .unwrap();
    assert_eq!(state.grant, None);
    let gone = store
        .revocation_state(&token_ref(&id, Some(&grant.id), &grant.client_id, &grant.tenant), 11_000)
        .await
        .unwrap();
    assert_eq!(gone.grant, None, "an expired grant reads as absent");
}

/// DynamoDB's TTL deletes only eventually, so every read that decides validity filters on the
/// item's expiry itself. Each item type is written, then read at its last live second and at
/// its expiry, while still stored (moto, like DynamoDB within its deletion delay, keeps it).
pub async fn every_read_treats_expired_items_as_absent(store: Arc<dyn Store>) {
    // Grant (absolute end 3_000) and refresh record (idle end 1_500).
    let short = grant(1_000, 2_000);
    let record = refresh_record(&short, 1_000, 500);
    store.start_grant(&short, &record, &[], None, None).await.unwrap();
    assert!(store.refresh_token(&short.id, &record.digest, 1_499).await.unwrap().is_some());
    assert_eq!(store.refresh_token(&short.id, &record.digest, 1_500).await.unwrap(), None);
    assert!(store.grant(&short.id, 2_999).await.unwrap().is_some());
    assert_eq!(store.grant(&short.id, 3_000).await.unwrap(), None);
    assert_eq!(store.grants(std::slice::from_ref(&short.id), 2_999).await.unwrap().len(), 1);
    assert!(store.grants(std::slice::from_ref(&short.id), 3_000).await.unwrap().is_empty());
    // Rotating an expired refresh token stores nothing.
    let next = refresh_record(&short, 1_500, 500);
    assert_ne!(
        store
            .rotate_refresh_token(&record, &next, &[], &no_cutoffs(&short), None, 1_500)
            .await
            .unwrap(),
        Rotation::Rotated,
        "an expired refresh token does not rotate"
    );
    assert_eq!(store.refresh_token(&short.id, &next.digest, 1_500).await.unwrap(), None);

    // Revocation record (until 2_000), the grant, and a cutoff (until 2_500) in revocation_state.
    let (id, client) = (TokenId::generate(), short.client_id.clone());
    store.revoke_token(&id, 2_000, None, 1_000).await.unwrap();
    let cutoff_layer = layer::client(&client);
    store.raise_cutoff(&cutoff_layer, 1_200, 2_500, 1_000).await.unwrap();
    let token = TokenRef {
        id: &id,
        grant: Some(&short.id),
        tenant: &short.tenant,
        client_id: &client,
        subject: short.subject_ref(),
    };
    let live = store.revocation_state(&token, 1_999).await.unwrap();
    assert!(live.token_revoked && live.grant.is_some() && live.not_before == Some(1_200));
    let state = store.revocation_state(&token, 2_000).await.unwrap();
    assert!(!state.token_revoked, "expired revocation record");
    assert_eq!(state.not_before, Some(1_200));
    let state = store.revocation_state(&token, 2_500).await.unwrap();
    assert_eq!(state.not_before, None, "expired cutoff");
    let state = store.revocation_state(&token, 3_000).await.unwrap();
    assert_eq!(state.grant, None, "expired grant");
    assert_eq!(store.cutoffs(std::slice::from_ref(&cutoff_layer), 2_500).await.unwrap().len(), 0);

    // An expired cutoff no longer stops a rotation.
    let later = grant(1_000, 10_000);
    let first = refresh_record(&later, 1_000, 5_000);
    store.start_grant(&later, &first, &[], None, None).await.unwrap();
    store.raise_cutoff(&layer::subject(later.subject_ref()), 1_100, 2_600, 1_000).await.unwrap();
    let second = refresh_record(&later, 2_599, 5_000);
    assert_eq!(
        store
            .rotate_refresh_token(&first, &second, &[], &no_cutoffs(&later), None, 2_599)
            .await
            .unwrap(),
        Rotation::CutOff,
        "live at 2_599"
    );
    let second = refresh_record(&later, 2_600, 5_000);
    assert_eq!(
        store
            .rotate_refresh_token(&first, &second, &[], &no_cutoffs(&later), None, 2_600)
            .await
            .unwrap(),
        Rotation::Rotated,
        "expired at 2_600, still stored"
    );

    // Issuance log entries.
    let entry = issued("/ttl", "a", "s", 100, 200);
    store.record_issued(&entry).await.unwrap();
    assert_eq!(live_count(&store, &filter("/ttl", None, None), 199).await, 1);
    assert_eq!(live_count(&store, &filter("/ttl", None, None), 200).await, 0);
}

fn client_in(path: &str, id: &str) -> Client {
    Client { tenant: tenant(path), ..client(id) }
}

/// Every page of a list, following `next` from the start: the items, and the page sizes.
async fn every_page<T, P, F, Fut>(limit: usize, mut read: F) -> (Vec<T>, Vec<usize>)
where
    P: Clone,
    F: FnMut(PageRequest<'_, P>) -> Fut,
    Fut: std::future::Future<Output = Page<T, P>>,
{
    let (mut items, mut sizes, mut after) = (Vec::new(), Vec::new(), None::<P>);
    loop {
        let page = read(PageRequest { limit, after: after.as_ref() }).await;
        sizes.push(page.items.len());
        items.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return (items, sizes),
        }
    }
}

pub async fn tenants_are_created_listed_and_deleted_only_when_empty(store: Arc<dyn Store>) {
    assert!(store.create_tenant(&tenant("/acme")).await.unwrap());
    assert!(!store.create_tenant(&tenant("/acme")).await.unwrap(), "exists already");
    assert!(store.tenant_exists(&tenant("/acme")).await.unwrap());
    assert!(!store.tenant_exists(&tenant("/nope")).await.unwrap());
    assert_eq!(store.delete_tenant(&tenant("/nope")).await.unwrap(), TenantDeletion::Missing);
    for path in ["/acme/b", "/acme/a", "/acme/a/x", "/acmex", "/other"] {
        assert!(store.create_tenant(&tenant(path)).await.unwrap());
    }
    let listed =
        store.tenants(&tenant("/acme"), PageRequest { limit: 10, after: None }).await.unwrap();
    let expected = ["/acme", "/acme/a", "/acme/a/x", "/acme/b"].map(tenant).to_vec();
    assert_eq!(listed, Page { items: expected.clone(), next: None }, "the subtree, in order");
    let (paged, sizes) = every_page(3, |page: PageRequest<'_, TenantPath>| {
        let (store, limit, after) = (store.clone(), page.limit, page.after.cloned());
        async move {
            let page = PageRequest { limit, after: after.as_ref() };
            store.tenants(&tenant("/acme"), page).await.unwrap()
        }
    })
    .await;
    assert_eq!((paged, sizes), (expected, vec![3, 1]));

    // A child tenant, however deep, keeps its ancestors.
    assert_eq!(store.delete_tenant(&tenant("/acme")).await.unwrap(), TenantDeletion::NotEmpty);
    assert_eq!(store.delete_tenant(&tenant("/acme/a")).await.unwrap(), TenantDeletion::NotEmpty);
    for path in ["/acme/a/x", "/acme/a", "/acme/b", "/acme"] {
        assert_eq!(store.delete_tenant(&tenant(path)).await.unwrap(), TenantDeletion::Deleted);
    }
    assert_eq!(store.delete_tenant(&tenant("/acme")).await.unwrap(), TenantDeletion::Missing);
    assert!(!store.tenant_exists(&tenant("/acme")).await.unwrap());
    assert!(store.tenant_exists(&tenant("/acmex")).await.unwrap(), "not in /acme's subtree");

    // A tenant created below an existing one, before it is: counted all the same.
    assert!(store.create_tenant(&tenant("/late/child")).await.unwrap());
    assert!(store.create_tenant(&tenant("/late")).await.unwrap());
    assert_eq!(store.delete_tenant(&tenant("/late")).await.unwrap(), TenantDeletion::NotEmpty);
    assert_eq!(store.delete_tenant(&tenant("/late/child")).await.unwrap(), TenantDeletion::Deleted);
    assert_eq!(store.delete_tenant(&tenant("/late")).await.unwrap(), TenantDeletion::Deleted);
}

pub async fn a_tenant_holding_a_client_or_user_is_not_deleted(store: Arc<dyn Store>) {
    store.create_tenant(&tenant("/held")).await.unwrap();
    let held = client_in("/held", "held-app");
    assert!(store.create_client(&held).await.unwrap());
    assert_eq!(store.delete_tenant(&tenant("/held")).await.unwrap(), TenantDeletion::NotEmpty);
    assert!(store.delete_client(&held).await.unwrap());
    assert!(!store.delete_client(&held).await.unwrap(), "gone already");
    assert_eq!(store.client(&held.id).await.unwrap(), None);

    let alice = user("/held", "alice", "h");
    assert!(store.create_user(&alice).await.unwrap());
    assert_eq!(store.delete_tenant(&tenant("/held")).await.unwrap(), TenantDeletion::NotEmpty);
    assert!(store.delete_user(&alice).await.unwrap());
    assert!(!store.delete_user(&alice).await.unwrap(), "gone already");
    assert_eq!(store.delete_tenant(&tenant("/held")).await.unwrap(), TenantDeletion::Deleted);

    // A client or user stored in a tenant nobody created makes it exist, below its ancestors.
    store.create_tenant(&tenant("/top")).await.unwrap();
    let deep = client_in("/top/new", "deep-app");
    assert!(store.create_client(&deep).await.unwrap());
    assert!(store.tenant_exists(&tenant("/top/new")).await.unwrap());
    let bob = user("/made/by/user", "bob", "h");
    assert!(store.create_user(&bob).await.unwrap());
    assert!(store.tenant_exists(&tenant("/made/by/user")).await.unwrap());
    assert!(store.delete_client(&deep).await.unwrap());
    assert_eq!(
        store.delete_tenant(&tenant("/top")).await.unwrap(),
        TenantDeletion::NotEmpty,
        "/top/new is still there"
    );
    assert_eq!(store.delete_tenant(&tenant("/top/new")).await.unwrap(), TenantDeletion::Deleted);
    assert_eq!(store.delete_tenant(&tenant("/top")).await.unwrap(), TenantDeletion::Deleted);

    // Deleting names the tenant it is in: another tenant's record of that id is not deleted.
    let elsewhere = Client { tenant: tenant("/other"), ..client_in("/held", "held-2") };
    store.create_client(&client_in("/held", "held-2")).await.unwrap();
    assert!(!store.delete_client(&elsewhere).await.unwrap());
    assert!(store.client(&elsewhere.id).await.unwrap().is_some());
}

pub async fn concurrent_client_creations_keep_their_tenant_from_deletion(store: Arc<dyn Store>) {
    store.create_tenant(&tenant("/busy")).await.unwrap();
    let creations = (0..20).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let client = client_in("/busy", &format!("busy-{i}"));
            assert!(store.create_client(&client).await.unwrap());
            client
        })
    });
    let mut clients = Vec::new();
    for creation in creations.collect::<Vec<_>>() {
        clients.push(creation.await.unwrap());
    }
    for client in &clients {
        assert_eq!(
            store.delete_tenant(&tenant("/busy")).await.unwrap(),
            TenantDeletion::NotEmpty,
            "{} is still in it",
            client.id
        );
        assert!(store.delete_client(client).await.unwrap());
    }
    assert_eq!(store.delete_tenant(&tenant("/busy")).await.unwrap(), TenantDeletion::Deleted);
}

fn jwks() -> ClientJwks {
    ClientJwks::parse(serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "one", "alg": "ES256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    }]}))
    .unwrap()
}

pub async fn clients_keep_every_setting_and_update_only_from_their_version(store: Arc<dyn Store>) {
    let previous = PreviousSecret { digest: ClientSecret::generate().digest(), valid_until: 5_000 };
    let rotated = Client {
        credentials: Credentials::Secret {
            method: AuthMethod::ClientSecretPost,
            digest: ClientSecret::generate().digest(),
            previous: Some(previous),
        },
        refresh_reuse_interval: 30,
        dpop_bound_access_tokens: true,
        enabled: false,
        ..client_in("/acme", "rotated")
    };
    let keyed =
        Client { credentials: Credentials::PrivateKeyJwt { jwks: jwks() }, ..client("keyed") };
    for client in [&rotated, &keyed] {
        assert!(store.create_client(client).await.unwrap());
        assert_eq!(store.client(&client.id).await.unwrap().as_ref(), Some(client));
    }

    // From version 0 to 1, dropping the previous secret.
    let edited = Client {
        credentials: Credentials::secret(ClientSecret::generate().digest()),
        ..rotated.clone()
    };
    assert!(store.update_client(&edited).await.unwrap());
    let stored = store.client(&edited.id).await.unwrap().unwrap();
    assert_eq!(stored, Client { version: 1, ..edited.clone() });
    assert!(!store.update_client(&edited).await.unwrap(), "version 0 is stale");
    assert_eq!(store.client(&edited.id).await.unwrap(), Some(stored.clone()));
    let moved = Client { tenant: tenant("/elsewhere"), ..stored.clone() };
    assert!(!store.update_client(&moved).await.unwrap(), "a client keeps its tenant");
    assert!(!store.update_client(&client("unknown")).await.unwrap(), "no such client");
    // From a key set to a secret and back.
    let keyed_now = Client { credentials: rotated.credentials.clone(), ..keyed.clone() };
    assert!(store.update_client(&keyed_now).await.unwrap());
    let rekeyed = Client { credentials: keyed.credentials.clone(), version: 1, ..keyed.clone() };
    assert!(store.update_client(&rekeyed).await.unwrap());
    assert_eq!(store.client(&keyed.id).await.unwrap(), Some(Client { version: 2, ..rekeyed }));
}

pub async fn clients_are_listed_a_page_at_a_time_within_the_tenant(store: Arc<dyn Store>) {
    let mut expected = Vec::new();
    for i in 0..250 {
        let path = if i % 5 == 0 { "/big/sub" } else { "/big" };
        let client = client_in(path, &format!("c{i:03}"));
        store.create_client(&client).await.unwrap();
        expected.push((client.tenant.clone(), client.id.clone()));
    }
    for (path, id) in [("/bigger", "x1"), ("/other", "x2"), ("/a", "x3"), ("/big0", "x4")] {
        store.create_client(&client_in(path, id)).await.unwrap();
    }
    expected.sort_by_key(|(tenant, id)| format!("{tenant}/#{id}"));
    let within = tenant("/big");
    let (listed, sizes) = every_page(100, |page: PageRequest<'_, ClientPosition>| {
        let (store, within, limit, after) =
            (store.clone(), within.clone(), page.limit, page.after.cloned());
        async move {
            store.clients(&within, PageRequest { limit, after: after.as_ref() }).await.unwrap()
        }
    })
    .await;
    let listed: Vec<ClientPosition> =
        listed.into_iter().map(|client| (client.tenant, client.id)).collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(listed, expected, "each once, in order, none from another tenant");

    let sub = store.clients(&tenant("/big/sub"), PageRequest { limit: 100, after: None }).await;
    assert_eq!(sub.unwrap().items.len(), 50);
    // A position outside `within` reads nothing outside it.
    for outside in [("/other", "x2"), ("/bigger", "x1"), ("/zzz", "x")] {
        let after = (tenant(outside.0), ClientId::parse(outside.1).unwrap());
        let page =
            store.clients(&within, PageRequest { limit: 100, after: Some(&after) }).await.unwrap();
        assert!(page.items.iter().all(|c| c.tenant.is_within(&within)), "{outside:?}");
        assert_eq!(page.next, None);
    }
    let before = (tenant("/a"), ClientId::parse("x3").unwrap());
    let page = store.clients(&within, PageRequest { limit: 10, after: Some(&before) }).await;
    let page = page.unwrap();
    let first: Vec<ClientPosition> =
        page.items.into_iter().map(|client| (client.tenant, client.id)).collect();
    assert_eq!(first, expected[..10], "a position before the range reads from its start");
    assert_eq!(
        store.clients(&within, PageRequest { limit: 0, after: None }).await.unwrap(),
        Page { items: Vec::new(), next: None }
    );
}

/// A login's grant is stored only while the user is still the version the login checked: a
/// password changed or a disable during the check leaves no session behind.
pub async fn a_grant_starts_only_while_its_user_is_unchanged(store: Arc<dyn Store>) {
    let alice = user("/acme", "alice", "old-hash");
    assert!(store.create_user(&alice).await.unwrap());
    let read = store.user(&alice.tenant, &alice.username).await.unwrap().unwrap();
    let mut changed = read.clone();
    changed.password_hash = "new-hash".into();
    assert!(store.update_user(&changed).await.unwrap());

    let stale = grant(1_000, 3_600);
    let started = store
        .start_grant(&stale, &refresh_record(&stale, 1_000, 500), &[], None, Some(&read))
        .await
        .unwrap();
    assert!(!started, "the login checked a password that no longer holds");
    assert_eq!(store.grant(&stale.id, 1_000).await.unwrap(), None, "nothing was stored");

    let current = store.user(&alice.tenant, &alice.username).await.unwrap().unwrap();
    let fresh = grant(1_000, 3_600);
    let started = store
        .start_grant(&fresh, &refresh_record(&fresh, 1_000, 500), &[], None, Some(&current))
        .await
        .unwrap();
    assert!(started);
}

pub async fn users_are_listed_found_by_id_updated_and_deleted(store: Arc<dyn Store>) {
    let mut expected = Vec::new();
    for i in 0..30 {
        let path = if i % 3 == 0 { "/crew/deck" } else { "/crew" };
        let user = User { created_at: 100 + i, ..user(path, &format!("user #{i}"), "h") };
        assert!(store.create_user(&user).await.unwrap());
        expected.push(user);
    }
    store.create_user(&user("/crewmates", "outsider", "h")).await.unwrap();
    store.create_user(&user("/other", "outsider", "h")).await.unwrap();
    expected.sort_by_key(|user| format!("{}/#{}", user.tenant, user.username));
    let within = tenant("/crew");
    let (listed, sizes) =
        every_page(7, |page: PageRequest<'_, UserPosition>| {
            let (store, within, limit, after) =
                (store.clone(), within.clone(), page.limit, page.after.cloned());
            async move {
                store.users(&within, PageRequest { limit, after: after.as_ref() }).await.unwrap()
            }
        })
        .await;
    assert_eq!(sizes, [7, 7, 7, 7, 2]);
    assert_eq!(listed, expected, "each once, in order, none from another tenant");
    let outside = (tenant("/other"), Username::parse("outsider").unwrap());
    let page = store.users(&within, PageRequest { limit: 7, after: Some(&outside) }).await;
    assert!(page.unwrap().items.is_empty());

    let alice = expected[4].clone();
    assert_eq!(store.user_by_id(&alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(store.user_by_id(&UserId::generate()).await.unwrap(), None);
    let disabled = User { enabled: false, password_hash: "new".into(), ..alice.clone() };
    assert!(store.update_user(&disabled).await.unwrap());
    assert!(!store.update_user(&disabled).await.unwrap(), "version 0 is stale");
    let other_id = User { id: UserId::generate(), version: 1, ..disabled.clone() };
    assert!(!store.update_user(&other_id).await.unwrap(), "another user of that name");
    let stored = store.user_by_id(&alice.id).await.unwrap().unwrap();
    assert_eq!(stored, User { version: 1, ..disabled });

    assert!(!store.delete_user(&other_id).await.unwrap(), "another user of that name");
    assert!(store.delete_user(&stored).await.unwrap());
    assert_eq!(store.user_by_id(&alice.id).await.unwrap(), None);
    assert_eq!(store.user(&alice.tenant, &alice.username).await.unwrap(), None);
    assert!(store.create_user(&alice).await.unwrap(), "the name and the id are free again");
}

fn session_of(user: &UserId, path: &str, created_at: u64, lifetime: u64) -> Grant {
    Grant { tenant: tenant(path), subject: user.to_string(), ..grant(created_at, lifetime) }
}

pub async fn a_users_live_sessions_are_listed_oldest_first(store: Arc<dyn Store>) {
    let alice = UserId::generate();
    let mut live = Vec::new();
    // Started out of order; one revoked, one expired, others of someone else.
    for created_at in [1_500, 1_100, 1_300, 1_200, 1_600, 1_400, 1_000] {
        let grant = session_of(&alice, "/acme", created_at, 10_000);
        store
            .start_grant(&grant, &refresh_record(&grant, created_at, 500), &[], None, None)
            .await
            .unwrap();
        live.push(grant);
    }
    let revoked = session_of(&alice, "/acme", 1_250, 10_000);
    let expired = session_of(&alice, "/acme", 1_050, 100);
    let others = [
        session_of(&UserId::generate(), "/acme", 1_000, 10_000),
        session_of(&alice, "/acme/sales", 1_000, 10_000),
    ];
    for grant in [&revoked, &expired].into_iter().chain(&others) {
        store.start_grant(grant, &refresh_record(grant, 1_000, 50), &[], None, None).await.unwrap();
    }
    store.revoke_grant(&revoked.id, 1_260).await.unwrap();
    live.sort_by_key(|grant| grant.created_at);
    let acme = tenant("/acme");
    let (listed, sizes) = every_page(3, |page| {
        let (store, acme, alice, limit, after) =
            (store.clone(), acme.clone(), alice.clone(), page.limit, page.after.cloned());
        async move {
            let page = PageRequest { limit, after: after.as_ref() };
            store.sessions(&acme, &alice, page, 2_000).await.unwrap()
        }
    })
    .await;
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(listed, live, "the live ones, oldest first");
    let all = store.sessions(&acme, &alice, PageRequest { limit: 100, after: None }, 2_000).await;
    assert_eq!(all.unwrap(), Page { items: live, next: None });
    let nobody = store
        .sessions(&acme, &UserId::generate(), PageRequest { limit: 10, after: None }, 2_000)
        .await
        .unwrap();
    assert_eq!(nobody, Page { items: Vec::new(), next: None });
}

pub async fn rotation_records_the_refresh_and_its_device(store: Arc<dyn Store>) {
    let device = |i: usize| DeviceId::parse(&format!("device {i}")).unwrap();
    let started = Grant { device_ids: vec![device(0)], ..grant(1_000, 10_000) };
    let mut used = refresh_record(&started, 1_000, 5_000);
    store.start_grant(&started, &used, &[], None, None).await.unwrap();
    assert_eq!(store.grant(&started.id, 1_000).await.unwrap(), Some(started.clone()));

    let mut rotate = async |device: Option<DeviceId>, now: u64| {
        let next = refresh_record(&started, now, 5_000);
        let rotation = store
            .rotate_refresh_token(&used, &next, &[], &no_cutoffs(&started), device.as_ref(), now)
            .await
            .unwrap();
        assert_eq!(rotation, Rotation::Rotated, "a device never stops a rotation");
        used = next;
        store.grant(&started.id, now).await.unwrap().unwrap()
    };
    let grant = rotate(None, 1_100).await;
    assert_eq!((grant.last_refreshed_at, grant.device_ids.clone()), (Some(1_100), vec![device(0)]));
    let grant = rotate(Some(device(1)), 1_200).await;
    assert_eq!(
        (grant.last_refreshed_at, grant.device_ids),
        (Some(1_200), vec![device(0), device(1)])
    );
    let grant = rotate(Some(device(0)), 1_300).await;
    assert_eq!(grant.device_ids, vec![device(0), device(1)], "known already");
    for i in 2..MAX_DEVICE_IDS + 3 {
        rotate(Some(device(i)), 1_300 + i as u64).await;
    }
    let grant = store.grant(&started.id, 2_000).await.unwrap().unwrap();
    let first: Vec<DeviceId> = (0..MAX_DEVICE_IDS).map(device).collect();
    assert_eq!(grant.device_ids, first, "the first ones seen, at most {MAX_DEVICE_IDS}");
}

/// A client assertion's or DPoP proof's `jti` is accepted once while its record lives; an
/// expired record (which DynamoDB's TTL may not have deleted yet) no longer counts.
pub async fn a_one_time_jwt_id_is_accepted_once_until_it_expires(store: Arc<dyn Store>) {
    let key = ReplayKey::client_assertion(&ClientId::parse("signer").unwrap(), "jti-1");
    assert!(store.first_use(&key, 1_100, 1_000).await.unwrap(), "first use");
    assert!(!store.first_use(&key, 1_100, 1_050).await.unwrap(), "a replay");
    assert!(!store.first_use(&key, 1_500, 1_099).await.unwrap(), "a replay, its last second");
    assert!(store.first_use(&key, 1_300, 1_100).await.unwrap(), "expired: free again");
    assert!(!store.first_use(&key, 1_300, 1_200).await.unwrap(), "and held anew");
    let proof = ReplayKey::dpop_proof("thumbprint", "jti-1");
    assert!(store.first_use(&proof, 1_100, 1_000).await.unwrap(), "another kind of JWT");
    let other_client = ReplayKey::client_assertion(&ClientId::parse("other").unwrap(), "jti-1");
    assert!(store.first_use(&other_client, 1_100, 1_000).await.unwrap(), "another signer");
}

/// The replay record is a conditional write: of many concurrent uses, one wins.
pub async fn concurrent_first_uses_of_a_jwt_id_have_exactly_one_winner(store: Arc<dyn Store>) {
    let key = ReplayKey::dpop_proof("thumbprint", "raced");
    let uses = (0..16).map(|_| {
        let (store, key) = (store.clone(), key.clone());
        tokio::spawn(async move { store.first_use(&key, 2_000, 1_000).await.unwrap() })
    });
    let mut winners = 0;
    for used in uses {
        winners += usize::from(used.await.unwrap());
    }
    assert_eq!(winners, 1);
}

/// Declares one test per contract check, each on a fresh store from `$fresh` (an async
/// expression), so that a failure names the rule it broke.
#[macro_export]
macro_rules! store_contract_tests {
    ($fresh:expr) => {
        $crate::store_contract_tests!(@tests $fresh;
            clients_round_trip,
            unknown_client_is_absent,
            creating_a_client_never_replaces_one,
            concurrent_client_creations_have_exactly_one_winner,
            issuance_log_covers_the_tenant_subtree_and_narrows,
            issuance_log_pages_through_many_entries,
            expired_and_spent_log_entries_are_not_live,
            users_are_unique_per_tenant,
            a_user_id_is_never_shared_across_tenants,
            password_rehash_never_overwrites_a_concurrent_change,
            grants_and_refresh_tokens_round_trip,
            expired_refresh_tokens_and_grants_are_absent,
            rotation_succeeds_once_and_remembers_the_used_token,
            concurrent_rotations_have_exactly_one_winner,
            revoking_a_grant_keeps_the_first_revocation_time,
            grant_tokens_are_logged_with_the_grant,
            revoked_tokens_stay_revoked_until_they_would_have_expired,
            revocation_state_carries_the_grant,
            rotation_marks_the_used_refresh_token_spent_in_the_log,
            a_cutoff_over_the_grant_stops_rotation,
            cutoffs_are_raised_never_lowered,
            a_cutoff_written_is_seen_through_every_copy,
            a_raise_brings_every_copy_to_the_latest_cutoff_and_lowers_none,
            revocation_state_takes_the_latest_cutoff_of_every_layer,
            subject_cutoffs_never_cross_kinds_or_tenants,
            grants_are_read_in_bulk,
            users_are_found_by_id_for_their_tenant,
            putting_a_user_replaces_it_and_moves_its_id,
            every_read_treats_expired_items_as_absent,
            tenants_are_created_listed_and_deleted_only_when_empty,
            a_tenant_holding_a_client_or_user_is_not_deleted,
            concurrent_client_creations_keep_their_tenant_from_deletion,
            clients_keep_every_setting_and_update_only_from_their_version,
            clients_are_listed_a_page_at_a_time_within_the_tenant,
            users_are_listed_found_by_id_updated_and_deleted,
            a_grant_starts_only_while_its_user_is_unchanged,
            a_users_live_sessions_are_listed_oldest_first,
            rotation_records_the_refresh_and_its_device,
            a_one_time_jwt_id_is_accepted_once_until_it_expires,
            concurrent_first_uses_of_a_jwt_id_have_exactly_one_winner,
        );
    };
    (@tests $fresh:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let store: std::sync::Arc<dyn $crate::contract::Store> = std::sync::Arc::new($fresh);
                $crate::contract::$check(store).await;
            }
        )*
    };
}
