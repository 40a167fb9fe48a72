use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use token_service::api::{JWKS_PATH, Router, TOKEN_PATH};
use token_service::clock::{Clock, SystemClock};
use token_service::config::{Config, ConfigError, password_hash_params};
use token_service::domain::GrantType;
use token_service::keys::{KeySet, KeySetDocument};
use token_service::password::Passwords;
use token_service::setup;
use tokenctl::admin::{self, NewClient};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

const DEFAULT_SEED: &str = "local/seed.toml";

#[derive(Parser)]
#[command(name = "tokenctl", about = "Local server and admin commands of the OAuth2 token service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Add a tenant path to the seed file.
    AddTenant {
        #[arg(long, env = "SEED_FILE", default_value = DEFAULT_SEED)]
        seed: PathBuf,
        /// e.g. /acme/sales
        path: String,
    },
    /// Register a client; its generated secret is printed once and only its digest is stored.
    AddClient {
        #[arg(long, env = "SEED_FILE", default_value = DEFAULT_SEED)]
        seed: PathBuf,
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
    },
    /// Add a user; the password is read from the first line of standard input, never argv.
    AddUser {
        #[arg(long, env = "SEED_FILE", default_value = DEFAULT_SEED)]
        seed: PathBuf,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        username: String,
    },
    /// Serve every route on localhost with an in-memory store filled from the seed file.
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
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    lambda_http::tracing::init_default_subscriber_with_writer(std::io::stderr);
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
        Command::Serve { port, host, seed, keys } => {
            serve(SocketAddr::new(host, port), seed, keys).await
        }
        Command::AddTenant { seed, path } => {
            admin::add_tenant(&seed, &passwords()?, &path)?;
            println!("tenant {path} added to {}", seed.display());
            Ok(())
        }
        Command::AddClient { seed, id, tenant, grants, scopes, max_access_token_lifetime } => {
            let client = NewClient {
                id: &id,
                tenant: &tenant,
                grants: &grants,
                scopes: &scopes,
                max_access_token_lifetime,
            };
            let secret = admin::add_client(&seed, &passwords()?, &client)?;
            println!("client {id} added to {}", seed.display());
            println!("client_secret: {}", secret.expose());
            println!("This secret is shown once: only its SHA-256 digest was stored.");
            Ok(())
        }
        Command::AddUser { seed, tenant, username } => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            let id = admin::add_user(&seed, &passwords()?, &tenant, &username, password)?;
            println!("user {username} ({id}) added to {tenant} in {}", seed.display());
            Ok(())
        }
    }
}

/// Password hashing at the configured parameters (`ARGON2_*`, OWASP's by default).
fn passwords() -> Result<Passwords, ConfigError> {
    Ok(Passwords::new(password_hash_params(&|name| std::env::var(name).ok())?))
}

async fn serve(
    addr: SocketAddr,
    seed_path: PathBuf,
    keys_path: PathBuf,
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
    let seed = setup::seed_from_config(&config)?;
    let stores = setup::memory_stores(&seed).await?;
    let router = Arc::new(Router {
        discovery: setup::discovery(&config, &keys),
        token: setup::token_service(&config, keys, stores),
    });

    let shutdown = shutdown_signal()?;
    println!("token service listening on {base_url}");
    println!("  token endpoint: {base_url}{TOKEN_PATH}");
    println!("  JWKS:           {base_url}{JWKS_PATH}");
    println!("  signing with {} (keys in {})", config.signing_alg, keys_path.display());
    for (id, secret) in &seed.demo_credentials {
        println!("  client {id} secret {secret}");
    }
    if let Some((id, secret)) = seed.demo_credentials.first() {
        println!(
            "try: curl -s -u '{id}:{secret}' -d grant_type=client_credentials {base_url}{TOKEN_PATH}"
        );
    }
    println!("Ctrl-C stops the server.");

    tokenctl::server::serve(listener, router, shutdown).await?;
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
