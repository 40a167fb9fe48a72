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
    AccessTokens::new(server.keys.verification_keys(), server.base_url.clone(), AUDIENCE.into())
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
    assert_error(response, 431, "invalid_request").await;
}

/// RFC 9068 §2.1-2.2 on an RS256 server: the raw header and payload, not a typed reading of
/// them, carry `typ: at+jwt`, `alg: RS256`, a `kid`, and every required claim.
#[tokio::test]
async fn rs256_access_tokens_carry_typ_at_jwt_and_every_rfc9068_claim() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let server = TestServer::start_with(token_service::keys::SigningAlgorithm::RS256).await;
    let body =
        json(server.token(&[("grant_type", "client_credentials")], Some(CC_CLIENT)).await).await;
    let token = body["access_token"].as_str().unwrap();
    let part = |i: usize| -> Value {
        let raw = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw).unwrap()).unwrap()
    };
    let header = part(0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], server.keys.current().kid.as_str());
    let claims = part(1);
    assert_eq!(claims["iss"], server.base_url);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["sub"], "cc-client");
    assert_eq!(claims["client_id"], "cc-client");
    for number in ["exp", "iat"] {
        assert!(claims[number].is_u64(), "{number}: {claims}");
    }
    assert!(claims["jti"].as_str().is_some_and(|jti| !jti.is_empty()), "{claims}");
    assert!(verifier(&server).verify(token, SystemClock.now()).is_ok());
}

/// A secret that must never come back in a response, body or headers.
const MARKER: &str = "S3CRET-marker-7f3a";

/// Every 4xx of every endpoint says what is wrong in a non-empty `error_description`, and never
/// repeats a secret the request carried: client secrets, passwords, refresh and access tokens.
#[tokio::test]
async fn every_4xx_explains_itself_without_echoing_secrets() {
    use integration_tests::flows::{batch, introspect_as, login, refresh, revoke, revoke_self};
    use integration_tests::{APP_CLIENT, OTHER_APP};
    let server = TestServer::start().await;
    let alice = login(&server).await;
    let access = alice["access_token"].as_str().unwrap().to_owned();
    let refresh_token = alice["refresh_token"].as_str().unwrap().to_owned();
    let marked_secret = format!("{MARKER}-client-secret");
    let marked_password = format!("{MARKER}-password");
    let long_password = format!("{MARKER}{}", "p".repeat(1100));
    let forged_refresh = format!("AAAAAAAAAAAAAAAAAAAAAA.{MARKER}AAAAAAAAAAAAAAAAAAAAAAAAAA");
    let forged_jwt = format!("eyJhbGciOiJFUzI1NiJ9.{MARKER}.sig");
    let mut responses = Vec::new();
    let form = [("grant_type", "client_credentials")];
    responses.push(server.token(&form, Some(("cc-client", marked_secret.as_str()))).await);
    let body_auth = [
        ("grant_type", "client_credentials"),
        ("client_id", "cc-client"),
        ("client_secret", marked_secret.as_str()),
    ];
    responses.push(server.token(&body_auth, None).await);
    responses.push(server.token(&body_auth, Some(CC_CLIENT)).await);
    for candidate in [marked_password.as_str(), long_password.as_str()] {
        let form = [("grant_type", "password"), ("username", "alice"), ("password", candidate)];
        responses.push(server.token(&form, Some(APP_CLIENT)).await);
    }
    let repeated =
        format!("grant_type=password&username=alice&password={MARKER}&password={MARKER}");
    responses.push(
        server
            .http
            .post(server.url("/oauth2/token"))
            .header("authorization", basic_header(APP_CLIENT.0, APP_CLIENT.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(repeated)
            .send()
            .await
            .unwrap(),
    );
    for token in [forged_refresh.as_str(), refresh_token.as_str()] {
        responses.push(refresh(&server, OTHER_APP, token).await);
    }
    let scope = [("grant_type", "client_credentials"), ("scope", MARKER), ("scope", "x")];
    responses.push(server.token(&scope, Some(CC_CLIENT)).await);
    for token in [access.as_str(), refresh_token.as_str()] {
        responses.push(revoke(&server, OTHER_APP, &[("token", token)]).await);
    }
    responses
        .push(revoke(&server, ("app-client", marked_secret.as_str()), &[("token", &access)]).await);
    responses.push(
        introspect_as(&server, ("app-client", marked_secret.as_str()), &[("token", &access)]).await,
    );
    responses.push(revoke_self(&server, &forged_jwt).send().await.unwrap());
    responses.push(batch(&server, &forged_jwt, serde_json::json!({})).await);
    responses.push(batch(&server, &access, serde_json::json!({})).await);

    let secrets = [
        MARKER,
        APP_CLIENT.1,
        CC_CLIENT.1,
        "alice-password-1",
        access.as_str(),
        refresh_token.as_str(),
        refresh_token.split_once('.').unwrap().1,
    ];
    for response in responses {
        let status = response.status();
        assert!(status.is_client_error(), "{status}");
        let headers = format!("{:?}", response.headers());
        let text = response.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{text}");
        assert!(
            body["error_description"].as_str().is_some_and(|d| !d.trim().is_empty()),
            "{status}: {text}"
        );
        for secret in secrets {
            assert!(!text.contains(secret), "{status} echoes a secret: {text}");
            assert!(!headers.contains(secret), "{status} echoes a secret in a header: {headers}");
        }
    }
}

/// The 64 KiB cap holds on every POST endpoint, before anything else is parsed.
#[tokio::test]
async fn oversized_bodies_are_refused_on_every_endpoint() {
    let server = TestServer::start().await;
    let body = vec![b'a'; 64 * 1024 + 1];
    for (path, authorization, content_type) in [
        (
            "/oauth2/token",
            basic_header(CC_CLIENT.0, CC_CLIENT.1),
            "application/x-www-form-urlencoded",
        ),
        (
            "/oauth2/introspect",
            basic_header(CC_CLIENT.0, CC_CLIENT.1),
            "application/x-www-form-urlencoded",
        ),
        (
            "/oauth2/revoke",
            basic_header(CC_CLIENT.0, CC_CLIENT.1),
            "application/x-www-form-urlencoded",
        ),
        ("/oauth2/revoke", "Bearer x.y.z".to_owned(), "application/json"),
        ("/oauth2/revoke/batch", "Bearer x.y.z".to_owned(), "application/json"),
    ] {
        let response = server
            .http
            .post(server.url(path))
            .header("authorization", authorization)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_error(response, 413, "invalid_request").await;
    }
}
