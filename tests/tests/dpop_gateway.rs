//! DPoP behind API Gateway, on real payload-2.0 event fixtures and both stores: the token
//! function takes `htu` from the issuer (the deployment's public base, stage included), the
//! authorizer from the event's `domainName` and `rawPath`; a bound token passes the authorizer
//! only as `DPoP` with a proof for that very request, and never from a cached decision.

use std::sync::Arc;

use integration_tests::jose::ClientKey;
use integration_tests::{
    Backend, CC_CLIENT, event_edited, on_both_backends, repo_path, test_config_with,
};
use jsonwebtoken::Algorithm;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use serde_json::Value;
use token_service::api::{self, Router};
use token_service::authorizer::Authorizer;
use token_service::clock::{Clock, SystemClock};
use token_service::keys::{KeySet, SigningAlgorithm};
use token_service::setup::SigningWiring;
use token_service::store::Stores;

/// The deployment's public base: a named stage on the execute-api domain.
const ISSUER: &str = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod";
const ORDERS_AT_STAGE: &str = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/orders";
const ORDERS_AT_CUSTOM_DOMAIN: &str = "https://api.example.com/orders";

on_both_backends!(
    the_token_function_takes_htu_from_the_issuer_stage_included,
    self_revocation_on_a_named_stage_takes_htu_from_the_issuer,
    a_bound_token_passes_the_authorizer_only_with_a_proof_for_this_request,
    a_custom_domain_proof_names_the_custom_domain,
    a_decision_that_could_be_cached_without_the_proof_never_admits_a_bound_token,
);

struct Gateway {
    router: Router,
    authorizer: Authorizer,
    key: ClientKey,
}

fn gateway(stores: Stores) -> Gateway {
    let config = test_config_with(
        ISSUER,
        SigningAlgorithm::ES256,
        &[("AUTHORIZER_ROUTE_SCOPES", r#"{"$default": ""}"#)],
    );
    let keys = KeySet::generate(SigningAlgorithm::ES256).unwrap();
    let wiring = SigningWiring::new(config, keys, stores, Arc::new(SystemClock));
    Gateway {
        router: wiring.router(),
        authorizer: wiring.authorizer(),
        key: ClientKey::generate(Algorithm::ES256),
    }
}

fn now() -> u64 {
    SystemClock.now()
}

impl Gateway {
    /// cc-client's token request through the gateway's `prod` stage, with a proof for `htu`.
    async fn token(&self, htu: &str) -> (u16, Value) {
        let proof = self.key.proof("POST", htu, now(), None);
        let event =
            event_edited("token-client-credentials-dpop-stage.json", &[("{{PROOF}}", &proof)]);
        let response = api::token_endpoint(&self.router.token, event).await;
        (response.status().as_u16(), serde_json::from_slice(response.body().as_ref()).unwrap())
    }

    async fn bound_token(&self) -> String {
        let (status, body) = self.token(&format!("{ISSUER}/oauth2/token")).await;
        assert_eq!((status, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn admits(&self, event: &ApiGatewayV2CustomAuthorizerV2Request) -> bool {
        self.authorizer.authorize(event).await.is_authorized
    }
}

/// An authorizer event from `tests/events`, with each replacement made in its JSON.
fn authorizer_event(
    name: &str,
    replacements: &[(&str, &str)],
) -> ApiGatewayV2CustomAuthorizerV2Request {
    let mut json = std::fs::read_to_string(repo_path(&format!("events/{name}"))).unwrap();
    for (from, to) in replacements {
        json = json.replace(from, to);
    }
    serde_json::from_str(&json).expect("authorizer event parses")
}

fn dpop_event(name: &str, token: &str, proof: &str) -> ApiGatewayV2CustomAuthorizerV2Request {
    authorizer_event(name, &[("{{TOKEN}}", token), ("{{PROOF}}", proof)])
}

async fn the_token_function_takes_htu_from_the_issuer_stage_included(backend: Backend) {
    let gateway = gateway(backend.seeded().await);
    gateway.bound_token().await;
    let wrong = [
        "https://abc123.execute-api.eu-west-1.amazonaws.com/oauth2/token",
        "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/prod/oauth2/token",
        "https://api.example.com/prod/oauth2/token",
    ];
    for htu in wrong {
        let (status, body) = gateway.token(htu).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "{htu}");
    }
}

async fn a_bound_token_passes_the_authorizer_only_with_a_proof_for_this_request(backend: Backend) {
    let g = gateway(backend.seeded().await);
    let token = g.bound_token().await;
    let proof = g.key.proof("GET", ORDERS_AT_STAGE, now(), Some(&token));
    let event = dpop_event("authorizer-dpop-stage.json", &token, &proof);
    assert!(g.admits(&event).await, "a proof for GET /prod/orders");
    assert!(!g.admits(&event).await, "the same proof again: a replay");

    let thief = ClientKey::generate(Algorithm::ES256);
    let denied = [
        ("another key", thief.proof("GET", ORDERS_AT_STAGE, now(), Some(&token))),
        ("another method", g.key.proof("DELETE", ORDERS_AT_STAGE, now(), Some(&token))),
        (
            "the path without its stage",
            g.key.proof(
                "GET",
                "https://abc123.execute-api.eu-west-1.amazonaws.com/orders",
                now(),
                Some(&token),
            ),
        ),
        ("no ath", g.key.proof("GET", ORDERS_AT_STAGE, now(), None)),
        ("ath of another token", g.key.proof("GET", ORDERS_AT_STAGE, now(), Some("another-token"))),
        ("a stale proof", g.key.proof("GET", ORDERS_AT_STAGE, now() - 120, Some(&token))),
    ];
    for (why, proof) in denied {
        assert!(
            !g.admits(&dpop_event("authorizer-dpop-stage.json", &token, &proof)).await,
            "{why}"
        );
    }
    let bearer = authorizer_event("authorizer-get-orders.json", &[("{{TOKEN}}", &token)]);
    assert!(!g.admits(&bearer).await, "a bound token as Bearer");

    // An unbound token with the DPoP scheme is denied too.
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        CC_CLIENT.0, CC_CLIENT.1
    );
    let response =
        api::token_endpoint(&g.router.token, integration_tests::event_from_form(&form)).await;
    let unbound: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    let unbound = unbound["access_token"].as_str().unwrap();
    let proof = g.key.proof("GET", ORDERS_AT_STAGE, now(), Some(unbound));
    assert!(!g.admits(&dpop_event("authorizer-dpop-stage.json", unbound, &proof)).await);
    // ...while as Bearer it passes.
    let bearer = authorizer_event("authorizer-get-orders.json", &[("{{TOKEN}}", unbound)]);
    assert!(g.admits(&bearer).await);
}

/// With a custom domain mapped at its root, the event's domainName is the custom domain and its
/// rawPath the path the client used: the proof names the custom domain's URL.
async fn a_custom_domain_proof_names_the_custom_domain(backend: Backend) {
    let g = gateway(backend.seeded().await);
    let token = g.bound_token().await;
    let proof = g.key.proof("GET", ORDERS_AT_STAGE, now(), Some(&token));
    let execute_api = dpop_event("authorizer-dpop-custom-domain.json", &token, &proof);
    assert!(!g.admits(&execute_api).await, "a proof for the execute-api URL");
    let proof = g.key.proof("GET", ORDERS_AT_CUSTOM_DOMAIN, now(), Some(&token));
    assert!(g.admits(&dpop_event("authorizer-dpop-custom-domain.json", &token, &proof)).await);
}

/// The cached TokenAuthorizer keys its decisions on the Authorization header and the route:
/// its events carry no proof among their identity sources, so a decision it caches could be
/// replayed with any proof, or none. It therefore never admits a bound token.
async fn a_decision_that_could_be_cached_without_the_proof_never_admits_a_bound_token(
    backend: Backend,
) {
    let g = gateway(backend.seeded().await);
    let token = g.bound_token().await;
    let proof = g.key.proof("GET", ORDERS_AT_STAGE, now(), Some(&token));
    let mut cached = dpop_event("authorizer-dpop-stage.json", &token, &proof);
    cached.identity_source = Some(vec![format!("DPoP {token}"), "GET /orders".into()]);
    assert!(!g.admits(&cached).await, "the proof is not part of the cache key");
    // The very same request from the uncached DpopAuthorizer passes.
    assert!(g.admits(&dpop_event("authorizer-dpop-stage.json", &token, &proof)).await);
}

/// On a named stage the request's path carries the stage's segment; the proof names the route as
/// the client reached it, `ISSUER/oauth2/revoke`, whichever the path.
async fn self_revocation_on_a_named_stage_takes_htu_from_the_issuer(backend: Backend) {
    let g = gateway(backend.seeded().await);
    let revoke = async |token: &str, htu: &str| {
        let proof = g.key.proof("POST", htu, now(), Some(token));
        let event =
            event_edited("revoke-dpop-stage.json", &[("{{TOKEN}}", token), ("{{PROOF}}", &proof)]);
        api::revoke_endpoint(&g.router.revocation, event).await.status().as_u16()
    };
    let token = g.bound_token().await;
    let doubled = format!("{ISSUER}/prod/oauth2/revoke");
    assert_eq!(revoke(&token, &doubled).await, 401, "the stage named twice");
    assert_eq!(revoke(&token, &format!("{ISSUER}/oauth2/revoke")).await, 200);
}
