//! Admin commands that write to the seed file. Each appends a TOML table, then checks the whole
//! file with the same validation the server runs at start-up before writing anything, so a
//! command never leaves the file in a state the server would refuse.

use std::path::Path;

use serde::Serialize;
use token_service::domain::{
    ClientId, ClientSecret, GrantType, ScopeSet, TenantPath, UserId, Username,
};
use token_service::password::{MAX_PASSWORD_LEN, Passwords};
use token_service::seed::{Seed, SeedError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Seed(#[from] SeedError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

#[derive(Serialize)]
struct Tenants<'a> {
    tenants: [TenantEntry<'a>; 1],
}

#[derive(Serialize)]
struct TenantEntry<'a> {
    path: &'a str,
}

#[derive(Serialize)]
struct Clients<'a> {
    clients: [ClientEntry<'a>; 1],
}

#[derive(Serialize)]
struct ClientEntry<'a> {
    id: &'a str,
    secret_sha256: String,
    tenant: &'a str,
    grants: Vec<&'static str>,
    scopes: Vec<String>,
    max_access_token_lifetime: u64,
}

#[derive(Serialize)]
struct Users<'a> {
    users: [UserEntry<'a>; 1],
}

#[derive(Serialize)]
struct UserEntry<'a> {
    id: String,
    tenant: &'a str,
    username: &'a str,
    password_hash: String,
}

pub struct NewClient<'a> {
    pub id: &'a str,
    pub tenant: &'a str,
    pub grants: &'a [GrantType],
    pub scopes: &'a str,
    pub max_access_token_lifetime: u64,
}

pub fn add_tenant(seed: &Path, passwords: &Passwords, path: &str) -> Result<(), AdminError> {
    let path = TenantPath::parse(path).map_err(|e| AdminError::Invalid(e.to_string()))?;
    let current = load(seed, passwords)?;
    if current.tenants.contains(&path) {
        return Err(AdminError::Invalid(format!("tenant {path} is already listed")));
    }
    append(seed, passwords, &Tenants { tenants: [TenantEntry { path: path.as_str() }] })
}

/// Registers a client with a fresh 256-bit secret, which is returned to be shown once: only its
/// digest is written.
pub fn add_client(
    seed: &Path,
    passwords: &Passwords,
    client: &NewClient<'_>,
) -> Result<ClientSecret, AdminError> {
    let invalid = |e: &dyn std::fmt::Display| AdminError::Invalid(e.to_string());
    let id = ClientId::parse(client.id).map_err(|e| invalid(&e))?;
    let tenant = TenantPath::parse(client.tenant).map_err(|e| invalid(&e))?;
    let scopes = if client.scopes.is_empty() {
        ScopeSet::default()
    } else {
        ScopeSet::parse(client.scopes).map_err(|e| invalid(&e))?
    };
    let secret = ClientSecret::generate();
    let entry = ClientEntry {
        id: id.as_str(),
        secret_sha256: secret.digest().into(),
        tenant: tenant.as_str(),
        grants: client.grants.iter().map(|grant| grant.as_str()).collect(),
        scopes: scopes
            .to_string()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        max_access_token_lifetime: client.max_access_token_lifetime,
    };
    append(seed, passwords, &Clients { clients: [entry] })?;
    Ok(secret)
}

/// Adds a user with an Argon2id hash of `password`; the password itself is never written.
pub fn add_user(
    seed: &Path,
    passwords: &Passwords,
    tenant: &str,
    username: &str,
    password: &str,
) -> Result<UserId, AdminError> {
    let tenant = TenantPath::parse(tenant).map_err(|e| AdminError::Invalid(e.to_string()))?;
    let username = Username::parse(username).map_err(|e| AdminError::Invalid(e.to_string()))?;
    if password.is_empty() || password.len() > MAX_PASSWORD_LEN {
        return Err(AdminError::Invalid(format!("password must be 1-{MAX_PASSWORD_LEN} bytes")));
    }
    let id = UserId::generate();
    let password_hash = passwords.hash(password).map_err(|e| AdminError::Invalid(e.to_string()))?;
    let entry = UserEntry {
        id: id.to_string(),
        tenant: tenant.as_str(),
        username: username.as_str(),
        password_hash,
    };
    append(seed, passwords, &Users { users: [entry] })?;
    Ok(id)
}

fn load(seed: &Path, passwords: &Passwords) -> Result<Seed, AdminError> {
    Ok(Seed::load(seed, passwords)?)
}

fn append(seed: &Path, passwords: &Passwords, table: &impl Serialize) -> Result<(), AdminError> {
    let io = |source| AdminError::Io { path: seed.display().to_string(), source };
    let mut text = std::fs::read_to_string(seed).map_err(io)?;
    let snippet = toml::to_string(table).map_err(|e| AdminError::Invalid(e.to_string()))?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push('\n');
    text.push_str(&snippet);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Seed::parse(&text, passwords)?;
    std::fs::write(seed, text).map_err(io)
}
