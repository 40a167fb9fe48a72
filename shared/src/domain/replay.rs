//! Keys of the replay store: the `jti` of a one-time JWT (a client assertion, RFC 7523 §3; a
//! DPoP proof, RFC 9449 §11.1), scoped to who signed it, so that one signer's `jti` never
//! collides with another's.

use std::fmt;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::ClientId;

/// What a replay record is kept for: its kind and a digest of the signer and the `jti`. The
/// digest keeps the key short and of one shape whatever the `jti` holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReplayKey(String);

impl ReplayKey {
    /// A client assertion's `jti`, among those of its client.
    pub fn client_assertion(client: &ClientId, jti: &str) -> Self {
        Self::of("ASSERTION", client.as_str(), jti)
    }

    /// A DPoP proof's `jti`, among those of the key (its RFC 7638 thumbprint) that signed it.
    pub fn dpop_proof(jkt: &str, jti: &str) -> Self {
        Self::of("DPOP", jkt, jti)
    }

    fn of(kind: &str, signer: &str, jti: &str) -> Self {
        let hashed = digest(&SHA256, format!("{signer}\0{jti}").as_bytes());
        Self(format!("{kind}#{}", URL_SAFE_NO_PAD.encode(hashed.as_ref())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_by_kind_and_signer() {
        let a = ClientId::parse("a").unwrap();
        let b = ClientId::parse("b").unwrap();
        assert_eq!(ReplayKey::client_assertion(&a, "1"), ReplayKey::client_assertion(&a, "1"));
        assert_ne!(ReplayKey::client_assertion(&a, "1"), ReplayKey::client_assertion(&b, "1"));
        assert_ne!(ReplayKey::client_assertion(&a, "1"), ReplayKey::dpop_proof("a", "1"));
        // The separator keeps signer and jti apart: ("a", "b1") is not ("ab", "1").
        assert_ne!(ReplayKey::dpop_proof("a", "b1"), ReplayKey::dpop_proof("ab", "1"));
    }
}
