//! The Lambda authorizer on real API Gateway authorizer events, on both stores: it admits only
//! valid, unrevoked, sufficiently scoped tokens, passes their context, and fails closed.

use std::sync::Arc;

use integration_tests::flows::service_token;
use integration_tests::forgery::{claims_of, forgeries};
use integration_tests::{
    ADMIN_CLIENT, Backend, CC_CLIENT, TestServer, event_from_form, on_both_backends, repo_path,
    test_config_with,
};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use serde_json::Value;
use token_service::api::{self, Router};
use token_service::authorizer::{AuthorizedContext, Authorizer};
use token_service::clock::SystemClock;
use token_service::keys::{KeySet, SigningAlgorithm};
use token_service::setup::SigningWiring;
use token_service::store::Stores;

const ISSUER: &str = "https://issuer.test";
/// `GET /orders` needs `read`; `DELETE /orders` needs `admin`; every other route needs nothing.
const ROUTE_SCOPES: &str = r#"{"GET /orders": "read", "DELETE /orders": "admin", "$default": ""}"#;

struct Setup {
    router: Router,
    authorizer: Authorizer,
    keys: KeySet,
}

fn setup_on(stores: Stores) -> Setup {
    setup_with_keys(stores, KeySet::generate(SigningAlgorithm::ES256).unwrap())
}

fn setup_with_keys(stores: Stores, keys: KeySet) -> Setup {
    setup_routing(stores, keys, ROUTE_SCOPES)
}

fn setup_routing(stores: Stores, keys: KeySet, route_scopes: &str) -> Setup {
    let config = test_config_with(
        ISSUER,
        SigningAlgorithm::ES256,
        &[("AUTHORIZER_ROUTE_SCOPES", route_scopes)],
    );
    let wiring = SigningWiring::new(config, keys.clone(), stores, Arc::new(SystemClock));
    Setup { router: wiring.router(), authorizer: wiring.authorizer(), keys }
}

fn authorizer_event(token: &str, route: &str) -> ApiGatewayV2CustomAuthorizerV2Request {
    let path = repo_path("events/authorizer-get-orders.json");
    let json = std::fs::read_to_string(path)
        .unwrap()
        .replace("{{TOKEN}}", token)
        .replace("GET /orders", route);
    serde_json::from_str(&json).expect("authorizer event parses")
}

async fn token(setup: &Setup, (id, secret): (&str, &str)) -> String {
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let response = api::token_endpoint(&setup.router.token, event_from_form(&form)).await;
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

on_both_backends!(
    a_valid_token_is_admitted_with_its_context,
    missing_malformed_and_forged_tokens_are_denied,
    every_forgery_of_an_admitted_token_is_denied,
    revoked_and_cut_off_tokens_are_denied,
    routes_require_their_configured_scopes,
    unlisted_routes_are_denied_unless_a_default_opens_them,
    a_users_token_never_passes_for_an_administrative_scope,
    tokens_of_a_disabled_client_or_user_are_denied_at_once,
);

/// The admin plane's disable writes the same cutoff layers verification reads.
async fn tokens_of_a_disabled_client_or_user_are_denied_at_once(backend: Backend) {
    use token_service::admin::{Caller, ClientPatch, UserPatch};
    let setup = setup_on(backend.seeded().await);
    let service = token(&setup, CC_CLIENT).await;
    let login = "grant_type=password&username=alice&password=alice-password-1&client_id=app-client\
                 &client_secret=app-client-secret-0123456789abcdefghij";
    let response = api::token_endpoint(&setup.router.token, event_from_form(login)).await;
    let alice: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    let alice = alice["access_token"].as_str().unwrap().to_owned();
    let admitted = async |token: &str| {
        setup.authorizer.authorize(&authorizer_event(token, "GET /orders")).await.is_authorized
    };
    assert!(admitted(&service).await && admitted(&alice).await);

    let operator = Caller::operator();
    let disable = ClientPatch { enabled: Some(false), ..Default::default() };
    setup.router.admin.update_client(&operator, CC_CLIENT.0, disable).await.unwrap();
    assert!(!admitted(&service).await, "the disabled client's token");
    assert!(admitted(&alice).await, "another client's user");

    let claims = integration_tests::forgery::claims_of(&alice);
    let sub = claims["sub"].as_str().unwrap();
    let disable = UserPatch { enabled: Some(false), ..Default::default() };
    setup.router.admin.update_user(&operator, sub, disable).await.unwrap();
    assert!(!admitted(&alice).await, "the disabled user's token");
}

async fn a_valid_token_is_admitted_with_its_context(backend: Backend) {
    let setup = setup_on(backend.seeded().await);
    let token = token(&setup, CC_CLIENT).await;
    let response = setup.authorizer.authorize(&authorizer_event(&token, "GET /orders")).await;
    assert!(response.is_authorized);
    let expected = AuthorizedContext {
        sub: "cc-client".into(),
        client_id: "cc-client".into(),
        scope: "read write".into(),
        tenant: "/acme".into(),
    };
    assert_eq!(response.context, Some(expected));
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(json["isAuthorized"], true, "simple response format");
    assert_eq!(json["context"]["tenant"], "/acme");
}

async fn missing_malformed_and_forged_tokens_are_denied(backend: Backend) {
    let setup = setup_on(backend.seeded().await);
    let genuine = token(&setup, CC_CLIENT).await;
    let (head, rest) = genuine.split_once('.').unwrap();
    let forged = format!("{}.{rest}", head.replace('J', "K"));
    let other_issuer = TestServer::start().await;
    let foreign = service_token(&other_issuer).await;
    for bad in ["", "garbage", forged.as_str(), foreign.as_str()] {
        let response = setup.authorizer.authorize(&authorizer_event(bad, "GET /orders")).await;
        assert!(!response.is_authorized, "{bad}");
        assert_eq!(response.context, None);
    }
    let mut no_header = authorizer_event(&genuine, "GET /orders");
    no_header.headers.remove("authorization");
    assert!(!setup.authorizer.authorize(&no_header).await.is_authorized);
}

/// The forgeries of RFC 8725 and the JWT CVE record (alg none, HMAC keyed with the public key,
/// injected kid, embedded jwk, jku, …), each a copy of a token the authorizer admits.
async fn every_forgery_of_an_admitted_token_is_denied(backend: Backend) {
    let setup = setup_on(backend.seeded().await);
    let genuine = token(&setup, CC_CLIENT).await;
    let admitted = setup.authorizer.authorize(&authorizer_event(&genuine, "GET /orders")).await;
    assert!(admitted.is_authorized, "control");
    for (name, forged) in forgeries(&genuine, &setup.keys) {
        let response = setup.authorizer.authorize(&authorizer_event(&forged, "GET /orders")).await;
        assert!(!response.is_authorized, "{name}");
        assert_eq!(response.context, None, "{name}");
    }
}

async fn revoked_and_cut_off_tokens_are_denied(backend: Backend) {
    let setup = setup_on(backend.seeded().await);
    let revoked = token(&setup, CC_CLIENT).await;
    let mut logout = event_from_form("");
    *logout.uri_mut() = "/oauth2/revoke".parse().unwrap();
    logout.headers_mut().insert("authorization", format!("Bearer {revoked}").parse().unwrap());
    assert_eq!(api::revoke_endpoint(&setup.router.revocation, logout).await.status(), 200);
    assert!(
        !setup.authorizer.authorize(&authorizer_event(&revoked, "GET /orders")).await.is_authorized
    );

    let cut = token(&setup, CC_CLIENT).await;
    let admin = token(&setup, ADMIN_CLIENT).await;
    let mut batch =
        lambda_http::Request::new(lambda_http::Body::Text(r#"{"clientId":"cc-client"}"#.into()));
    *batch.method_mut() = http::Method::POST;
    batch.headers_mut().insert("authorization", format!("Bearer {admin}").parse().unwrap());
    assert_eq!(api::batch_revoke_endpoint(&setup.router.batch, batch).await.status(), 200);
    assert!(
        !setup.authorizer.authorize(&authorizer_event(&cut, "GET /orders")).await.is_authorized
    );
    assert!(
        setup.authorizer.authorize(&authorizer_event(&admin, "GET /orders")).await.is_authorized,
        "another client"
    );
}

async fn routes_require_their_configured_scopes(backend: Backend) {
    let setup = setup_on(backend.seeded().await);
    let reader = token(&setup, CC_CLIENT).await; // read write
    let authorize = async |route: &str| {
        setup.authorizer.authorize(&authorizer_event(&reader, route)).await.is_authorized
    };
    assert!(authorize("GET /orders").await);
    assert!(!authorize("DELETE /orders").await, "lacks admin");
    assert!(authorize("POST /anything").await, "$default needs nothing");
}

/// The authorizer fails closed: with no `$default`, a route missing from the map is denied to
/// every token, however scoped; only an explicit `"$default": ""` opens unlisted routes to any
/// valid token.
async fn unlisted_routes_are_denied_unless_a_default_opens_them(backend: Backend) {
    let keys = KeySet::generate(SigningAlgorithm::ES256).unwrap();
    for (route_scopes, listed, unlisted) in [
        ("{}", false, false),
        (r#"{"GET /orders": "write"}"#, true, false),
        (r#"{"GET /orders": "write", "$default": "admin"}"#, true, false),
        (r#"{"GET /orders": "write", "$default": ""}"#, true, true),
    ] {
        let setup = setup_routing(backend.seeded().await, keys.clone(), route_scopes);
        let reader = token(&setup, CC_CLIENT).await; // read write
        let authorize = async |route: &str| {
            setup.authorizer.authorize(&authorizer_event(&reader, route)).await.is_authorized
        };
        assert_eq!(authorize("GET /orders").await, listed, "{route_scopes}: GET /orders");
        for route in ["DELETE /admin/users", "POST /orders", "$default"] {
            assert_eq!(authorize(route).await, unlisted, "{route_scopes}: {route}");
        }
    }
}

/// A token of a user's grant whose `scope` claims `admin` (issued before user grants left the
/// administrative scopes out, say) is genuinely signed and admitted where `read` suffices, and
/// denied on a route that needs `admin`; a client's own admin token passes there.
async fn a_users_token_never_passes_for_an_administrative_scope(backend: Backend) {
    let routes = r#"{"GET /admin/clients": "admin", "GET /orders": "read"}"#;
    let setup = setup_routing(
        backend.seeded().await,
        KeySet::generate(SigningAlgorithm::ES256).unwrap(),
        routes,
    );
    let form = "grant_type=password&username=bob&password=bob-password-1&tenant_path=%2Facme%2Fsales\
                &client_id=sales-admin&client_secret=sales-admin-secret-0123456789abcdefghi";
    let response = api::token_endpoint(&setup.router.token, event_from_form(form)).await;
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    let mut claims = claims_of(body["access_token"].as_str().unwrap());
    assert!(claims["sid"].is_string(), "a user's token");
    claims["scope"] = "admin read".into();
    let escalated = setup.keys.current().sign_json(&serde_json::to_vec(&claims).unwrap()).unwrap();
    let authorize = async |token: &str, route: &str| {
        setup.authorizer.authorize(&authorizer_event(token, route)).await
    };
    let admitted = authorize(&escalated, "GET /orders").await;
    assert!(admitted.is_authorized, "control: genuinely signed");
    assert_eq!(admitted.context.unwrap().scope, "read", "the route never sees admin");
    assert!(!authorize(&escalated, "GET /admin/clients").await.is_authorized);

    let mut own = claims_of(&token(&setup, ADMIN_CLIENT).await);
    own["scope"] = "admin read".into();
    own["jti"] = token_service::domain::TokenId::generate().to_string().into();
    let client_admin = setup.keys.current().sign_json(&serde_json::to_vec(&own).unwrap()).unwrap();
    assert!(authorize(&client_admin, "GET /admin/clients").await.is_authorized, "a client's own");
}

/// When the revocation state cannot be read, the authorizer denies.
#[tokio::test]
async fn the_authorizer_fails_closed_when_dynamodb_is_unreachable() {
    use token_service::setup;
    use token_service::store::dynamodb::DynamoStore;
    let healthy = setup_on(Backend::Memory.seeded().await);
    let token = token(&healthy, CC_CLIENT).await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let sdk = setup::aws_config().await;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(endpoint).build();
    let unreachable =
        Stores::all(Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "t")));
    // Same keys as the healthy setup, so only the store differs.
    let failing = setup_with_keys(unreachable, healthy.keys.clone());
    assert!(
        !failing.authorizer.authorize(&authorizer_event(&token, "GET /orders")).await.is_authorized
    );
    assert!(
        healthy.authorizer.authorize(&authorizer_event(&token, "GET /orders")).await.is_authorized
    );
}

/// API Gateway caches a decision per value of the identity sources. The decision depends on the
/// route (its required scopes), so whenever the cache can be on, the route key must be one of
/// them: with the token alone, a decision for `GET /orders` would be reused for `DELETE /orders`.
#[test]
fn a_cached_decision_is_keyed_by_token_and_route() {
    use serde_yaml::Value as Yaml;
    let template: Yaml =
        serde_yaml::from_str(&std::fs::read_to_string(repo_path("../template.yaml")).unwrap())
            .unwrap();
    let authorizers = template["Resources"]["HttpApi"]["Properties"]["Auth"]["Authorizers"]
        .as_mapping()
        .expect("the HTTP API declares its authorizers");
    assert!(!authorizers.is_empty());
    for (name, authorizer) in authorizers {
        let identity = &authorizer["Identity"];
        // A literal TTL, or a parameter: caching can be on unless the TTL is pinned to 0.
        let caching_possible = match &identity["ReauthorizeEvery"] {
            Yaml::Null => true,
            Yaml::Tagged(tagged) if tagged.tag == "Ref" => {
                let parameter = &template["Parameters"][tagged.value.as_str().unwrap()];
                parameter["MaxValue"].as_u64().is_none_or(|max| max > 0)
            }
            ttl => ttl.as_u64() != Some(0),
        };
        if !caching_possible {
            continue;
        }
        let listed = |key: &str, wanted: &str| {
            identity[key].as_sequence().is_some_and(|list| list.iter().any(|v| v == wanted))
        };
        assert!(listed("Headers", "Authorization"), "{name:?}: the token is an identity source");
        assert!(
            listed("Context", "routeKey"),
            "{name:?}: caching is on, so $context.routeKey must be an identity source"
        );
    }
}
