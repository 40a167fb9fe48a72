//! The declarative seed file (TOML) that fills a store with tenants and clients. Its format is
//! documented in docs/deployment.md ("Seed file").

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer};

use crate::clock::{Clock, SystemClock};
use crate::domain::{
    AuthMethod, Client, ClientId, ClientJwks, ClientSecret, Credentials,
    DEFAULT_REFRESH_ABSOLUTE_LIFETIME, DEFAULT_REFRESH_IDLE_LIFETIME, GrantType, MAX_LIFETIME,
    MAX_REFRESH_REUSE_INTERVAL, MIN_SECRET_LEN, Redacted, Scope, ScopeSet, SecretDigest,
    TenantPath, User, UserId, Username,
};
use crate::password::Passwords;
use crate::store::{ClientStore, StoreError, TenantStore, UserStore};

/// A validated seed: clients hold only secret digests, users only password hashes.
pub struct Seed {
    pub tenants: Vec<TenantPath>,
    pub clients: Vec<Client>,
    pub users: Vec<User>,
    /// Clients whose plaintext secret is in the file, to print for local use.
    pub demo_credentials: Vec<(ClientId, String)>,
    /// The clients and users the file gives a plaintext secret or password, by name: such a
    /// seed is fit only for local demos.
    pub plaintext: Vec<String>,
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let demo_ids: Vec<_> = self.demo_credentials.iter().map(|(id, _)| (id, Redacted)).collect();
        f.debug_struct("Seed")
            .field("tenants", &self.tenants)
            .field("clients", &self.clients)
            .field("users", &self.users)
            .field("demo_credentials", &demo_ids)
            .field("plaintext", &self.plaintext)
            .finish()
    }
}

/// What [`Seed::import`] does with a table's existing records and with plaintext credentials.
#[derive(Clone, Copy, Debug, Default)]
pub struct ImportOptions {
    /// Overwrite the clients and users that already exist; otherwise nothing is written.
    pub replace: bool,
    /// Import plaintext secrets and passwords (as digests and hashes) rather than refuse them.
    pub allow_plaintext: bool,
}

/// What [`Seed::import`] wrote.
#[derive(Debug, PartialEq, Eq)]
pub struct Imported {
    pub clients: usize,
    pub users: usize,
    /// How many of them replaced an existing record.
    pub replaced: usize,
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
    secret: Option<Plaintext>,
    /// SHA-256 of the secret, unpadded base64url (what `tokenctl` writes).
    secret_sha256: Option<SecretDigest>,
    tenant: TenantPath,
    grants: BTreeSet<GrantType>,
    #[serde(default)]
    scopes: Vec<Scope>,
    max_access_token_lifetime: u64,
    refresh_idle_lifetime: Option<u64>,
    refresh_absolute_lifetime: Option<u64>,
    /// `client_secret_basic` (the default), `client_secret_post` or `private_key_jwt`.
    token_endpoint_auth_method: Option<String>,
    /// A `private_key_jwt` client's public keys: an inline table, or a string of JSON.
    jwks: Option<toml::Value>,
    refresh_reuse_interval: Option<u64>,
    dpop_bound_access_tokens: Option<bool>,
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedUser {
    /// Stable user id (the token's `sub`); derived from tenant and username when absent.
    id: Option<UserId>,
    tenant: TenantPath,
    username: Username,
    /// Plaintext, for local demos only; hashed with Argon2id on load.
    password: Option<Plaintext>,
    /// Argon2id PHC string (what `tokenctl add-user` writes).
    password_hash: Option<String>,
    enabled: Option<bool>,
}

/// A plaintext secret or password field. serde's own type errors quote the value they found
/// (`invalid type: integer `1234`…`): this one never does.
struct Plaintext(String);

impl<'de> Deserialize<'de> for Plaintext {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(deserializer) {
            Ok(toml::Value::String(value)) => Ok(Self(value)),
            _ => Err(serde::de::Error::custom("a secret or password must be a string")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("seed: {0}")]
    Invalid(String),
    #[error(
        "seed: plaintext credentials ({}) are fit only for local demos; give `secret_sha256` \
         and `password_hash` instead (what tokenctl add-client and add-user write)",
        .0.join(", ")
    )]
    Plaintext(Vec<String>),
    #[error("seed: already in the store, so nothing was written: {}", .0.join(", "))]
    Exists(Vec<String>),
    #[error(
        "seed: {0} was created by another writer during the import; what came before it in the \
         seed was written"
    )]
    Raced(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A TOML error located by line and column, without the source snippet toml's `Display` adds:
/// that line may hold a plaintext password. The parser's message is left out too when the line
/// names a secret, as a message may quote what it found.
fn syntax_error(text: &str, error: &toml::de::Error) -> SeedError {
    let Some(start) = error.span().map(|span| span.start) else {
        return SeedError::Invalid(error.message().to_owned());
    };
    let before = text.get(..start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    let message = if assigns_a_secret(text.lines().nth(line - 1).unwrap_or_default()) {
        "malformed (the line sets a secret or password, so neither it nor the parser's message \
         is shown)"
    } else {
        error.message()
    };
    SeedError::Invalid(format!("line {line}, column {column}: {message}"))
}

/// Whether the line assigns a key beginning with `secret` or `password` (bare or quoted, also
/// inside an inline table). Errs on the side of yes: text in a string value that looks like such
/// an assignment counts too.
fn assigns_a_secret(line: &str) -> bool {
    let line = line.to_ascii_lowercase();
    ["secret", "password"].iter().any(|key| {
        line.match_indices(key).any(|(at, _)| {
            let before = line[..at].trim_end_matches(['"', '\'']);
            let after =
                line[at..].trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
            let after = after.trim_start_matches(['"', '\'']).trim_start();
            (before.is_empty() || before.ends_with([' ', '\t', '{', ',', '.']))
                && after.starts_with('=')
        })
    })
}

impl Seed {
    pub fn load(path: &Path, passwords: &Passwords) -> Result<Self, SeedError> {
        let read_error =
            |reason: String| SeedError::Read { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
        Self::parse(&text, passwords)
    }

    pub fn parse(text: &str, passwords: &Passwords) -> Result<Self, SeedError> {
        let file: SeedFile = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
        let invalid = |msg: String| SeedError::Invalid(msg);
        let tenants: Vec<TenantPath> = file.tenants.into_iter().map(|t| t.path).collect();
        let mut seed = Seed {
            tenants,
            clients: Vec::new(),
            users: Vec::new(),
            demo_credentials: Vec::new(),
            plaintext: Vec::new(),
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
            if client.refresh_reuse_interval.is_some_and(|secs| secs > MAX_REFRESH_REUSE_INTERVAL) {
                return Err(invalid(format!(
                    "client {id}: refresh_reuse_interval must be 0 to \
                     {MAX_REFRESH_REUSE_INTERVAL} seconds"
                )));
            }
            let method = match &client.token_endpoint_auth_method {
                None => AuthMethod::ClientSecretBasic,
                Some(raw) => raw.parse().map_err(|e| {
                    invalid(format!("client {id}: token_endpoint_auth_method: {e}"))
                })?,
            };
            let credentials = if method.uses_secret() {
                if client.jwks.is_some() {
                    return Err(invalid(format!(
                        "client {id}: jwks: only a private_key_jwt client has keys"
                    )));
                }
                let digest = match (client.secret, client.secret_sha256) {
                    (Some(Plaintext(secret)), None) if secret.len() >= MIN_SECRET_LEN => {
                        let digest = ClientSecret::new(secret.clone()).digest();
                        seed.demo_credentials.push((id.clone(), secret));
                        seed.plaintext.push(format!("client {id}"));
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
                Credentials::Secret { method, digest, previous: None }
            } else {
                if client.secret.is_some() || client.secret_sha256.is_some() {
                    return Err(invalid(format!(
                        "client {id}: secret, secret_sha256: a private_key_jwt client has none"
                    )));
                }
                let jwks = client.jwks.ok_or_else(|| {
                    invalid(format!("client {id}: jwks: a private_key_jwt client needs its keys"))
                })?;
                let jwks = jwks_json(jwks)
                    .and_then(|json| ClientJwks::parse(json).map_err(|e| e.to_string()))
                    .map_err(|e| invalid(format!("client {id}: jwks: {e}")))?;
                Credentials::PrivateKeyJwt { jwks }
            };
            seed.clients.push(Client {
                id,
                credentials,
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
                refresh_reuse_interval: client.refresh_reuse_interval.unwrap_or(0),
                dpop_bound_access_tokens: client.dpop_bound_access_tokens.unwrap_or(false),
                enabled: client.enabled.unwrap_or(true),
                version: 0,
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
                (Some(Plaintext(password)), None) => {
                    seed.plaintext
                        .push(format!("user {}", user_name(&user.tenant, &user.username)));
                    passwords.hash(&password).map_err(|e| invalid(e.to_string()))?
                }
                (None, Some(hash)) => hash,
                _ => {
                    return Err(invalid(format!(
                        "user {name}: give one of password, password_hash"
                    )));
                }
            };
            let id = user
                .id
                .unwrap_or_else(|| UserId::derived(user.tenant.as_str(), user.username.as_str()));
            // An id is one user's: batch revocation by subject resolves it to its one tenant.
            if seed.users.iter().any(|other| other.id == id) {
                return Err(invalid(format!("user {name}: id {id} is another user's")));
            }
            seed.users.push(User {
                id,
                tenant: user.tenant,
                username: user.username,
                password_hash,
                enabled: user.enabled.unwrap_or(true),
                // The seed says nothing of when a user began: from the moment it is loaded.
                created_at: SystemClock.now(),
                version: 0,
            });
        }
        Ok(seed)
    }

    /// Writes every client and user to a shared table. Refused as a whole, before anything is
    /// written, when the seed holds plaintext credentials (unless `allow_plaintext`) or when any
    /// client id or username is taken (unless `replace`); the error names every one. Without
    /// `replace` each record is created by a conditional write, so a concurrent writer is never
    /// overwritten either.
    pub async fn import(
        &self,
        tenants: &dyn TenantStore,
        clients: &dyn ClientStore,
        users: &dyn UserStore,
        options: ImportOptions,
    ) -> Result<Imported, SeedError> {
        if !options.allow_plaintext && !self.plaintext.is_empty() {
            return Err(SeedError::Plaintext(self.plaintext.clone()));
        }
        let mut existing = Vec::new();
        for client in &self.clients {
            if clients.client(&client.id).await?.is_some() {
                existing.push(format!("client {}", client.id));
            }
        }
        let mut ids_taken = Vec::new();
        for user in &self.users {
            let stored = users.user(&user.tenant, &user.username).await?;
            let name = user_name(&user.tenant, &user.username);
            // A user id is one user's, `--replace` or not: refused before anything is written.
            let id_is_its_own = stored.as_ref().is_some_and(|stored| stored.id == user.id);
            if !id_is_its_own && users.tenant_of_user(&user.id).await?.is_some() {
                ids_taken.push(format!("user {name}: id {} belongs to another user", user.id));
            }
            if stored.is_some() {
                existing.push(format!("user {name}"));
            }
        }
        if !ids_taken.is_empty() {
            return Err(SeedError::Invalid(ids_taken.join("; ")));
        }
        if !options.replace && !existing.is_empty() {
            return Err(SeedError::Exists(existing));
        }
        self.create_tenants(tenants).await?;
        for client in &self.clients {
            if options.replace {
                clients.put_client(client).await?;
            } else if !clients.create_client(client).await? {
                return Err(SeedError::Raced(format!("client {}", client.id)));
            }
        }
        for user in &self.users {
            if options.replace {
                users.put_user(user).await?;
            } else if !users.create_user(user).await? {
                let name = user_name(&user.tenant, &user.username);
                return Err(SeedError::Raced(format!("user {name}")));
            }
        }
        Ok(Imported {
            clients: self.clients.len(),
            users: self.users.len(),
            replaced: existing.len(),
        })
    }

    /// Fills a fresh store (the local server's memory). Users that already exist are left as
    /// they are.
    pub async fn install(
        &self,
        tenants: &dyn TenantStore,
        clients: &dyn ClientStore,
        users: &dyn UserStore,
    ) -> Result<(), SeedError> {
        self.create_tenants(tenants).await?;
        for client in &self.clients {
            clients.put_client(client).await?;
        }
        for user in &self.users {
            users.create_user(user).await?;
        }
        Ok(())
    }
}

impl Seed {
    /// Creates the listed tenants, parents before children; one that exists is left as it is.
    async fn create_tenants(&self, tenants: &dyn TenantStore) -> Result<(), SeedError> {
        let mut listed: Vec<&TenantPath> = self.tenants.iter().collect();
        listed.sort_by_key(|path| path.as_str().matches('/').count());
        for path in listed {
            tenants.create_tenant(path).await?;
        }
        Ok(())
    }
}

/// A `jwks` field as JSON: an inline table, or a string holding the JSON text.
fn jwks_json(value: toml::Value) -> Result<serde_json::Value, String> {
    match value {
        toml::Value::String(text) => {
            serde_json::from_str(&text).map_err(|e| format!("not a JSON object: {e}"))
        }
        table @ toml::Value::Table(_) => {
            serde_json::to_value(table).map_err(|e| format!("not a key set: {e}"))
        }
        _ => Err("must be a table or a string of JSON".into()),
    }
}

fn user_name(tenant: &TenantPath, username: &Username) -> String {
    format!("{username} in {tenant}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::{HashParams, Verified};
    use crate::store::memory::MemoryStore;

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
        assert!(client.credentials.secret_matches("0123456789abcdef0123456789abcdef", 0));
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

    const KEYS: &str = r#"{"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

    /// The admin plane's client and user settings, each given in the seed.
    #[test]
    fn a_seed_sets_auth_method_keys_reuse_interval_dpop_and_enabled() {
        let jwt_client = format!(
            "[[clients]]\nid = \"signer\"\ntenant = \"/acme\"\n\
             grants = [\"client_credentials\"]\nmax_access_token_lifetime = 60\n\
             token_endpoint_auth_method = \"private_key_jwt\"\njwks = '''{KEYS}'''\n"
        );
        let text = VALID.replace(
            "max_access_token_lifetime = 600",
            "max_access_token_lifetime = 600\ntoken_endpoint_auth_method = \"client_secret_post\"\n\
             refresh_reuse_interval = 60\ndpop_bound_access_tokens = true\nenabled = false",
        )
        .replace("password = \"wonderland\"", "password = \"wonderland\"\nenabled = false");
        let seed = parse(&format!("{text}\n{jwt_client}")).unwrap();
        let (demo, signer) = (&seed.clients[0], &seed.clients[1]);
        assert_eq!(demo.credentials.method(), AuthMethod::ClientSecretPost);
        assert!(demo.credentials.secret_matches("0123456789abcdef0123456789abcdef", 0));
        assert_eq!(demo.refresh_reuse_interval, 60);
        assert!(demo.dpop_bound_access_tokens && !demo.enabled);
        assert!(!seed.users[0].enabled);
        assert_eq!(signer.credentials.method(), AuthMethod::PrivateKeyJwt);
        assert!(signer.enabled && !signer.dpop_bound_access_tokens);
        assert!(!signer.credentials.secret_matches("", 0));

        // The same keys as an inline table.
        let table = jwt_client.replace(
            &format!("jwks = '''{KEYS}'''"),
            "jwks = { keys = [{ kty = \"EC\", crv = \"P-256\", kid = \"k1\", alg = \"ES256\", \
             x = \"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\", \
             y = \"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\" }] }",
        );
        let seed = parse(&format!("{VALID}\n{table}")).unwrap();
        assert_eq!(seed.clients[1].credentials, signer.credentials);
    }

    #[test]
    fn a_bad_admin_setting_is_refused_naming_its_field() {
        let signer = format!(
            "{VALID}\n[[clients]]\nid = \"signer\"\ntenant = \"/acme\"\n\
             grants = [\"client_credentials\"]\nmax_access_token_lifetime = 60\n"
        );
        let jwt = "token_endpoint_auth_method = \"private_key_jwt\"\n";
        let keys = format!("jwks = '''{KEYS}'''\n");
        let secret = "secret_sha256 = \"OSP7g0jfd1KbBPb1NrggSFbQUB0DEGPeeVxXrWk7KI8\"\n";
        let cases = [
            (
                format!("{signer}token_endpoint_auth_method = \"tls\"\n{secret}"),
                "token_endpoint_auth_method",
            ),
            (format!("{signer}{jwt}"), "jwks"),
            (format!("{signer}{jwt}jwks = '''{{\"keys\": []}}'''\n"), "jwks"),
            (format!("{signer}{jwt}jwks = 3\n"), "jwks"),
            (format!("{signer}{jwt}{keys}{secret}"), "secret"),
            (format!("{signer}{keys}{secret}"), "jwks"),
            (format!("{signer}{secret}refresh_reuse_interval = 61\n"), "refresh_reuse_interval"),
        ];
        for (case, field) in cases {
            let error = parse(&case).expect_err("refused").to_string();
            assert!(error.contains(field), "{field}: {error}");
        }
    }

    /// The listed tenants exist once a seed is installed or imported (parents first), and
    /// tenants that exist already are no error.
    #[tokio::test]
    async fn installing_or_importing_a_seed_creates_its_tenants() {
        use crate::store::{PageRequest, TenantStore};
        let text = format!("[[tenants]]\npath = \"/acme/sales\"\n{VALID}");
        let seed = parse(&text).unwrap();
        async fn listed(store: &MemoryStore) -> Vec<String> {
            let acme = TenantPath::parse("/acme").unwrap();
            let page = store.tenants(&acme, PageRequest { limit: 10, after: None }).await.unwrap();
            page.items.iter().map(ToString::to_string).collect()
        }
        let installed = MemoryStore::new();
        seed.install(&installed, &installed, &installed).await.unwrap();
        seed.install(&installed, &installed, &installed).await.unwrap();
        assert_eq!(listed(&installed).await, ["/acme", "/acme/sales"]);

        let imported = MemoryStore::new();
        imported.create_tenant(&TenantPath::parse("/acme").unwrap()).await.unwrap();
        seed.import(&imported, &imported, &imported, options(false, true)).await.unwrap();
        assert_eq!(listed(&imported).await, ["/acme", "/acme/sales"]);
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
            // Two users, of two tenants, given one id.
            format!(
                "{}\n[[tenants]]\npath = \"/other\"\n[[users]]\nid = \"AAAAAAAAAAAAAAAAAAAAAA\"\n\
                 tenant = \"/other\"\nusername = \"mallory\"\npassword = \"x\"",
                VALID.replace(
                    "username = \"alice\"",
                    "id = \"AAAAAAAAAAAAAAAAAAAAAA\"\nusername = \"alice\""
                ),
            ),
        ];
        for case in cases {
            assert!(parse(&case).is_err(), "{case}");
        }
    }

    #[test]
    fn a_malformed_line_is_located_but_a_secret_on_it_is_never_shown() {
        let cases = [
            (VALID.replace("password = \"wonderland\"", "password = \"wonderland"), 14),
            (VALID.replace("password = \"wonderland\"", "password = \"wonderland\" x"), 14),
            (VALID.replace("password = \"wonderland\"", "password = 19283746"), 14),
            (VALID.replace("password = \"wonderland\"", "\"password\" = [\"wonderland\"]"), 14),
            (VALID.replace("password = \"wonderland\"", "password = \"wonder\\qland\""), 14),
            (VALID.replace("secret = \"0123456789abcdef", "secret = \"0123456789abcdef\\q"), 6),
            (
                VALID.replace(
                    "[[users]]\n        tenant = \"/acme\"\n        username = \"alice\"\n        \
                     password = \"wonderland\"",
                    "users = [{ tenant = \"/acme\", username = \"alice\", password = 19283746 }]",
                ),
                11,
            ),
        ];
        for (case, line) in cases {
            let error = parse(&case).expect_err("refused").to_string();
            for secret in ["wonderland", "wonder", "19283746", "0123456789abcdef"] {
                assert!(!error.contains(secret), "{error}");
            }
            assert!(error.contains(&format!("line {line}, column ")), "{error}");
        }
    }

    #[test]
    fn other_syntax_errors_keep_their_message() {
        let case =
            VALID.replace("max_access_token_lifetime = 600", "max_access_token_lifetime = x");
        let error = parse(&case).expect_err("refused").to_string();
        assert!(error.starts_with("seed: line 10, column 37: "), "{error}");
        assert!(!error.contains("not shown"), "{error}");
        assert!(!error.contains('|'), "no source snippet: {error}");
    }

    #[test]
    fn debug_never_shows_a_secret_a_password_or_its_hash() {
        let seed = parse(VALID).unwrap();
        let debug = format!("{seed:?}");
        assert!(debug.contains("demo") && debug.contains("alice"), "{debug}");
        for secret in ["0123456789abcdef", "wonderland", "$argon2id$"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }

    fn options(replace: bool, allow_plaintext: bool) -> ImportOptions {
        ImportOptions { replace, allow_plaintext }
    }

    #[tokio::test]
    async fn importing_plaintext_credentials_is_refused_unless_allowed() {
        let store = MemoryStore::new();
        let seed = parse(VALID).unwrap();
        let Err(error) = seed.import(&store, &store, &store, options(false, false)).await else {
            panic!("imported a demo seed");
        };
        let message = error.to_string();
        assert!(message.contains("client demo") && message.contains("user alice in /acme"));
        assert!(store.client(&seed.clients[0].id).await.unwrap().is_none(), "nothing written");

        let imported = seed.import(&store, &store, &store, options(false, true)).await.unwrap();
        assert_eq!(imported, Imported { clients: 1, users: 1, replaced: 0 });
    }

    #[tokio::test]
    async fn importing_over_existing_records_is_refused_as_a_whole_unless_replacing() {
        let store = MemoryStore::new();
        let seed = parse(&format!(
            "{VALID}\n[[clients]]\nid = \"second\"\nsecret = \"{}\"\ntenant = \"/acme\"\n\
             grants = [\"client_credentials\"]\nmax_access_token_lifetime = 60\n",
            "s".repeat(40)
        ))
        .unwrap();
        let mut existing = seed.clients[1].clone();
        existing.max_access_token_lifetime = 5;
        store.put_client(&existing).await.unwrap();
        let mut alice = seed.users[0].clone();
        alice.password_hash = "old".into();
        store.create_user(&alice).await.unwrap();

        let Err(error) = seed.import(&store, &store, &store, options(false, true)).await else {
            panic!("overwrote existing records");
        };
        assert!(matches!(&error, SeedError::Exists(names) if names.len() == 2), "{error}");
        assert!(error.to_string().contains("client second") && error.to_string().contains("alice"));
        assert!(store.client(&seed.clients[0].id).await.unwrap().is_none(), "nothing written");
        assert_eq!(store.client(&existing.id).await.unwrap(), Some(existing));

        let imported = seed.import(&store, &store, &store, options(true, true)).await.unwrap();
        assert_eq!(imported, Imported { clients: 2, users: 1, replaced: 2 });
        // Replacing an existing record stores it as that record's next version.
        let replaced = Client { version: 1, ..seed.clients[1].clone() };
        assert_eq!(store.client(&seed.clients[1].id).await.unwrap(), Some(replaced));
        let stored = store.user(&alice.tenant, &alice.username).await.unwrap().unwrap();
        assert_eq!(stored.password_hash, seed.users[0].password_hash);
    }

    /// A seed user given an id another user holds is refused before anything is written,
    /// `--replace` or not: one id, one user (the `sub` of its tokens).
    #[tokio::test]
    async fn importing_a_user_with_another_users_id_writes_nothing() {
        let store = MemoryStore::new();
        let seed = parse(&VALID.replace(
            "username = \"alice\"",
            "id = \"AAAAAAAAAAAAAAAAAAAAAA\"\nusername = \"alice\"",
        ))
        .unwrap();
        let mut holder = seed.users[0].clone();
        holder.username = Username::parse("bob").unwrap();
        store.create_user(&holder).await.unwrap();
        for replace in [false, true] {
            let Err(error) = seed.import(&store, &store, &store, options(replace, true)).await
            else {
                panic!("imported a user with bob's id (replace: {replace})");
            };
            assert!(error.to_string().contains("belongs to another user"), "{error}");
            assert!(store.client(&seed.clients[0].id).await.unwrap().is_none(), "nothing written");
            let alice = store.user(&seed.users[0].tenant, &seed.users[0].username).await.unwrap();
            assert_eq!(alice, None);
        }
    }
}
