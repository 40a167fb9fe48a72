//! The replay store: one item per one-time JWT id (`REPLAY#<kind>#<digest>`), written once by a
//! conditional put and kept by TTL until the JWT could no longer be valid. The condition also
//! admits an item whose TTL has passed, since DynamoDB deletes expired items only eventually.

use async_trait::async_trait;

use super::table::TTL;
use super::{DynamoStore, applied, key, n};
use crate::domain::ReplayKey;
use crate::store::{ReplayStore, StoreError};

/// The partition key prefix of every replay item; the functions that only record replays may
/// write nothing else (`dynamodb:LeadingKeys` in `template.yaml`).
pub const REPLAY_PREFIX: &str = "REPLAY#";

#[async_trait]
impl ReplayStore for DynamoStore {
    async fn first_use(
        &self,
        replay: &ReplayKey,
        expires_at: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut item = key(format!("{REPLAY_PREFIX}{replay}"), "REPLAY");
        item.insert(TTL.to_owned(), n(expires_at));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        applied(result, "recording a one-time JWT id")
    }
}
