//! `GET /.well-known/jwks.json` and `GET /.well-known/oauth-authorization-server` (RFC 8414).
//! Both documents are rendered once at start-up.

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::json;

use super::response::{Caching, raw_json_response};
use super::{
    BATCH_REVOKE_PATH, INTROSPECT_PATH, JWKS_PATH, METADATA_PATH, REVOKE_PATH, TOKEN_PATH,
};
use crate::domain::{AuthMethod, CLIENT_ASSERTION_ALGORITHMS};
use crate::error::Error;
use crate::keys::VerificationKeys;

/// Every client authentication method, at each client-authenticated endpoint alike.
const AUTH_METHODS: [&str; 3] = [
    AuthMethod::ClientSecretBasic.as_str(),
    AuthMethod::ClientSecretPost.as_str(),
    AuthMethod::PrivateKeyJwt.as_str(),
];

/// How long resource servers may cache the JWKS. Short, so a rotated-in key is seen quickly.
const JWKS_MAX_AGE: u32 = 300;
const METADATA_MAX_AGE: u32 = 3600;
/// The `Allow` header of a 405.
const ALLOWED_METHODS: &str = "GET, HEAD";

pub struct Discovery {
    jwks: String,
    metadata: String,
}

impl Discovery {
    /// From the public keys only: the keys function never holds a private key.
    pub fn new(issuer: &str, keys: &VerificationKeys) -> Self {
        let algorithms: Vec<&str> = keys.algorithms().iter().map(|alg| alg.as_str()).collect();
        let metadata = json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
            "jwks_uri": format!("{issuer}{JWKS_PATH}"),
            "revocation_endpoint": format!("{issuer}{REVOKE_PATH}"),
            "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
            "revocation_endpoint_auth_signing_alg_values_supported": CLIENT_ASSERTION_ALGORITHMS,
            "introspection_endpoint": format!("{issuer}{INTROSPECT_PATH}"),
            "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
            "introspection_endpoint_auth_signing_alg_values_supported": CLIENT_ASSERTION_ALGORITHMS,
            // Not registered by RFC 8414 either: where batch revocation is, for admin tools.
            "batch_revocation_endpoint": format!("{issuer}{BATCH_REVOKE_PATH}"),
            "grant_types_supported": ["client_credentials", "password", "refresh_token"],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "token_endpoint_auth_signing_alg_values_supported": CLIENT_ASSERTION_ALGORITHMS,
            // RFC 9449 §5.1.
            "dpop_signing_alg_values_supported": CLIENT_ASSERTION_ALGORITHMS,
            // Not registered by RFC 8414: the algorithms access tokens are signed with.
            "access_token_signing_alg_values_supported": algorithms,
        });
        Self {
            jwks: serde_json::to_string(&keys.jwks()).unwrap_or_default(),
            metadata: metadata.to_string(),
        }
    }

    pub fn handle(&self, request: &Request) -> Result<Response<Body>, Error> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Err(Error::MethodNotAllowed(ALLOWED_METHODS));
        }
        let (document, max_age) = match request.uri().path() {
            JWKS_PATH => (&self.jwks, JWKS_MAX_AGE),
            METADATA_PATH => (&self.metadata, METADATA_MAX_AGE),
            _ => return Err(Error::NotFound),
        };
        Ok(raw_json_response(StatusCode::OK, document.clone(), Caching::Public(max_age)))
    }
}
