//! The issuance log, and the indexes that count it: by tenant, by client, by user.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use futures_util::{StreamExt, TryStreamExt, stream};

use super::table::{
    ISSUED_BY_CLIENT, ISSUED_BY_SUBJECT, ISSUED_CLIENT_PK, ISSUED_INDEX, ISSUED_PK, ISSUED_SK,
    ISSUED_SUBJECT_PK, TTL,
};
use super::{DynamoStore, Fields, Item, corrupt, failure, key, n, root_tenant, s};
use crate::domain::{ClientId, GrantId, Subject, TenantPath, TokenId};
use crate::store::{IssuanceFilter, IssuanceLog, IssuedToken, StoreError, SubjectId, TokenKind};

/// How many partitions the issuance index spreads each root tenant (and the client index each
/// client) over: `ISSUANCE_INDEX_SHARDS`. One index partition takes about 1,000 writes a
/// second, so this bounds the tokens a second one tenant or one client can be issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssuanceShards(u32);

impl IssuanceShards {
    /// About 32,000 tokens a second for one root tenant or one client; a count queries each
    /// shard, a few at a time.
    pub const DEFAULT: Self = Self(32);
    /// The count before it was a setting: older tables hold entries written under it.
    pub const BEFORE_THE_SETTING: u32 = 8;
    pub const MAX: u32 = 128;

    /// `None` outside 1 to [`Self::MAX`].
    pub fn new(count: u32) -> Option<Self> {
        (1..=Self::MAX).contains(&count).then_some(Self(count))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The shards a count reads: at least the eight every older writer used, so entries written
    /// before a lower setting are still found (a higher setting's own shards are all read).
    fn read(self) -> u32 {
        self.0.max(Self::BEFORE_THE_SETTING)
    }
}

impl Default for IssuanceShards {
    fn default() -> Self {
        Self::DEFAULT
    }
}

pub(super) fn issued_key(id: &TokenId) -> Item {
    key(format!("ISSUED#{id}"), "ISSUED")
}

fn shard_of(id: &TokenId, shards: IssuanceShards) -> u32 {
    id.as_str().bytes().map(u32::from).sum::<u32>() % shards.0
}

/// The subject index's partition of a user: its tenant and id. Tokens whose subject is their
/// client are not in that index (the client index finds them), so it is never hot: a user's
/// tokens come one login or refresh at a time.
fn subject_partition(tenant: &TenantPath, user: &str) -> String {
    format!("USER#{tenant}#{user}")
}

fn client_partition(client: &ClientId, shard: u32) -> String {
    format!("{client}#{shard}")
}

pub(super) fn issued_item(token: &IssuedToken, shards: IssuanceShards) -> Item {
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
            s(format!("{}#{}", root_tenant(&token.tenant), shard_of(&token.id, shards))),
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
    item.extend(narrowed_keys(token, shards));
    item
}

/// The keys of the narrowed-count indexes: the client's, then (a user's token only) the
/// subject's.
pub(super) fn narrowed_keys(
    token: &IssuedToken,
    shards: IssuanceShards,
) -> Vec<(String, AttributeValue)> {
    let mut keys = vec![(
        ISSUED_CLIENT_PK.to_owned(),
        s(client_partition(&token.client_id, shard_of(&token.id, shards))),
    )];
    if let Subject::User { tenant, id } = token.subject_ref() {
        keys.push((ISSUED_SUBJECT_PK.to_owned(), s(subject_partition(tenant, id))));
    }
    keys
}

/// The filter of a user's entries narrowed to one client too.
const OF_CLIENT: &str = "client_id = :client";

/// Where a count reads: the index, its partitions, and what its filter adds to "live".
struct CountPlan {
    index: &'static str,
    partitions: Vec<String>,
    conditions: Vec<&'static str>,
}

impl IssuanceShards {
    /// The narrowest index holding every entry `filter` covers: a user's own partition, a
    /// client's shards, or the root tenant's shards.
    fn plan(self, filter: &IssuanceFilter) -> CountPlan {
        let shards = 0..self.read();
        match (&filter.subject, &filter.client_id) {
            (Some(SubjectId::User { tenant, id }), client) => CountPlan {
                index: ISSUED_BY_SUBJECT,
                partitions: vec![subject_partition(tenant, id.as_str())],
                conditions: client.iter().map(|_| OF_CLIENT).collect(),
            },
            // A client's own tokens (client credentials) are its tokens without a grant.
            (Some(SubjectId::Client(id)), _) => CountPlan {
                index: ISSUED_BY_CLIENT,
                partitions: shards.map(|shard| client_partition(id, shard)).collect(),
                conditions: vec!["attribute_not_exists(grant_id)"],
            },
            (None, Some(client)) => CountPlan {
                index: ISSUED_BY_CLIENT,
                partitions: shards.map(|shard| client_partition(client, shard)).collect(),
                conditions: Vec::new(),
            },
            (None, None) => CountPlan {
                index: ISSUED_INDEX,
                partitions: shards
                    .map(|shard| format!("{}#{shard}", root_tenant(&filter.tenant)))
                    .collect(),
                conditions: Vec::new(),
            },
        }
    }
}

/// The partition key attribute of each index a count may read.
fn partition_attribute(index: &str) -> &'static str {
    match index {
        ISSUED_BY_SUBJECT => ISSUED_SUBJECT_PK,
        ISSUED_BY_CLIENT => ISSUED_CLIENT_PK,
        _ => ISSUED_PK,
    }
}

pub(super) fn issued_from(item: &Item) -> Result<IssuedToken, StoreError> {
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
pub(super) fn mark_spent(
    id: &TokenId,
    expires_at: u64,
    table: &str,
) -> Result<TransactWriteItem, StoreError> {
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

#[async_trait]
impl IssuanceLog for DynamoStore {
    async fn record_issued(&self, token: &IssuedToken) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(issued_item(token, self.issuance_shards)))
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
        let plan = self.issuance_shards.plan(filter);
        let mut conditions = vec!["#ttl > :now", "attribute_not_exists(spent)"];
        conditions.extend(&plan.conditions);
        let count = CountQuery {
            index: plan.index,
            filter,
            filter_expression: conditions.join(" AND "),
            of_client: plan.conditions.contains(&OF_CLIENT),
            // Every index sorts by `<tenant path>/#…`, so the tenant narrows by key in each.
            prefix: format!("{}/", filter.tenant),
            now,
        };
        // The shards are partitions of their own: a few are queried at once, so a count over 32
        // of them takes about as long as one over 8 did one after another.
        // Collected first: a lazy `map` here trips rustc's Send check of the boxed future.
        let queries: Vec<_> = plan
            .partitions
            .iter()
            .map(|partition| self.live_in_partition(&count, partition))
            .collect();
        let pages =
            stream::iter(queries).buffered(PARTITIONS_AT_ONCE).try_collect::<Vec<_>>().await?;
        Ok(pages.into_iter().flatten().collect())
    }
}

/// How many index partitions one count queries at a time.
const PARTITIONS_AT_ONCE: usize = 8;

/// One count's query, the same in every partition it reads.
struct CountQuery<'a> {
    index: &'static str,
    filter: &'a IssuanceFilter,
    filter_expression: String,
    of_client: bool,
    prefix: String,
    now: u64,
}

impl DynamoStore {
    /// The live entries `count` covers in one index partition, page by page.
    async fn live_in_partition(
        &self,
        count: &CountQuery<'_>,
        partition: &str,
    ) -> Result<Vec<IssuedToken>, StoreError> {
        let mut live = Vec::new();
        let mut start_key = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(count.index)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .filter_expression(&count.filter_expression)
                .expression_attribute_names("#pk", partition_attribute(count.index))
                .expression_attribute_names("#sk", ISSUED_SK)
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":pk", s(partition))
                .expression_attribute_values(":prefix", s(count.prefix.clone()))
                .expression_attribute_values(":now", n(count.now))
                .limit(self.page_size)
                .set_exclusive_start_key(start_key);
            if let Some(client_id) = &count.filter.client_id
                && count.of_client
            {
                query = query.expression_attribute_values(":client", s(client_id.as_str()));
            }
            let output = query.send().await.map_err(|e| failure("Query issued", &e))?;
            for item in output.items() {
                // The key narrows; the filter of the kind of subject, the client of a subject's
                // tokens and the subtree is checked here, whatever index served.
                let token = issued_from(item)?;
                if count.filter.covers(&token) {
                    live.push(token);
                }
            }
            start_key = output.last_evaluated_key.filter(|key| !key.is_empty());
            if start_key.is_none() {
                return Ok(live);
            }
        }
    }
}
