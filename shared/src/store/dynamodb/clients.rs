//! Client records.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};

use super::grants::{grant_key, refresh_and_grant, refresh_key};
use super::login_attempts::{attempts_from, login_keys};
use super::users::{user_from, user_key};
use super::{
    DynamoStore, Fields, Item, ListStart, Overwrite, applied, b, corrupt, key, list_keys, n,
    parse_scopes, pk_of, put, root_tenant, s,
};
use crate::domain::{
    AuthMethod, Client, ClientId, ClientJwks, Credentials, GrantType, PreviousSecret, SecretDigest,
    TenantPath,
};
use crate::store::{
    ClientPosition, ClientStore, GrantRead, GrantRecords, Page, PageRequest, StoreError, list_key,
};

pub(super) fn client_key(id: &ClientId) -> Item {
    key(format!("CLIENT#{id}"), "CLIENT")
}

/// Attributes a client item holds only for some clients: removed by an update that drops them.
const OPTIONAL: [&str; 4] =
    ["secret_sha256", "previous_secret_sha256", "previous_secret_valid_until", "jwks"];

/// Written by creation only: the client is counted in its tenant's `members`. Clients stored
/// before tenants were counted lack it, and their deletion leaves the count alone.
pub(super) const COUNTED: &str = "counted";

fn list_partition(root: &str) -> String {
    format!("CLIENTS#{root}")
}

/// Where a client of `tenant` is listed.
pub(super) fn client_list_keys(
    tenant: &TenantPath,
    id: &ClientId,
) -> [(String, aws_sdk_dynamodb::types::AttributeValue); 2] {
    list_keys(list_partition(root_tenant(tenant)), list_key::client(tenant, id))
}

fn client_item(client: &Client) -> Result<Item, StoreError> {
    let grants: Vec<&str> = client.grants.iter().map(|grant| grant.as_str()).collect();
    let mut item = client_key(&client.id);
    item.extend([
        ("client_id".to_owned(), s(client.id.as_str())),
        ("auth_method".to_owned(), s(client.credentials.method().as_str())),
        ("tenant".to_owned(), s(client.tenant.as_str())),
        ("grants".to_owned(), s(grants.join(" "))),
        ("scopes".to_owned(), s(client.scopes.to_string())),
        ("max_access_token_lifetime".to_owned(), n(client.max_access_token_lifetime)),
        ("refresh_idle_lifetime".to_owned(), n(client.refresh_idle_lifetime)),
        ("refresh_absolute_lifetime".to_owned(), n(client.refresh_absolute_lifetime)),
        ("refresh_reuse_interval".to_owned(), n(client.refresh_reuse_interval)),
        ("dpop_bound_access_tokens".to_owned(), b(client.dpop_bound_access_tokens)),
        ("enabled".to_owned(), b(client.enabled)),
        ("version".to_owned(), n(client.version)),
    ]);
    item.extend(client_list_keys(&client.tenant, &client.id));
    match &client.credentials {
        Credentials::Secret { digest, previous, .. } => {
            item.insert("secret_sha256".to_owned(), s(digest.clone()));
            if let Some(previous) = previous {
                item.insert("previous_secret_sha256".to_owned(), s(previous.digest.clone()));
                item.insert("previous_secret_valid_until".to_owned(), n(previous.valid_until));
            }
        }
        Credentials::PrivateKeyJwt { jwks } => {
            let text = serde_json::to_string(jwks)
                .map_err(|e| StoreError(format!("encoding a client's keys: {e}")))?;
            item.insert("jwks".to_owned(), s(text));
        }
    }
    Ok(item)
}

fn digest(raw: &str) -> Result<SecretDigest, ()> {
    SecretDigest::try_from(raw.to_owned()).map_err(|_| ())
}

fn credentials_from(f: &Fields<'_>) -> Result<Credentials, StoreError> {
    // Clients stored before other methods existed authenticated with client_secret_basic.
    let method = match f.opt_s("auth_method") {
        None => AuthMethod::ClientSecretBasic,
        Some(raw) => raw.parse().map_err(|_| corrupt("client", "auth_method"))?,
    };
    if !method.uses_secret() {
        let jwks = f.parse("jwks", |raw| {
            serde_json::from_str::<serde_json::Value>(raw)
                .map_err(|_| ())
                .and_then(|value| ClientJwks::parse(value).map_err(|_| ()))
        })?;
        return Ok(Credentials::PrivateKeyJwt { jwks });
    }
    let previous = match f.opt_s("previous_secret_sha256") {
        None => None,
        Some(_) => Some(PreviousSecret {
            digest: f.parse("previous_secret_sha256", digest)?,
            valid_until: f.n("previous_secret_valid_until")?,
        }),
    };
    Ok(Credentials::Secret { method, digest: f.parse("secret_sha256", digest)?, previous })
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
        credentials: credentials_from(&f)?,
        tenant: f.parse("tenant", TenantPath::parse)?,
        grants,
        scopes: f.parse("scopes", parse_scopes)?,
        max_access_token_lifetime: f.n("max_access_token_lifetime")?,
        refresh_idle_lifetime: f.n("refresh_idle_lifetime")?,
        refresh_absolute_lifetime: f.n("refresh_absolute_lifetime")?,
        // Absent on clients stored before these settings existed: their defaults.
        refresh_reuse_interval: f.opt_n("refresh_reuse_interval")?.unwrap_or(0),
        dpop_bound_access_tokens: f.opt_bool("dpop_bound_access_tokens")?.unwrap_or(false),
        enabled: f.opt_bool("enabled")?.unwrap_or(true),
        version: f.opt_n("version")?.unwrap_or(0),
    })
}

/// The condition that a stored record is still at `version`; records stored before versions
/// existed are at version 0.
pub(super) fn at_version(version: u64) -> &'static str {
    if version == 0 {
        "(attribute_not_exists(version) OR version = :version)"
    } else {
        "version = :version"
    }
}

fn delete(key: Item, condition: &str, values: Item, table: &str) -> Result<Delete, StoreError> {
    Delete::builder()
        .table_name(table)
        .set_key(Some(key))
        .condition_expression(condition)
        .set_expression_attribute_values(Some(values))
        .build()
        .map_err(|e| StoreError(format!("building a delete: {e}")))
}

/// The keys of what `next` reads.
fn records_keys(next: GrantRead<'_>) -> Vec<Item> {
    match next {
        GrantRead::User { tenant, username, login } => {
            let mut keys = vec![user_key(tenant, username)];
            keys.extend(login_keys(login));
            keys
        }
        GrantRead::RefreshToken { grant, digest } => vec![refresh_key(digest), grant_key(grant)],
    }
}

/// What `next` found among batch-read items.
fn records_from(
    found: &mut HashMap<String, Item>,
    next: GrantRead<'_>,
    now: u64,
) -> Result<GrantRecords, StoreError> {
    Ok(match next {
        GrantRead::User { tenant, username, login } => GrantRecords::User {
            user: found
                .remove(&pk_of(&user_key(tenant, username)))
                .as_ref()
                .map(user_from)
                .transpose()?,
            attempts: attempts_from(found, login, now)?,
        },
        GrantRead::RefreshToken { grant, digest } => {
            GrantRecords::RefreshToken(refresh_and_grant(found, grant, digest, now)?)
        }
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
        keys.extend(records_keys(next));
        let mut found = self.batch_get(keys).await?;
        let client = found.remove(&client_pk).as_ref().map(client_from).transpose()?;
        Ok((client, Some(records_from(&mut found, next, now)?)))
    }

    /// One strongly consistent BatchGetItem for the grant's records.
    async fn grant_records(
        &self,
        next: GrantRead<'_>,
        now: u64,
    ) -> Result<Option<GrantRecords>, StoreError> {
        let mut found = self.batch_get(records_keys(next)).await?;
        Ok(Some(records_from(&mut found, next, now)?))
    }

    async fn create_client(&self, client: &Client) -> Result<bool, StoreError> {
        let mut item = client_item(client)?;
        item.insert(COUNTED.to_owned(), b(true));
        self.write_joining(&client.tenant, || {
            Ok(vec![put(item.clone(), Some("attribute_not_exists(pk)"), &self.table)?])
        })
        .await
    }

    async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
        let stored = Client { version: client.version + 1, ..client.clone() };
        let values = HashMap::from([
            (":tenant".to_owned(), s(client.tenant.as_str())),
            (":version".to_owned(), n(client.version)),
        ]);
        let condition = format!("tenant = :tenant AND {}", at_version(client.version));
        Overwrite::new(client_item(&stored)?, &OPTIONAL, &condition, values)
            .send(self, "UpdateItem client")
            .await
    }

    async fn delete_client(&self, client: &Client) -> Result<bool, StoreError> {
        let values = || HashMap::from([(":tenant".to_owned(), s(client.tenant.as_str()))]);
        let counted = self
            .write_leaving(&client.tenant, || {
                let condition = format!("tenant = :tenant AND attribute_exists({COUNTED})");
                let delete = delete(client_key(&client.id), &condition, values(), &self.table)?;
                Ok(vec![TransactWriteItem::builder().delete(delete).build()])
            })
            .await?;
        if counted {
            return Ok(true);
        }
        // A client stored before tenants counted their members: deleted without a count.
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(client_key(&client.id)))
            .condition_expression(format!("tenant = :tenant AND attribute_not_exists({COUNTED})"))
            .set_expression_attribute_values(Some(values()))
            .send()
            .await;
        applied(result, "DeleteItem client")
    }

    async fn clients(
        &self,
        within: &TenantPath,
        page: PageRequest<'_, ClientPosition>,
    ) -> Result<Page<Client, ClientPosition>, StoreError> {
        let after = page.after.map(|(tenant, id)| ListStart {
            key: client_key(id),
            sort: list_key::client(tenant, id),
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
        super::decoded_page(&items, more, client_from, |client| {
            (client.tenant.clone(), client.id.clone())
        })
    }
}
