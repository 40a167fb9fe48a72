//! The one table's definition: keys, the issuance and list indexes and the TTL attribute. `template.yaml`
//! declares the same table; a test holds the two to agreement.

use aws_sdk_dynamodb::Client as DynamoClient;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
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

/// Creates the table (on-demand, with the issuance index) and turns TTL on.
pub async fn create_table(client: &DynamoClient, name: &str) -> Result<(), StoreError> {
    create_keys_and_index(client, name).await?;
    enable_ttl(client, name).await
}

/// The table without its TTL setting: what a DynamoDB-compatible server lacking
/// `UpdateTimeToLive` (dynalite, for the counting benchmark) can hold. Every read compares
/// `ttl` itself, so the service behaves the same on it.
pub async fn create_keys_and_index(client: &DynamoClient, name: &str) -> Result<(), StoreError> {
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(build_error)
    };
    let string_attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_error)
    };
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
