//! Start-up wiring shared by the Lambda functions and the local server: everything here runs
//! once per process, before the first request.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;

use crate::admin::AdminService;
use crate::api::{Discovery, Router};
use crate::auth::Authenticator;
use crate::authorizer::Authorizer;
use crate::batch::BatchRevocation;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::introspection::IntrospectionService;
use crate::jwt::{AccessTokens, TokenSigner};
use crate::key_parameters;
use crate::keys::{
    KeyError, KeySet, KeySetDocument, PublicKeySetDocument, SigningAlgorithm, VerificationKeys,
};
use crate::password::{HashingLimits, Passwords};
use crate::revocation::RevocationService;
use crate::seed::{Seed, SeedError};
use crate::store::cache::CachedClients;
use crate::store::dynamodb::DynamoStore;
use crate::store::memory::MemoryStore;
use crate::store::{ClientStore, Stores};
use crate::token::TokenService;
use crate::verify::{TokenState, Verifier};

#[derive(thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Seed(#[from] SeedError),
    #[error("{0} is required")]
    Missing(&'static str),
    #[error(
        "SIGNING_ALG is {configured} but the current signing key {kid} in {keys} is {current}: \
         set SIGNING_ALG (template parameter SigningAlg) to {current}, or stage and promote a \
         {configured} key (`tokenctl keys stage --alg {configured}`, then `tokenctl keys promote`)"
    )]
    AlgorithmMismatch {
        configured: SigningAlgorithm,
        current: SigningAlgorithm,
        kid: String,
        keys: String,
    },
}

/// A failed init ends the process through `main`'s `Err`, which Rust prints with `Debug`: that
/// is the line an operator finds in the function's logs, so it is the message, which names the
/// setting and the fix, rather than the variant's fields.
impl std::fmt::Debug for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Loads the private signing keys once, at init, for the one function that signs (the token
/// function): from the SSM SecureString `SIGNING_KEYS_PARAMETER` (one call, decrypted), or else
/// from `SIGNING_KEYS_FILE`. Never generates: a deployed function without its keys must fail at
/// init, not sign with a throwaway key.
pub async fn signing_keys(config: &Config) -> Result<KeySet, SetupError> {
    let (document, origin) = match (&config.signing_keys_parameter, &config.signing_keys_file) {
        (Some(name), _) => {
            let ssm = aws_sdk_ssm::Client::new(&aws_config().await);
            let stored = key_parameters::read_private(&ssm, name).await?.ok_or_else(|| {
                KeyError::Parameter {
                    name: name.clone(),
                    reason: "not found: create it with `tokenctl keys init`".into(),
                }
            })?;
            (stored.document, format!("SSM parameter {name}"))
        }
        (None, Some(path)) => {
            let document = KeySetDocument::read_file(path)?.ok_or_else(|| KeyError::Io {
                path: path.display().to_string(),
                source: std::io::ErrorKind::NotFound.into(),
            })?;
            (document, format!("key file {}", path.display()))
        }
        (None, None) => {
            return Err(SetupError::Missing("SIGNING_KEYS_PARAMETER or SIGNING_KEYS_FILE"));
        }
    };
    let keys = KeySet::from_document(&document)?;
    check_algorithm(&document, config.signing_alg, origin)?;
    Ok(keys)
}

/// Loads the public keys once, at init, for a function that only verifies (introspection,
/// revocation, batch revocation, the authorizer, the JWKS): from the SSM String parameter
/// `PUBLIC_KEYS_PARAMETER`, or else from `PUBLIC_KEYS_FILE`. Never the private key set: a
/// document holding a private key is refused.
///
/// `SIGNING_ALG` is not checked here: a verifier trusts each key's own algorithm, so a mismatch
/// cannot make it accept anything, and failing its init would take down every API behind the
/// authorizer for a mistake only the token function acts on (and refuses at its own init).
pub async fn verification_keys(config: &Config) -> Result<VerificationKeys, SetupError> {
    let (document, origin) = match (&config.public_keys_parameter, &config.public_keys_file) {
        (Some(name), _) => {
            let ssm = aws_sdk_ssm::Client::new(&aws_config().await);
            let document = key_parameters::read_public(&ssm, name).await?.ok_or_else(|| {
                KeyError::Parameter {
                    name: name.clone(),
                    reason: "not found: `tokenctl keys init` (or `tokenctl keys publish`, for \
                             a key set made before the public one existed) writes it"
                        .into(),
                }
            })?;
            (document, format!("SSM parameter {name}"))
        }
        (None, Some(path)) => {
            let origin = format!("public key file {}", path.display());
            let bytes = std::fs::read(path)
                .map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
            (PublicKeySetDocument::parse(&bytes, &origin)?, origin)
        }
        (None, None) => {
            return Err(SetupError::Missing("PUBLIC_KEYS_PARAMETER or PUBLIC_KEYS_FILE"));
        }
    };
    Ok(VerificationKeys::from_public_document(&document, &origin)?)
}

/// `SIGNING_ALG` (the template's `SigningAlg`) says what the deployment signs with; keys from
/// SSM or a file are never rotated at init, so a key set that signs with something else is a
/// misconfiguration, refused before it issues a single token. A staged key of `SIGNING_ALG` is
/// a rotation to it under way (the runbook sets `SigningAlg` with the deploy after `keys stage`),
/// and is accepted: otherwise every cold start between `keys promote` and the next deploy would
/// fail.
fn check_algorithm(
    document: &KeySetDocument,
    configured: SigningAlgorithm,
    origin: String,
) -> Result<(), SetupError> {
    let Some(current) = document.keys.iter().find(|key| key.kid == document.current) else {
        return Ok(()); // KeySet::from_document refuses this document already.
    };
    let rotating_to_configured = document.keys.iter().any(|key| {
        key.kid != document.current && key.retired_at.is_none() && key.alg == configured
    });
    if current.alg == configured || rotating_to_configured {
        return Ok(());
    }
    Err(SetupError::AlgorithmMismatch {
        configured,
        current: current.alg,
        kid: current.kid.clone(),
        keys: origin,
    })
}

/// The seed file named by `SEED_FILE`.
pub fn seed_from_config(config: &Config) -> Result<Seed, SetupError> {
    let path = config.seed_file.as_deref().ok_or(SetupError::Missing("SEED_FILE"))?;
    Ok(Seed::load(path, &Passwords::new(config.password_hash))?)
}

/// Timeouts that keep a stalled DynamoDB from stalling a request: each attempt, and the whole
/// operation with its retries. Past them the request answers 503.
const DYNAMODB_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1500);
const DYNAMODB_OPERATION_TIMEOUT: Duration = Duration::from_secs(4);
const DYNAMODB_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The SDK configuration from the standard AWS variables (region, credentials,
/// `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_MAX_ATTEMPTS`). Loading it makes no
/// network call; credentials are fetched on first use.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config_with_timeouts(DYNAMODB_ATTEMPT_TIMEOUT, DYNAMODB_OPERATION_TIMEOUT).await
}

/// For an operator's command (`tokenctl keys`): waits for a slow answer rather than retry a
/// write that may have landed already.
pub async fn admin_aws_config() -> aws_config::SdkConfig {
    aws_config_with_timeouts(Duration::from_secs(10), Duration::from_secs(30)).await
}

/// The same configuration with other timeouts (tests on a loaded machine use longer ones).
pub async fn aws_config_with_timeouts(
    attempt: Duration,
    operation: Duration,
) -> aws_config::SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(DYNAMODB_CONNECT_TIMEOUT)
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build();
    aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts).load().await
}

/// The store named by the configuration: the DynamoDB table `TABLE_NAME`, or else an in-memory
/// store filled from `SEED_FILE`.
pub async fn stores(config: &Config) -> Result<Stores, SetupError> {
    match &config.table_name {
        Some(table) => {
            let client = aws_sdk_dynamodb::Client::new(&aws_config().await);
            let store = DynamoStore::new(client, table.clone())
                .with_issuance_shards(config.issuance_index_shards)
                .with_cutoff_read_copies(config.cutoff_read_copies);
            Ok(Stores::all(Arc::new(store)))
        }
        None => memory_stores(&seed_from_config(config)?).await,
    }
}

/// An in-memory store holding the seed's clients and users.
pub async fn memory_stores(seed: &Seed) -> Result<Stores, SetupError> {
    let store = Arc::new(MemoryStore::new());
    seed.install(store.as_ref(), store.as_ref(), store.as_ref()).await?;
    Ok(Stores::all(store))
}

/// Everything a process needs to build its verifying services, assembled once at start-up:
/// public keys only. The token service needs the private keys too: [`SigningWiring`].
pub struct Wiring {
    pub config: Config,
    pub keys: VerificationKeys,
    pub stores: Stores,
    pub clock: Arc<dyn Clock>,
    /// The client store without the cache, for the admin plane: a change is made to what is
    /// stored, never to a copy up to `CLIENT_CACHE_TTL` old.
    uncached_clients: Arc<dyn ClientStore>,
    /// Built once, so every service of the process shares one cache of verified tokens.
    access_tokens: AccessTokens,
}

impl Wiring {
    /// Client records are cached for `CLIENT_CACHE_TTL` in front of the given stores.
    pub fn new(
        config: Config,
        keys: VerificationKeys,
        mut stores: Stores,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let uncached_clients = stores.clients.clone();
        if config.client_cache_ttl > 0 {
            stores.clients = Arc::new(CachedClients::new(
                stores.clients,
                clock.clone(),
                config.client_cache_ttl,
            ));
        }
        let access_tokens =
            AccessTokens::new(keys.clone(), config.issuer.clone(), config.audience.clone())
                .with_cache_limits(config.token_cache);
        Self { config, keys, stores, clock, uncached_clients, access_tokens }
    }

    pub fn with_system_clock(config: Config, keys: VerificationKeys, stores: Stores) -> Self {
        Self::new(config, keys, stores, Arc::new(SystemClock))
    }

    /// A verifying Lambda function's start-up: configuration from the environment, the public
    /// keys (from SSM or a file), and the store (DynamoDB, or memory from a seed). Builds SDK
    /// clients; the only network call is the one SSM read of the public keys.
    pub async fn from_env() -> Result<Self, SetupError> {
        let config = Config::from_env()?;
        let keys = verification_keys(&config).await?;
        let stores = stores(&config).await?;
        Ok(Self::with_system_clock(config, keys, stores))
    }

    fn authenticator(&self) -> Authenticator {
        Authenticator::new(
            self.stores.clients.clone(),
            self.stores.replays.clone(),
            self.clock.clone(),
            self.config.issuer.clone(),
        )
    }

    pub fn verifier(&self) -> Verifier {
        Verifier::new(
            self.access_tokens.clone(),
            self.stores.revocations.clone(),
            self.stores.replays.clone(),
            self.clock.clone(),
        )
    }

    fn token_state(&self) -> TokenState {
        TokenState {
            verifier: self.verifier(),
            grants: self.stores.grants.clone(),
            revocations: self.stores.revocations.clone(),
            clock: self.clock.clone(),
        }
    }

    pub fn revocation_service(&self) -> RevocationService {
        RevocationService::new(self.authenticator(), self.token_state())
    }

    pub fn introspection_service(&self) -> IntrospectionService {
        IntrospectionService::new(self.authenticator(), self.token_state())
    }

    pub fn batch_revocation(&self) -> BatchRevocation {
        BatchRevocation::new(self.verifier(), self.stores.clone(), self.clock.clone())
    }

    pub fn authorizer(&self) -> Authorizer {
        Authorizer::new(self.verifier(), self.config.route_scopes.clone())
    }

    /// The admin function's service, over the stored client records themselves. It knows how
    /// long token processes may trust a cached client (`CLIENT_CACHE_TTL`, the same setting).
    pub fn admin_service(&self) -> AdminService {
        let stores = Stores { clients: self.uncached_clients.clone(), ..self.stores.clone() };
        self.admin_service_over(stores)
    }

    fn admin_service_over(&self, stores: Stores) -> AdminService {
        AdminService::new(
            self.verifier(),
            stores,
            Passwords::new(self.config.password_hash),
            self.clock.clone(),
            self.config.client_cache_ttl,
            self.config.login_defence,
        )
    }

    pub fn discovery(&self) -> Discovery {
        Discovery::new(&self.config.issuer, &self.keys)
    }
}

/// The wiring of a process that signs: the token function, and the local server (one process
/// for every route). It holds the private keys besides the verifying [`Wiring`], whose public
/// keys are the private keys' public halves.
pub struct SigningWiring {
    wiring: Wiring,
    keys: KeySet,
}

impl std::ops::Deref for SigningWiring {
    type Target = Wiring;
    fn deref(&self) -> &Wiring {
        &self.wiring
    }
}

impl SigningWiring {
    pub fn new(config: Config, keys: KeySet, stores: Stores, clock: Arc<dyn Clock>) -> Self {
        let wiring = Wiring::new(config, keys.verification_keys(), stores, clock);
        Self { wiring, keys }
    }

    pub fn with_system_clock(config: Config, keys: KeySet, stores: Stores) -> Self {
        Self::new(config, keys, stores, Arc::new(SystemClock))
    }

    /// The token function's start-up: configuration, the private keys (from SSM or a file,
    /// checked against `SIGNING_ALG`) and the store. The only network call is the one SSM read
    /// of the private keys; the public parameter is not read.
    pub async fn from_env() -> Result<Self, SetupError> {
        let config = Config::from_env()?;
        let keys = signing_keys(&config).await?;
        let stores = stores(&config).await?;
        Ok(Self::with_system_clock(config, keys, stores))
    }

    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    pub fn token_service(&self) -> TokenService {
        let config = &self.wiring.config;
        TokenService::new(
            self.wiring.stores.clone(),
            TokenSigner::new(self.keys.clone(), config.issuer.clone(), config.audience.clone()),
            Passwords::with_limits(
                config.password_hash,
                HashingLimits::for_this_machine(config.password_queue_limit),
            ),
            self.wiring.clock.clone(),
            config.default_access_token_lifetime,
            config.login_defence,
        )
    }

    /// Every route, for the local server.
    pub fn router(&self) -> Router {
        Router {
            // One process: the admin's changes drop the cached entry the token service reads.
            admin: self.admin_service_over(self.stores.clone()),
            token: self.token_service(),
            revocation: self.revocation_service(),
            introspection: self.introspection_service(),
            batch: self.batch_revocation(),
            discovery: self.discovery(),
        }
    }
}
