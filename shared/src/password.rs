//! User passwords: Argon2id at OWASP's parameters (19 MiB, t=2, p=1), stored as PHC strings.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::random_bytes;

/// Longest password read. Checked before hashing, so a huge password costs nothing.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Shortest password the admin plane sets (NIST SP 800-63B's minimum).
pub const MIN_PASSWORD_LEN: usize = 8;

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

/// How many password checks hash at once, and how many may wait for their turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashingLimits {
    /// Argon2 runs at once. Each holds `memory_kib` and a core, so more than one per core only
    /// adds memory without adding throughput.
    pub slots: usize,
    /// Checks waiting for a slot. One more is refused at once ([`Busy`]) rather than queued:
    /// an unbounded queue made 1,000 concurrent logins wait 7.1 s at the median.
    pub queue: usize,
}

impl HashingLimits {
    /// The default queue per slot. The last in a full queue waits `QUEUE_PER_SLOT` hashes
    /// before its own: at the 20.1 ms an OWASP hash took on one core (bench/RESULTS.md), 0.64 s,
    /// and under 1 s while a hash takes under 31 ms. It also keeps the benchmark's 64
    /// connections on two cores from being shed.
    pub const QUEUE_PER_SLOT: usize = 32;

    /// One slot per core, and [`Self::QUEUE_PER_SLOT`] waiting per slot unless `queue` says.
    pub fn for_this_machine(queue: Option<usize>) -> Self {
        let slots = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self { slots, queue: queue.unwrap_or(slots * Self::QUEUE_PER_SLOT) }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// The hashing queue is full: the check was refused before any work, and may be tried again
/// after about `retry_after_secs`, when the queue has drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks are waiting")]
pub struct Busy {
    pub retry_after_secs: u64,
}

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
    limits: HashingLimits,
    /// `limits.slots` permits, each held by a running Argon2 verification until it ends, even
    /// when the request that asked for it was dropped meanwhile (a client that gives up):
    /// unbounded, a flood of logins once took a test server to 9.8 GB, and cancelled logins,
    /// whose permits went with the request while the hash ran on, to 4.6 GB.
    hashing: Arc<Semaphore>,
    /// `limits.slots + limits.queue` permits: a check holds one from [`Passwords::admit`] until
    /// its hash ends, so at most `limits.queue` wait for a hashing slot.
    admission: Arc<Semaphore>,
    /// Verified when the user does not exist, so that both paths cost one Argon2 run. Made on
    /// the first login of the process, whoever signs in, to keep it out of a Lambda function's
    /// cold start without making the first unknown user alone pay for it.
    dummy_hash: Arc<OnceLock<Result<String, HashError>>>,
    /// How long the latest verification at the configured parameters took, in nanoseconds (0
    /// before the first): what a wrong password against an older hash is padded to.
    current_cost_nanos: Arc<AtomicU64>,
    /// Argon2's working memory (19 MiB at OWASP parameters), kept and reused, at most one
    /// buffer per hashing slot. Allocating it per verification made glibc keep each freed
    /// buffer in another arena, and a function's memory grew by 19 MiB a login (147 MB after
    /// 20 logins, measured with `bench memory`).
    working_memory: Arc<Mutex<Vec<Vec<Block>>>>,
    /// Counts Argon2 runs and the most at once, for unit tests.
    #[cfg(test)]
    probe: Arc<Probe>,
}

/// What unit tests observe of the hashing: runs, the most running at once, the most buffers
/// pooled at once.
#[cfg(test)]
#[derive(Default)]
struct Probe {
    runs: std::sync::atomic::AtomicUsize,
    running: std::sync::atomic::AtomicUsize,
    most_running: std::sync::atomic::AtomicUsize,
    most_pooled: std::sync::atomic::AtomicUsize,
}

/// A place in the hashing queue, from [`Passwords::admit`].
pub struct Admission {
    passwords: Passwords,
    place: OwnedSemaphorePermit,
}

impl Admission {
    /// [`Passwords::verify`] off the async runtime, once a hashing slot is free.
    pub async fn verify(
        self,
        stored: Option<String>,
        password: String,
    ) -> Result<Verified, HashError> {
        let Admission { passwords, place } = self;
        let slot = passwords
            .hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            // Moved here, not held by the request: a dropped request leaves the hash running,
            // and the slot and the place must stay taken until it ends.
            let _taken = (slot, place);
            passwords.verify(stored.as_deref(), &password)
        })
        .await
        .map_err(|e| HashError(format!("password check task: {e}")))
    }
}

impl Passwords {
    /// One hashing slot per core, the default queue.
    pub fn new(params: HashParams) -> Self {
        Self::with_limits(params, HashingLimits::for_this_machine(None))
    }

    pub fn with_limits(params: HashParams, limits: HashingLimits) -> Self {
        // Within what a semaphore can count, which a queue of `usize::MAX` is not.
        let slots = limits.slots.clamp(1, Semaphore::MAX_PERMITS / 2);
        let limits = HashingLimits { slots, queue: limits.queue.min(Semaphore::MAX_PERMITS / 2) };
        Self {
            params,
            limits,
            hashing: Arc::new(Semaphore::new(limits.slots)),
            admission: Arc::new(Semaphore::new(limits.slots + limits.queue)),
            dummy_hash: Arc::default(),
            current_cost_nanos: Arc::default(),
            working_memory: Arc::default(),
            #[cfg(test)]
            probe: Arc::default(),
        }
    }

    /// A place in the hashing queue, or [`Busy`] at once when it is full. Whether a check is
    /// admitted depends only on how many are in flight, never on whose password it is.
    pub fn admit(&self) -> Result<Admission, Busy> {
        match self.admission.clone().try_acquire_owned() {
            Ok(place) => Ok(Admission { passwords: self.clone(), place }),
            Err(_) => Err(Busy { retry_after_secs: self.drain_secs() }),
        }
    }

    /// About how long a full queue takes to drain at the latest hash's cost: whole seconds, at
    /// least one.
    fn drain_secs(&self) -> u64 {
        let hashes_per_slot = (self.limits.slots + self.limits.queue) / self.limits.slots;
        let nanos = self
            .current_cost_nanos
            .load(Ordering::Relaxed)
            .saturating_mul(u64::try_from(hashes_per_slot).unwrap_or(u64::MAX));
        nanos.div_ceil(1_000_000_000).max(1)
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
        let _running = self.probe.run();
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
        self.return_working_memory(blocks);
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

    /// Keeps one buffer per hashing slot, all that the slots can use at once; one beyond (from
    /// a [`Passwords::verify`] called outside a slot) is freed.
    fn return_working_memory(&self, blocks: Vec<Block>) {
        let mut pool = self.working_memory.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.limits.slots {
            pool.push(blocks);
        }
        #[cfg(test)]
        self.probe.most_pooled.fetch_max(pool.len(), std::sync::atomic::Ordering::SeqCst);
    }

    /// How many Argon2 verifications this instance (and its clones) has run.
    #[cfg(test)]
    pub(crate) fn argon2_runs(&self) -> usize {
        self.probe.runs.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Takes every hashing slot and every place in the queue, as a flood would, until dropped.
    #[cfg(test)]
    pub(crate) async fn fill_queue(&self) -> (OwnedSemaphorePermit, OwnedSemaphorePermit) {
        let total = self.limits.slots + self.limits.queue;
        let places = self.admission.clone().acquire_many_owned(total as u32).await.unwrap();
        let slots =
            self.hashing.clone().acquire_many_owned(self.limits.slots as u32).await.unwrap();
        (places, slots)
    }

    /// The parameters of the dummy hash, once made.
    #[cfg(test)]
    pub(crate) fn dummy_params(&self) -> Option<HashParams> {
        self.dummy_hash.get()?.as_deref().ok().and_then(current_params)
    }
}

#[cfg(test)]
impl Probe {
    /// Counts a run, and it as running until the guard drops.
    fn run(&self) -> Running<'_> {
        use std::sync::atomic::Ordering::SeqCst;
        self.runs.fetch_add(1, SeqCst);
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most_running.fetch_max(now, SeqCst);
        Running(self)
    }
}

#[cfg(test)]
struct Running<'a>(&'a Probe);

#[cfg(test)]
impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
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

    /// Without the padding, a wrong password against the old 64 KiB hash answers about a
    /// hundred times sooner than an unknown user. Only a lower bound is asserted, which a
    /// loaded machine cannot break: the padding sleeps at least the cost it pads to.
    #[test]
    fn a_wrong_password_against_an_older_hash_takes_as_long_as_an_unknown_user() {
        let old = Passwords::new(FAST).hash("pw").unwrap();
        let hasher =
            Passwords::new(HashParams { memory_kib: 8 * 1024, iterations: 2, parallelism: 1 });
        let outdated_check = |hasher: &Passwords| {
            let started = Instant::now();
            assert_eq!(hasher.verify(Some(&old), "wrong"), Verified::No);
            started.elapsed()
        };
        let current_cost = |hasher: &Passwords| {
            Duration::from_nanos(hasher.current_cost_nanos.load(Ordering::Relaxed))
        };

        let first = outdated_check(&hasher);
        assert!(current_cost(&hasher) > Duration::ZERO, "the first check measured the dummy");
        assert!(first >= current_cost(&hasher), "{first:?} before any unknown user");

        assert_eq!(hasher.verify(None, "wrong"), Verified::No);
        let unknown = current_cost(&hasher);
        let outdated = outdated_check(&hasher);
        assert!(outdated >= unknown, "outdated hash {outdated:?}, unknown user {unknown:?}");
    }

    /// Dear enough that a hash outlives the loop below that starts and cancels the next.
    const SLOW: HashParams = HashParams { memory_kib: 8 * 1024, iterations: 4, parallelism: 1 };

    fn wrong_password_check(passwords: &Passwords, stored: &str) -> tokio::task::JoinHandle<()> {
        let check =
            passwords.admit().expect("within the queue").verify(Some(stored.into()), "x".into());
        tokio::spawn(async move {
            let _ = check.await;
        })
    }

    /// Issue 13: a request dropped by hyper when its client hangs up took its hashing permit
    /// with it while its hash ran on, so cancelled logins ran hashes without bound (4.6 GB,
    /// 242 threads). Bounds, not timings: never more hashes at once than slots, never more
    /// pooled buffers than slots.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_checks_keep_their_slot_until_their_hash_ends() {
        let passwords = Passwords::with_limits(SLOW, HashingLimits { slots: 2, queue: 1000 });
        let stored = passwords.hash("right").unwrap();
        // Each check is dropped as soon as its hash has started.
        for started in 1..=16 {
            let check = wrong_password_check(&passwords, &stored);
            while passwords.argon2_runs() < started {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            check.abort();
        }
        // And a burst given up a few milliseconds in, most of it while waiting for a slot.
        let burst: Vec<_> = (0..200).map(|_| wrong_password_check(&passwords, &stored)).collect();
        tokio::time::sleep(Duration::from_millis(4)).await;
        burst.iter().for_each(|check| check.abort());
        // Every slot and place free again: every hash still running has ended.
        drop(passwords.fill_queue().await);
        let most = |n: &std::sync::atomic::AtomicUsize| n.load(Ordering::SeqCst);
        assert!(
            most(&passwords.probe.most_running) <= 2,
            "{} hashes at once",
            most(&passwords.probe.most_running)
        );
        assert!(
            most(&passwords.probe.most_pooled) <= 2,
            "{} buffers pooled",
            most(&passwords.probe.most_pooled)
        );
        assert!(passwords.argon2_runs() >= 16);
        assert_eq!(most(&passwords.probe.running), 0);
    }

    #[test]
    fn the_buffer_pool_never_outgrows_the_slots_even_outside_them() {
        let passwords = Passwords::with_limits(FAST, HashingLimits { slots: 1, queue: 0 });
        let stored = passwords.hash("right").unwrap();
        let barrier = std::sync::Barrier::new(4);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    let buffer = passwords.take_working_memory(64);
                    barrier.wait();
                    passwords.return_working_memory(buffer);
                });
            }
        });
        assert_eq!(passwords.verify(Some(&stored), "right"), Verified::Yes);
        assert_eq!(passwords.working_memory.lock().unwrap().len(), 1);
        assert_eq!(passwords.probe.most_pooled.load(Ordering::SeqCst), 1);
    }

    /// Issue 13: the queue was unbounded, and 1,000 concurrent logins waited 7.1 s at the
    /// median. Now one hash runs and `queue` wait; the next is refused at once, hashing
    /// nothing, and those admitted are all served.
    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_serves_those_admitted() {
        let passwords = Passwords::with_limits(FAST, HashingLimits { slots: 1, queue: 2 });
        let stored = passwords.hash("right").unwrap();
        // A hash running: its place and its slot taken.
        let running = (
            passwords.admission.clone().try_acquire_owned().unwrap(),
            passwords.hashing.clone().try_acquire_owned().unwrap(),
        );
        let waiting: Vec<_> =
            (0..2).map(|_| passwords.admit().expect("within the queue")).collect();
        let refused = passwords.admit().err().expect("one beyond the queue is refused");
        assert_eq!(refused, Busy { retry_after_secs: 1 }, "at least a second");
        let checks: Vec<_> = waiting
            .into_iter()
            .map(|admitted| tokio::spawn(admitted.verify(Some(stored.clone()), "right".into())))
            .collect();
        drop(running);
        for check in checks {
            assert_eq!(check.await.unwrap().unwrap(), Verified::Yes);
        }
        assert_eq!(passwords.argon2_runs(), 2, "the refused check hashed nothing");
        passwords.admit().expect("a drained queue admits again");
    }

    #[test]
    fn retry_after_is_the_time_a_full_queue_takes_to_drain() {
        let passwords = Passwords::with_limits(FAST, HashingLimits { slots: 2, queue: 64 });
        assert_eq!(passwords.drain_secs(), 1, "before any hash: one second");
        passwords.current_cost_nanos.store(20_000_000, Ordering::Relaxed);
        assert_eq!(passwords.drain_secs(), 1, "33 hashes a slot at 20 ms: 0.66 s");
        passwords.current_cost_nanos.store(100_000_000, Ordering::Relaxed);
        assert_eq!(passwords.drain_secs(), 4, "33 hashes a slot at 100 ms: 3.3 s");
    }

    #[test]
    fn a_queue_limit_past_what_a_semaphore_counts_is_clamped() {
        let passwords = Passwords::with_limits(FAST, HashingLimits { slots: 0, queue: usize::MAX });
        assert_eq!(passwords.limits.slots, 1);
        passwords.admit().expect("admitted");
    }

    #[test]
    fn malformed_stored_hashes_never_verify() {
        let hasher = Passwords::new(FAST);
        assert_eq!(hasher.verify(Some("not-a-phc-string"), "pw"), Verified::No);
    }
}
