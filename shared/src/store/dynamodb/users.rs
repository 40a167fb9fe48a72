//! Users, by tenant and username, and their ids.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

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
