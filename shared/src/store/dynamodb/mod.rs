//! Every store trait on one DynamoDB table, one module per trait with the item codecs of the
//! records it serves. The item layout is documented in the README ("The table"); [`table`] holds
//! the definition `template.yaml` must match.

mod clients;
mod grants;
mod issuance;
mod revocations;
pub mod table;
mod users;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client as DynamoClient;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};

use self::table::{PK, SK, TTL};
use super::StoreError;
use crate::domain::ScopeSet;

type Item = HashMap<String, AttributeValue>;

/// Items one page of an index query returns at most; each page is one round trip.
const DEFAULT_PAGE_SIZE: i32 = 1_000;
/// Keys one BatchGetItem may carry.
const BATCH_GET_LIMIT: usize = 100;
/// Attempts at the unprocessed remainder of a BatchGetItem before giving up (503).
const BATCH_GET_ATTEMPTS: u32 = 5;

pub(super) fn describe<E: std::error::Error + 'static>(error: &E) -> String {
    DisplayErrorContext(error).to_string()
}

fn failure<E: std::error::Error + 'static>(operation: &str, error: &E) -> StoreError {
    StoreError(format!("{operation}: {}", describe(error)))
}

fn corrupt(item: &str, field: &str) -> StoreError {
    StoreError(format!("{item} item has a missing or malformed {field}"))
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// Typed reads of one item's attributes, naming the item in errors.
struct Fields<'a> {
    kind: &'static str,
    item: &'a Item,
}

impl<'a> Fields<'a> {
    fn opt_s(&self, name: &str) -> Option<&'a str> {
        self.item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
    }

    fn s(&self, name: &str) -> Result<&'a str, StoreError> {
        self.opt_s(name).ok_or_else(|| corrupt(self.kind, name))
    }

    fn opt_n(&self, name: &str) -> Result<Option<u64>, StoreError> {
        match self.item.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_n()
                .ok()
                .and_then(|raw| raw.parse().ok())
                .map(Some)
                .ok_or_else(|| corrupt(self.kind, name)),
        }
    }

    fn n(&self, name: &str) -> Result<u64, StoreError> {
        self.opt_n(name)?.ok_or_else(|| corrupt(self.kind, name))
    }

    fn parse<T, E>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, StoreError> {
        parse(self.s(name)?).map_err(|_| corrupt(self.kind, name))
    }

    /// True when the item's TTL has passed: DynamoDB may not have deleted it yet.
    fn expired(&self, now: u64) -> Result<bool, StoreError> {
        Ok(self.opt_n(TTL)?.is_some_and(|ttl| ttl <= now))
    }
}

fn parse_scopes(raw: &str) -> Result<ScopeSet, crate::domain::InvalidScope> {
    if raw.is_empty() { Ok(ScopeSet::default()) } else { ScopeSet::parse(raw) }
}

/// The cancellation reason codes of a cancelled transaction, one per item.
fn cancellation_codes(error: &SdkError<TransactWriteItemsError>) -> Option<Vec<&str>> {
    let SdkError::ServiceError(e) = error else { return None };
    let TransactWriteItemsError::TransactionCanceledException(cancelled) = e.err() else {
        return None;
    };
    Some(
        cancelled
            .cancellation_reasons()
            .iter()
            .map(|reason| reason.code().unwrap_or("None"))
            .collect(),
    )
}

const CONDITION_FAILED: &str = "ConditionalCheckFailed";
const CONFLICT: &str = "TransactionConflict";

/// The index of the first item a cancelled transaction failed on, if it failed on a condition
/// (or on a concurrent transaction touching the same item).
fn failed_condition(error: &SdkError<TransactWriteItemsError>) -> Option<usize> {
    cancellation_codes(error)?
        .iter()
        .position(|code| *code == CONDITION_FAILED || *code == CONFLICT)
}

fn put(item: Item, condition: Option<&str>, table: &str) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_owned))
        .build()
        .map_err(|e| StoreError(format!("building a put: {e}")))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// The DynamoDB store. Built once per process from an SDK client; making it sends nothing.
#[derive(Clone)]
pub struct DynamoStore {
    client: DynamoClient,
    table: String,
    page_size: i32,
}

impl DynamoStore {
    pub fn new(client: DynamoClient, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), page_size: DEFAULT_PAGE_SIZE }
    }

    /// Smaller pages make tests page through the log with few entries.
    pub fn with_page_size(self, page_size: i32) -> Self {
        Self { page_size, ..self }
    }

    pub fn sdk_client(&self) -> &DynamoClient {
        &self.client
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    async fn get(&self, key: Item, operation: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure(operation, &e))?;
        Ok(output.item)
    }

    /// Strongly consistent reads of any number of items, 100 keys a round trip. Items come back
    /// keyed by partition key.
    async fn batch_get_all(&self, keys: Vec<Item>) -> Result<HashMap<String, Item>, StoreError> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(BATCH_GET_LIMIT) {
            found.extend(self.batch_get(chunk.to_vec()).await?);
        }
        Ok(found)
    }

    /// Strongly consistent reads of up to 100 items in one round trip (more only if DynamoDB
    /// returns some keys unprocessed). Items come back keyed by partition key.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<HashMap<String, Item>, StoreError> {
        let mut found = HashMap::new();
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError(format!("building a batch get: {e}")))?,
        );
        for attempt in 0..BATCH_GET_ATTEMPTS {
            let Some(request) = pending.take() else { break };
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
            }
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| failure("BatchGetItem", &e))?;
            for item in output.responses.unwrap_or_default().remove(&self.table).unwrap_or_default()
            {
                if let Some(pk) = item.get(PK).and_then(|v| v.as_s().ok()) {
                    found.insert(pk.clone(), item);
                }
            }
            pending = output
                .unprocessed_keys
                .and_then(|mut unprocessed| unprocessed.remove(&self.table))
                .filter(|remaining| !remaining.keys.is_empty());
        }
        match pending {
            None => Ok(found),
            Some(_) => Err(StoreError("BatchGetItem left keys unprocessed after retries".into())),
        }
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), SdkError<TransactWriteItemsError>> {
        self.client.transact_write_items().set_transact_items(Some(items)).send().await.map(|_| ())
    }
}

fn pk_of(item: &Item) -> String {
    item.get(PK).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}
