//! `POST /oauth2/revoke/batch` on both stores: authorization, exact counts, the boundary second,
//! narrowing, layered cutoffs, and enforcement wherever a token is accepted.

use std::sync::Arc;

use integration_tests::flows::{
    admin_token, batch, batch_count, error_of, introspect, is_active, login, refresh, revoke,
    revoke_self, service_token,
};
use integration_tests::forgery::{claims_of, forgeries};
use integration_tests::{
    APP_CLIENT, Backend, CC_CLIENT, SALES_ADMIN, TestServer, on_both_backends, repo_path,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use token_service::clock::{Clock, ManualClock, SystemClock};
use token_service::domain::MAX_LIFETIME;
use token_service::jwt::CLOCK_LEEWAY_SECS;
use token_service::keys::SigningAlgorithm;

const T0: u64 = 1_800_000_000;

fn rfc3339(secs: u64) -> String {
    OffsetDateTime::from_unix_timestamp(secs as i64).unwrap().format(&Rfc3339).unwrap()
}

async fn server(backend: Backend) -> TestServer {
    backend.server(Arc::new(SystemClock)).await
}

/// A server on a manual clock starting at `T0`.
async fn clocked(backend: Backend) -> (TestServer, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    (backend.server(clock.clone()).await, clock)
}

async fn token_for(server: &TestServer, client: (&str, &str)) -> String {
    let response = server.token(&[("grant_type", "client_credentials")], Some(client)).await;
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn bob_login(server: &TestServer) -> Value {
    let form = [
        ("grant_type", "password"),
        ("username", "bob"),
        ("password", "bob-password-1"),
        ("tenant_path", "/acme/sales"),
    ];
    let response = server.token(&form, Some(APP_CLIENT)).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The `sub` of a login's access token, as introspection reports it.
async fn subject_of(server: &TestServer, login: &Value) -> Value {
    introspect(server, APP_CLIENT, login["access_token"].as_str().unwrap()).await["sub"].clone()
}

on_both_backends!(
    the_caller_needs_a_valid_token_with_the_batch_scope,
    forgeries_of_the_callers_token_are_401_and_cut_nothing_off,
    counts_are_exact_and_dry_run_matches_the_real_run,
    the_cutoff_second_survives_and_the_second_before_does_not,
    sub_tenants_are_covered_and_other_tenants_are_refused,
    narrowing_by_client_revokes_only_that_clients_tokens,
    narrowing_by_subject_revokes_only_that_subjects_tokens,
    narrowing_by_client_below_its_tenant_revokes_only_its_tokens_there,
    narrowing_by_client_and_subject_revokes_only_that_pairs_tokens,
    layered_cutoffs_in_any_order_the_latest_wins,
    every_layer_can_hold_the_latest_cutoff_whatever_the_order,
    a_grant_begun_before_the_cutoff_dies_whole_even_after_rotation,
    cutoffs_are_enforced_by_refresh_introspection_and_bearer_revocation,
    already_revoked_tokens_are_not_counted,
    malformed_and_future_requests_are_invalid_and_change_nothing,
    absent_creation_before_means_now,
    a_grant_begun_in_the_cutoff_second_survives_everywhere_and_one_begun_before_dies,
    cut_off_refresh_tokens_are_inactive_to_introspection,
    a_users_token_never_carries_administrative_scopes,
    a_users_token_claiming_an_administrative_scope_is_still_refused,
    a_subject_cutoff_never_crosses_tenants_whatever_ids_collide,
    a_cutoff_lasts_as_long_as_the_longest_token_verifies,
);

/// The seed whose ids collide across `/victim` and `/evil`.
const COLLISIONS: &str = "collisions-seed.toml";
/// A client of `/victim` whose id is the id of mallory, a user of `/evil`.
const VICTIM_CLIENT: (&str, &str) =
    ("VictimClientEqEvilUseQ", "victim-client-secret-0123456789abcdefgh");
/// A client of `/evil` whose id is the id of victor, a user of `/victim`.
const EVIL_CLIENT: (&str, &str) =
    ("EvilClientEqVictimUseQ", "evil-client-secret-0123456789abcdefghij");
const VICTIM_APP: (&str, &str) = ("victim-app", "victim-app-secret-0123456789abcdefghij");
const EVIL_APP: (&str, &str) = ("evil-app", "evil-app-secret-0123456789abcdefghijkl");
const VICTIM_ADMIN: (&str, &str) = ("victim-admin", "victim-admin-secret-0123456789abcdefgh");
const EVIL_ADMIN: (&str, &str) = ("evil-admin", "evil-admin-secret-0123456789abcdefghij");
const LONG_LIVED: (&str, &str) = ("long-lived", "long-lived-secret-0123456789abcdefghijk");

async fn collisions_server(backend: Backend, clock: Arc<dyn Clock>) -> TestServer {
    let stores = backend.seeded_from(&repo_path(COLLISIONS)).await;
    TestServer::start_on(SigningAlgorithm::ES256, clock, stores).await
}

/// A password login through `client`, the token response.
async fn login_as(
    server: &TestServer,
    client: (&str, &str),
    username: &str,
    password: &str,
) -> Value {
    let form = [("grant_type", "password"), ("username", username), ("password", password)];
    let response = server.token(&form, Some(client)).await;
    assert_eq!(response.status(), 200, "{username} signs in");
    response.json().await.unwrap()
}

/// Whether `token` is active, asked by `client` (introspection answers only within the caller's
/// reach, so each tenant asks through its own client).
async fn active_for(server: &TestServer, client: (&str, &str), token: &str) -> bool {
    let answer = introspect(server, client, token).await;
    answer["active"].as_bool().unwrap_or_else(|| panic!("no active member: {answer}"))
}

fn access(login: &Value) -> &str {
    login["access_token"].as_str().unwrap()
}

/// sales-admin may use the password grant and holds `revoke:batch`: a user signing in through
/// it gets the client's other scopes, never the administrative one, whether the scope is left
/// out, asked for, or carried forward by a refresh; and the user's token cannot batch-revoke.
async fn a_users_token_never_carries_administrative_scopes(backend: Backend) {
    let server = server(backend).await;
    let bystander = token_for(&server, integration_tests::SPECIAL_CLIENT).await;
    let form = |scope: Option<&'static str>| {
        let mut form = vec![
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", "bob-password-1"),
            ("tenant_path", "/acme/sales"),
        ];
        form.extend(scope.map(|scope| ("scope", scope)));
        form
    };
    for asked in ["revoke:batch", "read revoke:batch", "admin"] {
        let response = server.token(&form(Some(asked)), Some(SALES_ADMIN)).await;
        assert_eq!(error_of(response).await, (400, "invalid_scope".into()), "{asked}");
    }
    let response = server.token(&form(None), Some(SALES_ADMIN)).await;
    assert_eq!(response.status(), 200);
    let bob: Value = response.json().await.unwrap();
    assert_eq!(bob["scope"], "read", "an absent scope means the client's other scopes");
    let refreshed = refresh(&server, SALES_ADMIN, bob["refresh_token"].as_str().unwrap()).await;
    let refreshed: Value = refreshed.json().await.unwrap();
    assert_eq!(refreshed["scope"], "read");

    for token in [access(&bob), access(&refreshed)] {
        let response = batch(&server, token, json!({"subject": "svc.a~b_c-d"})).await;
        assert_eq!(error_of(response).await, (403, "insufficient_scope".into()));
    }
    assert!(is_active(&server, &bystander).await, "nothing was cut off");
}

/// Second line of defence: a token of a user's grant that claims `revoke:batch` (one issued
/// before user grants left administrative scopes out, or by any future slip) is genuinely
/// signed and active, and still refused as a batch caller.
async fn a_users_token_claiming_an_administrative_scope_is_still_refused(backend: Backend) {
    let server = server(backend).await;
    let bystander = token_for(&server, integration_tests::SPECIAL_CLIENT).await;
    let bob = bob_login(&server).await;
    let mut claims = claims_of(access(&bob));
    claims["scope"] = json!("read revoke:batch");
    claims["jti"] = json!(token_service::domain::TokenId::generate().to_string());
    let payload = serde_json::to_vec(&claims).unwrap();
    let escalated = server.keys.current().sign_json(&payload).unwrap();
    let answer = introspect(&server, APP_CLIENT, &escalated).await;
    assert_eq!(answer["active"], true, "control: genuinely signed, grant alive");
    assert_eq!(answer["scope"], "read", "introspection never reports it holding revoke:batch");
    let response = batch(&server, &escalated, json!({})).await;
    assert!(
        response.headers()["www-authenticate"].to_str().unwrap().contains("insufficient_scope")
    );
    assert_eq!(error_of(response).await, (403, "insufficient_scope".into()));
    assert!(is_active(&server, &bystander).await, "nothing was cut off");
}

/// One id names a client of `/victim` and a user of `/evil`; another a client of `/evil` and a
/// user of `/victim`. Each tenant's batch caller, naming either id as `subject`, cuts off its
/// own subject's tokens and never the other tenant's, in both directions.
async fn a_subject_cutoff_never_crosses_tenants_whatever_ids_collide(backend: Backend) {
    let clock = Arc::new(ManualClock::new(T0));
    let server = collisions_server(backend, clock.clone()).await;
    let victim_admin = token_for(&server, VICTIM_ADMIN).await;
    let evil_admin = token_for(&server, EVIL_ADMIN).await;
    let (x, y) = (VICTIM_CLIENT.0, EVIL_CLIENT.0);

    // Each tenant cuts off its own subject; the other's namesake lives.
    let victim_client = token_for(&server, VICTIM_CLIENT).await;
    let evil_client = token_for(&server, EVIL_CLIENT).await;
    let mallory = login_as(&server, EVIL_APP, "mallory", "mallory-password-1").await;
    let victor = login_as(&server, VICTIM_APP, "victor", "victor-password-1").await;
    assert_eq!(batch_count(&server, &victim_admin, json!({"subject": x})).await, 1);
    assert!(!active_for(&server, VICTIM_APP, &victim_client).await);
    assert!(active_for(&server, EVIL_APP, access(&mallory)).await, "/evil's user lives");
    assert_eq!(batch_count(&server, &evil_admin, json!({"subject": y})).await, 1);
    assert!(!active_for(&server, EVIL_APP, &evil_client).await);
    assert!(active_for(&server, VICTIM_APP, access(&victor)).await, "/victim's user lives");

    // And the other way round: the users' tokens die, the namesake clients' new tokens live.
    clock.advance(1); // past the second the cutoffs above cover
    let victim_client = token_for(&server, VICTIM_CLIENT).await;
    let evil_client = token_for(&server, EVIL_CLIENT).await;
    assert_eq!(batch_count(&server, &evil_admin, json!({"subject": x})).await, 2);
    assert!(!active_for(&server, EVIL_APP, access(&mallory)).await);
    assert!(active_for(&server, VICTIM_APP, &victim_client).await, "/victim's client lives");
    assert_eq!(batch_count(&server, &victim_admin, json!({"subject": y})).await, 2);
    assert!(!active_for(&server, VICTIM_APP, access(&victor)).await);
    assert!(active_for(&server, EVIL_APP, &evil_client).await, "/evil's client lives");

    // Narrowed through a client, the same holds.
    clock.advance(1);
    let mallory = login_as(&server, EVIL_APP, "mallory", "mallory-password-1").await;
    let victim_client = token_for(&server, VICTIM_CLIENT).await;
    let through_app = json!({"clientId": "evil-app", "subject": x});
    assert_eq!(batch_count(&server, &evil_admin, through_app).await, 2);
    assert!(!active_for(&server, EVIL_APP, access(&mallory)).await);
    assert!(active_for(&server, VICTIM_APP, &victim_client).await, "/victim's client lives");
}

/// A cutoff covers tokens of up to the longest lifetime a client may have, and each verifies
/// until its expiry plus the clock leeway: the cutoff lasts that long too.
async fn a_cutoff_lasts_as_long_as_the_longest_token_verifies(backend: Backend) {
    let clock = Arc::new(ManualClock::new(T0));
    let server = collisions_server(backend, clock.clone()).await;
    let form = [("grant_type", "client_credentials"), ("access-token-lifetime", "31622400")];
    let response = server.token(&form, Some(LONG_LIVED)).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], MAX_LIFETIME, "the longest lifetime");
    let long = body["access_token"].as_str().unwrap().to_owned();
    clock.advance(1);
    let admin = token_for(&server, VICTIM_ADMIN).await;
    assert_eq!(batch_count(&server, &admin, json!({"clientId": "long-lived"})).await, 1);
    clock.advance(MAX_LIFETIME - 1);
    for _ in 0..CLOCK_LEEWAY_SECS {
        assert!(!active_for(&server, VICTIM_APP, &long).await, "cut off until it cannot verify");
        clock.advance(1);
    }
}

async fn the_caller_needs_a_valid_token_with_the_batch_scope(backend: Backend) {
    let server = server(backend).await;
    let response =
        server.http.post(server.url("/oauth2/revoke/batch")).json(&json!({})).send().await.unwrap();
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer error=\"invalid_token\"")
    );
    assert_eq!(error_of(response).await, (401, "invalid_token".into()));
    assert_eq!(
        error_of(batch(&server, "not-a-token", json!({})).await).await,
        (401, "invalid_token".into())
    );
    let unscoped = service_token(&server).await;
    let response = batch(&server, &unscoped, json!({})).await;
    assert!(
        response.headers()["www-authenticate"].to_str().unwrap().contains("insufficient_scope")
    );
    assert_eq!(error_of(response).await, (403, "insufficient_scope".into()));
    assert!(is_active(&server, &unscoped).await, "a refused call revokes nothing");
}

/// The caller's token goes through the one verification routine: every forgery of a genuine
/// `revoke:batch` token (alg none, HMAC keyed with the public key, injected kid, embedded jwk,
/// jku, …) is 401 invalid_token, and the cutoff it asked for (everything of its tenant issued
/// until now) is never written.
async fn forgeries_of_the_callers_token_are_401_and_cut_nothing_off(backend: Backend) {
    let server = server(backend).await;
    let admin = admin_token(&server).await;
    let bystander = service_token(&server).await;
    for (name, forged) in forgeries(&admin, &server.keys) {
        let response = batch(&server, &forged, json!({})).await;
        let challenge = response.headers().get("www-authenticate").cloned();
        assert_eq!(error_of(response).await, (401, "invalid_token".into()), "{name}");
        let challenge = challenge.unwrap_or_else(|| panic!("{name}: no challenge"));
        assert!(
            challenge.to_str().unwrap().starts_with("Bearer error=\"invalid_token\""),
            "{name}: {challenge:?}"
        );
    }
    assert!(is_active(&server, &bystander).await, "nothing cut off");
    assert!(is_active(&server, &admin).await);
    let control = batch_count(&server, &admin, json!({"dryRun": true})).await;
    assert!(control >= 2, "the genuine token is accepted and its scope covers both: {control}");
}

async fn counts_are_exact_and_dry_run_matches_the_real_run(backend: Backend) {
    let (server, clock) = clocked(backend).await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(service_token(&server).await);
    }
    let login = login(&server).await; // an access and a refresh token
    let admin = admin_token(&server).await;
    clock.advance(10);
    let body = json!({"creationBefore": rfc3339(T0 + 10)});
    // 3 client-credentials tokens, alice's access and refresh tokens, and the caller's own.
    let dry =
        batch_count(&server, &admin, json!({"creationBefore": rfc3339(T0 + 10), "dryRun": true}))
            .await;
    assert_eq!(dry, 6);
    assert!(is_active(&server, &tokens[0]).await, "a dry run revokes nothing");
    assert_eq!(batch_count(&server, &admin, body.clone()).await, dry);
    for token in tokens.iter().chain([login["access_token"].as_str().unwrap().to_owned()].iter()) {
        assert!(!is_active(&server, token).await);
    }
    let fresh_admin = admin_token(&server).await;
    assert_eq!(
        batch_count(&server, &fresh_admin, body).await,
        0,
        "everything in scope was already revoked"
    );
}

async fn the_cutoff_second_survives_and_the_second_before_does_not(backend: Backend) {
    let (server, clock) = clocked(backend).await;
    let before = service_token(&server).await; // iat T0
    clock.advance(1);
    let at = service_token(&server).await; // iat T0 + 1
    let admin = admin_token(&server).await; // iat T0 + 1
    clock.advance(5);
    // T0 + 0.5 rounds up to T0 + 1: tokens of T0 go, tokens of T0 + 1 stay.
    let half_past = format!("{}.5Z", rfc3339(T0).trim_end_matches('Z'));
    assert_eq!(batch_count(&server, &admin, json!({"creationBefore": half_past})).await, 1);
    assert!(!is_active(&server, &before).await);
    assert!(is_active(&server, &at).await);
    let exact = rfc3339(T0 + 1);
    assert_eq!(
        batch_count(&server, &admin, json!({"creationBefore": exact})).await,
        0,
        "T0 + 1 is the boundary"
    );
    assert!(is_active(&server, &at).await, "issued in the cutoff second: survives");
}

async fn sub_tenants_are_covered_and_other_tenants_are_refused(backend: Backend) {
    let (server, clock) = clocked(backend).await;
    let bob = bob_login(&server).await;
    let sales_admin = token_for(&server, SALES_ADMIN).await;
    let admin = admin_token(&server).await;
    clock.advance(1);
    let refused = batch(&server, &sales_admin, json!({"tenantPath": "/acme"})).await;
    assert_eq!(error_of(refused).await, (403, "insufficient_scope".into()));
    for outside in [json!({"tenantPath": "/globex"}), json!({"tenantPath": "/acmeco"})] {
        assert_eq!(
            error_of(batch(&server, &admin, outside).await).await,
            (403, "insufficient_scope".into())
        );
    }
    assert!(
        is_active(&server, bob["access_token"].as_str().unwrap()).await,
        "refusals revoke nothing"
    );
    // /acme/sales: bob's two tokens and the sales admin's own.
    assert_eq!(batch_count(&server, &admin, json!({"tenantPath": "/acme/sales"})).await, 3);
    assert!(!is_active(&server, bob["access_token"].as_str().unwrap()).await);
    assert!(is_active(&server, &admin).await, "/acme itself is outside /acme/sales");
}

async fn narrowing_by_client_revokes_only_that_clients_tokens(backend: Backend) {
    let (server, clock) = clocked(backend).await;
    let cc = service_token(&server).await;
    let alice = login(&server).await;
    let admin = admin_token(&server).await;
    clock.advance(1);
    assert_eq!(batch_count(&server, &admin, json!({"clientId": "cc-client"})).await, 1);
    assert!(!is_active(&server, &cc).await);
    assert!(is_active(&server, alice["access_token"].as_str().unwrap()).await);
    assert!(is_active(&server, &admin).await);
    // app-client's tokens: alice's pair.
    assert_eq!(
        batch_count(&server, &admin, json!({"clientId": "app-client", "dryRun": true})).await,
        2
    );
    let unknown = batch(&server, &admin, json!({"clientId": "no-such-client"})).await;
    assert_eq!(error_of(unknown).await, (403, "insufficient_scope".into()));
    let sales_admin = token_for(&server, SALES_ADMIN).await;
    let foreign = batch(&server, &sales_admin, json!({"clientId": "cc-client"})).await;
    assert_eq!(
        error_of(foreign).await,
        (403, "insufficient_scope".into()),
        "a client of a parent tenant"
    );
}

async fn narrowing_by_subject_revokes_only_that_subjects_tokens(backend: Backend) {
    let (server, clock) = clocked(backend).await;
    let alice = login(&server).await;
    let bob = bob_login(&server).await;
    let alice_sub = subject_of(&server, &alice).await;
    let admin = admin_token(&server).await;
    clock.advance(1);
    assert_eq!(batch_count(&server, &admin, json!({"subject": alice_sub})).await, 2);
    assert!(!is_active(&server, alice["access_token"].as_str().unwrap()).await);
    assert!(is_active(&server, bob["access_token"].as_str().unwrap()).await);
    assert_eq!(
        error_of(refresh(&server, APP_CLIENT, alice["refresh_token"].as_str().unwrap()).await)
            .await
            .1,
        "invalid_grant"
    );
    // A subject whose tenant lies outside the requested subtree: nothing to revoke.
    let outside = json!({"subject": alice_sub, "tenantPath": "/acme/sales", "dryRun": true});
    assert_eq!(batch_count(&server, &admin, outside).await, 0);
    let sales_admin = token_for(&server, SALES_ADMIN).await;
    let foreign = batch(&server, &sales_admin, json!({"subject": alice_sub})).await;
    assert_eq!(error_of(foreign).await, (403, "insufficient_scope".into()));
}

async fn narrowing_by_client_below_its_tenant_revokes_only_its_tokens_there(backend: Backend) {
    let (server, clock) = clocked(backend).await;
    let alice = login(&server).await; // app-client in /acme
    let bob = bob_login(&server).await; // app-client in /acme/sales
    let sales_admin = token_for(&server, SALES_ADMIN).await; // another client in /acme/sales
    let admin = admin_token(&server).await;
    clock.advance(1);
    let body = json!({"clientId": "app-client", "tenantPath": "/acme/sales"});
    let dry_run = json!({"clientId": "app-client", "tenantPath": "/acme/sales", "dryRun": true});
    assert_eq!(batch_count(&server, &admin, dry_run).await, 2, "bob's pair");
    assert_eq!(batch_count(&server, &admin, body).await, 2);
    assert!(!is_active(&server, bob["access_token"].as_str().unwrap()).await);
    assert_eq!(
        error_of(refresh(&server, APP_CLIENT, bob["refresh_token"].as_str().unwrap()).await)
            .await
            .1,
        "invalid_grant"
    );
    assert!(is_active(&server, alice["access_token"].as_str().unwrap()).await, "/acme itself");
    assert!(is_active(&server, &sales_admin).await, "another client in /acme/sales");
    let other = json!({"clientId": "app-client", "tenantPath": "/acme/sales", "dryRun": true});
    assert_eq!(batch_count(&server, &admin, other).await, 0, "nothing left there");
}

async fn narrowing_by_client_and_subject_revokes_only_that_pairs_tokens(backend: Backend) {
    let (server, clock) = clocked(backend).await;
    let alice = login(&server).await;
    let bob = bob_login(&server).await;
    let alice_sub = subject_of(&server, &alice).await;
    let admin = admin_token(&server).await;
    clock.advance(1);
    let body = json!({"clientId": "app-client", "subject": alice_sub});
    assert_eq!(batch_count(&server, &admin, body).await, 2);
    assert!(!is_active(&server, alice["access_token"].as_str().unwrap()).await);
    assert!(is_active(&server, bob["access_token"].as_str().unwrap()).await);
    let cc = json!({"clientId": "cc-client", "subject": alice_sub, "dryRun": true});
    assert_eq!(
        batch_count(&server, &admin, cc).await,
        0,
        "alice never signed in through cc-client"
    );
}

/// Three logins at T0, T0 + 10 and T0 + 20 carry the tenant, client and subject layers. Whichever
/// layer holds the latest cutoff (T0 + 15), and whether it is written first or last, it decides:
/// the two earlier logins die and the last survives.
async fn every_layer_can_hold_the_latest_cutoff_whatever_the_order(backend: Backend) {
    for latest in ["tenant", "client", "subject"] {
        for latest_first in [true, false] {
            let (server, clock) = clocked(backend).await;
            let early = login(&server).await;
            clock.advance(10);
            let middle = login(&server).await;
            clock.advance(10);
            let late = login(&server).await;
            let subject = subject_of(&server, &early).await;
            let admin = admin_token(&server).await;
            clock.advance(10);
            let cut = |layer: &str, at: u64| {
                let mut body = json!({"creationBefore": rfc3339(at)});
                match layer {
                    "tenant" => body["tenantPath"] = json!("/acme"),
                    "client" => body["clientId"] = json!("app-client"),
                    _ => body["subject"] = subject.clone(),
                }
                body
            };
            let mut cuts: Vec<Value> = ["tenant", "client", "subject"]
                .into_iter()
                .filter(|layer| *layer != latest)
                .map(|layer| cut(layer, T0 + 5))
                .collect();
            let latest_cut = cut(latest, T0 + 15);
            if latest_first {
                cuts.insert(0, latest_cut);
            } else {
                cuts.push(latest_cut);
            }
            for body in cuts {
                batch_count(&server, &admin, body).await;
            }
            let case = format!("latest on {latest}, written first: {latest_first}");
            assert!(!is_active(&server, early["access_token"].as_str().unwrap()).await, "{case}");
            assert!(!is_active(&server, middle["access_token"].as_str().unwrap()).await, "{case}");
            assert!(is_active(&server, late["access_token"].as_str().unwrap()).await, "{case}");
        }
    }
}

async fn layered_cutoffs_in_any_order_the_latest_wins(backend: Backend) {
    for tenant_first in [true, false] {
        let (server, clock) = clocked(backend).await;
        let early = service_token(&server).await; // T0
        clock.advance(10);
        let middle = service_token(&server).await; // T0 + 10
        clock.advance(10);
        let late = service_token(&server).await; // T0 + 20
        let admin = admin_token(&server).await;
        clock.advance(10);
        let tenant_cut = json!({"creationBefore": rfc3339(T0 + 5)});
        let client_cut = json!({"creationBefore": rfc3339(T0 + 15), "clientId": "cc-client"});
        let (first, second) =
            if tenant_first { (tenant_cut, client_cut) } else { (client_cut, tenant_cut) };
        batch_count(&server, &admin, first).await;
        batch_count(&server, &admin, second).await;
        assert!(!is_active(&server, &early).await);
        assert!(!is_active(&server, &middle).await, "the client layer's later cutoff wins");
        assert!(is_active(&server, &late).await);
        // An earlier cutoff on the same layer never lowers the later one.
        batch_count(
            &server,
            &admin,
            json!({"creationBefore": rfc3339(T0 + 1), "clientId": "cc-client"}),
        )
        .await;
        assert!(!is_active(&server, &middle).await, "tenant first: {tenant_first}");
    }
}

async fn a_grant_begun_before_the_cutoff_dies_whole_even_after_rotation(backend: Backend) {
    let (server, clock) = clocked(backend).await;
    let first = login(&server).await; // grant begins at T0
    clock.advance(20);
    let rotated: Value = refresh(&server, APP_CLIENT, first["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let admin = admin_token(&server).await;
    clock.advance(5);
    // The cutoff lies between the login and the rotation: the rotated tokens (iat T0 + 20) die too.
    let count = batch_count(
        &server,
        &admin,
        json!({"creationBefore": rfc3339(T0 + 10), "clientId": "app-client"}),
    )
    .await;
    assert_eq!(count, 3, "both unexpired access tokens of the grant and its current refresh token");
    assert!(!is_active(&server, rotated["access_token"].as_str().unwrap()).await);
    let refreshed = refresh(&server, APP_CLIENT, rotated["refresh_token"].as_str().unwrap()).await;
    assert_eq!(error_of(refreshed).await, (400, "invalid_grant".into()));
    let later = login(&server).await;
    assert!(
        is_active(&server, later["access_token"].as_str().unwrap()).await,
        "grants begun after live on"
    );
}

async fn cutoffs_are_enforced_by_refresh_introspection_and_bearer_revocation(backend: Backend) {
    let (server, clock) = clocked(backend).await;
    let alice = login(&server).await;
    let cc = service_token(&server).await;
    let admin = admin_token(&server).await;
    clock.advance(1);
    batch_count(&server, &admin, json!({"creationBefore": rfc3339(T0 + 1), "tenantPath": "/acme"}))
        .await;
    assert_eq!(introspect(&server, CC_CLIENT, &cc).await, json!({"active": false}));
    let refreshed = refresh(&server, APP_CLIENT, alice["refresh_token"].as_str().unwrap()).await;
    assert_eq!(error_of(refreshed).await, (400, "invalid_grant".into()));
    let logout =
        revoke_self(&server, alice["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(error_of(logout).await, (401, "invalid_token".into()));
    assert_eq!(
        error_of(batch(&server, &admin, json!({})).await).await,
        (401, "invalid_token".into()),
        "the caller's own token too"
    );
}

async fn already_revoked_tokens_are_not_counted(backend: Backend) {
    let (server, clock) = clocked(backend).await;
    let revoked_alone = service_token(&server).await;
    let live = service_token(&server).await;
    let logged_out = login(&server).await; // two tokens, revoked with their grant
    let rotated = login(&server).await;
    let admin = admin_token(&server).await;
    assert_eq!(revoke(&server, CC_CLIENT, &[("token", &revoked_alone)]).await.status(), 200);
    let bearer = logged_out["access_token"].as_str().unwrap();
    assert_eq!(revoke_self(&server, bearer).send().await.unwrap().status(), 200);
    // The rotation spends the first refresh token and issues a new pair.
    let next: Value = refresh(&server, APP_CLIENT, rotated["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert!(next["refresh_token"].is_string());
    clock.advance(1);
    // Earlier cutoff on cc-client: kills `live` before the tenant-wide one comes.
    batch_count(&server, &admin, json!({"clientId": "cc-client"})).await;
    // Left: the rotated grant's first access token, its new pair, and the admin token.
    let count = batch_count(&server, &admin, json!({"dryRun": true})).await;
    assert_eq!(count, 4);
    assert!(!is_active(&server, &live).await);
}

async fn malformed_and_future_requests_are_invalid_and_change_nothing(backend: Backend) {
    let (server, _clock) = clocked(backend).await;
    let victim = service_token(&server).await;
    let admin = admin_token(&server).await;
    for body in [
        json!({"creationBefore": "yesterday"}),
        json!({"creationBefore": "2027-01-15"}),
        json!({"creationBefore": rfc3339(T0 + 3600)}),
        json!({"creationBefore": 1800000000}),
        json!({"tenantPath": "acme"}),
        json!({"clientId": "not a client id"}),
        json!({"unknownField": true}),
        json!([]),
    ] {
        assert_eq!(
            error_of(batch(&server, &admin, body.clone()).await).await,
            (400, "invalid_request".into()),
            "{body}"
        );
    }
    for raw in ["{", "creationBefore=now", "null"] {
        let response = server
            .http
            .post(server.url("/oauth2/revoke/batch"))
            .header("authorization", format!("Bearer {admin}"))
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(response).await, (400, "invalid_request".into()), "{raw}");
    }
    assert!(is_active(&server, &victim).await);
}

async fn absent_creation_before_means_now(backend: Backend) {
    let (server, _clock) = clocked(backend).await;
    let token = service_token(&server).await;
    let admin = admin_token(&server).await;
    // Same second as the tokens: "now" is part-way through it, so it rounds up past them.
    assert_eq!(batch_count(&server, &admin, json!({})).await, 2);
    assert!(!is_active(&server, &token).await);
}

/// The documented boundary (docs/api.md, "The rule"): revoked when `iat` (or the grant's start) is
/// earlier than the cutoff second; issued in the cutoff second, valid. Held at every place a
/// token is accepted: introspection of access and refresh tokens, refresh, the count.
async fn a_grant_begun_in_the_cutoff_second_survives_everywhere_and_one_begun_before_dies(
    backend: Backend,
) {
    let (server, clock) = clocked(backend).await;
    let before = login(&server).await; // grant and tokens of T0
    clock.advance(1);
    let at = login(&server).await; // grant and tokens of T0 + 1
    let admin = admin_token(&server).await; // T0 + 1
    clock.advance(5);
    let cutoff = json!({"creationBefore": rfc3339(T0 + 1), "clientId": "app-client"});
    let mut dry_run = cutoff.clone();
    dry_run["dryRun"] = json!(true);
    assert_eq!(batch_count(&server, &admin, dry_run).await, 2, "only the T0 pair is covered");
    assert_eq!(batch_count(&server, &admin, cutoff).await, 2);

    for token in [&at["access_token"], &at["refresh_token"]] {
        assert!(is_active(&server, token.as_str().unwrap()).await, "issued in the cutoff second");
    }
    for token in [&before["access_token"], &before["refresh_token"]] {
        assert!(!is_active(&server, token.as_str().unwrap()).await, "issued the second before");
    }
    let refreshed = refresh(&server, APP_CLIENT, at["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.status(), 200, "a grant begun in the cutoff second refreshes");
    let refused = refresh(&server, APP_CLIENT, before["refresh_token"].as_str().unwrap()).await;
    assert_eq!(error_of(refused).await, (400, "invalid_grant".into()));
}

/// The layer the CVEs missed at introspection: a refresh token whose grant a cutoff covers is
/// inactive, before anyone tries to use it.
async fn cut_off_refresh_tokens_are_inactive_to_introspection(backend: Backend) {
    let (server, clock) = clocked(backend).await;
    let alice = login(&server).await;
    let bob = bob_login(&server).await;
    let admin = admin_token(&server).await;
    clock.advance(1);
    let alice_refresh = alice["refresh_token"].as_str().unwrap();
    let bob_refresh = bob["refresh_token"].as_str().unwrap();
    assert!(is_active(&server, alice_refresh).await);
    // An ancestor tenant's cutoff reaches bob in /acme/sales; a subject cutoff reaches alice.
    let alice_sub = subject_of(&server, &alice).await;
    batch_count(&server, &admin, json!({"subject": alice_sub})).await;
    assert!(!is_active(&server, alice_refresh).await, "subject layer");
    assert!(is_active(&server, bob_refresh).await, "not yet");
    batch_count(&server, &admin, json!({"tenantPath": "/acme"})).await;
    assert!(!is_active(&server, bob_refresh).await, "ancestor tenant layer");
}
