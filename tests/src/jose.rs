//! The client's side of key-bound authentication, for the tests: keys a client registers, and
//! the client assertions (RFC 7523) and DPoP proofs (RFC 9449) it signs with them. Headers are
//! written as JSON and signed by hand, so that a test can put anything in them (a private key
//! inside a `jwk`, `alg: none`).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use token_service::client_assertion::CLIENT_ASSERTION_TYPE;
use token_service::domain::random_bytes;
use token_service::dpop::access_token_hash;
use token_service::keys::{KeySet, KeySetDocument, SigningAlgorithm};

/// A key pair a client holds: the private half signs, the public half is registered.
pub struct ClientKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    /// The public key with its `kid` and `alg`, as registered.
    public: Value,
}

pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::RS256 => "RS256",
        Algorithm::PS256 => "PS256",
        Algorithm::HS256 => "HS256",
        other => panic!("no test key for {other:?}"),
    }
}

pub fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("JSON serializes"))
}

fn jti() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

impl ClientKey {
    pub fn generate(alg: Algorithm) -> Self {
        let family = match alg {
            Algorithm::ES256 => SigningAlgorithm::ES256,
            Algorithm::EdDSA => SigningAlgorithm::EdDSA,
            Algorithm::RS256 | Algorithm::PS256 => SigningAlgorithm::RS256,
            other => panic!("no test key for {other:?}"),
        };
        let document = KeySetDocument::generate(family, 0).expect("key generation");
        let der = STANDARD.decode(&document.keys[0].private_key).expect("base64 key");
        let encoding = match family {
            SigningAlgorithm::ES256 => EncodingKey::from_ec_der(&der),
            SigningAlgorithm::RS256 => EncodingKey::from_rsa_der(&der),
            SigningAlgorithm::EdDSA => EncodingKey::from_ed_der(&der),
        };
        let keys = KeySet::from_document(&document).expect("key set");
        let jwks = serde_json::to_value(keys.verification_keys().jwks()).expect("jwks");
        let mut public = jwks["keys"][0].clone();
        public["alg"] = json!(alg_name(alg));
        public["use"] = json!("sig");
        Self { kid: document.keys[0].kid.clone(), alg, encoding, public }
    }

    /// The public key as registered: with `kid`, `alg` and `use`.
    pub fn public_jwk(&self) -> Value {
        self.public.clone()
    }

    /// The registration's `jwks`: this key alone.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.public_jwk()] })
    }

    /// The public key with only its key-type members, as a DPoP proof carries it.
    pub fn bare_jwk(&self) -> Value {
        let mut jwk = self.public_jwk();
        let members = jwk.as_object_mut().expect("a JWK is an object");
        for member in ["kid", "alg", "use"] {
            members.remove(member);
        }
        jwk
    }

    /// The RFC 7638 SHA-256 thumbprint, computed by `jsonwebtoken`.
    pub fn thumbprint(&self) -> String {
        let jwk: Jwk = serde_json::from_value(self.bare_jwk()).expect("a JWK");
        jwk.thumbprint(ThumbprintHash::SHA256).expect("thumbprint")
    }

    /// A compact JWS of `claims` under `header`, signed with this key by `alg` (whatever the
    /// header says).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_as(self.alg, header, claims)
    }

    /// [`Self::sign`] by `alg` instead of the key's own algorithm (an RSA key signing PS256
    /// where it is registered for RS256, say).
    pub fn sign_as(&self, alg: Algorithm, header: &Value, claims: &Value) -> String {
        let message = format!("{}.{}", b64_json(header), b64_json(claims));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, alg).expect("signs");
        format!("{message}.{signature}")
    }

    /// A valid client assertion for `client_id`, for the audience `aud`.
    pub fn assertion(&self, client_id: &str, aud: &str, now: u64) -> String {
        self.assertion_with(&assertion_claims(client_id, aud, now))
    }

    pub fn assertion_with(&self, claims: &Value) -> String {
        self.sign(&json!({"alg": alg_name(self.alg), "typ": "JWT", "kid": self.kid}), claims)
    }

    /// A valid DPoP proof for `method` at `url`, with `ath` for `access_token` if given.
    pub fn proof(&self, method: &str, url: &str, now: u64, access_token: Option<&str>) -> String {
        self.proof_with(&self.proof_header(), &proof_claims(method, url, now, access_token))
    }

    pub fn proof_header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": alg_name(self.alg), "jwk": self.bare_jwk()})
    }

    pub fn proof_with(&self, header: &Value, claims: &Value) -> String {
        self.sign(header, claims)
    }
}

pub fn assertion_claims(client_id: &str, aud: &str, now: u64) -> Value {
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + 60,
        "jti": jti(),
    })
}

pub fn proof_claims(method: &str, url: &str, now: u64, access_token: Option<&str>) -> Value {
    let mut claims = json!({"htm": method, "htu": url, "iat": now, "jti": jti()});
    if let Some(token) = access_token {
        claims["ath"] = json!(access_token_hash(token));
    }
    claims
}

/// The form fields of a client assertion.
pub fn assertion_form(assertion: &str) -> Vec<(&'static str, String)> {
    vec![
        ("client_assertion_type", CLIENT_ASSERTION_TYPE.to_owned()),
        ("client_assertion", assertion.to_owned()),
    ]
}
