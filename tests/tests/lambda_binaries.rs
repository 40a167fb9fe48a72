//! The real function binaries under the Runtime API emulator: each `main.rs`, its configuration
//! and its init, fed API Gateway events, on a DynamoDB table shared by all of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use integration_tests::emulator::{
    Deployment, Function, ISSUER, binary, deployment, deployment_on_ssm, fixture, http, token_event,
};
use integration_tests::{ACME_ADMIN, ADMIN_CLIENT, APP_CLIENT, CC_CLIENT, repo_path};
use serde_json::{Value, json};

/// What one run of every function left behind: each function's output (stdout and stderr) and
/// every secret the run handled, none of which may appear in any of it.
struct Run {
    outputs: Vec<(&'static str, String)>,
    secrets: Vec<String>,
}

impl Run {
    fn output(&self, function: &str) -> &str {
        self.outputs.iter().find(|(name, _)| *name == function).map_or("", |(_, out)| out)
    }

    fn assert_no_secret_logged(&self) {
        for (function, output) in &self.outputs {
            assert!(!output.is_empty(), "{function} logged nothing");
            for secret in &self.secrets {
                assert!(
                    !output.contains(secret.as_str()),
                    "a secret, password, key or token reached the {function} function's logs"
                );
            }
        }
    }
}

/// The secret of a client, raw and as its Basic `Authorization` value carries it.
fn client_secrets((id, secret): (&str, &str)) -> [String; 2] {
    [secret.to_owned(), STANDARD.encode(format!("{id}:{secret}"))]
}

/// A token, and its signature alone.
fn token_secrets(token: &str) -> [String; 2] {
    [token.to_owned(), token.rsplit('.').next().unwrap_or_default().to_owned()]
}

/// Starts every function binary with its environment in `deployment` plus `extra`, and sends
/// each its route's events, checking the answers; returns what they logged.
///
/// Only the token function can read the private keys: once it is up they are withdrawn (file
/// or parameter deleted), and every other function starts after that, with the private keys'
/// setting pointing at nothing, as a verifying function's IAM role leaves it.
async fn run_every_function(deployment: &Deployment, extra: &[(&'static str, String)]) -> Run {
    let start = async |name: &str| {
        let mut env = deployment.env_for(name);
        if name != "token" {
            env.push(deployment.private_keys.clone());
        }
        env.extend_from_slice(extra);
        Function::start(binary(name, "debug"), &env).await
    };
    let kid = deployment.kid.as_str();
    let mut secrets: Vec<String> = [CC_CLIENT, APP_CLIENT, ADMIN_CLIENT]
        .into_iter()
        .flat_map(client_secrets)
        .chain(["alice-password-1".to_owned()])
        .chain(deployment.private_key_secrets.iter().cloned())
        .collect();

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
    for token in [&service_token, &alice_token, &admin_token] {
        secrets.extend(token_secrets(token));
    }
    secrets.push(alice["refresh_token"].as_str().unwrap().to_owned());
    deployment.withdraw_private_keys().await;

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
    let (status, _) =
        http(&revoke.respond(fixture("revoke-bearer-logout.json", &alice_token)).await);
    assert_eq!(status, 401, "a revoked bearer token no longer revokes");

    let batch = start("batch-revoke").await;
    let (status, answer) =
        http(&batch.respond(fixture("batch-revoke-dry-run.json", &admin_token)).await);
    assert_eq!(status, 200, "{answer}");
    assert!(answer["count"].is_u64());

    let keys = start("keys").await;
    let (status, jwks) = http(&keys.respond(fixture("keys-jwks.json", "")).await);
    assert_eq!((status, jwks["keys"][0]["kid"].as_str()), (200, Some(kid)));
    let (_, metadata) = http(&keys.respond(fixture("keys-metadata.json", "")).await);
    assert_eq!(metadata["issuer"], ISSUER);

    let authorizer = start("authorizer").await;
    let decision = authorizer.respond(fixture("authorizer-get-orders.json", &service_token)).await;
    assert_eq!(decision["isAuthorized"], true);
    assert_eq!(decision["context"]["client_id"], "cc-client");
    let decision = authorizer.respond(fixture("authorizer-get-orders.json", &alice_token)).await;
    assert_eq!(decision, json!({"isAuthorized": false}), "revoked");

    let mut outputs = Vec::new();
    for (name, function) in [
        ("token", token),
        ("introspect", introspect),
        ("revoke", revoke),
        ("batch-revoke", batch),
        ("keys", keys),
        ("authorizer", authorizer),
    ] {
        outputs.push((name, function.output().await));
    }
    Run { outputs, secrets }
}

/// The JSON log lines of one output with `"message": "request"`.
fn request_lines(output: &str) -> Vec<Value> {
    output
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "request")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_binary_serves_its_route() {
    let deployment = deployment_on_ssm().await;
    let run = run_every_function(&deployment, &[]).await;

    // One JSON log line per request, with the client id, and never a secret or a token.
    let logs = run.output("token");
    let requests = request_lines(logs);
    assert_eq!(requests.len(), 3, "{logs}");
    assert_eq!(requests[1]["fields"]["outcome"], "ok");
    assert_eq!(requests[1]["span"]["client_id"], "app-client", "{}", requests[1]);
    assert!(requests[1]["span"]["request_id"].is_string());

    // The authorizer too: one line per decision, the denial's reason, never the token.
    let logs = run.output("authorizer");
    let decisions = request_lines(logs);
    assert_eq!(decisions.len(), 2, "{logs}");
    let (allowed, denied) = (&decisions[0], &decisions[1]);
    assert_eq!(allowed["fields"]["outcome"], "allow", "{allowed}");
    assert_eq!(allowed["fields"]["route"], "GET /orders");
    assert_eq!(allowed["fields"]["method"], "GET");
    assert!(allowed["fields"]["latency_us"].is_u64());
    assert_eq!(allowed["span"]["client_id"], "cc-client", "{allowed}");
    assert_eq!(allowed["span"]["request_id"], "req-0");
    assert_eq!(denied["fields"]["outcome"], "deny", "{denied}");
    assert_eq!(denied["fields"]["reason"], "invalid_token");
    assert_eq!(denied["fields"]["detail"], "token revoked");
    assert_eq!(denied["span"]["request_id"], "req-1");
    run.assert_no_secret_logged();
}

/// At TRACE, lambda_runtime logs every raw event and the SDK its requests and responses. The
/// functions cap those crates at INFO whatever the level or `RUST_LOG` asks, and still honour
/// the level for their own code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_trace_no_function_binary_logs_a_secret() {
    let deployment = deployment().await;
    let env = [
        ("AWS_LAMBDA_LOG_LEVEL", "TRACE".to_owned()),
        (
            "RUST_LOG",
            "trace,lambda_runtime=trace,lambda_runtime::layers::api_response=trace,\
             aws_smithy_runtime=trace,hyper=trace"
                .to_owned(),
        ),
    ];
    let run = run_every_function(&deployment, &env).await;
    run.assert_no_secret_logged();
    for (function, output) in &run.outputs {
        assert!(!output.contains("raw JSON event"), "{function} logged a raw event");
    }
    let debug_lines = |function| {
        run.output(function)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["level"] == "DEBUG")
            .count()
    };
    assert!(debug_lines("revoke") > 0, "our own DEBUG lines still pass: {}", run.output("revoke"));
}

#[tokio::test]
async fn a_function_missing_its_configuration_fails_at_init_and_says_why() {
    let deployment = deployment().await;
    let env: Vec<_> =
        deployment.env_for("token").into_iter().filter(|(k, _)| *k != "ISSUER").collect();
    let function = Function::start(binary("token", "debug"), &env).await;
    let (status, _, stderr) = function.exit().await;
    assert!(!status.success());
    assert!(stderr.contains("ISSUER"), "{stderr}");
}

/// `SIGNING_ALG` is what the deployment signs with: keys of another algorithm fail init, and the
/// message names both and how to reconcile them.
#[tokio::test]
async fn a_signing_alg_other_than_the_keys_fails_at_init_and_names_both() {
    let deployment = deployment().await; // an ES256 key set
    let mut env = deployment.env_for("token");
    env.push(("SIGNING_ALG", "RS256".to_owned()));
    let function = Function::start(binary("token", "debug"), &env).await;
    let (status, _, stderr) = function.exit().await;
    assert!(!status.success());
    for named in ["SIGNING_ALG is RS256", "is ES256", &deployment.kid, "tokenctl keys stage"] {
        assert!(stderr.contains(named), "{named}: {stderr}");
    }
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
    let mut env: Vec<_> = deployment
        .env_for("token")
        .into_iter()
        .filter(|(k, _)| *k != "AWS_ENDPOINT_URL_DYNAMODB")
        .collect();
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

/// Every function that only verifies refuses, at init, a key set holding private keys where it
/// expects the public one, and says what it expects; none of them starts holding a private key.
#[tokio::test]
async fn a_verifying_function_handed_the_private_keys_fails_at_init() {
    let deployment = deployment().await;
    for function in ["introspect", "revoke", "batch-revoke", "keys", "authorizer", "admin"] {
        let mut env = deployment.env.clone();
        env.push(("PUBLIC_KEYS_FILE", deployment.private_keys.1.clone()));
        let (status, _, stderr) =
            Function::start(binary(function, "debug"), &env).await.exit().await;
        assert!(!status.success(), "{function} started with the private key set");
        assert!(stderr.contains("private key material"), "{function}: {stderr}");
    }
}

/// Tokens from the token function under the emulator: an admin one (`acme-admin`, scope
/// `admin`, manager of `/acme`), alice's (a user's) and cc-client's (no admin scope).
async fn admin_and_other_tokens(deployment: &Deployment) -> [String; 3] {
    let token = Function::start(binary("token", "debug"), &deployment.env_for("token")).await;
    let mut tokens = Vec::new();
    for (form, client) in [
        ("grant_type=client_credentials", ACME_ADMIN),
        ("grant_type=password&username=alice&password=alice-password-1", APP_CLIENT),
        ("grant_type=client_credentials", CC_CLIENT),
    ] {
        let (status, answer) = http(&token.respond(token_event(form, client)).await);
        assert_eq!(status, 200, "{answer}");
        tokens.push(answer["access_token"].as_str().unwrap().to_owned());
    }
    tokens.try_into().unwrap()
}

/// Each of `refused` is a 403 that creates nothing; no token at all is a 401.
async fn assert_refused(admin: &Function, refused: &[(&String, &str)]) {
    for (token, why) in refused {
        let (status, answer) = http(&admin.respond(fixture("admin-read-client.json", token)).await);
        assert_eq!((status, answer["error"].as_str()), (403, Some("insufficient_scope")), "{why}");
        let (status, _) = http(&admin.respond(fixture("admin-create-client.json", token)).await);
        assert_eq!(status, 403, "{why} creates nothing");
    }
    let mut anonymous = fixture("admin-read-client.json", "");
    anonymous["headers"].as_object_mut().unwrap().remove("authorization");
    let (status, answer) = http(&admin.respond(anonymous).await);
    assert_eq!((status, answer["error"].as_str()), (401, Some("invalid_token")));
}

/// The admin function binary under the emulator: an admin token registers a client, sees its
/// secret once, and reads it back without it; other tokens are refused. On the in-memory store
/// from the seed, the one that holds tenants on this branch.
// TODO(admin plane): run it on the DynamoDB deployment once the store's tenant, client and user
// writes land (the test below covers DynamoDB reads and refusals meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_function_registers_and_reads_a_client_for_an_admin_token_only() {
    let deployment = deployment().await;
    let tokens = admin_and_other_tokens(&deployment).await;
    let mut env: Vec<_> =
        deployment.env_for("admin").into_iter().filter(|(k, _)| *k != "TABLE_NAME").collect();
    env.push(("SEED_FILE", repo_path("seed.toml").display().to_string()));
    let admin = Function::start(binary("admin", "debug"), &env).await;

    // A user's token is checked on the shared table below: its grant lives in the token
    // function's store, and this function's memory store answers that the grant is gone.
    assert_refused(&admin, &[(&tokens[2], "a token without scope admin")]).await;
    let (status, _) = http(&admin.respond(fixture("admin-read-client.json", &tokens[0])).await);
    assert_eq!(status, 404, "nothing was created by the refused calls");

    let (status, created) =
        http(&admin.respond(fixture("admin-create-client.json", &tokens[0])).await);
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["client_id"], "emulated-client");
    let secret = created["client_secret"].as_str().expect("the secret, shown once").to_owned();
    assert!(secret.len() >= 43, "at least 256 bits");

    let (status, read) = http(&admin.respond(fixture("admin-read-client.json", &tokens[0])).await);
    assert_eq!(status, 200, "{read}");
    assert_eq!(
        (&read["tenant"], &read["scope"], &read["grant_types"], &read["enabled"]),
        (&json!("/acme"), &json!("read"), &json!(["client_credentials"]), &json!(true))
    );
    assert!(read.get("client_secret").is_none(), "never read back: {read}");

    let logs = admin.output().await;
    let audit: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "audit")
        .collect();
    assert!(
        audit.iter().any(|line| line["fields"]["action"] == "create_client"
            && line["fields"]["outcome"] == "ok"
            && line["fields"]["caller_client"] == "acme-admin"),
        "{logs}"
    );
    let secrets = [&secret, &tokens[0], &tokens[1], &tokens[2]];
    assert!(secrets.iter().all(|secret| !logs.contains(secret.as_str())), "no secret logged");
}

/// The admin function on the DynamoDB table and its key set in SSM, as deployed: it verifies
/// tokens against the public parameter, reads a seeded client and refuses non-admin tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_function_reads_the_table_for_an_admin_token_only() {
    let deployment = deployment_on_ssm().await;
    let tokens = admin_and_other_tokens(&deployment).await;
    deployment.withdraw_private_keys().await;
    let mut env = deployment.env_for("admin");
    env.push(deployment.private_keys.clone());
    let admin = Function::start(binary("admin", "debug"), &env).await;

    // A user's token never administers; a token without scope `admin` neither.
    let refused = [(&tokens[1], "a user's token"), (&tokens[2], "a token without scope admin")];
    assert_refused(&admin, &refused).await;
    let mut read = fixture("admin-read-client.json", &tokens[0]);
    read["rawPath"] = json!("/admin/clients/cc-client");
    read["requestContext"]["http"]["path"] = json!("/admin/clients/cc-client");
    read["pathParameters"]["proxy"] = json!("clients/cc-client");
    let (status, client) = http(&admin.respond(read).await);
    assert_eq!(status, 200, "{client}");
    assert_eq!((&client["client_id"], &client["tenant"]), (&json!("cc-client"), &json!("/acme")));
    assert!(client.get("client_secret").is_none(), "{client}");
    let logs = admin.output().await;
    assert!(tokens.iter().all(|token| !logs.contains(token.as_str())), "no token logged");
}
