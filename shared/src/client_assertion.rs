//! Client authentication by a signed JWT (`private_key_jwt`: RFC 7523 §2.2 and §3, RFC 7521
//! §4.2), checked against the keys the client registered. Free of HTTP and of storage: the
//! replay record it asks for is written by the caller.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::Value;

use crate::domain::{Client, ClientJwks, Credentials, ReplayKey};
use crate::jwt::{
    CLOCK_LEEWAY_SECS, client_signing_algorithm, header_members, utf8_segments, verifiable_until,
};

/// `client_assertion_type` for a JWT (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How far ahead an assertion's `exp` may lie: it is meant for one request, now.
pub const MAX_ASSERTION_LIFETIME: u64 = 300;
/// Assertions longer than this are refused before any decoding.
pub const MAX_ASSERTION_LEN: usize = 8 * 1024;
/// Longest `jti` accepted.
pub const MAX_JTI_LEN: usize = 256;
/// Header members that would take the verification key from somewhere other than the client's
/// registration, or that this service does not implement.
const FORBIDDEN_HEADER_MEMBERS: [&str; 5] = ["jku", "x5u", "jwk", "x5c", "crit"];

/// Why an assertion was refused: logged, while the client only ever sees `invalid_client`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssertionRejected {
    #[error("assertion too long")]
    TooLong,
    #[error("malformed assertion")]
    Malformed,
    #[error("alg is not one of ES256, EdDSA, RS256, PS256")]
    AlgorithmNotAllowed,
    #[error("header member {0} is not allowed")]
    ForbiddenHeader(&'static str),
    #[error("the client is not registered for private_key_jwt")]
    NotRegistered,
    #[error("no key of the client has this kid")]
    UnknownKey,
    #[error("the key is bound to another alg")]
    AlgorithmMismatch,
    #[error("signature or claims invalid: {0}")]
    Invalid(String),
    #[error("iss and sub must both be the client id")]
    WrongIssuer,
    #[error("aud names neither the issuer nor this endpoint")]
    WrongAudience,
    #[error("expired")]
    Expired,
    #[error("exp lies more than {MAX_ASSERTION_LIFETIME} s ahead")]
    TooLongLived,
    #[error("not yet valid")]
    NotYetValid,
    #[error("jti missing, empty or too long")]
    BadJti,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn names_any(&self, accepted: &[&str]) -> bool {
        match self {
            Self::One(aud) => accepted.contains(&aud.as_str()),
            Self::Many(auds) => auds.iter().any(|aud| accepted.contains(&aud.as_str())),
        }
    }
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: u64,
    jti: String,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    nbf: Option<u64>,
}

/// A verified assertion, until the replay store has seen its `jti`.
#[derive(Debug)]
pub struct VerifiedAssertion {
    pub replay: ReplayKey,
    /// When the replay record may go: the assertion no longer verifies after it.
    pub replay_until: u64,
}

/// The `kid` of an assertion's header, read without verifying anything: it says which key to
/// check with, and whether a cached client record holds that key.
pub fn assertion_kid(assertion: &str) -> Option<String> {
    decode_header(assertion).ok()?.kid
}

/// The client an assertion claims to come from (`sub`), read without verifying anything: the
/// key to check it with belongs to that client. Only ever used to look the client up.
pub fn claimed_client_id(assertion: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Subject {
        sub: String,
    }
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64_url_decode(payload)?;
    Some(serde_json::from_slice::<Subject>(&bytes).ok()?.sub)
}

fn base64_url_decode(segment: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segment).ok()
}

/// Checks `assertion` as `client`'s authentication at an endpoint whose accepted audiences are
/// `audiences` (the issuer and the endpoint's URL). The caller still has to record the `jti`.
pub fn verify_assertion(
    assertion: &str,
    client: &Client,
    audiences: &[&str],
    now: u64,
) -> Result<VerifiedAssertion, AssertionRejected> {
    let Credentials::PrivateKeyJwt { jwks } = &client.credentials else {
        return Err(AssertionRejected::NotRegistered);
    };
    if assertion.len() > MAX_ASSERTION_LEN {
        return Err(AssertionRejected::TooLong);
    }
    if !utf8_segments(assertion) {
        return Err(AssertionRejected::Malformed);
    }
    let members = header_members(assertion).ok_or(AssertionRejected::Malformed)?;
    if let Some(member) = FORBIDDEN_HEADER_MEMBERS.iter().find(|m| members.contains_key(**m)) {
        return Err(AssertionRejected::ForbiddenHeader(member));
    }
    let header = decode_header(assertion).map_err(|_| AssertionRejected::Malformed)?;
    let alg = client_signing_algorithm(header.alg).ok_or(AssertionRejected::AlgorithmNotAllowed)?;
    let kid = header.kid.as_deref().ok_or(AssertionRejected::UnknownKey)?;
    let key = client_key(jwks, kid, alg)?;

    let mut validation = Validation::new(header.alg);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    // Checked below against the caller's clock and the client's id, so that every rule is in
    // one place and tests are exact.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = decode::<AssertionClaims>(assertion, &key, &validation)
        .map_err(|e| AssertionRejected::Invalid(e.to_string()))?
        .claims;
    if claims.iss != client.id.as_str() || claims.sub != client.id.as_str() {
        return Err(AssertionRejected::WrongIssuer);
    }
    if !claims.aud.names_any(audiences) {
        return Err(AssertionRejected::WrongAudience);
    }
    if now >= verifiable_until(claims.exp) {
        return Err(AssertionRejected::Expired);
    }
    if claims.exp > now + MAX_ASSERTION_LIFETIME + CLOCK_LEEWAY_SECS {
        return Err(AssertionRejected::TooLongLived);
    }
    let not_before = claims.nbf.max(claims.iat).unwrap_or(0);
    if not_before > now + CLOCK_LEEWAY_SECS {
        return Err(AssertionRejected::NotYetValid);
    }
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(AssertionRejected::BadJti);
    }
    Ok(VerifiedAssertion {
        replay: ReplayKey::client_assertion(&client.id, &claims.jti),
        replay_until: verifiable_until(claims.exp),
    })
}

/// The client's key named `kid`, if it is bound to `alg`: looked up among this client's keys
/// only.
fn client_key(jwks: &ClientJwks, kid: &str, alg: &str) -> Result<DecodingKey, AssertionRejected> {
    let (_, bound, key) =
        jwks.keys().find(|(id, _, _)| *id == kid).ok_or(AssertionRejected::UnknownKey)?;
    if bound != alg {
        return Err(AssertionRejected::AlgorithmMismatch);
    }
    let jwk: Jwk = serde_json::from_value(Value::Object(key.clone()))
        .map_err(|e| AssertionRejected::Invalid(e.to_string()))?;
    DecodingKey::from_jwk(&jwk).map_err(|e| AssertionRejected::Invalid(e.to_string()))
}
