//! Measurements `make bench` collects that need the real binaries or a DynamoDB server: cold
//! starts under the Runtime API emulator, DynamoDB round trips per operation, and counting 100k
//! live tokens for a batch revocation. Prints markdown table rows; fails nothing.
//!
//! Usage: `bench coldstart <profile> <starts> [function…]` | `bench memory <profile> <invocations>`
//! | `bench authorizer <profile> <invocations>` | `bench dynamodb <tokens>`, each under
//! tests/aws-local.sh

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use aws_smithy_runtime_api::box_error::BoxError;
use integration_tests::dynamo::{self, RoundTrips};
use integration_tests::emulator::{
    Deployment, Function, binary, deployment, fixture, http, token_event,
};
use integration_tests::{
    ADMIN_CLIENT, APP_CLIENT, CC_CLIENT, alice_login, load_seed, repo_path, test_config,
};
use serde_json::Value;
use token_service::auth::PresentedClient;
use token_service::clock::{Clock, SystemClock};
use token_service::domain::{ClientId, TenantPath, TokenId};
use token_service::keys::{KeySet, SigningAlgorithm};
use token_service::setup::SigningWiring;
use token_service::store::dynamodb::{DynamoStore, table};
use token_service::store::memory::MemoryStore;
use token_service::store::{IssuanceLog, IssuedToken, Stores, TokenKind};
use token_service::token::{TokenParams, TokenService};
use token_service::verify::Presented;

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
            coldstart(profile, starts, &args[4.min(args.len())..]).await
        }
        Some("memory") => {
            let profile = args.get(2).map(String::as_str).unwrap_or("release");
            memory(profile, args.get(3).and_then(|n| n.parse().ok()).unwrap_or(2_000)).await
        }
        Some("authorizer") => {
            let profile = args.get(2).map(String::as_str).unwrap_or("release");
            authorizer(profile, args.get(3).and_then(|n| n.parse().ok()).unwrap_or(2_000)).await
        }
        Some("dynamodb") => {
            dynamodb(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100_000)).await
        }
        Some("count") => count(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100_000)).await,
        _ => eprintln!(
            "usage: bench coldstart <profile> <starts> [function...] | bench memory <profile> \
             <invocations> | bench authorizer <profile> <invocations> | bench dynamodb <tokens>"
        ),
    }
}

/// What each function is driven with: a real request on its route, as API Gateway sends it, on
/// the seeded table of `deployment`. Tokens come from a token function started for them.
async fn route_events(
    deployment: &Deployment,
    profile: &str,
) -> Vec<(&'static str, &'static str, Value)> {
    let issuer = Function::start(binary("token", profile), &deployment.env_for("token")).await;
    let fresh_token = async |client| {
        let (_, issued) =
            http(&issuer.respond(token_event("grant_type=client_credentials", client)).await);
        issued["access_token"].as_str().unwrap_or_default().to_owned()
    };
    let (access_token, admin_token) =
        (fresh_token(CC_CLIENT).await, fresh_token(ADMIN_CLIENT).await);
    let login = "grant_type=password&username=alice&password=alice-password-1";
    // The revocation fixture is app-client's, with the refresh-token hint: a refresh token of
    // app-client's own, revoked over and over (the first revocation ends its grant, each later
    // one finds it revoked and answers 200 all the same).
    let (_, signed_in) = http(&issuer.respond(token_event(login, APP_CLIENT)).await);
    let revoked_token = signed_in["refresh_token"].as_str().unwrap_or_default().to_owned();
    vec![
        ("token", "client_credentials", fixture("token-client-credentials-basic.json", "")),
        ("token", "password (Argon2id, 19 MiB)", token_event(login, APP_CLIENT)),
        ("introspect", "introspection", fixture("introspect-basic.json", &access_token)),
        ("authorizer", "authorize a request", fixture("authorizer-get-orders.json", &access_token)),
        ("revoke", "RFC 7009 revocation", fixture("revoke-rfc7009-basic.json", &revoked_token)),
        ("batch-revoke", "dry run (count)", fixture("batch-revoke-dry-run.json", &admin_token)),
        ("keys", "JWKS", fixture("keys-jwks.json", "")),
    ]
}

/// A figure of a refused request would measure the wrong path: every answer must be a success
/// (a 200, or an authorizer's admission).
fn assert_succeeded(name: &str, what: &str, response: &Value) {
    let admitted = response["isAuthorized"] == true || response["statusCode"] == 200;
    assert!(admitted, "{name} ({what}) did not succeed: {response}");
}

/// Exec to first `next` poll (init complete) and exec to first response, for every function on
/// its route (or only the functions named in `only`): medians of `starts` starts each. The first
/// response includes the DynamoDB round trips of that request, to moto on this machine.
async fn coldstart(profile: &str, starts: usize, only: &[String]) {
    let deployment = deployment().await;
    println!(
        "| function | request | init: exec to first poll (median of {starts}) | exec to first response |"
    );
    println!("|---|---|---|---|");
    let events = route_events(&deployment, profile).await;
    let chosen =
        events.into_iter().filter(|(name, ..)| only.is_empty() || only.iter().any(|o| o == name));
    for (name, what, event) in chosen {
        let (mut inits, mut responses) = (Vec::new(), Vec::new());
        for _ in 0..starts {
            let function = Function::start(binary(name, profile), &deployment.env_for(name)).await;
            inits.push(function.wait_until_polling().await);
            assert_succeeded(name, what, &function.respond(event.clone()).await);
            responses.push(function.started().elapsed());
        }
        println!("| {name} | {what} | {} | {} |", ms(median(inits)), ms(median(responses)));
    }
}

/// Peak resident memory (VmHWM) of each function process after `invocations` requests on its
/// route, sent one at a time as Lambda does, on a seeded table on the local DynamoDB server, and
/// the median time of one invocation (event in, response out: what Lambda bills; here it
/// includes moto's own time) and the CPU time the function itself spent on one.
async fn memory(profile: &str, invocations: usize) {
    let mib = |function: &Function| {
        function.peak_rss().map_or("n/a".into(), |bytes| format!("{:.1} MB", bytes as f64 / 1e6))
    };
    println!(
        "| function | requests | invocations | median invocation | CPU per invocation | peak RSS |"
    );
    println!("|---|---|---|---|---|---|");
    // Each route on a table of its own: moto's transactions slow down as a table grows, and
    // thousands of one route's records would time out the next route's writes.
    for index in 0.. {
        let deployment = deployment().await;
        let Some((name, what, event)) =
            route_events(&deployment, profile).await.into_iter().nth(index)
        else {
            break;
        };
        // Argon2id takes tens of milliseconds a request, and a count pages through the log:
        // fewer invocations reach the same peak, and each login's transaction slows moto down
        // (past the SDK's timeouts after a few hundred).
        let count = if matches!(name, "batch-revoke") || what.starts_with("password") {
            (invocations / 40).max(20)
        } else {
            invocations
        };
        let function = Function::start(binary(name, profile), &deployment.env_for(name)).await;
        let mut durations = Vec::with_capacity(count);
        let cpu_before = function.cpu_time();
        for _ in 0..count {
            let started = Instant::now();
            let response = function.respond(event.clone()).await;
            durations.push(started.elapsed());
            assert_succeeded(name, what, &response);
        }
        let cpu = match (cpu_before, function.cpu_time()) {
            (Some(before), Some(after)) => ms((after - before) / count as u32),
            _ => "n/a".into(),
        };
        let duration = ms(median(durations));
        println!("| {name} | {what} | {count} | {duration} | {cpu} | {} |", mib(&function));
    }
}

/// The authorizer's CPU per invocation with the verified-token cache off (`TOKEN_CACHE_ENTRIES=0`,
/// every token's signature checked, as before the cache) and on, for one token presented over
/// and over: alternating processes, the median of three rounds each. Then, cache on, tokens
/// never seen before, more of them than the cache holds: the CPU of a miss, and the peak memory
/// of a full cache.
async fn authorizer(profile: &str, invocations: usize) {
    let deployment = deployment().await;
    let issuer = Function::start(binary("token", profile), &deployment.env_for("token")).await;
    let (_, issued) =
        http(&issuer.respond(token_event("grant_type=client_credentials", CC_CLIENT)).await);
    let token = issued["access_token"].as_str().unwrap_or_default().to_owned();
    let run = async |cache_entries: &str, events: &mut dyn Iterator<Item = Value>| {
        let mut env = deployment.env_for("authorizer");
        env.push(("TOKEN_CACHE_ENTRIES", cache_entries.to_owned()));
        let function = Function::start(binary("authorizer", profile), &env).await;
        let (mut durations, mut count) = (Vec::new(), 0u32);
        let cpu_before = function.cpu_time();
        for event in events {
            let started = Instant::now();
            let response = function.respond(event).await;
            durations.push(started.elapsed());
            assert_succeeded("authorizer", "authorize a request", &response);
            count += 1;
        }
        let cpu =
            cpu_before.zip(function.cpu_time()).map(|(before, after)| (after - before) / count);
        (cpu.unwrap_or_default(), median(durations), function.peak_rss().unwrap_or_default())
    };
    let repeated = fixture("authorizer-get-orders.json", &token);
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        off.push(run("0", &mut std::iter::repeat_n(repeated.clone(), invocations)).await);
        on.push(run("10000", &mut std::iter::repeat_n(repeated.clone(), invocations)).await);
    }
    let row = |what: &str, runs: Vec<(Duration, Duration, u64)>| {
        let cpu = median(runs.iter().map(|run| run.0).collect());
        let invocation = median(runs.iter().map(|run| run.1).collect());
        let rss = runs.iter().map(|run| run.2).max().unwrap_or_default();
        println!(
            "| {what} | {} | {:.3} ms | {} | {:.1} MB |",
            runs.len() * invocations,
            cpu.as_secs_f64() * 1000.0,
            ms(invocation),
            rss as f64 / 1e6
        );
        cpu
    };
    println!("| authorizer | invocations | CPU per invocation | median invocation | peak RSS |");
    println!("|---|---|---|---|---|");
    let before = row("one token, cache off (every signature checked)", off);
    let after = row("one token, cache on", on);

    // Distinct tokens: the issued one's claims under new ids, signed with the deployment's key.
    let document: token_service::keys::KeySetDocument =
        serde_json::from_slice(&std::fs::read(&deployment.private_keys.1).unwrap()).unwrap();
    let keys = KeySet::from_document(&document).unwrap();
    let signer = token_service::jwt::TokenSigner::new(
        keys,
        integration_tests::emulator::ISSUER.to_owned(),
        integration_tests::AUDIENCE.to_owned(),
    );
    let claims = integration_tests::forgery::claims_of(&token);
    let mut claims: token_service::jwt::AccessTokenClaims = serde_json::from_value(claims).unwrap();
    let distinct = 12_000;
    let mut fresh = (0..distinct).map(|_| {
        claims.jti = TokenId::generate().to_string();
        fixture("authorizer-get-orders.json", &signer.sign(&claims).unwrap())
    });
    let full = run("10000", &mut fresh).await;
    println!(
        "| {distinct} distinct tokens, cache on (each a miss; 10,000 held) | {distinct} | {:.3} ms | {} | {:.1} MB |",
        full.0.as_secs_f64() * 1000.0,
        ms(full.1),
        full.2 as f64 / 1e6
    );
    println!();
    println!(
        "One token presented again and again: {:.2}× the CPU per invocation with the cache.",
        after.as_secs_f64() / before.as_secs_f64()
    );
}

/// Round trips per operation (counted by an SDK interceptor) and the cost of counting `tokens`
/// live tokens in one tenant, in memory and on the local DynamoDB server.
async fn dynamodb(tokens: usize) {
    let (store, round_trips) = dynamo::fresh_store_counting().await;
    let store = Arc::new(store.with_page_size(1_000));
    load_seed(&repo_path("seed.toml"))
        .install(store.as_ref(), store.as_ref(), store.as_ref())
        .await
        .unwrap();
    round_trips.take();
    let wiring = SigningWiring::with_system_clock(
        test_config("https://issuer", SigningAlgorithm::ES256),
        KeySet::generate(SigningAlgorithm::ES256).unwrap(),
        Stores::all(store.clone()),
    );
    let service = wiring.token_service();
    let authenticate = async |(id, secret): (&str, &str)| {
        service.authenticator().authenticate(&PresentedClient::secret(id, secret)).await.unwrap()
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
    // A new instance for each cold figure: nothing cached.
    let cold = || {
        SigningWiring::with_system_clock(
            test_config("https://issuer", SigningAlgorithm::ES256),
            KeySet::generate(SigningAlgorithm::ES256).unwrap(),
            Stores::all(store.clone()),
        )
        .token_service()
    };
    let issue = async |service: &TokenService, params: &TokenParams<'_>| {
        let presented = PresentedClient::secret(APP_CLIENT.0, APP_CLIENT.1);
        service.authenticate_and_issue(&presented, params).await.unwrap()
    };
    let login = alice_login();
    round_trips.take();
    let first = issue(&cold(), &login).await;
    println!(
        "| password, cold (client and user in one read, then the transaction) | {} |",
        count(&round_trips)
    );
    issue(&service, &login).await;
    round_trips.take();
    issue(&service, &login).await;
    println!("| password, client cached | {} |", count(&round_trips));
    let refresh_token = first.refresh_token.unwrap();
    let refresh = TokenParams {
        grant_type: Some("refresh_token"),
        refresh_token: Some(&refresh_token),
        ..TokenParams::default()
    };
    let second = issue(&cold(), &refresh).await;
    println!(
        "| refresh, cold (client, token and grant in one read, then the transaction) | {} |",
        count(&round_trips)
    );
    let refresh_token = second.refresh_token.unwrap();
    let refresh = TokenParams { refresh_token: Some(&refresh_token), ..refresh };
    issue(&service, &refresh).await;
    println!("| refresh, client cached | {} |", count(&round_trips));
    wiring.verifier().verify(&token).await.unwrap();
    println!("| verification (introspection, authorizer, bearer) | {} |", count(&round_trips));
    let revocation = wiring.revocation_service();
    let bearer = revocation.verify_presented(&Presented::Bearer(&token)).await.unwrap();
    revocation.revoke_self(&bearer, None, None).await.unwrap();
    println!("| bearer revocation (verify + revocation record) | {} |", count(&round_trips));

    let admin = authenticate(ADMIN_CLIENT).await;
    let admin_token = service.issue(&admin, &params).await.unwrap().access_token;
    round_trips.take();
    let batch = wiring.batch_revocation();
    let dry = br#"{"dryRun": true, "clientId": "cc-client"}"#;
    batch.revoke(&Presented::Bearer(&admin_token), dry, None).await.unwrap();
    println!(
        "| batch revocation, dry run, few tokens (verify, client, count pages) | {} |",
        count(&round_trips)
    );
    batch
        .revoke(&Presented::Bearer(&admin_token), br#"{"clientId": "cc-client"}"#, None)
        .await
        .unwrap();
    println!(
        "| batch revocation (the same, plus one conditional write) | {} |",
        count(&round_trips)
    );
    println!();

    let logged = live_tokens(tokens);
    println!("| counting live tokens in one tenant | time | DynamoDB requests |");
    println!("|---|---|---|");
    let memory = Arc::new(MemoryStore::new());
    for token in &logged {
        memory.record_issued(token).await.unwrap();
    }
    print_count("in memory", &memory_count(memory.clone()).await, 0);

    load(&store, &logged[..tokens.min(MOTO_COUNT_LIMIT)]).await;
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

/// The client of one token in [`NARROWED_SHARE`]: a count narrowed to it reads 1k of 100k.
const NARROWED_CLIENT: &str = "narrow-client";
const NARROWED_SHARE: usize = 100;

/// `tokens` live access tokens in one tenant, no grants, no cutoffs: what a count reads. One in
/// [`NARROWED_SHARE`] is of [`NARROWED_CLIENT`], the rest of one busy client.
fn live_tokens(tokens: usize) -> Vec<IssuedToken> {
    let now = SystemClock.now();
    (0..tokens)
        .map(|i| IssuedToken {
            id: TokenId::generate(),
            kind: TokenKind::Access,
            tenant: TenantPath::parse("/bench").unwrap(),
            client_id: ClientId::parse(if i % NARROWED_SHARE == 0 {
                NARROWED_CLIENT
            } else {
                "bench-client"
            })
            .unwrap(),
            subject: format!("subject-{}", i % 1_000),
            grant: None,
            issued_at: now - 10,
            expires_at: now + 3_600,
        })
        .collect()
}

/// Writes the log entries as the token function does (one PutItem each), eight at a time.
async fn load(store: &DynamoStore, logged: &[IssuedToken]) {
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
    eprintln!("loaded {} log entries in {:?}", logged.len(), started.elapsed());
}

/// Asks for and adds up the read units DynamoDB reports for every Query and BatchGetItem.
#[derive(Clone, Debug, Default)]
struct ReadUnits(Arc<std::sync::Mutex<f64>>);

impl Intercept for ReadUnits {
    fn name(&self) -> &'static str {
        "ReadUnits"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input_mut();
        if let Some(query) = input.downcast_mut::<QueryInput>() {
            query.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
        } else if let Some(batch) = input.downcast_mut::<BatchGetItemInput>() {
            batch.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Ok(output) = context.output_or_error() else { return Ok(()) };
        let units: f64 = if let Some(query) = output.downcast_ref::<QueryOutput>() {
            query.consumed_capacity.iter().filter_map(|c| c.capacity_units).sum()
        } else if let Some(batch) = output.downcast_ref::<BatchGetItemOutput>() {
            batch.consumed_capacity.iter().flatten().filter_map(|c| c.capacity_units).sum()
        } else {
            0.0
        };
        *self.0.lock().unwrap() += units;
        Ok(())
    }
}

/// Counting `tokens` live tokens in one tenant on the DynamoDB-compatible server the standard
/// variables point at: dynalite (LevelDB), whose Query pages do not slow down with the
/// partition's size as moto's do. Its time, requests and the read units the server reports.
async fn count(tokens: usize) {
    let (round_trips, read_units) = (RoundTrips::default(), ReadUnits::default());
    let sdk_config = token_service::setup::aws_config_with_timeouts(
        Duration::from_secs(30),
        Duration::from_secs(120),
    )
    .await;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config)
        .interceptor(round_trips.clone())
        .interceptor(read_units.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = format!("bench-count-{}", std::process::id());
    table::create_keys_and_index(&client, &table).await.unwrap();
    // Tables (and their index) take a moment to become active, as on DynamoDB.
    while client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .ok()
        .and_then(|t| t.table?.table_status)
        != Some(aws_sdk_dynamodb::types::TableStatus::Active)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = DynamoStore::new(client, table);
    load(&store, &live_tokens(tokens)).await;
    let stores = Stores::all(Arc::new(store));
    println!(
        "| counting live tokens in one tenant | time | DynamoDB requests | read units reported |"
    );
    println!("|---|---|---|---|");
    let narrowed =
        format!("narrowed to one client ({NARROWED_CLIENT}, one token in {NARROWED_SHARE})");
    for (what, client) in [("the whole tenant", None), (narrowed.as_str(), Some(NARROWED_CLIENT))] {
        round_trips.take();
        *read_units.0.lock().unwrap() = 0.0;
        let (elapsed, counted) = count_narrowed(&stores, client).await;
        println!(
            "| dynalite, 1,000-entry pages, {what} | {} ({counted} counted) | {} | {:.0} |",
            ms(elapsed),
            round_trips.take(),
            *read_units.0.lock().unwrap()
        );
    }
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
    count_narrowed(stores, None).await
}

/// [`count_with`] narrowed to one client, when `client` names one.
async fn count_narrowed(stores: &Stores, client: Option<&str>) -> (Duration, usize) {
    let started = Instant::now();
    let filter = token_service::store::IssuanceFilter {
        tenant: TenantPath::parse("/bench").unwrap(),
        client_id: client.map(|id| ClientId::parse(id).unwrap()),
        subject: None,
    };
    let now = SystemClock.now();
    let entries = stores.issuance.live_issued(&filter, now).await.unwrap();
    let layers: std::collections::HashSet<String> = entries
        .iter()
        .flat_map(|e| {
            token_service::store::layer::applying_to(&e.tenant, &e.client_id, e.subject_ref())
        })
        .collect();
    let layers: Vec<String> = layers.into_iter().collect();
    stores.revocations.cutoffs(&layers, now).await.unwrap();
    (started.elapsed(), entries.len())
}
