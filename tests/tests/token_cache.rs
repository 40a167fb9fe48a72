//! The verified-token cache, on both stores: a token served from the cache is still read for
//! revocation on every verification, so whatever kills it takes effect on the very next request;
//! a forgery never finds a cached token's entry; a bound token still needs a fresh proof.

use std::sync::Arc;

use integration_tests::flows::{
    admin_token, batch_count, error_of, introspect, is_active, revoke, revoke_self_as,
};
use integration_tests::forgery::{at_jwt_header, attacker_key, claims_of, forgeries, signed};
use integration_tests::jose::ClientKey;
use integration_tests::{
    ACME_ADMIN, Backend, CC_CLIENT, TestServer, basic_header, on_both_backends,
};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use token_service::clock::{Clock, ManualClock};
use token_service::token_cache::TokenDigest;

on_both_backends!(
    a_cached_token_revoked_is_inactive_on_the_very_next_verification,
    a_cached_token_cut_off_by_a_batch_revocation_is_inactive_on_the_very_next_verification,
    a_cached_token_of_a_disabled_client_is_inactive_on_the_very_next_verification,
    a_forgery_of_a_cached_token_is_never_served_from_the_cache,
    a_cached_bound_token_still_needs_a_fresh_proof_by_its_key,
    a_cached_token_stops_verifying_when_it_expires,
);

const NOW: u64 = 1_800_000_000;

async fn clocked(backend: Backend) -> (TestServer, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(NOW));
    (backend.server(clock.clone()).await, clock)
}

async fn token_of(server: &TestServer, client: (&str, &str)) -> String {
    let response = server.token(&[("grant_type", "client_credentials")], Some(client)).await;
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Introspects `token` for the first time, which must find it active and cache it.
async fn cached(server: &TestServer, clock: &ManualClock, token: &str) {
    let (before, _) = server.verified_tokens.usage();
    assert!(is_active(server, token).await, "a live token");
    assert_eq!(server.verified_tokens.usage().0, before + 1, "the verification cached it");
    assert!(server.verified_tokens.get(&TokenDigest::of(token), clock.now()).is_some());
}

async fn a_cached_token_revoked_is_inactive_on_the_very_next_verification(backend: Backend) {
    let (server, clock) = clocked(backend).await;
    let token = token_of(&server, CC_CLIENT).await;
    cached(&server, &clock, &token).await;
    assert_eq!(revoke(&server, CC_CLIENT, &[("token", token.as_str())]).await.status(), 200);
    assert!(!is_active(&server, &token).await);
    let presented = server.http.post(server.url("/oauth2/revoke")).bearer_auth(&token);
    let (status, error) = error_of(presented.send().await.unwrap()).await;
    assert_eq!((status, error.as_str()), (401, "invalid_token"), "nor does it work as a bearer");
}

async fn a_cached_token_cut_off_by_a_batch_revocation_is_inactive_on_the_very_next_verification(
    backend: Backend,
) {
    let (server, clock) = clocked(backend).await;
    let token = token_of(&server, CC_CLIENT).await;
    cached(&server, &clock, &token).await;
    let admin = admin_token(&server).await;
    clock.advance(1);
    assert_eq!(batch_count(&server, &admin, json!({"clientId": CC_CLIENT.0})).await, 1);
    assert!(!is_active(&server, &token).await);
}

async fn a_cached_token_of_a_disabled_client_is_inactive_on_the_very_next_verification(
    backend: Backend,
) {
    let (server, clock) = clocked(backend).await;
    let token = token_of(&server, CC_CLIENT).await;
    cached(&server, &clock, &token).await;
    let admin = token_of(&server, ACME_ADMIN).await;
    let response = server
        .http
        .patch(server.url(&format!("/admin/clients/{}", CC_CLIENT.0)))
        .bearer_auth(&admin)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert!(!is_active(&server, &token).await);
}

/// Every forgery of a cached token, and the two that copy its header and payload exactly but
/// carry another signature (one by an attacker's key, one of a single flipped bit), is checked in
/// full and refused; the genuine token stays active.
async fn a_forgery_of_a_cached_token_is_never_served_from_the_cache(backend: Backend) {
    let (server, clock) = clocked(backend).await;
    let token = token_of(&server, CC_CLIENT).await;
    cached(&server, &clock, &token).await;
    let (header_and_payload, signature) = token.rsplit_once('.').unwrap();
    let (attacker, _) = attacker_key(server.keys.current().alg);
    let kid = server.keys.current().kid.clone();
    let resigned = signed(at_jwt_header(Algorithm::ES256, &kid), &claims_of(&token), &attacker);
    let (_, attacker_signature) = resigned.rsplit_once('.').unwrap();
    let mut flipped = signature.as_bytes().to_vec();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let same_claims = [
        ("signed by an attacker's key", format!("{header_and_payload}.{attacker_signature}")),
        (
            "one signature byte changed",
            format!("{header_and_payload}.{}", String::from_utf8(flipped).unwrap()),
        ),
    ];
    for (why, forged) in same_claims.into_iter().chain(forgeries(&token, &server.keys)) {
        assert_ne!(forged, token, "{why}");
        assert_eq!(
            introspect(&server, CC_CLIENT, &forged).await,
            json!({"active": false}),
            "{why}"
        );
    }
    assert!(is_active(&server, &token).await, "the genuine token is untouched");
}

async fn a_cached_bound_token_still_needs_a_fresh_proof_by_its_key(backend: Backend) {
    let (server, clock) = clocked(backend).await;
    let key = ClientKey::generate(Algorithm::ES256);
    let token_url = server.url("/oauth2/token");
    let response = server
        .http
        .post(&token_url)
        .header("authorization", basic_header(CC_CLIENT.0, CC_CLIENT.1))
        .header("dpop", key.proof("POST", &token_url, NOW, None))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    cached(&server, &clock, &token).await;

    let revoke_url = server.url("/oauth2/revoke");
    let revoke_with = async |proof| revoke_self_as(&server, "DPoP", &token, proof).await;
    let thief = ClientKey::generate(Algorithm::ES256);
    let rejected = (401, "invalid_dpop_proof".to_owned());
    assert_eq!(revoke_with(None).await, rejected, "no proof");
    let stolen = thief.proof("POST", &revoke_url, NOW, Some(&token));
    assert_eq!(revoke_with(Some(stolen)).await, rejected, "a proof by another key");
    let elsewhere = key.proof("POST", &token_url, NOW, Some(&token));
    assert_eq!(revoke_with(Some(elsewhere)).await, rejected, "a proof for another URL");
    let proof = key.proof("POST", &revoke_url, NOW, Some(&token));
    assert_eq!(revoke_with(Some(proof.clone())).await, (200, String::new()));
    assert!(!is_active(&server, &token).await);
}

async fn a_cached_token_stops_verifying_when_it_expires(backend: Backend) {
    let (server, clock) = clocked(backend).await;
    let token = token_of(&server, CC_CLIENT).await;
    cached(&server, &clock, &token).await;
    let exp = claims_of(&token)["exp"].as_u64().unwrap();
    clock.advance(token_service::jwt::verifiable_until(exp) - NOW);
    assert!(!is_active(&server, &token).await);
    let entry = server.verified_tokens.get(&TokenDigest::of(&token), clock.now());
    assert!(entry.is_none(), "the expired entry is gone");
}
