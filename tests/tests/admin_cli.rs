//! `tokenctl add-tenant`, `add-client` and `add-user`: what they write, and that the server then
//! accepts the new client and user.

use std::sync::Arc;

use integration_tests::emulator::binary;
use integration_tests::{event_from_form, repo_path, router_from_seed};
use token_service::api;
use token_service::clock::SystemClock;
use token_service::domain::GrantType;
use token_service::keys::SigningAlgorithm;
use token_service::password::{HashParams, Passwords};
use token_service::seed::Seed;
use tokenctl::admin::{self, NewClient};

fn temp_seed(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tokenctl-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("seed.toml");
    std::fs::copy(repo_path("seed.toml"), &path).unwrap();
    path
}

/// Runs the real `tokenctl` binary and returns what it printed.
fn tokenctl(args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(binary("tokenctl", "debug"))
        .args(args)
        .env_remove("TABLE_NAME")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "tokenctl {args:?} failed");
    String::from_utf8(output.stdout).unwrap()
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
