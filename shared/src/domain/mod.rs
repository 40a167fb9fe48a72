//! Validated domain types. Every constructor checks its input, so a value of one of these types
//! is known to be well formed wherever it travels.

mod client;
mod ids;
mod scope;
mod secret;
mod tenant;

pub use client::{Client, GrantType, UnsupportedGrantType};
pub use ids::{ClientId, GrantId, InvalidClientId, MAX_CLIENT_ID_LEN, TokenId, random_bytes};
pub use scope::{InvalidScope, MAX_SCOPE_LEN, MAX_SCOPES, Scope, ScopeSet};
pub use secret::{ClientSecret, MAX_SECRET_LEN, MIN_SECRET_LEN, SecretDigest};
pub use tenant::{InvalidTenantPath, MAX_TENANT_DEPTH, MAX_TENANT_PATH_LEN, TenantPath};
