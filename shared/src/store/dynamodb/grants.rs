//! Grants and their refresh tokens.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem, Update};

use super::issuance::{issued_item, mark_spent};
use super::revocations::cutoff_key;
use super::table::TTL;
use super::{
    CONDITION_FAILED, CONFLICT, DynamoStore, Fields, Item, cancellation_codes, corrupt, failure,
    key, n, parse_scopes, pk_of, put, s,
};
use crate::domain::{ClientId, Grant, GrantId, RefreshRecord, SecretDigest, TenantPath, Username};
use crate::store::{CutoffGuard, GrantStore, IssuedToken, Rotation, StoreError};

pub(super) fn grant_key(id: &GrantId) -> Item {
    key(format!("GRANT#{id}"), "GRANT")
}

pub(super) fn refresh_key(digest: &SecretDigest) -> Item {
    key(format!("REFRESH#{}", String::from(digest.clone())), "REFRESH")
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

pub(super) fn grant_from(item: &Item) -> Result<Grant, StoreError> {
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

/// The refresh token with `digest` and its grant `grant` among batch-read items: absent when
/// either is missing or expired, or the token belongs to another grant.
pub(super) fn refresh_and_grant(
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
