//! Signing-key administration in SSM Parameter Store: init, stage, promote, prune, remove,
//! publish, show. See the rotation runbook in docs/deployment.md for the order and the waits
//! between them.
//!
//! Every change rewrites the private key set (a SecureString, read by the token function only)
//! with a version check, then its public half (`<parameter>-public`, read by every function
//! that verifies), so the two stay in step.

use aws_sdk_ssm::Client;
use token_service::domain::MAX_LIFETIME;
use token_service::key_parameters::{self, Versioned, public_parameter_name};
use token_service::keys::{KeyError, KeySet, KeySetDocument, KeyState, SigningAlgorithm};

/// `keys prune` without `--older-than`: the longest access-token lifetime any client may be
/// given, so a default prune never drops a key whose tokens may still be live. A shorter age
/// needs the operator's knowledge of the clients' actual maximum.
pub const DEFAULT_PRUNE_OLDER_THAN: u64 = MAX_LIFETIME;

fn missing(name: &str) -> KeyError {
    KeyError::Parameter {
        name: name.to_owned(),
        reason: "not found: run `tokenctl keys init` first".into(),
    }
}

async fn load(ssm: &Client, name: &str) -> Result<Versioned, KeyError> {
    key_parameters::read_private(ssm, name).await?.ok_or_else(|| missing(name))
}

/// Writes the public half of the private set as it now stands ([`key_parameters::publish_current`]);
/// a failure says that the private set moved on alone.
async fn publish_current(ssm: &Client, name: &str) -> Result<String, KeyError> {
    key_parameters::publish_current(ssm, name).await.map_err(|error| KeyError::Parameter {
        name: public_parameter_name(name),
        reason: format!(
            "{error}. The private key set {name} was written but its public half was not: \
             run `tokenctl keys publish` before deploying"
        ),
    })
}

/// Reads the key set, applies `change`, and, if that changed anything, writes the key set back
/// (refused if someone else wrote it since the read: `replace_private`) and then its public
/// half.
async fn update<R>(
    ssm: &Client,
    name: &str,
    change: impl FnOnce(&mut KeySetDocument) -> Result<R, KeyError>,
) -> Result<R, KeyError> {
    let Versioned { mut document, version } = load(ssm, name).await?;
    let json = |document: &KeySetDocument| serde_json::to_string(document).unwrap_or_default();
    let before = json(&document);
    let outcome = change(&mut document)?;
    if json(&document) != before {
        let written = key_parameters::replace_private(ssm, name, &document, version).await;
        // Whatever the private set holds now, this change or a concurrent one (when ours was
        // refused or lost), its public half follows it.
        let published = publish_current(ssm, name).await;
        written?;
        published?;
    }
    Ok(outcome)
}

/// Creates the key set with one fresh current key, and its public half; refuses to replace an
/// existing key set (the create is conditional in SSM itself).
pub async fn init(
    ssm: &Client,
    name: &str,
    alg: SigningAlgorithm,
    now: u64,
) -> Result<String, KeyError> {
    let document = KeySetDocument::generate(alg, now)?;
    key_parameters::create_private(ssm, name, &document).await?;
    publish_current(ssm, name).await?;
    Ok(document.current)
}

/// Adds a key that is published and verifies but does not sign yet. Returns its kid.
pub async fn stage(
    ssm: &Client,
    name: &str,
    alg: SigningAlgorithm,
    now: u64,
) -> Result<String, KeyError> {
    update(ssm, name, |document| document.stage(alg, now)).await
}

/// A staged key starts signing (`kid`, or the only staged key); the old one retires but still
/// verifies. Returns the new current kid.
pub async fn promote(
    ssm: &Client,
    name: &str,
    kid: Option<&str>,
    now: u64,
) -> Result<String, KeyError> {
    update(ssm, name, |document| document.promote(now, kid)).await
}

/// Drops keys retired more than `older_than` seconds ago. Returns how many.
pub async fn prune(ssm: &Client, name: &str, older_than: u64, now: u64) -> Result<usize, KeyError> {
    update(ssm, name, |document| Ok(document.prune(now, older_than))).await
}

/// Drops the staged or retired key `kid` at once. Returns the state it had.
pub async fn remove(ssm: &Client, name: &str, kid: &str) -> Result<KeyState, KeyError> {
    update(ssm, name, |document| document.remove(kid)).await
}

/// Rewrites the public key set from the private one: after an interrupted command, or once for
/// a key set made before the public one existed. Returns the public parameter's name.
pub async fn publish(ssm: &Client, name: &str) -> Result<String, KeyError> {
    let Versioned { document, .. } = load(ssm, name).await?;
    KeySet::from_document(&document)?;
    publish_current(ssm, name).await
}

/// What `keys show` reports.
pub struct Shown {
    /// One line per key: kid, algorithm, state.
    pub keys: Vec<String>,
    /// The public parameter's name.
    pub public: String,
    /// Whether it holds exactly the private key set's public half.
    pub public_in_step: bool,
}

pub async fn show(ssm: &Client, name: &str) -> Result<Shown, KeyError> {
    let Versioned { document, .. } = load(ssm, name).await?;
    KeySet::from_document(&document)?;
    let public = public_parameter_name(name);
    let published = key_parameters::read_public(ssm, &public).await?;
    let keys = document
        .keys
        .iter()
        .map(|key| {
            let state = document.state(&key.kid).map_or_else(String::new, |s| s.to_string());
            format!("{} {} {state}", key.kid, key.alg)
        })
        .collect();
    Ok(Shown { keys, public, public_in_step: published == Some(document.public()?) })
}
