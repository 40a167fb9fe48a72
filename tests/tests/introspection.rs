//! `POST /oauth2/introspect` on both stores, and forged tokens, which must be inactive to
//! introspection and refused as bearers.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use integration_tests::flows::{
    error_of, introspect, introspect_as, is_active, login, post_body, post_form, revoke_self,
    service_token,
};
use integration_tests::forgery::{at_jwt_header, attacker_key, claims_of, forgeries, signed};
use integration_tests::{
    APP_CLIENT, AUDIENCE, CC_CLIENT, OTHER_APP, SALES_APP, TestServer, on_both_stores,
};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use token_service::keys::SigningAlgorithm;

on_both_stores!(
    introspection_requires_client_authentication,
    introspection_requires_a_token,
    introspection_accepts_body_credentials_but_not_two_methods_at_once,
    introspection_requires_a_utf8_form_body,
    active_access_tokens_are_described_in_full,
    password_tokens_carry_the_username,
    tokens_outside_the_callers_tenant_subtree_are_inactive,
    refresh_tokens_are_active_only_for_their_client,
    used_and_revoked_tokens_are_inactive,
    forged_tokens_are_inactive_everywhere,
    a_wrong_hint_still_finds_the_token_at_introspection,
    claims_of_the_wrong_json_type_are_inactive_and_refused_as_bearers,
    unknown_and_malformed_tokens_are_inactive_and_nothing_more,
);

async fn introspection_requires_client_authentication(server: TestServer) {
    let token = service_token(&server).await;
    for client in [("cc-client", "wrong"), ("no-such-client", "secret")] {
        let response = introspect_as(&server, client, &[("token", &token)]).await;
        assert_eq!(
            response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()),
            Some("Basic realm=\"token-service\""),
            "{client:?}: the challenge of the scheme used"
        );
        assert_eq!(error_of(response).await, (401, "invalid_client".into()), "{client:?}");
    }
    let anonymous = server
        .http
        .post(server.url("/oauth2/introspect"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(anonymous).await, (401, "invalid_client".into()));
}

/// RFC 6749 §2.3.1: credentials in the body work as Basic does, and wrong ones are 401; both
/// methods in one request are `invalid_request`.
async fn introspection_accepts_body_credentials_but_not_two_methods_at_once(server: TestServer) {
    let token = service_token(&server).await;
    let (id, secret) = CC_CLIENT;
    let form = [("token", token.as_str()), ("client_id", id), ("client_secret", secret)];
    let response = post_form(&server, "/oauth2/introspect", None, &form).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["active"], true);
    let wrong = [("token", token.as_str()), ("client_id", id), ("client_secret", "wrong")];
    let response = post_form(&server, "/oauth2/introspect", None, &wrong).await;
    assert_eq!(error_of(response).await, (401, "invalid_client".into()));
    for form in [
        vec![("token", token.as_str()), ("client_secret", secret)],
        vec![("token", token.as_str()), ("client_id", id), ("client_secret", secret)],
        vec![("token", token.as_str()), ("client_id", APP_CLIENT.0)],
    ] {
        let response = post_form(&server, "/oauth2/introspect", Some(CC_CLIENT), &form).await;
        assert_eq!(error_of(response).await, (400, "invalid_request".into()), "{form:?}");
    }
}

/// RFC 7662 §2.1: the request is an `application/x-www-form-urlencoded` body (in UTF-8); any
/// other is `invalid_request`, not an answer about the token.
async fn introspection_requires_a_utf8_form_body(server: TestServer) {
    let token = service_token(&server).await;
    let form_body = format!("token={token}");
    for (content_type, body) in [
        (None, form_body.clone()),
        (Some("application/json"), json!({ "token": token }).to_string()),
        (Some("text/plain"), form_body.clone()),
        (Some("application/x-www-form-urlencoded; charset=iso-8859-1"), form_body.clone()),
    ] {
        let response =
            post_body(&server, "/oauth2/introspect", Some(CC_CLIENT), content_type, body).await;
        assert_eq!(error_of(response).await, (400, "invalid_request".into()), "{content_type:?}");
    }
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

async fn forged_tokens_are_inactive_everywhere(server: TestServer) {
    let genuine = service_token(&server).await;
    for (name, forged) in forgeries(&genuine, &server.keys) {
        assert_eq!(
            introspect(&server, APP_CLIENT, &forged).await,
            json!({"active": false}),
            "{name}"
        );
        let response = revoke_self(&server, &forged).send().await.unwrap();
        assert_eq!(error_of(response).await, (401, "invalid_token".into()), "{name}");
    }
    assert!(is_active(&server, &genuine).await, "a refused forgery revokes nothing");
}

async fn a_wrong_hint_still_finds_the_token_at_introspection(server: TestServer) {
    let tokens = login(&server).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    for (token, hint, token_type) in [
        (access, "refresh_token", "Bearer"),
        (access, "id_token", "Bearer"),
        (refresh_token, "access_token", "refresh_token"),
        (refresh_token, "id_token", "refresh_token"),
    ] {
        let form = [("token", token), ("token_type_hint", hint)];
        let response = introspect_as(&server, APP_CLIENT, &form).await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["active"], true, "{hint}: {answer}");
        assert_eq!(answer["token_type"], token_type, "{hint}");
    }
}

/// Genuinely signed by the server's own key, with every other claim intact: only the type of
/// one claim is wrong. The same payload with correct types is active (the control).
async fn claims_of_the_wrong_json_type_are_inactive_and_refused_as_bearers(server: TestServer) {
    let genuine = service_token(&server).await;
    let claims = claims_of(&genuine);
    let sign = |claims: &Value| {
        server.keys.current().sign_json(&serde_json::to_vec(claims).unwrap()).unwrap()
    };
    assert_eq!(introspect(&server, APP_CLIENT, &sign(&claims)).await["active"], true, "control");
    let exp = claims["exp"].as_u64().unwrap();
    for (claim, value) in [
        ("exp", json!(exp.to_string())),
        ("exp", json!(exp as f64 + 0.5)),
        ("iat", json!(claims["iat"].as_u64().unwrap().to_string())),
        ("nbf", json!("0")),
        ("aud", json!([AUDIENCE])),
        ("client_id", json!(1)),
    ] {
        let mut wrong = claims.clone();
        wrong[claim] = value.clone();
        let forged = sign(&wrong);
        assert_eq!(
            introspect(&server, APP_CLIENT, &forged).await,
            json!({"active": false}),
            "{claim}: {value}"
        );
        let response = revoke_self(&server, &forged).send().await.unwrap();
        assert_eq!(error_of(response).await, (401, "invalid_token".into()), "{claim}: {value}");
    }
    assert_eq!(introspect(&server, APP_CLIENT, &genuine).await["active"], true);
}

async fn unknown_and_malformed_tokens_are_inactive_and_nothing_more(server: TestServer) {
    let grant_shaped = "AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let long = "a".repeat(9 * 1024);
    for token in ["garbage", "a.b.c", "..", grant_shaped, long.as_str(), "é\u{0}"] {
        for hint in [None, Some("access_token"), Some("refresh_token")] {
            let mut form = vec![("token", token)];
            form.extend(hint.map(|h| ("token_type_hint", h)));
            let response = introspect_as(&server, APP_CLIENT, &form).await;
            assert_eq!(response.status(), 200, "{token} {hint:?}");
            assert_eq!(response.json::<Value>().await.unwrap(), json!({"active": false}));
        }
    }
}

/// RFC 8725 §3.10 / the JWT CVE record: a `jku` or `x5u` header is never fetched. Both point at
/// a listener of this test, which counts the connections it receives: there must be none.
#[tokio::test]
async fn jku_and_x5u_headers_are_never_fetched() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let server = TestServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok(_socket) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let genuine = service_token(&server).await;
    let claims = claims_of(&genuine);
    let (attacker, attacker_kid) = attacker_key(SigningAlgorithm::ES256);
    let real_kid = server.keys.current().kid.clone();
    let mut forgeries = Vec::new();
    for kid in [attacker_kid.as_str(), real_kid.as_str(), "remote-only-kid"] {
        let mut jku = at_jwt_header(Algorithm::ES256, kid);
        jku.jku = Some(url.clone());
        let mut x5u = jku.clone();
        x5u.jku = None;
        x5u.x5u = Some(url.clone());
        let mut no_kid = jku.clone();
        no_kid.kid = None;
        no_kid.x5u = Some(url.clone());
        for header in [jku, x5u, no_kid] {
            forgeries.push(signed(header, &claims, &attacker));
        }
    }
    for forged in &forgeries {
        assert_eq!(introspect(&server, APP_CLIENT, forged).await, json!({"active": false}));
        let response = revoke_self(&server, forged).send().await.unwrap();
        assert_eq!(error_of(response).await, (401, "invalid_token".into()));
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0, "a key URL in a header was followed");
    assert_eq!(introspect(&server, APP_CLIENT, &genuine).await["active"], true, "control");
}

/// Algorithm confusion on an RS256 server: HS256 tokens keyed with the published RSA public key
/// (the JWK, its modulus, the whole JWKS) under the genuine kid are inactive and refused.
#[tokio::test]
async fn rsa_public_key_as_an_hmac_secret_is_inactive() {
    let server = TestServer::start_with(SigningAlgorithm::RS256).await;
    let genuine = service_token(&server).await;
    assert_eq!(jsonwebtoken::decode_header(&genuine).unwrap().alg, Algorithm::RS256);
    let claims = claims_of(&genuine);
    let jwks = server.get_json("/.well-known/jwks.json").await;
    let jwk = &jwks["keys"][0];
    let kid = jwk["kid"].as_str().unwrap();
    let n = jwk["n"].as_str().unwrap();
    let secrets = [
        serde_json::to_vec(jwk).unwrap(),
        serde_json::to_vec(&jwks).unwrap(),
        n.as_bytes().to_vec(),
        URL_SAFE_NO_PAD.decode(n).unwrap(),
    ];
    for secret in &secrets {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let forged =
                signed(at_jwt_header(alg, kid), &claims, &EncodingKey::from_secret(secret));
            assert_eq!(
                introspect(&server, APP_CLIENT, &forged).await,
                json!({"active": false}),
                "{alg:?}"
            );
            let response = revoke_self(&server, &forged).send().await.unwrap();
            assert_eq!(error_of(response).await, (401, "invalid_token".into()));
        }
    }
    assert_eq!(introspect(&server, APP_CLIENT, &genuine).await["active"], true, "control");
}

/// Introspection on a clock the test moves, on both stores.
mod clocked {
    use std::sync::Arc;

    use integration_tests::flows::{introspect, service_token};
    use integration_tests::{Backend, CC_CLIENT, on_both_backends};
    use serde_json::json;
    use token_service::clock::ManualClock;
    use token_service::jwt::CLOCK_LEEWAY_SECS;

    on_both_backends!(expired_tokens_are_inactive);

    /// A genuinely signed token whose time has passed is inactive too: cc-client's tokens live
    /// 600 s, and the leeway's last second is the last one it is active in.
    async fn expired_tokens_are_inactive(backend: Backend) {
        let clock = Arc::new(ManualClock::new(1_800_000_000));
        let server = backend.server(clock.clone()).await;
        let token = service_token(&server).await;
        assert_eq!(introspect(&server, CC_CLIENT, &token).await["active"], true);
        clock.advance(600 + CLOCK_LEEWAY_SECS - 1);
        assert_eq!(introspect(&server, CC_CLIENT, &token).await["active"], true, "within leeway");
        clock.advance(1);
        assert_eq!(introspect(&server, CC_CLIENT, &token).await, json!({"active": false}));
    }
}
