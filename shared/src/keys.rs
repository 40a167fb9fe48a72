//! Signing keys: generation, the key set (one current key plus previous keys kept for
//! verification), its stored form, and the public JWKS.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::error::Unspecified;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};

use crate::files;
use crate::jwt::ACCESS_TOKEN_TYPE;
use serde::{Deserialize, Serialize};

/// The signing algorithms this service issues and accepts. Anything else, `none` and every HMAC
/// algorithm included, is rejected before a signature is looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    ES256,
    RS256,
    EdDSA,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported signing algorithm {0:?}: use ES256, RS256 or EdDSA")]
    UnsupportedAlgorithm(String),
    #[error("key generation failed: {0}")]
    Generation(String),
    #[error("key {kid} is not a valid {alg} private key: {reason}")]
    InvalidKey { kid: String, alg: SigningAlgorithm, reason: String },
    #[error("key set names current key {0:?}, which it does not contain")]
    MissingCurrent(String),
    #[error("key set document is malformed: {0}")]
    Malformed(String),
    #[error("signing with key {0} failed")]
    Signing(String),
    #[error("no staged key to promote: stage one first")]
    NothingStaged,
    #[error(
        "several keys are staged ({}): say which to promote with `tokenctl keys promote --kid \
         <kid>`, and remove the others with `tokenctl keys remove --kid <kid>`",
        .0.join(", ")
    )]
    SeveralStaged(Vec<String>),
    #[error("{kid} is {state}, not staged: only a staged key can be promoted")]
    NotStaged { kid: String, state: KeyState },
    #[error("no key {0} in the key set: `tokenctl keys show` lists them")]
    UnknownKid(String),
    #[error(
        "{0} is the current signing key and cannot be removed: stage a new key and promote it \
         (`tokenctl keys stage`, `tokenctl keys promote --kid <new kid>`), then remove {0}"
    )]
    RemovingCurrent(String),
    #[error(
        "{origin} holds private key material: a function that only verifies is given the public \
         key set (the `-public` parameter `tokenctl keys` writes beside the private one), never \
         the private one"
    )]
    PrivateKeyMaterial { origin: String },
    #[error("SSM parameter {name} changed while this command ran: {detail}")]
    ConcurrentChange { name: String, detail: String },
    #[error("public key {kid} in {origin}: {reason}")]
    InvalidPublicKey { kid: String, origin: String, reason: String },
    #[error("signing keys from SSM parameter {name}: {reason}")]
    Parameter { name: String, reason: String },
    #[error("key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Where and how a key document failed to parse, never what it holds: serde's own message
/// quotes the offending value, which in a key document can be a private key.
pub fn malformed_document(origin: &str, error: &serde_json::Error) -> KeyError {
    KeyError::Malformed(format!(
        "{origin}: {:?} error at line {}, column {} (the value is not shown)",
        error.classify(),
        error.line(),
        error.column()
    ))
}

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 3] = [Self::ES256, Self::RS256, Self::EdDSA];

    pub fn jwt(self) -> Algorithm {
        match self {
            Self::ES256 => Algorithm::ES256,
            Self::RS256 => Algorithm::RS256,
            Self::EdDSA => Algorithm::EdDSA,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// A new private key for this algorithm: PKCS#8 v1 DER for ES256 and EdDSA, PKCS#1 DER for
    /// RS256 (the forms `jsonwebtoken` reads).
    fn generate_pkcs8(self) -> Result<Vec<u8>, KeyError> {
        let der = match self {
            Self::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|pair| pair.to_pkcs8v1())
                .map(|doc| doc.as_ref().to_vec()),
            Self::RS256 => aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048)
                .and_then(|pair| pair.as_der())
                .and_then(|der| pkcs8_to_pkcs1(der.as_ref()).ok_or(Unspecified)),
            Self::EdDSA => Ed25519KeyPair::generate()
                .and_then(|pair| pair.to_pkcs8v1())
                .map(|doc| doc.as_ref().to_vec()),
        };
        der.map_err(|e| KeyError::Generation(e.to_string()))
    }

    fn encoding_key(self, pkcs8: &[u8]) -> EncodingKey {
        match self {
            Self::ES256 => EncodingKey::from_ec_der(pkcs8),
            Self::RS256 => EncodingKey::from_rsa_der(pkcs8),
            Self::EdDSA => EncodingKey::from_ed_der(pkcs8),
        }
    }
}

impl FromStr for SigningAlgorithm {
    type Err = KeyError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.as_str() == raw)
            .ok_or_else(|| KeyError::UnsupportedAlgorithm(raw.to_owned()))
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One private key in its stored form.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredKey {
    pub kid: String,
    pub alg: SigningAlgorithm,
    /// Private key DER, standard base64: PKCS#8 v1 for ES256 and EdDSA, PKCS#1 for RS256.
    pub private_key: String,
    pub created_at: u64,
    /// When the key stopped signing. Kept for verification until every token it signed has
    /// expired; `None` for the current key and for a staged key not yet signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<u64>,
}

/// Everything but the private key.
impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_key", &crate::domain::Redacted)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

impl fmt::Debug for KeySetDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySetDocument")
            .field("current", &self.current)
            .field("keys", &self.keys)
            .finish()
    }
}

/// Where a key stands in its set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Signs, and verifies.
    Current,
    /// Verifies (it is published), does not sign yet.
    Staged,
    /// Signed until then; verifies until pruned or removed.
    Retired(u64),
}

impl KeyState {
    fn of(kid: &str, current: &str, retired_at: Option<u64>) -> Self {
        match retired_at {
            _ if kid == current => Self::Current,
            Some(retired) => Self::Retired(retired),
            None => Self::Staged,
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Current => f.write_str("current (signs)"),
            Self::Staged => f.write_str("staged (verifies, not yet signing)"),
            Self::Retired(at) => write!(f, "retired at {at} (verifies)"),
        }
    }
}

/// The stored form of a key set: a JSON document in a git-ignored file locally, or in a
/// SecureString parameter in production.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeySetDocument {
    pub current: String,
    pub keys: Vec<StoredKey>,
}

impl KeySetDocument {
    pub fn generate(alg: SigningAlgorithm, now: u64) -> Result<Self, KeyError> {
        let key = generate_key(alg, now)?;
        Ok(Self { current: key.kid.clone(), keys: vec![key] })
    }

    /// Makes a new key of `alg` current at once and keeps every earlier key for verification.
    /// For one process (the local server); deployed functions stage, then promote.
    pub fn rotate(&mut self, alg: SigningAlgorithm, now: u64) -> Result<(), KeyError> {
        let staged = self.stage(alg, now)?;
        self.promote(now, Some(&staged)).map(drop)
    }

    /// Adds a new key of `alg` that verifies (it is published in the JWKS) but does not sign yet,
    /// so every verifier can learn it before the first token it signs appears. Returns its kid.
    pub fn stage(&mut self, alg: SigningAlgorithm, now: u64) -> Result<String, KeyError> {
        let key = generate_key(alg, now)?;
        let kid = key.kid.clone();
        self.keys.insert(0, key);
        Ok(kid)
    }

    pub fn state(&self, kid: &str) -> Option<KeyState> {
        let key = self.keys.iter().find(|key| key.kid == kid)?;
        Some(KeyState::of(&key.kid, &self.current, key.retired_at))
    }

    /// The kids of the staged keys, newest first.
    pub fn staged(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter(|key| self.state(&key.kid) == Some(KeyState::Staged))
            .map(|key| key.kid.clone())
            .collect()
    }

    /// A staged key starts signing; the previous current key retires (it still verifies until
    /// pruned). Which one: `kid`, or else the only staged key; with several staged and no `kid`
    /// nothing changes, since promoting the wrong one (a leaked key, say) would make it sign.
    /// Returns the promoted kid.
    pub fn promote(&mut self, now: u64, kid: Option<&str>) -> Result<String, KeyError> {
        let chosen = match kid {
            Some(kid) => match self.state(kid) {
                Some(KeyState::Staged) => kid.to_owned(),
                Some(state) => return Err(KeyError::NotStaged { kid: kid.to_owned(), state }),
                None => return Err(KeyError::UnknownKid(kid.to_owned())),
            },
            None => match self.staged().as_slice() {
                [] => return Err(KeyError::NothingStaged),
                [only] => only.clone(),
                several => return Err(KeyError::SeveralStaged(several.to_vec())),
            },
        };
        if let Some(old) = self.keys.iter_mut().find(|key| key.kid == self.current) {
            old.retired_at = Some(now);
        }
        self.current.clone_from(&chosen);
        Ok(chosen)
    }

    /// Drops retired keys whose tokens have all expired: retired more than `max_lifetime` ago.
    /// Staged keys are never pruned (`remove` drops one). Returns how many were dropped.
    pub fn prune(&mut self, now: u64, max_lifetime: u64) -> usize {
        let before = self.keys.len();
        self.keys.retain(|key| key.retired_at.is_none_or(|retired| retired + max_lifetime > now));
        before - self.keys.len()
    }

    /// Drops the key `kid`, staged or retired, at once: it is no longer published, verifies
    /// nothing and can never be promoted. The current key cannot be removed (something must
    /// sign): stage and promote another first.
    pub fn remove(&mut self, kid: &str) -> Result<KeyState, KeyError> {
        let state = self.state(kid).ok_or_else(|| KeyError::UnknownKid(kid.to_owned()))?;
        if state == KeyState::Current {
            return Err(KeyError::RemovingCurrent(kid.to_owned()));
        }
        self.keys.retain(|key| key.kid != kid);
        Ok(state)
    }

    /// The public half: every key's public JWK with its state, and no private key.
    pub fn public(&self) -> Result<PublicKeySetDocument, KeyError> {
        let keys = self
            .keys
            .iter()
            .map(|stored| {
                Ok(PublicStoredKey {
                    kid: stored.kid.clone(),
                    alg: stored.alg,
                    jwk: SigningKey::from_stored(stored)?.public_jwk,
                    created_at: stored.created_at,
                    retired_at: stored.retired_at,
                })
            })
            .collect::<Result<_, KeyError>>()?;
        Ok(PublicKeySetDocument { current: self.current.clone(), keys })
    }

    pub fn current_algorithm(&self) -> Option<SigningAlgorithm> {
        self.keys.iter().find(|key| key.kid == self.current).map(|key| key.alg)
    }

    /// Loads the document at `path`, creating it with a fresh `alg` key if it does not exist, and
    /// rotating to a fresh `alg` key if the current one uses another algorithm. The whole cycle
    /// holds the file's lock, and every write replaces the file atomically, owner-only: of
    /// concurrent first runs one makes the key and the others use it.
    pub fn load_or_create(path: &Path, alg: SigningAlgorithm, now: u64) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io { path: path.display().to_string(), source };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let _lock = files::lock(path).map_err(io)?;
        let mut document = match Self::read_file(path)? {
            Some(document) => document,
            None => {
                let document = Self::generate(alg, now)?;
                match files::create_new_private(path, &document.to_json()?) {
                    Ok(()) => return Ok(document),
                    // A writer that does not take the lock made it first: use its key.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::read_file(path)?
                            .ok_or_else(|| io(std::io::ErrorKind::NotFound.into()))?
                    }
                    Err(e) => return Err(io(e)),
                }
            }
        };
        if document.current_algorithm() == Some(alg) {
            return Ok(document);
        }
        document.rotate(alg, now)?;
        files::write_atomically_private(path, &document.to_json()?).map_err(io)?;
        Ok(document)
    }

    /// The document in the file at `path`, `None` if there is no file.
    pub fn read_file(path: &Path) -> Result<Option<Self>, KeyError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| malformed_document(&path.display().to_string(), &e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KeyError::Io { path: path.display().to_string(), source }),
        }
    }

    fn to_json(&self) -> Result<Vec<u8>, KeyError> {
        serde_json::to_vec_pretty(self).map_err(|e| KeyError::Malformed(e.to_string()))
    }
}

/// Unwraps the PKCS#1 `RSAPrivateKey` from a PKCS#8 `PrivateKeyInfo`
/// (`SEQUENCE { INTEGER version, SEQUENCE algorithm, OCTET STRING privateKey }`).
fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Option<Vec<u8>> {
    fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let len = rest[..count].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[count..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }
    let (0x30, info, _) = read_tlv(pkcs8)? else {
        return None;
    };
    let (0x02, _version, rest) = read_tlv(info)? else {
        return None;
    };
    let (0x30, _algorithm, rest) = read_tlv(rest)? else {
        return None;
    };
    let (0x04, private_key, _) = read_tlv(rest)? else {
        return None;
    };
    Some(private_key.to_vec())
}

fn generate_key(alg: SigningAlgorithm, now: u64) -> Result<StoredKey, KeyError> {
    let pkcs8 = alg.generate_pkcs8()?;
    let jwk = Jwk::from_encoding_key(&alg.encoding_key(&pkcs8), alg.jwt())
        .map_err(|e| KeyError::Generation(e.to_string()))?;
    let kid =
        jwk.thumbprint(ThumbprintHash::SHA256).map_err(|e| KeyError::Generation(e.to_string()))?;
    Ok(StoredKey {
        kid,
        alg,
        private_key: STANDARD.encode(pkcs8),
        created_at: now,
        retired_at: None,
    })
}

/// A private key parsed once, at start-up: signing a token then costs only the signature.
enum KeyPair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(aws_lc_rs::signature::RsaKeyPair),
}

/// A parsed private key, ready to sign.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlgorithm,
    key_pair: KeyPair,
    /// The JOSE header (`typ: at+jwt`, `alg`, `kid`), base64url-encoded once: it never changes.
    header: String,
    pub public_jwk: Jwk,
}

/// The key's name and algorithm, never the key.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    fn from_stored(stored: &StoredKey) -> Result<Self, KeyError> {
        let invalid = |reason: String| KeyError::InvalidKey {
            kid: stored.kid.clone(),
            alg: stored.alg,
            reason,
        };
        let pkcs8 = STANDARD.decode(&stored.private_key).map_err(|e| invalid(e.to_string()))?;
        let mut public_jwk =
            Jwk::from_encoding_key(&stored.alg.encoding_key(&pkcs8), stored.alg.jwt())
                .map_err(|e| invalid(e.to_string()))?;
        public_jwk.common.key_id = Some(stored.kid.clone());
        public_jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let rejected = |e: aws_lc_rs::error::KeyRejected| invalid(e.to_string());
        let key_pair = match stored.alg {
            SigningAlgorithm::ES256 => KeyPair::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
                    .map_err(rejected)?,
            ),
            SigningAlgorithm::EdDSA => {
                KeyPair::Ed(Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(rejected)?)
            }
            SigningAlgorithm::RS256 => {
                KeyPair::Rsa(aws_lc_rs::signature::RsaKeyPair::from_der(&pkcs8).map_err(rejected)?)
            }
        };
        let mut header = Header::new(stored.alg.jwt());
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(stored.kid.clone());
        let header = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&header).map_err(|e| invalid(e.to_string()))?);
        Ok(Self { kid: stored.kid.clone(), alg: stored.alg, key_pair, header, public_jwk })
    }

    /// A compact JWS of `payload` (JSON bytes) under this key's header: what `jsonwebtoken`'s
    /// `encode` produces, without re-parsing the private key for every token.
    pub fn sign_json(&self, payload: &[u8]) -> Result<String, KeyError> {
        let failed = || KeyError::Signing(self.kid.clone());
        let encoded_payload = URL_SAFE_NO_PAD.encode(payload);
        let mut jwt = String::with_capacity(self.header.len() + encoded_payload.len() + 400);
        jwt.push_str(&self.header);
        jwt.push('.');
        jwt.push_str(&encoded_payload);
        let rng = SystemRandom::new();
        let signature = match &self.key_pair {
            KeyPair::Ec(pair) => {
                pair.sign(&rng, jwt.as_bytes()).map_err(|_| failed())?.as_ref().to_vec()
            }
            KeyPair::Ed(pair) => pair.sign(jwt.as_bytes()).as_ref().to_vec(),
            KeyPair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, jwt.as_bytes(), &mut signature)
                    .map_err(|_| failed())?;
                signature
            }
        };
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(jwt)
    }
}

/// The stored form of the public half of a key set: what every function that only verifies
/// loads (a plain String SSM parameter, `<private parameter>-public`, or a file), written by
/// `tokenctl keys` beside the private one. It names the current key and each key's state, so
/// the published set says which key signs; it holds no private key, and a document that does
/// is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeySetDocument {
    pub current: String,
    pub keys: Vec<PublicStoredKey>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicStoredKey {
    pub kid: String,
    pub alg: SigningAlgorithm,
    /// The public JWK, as the JWKS publishes it.
    pub jwk: Jwk,
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<u64>,
}

/// JSON members that only a private key has: the private key of the stored form, and a JWK's
/// private members (RFC 7518 §6.2.2, §6.3.2; `k`, a symmetric key, is secret by nature).
const PRIVATE_MEMBERS: [&str; 9] = ["private_key", "d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn holds_private_member(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Object(map) => map.iter().any(|(name, member)| {
            PRIVATE_MEMBERS.contains(&name.as_str()) || holds_private_member(member)
        }),
        serde_json::Value::Array(items) => items.iter().any(holds_private_member),
        _ => false,
    }
}

impl PublicKeySetDocument {
    /// Parses a public key set read from `origin` (named in errors). A document carrying any
    /// private key material, the private key set handed over by mistake included, is refused
    /// before anything is kept.
    pub fn parse(json: &[u8], origin: &str) -> Result<Self, KeyError> {
        let malformed = |e: serde_json::Error| malformed_document(origin, &e);
        let value: serde_json::Value = serde_json::from_slice(json).map_err(malformed)?;
        if holds_private_member(&value) {
            return Err(KeyError::PrivateKeyMaterial { origin: origin.to_owned() });
        }
        serde_json::from_value(value).map_err(malformed)
    }

    pub fn state(&self, kid: &str) -> Option<KeyState> {
        let key = self.keys.iter().find(|key| key.kid == kid)?;
        Some(KeyState::of(&key.kid, &self.current, key.retired_at))
    }
}

/// A public key, ready to verify: bound to its one algorithm.
pub struct VerificationKey {
    pub kid: String,
    pub alg: SigningAlgorithm,
    /// Built from the published JWK, so verification uses exactly what resource servers see.
    pub(crate) decoding: DecodingKey,
    pub public_jwk: Jwk,
}

impl VerificationKey {
    fn from_jwk(
        kid: &str,
        alg: SigningAlgorithm,
        jwk: &Jwk,
        origin: &str,
    ) -> Result<Self, KeyError> {
        let invalid = |reason: String| KeyError::InvalidPublicKey {
            kid: kid.to_owned(),
            origin: origin.to_owned(),
            reason,
        };
        let fits = match (&jwk.algorithm, alg) {
            (AlgorithmParameters::EllipticCurve(ec), SigningAlgorithm::ES256) => {
                ec.curve == EllipticCurve::P256
            }
            (AlgorithmParameters::OctetKeyPair(okp), SigningAlgorithm::EdDSA) => {
                okp.curve == EllipticCurve::Ed25519
            }
            (AlgorithmParameters::RSA(_), SigningAlgorithm::RS256) => true,
            _ => false,
        };
        if !fits {
            return Err(invalid(format!("the JWK is not a public {alg} key")));
        }
        // The kid is the key's RFC 7638 thumbprint: a document pairing a kid with another key
        // is refused rather than trusted.
        let thumbprint =
            jwk.thumbprint(ThumbprintHash::SHA256).map_err(|e| invalid(e.to_string()))?;
        if thumbprint != kid || jwk.common.key_id.as_deref() != Some(kid) {
            return Err(invalid("the kid is not the key's thumbprint".into()));
        }
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            decoding: DecodingKey::from_jwk(jwk).map_err(|e| invalid(e.to_string()))?,
            public_jwk: jwk.clone(),
        })
    }

    fn of(key: &SigningKey) -> Result<Self, KeyError> {
        let invalid = |e: jsonwebtoken::errors::Error| KeyError::InvalidKey {
            kid: key.kid.clone(),
            alg: key.alg,
            reason: e.to_string(),
        };
        Ok(Self {
            kid: key.kid.clone(),
            alg: key.alg,
            decoding: DecodingKey::from_jwk(&key.public_jwk).map_err(invalid)?,
            public_jwk: key.public_jwk.clone(),
        })
    }
}

/// The public keys in force: everything a function that only verifies holds. It has no
/// private key by construction, so the authorizer, introspection, revocation and the JWKS can
/// never sign, nor leak what signs.
#[derive(Clone)]
pub struct VerificationKeys {
    current: String,
    /// Current key first, then the others in their stored order (the JWKS's order).
    keys: Arc<[VerificationKey]>,
}

impl VerificationKeys {
    pub fn from_public_document(
        document: &PublicKeySetDocument,
        origin: &str,
    ) -> Result<Self, KeyError> {
        let keys = document
            .keys
            .iter()
            .map(|key| VerificationKey::from_jwk(&key.kid, key.alg, &key.jwk, origin))
            .collect::<Result<Vec<_>, KeyError>>()?;
        Self::ordered(document.current.clone(), keys)
    }

    fn ordered(current: String, mut keys: Vec<VerificationKey>) -> Result<Self, KeyError> {
        let position = keys
            .iter()
            .position(|key| key.kid == current)
            .ok_or_else(|| KeyError::MissingCurrent(current.clone()))?;
        let first = keys.remove(position);
        keys.insert(0, first);
        Ok(Self { current, keys: keys.into() })
    }

    /// The kid of the key that signs.
    pub fn current_kid(&self) -> &str {
        &self.current
    }

    /// Looks a key up by `kid` in memory only; remote key references are never followed.
    pub fn find(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.iter().find(|key| key.kid == kid)
    }

    /// The public JWK Set, current key first.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.keys.iter().map(|key| key.public_jwk.clone()).collect() }
    }

    pub fn algorithms(&self) -> Vec<SigningAlgorithm> {
        let mut algs: Vec<SigningAlgorithm> = Vec::new();
        for key in self.keys.iter() {
            if !algs.contains(&key.alg) {
                algs.push(key.alg);
            }
        }
        algs
    }
}

/// The private keys: the current key signs. Only the token function (and the local server,
/// one process for every route) holds one; verifiers get [`KeySet::verification_keys`] or load
/// the public document.
#[derive(Clone)]
pub struct KeySet {
    current: Arc<SigningKey>,
    by_kid: Arc<HashMap<String, Arc<SigningKey>>>,
    public: VerificationKeys,
}

impl KeySet {
    pub fn from_document(document: &KeySetDocument) -> Result<Self, KeyError> {
        let by_kid: HashMap<String, Arc<SigningKey>> = document
            .keys
            .iter()
            .map(|stored| Ok((stored.kid.clone(), Arc::new(SigningKey::from_stored(stored)?))))
            .collect::<Result<_, KeyError>>()?;
        let current = by_kid
            .get(&document.current)
            .cloned()
            .ok_or_else(|| KeyError::MissingCurrent(document.current.clone()))?;
        let public = document
            .keys
            .iter()
            .filter_map(|stored| by_kid.get(&stored.kid))
            .map(|key| VerificationKey::of(key))
            .collect::<Result<Vec<_>, KeyError>>()?;
        let public = VerificationKeys::ordered(document.current.clone(), public)?;
        Ok(Self { current, by_kid: Arc::new(by_kid), public })
    }

    /// A key set with one fresh key; for tests and first runs.
    pub fn generate(alg: SigningAlgorithm) -> Result<Self, KeyError> {
        Self::from_document(&KeySetDocument::generate(alg, 0)?)
    }

    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    /// A private key by `kid`; for tests that sign with a key other than the current one.
    pub fn find(&self, kid: &str) -> Option<&SigningKey> {
        self.by_kid.get(kid).map(Arc::as_ref)
    }

    /// The public half, for verification and the JWKS.
    pub fn verification_keys(&self) -> VerificationKeys {
        self.public.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_a_usable_key_with_a_thumbprint_kid() {
        for alg in SigningAlgorithm::ALL {
            let keys = KeySet::generate(alg).unwrap();
            let current = keys.current();
            assert_eq!(current.alg, alg);
            assert_eq!(current.kid.len(), 43, "base64url SHA-256 thumbprint");
            assert_eq!(current.public_jwk.common.key_id.as_deref(), Some(current.kid.as_str()));
            assert!(keys.find(&current.kid).is_some());
        }
    }

    #[test]
    fn rotation_keeps_previous_keys_for_verification() {
        let mut document = KeySetDocument::generate(SigningAlgorithm::ES256, 1).unwrap();
        let first = document.current.clone();
        document.rotate(SigningAlgorithm::EdDSA, 2).unwrap();
        let keys = KeySet::from_document(&document).unwrap().verification_keys();
        assert_ne!(keys.current_kid(), first);
        assert!(keys.find(&first).is_some());
        let jwks = keys.jwks();
        assert_eq!(jwks.keys.len(), 2);
        assert_eq!(jwks.keys[0].common.key_id.as_deref(), Some(keys.current_kid()));
    }

    #[test]
    fn staged_keys_verify_before_they_sign_and_retired_keys_are_pruned_after_their_tokens() {
        let mut document = KeySetDocument::generate(SigningAlgorithm::ES256, 100).unwrap();
        let first = document.current.clone();
        assert!(matches!(document.promote(150, None), Err(KeyError::NothingStaged)));
        let staged = document.stage(SigningAlgorithm::ES256, 200).unwrap();
        let keys = KeySet::from_document(&document).unwrap();
        assert_eq!(keys.current().kid, first, "staging does not change the signer");
        let public = keys.verification_keys();
        assert!(public.find(&staged).is_some(), "a staged key verifies and is published");
        assert_eq!(public.jwks().keys.len(), 2);

        assert_eq!(document.promote(300, None).unwrap(), staged);
        assert_eq!(document.current, staged);
        assert_eq!(
            document.prune(300 + 3_599, 3_600),
            0,
            "the retired key's tokens may still live"
        );
        assert_eq!(document.prune(300 + 3_600, 3_600), 1);
        assert_eq!(document.keys.len(), 1);
        assert!(KeySet::from_document(&document).is_ok());
    }

    #[test]
    fn load_or_create_persists_and_reuses_the_key() {
        let dir = std::env::temp_dir().join(format!("keys-test-{}", std::process::id()));
        let path = dir.join("keys.json");
        let _ = std::fs::remove_file(&path);
        let created = KeySetDocument::load_or_create(&path, SigningAlgorithm::ES256, 5).unwrap();
        let reloaded = KeySetDocument::load_or_create(&path, SigningAlgorithm::ES256, 6).unwrap();
        assert_eq!(created.current, reloaded.current);
        let rotated = KeySetDocument::load_or_create(&path, SigningAlgorithm::RS256, 7).unwrap();
        assert_ne!(rotated.current, created.current);
        assert_eq!(rotated.keys.len(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn with_several_staged_keys_promote_must_be_told_which() {
        let mut document = KeySetDocument::generate(SigningAlgorithm::ES256, 1).unwrap();
        let first = document.current.clone();
        let older = document.stage(SigningAlgorithm::ES256, 2).unwrap();
        let newer = document.stage(SigningAlgorithm::ES256, 3).unwrap();
        match document.promote(4, None) {
            Err(error @ KeyError::SeveralStaged(_)) => {
                let message = error.to_string();
                assert!(message.contains(&older) && message.contains(&newer), "{message}");
                assert!(message.contains("--kid"), "{message}");
            }
            other => panic!("promoted without being told which: {other:?}"),
        }
        assert_eq!(document.current, first, "nothing changed");
        assert_eq!(document.promote(4, Some(&older)).unwrap(), older);
        assert_eq!(document.current, older);
        assert_eq!(document.state(&first), Some(KeyState::Retired(4)));
        assert_eq!(document.state(&newer), Some(KeyState::Staged));
        for (kid, refused) in [(&first, "retired"), (&older, "current")] {
            let error = document.promote(5, Some(kid)).unwrap_err().to_string();
            assert!(error.contains(refused) && error.contains("not staged"), "{error}");
        }
        assert!(matches!(document.promote(5, Some("nope")), Err(KeyError::UnknownKid(_))));
    }

    #[test]
    fn a_removed_staged_key_is_unpublished_and_can_never_sign() {
        let mut document = KeySetDocument::generate(SigningAlgorithm::ES256, 1).unwrap();
        let current = document.current.clone();
        let leaked = document.stage(SigningAlgorithm::ES256, 2).unwrap();
        assert_eq!(document.prune(u64::MAX / 2, 0), 0, "prune keeps staged keys");
        assert_eq!(document.remove(&leaked).unwrap(), KeyState::Staged);
        let keys = KeySet::from_document(&document).unwrap().verification_keys();
        assert!(keys.find(&leaked).is_none(), "no longer verifies");
        assert_eq!(keys.jwks().keys.len(), 1, "no longer published");
        assert!(matches!(document.promote(3, None), Err(KeyError::NothingStaged)));
        assert!(matches!(document.promote(3, Some(&leaked)), Err(KeyError::UnknownKid(_))));

        let error = document.remove(&current).unwrap_err();
        assert!(matches!(error, KeyError::RemovingCurrent(_)));
        assert!(error.to_string().contains("stage a new key and promote it"), "{error}");
        let next = document.stage(SigningAlgorithm::ES256, 4).unwrap();
        document.promote(5, Some(&next)).unwrap();
        assert_eq!(document.remove(&current).unwrap(), KeyState::Retired(5), "once retired");
        assert!(matches!(document.remove(&current), Err(KeyError::UnknownKid(_))));
    }

    #[test]
    fn the_public_document_verifies_like_the_private_one_and_holds_no_private_key() {
        let mut document = KeySetDocument::generate(SigningAlgorithm::ES256, 1).unwrap();
        document.stage(SigningAlgorithm::RS256, 2).unwrap();
        document.stage(SigningAlgorithm::EdDSA, 3).unwrap();
        let private = KeySet::from_document(&document).unwrap().verification_keys();
        let public = document.public().unwrap();
        let json = serde_json::to_vec(&public).unwrap();
        for stored in &document.keys {
            let text = String::from_utf8_lossy(&json);
            assert!(!text.contains(&stored.private_key), "a private key was published");
        }
        let parsed = PublicKeySetDocument::parse(&json, "test").unwrap();
        assert_eq!(parsed, public);
        let loaded = VerificationKeys::from_public_document(&parsed, "test").unwrap();
        assert_eq!(loaded.current_kid(), document.current);
        assert_eq!(
            serde_json::to_value(loaded.jwks()).unwrap(),
            serde_json::to_value(private.jwks()).unwrap()
        );
        assert_eq!(loaded.algorithms(), private.algorithms());
    }

    #[test]
    fn a_private_key_set_is_refused_where_a_public_one_is_expected() {
        let document = KeySetDocument::generate(SigningAlgorithm::ES256, 1).unwrap();
        let private = serde_json::to_vec(&document).unwrap();
        let error = PublicKeySetDocument::parse(&private, "PUBLIC_KEYS_FILE x").unwrap_err();
        assert!(matches!(error, KeyError::PrivateKeyMaterial { .. }), "{error}");
        assert!(error.to_string().contains("PUBLIC_KEYS_FILE x"), "{error}");
        // A public document with a private JWK member smuggled in.
        let mut public = serde_json::to_value(document.public().unwrap()).unwrap();
        public["keys"][0]["jwk"]["d"] = "c2VjcmV0".into();
        let error = PublicKeySetDocument::parse(public.to_string().as_bytes(), "x").unwrap_err();
        assert!(matches!(error, KeyError::PrivateKeyMaterial { .. }), "{error}");
    }

    #[test]
    fn a_public_key_under_another_keys_kid_or_algorithm_is_refused() {
        let document = KeySetDocument::generate(SigningAlgorithm::ES256, 1).unwrap();
        let other = KeySetDocument::generate(SigningAlgorithm::ES256, 1).unwrap().public().unwrap();
        let mut public = document.public().unwrap();
        public.keys[0].jwk = other.keys[0].jwk.clone();
        public.keys[0].jwk.common.key_id = Some(public.current.clone());
        let error = VerificationKeys::from_public_document(&public, "x").err().unwrap();
        assert!(error.to_string().contains("thumbprint"), "{error}");
        let mut public = document.public().unwrap();
        public.keys[0].alg = SigningAlgorithm::RS256;
        let error = VerificationKeys::from_public_document(&public, "x").err().unwrap();
        assert!(error.to_string().contains("not a public RS256 key"), "{error}");
    }

    /// A fresh directory for one test's key files.
    fn scratch_dir(test: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("keys-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[cfg(unix)]
    #[test]
    fn a_key_written_into_a_readable_key_file_leaves_it_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch_dir("mode");
        let path = dir.join("keys.json");
        let document = KeySetDocument::generate(SigningAlgorithm::ES256, 1).unwrap();
        std::fs::write(&path, serde_json::to_vec(&document).unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let rotated = KeySetDocument::load_or_create(&path, SigningAlgorithm::EdDSA, 2).unwrap();
        assert_eq!(rotated.keys.len(), 2, "a new private key went into the file");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a file holding a new private key is owner-only: {mode:o}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_that_is_a_symlink_is_never_written_through() {
        let dir = scratch_dir("symlink");
        let elsewhere = dir.join("elsewhere.json");
        let path = dir.join("keys.json");
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        let refused = KeySetDocument::load_or_create(&path, SigningAlgorithm::ES256, 1);
        let message = refused.expect_err("a symlinked key file is refused").to_string();
        assert!(message.contains("symbolic link"), "{message}");
        assert!(!elsewhere.exists(), "no private key was written where the link points");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn concurrent_first_runs_end_with_one_key_that_all_of_them_use() {
        let dir = scratch_dir("first-run");
        let path = dir.join("keys.json");
        let runs = 4;
        let start = std::sync::Barrier::new(runs);
        let kids: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..runs)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        // RS256: its key takes the longest to make, the widest window.
                        KeySetDocument::load_or_create(&path, SigningAlgorithm::RS256, 1)
                            .unwrap()
                            .current
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });
        let stored: KeySetDocument =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(stored.keys.len(), 1, "one key made");
        assert!(kids.iter().all(|kid| *kid == stored.current), "every run uses it: {kids:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_algorithms_are_refused() {
        for name in ["HS256", "none", "es256", "RS512", ""] {
            assert!(name.parse::<SigningAlgorithm>().is_err(), "{name}");
        }
    }

    /// serde quotes the value it chokes on: a key document with a private key where another
    /// type belongs (or the whole document encoded once more as a JSON string) must not put
    /// that key into an error message, and so into a log.
    #[test]
    fn a_malformed_key_document_never_quotes_a_private_key() {
        let document = KeySetDocument::generate(SigningAlgorithm::ES256, 1).unwrap();
        let private_key = document.keys[0].private_key.clone();
        let json = serde_json::to_string(&document).unwrap();
        let wrong_type =
            json.replace("\"created_at\":1", &format!("\"created_at\":\"{private_key}\""));
        let encoded_again = serde_json::to_string(&json).unwrap();
        let dir = std::env::temp_dir().join(format!("malformed-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (case, text) in [("wrong type", wrong_type), ("encoded again", encoded_again)] {
            let path = dir.join("keys.json");
            std::fs::write(&path, &text).unwrap();
            let errors = [
                KeySetDocument::read_file(&path).map(|_| ()).unwrap_err().to_string(),
                PublicKeySetDocument::parse(text.as_bytes(), "test")
                    .map(|_| ())
                    .unwrap_err()
                    .to_string(),
            ];
            for error in &errors {
                assert!(!error.contains(&private_key[10..40]), "{case}: {error}");
            }
            assert!(errors[0].contains("line 1"), "{case}: located: {}", errors[0]);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
