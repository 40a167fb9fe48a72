//! Validated domain types. Every constructor checks its input, so a value of one of these types
//! is known to be well formed wherever it travels.

mod client;
mod grant;
mod ids;
mod scope;
mod secret;
mod subject;
mod tenant;
mod user;

pub use client::{
    Client, DEFAULT_REFRESH_ABSOLUTE_LIFETIME, DEFAULT_REFRESH_IDLE_LIFETIME, GrantType,
    MAX_LIFETIME, UnsupportedGrantType,
};
pub use grant::{Grant, MAX_REFRESH_TOKEN_LEN, RefreshRecord, RefreshToken};
pub use ids::{
    ClientId, GrantId, InvalidClientId, MAX_CLIENT_ID_LEN, TokenId, UserId, random_bytes,
};
pub use scope::{
    ADMIN_SCOPE, ADMINISTRATIVE_SCOPES, BATCH_REVOCATION_SCOPE, InvalidScope, MAX_SCOPE_LEN,
    MAX_SCOPES, Scope, ScopeSet,
};
pub use secret::{ClientSecret, MAX_SECRET_LEN, MIN_SECRET_LEN, Redacted, SecretDigest, redacted};
pub use subject::Subject;
pub use tenant::{InvalidTenantPath, MAX_TENANT_DEPTH, MAX_TENANT_PATH_LEN, TenantPath};
pub use user::{InvalidUsername, MAX_USERNAME_LEN, User, Username};
