//! The API Gateway HTTP API Lambda authorizer (payload 2.0, simple responses): it admits a
//! request only if its access token passes the one verification routine (signature, expiry,
//! audience, revocation, batch cutoffs) and carries the scopes its route requires, and hands the
//! route the token's `sub`, `client_id`, `scope` and `tenant`.
//!
//! A DPoP-bound token is admitted only as `Authorization: DPoP <token>` with a proof for this
//! request: `htm` the request's method, `htu` `https://` + the event's `domainName` + its
//! `rawPath` (the URL the client called, stage segment included), `ath` the token's hash, and
//! the key the token's `cnf.jkt` names. API Gateway caches a decision per identity-source
//! value, and a proof is good for one request only: so a bound token is admitted only when its
//! proof is itself one of the identity sources (the decision can then never be reused for
//! another proof), which `template.yaml`'s `DpopAuthorizer` does, uncached. The cached
//! `TokenAuthorizer` keys its decisions on the Authorization header alone and so denies every
//! bound token.

use std::collections::BTreeMap;
use std::time::Instant;

use lambda_http::LambdaEvent;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::domain::ScopeSet;
use crate::dpop::{DPOP_HEADER, ProofContext, ProofRejected};
use crate::telemetry;
use crate::verify::{Rejection, Verifier, VerifyError};

/// The `Route` dimension of the authorizer's latency.
pub const AUTHORIZER_ROUTE: &str = "authorizer";

/// The route key whose scopes apply to routes not listed. Without it, an unlisted route is
/// denied: allowing every route is said explicitly, as `"$default": ""`.
pub const DEFAULT_ROUTE: &str = "$default";

/// What the route receives as `$context.authorizer.lambda.*`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizedContext {
    pub sub: String,
    pub client_id: String,
    pub scope: String,
    pub tenant: String,
}

/// The simple response format: `{"isAuthorized": …, "context": {…}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerResponse {
    pub is_authorized: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<AuthorizedContext>,
}

/// Scopes each route requires, by API Gateway route key (`GET /orders`), from the configuration.
pub type RouteScopes = BTreeMap<String, ScopeSet>;

pub struct Authorizer {
    verifier: Verifier,
    route_scopes: RouteScopes,
}

/// Why a request was denied, for its log line. Never carries the token.
#[derive(Debug, thiserror::Error)]
enum Denial {
    #[error("no Bearer or DPoP token")]
    MissingToken,
    #[error("{0}")]
    InvalidToken(Rejection),
    #[error("{0}")]
    InvalidProof(ProofRejected),
    #[error("the DPoP proof is not an identity source, so a cached decision could be replayed")]
    ProofNotInCacheKey,
    #[error("the event has no domainName to build htu from")]
    NoDomain,
    #[error("the token lacks the route's scopes")]
    InsufficientScope,
    #[error("the route is not in AUTHORIZER_ROUTE_SCOPES, which has no $default")]
    UnlistedRoute,
    #[error("revocation state unreadable")]
    Unavailable,
}

impl Denial {
    /// The log line's `reason`: the OAuth2 error code a resource server would answer with.
    fn reason(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidToken(_) | Self::NoDomain => "invalid_token",
            Self::InvalidProof(_) | Self::ProofNotInCacheKey => "invalid_dpop_proof",
            Self::InsufficientScope => "insufficient_scope",
            Self::UnlistedRoute => "unlisted_route",
            Self::Unavailable => "temporarily_unavailable",
        }
    }
}

impl Authorizer {
    pub fn new(verifier: Verifier, route_scopes: RouteScopes) -> Self {
        Self { verifier, route_scopes }
    }

    /// The authorizer function's entry point: [`Self::authorize`] inside a span carrying the
    /// Lambda request id and (once verified) the client id, as `api` does for every other
    /// function, so its log line reads like theirs.
    pub async fn handle(
        &self,
        event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>,
    ) -> AuthorizerResponse {
        let request_id = event.context.request_id.as_str();
        let span = tracing::info_span!("request", request_id, client_id = tracing::field::Empty);
        self.authorize(&event.payload).instrument(span).await
    }

    /// Never fails: anything but a valid, sufficiently scoped token is a denial, including a
    /// store that cannot be read (fail closed). Logs one line per request: method, route,
    /// outcome (`allow` or `deny` with its reason) and latency; never the token.
    pub async fn authorize(
        &self,
        request: &ApiGatewayV2CustomAuthorizerV2Request,
    ) -> AuthorizerResponse {
        let started = Instant::now();
        let route = request.route_key.as_deref().unwrap_or(DEFAULT_ROUTE);
        let decision = self.decide(request, route).await;
        let method = request.request_context.http.method.as_str();
        let latency_us = started.elapsed().as_micros() as u64;
        telemetry::latency(AUTHORIZER_ROUTE, latency_us as f64 / 1000.0);
        match decision {
            Ok(context) => {
                tracing::info!(method, route, outcome = "allow", latency_us, "request");
                telemetry::authorizer_decision("allow", "none");
                AuthorizerResponse { is_authorized: true, context: Some(context) }
            }
            Err(denial) => {
                let reason = denial.reason();
                tracing::info!(method, route, outcome = "deny", reason, detail = %denial, latency_us, "request");
                telemetry::authorizer_decision("deny", reason);
                if matches!(denial, Denial::Unavailable) {
                    telemetry::storage_error();
                }
                AuthorizerResponse { is_authorized: false, context: None }
            }
        }
    }

    async fn decide(
        &self,
        request: &ApiGatewayV2CustomAuthorizerV2Request,
        route: &str,
    ) -> Result<AuthorizedContext, Denial> {
        let (scheme, token) = request
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .map(|(scheme, token)| (scheme, token.trim()))
            .ok_or(Denial::MissingToken)?;
        let verified = if scheme.eq_ignore_ascii_case("bearer") {
            self.verifier.verify(token).await
        } else if scheme.eq_ignore_ascii_case("dpop") {
            let proof = dpop_proof(request)?;
            let domain = request.request_context.domain_name.as_deref().ok_or(Denial::NoDomain)?;
            let url = format!("https://{domain}{}", request.raw_path.as_deref().unwrap_or("/"));
            let method = request.request_context.http.method.as_str();
            let context = ProofContext { method, url: &url, access_token: None };
            self.verifier.verify_dpop(token, Some(proof), &context).await
        } else {
            return Err(Denial::MissingToken);
        };
        let verified = match verified {
            Ok(verified) => verified,
            Err(VerifyError::Rejected(Rejection::Proof(rejected))) => {
                return Err(Denial::InvalidProof(rejected));
            }
            Err(VerifyError::Rejected(rejection)) => return Err(Denial::InvalidToken(rejection)),
            Err(VerifyError::Storage(error)) => {
                tracing::error!(%error, "authorizer could not read revocation state; denying");
                return Err(Denial::Unavailable);
            }
        };
        // Fail closed: a route nobody configured is a route nobody meant to open.
        let required = self
            .route_scopes
            .get(route)
            .or_else(|| self.route_scopes.get(DEFAULT_ROUTE))
            .ok_or(Denial::UnlistedRoute)?;
        let granted = ScopeSet::parse(&verified.claims.scope).unwrap_or_default();
        if !required.is_subset(&granted) {
            return Err(Denial::InsufficientScope);
        }
        let claims = verified.claims;
        Ok(AuthorizedContext {
            sub: claims.sub,
            client_id: claims.client_id,
            scope: claims.scope,
            tenant: claims.tenant,
        })
    }
}

/// The request's one DPoP proof, which must also be one of the event's identity sources.
fn dpop_proof(request: &ApiGatewayV2CustomAuthorizerV2Request) -> Result<&str, Denial> {
    let mut proofs = request.headers.get_all(DPOP_HEADER).iter();
    let proof = match (proofs.next(), proofs.next()) {
        (Some(proof), None) => proof.to_str().map_err(|_| ProofRejected::Malformed),
        (None, _) => Err(ProofRejected::Missing),
        (Some(_), Some(_)) => Err(ProofRejected::Repeated),
    }
    .map_err(Denial::InvalidProof)?;
    let in_cache_key = request.identity_source.iter().flatten().any(|source| source == proof);
    if !in_cache_key {
        return Err(Denial::ProofNotInCacheKey);
    }
    Ok(proof)
}
