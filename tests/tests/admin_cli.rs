//! `tokenctl add-tenant`, `add-client`, `add-user` and `import-seed`: what they write, that the
//! server then accepts the new client and user, what they refuse, and what they never print.
//! Tests that write to a table need the local DynamoDB server (`tests/aws-local.sh`).

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::emulator::binary;
use integration_tests::{event_from_form, repo_path, router_from_seed};
use token_service::api;
use token_service::clock::SystemClock;
use token_service::domain::{ClientId, ClientSecret, GrantType};
use token_service::keys::SigningAlgorithm;
use token_service::password::{HashParams, Passwords};
use token_service::seed::Seed;
use token_service::store::ClientStore;
use tokenctl::admin::{self, NewClient};

fn temp_seed(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tokenctl-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("seed.toml");
    std::fs::copy(repo_path("seed.toml"), &path).unwrap();
    path
}

/// Starts the real `tokenctl` binary with `stdin` fed to it.
fn spawn_tokenctl(args: &[&str], stdin: &str) -> std::process::Child {
    use std::io::Write;
    let mut child = std::process::Command::new(binary("tokenctl", "debug"))
        .args(args)
        .env_remove("TABLE_NAME")
        .env_remove("SEED_FILE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child
}

/// Runs the real `tokenctl` binary: whether it succeeded, what it printed to stdout and stderr.
fn run_tokenctl(args: &[&str], stdin: &str) -> (bool, String, String) {
    let output = spawn_tokenctl(args, stdin).wait_with_output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.success(), text(output.stdout), text(output.stderr))
}

/// Runs the real `tokenctl` binary, which must succeed, and returns what it printed.
fn tokenctl(args: &[&str], stdin: &str) -> String {
    let (ok, stdout, stderr) = run_tokenctl(args, stdin);
    assert!(ok, "tokenctl {args:?} failed: {stderr}");
    stdout
}

/// Runs the real `tokenctl` binary, which must fail, and returns its standard error.
fn tokenctl_fails(args: &[&str], stdin: &str) -> String {
    let (ok, stdout, stderr) = run_tokenctl(args, stdin);
    assert!(!ok, "tokenctl {args:?} succeeded: {stdout}");
    stderr
}

#[tokio::test]
async fn added_client_and_user_can_sign_in_and_only_digests_are_written() {
    let seed = temp_seed("add");
    let seed_arg = seed.to_str().unwrap();
    tokenctl(&["add-tenant", "--seed", seed_arg, "/initech"], "");
    let printed = tokenctl(
        &[
            "add-client",
            "--seed",
            seed_arg,
            "--id",
            "initech-app",
            "--tenant",
            "/initech",
            "--grants",
            "password,refresh_token",
            "--scopes",
            "read",
            "--max-access-token-lifetime",
            "300",
            "--refresh-idle-lifetime",
            "600",
            "--refresh-absolute-lifetime",
            "7200",
        ],
        "",
    );
    let secret = printed
        .lines()
        .find_map(|line| line.strip_prefix("client_secret: "))
        .expect("the secret is printed")
        .to_owned();
    tokenctl(
        &["add-user", "--seed", seed_arg, "--tenant", "/initech", "--username", "peter"],
        "tps-report-cover\n",
    );

    let text = std::fs::read_to_string(&seed).unwrap();
    assert!(!text.contains(&secret), "the secret itself is never written");
    assert!(!text.contains("tps-report-cover"), "the password itself is never written");
    assert_eq!(secret.len(), 43, "256 bits");
    let loaded = Seed::load(&seed, &Passwords::new(HashParams::OWASP)).unwrap();
    let client = loaded.clients.iter().find(|c| c.id.as_str() == "initech-app").unwrap();
    assert_eq!(
        (
            client.max_access_token_lifetime,
            client.refresh_idle_lifetime,
            client.refresh_absolute_lifetime
        ),
        (300, 600, 7200)
    );

    let (router, _) =
        router_from_seed("https://issuer", SigningAlgorithm::ES256, Arc::new(SystemClock), &seed)
            .await;
    let form = format!(
        "grant_type=password&username=peter&password=tps-report-cover&client_id=initech-app&client_secret={secret}"
    );
    let response = api::token_endpoint(&router.token, event_from_form(&form)).await;
    assert_eq!(response.status(), 200, "{:?}", response.body());
}

#[test]
fn commands_refuse_what_the_server_would_refuse_and_leave_the_file_alone() {
    let seed = temp_seed("refuse");
    let passwords = Passwords::new(HashParams::OWASP);
    let before = std::fs::read_to_string(&seed).unwrap();
    let add_client = |id: &str, tenant: &str| {
        let spec = NewClient {
            id,
            tenant,
            grants: &[GrantType::ClientCredentials],
            scopes: "read",
            max_access_token_lifetime: 60,
            refresh_idle_lifetime: 60,
            refresh_absolute_lifetime: 60,
        };
        admin::new_client(&spec)
            .and_then(|(client, _)| admin::append_client(&seed, &passwords, &client))
    };
    let add_user = |tenant: &str, username: &str, password: &str| {
        admin::new_user(&passwords, tenant, username, password)
            .and_then(|user| admin::append_user(&seed, &passwords, &user))
    };
    assert!(admin::add_tenant(&seed, &passwords, "/acme").is_err(), "already listed");
    assert!(admin::add_tenant(&seed, &passwords, "acme/").is_err(), "malformed");
    assert!(add_client("cc-client", "/acme").is_err(), "duplicate id");
    assert!(add_client("new", "/unlisted").is_err(), "unknown tenant");
    assert!(add_client("bad id", "/acme").is_err(), "malformed id");
    assert!(add_user("/acme", "alice", "pw").is_err(), "taken in tenant");
    assert!(add_user("/unlisted", "zed", "pw").is_err(), "unknown tenant");
    assert!(add_user("/acme", "zed", "").is_err(), "empty password");
    assert_eq!(std::fs::read_to_string(&seed).unwrap(), before);
    assert!(Seed::load(&seed, &passwords).is_ok());
}

#[test]
fn concurrent_commands_on_one_seed_file_all_land_and_never_leave_it_truncated() {
    const WRITERS: usize = 8;
    let seed = temp_seed("concurrent");
    let seed_arg = seed.to_str().unwrap();
    let original = std::fs::read_to_string(&seed).unwrap();
    let tenants: Vec<String> = (0..WRITERS).map(|i| format!("/concurrent-{i}")).collect();
    let mut writers: Vec<_> = tenants
        .iter()
        .map(|tenant| spawn_tokenctl(&["add-tenant", "--seed", seed_arg, tenant], ""))
        .collect();
    // Read the file as often as possible while they write: every read must be a whole file.
    let mut reads = 0;
    while writers.iter_mut().any(|child| child.try_wait().unwrap().is_none()) {
        let text = std::fs::read_to_string(&seed).unwrap();
        assert!(text.starts_with(&original), "a reader saw a truncated file:\n{text}");
        reads += 1;
    }
    for child in writers {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let loaded = Seed::load(&seed, &Passwords::new(HashParams::OWASP)).unwrap();
    for tenant in &tenants {
        assert!(loaded.tenants.iter().any(|t| t.as_str() == tenant), "{tenant} was lost");
    }
    let dir: Vec<String> = std::fs::read_dir(seed.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(dir.iter().all(|name| !name.ends_with(".tmp")), "temporary file left: {dir:?}");
    assert!(reads > 0);
}

/// A seed whose line 12 is malformed and holds a plaintext password.
fn malformed_seed(name: &str) -> std::path::PathBuf {
    let seed = temp_seed(name);
    std::fs::write(
        &seed,
        "[[tenants]]\npath = \"/acme\"\n\n[[clients]]\nid = \"cli\"\n\
         secret = \"cli-secret-0123456789abcdefghijklmnop\"\ntenant = \"/acme\"\n\
         grants = [\"password\"]\nmax_access_token_lifetime = 60\n\n[[users]]\n\
         password = \"Tr0ub4dor&3-horse-battery\n",
    )
    .unwrap();
    seed
}

#[test]
fn a_seed_parse_error_names_the_line_but_never_prints_the_password_on_it() {
    let seed = malformed_seed("malformed");
    let seed_arg = seed.to_str().unwrap();
    let keys = seed.with_file_name("keys.json");
    let commands: [&[&str]; 4] = [
        &["add-tenant", "--seed", seed_arg, "/x"],
        &["add-user", "--seed", seed_arg, "--tenant", "/acme", "--username", "u"],
        &["serve", "--seed", seed_arg, "--port", "0", "--keys", keys.to_str().unwrap()],
        &["import-seed", "--table", "unused", "--seed", seed_arg],
    ];
    for args in commands {
        let stderr = tokenctl_fails(args, "a-password-for-u\n");
        assert!(stderr.contains("line 12, column"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Tr0ub4dor"), "{args:?} printed the password: {stderr}");
    }
}

#[test]
fn import_seed_imports_only_a_seed_named_on_the_command_line() {
    let stderr = tokenctl_fails(&["import-seed", "--table", "tokens"], "");
    assert!(stderr.contains("--seed"), "{stderr}");
    let child = std::process::Command::new(binary("tokenctl", "debug"))
        .args(["import-seed", "--table", "tokens"])
        .env("SEED_FILE", repo_path("seed.toml"))
        .output()
        .unwrap();
    assert!(!child.status.success(), "SEED_FILE must not stand in for --seed");
}

/// A seed file holding only a digest and a hash, as a production seed would.
fn production_seed(name: &str, client_ids: &[&str]) -> (std::path::PathBuf, String) {
    let seed = temp_seed(name);
    let secret = ClientSecret::generate();
    let digest = String::from(secret.digest());
    let hash = Passwords::new(HashParams { memory_kib: 64, iterations: 1, parallelism: 1 })
        .hash("ivy-password")
        .unwrap();
    let mut text = String::from("[[tenants]]\npath = \"/acme\"\n");
    for id in client_ids {
        text.push_str(&format!(
            "\n[[clients]]\nid = \"{id}\"\nsecret_sha256 = \"{digest}\"\ntenant = \"/acme\"\n\
             grants = [\"client_credentials\"]\nmax_access_token_lifetime = 60\n"
        ));
    }
    text.push_str(&format!(
        "\n[[users]]\ntenant = \"/acme\"\nusername = \"ivy\"\npassword_hash = \"{hash}\"\n"
    ));
    std::fs::write(&seed, text).unwrap();
    (seed, secret.expose().to_owned())
}

#[tokio::test]
async fn import_seed_refuses_plaintext_and_existing_records_before_writing_anything() {
    let store = integration_tests::dynamo::fresh_store().await;
    let table = store.table_name().to_owned();
    let demo = repo_path("../local/seed.toml");
    let demo = demo.to_str().unwrap();

    let stderr = tokenctl_fails(&["import-seed", "--table", &table, "--seed", demo], "");
    assert!(stderr.contains("plaintext") && stderr.contains("--allow-plaintext"), "{stderr}");
    assert!(stderr.contains("client demo-client"), "{stderr}");
    let demo_client = ClientId::parse("demo-client").unwrap();
    assert_eq!(store.client(&demo_client).await.unwrap(), None, "nothing was written");

    let (seed, secret) = production_seed("import", &["imported-a", "imported-b"]);
    let seed_arg = seed.to_str().unwrap();
    tokenctl(&["import-seed", "--table", &table, "--seed", seed_arg], "");
    let imported = store.client(&ClientId::parse("imported-a").unwrap()).await.unwrap();
    assert!(imported.unwrap().credentials.secret_matches(&secret, 0));

    // A second seed reusing both ids and the username, plus a new client: refused whole.
    let (again, other_secret) =
        production_seed("import-again", &["imported-a", "new", "imported-b"]);
    let again_arg = again.to_str().unwrap();
    let stderr = tokenctl_fails(&["import-seed", "--table", &table, "--seed", again_arg], "");
    for taken in ["client imported-a", "client imported-b", "user ivy in /acme", "--replace"] {
        assert!(stderr.contains(taken), "{taken} not named: {stderr}");
    }
    assert_eq!(store.client(&ClientId::parse("new").unwrap()).await.unwrap(), None);
    let kept = store.client(&ClientId::parse("imported-a").unwrap()).await.unwrap().unwrap();
    assert!(kept.credentials.secret_matches(&secret, 0), "not overwritten");

    tokenctl(&["import-seed", "--table", &table, "--seed", again_arg, "--replace"], "");
    let replaced = store.client(&ClientId::parse("imported-a").unwrap()).await.unwrap().unwrap();
    assert!(replaced.credentials.secret_matches(&other_secret, 0), "--replace overwrites");

    tokenctl(&["import-seed", "--table", &table, "--seed", demo, "--allow-plaintext"], "");
    assert!(store.client(&demo_client).await.unwrap().is_some());
}

#[tokio::test]
async fn of_concurrent_add_clients_with_one_id_exactly_one_succeeds() {
    let store = integration_tests::dynamo::fresh_store().await;
    let table = store.table_name().to_owned();
    let args = ["add-client", "--table", &table, "--id", "contested", "--tenant", "/acme"];
    let children: Vec<_> = (0..6).map(|_| spawn_tokenctl(&args, "")).collect();
    let outputs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let winners: Vec<String> = outputs
        .iter()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    let secret = winners[0].lines().find_map(|l| l.strip_prefix("client_secret: ")).unwrap();
    let stored = store.client(&ClientId::parse("contested").unwrap()).await.unwrap().unwrap();
    assert!(stored.credentials.secret_matches(secret, 0), "the winner's secret is the one stored");
}

/// Runs `tokenctl <args> --table <table>`, which must succeed, and parses the JSON it printed.
fn manage(table: &str, args: &[&str], stdin: &str) -> serde_json::Value {
    let printed = tokenctl(&[args, &["--table", table][..]].concat(), stdin);
    serde_json::from_str(&printed).unwrap_or_else(|e| panic!("{args:?}: {e}: {printed}"))
}

/// The admin plane from the command line, on a table: every resource created, read, changed and
/// deleted through the one admin service, a session seen and ended, errors answered with the
/// service's description and a non-zero exit, and a password never printed.
#[tokio::test]
async fn tokenctl_manages_tenants_clients_users_and_sessions_on_a_table() {
    let store = integration_tests::dynamo::fresh_store().await;
    let table = store.table_name().to_owned();
    let stores = token_service::store::Stores::all(Arc::new(store));

    assert_eq!(manage(&table, &["tenants", "create", "--path", "/globex"], "")["path"], "/globex");
    let listed = manage(&table, &["tenants", "list", "--tenant", "/globex"], "");
    assert_eq!(listed["items"], serde_json::json!([{"path": "/globex"}]));
    let created = manage(
        &table,
        &[
            "clients",
            "create",
            "--tenant",
            "/globex",
            "--grant-types",
            "password,refresh_token",
            "--scope",
            "read",
            "--client-id",
            "gx-app",
        ],
        "",
    );
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(manage(&table, &["clients", "show", "gx-app"], "")["scope"], "read");
    let user = ["users", "create", "--tenant", "/globex", "--username", "zed"];
    let user = manage(&table, &user, "zed-password-1\n");
    let user_id = user["id"].as_str().unwrap().to_owned();

    let server = integration_tests::TestServer::start_on(
        SigningAlgorithm::ES256,
        Arc::new(SystemClock),
        stores,
    )
    .await;
    let login = server
        .http
        .post(server.url("/oauth2/token"))
        .header("authorization", integration_tests::basic_header("gx-app", &secret))
        .header("x-device-id", "laptop-1")
        .form(&[("grant_type", "password"), ("username", "zed"), ("password", "zed-password-1")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let login: serde_json::Value = login.json().await.unwrap();
    let sessions = manage(&table, &["users", "sessions", &user_id], "");
    assert_eq!(sessions["items"][0]["device_ids"], serde_json::json!(["laptop-1"]));
    let grant_id = sessions["items"][0]["grant_id"].as_str().unwrap().to_owned();
    tokenctl(&["sessions", "end", &grant_id, "--table", &table], "");
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", login["refresh_token"].as_str().unwrap()),
    ];
    let refreshed = server.token(&refresh, Some(("gx-app", &secret))).await;
    assert_eq!(refreshed.status(), 400, "the ended session's refresh token is dead");

    let rotated = manage(
        &table,
        &["clients", "rotate-secret", "gx-app", "--previous-secret-valid-for", "60"],
        "",
    );
    assert_ne!(rotated["client_secret"].as_str().unwrap(), secret);
    let disabled = manage(&table, &["clients", "update", "gx-app", "--enabled", "false"], "");
    assert_eq!(disabled["enabled"], false);

    let stderr = tokenctl_fails(&["clients", "show", "nobody", "--table", &table], "");
    assert!(stderr.contains("no such client"), "{stderr}");
    let short = ["users", "update", &user_id, "--password-stdin", "--table", &table];
    let stderr = tokenctl_fails(&short, "shortpw\n");
    assert!(stderr.contains("password:") && !stderr.contains("shortpw"), "{stderr}");
    let stderr = tokenctl_fails(&["tenants", "delete", "--path", "/globex", "--table", &table], "");
    assert!(stderr.contains("still holds"), "{stderr}");

    for args in [
        &["users", "delete", &user_id][..],
        &["clients", "delete", "gx-app"],
        &["tenants", "delete", "--path", "/globex"],
    ] {
        let printed = tokenctl(&[args, &["--table", &table][..]].concat(), "");
        assert_eq!(printed, "", "{args:?}: a deletion prints nothing");
    }
    let stderr = tokenctl_fails(&["users", "show", &user_id, "--table", &table], "");
    assert!(stderr.contains("no such user"), "{stderr}");
}

/// `tokenctl upgrade-table` on a first-stage table prints what it upgraded per kind; run again,
/// it upgrades nothing. (What the upgrade writes is tested on the store, in `dynamodb.rs`.)
#[tokio::test]
async fn upgrade_table_upgrades_a_first_stage_table_once_and_says_what_it_did() {
    use token_service::clock::Clock;
    use token_service::domain::TenantPath;
    use token_service::store::{PageRequest, TenantDeletion, TenantStore, UserStore};
    let store = integration_tests::dynamo::fresh_store().await;
    let table = store.table_name().to_owned();
    let old = integration_tests::dynamo::write_first_stage_records(&store, SystemClock.now()).await;

    let printed = tokenctl(&["upgrade-table", "--table", &table], "");
    assert!(
        printed.contains("1 clients and 2 users counted and listed, 1 grants listed")
            && printed.contains("1 user id entries completed, 1 user id entries naming no user"),
        "{printed}"
    );
    let root = TenantPath::parse("/old").unwrap();
    let users = store.users(&root, PageRequest { limit: 10, after: None }).await.unwrap();
    assert_eq!(users.items.len(), 2);
    assert!(store.user_by_id(&old.alice).await.unwrap().is_some());
    assert_eq!(store.delete_tenant(&root).await.unwrap(), TenantDeletion::NotEmpty);

    let again = tokenctl(&["upgrade-table", "--table", &table], "");
    assert!(again.contains("0 clients and 0 users counted and listed, 0 grants listed"), "{again}");
    assert_eq!(integration_tests::dynamo::tenant_members(&store, "/old").await, Some(3));
}

/// `tokenctl` works on a table with the stack's `ISSUANCE_INDEX_SHARDS` and `CUTOFF_READ_COPIES`,
/// as the functions do: log entries an upgrade gives client keys land in shards the functions
/// count. A value the functions would refuse, it refuses too, before touching the table.
#[tokio::test]
async fn tokenctl_takes_the_stacks_shard_and_copy_settings_from_the_environment() {
    use token_service::clock::Clock;
    use token_service::domain::{TenantPath, TokenId};
    use token_service::store::dynamodb::{DynamoStore, IssuanceShards};
    use token_service::store::{IssuanceFilter, IssuanceLog, IssuedToken, TokenKind};
    let store = integration_tests::dynamo::fresh_store().await;
    let table = store.table_name().to_owned();
    let upgrade = |env: &[(&str, &str)]| {
        std::process::Command::new(binary("tokenctl", "debug"))
            .args(["upgrade-table", "--table", &table])
            .env_remove("TABLE_NAME")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    for (name, value) in [("ISSUANCE_INDEX_SHARDS", "0"), ("CUTOFF_READ_COPIES", "17")] {
        let refused = upgrade(&[(name, value)]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success() && stderr.contains(name), "{name}={value}: {stderr}");
    }

    // A stack on 8 shards, and entries written before the client index: without their keys.
    let eight = DynamoStore::new(store.sdk_client().clone(), &table)
        .with_issuance_shards(IssuanceShards::new(8).unwrap());
    let now = SystemClock.now();
    let entries = 16;
    for _ in 0..entries {
        let id = TokenId::generate();
        let entry = IssuedToken {
            id: id.clone(),
            kind: TokenKind::Access,
            tenant: TenantPath::parse("/acme").unwrap(),
            client_id: ClientId::parse("busy").unwrap(),
            subject: "busy".into(),
            grant: None,
            issued_at: now - 10,
            expires_at: now + 600,
        };
        eight.record_issued(&entry).await.unwrap();
        store
            .sdk_client()
            .update_item()
            .table_name(&table)
            .key("pk", AttributeValue::S(format!("ISSUED#{id}")))
            .key("sk", AttributeValue::S("ISSUED".into()))
            .update_expression("REMOVE issued_client_pk")
            .send()
            .await
            .unwrap();
    }
    let upgraded = upgrade(&[("ISSUANCE_INDEX_SHARDS", "8"), ("CUTOFF_READ_COPIES", "1")]);
    assert!(upgraded.status.success(), "{}", String::from_utf8_lossy(&upgraded.stderr));
    let by_client = IssuanceFilter {
        tenant: TenantPath::parse("/acme").unwrap(),
        client_id: Some(ClientId::parse("busy").unwrap()),
        subject: None,
    };
    // On the default 32 shards, each entry would land past shard 7 three times in four.
    assert_eq!(eight.live_issued(&by_client, now).await.unwrap().len(), entries);
}

/// `tokenctl users unlock` clears a username's login-defence counters on the table, from every
/// source.
#[tokio::test]
async fn tokenctl_unlocks_a_users_login_counters_on_a_table() {
    use token_service::clock::Clock;
    use token_service::domain::{LoginKey, SourceAddress, TenantPath, Username};
    use token_service::store::{LoginAttemptStore, TenantStore, UserStore};
    let store = integration_tests::dynamo::fresh_store().await;
    let table = store.table_name().to_owned();
    let tenant = TenantPath::parse("/acme").unwrap();
    store.create_tenant(&tenant).await.unwrap();
    tokenctl(
        &["users", "create", "--tenant", "/acme", "--username", "dora", "--table", &table],
        "dora-password-1\n",
    );
    let dora = Username::parse("dora").unwrap();
    let id = store.user(&tenant, &dora).await.unwrap().unwrap().id;
    let now = SystemClock.now();
    for n in 1..=3u8 {
        let source = SourceAddress::new(std::net::IpAddr::from([192, 0, 2, n]));
        let key = LoginKey::new(&tenant, &dora, source);
        for _ in 0..6 {
            store.record_login_failure(&key, &Default::default(), now, now + 3_600).await.unwrap();
        }
    }
    tokenctl(&["users", "unlock", id.as_str(), "--table", &table], "");
    for n in 1..=3u8 {
        let source = SourceAddress::new(std::net::IpAddr::from([192, 0, 2, n]));
        let read = store.login_attempts(&LoginKey::new(&tenant, &dora, source), now + 1).await;
        assert!(read.unwrap().is_clear(), "source {n}");
    }
}
