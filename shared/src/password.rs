//! User passwords: Argon2id at OWASP's parameters (19 MiB, t=2, p=1), stored as PHC strings.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use std::sync::{Arc, OnceLock};

use crate::domain::random_bytes;

/// Longest password read. Checked before hashing, so a huge password costs nothing.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// The parameters new hashes get. Raising them later keeps old hashes verifying (each PHC
/// string carries its own parameters) and a successful login rehashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl HashParams {
    /// OWASP Password Storage Cheat Sheet: Argon2id, m=19456 KiB, t=2, p=1.
    pub const OWASP: HashParams =
        HashParams { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 };
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// The outcome of checking a password.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, and the stored hash uses other parameters: store this new hash.
    YesRehashed(String),
}

#[derive(Clone)]
pub struct Passwords {
    params: HashParams,
    /// One permit per core: each Argon2 run holds `memory_kib` and a core, so running more at
    /// once only adds memory (unbounded, a flood of logins once took a test server to 9.8 GB)
    /// without adding throughput. Callers beyond it wait their turn.
    hashing: Arc<tokio::sync::Semaphore>,
    /// Verified when the user does not exist, so that both paths cost one Argon2 run. Made on
    /// first use, to keep it out of a Lambda function's cold start.
    dummy_hash: Arc<OnceLock<Result<String, HashError>>>,
}

impl Passwords {
    pub fn new(params: HashParams) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self {
            params,
            hashing: Arc::new(tokio::sync::Semaphore::new(cores)),
            dummy_hash: Arc::default(),
        }
    }

    /// [`Passwords::verify`] off the async runtime, at most one hash per core at a time.
    pub async fn verify_bounded(
        &self,
        stored: Option<String>,
        password: String,
    ) -> Result<Verified, HashError> {
        let _permit = self.hashing.acquire().await.map_err(|e| HashError(e.to_string()))?;
        let passwords = self.clone();
        tokio::task::spawn_blocking(move || passwords.verify(stored.as_deref(), &password))
            .await
            .map_err(|e| HashError(format!("password check task: {e}")))
    }

    pub fn params(&self) -> HashParams {
        self.params
    }

    pub fn hash(&self, password: &str) -> Result<String, HashError> {
        hash_with(self.params, password)
    }

    /// Verifies `password` against `stored`, or against a dummy hash when `stored` is `None`,
    /// so the time taken does not tell whether the user exists.
    pub fn verify(&self, stored: Option<&str>, password: &str) -> Verified {
        let Some(stored) = stored else {
            let dummy = self.dummy_hash.get_or_init(|| hash_with(self.params, "dummy password"));
            if let Ok(dummy) = dummy {
                let _ = verify_phc(dummy, password);
            }
            return Verified::No;
        };
        match verify_phc(stored, password) {
            Some(true) if current_params(stored) == Some(self.params) => Verified::Yes,
            Some(true) => match self.hash(password) {
                Ok(rehashed) => Verified::YesRehashed(rehashed),
                Err(e) => {
                    tracing::warn!(error = %e, "rehash failed; keeping the old hash");
                    Verified::Yes
                }
            },
            _ => Verified::No,
        }
    }
}

fn argon2(params: HashParams) -> Result<Argon2<'static>, HashError> {
    let params = Params::new(params.memory_kib, params.iterations, params.parallelism, None)
        .map_err(|e| HashError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_with(params: HashParams, password: &str) -> Result<String, HashError> {
    let salt =
        SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| HashError(e.to_string()))?;
    Ok(argon2(params)?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| HashError(e.to_string()))?
        .to_string())
}

/// `Some(matches)`, or `None` for a hash that is not a valid Argon2 PHC string.
fn verify_phc(stored: &str, password: &str) -> Option<bool> {
    let parsed = PasswordHash::new(stored).ok()?;
    // The verifier takes the algorithm and parameters from the PHC string itself.
    Some(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

fn current_params(stored: &str) -> Option<HashParams> {
    let parsed = PasswordHash::new(stored).ok()?;
    if parsed.algorithm.as_str() != "argon2id" {
        return None;
    }
    let params = Params::try_from(&parsed).ok()?;
    Some(HashParams {
        memory_kib: params.m_cost(),
        iterations: params.t_cost(),
        parallelism: params.p_cost(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters keep unit tests fast; the integration tests use OWASP's.
    const FAST: HashParams = HashParams { memory_kib: 64, iterations: 1, parallelism: 1 };

    #[test]
    fn hashes_are_argon2id_phc_strings_with_the_configured_parameters() {
        let hasher = Passwords::new(HashParams::OWASP);
        let hash = hasher.hash("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert_eq!(hasher.verify(Some(&hash), "correct horse"), Verified::Yes);
        assert_eq!(hasher.verify(Some(&hash), "wrong horse"), Verified::No);
    }

    #[test]
    fn unknown_users_verify_against_the_dummy_and_fail() {
        let hasher = Passwords::new(FAST);
        assert_eq!(hasher.verify(None, "dummy password"), Verified::No);
    }

    #[test]
    fn raising_parameters_keeps_old_hashes_valid_and_rehashes_on_login() {
        let old = Passwords::new(FAST).hash("pw").unwrap();
        let stronger = HashParams { memory_kib: 128, iterations: 2, parallelism: 1 };
        let hasher = Passwords::new(stronger);
        let Verified::YesRehashed(new) = hasher.verify(Some(&old), "pw") else {
            panic!("expected a rehash");
        };
        assert!(new.contains("m=128,t=2,p=1"), "{new}");
        assert_eq!(hasher.verify(Some(&new), "pw"), Verified::Yes);
        assert_eq!(hasher.verify(Some(&old), "nope"), Verified::No);
    }

    #[test]
    fn malformed_stored_hashes_never_verify() {
        let hasher = Passwords::new(FAST);
        assert_eq!(hasher.verify(Some("not-a-phc-string"), "pw"), Verified::No);
    }
}
