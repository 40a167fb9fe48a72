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
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
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
    #[error("signing keys from SSM parameter {name}: {reason}")]
    Parameter { name: String, reason: String },
    #[error("key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
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
        self.stage(alg, now)?;
        self.promote(now)
    }

    /// Adds a new key of `alg` that verifies (it is published in the JWKS) but does not sign yet,
    /// so every verifier can learn it before the first token it signs appears.
    pub fn stage(&mut self, alg: SigningAlgorithm, now: u64) -> Result<(), KeyError> {
        let key = generate_key(alg, now)?;
        self.keys.insert(0, key);
        Ok(())
    }

    /// The newest staged key starts signing; the previous current key retires (it still
    /// verifies until pruned).
    pub fn promote(&mut self, now: u64) -> Result<(), KeyError> {
        let staged = self
            .keys
            .iter()
            .find(|key| key.kid != self.current && key.retired_at.is_none())
            .map(|key| key.kid.clone())
            .ok_or(KeyError::NothingStaged)?;
        if let Some(old) = self.keys.iter_mut().find(|key| key.kid == self.current) {
            old.retired_at = Some(now);
        }
        self.current = staged;
        Ok(())
    }

    /// Drops retired keys whose tokens have all expired: retired more than `max_lifetime` ago.
    /// Returns how many were dropped.
    pub fn prune(&mut self, now: u64, max_lifetime: u64) -> usize {
        let before = self.keys.len();
        self.keys.retain(|key| key.retired_at.is_none_or(|retired| retired + max_lifetime > now));
        before - self.keys.len()
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
                .map_err(|e| KeyError::Malformed(e.to_string())),
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

/// A parsed key, ready to sign (if current) and to verify.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlgorithm,
    key_pair: KeyPair,
    /// The JOSE header (`typ: at+jwt`, `alg`, `kid`), base64url-encoded once: it never changes.
    header: String,
    /// Built from the published JWK, so verification uses exactly what resource servers see.
    pub(crate) decoding: DecodingKey,
    pub public_jwk: Jwk,
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
        let decoding = DecodingKey::from_jwk(&public_jwk).map_err(|e| invalid(e.to_string()))?;
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
        Ok(Self {
            kid: stored.kid.clone(),
            alg: stored.alg,
            key_pair,
            header,
            decoding,
            public_jwk,
        })
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

/// The keys in force: the current key signs; it and every previous key verify.
#[derive(Clone)]
pub struct KeySet {
    current: Arc<SigningKey>,
    by_kid: Arc<HashMap<String, Arc<SigningKey>>>,
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
        Ok(Self { current, by_kid: Arc::new(by_kid) })
    }

    /// A key set with one fresh key; for tests and first runs.
    pub fn generate(alg: SigningAlgorithm) -> Result<Self, KeyError> {
        Self::from_document(&KeySetDocument::generate(alg, 0)?)
    }

    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    /// Looks a key up by `kid` in memory only; remote key references are never followed.
    pub fn find(&self, kid: &str) -> Option<&SigningKey> {
        self.by_kid.get(kid).map(Arc::as_ref)
    }

    /// The public JWK Set, current key first.
    pub fn jwks(&self) -> JwkSet {
        let mut keys = vec![self.current.public_jwk.clone()];
        keys.extend(
            self.by_kid
                .values()
                .filter(|key| key.kid != self.current.kid)
                .map(|key| key.public_jwk.clone()),
        );
        JwkSet { keys }
    }

    pub fn algorithms(&self) -> Vec<SigningAlgorithm> {
        let mut algs: Vec<SigningAlgorithm> = Vec::new();
        for key in std::iter::once(&self.current).chain(self.by_kid.values()) {
            if !algs.contains(&key.alg) {
                algs.push(key.alg);
            }
        }
        algs
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
        let keys = KeySet::from_document(&document).unwrap();
        assert_ne!(keys.current().kid, first);
        assert!(keys.find(&first).is_some());
        let jwks = keys.jwks();
        assert_eq!(jwks.keys.len(), 2);
        assert_eq!(jwks.keys[0].common.key_id.as_deref(), Some(keys.current().kid.as_str()));
    }

    #[test]
    fn staged_keys_verify_before_they_sign_and_retired_keys_are_pruned_after_their_tokens() {
        let mut document = KeySetDocument::generate(SigningAlgorithm::ES256, 100).unwrap();
        let first = document.current.clone();
        assert!(matches!(document.promote(150), Err(KeyError::NothingStaged)));
        document.stage(SigningAlgorithm::ES256, 200).unwrap();
        let staged = document.keys[0].kid.clone();
        let keys = KeySet::from_document(&document).unwrap();
        assert_eq!(keys.current().kid, first, "staging does not change the signer");
        assert!(keys.find(&staged).is_some(), "a staged key verifies and is published");
        assert_eq!(keys.jwks().keys.len(), 2);

        document.promote(300).unwrap();
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
        let message = refused.err().expect("a symlinked key file is refused").to_string();
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
}
