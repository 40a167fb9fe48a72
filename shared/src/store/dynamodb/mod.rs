//! Every store trait on one DynamoDB table. The item layout is documented in the README ("The
//! table"); [`table`] holds the definition `template.yaml` must match.

pub mod table;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client as DynamoClient;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, KeysAndAttributes, Put, ReturnValue, TransactWriteItem, Update,
};

use self::table::{ISSUED_INDEX, ISSUED_PK, ISSUED_SK, PK, SK, TTL};
use super::{
    ClientStore, CutoffGuard, GrantRead, GrantRecords, GrantStore, IssuanceFilter, IssuanceLog,
    IssuedToken, RevocationRecord, RevocationState, RevocationStore, Rotation, StoreError,
    TokenKind, TokenRef, UserStore, layer,
};
use crate::domain::{
    Client, ClientId, Grant, GrantId, GrantType, RefreshRecord, ScopeSet, SecretDigest, TenantPath,
    TokenId, User, UserId, Username,
};

type Item = HashMap<String, AttributeValue>;

/// The issuance index spreads each root tenant over this many partitions, so one busy tenant
/// does not make a hot partition; a count queries them all.
const ISSUED_SHARDS: u32 = 8;
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

fn client_key(id: &ClientId) -> Item {
    key(format!("CLIENT#{id}"), "CLIENT")
}

fn user_key(tenant: &TenantPath, username: &Username) -> Item {
    // Tenant paths cannot contain '#', so the username after it is unambiguous.
    key(format!("USER#{tenant}#{username}"), "USER")
}

fn grant_key(id: &GrantId) -> Item {
    key(format!("GRANT#{id}"), "GRANT")
}

fn refresh_key(digest: &SecretDigest) -> Item {
    key(format!("REFRESH#{}", String::from(digest.clone())), "REFRESH")
}

fn issued_key(id: &TokenId) -> Item {
    key(format!("ISSUED#{id}"), "ISSUED")
}

fn revoked_key(id: &TokenId) -> Item {
    key(format!("REVOKED#{id}"), "REVOKED")
}

fn user_id_key(id: &UserId) -> Item {
    key(format!("USERID#{id}"), "USERID")
}

/// `layer` as named by [`layer`]: `TENANT#/a/b`, `CLIENT#id`, `SUBJECT#sub`, ….
fn cutoff_key(layer: &str) -> Item {
    key(format!("CUTOFF#{layer}"), "CUTOFF")
}

fn client_item(client: &Client) -> Item {
    let grants: Vec<&str> = client.grants.iter().map(|grant| grant.as_str()).collect();
    let mut item = client_key(&client.id);
    item.extend([
        ("client_id".to_owned(), s(client.id.as_str())),
        ("secret_sha256".to_owned(), s(client.secret_digest.clone())),
        ("tenant".to_owned(), s(client.tenant.as_str())),
        ("grants".to_owned(), s(grants.join(" "))),
        ("scopes".to_owned(), s(client.scopes.to_string())),
        ("max_access_token_lifetime".to_owned(), n(client.max_access_token_lifetime)),
        ("refresh_idle_lifetime".to_owned(), n(client.refresh_idle_lifetime)),
        ("refresh_absolute_lifetime".to_owned(), n(client.refresh_absolute_lifetime)),
    ]);
    item
}

fn parse_scopes(raw: &str) -> Result<ScopeSet, crate::domain::InvalidScope> {
    if raw.is_empty() { Ok(ScopeSet::default()) } else { ScopeSet::parse(raw) }
}

fn client_from(item: &Item) -> Result<Client, StoreError> {
    let f = Fields { kind: "client", item };
    let grants = f
        .s("grants")?
        .split(' ')
        .filter(|g| !g.is_empty())
        .map(|g| g.parse::<GrantType>().map_err(|_| corrupt("client", "grants")))
        .collect::<Result<_, _>>()?;
    Ok(Client {
        id: f.parse("client_id", ClientId::parse)?,
        secret_digest: f.parse("secret_sha256", |raw| SecretDigest::try_from(raw.to_owned()))?,
        tenant: f.parse("tenant", TenantPath::parse)?,
        grants,
        scopes: f.parse("scopes", parse_scopes)?,
        max_access_token_lifetime: f.n("max_access_token_lifetime")?,
        refresh_idle_lifetime: f.n("refresh_idle_lifetime")?,
        refresh_absolute_lifetime: f.n("refresh_absolute_lifetime")?,
    })
}

fn user_item(user: &User) -> Item {
    let mut item = user_key(&user.tenant, &user.username);
    item.extend([
        ("user_id".to_owned(), s(user.id.as_str())),
        ("tenant".to_owned(), s(user.tenant.as_str())),
        ("username".to_owned(), s(user.username.as_str())),
        ("password_hash".to_owned(), s(user.password_hash.clone())),
    ]);
    item
}

fn user_from(item: &Item) -> Result<User, StoreError> {
    let f = Fields { kind: "user", item };
    Ok(User {
        id: f.parse("user_id", UserId::parse)?,
        tenant: f.parse("tenant", TenantPath::parse)?,
        username: f.parse("username", Username::parse)?,
        password_hash: f.s("password_hash")?.to_owned(),
    })
}

fn grant_item(grant: &Grant) -> Item {
    let mut item = grant_key(&grant.id);
    item.extend([
        ("grant_id".to_owned(), s(grant.id.as_str())),
        ("client_id".to_owned(), s(grant.client_id.as_str())),
        ("tenant".to_owned(), s(grant.tenant.as_str())),
        ("subject".to_owned(), s(grant.subject.clone())),
        ("scope".to_owned(), s(grant.scope.to_string())),
        ("created_at".to_owned(), n(grant.created_at)),
        (TTL.to_owned(), n(grant.expires_at)),
    ]);
    if let Some(username) = &grant.username {
        item.insert("username".to_owned(), s(username.as_str()));
    }
    if let Some(revoked_at) = grant.revoked_at {
        item.insert("revoked_at".to_owned(), n(revoked_at));
    }
    item
}

fn grant_from(item: &Item) -> Result<Grant, StoreError> {
    let f = Fields { kind: "grant", item };
    Ok(Grant {
        id: f.parse("grant_id", GrantId::parse)?,
        client_id: f.parse("client_id", ClientId::parse)?,
        tenant: f.parse("tenant", TenantPath::parse)?,
        subject: f.s("subject")?.to_owned(),
        username: f
            .opt_s("username")
            .map(Username::parse)
            .transpose()
            .map_err(|_| corrupt("grant", "username"))?,
        scope: f.parse("scope", parse_scopes)?,
        created_at: f.n("created_at")?,
        expires_at: f.n(TTL)?,
        revoked_at: f.opt_n("revoked_at")?,
    })
}

fn refresh_item(record: &RefreshRecord) -> Item {
    let mut item = refresh_key(&record.digest);
    item.extend([
        ("digest".to_owned(), s(record.digest.clone())),
        ("grant_id".to_owned(), s(record.grant_id.as_str())),
        ("client_id".to_owned(), s(record.client_id.as_str())),
        ("issued_at".to_owned(), n(record.issued_at)),
        (TTL.to_owned(), n(record.expires_at)),
    ]);
    if let Some(used_at) = record.used_at {
        item.insert("used_at".to_owned(), n(used_at));
    }
    item
}

fn refresh_from(item: &Item) -> Result<RefreshRecord, StoreError> {
    let f = Fields { kind: "refresh token", item };
    Ok(RefreshRecord {
        digest: f.parse("digest", |raw| SecretDigest::try_from(raw.to_owned()))?,
        grant_id: f.parse("grant_id", GrantId::parse)?,
        client_id: f.parse("client_id", ClientId::parse)?,
        issued_at: f.n("issued_at")?,
        expires_at: f.n(TTL)?,
        used_at: f.opt_n("used_at")?,
    })
}

/// The tenant's first segment: the issuance index partitions by it.
fn root_tenant(tenant: &TenantPath) -> &str {
    tenant.lineage().next().unwrap_or(tenant.as_str())
}

fn shard_of(id: &TokenId) -> u32 {
    id.as_str().bytes().map(u32::from).sum::<u32>() % ISSUED_SHARDS
}

fn issued_item(token: &IssuedToken) -> Item {
    let mut item = issued_key(&token.id);
    let kind = match token.kind {
        TokenKind::Access => "access",
        TokenKind::Refresh => "refresh",
    };
    item.extend([
        ("token_id".to_owned(), s(token.id.as_str())),
        ("kind".to_owned(), s(kind)),
        ("tenant".to_owned(), s(token.tenant.as_str())),
        ("client_id".to_owned(), s(token.client_id.as_str())),
        ("subject".to_owned(), s(token.subject.clone())),
        ("issued_at".to_owned(), n(token.issued_at)),
        (TTL.to_owned(), n(token.expires_at)),
        (
            ISSUED_PK.to_owned(),
            s(format!("{}#{}", root_tenant(&token.tenant), shard_of(&token.id))),
        ),
        // The '/' after the path makes a subtree a prefix: "/a/b/" covers "/a/b/c/" but not "/a/bc/".
        (
            ISSUED_SK.to_owned(),
            s(format!("{}/#{:010}#{}", token.tenant, token.issued_at, token.id)),
        ),
    ]);
    if let Some(grant) = &token.grant {
        item.insert("grant_id".to_owned(), s(grant.as_str()));
    }
    item
}

fn issued_from(item: &Item) -> Result<IssuedToken, StoreError> {
    let f = Fields { kind: "issued token", item };
    let kind = match f.s("kind")? {
        "access" => TokenKind::Access,
        "refresh" => TokenKind::Refresh,
        _ => return Err(corrupt("issued token", "kind")),
    };
    Ok(IssuedToken {
        id: f.parse("token_id", TokenId::parse)?,
        kind,
        tenant: f.parse("tenant", TenantPath::parse)?,
        client_id: f.parse("client_id", ClientId::parse)?,
        subject: f.s("subject")?.to_owned(),
        grant: f
            .opt_s("grant_id")
            .map(GrantId::parse)
            .transpose()
            .map_err(|_| corrupt("issued token", "grant_id"))?,
        issued_at: f.n("issued_at")?,
        expires_at: f.n(TTL)?,
    })
}

/// Flags a log entry as spent (revoked on its own, or a used refresh token) so counts skip it.
/// Sets a TTL too, in case the entry is gone and this update creates a stub.
fn mark_spent(id: &TokenId, expires_at: u64, table: &str) -> Result<TransactWriteItem, StoreError> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(issued_key(id)))
        .update_expression("SET spent = :yes, #ttl = if_not_exists(#ttl, :ttl)")
        .expression_attribute_names("#ttl", TTL)
        .expression_attribute_values(":yes", n(1))
        .expression_attribute_values(":ttl", n(expires_at))
        .build()
        .map_err(|e| StoreError(format!("building an update: {e}")))?;
    Ok(TransactWriteItem::builder().update(update).build())
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
/// How often a revocation is written before a conflicting transaction makes it a 503.
const REVOKE_ATTEMPTS: u32 = 3;

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

/// The refresh token with `digest` and its grant `grant` among batch-read items: absent when
/// either is missing or expired, or the token belongs to another grant.
fn refresh_and_grant(
    found: &mut HashMap<String, Item>,
    grant: &GrantId,
    digest: &SecretDigest,
    now: u64,
) -> Result<Option<(RefreshRecord, Grant)>, StoreError> {
    let (refresh_pk, grant_pk) = (pk_of(&refresh_key(digest)), pk_of(&grant_key(grant)));
    let (Some(record), Some(grant_item)) = (found.remove(&refresh_pk), found.remove(&grant_pk))
    else {
        return Ok(None);
    };
    let record_fields = Fields { kind: "refresh token", item: &record };
    let grant_fields = Fields { kind: "grant", item: &grant_item };
    if record_fields.expired(now)? || grant_fields.expired(now)? {
        return Ok(None);
    }
    let record = refresh_from(&record)?;
    if record.grant_id != *grant {
        return Ok(None);
    }
    Ok(Some((record, grant_from(&grant_item)?)))
}

fn pk_of(item: &Item) -> String {
    item.get(PK).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

#[async_trait]
impl ClientStore for DynamoStore {
    async fn client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        self.get(client_key(id), "GetItem client").await?.as_ref().map(client_from).transpose()
    }

    /// One strongly consistent BatchGetItem for the client and the grant's records.
    async fn client_with(
        &self,
        id: &ClientId,
        next: GrantRead<'_>,
        now: u64,
    ) -> Result<(Option<Client>, Option<GrantRecords>), StoreError> {
        let client_key = client_key(id);
        let client_pk = pk_of(&client_key);
        let mut keys = vec![client_key];
        match next {
            GrantRead::User { tenant, username } => keys.push(user_key(tenant, username)),
            GrantRead::RefreshToken { grant, digest } => {
                keys.extend([refresh_key(digest), grant_key(grant)]);
            }
        }
        let mut found = self.batch_get(keys).await?;
        let client = found.remove(&client_pk).as_ref().map(client_from).transpose()?;
        let records = match next {
            GrantRead::User { tenant, username } => GrantRecords::User(
                found
                    .remove(&pk_of(&user_key(tenant, username)))
                    .as_ref()
                    .map(user_from)
                    .transpose()?,
            ),
            GrantRead::RefreshToken { grant, digest } => {
                GrantRecords::RefreshToken(refresh_and_grant(&mut found, grant, digest, now)?)
            }
        };
        Ok((client, Some(records)))
    }

    async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(client_item(client)))
            .send()
            .await
            .map_err(|e| failure("PutItem client", &e))?;
        Ok(())
    }

    async fn create_client(&self, client: &Client) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(client_item(client)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(failure("PutItem new client", &e)),
        }
    }
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn user(
        &self,
        tenant: &TenantPath,
        username: &Username,
    ) -> Result<Option<User>, StoreError> {
        self.get(user_key(tenant, username), "GetItem user")
            .await?
            .as_ref()
            .map(user_from)
            .transpose()
    }

    async fn create_user(&self, user: &User) -> Result<bool, StoreError> {
        let fresh = Some("attribute_not_exists(pk)");
        let mut by_id = user_id_key(&user.id);
        by_id.insert("tenant".to_owned(), s(user.tenant.as_str()));
        let items =
            vec![put(user_item(user), fresh, &self.table)?, put(by_id, fresh, &self.table)?];
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(e) if failed_condition(&e).is_some() => Ok(false),
            Err(e) => Err(failure("TransactWriteItems user", &e)),
        }
    }

    /// The user and its id entry in one transaction, which also drops the entry of the id it
    /// replaces. A replacement racing this one could leave that other id's entry behind; only
    /// `tokenctl` replaces users.
    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        let replaced = self.user(&user.tenant, &user.username).await?;
        let mut by_id = user_id_key(&user.id);
        by_id.insert("tenant".to_owned(), s(user.tenant.as_str()));
        let mut items =
            vec![put(user_item(user), None, &self.table)?, put(by_id, None, &self.table)?];
        if let Some(old) = replaced.filter(|old| old.id != user.id) {
            let delete = aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&self.table)
                .set_key(Some(user_id_key(&old.id)))
                .build()
                .map_err(|e| StoreError(format!("building a delete: {e}")))?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        self.transact(items).await.map_err(|e| failure("TransactWriteItems replace user", &e))
    }

    async fn tenant_of_user(&self, id: &UserId) -> Result<Option<TenantPath>, StoreError> {
        let Some(item) = self.get(user_id_key(id), "GetItem user id").await? else {
            return Ok(None);
        };
        Fields { kind: "user id", item: &item }.parse("tenant", TenantPath::parse).map(Some)
    }

    async fn replace_password_hash(&self, user: &User, new_hash: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(user_key(&user.tenant, &user.username)))
            .update_expression("SET password_hash = :new")
            .condition_expression("password_hash = :old")
            .expression_attribute_values(":new", s(new_hash))
            .expression_attribute_values(":old", s(user.password_hash.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(failure("UpdateItem password hash", &e)),
        }
    }
}

#[async_trait]
impl GrantStore for DynamoStore {
    async fn start_grant(
        &self,
        grant: &Grant,
        refresh: &RefreshRecord,
        issued: &[IssuedToken],
    ) -> Result<(), StoreError> {
        let fresh = Some("attribute_not_exists(pk)");
        let mut items = vec![
            put(grant_item(grant), fresh, &self.table)?,
            put(refresh_item(refresh), fresh, &self.table)?,
        ];
        for token in issued {
            items.push(put(issued_item(token), None, &self.table)?);
        }
        self.transact(items).await.map_err(|e| failure("TransactWriteItems start grant", &e))
    }

    async fn refresh_token(
        &self,
        grant: &GrantId,
        digest: &SecretDigest,
        now: u64,
    ) -> Result<Option<(RefreshRecord, Grant)>, StoreError> {
        let mut found = self.batch_get(vec![refresh_key(digest), grant_key(grant)]).await?;
        refresh_and_grant(&mut found, grant, digest, now)
    }

    async fn rotate_refresh_token(
        &self,
        used: &RefreshRecord,
        next: &RefreshRecord,
        issued: &[IssuedToken],
        guard: &CutoffGuard,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        let mark_used = Update::builder()
            .table_name(&self.table)
            .set_key(Some(refresh_key(&used.digest)))
            .update_expression("SET used_at = :now")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(used_at) AND #ttl > :now",
            )
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(now))
            .build()
            .map_err(|e| StoreError(format!("building an update: {e}")))?;
        let mut items = vec![
            TransactWriteItem::builder().update(mark_used).build(),
            put(refresh_item(next), Some("attribute_not_exists(pk)"), &self.table)?,
            mark_spent(&used.digest.token_id(), used.expires_at, &self.table)?,
        ];
        let checks = items.len()..items.len() + guard.layers.len();
        for layer in &guard.layers {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(cutoff_key(layer)))
                .condition_expression(
                    "attribute_not_exists(pk) OR not_before <= :created OR #ttl <= :now",
                )
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":created", n(guard.grant_created_at))
                .expression_attribute_values(":now", n(now))
                .build()
                .map_err(|e| StoreError(format!("building a condition check: {e}")))?;
            items.push(TransactWriteItem::builder().condition_check(check).build());
        }
        for token in issued {
            items.push(put(issued_item(token), None, &self.table)?);
        }
        let Err(e) = self.transact(items).await else {
            return Ok(Rotation::Rotated);
        };
        let codes = cancellation_codes(&e).unwrap_or_default();
        if codes.first() == Some(&CONDITION_FAILED) {
            // The mark-as-used condition: the token was used already.
            Ok(Rotation::AlreadyUsed)
        } else if codes
            .iter()
            .enumerate()
            .any(|(i, code)| checks.contains(&i) && *code == CONDITION_FAILED)
        {
            Ok(Rotation::CutOff)
        } else if codes.iter().take(checks.start).any(|code| *code == CONFLICT) {
            // Another transaction is writing this token's items right now: a concurrent use of
            // the same refresh token (rotations of different tokens share no written item). A
            // conflict only on a cutoff check (a batch revocation writing that record) is not a
            // use: it falls through to a storage error, and the unchanged token can be retried.
            Ok(Rotation::AlreadyUsed)
        } else {
            Err(failure("TransactWriteItems rotate", &e))
        }
    }

    async fn grant(&self, id: &GrantId, now: u64) -> Result<Option<Grant>, StoreError> {
        let Some(item) = self.get(grant_key(id), "GetItem grant").await? else {
            return Ok(None);
        };
        if (Fields { kind: "grant", item: &item }).expired(now)? {
            return Ok(None);
        }
        grant_from(&item).map(Some)
    }

    async fn grants(
        &self,
        ids: &[GrantId],
        now: u64,
    ) -> Result<HashMap<GrantId, Grant>, StoreError> {
        let found = self.batch_get_all(ids.iter().map(grant_key).collect()).await?;
        let mut grants = HashMap::new();
        for item in found.values() {
            if !(Fields { kind: "grant", item }).expired(now)? {
                let grant = grant_from(item)?;
                grants.insert(grant.id.clone(), grant);
            }
        }
        Ok(grants)
    }

    async fn revoke_grant(&self, id: &GrantId, now: u64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(grant_key(id)))
            .update_expression("SET revoked_at = if_not_exists(revoked_at, :now)")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Unknown (or already deleted) grant: nothing left to revoke.
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(())
            }
            Err(e) => Err(failure("UpdateItem revoke grant", &e)),
        }
    }
}

#[async_trait]
impl IssuanceLog for DynamoStore {
    async fn record_issued(&self, token: &IssuedToken) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(issued_item(token)))
            .send()
            .await
            .map_err(|e| failure("PutItem issued", &e))?;
        Ok(())
    }

    async fn live_issued(
        &self,
        filter: &IssuanceFilter,
        now: u64,
    ) -> Result<Vec<IssuedToken>, StoreError> {
        let mut conditions = vec!["#ttl > :now", "attribute_not_exists(spent)"];
        if filter.client_id.is_some() {
            conditions.push("client_id = :client");
        }
        if filter.subject.is_some() {
            conditions.push("subject = :subject");
        }
        let filter_expression = conditions.join(" AND ");
        let prefix = format!("{}/", filter.tenant);
        let mut live = Vec::new();
        for shard in 0..ISSUED_SHARDS {
            let partition = format!("{}#{shard}", root_tenant(&filter.tenant));
            let mut start_key = None;
            loop {
                let mut query = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(ISSUED_INDEX)
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .filter_expression(&filter_expression)
                    .expression_attribute_names("#pk", ISSUED_PK)
                    .expression_attribute_names("#sk", ISSUED_SK)
                    .expression_attribute_names("#ttl", TTL)
                    .expression_attribute_values(":pk", s(partition.clone()))
                    .expression_attribute_values(":prefix", s(prefix.clone()))
                    .expression_attribute_values(":now", n(now))
                    .limit(self.page_size)
                    .set_exclusive_start_key(start_key);
                if let Some(client_id) = &filter.client_id {
                    query = query.expression_attribute_values(":client", s(client_id.as_str()));
                }
                if let Some(subject) = &filter.subject {
                    query = query.expression_attribute_values(":subject", s(subject.clone()));
                }
                let output = query.send().await.map_err(|e| failure("Query issued", &e))?;
                for item in output.items() {
                    live.push(issued_from(item)?);
                }
                start_key = output.last_evaluated_key.filter(|key| !key.is_empty());
                if start_key.is_none() {
                    break;
                }
            }
        }
        Ok(live)
    }
}

#[async_trait]
impl RevocationStore for DynamoStore {
    async fn revocation_state(
        &self,
        token: &TokenRef<'_>,
        now: u64,
    ) -> Result<RevocationState, StoreError> {
        let revoked_pk = pk_of(&revoked_key(token.id));
        let mut keys = vec![revoked_key(token.id)];
        keys.extend(token.grant.map(grant_key));
        keys.extend(
            layer::applying_to(token.tenant, token.client_id, token.subject)
                .iter()
                .map(|l| cutoff_key(l)),
        );
        let found = self.batch_get(keys).await?;
        let live =
            |item: &&Item| !matches!((Fields { kind: "record", item }).expired(now), Ok(true));

        let token_revoked = found.get(&revoked_pk).filter(live).is_some();
        let grant = match token.grant {
            Some(id) => {
                found.get(&pk_of(&grant_key(id))).filter(live).map(grant_from).transpose()?
            }
            None => None,
        };
        let mut not_before = None;
        for (pk, item) in &found {
            if pk.starts_with("CUTOFF#") && live(&item) {
                let cutoff = Fields { kind: "cutoff", item }.n("not_before")?;
                not_before = not_before.max(Some(cutoff));
            }
        }
        Ok(RevocationState { token_revoked, grant, not_before })
    }

    async fn revoke_token(
        &self,
        token: &TokenId,
        expires_at: u64,
        device_id: Option<&str>,
        now: u64,
    ) -> Result<(), StoreError> {
        let mut item = revoked_key(token);
        item.extend([
            ("token_id".to_owned(), s(token.as_str())),
            ("revoked_at".to_owned(), n(now)),
            (TTL.to_owned(), n(expires_at)),
        ]);
        if let Some(device_id) = device_id {
            item.insert("device_id".to_owned(), s(device_id));
        }
        let items = vec![
            put(item, Some("attribute_not_exists(pk)"), &self.table)?,
            mark_spent(token, expires_at, &self.table)?,
        ];
        let mut attempt = 1;
        loop {
            let error = match self.transact(items.clone()).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            let codes = cancellation_codes(&error).unwrap_or_default();
            if codes.first() == Some(&CONDITION_FAILED) {
                // Already revoked: the first record (and its time) stands.
                return Ok(());
            }
            // A transaction touching the same records (a concurrent revocation of this token)
            // cancelled ours, so nothing was written: try again, and never report a revocation
            // that no stored record backs.
            if attempt < REVOKE_ATTEMPTS && codes.contains(&CONFLICT) {
                attempt += 1;
                continue;
            }
            return Err(failure("TransactWriteItems revoke", &error));
        }
    }

    async fn revocation_record(
        &self,
        token: &TokenId,
        now: u64,
    ) -> Result<Option<RevocationRecord>, StoreError> {
        let Some(item) = self.get(revoked_key(token), "GetItem revocation").await? else {
            return Ok(None);
        };
        let fields = Fields { kind: "revocation", item: &item };
        if fields.expired(now)? {
            return Ok(None);
        }
        Ok(Some(RevocationRecord {
            expires_at: fields.n(TTL)?,
            device_id: fields.opt_s("device_id").map(str::to_owned),
        }))
    }

    async fn raise_cutoff(
        &self,
        layer: &str,
        not_before: u64,
        expires_at: u64,
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(cutoff_key(layer)))
            .update_expression("SET not_before = :nb, #ttl = :ttl")
            .condition_expression("attribute_not_exists(pk) OR not_before < :nb OR #ttl <= :now")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":nb", n(not_before))
            .expression_attribute_values(":ttl", n(expires_at))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                let old = output.attributes.unwrap_or_default();
                let fields = Fields { kind: "cutoff", item: &old };
                if old.is_empty() || fields.expired(now)? {
                    return Ok(None);
                }
                fields.opt_n("not_before")
            }
            // A later cutoff stands; report it.
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(self.cutoffs(&[layer.to_owned()], now).await?.remove(layer))
            }
            Err(e) => Err(failure("UpdateItem cutoff", &e)),
        }
    }

    async fn cutoffs(
        &self,
        layers: &[String],
        now: u64,
    ) -> Result<HashMap<String, u64>, StoreError> {
        let found = self.batch_get_all(layers.iter().map(|l| cutoff_key(l)).collect()).await?;
        let mut cutoffs = HashMap::new();
        for (pk, item) in &found {
            let fields = Fields { kind: "cutoff", item };
            if let Some(layer) = pk.strip_prefix("CUTOFF#")
                && !fields.expired(now)?
            {
                cutoffs.insert(layer.to_owned(), fields.n("not_before")?);
            }
        }
        Ok(cutoffs)
    }
}
