//! The service on DynamoDB (moto's server, real wire protocol): the table definition, the
//! round-trip budget, the grants end to end, and storage failures answering 503.

use std::collections::BTreeSet;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::dynamo::{self, RoundTrips};
use integration_tests::{
    APP_CLIENT, CC_CLIENT, TestServer, load_seed, repo_path, seeded_dynamodb, test_config,
};
use serde_json::Value;
use serde_yaml::Value as Yaml;
use token_service::auth::PresentedClient;
use token_service::clock::SystemClock;
use token_service::keys::{KeySet, SigningAlgorithm};
use token_service::setup::{self, Wiring};
use token_service::store::Stores;
use token_service::store::dynamodb::{DynamoStore, table};
use token_service::token::TokenParams;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn yaml_strings(value: &Yaml) -> Vec<String> {
    value
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn key_schema(value: &Yaml) -> Vec<(String, String)> {
    value
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap().to_owned(),
                k["KeyType"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn template_and_create_table_agree_on_keys_indexes_and_ttl() {
    let template: Yaml =
        serde_yaml::from_str(&std::fs::read_to_string(repo_path("../template.yaml")).unwrap())
            .unwrap();
    let declared = &template["Resources"]["TokenTable"]["Properties"];

    let store = dynamo::fresh_store().await;
    let client = store.sdk_client();
    let name = store.table_name();
    let created = client.describe_table().table_name(name).send().await.unwrap().table.unwrap();

    let created_keys: Vec<(String, String)> = created
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned()))
        .collect();
    assert_eq!(created_keys, key_schema(&declared["KeySchema"]));

    let created_attributes: BTreeSet<(String, String)> = created
        .attribute_definitions()
        .iter()
        .map(|a| (a.attribute_name().to_owned(), a.attribute_type().as_str().to_owned()))
        .collect();
    let declared_attributes: BTreeSet<(String, String)> = declared["AttributeDefinitions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().unwrap().to_owned(),
                a["AttributeType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(created_attributes, declared_attributes);

    let declared_indexes = declared["GlobalSecondaryIndexes"].as_sequence().unwrap();
    let created_indexes = created.global_secondary_indexes();
    assert_eq!(created_indexes.len(), declared_indexes.len());
    for declared in declared_indexes {
        let created = created_indexes
            .iter()
            .find(|i| i.index_name() == declared["IndexName"].as_str())
            .expect("index declared in the template is created");
        let keys: Vec<(String, String)> = created
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned()))
            .collect();
        assert_eq!(keys, key_schema(&declared["KeySchema"]));
        let projection = created.projection().unwrap();
        assert_eq!(
            projection.projection_type().unwrap().as_str(),
            declared["Projection"]["ProjectionType"].as_str().unwrap()
        );
        let created_projected: BTreeSet<String> =
            projection.non_key_attributes().iter().cloned().collect();
        let declared_projected: BTreeSet<String> =
            yaml_strings(&declared["Projection"]["NonKeyAttributes"]).into_iter().collect();
        assert_eq!(created_projected, declared_projected);
    }

    let ttl = client.describe_time_to_live().table_name(name).send().await.unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), declared["TimeToLiveSpecification"]["AttributeName"].as_str());
    assert_eq!(ttl.attribute_name(), Some(table::TTL));
    assert_eq!(declared["TimeToLiveSpecification"]["Enabled"].as_bool(), Some(true));
    assert_eq!(declared["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    assert_eq!(
        declared["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
    assert_eq!(declared["SSESpecification"]["SSEEnabled"].as_bool(), Some(true));
    assert_eq!(template["Resources"]["TokenTable"]["DeletionPolicy"].as_str(), Some("Retain"));
}

/// Issuing costs at most two round trips once the client record is cached (and client
/// credentials costs two even cold); every request is counted by an SDK interceptor.
#[tokio::test]
async fn round_trips_stay_within_budget() {
    let (store, round_trips) = dynamo::fresh_store_counting().await;
    let store = Arc::new(store);
    load_seed(&repo_path("seed.toml")).install(store.as_ref(), store.as_ref()).await.unwrap();
    round_trips.take();
    let config = test_config("https://issuer", SigningAlgorithm::ES256);
    let keys = KeySet::generate(SigningAlgorithm::ES256).unwrap();
    let service = Wiring::with_system_clock(config, keys, Stores::all(store)).token_service();
    let authenticate = async |(id, secret): (&str, &str)| {
        service
            .authenticator()
            .authenticate(&PresentedClient { id: id.into(), secret: secret.into() })
            .await
            .unwrap()
    };
    let count = |round_trips: &RoundTrips| round_trips.take();

    let cc = authenticate(CC_CLIENT).await;
    service
        .issue(&cc, &TokenParams { grant_type: Some("client_credentials"), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(count(&round_trips), 2, "client_credentials, cold: GetItem client + PutItem issued");
    let cc = authenticate(CC_CLIENT).await;
    service
        .issue(&cc, &TokenParams { grant_type: Some("client_credentials"), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(count(&round_trips), 1, "client_credentials, warm: PutItem issued");

    authenticate(APP_CLIENT).await; // warms the client cache, as any earlier request would
    round_trips.take();
    let app = authenticate(APP_CLIENT).await;
    let login = TokenParams {
        grant_type: Some("password"),
        username: Some("alice"),
        password: Some("alice-password-1"),
        ..Default::default()
    };
    let first = service.issue(&app, &login).await.unwrap();
    assert_eq!(count(&round_trips), 2, "password, warm: GetItem user + TransactWriteItems");

    let refresh_token = first.refresh_token.unwrap();
    let refresh = TokenParams {
        grant_type: Some("refresh_token"),
        refresh_token: Some(&refresh_token),
        ..Default::default()
    };
    service.issue(&app, &refresh).await.unwrap();
    assert_eq!(count(&round_trips), 2, "refresh, warm: BatchGetItem + TransactWriteItems");

    assert!(service.issue(&app, &refresh).await.is_err());
    assert_eq!(count(&round_trips), 2, "reuse: BatchGetItem + UpdateItem revoking the grant");
}

#[tokio::test]
async fn every_grant_works_end_to_end_on_dynamodb() {
    use integration_tests::flows::{error_of, login, refresh};
    let server = TestServer::start_on_dynamodb().await;
    assert_eq!(
        server.token(&[("grant_type", "client_credentials")], Some(CC_CLIENT)).await.status(),
        200
    );
    let first = login(&server).await;
    let old = first["refresh_token"].as_str().unwrap();
    let second: Value = refresh(&server, APP_CLIENT, old).await.json().await.unwrap();
    let current = second["refresh_token"].as_str().unwrap();
    let wrong = [("grant_type", "password"), ("username", "alice"), ("password", "nope")];
    assert_eq!(server.token(&wrong, Some(APP_CLIENT)).await.status(), 400);

    // Reuse of the rotated token revokes the grant, on DynamoDB as in memory.
    assert_eq!(
        error_of(refresh(&server, APP_CLIENT, old).await).await,
        (400, "invalid_grant".into())
    );
    assert_eq!(
        error_of(refresh(&server, APP_CLIENT, current).await).await,
        (400, "invalid_grant".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_on_dynamodb_have_exactly_one_winner() {
    let server = Arc::new(
        TestServer::start_on(
            SigningAlgorithm::ES256,
            Arc::new(SystemClock),
            seeded_dynamodb().await,
        )
        .await,
    );
    let login =
        [("grant_type", "password"), ("username", "alice"), ("password", "alice-password-1")];
    let body: Value = server.token(&login, Some(APP_CLIENT)).await.json().await.unwrap();
    let token = body["refresh_token"].as_str().unwrap().to_owned();
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let (server, token) = (server.clone(), token.clone());
            tokio::spawn(async move {
                let response = server
                    .token(
                        &[("grant_type", "refresh_token"), ("refresh_token", &token)],
                        Some(APP_CLIENT),
                    )
                    .await;
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap();
                (status, body["error"].as_str().unwrap_or("").to_owned())
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.unwrap());
    }
    let wins = outcomes.iter().filter(|(status, _)| *status == 200).count();
    let invalid_grants = outcomes
        .iter()
        .filter(|(status, error)| *status == 400 && error == "invalid_grant")
        .count();
    assert_eq!((wins, invalid_grants), (1, 19), "{outcomes:?}");
}

/// A store whose SDK client talks to `endpoint` instead of the local server.
async fn store_at(endpoint: &str) -> Stores {
    let sdk_config = setup::aws_config().await;
    let config =
        aws_sdk_dynamodb::config::Builder::from(&sdk_config).endpoint_url(endpoint).build();
    Stores::all(Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        "unreachable",
    )))
}

async fn assert_unavailable(stores: Stores) {
    let server = TestServer::start_on(SigningAlgorithm::ES256, Arc::new(SystemClock), stores).await;
    let response = server.token(&[("grant_type", "client_credentials")], Some(CC_CLIENT)).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(body.get("access_token").is_none());
    let description = body["error_description"].as_str().unwrap();
    assert!(
        !description.contains("127.0.0.1") && !description.contains("dispatch"),
        "{description}"
    );
}

#[tokio::test]
async fn unreachable_dynamodb_answers_503() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    assert_unavailable(store_at(&endpoint).await).await;
}

/// A stand-in for DynamoDB that answers every request with the given status and error type.
async fn failing_dynamodb(status: u16, error_type: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buffer).await;
                let body = format!(
                    r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{error_type}","message":"injected"}}"#
                );
                let response = format!(
                    "HTTP/1.1 {status} Error\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: test\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    endpoint
}

#[tokio::test]
async fn dynamodb_internal_errors_answer_503() {
    assert_unavailable(store_at(&failing_dynamodb(500, "InternalServerError").await).await).await;
}

#[tokio::test]
async fn dynamodb_throttling_answers_503() {
    let endpoint = failing_dynamodb(400, "ProvisionedThroughputExceededException").await;
    assert_unavailable(store_at(&endpoint).await).await;
}

/// The seeded test table behind a proxy that can fail the named operations.
async fn seeded_store_behind(failing: &'static [&'static str]) -> (Stores, dynamo::FaultyEndpoint) {
    let store = dynamo::fresh_store().await;
    load_seed(&repo_path("seed.toml")).install(&store, &store).await.unwrap();
    let sdk_config = setup::aws_config().await;
    let endpoint = dynamo::faulty_endpoint(failing).await;
    let config =
        aws_sdk_dynamodb::config::Builder::from(&sdk_config).endpoint_url(&endpoint.url).build();
    let proxied = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), store.table_name());
    (Stores::all(Arc::new(proxied)), endpoint)
}

const WRITES: &[&str] = &["PutItem", "UpdateItem", "TransactWriteItems"];

/// CVE-2020-15223 was a 200 after a failed revocation write: here every failed write is a 503,
/// and the token stays exactly as valid as before.
#[tokio::test]
async fn failed_revocation_writes_answer_503_never_200() {
    use integration_tests::flows::{error_of, is_active, login, revoke, revoke_self};
    let (stores, faults) = seeded_store_behind(WRITES).await;
    let server = TestServer::start_on(SigningAlgorithm::ES256, Arc::new(SystemClock), stores).await;
    let tokens = login(&server).await;
    let (access, refresh) =
        (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());

    faults.fail(true);
    for token in [access, refresh] {
        let response = revoke(&server, APP_CLIENT, &[("token", token)]).await;
        assert_eq!(error_of(response).await, (503, "temporarily_unavailable".into()));
    }
    let response = revoke_self(&server, access).send().await.unwrap();
    assert_eq!(error_of(response).await, (503, "temporarily_unavailable".into()));
    let response = server.token(&[("grant_type", "client_credentials")], Some(CC_CLIENT)).await;
    assert_eq!(
        error_of(response).await,
        (503, "temporarily_unavailable".into()),
        "no token without its record"
    );

    faults.fail(false);
    assert!(is_active(&server, access).await, "a failed revocation changed nothing");
}

/// Verification fails closed: when the revocation state cannot be read, introspection and
/// bearer revocation answer 503, never "active" and never 200.
#[tokio::test]
async fn unreadable_revocation_state_fails_closed() {
    use integration_tests::flows::{error_of, introspect_as, login, revoke_self};
    let (stores, faults) = seeded_store_behind(&["BatchGetItem"]).await;
    let server = TestServer::start_on(SigningAlgorithm::ES256, Arc::new(SystemClock), stores).await;
    let tokens = login(&server).await;
    let access = tokens["access_token"].as_str().unwrap();
    faults.fail(true);
    let response = introspect_as(&server, APP_CLIENT, &[("token", access)]).await;
    assert_eq!(error_of(response).await, (503, "temporarily_unavailable".into()));
    let response = revoke_self(&server, access).send().await.unwrap();
    assert_eq!(error_of(response).await, (503, "temporarily_unavailable".into()));
}

/// Verifying a token reads its revocation record, grant and every cutoff layer in one
/// BatchGetItem; bearer revocation records the device id with a TTL at the token's expiry.
#[tokio::test]
async fn verification_is_one_round_trip_and_logout_records_the_device() {
    let (store, round_trips) = dynamo::fresh_store_counting().await;
    load_seed(&repo_path("seed.toml")).install(&store, &store).await.unwrap();
    let config = test_config("https://issuer", SigningAlgorithm::ES256);
    let keys = KeySet::generate(SigningAlgorithm::ES256).unwrap();
    let wiring = Wiring::with_system_clock(config, keys, Stores::all(Arc::new(store.clone())));
    let service = wiring.token_service();
    let client = service
        .authenticator()
        .authenticate(&PresentedClient { id: APP_CLIENT.0.into(), secret: APP_CLIENT.1.into() })
        .await
        .unwrap();
    let login = TokenParams {
        grant_type: Some("password"),
        username: Some("alice"),
        password: Some("alice-password-1"),
        ..Default::default()
    };
    let access = service.issue(&client, &login).await.unwrap().access_token;

    let verifier = wiring.verifier();
    round_trips.take();
    let verified = verifier.verify(&access).await.unwrap();
    assert_eq!(round_trips.take(), 1, "one BatchGetItem");

    wiring.revocation_service().revoke_self(&access, None, Some("device-42")).await.unwrap();
    let item = store
        .sdk_client()
        .get_item()
        .table_name(store.table_name())
        .key("pk", AttributeValue::S(format!("REVOKED#{}", verified.id)))
        .key("sk", AttributeValue::S("REVOKED".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("revocation record");
    assert_eq!(item["device_id"], AttributeValue::S("device-42".into()));
    assert_eq!(
        item["ttl"],
        AttributeValue::N(verified.claims.exp.to_string()),
        "expires with the token"
    );
    assert!(verifier.verify(&access).await.is_err());
}

/// A DynamoDB that accepts connections and never answers: the SDK's per-attempt and
/// per-operation timeouts turn it into a 503 within seconds, not a hung request.
#[tokio::test]
async fn a_dynamodb_that_hangs_answers_503_within_the_timeouts() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = std::time::Instant::now();
    assert_unavailable(store_at(&endpoint).await).await;
    let elapsed = started.elapsed();
    assert!(elapsed < std::time::Duration::from_secs(8), "answered after {elapsed:?}");
}
