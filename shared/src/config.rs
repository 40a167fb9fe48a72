//! Configuration, read once per process from the environment.

use std::path::PathBuf;

use crate::authorizer::RouteScopes;
use crate::domain::{LoginDefenceSettings, ScopeSet};
use crate::keys::SigningAlgorithm;
use crate::password::HashParams;
use crate::store::CutoffReadCopies;
use crate::store::dynamodb::IssuanceShards;
use crate::token_cache::TokenCacheLimits;

pub const DEFAULT_AUDIENCE: &str = "api";
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: u64 = 3600;
pub const DEFAULT_CLIENT_CACHE_TTL: u64 = 30;

#[derive(Clone, Debug)]
pub struct Config {
    /// `ISSUER`: the exact `iss` of every token and the base of every endpoint URL.
    pub issuer: String,
    /// `AUDIENCE`: the `aud` of every token (default `api`).
    pub audience: String,
    /// `SIGNING_ALG`: `ES256` (default), `RS256` or `EdDSA`.
    pub signing_alg: SigningAlgorithm,
    /// `ACCESS_TOKEN_LIFETIME`: seconds, when the request does not ask (default 3600); always
    /// lowered to the client's maximum.
    pub default_access_token_lifetime: u64,
    /// `SIGNING_KEYS_PARAMETER`: an SSM Parameter Store SecureString holding the private key
    /// set document (production). Read by the token function only. Takes precedence over the
    /// file.
    pub signing_keys_parameter: Option<String>,
    /// `SIGNING_KEYS_FILE`: a private key set document (see `keys::KeySetDocument`), for local
    /// runs of the token function.
    pub signing_keys_file: Option<PathBuf>,
    /// `PUBLIC_KEYS_PARAMETER`: an SSM String parameter holding the public key set document
    /// (`keys::PublicKeySetDocument`), what every function that only verifies loads. Takes
    /// precedence over the file.
    pub public_keys_parameter: Option<String>,
    /// `PUBLIC_KEYS_FILE`: a public key set document, for local runs of the verifying functions.
    pub public_keys_file: Option<PathBuf>,
    /// `SEED_FILE`: clients and tenants for the in-memory store.
    pub seed_file: Option<PathBuf>,
    /// `TABLE_NAME`: the DynamoDB table. When set it is the store; otherwise the store is in
    /// memory, filled from `SEED_FILE`. The endpoint comes from the standard AWS variables.
    pub table_name: Option<String>,
    /// `CLIENT_CACHE_TTL`: seconds a warm instance reuses a client record before reading it
    /// again (default 30; 0 turns the cache off). The bound on how stale a client can be.
    pub client_cache_ttl: u64,
    /// `AUTHORIZER_ROUTE_SCOPES`: JSON object from API Gateway route key to the space-separated
    /// scopes that route requires, e.g. `{"GET /orders": "orders:read", "$default": ""}`.
    pub route_scopes: RouteScopes,
    /// `ARGON2_MEMORY_KIB`, `ARGON2_ITERATIONS`, `ARGON2_PARALLELISM`: parameters of new password
    /// hashes (default OWASP's 19456, 2, 1).
    pub password_hash: HashParams,
    /// `PASSWORD_QUEUE_LIMIT`: password logins that may wait for a hashing slot; one more is
    /// answered `503 temporarily_unavailable` at once (default 32 per core:
    /// `HashingLimits::QUEUE_PER_SLOT`).
    pub password_queue_limit: Option<usize>,
    /// `LOGIN_SOURCE_THRESHOLD` (5), `LOGIN_USERNAME_THRESHOLD` (20), `LOGIN_FIRST_WAIT` (1 s)
    /// and `LOGIN_MAX_WAIT` (900 s): when failed password logins start to wait, and how long.
    pub login_defence: LoginDefenceSettings,
    /// `TOKEN_CACHE_ENTRIES` (10000; 0 turns it off) and `TOKEN_CACHE_MIB` (8): the bounds of a
    /// warm instance's cache of verified access tokens.
    pub token_cache: TokenCacheLimits,
    /// `ISSUANCE_INDEX_SHARDS`: how many partitions the issuance indexes spread one root tenant
    /// and one client over (default 32, 1 to 128); each takes about 1,000 issued tokens a second.
    /// Counts read at least 8 (docs/performance.md#scaling-past-one-partition).
    pub issuance_index_shards: IssuanceShards,
    /// `CUTOFF_READ_COPIES`: how many of each cutoff's copies verifications choose among (default
    /// all 16). Fewer while a table from before copies, or with fewer, is upgraded, as
    /// docs/deployment.md says.
    pub cutoff_read_copies: CutoffReadCopies,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration variable {name}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let error = |name, reason: &str| ConfigError { name, reason: reason.to_owned() };
        let issuer = lookup("ISSUER").ok_or_else(|| error("ISSUER", "is required"))?;
        if !(issuer.starts_with("https://") || issuer.starts_with("http://"))
            || issuer.ends_with('/')
        {
            return Err(error("ISSUER", "must be an http(s) URL without a trailing slash"));
        }
        let signing_alg = match lookup("SIGNING_ALG") {
            Some(raw) => raw.parse().map_err(|e| error("SIGNING_ALG", &format!("{e}")))?,
            None => SigningAlgorithm::ES256,
        };
        let default_access_token_lifetime = match lookup("ACCESS_TOKEN_LIFETIME") {
            Some(raw) => raw
                .parse()
                .ok()
                .filter(|secs| *secs > 0)
                .ok_or_else(|| error("ACCESS_TOKEN_LIFETIME", "must be a positive integer"))?,
            None => DEFAULT_ACCESS_TOKEN_LIFETIME,
        };
        let client_cache_ttl = client_cache_ttl(&lookup)?;
        let route_scopes = match lookup("AUTHORIZER_ROUTE_SCOPES") {
            None => RouteScopes::new(),
            Some(raw) => {
                let invalid =
                    || error("AUTHORIZER_ROUTE_SCOPES", "must map route keys to scope strings");
                let map: std::collections::BTreeMap<String, String> =
                    serde_json::from_str(&raw).map_err(|_| invalid())?;
                map.into_iter()
                    .map(|(route, scopes)| {
                        let scopes = if scopes.is_empty() {
                            Ok(ScopeSet::default())
                        } else {
                            ScopeSet::parse(&scopes)
                        };
                        scopes.map(|scopes| (route, scopes)).map_err(|_| invalid())
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        let issuance_index_shards = issuance_index_shards(&lookup)?;
        let cutoff_read_copies = cutoff_read_copies(&lookup)?;
        Ok(Self {
            cutoff_read_copies,
            token_cache: token_cache_limits(&lookup)?,
            issuance_index_shards,
            login_defence: login_defence_settings(&lookup)?,
            route_scopes,
            client_cache_ttl,
            password_hash: password_hash_params(&lookup)?,
            password_queue_limit: lookup("PASSWORD_QUEUE_LIMIT")
                .map(|raw| {
                    raw.parse().map_err(|_| error("PASSWORD_QUEUE_LIMIT", "must be a whole number"))
                })
                .transpose()?,
            issuer,
            audience: lookup("AUDIENCE").unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
            signing_alg,
            default_access_token_lifetime,
            signing_keys_parameter: lookup("SIGNING_KEYS_PARAMETER")
                .filter(|name| !name.is_empty()),
            signing_keys_file: lookup("SIGNING_KEYS_FILE").map(PathBuf::from),
            public_keys_parameter: lookup("PUBLIC_KEYS_PARAMETER").filter(|name| !name.is_empty()),
            public_keys_file: lookup("PUBLIC_KEYS_FILE").map(PathBuf::from),
            seed_file: lookup("SEED_FILE").map(PathBuf::from),
            table_name: lookup("TABLE_NAME").filter(|name| !name.is_empty()),
        })
    }
}

/// The login defence's thresholds and waits, each within a range that keeps the defence a
/// defence: a threshold of 1 to 1000 failures, a first wait of 1 s to an hour, a cap from the
/// first wait to a day.
pub fn login_defence_settings(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<LoginDefenceSettings, ConfigError> {
    let defaults = LoginDefenceSettings::default();
    let number =
        |name: &'static str, default: u64, range: std::ops::RangeInclusive<u64>| match lookup(name)
        {
            None => Ok(default),
            Some(raw) => {
                raw.parse::<u64>().ok().filter(|n| range.contains(n)).ok_or_else(|| ConfigError {
                    name,
                    reason: format!(
                        "must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                })
            }
        };
    let first_wait = number("LOGIN_FIRST_WAIT", defaults.first_wait, 1..=3600)?;
    Ok(LoginDefenceSettings {
        source_threshold: number("LOGIN_SOURCE_THRESHOLD", defaults.source_threshold, 1..=1000)?,
        username_threshold: number(
            "LOGIN_USERNAME_THRESHOLD",
            defaults.username_threshold,
            1..=1000,
        )?,
        first_wait,
        max_wait: number("LOGIN_MAX_WAIT", defaults.max_wait.max(first_wait), first_wait..=86_400)?,
    })
}

/// The verified-token cache's bounds: up to a million entries, 1 to 64 MiB (a quarter of a
/// 256 MB function).
fn token_cache_limits(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<TokenCacheLimits, ConfigError> {
    let defaults = TokenCacheLimits::default();
    let number = |name: &'static str, default: usize, range: std::ops::RangeInclusive<usize>| {
        lookup(name).map_or(Ok(default), |raw| {
            raw.parse::<usize>().ok().filter(|n| range.contains(n)).ok_or_else(|| ConfigError {
                name,
                reason: format!("must be a whole number from {} to {}", range.start(), range.end()),
            })
        })
    };
    Ok(TokenCacheLimits {
        entries: number("TOKEN_CACHE_ENTRIES", defaults.entries, 0..=1_000_000)?,
        bytes: number("TOKEN_CACHE_MIB", defaults.bytes >> 20, 1..=64)? << 20,
    })
}

/// `ISSUANCE_INDEX_SHARDS`, which `tokenctl` reads too: a tool that writes or counts log entries
/// must use the shards the stack's functions use.
pub fn issuance_index_shards(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<IssuanceShards, ConfigError> {
    match lookup("ISSUANCE_INDEX_SHARDS") {
        Some(raw) => raw.parse().ok().and_then(IssuanceShards::new).ok_or_else(|| ConfigError {
            name: "ISSUANCE_INDEX_SHARDS",
            reason: format!("must be a whole number from 1 to {}", IssuanceShards::MAX),
        }),
        None => Ok(IssuanceShards::DEFAULT),
    }
}

/// `CUTOFF_READ_COPIES`, which `tokenctl` reads too.
pub fn cutoff_read_copies(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<CutoffReadCopies, ConfigError> {
    match lookup("CUTOFF_READ_COPIES") {
        Some(raw) => raw.parse().ok().and_then(CutoffReadCopies::new).ok_or_else(|| ConfigError {
            name: "CUTOFF_READ_COPIES",
            reason: format!("must be a whole number from 1 to {}", CutoffReadCopies::ALL.get()),
        }),
        None => Ok(CutoffReadCopies::ALL),
    }
}

/// `CLIENT_CACHE_TTL`, which the admin plane reads too: how long a disabled client's tokens
/// may yet be issued by a process trusting its cached record.
pub fn client_cache_ttl(lookup: &impl Fn(&str) -> Option<String>) -> Result<u64, ConfigError> {
    match lookup("CLIENT_CACHE_TTL") {
        Some(raw) => raw.parse().map_err(|_| ConfigError {
            name: "CLIENT_CACHE_TTL",
            reason: "must be a whole number".into(),
        }),
        None => Ok(DEFAULT_CLIENT_CACHE_TTL),
    }
}

/// The Argon2id parameters for new password hashes, from `ARGON2_MEMORY_KIB`,
/// `ARGON2_ITERATIONS` and `ARGON2_PARALLELISM` (OWASP's by default).
pub fn password_hash_params(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<HashParams, ConfigError> {
    let number = |name: &'static str, default: u32| match lookup(name) {
        None => Ok(default),
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError { name, reason: "must be a positive integer".into() }),
    };
    Ok(HashParams {
        memory_kib: number("ARGON2_MEMORY_KIB", HashParams::OWASP.memory_kib)?,
        iterations: number("ARGON2_ITERATIONS", HashParams::OWASP.iterations)?,
        parallelism: number("ARGON2_PARALLELISM", HashParams::OWASP.parallelism)?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_only_the_issuer_is_set() {
        let config = config(&[("ISSUER", "https://auth.example.com")]).unwrap();
        assert_eq!(config.audience, DEFAULT_AUDIENCE);
        assert_eq!(config.signing_alg, SigningAlgorithm::ES256);
        assert_eq!(config.default_access_token_lifetime, 3600);
        assert_eq!(config.password_queue_limit, None, "the default depends on the cores");
        let no_queue = [("ISSUER", "https://x"), ("PASSWORD_QUEUE_LIMIT", "0")];
        assert_eq!(self::config(&no_queue).unwrap().password_queue_limit, Some(0));
        assert_eq!(config.token_cache, TokenCacheLimits { entries: 10_000, bytes: 8 << 20 });
        let cache =
            [("ISSUER", "https://x"), ("TOKEN_CACHE_ENTRIES", "0"), ("TOKEN_CACHE_MIB", "2")];
        let cache = self::config(&cache).unwrap().token_cache;
        assert_eq!(cache, TokenCacheLimits { entries: 0, bytes: 2 << 20 });
    }

    #[test]
    fn bad_values_name_the_variable() {
        assert_eq!(config(&[]).unwrap_err().name, "ISSUER");
        assert_eq!(config(&[("ISSUER", "https://x/")]).unwrap_err().name, "ISSUER");
        let bad_alg = config(&[("ISSUER", "https://x"), ("SIGNING_ALG", "HS256")]);
        assert_eq!(bad_alg.unwrap_err().name, "SIGNING_ALG");
        let bad_lifetime = config(&[("ISSUER", "https://x"), ("ACCESS_TOKEN_LIFETIME", "0")]);
        assert_eq!(bad_lifetime.unwrap_err().name, "ACCESS_TOKEN_LIFETIME");
        let bad_queue = config(&[("ISSUER", "https://x"), ("PASSWORD_QUEUE_LIMIT", "-1")]);
        assert_eq!(bad_queue.unwrap_err().name, "PASSWORD_QUEUE_LIMIT");
        for (name, value) in [
            ("LOGIN_SOURCE_THRESHOLD", "0"),
            ("LOGIN_USERNAME_THRESHOLD", "x"),
            ("LOGIN_FIRST_WAIT", "0"),
            ("LOGIN_MAX_WAIT", "86401"),
            ("TOKEN_CACHE_ENTRIES", "1000001"),
            ("TOKEN_CACHE_MIB", "0"),
            ("TOKEN_CACHE_MIB", "65"),
            ("CUTOFF_READ_COPIES", "0"),
            ("CUTOFF_READ_COPIES", "17"),
        ] {
            let bad = config(&[("ISSUER", "https://x"), (name, value)]);
            assert_eq!(bad.unwrap_err().name, name);
        }
        let cap_below_first = config(&[
            ("ISSUER", "https://x"),
            ("LOGIN_FIRST_WAIT", "60"),
            ("LOGIN_MAX_WAIT", "30"),
        ]);
        assert_eq!(cap_below_first.unwrap_err().name, "LOGIN_MAX_WAIT");
        let bad_routes =
            config(&[("ISSUER", "https://x"), ("AUTHORIZER_ROUTE_SCOPES", r#"{"GET /a": 1}"#)]);
        assert_eq!(bad_routes.unwrap_err().name, "AUTHORIZER_ROUTE_SCOPES");
    }

    #[test]
    fn issuance_index_shards_default_to_thirty_two_and_stay_within_range() {
        let default = config(&[("ISSUER", "https://x")]).unwrap();
        assert_eq!(default.issuance_index_shards, IssuanceShards::DEFAULT);
        assert_eq!(default.issuance_index_shards.get(), 32);
        let set = config(&[("ISSUER", "https://x"), ("ISSUANCE_INDEX_SHARDS", "8")]).unwrap();
        assert_eq!(set.issuance_index_shards.get(), 8);
        for bad in ["0", "129", "-1", "eight", ""] {
            let refused = config(&[("ISSUER", "https://x"), ("ISSUANCE_INDEX_SHARDS", bad)]);
            assert_eq!(refused.unwrap_err().name, "ISSUANCE_INDEX_SHARDS", "{bad:?}");
        }
    }

    #[test]
    fn route_scopes_parse_from_json() {
        let vars = [
            ("ISSUER", "https://x"),
            ("AUTHORIZER_ROUTE_SCOPES", r#"{"GET /orders": "orders:read read", "$default": ""}"#),
        ];
        let config = config(&vars).unwrap();
        assert_eq!(config.route_scopes["GET /orders"].to_string(), "orders:read read");
        assert!(config.route_scopes["$default"].is_empty());
    }
}
