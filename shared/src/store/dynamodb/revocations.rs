//! Revoked access tokens and batch cutoffs.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValue;

use std::collections::HashMap;

use super::grants::{grant_from, grant_key};
use super::issuance::mark_spent;
use super::table::TTL;
use super::{
    CONDITION_FAILED, CONFLICT, DynamoStore, Fields, Item, cancellation_codes, failure, key, n,
    pk_of, put, s,
};
use crate::domain::TokenId;
use crate::store::{RevocationRecord, RevocationState, RevocationStore, StoreError, TokenRef};

/// How often a revocation is written before a conflicting transaction makes it a 503.
const REVOKE_ATTEMPTS: u32 = 3;

fn revoked_key(id: &TokenId) -> Item {
    key(format!("REVOKED#{id}"), "REVOKED")
}

/// `layer` as named by [`crate::store::layer`]: `TENANT#/a/b`, `CLIENT#id`, `SUBJECT#USER#/a#id`, ….
pub(super) fn cutoff_key(layer: &str) -> Item {
    key(format!("CUTOFF#{layer}"), "CUTOFF")
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
        keys.extend(token.layers().iter().map(|l| cutoff_key(l)));
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
