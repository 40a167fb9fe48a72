//! User passwords: Argon2id at OWASP's parameters (19 MiB, t=2, p=1), stored as PHC strings.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

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
    /// the first login of the process, whoever signs in, to keep it out of a Lambda function's
    /// cold start without making the first unknown user alone pay for it.
    dummy_hash: Arc<OnceLock<Result<String, HashError>>>,
    /// How long the latest verification at the configured parameters took, in nanoseconds (0
    /// before the first): what a wrong password against an older hash is padded to.
    current_cost_nanos: Arc<AtomicU64>,
    /// Argon2's working memory (19 MiB at OWASP parameters), kept and reused: at most one
    /// buffer per permit is ever allocated. Allocating it per verification made glibc keep
    /// each freed buffer in another arena, and a function's memory grew by 19 MiB a login
    /// (147 MB after 20 logins, measured with `bench memory`).
    working_memory: Arc<Mutex<Vec<Vec<Block>>>>,
    /// Argon2 verifications run, counted in unit tests to prove that an unknown user costs
    /// exactly what a wrong password costs.
    #[cfg(test)]
    argon2_runs: Arc<std::sync::atomic::AtomicUsize>,
}

impl Passwords {
    pub fn new(params: HashParams) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self {
            params,
            hashing: Arc::new(tokio::sync::Semaphore::new(cores)),
            dummy_hash: Arc::default(),
            current_cost_nanos: Arc::default(),
            working_memory: Arc::default(),
            #[cfg(test)]
            argon2_runs: Arc::default(),
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
        self.dummy_hash.get_or_init(|| hash_with(self.params, "dummy password"));
        let started = Instant::now();
        let Some(stored) = stored else {
            self.verify_dummy(password);
            self.record_current_cost(started);
            return Verified::No;
        };
        let current = current_params(stored) == Some(self.params);
        let matched = self.verify_phc(stored, password) == Some(true);
        if current {
            self.record_current_cost(started);
        }
        match (matched, current) {
            (true, true) => Verified::Yes,
            (true, false) => match self.hash(password) {
                Ok(rehashed) => Verified::YesRehashed(rehashed),
                Err(e) => {
                    tracing::warn!(error = %e, "rehash failed; keeping the old hash");
                    Verified::Yes
                }
            },
            (false, true) => Verified::No,
            (false, false) => {
                self.pad_to_current_cost(started, password);
                Verified::No
            }
        }
    }

    fn verify_dummy(&self, password: &str) {
        if let Some(Ok(dummy)) = self.dummy_hash.get() {
            let _ = self.verify_phc(dummy, password);
        }
    }

    fn record_current_cost(&self, started: Instant) {
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.current_cost_nanos.store(nanos, Ordering::Relaxed);
    }

    /// After the parameters are raised, a wrong password against a user's older, cheaper hash
    /// would answer sooner than an unknown user does, telling that the account exists: wait
    /// out the difference to the latest verification at the current parameters (measuring
    /// one on the dummy when none has run yet).
    fn pad_to_current_cost(&self, started: Instant, password: &str) {
        if self.current_cost_nanos.load(Ordering::Relaxed) == 0 {
            let measured = Instant::now();
            self.verify_dummy(password);
            self.record_current_cost(measured);
        }
        let cost = Duration::from_nanos(self.current_cost_nanos.load(Ordering::Relaxed));
        if let Some(rest) = cost.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }

    /// `Some(matches)`, or `None` for a hash that is not a valid Argon2 PHC string.
    fn verify_phc(&self, stored: &str, password: &str) -> Option<bool> {
        let parsed = PasswordHash::new(stored).ok()?;
        #[cfg(test)]
        self.argon2_runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // The algorithm, version and parameters come from the PHC string itself, so hashes
        // made with older parameters keep verifying.
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = parsed.version.map(Version::try_from).transpose().ok()?.unwrap_or_default();
        let params = Params::try_from(&parsed).ok()?;
        let (salt, expected) = (parsed.salt?, parsed.hash?);
        let mut salt_bytes = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_bytes).ok()?;
        let mut output = vec![0u8; expected.len()];
        let mut blocks = self.take_working_memory(params.block_count());
        let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut output,
            &mut blocks,
        );
        self.working_memory.lock().unwrap_or_else(|e| e.into_inner()).push(blocks);
        hashed.ok()?;
        Some(output.ct_eq(expected.as_bytes()).into())
    }

    /// A buffer of at least `blocks` Argon2 blocks; Argon2 overwrites every block it uses
    /// before reading it, so a reused buffer needs no clearing.
    fn take_working_memory(&self, blocks: usize) -> Vec<Block> {
        let mut buffer =
            self.working_memory.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
        if buffer.len() < blocks {
            buffer.resize(blocks, Block::default());
        }
        buffer
    }

    /// How many Argon2 verifications this instance (and its clones) has run.
    #[cfg(test)]
    pub(crate) fn argon2_runs(&self) -> usize {
        self.argon2_runs.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The parameters of the dummy hash, once made.
    #[cfg(test)]
    pub(crate) fn dummy_params(&self) -> Option<HashParams> {
        self.dummy_hash.get()?.as_deref().ok().and_then(current_params)
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

    /// The timing rule, proved without a clock: an unknown user costs exactly one Argon2id
    /// verification, against a hash with the configured parameters, as a wrong password does.
    #[test]
    fn unknown_user_and_wrong_password_each_cost_one_argon2_run_at_the_same_parameters() {
        let hasher = Passwords::new(FAST);
        let real = hasher.hash("right").unwrap();
        assert_eq!(hasher.argon2_runs(), 0);
        assert_eq!(hasher.verify(Some(&real), "wrong"), Verified::No);
        assert_eq!(hasher.argon2_runs(), 1, "a wrong password: one verification");
        assert_eq!(hasher.verify(None, "wrong"), Verified::No);
        assert_eq!(hasher.argon2_runs(), 2, "an unknown user: one verification of the dummy");
        assert_eq!(hasher.dummy_params(), Some(FAST), "the dummy costs what a real hash costs");
        assert_eq!(current_params(&real), Some(FAST));
        assert_eq!(hasher.verify(None, "dummy password"), Verified::No, "never a match");
        assert_eq!(hasher.argon2_runs(), 3);
    }

    #[test]
    fn the_first_login_of_a_process_makes_the_dummy_whoever_signs_in() {
        let hasher = Passwords::new(FAST);
        let real = hasher.hash("right").unwrap();
        assert_eq!(hasher.dummy_params(), None);
        assert_eq!(hasher.verify(Some(&real), "wrong"), Verified::No);
        assert_eq!(hasher.dummy_params(), Some(FAST), "a known user's login made it too");
    }

    /// A timing test with generous bounds: without the padding, a wrong password against the
    /// old 64 KiB hash answers about a hundred times sooner than an unknown user.
    #[test]
    fn a_wrong_password_against_an_older_hash_takes_as_long_as_an_unknown_user() {
        let old = Passwords::new(FAST).hash("pw").unwrap();
        let hasher =
            Passwords::new(HashParams { memory_kib: 8 * 1024, iterations: 2, parallelism: 1 });
        let median = |stored: Option<&str>| {
            let mut samples: Vec<Duration> = (0..7)
                .map(|_| {
                    let started = Instant::now();
                    assert_eq!(hasher.verify(stored, "wrong"), Verified::No);
                    started.elapsed()
                })
                .collect();
            samples.sort();
            samples[samples.len() / 2]
        };
        let (outdated, unknown) = (median(Some(&old)), median(None));
        assert!(
            outdated * 10 >= unknown * 7,
            "outdated hash {outdated:?}, unknown user {unknown:?}"
        );
    }

    #[test]
    fn malformed_stored_hashes_never_verify() {
        let hasher = Passwords::new(FAST);
        assert_eq!(hasher.verify(Some("not-a-phc-string"), "pw"), Verified::No);
    }
}
