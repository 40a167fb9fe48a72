//! A client's credentials as the admin plane changes them: disabled, a secret rotated with an
//! overlap, keys instead of a secret. Each change is written to the store behind the server's
//! client cache, as another process (the admin function) writes it.

use std::sync::Arc;

use integration_tests::flows::{error_of, introspect_as, revoke, service_token};
use integration_tests::{Backend, CC_CLIENT, on_both_backends};
use serde_json::json;
use token_service::clock::{Clock, ManualClock};
use token_service::config::DEFAULT_CLIENT_CACHE_TTL;
use token_service::domain::{
    ClientId, ClientJwks, ClientSecret, Credentials, PreviousSecret, SecretDigest,
};
use token_service::store::Stores;

on_both_backends!(
    a_disabled_client_gets_invalid_client_on_token_revoke_and_introspect,
    a_rotated_secret_and_its_overlapping_predecessor_both_work_until_valid_until,
    a_private_key_jwt_client_cannot_authenticate_with_any_secret,
);

const NOW: u64 = 1_800_000_000;

/// Rewrites cc-client's stored record with `change`.
async fn change_cc_client(
    stores: &Stores,
    change: impl FnOnce(&mut token_service::domain::Client),
) {
    let id = ClientId::parse(CC_CLIENT.0).unwrap();
    let mut client = stores.clients.client(&id).await.unwrap().unwrap();
    change(&mut client);
    assert!(stores.clients.update_client(&client).await.unwrap(), "stored");
}

/// Every endpoint that authenticates a client, with `secret` as cc-client's: the statuses and
/// error codes.
async fn answers(server: &integration_tests::TestServer, secret: &str) -> Vec<(u16, String)> {
    let client = (CC_CLIENT.0, secret);
    let token = server.token(&[("grant_type", "client_credentials")], Some(client)).await;
    let token = match token.status().as_u16() {
        200 => (200, String::new()),
        _ => error_of(token).await,
    };
    let revoked = revoke(server, client, &[("token", "garbage")]).await;
    let revoked = match revoked.status().as_u16() {
        200 => (200, String::new()),
        _ => error_of(revoked).await,
    };
    let introspected = introspect_as(server, client, &[("token", "garbage")]).await;
    let introspected = match introspected.status().as_u16() {
        200 => (200, String::new()),
        _ => error_of(introspected).await,
    };
    vec![token, revoked, introspected]
}

fn all_ok() -> Vec<(u16, String)> {
    vec![(200, String::new()); 3]
}

fn all_invalid_client() -> Vec<(u16, String)> {
    vec![(401, "invalid_client".to_owned()); 3]
}

/// Once its cached record has aged out, a disabled client is refused by every endpoint with the
/// answer a wrong secret gets; enabled again, it works again.
async fn a_disabled_client_gets_invalid_client_on_token_revoke_and_introspect(backend: Backend) {
    let clock = Arc::new(ManualClock::new(NOW));
    let (server, stores) = backend.server_and_stores(clock.clone()).await;
    assert_eq!(answers(&server, CC_CLIENT.1).await, all_ok());
    change_cc_client(&stores, |client| client.enabled = false).await;
    clock.advance(DEFAULT_CLIENT_CACHE_TTL);
    assert_eq!(answers(&server, CC_CLIENT.1).await, all_invalid_client());
    assert_eq!(answers(&server, "a-wrong-secret-0123456789").await, all_invalid_client());
    change_cc_client(&stores, |client| client.enabled = true).await;
    assert_eq!(answers(&server, CC_CLIENT.1).await, all_ok(), "re-enabled: at once");
}

/// A rotation with a 60 s overlap: the new secret works at once, even where the old record is
/// still cached; the previous one works until `valid_until` and never after.
async fn a_rotated_secret_and_its_overlapping_predecessor_both_work_until_valid_until(
    backend: Backend,
) {
    let clock = Arc::new(ManualClock::new(NOW));
    let (server, stores) = backend.server_and_stores(clock.clone()).await;
    service_token(&server).await; // the old record is now cached
    let new = ClientSecret::generate();
    let valid_until = clock.now() + 60;
    change_cc_client(&stores, |client| {
        client.credentials = Credentials::Secret {
            method: client.credentials.method(),
            digest: new.digest(),
            previous: Some(PreviousSecret {
                digest: SecretDigest::of(CC_CLIENT.1.as_bytes()),
                valid_until,
            }),
        };
    })
    .await;
    assert_eq!(answers(&server, new.expose()).await, all_ok(), "the new secret");
    assert_eq!(answers(&server, CC_CLIENT.1).await, all_ok(), "the previous, in the overlap");
    clock.advance(59);
    assert_eq!(answers(&server, CC_CLIENT.1).await, all_ok(), "the previous, its last second");
    clock.advance(1);
    assert_eq!(answers(&server, CC_CLIENT.1).await, all_invalid_client(), "at valid_until");
    assert_eq!(answers(&server, new.expose()).await, all_ok(), "the new secret goes on");
}

/// A client registered with keys has no secret: its former one, the empty one, anything fails.
async fn a_private_key_jwt_client_cannot_authenticate_with_any_secret(backend: Backend) {
    let clock = Arc::new(ManualClock::new(NOW));
    let (server, stores) = backend.server_and_stores(clock.clone()).await;
    let key = json!({
        "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    });
    let jwks = ClientJwks::parse(json!({"keys": [key]})).unwrap();
    change_cc_client(&stores, |client| client.credentials = Credentials::PrivateKeyJwt { jwks })
        .await;
    clock.advance(DEFAULT_CLIENT_CACHE_TTL);
    for secret in [CC_CLIENT.1, "", "k1", "a-guessed-secret-0123456789"] {
        assert_eq!(answers(&server, secret).await, all_invalid_client(), "{secret:?}");
    }
}
