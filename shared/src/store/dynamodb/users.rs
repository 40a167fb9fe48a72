//! Users, by tenant and username, and their ids.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

use super::{DynamoStore, Fields, Item, failed_condition, failure, key, put, s};
use crate::domain::{TenantPath, User, UserId, Username};
use crate::store::{StoreError, UserStore};

pub(super) fn user_key(tenant: &TenantPath, username: &Username) -> Item {
    // Tenant paths cannot contain '#', so the username after it is unambiguous.
    key(format!("USER#{tenant}#{username}"), "USER")
}

fn user_id_key(id: &UserId) -> Item {
    key(format!("USERID#{id}"), "USERID")
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

pub(super) fn user_from(item: &Item) -> Result<User, StoreError> {
    let f = Fields { kind: "user", item };
    Ok(User {
        id: f.parse("user_id", UserId::parse)?,
        tenant: f.parse("tenant", TenantPath::parse)?,
        username: f.parse("username", Username::parse)?,
        password_hash: f.s("password_hash")?.to_owned(),
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
    /// replaces. The id entry is written only if it is this user's already, or free: a user id
    /// is one user's, so a replacement can never take over another user's (whatever tenant).
    /// A replacement racing this one could leave that other id's entry behind; only
    /// `tokenctl` replaces users.
    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        let replaced = self.user(&user.tenant, &user.username).await?;
        let keeps_its_id = replaced.as_ref().is_some_and(|old| old.id == user.id);
        let mut by_id = user_id_key(&user.id);
        by_id.insert("tenant".to_owned(), s(user.tenant.as_str()));
        let (condition, values) = if keeps_its_id {
            let tenant = HashMap::from([(":tenant".to_owned(), s(user.tenant.as_str()))]);
            ("attribute_not_exists(pk) OR tenant = :tenant", Some(tenant))
        } else {
            ("attribute_not_exists(pk)", None)
        };
        let id_entry = Put::builder()
            .table_name(&self.table)
            .set_item(Some(by_id))
            .condition_expression(condition)
            .set_expression_attribute_values(values)
            .build()
            .map_err(|e| StoreError(format!("building a put: {e}")))?;
        let mut items = vec![
            put(user_item(user), None, &self.table)?,
            TransactWriteItem::builder().put(id_entry).build(),
        ];
        if let Some(old) = replaced.filter(|old| old.id != user.id) {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(user_id_key(&old.id)))
                .build()
                .map_err(|e| StoreError(format!("building a delete: {e}")))?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(e) if failed_condition(&e) == Some(1) => {
                Err(StoreError(format!("user id {} belongs to another user", user.id)))
            }
            Err(e) => Err(failure("TransactWriteItems replace user", &e)),
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
