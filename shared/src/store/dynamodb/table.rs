//! The one table's definition: keys, the issuance and list indexes and the TTL attribute. `template.yaml`
//! declares the same table; a test holds the two to agreement.

use aws_sdk_dynamodb::Client as DynamoClient;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};

use crate::error::StoreError;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
/// Epoch seconds after which DynamoDB may delete the item. Deletion is eventual, so every read
/// also compares it with "now".
pub const TTL: &str = "ttl";
/// The issuance log's index: partition `<root tenant>#<shard>`, sort `<tenant path>/#<iat>#<id>`.
pub const ISSUED_INDEX: &str = "issued_by_tenant";
pub const ISSUED_PK: &str = "issued_pk";
pub const ISSUED_SK: &str = "issued_sk";
/// A count narrowed by client reads only that client's entries: partition
/// `<client id>#<shard>`, sort `issued_sk`.
pub const ISSUED_BY_CLIENT: &str = "issued_by_client";
pub const ISSUED_CLIENT_PK: &str = "issued_client_pk";
/// A count narrowed by a user reads only that user's entries, sparse (tokens whose subject is
/// their client lack the key): partition `USER#<tenant>#<user id>`, sort `issued_sk`.
pub const ISSUED_BY_SUBJECT: &str = "issued_by_subject";
pub const ISSUED_SUBJECT_PK: &str = "issued_subject_pk";
/// The admin lists' index, sparse (only listed items carry its keys): partition
/// `CLIENTS#<root>`, `USERS#<root>`, `TENANTS#<root>` or `SESSIONS#<tenant>#<user id>`, sort
/// the [`crate::store::list_key`] of the item.
pub const LISTED_INDEX: &str = "listed_by_tenant";
pub const LIST_PK: &str = "list_pk";
pub const LIST_SK: &str = "list_sk";

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("building a table request: {e}"))
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().map_err(build_error)
}

fn string_attribute(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_error)
}

/// Creates the table (on-demand, with the issuance index) and turns TTL on.
pub async fn create_table(client: &DynamoClient, name: &str) -> Result<(), StoreError> {
    create_keys_and_index(client, name).await?;
    enable_ttl(client, name).await
}

/// The table without its TTL setting: what a DynamoDB-compatible server lacking
/// `UpdateTimeToLive` (dynalite, for the counting benchmark) can hold. Every read compares
/// `ttl` itself, so the service behaves the same on it.
pub async fn create_keys_and_index(client: &DynamoClient, name: &str) -> Result<(), StoreError> {
    let index = GlobalSecondaryIndex::builder()
        .index_name(ISSUED_INDEX)
        .key_schema(key(ISSUED_PK, KeyType::Hash)?)
        .key_schema(key(ISSUED_SK, KeyType::Range)?)
        // Log entries are small and a count needs all of them: project everything.
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(build_error)?;
    let narrowed = |name: &str, partition: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(partition, KeyType::Hash)?)
            .key_schema(key(ISSUED_SK, KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(build_error)
    };
    let listed = GlobalSecondaryIndex::builder()
        .index_name(LISTED_INDEX)
        .key_schema(key(LIST_PK, KeyType::Hash)?)
        .key_schema(key(LIST_SK, KeyType::Range)?)
        // A list page returns whole records: project everything rather than read each back.
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(build_error)?;
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .attribute_definitions(string_attribute(PK)?)
        .attribute_definitions(string_attribute(SK)?)
        .attribute_definitions(string_attribute(ISSUED_PK)?)
        .attribute_definitions(string_attribute(ISSUED_SK)?)
        .attribute_definitions(string_attribute(ISSUED_CLIENT_PK)?)
        .attribute_definitions(string_attribute(ISSUED_SUBJECT_PK)?)
        .attribute_definitions(string_attribute(LIST_PK)?)
        .attribute_definitions(string_attribute(LIST_SK)?)
        .global_secondary_indexes(index)
        .global_secondary_indexes(listed)
        .global_secondary_indexes(narrowed(ISSUED_BY_CLIENT, ISSUED_CLIENT_PK)?)
        .global_secondary_indexes(narrowed(ISSUED_BY_SUBJECT, ISSUED_SUBJECT_PK)?)
        .send()
        .await
        .map_err(|e| StoreError(format!("creating table {name}: {}", super::describe(&e))))?;
    Ok(())
}

/// The narrowed-count indexes, for a table made before them: `(index, partition key)`.
const NARROWED_INDEXES: [(&str, &str); 2] =
    [(ISSUED_BY_CLIENT, ISSUED_CLIENT_PK), (ISSUED_BY_SUBJECT, ISSUED_SUBJECT_PK)];

/// How long [`add_missing_indexes`] waits for one index to finish building.
const INDEX_BUILD_WAIT: std::time::Duration = std::time::Duration::from_secs(3_600);

/// Creates the narrowed-count indexes a table made before them lacks (`tokenctl upgrade-table
/// --add-indexes`, for a table `tokenctl create-table` made; a stack's table gets them from
/// its template). DynamoDB builds one index per UpdateTable, so each is created and waited for
/// in turn. Returns the indexes created.
pub async fn add_missing_indexes(
    client: &DynamoClient,
    name: &str,
) -> Result<Vec<&'static str>, StoreError> {
    refuse_stack_tables(client, name).await?;
    let mut created = Vec::new();
    for (index, partition) in NARROWED_INDEXES {
        match index_status(client, name, index).await? {
            Some(IndexStatus::Active) => continue,
            // Left building by an interrupted run: DynamoDB builds one index at a time, so the
            // next can only be added once this one is done.
            Some(_) => {
                wait_until_active(client, name, index).await?;
                continue;
            }
            None => {}
        }
        let action = CreateGlobalSecondaryIndexAction::builder()
            .index_name(index)
            .key_schema(key(partition, KeyType::Hash)?)
            .key_schema(key(ISSUED_SK, KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(build_error)?;
        client
            .update_table()
            .table_name(name)
            .attribute_definitions(string_attribute(partition)?)
            .attribute_definitions(string_attribute(ISSUED_SK)?)
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder().create(action).build(),
            )
            .send()
            .await
            .map_err(|e| {
                StoreError(format!("adding {index} to {name}: {}", super::describe(&e)))
            })?;
        wait_until_active(client, name, index).await?;
        created.push(index);
    }
    Ok(created)
}

async fn wait_until_active(
    client: &DynamoClient,
    name: &str,
    index: &str,
) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    while index_status(client, name, index).await? != Some(IndexStatus::Active) {
        if started.elapsed() > INDEX_BUILD_WAIT {
            return Err(StoreError(format!("{index} on {name} is still building")));
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
    Ok(())
}

/// A table CloudFormation made is changed only through its stack: an index added behind the
/// stack's back makes the stack's next update, which adds the same index, fail.
async fn refuse_stack_tables(client: &DynamoClient, name: &str) -> Result<(), StoreError> {
    let described = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(|e| StoreError(format!("describing {name}: {}", super::describe(&e))))?;
    let Some(arn) = described.table.and_then(|table| table.table_arn) else {
        return Ok(());
    };
    let tags =
        client.list_tags_of_resource().resource_arn(arn).send().await.map_err(|e| {
            StoreError(format!("listing the tags of {name}: {}", super::describe(&e)))
        })?;
    if let Some(stack) = tags.tags().iter().find(|tag| tag.key() == "aws:cloudformation:stack-name")
    {
        return Err(StoreError(format!(
            "{name} belongs to the stack {}: add its indexes by deploying the template",
            stack.value()
        )));
    }
    Ok(())
}

async fn index_status(
    client: &DynamoClient,
    name: &str,
    index: &str,
) -> Result<Option<IndexStatus>, StoreError> {
    let described = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(|e| StoreError(format!("describing {name}: {}", super::describe(&e))))?;
    let indexes = described.table.and_then(|t| t.global_secondary_indexes).unwrap_or_default();
    Ok(indexes
        .into_iter()
        .find(|found| found.index_name() == Some(index))
        // moto reports no status; a listed index without one is taken as built.
        .map(|found| found.index_status.unwrap_or(IndexStatus::Active)))
}

async fn enable_ttl(client: &DynamoClient, name: &str) -> Result<(), StoreError> {
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL)
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await
        .map_err(|e| StoreError(format!("enabling TTL on {name}: {}", super::describe(&e))))?;
    Ok(())
}
