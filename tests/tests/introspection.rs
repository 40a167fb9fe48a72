//! `POST /oauth2/introspect` on both stores, and forged tokens, which must be inactive to
//! introspection and refused as bearers.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use integration_tests::flows::{
    error_of, introspect, introspect_as, login, revoke_self, service_token,
};
use integration_tests::{
    APP_CLIENT, AUDIENCE, CC_CLIENT, OTHER_APP, SALES_APP, TestServer, on_both_stores,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use token_service::keys::{KeySetDocument, SigningAlgorithm};

on_both_stores!(
    introspection_requires_client_authentication,
    introspection_requires_a_token,
    active_access_tokens_are_described_in_full,
    password_tokens_carry_the_username,
    tokens_outside_the_callers_tenant_subtree_are_inactive,
    refresh_tokens_are_active_only_for_their_client,
    used_and_revoked_tokens_are_inactive,
    forged_tokens_are_inactive_everywhere,
);

async fn introspection_requires_client_authentication(server: TestServer) {
    let token = service_token(&server).await;
    let response = introspect_as(&server, ("cc-client", "wrong"), &[("token", &token)]).await;
    assert_eq!(error_of(response).await, (401, "invalid_client".into()));
    let anonymous = server
        .http
        .post(server.url("/oauth2/introspect"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(anonymous).await, (401, "invalid_client".into()));
}

async fn introspection_requires_a_token(server: TestServer) {
    assert_eq!(
        error_of(introspect_as(&server, CC_CLIENT, &[]).await).await,
        (400, "invalid_request".into())
    );
}

async fn active_access_tokens_are_described_in_full(server: TestServer) {
    let token = service_token(&server).await;
    let answer = introspect(&server, APP_CLIENT, &token).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["client_id"], "cc-client");
    assert_eq!(answer["sub"], "cc-client");
    assert_eq!(answer["scope"], "read write");
    assert_eq!(answer["tenant"], "/acme");
    assert_eq!(answer["iss"], server.base_url);
    assert_eq!(answer["aud"], AUDIENCE);
    assert_eq!(answer["jti"].as_str().unwrap().len(), 22);
    assert_eq!(answer["exp"].as_u64().unwrap() - answer["iat"].as_u64().unwrap(), 600);
    assert!(answer.get("username").is_none(), "no user behind client credentials");
}

async fn password_tokens_carry_the_username(server: TestServer) {
    let tokens = login(&server).await;
    let answer = introspect(&server, CC_CLIENT, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["username"], "alice");
    assert_ne!(answer["sub"], "alice");
}

async fn tokens_outside_the_callers_tenant_subtree_are_inactive(server: TestServer) {
    let acme_token = service_token(&server).await;
    assert_eq!(introspect(&server, SALES_APP, &acme_token).await, json!({"active": false}));
    let form = [("grant_type", "password"), ("username", "bob"), ("password", "bob-password-1")];
    let sales: Value = server.token(&form, Some(SALES_APP)).await.json().await.unwrap();
    let sales_token = sales["access_token"].as_str().unwrap();
    assert_eq!(introspect(&server, SALES_APP, sales_token).await["active"], true);
    assert_eq!(
        introspect(&server, APP_CLIENT, sales_token).await["active"],
        true,
        "parent sees its subtree"
    );
}

async fn refresh_tokens_are_active_only_for_their_client(server: TestServer) {
    let tokens = login(&server).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let answer = introspect(&server, APP_CLIENT, refresh_token).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "refresh_token");
    assert_eq!(answer["username"], "alice");
    assert_eq!(introspect(&server, OTHER_APP, refresh_token).await, json!({"active": false}));
}

async fn used_and_revoked_tokens_are_inactive(server: TestServer) {
    let tokens = login(&server).await;
    let old_refresh = tokens["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", old_refresh)];
    assert_eq!(server.token(&form, Some(APP_CLIENT)).await.status(), 200);
    assert_eq!(
        introspect(&server, APP_CLIENT, old_refresh).await,
        json!({"active": false}),
        "used"
    );
    let bearer = tokens["access_token"].as_str().unwrap();
    assert_eq!(revoke_self(&server, bearer).send().await.unwrap().status(), 200);
    assert_eq!(introspect(&server, APP_CLIENT, bearer).await, json!({"active": false}), "revoked");
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// An attacker's own key, not in the server's key set.
fn attacker_key(alg: SigningAlgorithm) -> (EncodingKey, String) {
    let document = KeySetDocument::generate(alg, 0).unwrap();
    let key = &document.keys[0];
    let der = STANDARD.decode(&key.private_key).unwrap();
    let encoding = match alg {
        SigningAlgorithm::ES256 => EncodingKey::from_ec_der(&der),
        SigningAlgorithm::RS256 => EncodingKey::from_rsa_der(&der),
        SigningAlgorithm::EdDSA => EncodingKey::from_ed_der(&der),
    };
    (encoding, key.kid.clone())
}

fn signed(header: Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// Every forgery from RFC 8725 and the JWT CVE record, built on a genuine token's claims.
async fn forgeries(server: &TestServer) -> Vec<(&'static str, String)> {
    let genuine = service_token(server).await;
    let parts: Vec<&str> = genuine.split('.').collect();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let real_kid = server.keys.current().kid.clone();
    let jwks = server.get_json("/.well-known/jwks.json").await;
    let public_jwk = serde_json::to_vec(&jwks["keys"][0]).unwrap();
    let (attacker, attacker_kid) = attacker_key(SigningAlgorithm::ES256);
    let header = |alg: Algorithm, kid: &str| {
        let mut header = Header::new(alg);
        header.typ = Some("at+jwt".into());
        header.kid = Some(kid.to_owned());
        header
    };

    let mut expired = claims.clone();
    expired["iat"] = json!(1_000);
    expired["exp"] = json!(2_000);
    let mut escalated = claims.clone();
    escalated["scope"] = json!("read write admin");
    let mut embedded_jwk = header(Algorithm::ES256, &attacker_kid);
    embedded_jwk.jwk =
        Some(jsonwebtoken::jwk::Jwk::from_encoding_key(&attacker, Algorithm::ES256).unwrap());
    let mut jku = header(Algorithm::ES256, &attacker_kid);
    jku.jku = Some("https://attacker.example/jwks.json".into());
    let mut jku_real_kid = header(Algorithm::ES256, &real_kid);
    jku_real_kid.jku = Some("https://attacker.example/jwks.json".into());

    vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "at+jwt", "kid": real_kid})),
                parts[1]
            ),
        ),
        (
            "alg none, no signature part",
            format!("{}.{}", b64(&json!({"alg": "none", "typ": "at+jwt"})), parts[1]),
        ),
        (
            "HS256 keyed with the public JWK",
            signed(
                header(Algorithm::HS256, &real_kid),
                &claims,
                &EncodingKey::from_secret(&public_jwk),
            ),
        ),
        (
            "HS256 keyed with the public x",
            signed(
                header(Algorithm::HS256, &real_kid),
                &claims,
                &EncodingKey::from_secret(jwks["keys"][0]["x"].as_str().unwrap().as_bytes()),
            ),
        ),
        ("attacker key, real kid", signed(header(Algorithm::ES256, &real_kid), &claims, &attacker)),
        (
            "attacker key, unknown kid",
            signed(header(Algorithm::ES256, &attacker_kid), &claims, &attacker),
        ),
        (
            "injected kid path",
            signed(header(Algorithm::ES256, "../../../../dev/null"), &claims, &attacker),
        ),
        ("injected kid sql", signed(header(Algorithm::ES256, "x' OR '1'='1"), &claims, &attacker)),
        ("embedded jwk header", signed(embedded_jwk, &claims, &attacker)),
        ("jku header", signed(jku, &claims, &attacker)),
        ("jku header with the real kid", signed(jku_real_kid, &claims, &attacker)),
        ("tampered payload", format!("{}.{}.{}", parts[0], b64(&escalated), parts[2])),
        (
            "expired, re-signed by attacker",
            signed(header(Algorithm::ES256, &real_kid), &expired, &attacker),
        ),
        ("signature stripped", format!("{}.{}.", parts[0], parts[1])),
    ]
}

async fn forged_tokens_are_inactive_everywhere(server: TestServer) {
    for (name, forged) in forgeries(&server).await {
        assert_eq!(
            introspect(&server, APP_CLIENT, &forged).await,
            json!({"active": false}),
            "{name}"
        );
        let response = revoke_self(&server, &forged).send().await.unwrap();
        assert_eq!(error_of(response).await, (401, "invalid_token".into()), "{name}");
    }
}

/// A genuinely signed token whose time has passed is inactive too.
#[tokio::test]
async fn expired_tokens_are_inactive() {
    use std::sync::Arc;
    use token_service::clock::ManualClock;
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let server = TestServer::start_with_clock(SigningAlgorithm::ES256, clock.clone()).await;
    let token = service_token(&server).await;
    assert_eq!(introspect(&server, CC_CLIENT, &token).await["active"], true);
    clock.advance(600 + 10);
    assert_eq!(introspect(&server, CC_CLIENT, &token).await, json!({"active": false}));
}
