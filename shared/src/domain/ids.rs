//! Identifiers: client ids, token ids (`jti`) and grant (session) ids.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

pub const MAX_CLIENT_ID_LEN: usize = 128;

/// A client id: 1 to [`MAX_CLIENT_ID_LEN`] URL-unreserved characters (`A-Z a-z 0-9 - . _ ~`), so
/// it needs no escaping in Basic credentials, URLs or storage keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client id must be 1-{MAX_CLIENT_ID_LEN} characters of A-Z a-z 0-9 - . _ ~")]
pub struct InvalidClientId;

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self, InvalidClientId> {
        let unreserved =
            |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        if raw.is_empty() || raw.len() > MAX_CLIENT_ID_LEN || !raw.bytes().all(unreserved) {
            return Err(InvalidClientId);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClientId {
    type Error = InvalidClientId;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> Self {
        id.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Fills `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator failing is unrecoverable: there is no safe token to hand out without it.
    aws_lc_rs::rand::fill(&mut bytes).expect("operating system CSPRNG unavailable");
    bytes
}

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $error:ident) => {
        $(#[$doc])*
        /// 128 random bits, base64url without padding (22 characters).
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error("malformed {}", stringify!($name))]
        pub struct $error;

        impl $name {
            pub fn generate() -> Self {
                Self::from_bytes(random_bytes::<16>())
            }

            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(URL_SAFE_NO_PAD.encode(bytes))
            }

            pub fn parse(raw: &str) -> Result<Self, $error> {
                let decoded = URL_SAFE_NO_PAD.decode(raw).map_err(|_| $error)?;
                if decoded.len() != 16 {
                    return Err($error);
                }
                Ok(Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $error;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

random_id!(
    /// A token id, the `jti` of an access token.
    TokenId,
    InvalidTokenId
);
random_id!(
    /// A grant (session) id, shared by every token that one grant produces.
    GrantId,
    InvalidGrantId
);
random_id!(
    /// A user's stable id: the `sub` of the tokens issued to the user.
    UserId,
    InvalidUserId
);

impl UserId {
    /// A stable id derived from the tenant and username, for seed users given without one.
    pub fn derived(tenant: &str, username: &str) -> Self {
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("{tenant}\0{username}").as_bytes(),
        );
        Self(URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_url_unreserved() {
        assert!(ClientId::parse("demo-client_1.x~").is_ok());
        for bad in ["", "a b", "a:b", "a/b", "é", &"a".repeat(MAX_CLIENT_ID_LEN + 1)] {
            assert!(ClientId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn generated_token_ids_are_unique_and_reparse() {
        let a = TokenId::generate();
        let b = TokenId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 22);
        assert_eq!(TokenId::parse(a.as_str()), Ok(a));
    }

    #[test]
    fn token_ids_reject_other_shapes() {
        for bad in ["", "short", "!!!!!!!!!!!!!!!!!!!!!!", &"A".repeat(23)] {
            assert!(TokenId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
