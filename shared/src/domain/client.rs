//! Registered clients and the grants they may use.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{ClientId, ClientJwks, ScopeSet, SecretDigest, TenantPath};

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
    pub credentials: Credentials,
    pub tenant: TenantPath,
    pub grants: BTreeSet<GrantType>,
    pub scopes: ScopeSet,
    /// Upper bound, in seconds, on the lifetime of the access tokens this client receives.
    pub max_access_token_lifetime: u64,
    /// Seconds a refresh token stays usable if not used (each rotation starts a new period).
    pub refresh_idle_lifetime: u64,
    /// Seconds from the password login after which the grant ends, however often refreshed.
    pub refresh_absolute_lifetime: u64,
    /// Seconds after a rotation during which the rotated refresh token may be presented again
    /// without being taken for reuse (0 to [`MAX_REFRESH_REUSE_INTERVAL`]).
    pub refresh_reuse_interval: u64,
    /// RFC 9449 §5.2: every token request must carry a DPoP proof.
    pub dpop_bound_access_tokens: bool,
    /// A disabled client obtains no token and authenticates nowhere.
    pub enabled: bool,
    /// The stored record's revision: a change is written only over the revision it was made
    /// from, so concurrent changes (a rotation and an edit) never undo each other.
    pub version: u64,
}

/// Upper bound on every lifetime a client may be given (access token, refresh idle, refresh
/// absolute): a year and a day. Batch cutoffs rely on it to know when they may expire.
pub const MAX_LIFETIME: u64 = 366 * 24 * 3600;

/// Refresh lifetimes when a client does not set its own: a week idle, thirty days in all.
pub const DEFAULT_REFRESH_IDLE_LIFETIME: u64 = 7 * 24 * 3600;
pub const DEFAULT_REFRESH_ABSOLUTE_LIFETIME: u64 = 30 * 24 * 3600;
/// Access token lifetime cap when a registration does not set one: an hour.
pub const DEFAULT_MAX_ACCESS_TOKEN_LIFETIME: u64 = 3600;

impl Client {
    /// A client with the defaults a registration leaves unset.
    pub fn new(id: ClientId, credentials: Credentials, tenant: TenantPath) -> Self {
        Self {
            id,
            credentials,
            tenant,
            grants: BTreeSet::new(),
            scopes: ScopeSet::default(),
            max_access_token_lifetime: DEFAULT_MAX_ACCESS_TOKEN_LIFETIME,
            refresh_idle_lifetime: DEFAULT_REFRESH_IDLE_LIFETIME,
            refresh_absolute_lifetime: DEFAULT_REFRESH_ABSOLUTE_LIFETIME,
            refresh_reuse_interval: 0,
            dpop_bound_access_tokens: false,
            enabled: true,
            version: 0,
        }
    }

    pub fn may_use(&self, grant: GrantType) -> bool {
        self.grants.contains(&grant)
    }
}

/// How a client authenticates at the token, revocation and introspection endpoints (RFC 7591
/// `token_endpoint_auth_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 3] =
        [Self::ClientSecretBasic, Self::ClientSecretPost, Self::PrivateKeyJwt];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn uses_secret(self) -> bool {
        !matches!(self, Self::PrivateKeyJwt)
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "token_endpoint_auth_method must be client_secret_basic, client_secret_post or private_key_jwt"
)]
pub struct UnsupportedAuthMethod;

impl FromStr for AuthMethod {
    type Err = UnsupportedAuthMethod;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|method| method.as_str() == raw).ok_or(UnsupportedAuthMethod)
    }
}

/// A secret that still authenticates after a rotation, until `valid_until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub digest: SecretDigest,
    pub valid_until: u64,
}

/// What a client proves itself with: a secret (held as digests), or the public keys that verify
/// its signed assertions. A client has exactly one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Credentials {
    Secret {
        method: AuthMethod,
        digest: SecretDigest,
        /// The secret a rotation replaced, while its overlap lasts.
        previous: Option<PreviousSecret>,
    },
    PrivateKeyJwt {
        jwks: ClientJwks,
    },
}

impl Credentials {
    pub fn secret(digest: SecretDigest) -> Self {
        Self::Secret { method: AuthMethod::ClientSecretBasic, digest, previous: None }
    }

    pub fn secret_digest(&self) -> Option<&SecretDigest> {
        match self {
            Self::Secret { digest, .. } => Some(digest),
            Self::PrivateKeyJwt { .. } => None,
        }
    }

    pub fn method(&self) -> AuthMethod {
        match self {
            Self::Secret { method, .. } => *method,
            Self::PrivateKeyJwt { .. } => AuthMethod::PrivateKeyJwt,
        }
    }

    /// Whether `presented` is the client's secret, or its previous one still inside the
    /// overlap. Both digests are compared, each in constant time, whichever matches, so the
    /// time taken tells nothing about which one did.
    pub fn secret_matches(&self, presented: &str, now: u64) -> bool {
        let Self::Secret { digest, previous, .. } = self else { return false };
        let current = digest.matches(presented);
        let previous = previous.as_ref().is_some_and(|previous| {
            previous.digest.matches(presented) & (now < previous.valid_until)
        });
        current | previous
    }
}

/// Longest overlap a rotation may give the previous secret: a week.
pub const MAX_PREVIOUS_SECRET_VALIDITY: u64 = 7 * 24 * 3600;
/// Longest `refresh_reuse_interval`, in seconds.
pub const MAX_REFRESH_REUSE_INTERVAL: u64 = 60;
