//! DPoP proofs (RFC 9449 §4): a JWT signed by the client's own key for one HTTP request. A
//! valid proof at the token endpoint binds the access token to that key (`cnf.jkt`); the
//! authorizer and bearer self-revocation then admit the token only with a fresh proof by the
//! same key. Free of HTTP and of storage: the replay store is behind its trait.

use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::Value;

use crate::clock::Clock;
use crate::domain::{ReplayKey, check_public_key};
use crate::error::{Error, StoreError};
use crate::jwt::{CLOCK_LEEWAY_SECS, client_signing_algorithm, header_members, utf8_segments};
use crate::store::ReplayStore;

/// The header a proof travels in (RFC 9449 §4.1).
pub const DPOP_HEADER: &str = "dpop";
/// The proof's `typ` (RFC 9449 §4.2).
pub const DPOP_PROOF_TYPE: &str = "dpop+jwt";
/// How far a proof's `iat` may lie from now, either way.
pub const MAX_PROOF_AGE: u64 = 60;
/// Proofs longer than this are refused before any decoding (an RSA key and a signature fit).
pub const MAX_PROOF_LEN: usize = 8 * 1024;
const MAX_JTI_LEN: usize = 256;
/// Header members a proof must not carry: keys from elsewhere (the key is the `jwk`), and
/// extensions this service does not implement.
const FORBIDDEN_HEADER_MEMBERS: [&str; 4] = ["jku", "x5u", "x5c", "crit"];

/// The request a proof must be for.
#[derive(Clone, Copy, Debug)]
pub struct ProofContext<'a> {
    /// The HTTP method, as sent (`POST`).
    pub method: &'a str,
    /// The URL the client used: the issuer's base plus the path at the token endpoint, the
    /// gateway's domain plus the raw path at the authorizer.
    pub url: &'a str,
    /// The access token the request carries, whose hash `ath` must be.
    pub access_token: Option<&'a str>,
}

/// Why a proof was refused; its text is the `error_description`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofRejected {
    #[error("a DPoP proof is required")]
    Missing,
    #[error("only one DPoP header is allowed")]
    Repeated,
    #[error("the DPoP proof is too long")]
    TooLong,
    #[error("the DPoP proof is not a well-formed JWT")]
    Malformed,
    #[error("the DPoP proof's typ must be dpop+jwt")]
    WrongType,
    #[error("the DPoP proof's alg must be one of ES256, EdDSA, RS256, PS256")]
    AlgorithmNotAllowed,
    #[error("the DPoP proof's header must not carry {0}")]
    ForbiddenHeader(&'static str),
    #[error("the DPoP proof's jwk is not a public key for its alg: {0}")]
    BadKey(String),
    #[error("the DPoP proof's signature or claims are invalid")]
    Invalid,
    #[error("the DPoP proof's htm does not match the request method")]
    WrongMethod,
    #[error("the DPoP proof's htu does not match the request URL")]
    WrongUrl,
    #[error("the DPoP proof's iat is more than {MAX_PROOF_AGE} s from now")]
    Stale,
    #[error("the DPoP proof's jti is missing, empty or too long")]
    BadJti,
    #[error("the DPoP proof's ath does not match the access token")]
    WrongAth,
    #[error("the DPoP proof was used before")]
    Replayed,
    #[error("the DPoP proof's key is not the one the access token is bound to")]
    WrongKey,
}

#[derive(Debug, thiserror::Error)]
pub enum DpopError {
    #[error(transparent)]
    Rejected(#[from] ProofRejected),
    #[error(transparent)]
    Storage(#[from] StoreError),
}

impl From<DpopError> for Error {
    fn from(error: DpopError) -> Self {
        match error {
            DpopError::Rejected(rejected) => Error::InvalidDpopProof(rejected.to_string().into()),
            DpopError::Storage(error) => Error::Storage(error),
        }
    }
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: u64,
    #[serde(default)]
    ath: Option<String>,
}

/// A proof that passed every check but the replay store's.
#[derive(Debug)]
pub struct CheckedProof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key: what a bound token's `cnf.jkt` is.
    pub jkt: String,
    pub replay: ReplayKey,
    pub replay_until: u64,
}

/// `ath` (RFC 9449 §4.2): the base64url SHA-256 of the access token.
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes()).as_ref())
}

/// Every check of RFC 9449 §4.3 but the replay store's, against `context` at `now`.
pub fn check_proof(
    proof: &str,
    context: &ProofContext<'_>,
    now: u64,
) -> Result<CheckedProof, ProofRejected> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofRejected::TooLong);
    }
    if !utf8_segments(proof) {
        return Err(ProofRejected::Malformed);
    }
    let members = header_members(proof).ok_or(ProofRejected::Malformed)?;
    if members.get("typ").and_then(Value::as_str) != Some(DPOP_PROOF_TYPE) {
        return Err(ProofRejected::WrongType);
    }
    if let Some(member) = FORBIDDEN_HEADER_MEMBERS.iter().find(|m| members.contains_key(**m)) {
        return Err(ProofRejected::ForbiddenHeader(member));
    }
    let header = decode_header(proof).map_err(|_| ProofRejected::Malformed)?;
    let alg = client_signing_algorithm(header.alg).ok_or(ProofRejected::AlgorithmNotAllowed)?;
    let jwk = members
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or_else(|| ProofRejected::BadKey("the header has no jwk".into()))?;
    check_public_key(jwk, alg).map_err(ProofRejected::BadKey)?;
    let jwk: Jwk = serde_json::from_value(Value::Object(jwk.clone()))
        .map_err(|e| ProofRejected::BadKey(e.to_string()))?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| ProofRejected::BadKey(e.to_string()))?;
    let jkt = jwk.thumbprint(ThumbprintHash::SHA256).map_err(|_| ProofRejected::Malformed)?;

    let mut validation = Validation::new(header.alg);
    validation.set_required_spec_claims::<&str>(&[]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims =
        decode::<ProofClaims>(proof, &key, &validation).map_err(|_| ProofRejected::Invalid)?.claims;
    if claims.htm != context.method {
        return Err(ProofRejected::WrongMethod);
    }
    match (normalized_url(&claims.htu), normalized_url(context.url)) {
        (Some(claimed), Some(actual)) if claimed == actual => {}
        _ => return Err(ProofRejected::WrongUrl),
    }
    if claims.iat.abs_diff(now) > MAX_PROOF_AGE {
        return Err(ProofRejected::Stale);
    }
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(ProofRejected::BadJti);
    }
    if let Some(token) = context.access_token
        && claims.ath.as_deref() != Some(access_token_hash(token).as_str())
    {
        return Err(ProofRejected::WrongAth);
    }
    Ok(CheckedProof {
        replay: ReplayKey::dpop_proof(&jkt, &claims.jti),
        // Accepted while iat is within MAX_PROOF_AGE of now: remembered past the last second.
        replay_until: claims.iat + MAX_PROOF_AGE + CLOCK_LEEWAY_SECS,
        jkt,
    })
}

/// `url` as RFC 9449 §4.3 compares it: scheme and host in lower case, the default port left
/// out, an empty path as `/`, and no query or fragment. `None` for anything but an absolute
/// http(s) URL without user information.
fn normalized_url(url: &str) -> Option<String> {
    let without_fragment = url.split('#').next()?;
    let uri: http::Uri = without_fragment.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    let path = if uri.path().is_empty() { "/" } else { uri.path() };
    Some(match authority.port_u16().filter(|port| *port != default_port) {
        Some(port) => format!("{scheme}://{host}:{port}{path}"),
        None => format!("{scheme}://{host}{path}"),
    })
}

/// Checks proofs, replay store included.
#[derive(Clone)]
pub struct DpopVerifier {
    replays: Arc<dyn ReplayStore>,
    clock: Arc<dyn Clock>,
}

impl DpopVerifier {
    pub fn new(replays: Arc<dyn ReplayStore>, clock: Arc<dyn Clock>) -> Self {
        Self { replays, clock }
    }

    /// The proof's key thumbprint, once the proof passed every check and its `jti` was never
    /// seen before. One conditional write.
    pub async fn verify(
        &self,
        proof: &str,
        context: &ProofContext<'_>,
    ) -> Result<String, DpopError> {
        let now = self.clock.now();
        let checked = check_proof(proof, context, now)?;
        if !self.replays.first_use(&checked.replay, checked.replay_until, now).await? {
            return Err(ProofRejected::Replayed.into());
        }
        Ok(checked.jkt)
    }

    /// [`Self::verify`] for a request carrying a token bound to `jkt`: the proof must be by
    /// that key.
    pub async fn verify_bound(
        &self,
        proof: &str,
        context: &ProofContext<'_>,
        jkt: &str,
    ) -> Result<(), DpopError> {
        let now = self.clock.now();
        let checked = check_proof(proof, context, now)?;
        // The key is compared before the replay record is written, so a proof by another key
        // changes nothing.
        if checked.jkt != jkt {
            return Err(ProofRejected::WrongKey.into());
        }
        if !self.replays.first_use(&checked.replay, checked.replay_until, now).await? {
            return Err(ProofRejected::Replayed.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_compare_without_query_fragment_case_or_default_port() {
        let same = [
            (
                "https://Auth.Example.com/oauth2/token?x=1#f",
                "https://auth.example.com/oauth2/token",
            ),
            ("HTTPS://auth.example.com:443/oauth2/token", "https://auth.example.com/oauth2/token"),
            ("http://127.0.0.1:80/", "http://127.0.0.1"),
        ];
        for (a, b) in same {
            assert_eq!(normalized_url(a), normalized_url(b), "{a} {b}");
            assert!(normalized_url(a).is_some());
        }
        let different = [
            ("https://auth.example.com/oauth2/token", "https://auth.example.com/oauth2/revoke"),
            ("https://auth.example.com/oauth2/token", "http://auth.example.com/oauth2/token"),
            ("https://auth.example.com:8443/a", "https://auth.example.com/a"),
            ("https://auth.example.com/Path", "https://auth.example.com/path"),
        ];
        for (a, b) in different {
            assert_ne!(normalized_url(a), normalized_url(b), "{a} {b}");
        }
        for refused in ["/oauth2/token", "ftp://h/", "https://user@h/", "not a url"] {
            assert_eq!(normalized_url(refused), None, "{refused}");
        }
    }
}
