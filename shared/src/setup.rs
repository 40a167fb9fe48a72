//! Start-up wiring shared by the Lambda functions and the local server: everything here runs
//! once per process, before the first request.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ssm::error::SdkError;
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_sdk_ssm::types::{ParameterTier, ParameterType};

use crate::api::{Discovery, Router};
use crate::auth::Authenticator;
use crate::authorizer::Authorizer;
use crate::batch::BatchRevocation;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::introspection::IntrospectionService;
use crate::jwt::AccessTokens;
use crate::keys::{KeyError, KeySet, KeySetDocument, SigningAlgorithm};
use crate::password::{HashingLimits, Passwords};
use crate::revocation::RevocationService;
use crate::seed::{Seed, SeedError};
use crate::store::Stores;
use crate::store::cache::CachedClients;
use crate::store::dynamodb::DynamoStore;
use crate::store::memory::MemoryStore;
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

/// Loads the signing keys once, at init: from the SSM SecureString `SIGNING_KEYS_PARAMETER`
/// (one call, decrypted), or else from `SIGNING_KEYS_FILE`. Never generates: a deployed function
/// without its keys must fail at init, not sign with a throwaway key.
pub async fn keys(config: &Config) -> Result<KeySet, SetupError> {
    let (document, origin) = match (&config.signing_keys_parameter, &config.signing_keys_file) {
        (Some(name), _) => {
            let ssm = aws_sdk_ssm::Client::new(&aws_config().await);
            let document =
                read_key_parameter(&ssm, name).await?.ok_or_else(|| KeyError::Parameter {
                    name: name.clone(),
                    reason: "not found: create it with `tokenctl keys init`".into(),
                })?;
            (document, format!("SSM parameter {name}"))
        }
        (None, Some(path)) => {
            let bytes = std::fs::read(path)
                .map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
            let document: KeySetDocument =
                serde_json::from_slice(&bytes).map_err(|e| KeyError::Malformed(e.to_string()))?;
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

/// The key set document in an SSM parameter, `None` if the parameter does not exist. Only a
/// SecureString is accepted: the document holds the private keys, and a plain String parameter
/// keeps them unencrypted, readable by anyone allowed to describe parameters.
pub async fn read_key_parameter(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
) -> Result<Option<KeySetDocument>, KeyError> {
    let failed = |reason: String| KeyError::Parameter { name: name.to_owned(), reason };
    let output = match ssm.get_parameter().name(name).with_decryption(true).send().await {
        Ok(output) => output,
        Err(SdkError::ServiceError(e))
            if matches!(e.err(), GetParameterError::ParameterNotFound(_)) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(failed(aws_sdk_ssm::error::DisplayErrorContext(&e).to_string())),
    };
    let parameter = output.parameter.ok_or_else(|| failed("no value".into()))?;
    match &parameter.r#type {
        Some(ParameterType::SecureString) => {}
        other => {
            let found = other.as_ref().map_or("untyped", |t| t.as_str());
            return Err(failed(format!(
                "is a {found} parameter, not a SecureString: the private keys must be encrypted; \
                 store the key set as a SecureString (as `tokenctl keys init` does)"
            )));
        }
    }
    let value = parameter.value.ok_or_else(|| failed("no value".into()))?;
    serde_json::from_str(&value).map(Some).map_err(|e| failed(format!("malformed document: {e}")))
}

/// Writes the key set document to an SSM SecureString, replacing what was there.
pub async fn write_key_parameter(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    document: &KeySetDocument,
) -> Result<(), KeyError> {
    let failed = |reason: String| KeyError::Parameter { name: name.to_owned(), reason };
    let value = serde_json::to_string(document).map_err(|e| failed(e.to_string()))?;
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::SecureString)
        .tier(ParameterTier::IntelligentTiering)
        .overwrite(true)
        .send()
        .await
        .map_err(|e| failed(aws_sdk_ssm::error::DisplayErrorContext(&e).to_string()))?;
    Ok(())
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
            Ok(Stores::all(Arc::new(DynamoStore::new(client, table.clone()))))
        }
        None => memory_stores(&seed_from_config(config)?).await,
    }
}

/// An in-memory store holding the seed's clients and users.
pub async fn memory_stores(seed: &Seed) -> Result<Stores, SetupError> {
    let store = Arc::new(MemoryStore::new());
    seed.install(store.as_ref(), store.as_ref()).await?;
    Ok(Stores::all(store))
}

/// Everything a process needs to build its services, assembled once at start-up.
pub struct Wiring {
    pub config: Config,
    pub keys: KeySet,
    pub stores: Stores,
    pub clock: Arc<dyn Clock>,
}

impl Wiring {
    /// Client records are cached for `CLIENT_CACHE_TTL` in front of the given stores.
    pub fn new(config: Config, keys: KeySet, mut stores: Stores, clock: Arc<dyn Clock>) -> Self {
        if config.client_cache_ttl > 0 {
            stores.clients = Arc::new(CachedClients::new(
                stores.clients,
                clock.clone(),
                config.client_cache_ttl,
            ));
        }
        Self { config, keys, stores, clock }
    }

    pub fn with_system_clock(config: Config, keys: KeySet, stores: Stores) -> Self {
        Self::new(config, keys, stores, Arc::new(SystemClock))
    }

    /// A Lambda function's start-up: configuration from the environment, keys (from SSM or a
    /// file), and the store (DynamoDB, or memory from a seed). Builds SDK clients; the only
    /// network call is the one SSM read of the keys.
    pub async fn from_env() -> Result<Self, SetupError> {
        let config = Config::from_env()?;
        let keys = keys(&config).await?;
        let stores = stores(&config).await?;
        Ok(Self::with_system_clock(config, keys, stores))
    }

    fn access_tokens(&self) -> AccessTokens {
        AccessTokens::new(
            self.keys.clone(),
            self.config.issuer.clone(),
            self.config.audience.clone(),
        )
    }

    fn authenticator(&self) -> Authenticator {
        Authenticator::new(self.stores.clients.clone())
    }

    pub fn verifier(&self) -> Verifier {
        Verifier::new(self.access_tokens(), self.stores.revocations.clone(), self.clock.clone())
    }

    pub fn token_service(&self) -> TokenService {
        TokenService::new(
            self.stores.clone(),
            self.access_tokens(),
            Passwords::with_limits(
                self.config.password_hash,
                HashingLimits::for_this_machine(self.config.password_queue_limit),
            ),
            self.clock.clone(),
            self.config.default_access_token_lifetime,
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

    pub fn discovery(&self) -> Discovery {
        Discovery::new(&self.config.issuer, &self.keys)
    }

    /// Every route, for the local server.
    pub fn router(&self) -> Router {
        Router {
            token: self.token_service(),
            revocation: self.revocation_service(),
            introspection: self.introspection_service(),
            batch: self.batch_revocation(),
            discovery: self.discovery(),
        }
    }
}
