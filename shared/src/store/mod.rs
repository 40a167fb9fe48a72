//! Storage, as one trait per concern so that each Lambda function's IAM policy can mirror the
//! traits it uses. Implementations: [`memory::MemoryStore`] here, DynamoDB in its own module.
//!
//! Rules every implementation keeps:
//! - a read that decides validity takes `now` and treats an expired record as absent, because
//!   DynamoDB's TTL deletes only eventually;
//! - a write that can race is conditional, and losing the race is a return value, not an error;
//! - [`StoreError`] means "unknown outcome": callers answer 503 and never report success.

pub mod memory;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{Client, ClientId, GrantId, TenantPath, TokenId};
pub use crate::error::StoreError;

/// Client records: read on every token request.
#[async_trait]
pub trait ClientStore: Send + Sync {
    async fn client(&self, id: &ClientId) -> Result<Option<Client>, StoreError>;
    /// Creates or replaces a client (admin path only).
    async fn put_client(&self, client: &Client) -> Result<(), StoreError>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Access,
    Refresh,
}

/// What the issuance log keeps of each token: enough to count the live tokens a batch
/// revocation covers, never the token itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    pub id: TokenId,
    pub kind: TokenKind,
    pub tenant: TenantPath,
    pub client_id: ClientId,
    pub subject: String,
    pub grant: Option<GrantId>,
    pub issued_at: u64,
    /// Also when the record may be deleted (the TTL).
    pub expires_at: u64,
}

/// Which issued tokens a count covers: a tenant subtree, optionally narrowed.
#[derive(Clone, Debug)]
pub struct IssuanceFilter {
    pub tenant: TenantPath,
    pub client_id: Option<ClientId>,
    pub subject: Option<String>,
}

impl IssuanceFilter {
    pub fn covers(&self, token: &IssuedToken) -> bool {
        token.tenant.is_within(&self.tenant)
            && self
                .client_id
                .as_ref()
                .is_none_or(|id| *id == token.client_id)
            && self
                .subject
                .as_ref()
                .is_none_or(|sub| *sub == token.subject)
    }
}

/// The issuance log. A token is handed out only after its record is written.
#[async_trait]
pub trait IssuanceLog: Send + Sync {
    async fn record_issued(&self, token: &IssuedToken) -> Result<(), StoreError>;
    /// Counts unexpired tokens covered by `filter` and issued before `issued_before`.
    async fn count_issued(
        &self,
        filter: &IssuanceFilter,
        issued_before: u64,
        now: u64,
    ) -> Result<u64, StoreError>;
}
