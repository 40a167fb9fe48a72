//! Signing keys in SSM Parameter Store (moto): the rotation commands, and a function binary
//! loading its keys from the parameter at init.

use integration_tests::emulator::{Function, binary};
use integration_tests::{AUDIENCE, dynamo, load_seed, repo_path};
use serde_json::Value;
use token_service::clock::{Clock, SystemClock};
use token_service::config::Config;
use token_service::jwt::{AccessTokenClaims, AccessTokens};
use token_service::keys::{KeyError, KeySet, SigningAlgorithm};
use token_service::setup;
use tokenctl::keys;

async fn ssm() -> aws_sdk_ssm::Client {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_SSM").is_ok(),
        "SSM tests need a local server: run them through `make test` or tests/aws-local.sh"
    );
    aws_sdk_ssm::Client::new(&setup::aws_config().await)
}

fn parameter_name() -> String {
    format!("/token-service/test/{}", token_service::domain::TokenId::generate())
}

/// The key set a function configured with `SIGNING_ALG=alg` loads from the parameter at init.
async fn load_as(name: &str, alg: SigningAlgorithm) -> Result<KeySet, setup::SetupError> {
    let config = Config::from_lookup(|var| match var {
        "ISSUER" => Some("https://issuer".into()),
        "SIGNING_KEYS_PARAMETER" => Some(name.to_owned()),
        "SIGNING_ALG" => Some(alg.as_str().to_owned()),
        _ => None,
    })
    .unwrap();
    setup::keys(&config).await
}

async fn loaded(name: &str) -> KeySet {
    load_as(name, SigningAlgorithm::ES256).await.unwrap()
}

/// A function's environment with its keys in the parameter `name`, on the local AWS endpoints.
fn function_env(name: &str, table: Option<&str>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("ISSUER", "https://abc123.execute-api.eu-west-1.amazonaws.com".to_owned()),
        ("SIGNING_KEYS_PARAMETER", name.to_owned()),
    ];
    env.extend(table.map(|table| ("TABLE_NAME", table.to_owned())));
    for var in [
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_SSM",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
    ] {
        env.extend(std::env::var(var).ok().map(|value| (var, value)));
    }
    env
}

fn claims(now: u64) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "https://issuer".into(),
        sub: "s".into(),
        aud: AUDIENCE.into(),
        exp: now + 600,
        iat: now,
        nbf: None,
        jti: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        client_id: "c".into(),
        scope: String::new(),
        tenant: "/t".into(),
        sid: None,
    }
}

#[tokio::test]
async fn rotation_stages_then_promotes_and_old_tokens_verify_until_pruned() {
    let (ssm, name, now) = (ssm().await, parameter_name(), 1_800_000_000);
    let first = keys::init(&ssm, &name, SigningAlgorithm::ES256, now).await.unwrap();
    assert!(
        keys::init(&ssm, &name, SigningAlgorithm::ES256, now).await.is_err(),
        "never replaces a key set"
    );
    assert!(matches!(keys::promote(&ssm, &name, now).await, Err(KeyError::NothingStaged)));
    let before = AccessTokens::new(loaded(&name).await, "https://issuer".into(), AUDIENCE.into());
    let old_token = before.sign(&claims(now)).unwrap();

    let staged = keys::stage(&ssm, &name, SigningAlgorithm::EdDSA, now + 10).await.unwrap();
    let keys_now = loaded(&name).await;
    assert_eq!(keys_now.current().kid, first, "staging does not change the signer");
    assert!(keys_now.find(&staged).is_some(), "but the staged key is published");

    let to_eddsa = load_as(&name, SigningAlgorithm::EdDSA).await;
    assert!(to_eddsa.is_ok(), "a staged key of SIGNING_ALG is a rotation to it under way");

    assert_eq!(keys::promote(&ssm, &name, now + 20).await.unwrap(), staged);
    let stale = load_as(&name, SigningAlgorithm::ES256).await.err().expect("refused at init");
    let message = stale.to_string();
    assert!(message.contains("SIGNING_ALG is ES256") && message.contains("is EdDSA"), "{message}");
    assert!(message.contains(&name), "names the parameter: {message}");
    let eddsa = load_as(&name, SigningAlgorithm::EdDSA).await.unwrap();
    let after = AccessTokens::new(eddsa, "https://issuer".into(), AUDIENCE.into());
    assert_eq!(after.keys().current().kid, staged);
    assert!(after.verify(&old_token, now + 30).is_ok(), "tokens of the retired key still verify");
    let states = keys::show(&ssm, &name).await.unwrap();
    assert!(states[0].contains("current") && states[1].contains("retired"), "{states:?}");

    assert_eq!(
        keys::prune(&ssm, &name, 600, now + 600).await.unwrap(),
        0,
        "its tokens may still live"
    );
    assert_eq!(keys::prune(&ssm, &name, 600, now + 620).await.unwrap(), 1);
    let pruned = load_as(&name, SigningAlgorithm::EdDSA).await.unwrap();
    let pruned = AccessTokens::new(pruned, "https://issuer".into(), AUDIENCE.into());
    assert!(pruned.verify(&old_token, now + 30).is_err(), "gone once pruned");
}

#[tokio::test]
async fn a_function_loads_its_keys_from_the_parameter_at_init() {
    let (ssm, name) = (ssm().await, parameter_name());
    let current =
        keys::init(&ssm, &name, SigningAlgorithm::ES256, SystemClock.now()).await.unwrap();
    let store = dynamo::fresh_store().await;
    load_seed(&repo_path("seed.toml")).install(&store, &store).await.unwrap();
    let env = function_env(&name, Some(store.table_name()));
    let keys_function = Function::start(binary("keys", "debug"), &env).await;
    let event: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_path("events/keys-jwks.json")).unwrap())
            .unwrap();
    let response = keys_function.respond(event).await;
    let jwks: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(jwks["keys"][0]["kid"].as_str(), Some(current.as_str()));

    let missing: Vec<_> = env
        .iter()
        .map(|(k, v)| {
            if *k == "SIGNING_KEYS_PARAMETER" {
                (*k, format!("{name}-absent"))
            } else {
                (*k, v.clone())
            }
        })
        .collect();
    let (status, _, stderr) =
        Function::start(binary("token", "debug"), &missing).await.exit().await;
    assert!(!status.success());
    assert!(stderr.contains("keys init"), "says how to fix it: {stderr}");
}

/// `tokenctl keys prune` without `--older-than` keeps every key that may still have live
/// tokens: clients may be given access tokens for up to `MAX_LIFETIME`, so a key retired two
/// days ago stays (a default of one day once dropped it).
#[tokio::test]
async fn a_default_prune_keeps_keys_whose_tokens_may_still_live() {
    use token_service::domain::MAX_LIFETIME;
    let (ssm, name, now) = (ssm().await, parameter_name(), SystemClock.now());
    let day = 24 * 3600;
    keys::init(&ssm, &name, SigningAlgorithm::ES256, now - 3 * day).await.unwrap();
    keys::stage(&ssm, &name, SigningAlgorithm::ES256, now - 3 * day).await.unwrap();
    keys::promote(&ssm, &name, now - 2 * day).await.unwrap();
    let prune = |extra: &[&str]| {
        let output = std::process::Command::new(binary("tokenctl", "debug"))
            .args(["keys", "prune", "--parameter", &name])
            .args(extra)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(prune(&[]).contains("pruned 0 "), "the default keeps a key retired 2 days ago");
    assert_eq!(keys::show(&ssm, &name).await.unwrap().len(), 2);
    assert_eq!(keys::DEFAULT_PRUNE_OLDER_THAN, MAX_LIFETIME);
    assert!(prune(&["--older-than", &day.to_string()]).contains("pruned 1 "), "sooner on request");
    assert_eq!(keys::show(&ssm, &name).await.unwrap().len(), 1);
}

/// A key set in a plain String parameter is unencrypted: init refuses it and says so, and so do
/// the rotation commands, rather than keep using or rewriting it.
#[tokio::test]
async fn a_key_set_in_a_plain_string_parameter_is_refused() {
    use aws_sdk_ssm::types::ParameterType;
    use token_service::keys::KeySetDocument;
    let (ssm, name, now) = (ssm().await, parameter_name(), SystemClock.now());
    let document = KeySetDocument::generate(SigningAlgorithm::ES256, now).unwrap();
    ssm.put_parameter()
        .name(&name)
        .value(serde_json::to_string(&document).unwrap())
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap();
    let refused = load_as(&name, SigningAlgorithm::ES256).await.err().expect("init refuses it");
    let message = refused.to_string();
    assert!(message.contains(&name) && message.contains("not a SecureString"), "{message}");
    assert!(keys::stage(&ssm, &name, SigningAlgorithm::ES256, now).await.is_err());
    assert!(keys::init(&ssm, &name, SigningAlgorithm::ES256, now).await.is_err());

    let (status, _, stderr) =
        Function::start(binary("keys", "debug"), &function_env(&name, None)).await.exit().await;
    assert!(!status.success());
    assert!(stderr.contains("not a SecureString"), "{stderr}");
}
