//! The functions' metrics as CloudWatch reads them: EMF documents on stdout. Real function
//! binaries run under the Runtime API emulator, answer a known sequence of requests, and their
//! stdout is parsed as EMF: every document well formed (RFC-free, but as the EMF specification
//! asks: `_aws.Timestamp`, one namespace, dimension sets naming top-level string members, metric
//! definitions naming top-level numbers), every name and dimension one of `telemetry::METRICS`,
//! and the values what the requests should have produced.

use std::collections::BTreeMap;

use integration_tests::emulator::{
    Deployment, Function, binary, deployment, fixture, http, token_event,
};
use integration_tests::{ADMIN_CLIENT, CC_CLIENT};
use serde_json::Value;
use token_service::telemetry::METRICS;

const NAMESPACE: &str = "TokenServiceTest";

/// `(metric, sorted dimension pairs)` to the sum of its values (for a histogram, the number of
/// values recorded).
type Totals = BTreeMap<(String, Vec<(String, String)>), f64>;

/// Checks every EMF document in `stdout` and totals its metrics.
fn emf_totals(stdout: &str) -> Totals {
    let mut totals = Totals::new();
    let documents: Vec<Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get("_aws").is_some())
        .collect();
    assert!(!documents.is_empty(), "no EMF document in: {stdout}");
    for document in documents {
        let aws = &document["_aws"];
        assert!(aws["Timestamp"].is_u64(), "{document}");
        let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics");
        assert_eq!(directives.len(), 1, "{document}");
        let directive = &directives[0];
        assert_eq!(directive["Namespace"], NAMESPACE, "{document}");
        let dimension_sets = directive["Dimensions"].as_array().expect("Dimensions");
        assert_eq!(dimension_sets.len(), 1, "{document}");
        let mut dimensions: Vec<(String, String)> = dimension_sets[0]
            .as_array()
            .expect("a dimension set")
            .iter()
            .map(|name| {
                let name = name.as_str().expect("a dimension name");
                let value = document[name].as_str().unwrap_or_else(|| panic!("{name}: {document}"));
                (name.to_owned(), value.to_owned())
            })
            .collect();
        dimensions.sort();
        assert!(dimensions.len() <= 30, "{document}");
        for definition in directive["Metrics"].as_array().expect("Metrics") {
            let name = definition["Name"].as_str().expect("a metric name");
            let (_, declared) = METRICS
                .iter()
                .find(|(known, _)| *known == name)
                .unwrap_or_else(|| panic!("{name} is not in telemetry::METRICS"));
            let mut names: Vec<&str> = dimensions.iter().map(|(n, _)| n.as_str()).collect();
            let mut declared = declared.to_vec();
            names.sort();
            declared.sort();
            assert_eq!(names, declared, "{name}'s dimensions");
            let value = match &document[name] {
                Value::Number(n) => n.as_f64().expect("a number"),
                Value::Array(values) => {
                    assert!(values.iter().all(Value::is_number) && values.len() <= 100);
                    values.len() as f64
                }
                other => panic!("{name} = {other}"),
            };
            *totals.entry((name.to_owned(), dimensions.clone())).or_default() += value;
        }
    }
    totals
}

fn total(totals: &Totals, name: &str, dimensions: &[(&str, &str)]) -> f64 {
    let mut key: Vec<(String, String)> =
        dimensions.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
    key.sort();
    totals.get(&(name.to_owned(), key)).copied().unwrap_or(0.0)
}

async fn start(deployment: &Deployment, name: &str) -> Function {
    let mut env = deployment.env_for(name);
    env.push(("METRICS_NAMESPACE", NAMESPACE.to_owned()));
    Function::start(binary(name, "debug"), &env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_write_emf_that_counts_what_they_did_and_audit_revocations() {
    let deployment = deployment().await;

    let token = start(&deployment, "token").await;
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let (status, body) =
            http(&token.respond(token_event("grant_type=client_credentials", CC_CLIENT)).await);
        assert_eq!(status, 200, "{body}");
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
    }
    let wrong = (CC_CLIENT.0, "not-the-secret-0123456789abcdefghij");
    let (status, _) =
        http(&token.respond(token_event("grant_type=client_credentials", wrong)).await);
    assert_eq!(status, 401);
    let (status, _) = http(&token.respond(token_event("grant_type=implicit", CC_CLIENT)).await);
    assert_eq!(status, 400);
    let token_totals = emf_totals(&token.stdout().await);
    assert_eq!(total(&token_totals, "TokensIssued", &[("GrantType", "client_credentials")]), 2.0);
    let errors =
        |code| total(&token_totals, "Errors", &[("Route", "/oauth2/token"), ("Code", code)]);
    assert_eq!((errors("invalid_client"), errors("unsupported_grant_type")), (1.0, 1.0));
    assert_eq!(
        total(&token_totals, "Latency", &[("Route", "/oauth2/token")]),
        4.0,
        "one per request"
    );
    assert_eq!(total(&token_totals, "StorageErrors", &[]), 0.0);

    let revoke = start(&deployment, "revoke").await;
    // The fixture's logout names app-client; this token is cc-client's.
    let mut logout = fixture("revoke-bearer-logout.json", &tokens[0]);
    logout["rawQueryString"] = "".into();
    logout.as_object_mut().unwrap().remove("queryStringParameters");
    let (status, _) = http(&revoke.respond(logout).await);
    assert_eq!(status, 200);
    let revoke_stdout = revoke.stdout().await;
    let revoke_totals = emf_totals(&revoke_stdout);
    assert_eq!(total(&revoke_totals, "Revocations", &[("Kind", "self")]), 1.0);
    // The revocation's audit line: who, what, which token; never the token itself.
    let audits: Vec<Value> = revoke_stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "audit")
        .collect();
    assert_eq!(audits.len(), 1, "{revoke_stdout}");
    let jti = integration_tests::forgery::claims_of(&tokens[0])["jti"].clone();
    let fields = &audits[0]["fields"];
    assert_eq!(
        (&fields["caller_client"], &fields["action"], &fields["resource"], &fields["outcome"]),
        (&Value::from(CC_CLIENT.0), &Value::from("revoke_self"), &jti, &Value::from("ok"))
    );
    assert!(!revoke_stdout.contains(&tokens[0]), "a token in the log");

    let authorizer = start(&deployment, "authorizer").await;
    let allowed = authorizer.respond(fixture("authorizer-get-orders.json", &tokens[1])).await;
    assert_eq!(allowed["isAuthorized"], true, "{allowed}");
    let denied = authorizer.respond(fixture("authorizer-get-orders.json", &tokens[0])).await;
    assert_eq!(denied["isAuthorized"], false, "revoked");
    let decisions = emf_totals(&authorizer.stdout().await);
    let decision = |outcome, reason| {
        total(&decisions, "AuthorizerDecisions", &[("Outcome", outcome), ("Reason", reason)])
    };
    assert_eq!((decision("allow", "none"), decision("deny", "invalid_token")), (1.0, 1.0));
    assert_eq!(total(&decisions, "Latency", &[("Route", "authorizer")]), 2.0);

    // A batch revocation of cc-client's tokens: audited as the cutoff is written, and counted.
    let (status, admin) = http(
        &start(&deployment, "token")
            .await
            .respond(token_event("grant_type=client_credentials", ADMIN_CLIENT))
            .await,
    );
    assert_eq!(status, 200, "{admin}");
    let batch = start(&deployment, "batch-revoke").await;
    let mut event = fixture("batch-revoke-dry-run.json", admin["access_token"].as_str().unwrap());
    event["body"] = r#"{"tenantPath":"/acme","clientId":"cc-client"}"#.into();
    let (status, answer) = http(&batch.respond(event).await);
    assert_eq!(status, 200, "{answer}");
    let batch_stdout = batch.stdout().await;
    let batch_totals = emf_totals(&batch_stdout);
    assert_eq!(total(&batch_totals, "Revocations", &[("Kind", "batch")]), 1.0);
    let counted = answer["count"].as_f64().unwrap();
    assert_eq!(total(&batch_totals, "BatchRevokedTokens", &[]), counted);
    let audited: Vec<Value> = batch_stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "audit")
        .collect();
    assert_eq!(audited.len(), 1, "{batch_stdout}");
    assert_eq!(audited[0]["fields"]["action"], "batch_revoke");
    assert_eq!(audited[0]["fields"]["caller_client"], ADMIN_CLIENT.0);
}
