//! The declarative seed file (TOML) that fills a store with tenants and clients. Its format is
//! documented in the README.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::domain::{
    Client, ClientId, ClientSecret, DEFAULT_REFRESH_ABSOLUTE_LIFETIME,
    DEFAULT_REFRESH_IDLE_LIFETIME, GrantType, MAX_LIFETIME, MIN_SECRET_LEN, Scope, ScopeSet,
    SecretDigest, TenantPath, User, UserId, Username,
};
use crate::password::Passwords;
use crate::store::{ClientStore, StoreError, UserStore};

/// A validated seed: clients hold only secret digests, users only password hashes.
#[derive(Debug)]
pub struct Seed {
    pub tenants: Vec<TenantPath>,
    pub clients: Vec<Client>,
    pub users: Vec<User>,
    /// Clients whose plaintext secret is in the file, to print for local use.
    pub demo_credentials: Vec<(ClientId, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    #[serde(default)]
    tenants: Vec<SeedTenant>,
    #[serde(default)]
    clients: Vec<SeedClient>,
    #[serde(default)]
    users: Vec<SeedUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedTenant {
    path: TenantPath,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedClient {
    id: ClientId,
    /// Plaintext, for local demos only; hashed on load and printed at start-up.
    secret: Option<String>,
    /// SHA-256 of the secret, unpadded base64url (what `tokenctl` writes).
    secret_sha256: Option<SecretDigest>,
    tenant: TenantPath,
    grants: BTreeSet<GrantType>,
    #[serde(default)]
    scopes: Vec<Scope>,
    max_access_token_lifetime: u64,
    refresh_idle_lifetime: Option<u64>,
    refresh_absolute_lifetime: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedUser {
    /// Stable user id (the token's `sub`); derived from tenant and username when absent.
    id: Option<UserId>,
    tenant: TenantPath,
    username: Username,
    /// Plaintext, for local demos only; hashed with Argon2id on load.
    password: Option<String>,
    /// Argon2id PHC string (what `tokenctl add-user` writes).
    password_hash: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("seed: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Seed {
    pub fn load(path: &Path, passwords: &Passwords) -> Result<Self, SeedError> {
        let read_error =
            |reason: String| SeedError::Read { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
        Self::parse(&text, passwords)
    }

    pub fn parse(text: &str, passwords: &Passwords) -> Result<Self, SeedError> {
        let file: SeedFile = toml::from_str(text).map_err(|e| SeedError::Invalid(e.to_string()))?;
        let invalid = |msg: String| SeedError::Invalid(msg);
        let tenants: Vec<TenantPath> = file.tenants.into_iter().map(|t| t.path).collect();
        let mut seed =
            Seed { tenants, clients: Vec::new(), users: Vec::new(), demo_credentials: Vec::new() };
        let mut ids = HashSet::new();
        for client in file.clients {
            let id = client.id;
            if !ids.insert(id.clone()) {
                return Err(invalid(format!("client {id} is listed twice")));
            }
            if !seed.tenants.contains(&client.tenant) {
                return Err(invalid(format!(
                    "client {id}: tenant {} is not listed",
                    client.tenant
                )));
            }
            let lifetimes = [
                Some(client.max_access_token_lifetime),
                client.refresh_idle_lifetime,
                client.refresh_absolute_lifetime,
            ];
            if lifetimes.into_iter().flatten().any(|secs| secs == 0 || secs > MAX_LIFETIME) {
                return Err(invalid(format!(
                    "client {id}: lifetimes must be 1 to {MAX_LIFETIME} seconds"
                )));
            }
            let secret_digest = match (client.secret, client.secret_sha256) {
                (Some(secret), None) if secret.len() >= MIN_SECRET_LEN => {
                    let digest = ClientSecret::new(secret.clone()).digest();
                    seed.demo_credentials.push((id.clone(), secret));
                    digest
                }
                (Some(_), None) => {
                    return Err(invalid(format!(
                        "client {id}: secret needs {MIN_SECRET_LEN}+ chars"
                    )));
                }
                (None, Some(digest)) => digest,
                _ => {
                    return Err(invalid(format!("client {id}: give one of secret, secret_sha256")));
                }
            };
            seed.clients.push(Client {
                id,
                secret_digest,
                tenant: client.tenant,
                grants: client.grants,
                scopes: client.scopes.into_iter().collect::<ScopeSet>(),
                max_access_token_lifetime: client.max_access_token_lifetime,
                refresh_idle_lifetime: client
                    .refresh_idle_lifetime
                    .unwrap_or(DEFAULT_REFRESH_IDLE_LIFETIME),
                refresh_absolute_lifetime: client
                    .refresh_absolute_lifetime
                    .unwrap_or(DEFAULT_REFRESH_ABSOLUTE_LIFETIME),
            });
        }
        let mut names = HashSet::new();
        for user in file.users {
            let name = format!("{}:{}", user.tenant, user.username);
            if !names.insert(name.clone()) {
                return Err(invalid(format!("user {name} is listed twice")));
            }
            if !seed.tenants.contains(&user.tenant) {
                return Err(invalid(format!("user {name}: tenant is not listed")));
            }
            let password_hash = match (user.password, user.password_hash) {
                (Some(password), None) => {
                    passwords.hash(&password).map_err(|e| invalid(e.to_string()))?
                }
                (None, Some(hash)) => hash,
                _ => {
                    return Err(invalid(format!(
                        "user {name}: give one of password, password_hash"
                    )));
                }
            };
            seed.users.push(User {
                id: user.id.unwrap_or_else(|| {
                    UserId::derived(user.tenant.as_str(), user.username.as_str())
                }),
                tenant: user.tenant,
                username: user.username,
                password_hash,
            });
        }
        Ok(seed)
    }

    /// Writes every client and user. Users that already exist are left as they are.
    pub async fn install(
        &self,
        clients: &dyn ClientStore,
        users: &dyn UserStore,
    ) -> Result<(), SeedError> {
        for client in &self.clients {
            clients.put_client(client).await?;
        }
        for user in &self.users {
            users.create_user(user).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::{HashParams, Verified};

    fn parse(text: &str) -> Result<Seed, SeedError> {
        let cheap = HashParams { memory_kib: 64, iterations: 1, parallelism: 1 };
        Seed::parse(text, &Passwords::new(cheap))
    }

    const VALID: &str = r#"
        [[tenants]]
        path = "/acme"
        [[clients]]
        id = "demo"
        secret = "0123456789abcdef0123456789abcdef"
        tenant = "/acme"
        grants = ["client_credentials"]
        scopes = ["read", "write"]
        max_access_token_lifetime = 600
        [[users]]
        tenant = "/acme"
        username = "alice"
        password = "wonderland"
    "#;

    #[test]
    fn a_valid_seed_yields_hashed_clients() {
        let seed = parse(VALID).unwrap();
        let client = &seed.clients[0];
        assert!(client.secret_digest.matches("0123456789abcdef0123456789abcdef"));
        assert_eq!(client.scopes.to_string(), "read write");
        assert_eq!(seed.demo_credentials.len(), 1);
        assert_eq!(client.refresh_idle_lifetime, DEFAULT_REFRESH_IDLE_LIFETIME);
    }

    #[test]
    fn seed_users_get_hashed_passwords_and_stable_ids() {
        let seed = parse(VALID).unwrap();
        let user = &seed.users[0];
        assert!(user.password_hash.starts_with("$argon2id$"));
        let hasher = Passwords::new(HashParams { memory_kib: 64, iterations: 1, parallelism: 1 });
        assert_eq!(hasher.verify(Some(&user.password_hash), "wonderland"), Verified::Yes);
        assert_eq!(parse(VALID).unwrap().users[0].id, user.id, "same id on every load");
    }

    #[test]
    fn inconsistent_seeds_are_refused() {
        let cases = [
            VALID.replace("tenant = \"/acme\"", "tenant = \"/other\""),
            VALID.replace("0123456789abcdef0123456789abcdef", "short"),
            VALID.replace("max_access_token_lifetime = 600", "max_access_token_lifetime = 0"),
            VALID.replace(
                "max_access_token_lifetime = 600",
                "max_access_token_lifetime = 600\nrefresh_idle_lifetime = 0",
            ),
            VALID
                .replace("max_access_token_lifetime = 600", "max_access_token_lifetime = 31622401"),
            VALID.replace("grants = [\"client_credentials\"]", "grants = [\"implicit\"]"),
            VALID.replace("path = \"/acme\"", "path = \"acme\""),
            format!("{VALID}\nunknown = 1"),
            format!(
                "{VALID}\n[[users]]\ntenant = \"/acme\"\nusername = \"alice\"\npassword = \"x\""
            ),
            VALID.replace("username = \"alice\"", "username = \" alice\""),
        ];
        for case in cases {
            assert!(parse(&case).is_err(), "{case}");
        }
    }
}
