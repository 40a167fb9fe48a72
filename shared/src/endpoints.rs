//! The service's routes. Services need them too: a client assertion's `aud` and a DPoP proof's
//! `htu` name the endpoint's URL, which is the issuer's base URL plus the route's path.

pub const TOKEN_PATH: &str = "/oauth2/token";
pub const REVOKE_PATH: &str = "/oauth2/revoke";
pub const INTROSPECT_PATH: &str = "/oauth2/introspect";
pub const BATCH_REVOKE_PATH: &str = "/oauth2/revoke/batch";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// The URL clients reach `path` at: the issuer (which names the deployment's public base,
/// custom domain and stage included) followed by the path.
pub fn url(issuer: &str, path: &str) -> String {
    format!("{issuer}{path}")
}
