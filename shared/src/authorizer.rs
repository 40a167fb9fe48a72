//! The API Gateway HTTP API Lambda authorizer (payload 2.0, simple responses): it admits a
//! request only if its Bearer token passes the one verification routine (signature, expiry,
//! audience, revocation, batch cutoffs) and carries the scopes its route requires, and hands the
//! route the token's `sub`, `client_id`, `scope` and `tenant`.

use std::collections::BTreeMap;

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use serde::{Deserialize, Serialize};

use crate::domain::ScopeSet;
use crate::verify::{Verifier, VerifyError};

/// The route key whose scopes apply to routes not listed.
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

fn deny() -> AuthorizerResponse {
    AuthorizerResponse { is_authorized: false, context: None }
}

impl Authorizer {
    pub fn new(verifier: Verifier, route_scopes: RouteScopes) -> Self {
        Self { verifier, route_scopes }
    }

    /// Never fails: anything but a valid, sufficiently scoped token is a denial, including a
    /// store that cannot be read (fail closed).
    pub async fn authorize(
        &self,
        request: &ApiGatewayV2CustomAuthorizerV2Request,
    ) -> AuthorizerResponse {
        let Some(bearer) = request
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
        else {
            return deny();
        };
        let verified = match self.verifier.verify(bearer).await {
            Ok(verified) => verified,
            Err(VerifyError::Rejected(rejection)) => {
                tracing::info!(%rejection, "authorizer denied a token");
                return deny();
            }
            Err(VerifyError::Storage(error)) => {
                tracing::error!(%error, "authorizer could not read revocation state; denying");
                return deny();
            }
        };
        let route = request.route_key.as_deref().unwrap_or(DEFAULT_ROUTE);
        let required =
            self.route_scopes.get(route).or_else(|| self.route_scopes.get(DEFAULT_ROUTE));
        let granted = ScopeSet::parse(&verified.claims.scope).unwrap_or_default();
        if required.is_some_and(|required| !required.is_subset(&granted)) {
            tracing::info!(route, "authorizer denied a token lacking the route's scopes");
            return deny();
        }
        let claims = verified.claims;
        AuthorizerResponse {
            is_authorized: true,
            context: Some(AuthorizedContext {
                sub: claims.sub,
                client_id: claims.client_id,
                scope: claims.scope,
                tenant: claims.tenant,
            }),
        }
    }
}
