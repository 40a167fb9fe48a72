//! `private_key_jwt` (RFC 7523 §2.2, §3): a client registered with public keys authenticates at
//! the token, revocation and introspection endpoints with a JWT signed by one of them, and with
//! nothing else. Every failure is the one `401 invalid_client`.

use std::sync::Arc;

use integration_tests::flows::error_of;
use integration_tests::jose::{ClientKey, alg_name, assertion_claims, assertion_form, b64_json};
use integration_tests::{Backend, CC_CLIENT, TestServer, on_both_backends};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use token_service::clock::{Clock, ManualClock};
use token_service::domain::{
    Client, ClientId, ClientJwks, Credentials, GrantType, ScopeSet, TenantPath,
};
use token_service::store::Stores;

on_both_backends!(
    a_key_client_gets_tokens_revokes_and_introspects_with_every_allowed_algorithm,
    an_assertion_is_accepted_once,
    an_assertion_for_another_audience_is_refused,
    assertions_without_a_valid_lifetime_or_jti_are_refused,
    alg_none_and_hmac_assertions_are_refused,
    a_key_of_another_client_is_refused,
    an_assertion_naming_its_key_elsewhere_is_refused,
    a_secret_client_cannot_authenticate_with_an_assertion,
    a_key_registered_after_the_client_was_cached_works_at_once,
);

const NOW: u64 = 1_800_000_000;
const KEY_CLIENT: &str = "signer";
const OTHER_KEY_CLIENT: &str = "other-signer";

/// Registers `id` in /acme for client_credentials with `keys`.
async fn register(stores: &Stores, id: &str, keys: &[&ClientKey]) {
    let jwks = json!({ "keys": keys.iter().map(|key| key.public_jwk()).collect::<Vec<_>>() });
    let mut client = Client::new(
        ClientId::parse(id).unwrap(),
        Credentials::PrivateKeyJwt { jwks: ClientJwks::parse(jwks).unwrap() },
        TenantPath::parse("/acme").unwrap(),
    );
    client.grants = [GrantType::ClientCredentials].into();
    client.scopes = ScopeSet::parse("read write").unwrap();
    assert!(stores.clients.create_client(&client).await.unwrap());
}

struct Fixture {
    server: TestServer,
    stores: Stores,
    clock: Arc<ManualClock>,
    key: ClientKey,
}

async fn fixture(backend: Backend) -> Fixture {
    let clock = Arc::new(ManualClock::new(NOW));
    let (server, stores) = backend.server_and_stores(clock.clone()).await;
    let key = ClientKey::generate(Algorithm::ES256);
    register(&stores, KEY_CLIENT, &[&key]).await;
    Fixture { server, stores, clock, key }
}

/// POSTs `form` plus the assertion's fields to `path`.
async fn post(
    server: &TestServer,
    path: &str,
    assertion: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut fields: Vec<(&str, String)> =
        form.iter().map(|(name, value)| (*name, (*value).to_owned())).collect();
    fields.extend(assertion_form(assertion));
    server.http.post(server.url(path)).form(&fields).send().await.unwrap()
}

async fn token_with(server: &TestServer, assertion: &str) -> reqwest::Response {
    post(server, "/oauth2/token", assertion, &[("grant_type", "client_credentials")]).await
}

/// The answer to a client_credentials request with `assertion`: 200, or the error.
async fn token_answer(server: &TestServer, assertion: &str) -> (u16, String) {
    let response = token_with(server, assertion).await;
    match response.status().as_u16() {
        200 => (200, String::new()),
        _ => error_of(response).await,
    }
}

fn invalid_client() -> (u16, String) {
    (401, "invalid_client".to_owned())
}

fn token_url(server: &TestServer) -> String {
    server.url("/oauth2/token")
}

async fn a_key_client_gets_tokens_revokes_and_introspects_with_every_allowed_algorithm(
    backend: Backend,
) {
    let f = fixture(backend).await;
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256, Algorithm::PS256] {
        let key = ClientKey::generate(alg);
        let id = format!("signer-{}", alg_name(alg).to_ascii_lowercase());
        register(&f.stores, &id, &[&key]).await;
        let now = f.clock.now();
        // aud: the issuer at one endpoint, the endpoint's own URL at the others.
        let response = token_with(&f.server, &key.assertion(&id, &f.server.base_url, now)).await;
        assert_eq!(response.status(), 200, "{alg:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        let token = body["access_token"].as_str().unwrap();

        let introspect_url = f.server.url("/oauth2/introspect");
        let assertion = key.assertion(&id, &introspect_url, now);
        let answer = post(&f.server, "/oauth2/introspect", &assertion, &[("token", token)]).await;
        assert_eq!(answer.status(), 200, "{alg:?}");
        let answer: Value = answer.json().await.unwrap();
        assert_eq!(
            (answer["active"].as_bool(), answer["client_id"].as_str()),
            (Some(true), Some(id.as_str()))
        );

        let assertion = key.assertion(&id, &f.server.url("/oauth2/revoke"), now);
        let revoked = post(&f.server, "/oauth2/revoke", &assertion, &[("token", token)]).await;
        assert_eq!(revoked.status(), 200, "{alg:?}");
        let assertion = key.assertion(&id, &introspect_url, now);
        let answer = post(&f.server, "/oauth2/introspect", &assertion, &[("token", token)]).await;
        let answer: Value = answer.json().await.unwrap();
        assert_eq!(answer, json!({"active": false}), "{alg:?}: revoked");
    }
}

async fn an_assertion_is_accepted_once(backend: Backend) {
    let f = fixture(backend).await;
    let assertion = f.key.assertion(KEY_CLIENT, &token_url(&f.server), NOW);
    assert_eq!(token_answer(&f.server, &assertion).await.0, 200);
    assert_eq!(token_answer(&f.server, &assertion).await, invalid_client(), "replayed");
    // Still refused at another endpoint whose URL it does not name, and a minute on.
    f.clock.advance(50);
    assert_eq!(token_answer(&f.server, &assertion).await, invalid_client(), "replayed later");
    let fresh = f.key.assertion(KEY_CLIENT, &token_url(&f.server), f.clock.now());
    assert_eq!(token_answer(&f.server, &fresh).await.0, 200, "a new jti works");
}

async fn an_assertion_for_another_audience_is_refused(backend: Backend) {
    let f = fixture(backend).await;
    let wrong = [
        "https://other-issuer.example".to_owned(),
        f.server.url("/oauth2/revoke"),
        format!("{}/", f.server.base_url),
        String::new(),
    ];
    for aud in wrong {
        let assertion = f.key.assertion(KEY_CLIENT, &aud, NOW);
        assert_eq!(token_answer(&f.server, &assertion).await, invalid_client(), "aud {aud:?}");
    }
    let mut claims = assertion_claims(KEY_CLIENT, "https://elsewhere", NOW);
    claims["aud"] = json!(["https://elsewhere", f.server.base_url]);
    let listed = f.key.assertion_with(&claims);
    assert_eq!(token_answer(&f.server, &listed).await.0, 200, "a list naming the issuer");
}

async fn assertions_without_a_valid_lifetime_or_jti_are_refused(backend: Backend) {
    let f = fixture(backend).await;
    let url = token_url(&f.server);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = assertion_claims(KEY_CLIENT, &url, NOW);
        change(&mut claims);
        f.key.assertion_with(&claims)
    };
    let refused = [
        ("no exp", with(&|c| drop(c.as_object_mut().unwrap().remove("exp")))),
        ("exp 10 minutes ahead", with(&|c| c["exp"] = json!(NOW + 600))),
        ("expired", with(&|c| c["exp"] = json!(NOW - 60))),
        ("exp as a string", with(&|c| c["exp"] = json!((NOW + 60).to_string()))),
        ("no jti", with(&|c| drop(c.as_object_mut().unwrap().remove("jti")))),
        ("empty jti", with(&|c| c["jti"] = json!(""))),
        ("iat in the future", with(&|c| c["iat"] = json!(NOW + 120))),
        ("nbf in the future", with(&|c| c["nbf"] = json!(NOW + 120))),
        ("iss another client", with(&|c| c["iss"] = json!(CC_CLIENT.0))),
        ("sub another client", with(&|c| c["sub"] = json!(CC_CLIENT.0))),
    ];
    for (why, assertion) in refused {
        assert_eq!(token_answer(&f.server, &assertion).await, invalid_client(), "{why}");
    }
    let five_minutes = with(&|c| c["exp"] = json!(NOW + 300));
    assert_eq!(token_answer(&f.server, &five_minutes).await.0, 200, "exp 5 minutes ahead");
}

async fn alg_none_and_hmac_assertions_are_refused(backend: Backend) {
    let f = fixture(backend).await;
    let claims = assertion_claims(KEY_CLIENT, &token_url(&f.server), NOW);
    let none =
        format!("{}.{}.", b64_json(&json!({"alg": "none", "kid": f.key.kid})), b64_json(&claims));
    assert_eq!(token_answer(&f.server, &none).await, invalid_client(), "alg none");
    // HMAC keyed with the public key's own text: the classic algorithm confusion.
    let public = serde_json::to_vec(&f.key.public_jwk()).unwrap();
    let header = json!({"alg": "HS256", "kid": f.key.kid});
    let message = format!("{}.{}", b64_json(&header), b64_json(&claims));
    let hmac = jsonwebtoken::EncodingKey::from_secret(&public);
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &hmac, Algorithm::HS256).unwrap();
    let hmac = format!("{message}.{signature}");
    assert_eq!(token_answer(&f.server, &hmac).await, invalid_client(), "HS256");
    // The client's key signing with another algorithm than the one it is bound to.
    let rsa = ClientKey::generate(Algorithm::RS256);
    register(&f.stores, "rsa-signer", &[&rsa]).await;
    let claims = assertion_claims("rsa-signer", &token_url(&f.server), NOW);
    let header = json!({"alg": "PS256", "kid": rsa.kid});
    let ps256 = ClientKey::sign_as(&rsa, Algorithm::PS256, &header, &claims);
    assert_eq!(token_answer(&f.server, &ps256).await, invalid_client(), "RS256 key used as PS256");
}

async fn a_key_of_another_client_is_refused(backend: Backend) {
    let f = fixture(backend).await;
    let other = ClientKey::generate(Algorithm::ES256);
    register(&f.stores, OTHER_KEY_CLIENT, &[&other]).await;
    let url = token_url(&f.server);
    // Signed by the other client's key, naming it by its kid, claiming to be `signer`.
    let stolen = other.assertion(KEY_CLIENT, &url, NOW);
    assert_eq!(token_answer(&f.server, &stolen).await, invalid_client(), "another client's key");
    // The same, naming `signer` in client_id as well.
    let response = post(
        &f.server,
        "/oauth2/token",
        &stolen,
        &[("grant_type", "client_credentials"), ("client_id", KEY_CLIENT)],
    )
    .await;
    assert_eq!(error_of(response).await, invalid_client());
    // Each client's own key still works for itself.
    assert_eq!(token_answer(&f.server, &other.assertion(OTHER_KEY_CLIENT, &url, NOW)).await.0, 200);
    // client_id naming one client, the assertion another: refused.
    let mine = f.key.assertion(KEY_CLIENT, &url, NOW);
    let response = post(
        &f.server,
        "/oauth2/token",
        &mine,
        &[("grant_type", "client_credentials"), ("client_id", OTHER_KEY_CLIENT)],
    )
    .await;
    assert_eq!(error_of(response).await, invalid_client());
}

async fn an_assertion_naming_its_key_elsewhere_is_refused(backend: Backend) {
    let f = fixture(backend).await;
    let claims = assertion_claims(KEY_CLIENT, &token_url(&f.server), NOW);
    let base = json!({"alg": "ES256", "kid": f.key.kid});
    for (member, value) in [
        ("jwk", f.key.bare_jwk()),
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        ("x5c", json!(["MIIB"])),
        ("crit", json!(["exp"])),
    ] {
        let mut header = base.clone();
        header[member] = value;
        let assertion = f.key.sign(&header, &claims);
        assert_eq!(token_answer(&f.server, &assertion).await, invalid_client(), "{member}");
    }
    let unknown_kid = f.key.sign(&json!({"alg": "ES256", "kid": "not-registered"}), &claims);
    assert_eq!(token_answer(&f.server, &unknown_kid).await, invalid_client(), "unknown kid");
    let no_kid = f.key.sign(&json!({"alg": "ES256"}), &claims);
    assert_eq!(token_answer(&f.server, &no_kid).await, invalid_client(), "no kid");
}

async fn a_secret_client_cannot_authenticate_with_an_assertion(backend: Backend) {
    let f = fixture(backend).await;
    let assertion = f.key.assertion(CC_CLIENT.0, &token_url(&f.server), NOW);
    assert_eq!(token_answer(&f.server, &assertion).await, invalid_client());
    // And an assertion beside a secret is one method too many.
    let mut fields = assertion_form(&f.key.assertion(KEY_CLIENT, &token_url(&f.server), NOW));
    fields.push(("grant_type", "client_credentials".into()));
    fields.push(("client_id", KEY_CLIENT.into()));
    fields.push(("client_secret", "anything-at-all-0123456789".into()));
    let response = f.server.http.post(token_url(&f.server)).form(&fields).send().await.unwrap();
    assert_eq!(error_of(response).await, (400, "invalid_request".to_owned()));
}

/// The client record is cached by the server; a key added to it elsewhere (the admin function)
/// is used at once, as a rotated secret is.
async fn a_key_registered_after_the_client_was_cached_works_at_once(backend: Backend) {
    let f = fixture(backend).await;
    let url = token_url(&f.server);
    assert_eq!(token_answer(&f.server, &f.key.assertion(KEY_CLIENT, &url, NOW)).await.0, 200);
    let added = ClientKey::generate(Algorithm::EdDSA);
    let id = ClientId::parse(KEY_CLIENT).unwrap();
    let mut client = f.stores.clients.client(&id).await.unwrap().unwrap();
    let jwks = json!({"keys": [f.key.public_jwk(), added.public_jwk()]});
    client.credentials = Credentials::PrivateKeyJwt { jwks: ClientJwks::parse(jwks).unwrap() };
    assert!(f.stores.clients.update_client(&client).await.unwrap());
    assert_eq!(token_answer(&f.server, &added.assertion(KEY_CLIENT, &url, NOW)).await.0, 200);
}
