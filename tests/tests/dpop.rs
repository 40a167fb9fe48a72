//! DPoP (RFC 9449) over real HTTP, on both stores: a proof at the token endpoint binds the access
//! token to the proof's key; introspection reports the binding; bearer self-revocation takes a
//! bound token only as `DPoP` with a proof by that key; every bad proof is
//! `400 invalid_dpop_proof`.

use std::sync::Arc;

use integration_tests::flows::{error_of, introspect, revoke_self_as};
use integration_tests::forgery::claims_of;
use integration_tests::jose::{ClientKey, b64_json, proof_claims};
use integration_tests::{
    APP_CLIENT, Backend, CC_CLIENT, TestServer, basic_header, on_both_backends,
};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use token_service::clock::{Clock, ManualClock};
use token_service::config::DEFAULT_CLIENT_CACHE_TTL;
use token_service::domain::ClientId;
use token_service::store::Stores;

on_both_backends!(
    a_proof_binds_the_access_token_to_its_key,
    a_replayed_proof_is_refused,
    a_proof_for_another_method_or_url_is_refused,
    a_stale_or_future_proof_is_refused,
    a_proof_carrying_a_private_key_is_refused,
    alg_none_and_hmac_proofs_are_refused,
    malformed_proofs_are_refused,
    a_client_registered_for_dpop_must_send_a_proof,
    a_refresh_with_a_proof_binds_the_new_access_token_and_never_the_refresh_token,
    a_bound_token_revokes_itself_only_as_dpop_with_a_proof_by_its_key,
);

const NOW: u64 = 1_800_000_000;

struct Fixture {
    server: TestServer,
    stores: Stores,
    clock: Arc<ManualClock>,
    key: ClientKey,
}

async fn fixture(backend: Backend) -> Fixture {
    let clock = Arc::new(ManualClock::new(NOW));
    let (server, stores) = backend.server_and_stores(clock.clone()).await;
    Fixture { server, stores, clock, key: ClientKey::generate(Algorithm::ES256) }
}

impl Fixture {
    fn token_url(&self) -> String {
        self.server.url("/oauth2/token")
    }

    fn proof(&self) -> String {
        self.key.proof("POST", &self.token_url(), self.clock.now(), None)
    }

    /// cc-client's client_credentials request with `proof` in the DPoP header.
    async fn token_with(&self, proof: Option<&str>) -> reqwest::Response {
        let mut request = self
            .server
            .http
            .post(self.token_url())
            .header("authorization", basic_header(CC_CLIENT.0, CC_CLIENT.1))
            .form(&[("grant_type", "client_credentials")]);
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        request.send().await.unwrap()
    }

    async fn answer(&self, proof: Option<&str>) -> (u16, String) {
        let response = self.token_with(proof).await;
        match response.status().as_u16() {
            200 => (200, String::new()),
            _ => error_of(response).await,
        }
    }
}

fn invalid_proof() -> (u16, String) {
    (400, "invalid_dpop_proof".to_owned())
}

async fn a_proof_binds_the_access_token_to_its_key(backend: Backend) {
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256, Algorithm::PS256] {
        let mut f = fixture(backend).await;
        f.key = ClientKey::generate(alg);
        let response = f.token_with(Some(&f.proof())).await;
        assert_eq!(response.status(), 200, "{alg:?}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "DPoP", "{alg:?}");
        let token = body["access_token"].as_str().unwrap();
        assert_eq!(claims_of(token)["cnf"], json!({"jkt": f.key.thumbprint()}), "{alg:?}");
        let answer = introspect(&f.server, CC_CLIENT, token).await;
        assert_eq!(answer["token_type"], "DPoP");
        assert_eq!(answer["cnf"], json!({"jkt": f.key.thumbprint()}));
    }
    let f = fixture(backend).await;
    let body: Value = f.token_with(None).await.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer", "no proof, no binding");
    assert_eq!(claims_of(body["access_token"].as_str().unwrap()).get("cnf"), None);
}

async fn a_replayed_proof_is_refused(backend: Backend) {
    let f = fixture(backend).await;
    let proof = f.proof();
    assert_eq!(f.answer(Some(&proof)).await.0, 200);
    let replayed = f.token_with(Some(&proof)).await;
    let challenge = replayed.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert_eq!(challenge, r#"DPoP error="invalid_dpop_proof", algs="ES256 EdDSA RS256 PS256""#);
    assert_eq!(error_of(replayed).await, invalid_proof(), "replayed at once");
    f.clock.advance(59);
    assert_eq!(f.answer(Some(&proof)).await, invalid_proof(), "replayed within the window");
    assert_eq!(f.answer(Some(&f.proof())).await.0, 200, "a fresh proof by the same key");
}

async fn a_proof_for_another_method_or_url_is_refused(backend: Backend) {
    let f = fixture(backend).await;
    let base = &f.server.base_url;
    for (why, method, url) in [
        ("htm GET", "GET", f.token_url()),
        ("htm lower case", "post", f.token_url()),
        ("htu of another endpoint", "POST", f.server.url("/oauth2/revoke")),
        ("htu of another host", "POST", "https://attacker.example/oauth2/token".to_owned()),
        ("htu with another scheme", "POST", f.token_url().replace("http://", "https://")),
        ("htu a relative path", "POST", "/oauth2/token".to_owned()),
        ("htu with a trailing slash", "POST", format!("{base}/oauth2/token/")),
    ] {
        let proof = f.key.proof(method, &url, NOW, None);
        assert_eq!(f.answer(Some(&proof)).await, invalid_proof(), "{why}");
    }
    // RFC 9449 §4.3: the query and fragment are not compared.
    let with_query = f.key.proof("POST", &format!("{}?a=b#c", f.token_url()), NOW, None);
    assert_eq!(f.answer(Some(&with_query)).await.0, 200, "query and fragment ignored");
}

async fn a_stale_or_future_proof_is_refused(backend: Backend) {
    let f = fixture(backend).await;
    for (why, iat) in [("61 s old", NOW - 61), ("61 s ahead", NOW + 61)] {
        let proof = f.key.proof("POST", &f.token_url(), iat, None);
        assert_eq!(f.answer(Some(&proof)).await, invalid_proof(), "{why}");
    }
    for (why, iat) in [("60 s old", NOW - 60), ("60 s ahead", NOW + 60)] {
        let proof = f.key.proof("POST", &f.token_url(), iat, None);
        assert_eq!(f.answer(Some(&proof)).await.0, 200, "{why}");
    }
}

async fn a_proof_carrying_a_private_key_is_refused(backend: Backend) {
    let f = fixture(backend).await;
    let claims = proof_claims("POST", &f.token_url(), NOW, None);
    for member in ["d", "p", "k"] {
        let mut header = f.key.proof_header();
        header["jwk"][member] = json!("c2VjcmV0LWtleS1tYXRlcmlhbC0wMTIzNDU2Nzg5YWJjZA");
        let proof = f.key.proof_with(&header, &claims);
        assert_eq!(f.answer(Some(&proof)).await, invalid_proof(), "jwk with {member}");
    }
    let mut no_key = f.key.proof_header();
    no_key.as_object_mut().unwrap().remove("jwk");
    assert_eq!(f.answer(Some(&f.key.proof_with(&no_key, &claims))).await, invalid_proof());
    // A key of another type than the alg says: an EC key under RS256.
    let mut mismatched = f.key.proof_header();
    mismatched["alg"] = json!("RS256");
    assert_eq!(f.answer(Some(&f.key.proof_with(&mismatched, &claims))).await, invalid_proof());
    // A public key that did not make the signature.
    let mut other = f.key.proof_header();
    other["jwk"] = ClientKey::generate(Algorithm::ES256).bare_jwk();
    assert_eq!(f.answer(Some(&f.key.proof_with(&other, &claims))).await, invalid_proof());
}

async fn alg_none_and_hmac_proofs_are_refused(backend: Backend) {
    let f = fixture(backend).await;
    let claims = proof_claims("POST", &f.token_url(), NOW, None);
    let mut header = f.key.proof_header();
    header["alg"] = json!("none");
    let none = format!("{}.{}.", b64_json(&header), b64_json(&claims));
    assert_eq!(f.answer(Some(&none)).await, invalid_proof(), "alg none");
    header["alg"] = json!("HS256");
    header["jwk"] = json!({"kty": "oct", "k": "c2VjcmV0"});
    let message = format!("{}.{}", b64_json(&header), b64_json(&claims));
    let secret = jsonwebtoken::EncodingKey::from_secret(b"secret");
    let mac = jsonwebtoken::crypto::sign(message.as_bytes(), &secret, Algorithm::HS256).unwrap();
    assert_eq!(f.answer(Some(&format!("{message}.{mac}"))).await, invalid_proof(), "HS256");
}

async fn malformed_proofs_are_refused(backend: Backend) {
    let f = fixture(backend).await;
    let claims = proof_claims("POST", &f.token_url(), NOW, None);
    let mut wrong_type = f.key.proof_header();
    wrong_type["typ"] = json!("JWT");
    let mut no_jti = claims.clone();
    no_jti.as_object_mut().unwrap().remove("jti");
    let mut no_iat = claims.clone();
    no_iat.as_object_mut().unwrap().remove("iat");
    let mut jku = f.key.proof_header();
    jku["jku"] = json!("https://attacker.example/jwks");
    for (why, proof) in [
        ("typ JWT", f.key.proof_with(&wrong_type, &claims)),
        ("no jti", f.key.proof_with(&f.key.proof_header(), &no_jti)),
        ("no iat", f.key.proof_with(&f.key.proof_header(), &no_iat)),
        ("jku", f.key.proof_with(&jku, &claims)),
        ("not a JWT", "not-a-jwt".to_owned()),
        ("empty", String::new()),
        ("too long", "a".repeat(9000)),
    ] {
        assert_eq!(f.answer(Some(&proof)).await, invalid_proof(), "{why}");
    }
    // Two DPoP headers.
    let response = f
        .server
        .http
        .post(f.token_url())
        .header("authorization", basic_header(CC_CLIENT.0, CC_CLIENT.1))
        .header("dpop", f.proof())
        .header("dpop", f.proof())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(response).await, invalid_proof(), "two proofs");
}

async fn a_client_registered_for_dpop_must_send_a_proof(backend: Backend) {
    let f = fixture(backend).await;
    let id = ClientId::parse(CC_CLIENT.0).unwrap();
    let mut client = f.stores.clients.client(&id).await.unwrap().unwrap();
    client.dpop_bound_access_tokens = true;
    assert!(f.stores.clients.update_client(&client).await.unwrap());
    f.clock.advance(DEFAULT_CLIENT_CACHE_TTL);
    let proof = f.proof();
    assert_eq!(f.answer(None).await, invalid_proof(), "no proof");
    let body: Value = f.token_with(Some(&proof)).await.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
}

async fn a_refresh_with_a_proof_binds_the_new_access_token_and_never_the_refresh_token(
    backend: Backend,
) {
    let f = fixture(backend).await;
    let login = f
        .server
        .http
        .post(f.token_url())
        .header("authorization", basic_header(APP_CLIENT.0, APP_CLIENT.1))
        .header("dpop", f.proof())
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-password-1"),
        ])
        .send()
        .await
        .unwrap();
    let login: Value = login.json().await.unwrap();
    assert_eq!(login["token_type"], "DPoP");
    let refresh = async |token: &str, proof: Option<String>| -> Value {
        let mut request = f
            .server
            .http
            .post(f.token_url())
            .header("authorization", basic_header(APP_CLIENT.0, APP_CLIENT.1))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", token)]);
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    };
    // The refresh token of a confidential client is not bound: it refreshes without a proof.
    let unbound = refresh(login["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(unbound["token_type"], "Bearer");
    assert_eq!(claims_of(unbound["access_token"].as_str().unwrap()).get("cnf"), None);
    // With a proof, by any key the client holds now, the new access token is bound to it.
    let next_key = ClientKey::generate(Algorithm::EdDSA);
    let proof = next_key.proof("POST", &f.token_url(), NOW, None);
    let bound = refresh(unbound["refresh_token"].as_str().unwrap(), Some(proof)).await;
    assert_eq!(bound["token_type"], "DPoP");
    let cnf = &claims_of(bound["access_token"].as_str().unwrap())["cnf"];
    assert_eq!(cnf, &json!({"jkt": next_key.thumbprint()}));
}

async fn a_bound_token_revokes_itself_only_as_dpop_with_a_proof_by_its_key(backend: Backend) {
    let f = fixture(backend).await;
    let body: Value = f.token_with(Some(&f.proof())).await.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let revoke_url = f.server.url("/oauth2/revoke");
    let revoke = async |scheme: &str, proof| revoke_self_as(&f.server, scheme, token, proof).await;
    let thief = ClientKey::generate(Algorithm::ES256);
    let refused = [
        ("as Bearer", revoke("Bearer", None).await, (401, "invalid_token".to_owned())),
        (
            "as Bearer with a proof",
            revoke("Bearer", Some(f.key.proof("POST", &revoke_url, NOW, Some(token)))).await,
            (401, "invalid_token".to_owned()),
        ),
        ("as DPoP without a proof", revoke("DPoP", None).await, rejected_proof()),
        (
            "a proof by another key",
            revoke("DPoP", Some(thief.proof("POST", &revoke_url, NOW, Some(token)))).await,
            rejected_proof(),
        ),
        (
            "a proof without ath",
            revoke("DPoP", Some(f.key.proof("POST", &revoke_url, NOW, None))).await,
            rejected_proof(),
        ),
        (
            "a proof for the token URL",
            revoke("DPoP", Some(f.key.proof("POST", &f.token_url(), NOW, Some(token)))).await,
            rejected_proof(),
        ),
    ];
    for (why, answer, expected) in refused {
        assert_eq!(answer, expected, "{why}");
    }
    let as_bearer = f.server.http.post(&revoke_url).bearer_auth(token).send().await.unwrap();
    let challenge = as_bearer.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.ends_with(r#"DPoP algs="ES256 EdDSA RS256 PS256""#), "{challenge}");
    assert_eq!(introspect(&f.server, CC_CLIENT, token).await["active"], true, "still live");
    let proof = f.key.proof("POST", &revoke_url, NOW, Some(token));
    assert_eq!(revoke("DPoP", Some(proof)).await.0, 200);
    assert_eq!(introspect(&f.server, CC_CLIENT, token).await, json!({"active": false}));
    // An unbound token presented with the DPoP scheme is refused.
    let bearer: Value = f.token_with(None).await.json().await.unwrap();
    let bearer = bearer["access_token"].as_str().unwrap();
    let response = f
        .server
        .http
        .post(&revoke_url)
        .header("authorization", format!("DPoP {bearer}"))
        .header("dpop", f.key.proof("POST", &revoke_url, NOW, Some(bearer)))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(response).await, (401, "invalid_token".to_owned()));
}

/// A bad proof with a bound token at a protected route: RFC 9449 §7.1's 401.
fn rejected_proof() -> (u16, String) {
    (401, "invalid_dpop_proof".to_owned())
}
