//! Login-defence counters: one item per username (`LOGIN#<tenant>#<digest>`) and one per
//! username and source (`LOGIN#<tenant>#<digest>#<address>`), each with a TTL.
//!
//! An unlock clears the username's counter and stamps `unlocked_at` on its item; a source
//! counter whose last failure is not later than that stamp counts as cleared. So an unlock is
//! one write however many sources a campaign used, and needs no index to find them.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ConditionCheck, ReturnValue, TransactWriteItem, Update};

use super::table::TTL;
use super::{DynamoStore, Fields, Item, failure, key, n, pk_of};
use crate::domain::{FailureCount, LoginAttempts, LoginKey, TenantPath};
use crate::store::{LoginAttemptStore, StoreError};

fn username_key(tenant: &TenantPath, digest: &str) -> Item {
    key(format!("LOGIN#{tenant}#{digest}"), "LOGIN")
}

fn source_key(key: &LoginKey) -> Item {
    super::key(format!("LOGIN#{}#{}#{}", key.tenant, key.username_digest, key.source), "LOGIN")
}

/// A counter item's count, unless it expired or (`cleared_at`) an unlock came after it.
fn count_of(
    item: Option<&Item>,
    now: u64,
    cleared_at: u64,
) -> Result<Option<FailureCount>, StoreError> {
    let Some(item) = item else { return Ok(None) };
    let f = Fields { kind: "login counter", item };
    if f.expired(now)? {
        return Ok(None);
    }
    let (Some(failures), Some(last_failure_at)) =
        (f.opt_n("failures")?, f.opt_n("last_failure_at")?)
    else {
        return Ok(None);
    };
    let counted_since =
        last_failure_at > cleared_at || f.opt_n("restarted_after")? == Some(cleared_at);
    Ok(counted_since.then_some(FailureCount { failures, last_failure_at }))
}

fn unlocked_at(item: Option<&Item>) -> Result<u64, StoreError> {
    item.map_or(Ok(None), |item| Fields { kind: "login counter", item }.opt_n("unlocked_at"))
        .map(Option::unwrap_or_default)
}

fn revision_of(item: Option<&Item>) -> Result<u64, StoreError> {
    item.map_or(Ok(None), |item| Fields { kind: "login counter", item }.opt_n("revision"))
        .map(Option::unwrap_or_default)
}

/// What a successful login writes of its counters, in the transaction that starts its grant.
/// First, on the source's counter, the condition that no failure from the source was settled
/// since `read`: the count cleared if its revision is still the one read, or a check that there
/// is still none; then the username's count reset, when it had one (its unlock stamp
/// stays, so other sources' counters older than it stay cleared).
pub(super) fn clearing(
    key: &LoginKey,
    read: &LoginAttempts,
    table: &str,
) -> Result<Vec<TransactWriteItem>, StoreError> {
    let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError(format!("building: {e}"));
    let source = if read.source_revision == 0 {
        let check = ConditionCheck::builder()
            .table_name(table)
            .set_key(Some(source_key(key)))
            .condition_expression("attribute_not_exists(revision)")
            .build()
            .map_err(build)?;
        TransactWriteItem::builder().condition_check(check).build()
    } else {
        // The revision stays: only a failure settled meanwhile must undo a success; two right
        // passwords (tabs) never do.
        let clear = Update::builder()
            .table_name(table)
            .set_key(Some(source_key(key)))
            .update_expression("REMOVE failures, last_failure_at")
            .condition_expression("revision = :revision")
            .expression_attribute_values(":revision", n(read.source_revision))
            .build()
            .map_err(build)?;
        TransactWriteItem::builder().update(clear).build()
    };
    let mut items = vec![source];
    if read.by_username.is_some() {
        let reset = Update::builder()
            .table_name(table)
            .set_key(Some(username_key(&key.tenant, &key.username_digest)))
            .update_expression("REMOVE failures, last_failure_at")
            .build()
            .map_err(build)?;
        items.push(TransactWriteItem::builder().update(reset).build());
    }
    Ok(items)
}

impl DynamoStore {
    /// One more failure on a counter item, starting over when it had expired or was cleared
    /// by an unlock at `cleared_at`. The item as it now stands.
    async fn count_failure(
        &self,
        key: Item,
        now: u64,
        expires_at: u64,
        cleared_at: u64,
    ) -> Result<Item, StoreError> {
        let update = async |expression: &str, condition: Option<&str>| {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .update_expression(expression)
                .set_condition_expression(condition.map(str::to_owned))
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":until", n(expires_at))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":cleared", n(cleared_at))
                .return_values(ReturnValue::AllNew)
                .send()
                .await
        };
        let lost_race = |result: &Result<_, SdkError<UpdateItemError>>| {
            matches!(result, Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)))
        };
        for _ in 0..3 {
            // Counting on, from nothing or from a live count: an atomic ADD, so concurrent
            // failures all count.
            let counted = update(
                "SET last_failure_at = :now, #ttl = :until ADD failures :one, revision :one",
                Some(
                    "attribute_not_exists(failures) OR (#ttl > :now AND \
                     (attribute_not_exists(last_failure_at) OR last_failure_at > :cleared \
                      OR restarted_after = :cleared))",
                ),
            )
            .await;
            // An expired or cleared count starts over at one, unless another failure just
            // did that: then count on from its one.
            let result = if lost_race(&counted) {
                // `restarted_after` marks the count as begun after the unlock, so failures in
                // the unlock's own second count on rather than start over each time.
                let restarted = update(
                    "SET last_failure_at = :now, #ttl = :until, failures = :one, \
                     restarted_after = :cleared ADD revision :one",
                    Some(
                        "#ttl <= :now OR (last_failure_at <= :cleared AND \
                         (attribute_not_exists(restarted_after) OR restarted_after <> :cleared))",
                    ),
                )
                .await;
                if lost_race(&restarted) {
                    continue;
                }
                restarted
            } else {
                counted
            };
            return result
                .map_err(|e| failure("UpdateItem login counter", &e))?
                .attributes
                .ok_or_else(|| StoreError("UpdateItem login counter returned nothing".into()));
        }
        Err(StoreError("a login counter kept changing while being counted".into()))
    }
}

#[async_trait]
impl LoginAttemptStore for DynamoStore {
    async fn login_attempts(&self, key: &LoginKey, now: u64) -> Result<LoginAttempts, StoreError> {
        let found = self.batch_get(login_keys(key).into()).await?;
        attempts_from(&found, key, now)
    }

    async fn record_login_failure(
        &self,
        key: &LoginKey,
        read: &LoginAttempts,
        now: u64,
        expires_at: u64,
    ) -> Result<LoginAttempts, StoreError> {
        // The source's count first: its revision rises in the first write, so a right guess
        // racing this one is refused as early as can be.
        let cleared_at = read.unlocked_at;
        let source = self.count_failure(source_key(key), now, expires_at, cleared_at).await?;
        let username = self
            .count_failure(username_key(&key.tenant, &key.username_digest), now, expires_at, 0)
            .await?;
        Ok(LoginAttempts {
            by_source: count_of(Some(&source), now, cleared_at)?,
            by_username: count_of(Some(&username), now, 0)?,
            source_revision: revision_of(Some(&source))?,
            unlocked_at: unlocked_at(Some(&username))?,
        })
    }

    async fn clear_login_failures(&self, key: &LoginKey) -> Result<(), StoreError> {
        let clear = Update::builder()
            .table_name(&self.table)
            .set_key(Some(source_key(key)))
            .update_expression("REMOVE failures, last_failure_at")
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| StoreError(format!("building an update: {e}")))?;
        let reset = Update::builder()
            .table_name(&self.table)
            .set_key(Some(username_key(&key.tenant, &key.username_digest)))
            .update_expression("REMOVE failures, last_failure_at")
            .build()
            .map_err(|e| StoreError(format!("building an update: {e}")))?;
        let items = vec![
            TransactWriteItem::builder().update(clear).build(),
            TransactWriteItem::builder().update(reset).build(),
        ];
        self.transact(items).await.map_err(|e| failure("TransactWriteItems clear login", &e))
    }

    async fn unlock_username(
        &self,
        tenant: &TenantPath,
        username_digest: &str,
        now: u64,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(username_key(tenant, username_digest)))
            .update_expression(
                "SET unlocked_at = :now, #ttl = :until REMOVE failures, last_failure_at",
            )
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":until", n(expires_at))
            .send()
            .await
            .map_err(|e| failure("UpdateItem unlock", &e))?;
        Ok(())
    }
}

/// The keys of both counters of a login: the username's, then the source's.
pub(super) fn login_keys(key: &LoginKey) -> [Item; 2] {
    [username_key(&key.tenant, &key.username_digest), source_key(key)]
}

/// Both counters among batch-read items.
pub(super) fn attempts_from(
    found: &HashMap<String, Item>,
    key: &LoginKey,
    now: u64,
) -> Result<LoginAttempts, StoreError> {
    let [username, source] = login_keys(key).map(|item| pk_of(&item));
    let username = found.get(&username);
    let cleared_at = unlocked_at(username)?;
    Ok(LoginAttempts {
        by_source: count_of(found.get(&source), now, cleared_at)?,
        by_username: count_of(username, now, 0)?,
        source_revision: revision_of(found.get(&source))?,
        unlocked_at: cleared_at,
    })
}
