//! The store contract: one suite every store implementation must pass. Each check takes a fresh
//! store, so implementations that share a backend (a DynamoDB table) stay independent.

use std::collections::BTreeSet;

use token_service::domain::{
    Client, ClientId, ClientSecret, GrantId, GrantType, ScopeSet, TenantPath, TokenId,
};
use token_service::store::{ClientStore, IssuanceFilter, IssuanceLog, IssuedToken, TokenKind};

pub trait Store: ClientStore + IssuanceLog {}
impl<T: ClientStore + IssuanceLog> Store for T {}

fn tenant(path: &str) -> TenantPath {
    TenantPath::parse(path).unwrap()
}

fn client(id: &str) -> Client {
    Client {
        id: ClientId::parse(id).unwrap(),
        secret_digest: ClientSecret::generate().digest(),
        tenant: tenant("/acme"),
        grants: BTreeSet::from([GrantType::ClientCredentials]),
        scopes: ScopeSet::parse("read write").unwrap(),
        max_access_token_lifetime: 600,
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

pub async fn clients_round_trip(store: &dyn Store) {
    let stored = client("contract-client");
    store.put_client(&stored).await.unwrap();
    assert_eq!(
        store.client(&stored.id).await.unwrap(),
        Some(stored.clone())
    );

    let mut replaced = stored.clone();
    replaced.max_access_token_lifetime = 60;
    store.put_client(&replaced).await.unwrap();
    assert_eq!(store.client(&stored.id).await.unwrap(), Some(replaced));
}

pub async fn unknown_client_is_absent(store: &dyn Store) {
    assert_eq!(
        store
            .client(&ClientId::parse("nobody").unwrap())
            .await
            .unwrap(),
        None
    );
}

pub async fn issuance_count_covers_the_subtree_before_the_cutoff(store: &dyn Store) {
    for token in [
        issued("/acme", "a", "alice", 100, 1_000),
        issued("/acme/sales", "a", "bob", 100, 1_000),
        issued("/acme/sales/eu", "b", "bob", 150, 1_000),
        issued("/acmeco", "a", "alice", 100, 1_000),
        issued("/acme", "a", "alice", 200, 1_000),
    ] {
        store.record_issued(&token).await.unwrap();
    }
    let filter = |path: &str, client: Option<&str>, subject: Option<&str>| IssuanceFilter {
        tenant: tenant(path),
        client_id: client.map(|c| ClientId::parse(c).unwrap()),
        subject: subject.map(str::to_owned),
    };
    assert_eq!(
        store
            .count_issued(&filter("/acme", None, None), 200, 500)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .count_issued(&filter("/acme", None, None), 201, 500)
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        store
            .count_issued(&filter("/acme/sales", None, None), 200, 500)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .count_issued(&filter("/acme", Some("b"), None), 200, 500)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .count_issued(&filter("/acme", None, Some("alice")), 300, 500)
            .await
            .unwrap(),
        2
    );
}

pub async fn expired_issuance_records_are_not_counted(store: &dyn Store) {
    store
        .record_issued(&issued("/expiry", "a", "s", 100, 200))
        .await
        .unwrap();
    store
        .record_issued(&issued("/expiry", "a", "s", 100, 400))
        .await
        .unwrap();
    let filter = IssuanceFilter {
        tenant: tenant("/expiry"),
        client_id: None,
        subject: None,
    };
    assert_eq!(store.count_issued(&filter, 1_000, 199).await.unwrap(), 2);
    assert_eq!(
        store.count_issued(&filter, 1_000, 200).await.unwrap(),
        1,
        "expired at 200, still stored"
    );
    assert_eq!(store.count_issued(&filter, 1_000, 400).await.unwrap(), 0);
}

/// Declares one test per contract check, each on a fresh store from `$fresh` (an async
/// expression), so that a failure names the rule it broke.
#[macro_export]
macro_rules! store_contract_tests {
    ($fresh:expr) => {
        $crate::store_contract_tests!(@tests $fresh;
            clients_round_trip,
            unknown_client_is_absent,
            issuance_count_covers_the_subtree_before_the_cutoff,
            expired_issuance_records_are_not_counted,
        );
    };
    (@tests $fresh:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let store = $fresh;
                $crate::contract::$check(&store).await;
            }
        )*
    };
}
