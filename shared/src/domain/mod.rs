//! Validated domain types. Every constructor checks its input, so a value of one of these types
//! is known to be well formed wherever it travels.

mod client;
mod grant;
mod ids;
mod jwks;
mod login;
mod replay;
mod scope;
mod secret;
mod subject;
mod tenant;
mod user;

pub use client::{
    AuthMethod, Client, Credentials, DEFAULT_MAX_ACCESS_TOKEN_LIFETIME,
    DEFAULT_REFRESH_ABSOLUTE_LIFETIME, DEFAULT_REFRESH_IDLE_LIFETIME, GrantType, MAX_LIFETIME,
    MAX_PREVIOUS_SECRET_VALIDITY, MAX_REFRESH_REUSE_INTERVAL, PreviousSecret,
    UnsupportedAuthMethod, UnsupportedGrantType,
};
pub use grant::{
    DeviceId, Grant, InvalidDeviceId, MAX_DEVICE_ID_LEN, MAX_DEVICE_IDS, MAX_REFRESH_TOKEN_LEN,
    RefreshRecord, RefreshToken,
};
pub use ids::{
    ClientId, GrantId, InvalidClientId, MAX_CLIENT_ID_LEN, TokenId, UserId, random_bytes,
};
pub use jwks::{
    CLIENT_ASSERTION_ALGORITHMS, ClientJwks, InvalidJwks, MAX_CLIENT_KEYS, check_public_key,
};
pub use login::{
    FailureCount, LoginAttempts, LoginDefenceSettings, LoginKey, SourceAddress, username_digest,
};
pub use replay::ReplayKey;
pub use scope::{
    ADMIN_SCOPE, ADMINISTRATIVE_SCOPES, BATCH_REVOCATION_SCOPE, InvalidScope, MAX_SCOPE_LEN,
    MAX_SCOPES, Scope, ScopeSet,
};
pub use secret::{ClientSecret, MAX_SECRET_LEN, MIN_SECRET_LEN, Redacted, SecretDigest, redacted};
pub use subject::Subject;
pub use tenant::{InvalidTenantPath, MAX_TENANT_DEPTH, MAX_TENANT_PATH_LEN, TenantPath};
pub use user::{InvalidUsername, MAX_USERNAME_LEN, User, Username};
