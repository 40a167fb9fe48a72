//! Client records.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;

use super::grants::{grant_key, refresh_and_grant, refresh_key};
use super::users::{user_from, user_key};
use super::{DynamoStore, Fields, Item, corrupt, failure, key, n, parse_scopes, pk_of, s};
use crate::domain::{Client, ClientId, GrantType, SecretDigest, TenantPath};
use crate::store::{ClientStore, GrantRead, GrantRecords, StoreError};

fn client_key(id: &ClientId) -> Item {
    key(format!("CLIENT#{id}"), "CLIENT")
}

fn client_item(client: &Client) -> Item {
    let grants: Vec<&str> = client.grants.iter().map(|grant| grant.as_str()).collect();
    let mut item = client_key(&client.id);
    item.extend([
        ("client_id".to_owned(), s(client.id.as_str())),
        ("secret_sha256".to_owned(), s(client.secret_digest.clone())),
        ("tenant".to_owned(), s(client.tenant.as_str())),
        ("grants".to_owned(), s(grants.join(" "))),
        ("scopes".to_owned(), s(client.scopes.to_string())),
        ("max_access_token_lifetime".to_owned(), n(client.max_access_token_lifetime)),
        ("refresh_idle_lifetime".to_owned(), n(client.refresh_idle_lifetime)),
        ("refresh_absolute_lifetime".to_owned(), n(client.refresh_absolute_lifetime)),
    ]);
    item
}

fn client_from(item: &Item) -> Result<Client, StoreError> {
    let f = Fields { kind: "client", item };
    let grants = f
        .s("grants")?
        .split(' ')
        .filter(|g| !g.is_empty())
        .map(|g| g.parse::<GrantType>().map_err(|_| corrupt("client", "grants")))
        .collect::<Result<_, _>>()?;
    Ok(Client {
        id: f.parse("client_id", ClientId::parse)?,
        secret_digest: f.parse("secret_sha256", |raw| SecretDigest::try_from(raw.to_owned()))?,
        tenant: f.parse("tenant", TenantPath::parse)?,
        grants,
        scopes: f.parse("scopes", parse_scopes)?,
        max_access_token_lifetime: f.n("max_access_token_lifetime")?,
        refresh_idle_lifetime: f.n("refresh_idle_lifetime")?,
        refresh_absolute_lifetime: f.n("refresh_absolute_lifetime")?,
    })
}

#[async_trait]
impl ClientStore for DynamoStore {
    async fn client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        self.get(client_key(id), "GetItem client").await?.as_ref().map(client_from).transpose()
    }

    /// One strongly consistent BatchGetItem for the client and the grant's records.
    async fn client_with(
        &self,
        id: &ClientId,
        next: GrantRead<'_>,
        now: u64,
    ) -> Result<(Option<Client>, Option<GrantRecords>), StoreError> {
        let client_key = client_key(id);
        let client_pk = pk_of(&client_key);
        let mut keys = vec![client_key];
        match next {
            GrantRead::User { tenant, username } => keys.push(user_key(tenant, username)),
            GrantRead::RefreshToken { grant, digest } => {
                keys.extend([refresh_key(digest), grant_key(grant)]);
            }
        }
        let mut found = self.batch_get(keys).await?;
        let client = found.remove(&client_pk).as_ref().map(client_from).transpose()?;
        let records = match next {
            GrantRead::User { tenant, username } => GrantRecords::User(
                found
                    .remove(&pk_of(&user_key(tenant, username)))
                    .as_ref()
                    .map(user_from)
                    .transpose()?,
            ),
            GrantRead::RefreshToken { grant, digest } => {
                GrantRecords::RefreshToken(refresh_and_grant(&mut found, grant, digest, now)?)
            }
        };
        Ok((client, Some(records)))
    }

    async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(client_item(client)))
            .send()
            .await
            .map_err(|e| failure("PutItem client", &e))?;
        Ok(())
    }

    async fn create_client(&self, client: &Client) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(client_item(client)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(failure("PutItem new client", &e)),
        }
    }
}
