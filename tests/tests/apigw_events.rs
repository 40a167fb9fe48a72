//! Handler tests: real API Gateway HTTP API (payload v2) events from `tests/events`, through the
//! same entry points the Lambda functions' `main.rs` call.

use integration_tests::{
    APP_CLIENT, AUDIENCE, event, event_edited, event_from_form, event_with_token, router,
};
use serde_json::Value;
use token_service::api;
use token_service::api::Router;
use token_service::clock::{Clock, SystemClock};
use token_service::jwt::AccessTokens;
use token_service::keys::SigningAlgorithm;

const ISSUER: &str = "https://abc123.execute-api.eu-west-1.amazonaws.com";

fn body(response: &lambda_http::Response<lambda_http::Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).expect("JSON body")
}

#[tokio::test]
async fn basic_client_credentials_event_returns_a_token() {
    let (router, keys) = router(ISSUER, SigningAlgorithm::ES256).await;
    let response =
        api::token_endpoint(&router.token, event("token-client-credentials-basic.json")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = body(&response);
    assert_eq!(body["scope"], "read");
    let verifier = AccessTokens::new(keys.verification_keys(), ISSUER.into(), AUDIENCE.into());
    let claims =
        verifier.verify(body["access_token"].as_str().unwrap(), SystemClock.now()).unwrap();
    assert_eq!(claims.client_id, "cc-client");
}

#[tokio::test]
async fn base64_encoded_form_body_event_is_decoded() {
    let (router, _) = router(ISSUER, SigningAlgorithm::ES256).await;
    let response =
        api::token_endpoint(&router.token, event("token-client-credentials-body-base64.json"))
            .await;
    assert_eq!(response.status(), 200, "{}", body(&response));
    assert_eq!(body(&response)["expires_in"], 120);
}

#[tokio::test]
async fn wrong_secret_event_is_401_with_basic_challenge() {
    let (router, _) = router(ISSUER, SigningAlgorithm::ES256).await;
    let response = api::token_endpoint(&router.token, event("token-wrong-secret-basic.json")).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Basic realm=\"token-service\"");
    assert_eq!(body(&response)["error"], "invalid_client");
}

#[tokio::test]
async fn json_body_event_is_invalid_request() {
    let (router, _) = router(ISSUER, SigningAlgorithm::ES256).await;
    let response = api::token_endpoint(&router.token, event("token-json-body.json")).await;
    assert_eq!(response.status(), 400);
    assert_eq!(body(&response)["error"], "invalid_request");
}

#[tokio::test]
async fn jwks_event_returns_the_current_key() {
    let (router, keys) = router(ISSUER, SigningAlgorithm::EdDSA).await;
    let response = api::discovery_endpoint(&router.discovery, event("keys-jwks.json")).await;
    assert_eq!(response.status(), 200);
    let jwks = body(&response);
    assert_eq!(jwks["keys"][0]["kid"], keys.current().kid.as_str());
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
}

#[tokio::test]
async fn metadata_event_names_the_deployed_issuer() {
    let (router, _) = router(ISSUER, SigningAlgorithm::ES256).await;
    let response = api::discovery_endpoint(&router.discovery, event("keys-metadata.json")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body(&response)["token_endpoint"], format!("{ISSUER}/oauth2/token"));
}

/// A password login as alice through the router, returning (access token, refresh token).
async fn alice_tokens(router: &Router) -> (String, String) {
    let form = format!(
        "grant_type=password&username=alice&password=alice-password-1&client_id={}&client_secret={}",
        APP_CLIENT.0, APP_CLIENT.1
    );
    let response = api::token_endpoint(&router.token, event_from_form(&form)).await;
    let body = body(&response);
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn introspect(router: &Router, token: &str) -> Value {
    let response = api::introspect_endpoint(
        &router.introspection,
        event_with_token("introspect-basic.json", token),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    body(&response)
}

#[tokio::test]
async fn introspect_event_describes_an_active_token() {
    let (router, _) = router(ISSUER, SigningAlgorithm::ES256).await;
    let (access, _) = alice_tokens(&router).await;
    let answer = introspect(&router, &access).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["username"], "alice");
}

#[tokio::test]
async fn rfc7009_revoke_event_revokes_the_grant() {
    let (router, _) = router(ISSUER, SigningAlgorithm::ES256).await;
    let (access, refresh) = alice_tokens(&router).await;
    let response = api::revoke_endpoint(
        &router.revocation,
        event_with_token("revoke-rfc7009-basic.json", &refresh),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.body().as_ref().is_empty());
    assert_eq!(introspect(&router, &access).await, serde_json::json!({"active": false}));
}

#[tokio::test]
async fn revoking_unknown_token_event_returns_200() {
    let (router, _) = router(ISSUER, SigningAlgorithm::ES256).await;
    let response =
        api::revoke_endpoint(&router.revocation, event("revoke-unknown-token-base64.json")).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn bearer_logout_event_revokes_the_token() {
    let (router, _) = router(ISSUER, SigningAlgorithm::ES256).await;
    let (access, _) = alice_tokens(&router).await;
    let other_client =
        [("{{TOKEN}}", access.as_str()), ("client_id=app-client", "client_id=other-app")];
    let mismatch = api::revoke_endpoint(
        &router.revocation,
        event_edited("revoke-bearer-logout.json", &other_client),
    )
    .await;
    assert_eq!(mismatch.status(), 400, "the query's client_id reaches the handler and is checked");
    let response = api::revoke_endpoint(
        &router.revocation,
        event_with_token("revoke-bearer-logout.json", &access),
    )
    .await;
    assert_eq!(response.status(), 200, "{}", body(&response));
    assert_eq!(body(&response), serde_json::json!({}));
    assert_eq!(introspect(&router, &access).await, serde_json::json!({"active": false}));
    let again = api::revoke_endpoint(
        &router.revocation,
        event_with_token("revoke-bearer-logout.json", &access),
    )
    .await;
    assert_eq!(again.status(), 401);
    assert_eq!(body(&again)["error"], "invalid_token");
}

#[tokio::test]
async fn batch_revoke_event_counts_without_revoking_on_a_dry_run() {
    use std::sync::Arc;
    use token_service::clock::ManualClock;
    // The fixture's creationBefore is 2026-11-21T10:00:00.250Z: it rounds up to :01.
    let cutoff = 1_795_255_201;
    let clock = Arc::new(ManualClock::new(cutoff - 1));
    let (router, _) =
        integration_tests::router_with_clock(ISSUER, SigningAlgorithm::ES256, clock.clone()).await;
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        integration_tests::ADMIN_CLIENT.0,
        integration_tests::ADMIN_CLIENT.1
    );
    let admin =
        body(&api::token_endpoint(&router.token, event_from_form(&form)).await)["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
    clock.advance(60);
    let response = api::batch_revoke_endpoint(
        &router.batch,
        event_with_token("batch-revoke-dry-run.json", &admin),
    )
    .await;
    assert_eq!(response.status(), 200, "{}", body(&response));
    assert_eq!(
        body(&response),
        serde_json::json!({"count": 1}),
        "the caller's own token, issued before the cutoff"
    );
    assert_eq!(introspect(&router, &admin).await["active"], true, "a dry run revokes nothing");
}

/// No input makes a handler panic or answer 5xx: thousands of requests built from a fixed-seed
/// generator (so a failure replays exactly) mixing real parameter names, real and broken
/// credentials, percent-escapes, invalid UTF-8, control characters, overlong values and raw
/// bytes, sent to every route through the same router the functions use.
#[tokio::test]
async fn arbitrary_requests_never_panic_or_answer_5xx() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let (router, _) = router(ISSUER, SigningAlgorithm::ES256).await;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    let paths = [
        "/oauth2/token",
        "/oauth2/revoke",
        "/oauth2/introspect",
        "/oauth2/revoke/batch",
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/oauth2/revoke?client_id=cc-client",
        "/nope",
    ];
    let names = [
        "grant_type",
        "scope",
        "username",
        "password",
        "refresh_token",
        "token",
        "token_type_hint",
        "client_id",
        "client_secret",
        "tenant_path",
        "access-token-lifetime",
    ];
    let values = [
        "client_credentials",
        "password",
        "refresh_token",
        "alice",
        "alice-password-1",
        "/acme",
        "/acme/sales",
        "read write",
        "access_token",
        "60",
        "0",
        "-1",
        "99999999999999999999999",
        "%FF",
        "%",
        "%zz",
        "+",
        "%00",
        "é",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.e30.",
        "\u{202e}",
        "AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "cc-client",
    ];
    let basic =
        |id: &str, secret: &str| format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
    let authorizations = [
        String::new(),
        basic("cc-client", "cc-client-secret-0123456789abcdefghij"),
        basic(APP_CLIENT.0, APP_CLIENT.1),
        basic("admin-client", "admin-client-secret-0123456789abcdefgh"),
        basic("cc-client", "wrong"),
        "Basic %%%".into(),
        "Basic".into(),
        "Bearer".into(),
        "Bearer eyJhbGciOiJFUzI1NiJ9.e30.AA".into(),
        "bearer  a.b.c  ".into(),
        "Digest x".into(),
    ];
    let content_types = [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=latin1",
        "application/json",
        "text/plain",
        "",
    ];
    for round in 0..1500 {
        let mut body: Vec<u8> = Vec::new();
        match next(4) {
            0 => body.extend((0..next(300)).map(|_| next(256) as u8)),
            1 => body.extend_from_slice(
                br#"{"dryRun": true, "creationBefore": "2020-01-01T00:00:00Z"}"#,
            ),
            _ => {
                for i in 0..next(8) {
                    if i > 0 {
                        body.push(b'&');
                    }
                    body.extend_from_slice(names[next(names.len())].as_bytes());
                    if next(5) > 0 {
                        body.push(b'=');
                        let value = match next(6) {
                            0 => "x".repeat(next(3000)),
                            1 => (0..next(40)).map(|_| char::from(next(128) as u8)).collect(),
                            _ => values[next(values.len())].to_owned(),
                        };
                        body.extend_from_slice(value.as_bytes());
                    }
                }
            }
        }
        let mut request = lambda_http::Request::new(lambda_http::Body::Binary(body.clone()));
        *request.method_mut() =
            [http::Method::POST, http::Method::POST, http::Method::GET, http::Method::PUT][next(4)]
                .clone();
        *request.uri_mut() = paths[next(paths.len())].parse().unwrap();
        let headers = request.headers_mut();
        let authorization = &authorizations[next(authorizations.len())];
        if !authorization.is_empty() {
            headers.insert("authorization", authorization.parse().unwrap());
            if next(10) == 0 {
                headers.append("authorization", "Basic eDp5".parse().unwrap());
            }
        }
        let content_type = content_types[next(content_types.len())];
        if !content_type.is_empty() {
            headers.insert("content-type", content_type.parse().unwrap());
        }
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let response = router.handle(request).await;
        assert!(
            response.status().as_u16() < 500,
            "round {round}: {method} {uri} {:?} -> {}",
            String::from_utf8_lossy(&body),
            response.status()
        );
    }
}
