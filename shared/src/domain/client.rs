//! Registered clients and the grants they may use.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{ClientId, ScopeSet, SecretDigest, TenantPath};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    ClientCredentials,
    Password,
    RefreshToken,
}

#[derive(Debug, thiserror::Error)]
#[error("unsupported grant type")]
pub struct UnsupportedGrantType;

impl GrantType {
    pub const ALL: [GrantType; 3] = [Self::ClientCredentials, Self::Password, Self::RefreshToken];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::Password => "password",
            Self::RefreshToken => "refresh_token",
        }
    }
}

impl FromStr for GrantType {
    type Err = UnsupportedGrantType;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|grant| grant.as_str() == raw).ok_or(UnsupportedGrantType)
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registered client. Its secret is held only as a digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub id: ClientId,
    pub secret_digest: SecretDigest,
    pub tenant: TenantPath,
    pub grants: BTreeSet<GrantType>,
    pub scopes: ScopeSet,
    /// Upper bound, in seconds, on the lifetime of the access tokens this client receives.
    pub max_access_token_lifetime: u64,
    /// Seconds a refresh token stays usable if not used (each rotation starts a new period).
    pub refresh_idle_lifetime: u64,
    /// Seconds from the password login after which the grant ends, however often refreshed.
    pub refresh_absolute_lifetime: u64,
}

/// Upper bound on every lifetime a client may be given (access token, refresh idle, refresh
/// absolute): a year and a day. Batch cutoffs rely on it to know when they may expire.
pub const MAX_LIFETIME: u64 = 366 * 24 * 3600;

/// Refresh lifetimes when a client does not set its own: a week idle, thirty days in all.
pub const DEFAULT_REFRESH_IDLE_LIFETIME: u64 = 7 * 24 * 3600;
pub const DEFAULT_REFRESH_ABSOLUTE_LIFETIME: u64 = 30 * 24 * 3600;

impl Client {
    pub fn may_use(&self, grant: GrantType) -> bool {
        self.grants.contains(&grant)
    }
}
