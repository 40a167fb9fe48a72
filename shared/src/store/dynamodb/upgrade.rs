//! Bringing a table written before the admin plane, or before cutoffs had copies, up to what
//! the current writers write:
//! `tokenctl upgrade-table`, run once by an operator after deploying, with their own
//! credentials (it scans the whole table, which no function may).
//!
//! Every write is conditional on the item still needing it, so the upgrade is idempotent and
//! safe while the service runs: a second run finds nothing to do, and an item a writer changed
//! meanwhile is left to that writer. Clients and users are counted in their tenant by the same
//! transaction that gives them `counted` (the marker creation writes), conditional on its
//! absence, so each is counted once however runs and writers interleave.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use super::clients::{COUNTED, client_key, client_list_keys};
use super::grants::{grant_from, grant_key, grant_list_keys};
use super::issuance::narrowed_keys;
use super::revocations::{RAISES, cutoff_key};
use super::table::{LIST_PK, LIST_SK, SK, TTL};
use super::users::{user_id_key, user_key, user_list_keys};
use super::{DynamoStore, Fields, Item, applied, b, failure, n, s};
use crate::domain::{ClientId, TenantPath, UserId, Username};
use crate::store::{CutoffCopy, StoreError};

/// What one run changed, per kind of item, and what it could not read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UpgradeSummary {
    /// Clients counted in their tenant and listed.
    pub clients: u64,
    /// Users counted in their tenant and listed.
    pub users: u64,
    /// Live grants listed as their user's sessions.
    pub grants: u64,
    /// User id entries completed with their username.
    pub user_ids_completed: u64,
    /// User id entries naming no user (left by a replacement racing another): deleted.
    pub user_ids_removed: u64,
    /// Copies of live cutoffs written from the single cutoff item a table held before copies.
    pub cutoff_copies: u64,
    /// Live issuance log entries given the keys of the narrowed-count indexes.
    pub issued_indexed: u64,
    /// Items that could not be read, by key, with the reason: left as they are.
    pub skipped: Vec<String>,
}

/// Items needing an upgrade: uncounted or unlisted clients and users, unlisted live grants,
/// id entries without a username, live log entries without the narrowed-count index keys, and
/// every live cutoff's first copy (whose other copies a
/// table from before copies lacks; a copy already there is left alone by its condition).
/// Everything else the scan reads is filtered out.
const NEEDS_UPGRADE: &str = "(sk IN (:client, :user) AND \
     (attribute_not_exists(counted) OR attribute_not_exists(list_pk))) \
     OR (sk = :grant AND attribute_not_exists(list_pk) AND #ttl > :now) \
     OR (sk = :user_id AND attribute_not_exists(username)) \
     OR (sk = :cutoff AND begins_with(pk, :first_copy) AND #ttl > :now) \
     OR (sk = :issued AND attribute_not_exists(issued_client_pk) AND attribute_exists(client_id) \
         AND attribute_not_exists(spent) AND #ttl > :now)";

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("building an update: {e}"))
}

fn key_of(item: &Item) -> String {
    super::pk_of(item)
}

/// The update giving an item its list keys, and `counted` when `count` is set: conditional on
/// the item being there (never recreated by an update) and on it still needing that.
fn upgrade_update(
    key: Item,
    list: [(String, AttributeValue); 2],
    count: bool,
    condition: &str,
    values: &[(&str, AttributeValue)],
    table: &str,
) -> Result<Update, StoreError> {
    let [(_, list_pk), (_, list_sk)] = list;
    let (expression, condition) = if count {
        (
            format!("SET {COUNTED} = :yes, {LIST_PK} = :list_pk, {LIST_SK} = :list_sk"),
            format!("attribute_exists(pk) AND attribute_not_exists({COUNTED}) AND {condition}"),
        )
    } else {
        (
            format!("SET {LIST_PK} = :list_pk, {LIST_SK} = :list_sk"),
            format!("attribute_exists(pk) AND attribute_not_exists({LIST_PK}) AND {condition}"),
        )
    };
    let mut update = Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(expression)
        .condition_expression(condition)
        .expression_attribute_values(":list_pk", list_pk)
        .expression_attribute_values(":list_sk", list_sk);
    if count {
        update = update.expression_attribute_values(":yes", b(true));
    }
    for (name, value) in values {
        update = update.expression_attribute_values(*name, value.clone());
    }
    update.build().map_err(build_error)
}

/// A client or user item's upgrade: its key, tenant, list keys, and whether it still needs
/// counting.
struct Member {
    key: Item,
    tenant: TenantPath,
    list: [(String, AttributeValue); 2],
    count: bool,
}

fn member(item: &Item, kind: &str) -> Result<Member, StoreError> {
    let f = Fields { kind: if kind == "CLIENT" { "client" } else { "user" }, item };
    let tenant = f.parse("tenant", TenantPath::parse)?;
    let (key, list) = if kind == "CLIENT" {
        let id = f.parse("client_id", ClientId::parse)?;
        (client_key(&id), client_list_keys(&tenant, &id))
    } else {
        let username = f.parse("username", Username::parse)?;
        (user_key(&tenant, &username), user_list_keys(&tenant, &username))
    };
    Ok(Member { key, list, count: !item.contains_key(COUNTED), tenant })
}

impl DynamoStore {
    /// Upgrades every item of the table written before the admin plane (see the module
    /// documentation); `now` decides which grants are still live enough to list.
    pub async fn upgrade_table(&self, now: u64) -> Result<UpgradeSummary, StoreError> {
        let mut summary = UpgradeSummary::default();
        // Id entries without a username, by user id: their tenant.
        let mut unnamed = HashMap::new();
        let values = HashMap::from([
            (":client".to_owned(), s("CLIENT")),
            (":user".to_owned(), s("USER")),
            (":grant".to_owned(), s("GRANT")),
            (":user_id".to_owned(), s("USERID")),
            (":cutoff".to_owned(), s("CUTOFF")),
            (":issued".to_owned(), s("ISSUED")),
            (":first_copy".to_owned(), s("CUTOFF#")),
            (":now".to_owned(), n(now)),
        ]);
        let names = HashMap::from([("#ttl".to_owned(), TTL.to_owned())]);
        let mut start = None;
        loop {
            let (items, next) = self.scan_page(NEEDS_UPGRADE, &values, Some(&names), start).await?;
            for item in items {
                let kind = Fields { kind: "item", item: &item }.s(SK)?.to_owned();
                if kind == "ISSUED" {
                    match self.index_issued(&item).await {
                        Ok(true) => summary.issued_indexed += 1,
                        Ok(false) => {}
                        Err(e) => summary.skipped.push(format!("{}: {}", key_of(&item), e.0)),
                    }
                    continue;
                }
                if kind == "CUTOFF" {
                    match self.copy_cutoff(&item, now).await {
                        Ok(written) => summary.cutoff_copies += written,
                        Err(e) => summary.skipped.push(format!("{}: {}", key_of(&item), e.0)),
                    }
                    continue;
                }
                let done = match kind.as_str() {
                    "CLIENT" | "USER" => self.upgrade_member(&item, &kind).await,
                    "GRANT" => self.list_grant(&item).await,
                    _ => match unnamed_entry(&item) {
                        Ok((id, tenant)) => {
                            unnamed.insert(id, tenant);
                            Ok(false)
                        }
                        Err(e) => Err(e),
                    },
                };
                match done {
                    Ok(true) => match kind.as_str() {
                        "CLIENT" => summary.clients += 1,
                        "USER" => summary.users += 1,
                        _ => summary.grants += 1,
                    },
                    Ok(false) => {}
                    Err(e) => summary.skipped.push(format!("{}: {}", key_of(&item), e.0)),
                }
            }
            start = next;
            if start.is_none() {
                break;
            }
        }
        if !unnamed.is_empty() {
            self.name_user_ids(unnamed, &mut summary).await?;
        }
        Ok(summary)
    }

    /// One page of a scan filtered by `filter`, and where the next starts.
    async fn scan_page(
        &self,
        filter: &str,
        values: &Item,
        names: Option<&HashMap<String, String>>,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression(filter)
            .set_expression_attribute_values(Some(values.clone()))
            .set_expression_attribute_names(names.cloned())
            .set_exclusive_start_key(start)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("Scan upgrade", &e))?;
        let next = output.last_evaluated_key.filter(|key| !key.is_empty());
        Ok((output.items.unwrap_or_default(), next))
    }

    /// Counts and lists a client or user: `false` when it needed nothing by the time of the write.
    async fn upgrade_member(&self, item: &Item, kind: &str) -> Result<bool, StoreError> {
        let Member { key, tenant, list, count } = member(item, kind)?;
        let tenant_value = [(":tenant", s(tenant.as_str()))];
        let update = || {
            upgrade_update(
                key.clone(),
                list.clone(),
                count,
                "tenant = :tenant",
                &tenant_value,
                &self.table,
            )
        };
        if count {
            // Counted exactly as creation counts: recording the tenant (and counting it in
            // its ancestors) if it is not recorded yet.
            self.write_joining(&tenant, || {
                Ok(vec![TransactWriteItem::builder().update(update()?).build()])
            })
            .await
        } else {
            self.send_update(update()?, "UpdateItem list keys").await
        }
    }

    /// Raises every other copy of a cutoff to its first copy's value: how many were written (a
    /// copy already as late is left as it is). Each copy only ever rises, so this is safe
    /// beside a raise writing all copies.
    async fn copy_cutoff(&self, item: &Item, now: u64) -> Result<u64, StoreError> {
        let f = Fields { kind: "cutoff", item };
        let layer = f
            .s("pk")?
            .strip_prefix("CUTOFF#")
            .ok_or_else(|| super::corrupt("cutoff", "pk"))?
            .to_owned();
        let (not_before, expires_at) = (f.n("not_before")?, f.n(TTL)?);
        let mut written = 0;
        for copy in CutoffCopy::all().skip(1) {
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(cutoff_key(&layer, copy)))
                .update_expression("SET not_before = :nb, #ttl = :ttl")
                .condition_expression(RAISES)
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":nb", n(not_before))
                .expression_attribute_values(":ttl", n(expires_at))
                .expression_attribute_values(":now", n(now))
                .build()
                .map_err(build_error)?;
            if self.send_update(update, "UpdateItem cutoff copy").await? {
                written += 1;
            }
        }
        Ok(written)
    }

    /// Gives a log entry written before the narrowed-count indexes their keys, so counts by
    /// client or user find it: `false` when it had them by the time of the write.
    async fn index_issued(&self, item: &Item) -> Result<bool, StoreError> {
        let token = super::issuance::issued_from(item)?;
        let mut keys = narrowed_keys(&token, self.issuance_shards).into_iter();
        let Some((client_pk, client_value)) = keys.next() else { return Ok(false) };
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(super::issuance::issued_key(&token.id)))
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(#client_pk)")
            .expression_attribute_names("#client_pk", client_pk)
            .expression_attribute_values(":client_pk", client_value);
        let mut expression = "SET #client_pk = :client_pk".to_owned();
        if let Some((subject_pk, subject_value)) = keys.next() {
            expression.push_str(", #subject_pk = :subject_pk");
            update = update
                .expression_attribute_names("#subject_pk", subject_pk)
                .expression_attribute_values(":subject_pk", subject_value);
        }
        let update = update.update_expression(expression).build().map_err(build_error)?;
        self.send_update(update, "UpdateItem issued index keys").await
    }

    /// Lists a grant among its user's sessions.
    async fn list_grant(&self, item: &Item) -> Result<bool, StoreError> {
        let grant = grant_from(item)?;
        let update = upgrade_update(
            grant_key(&grant.id),
            grant_list_keys(&grant),
            false,
            "grant_id = :id",
            &[(":id", s(grant.id.as_str()))],
            &self.table,
        )?;
        self.send_update(update, "UpdateItem grant list keys").await
    }

    /// Completes id entries with their user's username, found by a scan of the users; deletes
    /// those whose user is gone.
    async fn name_user_ids(
        &self,
        mut unnamed: HashMap<UserId, TenantPath>,
        summary: &mut UpgradeSummary,
    ) -> Result<(), StoreError> {
        let values = HashMap::from([(":user".to_owned(), s("USER"))]);
        let mut start = None;
        loop {
            let (items, next) = self.scan_page("sk = :user", &values, None, start).await?;
            for item in &items {
                let f = Fields { kind: "user", item };
                let (Ok(id), Ok(tenant), Ok(username)) = (
                    f.parse("user_id", UserId::parse),
                    f.parse("tenant", TenantPath::parse),
                    f.parse("username", Username::parse),
                ) else {
                    continue;
                };
                if unnamed.get(&id) != Some(&tenant) {
                    continue;
                }
                unnamed.remove(&id);
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(user_id_key(&id)))
                    .update_expression("SET username = :username")
                    .condition_expression("tenant = :tenant AND attribute_not_exists(username)")
                    .expression_attribute_values(":username", s(username.as_str()))
                    .expression_attribute_values(":tenant", s(tenant.as_str()))
                    .build()
                    .map_err(build_error)?;
                if self.send_update(update, "UpdateItem user id entry").await? {
                    summary.user_ids_completed += 1;
                }
            }
            start = next;
            if start.is_none() {
                break;
            }
        }
        // A full scan sees every item that exists throughout it, and no writer makes a user
        // whose id entry lacks the username: these entries name no user.
        for (id, tenant) in unnamed {
            let result = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(user_id_key(&id)))
                .condition_expression("tenant = :tenant AND attribute_not_exists(username)")
                .expression_attribute_values(":tenant", s(tenant.as_str()))
                .send()
                .await;
            match result {
                Ok(_) => summary.user_ids_removed += 1,
                Err(SdkError::ServiceError(e))
                    if e.err().is_conditional_check_failed_exception() => {}
                Err(e) => return Err(failure("DeleteItem user id entry", &e)),
            }
        }
        Ok(())
    }

    /// Sends one update alone: `false` when its condition failed.
    async fn send_update(&self, update: Update, operation: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(update.table_name)
            .set_key(Some(update.key))
            .update_expression(update.update_expression)
            .set_condition_expression(update.condition_expression)
            .set_expression_attribute_names(update.expression_attribute_names)
            .set_expression_attribute_values(update.expression_attribute_values)
            .send()
            .await;
        applied(result, operation)
    }
}

fn unnamed_entry(item: &Item) -> Result<(UserId, TenantPath), StoreError> {
    let f = Fields { kind: "user id", item };
    let pk = f.s("pk")?;
    let id = pk
        .strip_prefix("USERID#")
        .and_then(|raw| UserId::parse(raw).ok())
        .ok_or_else(|| super::corrupt("user id", "pk"))?;
    Ok((id, f.parse("tenant", TenantPath::parse)?))
}
