//! Every store trait on one DynamoDB table, one module per trait with the item codecs of the
//! records it serves. The item layout is documented in docs/table.md; [`table`] holds the
//! definition `template.yaml` must match.

mod clients;
mod grants;
mod issuance;
mod login_attempts;
mod replays;
mod revocations;
pub mod table;
mod tenants;
mod upgrade;
mod users;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client as DynamoClient;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};

pub use self::issuance::IssuanceShards;
pub use self::revocations::cutoff_key;
pub use self::upgrade::UpgradeSummary;

use self::table::{LIST_PK, LIST_SK, LISTED_INDEX, PK, SK, TTL};
use super::{CutoffReadCopies, StoreError};
use crate::domain::{ScopeSet, TenantPath};

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

/// A conditional write's outcome: `true` when it was applied, `false` when its condition failed
/// (a lost race or an absent item: a domain outcome, not an error), a [`StoreError`] otherwise.
fn applied<O, E>(result: Result<O, SdkError<E>>, operation: &str) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e))
            if e.err().code() == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(failure(operation, &e)),
    }
}

fn corrupt(item: &str, field: &str) -> StoreError {
    StoreError(format!("{item} item has a missing or malformed {field}"))
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn b(value: bool) -> AttributeValue {
    AttributeValue::Bool(value)
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The tenant's first segment: the issuance and list indexes partition by it.
fn root_tenant(tenant: &TenantPath) -> &str {
    tenant.lineage().next().unwrap_or(tenant.as_str())
}

/// The list index keys of an item listed in `partition` under `sort`.
fn list_keys(partition: String, sort: String) -> [(String, AttributeValue); 2] {
    [(LIST_PK.to_owned(), s(partition)), (LIST_SK.to_owned(), s(sort))]
}

/// A page of listed items, decoded, with the position of its last item when `more` follow.
fn decoded_page<T, P>(
    items: &[Item],
    more: bool,
    decode: impl Fn(&Item) -> Result<T, StoreError>,
    position: impl Fn(&T) -> P,
) -> Result<crate::store::Page<T, P>, StoreError> {
    let items = items.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    let next = if more { items.last().map(position) } else { None };
    Ok(crate::store::Page { items, next })
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

    fn opt_bool(&self, name: &str) -> Result<Option<bool>, StoreError> {
        match self.item.get(name) {
            None => Ok(None),
            Some(value) => {
                value.as_bool().ok().copied().map(Some).ok_or_else(|| corrupt(self.kind, name))
            }
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

/// Attempts at a transaction that lost a race (`TransactionConflict`, or a tenant changed between
/// the read it was built from and the write) before giving up (503).
const TRANSACT_ATTEMPTS: u32 = 6;

/// How a transaction built by a caller ended.
enum Outcome {
    Done,
    /// The condition on this item failed.
    Failed(usize),
    /// A concurrent transaction touched one of its items: worth building again.
    Conflict,
}

fn outcome(result: Result<(), SdkError<TransactWriteItemsError>>) -> Result<Outcome, StoreError> {
    let Err(e) = result else { return Ok(Outcome::Done) };
    let Some(codes) = cancellation_codes(&e) else {
        return Err(failure("TransactWriteItems", &e));
    };
    if let Some(index) = codes.iter().position(|code| *code == CONDITION_FAILED) {
        return Ok(Outcome::Failed(index));
    }
    if codes.contains(&CONFLICT) {
        return Ok(Outcome::Conflict);
    }
    Err(failure("TransactWriteItems", &e))
}

/// A pause before retrying a transaction that lost a race: random (so that writers which
/// collided do not collide again in step) within a window growing with each attempt.
pub(super) async fn back_off(attempt: u32) {
    let window = 20u64 << attempt.min(6);
    let draw = u64::from(u16::from_le_bytes(crate::domain::random_bytes::<2>()));
    tokio::time::sleep(Duration::from_millis(window / 2 + draw % window)).await;
}

/// An update writing every attribute of an item but its key (so attributes the item leaves
/// out, such as a marker only creation writes, keep their stored values) and removing the
/// optional ones it lacks.
struct Overwrite {
    key: Item,
    expression: String,
    condition: String,
    names: HashMap<String, String>,
    values: Item,
}

impl Overwrite {
    fn new(item: Item, optional: &[&str], condition: &str, values: Item) -> Self {
        let mut names = HashMap::new();
        let mut sets = Vec::new();
        let mut all_values = values;
        let mut key_item = Item::new();
        for (i, (name, value)) in item.into_iter().enumerate() {
            if name == PK || name == SK {
                key_item.insert(name, value);
                continue;
            }
            sets.push(format!("#a{i} = :a{i}"));
            names.insert(format!("#a{i}"), name);
            all_values.insert(format!(":a{i}"), value);
        }
        let mut removes = Vec::new();
        for (i, name) in optional.iter().enumerate() {
            if !names.values().any(|present| present == name) {
                names.insert(format!("#r{i}"), (*name).to_owned());
                removes.push(format!("#r{i}"));
            }
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        Self {
            key: key_item,
            expression,
            condition: condition.to_owned(),
            names,
            values: all_values,
        }
    }

    /// Sends it alone: `false` when its condition failed.
    async fn send(self, store: &DynamoStore, operation: &str) -> Result<bool, StoreError> {
        let result = store
            .client
            .update_item()
            .table_name(&store.table)
            .set_key(Some(self.key))
            .update_expression(self.expression)
            .condition_expression(self.condition)
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values))
            .send()
            .await;
        applied(result, operation)
    }
}

/// Where a list query starts: after the item with this base-table key and list sort key.
struct ListStart {
    key: Item,
    sort: String,
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
    issuance_shards: IssuanceShards,
    cutoff_read_copies: CutoffReadCopies,
}

impl DynamoStore {
    pub fn new(client: DynamoClient, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            page_size: DEFAULT_PAGE_SIZE,
            issuance_shards: IssuanceShards::DEFAULT,
            cutoff_read_copies: CutoffReadCopies::ALL,
        }
    }

    /// Writers spread the issuance indexes over `shards`; counts read at least as many.
    pub fn with_issuance_shards(self, issuance_shards: IssuanceShards) -> Self {
        Self { issuance_shards, ..self }
    }

    /// Verifications and refreshes read cutoffs through one of the first `copies` copies.
    pub fn with_cutoff_read_copies(self, cutoff_read_copies: CutoffReadCopies) -> Self {
        Self { cutoff_read_copies, ..self }
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

impl DynamoStore {
    /// Up to `limit` items of the list index partition `partition` whose sort key starts with
    /// `prefix`, in sort key order, after `after`; and whether more follow. Reads one item past
    /// `limit` to know, so `more` is exact. `filter` (with its names and values) drops items
    /// the query reads: pages go on until `limit` items passed it or the list ends. The index is
    /// eventually consistent, as every global secondary index is.
    async fn list(
        &self,
        partition: String,
        prefix: String,
        after: Option<ListStart>,
        limit: usize,
        filter: Option<(&str, Item, HashMap<String, String>)>,
    ) -> Result<(Vec<Item>, bool), StoreError> {
        if limit == 0 {
            return Ok((Vec::new(), false));
        }
        let mut start = match after {
            // Before the range (a position of an earlier tenant): from its start.
            Some(after) if !after.sort.starts_with(&prefix) && after.sort < prefix => None,
            // Past the range: the position is after every key in it. DynamoDB refuses a start
            // key outside the key condition, and nothing in the range could follow it anyway.
            Some(after) if !after.sort.starts_with(&prefix) => return Ok((Vec::new(), false)),
            Some(ListStart { mut key, sort }) => {
                key.extend(list_keys(partition.clone(), sort));
                Some(key)
            }
            None => None,
        };
        let (filter, mut values, names) = match filter {
            Some((filter, values, names)) => (Some(filter.to_owned()), values, Some(names)),
            None => (None, Item::new(), None),
        };
        values.insert(":list_pk".to_owned(), s(partition));
        // DynamoDB takes no empty string in a key condition: an empty prefix is none.
        let condition = if prefix.is_empty() {
            format!("{LIST_PK} = :list_pk")
        } else {
            values.insert(":prefix".to_owned(), s(prefix));
            format!("{LIST_PK} = :list_pk AND begins_with({LIST_SK}, :prefix)")
        };
        let mut items = Vec::new();
        loop {
            let wanted = i32::try_from(limit.saturating_add(1) - items.len()).unwrap_or(i32::MAX);
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(LISTED_INDEX)
                .key_condition_expression(condition.clone())
                .set_filter_expression(filter.clone())
                .set_expression_attribute_names(names.clone())
                .set_expression_attribute_values(Some(values.clone()))
                .set_exclusive_start_key(start.take())
                .limit(wanted.min(self.page_size.max(1)))
                .send()
                .await
                .map_err(|e| failure("Query list", &e))?;
            items.extend(output.items.unwrap_or_default());
            start = output.last_evaluated_key.filter(|key| !key.is_empty());
            if items.len() > limit || start.is_none() {
                break;
            }
        }
        let more = items.len() > limit;
        items.truncate(limit);
        Ok((items, more))
    }
}

fn pk_of(item: &Item) -> String {
    item.get(PK).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}
