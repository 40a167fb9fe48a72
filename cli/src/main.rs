use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use token_service::api::{JWKS_PATH, Router, TOKEN_PATH};
use token_service::clock::{Clock, SystemClock};
use token_service::config::Config;
use token_service::keys::{KeySet, KeySetDocument};
use token_service::setup;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(name = "tokenctl", about = "Local server and admin commands of the OAuth2 token service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every route on localhost with an in-memory store filled from the seed file.
    Serve {
        #[arg(long, env = "PORT", default_value_t = 3000)]
        port: u16,
        #[arg(long, env = "HOST", default_value = "127.0.0.1")]
        host: IpAddr,
        #[arg(long, env = "SEED_FILE", default_value = "local/seed.toml")]
        seed: PathBuf,
        /// Created with a fresh key on first run; git-ignored.
        #[arg(long, env = "SIGNING_KEYS_FILE", default_value = ".local/signing-keys.json")]
        keys: PathBuf,
    },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    lambda_http::tracing::init_default_subscriber_with_writer(std::io::stderr);
    match Cli::parse().command {
        Command::Serve { port, host, seed, keys } => {
            serve(SocketAddr::new(host, port), seed, keys).await
        }
    }
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
