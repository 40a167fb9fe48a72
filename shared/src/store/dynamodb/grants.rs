//! Grants and their refresh tokens.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};

use super::issuance::{issued_item, mark_spent};
use super::login_attempts::clearing;
use super::revocations::cutoff_key;
use super::table::TTL;
use super::{
    CONDITION_FAILED, CONFLICT, DynamoStore, Fields, Item, ListStart, applied, cancellation_codes,
    corrupt, failure, key, list_keys, n, parse_scopes, pk_of, put, s,
};
use crate::domain::{
    ClientId, DeviceId, Grant, GrantId, LoginAttempts, LoginKey, MAX_DEVICE_IDS, RefreshRecord,
    SecretDigest, TenantPath, User, UserId, Username,
};
use crate::store::{
    CutoffGuard, GrantStore, IssuedToken, Page, PageRequest, Reissue, Rotation, SessionPosition,
    StoreError, Successor, list_key,
};

pub(super) fn grant_key(id: &GrantId) -> Item {
    key(format!("GRANT#{id}"), "GRANT")
}

pub(super) fn refresh_key(digest: &SecretDigest) -> Item {
    key(format!("REFRESH#{}", String::from(digest.clone())), "REFRESH")
}

/// A user's sessions: its grants, which only a user's login starts.
fn sessions_partition(tenant: &TenantPath, user: &str) -> String {
    format!("SESSIONS#{tenant}#{user}")
}

/// Where a grant is listed: among its user's sessions.
pub(super) fn grant_list_keys(grant: &Grant) -> [(String, AttributeValue); 2] {
    list_keys(
        sessions_partition(&grant.tenant, &grant.subject),
        list_key::session(grant.created_at, &grant.id),
    )
}

fn device_list(devices: &[DeviceId]) -> AttributeValue {
    AttributeValue::L(devices.iter().map(|device| s(device.as_str())).collect())
}

fn devices_from(f: &Fields<'_>) -> Result<Vec<DeviceId>, StoreError> {
    let Some(value) = f.item.get("device_ids") else { return Ok(Vec::new()) };
    let listed = value.as_l().map_err(|_| corrupt("grant", "device_ids"))?;
    let mut grant_devices = Vec::new();
    for value in listed {
        let device = value
            .as_s()
            .ok()
            .and_then(|raw| DeviceId::parse(raw).ok())
            .ok_or_else(|| corrupt("grant", "device_ids"))?;
        // Concurrent refreshes of one grant could each append the same new id, or one past the
        // bound: read as the bounded set it stands for.
        if !grant_devices.contains(&device) && grant_devices.len() < MAX_DEVICE_IDS {
            grant_devices.push(device);
        }
    }
    Ok(grant_devices)
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
    item.extend(grant_list_keys(grant));
    if !grant.device_ids.is_empty() {
        item.insert("device_ids".to_owned(), device_list(&grant.device_ids));
    }
    if let Some(at) = grant.last_refreshed_at {
        item.insert("last_refreshed_at".to_owned(), n(at));
    }
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
        last_refreshed_at: f.opt_n("last_refreshed_at")?,
        device_ids: devices_from(&f)?,
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

impl DynamoStore {
    /// The grant's record of a refresh: when, and a device new to it.
    fn record_refresh(
        &self,
        grant: &GrantId,
        new_device: Option<&DeviceId>,
        now: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(grant_key(grant)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", n(now));
        let update = match new_device {
            Some(device) => update
                .update_expression(
                    "SET last_refreshed_at = :now, \
                     device_ids = list_append(if_not_exists(device_ids, :none), :device)",
                )
                .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
                .expression_attribute_values(":device", device_list(std::slice::from_ref(device))),
            None => update.update_expression("SET last_refreshed_at = :now"),
        };
        let update = update.build().map_err(|e| StoreError(format!("building an update: {e}")))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A check that the user's record is still the version a login verified.
    fn unchanged_user(&self, user: &User) -> Result<TransactWriteItem, StoreError> {
        // Records written before versions were kept have none: version 0.
        let condition = if user.version == 0 {
            "user_id = :id AND (attribute_not_exists(version) OR version = :version)"
        } else {
            "user_id = :id AND version = :version"
        };
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(super::users::user_key(&user.tenant, &user.username)))
            .condition_expression(condition)
            .expression_attribute_values(":id", s(user.id.as_str()))
            .expression_attribute_values(":version", n(user.version))
            .build()
            .map_err(|e| StoreError(format!("building a condition check: {e}")))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// One check per cutoff layer of `guard`: none may hold a `not_before` after the grant began.
    fn cutoff_checks(
        &self,
        guard: &CutoffGuard,
        now: u64,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        guard
            .layers
            .iter()
            .map(|layer| {
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    // Every copy holds the cutoff, so any one decides; a random one keeps the
                    // refreshes of a busy tenant off a single item.
                    .set_key(Some(cutoff_key(layer, self.cutoff_read_copies.draw())))
                    .condition_expression(
                        "attribute_not_exists(pk) OR not_before <= :created OR #ttl <= :now",
                    )
                    .expression_attribute_names("#ttl", TTL)
                    .expression_attribute_values(":created", n(guard.grant_created_at))
                    .expression_attribute_values(":now", n(now))
                    .build()
                    .map_err(|e| StoreError(format!("building a condition check: {e}")))?;
                Ok(TransactWriteItem::builder().condition_check(check).build())
            })
            .collect()
    }
}

#[async_trait]
impl GrantStore for DynamoStore {
    async fn start_grant(
        &self,
        grant: &Grant,
        refresh: &RefreshRecord,
        issued: &[IssuedToken],
        login: Option<(&LoginKey, &LoginAttempts)>,
        signed_in: Option<&User>,
    ) -> Result<bool, StoreError> {
        let fresh = Some("attribute_not_exists(pk)");
        let mut items = vec![
            put(grant_item(grant), fresh, &self.table)?,
            put(refresh_item(refresh), fresh, &self.table)?,
        ];
        let user_check = signed_in.map(|user| self.unchanged_user(user)).transpose()?;
        let user_index = items.len();
        items.extend(user_check);
        for token in issued {
            items.push(put(issued_item(token, self.issuance_shards), None, &self.table)?);
        }
        let source_index = items.len();
        if let Some((key, read)) = login {
            items.extend(clearing(key, read, &self.table)?);
        }
        let Err(e) = self.transact(items).await else {
            return Ok(true);
        };
        let codes = cancellation_codes(&e).unwrap_or_default();
        let failed = |index: usize| codes.get(index) == Some(&CONDITION_FAILED);
        if (signed_in.is_some() && failed(user_index)) || (login.is_some() && failed(source_index))
        {
            return Ok(false);
        }
        Err(failure("TransactWriteItems start grant", &e))
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
        new_device: Option<&DeviceId>,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        let record_refresh = self.record_refresh(&used.grant_id, new_device, now)?;
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
        items.extend(self.cutoff_checks(guard, now)?);
        // After the checks: a cancellation reason's index names the same item as before grants
        // recorded their refreshes.
        items.push(record_refresh);
        for token in issued {
            items.push(put(issued_item(token, self.issuance_shards), None, &self.table)?);
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
            // the same refresh token (rotations of different tokens write no common token item).
            // A conflict only on the grant (a revocation, or a refresh of another of its
            // tokens) or on a cutoff check (a batch revocation writing that record) is not a
            // use: it falls through to a storage error, and the unchanged token can be retried.
            // So does a grant gone since it was read.
            Ok(Rotation::AlreadyUsed)
        } else {
            Err(failure("TransactWriteItems rotate", &e))
        }
    }

    async fn reissue_refresh_token(
        &self,
        successor: &Successor<'_>,
        rotated_since: u64,
        now: u64,
    ) -> Result<Reissue, StoreError> {
        let Successor { used, next, issued, guard, new_device } = *successor;
        let rotated_within = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(refresh_key(&used.digest)))
            .condition_expression("used_at >= :since AND #ttl > :now")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":since", n(rotated_since))
            .expression_attribute_values(":now", n(now))
            .build()
            .map_err(|e| StoreError(format!("building a condition check: {e}")))?;
        let mut items = vec![
            TransactWriteItem::builder().condition_check(rotated_within).build(),
            put(refresh_item(next), Some("attribute_not_exists(pk)"), &self.table)?,
        ];
        let checks = items.len()..items.len() + guard.layers.len();
        items.extend(self.cutoff_checks(guard, now)?);
        items.push(self.record_refresh(&used.grant_id, new_device, now)?);
        for token in issued {
            items.push(put(issued_item(token, self.issuance_shards), None, &self.table)?);
        }
        // Concurrent reissues of one token all touch it and its grant: they conflict, and each
        // retries after a random pause until it goes through.
        for attempt in 0..8 {
            if attempt > 0 {
                super::back_off(attempt).await;
            }
            let Err(e) = self.transact(items.clone()).await else {
                return Ok(Reissue::Reissued);
            };
            let codes = cancellation_codes(&e).unwrap_or_default();
            if codes.iter().enumerate().any(|(i, c)| checks.contains(&i) && *c == CONDITION_FAILED)
            {
                return Ok(Reissue::CutOff);
            }
            if codes.first() == Some(&CONDITION_FAILED) {
                let stored = self.get(refresh_key(&used.digest), "GetItem refresh token").await?;
                let rotated =
                    stored.as_ref().map(refresh_from).transpose()?.and_then(|r| r.used_at);
                return Ok(if rotated.is_none() {
                    Reissue::NotRotated
                } else {
                    Reissue::OutsideInterval
                });
            }
            if !codes.contains(&CONFLICT) {
                return Err(failure("TransactWriteItems reissue", &e));
            }
        }
        Err(StoreError("a reissue kept conflicting with concurrent refreshes".into()))
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
        // Not applied: an unknown (or already deleted) grant, with nothing left to revoke.
        applied(result, "UpdateItem revoke grant").map(drop)
    }

    async fn sessions(
        &self,
        tenant: &TenantPath,
        user: &UserId,
        page: PageRequest<'_, SessionPosition>,
        now: u64,
    ) -> Result<Page<Grant, SessionPosition>, StoreError> {
        let after = page.after.map(|(created_at, id)| ListStart {
            key: grant_key(id),
            sort: list_key::session(*created_at, id),
        });
        let live = (
            "attribute_not_exists(revoked_at) AND #ttl > :now",
            HashMap::from([(":now".to_owned(), n(now))]),
            HashMap::from([("#ttl".to_owned(), TTL.to_owned())]),
        );
        // Every key of the partition is a session key: the empty prefix takes them all.
        let (items, more) = self
            .list(
                sessions_partition(tenant, user.as_str()),
                String::new(),
                after,
                page.limit,
                Some(live),
            )
            .await?;
        super::decoded_page(&items, more, grant_from, |grant| (grant.created_at, grant.id.clone()))
    }
}
