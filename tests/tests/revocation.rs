//! `POST /oauth2/revoke`, both ways, on both stores: every line of the contract.

use integration_tests::flows::{
    assert_never_cached, error_of, is_active, login, post_body, post_form, refresh, revoke,
    revoke_self, service_token,
};
use integration_tests::forgery::{claims_of, expired_copy, forgeries};
use integration_tests::{APP_CLIENT, CC_CLIENT, OTHER_APP, TestServer, on_both_stores};
use serde_json::Value;
use token_service::domain::MAX_DEVICE_ID_LEN;

on_both_stores!(
    revoking_unknown_or_malformed_tokens_returns_200,
    revoking_requires_client_authentication,
    revoking_without_a_token_is_invalid_request,
    revoking_an_access_token_revokes_only_that_token,
    revoking_a_refresh_token_revokes_its_whole_grant,
    a_wrong_hint_still_finds_the_token,
    revoking_twice_returns_200,
    another_clients_token_is_refused_and_nothing_is_revoked,
    forgeries_of_a_live_token_are_200_and_revoke_nothing,
    revocation_answers_are_never_cached,
    revocation_accepts_body_credentials_but_not_two_methods_at_once,
    revocation_requires_a_utf8_form_body,
    bearer_revocation_revokes_the_token_and_its_grant,
    bearer_revocation_of_a_client_credentials_token_revokes_it,
    bearer_revocation_accepts_an_empty_body_or_empty_object_only,
    bearer_revocation_checks_the_client_id_query_parameter,
    invalid_or_revoked_bearer_tokens_get_401_invalid_token,
    a_bad_bearer_token_is_401_whatever_else_is_wrong_with_the_request,
);

async fn revoking_unknown_or_malformed_tokens_returns_200(server: TestServer) {
    let grant_shaped = "AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for token in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", grant_shaped] {
        for hint in [None, Some("access_token"), Some("refresh_token")] {
            let mut form = vec![("token", token)];
            form.extend(hint.map(|h| ("token_type_hint", h)));
            let response = revoke(&server, APP_CLIENT, &form).await;
            assert_eq!(response.status(), 200, "{token} {hint:?}");
            assert!(response.bytes().await.unwrap().is_empty(), "empty body");
        }
    }
}

async fn revoking_requires_client_authentication(server: TestServer) {
    let token = service_token(&server).await;
    let response = revoke(&server, ("cc-client", "wrong"), &[("token", &token)]).await;
    assert_eq!(response.headers()["www-authenticate"], "Basic realm=\"token-service\"");
    assert_eq!(error_of(response).await, (401, "invalid_client".into()));
    let anonymous = server
        .http
        .post(server.url("/oauth2/revoke"))
        .form(&[("token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(anonymous).await, (401, "invalid_client".into()));
    assert!(is_active(&server, &token).await, "nothing revoked");
}

async fn revoking_without_a_token_is_invalid_request(server: TestServer) {
    assert_eq!(
        error_of(revoke(&server, APP_CLIENT, &[]).await).await,
        (400, "invalid_request".into())
    );
}

async fn revoking_an_access_token_revokes_only_that_token(server: TestServer) {
    let tokens = login(&server).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert!(is_active(&server, access).await);
    assert_eq!(revoke(&server, APP_CLIENT, &[("token", access)]).await.status(), 200);
    assert!(!is_active(&server, access).await);
    // The grant lives on: its refresh token still works.
    let refreshed = refresh(&server, APP_CLIENT, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.status(), 200);
}

async fn revoking_a_refresh_token_revokes_its_whole_grant(server: TestServer) {
    let first = login(&server).await;
    let second: Value = refresh(&server, APP_CLIENT, first["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let refresh_token = second["refresh_token"].as_str().unwrap();
    let response = revoke(
        &server,
        APP_CLIENT,
        &[("token", refresh_token), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        error_of(refresh(&server, APP_CLIENT, refresh_token).await).await,
        (400, "invalid_grant".into())
    );
    for body in [&first, &second] {
        assert!(
            !is_active(&server, body["access_token"].as_str().unwrap()).await,
            "every access token of the grant"
        );
    }
    let unrelated = login(&server).await;
    assert!(
        is_active(&server, unrelated["access_token"].as_str().unwrap()).await,
        "other grants untouched"
    );
}

async fn a_wrong_hint_still_finds_the_token(server: TestServer) {
    let tokens = login(&server).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        revoke(&server, APP_CLIENT, &[("token", access), ("token_type_hint", "refresh_token")])
            .await
            .status(),
        200
    );
    assert!(!is_active(&server, access).await);

    let tokens = login(&server).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let form = [("token", refresh_token), ("token_type_hint", "access_token")];
    assert_eq!(revoke(&server, APP_CLIENT, &form).await.status(), 200);
    assert_eq!(
        error_of(refresh(&server, APP_CLIENT, refresh_token).await).await.1,
        "invalid_grant"
    );

    let tokens = login(&server).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        revoke(&server, APP_CLIENT, &[("token", access), ("token_type_hint", "id_token")])
            .await
            .status(),
        200
    );
    assert!(!is_active(&server, access).await, "an unknown hint is ignored");
}

async fn revoking_twice_returns_200(server: TestServer) {
    let tokens = login(&server).await;
    for token in
        [tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap()]
    {
        for _ in 0..2 {
            assert_eq!(revoke(&server, APP_CLIENT, &[("token", token)]).await.status(), 200);
        }
    }
}

async fn another_clients_token_is_refused_and_nothing_is_revoked(server: TestServer) {
    let tokens = login(&server).await;
    for token in
        [tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap()]
    {
        let response = revoke(&server, OTHER_APP, &[("token", token)]).await;
        assert_eq!(error_of(response).await, (400, "unauthorized_client".into()));
    }
    assert!(is_active(&server, tokens["access_token"].as_str().unwrap()).await);
    assert_eq!(
        refresh(&server, APP_CLIENT, tokens["refresh_token"].as_str().unwrap()).await.status(),
        200
    );
}

/// Revocation acts on an access token's `jti` only once its signature and claims verify: each
/// forgery copies a live token's claims (its `jti`, and the caller as its client), so one acted
/// on unverified would revoke that token. RFC 7009 §2.2 makes every one of them a silent 200.
async fn forgeries_of_a_live_token_are_200_and_revoke_nothing(server: TestServer) {
    let victim = login(&server).await["access_token"].as_str().unwrap().to_owned();
    let victim_claims = claims_of(&victim);
    assert_eq!(victim_claims["client_id"], APP_CLIENT.0);
    for (name, forged) in forgeries(&victim, &server.keys) {
        let forged_claims = claims_of(&forged);
        assert_eq!(forged_claims["jti"], victim_claims["jti"], "{name}");
        assert_eq!(forged_claims["client_id"], APP_CLIENT.0, "{name}");
        for hint in [None, Some("access_token"), Some("refresh_token")] {
            let mut form = vec![("token", forged.as_str())];
            form.extend(hint.map(|h| ("token_type_hint", h)));
            let response = revoke(&server, APP_CLIENT, &form).await;
            assert_eq!(response.status(), 200, "{name} {hint:?}");
            assert!(response.bytes().await.unwrap().is_empty(), "{name} {hint:?}: empty body");
        }
        assert!(is_active(&server, &victim).await, "{name} revoked the token it copied");
    }
}

/// `revoke` checks its every answer itself; bearer revocation's are checked here, success and
/// errors alike.
async fn revocation_answers_are_never_cached(server: TestServer) {
    assert_eq!(revoke(&server, APP_CLIENT, &[("token", "x")]).await.status(), 200);
    assert_eq!(revoke(&server, APP_CLIENT, &[]).await.status(), 400);
    assert_eq!(revoke(&server, (APP_CLIENT.0, "wrong"), &[("token", "x")]).await.status(), 401);
    let bearer = service_token(&server).await;
    let refused = revoke_self(&server, &bearer).body("[]").send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let revoked = revoke_self(&server, &bearer).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    let again = revoke_self(&server, &bearer).send().await.unwrap();
    assert_eq!(again.status(), 401);
    for response in [&refused, &revoked, &again] {
        assert_never_cached(response);
    }
}

/// RFC 6749 §2.3.1: credentials in the body work as Basic does, and wrong ones are 401; both
/// methods in one request are `invalid_request`, and a refused request revokes nothing.
async fn revocation_accepts_body_credentials_but_not_two_methods_at_once(server: TestServer) {
    let token = service_token(&server).await;
    let (id, secret) = CC_CLIENT;
    for form in [
        vec![("token", token.as_str()), ("client_secret", secret)],
        vec![("token", token.as_str()), ("client_id", id), ("client_secret", secret)],
        vec![("token", token.as_str()), ("client_id", APP_CLIENT.0)],
    ] {
        let response = post_form(&server, "/oauth2/revoke", Some(CC_CLIENT), &form).await;
        assert_eq!(error_of(response).await, (400, "invalid_request".into()), "{form:?}");
    }
    let wrong = [("token", token.as_str()), ("client_id", id), ("client_secret", "wrong")];
    let response = post_form(&server, "/oauth2/revoke", None, &wrong).await;
    assert_eq!(error_of(response).await, (401, "invalid_client".into()));
    assert!(is_active(&server, &token).await, "refused requests revoke nothing");

    let form = [("token", token.as_str()), ("client_id", id), ("client_secret", secret)];
    let response = post_form(&server, "/oauth2/revoke", None, &form).await;
    assert_eq!(response.status(), 200);
    assert!(!is_active(&server, &token).await, "body credentials revoke");

    let token = service_token(&server).await;
    let form = [("token", token.as_str()), ("client_id", id)];
    let response = post_form(&server, "/oauth2/revoke", Some(CC_CLIENT), &form).await;
    assert_eq!(response.status(), 200, "a body client_id that repeats the Basic one only names it");
    assert!(!is_active(&server, &token).await);
}

/// RFC 7009 §2.1: the request is an `application/x-www-form-urlencoded` body (in UTF-8); any
/// other is `invalid_request`, and revokes nothing.
async fn revocation_requires_a_utf8_form_body(server: TestServer) {
    let token = service_token(&server).await;
    let form_body = format!("token={token}");
    let json_body = serde_json::json!({ "token": token }).to_string();
    for (content_type, body) in [
        (None, form_body.clone()),
        (Some("application/json"), json_body),
        (Some("text/plain"), form_body.clone()),
        (Some("application/x-www-form-urlencoded; charset=iso-8859-1"), form_body.clone()),
    ] {
        let response =
            post_body(&server, "/oauth2/revoke", Some(CC_CLIENT), content_type, body).await;
        assert_eq!(error_of(response).await, (400, "invalid_request".into()), "{content_type:?}");
    }
    assert!(is_active(&server, &token).await, "refused requests revoke nothing");
}

async fn bearer_revocation_revokes_the_token_and_its_grant(server: TestServer) {
    let first = login(&server).await;
    let second: Value = refresh(&server, APP_CLIENT, first["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let bearer = second["access_token"].as_str().unwrap();
    let response = revoke_self(&server, bearer)
        .header("x-device-id", "device-1234")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), serde_json::json!({}));
    assert!(!is_active(&server, bearer).await);
    assert!(!is_active(&server, first["access_token"].as_str().unwrap()).await, "the whole grant");
    let refresh_token = second["refresh_token"].as_str().unwrap();
    assert_eq!(
        error_of(refresh(&server, APP_CLIENT, refresh_token).await).await.1,
        "invalid_grant"
    );
}

async fn bearer_revocation_of_a_client_credentials_token_revokes_it(server: TestServer) {
    let bearer = service_token(&server).await;
    let other = service_token(&server).await;
    assert_eq!(revoke_self(&server, &bearer).send().await.unwrap().status(), 200);
    assert!(!is_active(&server, &bearer).await);
    assert!(is_active(&server, &other).await, "another token of the same client lives on");
}

async fn bearer_revocation_accepts_an_empty_body_or_empty_object_only(server: TestServer) {
    for body in ["", " ", "{}", r#"{"reason":"logout"}"#] {
        let bearer = service_token(&server).await;
        let response = revoke_self(&server, &bearer).body(body.to_owned()).send().await.unwrap();
        assert_eq!(response.status(), 200, "{body:?}");
    }
    for body in ["[]", "token=abc", "{", "null"] {
        let bearer = service_token(&server).await;
        let response = revoke_self(&server, &bearer).body(body.to_owned()).send().await.unwrap();
        assert_eq!(error_of(response).await, (400, "invalid_request".into()), "{body:?}");
        assert!(is_active(&server, &bearer).await, "a refused request revokes nothing");
    }
}

async fn bearer_revocation_checks_the_client_id_query_parameter(server: TestServer) {
    let bearer = service_token(&server).await;
    let response = server
        .http
        .post(server.url("/oauth2/revoke?client_id=app-client"))
        .header("authorization", format!("Bearer {bearer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(response).await, (400, "invalid_request".into()));
    assert!(is_active(&server, &bearer).await);
    let url = server.url(&format!("/oauth2/revoke?client_id={}", CC_CLIENT.0));
    let response = server
        .http
        .post(url)
        .header("authorization", format!("Bearer {bearer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!is_active(&server, &bearer).await);
}

async fn invalid_or_revoked_bearer_tokens_get_401_invalid_token(server: TestServer) {
    let revoked = service_token(&server).await;
    assert_eq!(revoke_self(&server, &revoked).send().await.unwrap().status(), 200);
    let tampered = {
        let token = service_token(&server).await;
        let (rest, signature) = token.rsplit_once('.').unwrap();
        format!("{rest}.{}", signature.chars().rev().collect::<String>())
    };
    for bearer in [revoked.as_str(), "not-a-jwt", tampered.as_str()] {
        let response = revoke_self(&server, bearer).send().await.unwrap();
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Bearer error=\"invalid_token\""), "{challenge}");
        assert_eq!(error_of(response).await, (401, "invalid_token".into()));
    }
}

/// Revocation answers on a clock the test moves, on both stores.
mod clocked {
    use std::sync::Arc;

    use integration_tests::flows::{
        error_of, introspect, is_active, login, refresh, revoke, revoke_self, service_token,
    };
    use integration_tests::forgery::claims_of;
    use integration_tests::{APP_CLIENT, Backend, CC_CLIENT, OTHER_APP, on_both_backends};
    use reqwest::header::HeaderValue;
    use serde_json::json;
    use token_service::clock::{Clock, ManualClock};
    use token_service::domain::MAX_DEVICE_ID_LEN;
    use token_service::domain::TokenId;
    use token_service::jwt::{CLOCK_LEEWAY_SECS, verifiable_until};
    use token_service::store::{RevocationRecord, Stores};

    on_both_backends!(
        bearer_revocation_records_the_device_id_and_refuses_malformed_ones,
        expired_tokens_revoke_silently_and_fail_as_bearers,
        revoking_an_expired_refresh_token_returns_200,
        another_clients_expired_or_unknown_token_is_200_and_authentication_comes_first,
        a_revoked_token_stays_revoked_through_the_expiry_leeway,
    );

    /// A token verifies until its `exp` plus the clock leeway, so its revocation must last as
    /// long: revoked by RFC 7009 or by its bearer, it stays inactive every second from the
    /// revocation until it could verify no more, and a control token that nobody revoked is
    /// active through the same leeway.
    async fn a_revoked_token_stays_revoked_through_the_expiry_leeway(backend: Backend) {
        let clock = Arc::new(ManualClock::new(1_800_000_000));
        let server = backend.server(clock.clone()).await;
        let short = [("grant_type", "client_credentials"), ("access-token-lifetime", "2")];
        let mut tokens = Vec::new();
        for _ in 0..3 {
            let response = server.token(&short, Some(CC_CLIENT)).await;
            let body: serde_json::Value = response.json().await.unwrap();
            tokens.push(body["access_token"].as_str().unwrap().to_owned());
        }
        let [by_client, by_bearer, control] = <[String; 3]>::try_from(tokens).unwrap();
        let response = revoke(&server, CC_CLIENT, &[("token", &by_client)]).await;
        assert_eq!(response.status(), 200);
        assert_eq!(revoke_self(&server, &by_bearer).send().await.unwrap().status(), 200);
        for second in 0..2 + CLOCK_LEEWAY_SECS {
            assert!(is_active(&server, &control).await, "control, {second} s after issue");
            for revoked in [&by_client, &by_bearer] {
                assert!(!is_active(&server, revoked).await, "revoked, {second} s after issue");
            }
            clock.advance(1);
        }
        assert!(!is_active(&server, &control).await, "past the leeway nothing verifies");
    }

    /// What the store holds for `token`'s revocation, read as the server's clock reads it.
    async fn record_of(
        stores: &Stores,
        clock: &ManualClock,
        token: &str,
    ) -> Option<RevocationRecord> {
        let id = TokenId::parse(claims_of(token)["jti"].as_str().unwrap()).unwrap();
        stores.revocations.revocation_record(&id, clock.now()).await.unwrap()
    }

    /// The `x-device-id` of a logout reaches the revocation record, up to its 256 characters; one
    /// that is longer, carries a control character or is not text is `invalid_request`, and
    /// nothing is revoked or written.
    async fn bearer_revocation_records_the_device_id_and_refuses_malformed_ones(backend: Backend) {
        let clock = Arc::new(ManualClock::new(1_800_000_000));
        let (server, stores) = backend.server_and_stores(clock.clone()).await;
        let longest = "d".repeat(MAX_DEVICE_ID_LEN);
        for device_id in [Some("phone-1"), Some(longest.as_str()), None] {
            let bearer = service_token(&server).await;
            let mut request = revoke_self(&server, &bearer);
            if let Some(device_id) = device_id {
                request = request.header("x-device-id", device_id);
            }
            assert_eq!(request.send().await.unwrap().status(), 200, "{device_id:?}");
            let expected = RevocationRecord {
                expires_at: verifiable_until(claims_of(&bearer)["exp"].as_u64().unwrap()),
                device_id: device_id.map(str::to_owned),
            };
            assert_eq!(record_of(&stores, &clock, &bearer).await, Some(expected));
        }

        let too_long = HeaderValue::from_str(&"d".repeat(MAX_DEVICE_ID_LEN + 1)).unwrap();
        let tab = HeaderValue::from_static("phone\t1");
        let not_text = HeaderValue::from_bytes(b"phone-\xe9").unwrap();
        for device_id in [too_long, tab, not_text] {
            let bearer = service_token(&server).await;
            let response =
                revoke_self(&server, &bearer).header("x-device-id", device_id.clone()).send();
            let response = response.await.unwrap();
            assert_eq!(error_of(response).await, (400, "invalid_request".into()), "{device_id:?}");
            assert!(is_active(&server, &bearer).await, "{device_id:?}: nothing revoked");
            assert_eq!(record_of(&stores, &clock, &bearer).await, None, "{device_id:?}");
        }
    }

    /// A genuinely signed access token past its expiry and the leeway (cc-client's live 600 s):
    /// RFC 7009 revocation of it is a silent 200, and as a bearer it is 401 with the RFC 6750
    /// challenge.
    async fn expired_tokens_revoke_silently_and_fail_as_bearers(backend: Backend) {
        let clock = Arc::new(ManualClock::new(1_800_000_000));
        let server = backend.server(clock.clone()).await;
        let token = service_token(&server).await;
        assert!(is_active(&server, &token).await);
        clock.advance(600 + CLOCK_LEEWAY_SECS);
        // As a bearer first: had the RFC 7009 call below revoked it, a 401 would prove nothing.
        let response = revoke_self(&server, &token).send().await.unwrap();
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Bearer error=\"invalid_token\""), "{challenge}");
        assert_eq!(error_of(response).await, (401, "invalid_token".into()));
        let response = revoke(&server, CC_CLIENT, &[("token", &token)]).await;
        assert_eq!(response.status(), 200);
        assert!(response.bytes().await.unwrap().is_empty());
        assert_eq!(introspect(&server, CC_CLIENT, &token).await, json!({"active": false}));
    }

    /// app-client's refresh tokens idle out after 3600 s: revoking one afterwards is a silent
    /// 200 (RFC 7009 §2.2), and it stays unusable.
    async fn revoking_an_expired_refresh_token_returns_200(backend: Backend) {
        let clock = Arc::new(ManualClock::new(1_800_000_000));
        let server = backend.server(clock.clone()).await;
        let tokens = login(&server).await;
        let refresh_token = tokens["refresh_token"].as_str().unwrap();
        clock.advance(3600);
        for hint in [None, Some("refresh_token"), Some("access_token")] {
            let mut form = vec![("token", refresh_token)];
            form.extend(hint.map(|h| ("token_type_hint", h)));
            let response = revoke(&server, APP_CLIENT, &form).await;
            assert_eq!(response.status(), 200, "{hint:?}");
            assert!(response.bytes().await.unwrap().is_empty());
        }
        let access = tokens["access_token"].as_str().unwrap();
        assert_eq!(revoke(&server, APP_CLIENT, &[("token", access)]).await.status(), 200);
        assert_eq!(introspect(&server, APP_CLIENT, refresh_token).await, json!({"active": false}));
        assert_eq!(
            error_of(refresh(&server, APP_CLIENT, refresh_token).await).await.1,
            "invalid_grant"
        );
    }

    /// Authentication is checked before anything about the token: a wrong secret with another
    /// client's live token is 401, not a hint that the token exists.
    async fn another_clients_expired_or_unknown_token_is_200_and_authentication_comes_first(
        backend: Backend,
    ) {
        let clock = Arc::new(ManualClock::new(1_800_000_000));
        let server = backend.server(clock.clone()).await;
        let tokens = login(&server).await;
        let access = tokens["access_token"].as_str().unwrap();
        let response = revoke(&server, (OTHER_APP.0, "wrong-secret"), &[("token", access)]).await;
        assert_eq!(error_of(response).await, (401, "invalid_client".into()));
        let response = revoke(&server, OTHER_APP, &[("token", access)]).await;
        assert_eq!(error_of(response).await, (400, "unauthorized_client".into()));
        clock.advance(601 + 10);
        // Expired: nothing left to refuse or revoke.
        assert_eq!(revoke(&server, OTHER_APP, &[("token", access)]).await.status(), 200);
    }
}

/// A logout request with one flaw besides its bearer token: a query string, a body and an
/// optional `x-device-id`.
struct Flawed {
    flaw: &'static str,
    query: &'static str,
    body: &'static str,
    device_id: Option<String>,
}

impl Flawed {
    fn every_kind() -> Vec<Flawed> {
        let flawed =
            |flaw, query, body, device_id: Option<String>| Flawed { flaw, query, body, device_id };
        vec![
            flawed("a JSON array body", "", "[]", None),
            flawed("a malformed JSON body", "", "{", None),
            flawed("a form body", "", "token=abc", None),
            flawed("another client's client_id", "?client_id=other-app", "", None),
            flawed("a repeated client_id", "?client_id=cc-client&client_id=cc-client", "", None),
            flawed("an over-long x-device-id", "", "", Some("d".repeat(MAX_DEVICE_ID_LEN + 1))),
            flawed("a tab in x-device-id", "", "", Some("phone\t1".into())),
        ]
    }

    async fn send(&self, server: &TestServer, bearer: &str) -> reqwest::Response {
        let mut request = server
            .http
            .post(server.url(&format!("/oauth2/revoke{}", self.query)))
            .header("authorization", format!("Bearer {bearer}"))
            .body(self.body);
        if let Some(device_id) = &self.device_id {
            request = request.header("x-device-id", device_id);
        }
        request.send().await.unwrap()
    }
}

/// RFC 6750 §3.1: the bearer token is judged before the rest of the request. An invalid,
/// expired or revoked one is 401 invalid_token, with the challenge, even when the body, the
/// client_id parameter or the x-device-id is also wrong: each flaw is a 400 with a valid token.
async fn a_bad_bearer_token_is_401_whatever_else_is_wrong_with_the_request(server: TestServer) {
    for flawed in Flawed::every_kind() {
        let valid = service_token(&server).await;
        let response = flawed.send(&server, &valid).await;
        assert_eq!(error_of(response).await, (400, "invalid_request".into()), "{}", flawed.flaw);
        assert!(is_active(&server, &valid).await, "{}", flawed.flaw);
    }

    let revoked = service_token(&server).await;
    assert_eq!(revoke_self(&server, &revoked).send().await.unwrap().status(), 200);
    let genuine = service_token(&server).await;
    let expired = expired_copy(&genuine, &server.keys);
    let (signed, signature) = genuine.rsplit_once('.').unwrap();
    let tampered = format!("{signed}.{}", signature.chars().rev().collect::<String>());
    for (bad, bearer) in [
        ("revoked", revoked.as_str()),
        ("expired", expired.as_str()),
        ("tampered", tampered.as_str()),
        ("not a JWT", "not-a-jwt"),
    ] {
        for flawed in Flawed::every_kind() {
            let response = flawed.send(&server, bearer).await;
            let challenge = response.headers().get("www-authenticate").cloned();
            let context = format!("{bad} bearer, {}", flawed.flaw);
            assert_eq!(error_of(response).await, (401, "invalid_token".into()), "{context}");
            let challenge = challenge.unwrap_or_else(|| panic!("{context}: no challenge"));
            assert!(
                challenge.to_str().unwrap().starts_with("Bearer error=\"invalid_token\""),
                "{context}: {challenge:?}"
            );
        }
    }
    assert!(is_active(&server, &genuine).await, "refused requests revoke nothing");
}
