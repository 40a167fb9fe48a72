//! A client's registered public keys (RFC 7591 `jwks`), for `private_key_jwt` (RFC 7523).
//!
//! Validated on registration so that only usable public keys are ever stored: every key names
//! its `kid` and is bound to one allow-listed asymmetric algorithm, and no private or symmetric
//! key material, nor any member that points elsewhere for keys, is accepted.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Keys a client may register at most.
pub const MAX_CLIENT_KEYS: usize = 10;
/// Longest serialized key set accepted.
pub const MAX_JWKS_BYTES: usize = 16 * 1024;
/// The algorithms a client assertion may be signed with, each bound to its key type.
pub const CLIENT_ASSERTION_ALGORITHMS: [&str; 4] = ["ES256", "EdDSA", "RS256", "PS256"];
const MIN_RSA_MODULUS_BYTES: usize = 256;
/// Members that carry private or symmetric key material, or fetch keys from elsewhere.
const FORBIDDEN_MEMBERS: [&str; 11] =
    ["d", "p", "q", "dp", "dq", "qi", "oth", "k", "x5u", "jku", "x5c"];

/// A validated JWK Set of public keys. Serializes as the JWK Set it was registered as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct ClientJwks(Value);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("jwks {0}")]
pub struct InvalidJwks(String);

fn invalid(why: impl Into<String>) -> InvalidJwks {
    InvalidJwks(why.into())
}

impl ClientJwks {
    pub fn parse(value: Value) -> Result<Self, InvalidJwks> {
        if serde_json::to_vec(&value).map_or(true, |bytes| bytes.len() > MAX_JWKS_BYTES) {
            return Err(invalid(format!("must be at most {MAX_JWKS_BYTES} bytes")));
        }
        let Some(set) = value.as_object() else {
            return Err(invalid("must be a JSON object with a \"keys\" array"));
        };
        if let Some(other) = set.keys().find(|name| *name != "keys") {
            return Err(invalid(format!("has an unknown member {other:?}")));
        }
        let keys = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("must be a JSON object with a \"keys\" array"))?;
        if keys.is_empty() || keys.len() > MAX_CLIENT_KEYS {
            return Err(invalid(format!("must hold 1 to {MAX_CLIENT_KEYS} keys")));
        }
        let mut kids = HashSet::new();
        for (index, key) in keys.iter().enumerate() {
            let key =
                key.as_object().ok_or_else(|| invalid(format!("key {index} is not an object")))?;
            let kid = check_key(key).map_err(|why| invalid(format!("key {index}: {why}")))?;
            if !kids.insert(kid) {
                return Err(invalid(format!("key {index}: kid is not unique")));
            }
        }
        Ok(Self(value))
    }

    /// Each key with its `kid` and its algorithm.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &str, &Map<String, Value>)> {
        self.0["keys"].as_array().into_iter().flatten().filter_map(|key| {
            let key = key.as_object()?;
            Some((key.get("kid")?.as_str()?, key.get("alg")?.as_str()?, key))
        })
    }

    pub fn as_value(&self) -> &Value {
        &self.0
    }
}

impl TryFrom<Value> for ClientJwks {
    type Error = InvalidJwks;
    fn try_from(value: Value) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<ClientJwks> for Value {
    fn from(jwks: ClientJwks) -> Self {
        jwks.0
    }
}

fn text<'a>(key: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    key.get(name).and_then(Value::as_str).ok_or_else(|| format!("{name} must be a string"))
}

fn base64url_len(key: &Map<String, Value>, name: &str) -> Result<usize, String> {
    URL_SAFE_NO_PAD
        .decode(text(key, name)?)
        .map(|bytes| bytes.len())
        .map_err(|_| format!("{name} must be unpadded base64url"))
}

/// Checks one key and returns its `kid`.
fn check_key(key: &Map<String, Value>) -> Result<&str, String> {
    if let Some(member) = FORBIDDEN_MEMBERS.iter().find(|member| key.contains_key(**member)) {
        return Err(format!("must not have {member:?}: only public keys, given inline"));
    }
    let kid = text(key, "kid")?;
    if kid.is_empty() || kid.len() > 128 || kid.chars().any(char::is_control) {
        return Err("kid must be 1-128 printable characters".into());
    }
    if key.get("use").is_some_and(|u| u != "sig") {
        return Err("use must be \"sig\"".into());
    }
    let alg = text(key, "alg")
        .map_err(|_| format!("alg must name one of {}", CLIENT_ASSERTION_ALGORITHMS.join(", ")))?;
    match (text(key, "kty")?, alg) {
        ("EC", "ES256") => {
            if text(key, "crv")? != "P-256"
                || base64url_len(key, "x")? != 32
                || base64url_len(key, "y")? != 32
            {
                return Err("an ES256 key must be a P-256 point (crv, x, y)".into());
            }
        }
        ("OKP", "EdDSA") => {
            if text(key, "crv")? != "Ed25519" || base64url_len(key, "x")? != 32 {
                return Err("an EdDSA key must be an Ed25519 public key (crv, x)".into());
            }
        }
        ("RSA", "RS256" | "PS256") => {
            if base64url_len(key, "n")? < MIN_RSA_MODULUS_BYTES || base64url_len(key, "e")? == 0 {
                return Err("an RSA key must have a modulus of at least 2048 bits".into());
            }
        }
        (kty, alg) => {
            return Err(format!(
                "kty {kty:?} with alg {alg:?} is not allowed; allowed: EC/ES256, OKP/EdDSA, RSA/RS256, RSA/PS256"
            ));
        }
    }
    Ok(kid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    fn ec(kid: &str) -> Value {
        json!({"kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": kid, "alg": "ES256"})
    }

    #[test]
    fn a_set_of_public_keys_bound_to_their_algorithms_is_accepted() {
        let okp = json!({"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "ed", "alg": "EdDSA"});
        let jwks = ClientJwks::parse(json!({"keys": [ec("one"), okp]})).unwrap();
        let kids: Vec<_> = jwks.keys().map(|(kid, alg, _)| (kid, alg)).collect();
        assert_eq!(kids, [("one", "ES256"), ("ed", "EdDSA")]);
    }

    #[test]
    fn private_symmetric_unbound_or_remote_keys_are_refused() {
        let with = |member: &str, value: Value| {
            let mut key = ec("k");
            key[member] = value;
            json!({"keys": [key]})
        };
        let refused = [
            json!([]),
            json!({"keys": []}),
            json!({"keys": [ec("a"), ec("a")]}),
            json!({"keys": [ec("a")], "extra": 1}),
            with("d", json!(X)),
            with("jku", json!("https://evil.example/jwks")),
            with("x5u", json!("https://evil.example/cert")),
            with("alg", json!("HS256")),
            with("alg", json!("none")),
            with("alg", json!("RS256")),
            with("crv", json!("P-384")),
            with("use", json!("enc")),
            with("x", json!("short")),
            json!({"keys": [{"kty": "oct", "k": X, "kid": "h", "alg": "HS256"}]}),
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": "no-alg"}]}),
            json!({"keys": [{"kty": "RSA", "n": X, "e": "AQAB", "kid": "small", "alg": "RS256"}]}),
        ];
        for jwks in refused {
            assert!(ClientJwks::parse(jwks.clone()).is_err(), "{jwks}");
        }
    }
}
