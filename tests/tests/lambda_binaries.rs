//! The real function binaries under the Runtime API emulator: each `main.rs`, its configuration
//! and its init, fed API Gateway events, on a DynamoDB table shared by all of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use integration_tests::emulator::{
    Function, ISSUER, binary, deployment, fixture, http, token_event,
};
use integration_tests::{ADMIN_CLIENT, APP_CLIENT};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_binary_serves_its_route() {
    let deployment = deployment().await;
    let start = async |name: &str| Function::start(binary(name, "debug"), &deployment.env).await;

    let token = start("token").await;
    let cold = token.started();
    let (status, service) =
        http(&token.respond(fixture("token-client-credentials-basic.json", "")).await);
    eprintln!("token: exec to first response {:?} (debug build, DynamoDB on moto)", cold.elapsed());
    assert_eq!(status, 200, "{service}");
    let service_token = service["access_token"].as_str().unwrap().to_owned();
    let login = "grant_type=password&username=alice&password=alice-password-1";
    let (status, alice) = http(&token.respond(token_event(login, APP_CLIENT)).await);
    assert_eq!(status, 200, "{alice}");
    let alice_token = alice["access_token"].as_str().unwrap().to_owned();
    let (_, admin) =
        http(&token.respond(token_event("grant_type=client_credentials", ADMIN_CLIENT)).await);
    let admin_token = admin["access_token"].as_str().unwrap().to_owned();

    let introspect = start("introspect").await;
    let (status, answer) =
        http(&introspect.respond(fixture("introspect-basic.json", &alice_token)).await);
    assert_eq!(
        (status, answer["active"].clone(), answer["username"].clone()),
        (200, json!(true), json!("alice"))
    );

    let revoke = start("revoke").await;
    let (status, _) =
        http(&revoke.respond(fixture("revoke-bearer-logout.json", &alice_token)).await);
    assert_eq!(status, 200);
    let (_, answer) =
        http(&introspect.respond(fixture("introspect-basic.json", &alice_token)).await);
    assert_eq!(answer, json!({"active": false}), "revocation by one function is seen by another");

    let batch = start("batch-revoke").await;
    let (status, answer) =
        http(&batch.respond(fixture("batch-revoke-dry-run.json", &admin_token)).await);
    assert_eq!(status, 200, "{answer}");
    assert!(answer["count"].is_u64());

    let keys = start("keys").await;
    let (status, jwks) = http(&keys.respond(fixture("keys-jwks.json", "")).await);
    assert_eq!((status, jwks["keys"][0]["kid"].as_str()), (200, Some(deployment.kid.as_str())));
    let (_, metadata) = http(&keys.respond(fixture("keys-metadata.json", "")).await);
    assert_eq!(metadata["issuer"], ISSUER);

    let authorizer = start("authorizer").await;
    let decision = authorizer.respond(fixture("authorizer-get-orders.json", &service_token)).await;
    assert_eq!(decision["isAuthorized"], true);
    assert_eq!(decision["context"]["client_id"], "cc-client");
    let decision = authorizer.respond(fixture("authorizer-get-orders.json", &alice_token)).await;
    assert_eq!(decision, json!({"isAuthorized": false}), "revoked");

    // One JSON log line per request, with the client id, and never a secret or a token.
    let logs = token.logs().await;
    let requests: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 3, "{logs}");
    assert_eq!(requests[1]["fields"]["outcome"], "ok");
    assert_eq!(requests[1]["span"]["client_id"], "app-client", "{}", requests[1]);
    assert!(requests[1]["span"]["request_id"].is_string());
    for secret in [APP_CLIENT.1, "alice-password-1", alice_token.as_str(), service_token.as_str()] {
        assert!(!logs.contains(secret), "a secret or token reached the logs");
    }
}

#[tokio::test]
async fn a_function_missing_its_configuration_fails_at_init_and_says_why() {
    let deployment = deployment().await;
    let env: Vec<_> = deployment.env.iter().filter(|(k, _)| *k != "ISSUER").cloned().collect();
    let function = Function::start(binary("token", "debug"), &env).await;
    let (status, _, stderr) = function.exit().await;
    assert!(!status.success());
    assert!(stderr.contains("ISSUER"), "{stderr}");
}

/// Init builds the SDK client but sends nothing: the first DynamoDB connection comes with the
/// first request.
#[tokio::test]
async fn init_makes_no_network_call() {
    let deployment = deployment().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut env: Vec<_> =
        deployment.env.iter().filter(|(k, _)| *k != "AWS_ENDPOINT_URL_DYNAMODB").cloned().collect();
    env.push(("AWS_ENDPOINT_URL_DYNAMODB", endpoint));
    let function = Function::start(binary("token", "debug"), &env).await;
    let init = function.wait_until_polling().await;
    eprintln!("token: exec to first poll {init:?} (debug build)");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0, "no connection during init");
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        function.invoke(fixture("token-client-credentials-basic.json", "")),
    )
    .await;
    assert!(connections.load(Ordering::SeqCst) > 0, "the first request does reach DynamoDB");
}
