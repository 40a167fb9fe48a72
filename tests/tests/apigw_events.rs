//! Handler tests: real API Gateway HTTP API (payload v2) events from `tests/events`, through the
//! same entry points the Lambda functions' `main.rs` call.

use integration_tests::{AUDIENCE, event, router};
use serde_json::Value;
use token_service::api;
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
    let verifier = AccessTokens::new(keys, ISSUER.into(), AUDIENCE.into());
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
    let response = api::discovery_endpoint(&router.discovery, event("jwks.json")).await;
    assert_eq!(response.status(), 200);
    let jwks = body(&response);
    assert_eq!(jwks["keys"][0]["kid"], keys.current().kid.as_str());
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
}

#[tokio::test]
async fn metadata_event_names_the_deployed_issuer() {
    let (router, _) = router(ISSUER, SigningAlgorithm::ES256).await;
    let response = api::discovery_endpoint(&router.discovery, event("metadata.json")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body(&response)["token_endpoint"], format!("{ISSUER}/oauth2/token"));
}
