//! Measurements `make bench` collects that need the real binaries or a DynamoDB server: cold
//! starts under the Runtime API emulator, DynamoDB round trips per operation, and counting 100k
//! live tokens for a batch revocation. Prints markdown table rows; fails nothing.
//!
//! Usage: `bench coldstart <profile> <starts>` | `bench memory <profile> <invocations>` |
//! `bench dynamodb <tokens>` (the last two under tests/aws-local.sh)

use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::dynamo::{self, RoundTrips};
use integration_tests::emulator::{Function, binary, deployment, fixture, http, token_event};
use integration_tests::{ADMIN_CLIENT, APP_CLIENT, CC_CLIENT, load_seed, repo_path, test_config};
use serde_json::Value;
use token_service::auth::PresentedClient;
use token_service::clock::{Clock, SystemClock};
use token_service::domain::{ClientId, TenantPath, TokenId};
use token_service::keys::{KeySet, KeySetDocument, SigningAlgorithm};
use token_service::setup::Wiring;
use token_service::store::memory::MemoryStore;
use token_service::store::{IssuanceLog, IssuedToken, Stores, TokenKind};
use token_service::token::TokenParams;

/// moto answers each Query page by re-reading the whole partition, so a count's cost grows with
/// the square of the tokens: 0.85 s a page at 20k, and a single page took over 10 s at 100k
/// (the SDK's attempt timeout). Larger counts run in memory only; see bench/RESULTS.md.
const MOTO_COUNT_LIMIT: usize = 20_000;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("coldstart") => {
            let profile = args.get(2).map(String::as_str).unwrap_or("release");
            let starts = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(20);
            coldstart(profile, starts).await
        }
        Some("memory") => {
            let profile = args.get(2).map(String::as_str).unwrap_or("release");
            memory(profile, args.get(3).and_then(|n| n.parse().ok()).unwrap_or(2_000)).await
        }
        Some("dynamodb") => {
            dynamodb(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100_000)).await
        }
        _ => eprintln!(
            "usage: bench coldstart <profile> <starts> | bench memory <profile> <invocations> | \
             bench dynamodb <tokens>"
        ),
    }
}

/// Exec to first `next` poll (init complete) for every function, and exec to first response for
/// `keys`, whose first request needs no DynamoDB: medians of `starts` starts each.
async fn coldstart(profile: &str, starts: usize) {
    let dir = std::env::temp_dir().join(format!("bench-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys_file = dir.join("keys.json");
    let document = KeySetDocument::generate(SigningAlgorithm::ES256, 0).unwrap();
    std::fs::write(&keys_file, serde_json::to_vec(&document).unwrap()).unwrap();
    let env = vec![
        ("ISSUER", "https://abc123.execute-api.eu-west-1.amazonaws.com".to_owned()),
        ("SIGNING_KEYS_FILE", keys_file.display().to_string()),
        ("TABLE_NAME", "tokens".to_owned()),
        // Built at init but never called during it: any endpoint will do.
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9".to_owned()),
        ("AWS_REGION", "eu-west-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "bench".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "bench".to_owned()),
    ];
    println!(
        "| function | init: exec to first poll (median of {starts}) | exec to first response |"
    );
    println!("|---|---|---|");
    for name in ["token", "revoke", "batch-revoke", "introspect", "keys", "authorizer"] {
        let (mut inits, mut responses) = (Vec::new(), Vec::new());
        for _ in 0..starts {
            let function = Function::start(binary(name, profile), &env).await;
            inits.push(function.wait_until_polling().await);
            if name == "keys" {
                let event: Value = serde_json::from_str(
                    &std::fs::read_to_string(repo_path("events/keys-jwks.json")).unwrap(),
                )
                .unwrap();
                function.respond(event).await;
                responses.push(function.started().elapsed());
            }
        }
        let response = if responses.is_empty() {
            "n/a (first request needs DynamoDB)".into()
        } else {
            ms(median(responses))
        };
        println!("| {name} | {} | {response} |", ms(median(inits)));
    }
}

/// Peak resident memory (VmHWM) of each function process after `invocations` requests on its
/// route, sent one at a time as Lambda does, on a seeded table on the local DynamoDB server.
async fn memory(profile: &str, invocations: usize) {
    let deployment = deployment().await;
    let start = async |name: &str| Function::start(binary(name, profile), &deployment.env).await;
    let mib = |function: &Function| {
        function.peak_rss().map_or("n/a".into(), |bytes| format!("{:.1} MB", bytes as f64 / 1e6))
    };
    let issuer = start("token").await;
    let (_, issued) =
        http(&issuer.respond(fixture("token-client-credentials-basic.json", "")).await);
    let access_token = issued["access_token"].as_str().unwrap_or_default().to_owned();
    let (_, admin) =
        http(&issuer.respond(token_event("grant_type=client_credentials", ADMIN_CLIENT)).await);
    let admin_token = admin["access_token"].as_str().unwrap_or_default().to_owned();
    let login = "grant_type=password&username=alice&password=alice-password-1";
    // Argon2id takes tens of milliseconds a request; fewer invocations reach the same peak.
    let logins = (invocations / 10).max(20);
    let runs = [
        (
            "token",
            "client_credentials",
            fixture("token-client-credentials-basic.json", ""),
            invocations,
        ),
        ("token", "password (Argon2id, 19 MiB)", token_event(login, APP_CLIENT), logins),
        (
            "introspect",
            "introspection",
            fixture("introspect-basic.json", &access_token),
            invocations,
        ),
        (
            "authorizer",
            "authorize a request",
            fixture("authorizer-get-orders.json", &access_token),
            invocations,
        ),
        (
            "revoke",
            "RFC 7009 revocation",
            fixture("revoke-rfc7009-basic.json", &access_token),
            invocations,
        ),
        (
            "batch-revoke",
            "dry run (count)",
            fixture("batch-revoke-dry-run.json", &admin_token),
            logins,
        ),
        ("keys", "JWKS", fixture("keys-jwks.json", ""), invocations),
    ];
    println!("| function | requests | invocations | peak RSS |");
    println!("|---|---|---|---|");
    for (name, what, event, count) in runs {
        let function = start(name).await;
        for _ in 0..count {
            function.respond(event.clone()).await;
        }
        println!("| {name} | {what} | {count} | {} |", mib(&function));
    }
}

/// Round trips per operation (counted by an SDK interceptor) and the cost of counting `tokens`
/// live tokens in one tenant, in memory and on the local DynamoDB server.
async fn dynamodb(tokens: usize) {
    let (store, round_trips) = dynamo::fresh_store_counting().await;
    let store = Arc::new(store.with_page_size(1_000));
    load_seed(&repo_path("seed.toml")).install(store.as_ref(), store.as_ref()).await.unwrap();
    round_trips.take();
    let wiring = Wiring::with_system_clock(
        test_config("https://issuer", SigningAlgorithm::ES256),
        KeySet::generate(SigningAlgorithm::ES256).unwrap(),
        Stores::all(store.clone()),
    );
    let service = wiring.token_service();
    let authenticate = async |(id, secret): (&str, &str)| {
        service
            .authenticator()
            .authenticate(&PresentedClient { id: id.into(), secret: secret.into() })
            .await
            .unwrap()
    };
    let count = |trips: &RoundTrips| trips.take();
    println!("| operation | DynamoDB round trips |");
    println!("|---|---|");
    let cc = authenticate(CC_CLIENT).await;
    let params = TokenParams { grant_type: Some("client_credentials"), ..TokenParams::default() };
    let token = service.issue(&cc, &params).await.unwrap().access_token;
    println!(
        "| client_credentials, cold (client read + issuance record) | {} |",
        count(&round_trips)
    );
    let cc = authenticate(CC_CLIENT).await;
    service.issue(&cc, &params).await.unwrap();
    println!("| client_credentials, client cached | {} |", count(&round_trips));
    let app = authenticate(APP_CLIENT).await;
    round_trips.take();
    let login = TokenParams {
        grant_type: Some("password"),
        username: Some("alice"),
        password: Some("alice-password-1"),
        ..TokenParams::default()
    };
    let first = service.issue(&app, &login).await.unwrap();
    println!("| password, client cached | {} |", count(&round_trips));
    let refresh_token = first.refresh_token.unwrap();
    let refresh = TokenParams {
        grant_type: Some("refresh_token"),
        refresh_token: Some(&refresh_token),
        ..TokenParams::default()
    };
    service.issue(&app, &refresh).await.unwrap();
    println!("| refresh, client cached | {} |", count(&round_trips));
    wiring.verifier().verify(&token).await.unwrap();
    println!("| verification (introspection, authorizer, bearer) | {} |", count(&round_trips));
    let revocation = wiring.revocation_service();
    let bearer = revocation.verify_bearer(&token).await.unwrap();
    revocation.revoke_self(&bearer, None, None).await.unwrap();
    println!("| bearer revocation (verify + revocation record) | {} |", count(&round_trips));

    let admin = authenticate(ADMIN_CLIENT).await;
    let admin_token = service.issue(&admin, &params).await.unwrap().access_token;
    round_trips.take();
    let batch = wiring.batch_revocation();
    let dry = br#"{"dryRun": true, "clientId": "cc-client"}"#;
    batch.revoke(&admin_token, dry).await.unwrap();
    println!(
        "| batch revocation, dry run, few tokens (verify, client, count pages) | {} |",
        count(&round_trips)
    );
    batch.revoke(&admin_token, br#"{"clientId": "cc-client"}"#).await.unwrap();
    println!(
        "| batch revocation (the same, plus one conditional write) | {} |",
        count(&round_trips)
    );
    println!();

    // Counting: `tokens` live access tokens in one tenant, no grants, no cutoffs.
    let now = SystemClock.now();
    let logged: Vec<IssuedToken> = (0..tokens)
        .map(|i| IssuedToken {
            id: TokenId::generate(),
            kind: TokenKind::Access,
            tenant: TenantPath::parse("/bench").unwrap(),
            client_id: ClientId::parse("bench-client").unwrap(),
            subject: format!("subject-{}", i % 1_000),
            grant: None,
            issued_at: now - 10,
            expires_at: now + 3_600,
        })
        .collect();
    println!("| counting live tokens in one tenant | time | DynamoDB requests |");
    println!("|---|---|---|");
    let memory = Arc::new(MemoryStore::new());
    for token in &logged {
        memory.record_issued(token).await.unwrap();
    }
    print_count("in memory", &memory_count(memory.clone()).await, 0);

    let logged = &logged[..tokens.min(MOTO_COUNT_LIMIT)];
    let started = Instant::now();
    let writes: Vec<_> = logged
        .chunks(logged.len().div_ceil(8).max(1))
        .map(|chunk| {
            let (store, chunk) = (store.clone(), chunk.to_vec());
            tokio::spawn(async move {
                for token in chunk {
                    store.record_issued(&token).await.unwrap();
                }
            })
        })
        .collect();
    for write in writes {
        write.await.unwrap();
    }
    eprintln!("loaded {} log entries into moto in {:?}", logged.len(), started.elapsed());
    round_trips.take();
    let (elapsed, counted) = count_with(&Stores::all(store.clone())).await;
    print_count(
        "local DynamoDB (moto), 1,000-entry pages",
        &(elapsed, counted),
        round_trips.take(),
    );
    let item_bytes = 260.0;
    println!(
        "\nRead units on real DynamoDB, estimated: {tokens} index entries of about {item_bytes} bytes read \
         eventually consistent (0.5 RCU per 4 KB): {:.0} RCU, plus one BatchGetItem key per distinct cutoff layer.",
        tokens as f64 * item_bytes / 4096.0 * 0.5
    );
}

fn print_count(name: &str, (elapsed, counted): &(Duration, usize), requests: usize) {
    println!("| {name} | {} ({counted} counted) | {requests} |", ms(*elapsed));
}

async fn memory_count(store: Arc<MemoryStore>) -> (Duration, usize) {
    count_with(&Stores::all(store)).await
}

/// Times what a batch revocation's count does: read the live log entries, their grants and
/// cutoff layers. (Tokens here have no grants; one cutoff layer set per subject.)
async fn count_with(stores: &Stores) -> (Duration, usize) {
    let started = Instant::now();
    let filter = token_service::store::IssuanceFilter {
        tenant: TenantPath::parse("/bench").unwrap(),
        client_id: None,
        subject: None,
    };
    let now = SystemClock.now();
    let entries = stores.issuance.live_issued(&filter, now).await.unwrap();
    let layers: std::collections::HashSet<String> = entries
        .iter()
        .flat_map(|e| token_service::store::layer::applying_to(&e.tenant, &e.client_id, &e.subject))
        .collect();
    let layers: Vec<String> = layers.into_iter().collect();
    stores.revocations.cutoffs(&layers, now).await.unwrap();
    (started.elapsed(), entries.len())
}
