use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use token_service::admin::AdminService;
use token_service::api::{JWKS_PATH, TOKEN_PATH};
use token_service::clock::{Clock, SystemClock};
use token_service::config::{
    Config, ConfigError, client_cache_ttl, cutoff_read_copies, issuance_index_shards,
    login_defence_settings, password_hash_params,
};
use token_service::domain::{
    DEFAULT_REFRESH_ABSOLUTE_LIFETIME, DEFAULT_REFRESH_IDLE_LIFETIME, GrantType,
};
use token_service::error::Error;
use token_service::files;
use token_service::keys::{KeySet, KeySetDocument, SigningAlgorithm};
use token_service::password::Passwords;
use token_service::seed::{ImportOptions, Seed};
use token_service::setup::{self, SigningWiring};
use token_service::store::Stores;
use token_service::store::dynamodb::{DynamoStore, table};
use tokenctl::admin::{self, NewClient};
use tokenctl::keys;
use tokenctl::manage::{self, Manage};
use tokenctl::server::{self, Limits};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

const DEFAULT_SEED: &str = "local/seed.toml";

#[derive(Parser)]
#[command(name = "tokenctl", about = "Local server and admin commands of the OAuth2 token service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where admin commands write: the DynamoDB table when one is named, else the seed file.
#[derive(Args)]
struct Target {
    #[arg(long, env = "SEED_FILE", default_value = DEFAULT_SEED)]
    seed: PathBuf,
    /// A DynamoDB table (endpoint from the standard AWS variables).
    #[arg(long, env = "TABLE_NAME")]
    table: Option<String>,
}

/// What the local server allows each client (`tokenctl::server::Limits`).
#[derive(Args)]
struct ServeLimits {
    /// Connections served at once; further clients wait until one closes.
    #[arg(long, env = "MAX_CONNECTIONS",
          default_value_t = server::DEFAULT_MAX_CONNECTIONS as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Seconds a client has to send a request head; also how long an idle keep-alive
    /// connection stays open.
    #[arg(long, env = "HEADER_READ_TIMEOUT",
          default_value_t = server::DEFAULT_HEADER_READ_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout: u64,
    /// Seconds a client has to send a request body once its head has arrived.
    #[arg(long, env = "BODY_READ_TIMEOUT",
          default_value_t = server::DEFAULT_BODY_READ_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    body_read_timeout: u64,
}

impl From<ServeLimits> for Limits {
    fn from(limits: ServeLimits) -> Self {
        Self {
            max_connections: limits.max_connections as usize,
            header_read_timeout: Duration::from_secs(limits.header_read_timeout),
            body_read_timeout: Duration::from_secs(limits.body_read_timeout),
            ..Limits::default()
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve every route on localhost: DynamoDB when TABLE_NAME is set, else an in-memory store
    /// filled from the seed file.
    Serve {
        #[arg(long, env = "PORT", default_value_t = 3000)]
        port: u16,
        #[arg(long, env = "HOST", default_value = "127.0.0.1")]
        host: IpAddr,
        #[arg(long, env = "SEED_FILE", default_value = DEFAULT_SEED)]
        seed: PathBuf,
        /// Created with a fresh key on first run; git-ignored.
        #[arg(long, env = "SIGNING_KEYS_FILE", default_value = ".local/signing-keys.json")]
        keys: PathBuf,
        #[command(flatten)]
        limits: ServeLimits,
    },
    /// Add a tenant path to the seed file.
    AddTenant {
        #[arg(long, env = "SEED_FILE", default_value = DEFAULT_SEED)]
        seed: PathBuf,
        /// e.g. /acme/sales
        path: String,
    },
    /// Register a client; its generated secret is printed once and only its digest is stored.
    AddClient {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        id: String,
        #[arg(long)]
        tenant: String,
        /// Comma-separated: client_credentials, password, refresh_token.
        #[arg(long, value_delimiter = ',', default_value = "client_credentials")]
        grants: Vec<GrantType>,
        /// Space-separated scopes the client may ask for.
        #[arg(long, default_value = "")]
        scopes: String,
        #[arg(long, default_value_t = 3600)]
        max_access_token_lifetime: u64,
        /// Seconds a refresh token may lie unused before it ends.
        #[arg(long, default_value_t = DEFAULT_REFRESH_IDLE_LIFETIME)]
        refresh_idle_lifetime: u64,
        /// Seconds from login after which the grant ends, however often it was refreshed.
        #[arg(long, default_value_t = DEFAULT_REFRESH_ABSOLUTE_LIFETIME)]
        refresh_absolute_lifetime: u64,
    },
    /// Add a user; the password is read from the first line of standard input, never argv.
    AddUser {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        username: String,
    },
    /// Create the service's table (keys, issuance index, TTL) on the configured endpoint.
    CreateTable {
        #[arg(long, env = "TABLE_NAME")]
        table: String,
    },
    /// Bring a table written before the admin plane up to date, once after deploying: lists
    /// and counts its clients and users in their tenants, lists live grants as sessions,
    /// completes user id entries, copies each cutoff into every copy and gives live issuance
    /// log entries the narrowed-count index keys. Scans the whole table; idempotent, safe while
    /// the service runs.
    UpgradeTable {
        #[arg(long, env = "TABLE_NAME")]
        table: String,
        /// First create the narrowed-count indexes the table lacks (a table `create-table`
        /// made; a stack's table gets them from its template, so never on one).
        #[arg(long)]
        add_indexes: bool,
    },
    /// Create a local key file if missing (what `serve` does on first run), and write its public
    /// half for the verifying functions (`make watch`).
    Keygen {
        #[arg(long, env = "SIGNING_KEYS_FILE", default_value = ".local/signing-keys.json")]
        keys: PathBuf,
        #[arg(long, env = "PUBLIC_KEYS_FILE", default_value = ".local/public-keys.json")]
        public_keys: PathBuf,
        #[arg(long, env = "SIGNING_ALG", default_value = "ES256")]
        alg: SigningAlgorithm,
    },
    /// Manage the signing keys in an SSM SecureString and its public half beside it,
    /// `<parameter>-public` (see the rotation runbook in docs/deployment.md).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        /// The SSM parameter holding the private key set.
        #[arg(
            long,
            env = "SIGNING_KEYS_PARAMETER",
            global = true,
            default_value = "/token-service/signing-keys"
        )]
        parameter: String,
    },
    /// Copy a seed file's clients and users into a table. Refused, before anything is written,
    /// when a client id or username is taken there, or when the seed holds plaintext secrets or
    /// passwords (a demo seed).
    ImportSeed {
        #[arg(long, env = "TABLE_NAME")]
        table: String,
        /// The seed to import, named explicitly: no default and no SEED_FILE, which names the
        /// local server's demo seed.
        #[arg(long)]
        seed: PathBuf,
        /// Overwrite the clients and users that already exist.
        #[arg(long)]
        replace: bool,
        /// Import plaintext `secret` and `password` entries (local demo tables only).
        #[arg(long)]
        allow_plaintext: bool,
    },
    #[command(flatten)]
    Manage(Manage),
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create the key set with one current key (refuses to replace an existing one).
    Init {
        #[arg(long, default_value = "ES256")]
        alg: SigningAlgorithm,
    },
    /// Add a key that is published and verifies but does not sign yet.
    Stage {
        #[arg(long, default_value = "ES256")]
        alg: SigningAlgorithm,
    },
    /// Make a staged key current; the old key keeps verifying.
    Promote {
        /// The staged key to promote; required when several are staged.
        // A kid is a base64url thumbprint, which can begin with '-'.
        #[arg(long, allow_hyphen_values = true)]
        kid: Option<String>,
    },
    /// Drop keys retired longer ago than the longest access-token lifetime.
    Prune {
        /// Seconds since retirement; at least the largest `max_access_token_lifetime` of any
        /// client, or tokens still live stop verifying. The default is the longest lifetime any
        /// client may have (366 days); 0 drops every retired key at once (a leaked key).
        #[arg(long, default_value_t = keys::DEFAULT_PRUNE_OLDER_THAN)]
        older_than: u64,
    },
    /// Drop a staged or retired key at once (a leaked key): it is no longer published, verifies
    /// nothing once functions restart, and can never be promoted. The current key cannot be
    /// removed: stage and promote another first.
    Remove {
        #[arg(long, allow_hyphen_values = true)]
        kid: String,
    },
    /// Rewrite the public key set from the private one (after an interrupted command, or once
    /// for a key set made before the public one existed).
    Publish,
    /// List the keys and their states, and whether the public key set is in step.
    Show,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    token_service::logging::init_with_writer(std::io::stderr);
    match run(Cli::parse().command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tokenctl: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Serve { port, host, seed, keys, limits } => {
            serve(SocketAddr::new(host, port), seed, keys, limits.into()).await
        }
        Command::AddTenant { seed, path } => {
            admin::add_tenant(&seed, &passwords()?, &path)?;
            println!("tenant {path} added to {}", seed.display());
            Ok(())
        }
        Command::AddClient {
            target,
            id,
            tenant,
            grants,
            scopes,
            max_access_token_lifetime,
            refresh_idle_lifetime,
            refresh_absolute_lifetime,
        } => {
            let spec = NewClient {
                id: &id,
                tenant: &tenant,
                grants: &grants,
                scopes: &scopes,
                max_access_token_lifetime,
                refresh_idle_lifetime,
                refresh_absolute_lifetime,
            };
            let (client, secret) = admin::new_client(&spec)?;
            match &target.table {
                Some(table) => admin::put_new_client(&dynamo(table).await?, &client).await?,
                None => admin::append_client(&target.seed, &passwords()?, &client)?,
            }
            println!("client {id} added to {}", target.describe());
            println!("client_secret: {}", secret.expose());
            println!("This secret is shown once: only its SHA-256 digest was stored.");
            Ok(())
        }
        Command::AddUser { target, tenant, username } => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            let user = admin::new_user(&passwords()?, &tenant, &username, password)?;
            match &target.table {
                Some(table) => admin::put_new_user(&dynamo(table).await?, &user).await?,
                None => admin::append_user(&target.seed, &passwords()?, &user)?,
            }
            println!("user {username} ({}) added to {tenant} in {}", user.id, target.describe());
            Ok(())
        }
        Command::CreateTable { table } => {
            table::create_table(dynamo(&table).await?.sdk_client(), &table).await?;
            println!("table {table} created");
            Ok(())
        }
        Command::UpgradeTable { table, add_indexes } => {
            let store = dynamo(&table).await?;
            if add_indexes {
                for index in table::add_missing_indexes(store.sdk_client(), &table).await? {
                    println!("index {index} created on {table}");
                }
            }
            let summary = store.upgrade_table(SystemClock.now()).await?;
            println!(
                "upgraded {table}: {} clients and {} users counted and listed, {} grants listed \
                 as sessions, {} user id entries completed, {} user id entries naming no user \
                 removed, {} cutoff copies written, {} log entries indexed for narrowed counts",
                summary.clients,
                summary.users,
                summary.grants,
                summary.user_ids_completed,
                summary.user_ids_removed,
                summary.cutoff_copies,
                summary.issued_indexed
            );
            for skipped in &summary.skipped {
                eprintln!("not upgraded (unreadable, left as is): {skipped}");
            }
            if summary.skipped.is_empty() {
                Ok(())
            } else {
                Err(format!("{} items could not be upgraded", summary.skipped.len()).into())
            }
        }
        Command::Keygen { keys: path, public_keys, alg } => {
            let document = KeySetDocument::load_or_create(&path, alg, SystemClock.now())?;
            let public = serde_json::to_vec_pretty(&document.public()?)?;
            files::write_atomically(&public_keys, &public, 0o644)?;
            println!("{}: current key {}", path.display(), document.current);
            println!("{}: its public keys", public_keys.display());
            Ok(())
        }
        Command::Keys { action, parameter } => {
            let ssm = aws_sdk_ssm::Client::new(&setup::admin_aws_config().await);
            let now = SystemClock.now();
            match action {
                KeysAction::Init { alg } => {
                    println!(
                        "key set created in {parameter}; current key {}",
                        keys::init(&ssm, &parameter, alg, now).await?
                    )
                }
                KeysAction::Stage { alg } => {
                    let kid = keys::stage(&ssm, &parameter, alg, now).await?;
                    println!(
                        "staged {kid}: redeploy, wait for JWKS caches, then \
                         `tokenctl keys promote --kid {kid}`"
                    )
                }
                KeysAction::Promote { kid } => {
                    println!(
                        "{} now signs: redeploy so every function loads it",
                        keys::promote(&ssm, &parameter, kid.as_deref(), now).await?
                    )
                }
                KeysAction::Remove { kid } => {
                    let state = keys::remove(&ssm, &parameter, &kid).await?;
                    println!(
                        "removed {kid} (it was {state}): redeploy (bump KeysVersion) so no \
                         function verifies with it any more"
                    )
                }
                KeysAction::Publish => {
                    println!("public key set written to {}", keys::publish(&ssm, &parameter).await?)
                }
                KeysAction::Prune { older_than } => {
                    println!(
                        "pruned {} retired keys",
                        keys::prune(&ssm, &parameter, older_than, now).await?
                    )
                }
                KeysAction::Show => {
                    let shown = keys::show(&ssm, &parameter).await?;
                    for line in &shown.keys {
                        println!("{line}");
                    }
                    if shown.public_in_step {
                        println!("public key set {}: in step", shown.public);
                    } else {
                        println!(
                            "public key set {}: OUT OF STEP with the private one (or missing): \
                             run `tokenctl keys publish`",
                            shown.public
                        );
                    }
                }
            }
            Ok(())
        }
        Command::ImportSeed { table, seed, replace, allow_plaintext } => {
            let loaded = Seed::load(&seed, &passwords()?)?;
            let store = dynamo(&table).await?;
            let options = ImportOptions { replace, allow_plaintext };
            let imported = admin::import_seed(&loaded, &store, &store, &store, options).await?;
            println!(
                "imported {} clients and {} users from {} into {table} ({} replaced)",
                imported.clients,
                imported.users,
                seed.display(),
                imported.replaced
            );
            Ok(())
        }
        Command::Manage(manage) => manage_table(manage).await,
    }
}

/// An admin operation on a table, as the operator; the service's answer printed as JSON.
async fn manage_table(manage: Manage) -> Result<(), Box<dyn std::error::Error>> {
    let (table, operation) = manage.operation(&mut std::io::stdin().lock())?;
    let stores = Stores::all(Arc::new(dynamo(&table).await?));
    let env = |name: &str| std::env::var(name).ok();
    let (ttl, login_defence) = (client_cache_ttl(&env)?, login_defence_settings(&env)?);
    let clock = Arc::new(SystemClock);
    let service = AdminService::for_operator(stores, passwords()?, clock, ttl, login_defence);
    let answer = manage::perform(&service, operation).await.map_err(|error| match &error {
        // The operator owns the table: what failed there is theirs to see.
        Error::Storage(cause) => format!("{error} ({cause})"),
        _ => error.to_string(),
    })?;
    if let Some(answer) = answer {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    }
    Ok(())
}

impl Target {
    fn describe(&self) -> String {
        match &self.table {
            Some(table) => format!("table {table}"),
            None => self.seed.display().to_string(),
        }
    }
}

/// The table as the stack's functions see it: `ISSUANCE_INDEX_SHARDS` and `CUTOFF_READ_COPIES`
/// from the environment, so entries this tool writes land in shards the functions count.
async fn dynamo(table: &str) -> Result<DynamoStore, ConfigError> {
    let lookup = |name: &str| std::env::var(name).ok();
    Ok(DynamoStore::new(aws_sdk_dynamodb::Client::new(&setup::aws_config().await), table)
        .with_issuance_shards(issuance_index_shards(&lookup)?)
        .with_cutoff_read_copies(cutoff_read_copies(&lookup)?))
}

/// Password hashing at the configured parameters (`ARGON2_*`, OWASP's by default).
fn passwords() -> Result<Passwords, ConfigError> {
    Ok(Passwords::new(password_hash_params(&|name| std::env::var(name).ok())?))
}

async fn serve(
    addr: SocketAddr,
    seed_path: PathBuf,
    keys_path: PathBuf,
    limits: Limits,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr).await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    // The issuer defaults to the address actually bound, so `--port 0` works.
    let config = Config::from_lookup(|name| match name {
        "ISSUER" => std::env::var(name).ok().or_else(|| Some(base_url.clone())),
        "SEED_FILE" => Some(seed_path.display().to_string()),
        "SIGNING_KEYS_FILE" => Some(keys_path.display().to_string()),
        _ => std::env::var(name).ok(),
    })?;
    let document =
        KeySetDocument::load_or_create(&keys_path, config.signing_alg, SystemClock.now())?;
    let keys = KeySet::from_document(&document)?;
    let (stores, store_description, demo_credentials) = match &config.table_name {
        Some(table) => {
            (setup::stores(&config).await?, format!("DynamoDB table {table}"), Vec::new())
        }
        None => {
            let seed = setup::seed_from_config(&config)?;
            let stores = setup::memory_stores(&seed).await?;
            (stores, format!("in memory, from {}", seed_path.display()), seed.demo_credentials)
        }
    };
    let signing_alg = config.signing_alg;
    let router = Arc::new(SigningWiring::with_system_clock(config, keys, stores).router());

    let shutdown = shutdown_signal()?;
    println!("token service listening on {base_url}");
    println!("  token endpoint: {base_url}{TOKEN_PATH}");
    println!("  JWKS:           {base_url}{JWKS_PATH}");
    println!("  signing with {signing_alg} (keys in {})", keys_path.display());
    println!("  store: {store_description}");
    for (id, secret) in &demo_credentials {
        println!("  client {id} secret {secret}");
    }
    if let Some((id, secret)) = demo_credentials.first() {
        println!(
            "try: curl -s -u '{id}:{secret}' -d grant_type=client_credentials {base_url}{TOKEN_PATH}"
        );
    }
    println!("Ctrl-C stops the server.");

    tokenctl::server::serve_with(listener, router, limits, shutdown).await?;
    println!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed before this returns, so a
/// signal sent as soon as the banner is printed is not lost.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kid is a base64url thumbprint, and one in 32 begins with '-': it is still a value.
    #[test]
    fn a_kid_beginning_with_a_hyphen_is_a_value_not_a_flag() {
        for action in ["promote", "remove"] {
            let cli = Cli::try_parse_from(["tokenctl", "keys", action, "--kid", "-mXk3"]);
            let Ok(Cli { command: Command::Keys { action, .. } }) = cli else {
                panic!("{action}: refused: {:?}", cli.err().map(|e| e.to_string()));
            };
            let kid = match action {
                KeysAction::Promote { kid } => kid,
                KeysAction::Remove { kid } => Some(kid),
                _ => None,
            };
            assert_eq!(kid.as_deref(), Some("-mXk3"));
        }
    }
}
