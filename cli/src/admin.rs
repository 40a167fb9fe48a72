//! Admin commands that write to the seed file or a table. A seed file command appends a TOML
//! table, then checks the whole file with the same validation the server runs at start-up
//! before writing anything, so a command never leaves the file in a state the server would
//! refuse. Commands writing the same file take turns (a lock held across the read, the check
//! and the write), and the file is replaced whole, never rewritten in place.

use std::path::Path;

use serde::Serialize;
use token_service::domain::{
    Client, ClientId, ClientSecret, GrantType, MAX_LIFETIME, ScopeSet, TenantPath, User, UserId,
    Username,
};
use token_service::password::{MAX_PASSWORD_LEN, Passwords};
use token_service::seed::{ImportOptions, Imported, Seed, SeedError};
use token_service::store::{ClientStore, StoreError, TenantStore, UserStore};

use token_service::files;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Seed(#[from] SeedError),
    #[error(transparent)]
    Store(#[from] StoreError),
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
    refresh_idle_lifetime: u64,
    refresh_absolute_lifetime: u64,
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
    pub refresh_idle_lifetime: u64,
    pub refresh_absolute_lifetime: u64,
}

pub fn add_tenant(seed: &Path, passwords: &Passwords, path: &str) -> Result<(), AdminError> {
    let path = TenantPath::parse(path).map_err(|e| AdminError::Invalid(e.to_string()))?;
    let entry = Tenants { tenants: [TenantEntry { path: path.as_str() }] };
    append(seed, passwords, &entry, |updated| {
        if updated.tenants.iter().filter(|listed| **listed == path).count() > 1 {
            return Err(AdminError::Invalid(format!("tenant {path} is already listed")));
        }
        Ok(())
    })
}

fn invalid(e: impl std::fmt::Display) -> AdminError {
    AdminError::Invalid(e.to_string())
}

/// A client with a fresh 256-bit secret, returned to be shown once: only its digest is kept.
pub fn new_client(spec: &NewClient<'_>) -> Result<(Client, ClientSecret), AdminError> {
    let scopes = if spec.scopes.is_empty() {
        ScopeSet::default()
    } else {
        ScopeSet::parse(spec.scopes).map_err(invalid)?
    };
    let lifetimes = [
        spec.max_access_token_lifetime,
        spec.refresh_idle_lifetime,
        spec.refresh_absolute_lifetime,
    ];
    if lifetimes.iter().any(|&secs| secs == 0 || secs > MAX_LIFETIME) {
        return Err(invalid(format!("lifetimes must be 1 to {MAX_LIFETIME} seconds")));
    }
    let secret = ClientSecret::generate();
    let client = Client {
        id: ClientId::parse(spec.id).map_err(invalid)?,
        credentials: token_service::domain::Credentials::secret(secret.digest()),
        tenant: TenantPath::parse(spec.tenant).map_err(invalid)?,
        grants: spec.grants.iter().copied().collect(),
        scopes,
        max_access_token_lifetime: spec.max_access_token_lifetime,
        refresh_idle_lifetime: spec.refresh_idle_lifetime,
        refresh_absolute_lifetime: spec.refresh_absolute_lifetime,
        refresh_reuse_interval: 0,
        dpop_bound_access_tokens: false,
        enabled: true,
        version: 0,
    };
    Ok((client, secret))
}

/// A user with an Argon2id hash of `password`; the password itself is never kept.
pub fn new_user(
    passwords: &Passwords,
    tenant: &str,
    username: &str,
    password: &str,
) -> Result<User, AdminError> {
    if password.is_empty() || password.len() > MAX_PASSWORD_LEN {
        return Err(invalid(format!("password must be 1-{MAX_PASSWORD_LEN} bytes")));
    }
    Ok(User {
        id: UserId::generate(),
        tenant: TenantPath::parse(tenant).map_err(invalid)?,
        username: Username::parse(username).map_err(invalid)?,
        password_hash: passwords.hash(password).map_err(invalid)?,
        enabled: true,
        created_at: 0,
        version: 0,
    })
}

pub fn append_client(
    seed: &Path,
    passwords: &Passwords,
    client: &Client,
) -> Result<(), AdminError> {
    let digest = client
        .credentials
        .secret_digest()
        .ok_or_else(|| AdminError::Invalid("the seed file holds only secret clients".into()))?;
    let entry = ClientEntry {
        id: client.id.as_str(),
        secret_sha256: digest.clone().into(),
        tenant: client.tenant.as_str(),
        grants: client.grants.iter().map(|grant| grant.as_str()).collect(),
        scopes: client.scopes.iter().map(|scope| scope.as_str().to_owned()).collect(),
        max_access_token_lifetime: client.max_access_token_lifetime,
        refresh_idle_lifetime: client.refresh_idle_lifetime,
        refresh_absolute_lifetime: client.refresh_absolute_lifetime,
    };
    append(seed, passwords, &Clients { clients: [entry] }, |_| Ok(()))
}

pub fn append_user(seed: &Path, passwords: &Passwords, user: &User) -> Result<(), AdminError> {
    let entry = UserEntry {
        id: user.id.to_string(),
        tenant: user.tenant.as_str(),
        username: user.username.as_str(),
        password_hash: user.password_hash.clone(),
    };
    append(seed, passwords, &Users { users: [entry] }, |_| Ok(()))
}

/// Writes a client to a table, refusing to replace one with the same id (a conditional write,
/// so a concurrent creation is not overwritten either).
pub async fn put_new_client(store: &dyn ClientStore, client: &Client) -> Result<(), AdminError> {
    if !store.create_client(client).await? {
        return Err(invalid(format!("client {} already exists", client.id)));
    }
    Ok(())
}

pub async fn put_new_user(store: &dyn UserStore, user: &User) -> Result<(), AdminError> {
    if !store.create_user(user).await? {
        return Err(invalid(format!("user {} already exists in {}", user.username, user.tenant)));
    }
    Ok(())
}

/// Imports a seed file's tenants, clients and users into a table (see [`Seed::import`]); the errors say
/// which flag overrides a refusal.
pub async fn import_seed(
    seed: &Seed,
    tenants: &dyn TenantStore,
    clients: &dyn ClientStore,
    users: &dyn UserStore,
    options: ImportOptions,
) -> Result<Imported, AdminError> {
    seed.import(tenants, clients, users, options).await.map_err(|e| match e {
        SeedError::Plaintext(_) => {
            invalid(format!("{e}; --allow-plaintext imports it anyway, for a local demo table"))
        }
        SeedError::Exists(_) => invalid(format!("{e}; --replace overwrites them")),
        other => other.into(),
    })
}

/// Appends `table` to the seed file if the result is a valid seed that `check` accepts.
fn append(
    seed: &Path,
    passwords: &Passwords,
    table: &impl Serialize,
    check: impl FnOnce(&Seed) -> Result<(), AdminError>,
) -> Result<(), AdminError> {
    let io = |source| AdminError::Io { path: seed.display().to_string(), source };
    let _lock = files::lock(seed).map_err(io)?;
    let mut text = std::fs::read_to_string(seed).map_err(io)?;
    let snippet = toml::to_string(table).map_err(invalid)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push('\n');
    text.push_str(&snippet);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    check(&Seed::parse(&text, passwords)?)?;
    files::write_atomically_keeping_mode(seed, text.as_bytes()).map_err(io)
}
