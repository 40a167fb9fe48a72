//! The password and refresh_token grants over real HTTP against the local server.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use integration_tests::{APP_CLIENT, AUDIENCE, CC_CLIENT, OTHER_APP, SALES_APP, TestServer};
use serde_json::Value;
use token_service::clock::{Clock, ManualClock, SystemClock};
use token_service::jwt::{AccessTokenClaims, AccessTokens};
use token_service::keys::SigningAlgorithm;

async fn login(
    server: &TestServer,
    client: (&str, &str),
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("grant_type", "password")];
    form.extend_from_slice(extra);
    server.token(&form, Some(client)).await
}

async fn alice(server: &TestServer) -> Value {
    let response =
        login(server, APP_CLIENT, &[("username", "alice"), ("password", "alice-password-1")]).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn refresh(
    server: &TestServer,
    client: (&str, &str),
    token: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    server.token(&form, Some(client)).await
}

async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    (status, body["error"].as_str().unwrap_or_default().to_owned())
}

fn claims(server: &TestServer, body: &Value, now: u64) -> AccessTokenClaims {
    AccessTokens::new(server.keys.verification_keys(), server.base_url.clone(), AUDIENCE.into())
        .verify(body["access_token"].as_str().unwrap(), now)
        .unwrap()
}

#[tokio::test]
async fn password_grant_returns_access_and_refresh_tokens_of_one_grant() {
    let server = TestServer::start().await;
    let body = alice(&server).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "profile read write");
    let refresh_token = body["refresh_token"].as_str().unwrap();
    let first = claims(&server, &body, SystemClock.now());
    assert_eq!(first.tenant, "/acme");
    assert_eq!(first.client_id, "app-client");
    assert_ne!(first.sub, "alice", "sub is the stable user id, not the username");
    let grant = first.sid.clone().expect("password tokens carry the grant id");
    let (refresh_grant, secret) = refresh_token.split_once('.').expect("<grant id>.<secret>");
    assert_eq!(refresh_grant, grant, "the refresh token belongs to the access token's grant");
    assert_eq!(URL_SAFE_NO_PAD.decode(secret).unwrap().len(), 32, "256 random bits");

    let refreshed: Value =
        refresh(&server, APP_CLIENT, refresh_token, None).await.json().await.unwrap();
    let second = claims(&server, &refreshed, SystemClock.now());
    assert_eq!(second.sid.as_deref(), Some(grant.as_str()), "refresh keeps the grant id");
    assert_eq!(second.sub, first.sub);
    let rotated = refreshed["refresh_token"].as_str().unwrap();
    assert_ne!(rotated, refresh_token, "every use rotates");
    assert!(rotated.starts_with(&format!("{grant}.")), "the rotated token stays in the grant");
}

#[tokio::test]
async fn user_ids_are_stable_across_logins() {
    let server = TestServer::start().await;
    let a = claims(&server, &alice(&server).await, SystemClock.now());
    let b = claims(&server, &alice(&server).await, SystemClock.now());
    assert_eq!(a.sub, b.sub);
    assert_ne!(a.sid, b.sid, "each login is its own grant");
}

#[tokio::test]
async fn tenant_path_selects_a_sub_tenant_of_the_client() {
    let server = TestServer::start().await;
    let response = login(
        &server,
        APP_CLIENT,
        &[("username", "bob"), ("password", "bob-password-1"), ("tenant_path", "/acme/sales")],
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(claims(&server, &body, SystemClock.now()).tenant, "/acme/sales");
}

#[tokio::test]
async fn usernames_are_unique_per_tenant_not_globally() {
    let server = TestServer::start().await;
    let acme = claims(&server, &alice(&server).await, SystemClock.now());
    let response = login(
        &server,
        APP_CLIENT,
        &[
            ("username", "alice"),
            ("password", "sales-alice-password"),
            ("tenant_path", "/acme/sales"),
        ],
    )
    .await;
    let sales = claims(&server, &response.json().await.unwrap(), SystemClock.now());
    assert_ne!(acme.sub, sales.sub);
    // Alice of /acme cannot sign in to /acme/sales with her /acme password.
    let response = login(
        &server,
        APP_CLIENT,
        &[("username", "alice"), ("password", "alice-password-1"), ("tenant_path", "/acme/sales")],
    )
    .await;
    assert_eq!(error_code(response).await, (400, "invalid_grant".into()));
}

#[tokio::test]
async fn tenant_path_outside_the_clients_tenant_is_invalid_request() {
    let server = TestServer::start().await;
    for tenant in ["/acme", "/globex", "/acme/salesforce"] {
        let response = login(
            &server,
            SALES_APP,
            &[("username", "carol"), ("password", "carol-password-1"), ("tenant_path", tenant)],
        )
        .await;
        assert_eq!(error_code(response).await, (400, "invalid_request".into()), "{tenant}");
    }
}

#[tokio::test]
async fn malformed_tenant_path_is_invalid_request() {
    let server = TestServer::start().await;
    for tenant in ["acme", "/acme/", "/acme/../globex", "/acme//sales", "/a b"] {
        let response = login(
            &server,
            APP_CLIENT,
            &[("username", "alice"), ("password", "x"), ("tenant_path", tenant)],
        )
        .await;
        assert_eq!(error_code(response).await, (400, "invalid_request".into()), "{tenant}");
    }
}

#[tokio::test]
async fn unknown_user_and_wrong_password_answer_byte_identically() {
    let server = TestServer::start().await;
    let wrong = login(&server, APP_CLIENT, &[("username", "alice"), ("password", "wrong")]).await;
    let unknown =
        login(&server, APP_CLIENT, &[("username", "mallory"), ("password", "wrong")]).await;
    let other_tenant =
        login(&server, APP_CLIENT, &[("username", "carol"), ("password", "carol-password-1")])
            .await;
    assert_eq!(wrong.status(), 400);
    let wrong = wrong.bytes().await.unwrap();
    assert_eq!(wrong, unknown.bytes().await.unwrap());
    assert_eq!(wrong, other_tenant.bytes().await.unwrap());
    assert!(String::from_utf8_lossy(&wrong).contains("invalid_grant"));
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Without the dummy hash an unknown user answers in well under a millisecond against tens of
/// milliseconds for a wrong password; with it the medians agree. The bound is generous (the
/// faster median must be at least 60% of the slower) so machine noise cannot fail it.
#[tokio::test]
async fn unknown_user_and_wrong_password_take_the_same_time() {
    let server = TestServer::start().await;
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for round in 0..15 {
        for (username, samples) in [("nobody-here", &mut unknown), ("alice", &mut wrong)] {
            let started = Instant::now();
            let response =
                login(&server, APP_CLIENT, &[("username", username), ("password", "not-it")]).await;
            let elapsed = started.elapsed().as_secs_f64();
            assert_eq!(response.status(), 400);
            if round > 0 {
                samples.push(elapsed);
            }
        }
    }
    let (unknown, wrong) = (median(unknown), median(wrong));
    let ratio = unknown.min(wrong) / unknown.max(wrong);
    assert!(ratio > 0.6, "median unknown {unknown:.4}s vs wrong password {wrong:.4}s");
}

#[tokio::test]
async fn oversized_credentials_are_refused_before_hashing() {
    let server = TestServer::start().await;
    let long_password = "p".repeat(1025);
    let long_username = "u".repeat(129);
    for (username, password) in [("alice", long_password.as_str()), (long_username.as_str(), "pw")]
    {
        let response =
            login(&server, APP_CLIENT, &[("username", username), ("password", password)]).await;
        assert_eq!(error_code(response).await, (400, "invalid_request".into()));
    }
}

#[tokio::test]
async fn missing_username_or_password_is_invalid_request() {
    let server = TestServer::start().await;
    for form in [&[("username", "alice")][..], &[("password", "alice-password-1")][..], &[][..]] {
        assert_eq!(
            error_code(login(&server, APP_CLIENT, form).await).await,
            (400, "invalid_request".into())
        );
    }
}

#[tokio::test]
async fn clients_not_allowed_the_password_grant_get_unauthorized_client() {
    let server = TestServer::start().await;
    let response =
        login(&server, CC_CLIENT, &[("username", "alice"), ("password", "alice-password-1")]).await;
    assert_eq!(error_code(response).await, (400, "unauthorized_client".into()));
    let response = refresh(&server, CC_CLIENT, "anything", None).await;
    assert_eq!(error_code(response).await, (400, "unauthorized_client".into()));
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_grant() {
    let server = TestServer::start().await;
    let first = alice(&server).await;
    let old = first["refresh_token"].as_str().unwrap();
    let second: Value = refresh(&server, APP_CLIENT, old, None).await.json().await.unwrap();
    let current = second["refresh_token"].as_str().unwrap();

    assert_eq!(
        error_code(refresh(&server, APP_CLIENT, old, None).await).await,
        (400, "invalid_grant".into())
    );
    // The reuse ended the grant: the token issued by the legitimate rotation is dead too.
    assert_eq!(
        error_code(refresh(&server, APP_CLIENT, current, None).await).await,
        (400, "invalid_grant".into())
    );
    // Other grants of the same user are untouched.
    let other = alice(&server).await;
    assert_eq!(
        refresh(&server, APP_CLIENT, other["refresh_token"].as_str().unwrap(), None).await.status(),
        200
    );
}

#[tokio::test]
async fn another_clients_refresh_token_is_invalid_grant_and_changes_nothing() {
    let server = TestServer::start().await;
    let body = alice(&server).await;
    let token = body["refresh_token"].as_str().unwrap();
    assert_eq!(
        error_code(refresh(&server, OTHER_APP, token, None).await).await,
        (400, "invalid_grant".into())
    );
    assert_eq!(
        refresh(&server, APP_CLIENT, token, None).await.status(),
        200,
        "still usable by its client"
    );
}

#[tokio::test]
async fn unknown_and_malformed_refresh_tokens_are_invalid_grant() {
    let server = TestServer::start().await;
    let long = "x".repeat(4096);
    for token in ["not-a-token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", long.as_str()] {
        assert_eq!(
            error_code(refresh(&server, APP_CLIENT, token, None).await).await,
            (400, "invalid_grant".into())
        );
    }
    let response = server.token(&[("grant_type", "refresh_token")], Some(APP_CLIENT)).await;
    assert_eq!(error_code(response).await, (400, "invalid_request".into()));
}

#[tokio::test]
async fn refresh_may_narrow_scope_but_never_widen_it() {
    let server = TestServer::start().await;
    let response = login(
        &server,
        APP_CLIENT,
        &[("username", "alice"), ("password", "alice-password-1"), ("scope", "read write")],
    )
    .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], "read write");

    let narrowed: Value =
        refresh(&server, APP_CLIENT, body["refresh_token"].as_str().unwrap(), Some("read"))
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(narrowed["scope"], "read");
    assert_eq!(claims(&server, &narrowed, SystemClock.now()).scope, "read");

    // The grant still covers what was granted at login, so a later refresh may ask for it again,
    let token = narrowed["refresh_token"].as_str().unwrap();
    let again: Value =
        refresh(&server, APP_CLIENT, token, Some("read write")).await.json().await.unwrap();
    assert_eq!(again["scope"], "read write");
    // but never for a scope the login did not grant, even one the client may have.
    let token = again["refresh_token"].as_str().unwrap();
    assert_eq!(
        error_code(refresh(&server, APP_CLIENT, token, Some("read profile")).await).await,
        (400, "invalid_scope".into())
    );
    assert_eq!(
        refresh(&server, APP_CLIENT, token, None).await.status(),
        200,
        "a refused scope changes nothing"
    );
}

#[tokio::test]
async fn refresh_tokens_expire_when_idle() {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let server = TestServer::start_with_clock(SigningAlgorithm::ES256, clock.clone()).await;
    let body = alice(&server).await;
    clock.advance(3600); // app-client's idle lifetime
    let response =
        refresh(&server, APP_CLIENT, body["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(error_code(response).await, (400, "invalid_grant".into()));
}

#[tokio::test]
async fn grants_end_at_their_absolute_lifetime_however_often_refreshed() {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let server = TestServer::start_with_clock(SigningAlgorithm::ES256, clock.clone()).await;
    let mut token = alice(&server).await["refresh_token"].as_str().unwrap().to_owned();
    // Refreshing every 3000 s stays within the idle limit (3600 s) but not the absolute (7200 s).
    for _ in 0..2 {
        clock.advance(3000);
        let body: Value = refresh(&server, APP_CLIENT, &token, None).await.json().await.unwrap();
        token = body["refresh_token"].as_str().unwrap().to_owned();
    }
    clock.advance(1200);
    assert_eq!(
        error_code(refresh(&server, APP_CLIENT, &token, None).await).await,
        (400, "invalid_grant".into())
    );
}

#[tokio::test]
async fn access_tokens_never_outlive_their_grant() {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let server = TestServer::start_with_clock(SigningAlgorithm::ES256, clock.clone()).await;
    let mut token = alice(&server).await["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        clock.advance(3300);
        let body: Value = refresh(&server, APP_CLIENT, &token, None).await.json().await.unwrap();
        token = body["refresh_token"].as_str().unwrap().to_owned();
    }
    // 300 s before the grant's absolute end (7200 s), less than the 600 s the client may have.
    clock.advance(300);
    let body: Value = refresh(&server, APP_CLIENT, &token, None).await.json().await.unwrap();
    assert_eq!(body["expires_in"], 300, "lowered to what is left of the grant");
    let access = claims(&server, &body, clock.now());
    assert_eq!(access.exp, 1_800_000_000 + 7200);
    clock.advance(299);
    assert!(
        integration_tests::flows::is_active(&server, body["access_token"].as_str().unwrap()).await,
        "live until its exp"
    );
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_have_exactly_one_winner() {
    let server = Arc::new(TestServer::start().await);
    let token = alice(&server).await["refresh_token"].as_str().unwrap().to_owned();
    let attempts = (0..20).map(|_| {
        let (server, token) = (server.clone(), token.clone());
        tokio::spawn(async move {
            error_code_or_ok(refresh(&server, APP_CLIENT, &token, None).await).await
        })
    });
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.unwrap());
    }
    let successes = outcomes.iter().filter(|o| o.as_str() == "ok").count();
    let invalid_grants = outcomes.iter().filter(|o| o.as_str() == "invalid_grant").count();
    assert_eq!((successes, invalid_grants), (1, 19), "{outcomes:?}");
}

async fn error_code_or_ok(response: reqwest::Response) -> String {
    if response.status() == 200 {
        return "ok".into();
    }
    error_code(response).await.1
}

/// Raising the Argon2 parameters keeps old hashes working, and the first successful login
/// stores a hash at the new parameters.
#[tokio::test]
async fn login_rehashes_a_password_stored_at_old_parameters() {
    use token_service::domain::{TenantPath, User, UserId, Username};
    use token_service::jwt::TokenSigner;
    use token_service::keys::KeySet;
    use token_service::password::{HashParams, Passwords};
    use token_service::store::memory::MemoryStore;
    use token_service::store::{Stores, UserStore};
    use token_service::token::{TokenParams, TokenService};

    let store = Arc::new(MemoryStore::new());
    let seed = token_service::seed::Seed::load(
        &integration_tests::repo_path("seed.toml"),
        &Passwords::new(HashParams::OWASP),
    )
    .unwrap();
    seed.install(store.as_ref(), store.as_ref(), store.as_ref()).await.unwrap();
    let weak = HashParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
    let dave = User {
        id: UserId::generate(),
        tenant: TenantPath::parse("/acme").unwrap(),
        username: Username::parse("dave").unwrap(),
        password_hash: Passwords::new(weak).hash("dave-password").unwrap(),
        enabled: true,
        created_at: 0,
        version: 0,
    };
    store.create_user(&dave).await.unwrap();

    let tokens = TokenSigner::new(
        KeySet::generate(SigningAlgorithm::ES256).unwrap(),
        "https://i".into(),
        "a".into(),
    );
    let service = TokenService::new(
        Stores::all(store.clone()),
        tokens,
        Passwords::new(HashParams::OWASP),
        Arc::new(SystemClock),
        600,
        Default::default(),
    );
    let client = service
        .authenticator()
        .authenticate(&token_service::auth::PresentedClient::secret(APP_CLIENT.0, APP_CLIENT.1))
        .await
        .unwrap();
    let params = TokenParams {
        grant_type: Some("password"),
        username: Some("dave"),
        password: Some("dave-password"),
        ..TokenParams::default()
    };
    service.issue(&client, &params).await.expect("old hash still verifies");
    let stored = store.user(&dave.tenant, &dave.username).await.unwrap().unwrap();
    assert!(
        stored.password_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        stored.password_hash
    );
    service.issue(&client, &params).await.expect("new hash verifies");
}

/// RFC 9700 §4.14.2: the reuse ends the whole grant, access tokens included, not only its
/// refresh tokens.
#[tokio::test]
async fn reusing_a_rotated_refresh_token_also_kills_the_grants_access_tokens() {
    use integration_tests::flows::is_active;
    let server = TestServer::start().await;
    let first = alice(&server).await;
    let old = first["refresh_token"].as_str().unwrap();
    let second: Value = refresh(&server, APP_CLIENT, old, None).await.json().await.unwrap();
    let current_access = second["access_token"].as_str().unwrap();
    assert!(is_active(&server, current_access).await);
    let other = alice(&server).await;
    assert_eq!(
        error_code(refresh(&server, APP_CLIENT, old, None).await).await,
        (400, "invalid_grant".into())
    );
    assert!(!is_active(&server, current_access).await, "the rotation's access token");
    assert!(!is_active(&server, first["access_token"].as_str().unwrap()).await, "the first");
    assert!(
        !is_active(&server, second["refresh_token"].as_str().unwrap()).await,
        "the current refresh token"
    );
    assert!(is_active(&server, other["access_token"].as_str().unwrap()).await, "other grants live");
}
