//! Revoked access tokens and batch cutoffs.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

use std::collections::{HashMap, HashSet};

use super::grants::{grant_from, grant_key};
use super::issuance::mark_spent;
use super::table::TTL;
use super::{
    CONDITION_FAILED, CONFLICT, DynamoStore, Fields, Item, Outcome, TRANSACT_ATTEMPTS, back_off,
    cancellation_codes, failure, key, n, outcome, pk_of, put, s,
};
use crate::domain::TokenId;
use crate::store::{
    CutoffCopy, RevocationRecord, RevocationState, RevocationStore, StoreError, TokenRef,
};

/// How often a revocation is written before a conflicting transaction makes it a 503.
const REVOKE_ATTEMPTS: u32 = 3;

fn revoked_key(id: &TokenId) -> Item {
    key(format!("REVOKED#{id}"), "REVOKED")
}

/// The key of one copy of `layer`'s cutoff, `layer` as named by [`crate::store::layer`]:
/// `TENANT#/a/b`, `CLIENT#id`, `SUBJECT#USER#/a#id`, …. Copy 0 keeps the key tables had before
/// copies (`CUTOFF#<layer>`); copy `i` is `CUTOFF<i>#<layer>`, its own partition key, so
/// DynamoDB can place the copies in different partitions. The copy number comes before the
/// first `#`, so no two keys read alike.
pub fn cutoff_key(layer: &str, copy: CutoffCopy) -> Item {
    match copy.index() {
        0 => key(format!("CUTOFF#{layer}"), "CUTOFF"),
        i => key(format!("CUTOFF{i}#{layer}"), "CUTOFF"),
    }
}

/// Whether a raise may write over this copy: absent, earlier or expired. What keeps every copy
/// at its maximum.
pub(super) const RAISES: &str = "attribute_not_exists(pk) OR not_before < :nb OR #ttl <= :now";

#[async_trait]
impl RevocationStore for DynamoStore {
    async fn revocation_state(
        &self,
        token: &TokenRef<'_>,
        now: u64,
    ) -> Result<RevocationState, StoreError> {
        self.revocation_state_through(token, self.cutoff_read_copies.draw(), now).await
    }

    async fn revocation_state_through(
        &self,
        token: &TokenRef<'_>,
        copy: CutoffCopy,
        now: u64,
    ) -> Result<RevocationState, StoreError> {
        let revoked_pk = pk_of(&revoked_key(token.id));
        let cutoff_keys: Vec<Item> = token.layers().iter().map(|l| cutoff_key(l, copy)).collect();
        let cutoff_pks: HashSet<String> = cutoff_keys.iter().map(pk_of).collect();
        let mut keys = vec![revoked_key(token.id)];
        keys.extend(token.grant.map(grant_key));
        keys.extend(cutoff_keys);
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
            if cutoff_pks.contains(pk) && live(&item) {
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
        // Every copy is read, then each copy below the latest cutoff any copy holds (or the new
        // one, if later) is written in one transaction, on condition that it still holds what
        // was read. So a raise also repairs copies an older function left behind (it wrote copy
        // 0 alone), and a concurrent raise makes it read again rather than lower a copy.
        for attempt in 1..=TRANSACT_ATTEMPTS {
            let held = self.cutoff_copies(layer).await?;
            let live = |(value, ttl): &(u64, Option<u64>)| {
                ttl.is_none_or(|ttl| ttl > now).then_some(*value)
            };
            let standing = held.iter().flatten().filter_map(live).max();
            let (target, ttl) = match standing {
                Some(standing) if standing >= not_before => {
                    // Kept as long as any copy holding it is, and at least as long as asked.
                    let longest = held
                        .iter()
                        .flatten()
                        .filter(|(value, ttl)| {
                            *value == standing && ttl.is_none_or(|ttl| ttl > now)
                        })
                        .map(|(_, ttl)| ttl.unwrap_or(expires_at))
                        .max();
                    (standing, longest.unwrap_or(expires_at).max(expires_at))
                }
                _ => (not_before, expires_at),
            };
            let items = CutoffCopy::all()
                .zip(&held)
                .filter(|(_, read)| {
                    // A copy is left alone only if it already holds the target at least as long.
                    !read.is_some_and(|(value, held_ttl)| {
                        value == target && held_ttl.is_none_or(|held| held > now && held >= ttl)
                    })
                })
                .map(|(copy, read)| self.raise_copy(layer, copy, *read, target, ttl))
                .collect::<Result<Vec<_>, _>>()?;
            if items.is_empty() {
                return Ok(standing);
            }
            match outcome(self.transact(items).await)? {
                Outcome::Done => return Ok(standing),
                // A copy changed since it was read (a concurrent raise): read them again.
                Outcome::Failed(_) | Outcome::Conflict => back_off(attempt).await,
            }
        }
        Err(StoreError(format!("raising cutoff {layer}: lost every race")))
    }

    async fn cutoffs(
        &self,
        layers: &[String],
        now: u64,
    ) -> Result<HashMap<String, u64>, StoreError> {
        // Every copy is written in one transaction, so the first is as good as any, and it is
        // the one tables from before copies hold.
        let keys = layers.iter().map(|l| cutoff_key(l, CutoffCopy::FIRST)).collect();
        let found = self.batch_get_all(keys).await?;
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

impl DynamoStore {
    /// What each copy of `layer`'s cutoff holds, expired or not (its `not_before` and `ttl`),
    /// in copy order, read in one strongly consistent round trip.
    async fn cutoff_copies(
        &self,
        layer: &str,
    ) -> Result<Vec<Option<(u64, Option<u64>)>>, StoreError> {
        let mut found =
            self.batch_get(CutoffCopy::all().map(|copy| cutoff_key(layer, copy)).collect()).await?;
        CutoffCopy::all()
            .map(|copy| {
                let Some(item) = found.remove(&pk_of(&cutoff_key(layer, copy))) else {
                    return Ok(None);
                };
                let fields = Fields { kind: "cutoff", item: &item };
                Ok(Some((fields.n("not_before")?, fields.opt_n(TTL)?)))
            })
            .collect()
    }

    /// The write of one copy in a raise: to `not_before` until `ttl`, if it still holds `read`
    /// (its `not_before` and `ttl`, or nothing).
    fn raise_copy(
        &self,
        layer: &str,
        copy: CutoffCopy,
        read: Option<(u64, Option<u64>)>,
        not_before: u64,
        ttl: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(cutoff_key(layer, copy)))
            .update_expression("SET not_before = :nb, #ttl = :ttl")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":nb", n(not_before))
            .expression_attribute_values(":ttl", n(ttl));
        let update = match read {
            None => update.condition_expression("attribute_not_exists(pk)"),
            Some((old, Some(old_ttl))) => update
                .condition_expression("not_before = :old AND #ttl = :old_ttl")
                .expression_attribute_values(":old", n(old))
                .expression_attribute_values(":old_ttl", n(old_ttl)),
            Some((old, None)) => update
                .condition_expression("not_before = :old AND attribute_not_exists(#ttl)")
                .expression_attribute_values(":old", n(old)),
        };
        let update = update.build().map_err(|e| StoreError(format!("building an update: {e}")))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{cutoff_key, pk_of};
    use crate::domain::{ClientId, Subject, TenantPath};
    use crate::store::{CUTOFF_COPIES, CutoffCopy, layer};

    #[test]
    fn copy_zero_keeps_the_key_older_tables_hold_and_no_two_copies_share_a_key() {
        let (tenant, client) = (TenantPath::parse("/a/b").unwrap(), ClientId::parse("c1").unwrap());
        let layers = layer::applying_to(&tenant, &client, Subject::Client(&client));
        let mut keys = HashSet::new();
        for layer in &layers {
            assert_eq!(pk_of(&cutoff_key(layer, CutoffCopy::FIRST)), format!("CUTOFF#{layer}"));
            for copy in CutoffCopy::all() {
                assert!(keys.insert(pk_of(&cutoff_key(layer, copy))), "{layer} {copy:?}");
            }
        }
        assert_eq!(keys.len(), layers.len() * CUTOFF_COPIES);
    }
}
