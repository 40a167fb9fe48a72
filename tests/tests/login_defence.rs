//! The login defence and the refresh reuse interval over HTTP, on both stores. Sources are
//! told apart by the peer address: each client of a test binds its own loopback address.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use integration_tests::flows::{batch_count, error_of, is_active};
use integration_tests::{
    ACME_ADMIN, ADMIN_CLIENT, APP_CLIENT, Backend, TestServer, basic_header, on_both_backends,
};
use serde_json::{Value, json};
use token_service::clock::{Clock, ManualClock};
use token_service::domain::{LoginKey, SourceAddress, TenantPath, Username};
use token_service::store::Stores;

const T0: u64 = 1_800_000_000;
const RIGHT: &str = "alice-password-1";

/// A server on a manual clock at `T0`, its stores, and the login defence configured by `extra`.
async fn clocked(
    backend: Backend,
    extra: &[(&str, &str)],
) -> (TestServer, Stores, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let stores = backend.seeded().await;
    let server = TestServer::start_configured(clock.clone(), stores.clone(), extra).await;
    (server, stores, clock)
}

/// An HTTP client whose requests come from 127.0.0.`n`.
fn from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .build()
        .unwrap()
}

/// A password login as `username` in /acme through app-client from `client`: status and the
/// raw body.
async fn login_from(
    server: &TestServer,
    client: &reqwest::Client,
    username: &str,
    password: &str,
) -> (u16, String) {
    let form = [
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
        ("tenant_path", "/acme"),
    ];
    let response = client
        .post(server.url("/oauth2/token"))
        .header("authorization", basic_header(APP_CLIENT.0, APP_CLIENT.1))
        .form(&form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn key(n: u8, username: &str) -> LoginKey {
    LoginKey::new(
        &TenantPath::parse("/acme").unwrap(),
        &Username::parse(username).unwrap(),
        SourceAddress::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))),
    )
}

async fn five_failures_make_that_source_wait_while_another_signs_in(backend: Backend) {
    let (server, _, _) = clocked(backend, &[]).await;
    let (attacker, user) = (from(2), from(3));
    let (_, wrong_answer) = login_from(&server, &attacker, "alice", "wrong-password").await;
    for _ in 0..4 {
        assert_eq!(login_from(&server, &attacker, "alice", "wrong-password").await.0, 400);
    }
    let (status, waiting) = login_from(&server, &attacker, "alice", RIGHT).await;
    assert_eq!(status, 400, "the right password from the waiting source is refused");
    assert_eq!(waiting, wrong_answer, "byte for byte the wrong password's answer");
    assert_eq!(login_from(&server, &user, "alice", RIGHT).await.0, 200, "another source signs in");
}

async fn a_wait_answers_alike_for_known_and_unknown_usernames(backend: Backend) {
    let (server, stores, _) = clocked(backend, &[]).await;
    let source = from(2);
    let (_, wrong_answer) = login_from(&server, &source, "alice", "wrong-password").await;
    for username in ["alice", "nobody-here"] {
        for _ in 0..5 {
            login_from(&server, &source, username, "wrong-password").await;
        }
        let attempts = stores.login_attempts.login_attempts(&key(2, username), T0).await.unwrap();
        assert!(attempts.by_source.unwrap().failures >= 5, "{username} counted");
        let (status, waiting) = login_from(&server, &source, username, RIGHT).await;
        assert_eq!((status, waiting), (400, wrong_answer.clone()), "{username}");
    }
}

async fn waits_double_from_the_first_and_stop_at_the_cap(backend: Backend) {
    let settings = [("LOGIN_FIRST_WAIT", "2"), ("LOGIN_MAX_WAIT", "5")];
    let (server, stores, clock) = clocked(backend, &settings).await;
    let source = from(2);
    let waits = async |clock: &ManualClock| {
        // How many whole seconds until the right password works again from this source.
        for waited in 0..60 {
            if login_from(&server, &source, "alice", RIGHT).await.0 == 200 {
                return waited;
            }
            clock.advance(1);
        }
        panic!("never let in");
    };
    for _ in 0..5 {
        login_from(&server, &source, "alice", "wrong-password").await;
    }
    assert_eq!(waits(&clock).await, 2, "the first wait");
    for _ in 0..6 {
        login_from(&server, &source, "alice", "wrong-password").await;
        clock.advance(5);
    }
    let attempts =
        stores.login_attempts.login_attempts(&key(2, "alice"), clock.now()).await.unwrap();
    assert_eq!(
        attempts.by_source.unwrap().failures,
        6,
        "a success reset the count; inside waits nothing counts"
    );
    clock.advance(5);
    login_from(&server, &source, "alice", "wrong-password").await;
    assert_eq!(waits(&clock).await, 5, "2, 4, then capped at 5");
}

async fn a_success_resets_both_counters(backend: Backend) {
    let (server, stores, _) = clocked(backend, &[]).await;
    for n in [2, 3] {
        for _ in 0..3 {
            login_from(&server, &from(n), "alice", "wrong-password").await;
        }
    }
    assert_eq!(login_from(&server, &from(2), "alice", RIGHT).await.0, 200);
    let attempts = stores.login_attempts.login_attempts(&key(2, "alice"), T0).await.unwrap();
    assert!(attempts.is_clear(), "{attempts:?}");
    for _ in 0..4 {
        login_from(&server, &from(2), "alice", "wrong-password").await;
    }
    assert_eq!(login_from(&server, &from(2), "alice", RIGHT).await.0, 200, "counting started over");
}

async fn twenty_concurrent_wrong_passwords_count_twenty(backend: Backend) {
    let (server, stores, _) =
        clocked(backend, &[("LOGIN_SOURCE_THRESHOLD", "100"), ("LOGIN_USERNAME_THRESHOLD", "100")])
            .await;
    let server = Arc::new(server);
    let mut logins = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let server = server.clone();
        logins
            .spawn(async move { login_from(&server, &from(2), "alice", "wrong-password").await.0 });
    }
    while let Some(status) = logins.join_next().await {
        assert_eq!(status.unwrap(), 400);
    }
    let attempts = stores.login_attempts.login_attempts(&key(2, "alice"), T0).await.unwrap();
    assert_eq!(attempts.by_source.unwrap().failures, 20);
    assert_eq!(attempts.by_username.unwrap().failures, 20);
}

/// Parallel logins from one source, all from counters as they were: n at once.
async fn burst(server: &Arc<TestServer>, n: usize, password: &'static str) -> Vec<u16> {
    let mut logins = tokio::task::JoinSet::new();
    for _ in 0..n {
        let server = server.clone();
        logins.spawn(async move { login_from(&server, &from(2), "alice", password).await.0 });
    }
    let mut statuses = Vec::new();
    while let Some(status) = logins.join_next().await {
        statuses.push(status.unwrap());
    }
    statuses
}

async fn a_burst_of_wrong_guesses_counts_in_full_and_the_source_then_waits(backend: Backend) {
    let (server, stores, _) = clocked(backend, &[]).await;
    let server = Arc::new(server);
    let statuses = burst(&server, 12, "wrong-password").await;
    assert!(statuses.iter().all(|s| *s == 400));
    let attempts = stores.login_attempts.login_attempts(&key(2, "alice"), T0).await.unwrap();
    assert_eq!(attempts.by_source.unwrap().failures, 12);
    assert_eq!(login_from(&server, &from(2), "alice", RIGHT).await.0, 400, "waiting");
    assert_eq!(login_from(&server, &from(3), "alice", RIGHT).await.0, 200, "another source");
}

/// A user signs in from several tabs at once, even after a typo: right passwords never race.
async fn parallel_right_passwords_all_succeed_even_after_a_typo(backend: Backend) {
    let (server, _, _) = clocked(backend, &[]).await;
    let server = Arc::new(server);
    assert_eq!(burst(&server, 6, RIGHT).await, [200; 6]);
    login_from(&server, &from(2), "alice", "a-typo").await;
    assert_eq!(burst(&server, 6, RIGHT).await, [200; 6]);
    assert_eq!(burst(&server, 6, RIGHT).await, [200; 6]);
}

async fn failures_across_sources_make_every_source_wait(backend: Backend) {
    let (server, _, _) = clocked(backend, &[("LOGIN_USERNAME_THRESHOLD", "6")]).await;
    for n in [2, 3, 4] {
        for _ in 0..2 {
            login_from(&server, &from(n), "alice", "wrong-password").await;
        }
    }
    assert_eq!(
        login_from(&server, &from(5), "alice", RIGHT).await.0,
        400,
        "even a fresh source waits"
    );
    assert_eq!(
        login_from(&server, &from(5), "bob", "bob-password-1").await.0,
        400,
        "bob is in /acme/sales"
    );
}

async fn an_unlock_clears_both_counters(backend: Backend) {
    let (server, stores, _) = clocked(backend, &[]).await;
    for _ in 0..5 {
        login_from(&server, &from(2), "alice", "wrong-password").await;
    }
    assert_eq!(login_from(&server, &from(2), "alice", RIGHT).await.0, 400);
    let alice = stores
        .users
        .user(&TenantPath::parse("/acme").unwrap(), &Username::parse("alice").unwrap())
        .await
        .unwrap()
        .unwrap();
    let admin = server.token(&[("grant_type", "client_credentials")], Some(ACME_ADMIN)).await;
    let admin: Value = admin.json().await.unwrap();
    let response = server
        .http
        .post(server.url(&format!("/admin/users/{}/unlock", alice.id)))
        .header("authorization", format!("Bearer {}", admin["access_token"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(stores.login_attempts.login_attempts(&key(2, "alice"), T0).await.unwrap().is_clear());
    assert_eq!(login_from(&server, &from(2), "alice", RIGHT).await.0, 200);
}

/// A client's refresh reuse interval, set through the admin API.
async fn with_reuse_interval(server: &TestServer, seconds: u64) {
    let admin = server.token(&[("grant_type", "client_credentials")], Some(ACME_ADMIN)).await;
    let admin: Value = admin.json().await.unwrap();
    let response = server
        .http
        .patch(server.url("/admin/clients/app-client"))
        .header("authorization", format!("Bearer {}", admin["access_token"].as_str().unwrap()))
        .json(&json!({"refresh_reuse_interval": seconds}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn refresh(server: &TestServer, token: &str) -> reqwest::Response {
    integration_tests::flows::refresh(server, APP_CLIENT, token).await
}

async fn signed_in(server: &TestServer) -> Value {
    let (status, body) = login_from(server, &from(1), "alice", RIGHT).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn a_retry_inside_the_reuse_interval_continues_the_grant_and_after_it_revokes(
    backend: Backend,
) {
    let (server, _, clock) = clocked(backend, &[]).await;
    with_reuse_interval(&server, 30).await;
    let login = signed_in(&server).await;
    let first = login["refresh_token"].as_str().unwrap();
    let rotated: Value = refresh(&server, first).await.json().await.unwrap();
    clock.advance(30);
    let retried = refresh(&server, first).await;
    assert_eq!(retried.status(), 200, "inside the interval");
    let retried: Value = retried.json().await.unwrap();
    for pair in [&rotated, &retried] {
        assert!(is_active(&server, pair["access_token"].as_str().unwrap()).await);
        assert_eq!(
            refresh(&server, pair["refresh_token"].as_str().unwrap()).await.status(),
            200,
            "a working pair"
        );
    }
    clock.advance(1);
    let late = refresh(&server, first).await;
    assert_eq!(error_of(late).await, (400, "invalid_grant".into()));
    assert!(
        !is_active(&server, retried["access_token"].as_str().unwrap()).await,
        "reuse after the interval revokes the grant"
    );
}

async fn ten_concurrent_refreshes_inside_the_interval_all_get_working_pairs(backend: Backend) {
    let (server, _, _) = clocked(backend, &[]).await;
    with_reuse_interval(&server, 10).await;
    let login = signed_in(&server).await;
    let token = login["refresh_token"].as_str().unwrap().to_owned();
    let server = Arc::new(server);
    let mut refreshes = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (server, token) = (server.clone(), token.clone());
        refreshes.spawn(async move {
            let response = refresh(&server, &token).await;
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        });
    }
    let mut pairs = Vec::new();
    while let Some(result) = refreshes.join_next().await {
        let (status, body) = result.unwrap();
        assert_eq!(status, 200, "{body}");
        pairs.push(body);
    }
    for pair in &pairs {
        assert!(
            is_active(&server, pair["access_token"].as_str().unwrap()).await,
            "the grant lives"
        );
    }
    // A batch cutoff still kills every branch.
    let admin = server.token(&[("grant_type", "client_credentials")], Some(ADMIN_CLIENT)).await;
    let admin: Value = admin.json().await.unwrap();
    let count = batch_count(
        &server,
        admin["access_token"].as_str().unwrap(),
        json!({"clientId": "app-client"}),
    )
    .await;
    assert!(count >= 20, "every pair was logged and counted: {count}");
    for pair in &pairs {
        assert!(!is_active(&server, pair["access_token"].as_str().unwrap()).await);
        assert_eq!(
            error_of(refresh(&server, pair["refresh_token"].as_str().unwrap()).await).await.1,
            "invalid_grant"
        );
    }
}

async fn without_an_interval_reuse_still_revokes_at_once(backend: Backend) {
    let (server, _, _) = clocked(backend, &[]).await;
    let login = signed_in(&server).await;
    let first = login["refresh_token"].as_str().unwrap();
    let rotated: Value = refresh(&server, first).await.json().await.unwrap();
    assert_eq!(refresh(&server, first).await.status(), 400);
    assert!(!is_active(&server, rotated["access_token"].as_str().unwrap()).await);
}

on_both_backends!(
    five_failures_make_that_source_wait_while_another_signs_in,
    a_wait_answers_alike_for_known_and_unknown_usernames,
    waits_double_from_the_first_and_stop_at_the_cap,
    a_success_resets_both_counters,
    twenty_concurrent_wrong_passwords_count_twenty,
    failures_across_sources_make_every_source_wait,
    an_unlock_clears_both_counters,
    a_retry_inside_the_reuse_interval_continues_the_grant_and_after_it_revokes,
    ten_concurrent_refreshes_inside_the_interval_all_get_working_pairs,
    without_an_interval_reuse_still_revokes_at_once,
    a_burst_of_wrong_guesses_counts_in_full_and_the_source_then_waits,
    parallel_right_passwords_all_succeed_even_after_a_typo,
);
