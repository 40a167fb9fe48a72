//! The service on DynamoDB (moto's server, real wire protocol): the table definition, the
//! round-trip budget, the grants end to end, and storage failures answering 503.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::dynamo::{self, Fault, RoundTrips};
use integration_tests::{
    ADMIN_CLIENT, APP_CLIENT, CC_CLIENT, OTHER_APP, TestServer, alice_login, load_seed, repo_path,
    seeded_dynamodb, test_config,
};
use serde_json::Value;
use serde_yaml::Value as Yaml;
use token_service::auth::PresentedClient;
use token_service::clock::SystemClock;
use token_service::domain::MAX_LIFETIME;
use token_service::jwt::verifiable_until;
use token_service::keys::{KeySet, SigningAlgorithm};
use token_service::setup::{self, SigningWiring};
use token_service::store::Stores;
use token_service::store::dynamodb::{DynamoStore, table};
use token_service::token::{TokenParams, TokenResponse, TokenService};
use token_service::verify::Presented;
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

/// The services on a fresh seeded table, its round trips counted.
async fn counted_wiring() -> (DynamoStore, RoundTrips, SigningWiring) {
    let (store, round_trips) = dynamo::fresh_store_counting().await;
    load_seed(&repo_path("seed.toml")).install(&store, &store, &store).await.unwrap();
    let config = test_config("https://issuer", SigningAlgorithm::ES256);
    let keys = KeySet::generate(SigningAlgorithm::ES256).unwrap();
    let wiring =
        SigningWiring::with_system_clock(config, keys, Stores::all(Arc::new(store.clone())));
    (store, round_trips, wiring)
}

/// Authenticates and issues as the token endpoint does; returns the answer and how many
/// round trips it took.
async fn issue_counted(
    service: &TokenService,
    round_trips: &RoundTrips,
    (id, secret): (&str, &str),
    params: &TokenParams<'_>,
) -> (Result<TokenResponse, token_service::error::Error>, usize) {
    round_trips.take();
    let presented = PresentedClient::secret(id, secret);
    let answer = service.authenticate_and_issue(&presented, params).await;
    (answer, round_trips.take())
}

/// Issuing costs at most two round trips, cold or warm, as an SDK interceptor counts them. The
/// one exception is a password login without `tenant_path` on an instance that has not cached
/// the client: the user's tenant is then the client's, which only the client record tells.
#[tokio::test]
async fn round_trips_stay_within_budget() {
    let (store, round_trips, wiring) = counted_wiring().await;
    // A new instance: nothing cached.
    let cold = || {
        let config = test_config("https://issuer", SigningAlgorithm::ES256);
        let keys = KeySet::generate(SigningAlgorithm::ES256).unwrap();
        SigningWiring::with_system_clock(config, keys, Stores::all(Arc::new(store.clone())))
            .token_service()
    };
    let warm = wiring.token_service();
    let trips = async |service: &TokenService, client, params: &TokenParams<'_>| {
        let (answer, trips) = issue_counted(service, &round_trips, client, params).await;
        (answer.unwrap(), trips)
    };

    let cc = TokenParams { grant_type: Some("client_credentials"), ..Default::default() };
    assert_eq!(
        trips(&cold(), CC_CLIENT, &cc).await.1,
        2,
        "client_credentials, cold: GetItem client + PutItem issued"
    );
    trips(&warm, CC_CLIENT, &cc).await;
    assert_eq!(trips(&warm, CC_CLIENT, &cc).await.1, 1, "client_credentials, warm: PutItem issued");

    let login = alice_login();
    let (first, cold_login) = trips(&cold(), APP_CLIENT, &login).await;
    assert_eq!(cold_login, 2, "password, cold: BatchGetItem client + user, TransactWriteItems");
    trips(&warm, APP_CLIENT, &login).await;
    assert_eq!(
        trips(&warm, APP_CLIENT, &login).await.1,
        2,
        "password, warm: BatchGetItem user + login counters, TransactWriteItems"
    );
    let wrong = TokenParams { password: Some("not-alices-password"), ..login };
    let (answer, failed) = issue_counted(&warm, &round_trips, APP_CLIENT, &wrong).await;
    assert!(answer.is_err());
    assert_eq!(failed, 3, "failed password: BatchGetItem, then an UpdateItem per counter");
    assert_eq!(
        trips(&warm, APP_CLIENT, &login).await.1,
        2,
        "a success after failures: BatchGetItem, TransactWriteItems that also clears the counters"
    );
    let no_tenant_path = TokenParams { tenant_path: None, ..login };
    assert_eq!(
        trips(&cold(), APP_CLIENT, &no_tenant_path).await.1,
        3,
        "password without tenant_path, cold: the client first, then its tenant's user"
    );
    assert_eq!(trips(&warm, APP_CLIENT, &no_tenant_path).await.1, 2, "the same, warm");

    let token = first.refresh_token.unwrap();
    let refresh = TokenParams {
        grant_type: Some("refresh_token"),
        refresh_token: Some(&token),
        ..Default::default()
    };
    let (second, cold_refresh) = trips(&cold(), APP_CLIENT, &refresh).await;
    assert_eq!(
        cold_refresh, 2,
        "refresh, cold: BatchGetItem client + token + grant, TransactWriteItems"
    );
    let token = second.refresh_token.unwrap();
    let refresh = TokenParams { refresh_token: Some(&token), device_id: Some("phone"), ..refresh };
    let (third, warm_refresh) = trips(&warm, APP_CLIENT, &refresh).await;
    assert_eq!(
        warm_refresh, 2,
        "refresh with a device id, warm: BatchGetItem + TransactWriteItems"
    );
    let token = third.refresh_token.unwrap();
    let refresh = TokenParams { refresh_token: Some(&token), device_id: None, ..refresh };
    assert_eq!(
        trips(&warm, APP_CLIENT, &refresh).await.1,
        2,
        "refresh, warm: BatchGetItem + TransactWriteItems"
    );

    let (reused, reuse_trips) = issue_counted(&warm, &round_trips, APP_CLIENT, &refresh).await;
    assert!(reused.is_err());
    assert_eq!(reuse_trips, 2, "reuse: BatchGetItem + UpdateItem revoking the grant");
}

/// Key-bound authentication costs one write each, its replay record: a `private_key_jwt`
/// client's assertion, and a DPoP proof. Nothing else changes in the budget.
#[tokio::test]
async fn an_assertion_and_a_dpop_proof_each_add_one_write() {
    use integration_tests::jose::ClientKey;
    use jsonwebtoken::Algorithm;
    use token_service::clock::Clock;
    use token_service::domain::{
        Client, ClientId, ClientJwks, Credentials, GrantType, ScopeSet, TenantPath,
    };
    use token_service::store::ClientStore;

    let (store, round_trips, wiring) = counted_wiring().await;
    let key = ClientKey::generate(Algorithm::ES256);
    let mut signer = Client::new(
        ClientId::parse("signer").unwrap(),
        Credentials::PrivateKeyJwt { jwks: ClientJwks::parse(key.jwks()).unwrap() },
        TenantPath::parse("/acme").unwrap(),
    );
    signer.grants = [GrantType::ClientCredentials].into();
    signer.scopes = ScopeSet::parse("read").unwrap();
    assert!(store.create_client(&signer).await.unwrap());
    let service = wiring.token_service();
    let now = SystemClock.now();
    let assertion = || PresentedClient::Assertion {
        id: "signer".into(),
        assertion: key.assertion("signer", "https://issuer", now),
        endpoint: "/oauth2/token",
    };
    let cc = TokenParams { grant_type: Some("client_credentials"), ..Default::default() };
    let counted = async |presented: PresentedClient, params: &TokenParams<'_>| {
        round_trips.take();
        let answer = service.authenticate_and_issue(&presented, params).await;
        let operations = round_trips.take_operations();
        (answer.unwrap(), operations)
    };
    counted(assertion(), &cc).await; // warms the client cache
    let (_, warm) = counted(assertion(), &cc).await;
    assert_eq!(warm, ["PutItem", "PutItem"], "warm: the replay record, the issued token");

    let proof = key.proof("POST", "https://issuer/oauth2/token", now, None);
    let bound = TokenParams { dpop_proof: Some(&proof), ..cc };
    let secret = || PresentedClient::secret(CC_CLIENT.0, CC_CLIENT.1);
    counted(secret(), &cc).await;
    let (answer, warm) = counted(secret(), &bound).await;
    assert_eq!(answer.token_type, "DPoP");
    assert_eq!(warm, ["PutItem", "PutItem"], "warm: the proof's replay record, the issued token");
}

/// A cold read of the client and a grant's records together still refuses what it must: a wrong
/// secret reads but uses nothing, and another client's refresh token is `invalid_grant`.
#[tokio::test]
async fn the_combined_first_read_authenticates_before_it_uses_anything() {
    use token_service::error::Error;
    let (_, round_trips, wiring) = counted_wiring().await;
    let service = wiring.token_service();
    let login = alice_login();
    let wrong_secret = (APP_CLIENT.0, "not-the-secret-of-app-client-0123456789");
    let (answer, _) = issue_counted(&service, &round_trips, wrong_secret, &login).await;
    assert!(matches!(answer, Err(Error::InvalidClient)), "{answer:?}");
    let (first, _) = issue_counted(&service, &round_trips, APP_CLIENT, &login).await;
    let token = first.unwrap().refresh_token.unwrap();
    let refresh = TokenParams {
        grant_type: Some("refresh_token"),
        refresh_token: Some(&token),
        ..Default::default()
    };
    let (answer, _) = issue_counted(&service, &round_trips, OTHER_APP, &refresh).await;
    assert!(
        matches!(answer, Err(Error::InvalidGrant(_) | Error::UnauthorizedClient(_))),
        "{answer:?}"
    );
    let (answer, _) = issue_counted(&service, &round_trips, APP_CLIENT, &refresh).await;
    assert!(answer.is_ok(), "the token is still unused: {answer:?}");
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
    seeded_store_behind_with(failing, Fault::INTERNAL_ERROR).await
}

/// [`seeded_store_behind`] with the given fault. The store has the production SDK timeouts.
async fn seeded_store_behind_with(
    failing: &'static [&'static str],
    fault: Fault,
) -> (Stores, dynamo::FaultyEndpoint) {
    let store = dynamo::fresh_store().await;
    load_seed(&repo_path("seed.toml")).install(&store, &store, &store).await.unwrap();
    let sdk_config = setup::aws_config().await;
    let endpoint = dynamo::faulty_endpoint_with(failing, fault).await;
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
    let (store, round_trips, wiring) = counted_wiring().await;
    let service = wiring.token_service();
    let client = service
        .authenticator()
        .authenticate(&PresentedClient::secret(APP_CLIENT.0, APP_CLIENT.1))
        .await
        .unwrap();
    let login = alice_login();
    let access = service.issue(&client, &login).await.unwrap().access_token;

    let verifier = wiring.verifier();
    round_trips.take();
    let verified = verifier.verify(&access).await.unwrap();
    assert_eq!(round_trips.take(), 1, "one BatchGetItem");

    let revocation = wiring.revocation_service();
    let bearer = revocation.verify_presented(&Presented::Bearer(&access)).await.unwrap();
    revocation.revoke_self(&bearer, None, Some("device-42")).await.unwrap();
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
        AttributeValue::N(verifiable_until(verified.claims.exp).to_string()),
        "expires when the token can no longer verify"
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

/// Records the operation and JSON body of every request the SDK sends.
#[derive(Clone, Debug, Default)]
struct Requests(Arc<std::sync::Mutex<Vec<(String, Value)>>>);

impl Requests {
    fn take(&self) -> Vec<(String, Value)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl aws_sdk_dynamodb::config::Intercept for Requests {
    fn name(&self) -> &'static str {
        "Requests"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _config: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
        let body = request.body().bytes().and_then(|b| serde_json::from_slice(b).ok());
        self.0.lock().unwrap().push((operation, body.unwrap_or(Value::Null)));
        Ok(())
    }
}

/// Every read that decides whether a token, grant, client or user is valid is a GetItem or
/// BatchGetItem with `ConsistentRead: true`; none is a Query or Scan (an index read, which is
/// only eventually consistent). The recorder does see the index query a batch count makes.
#[tokio::test]
async fn validity_reads_are_strongly_consistent_and_never_use_an_index() {
    use integration_tests::flows::{
        admin_token, batch_count, introspect, login, refresh, revoke, revoke_self, service_token,
    };
    let requests = Requests::default();
    let sdk_config =
        setup::aws_config_with_timeouts(Duration::from_secs(10), Duration::from_secs(30)).await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk_config).interceptor(requests.clone()).build(),
    );
    let name = format!("consistent-{}", token_service::domain::TokenId::generate());
    table::create_table(&client, &name).await.unwrap();
    let store = DynamoStore::new(client, name.clone());
    load_seed(&repo_path("seed.toml")).install(&store, &store, &store).await.unwrap();
    let server = TestServer::start_on(
        SigningAlgorithm::ES256,
        Arc::new(SystemClock),
        Stores::all(Arc::new(store)),
    )
    .await;
    requests.take();

    let service = service_token(&server).await;
    let first = login(&server).await;
    let old = first["refresh_token"].as_str().unwrap();
    let second: Value = refresh(&server, APP_CLIENT, old).await.json().await.unwrap();
    assert_eq!(refresh(&server, APP_CLIENT, old).await.status(), 400, "reuse");
    let other = login(&server).await;
    for token in [
        &service,
        other["access_token"].as_str().unwrap(),
        other["refresh_token"].as_str().unwrap(),
    ] {
        assert_eq!(introspect(&server, APP_CLIENT, token).await["active"], true);
    }
    assert_eq!(
        introspect(&server, APP_CLIENT, second["access_token"].as_str().unwrap()).await["active"],
        false
    );
    let access = other["access_token"].as_str().unwrap();
    assert_eq!(revoke(&server, APP_CLIENT, &[("token", access)]).await.status(), 200);
    let refresh_token = other["refresh_token"].as_str().unwrap();
    assert_eq!(revoke(&server, APP_CLIENT, &[("token", refresh_token)]).await.status(), 200);
    assert_eq!(revoke_self(&server, &service).send().await.unwrap().status(), 200);

    let sent = requests.take();
    let operations: Vec<&str> = sent.iter().map(|(op, _)| op.as_str()).collect();
    assert!(
        operations.contains(&"GetItem") && operations.contains(&"BatchGetItem"),
        "{operations:?}"
    );
    for (operation, body) in &sent {
        match operation.as_str() {
            "GetItem" => assert_eq!(body["ConsistentRead"], true, "{body}"),
            "BatchGetItem" => {
                assert_eq!(body["RequestItems"][&name]["ConsistentRead"], true, "{body}")
            }
            "Query" | "Scan" => panic!("a validity path read an index: {body}"),
            _ => assert!(body.get("IndexName").is_none(), "{operation}: {body}"),
        }
    }

    // Counting (not validity) is what the index serves; the recorder sees it.
    let admin = admin_token(&server).await;
    requests.take();
    batch_count(&server, &admin, serde_json::json!({"dryRun": true})).await;
    let counted = requests.take();
    assert!(
        counted.iter().any(|(op, body)| op == "Query" && body["IndexName"].is_string()),
        "{counted:?}"
    );
}

/// A store on a fresh seeded table whose SDK client records every request, and its services.
async fn recorded_wiring() -> (DynamoStore, Requests, SigningWiring) {
    let requests = Requests::default();
    let sdk_config =
        setup::aws_config_with_timeouts(Duration::from_secs(10), Duration::from_secs(30)).await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk_config).interceptor(requests.clone()).build(),
    );
    let name = format!("recorded-{}", token_service::domain::TokenId::generate());
    table::create_table(&client, &name).await.unwrap();
    let store = DynamoStore::new(client, name);
    load_seed(&repo_path("seed.toml")).install(&store, &store, &store).await.unwrap();
    let config = test_config("https://issuer", SigningAlgorithm::ES256);
    let keys = KeySet::generate(SigningAlgorithm::ES256).unwrap();
    let wiring =
        SigningWiring::with_system_clock(config, keys, Stores::all(Arc::new(store.clone())));
    requests.take();
    (store, requests, wiring)
}

/// With cutoffs kept in copies, a verification is still one BatchGetItem, and it reads one
/// copy of each layer (never all of them), chosen afresh each time.
#[tokio::test]
async fn a_verification_is_one_batch_get_reading_one_copy_of_each_cutoff() {
    use token_service::store::{CUTOFF_COPIES, RevocationStore, layer};
    let (store, requests, wiring) = recorded_wiring().await;
    let service = wiring.token_service();
    let client = service
        .authenticator()
        .authenticate(&PresentedClient::secret(CC_CLIENT.0, CC_CLIENT.1))
        .await
        .unwrap();
    let params = TokenParams { grant_type: Some("client_credentials"), ..Default::default() };
    let access = service.issue(&client, &params).await.unwrap().access_token;
    let now = token_service::clock::Clock::now(&SystemClock);
    store.raise_cutoff(&layer::tenant("/acme"), 1, now + 600, now).await.unwrap();
    let verifier = wiring.verifier();
    requests.take();

    let mut copies_read = BTreeSet::new();
    for _ in 0..32 {
        verifier.verify(&access).await.unwrap();
        let sent = requests.take();
        let operations: Vec<&str> = sent.iter().map(|(op, _)| op.as_str()).collect();
        assert_eq!(operations, ["BatchGetItem"], "one round trip per verification");
        let keys = sent[0].1["RequestItems"][store.table_name()]["Keys"].as_array().unwrap();
        let cutoffs: Vec<&str> = keys
            .iter()
            .filter_map(|key| key["pk"]["S"].as_str())
            .filter(|pk| pk.starts_with("CUTOFF"))
            .collect();
        let tenant_copies: Vec<&&str> =
            cutoffs.iter().filter(|pk| pk.ends_with("#TENANT#/acme")).collect();
        assert_eq!(tenant_copies.len(), 1, "one copy of the tenant's cutoff: {cutoffs:?}");
        copies_read.insert(tenant_copies[0].to_string());
        let layers = cutoffs.len();
        assert!(layers < 8, "one key per layer, not one per copy: {cutoffs:?}");
    }
    assert!(copies_read.len() > 1, "the copy is chosen at random: {copies_read:?}");
    assert!(copies_read.len() <= CUTOFF_COPIES);
}

/// A raise is one transaction over the copies: when DynamoDB fails it, no copy was written and
/// the raise reports the failure, never a cutoff half in place.
#[tokio::test]
async fn a_raise_whose_transaction_fails_writes_no_copy() {
    use token_service::store::{CutoffCopy, RevocationStore, layer};
    let store = dynamo::fresh_store().await;
    let sdk_config = setup::aws_config().await;
    let faults = dynamo::faulty_endpoint(&["TransactWriteItems"]).await;
    let config =
        aws_sdk_dynamodb::config::Builder::from(&sdk_config).endpoint_url(&faults.url).build();
    let proxied = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), store.table_name());
    let cut = layer::tenant("/acme");
    let copies = async || {
        let mut held = Vec::new();
        for copy in CutoffCopy::all() {
            let key = token_service::store::dynamodb::cutoff_key(&cut, copy);
            let got = store.sdk_client().get_item().table_name(store.table_name());
            let item = got.set_key(Some(key)).consistent_read(true).send().await.unwrap().item;
            held.push(item.and_then(|item| item.get("not_before").cloned()));
        }
        held
    };
    faults.fail(true);
    assert!(proxied.raise_cutoff(&cut, 500, 9_000, 100).await.is_err(), "the failure is reported");
    assert!(copies().await.iter().all(Option::is_none), "no copy written");
    faults.fail(false);
    assert_eq!(proxied.raise_cutoff(&cut, 500, 9_000, 100).await.unwrap(), None);
    let every = AttributeValue::N("500".into());
    assert!(copies().await.iter().all(|held| held.as_ref() == Some(&every)), "every copy");
}

/// While a table from before copies is upgraded, older functions write a cutoff's copy 0 alone:
/// verifications told to read one copy (`CUTOFF_READ_COPIES=1`) always see it, where reading
/// among all eight would miss it seven times in eight.
#[tokio::test]
async fn reading_one_copy_sees_every_cutoff_an_older_function_wrote() {
    use token_service::domain::{ClientId, Subject, TenantPath, TokenId};
    use token_service::store::{CutoffCopy, CutoffReadCopies, RevocationStore, TokenRef, layer};
    let store = dynamo::fresh_store().await;
    let mut old_style =
        token_service::store::dynamodb::cutoff_key(&layer::tenant("/acme"), CutoffCopy::FIRST);
    old_style.insert("not_before".into(), AttributeValue::N("500".into()));
    old_style.insert("ttl".into(), AttributeValue::N("9000".into()));
    let put =
        store.sdk_client().put_item().table_name(store.table_name()).set_item(Some(old_style));
    put.send().await.unwrap();
    let (id, client, path) =
        (TokenId::generate(), ClientId::parse("c").unwrap(), TenantPath::parse("/acme").unwrap());
    let token = TokenRef {
        id: &id,
        grant: None,
        tenant: &path,
        client_id: &client,
        subject: Subject::Client(&client),
    };
    let seen = async |store: &DynamoStore| {
        let mut seen = 0;
        for _ in 0..40 {
            seen += usize::from(
                store.revocation_state(&token, 100).await.unwrap().not_before == Some(500),
            );
        }
        seen
    };
    let upgrading = store.clone().with_cutoff_read_copies(CutoffReadCopies::new(1).unwrap());
    assert_eq!(seen(&upgrading).await, 40, "copy 0 read every time");
    assert!(seen(&store).await < 40, "reading among every copy misses copy 0 alone");
}

/// `upgrade_table` fans a cutoff an older stage wrote (one item, the first copy's key) out into
/// every copy, so a verification reading any copy sees it; a second run writes nothing.
#[tokio::test]
async fn upgrading_fans_a_single_cutoff_out_into_every_copy() {
    use token_service::domain::{ClientId, Subject, TenantPath, TokenId};
    use token_service::store::{CutoffCopy, RevocationStore, TokenRef, layer};
    let store = dynamo::fresh_store().await;
    let now = token_service::clock::Clock::now(&SystemClock);
    let cut = layer::tenant("/old");
    let mut item = token_service::store::dynamodb::cutoff_key(&cut, CutoffCopy::FIRST);
    item.insert("not_before".to_owned(), AttributeValue::N((now - 5).to_string()));
    item.insert("ttl".to_owned(), AttributeValue::N((now + 600).to_string()));
    let put = store.sdk_client().put_item().table_name(store.table_name()).set_item(Some(item));
    put.send().await.unwrap();
    let (id, client, tenant) =
        (TokenId::generate(), ClientId::parse("app").unwrap(), TenantPath::parse("/old").unwrap());
    let token = TokenRef {
        id: &id,
        grant: None,
        tenant: &tenant,
        client_id: &client,
        subject: Subject::Client(&client),
    };
    let last = CutoffCopy::new(token_service::store::CUTOFF_COPIES - 1).unwrap();
    let state = store.revocation_state_through(&token, last, now).await.unwrap();
    assert_eq!(state.not_before, None, "before the upgrade only the first copy holds it");

    let summary = store.upgrade_table(now).await.unwrap();
    assert_eq!(summary.cutoff_copies, token_service::store::CUTOFF_COPIES as u64 - 1);
    for copy in CutoffCopy::all() {
        let state = store.revocation_state_through(&token, copy, now).await.unwrap();
        assert_eq!(state.not_before, Some(now - 5), "copy {copy:?}");
    }
    assert_eq!(store.upgrade_table(now).await.unwrap().cutoff_copies, 0, "nothing left to copy");
}

/// Adds up the items every Query read (`ScannedCount`, what DynamoDB bills a query for, filter
/// or not) and counts the queries.
#[derive(Clone, Debug, Default)]
struct Scanned(Arc<std::sync::Mutex<(u64, u64)>>);

impl aws_sdk_dynamodb::config::Intercept for Scanned {
    fn name(&self) -> &'static str {
        "Scanned"
    }

    fn read_after_deserialization(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::AfterDeserializationInterceptorContextRef<
            '_,
        >,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _config: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let Ok(output) = context.output_or_error() else { return Ok(()) };
        if let Some(query) =
            output.downcast_ref::<aws_sdk_dynamodb::operation::query::QueryOutput>()
        {
            let mut totals = self.0.lock().unwrap();
            totals.0 += u64::try_from(query.scanned_count).unwrap();
            totals.1 += 1;
        }
        Ok(())
    }
}

/// A count narrowed by client or by user reads (and is billed for) only the entries it counts,
/// through an index keyed by them, not the whole tenant's entries through a filter.
#[tokio::test]
async fn a_narrowed_count_reads_only_its_own_entries() {
    use token_service::domain::{ClientId, GrantId, TenantPath, TokenId, UserId};
    use token_service::store::{IssuanceFilter, IssuanceLog, IssuedToken, SubjectId, TokenKind};
    let scanned = Scanned::default();
    let sdk_config =
        setup::aws_config_with_timeouts(Duration::from_secs(10), Duration::from_secs(30)).await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk_config).interceptor(scanned.clone()).build(),
    );
    let name = format!("narrowed-{}", TokenId::generate());
    table::create_table(&client, &name).await.unwrap();
    let store = Arc::new(DynamoStore::new(client, name).with_page_size(100));
    let now = token_service::clock::Clock::now(&SystemClock);
    let (acme, eu) = (TenantPath::parse("/acme").unwrap(), TenantPath::parse("/acme/eu").unwrap());
    let alice = UserId::generate();
    let token = |tenant: &TenantPath, client: &str, subject: Option<&UserId>| IssuedToken {
        id: TokenId::generate(),
        kind: TokenKind::Access,
        tenant: tenant.clone(),
        client_id: ClientId::parse(client).unwrap(),
        subject: subject.map_or(client.to_owned(), |user| user.to_string()),
        grant: subject.map(|_| GrantId::generate()),
        issued_at: now - 10,
        expires_at: now + 600,
    };
    // 150 machine tokens of `busy`, 40 of alice's through `app`, 600 of other clients.
    let mut log = Vec::new();
    log.extend((0..150).map(|_| token(&acme, "busy", None)));
    log.extend((0..40).map(|_| token(&eu, "app", Some(&alice))));
    log.extend((0..600).map(|i| token(&acme, &format!("other-{}", i % 30), None)));
    let writes: Vec<_> = log
        .chunks(100)
        .map(|chunk| {
            let (store, chunk) = (store.clone(), chunk.to_vec());
            tokio::spawn(async move {
                for entry in &chunk {
                    store.record_issued(entry).await.unwrap();
                }
            })
        })
        .collect();
    for write in writes {
        write.await.unwrap();
    }
    let count = async |client: Option<&str>, subject: Option<SubjectId>| {
        *scanned.0.lock().unwrap() = (0, 0);
        let filter = IssuanceFilter {
            tenant: acme.clone(),
            client_id: client.map(|c| ClientId::parse(c).unwrap()),
            subject,
        };
        let counted = store.live_issued(&filter, now).await.unwrap().len();
        let (read, queries) = *scanned.0.lock().unwrap();
        (counted, read, queries)
    };

    let (counted, read, _) = count(Some("busy"), None).await;
    assert_eq!((counted, read), (150, 150), "by client: its own entries only");
    let busy = SubjectId::Client(ClientId::parse("busy").unwrap());
    let (counted, read, _) = count(None, Some(busy)).await;
    assert_eq!((counted, read), (150, 150), "a client as subject: through the client index");
    let (counted, read, queries) =
        count(None, Some(SubjectId::User { tenant: eu.clone(), id: alice.clone() })).await;
    assert_eq!((counted, read, queries), (40, 40, 1), "by user: one partition, its entries");
    let (counted, read, _) =
        count(Some("app"), Some(SubjectId::User { tenant: eu, id: alice })).await;
    assert_eq!((counted, read), (40, 40));
    let (counted, read, _) = count(None, None).await;
    assert_eq!((counted, read), (790, 790), "the whole tenant reads everything, as it counts it");
}

/// `ISSUANCE_INDEX_SHARDS` spreads the writes; a count reads at least the eight shards every
/// writer from before the setting used, so a lower setting loses nothing those wrote, and a
/// count over a higher setting finds what that setting wrote.
#[tokio::test]
async fn counts_read_every_shard_the_writers_used() {
    use token_service::domain::{ClientId, TenantPath, TokenId};
    use token_service::store::dynamodb::IssuanceShards;
    use token_service::store::{IssuanceFilter, IssuanceLog, IssuedToken, TokenKind};
    let base = dynamo::fresh_store().await;
    let with = |shards| {
        DynamoStore::new(base.sdk_client().clone(), base.table_name())
            .with_issuance_shards(IssuanceShards::new(shards).unwrap())
    };
    let (four, eight, thirty_two) = (with(4), with(8), with(32));
    let now = token_service::clock::Clock::now(&SystemClock);
    let entry = || IssuedToken {
        id: TokenId::generate(),
        kind: TokenKind::Access,
        tenant: TenantPath::parse("/acme").unwrap(),
        client_id: ClientId::parse("busy").unwrap(),
        subject: "busy".into(),
        grant: None,
        issued_at: now - 10,
        expires_at: now + 600,
    };
    for store in [&eight, &four, &thirty_two] {
        for _ in 0..40 {
            store.record_issued(&entry()).await.unwrap();
        }
    }
    for client in [None, Some(ClientId::parse("busy").unwrap())] {
        let filter = IssuanceFilter {
            tenant: TenantPath::parse("/acme").unwrap(),
            client_id: client,
            subject: None,
        };
        let count =
            async |store: &DynamoStore| store.live_issued(&filter, now).await.unwrap().len();
        assert_eq!(count(&thirty_two).await, 120, "{filter:?}: every shard written");
        let under_eight = count(&four).await;
        assert!(under_eight >= 80, "{filter:?}: the default's and the lower setting's entries");
        assert!(under_eight < 120, "{filter:?}: shards 8 to 31 are past what eight read");
    }
}

/// A table made before the narrowed-count indexes: `upgrade-table --add-indexes` creates them,
/// and the upgrade gives the live log entries written before them their keys, so a count by
/// client or user finds those entries too.
#[tokio::test]
async fn upgrading_indexes_older_log_entries_for_narrowed_counts() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    use token_service::domain::{ClientId, TenantPath, UserId};
    use token_service::store::{IssuanceFilter, IssuanceLog, SubjectId};
    let client = dynamo::sdk_client(&RoundTrips::default()).await;
    let name = format!("older-{}", token_service::domain::TokenId::generate());
    let key = |name: &str, key_type| {
        KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().unwrap()
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let index = |name: &str, pk: &str, sk: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(pk, KeyType::Hash))
            .key_schema(key(sk, KeyType::Range))
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .unwrap()
    };
    let mut create = client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(index("issued_by_tenant", "issued_pk", "issued_sk"))
        .global_secondary_indexes(index("listed_by_tenant", "list_pk", "list_sk"));
    for name in ["pk", "sk", "issued_pk", "issued_sk", "list_pk", "list_sk"] {
        create = create.attribute_definitions(attribute(name));
    }
    create.send().await.unwrap();
    let now = token_service::clock::Clock::now(&SystemClock);
    let (alice, grant) = (UserId::generate(), token_service::domain::GrantId::generate());
    // Entries as writers before the narrowed indexes wrote them: the tenant index's keys only.
    for (client_id, subject, grant) in
        [("busy", "busy", None), ("app", alice.as_str(), Some(grant.as_str()))]
    {
        let id = token_service::domain::TokenId::generate();
        let mut item = std::collections::HashMap::from([
            ("pk".to_owned(), AttributeValue::S(format!("ISSUED#{id}"))),
            ("sk".to_owned(), AttributeValue::S("ISSUED".into())),
            ("token_id".to_owned(), AttributeValue::S(id.to_string())),
            ("kind".to_owned(), AttributeValue::S("access".into())),
            ("tenant".to_owned(), AttributeValue::S("/acme".into())),
            ("client_id".to_owned(), AttributeValue::S(client_id.into())),
            ("subject".to_owned(), AttributeValue::S(subject.into())),
            ("issued_at".to_owned(), AttributeValue::N((now - 10).to_string())),
            ("ttl".to_owned(), AttributeValue::N((now + 600).to_string())),
            ("issued_pk".to_owned(), AttributeValue::S("/acme#0".into())),
            ("issued_sk".to_owned(), AttributeValue::S(format!("/acme/#{}#{id}", now - 10))),
        ]);
        if let Some(grant) = grant {
            item.insert("grant_id".to_owned(), AttributeValue::S(grant.into()));
        }
        client.put_item().table_name(&name).set_item(Some(item)).send().await.unwrap();
    }
    let store = DynamoStore::new(client.clone(), name.clone());
    let acme = TenantPath::parse("/acme").unwrap();
    let by_client = IssuanceFilter {
        tenant: acme.clone(),
        client_id: Some(ClientId::parse("busy").unwrap()),
        subject: None,
    };
    let by_user = IssuanceFilter {
        tenant: acme.clone(),
        client_id: None,
        subject: Some(SubjectId::User { tenant: acme, id: alice }),
    };

    let created = table::add_missing_indexes(&client, &name).await.unwrap();
    assert_eq!(created, ["issued_by_client", "issued_by_subject"]);
    assert_eq!(store.live_issued(&by_client, now).await.unwrap().len(), 0, "not indexed yet");
    assert_eq!(store.upgrade_table(now).await.unwrap().issued_indexed, 2);
    assert_eq!(store.live_issued(&by_client, now).await.unwrap().len(), 1);
    assert_eq!(store.live_issued(&by_user, now).await.unwrap().len(), 1);
    assert!(table::add_missing_indexes(&client, &name).await.unwrap().is_empty());
    assert_eq!(store.upgrade_table(now).await.unwrap().issued_indexed, 0, "a second run: none");
}

/// `upgrade-table --add-indexes` refuses a table that belongs to a CloudFormation stack: the
/// stack's own update adds those indexes, and would fail if they were already there.
#[tokio::test]
async fn adding_indexes_refuses_a_stacks_table() {
    let store = dynamo::fresh_store().await;
    let client = store.sdk_client();
    let described = client.describe_table().table_name(store.table_name()).send().await.unwrap();
    let arn = described.table.and_then(|table| table.table_arn).unwrap();
    let tag = aws_sdk_dynamodb::types::Tag::builder()
        .key("aws:cloudformation:stack-name")
        .value("tokens")
        .build()
        .unwrap();
    client.tag_resource().resource_arn(arn).tags(tag).send().await.unwrap();
    let refused = table::add_missing_indexes(client, store.table_name()).await.unwrap_err();
    assert!(refused.to_string().contains("belongs to the stack tokens"), "{refused}");
}

/// Refresh tokens (and client secrets and passwords) are never stored: the whole table holds
/// only the refresh tokens' digests.
#[tokio::test]
async fn refresh_tokens_are_stored_only_as_digests() {
    use integration_tests::flows::{login, refresh};
    use token_service::domain::RefreshToken;
    let store = dynamo::fresh_store().await;
    load_seed(&repo_path("seed.toml")).install(&store, &store, &store).await.unwrap();
    let stores = Stores::all(Arc::new(store.clone()));
    let server = TestServer::start_on(SigningAlgorithm::ES256, Arc::new(SystemClock), stores).await;
    let first = login(&server).await;
    let old = first["refresh_token"].as_str().unwrap().to_owned();
    let second: Value = refresh(&server, APP_CLIENT, &old).await.json().await.unwrap();
    let current = second["refresh_token"].as_str().unwrap().to_owned();

    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = store
            .sdk_client()
            .scan()
            .table_name(store.table_name())
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        items.extend(page.items().iter().cloned());
        start = page.last_evaluated_key.filter(|key| !key.is_empty());
        if start.is_none() {
            break;
        }
    }
    let table = format!("{items:?}");
    for token in [&old, &current] {
        let secret = token.split_once('.').unwrap().1;
        assert!(!table.contains(secret), "a refresh token's secret part is stored");
        let (_, digest) = RefreshToken::parse(token).unwrap();
        assert!(table.contains(&String::from(digest)), "its digest is the key");
    }
    for token in [&first["access_token"], &second["access_token"]] {
        assert!(!table.contains(token.as_str().unwrap()), "access tokens are not stored");
    }
    for secret in [APP_CLIENT.1, CC_CLIENT.1, "alice-password-1"] {
        assert!(!table.contains(secret), "a secret is stored in plain text");
    }
}

/// A stand-in for DynamoDB that throttles every request and counts them.
async fn counting_throttler() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buffer).await;
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"injected"}"#;
                let response = format!(
                    "HTTP/1.1 400 Error\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: test\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (endpoint, count)
}

/// Throttling is retried by the SDK (with its standard retry policy) before the service gives
/// up with a 503.
#[tokio::test]
async fn throttled_requests_are_retried_by_the_sdk_then_answer_503() {
    let (endpoint, count) = counting_throttler().await;
    assert_unavailable(store_at(&endpoint).await).await;
    let attempts = count.load(std::sync::atomic::Ordering::SeqCst);
    let configured: usize =
        std::env::var("AWS_MAX_ATTEMPTS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    assert!(configured >= 2, "retries are on");
    assert!(
        (2..=configured).contains(&attempts),
        "{attempts} attempts: at least one retry, at most the configured {configured}"
    );
}

/// RFC 7009 revocation must not answer 200 when it could not even look the token up.
#[tokio::test]
async fn failed_token_lookups_during_revocation_answer_503() {
    use integration_tests::flows::{error_of, login, revoke};
    let (stores, faults) = seeded_store_behind(&["BatchGetItem"]).await;
    let server = TestServer::start_on(SigningAlgorithm::ES256, Arc::new(SystemClock), stores).await;
    let tokens = login(&server).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    faults.fail(true);
    for hint in [None, Some("refresh_token"), Some("access_token")] {
        let mut form = vec![("token", refresh)];
        form.extend(hint.map(|h| ("token_type_hint", h)));
        let response = revoke(&server, APP_CLIENT, &form).await;
        assert_eq!(error_of(response).await, (503, "temporarily_unavailable".into()), "{hint:?}");
    }
}

/// The brute-force protection of the password grant beyond Argon2's cost: API Gateway
/// throttles `POST /oauth2/token`.
#[tokio::test]
async fn the_token_route_has_a_flood_ceiling() {
    let template: Yaml =
        serde_yaml::from_str(&std::fs::read_to_string(repo_path("../template.yaml")).unwrap())
            .unwrap();
    let route =
        &template["Resources"]["HttpApi"]["Properties"]["RouteSettings"]["POST /oauth2/token"];
    let reference = |value: &Yaml| match value {
        Yaml::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str().map(str::to_owned),
        other => other["Ref"].as_str().map(str::to_owned),
    };
    assert_eq!(reference(&route["ThrottlingRateLimit"]).as_deref(), Some("TokenRateLimit"));
    assert_eq!(reference(&route["ThrottlingBurstLimit"]).as_deref(), Some("TokenBurstLimit"));
    // A ceiling on cost and concurrency, not the guessing brake (the login defence is): high
    // enough not to hold every client back, finite so a flood stops at the gateway.
    for parameter in ["TokenRateLimit", "TokenBurstLimit"] {
        let default = template["Parameters"][parameter]["Default"].as_u64();
        assert!(default.is_some_and(|d| (1000..=10_000).contains(&d)), "{parameter}: {default:?}");
    }
}

/// The local server on the seeded test table, behind a proxy that, once switched on, cancels
/// every transaction with `cancellation` (a `TransactionCanceledException` body).
async fn server_behind_conflicts(
    cancellation: &'static str,
) -> (TestServer, dynamo::FaultyEndpoint) {
    let store = dynamo::fresh_store().await;
    load_seed(&repo_path("seed.toml")).install(&store, &store, &store).await.unwrap();
    let sdk_config = setup::aws_config().await;
    let faults =
        dynamo::faulty_endpoint_answering(&["TransactWriteItems"], 400, cancellation).await;
    let config =
        aws_sdk_dynamodb::config::Builder::from(&sdk_config).endpoint_url(&faults.url).build();
    let proxied = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), store.table_name());
    let stores = Stores::all(Arc::new(proxied));
    (TestServer::start_on(SigningAlgorithm::ES256, Arc::new(SystemClock), stores).await, faults)
}

const TRANSACTION_CONFLICT_ON_THE_REVOCATION_RECORD: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict, None]","CancellationReasons":[{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"},{"Code":"None"}]}"#;

/// A revocation cancelled by a concurrent transaction on its record wrote nothing: after its
/// retries it is a 503, never a 200 that no stored record backs, and the token stays active.
#[tokio::test]
async fn a_revocation_cancelled_by_a_conflict_answers_503_and_revokes_nothing() {
    use integration_tests::flows::{error_of, is_active, revoke, service_token};
    let (server, faults) =
        server_behind_conflicts(TRANSACTION_CONFLICT_ON_THE_REVOCATION_RECORD).await;
    let token = service_token(&server).await;
    faults.fail(true);
    let response = revoke(&server, CC_CLIENT, &[("token", &token)]).await;
    assert_eq!(error_of(response).await, (503, "temporarily_unavailable".into()));
    faults.fail(false);
    assert!(is_active(&server, &token).await, "nothing was revoked");
    assert_eq!(revoke(&server, CC_CLIENT, &[("token", &token)]).await.status(), 200);
    assert!(!is_active(&server, &token).await);
}

const TRANSACTION_CONFLICT_ON_A_CUTOFF_CHECK: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, None, None, TransactionConflict]","CancellationReasons":[{"Code":"None"},{"Code":"None"},{"Code":"None"},{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]}"#;

const TRANSACTION_CONFLICT_ON_THE_USED_TOKEN: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]","CancellationReasons":[{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]}"#;

/// Regression: a rotation cancelled by a conflict on one of its cutoff condition checks (a batch
/// revocation writing that cutoff record at the same moment) is not a reuse of the refresh
/// token. It once revoked the whole grant; now it is a 503 that changes nothing, and the same
/// token refreshes once the conflict is gone.
#[tokio::test]
async fn a_conflict_on_a_cutoff_check_is_not_refresh_token_reuse() {
    use integration_tests::flows::{error_of, login, refresh};
    let (server, faults) = server_behind_conflicts(TRANSACTION_CONFLICT_ON_A_CUTOFF_CHECK).await;
    let tokens = login(&server).await;
    let token = tokens["refresh_token"].as_str().unwrap();
    faults.fail(true);
    let response = refresh(&server, APP_CLIENT, token).await;
    assert_eq!(error_of(response).await, (503, "temporarily_unavailable".into()));
    faults.fail(false);
    assert_eq!(refresh(&server, APP_CLIENT, token).await.status(), 200, "the grant lives on");
}

/// A conflict on the mark-as-used write itself is a concurrent use of the same token: reuse.
#[tokio::test]
async fn a_conflict_on_the_used_token_is_a_concurrent_use() {
    use integration_tests::flows::{error_of, is_active, login, refresh};
    let (server, faults) = server_behind_conflicts(TRANSACTION_CONFLICT_ON_THE_USED_TOKEN).await;
    let tokens = login(&server).await;
    let token = tokens["refresh_token"].as_str().unwrap();
    faults.fail(true);
    assert_eq!(error_of(refresh(&server, APP_CLIENT, token).await).await.1, "invalid_grant");
    faults.fail(false);
    assert!(!is_active(&server, tokens["access_token"].as_str().unwrap()).await, "grant revoked");
}

/// A batch revocation is one write however many tokens it covers: the cutoff, whose record may
/// expire once every token it covers would have.
#[tokio::test]
async fn batch_revocation_is_one_write_and_its_record_expires_after_every_covered_token() {
    let (store, round_trips, wiring) = counted_wiring().await;
    let service = wiring.token_service();
    let client_credentials =
        TokenParams { grant_type: Some("client_credentials"), ..Default::default() };
    let issue = async |(id, secret): (&str, &str)| {
        let client = service
            .authenticator()
            .authenticate(&PresentedClient::secret(id, secret))
            .await
            .unwrap();
        service.issue(&client, &client_credentials).await.unwrap().access_token
    };
    for _ in 0..20 {
        issue(CC_CLIENT).await;
    }
    let admin = issue(ADMIN_CLIENT).await;

    round_trips.take();
    let body = serde_json::json!({"clientId": "cc-client"}).to_string();
    let count = wiring
        .batch_revocation()
        .revoke(&Presented::Bearer(&admin), body.as_bytes(), None)
        .await
        .unwrap();
    assert_eq!(count, 20);
    let writes: Vec<String> = round_trips
        .take_operations()
        .into_iter()
        .filter(|operation| !matches!(operation.as_str(), "GetItem" | "BatchGetItem" | "Query"))
        .collect();
    assert_eq!(writes, ["TransactWriteItems"], "one transaction (every copy) for twenty tokens");

    let cutoff = store
        .sdk_client()
        .get_item()
        .table_name(store.table_name())
        .key("pk", AttributeValue::S("CUTOFF#CLIENT#cc-client".into()))
        .key("sk", AttributeValue::S("CUTOFF".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the cutoff record");
    let number = |name: &str| -> u64 { cutoff[name].as_n().unwrap().parse().unwrap() };
    assert_eq!(number("ttl"), verifiable_until(number("not_before") + MAX_LIFETIME));
}

/// The cutoff is the revocation, and counting comes after it: when the count's reads fail, the
/// answer is 503 (never a count) but the covered tokens are already dead. When the cutoff's
/// own write fails, the answer is 503 and nothing changed.
#[tokio::test]
async fn batch_revocation_writes_the_cutoff_before_counting_and_answers_503_on_failures() {
    use integration_tests::flows::{admin_token, batch, error_of, is_active, service_token};
    for (failing, revoked) in [(&["Query"][..], true), (&["TransactWriteItems"][..], false)] {
        let (stores, faults) = seeded_store_behind(failing).await;
        let server =
            TestServer::start_on(SigningAlgorithm::ES256, Arc::new(SystemClock), stores).await;
        let token = service_token(&server).await;
        let admin = admin_token(&server).await;
        faults.fail(true);
        let response = batch(&server, &admin, serde_json::json!({"clientId": "cc-client"})).await;
        assert_eq!(
            error_of(response).await,
            (503, "temporarily_unavailable".into()),
            "{failing:?}"
        );
        faults.fail(false);
        assert_eq!(!is_active(&server, &token).await, revoked, "{failing:?} failing");
    }
}

/// Every route under every kind of DynamoDB fault: errors, throttling that outlasts the SDK's
/// retries, and a DynamoDB slower than the timeouts. Each answers 503: no token is issued
/// without its record, verification fails closed, no revocation reports success. Once the
/// fault is gone, every token is exactly as valid as before.
#[tokio::test]
async fn every_route_answers_503_under_every_fault_and_changes_nothing() {
    use integration_tests::flows::{
        admin_token, batch, error_of, introspect_as, is_active, login, refresh, revoke,
        revoke_self, service_token,
    };
    let slower_than_the_timeouts = Fault::Delay(Duration::from_secs(8));
    for fault in [
        Fault::INTERNAL_ERROR,
        Fault::THROTTLING,
        Fault::THROUGHPUT_EXCEEDED,
        slower_than_the_timeouts,
    ] {
        let (stores, endpoint) = seeded_store_behind_with(dynamo::EVERY_OPERATION, fault).await;
        let server =
            TestServer::start_on(SigningAlgorithm::ES256, Arc::new(SystemClock), stores).await;
        let service = service_token(&server).await;
        let tokens = login(&server).await;
        let (access, refresh_token) =
            (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());
        let admin = admin_token(&server).await;

        endpoint.fail(true);
        let password =
            [("grant_type", "password"), ("username", "alice"), ("password", "alice-password-1")];
        let (introspected, revoked) = ([("token", access)], [("token", refresh_token)]);
        let started = std::time::Instant::now();
        let answers = tokio::join!(
            server.token(&[("grant_type", "client_credentials")], Some(CC_CLIENT)),
            server.token(&password, Some(APP_CLIENT)),
            refresh(&server, APP_CLIENT, refresh_token),
            introspect_as(&server, APP_CLIENT, &introspected),
            revoke(&server, APP_CLIENT, &revoked),
            async { revoke_self(&server, access).send().await.unwrap() },
            batch(&server, &admin, serde_json::json!({})),
        );
        let elapsed = started.elapsed();
        let routes = [
            ("client_credentials", answers.0),
            ("password", answers.1),
            ("refresh", answers.2),
            ("introspection", answers.3),
            ("RFC 7009 revocation", answers.4),
            ("bearer revocation", answers.5),
            ("batch revocation", answers.6),
        ];
        for (route, response) in routes {
            let answer = error_of(response).await;
            assert_eq!(answer, (503, "temporarily_unavailable".into()), "{route} under {fault:?}");
        }
        assert!(elapsed < Duration::from_secs(7), "{fault:?}: answered within the timeouts");

        endpoint.fail(false);
        assert!(is_active(&server, access).await, "{fault:?}: the access token lives");
        assert!(is_active(&server, &service).await, "{fault:?}: the service token lives");
        let refreshed = refresh(&server, APP_CLIENT, refresh_token).await;
        assert_eq!(refreshed.status(), 200, "{fault:?}: the refresh token was not used up");
    }
}

/// Slowness within the timeouts is not a failure: every answer is late, and right.
#[tokio::test]
async fn a_slow_dynamodb_within_the_timeouts_still_answers() {
    use integration_tests::flows::{is_active, login};
    let slow = Fault::Delay(Duration::from_millis(300));
    let (stores, endpoint) = seeded_store_behind_with(dynamo::EVERY_OPERATION, slow).await;
    let server = TestServer::start_on(SigningAlgorithm::ES256, Arc::new(SystemClock), stores).await;
    endpoint.fail(true);
    let started = std::time::Instant::now();
    let tokens = login(&server).await;
    assert!(started.elapsed() >= Duration::from_millis(600), "the delay was injected");
    assert!(is_active(&server, tokens["access_token"].as_str().unwrap()).await);
}

/// Counting pages through the issuance index, which can take longer than a function may run. A
/// batch revocation answers 503 at its Lambda deadline (less a margin to answer) instead of being
/// killed without an answer, and the cutoff, written before counting, stands.
#[tokio::test]
async fn a_batch_count_past_the_functions_deadline_answers_503_and_the_cutoff_stands() {
    use integration_tests::flows::{admin_token, is_active, service_token};
    use lambda_http::RequestExt;
    let slow_queries = Fault::Delay(Duration::from_millis(600));
    let (stores, endpoint) = seeded_store_behind_with(&["Query"], slow_queries).await;
    let server =
        TestServer::start_on(SigningAlgorithm::ES256, Arc::new(SystemClock), stores.clone()).await;
    let doomed = service_token(&server).await;
    let admin = admin_token(&server).await;
    let batch = SigningWiring::new(
        test_config(&server.base_url, SigningAlgorithm::ES256),
        server.keys.clone(),
        stores,
        Arc::new(SystemClock),
    )
    .batch_revocation();
    let invoke = async |dry_run: &str, left: Duration| {
        let mut context = lambda_http::Context::default();
        let deadline = std::time::SystemTime::now() + left;
        let since_epoch = deadline.duration_since(std::time::UNIX_EPOCH).unwrap();
        context.deadline = since_epoch.as_millis() as u64;
        let event = integration_tests::event_edited(
            "batch-revoke-dry-run.json",
            &[
                ("{{TOKEN}}", &admin),
                (r#"\"creationBefore\":\"2026-11-21T10:00:00.250Z\","#, ""),
                (r#"\"dryRun\":true"#, &format!(r#"\"dryRun\":{dry_run}"#)),
            ],
        )
        .with_lambda_context(context);
        let started = std::time::Instant::now();
        let response = token_service::api::batch_revoke_endpoint(&batch, event).await;
        (response, started.elapsed())
    };

    endpoint.fail(true);
    // Control: with time enough, the slow count finishes and answers.
    let (response, elapsed) = invoke("true", Duration::from_secs(20)).await;
    assert_eq!(response.status(), 200);
    // 32 shards queried 8 at a time: four rounds of 600 ms.
    assert!(elapsed > Duration::from_millis(2000), "four rounds at 600 ms: {elapsed:?}");
    // With 1.5 s left the count cannot finish: 503 before the deadline, the cutoff written.
    let (response, elapsed) = invoke("false", Duration::from_millis(1500)).await;
    assert_eq!(response.status(), 503);
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(elapsed < Duration::from_millis(1500), "answered before the deadline: {elapsed:?}");
    endpoint.fail(false);
    assert!(!is_active(&server, &doomed).await, "the cutoff was written and stands");
}

fn legacy_item(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, AttributeValue> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), AttributeValue::S((*value).to_owned())))
        .collect()
}

/// Clients, users and grants written before the admin plane lack its attributes: they read with
/// the defaults, finding a user by an id entry that lacks its username is an error naming
/// `tokenctl upgrade-table` (never a scan), and deleting a client that was never counted leaves
/// its tenant's count alone.
#[tokio::test]
async fn records_written_before_the_admin_plane_keep_working() {
    use token_service::domain::{
        AuthMethod, ClientId, ClientSecret, Credentials, TenantPath, UserId, Username,
    };
    use token_service::store::{ClientStore, TenantDeletion, TenantStore, UserStore};
    let store = dynamo::fresh_store().await;
    let digest = String::from(ClientSecret::generate().digest());
    let user_id = UserId::generate();
    let old_items = [
        legacy_item(&[
            ("pk", "CLIENT#old-app"),
            ("sk", "CLIENT"),
            ("client_id", "old-app"),
            ("secret_sha256", &digest),
            ("tenant", "/old"),
            ("grants", "client_credentials"),
            ("scopes", "read"),
        ]),
        legacy_item(&[
            ("pk", "USER#/old#alice"),
            ("sk", "USER"),
            ("user_id", user_id.as_str()),
            ("tenant", "/old"),
            ("username", "alice"),
            ("password_hash", "hash"),
        ]),
        legacy_item(&[("pk", &format!("USERID#{user_id}")), ("sk", "USERID"), ("tenant", "/old")]),
    ];
    for (i, mut item) in old_items.into_iter().enumerate() {
        if i == 0 {
            for lifetime in
                ["max_access_token_lifetime", "refresh_idle_lifetime", "refresh_absolute_lifetime"]
            {
                item.insert(lifetime.to_owned(), AttributeValue::N("600".into()));
            }
        }
        let put = store.sdk_client().put_item().table_name(store.table_name()).set_item(Some(item));
        put.send().await.unwrap();
    }

    let client = store.client(&ClientId::parse("old-app").unwrap()).await.unwrap().unwrap();
    assert_eq!(client.credentials.method(), AuthMethod::ClientSecretBasic);
    assert!(matches!(client.credentials, Credentials::Secret { previous: None, .. }));
    assert_eq!(
        (client.refresh_reuse_interval, client.dpop_bound_access_tokens, client.enabled),
        (0, false, true)
    );
    assert_eq!(client.version, 0);
    let old = TenantPath::parse("/old").unwrap();
    let alice = store.user(&old, &Username::parse("alice").unwrap()).await.unwrap().unwrap();
    assert_eq!((alice.enabled, alice.created_at, alice.version), (true, 0, 0));
    // Finding the user of an id entry without username would take a scan: it says to upgrade.
    let unnamed = store.user_by_id(&user_id).await.unwrap_err();
    assert!(unnamed.0.contains("tokenctl upgrade-table"), "{unnamed}");

    // An update writes the version over a record that had none (version 0).
    assert!(store.update_client(&client).await.unwrap());
    let client = store.client(&client.id).await.unwrap().unwrap();
    assert_eq!(client.version, 1);

    // The old client and user were never counted: deleting them must not uncount a new one.
    assert!(store.create_tenant(&old).await.unwrap());
    let mut counted = client.clone();
    counted.id = ClientId::parse("new-app").unwrap();
    assert!(store.create_client(&counted).await.unwrap());
    assert!(store.delete_client(&client).await.unwrap());
    assert!(store.delete_user(&alice).await.unwrap());
    assert_eq!(store.user_by_id(&user_id).await.unwrap(), None);
    assert_eq!(store.delete_tenant(&old).await.unwrap(), TenantDeletion::NotEmpty);
    assert!(store.delete_client(&counted).await.unwrap());
    assert_eq!(store.delete_tenant(&old).await.unwrap(), TenantDeletion::Deleted);
}

/// `upgrade_table` brings a first-stage table up to what the admin plane reads: its clients and
/// users are listed and counted (so their tenants, recorded now, refuse deletion), a live grant
/// is listed as a session, id entries find their user; a second run changes nothing.
#[tokio::test]
async fn upgrading_a_first_stage_table_lists_and_counts_its_records_once() {
    use token_service::clock::Clock;
    use token_service::domain::{ClientId, TenantPath, Username};
    use token_service::store::dynamodb::UpgradeSummary;
    use token_service::store::{
        ClientStore, GrantStore, PageRequest, TenantDeletion, TenantStore, UserStore,
    };
    let store = dynamo::fresh_store().await;
    let now = SystemClock.now();
    let old = dynamo::write_first_stage_records(&store, now).await;
    let (root, eu) = (TenantPath::parse("/old").unwrap(), TenantPath::parse("/old/eu").unwrap());
    fn page<P>() -> PageRequest<'static, P> {
        PageRequest { limit: 10, after: None }
    }

    let summary = store.upgrade_table(now).await.unwrap();
    assert_eq!(
        summary,
        UpgradeSummary {
            clients: 1,
            users: 2,
            grants: 1,
            user_ids_completed: 1,
            user_ids_removed: 1,
            cutoff_copies: 0,
            issued_indexed: 0,
            skipped: Vec::new(),
        }
    );

    let clients = store.clients(&root, page()).await.unwrap().items;
    assert_eq!(clients.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["old-app"]);
    let users = store.users(&root, page()).await.unwrap().items;
    let names: Vec<_> = users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    let sessions = store.sessions(&root, &old.alice, page(), now).await.unwrap().items;
    assert_eq!(sessions.iter().map(|g| &g.id).collect::<Vec<_>>(), [&old.grant]);
    assert!(store.tenant_exists(&root).await.unwrap() && store.tenant_exists(&eu).await.unwrap());
    let tenants = store.tenants(&root, page()).await.unwrap().items;
    assert_eq!(tenants, [root.clone(), eu.clone()]);
    let alice = store.user(&root, &Username::parse("alice").unwrap()).await.unwrap().unwrap();
    assert_eq!(store.user_by_id(&old.alice).await.unwrap(), Some(alice.clone()));
    assert!(store.user_by_id(&old.bob).await.unwrap().is_some());
    assert_eq!(store.user_by_id(&old.dangling).await.unwrap(), None);
    // `/old` counts old-app, alice and the recorded `/old/eu`; `/old/eu` counts bob.
    let counts = || async {
        (
            dynamo::tenant_members(&store, "/old").await,
            dynamo::tenant_members(&store, "/old/eu").await,
        )
    };
    assert_eq!(counts().await, (Some(3), Some(1)));
    assert_eq!(store.delete_tenant(&eu).await.unwrap(), TenantDeletion::NotEmpty);
    assert_eq!(store.delete_tenant(&root).await.unwrap(), TenantDeletion::NotEmpty);

    assert_eq!(store.upgrade_table(now).await.unwrap(), UpgradeSummary::default());
    assert_eq!(counts().await, (Some(3), Some(1)), "a second run counts nothing again");

    // Counted now, the records leave their tenants empty when deleted: the counts were exact.
    let bob = store.user_by_id(&old.bob).await.unwrap().unwrap();
    assert!(store.delete_user(&bob).await.unwrap());
    assert_eq!(store.delete_tenant(&eu).await.unwrap(), TenantDeletion::Deleted);
    let client = store.client(&ClientId::parse("old-app").unwrap()).await.unwrap().unwrap();
    assert!(store.delete_client(&client).await.unwrap());
    assert!(store.delete_user(&alice).await.unwrap());
    assert_eq!(store.delete_tenant(&root).await.unwrap(), TenantDeletion::Deleted);
}

/// Two upgrades running at once (both scan before either writes) still count each record once:
/// the count is conditional on the record not being marked counted yet.
#[tokio::test]
async fn concurrent_upgrades_count_each_record_once() {
    use token_service::clock::Clock;
    let store = dynamo::fresh_store().await;
    let now = SystemClock.now();
    dynamo::write_first_stage_records(&store, now).await;
    let (first, second) = tokio::join!(store.upgrade_table(now), store.upgrade_table(now));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!((first.clients + second.clients, first.users + second.users), (1, 2));
    assert_eq!(first.grants + second.grants, 1);
    let counts = (
        dynamo::tenant_members(&store, "/old").await,
        dynamo::tenant_members(&store, "/old/eu").await,
    );
    assert_eq!(counts, (Some(3), Some(1)));
}

const TRANSACTION_CONFLICT_ON_THE_TENANT: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, None, TransactionConflict]","CancellationReasons":[{"Code":"None"},{"Code":"None"},{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]}"#;

/// A creation cancelled by concurrent writes to its tenant's count is retried, and if the
/// conflicts last, a storage error: never "that username is taken", which nothing stored says.
#[tokio::test]
async fn a_creation_losing_races_on_its_tenant_is_an_error_not_a_taken_name() {
    use token_service::domain::{TenantPath, User, UserId, Username};
    use token_service::store::UserStore;
    let store = dynamo::fresh_store().await;
    let faults = dynamo::faulty_endpoint_answering(
        &["TransactWriteItems"],
        400,
        TRANSACTION_CONFLICT_ON_THE_TENANT,
    )
    .await;
    let sdk_config = setup::aws_config().await;
    let config =
        aws_sdk_dynamodb::config::Builder::from(&sdk_config).endpoint_url(&faults.url).build();
    let proxied = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), store.table_name());
    let user = User {
        id: UserId::generate(),
        tenant: TenantPath::parse("/raced").unwrap(),
        username: Username::parse("alice").unwrap(),
        password_hash: "h".into(),
        enabled: true,
        created_at: 0,
        version: 0,
    };
    faults.fail(true);
    assert!(proxied.create_user(&user).await.is_err(), "an unknown outcome");
    faults.fail(false);
    assert!(proxied.create_user(&user).await.unwrap(), "the name was free all along");
}

/// A user's sessions and the admin lists are queries on the list index: never a scan of the
/// table, whose size is the issuance log's.
#[tokio::test]
async fn sessions_and_admin_lists_are_index_queries_never_scans() {
    use token_service::domain::{TenantPath, UserId};
    use token_service::store::{ClientStore, GrantStore, PageRequest, TenantStore, UserStore};
    let (store, round_trips) = dynamo::fresh_store_counting().await;
    let acme = TenantPath::parse("/acme").unwrap();
    store
        .sessions(&acme, &UserId::generate(), PageRequest { limit: 10, after: None }, 0)
        .await
        .unwrap();
    store.clients(&acme, PageRequest { limit: 10, after: None }).await.unwrap();
    store.users(&acme, PageRequest { limit: 10, after: None }).await.unwrap();
    store.tenants(&acme, PageRequest { limit: 10, after: None }).await.unwrap();
    assert_eq!(round_trips.take_operations(), ["Query", "Query", "Query", "Query"]);
}
