//! The issuance log, and the index that counts it.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

use super::table::{ISSUED_INDEX, ISSUED_PK, ISSUED_SK, TTL};
use super::{DynamoStore, Fields, Item, corrupt, failure, key, n, root_tenant, s};
use crate::domain::{ClientId, GrantId, TenantPath, TokenId};
use crate::store::{IssuanceFilter, IssuanceLog, IssuedToken, StoreError, TokenKind};

/// The issuance index spreads each root tenant over this many partitions, so one busy tenant
/// does not make a hot partition; a count queries them all.
const ISSUED_SHARDS: u32 = 8;

fn issued_key(id: &TokenId) -> Item {
    key(format!("ISSUED#{id}"), "ISSUED")
}

fn shard_of(id: &TokenId) -> u32 {
    id.as_str().bytes().map(u32::from).sum::<u32>() % ISSUED_SHARDS
}

pub(super) fn issued_item(token: &IssuedToken) -> Item {
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
                    query = query.expression_attribute_values(":subject", s(subject.sub()));
                }
                let output = query.send().await.map_err(|e| failure("Query issued", &e))?;
                for item in output.items() {
                    // The filter expression matches the bare `sub`; the kind of subject (a user
                    // of a tenant, or a client) is told apart here.
                    let token = issued_from(item)?;
                    if filter.covers(&token) {
                        live.push(token);
                    }
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
