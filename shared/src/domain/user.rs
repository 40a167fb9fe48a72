//! Users: one tenant each, usernames unique within a tenant.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{TenantPath, UserId};

pub const MAX_USERNAME_LEN: usize = 128;

/// A username: 1 to [`MAX_USERNAME_LEN`] bytes, no control characters, no surrounding spaces.
/// Compared exactly (case-sensitive).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "username must be 1-{MAX_USERNAME_LEN} bytes without control characters or surrounding spaces"
)]
pub struct InvalidUsername;

impl Username {
    pub fn parse(raw: &str) -> Result<Self, InvalidUsername> {
        if raw.is_empty()
            || raw.len() > MAX_USERNAME_LEN
            || raw.trim() != raw
            || raw.chars().any(char::is_control)
        {
            return Err(InvalidUsername);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = InvalidUsername;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Username> for String {
    fn from(name: Username) -> Self {
        name.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `Debug` leaves out the password hash, which would let a reader of the log guess offline.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub tenant: TenantPath,
    pub username: Username,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// A disabled user cannot sign in.
    pub enabled: bool,
    pub created_at: u64,
    /// The stored record's revision, as [`super::Client::version`].
    pub version: u64,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("username", &self.username)
            .field("password_hash", &super::Redacted)
            .field("enabled", &self.enabled)
            .field("created_at", &self.created_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_bounded_and_printable() {
        assert!(Username::parse("alice@example.com").is_ok());
        assert!(Username::parse("Ünïcode name").is_ok());
        for bad in
            ["", " alice", "alice ", "al\nice", "al\u{0}ice", &"a".repeat(MAX_USERNAME_LEN + 1)]
        {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }
}
