//! Client secrets: generated with 256 bits of entropy, stored only as a SHA-256 digest.
//!
//! A fast digest is enough here (unlike user passwords): a 256-bit random secret cannot be
//! guessed from its digest, and a fast check keeps the token endpoint cheap.

use std::fmt;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::random_bytes;

/// Shortest secret accepted from a seed file; generated secrets are 43 characters.
pub const MIN_SECRET_LEN: usize = 32;
/// Longest secret accepted in a request, checked before hashing.
pub const MAX_SECRET_LEN: usize = 256;

/// A plaintext client secret. Never logged: `Debug` is redacted.
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn generate() -> Self {
        Self(URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
    }

    pub fn new(raw: String) -> Self {
        Self(raw)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> SecretDigest {
        SecretDigest::of(self.0.as_bytes())
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// Stands in for a secret, a password or a token in `Debug` output, so a type holding one can
/// still be debug-printed (and logged with `?`) without it.
pub struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// [`Redacted`] for an optional secret: whether it was there still shows.
pub fn redacted<T>(secret: &Option<T>) -> Option<Redacted> {
    secret.as_ref().map(|_| Redacted)
}

/// SHA-256 of a client secret or refresh token, serialized as unpadded base64url.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretDigest([u8; 32]);

#[derive(Debug, thiserror::Error)]
#[error("secret digest must be 32 bytes of unpadded base64url (43 characters)")]
pub struct InvalidSecretDigest;

impl SecretDigest {
    pub fn of(secret: &[u8]) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, secret).as_ref());
        Self(out)
    }

    /// A token id derived from this digest, naming a refresh token in the issuance log without
    /// revealing it.
    pub fn token_id(&self) -> super::TokenId {
        let mut id = [0u8; 16];
        id.copy_from_slice(&self.0[..16]);
        super::TokenId::from_bytes(id)
    }

    /// Compares a presented secret with this digest in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        Self::of(presented.as_bytes()).0.ct_eq(&self.0).into()
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretDigest({})", URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl TryFrom<String> for SecretDigest {
    type Error = InvalidSecretDigest;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| InvalidSecretDigest)?;
        Ok(Self(bytes.try_into().map_err(|_| InvalidSecretDigest)?))
    }
}

impl From<SecretDigest> for String {
    fn from(digest: SecretDigest) -> Self {
        URL_SAFE_NO_PAD.encode(digest.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_have_256_bits() {
        let secret = ClientSecret::generate();
        assert_eq!(secret.expose().len(), 43);
        assert_ne!(secret.expose(), ClientSecret::generate().expose());
    }

    #[test]
    fn digest_matches_only_the_same_secret() {
        let secret = ClientSecret::generate();
        let digest = secret.digest();
        assert!(digest.matches(secret.expose()));
        assert!(!digest.matches(&format!("{}x", secret.expose())));
        assert!(!digest.matches(""));
    }

    #[test]
    fn digest_round_trips_through_its_string_form() {
        let digest = ClientSecret::generate().digest();
        let text = String::from(digest.clone());
        assert_eq!(SecretDigest::try_from(text).unwrap(), digest);
        assert!(SecretDigest::try_from("abc".to_owned()).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = ClientSecret::new("super-secret-value".into());
        assert!(!format!("{secret:?}").contains("super"));
    }

    /// Every type that holds a secret, a password, a token or a private key: its `Debug` output
    /// (what `tracing`'s `?field` and `{:?}` print) leaves the value out but still names it.
    #[test]
    fn debug_of_every_holder_of_a_secret_leaves_it_out() {
        use crate::api::form::Form;
        use crate::auth::PresentedClient;
        use crate::domain::{GrantId, RefreshToken, TenantPath, User, UserId, Username};
        use crate::keys::{KeySet, KeySetDocument, SigningAlgorithm};
        use crate::token::{TokenParams, TokenResponse};

        const SECRET: &str = "s3cret-value-0123456789";
        let mut printed = vec![
            format!("{:?}", Form::parse_query(Some(&format!("password={SECRET}&x=1"))).unwrap()),
            format!("{:?}", PresentedClient::secret("app", SECRET)),
            format!(
                "{:?}",
                TokenParams {
                    password: Some(SECRET),
                    refresh_token: Some(SECRET),
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                TokenResponse {
                    access_token: SECRET.into(),
                    token_type: "Bearer",
                    expires_in: 60,
                    scope: String::new(),
                    refresh_token: Some(SECRET.into()),
                }
            ),
            format!(
                "{:?}",
                User {
                    id: UserId::generate(),
                    tenant: TenantPath::parse("/acme").unwrap(),
                    username: Username::parse("alice").unwrap(),
                    password_hash: SECRET.into(),
                    enabled: true,
                    created_at: 0,
                    version: 0,
                }
            ),
        ];
        let token = RefreshToken::generate(&GrantId::generate());
        let token_debug = format!("{token:?}");
        let token_text = token.into_string();
        let document = KeySetDocument::generate(SigningAlgorithm::ES256, 0).unwrap();
        let private_key = document.keys[0].private_key.clone();
        let keys = KeySet::from_document(&document).unwrap();
        printed.extend([format!("{document:?}"), format!("{:?}", keys.current())]);

        for debug in &printed {
            assert!(!debug.contains(SECRET), "{debug}");
        }
        assert!(!token_debug.contains(&token_text), "{token_debug}");
        for debug in &printed[printed.len() - 2..] {
            assert!(!debug.contains(&private_key[private_key.len() - 40..]), "{debug}");
            assert!(debug.contains(&document.current), "the kid still shows: {debug}");
        }
        assert!(printed[0].contains("password"), "parameter names still show: {}", printed[0]);
    }
}
