//! Tenant records and what each holds.
//!
//! A tenant item (`TENANT#<path>`) counts in `members` the clients and users stored in the
//! tenant and the recorded tenants anywhere strictly below it. `recorded` marks a tenant that
//! exists (created, or holding a client or user); an item without it only keeps the count of a
//! tenant not (or no longer) recorded whose descendants are. Every change of what a tenant
//! holds is one transaction with the count it changes: a tenant becoming recorded adds one to
//! every ancestor's item, recorded or not, so a tenant created after its descendants finds them
//! counted already; a client or user adds one to its own tenant's. Deleting a tenant is
//! conditional on its count being zero in the same transaction that takes it off its
//! ancestors' counts, so however writes race only an empty tenant is deleted.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem, Update};

use super::table::{LIST_PK, LIST_SK};
use super::{
    DynamoStore, Fields, Item, ListStart, Outcome, TRANSACT_ATTEMPTS, back_off, key, n, outcome,
    root_tenant, s,
};
use crate::domain::TenantPath;
use crate::store::{Page, PageRequest, StoreError, TenantDeletion, TenantStore, list_key};

fn tenant_key(path: &str) -> Item {
    key(format!("TENANT#{path}"), "TENANT")
}

fn list_partition(root: &str) -> String {
    format!("TENANTS#{root}")
}

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("building an update: {e}"))
}

/// The strict ancestors of `path`.
fn ancestors(path: &TenantPath) -> impl Iterator<Item = &str> {
    path.lineage().filter(move |ancestor| *ancestor != path.as_str())
}

/// Adds `delta` to the count of tenant `path`, making its item if there is none.
pub(super) fn count(path: &str, delta: i64, table: &str) -> Result<TransactWriteItem, StoreError> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(tenant_key(path)))
        .update_expression("SET tenant = :path ADD members :delta")
        .expression_attribute_values(":path", s(path))
        .expression_attribute_values(
            ":delta",
            aws_sdk_dynamodb::types::AttributeValue::N(delta.to_string()),
        )
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// Records `path` as a tenant (adding `members` to its count) and counts it in every
/// ancestor; the first item fails its condition if it was recorded already.
fn record(
    path: &TenantPath,
    members: u64,
    table: &str,
) -> Result<Vec<TransactWriteItem>, StoreError> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(tenant_key(path.as_str())))
        .update_expression(format!(
            "SET tenant = :path, recorded = :yes, {LIST_PK} = :list_pk, {LIST_SK} = :list_sk \
             ADD members :members"
        ))
        .condition_expression("attribute_not_exists(recorded)")
        .expression_attribute_values(":path", s(path.as_str()))
        .expression_attribute_values(":yes", aws_sdk_dynamodb::types::AttributeValue::Bool(true))
        .expression_attribute_values(":list_pk", s(list_partition(root_tenant(path))))
        .expression_attribute_values(":list_sk", s(list_key::tenant(path)))
        .expression_attribute_values(":members", n(members))
        .build()
        .map_err(build_error)?;
    let mut items = vec![TransactWriteItem::builder().update(update).build()];
    for ancestor in ancestors(path) {
        items.push(count(ancestor, 1, table)?);
    }
    Ok(items)
}

impl DynamoStore {
    async fn tenant_item(&self, path: &TenantPath) -> Result<Option<Item>, StoreError> {
        self.get(tenant_key(path.as_str()), "GetItem tenant").await
    }

    /// Writes `own` (whose items' conditions say whether the record may be stored) with one
    /// more member on `tenant`, recording it if it was not: `false` when a condition of `own`
    /// failed. The tenant is read first to know whether recording it must count it in its
    /// ancestors; if it changed before the write, the transaction is built again.
    pub(super) async fn write_joining(
        &self,
        tenant: &TenantPath,
        own: impl Fn() -> Result<Vec<TransactWriteItem>, StoreError>,
    ) -> Result<bool, StoreError> {
        for attempt in 0..TRANSACT_ATTEMPTS {
            let recorded = self.tenant_item(tenant).await?.is_some_and(|item| is_recorded(&item));
            let mut items = own()?;
            let own_len = items.len();
            if recorded {
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(tenant_key(tenant.as_str())))
                    .update_expression("ADD members :one")
                    .condition_expression("attribute_exists(recorded)")
                    .expression_attribute_values(":one", n(1))
                    .build()
                    .map_err(build_error)?;
                items.push(TransactWriteItem::builder().update(update).build());
            } else {
                items.extend(record(tenant, 1, &self.table)?);
            }
            match outcome(self.transact(items).await)? {
                Outcome::Done => return Ok(true),
                Outcome::Failed(index) if index < own_len => return Ok(false),
                // The tenant was recorded or deleted since it was read.
                Outcome::Failed(_) => {}
                Outcome::Conflict => back_off(attempt).await,
            }
        }
        Err(StoreError(format!("tenant {tenant} kept changing while a member was added")))
    }

    /// Deletes a counted record: `own` first (its first item's condition says whether the record
    /// is there), then one member less on `tenant`. `false` when the condition failed.
    pub(super) async fn write_leaving(
        &self,
        tenant: &TenantPath,
        own: impl Fn() -> Result<Vec<TransactWriteItem>, StoreError>,
    ) -> Result<bool, StoreError> {
        for attempt in 0..TRANSACT_ATTEMPTS {
            let mut items = own()?;
            items.push(count(tenant.as_str(), -1, &self.table)?);
            match outcome(self.transact(items).await)? {
                Outcome::Done => return Ok(true),
                Outcome::Failed(_) => return Ok(false),
                Outcome::Conflict => back_off(attempt).await,
            }
        }
        Err(StoreError(format!("tenant {tenant} kept changing while a member was removed")))
    }
}

fn is_recorded(item: &Item) -> bool {
    item.contains_key("recorded")
}

#[async_trait]
impl TenantStore for DynamoStore {
    async fn create_tenant(&self, path: &TenantPath) -> Result<bool, StoreError> {
        for attempt in 0..TRANSACT_ATTEMPTS {
            match outcome(self.transact(record(path, 0, &self.table)?).await)? {
                Outcome::Done => return Ok(true),
                Outcome::Failed(_) => return Ok(false),
                Outcome::Conflict => back_off(attempt).await,
            }
        }
        Err(StoreError(format!("tenant {path} kept changing while it was created")))
    }

    async fn tenant_exists(&self, path: &TenantPath) -> Result<bool, StoreError> {
        Ok(self.tenant_item(path).await?.is_some_and(|item| is_recorded(&item)))
    }

    async fn tenants(
        &self,
        within: &TenantPath,
        page: PageRequest<'_, TenantPath>,
    ) -> Result<Page<TenantPath, TenantPath>, StoreError> {
        let after = page
            .after
            .map(|path| ListStart { key: tenant_key(path.as_str()), sort: list_key::tenant(path) });
        let (items, more) = self
            .list(
                list_partition(root_tenant(within)),
                list_key::subtree(within),
                after,
                page.limit,
                None,
            )
            .await?;
        let decode =
            |item: &Item| Fields { kind: "tenant", item }.parse("tenant", TenantPath::parse);
        super::decoded_page(&items, more, decode, TenantPath::clone)
    }

    async fn delete_tenant(&self, path: &TenantPath) -> Result<TenantDeletion, StoreError> {
        for attempt in 0..TRANSACT_ATTEMPTS {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(tenant_key(path.as_str())))
                .condition_expression(
                    "attribute_exists(recorded) AND (attribute_not_exists(members) OR members = :zero)",
                )
                .expression_attribute_values(":zero", n(0))
                .build()
                .map_err(|e| StoreError(format!("building a delete: {e}")))?;
            let mut items = vec![TransactWriteItem::builder().delete(delete).build()];
            for ancestor in ancestors(path) {
                items.push(count(ancestor, -1, &self.table)?);
            }
            match outcome(self.transact(items).await)? {
                Outcome::Done => return Ok(TenantDeletion::Deleted),
                Outcome::Failed(_) => {
                    let exists = self.tenant_exists(path).await?;
                    return Ok(if exists {
                        TenantDeletion::NotEmpty
                    } else {
                        TenantDeletion::Missing
                    });
                }
                Outcome::Conflict => back_off(attempt).await,
            }
        }
        Err(StoreError(format!("tenant {path} kept changing while it was deleted")))
    }
}
