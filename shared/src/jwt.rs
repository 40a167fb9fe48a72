//! RFC 9068 access tokens: signing with the current key, and the signature and claims checks of
//! verification (RFC 8725). Revocation checks build on [`AccessTokens::verify`].

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::keys::{KeySet, SigningAlgorithm, VerificationKeys};
use crate::token_cache::{TokenCacheLimits, TokenDigest, VerifiedTokenCache};

/// The media type RFC 9068 §2.1 puts in `typ`.
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Clock skew tolerated on `exp` and `nbf`, in seconds. Small on purpose (RFC 8725 §3.10).
pub const CLOCK_LEEWAY_SECS: u64 = 10;
/// The first second at which a token expiring at `exp` no longer verifies, leeway included.
/// Every record that decides a token's validity (its revocation, a cutoff over it) must live at
/// least until then, or the token would verify again once the record is gone.
pub fn verifiable_until(exp: u64) -> u64 {
    exp.saturating_add(CLOCK_LEEWAY_SECS)
}

/// Tokens longer than this are rejected before any decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The claims of an access token. Field types are strict: a string `exp` fails to deserialize.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    pub tenant: String,
    /// The grant (session) id shared by every token of one password or refresh grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// RFC 9449 §6: the key a DPoP-bound token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The confirmation claim of a sender-constrained token (RFC 7800, RFC 9449 §6.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The RFC 7638 SHA-256 thumbprint of the DPoP key.
    pub jkt: String,
}

impl AccessTokenClaims {
    /// The DPoP key thumbprint the token is bound to, if it is.
    pub fn bound_to(&self) -> Option<&str> {
        self.cnf.as_ref().map(|cnf| cnf.jkt.as_str())
    }
}

/// Why a presented token was not accepted. Logged, never shown to the caller beyond
/// "invalid_token".
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejected {
    #[error("token too long")]
    TooLong,
    #[error("malformed token")]
    Malformed,
    #[error("typ is not at+jwt")]
    WrongType,
    #[error("token carries a critical header extension")]
    CriticalHeader,
    #[error("unknown kid")]
    UnknownKey,
    #[error("alg does not match the key")]
    AlgorithmMismatch,
    #[error("signature or claims invalid: {0}")]
    Invalid(String),
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
}

impl From<TokenRejected> for Error {
    fn from(_: TokenRejected) -> Self {
        Error::InvalidToken("the access token is invalid, expired or revoked".into())
    }
}

/// Verifies access tokens for one issuer and audience, with public keys only. Clones share one
/// cache of verified tokens, which belongs to this key set: other keys mean another
/// `AccessTokens`, whose cache starts empty, so a token of a key since pruned never verifies from
/// memory.
#[derive(Clone)]
pub struct AccessTokens {
    keys: VerificationKeys,
    issuer: String,
    audience: String,
    /// The claim checks for each algorithm, built once rather than on every verification.
    validations: Arc<[(Algorithm, Validation); 3]>,
    verified: VerifiedTokenCache,
}

impl AccessTokens {
    pub fn new(keys: VerificationKeys, issuer: String, audience: String) -> Self {
        let validations = Arc::new(SigningAlgorithm::ALL.map(|alg| {
            let mut validation = Validation::new(alg.jwt());
            validation.set_issuer(&[&issuer]);
            validation.set_audience(&[&audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            // Time is checked in `verify` against the caller's clock, so tests and replays are exact.
            validation.validate_exp = false;
            validation.validate_nbf = false;
            (alg.jwt(), validation)
        }));
        let verified = VerifiedTokenCache::new(TokenCacheLimits::default());
        Self { keys, issuer, audience, validations, verified }
    }

    /// The same verifier with an empty cache of verified tokens bounded by `limits`.
    pub fn with_cache_limits(self, limits: TokenCacheLimits) -> Self {
        Self { verified: VerifiedTokenCache::new(limits), ..self }
    }

    pub fn verified_tokens(&self) -> &VerifiedTokenCache {
        &self.verified
    }

    pub fn keys(&self) -> &VerificationKeys {
        &self.keys
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Checks the header against the allow-list, the signature with the key named by `kid`
    /// (bound to its one algorithm), then `iss`, `aud`, `exp` and `nbf` against `now`. A token
    /// that passed them before is served from the cache while it has not expired.
    pub fn verify(&self, token: &str, now: u64) -> Result<AccessTokenClaims, TokenRejected> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenRejected::TooLong);
        }
        let digest = TokenDigest::of(token);
        if let Some(claims) = self.verified.get(&digest, now) {
            return Ok(AccessTokenClaims::clone(&claims));
        }
        let claims = self.verify_signature_and_claims(token, now)?;
        self.verified.insert(digest, Arc::new(claims.clone()));
        Ok(claims)
    }

    fn verify_signature_and_claims(
        &self,
        token: &str,
        now: u64,
    ) -> Result<AccessTokenClaims, TokenRejected> {
        if !utf8_segments(token) {
            return Err(TokenRejected::Malformed);
        }
        let header = decode_header(token).map_err(|_| TokenRejected::Malformed)?;
        let typ_ok = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
                || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(TokenRejected::WrongType);
        }
        if header.crit.is_some() {
            return Err(TokenRejected::CriticalHeader);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.find(kid))
            .ok_or(TokenRejected::UnknownKey)?;
        if header.alg != key.alg.jwt() {
            return Err(TokenRejected::AlgorithmMismatch);
        }
        let validation = self
            .validations
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .map(|(_, validation)| validation)
            .ok_or(TokenRejected::AlgorithmMismatch)?;
        let claims = decode::<AccessTokenClaims>(token, &key.decoding, validation)
            .map_err(|e| TokenRejected::Invalid(e.to_string()))?
            .claims;
        if now >= verifiable_until(claims.exp) {
            return Err(TokenRejected::Expired);
        }
        let not_before = claims.nbf.unwrap_or(claims.iat);
        if not_before > now.saturating_add(CLOCK_LEEWAY_SECS) {
            return Err(TokenRejected::NotYetValid);
        }
        Ok(claims)
    }
}

/// Signs access tokens for one issuer and audience: the token function's half, the only one
/// holding private keys.
#[derive(Clone)]
pub struct TokenSigner {
    keys: KeySet,
    issuer: String,
    audience: String,
}

impl TokenSigner {
    pub fn new(keys: KeySet, issuer: String, audience: String) -> Self {
        Self { keys, issuer, audience }
    }

    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Signs with the current key, parsed once at start-up (see `SigningKey::sign_json`).
    pub fn sign(&self, claims: &AccessTokenClaims) -> Result<String, Error> {
        let payload =
            serde_json::to_vec(claims).map_err(|e| Error::Internal(format!("claims: {e}")))?;
        self.keys.current().sign_json(&payload).map_err(|e| Error::Internal(e.to_string()))
    }

    /// The verifying half over the same keys' public parts.
    pub fn verifier(&self) -> AccessTokens {
        AccessTokens::new(self.keys.verification_keys(), self.issuer.clone(), self.audience.clone())
    }
}

/// RFC 7519 §7.2: the header and the claims must each be UTF-8 JSON. `serde_json` skips the
/// members a type ignores without checking their UTF-8, so a token with invalid UTF-8 in an
/// unknown member would otherwise pass; the decoded segments are checked here.
pub(crate) fn utf8_segments(token: &str) -> bool {
    token.split('.').take(2).all(|segment| {
        URL_SAFE_NO_PAD.decode(segment).is_ok_and(|bytes| std::str::from_utf8(&bytes).is_ok())
    })
}

/// The JOSE header of a compact JWS as the JSON object it is, every member kept: `Header`
/// drops members it does not model, and a one-time JWT's checks must see them (a private key
/// inside a `jwk`, say).
pub(crate) fn header_members(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let encoded = token.split('.').next()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()
}

/// The name of `alg` when it is one a client may sign a one-time JWT with (a client assertion, a
/// DPoP proof): [`crate::domain::CLIENT_ASSERTION_ALGORITHMS`], asymmetric only. Never `none`
/// (which `Algorithm` cannot even name) nor HMAC.
pub(crate) fn client_signing_algorithm(alg: Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::ES256 => Some("ES256"),
        Algorithm::EdDSA => Some("EdDSA"),
        Algorithm::RS256 => Some("RS256"),
        Algorithm::PS256 => Some("PS256"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::keys::SigningAlgorithm;

    /// The signing half and the verifying half over one fresh key set.
    struct Tokens {
        signer: TokenSigner,
        verifier: AccessTokens,
    }

    impl Tokens {
        fn new(keys: KeySet) -> Self {
            let signer = TokenSigner::new(keys, "https://issuer".into(), "api".into());
            Self { verifier: signer.verifier(), signer }
        }

        fn sign(&self, claims: &AccessTokenClaims) -> Result<String, Error> {
            self.signer.sign(claims)
        }

        fn verify(&self, token: &str, now: u64) -> Result<AccessTokenClaims, TokenRejected> {
            self.verifier.verify(token, now)
        }

        fn keys(&self) -> &KeySet {
            self.signer.keys()
        }
    }

    fn tokens(alg: SigningAlgorithm) -> Tokens {
        Tokens::new(KeySet::generate(alg).unwrap())
    }

    fn claims() -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://issuer".into(),
            sub: "client".into(),
            aud: "api".into(),
            exp: 2_000,
            iat: 1_000,
            nbf: None,
            jti: "jti".into(),
            client_id: "client".into(),
            scope: "read".into(),
            tenant: "/acme".into(),
            sid: None,
            cnf: None,
        }
    }

    fn b64(json: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
    }

    #[test]
    fn round_trips_with_every_algorithm() {
        for alg in SigningAlgorithm::ALL {
            let tokens = tokens(alg);
            let jwt = tokens.sign(&claims()).unwrap();
            let header = decode_header(&jwt).unwrap();
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(header.kid.as_deref(), Some(tokens.keys().current().kid.as_str()));
            assert_eq!(tokens.verify(&jwt, 1_500).unwrap(), claims());
        }
    }

    #[test]
    fn expiry_allows_only_the_small_leeway() {
        let tokens = tokens(SigningAlgorithm::ES256);
        let jwt = tokens.sign(&claims()).unwrap();
        assert!(tokens.verify(&jwt, 2_000 + CLOCK_LEEWAY_SECS - 1).is_ok());
        assert_eq!(tokens.verify(&jwt, 2_000 + CLOCK_LEEWAY_SECS), Err(TokenRejected::Expired));
        assert_eq!(tokens.verify(&jwt, 900), Err(TokenRejected::NotYetValid));
    }

    #[test]
    fn wrong_issuer_or_audience_is_rejected() {
        let tokens = tokens(SigningAlgorithm::ES256);
        for tweak in [
            |c: &mut AccessTokenClaims| c.iss = "https://issuer/".into(),
            |c: &mut AccessTokenClaims| c.aud = "other".into(),
        ] {
            let mut c = claims();
            tweak(&mut c);
            let jwt = tokens.sign(&c).unwrap();
            assert!(matches!(tokens.verify(&jwt, 1_500), Err(TokenRejected::Invalid(_))));
        }
    }

    #[test]
    fn another_key_set_does_not_verify() {
        let jwt = tokens(SigningAlgorithm::ES256).sign(&claims()).unwrap();
        assert_eq!(
            tokens(SigningAlgorithm::ES256).verify(&jwt, 1_500),
            Err(TokenRejected::UnknownKey)
        );
    }

    #[test]
    fn forged_headers_are_rejected() {
        let tokens = tokens(SigningAlgorithm::ES256);
        let jwt = tokens.sign(&claims()).unwrap();
        let (_, rest) = jwt.split_once('.').unwrap();
        let kid = tokens.keys().current().kid.clone();
        let cases = [
            (serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": kid}), "alg none"),
            (serde_json::json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}), "hmac"),
            (serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": kid}), "alg swap"),
            (serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": kid}), "typ"),
            (serde_json::json!({"alg": "ES256", "typ": "at+jwt"}), "no kid"),
            (serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": "x"}), "unknown kid"),
            (
                serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": kid, "crit": ["exp"]}),
                "crit",
            ),
        ];
        for (header, case) in cases {
            let forged = format!("{}.{rest}", b64(&header));
            assert!(tokens.verify(&forged, 1_500).is_err(), "{case}");
        }
    }

    #[test]
    fn tampered_payload_and_wrongly_typed_claims_are_rejected() {
        let tokens = tokens(SigningAlgorithm::ES256);
        let jwt = tokens.sign(&claims()).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let mut tampered = serde_json::to_value(claims()).unwrap();
        tampered["scope"] = "admin".into();
        let forged = format!("{}.{}.{}", parts[0], b64(&tampered), parts[2]);
        assert!(matches!(tokens.verify(&forged, 1_500), Err(TokenRejected::Invalid(_))));

        let mut string_exp = serde_json::to_value(claims()).unwrap();
        string_exp["exp"] = "2000".into();
        let jwt =
            tokens.keys().current().sign_json(&serde_json::to_vec(&string_exp).unwrap()).unwrap();
        assert!(matches!(tokens.verify(&jwt, 1_500), Err(TokenRejected::Invalid(_))));
        assert!(tokens.verify("not.a.jwt", 1_500).is_err());
        assert_eq!(tokens.verify(&"a".repeat(MAX_TOKEN_LEN + 1), 0), Err(TokenRejected::TooLong));
    }

    /// RFC 8725 §2.1: a token that names no algorithm, in every spelling, is refused whatever
    /// follows it, with or without a signature part.
    #[test]
    fn alg_none_is_rejected() {
        let tokens = tokens(SigningAlgorithm::RS256);
        let kid = tokens.keys().current().kid.clone();
        let payload = b64(&serde_json::to_value(claims()).unwrap());
        for alg in ["none", "None", "NONE", "nOnE", ""] {
            let header = b64(&serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": kid}));
            for forged in [
                format!("{header}.{payload}."),
                format!("{header}.{payload}"),
                format!("{header}.{payload}.c2ln"),
            ] {
                assert!(tokens.verify(&forged, 1_500).is_err(), "{alg:?}: {forged}");
            }
        }
    }

    /// Algorithm confusion: the RSA public key (in every form an attacker could fetch it) used as
    /// an HMAC secret, under the genuine kid. The key is bound to RS256, so the header's HS*
    /// algorithm is refused before any signature check.
    #[test]
    fn rsa_public_key_used_as_an_hmac_secret_is_rejected() {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::KeyPair;
        use base64::engine::general_purpose::STANDARD;
        use jsonwebtoken::{EncodingKey, Header};

        let document = crate::keys::KeySetDocument::generate(SigningAlgorithm::RS256, 0).unwrap();
        let keys = KeySet::from_document(&document).unwrap();
        let tokens = Tokens::new(keys);
        let key = tokens.keys().current();
        let pkcs1 = STANDARD.decode(&document.keys[0].private_key).unwrap();
        let pair = aws_lc_rs::signature::RsaKeyPair::from_der(&pkcs1).unwrap();
        let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&spki)
        );
        let jwk = serde_json::to_vec(&key.public_jwk).unwrap();
        let jwks = serde_json::to_vec(&tokens.verifier.keys().jwks()).unwrap();
        let n = serde_json::to_value(&key.public_jwk).unwrap()["n"].as_str().unwrap().to_owned();
        let secrets: [&[u8]; 7] = [
            &spki,
            pem.as_bytes(),
            pem.trim_end().as_bytes(),
            &jwk,
            &jwks,
            n.as_bytes(),
            &URL_SAFE_NO_PAD.decode(&n).unwrap(),
        ];
        let genuine = tokens.sign(&claims()).unwrap();
        assert!(tokens.verify(&genuine, 1_500).is_ok(), "the control verifies");
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            for secret in secrets {
                let mut header = Header::new(alg);
                header.typ = Some(ACCESS_TOKEN_TYPE.into());
                header.kid = Some(key.kid.clone());
                let forged =
                    jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret))
                        .unwrap();
                assert_eq!(
                    tokens.verify(&forged, 1_500),
                    Err(TokenRejected::AlgorithmMismatch),
                    "{alg:?}"
                );
            }
        }
    }

    /// Claims of the wrong JSON type fail verification instead of being skipped (the advisory
    /// against `jsonwebtoken` before 10.3.0 was a string `exp` silently ignored). Each token is
    /// genuinely signed, and the same payload with correct types verifies.
    #[test]
    fn every_claim_of_the_wrong_json_type_is_rejected() {
        let tokens = tokens(SigningAlgorithm::ES256);
        let sign = |value: &serde_json::Value| {
            tokens.keys().current().sign_json(&serde_json::to_vec(value).unwrap()).unwrap()
        };
        let good = serde_json::to_value(claims()).unwrap();
        assert!(tokens.verify(&sign(&good), 1_500).is_ok(), "the control verifies");
        for (claim, value) in [
            ("exp", serde_json::json!("2000")),
            ("exp", serde_json::json!(2000.5)),
            ("exp", serde_json::json!(-1)),
            ("exp", serde_json::json!(null)),
            ("exp", serde_json::json!([2000])),
            ("iat", serde_json::json!("1000")),
            ("nbf", serde_json::json!("1000")),
            ("nbf", serde_json::json!(true)),
            ("iss", serde_json::json!(["https://issuer"])),
            ("aud", serde_json::json!(["api", "other"])),
            ("sub", serde_json::json!(42)),
            ("jti", serde_json::json!(7)),
            ("client_id", serde_json::json!({"id": "client"})),
            ("scope", serde_json::json!(["read"])),
            ("tenant", serde_json::json!(1)),
            ("sid", serde_json::json!(5)),
        ] {
            let mut wrong = good.clone();
            wrong[claim] = value.clone();
            assert!(
                matches!(tokens.verify(&sign(&wrong), 1_500), Err(TokenRejected::Invalid(_))),
                "{claim}: {value}"
            );
        }
        for missing in ["exp", "iat", "iss", "aud", "sub", "jti", "client_id"] {
            let mut without = good.clone();
            without.as_object_mut().unwrap().remove(missing);
            assert!(tokens.verify(&sign(&without), 1_500).is_err(), "missing {missing}");
        }
    }

    #[test]
    fn a_missing_or_foreign_typ_is_rejected() {
        let tokens = tokens(SigningAlgorithm::ES256);
        let jwt = tokens.sign(&claims()).unwrap();
        let (_, rest) = jwt.split_once('.').unwrap();
        let kid = tokens.keys().current().kid.clone();
        for header in [
            serde_json::json!({"alg": "ES256", "kid": kid}),
            serde_json::json!({"alg": "ES256", "kid": kid, "typ": "JWT"}),
            serde_json::json!({"alg": "ES256", "kid": kid, "typ": "id_token+jwt"}),
        ] {
            let forged = format!("{}.{rest}", b64(&header));
            assert_eq!(tokens.verify(&forged, 1_500), Err(TokenRejected::WrongType), "{header}");
        }
    }
}
