//! `POST /oauth2/token` over real HTTP against the local server: every row of the contract's
//! token table for the client_credentials grant.

use integration_tests::{
    AUDIENCE, CC_CLIENT, PASSWORD_ONLY_CLIENT, SPECIAL_CLIENT, TestServer, basic_header,
};
use serde_json::Value;
use token_service::clock::{Clock, SystemClock};
use token_service::jwt::AccessTokens;

async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

/// Asserts the OAuth2 error shape and the no-store headers every token endpoint answer carries.
async fn assert_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> reqwest::header::HeaderMap {
    assert_eq!(response.status().as_u16(), status);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
    let body = json(response).await;
    assert_eq!(body["error"], code, "{body}");
    assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
    headers
}

fn verifier(server: &TestServer) -> AccessTokens {
    AccessTokens::new(server.keys.clone(), server.base_url.clone(), AUDIENCE.into())
}

#[tokio::test]
async fn client_credentials_with_basic_returns_a_verifiable_token() {
    let server = TestServer::start().await;
    let response = server.token(&[("grant_type", "client_credentials")], Some(CC_CLIENT)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let body = json(response).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600, "default 3600 lowered to the client's maximum");
    assert_eq!(body["scope"], "read write", "absent scope means every allowed scope");
    assert!(body.get("refresh_token").is_none(), "client credentials get no refresh token");

    let now = SystemClock.now();
    let claims = verifier(&server).verify(body["access_token"].as_str().unwrap(), now).unwrap();
    assert_eq!(claims.sub, "cc-client");
    assert_eq!(claims.client_id, "cc-client");
    assert_eq!(claims.tenant, "/acme");
    assert_eq!(claims.scope, "read write");
    assert_eq!(claims.iss, server.base_url);
    assert_eq!(claims.aud, AUDIENCE);
    assert_eq!(claims.exp - claims.iat, 600);
    assert!(claims.iat.abs_diff(now) <= 2);
    assert_eq!(claims.jti.len(), 22);
}

#[tokio::test]
async fn client_credentials_in_the_body_are_accepted() {
    let server = TestServer::start().await;
    let (id, secret) = CC_CLIENT;
    let form = [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)];
    let response = server.token(&form, None).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn basic_credentials_are_form_urldecoded() {
    let server = TestServer::start().await;
    let response =
        server.token(&[("grant_type", "client_credentials")], Some(SPECIAL_CLIENT)).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

#[tokio::test]
async fn each_token_gets_a_fresh_jti() {
    let server = TestServer::start().await;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..5 {
        let body =
            json(server.token(&[("grant_type", "client_credentials")], Some(CC_CLIENT)).await)
                .await;
        let claims = verifier(&server)
            .verify(body["access_token"].as_str().unwrap(), SystemClock.now())
            .unwrap();
        assert!(ids.insert(claims.jti));
    }
}

#[tokio::test]
async fn requested_scope_narrows_the_token() {
    let server = TestServer::start().await;
    let body = json(
        server
            .token(&[("grant_type", "client_credentials"), ("scope", "write")], Some(CC_CLIENT))
            .await,
    )
    .await;
    assert_eq!(body["scope"], "write");
}

#[tokio::test]
async fn empty_scope_parameter_is_treated_as_absent() {
    let server = TestServer::start().await;
    let body = json(
        server.token(&[("grant_type", "client_credentials"), ("scope", "")], Some(CC_CLIENT)).await,
    )
    .await;
    assert_eq!(body["scope"], "read write");
}

#[tokio::test]
async fn scope_outside_the_allowed_set_is_invalid_scope() {
    let server = TestServer::start().await;
    for scope in ["admin", "read admin", "read  write", "re\"ad"] {
        let response = server
            .token(&[("grant_type", "client_credentials"), ("scope", scope)], Some(CC_CLIENT))
            .await;
        assert_error(response, 400, "invalid_scope").await;
    }
}

#[tokio::test]
async fn lifetime_below_the_maximum_is_honoured_and_above_it_lowered() {
    let server = TestServer::start().await;
    for (requested, granted) in
        [("60", 60), ("600", 600), ("601", 600), ("99999999999999999999999", 600)]
    {
        let form = [("grant_type", "client_credentials"), ("access-token-lifetime", requested)];
        let body = json(server.token(&form, Some(CC_CLIENT)).await).await;
        assert_eq!(body["expires_in"], granted, "requested {requested}");
        let claims = verifier(&server)
            .verify(body["access_token"].as_str().unwrap(), SystemClock.now())
            .unwrap();
        assert_eq!(claims.exp - claims.iat, granted);
    }
}

#[tokio::test]
async fn lifetime_that_is_not_a_positive_integer_is_invalid_request() {
    let server = TestServer::start().await;
    for bad in ["0", "-5", "1.5", "abc", "+60", " 60"] {
        let form = [("grant_type", "client_credentials"), ("access-token-lifetime", bad)];
        assert_error(server.token(&form, Some(CC_CLIENT)).await, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn unknown_grant_type_is_unsupported_grant_type() {
    let server = TestServer::start().await;
    for grant in [
        "authorization_code",
        "implicit",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "CLIENT_CREDENTIALS",
    ] {
        let response = server.token(&[("grant_type", grant)], Some(CC_CLIENT)).await;
        assert_error(response, 400, "unsupported_grant_type").await;
    }
}

#[tokio::test]
async fn missing_grant_type_is_invalid_request() {
    let server = TestServer::start().await;
    assert_error(server.token(&[("scope", "read")], Some(CC_CLIENT)).await, 400, "invalid_request")
        .await;
}

#[tokio::test]
async fn grant_the_client_is_not_allowed_is_unauthorized_client() {
    let server = TestServer::start().await;
    let response =
        server.token(&[("grant_type", "client_credentials")], Some(PASSWORD_ONLY_CLIENT)).await;
    assert_error(response, 400, "unauthorized_client").await;
    let response = server.token(&[("grant_type", "password")], Some(CC_CLIENT)).await;
    assert_error(response, 400, "unauthorized_client").await;
}

#[tokio::test]
async fn wrong_secret_with_basic_is_401_with_a_basic_challenge() {
    let server = TestServer::start().await;
    let response =
        server.token(&[("grant_type", "client_credentials")], Some(("cc-client", "wrong"))).await;
    let headers = assert_error(response, 401, "invalid_client").await;
    assert_eq!(headers["www-authenticate"], "Basic realm=\"token-service\"");
}

#[tokio::test]
async fn unknown_client_and_wrong_secret_answer_identically() {
    let server = TestServer::start().await;
    let wrong_secret =
        server.token(&[("grant_type", "client_credentials")], Some(("cc-client", "nope"))).await;
    let unknown = server
        .token(&[("grant_type", "client_credentials")], Some(("no-such-client", "nope")))
        .await;
    assert_eq!(wrong_secret.status(), unknown.status());
    assert_eq!(wrong_secret.bytes().await.unwrap(), unknown.bytes().await.unwrap());
}

#[tokio::test]
async fn failed_body_authentication_is_401_invalid_client() {
    let server = TestServer::start().await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "cc-client"),
        ("client_secret", "wrong"),
    ];
    assert_error(server.token(&form, None).await, 401, "invalid_client").await;
}

#[tokio::test]
async fn missing_client_authentication_is_401_invalid_client() {
    let server = TestServer::start().await;
    assert_error(
        server.token(&[("grant_type", "client_credentials")], None).await,
        401,
        "invalid_client",
    )
    .await;
    let form = [("grant_type", "client_credentials"), ("client_id", "cc-client")];
    assert_error(server.token(&form, None).await, 401, "invalid_client").await;
}

#[tokio::test]
async fn malformed_basic_header_is_401_invalid_client() {
    let server = TestServer::start().await;
    for header in ["Basic not-base64!", "Basic", "Basic Y2MtY2xpZW50", "Digest abc"] {
        let response = server
            .http
            .post(server.url("/oauth2/token"))
            .header("authorization", header)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "invalid_client").await;
    }
}

#[tokio::test]
async fn both_authentication_methods_at_once_is_invalid_request() {
    let server = TestServer::start().await;
    let (id, secret) = CC_CLIENT;
    let form = [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)];
    assert_error(server.token(&form, Some(CC_CLIENT)).await, 400, "invalid_request").await;
}

#[tokio::test]
async fn repeated_parameters_are_invalid_request() {
    let server = TestServer::start().await;
    let form = [("grant_type", "client_credentials"), ("scope", "read"), ("scope", "write")];
    assert_error(server.token(&form, Some(CC_CLIENT)).await, 400, "invalid_request").await;
}

async fn post_raw(server: &TestServer, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    let (id, secret) = CC_CLIENT;
    server
        .http
        .post(server.url("/oauth2/token"))
        .header("authorization", basic_header(id, secret))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn non_form_content_type_is_invalid_request() {
    let server = TestServer::start().await;
    let response =
        post_raw(&server, "application/json", br#"{"grant_type":"client_credentials"}"#.to_vec())
            .await;
    assert_error(response, 400, "invalid_request").await;
}

#[tokio::test]
async fn non_utf8_body_is_invalid_request() {
    let server = TestServer::start().await;
    let form = "application/x-www-form-urlencoded";
    assert_error(
        post_raw(&server, form, b"grant_type=client_credentials&scope=%FF".to_vec()).await,
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        post_raw(&server, form, b"grant_type=client_credentials&scope=\xff".to_vec()).await,
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn oversized_body_is_413() {
    let server = TestServer::start().await;
    let mut body = b"grant_type=client_credentials&pad=".to_vec();
    body.resize(64 * 1024 + 1, b'a');
    let response = post_raw(&server, "application/x-www-form-urlencoded", body).await;
    assert_error(response, 413, "invalid_request").await;
}

#[tokio::test]
async fn wrong_method_and_unknown_route_are_refused() {
    let server = TestServer::start().await;
    let response = server.http.get(server.url("/oauth2/token")).send().await.unwrap();
    assert_error(response, 405, "invalid_request").await;
    let response = server.http.get(server.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn oversized_request_heads_are_refused() {
    let server = TestServer::start().await;
    let response = server
        .http
        .post(server.url("/oauth2/token"))
        .header("x-padding", "a".repeat(20 * 1024))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431, "request header fields too large");
}
