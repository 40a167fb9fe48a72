//! `make deploy` and the deployment steps of docs/deployment.md, checked without AWS: what make
//! would run, and that the smoke test's secret comes from the command that prints it.

use std::process::Command;

use integration_tests::emulator::binary;
use integration_tests::repo_path;

/// The commands `make deploy` would run with `args`, one per line, without running them.
fn make_deploy(args: &[&str]) -> String {
    let output = Command::new("make")
        .arg("--dry-run")
        .arg("--directory")
        .arg(repo_path(".."))
        .arg("deploy")
        .args(args)
        .output()
        .expect("make runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Build and deploy agree on the architecture, or the stack would run bootstraps built for
/// the other one; and `sam build` opts in to rust-cargolambda, a beta feature in older SAM CLIs.
#[test]
fn make_deploy_builds_and_deploys_for_one_architecture() {
    for arch in ["x86_64", "arm64"] {
        let commands = make_deploy(&[&format!("ARCH={arch}"), "PARAMS=KeysVersion=7"]);
        let build: Vec<&str> = commands.lines().filter(|l| l.contains("sam build")).collect();
        assert_eq!(build.len(), 1, "{commands}");
        assert!(build[0].contains("--beta-features"), "{commands}");
        let deploys: Vec<&str> =
            commands.split("sam deploy").skip(1).chain(build.iter().copied()).collect();
        assert!(deploys.len() >= 3, "guided and unguided deploys: {commands}");
        for command in deploys {
            let overrides = command.split("--parameter-overrides").nth(1).unwrap_or_default();
            let overrides: Vec<&str> =
                overrides.split(|c: char| c.is_whitespace() || c == ';').collect();
            assert!(overrides.contains(&format!("Architecture={arch}").as_str()), "{commands}");
            assert!(overrides.contains(&"KeysVersion=7"), "{commands}");
        }
    }
}

/// `tokenctl add-client` prints the secret on one `client_secret: ` line, which the deployment
/// steps of docs/deployment.md capture into `SECRET` before the smoke test uses it.
#[test]
fn the_deploy_smoke_test_captures_the_secret_it_uses() {
    let guide = std::fs::read_to_string(repo_path("../docs/deployment.md")).unwrap();
    let deploying = guide.split("## Deploying to AWS").nth(1).unwrap();
    let steps = deploying.split("```sh").nth(1).unwrap().split("```").next().unwrap();
    let set = steps.find("SECRET=$(").expect("the steps set SECRET");
    let used = steps.find("$SECRET").expect("the smoke test uses SECRET");
    assert!(set < used, "SECRET is set before it is used");
    assert!(steps[set..used].contains("sed -n 's/^client_secret: //p'"), "{steps}");

    let dir = std::env::temp_dir().join(format!("deploy-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = dir.join("seed.toml");
    std::fs::copy(repo_path("seed.toml"), &seed).unwrap();
    let output = Command::new(binary("tokenctl", "debug"))
        .args(["add-client", "--id", "billing", "--tenant", "/acme", "--scopes", "read write"])
        .arg("--seed")
        .arg(&seed)
        .env_remove("TABLE_NAME")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let secrets: Vec<&str> =
        stdout.lines().filter_map(|line| line.strip_prefix("client_secret: ")).collect();
    assert_eq!(secrets.len(), 1, "{stdout}");
    assert_eq!(secrets[0].len(), 43, "the whole 256-bit secret on that line: {stdout}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The SSM parameters a template function may touch, as `(actions, parameter)` per statement,
/// the parameter being the ARN's `${...}` tail (`${SigningKeysParameter}-public`).
fn ssm_grants(function: &serde_yaml::Value) -> Vec<(Vec<String>, String)> {
    use serde_yaml::Value as Yaml;
    let name = function["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or("?");
    let mut grants = Vec::new();
    for policy in function["Properties"]["Policies"].as_sequence().into_iter().flatten() {
        let statements = policy
            .as_mapping()
            .filter(|map| map.len() == 1)
            .and_then(|_| policy["Statement"].as_sequence());
        let statements = statements.unwrap_or_else(|| {
            panic!("{name}: a policy other than an inline Statement list; extend this test")
        });
        for statement in statements {
            let actions: Vec<String> = match &statement["Action"] {
                Yaml::String(action) => vec![action.clone()],
                Yaml::Sequence(list) => {
                    list.iter().filter_map(|a| a.as_str()).map(str::to_owned).collect()
                }
                other => panic!("{name}: unreadable Action {other:?}"),
            };
            let touches_ssm = actions.iter().any(|a| a.starts_with("ssm:") || a == "*");
            let touches_kms = actions.iter().any(|a| a.starts_with("kms:"));
            if !(touches_ssm || touches_kms) {
                continue;
            }
            let resources = match &statement["Resource"] {
                Yaml::Sequence(list) => list.clone(),
                single => vec![single.clone()],
            };
            for resource in resources {
                let arn = match &resource {
                    Yaml::Tagged(tagged) if tagged.tag == "Sub" => {
                        tagged.value.as_str().unwrap_or_default().to_owned()
                    }
                    other => other.as_str().unwrap_or_default().to_owned(),
                };
                let parameter =
                    arn.split_once(":parameter").map_or(arn.clone(), |(_, p)| p.to_owned());
                grants.push((actions.clone(), parameter));
            }
        }
    }
    grants
}

/// Only the token function signs, so only it may read the private signing keys (the SecureString
/// `SigningKeysParameter`); every other function verifies, and may read only the public key
/// set beside it. No function gets a wildcard that would reach the private parameter.
#[test]
fn only_the_token_function_may_read_the_private_signing_keys() {
    use serde_yaml::Value as Yaml;
    let template: Yaml =
        serde_yaml::from_str(&std::fs::read_to_string(repo_path("../template.yaml")).unwrap())
            .unwrap();
    let private = "${SigningKeysParameter}".to_owned();
    let public = token_service::key_parameters::public_parameter_name(&private);
    let functions: Vec<(&str, &Yaml)> = template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, resource)| resource["Type"] == "AWS::Serverless::Function")
        .map(|(name, resource)| (name.as_str().unwrap(), resource))
        .collect();
    assert_eq!(functions.len(), 7, "every function is checked");
    for (name, function) in &functions {
        let grants = ssm_grants(function);
        let expected = if *name == "TokenFunction" { &private } else { &public };
        assert_eq!(
            grants,
            vec![(vec!["ssm:GetParameter".to_owned()], expected.clone())],
            "{name} may read {expected} and nothing else in SSM"
        );
    }
    for (name, function) in functions {
        let own = &function["Properties"]["Environment"]["Variables"];
        let reads_private = own["SIGNING_KEYS_PARAMETER"] != Yaml::Null;
        assert_eq!(reads_private, name == "TokenFunction", "{name}: SIGNING_KEYS_PARAMETER");
    }
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(globals["SIGNING_KEYS_PARAMETER"], Yaml::Null, "not every function's setting");
    let published = match &globals["PUBLIC_KEYS_PARAMETER"] {
        Yaml::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str().unwrap_or_default(),
        other => panic!("PUBLIC_KEYS_PARAMETER is {other:?}"),
    };
    assert_eq!(published, public, "the functions read the parameter tokenctl keys writes");
}

fn template() -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(repo_path("../template.yaml")).unwrap()).unwrap()
}

/// A tagged scalar (`!Ref X`, `!GetAtt X.Arn`, `!Sub "..."`) as `(tag, value)`.
fn tagged(value: &serde_yaml::Value) -> (String, String) {
    match value {
        serde_yaml::Value::Tagged(tagged) => (
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            tagged.value.as_str().unwrap_or_default().to_owned(),
        ),
        other => (String::new(), other.as_str().unwrap_or_default().to_owned()),
    }
}

/// The DynamoDB grants of a template function, as `(actions, resource)` per statement and
/// resource, the resource being `TokenTable.Arn` or the `!Sub` text of an index ARN.
fn dynamodb_grants(function: &serde_yaml::Value) -> Vec<(Vec<String>, String)> {
    let mut grants = Vec::new();
    for policy in function["Properties"]["Policies"].as_sequence().into_iter().flatten() {
        for statement in policy["Statement"].as_sequence().into_iter().flatten() {
            let actions: Vec<String> = match &statement["Action"] {
                serde_yaml::Value::Sequence(list) => {
                    list.iter().filter_map(|a| a.as_str()).map(str::to_owned).collect()
                }
                single => single.as_str().map(str::to_owned).into_iter().collect(),
            };
            if !actions.iter().any(|a| a.starts_with("dynamodb:") || a == "*") {
                continue;
            }
            assert_eq!(statement["Effect"], "Allow");
            grants.push((actions, tagged(&statement["Resource"]).1));
        }
    }
    grants
}

/// The batch function counts through the issuance indexes, narrowed counts through their own:
/// it may Query each of them (and not the admin lists' index), and no other index read.
#[test]
fn the_batch_function_may_query_every_issuance_index_and_no_other() {
    use token_service::store::dynamodb::table::{
        ISSUED_BY_CLIENT, ISSUED_BY_SUBJECT, ISSUED_INDEX, LISTED_INDEX,
    };
    let template = template();
    let grants = dynamodb_grants(&template["Resources"]["BatchRevokeFunction"]);
    let queried: Vec<&String> = grants
        .iter()
        .filter(|(actions, _)| actions.iter().any(|a| a == "dynamodb:Query"))
        .map(|(_, resource)| resource)
        .collect();
    assert_eq!(queried, ["${TokenTable.Arn}/index/issued_by_*"]);
    let pattern = queried[0].trim_start_matches("${TokenTable.Arn}/index/");
    let prefix = pattern.trim_end_matches('*');
    for index in [ISSUED_INDEX, ISSUED_BY_CLIENT, ISSUED_BY_SUBJECT] {
        assert!(index.starts_with(prefix), "{index} is not covered by {pattern}");
    }
    assert!(!LISTED_INDEX.starts_with(prefix), "the lists are the admin function's");
}

/// The admin function changes clients, users (a user and its id index together), tenants and
/// grants, and reads lists and sessions through Queries: those actions on the table, Query on
/// its indexes, and never a Scan, which would read every tenant's records.
#[test]
fn the_admin_function_may_change_the_table_but_never_scan_it() {
    let template = template();
    let admin = &template["Resources"]["AdminFunction"];
    assert_eq!(admin["Metadata"]["BuildProperties"]["Binary"], "admin");
    assert_eq!(admin["Metadata"]["BuildMethod"], "rust-cargolambda");
    let table_actions = [
        "GetItem",
        "BatchGetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "TransactWriteItems",
        "ConditionCheckItem",
    ]
    .map(|action| format!("dynamodb:{action}"))
    .to_vec();
    assert_eq!(
        dynamodb_grants(admin),
        vec![
            (table_actions, "TokenTable.Arn".to_owned()),
            (vec!["dynamodb:Query".to_owned()], "${TokenTable.Arn}/index/*".to_owned()),
        ]
    );
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        for (actions, _) in dynamodb_grants(resource) {
            assert!(
                actions.iter().all(|a| a != "dynamodb:Scan" && a != "dynamodb:*" && a != "*"),
                "{name:?} may scan the table: {actions:?}"
            );
        }
    }
}

/// `/admin/*` goes to the admin function, which verifies the admin token itself, as batch
/// revocation does: neither route is behind the authorizer (whose cached decision would let a
/// revoked token through), and the stack says where the admin API is.
#[test]
fn every_admin_route_reaches_the_admin_function_which_authenticates_the_caller_itself() {
    let template = template();
    let resources = &template["Resources"];
    let events = resources["AdminFunction"]["Properties"]["Events"].as_mapping().unwrap();
    assert_eq!(events.len(), 1);
    let (_, event) = events.iter().next().unwrap();
    assert_eq!(event["Type"], "HttpApi");
    assert_eq!(tagged(&event["Properties"]["ApiId"]), ("Ref".to_owned(), "HttpApi".to_owned()));
    assert_eq!(event["Properties"]["Method"], "ANY");
    assert_eq!(event["Properties"]["Path"], "/admin/{proxy+}");
    for function in ["AdminFunction", "BatchRevokeFunction"] {
        for (_, event) in resources[function]["Properties"]["Events"].as_mapping().unwrap() {
            assert_eq!(event["Properties"]["Auth"], serde_yaml::Value::Null, "{function}");
        }
    }
    let api = &resources["HttpApi"]["Properties"]["Auth"];
    assert_eq!(
        api["DefaultAuthorizer"],
        serde_yaml::Value::Null,
        "no route is behind it by default"
    );
    let url = tagged(&template["Outputs"]["AdminUrl"]["Value"]).1;
    assert!(url.ends_with(".execute-api.${AWS::Region}.${AWS::URLSuffix}/admin"), "{url}");
}

/// The admin function cuts a disabled client off `CLIENT_CACHE_TTL` + 1 s ahead, for tokens a
/// token function still trusting its cached record may yet mint: both must read the same TTL.
/// It also hashes new passwords, with the token function's Argon2 parameters.
#[test]
fn the_admin_function_shares_the_token_functions_cache_ttl_and_hash_settings() {
    let template = template();
    let effective = |function: &str, name: &str| {
        let own = &template["Resources"][function]["Properties"]["Environment"]["Variables"][name];
        let global = &template["Globals"]["Function"]["Environment"]["Variables"][name];
        if own.is_null() { global.clone() } else { own.clone() }
    };
    for name in ["CLIENT_CACHE_TTL", "ARGON2_MEMORY_KIB", "ARGON2_ITERATIONS", "ARGON2_PARALLELISM"]
    {
        assert_eq!(effective("AdminFunction", name), effective("TokenFunction", name), "{name}");
    }
    let ttl = tagged(&effective("TokenFunction", "CLIENT_CACHE_TTL"));
    assert_eq!(ttl, ("Ref".to_owned(), "ClientCacheTtl".to_owned()));
    assert_eq!(
        template["Parameters"]["ClientCacheTtl"]["Default"].as_u64(),
        Some(token_service::config::DEFAULT_CLIENT_CACHE_TTL),
        "the stack's default is the code's"
    );
}

/// Every function's verified-token cache holds the stack's `TokenCacheEntries`, whose default is
/// the code's.
#[test]
fn the_token_cache_bound_is_a_stack_parameter_with_the_codes_default() {
    let template = template();
    let global =
        &template["Globals"]["Function"]["Environment"]["Variables"]["TOKEN_CACHE_ENTRIES"];
    assert_eq!(tagged(global), ("Ref".to_owned(), "TokenCacheEntries".to_owned()));
    assert_eq!(
        template["Parameters"]["TokenCacheEntries"]["Default"].as_u64(),
        Some(token_service::token_cache::TokenCacheLimits::default().entries as u64)
    );
}

/// Verifications read cutoffs through as many copies as the stack's `CutoffReadCopies` says, by
/// default all the code writes, never more.
#[test]
fn verifications_read_as_many_cutoff_copies_as_the_stack_says_and_never_more_than_written() {
    use token_service::store::CutoffReadCopies;
    let template = template();
    let global = &template["Globals"]["Function"]["Environment"]["Variables"]["CUTOFF_READ_COPIES"];
    assert_eq!(tagged(global), ("Ref".to_owned(), "CutoffReadCopies".to_owned()));
    let parameter = &template["Parameters"]["CutoffReadCopies"];
    let all = CutoffReadCopies::ALL.get() as u64;
    assert_eq!(parameter["Default"].as_u64(), Some(all));
    assert_eq!(parameter["MaxValue"].as_u64(), Some(all));
    assert_eq!(parameter["MinValue"].as_u64(), Some(1));
}

/// Every function reads the issuance index shard count from one stack parameter whose default
/// is the code's: a count must read the shards the token function wrote.
#[test]
fn every_function_shares_the_issuance_index_shard_count() {
    let template = template();
    let global = &template["Globals"]["Function"]["Environment"]["Variables"];
    let shards = tagged(&global["ISSUANCE_INDEX_SHARDS"]);
    assert_eq!(shards, ("Ref".to_owned(), "IssuanceIndexShards".to_owned()));
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() == Some("AWS::Serverless::Function") {
            let own = &resource["Properties"]["Environment"]["Variables"]["ISSUANCE_INDEX_SHARDS"];
            assert!(own.is_null(), "{name:?} must not override ISSUANCE_INDEX_SHARDS");
        }
    }
    let parameter = &template["Parameters"]["IssuanceIndexShards"];
    let default = token_service::store::dynamodb::IssuanceShards::DEFAULT.get();
    assert_eq!(parameter["Default"].as_u64(), Some(u64::from(default)));
    assert_eq!(parameter["MinValue"].as_u64(), Some(1));
    let max = token_service::store::dynamodb::IssuanceShards::MAX;
    assert_eq!(parameter["MaxValue"].as_u64(), Some(u64::from(max)));
}

/// The login defence's settings reach the token and admin functions from stack parameters whose
/// defaults are the code's, so a stack deployed with defaults behaves as documented.
#[test]
fn the_login_defence_settings_are_stack_parameters_with_the_codes_defaults() {
    let template = template();
    let defaults = token_service::domain::LoginDefenceSettings::default();
    for (variable, parameter, default) in [
        ("LOGIN_SOURCE_THRESHOLD", "LoginSourceThreshold", defaults.source_threshold),
        ("LOGIN_USERNAME_THRESHOLD", "LoginUsernameThreshold", defaults.username_threshold),
        ("LOGIN_FIRST_WAIT", "LoginFirstWait", defaults.first_wait),
        ("LOGIN_MAX_WAIT", "LoginMaxWait", defaults.max_wait),
    ] {
        let global = &template["Globals"]["Function"]["Environment"]["Variables"][variable];
        assert_eq!(tagged(global), ("Ref".to_owned(), parameter.to_owned()), "{variable}");
        for function in ["TokenFunction", "AdminFunction"] {
            let own = &template["Resources"][function]["Properties"]["Environment"]["Variables"];
            assert!(own[variable].is_null(), "{function} must not override {variable}");
        }
        assert_eq!(template["Parameters"][parameter]["Default"].as_u64(), Some(default));
    }
}
