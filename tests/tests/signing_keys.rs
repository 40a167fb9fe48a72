//! Signing keys in SSM Parameter Store (moto): the rotation commands, and a function binary
//! loading its keys from the parameter at init.

use integration_tests::emulator::{Function, binary};
use integration_tests::{AUDIENCE, dynamo, load_seed, repo_path};
use serde_json::Value;
use token_service::clock::{Clock, SystemClock};
use token_service::config::Config;
use token_service::jwt::{AccessTokenClaims, AccessTokens, TokenSigner};
use token_service::key_parameters::{self, public_parameter_name};
use token_service::keys::{KeyError, KeySet, SigningAlgorithm, VerificationKeys};
use token_service::setup;
use token_service::token_cache::TokenDigest;
use tokenctl::keys;

async fn ssm() -> aws_sdk_ssm::Client {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_SSM").is_ok(),
        "SSM tests need a local server: run them through `make test` or tests/aws-local.sh"
    );
    aws_sdk_ssm::Client::new(&setup::admin_aws_config().await)
}

fn parameter_name() -> String {
    format!("/token-service/test/{}", token_service::domain::TokenId::generate())
}

fn config(vars: &[(&str, &str)]) -> Config {
    Config::from_lookup(|var| match var {
        "ISSUER" => Some("https://issuer".into()),
        _ => vars.iter().find(|(k, _)| *k == var).map(|(_, v)| (*v).to_owned()),
    })
    .unwrap()
}

/// The key set the token function, configured with `SIGNING_ALG=alg`, loads from the private
/// parameter at init.
async fn load_as(name: &str, alg: SigningAlgorithm) -> Result<KeySet, setup::SetupError> {
    setup::signing_keys(&config(&[("SIGNING_KEYS_PARAMETER", name), ("SIGNING_ALG", alg.as_str())]))
        .await
}

async fn loaded(name: &str) -> KeySet {
    load_as(name, SigningAlgorithm::ES256).await.unwrap()
}

/// The keys a verifying function loads at init from the parameter `public`.
async fn verifier_keys(public: &str) -> Result<VerificationKeys, setup::SetupError> {
    setup::verification_keys(&config(&[("PUBLIC_KEYS_PARAMETER", public)])).await
}

/// What a verifying function loads beside the private key set `name`.
async fn published(name: &str) -> VerificationKeys {
    verifier_keys(&public_parameter_name(name)).await.unwrap()
}

fn signer(keys: KeySet) -> TokenSigner {
    TokenSigner::new(keys, "https://issuer".into(), AUDIENCE.into())
}

fn verifier(keys: VerificationKeys) -> AccessTokens {
    AccessTokens::new(keys, "https://issuer".into(), AUDIENCE.into())
}

fn kids(keys: &VerificationKeys) -> Vec<String> {
    keys.jwks().keys.iter().filter_map(|jwk| jwk.common.key_id.clone()).collect()
}

/// A function's environment as the template gives it, with the private key set in the parameter
/// `name` (read by the token function only) and the public one beside it, on the local AWS
/// endpoints.
fn function_env(name: &str, table: Option<&str>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("ISSUER", "https://abc123.execute-api.eu-west-1.amazonaws.com".to_owned()),
        ("SIGNING_KEYS_PARAMETER", name.to_owned()),
        ("PUBLIC_KEYS_PARAMETER", public_parameter_name(name)),
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
        cnf: None,
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
    assert!(matches!(keys::promote(&ssm, &name, None, now).await, Err(KeyError::NothingStaged)));
    let old_token = signer(loaded(&name).await).sign(&claims(now)).unwrap();
    assert!(verifier(published(&name).await).verify(&old_token, now).is_ok());

    let staged = keys::stage(&ssm, &name, SigningAlgorithm::EdDSA, now + 10).await.unwrap();
    assert_eq!(loaded(&name).await.current().kid, first, "staging does not change the signer");
    let public = published(&name).await;
    assert_eq!(public.current_kid(), first);
    assert!(public.find(&staged).is_some(), "but the staged key is published");

    let to_eddsa = load_as(&name, SigningAlgorithm::EdDSA).await;
    assert!(to_eddsa.is_ok(), "a staged key of SIGNING_ALG is a rotation to it under way");

    assert_eq!(keys::promote(&ssm, &name, None, now + 20).await.unwrap(), staged);
    let stale = load_as(&name, SigningAlgorithm::ES256).await.err().expect("refused at init");
    let message = stale.to_string();
    assert!(message.contains("SIGNING_ALG is ES256") && message.contains("is EdDSA"), "{message}");
    assert!(message.contains(&name), "names the parameter: {message}");
    let eddsa = load_as(&name, SigningAlgorithm::EdDSA).await.unwrap();
    assert_eq!(eddsa.current().kid, staged);
    let after = verifier(published(&name).await);
    assert_eq!(after.keys().current_kid(), staged, "the public set names the new signer");
    assert!(after.verify(&old_token, now + 30).is_ok(), "tokens of the retired key still verify");
    let cached = after.verified_tokens().get(&TokenDigest::of(&old_token), now + 30);
    assert!(cached.is_some(), "and are cached by the verifier that checked them");
    let new_token = signer(eddsa).sign(&claims(now + 30)).unwrap();
    assert!(after.verify(&new_token, now + 30).is_ok());
    let shown = keys::show(&ssm, &name).await.unwrap();
    let states = &shown.keys;
    assert!(states[0].contains("current") && states[1].contains("retired"), "{states:?}");
    assert!(shown.public_in_step, "every command keeps the public key set in step");

    assert_eq!(
        keys::prune(&ssm, &name, 600, now + 600).await.unwrap(),
        0,
        "its tokens may still live"
    );
    assert_eq!(keys::prune(&ssm, &name, 600, now + 620).await.unwrap(), 1);
    let pruned = verifier(published(&name).await);
    assert!(
        pruned.verify(&old_token, now + 30).is_err(),
        "gone once pruned: the reloaded key set comes with a cache of its own, empty"
    );
}

#[tokio::test]
async fn a_function_loads_its_keys_from_the_parameter_at_init() {
    let (ssm, name) = (ssm().await, parameter_name());
    let current =
        keys::init(&ssm, &name, SigningAlgorithm::ES256, SystemClock.now()).await.unwrap();
    let store = dynamo::fresh_store().await;
    load_seed(&repo_path("seed.toml")).install(&store, &store, &store).await.unwrap();
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
    keys::promote(&ssm, &name, None, now - 2 * day).await.unwrap();
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
    assert_eq!(keys::show(&ssm, &name).await.unwrap().keys.len(), 2);
    assert_eq!(keys::DEFAULT_PRUNE_OLDER_THAN, MAX_LIFETIME);
    assert!(prune(&["--older-than", &day.to_string()]).contains("pruned 1 "), "sooner on request");
    assert_eq!(keys::show(&ssm, &name).await.unwrap().keys.len(), 1);
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
        Function::start(binary("token", "debug"), &function_env(&name, None)).await.exit().await;
    assert!(!status.success());
    assert!(stderr.contains("not a SecureString"), "{stderr}");

    // The same private document where a verifier expects the public one: refused too.
    let refused = verifier_keys(&name).await.err().expect("a verifier refuses private keys");
    assert!(refused.to_string().contains("private key material"), "{refused}");
}

/// A verifying function never takes in a private key: pointed at the private key set, whether
/// the SecureString or a copy of it in a file, it fails init and says what it expects.
#[tokio::test]
async fn a_verifier_handed_the_private_key_set_fails_at_init() {
    let (ssm, name, now) = (ssm().await, parameter_name(), SystemClock.now());
    keys::init(&ssm, &name, SigningAlgorithm::ES256, now).await.unwrap();
    let refused = verifier_keys(&name).await.err().expect("the private parameter is refused");
    let message = refused.to_string();
    assert!(message.contains("private key material") && message.contains(&name), "{message}");
    assert!(message.contains("-public"), "says what to read instead: {message}");

    let document = key_parameters::read_private(&ssm, &name).await.unwrap().unwrap().document;
    let file = std::env::temp_dir().join(format!("private-as-public-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_vec(&document).unwrap()).unwrap();
    let from_file = config(&[("PUBLIC_KEYS_FILE", file.to_str().unwrap())]);
    let refused = setup::verification_keys(&from_file).await.err().expect("refused");
    assert!(refused.to_string().contains("private key material"), "{refused}");
    std::fs::remove_file(file).unwrap();

    assert_eq!(kids(&published(&name).await), vec![document.current], "the public one loads");
}

/// The leaked-key runbook: a staged key can be removed wherever it stands, so it is no longer
/// published, verifies nothing and can never be promoted; with several staged keys `promote`
/// must be told which; the current key cannot be removed until another replaces it.
#[tokio::test]
async fn a_leaked_staged_key_is_removed_and_can_never_sign() {
    let (ssm, name, now) = (ssm().await, parameter_name(), 1_800_000_000);
    let first = keys::init(&ssm, &name, SigningAlgorithm::ES256, now).await.unwrap();
    let leaked = keys::stage(&ssm, &name, SigningAlgorithm::ES256, now + 1).await.unwrap();
    let fresh = keys::stage(&ssm, &name, SigningAlgorithm::ES256, now + 2).await.unwrap();
    let leaked_token = {
        let document = key_parameters::read_private(&ssm, &name).await.unwrap().unwrap().document;
        let keys = KeySet::from_document(&document).unwrap();
        keys.find(&leaked).unwrap().sign_json(&serde_json::to_vec(&claims(now)).unwrap()).unwrap()
    };
    assert!(verifier(published(&name).await).verify(&leaked_token, now).is_ok());

    let ambiguous = keys::promote(&ssm, &name, None, now + 3).await.unwrap_err().to_string();
    assert!(ambiguous.contains(&leaked) && ambiguous.contains(&fresh), "{ambiguous}");
    assert_eq!(loaded(&name).await.current().kid, first, "nothing was promoted");

    assert_eq!(keys::prune(&ssm, &name, 0, now + 4).await.unwrap(), 0, "prune keeps staged keys");
    let current = keys::remove(&ssm, &name, &first).await.unwrap_err().to_string();
    assert!(current.contains("current signing key") && current.contains("promote"), "{current}");
    assert_eq!(
        keys::remove(&ssm, &name, &leaked).await.unwrap().to_string(),
        "staged (verifies, not yet signing)"
    );
    let public = published(&name).await;
    assert_eq!(kids(&public), vec![first.clone(), fresh.clone()], "no longer published");
    assert!(verifier(public).verify(&leaked_token, now).is_err(), "verifies nothing");
    let unknown = keys::promote(&ssm, &name, Some(&leaked), now + 5).await.unwrap_err();
    assert!(matches!(unknown, KeyError::UnknownKid(_)), "{unknown}");

    assert_eq!(keys::promote(&ssm, &name, None, now + 6).await.unwrap(), fresh);
    keys::remove(&ssm, &name, &first).await.unwrap();
    assert_eq!(kids(&published(&name).await), vec![fresh]);
    assert!(keys::show(&ssm, &name).await.unwrap().public_in_step);

    // The same through the command line: `keys remove --kid`, `keys promote --kid`.
    let run = |args: &[&str]| {
        std::process::Command::new(binary("tokenctl", "debug"))
            .args(["keys"])
            .args(args)
            .args(["--parameter", &name])
            .output()
            .unwrap()
    };
    let a = keys::stage(&ssm, &name, SigningAlgorithm::ES256, now + 7).await.unwrap();
    let b = keys::stage(&ssm, &name, SigningAlgorithm::ES256, now + 8).await.unwrap();
    let refused = run(&["promote"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&a) && stderr.contains(&b) && stderr.contains("--kid"), "{stderr}");
    let removed = run(&["remove", "--kid", &a]);
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    let promoted = run(&["promote", "--kid", &b]);
    assert!(promoted.status.success(), "{}", String::from_utf8_lossy(&promoted.stderr));
    assert_eq!(published(&name).await.current_kid(), b);
}

/// SSM has no conditional write: a rotation command reads the key set and its version,
/// computes, and writes. A write by someone else in between is caught: before writing (nothing
/// is written), or, if it slips into the last round trip, by the version its own write got.
#[tokio::test]
async fn a_concurrent_change_to_the_key_set_is_detected() {
    let (ssm, name, now) = (ssm().await, parameter_name(), 1_800_000_000);
    keys::init(&ssm, &name, SigningAlgorithm::ES256, now).await.unwrap();
    // One operator reads and computes a stage...
    let read = key_parameters::read_private(&ssm, &name).await.unwrap().unwrap();
    let mut mine = read.document.clone();
    let my_key = mine.stage(SigningAlgorithm::ES256, now + 1).unwrap();
    // ...while another stages a key of their own.
    let theirs = keys::stage(&ssm, &name, SigningAlgorithm::ES256, now + 2).await.unwrap();

    let refused = key_parameters::replace_private(&ssm, &name, &mine, read.version).await;
    match refused {
        Err(KeyError::ConcurrentChange { detail, .. }) => {
            assert!(detail.contains("nothing was written"), "{detail}")
        }
        other => panic!("a stale write went through: {:?}", other.map_err(|e| e.to_string())),
    }
    let kept = key_parameters::read_private(&ssm, &name).await.unwrap().unwrap().document;
    assert!(kept.state(&theirs).is_some() && kept.state(&my_key).is_none(), "theirs is kept");

    // A write that lands between the check and the write: reported, with the versions.
    let overwritten = key_parameters::overwrite_private(&ssm, &name, &mine, read.version).await;
    match overwritten {
        Err(error @ KeyError::ConcurrentChange { .. }) => {
            let message = error.to_string();
            let versions = format!("read version {}", read.version);
            assert!(message.contains(&versions) && message.contains("keys show"), "{message}");
        }
        other => panic!("an overwrite went unnoticed: {:?}", other.map_err(|e| e.to_string())),
    }
    let shown = keys::show(&ssm, &name).await.unwrap();
    assert!(!shown.public_in_step, "show tells that the public key set no longer matches");
    keys::publish(&ssm, &name).await.unwrap();
    assert!(keys::show(&ssm, &name).await.unwrap().public_in_step);
}

/// Concurrent rotation commands, as two operators might run them: whatever each reports, when
/// they are done the public key set is exactly the private set's public half (none left a
/// stale one, such as a removed key still published), and a change is never lost silently:
/// when both report success, both keys are in the private set (SSM has no conditional write, so
/// a lost change is only ever detected, by the command that overwrote it failing).
#[tokio::test]
async fn concurrent_commands_leave_the_public_set_in_step_and_never_lose_a_change_silently() {
    let (ssm, name, now) = (ssm().await, parameter_name(), 1_800_000_000);
    keys::init(&ssm, &name, SigningAlgorithm::ES256, now).await.unwrap();
    for round in 0..8 {
        let (first, second) = tokio::join!(
            keys::stage(&ssm, &name, SigningAlgorithm::ES256, now + round),
            keys::stage(&ssm, &name, SigningAlgorithm::EdDSA, now + round),
        );
        let stored = key_parameters::read_private(&ssm, &name).await.unwrap().unwrap().document;
        if let (Ok(first), Ok(second)) = (&first, &second) {
            for staged in [first, second] {
                assert!(stored.state(staged).is_some(), "round {round}: a stage was lost silently");
            }
        }
        assert!(keys::show(&ssm, &name).await.unwrap().public_in_step, "round {round}");
    }
}
