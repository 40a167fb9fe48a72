//! The key sets in SSM Parameter Store: the private one, a SecureString that only the token
//! function and `tokenctl keys` read, and the public one beside it (`<name>-public`), a plain
//! String that every function that only verifies reads.
//!
//! SSM has no conditional write: `PutParameter` with overwrite replaces whatever is there. The
//! rotation commands read the private parameter and its version, compute, and then
//! [`replace_private`] refuses if the version moved since the read, writes, and checks that its
//! write became exactly the next version. See that function for what this does and does not
//! guarantee.

use aws_sdk_ssm::Client;
use aws_sdk_ssm::error::{DisplayErrorContext, SdkError};
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_sdk_ssm::operation::put_parameter::PutParameterError;
use aws_sdk_ssm::types::{Parameter, ParameterTier, ParameterType};

use crate::keys::{KeyError, KeySetDocument, PublicKeySetDocument, malformed_document};

/// What the public parameter's name adds to the private one's.
pub const PUBLIC_SUFFIX: &str = "-public";

/// The public key set's parameter beside the private one named `private`. The template grants
/// the verifying functions exactly this name; a test holds the two to agreement.
pub fn public_parameter_name(private: &str) -> String {
    format!("{private}{PUBLIC_SUFFIX}")
}

/// The private key set and the parameter version it was read at.
pub struct Versioned {
    pub document: KeySetDocument,
    pub version: i64,
}

fn failed(name: &str, reason: impl Into<String>) -> KeyError {
    KeyError::Parameter { name: name.to_owned(), reason: reason.into() }
}

async fn get(ssm: &Client, name: &str, decrypt: bool) -> Result<Option<Parameter>, KeyError> {
    match ssm.get_parameter().name(name).with_decryption(decrypt).send().await {
        Ok(output) => output.parameter.map(Some).ok_or_else(|| failed(name, "no value")),
        Err(SdkError::ServiceError(e))
            if matches!(e.err(), GetParameterError::ParameterNotFound(_)) =>
        {
            Ok(None)
        }
        Err(e) => Err(failed(name, DisplayErrorContext(&e).to_string())),
    }
}

fn type_name(parameter: &Parameter) -> &str {
    parameter.r#type.as_ref().map_or("untyped", |t| t.as_str())
}

/// The private key set, `None` if the parameter does not exist. Only a SecureString is
/// accepted: the document holds the private keys, and a plain String parameter keeps them
/// unencrypted, readable by anyone allowed to describe parameters.
pub async fn read_private(ssm: &Client, name: &str) -> Result<Option<Versioned>, KeyError> {
    let Some(parameter) = get(ssm, name, true).await? else {
        return Ok(None);
    };
    if parameter.r#type != Some(ParameterType::SecureString) {
        return Err(failed(
            name,
            format!(
                "is a {} parameter, not a SecureString: the private keys must be encrypted; \
                 store the key set as a SecureString (as `tokenctl keys init` does)",
                type_name(&parameter)
            ),
        ));
    }
    let value = parameter.value.ok_or_else(|| failed(name, "no value"))?;
    let document = serde_json::from_str(&value)
        .map_err(|e| malformed_document(&format!("SSM parameter {name}"), &e))?;
    Ok(Some(Versioned { document, version: parameter.version }))
}

/// The public key set, `None` if the parameter does not exist. A SecureString, or a document
/// holding any private key, is refused: a function that only verifies never takes in a private
/// key, whatever it is pointed at.
pub async fn read_public(
    ssm: &Client,
    name: &str,
) -> Result<Option<PublicKeySetDocument>, KeyError> {
    let Some(parameter) = get(ssm, name, false).await? else {
        return Ok(None);
    };
    if parameter.r#type == Some(ParameterType::SecureString) {
        return Err(KeyError::PrivateKeyMaterial {
            origin: format!("SSM parameter {name}, a SecureString like the private key set,"),
        });
    }
    let value = parameter.value.ok_or_else(|| failed(name, "no value"))?;
    PublicKeySetDocument::parse(value.as_bytes(), &format!("SSM parameter {name}")).map(Some)
}

async fn put(
    ssm: &Client,
    name: &str,
    value: String,
    kind: ParameterType,
    overwrite: bool,
) -> Result<i64, SdkError<PutParameterError>> {
    let output = ssm
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(kind)
        .tier(ParameterTier::IntelligentTiering)
        .overwrite(overwrite)
        .send()
        .await?;
    Ok(output.version)
}

fn private_json(name: &str, document: &KeySetDocument) -> Result<String, KeyError> {
    serde_json::to_string(document).map_err(|e| failed(name, e.to_string()))
}

/// Creates the private parameter; refuses, atomically, if it already exists (no overwrite).
pub async fn create_private(
    ssm: &Client,
    name: &str,
    document: &KeySetDocument,
) -> Result<(), KeyError> {
    let json = private_json(name, document)?;
    match put(ssm, name, json.clone(), ParameterType::SecureString, false).await {
        Ok(_) => Ok(()),
        Err(SdkError::ServiceError(e))
            if matches!(e.err(), PutParameterError::ParameterAlreadyExists(_)) =>
        {
            // The SDK retries an attempt that timed out: the parameter may be our own write.
            if value_at(ssm, name, None).await?.as_deref() == Some(json.as_str()) {
                return Ok(());
            }
            Err(failed(name, "already exists; use stage and promote"))
        }
        Err(e) => Err(failed(name, DisplayErrorContext(&e).to_string())),
    }
}

/// The decrypted value of `name`, at `version` if given.
async fn value_at(
    ssm: &Client,
    name: &str,
    version: Option<i64>,
) -> Result<Option<String>, KeyError> {
    let selector = version.map_or_else(|| name.to_owned(), |version| format!("{name}:{version}"));
    Ok(get(ssm, &selector, true).await?.and_then(|parameter| parameter.value))
}

/// Replaces the private key set read at `read_version` with `document`, and returns the new
/// version. Refuses, writing nothing, if the parameter is no longer at `read_version`; then
/// writes and checks that the write became `read_version + 1` ([`overwrite_private`]).
///
/// What this guarantees: of two overlapping read-compute-write cycles, the second to write
/// either finds the version moved and writes nothing, or its write lands as a version other
/// than the next and it reports that loudly. What it cannot: SSM has no compare-and-swap, so a
/// write that lands in the one round trip between the check and our write is overwritten (our
/// document was computed without it); it is detected and reported, not prevented.
pub async fn replace_private(
    ssm: &Client,
    name: &str,
    document: &KeySetDocument,
    read_version: i64,
) -> Result<i64, KeyError> {
    let now = get(ssm, name, false).await?.map_or(0, |parameter| parameter.version);
    if now != read_version {
        return Err(KeyError::ConcurrentChange {
            name: name.to_owned(),
            detail: format!(
                "it was at version {read_version} when read and is at version {now} now; \
                 nothing was written. Run `tokenctl keys show` to see the key set as it is, \
                 then run the command again if it is still needed"
            ),
        });
    }
    overwrite_private(ssm, name, document, read_version).await
}

/// Writes `document` over the private parameter read at `read_version`, then checks the
/// version SSM gave the write: anything but `read_version + 1` means someone else wrote in
/// between, and their change was just overwritten; unless every version in between holds our
/// own document (the SDK retried an attempt of ours that had landed).
pub async fn overwrite_private(
    ssm: &Client,
    name: &str,
    document: &KeySetDocument,
    read_version: i64,
) -> Result<i64, KeyError> {
    let json = private_json(name, document)?;
    let written = put(ssm, name, json.clone(), ParameterType::SecureString, true)
        .await
        .map_err(|e| failed(name, DisplayErrorContext(&e).to_string()))?;
    if written != read_version + 1 && !only_ours(ssm, name, &json, read_version, written).await? {
        return Err(KeyError::ConcurrentChange {
            name: name.to_owned(),
            detail: format!(
                "this command read version {read_version} and its write became version \
                 {written}, so versions {} to {} written meanwhile by someone else were \
                 overwritten by a key set computed without them. Run `tokenctl keys show`, \
                 compare with `aws ssm get-parameter-history --name {name}`, redo the change \
                 that was lost, then run `tokenctl keys publish`",
                read_version + 1,
                written - 1
            ),
        });
    }
    // Our write can itself be overwritten by a writer that checked before it landed.
    let current = get(ssm, name, false).await?.map_or(0, |parameter| parameter.version);
    if current != written && !only_ours(ssm, name, &json, written, current + 1).await? {
        return Err(KeyError::ConcurrentChange {
            name: name.to_owned(),
            detail: format!(
                "this command's change became version {written}, and version {current}, \
                 written meanwhile by someone else from an older key set, replaced it: this \
                 change is lost. Run `tokenctl keys show` and run the command again if it is \
                 still needed"
            ),
        });
    }
    Ok(written)
}

/// Attempts at publishing while the private key set keeps changing.
const PUBLISH_ATTEMPTS: u32 = 5;

/// Writes the public half of the private key set as it stands now, and again for as long as it
/// changed while that was written. Every command that changes the private set ends here, so
/// whichever finishes last leaves the public set in step with the private one, however their
/// writes interleaved: a command that published an older set re-reads and publishes again.
/// Returns the public parameter's name.
pub async fn publish_current(ssm: &Client, private_name: &str) -> Result<String, KeyError> {
    for _ in 0..PUBLISH_ATTEMPTS {
        let Some(Versioned { document, version }) = read_private(ssm, private_name).await? else {
            return Err(failed(private_name, "not found: run `tokenctl keys init` first"));
        };
        publish(ssm, private_name, &document).await?;
        let now = get(ssm, private_name, false).await?.map_or(0, |parameter| parameter.version);
        if now == version {
            return Ok(public_parameter_name(private_name));
        }
    }
    Err(failed(
        &public_parameter_name(private_name),
        "the private key set kept changing while its public half was written: run \
         `tokenctl keys publish` once the other commands are done",
    ))
}

/// Writes the public half of `document` to the public parameter beside `private_name`,
/// replacing what was there. Returns the public parameter's name.
async fn publish(
    ssm: &Client,
    private_name: &str,
    document: &KeySetDocument,
) -> Result<String, KeyError> {
    let name = public_parameter_name(private_name);
    let json =
        serde_json::to_string(&document.public()?).map_err(|e| failed(&name, e.to_string()))?;
    put(ssm, &name, json, ParameterType::String, true)
        .await
        .map_err(|e| failed(&name, DisplayErrorContext(&e).to_string()))?;
    Ok(name)
}

/// Whether every version between `read_version` and `written` holds `json`: the SDK retried a
/// write of ours that had landed (an attempt timed out), rather than someone else writing.
async fn only_ours(
    ssm: &Client,
    name: &str,
    json: &str,
    read_version: i64,
    written: i64,
) -> Result<bool, KeyError> {
    if written <= read_version {
        return Ok(false); // deleted and created anew meanwhile
    }
    for version in read_version + 1..written {
        if value_at(ssm, name, Some(version)).await?.as_deref() != Some(json) {
            return Ok(false);
        }
    }
    Ok(true)
}
