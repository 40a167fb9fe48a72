//! Signing-key administration in SSM Parameter Store: init, stage, promote, prune, show. See the
//! README's rotation runbook for the order and the waits between them.

use aws_sdk_ssm::Client;
use token_service::domain::MAX_LIFETIME;
use token_service::keys::{KeyError, KeySet, KeySetDocument, SigningAlgorithm};
use token_service::setup::{read_key_parameter, write_key_parameter};

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

async fn load(ssm: &Client, name: &str) -> Result<KeySetDocument, KeyError> {
    read_key_parameter(ssm, name).await?.ok_or_else(|| missing(name))
}

/// Creates the parameter with one fresh current key; refuses to replace an existing key set.
pub async fn init(
    ssm: &Client,
    name: &str,
    alg: SigningAlgorithm,
    now: u64,
) -> Result<String, KeyError> {
    if read_key_parameter(ssm, name).await?.is_some() {
        return Err(KeyError::Parameter {
            name: name.to_owned(),
            reason: "already exists; use stage and promote".into(),
        });
    }
    let document = KeySetDocument::generate(alg, now)?;
    write_key_parameter(ssm, name, &document).await?;
    Ok(document.current)
}

/// Adds a key that is published and verifies but does not sign yet. Returns its kid.
pub async fn stage(
    ssm: &Client,
    name: &str,
    alg: SigningAlgorithm,
    now: u64,
) -> Result<String, KeyError> {
    let mut document = load(ssm, name).await?;
    document.stage(alg, now)?;
    write_key_parameter(ssm, name, &document).await?;
    Ok(document.keys[0].kid.clone())
}

/// The staged key starts signing; the old one retires but still verifies. Returns the new kid.
pub async fn promote(ssm: &Client, name: &str, now: u64) -> Result<String, KeyError> {
    let mut document = load(ssm, name).await?;
    document.promote(now)?;
    write_key_parameter(ssm, name, &document).await?;
    Ok(document.current)
}

/// Drops keys retired more than `older_than` seconds ago. Returns how many.
pub async fn prune(ssm: &Client, name: &str, older_than: u64, now: u64) -> Result<usize, KeyError> {
    let mut document = load(ssm, name).await?;
    let dropped = document.prune(now, older_than);
    if dropped > 0 {
        write_key_parameter(ssm, name, &document).await?;
    }
    Ok(dropped)
}

/// One line per key: kid, algorithm, state.
pub async fn show(ssm: &Client, name: &str) -> Result<Vec<String>, KeyError> {
    let document = load(ssm, name).await?;
    KeySet::from_document(&document)?;
    Ok(document
        .keys
        .iter()
        .map(|key| {
            let state = match key.retired_at {
                _ if key.kid == document.current => "current (signs)".to_owned(),
                Some(retired) => format!("retired at {retired} (verifies)"),
                None => "staged (verifies, not yet signing)".to_owned(),
            };
            format!("{} {} {state}", key.kid, key.alg)
        })
        .collect())
}
