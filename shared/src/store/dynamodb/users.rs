//! Users, by tenant and username, and their ids.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

use super::clients::{COUNTED, at_version};
use super::table::{LIST_PK, LIST_SK};
use super::{
    DynamoStore, Fields, Item, ListStart, Outcome, applied, b, failed_condition, failure, key,
    list_keys, n, outcome, put, root_tenant, s,
};
use crate::domain::{TenantPath, User, UserId, Username};
use crate::store::{Page, PageRequest, StoreError, UserPosition, UserStore, list_key};

pub(super) fn user_key(tenant: &TenantPath, username: &Username) -> Item {
    // Tenant paths cannot contain '#', so the username after it is unambiguous.
    key(format!("USER#{tenant}#{username}"), "USER")
}

pub(super) fn user_id_key(id: &UserId) -> Item {
    key(format!("USERID#{id}"), "USERID")
}

fn list_partition(root: &str) -> String {
    format!("USERS#{root}")
}

fn list_sort(user: &User) -> String {
    list_key::user(&user.tenant, &user.username)
}

/// Where a user of `tenant` is listed.
pub(super) fn user_list_keys(
    tenant: &TenantPath,
    username: &Username,
) -> [(String, aws_sdk_dynamodb::types::AttributeValue); 2] {
    list_keys(list_partition(root_tenant(tenant)), list_key::user(tenant, username))
}

/// A user as written by its creation: counted in its tenant (see `clients::COUNTED`).
fn user_item(user: &User) -> Item {
    let mut item = user_key(&user.tenant, &user.username);
    item.extend([
        ("user_id".to_owned(), s(user.id.as_str())),
        ("tenant".to_owned(), s(user.tenant.as_str())),
        ("username".to_owned(), s(user.username.as_str())),
        ("password_hash".to_owned(), s(user.password_hash.clone())),
        ("enabled".to_owned(), b(user.enabled)),
        ("created_at".to_owned(), n(user.created_at)),
        ("version".to_owned(), n(user.version)),
        (COUNTED.to_owned(), b(true)),
    ]);
    item.extend(user_list_keys(&user.tenant, &user.username));
    item
}

/// The id entry: which user an id is, by tenant and username.
fn user_id_item(user: &User) -> Item {
    let mut item = user_id_key(&user.id);
    item.insert("tenant".to_owned(), s(user.tenant.as_str()));
    item.insert("username".to_owned(), s(user.username.as_str()));
    item
}

fn delete(
    key: Item,
    condition: Option<&str>,
    values: Option<Item>,
    table: &str,
) -> Result<TransactWriteItem, StoreError> {
    let delete = Delete::builder()
        .table_name(table)
        .set_key(Some(key))
        .set_condition_expression(condition.map(str::to_owned))
        .set_expression_attribute_values(values)
        .build()
        .map_err(|e| StoreError(format!("building a delete: {e}")))?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

pub(super) fn user_from(item: &Item) -> Result<User, StoreError> {
    let f = Fields { kind: "user", item };
    Ok(User {
        id: f.parse("user_id", UserId::parse)?,
        tenant: f.parse("tenant", TenantPath::parse)?,
        username: f.parse("username", Username::parse)?,
        password_hash: f.s("password_hash")?.to_owned(),
        // Absent on users stored before these existed.
        enabled: f.opt_bool("enabled")?.unwrap_or(true),
        created_at: f.opt_n("created_at")?.unwrap_or(0),
        version: f.opt_n("version")?.unwrap_or(0),
    })
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
        self.write_joining(&user.tenant, || {
            Ok(vec![
                put(user_item(user), fresh, &self.table)?,
                put(user_id_item(user), fresh, &self.table)?,
            ])
        })
        .await
    }

    /// The user and its id entry in one transaction, which also drops the entry of the id it
    /// replaces. The id entry is written only if it is this user's already, or free: a user id
    /// is one user's, so a replacement can never take over another user's (whatever tenant).
    /// A replacement racing this one could leave that other id's entry behind; only
    /// `tokenctl` replaces users. A user not yet counted in its tenant (new, or stored before
    /// tenants counted) is counted in the same transaction.
    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        let stored = self.get(user_key(&user.tenant, &user.username), "GetItem user").await?;
        let counted = stored.as_ref().is_some_and(|item| item.contains_key(COUNTED));
        let replaced = stored.as_ref().map(user_from).transpose()?;
        let keeps_its_id = replaced.as_ref().is_some_and(|old| old.id == user.id);
        let items = || {
            let (condition, values) = if keeps_its_id {
                let tenant = HashMap::from([(":tenant".to_owned(), s(user.tenant.as_str()))]);
                ("attribute_not_exists(pk) OR tenant = :tenant", Some(tenant))
            } else {
                ("attribute_not_exists(pk)", None)
            };
            let id_entry = Put::builder()
                .table_name(&self.table)
                .set_item(Some(user_id_item(user)))
                .condition_expression(condition)
                .set_expression_attribute_values(values)
                .build()
                .map_err(|e| StoreError(format!("building a put: {e}")))?;
            let user_condition = if counted {
                format!("attribute_exists({COUNTED})")
            } else {
                format!("attribute_not_exists({COUNTED})")
            };
            let mut items = vec![
                put(user_item(user), Some(&user_condition), &self.table)?,
                TransactWriteItem::builder().put(id_entry).build(),
            ];
            if let Some(old) = replaced.as_ref().filter(|old| old.id != user.id) {
                items.push(delete(user_id_key(&old.id), None, None, &self.table)?);
            }
            Ok(items)
        };
        let stored = if counted {
            match self.transact(items()?).await {
                Ok(()) => true,
                Err(e) if failed_condition(&e).is_some() => false,
                Err(e) => return Err(failure("TransactWriteItems replace user", &e)),
            }
        } else {
            self.write_joining(&user.tenant, items).await?
        };
        if stored {
            Ok(())
        } else {
            Err(StoreError(format!(
                "user id {} belongs to another user, or the user changed meanwhile",
                user.id
            )))
        }
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
        applied(result, "UpdateItem password hash")
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let Some(item) = self.get(user_id_key(id), "GetItem user id").await? else {
            return Ok(None);
        };
        let f = Fields { kind: "user id", item: &item };
        let tenant = f.parse("tenant", TenantPath::parse)?;
        // Entries written before they named the username are completed by
        // `tokenctl upgrade-table`; finding their user meanwhile would take a scan.
        if f.opt_s("username").is_none() {
            return Err(StoreError(format!(
                "user id entry {id} has no username (written before the admin plane): \
                 run `tokenctl upgrade-table` on this table"
            )));
        }
        let username = f.parse("username", Username::parse)?;
        let user = self.user(&tenant, &username).await?;
        // An entry left behind by a replacement racing another names someone else.
        Ok(user.filter(|user| user.id == *id))
    }

    async fn update_user(&self, user: &User) -> Result<bool, StoreError> {
        let condition = format!("user_id = :id AND {}", at_version(user.version));
        // Also lists a user stored before lists existed.
        let update = format!(
            "SET password_hash = :hash, enabled = :enabled, version = :next, \
             {LIST_PK} = :list_pk, {LIST_SK} = :list_sk"
        );
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(user_key(&user.tenant, &user.username)))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_values(":id", s(user.id.as_str()))
            .expression_attribute_values(":version", n(user.version))
            .expression_attribute_values(":hash", s(user.password_hash.clone()))
            .expression_attribute_values(":enabled", b(user.enabled))
            .expression_attribute_values(":next", n(user.version + 1))
            .expression_attribute_values(":list_pk", s(list_partition(root_tenant(&user.tenant))))
            .expression_attribute_values(":list_sk", s(list_sort(user)))
            .send()
            .await;
        applied(result, "UpdateItem user")
    }

    async fn delete_user(&self, user: &User) -> Result<bool, StoreError> {
        let key = || user_key(&user.tenant, &user.username);
        let id = || Some(HashMap::from([(":id".to_owned(), s(user.id.as_str()))]));
        let counted = self
            .write_leaving(&user.tenant, || {
                let condition = format!("user_id = :id AND attribute_exists({COUNTED})");
                Ok(vec![
                    delete(key(), Some(&condition), id(), &self.table)?,
                    delete(user_id_key(&user.id), None, None, &self.table)?,
                ])
            })
            .await?;
        if counted {
            return Ok(true);
        }
        // A user stored before tenants counted their members: deleted without a count.
        let condition = format!("user_id = :id AND attribute_not_exists({COUNTED})");
        let items = vec![
            delete(key(), Some(&condition), id(), &self.table)?,
            delete(user_id_key(&user.id), None, None, &self.table)?,
        ];
        match outcome(self.transact(items).await)? {
            Outcome::Done => Ok(true),
            Outcome::Failed(_) => Ok(false),
            Outcome::Conflict => Err(StoreError(format!("user {} changed while deleted", user.id))),
        }
    }

    async fn users(
        &self,
        within: &TenantPath,
        page: PageRequest<'_, UserPosition>,
    ) -> Result<Page<User, UserPosition>, StoreError> {
        let after = page.after.map(|(tenant, username)| ListStart {
            key: user_key(tenant, username),
            sort: list_key::user(tenant, username),
        });
        let (items, more) = self
            .list(
                list_partition(root_tenant(within)),
                list_key::subtree(within),
                after,
                page.limit,
                None,
            )
            .await?;
        super::decoded_page(&items, more, user_from, |user| {
            (user.tenant.clone(), user.username.clone())
        })
    }
}
