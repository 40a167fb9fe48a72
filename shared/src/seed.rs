//! The declarative seed file (TOML) that fills a store with tenants and clients. Its format is
//! documented in the README.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::domain::{
    Client, ClientId, ClientSecret, GrantType, MIN_SECRET_LEN, Scope, ScopeSet, SecretDigest,
    TenantPath,
};
use crate::store::{ClientStore, StoreError};

/// A validated seed: clients hold only secret digests.
#[derive(Debug)]
pub struct Seed {
    pub tenants: Vec<TenantPath>,
    pub clients: Vec<Client>,
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
    pub fn load(path: &Path) -> Result<Self, SeedError> {
        let read_error = |reason: String| SeedError::Read {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, SeedError> {
        let file: SeedFile = toml::from_str(text).map_err(|e| SeedError::Invalid(e.to_string()))?;
        let invalid = |msg: String| SeedError::Invalid(msg);
        let tenants: Vec<TenantPath> = file.tenants.into_iter().map(|t| t.path).collect();
        let mut seed = Seed {
            tenants,
            clients: Vec::new(),
            demo_credentials: Vec::new(),
        };
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
            if client.max_access_token_lifetime == 0 {
                return Err(invalid(format!(
                    "client {id}: max_access_token_lifetime must be > 0"
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
                    return Err(invalid(format!(
                        "client {id}: give one of secret, secret_sha256"
                    )));
                }
            };
            seed.clients.push(Client {
                id,
                secret_digest,
                tenant: client.tenant,
                grants: client.grants,
                scopes: client.scopes.into_iter().collect::<ScopeSet>(),
                max_access_token_lifetime: client.max_access_token_lifetime,
            });
        }
        Ok(seed)
    }

    pub async fn install(&self, store: &dyn ClientStore) -> Result<(), SeedError> {
        for client in &self.clients {
            store.put_client(client).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Seed, SeedError> {
        Seed::parse(text)
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
    "#;

    #[test]
    fn a_valid_seed_yields_hashed_clients() {
        let seed = parse(VALID).unwrap();
        let client = &seed.clients[0];
        assert!(
            client
                .secret_digest
                .matches("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(client.scopes.to_string(), "read write");
        assert_eq!(seed.demo_credentials.len(), 1);
    }

    #[test]
    fn inconsistent_seeds_are_refused() {
        let cases = [
            VALID.replace("tenant = \"/acme\"", "tenant = \"/other\""),
            VALID.replace("0123456789abcdef0123456789abcdef", "short"),
            VALID.replace(
                "max_access_token_lifetime = 600",
                "max_access_token_lifetime = 0",
            ),
            VALID.replace(
                "grants = [\"client_credentials\"]",
                "grants = [\"implicit\"]",
            ),
            VALID.replace("path = \"/acme\"", "path = \"acme\""),
            format!("{VALID}\nunknown = 1"),
        ];
        for case in cases {
            assert!(parse(&case).is_err(), "{case}");
        }
    }
}
