//! Login defence: progressive waits after consecutive failed password logins, counted per
//! (tenant, username, source address) and per (tenant, username).
//!
//! A plain per-account lockout lets anyone lock any user out. Here a source that keeps failing
//! waits on its own, and only a campaign from many sources (the per-username threshold) makes
//! every source wait; both waits double per further failure up to a cap, so no wait is longer
//! than the cap after the last failure.

use std::fmt;
use std::net::IpAddr;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{TenantPath, Username};

/// The thresholds and waits, deployment settings with the contract's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginDefenceSettings {
    /// Consecutive failures from one source before that source waits (default 5).
    pub source_threshold: u64,
    /// Consecutive failures from all sources before every source waits (default 20).
    pub username_threshold: u64,
    /// The first wait, in seconds (default 1); each further failure doubles it.
    pub first_wait: u64,
    /// The longest wait, in seconds (default 900).
    pub max_wait: u64,
}

impl Default for LoginDefenceSettings {
    fn default() -> Self {
        Self { source_threshold: 5, username_threshold: 20, first_wait: 1, max_wait: 900 }
    }
}

impl LoginDefenceSettings {
    /// The wait after `failures` consecutive failures against `threshold`: none below it, the
    /// first wait at it, doubling per failure after, never above the cap.
    pub fn wait_after(&self, failures: u64, threshold: u64) -> Option<u64> {
        let beyond = failures.checked_sub(threshold)?;
        let doubled = self
            .first_wait
            .saturating_mul(1u64.checked_shl(beyond.min(63) as u32).unwrap_or(u64::MAX));
        Some(doubled.min(self.max_wait))
    }

    /// Until when a login must wait given both counters, if it must.
    pub fn waiting_until(&self, attempts: &LoginAttempts) -> Option<u64> {
        let window = |counter: &Option<FailureCount>, threshold| {
            let counter = counter.as_ref()?;
            Some(counter.last_failure_at + self.wait_after(counter.failures, threshold)?)
        };
        let by_source = window(&attempts.by_source, self.source_threshold);
        let by_username = window(&attempts.by_username, self.username_threshold);
        by_source.max(by_username)
    }

    /// How long counters are kept after the last failure: long past the longest wait, so a slow
    /// campaign still climbs, yet they do not outlive a day of quiet.
    pub fn counter_lifetime(&self) -> u64 {
        (self.max_wait * 4).max(24 * 3600)
    }
}

/// Consecutive failures, and when the last one was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailureCount {
    pub failures: u64,
    pub last_failure_at: u64,
}

/// Both counters of one login attempt, as read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoginAttempts {
    pub by_source: Option<FailureCount>,
    pub by_username: Option<FailureCount>,
    /// The source counter's revision (0: none kept), raised by every failure settled: a login's
    /// success is honoured only if it is still this when its session starts. Guesses sent in
    /// parallel all read the same revision and the first failure to settle raises it, so a
    /// right guess among wrong ones counts only if it settles first, as if they had come one
    /// at a time.
    pub source_revision: u64,
    /// When an operator last cleared the username's counters (0: never): a source's count from
    /// before then no longer counts.
    pub unlocked_at: u64,
}

impl LoginAttempts {
    pub fn is_clear(&self) -> bool {
        self.by_source.is_none() && self.by_username.is_none()
    }
}

/// Where a login came from: API Gateway's `requestContext.http.sourceIp`, or the local server's
/// peer address. Never a header a client writes. An IPv6 address counts as its /64, the block a
/// single subscriber is usually given: otherwise one client would hold 2^64 sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceAddress(IpAddr);

impl SourceAddress {
    pub fn new(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let block = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(std::net::Ipv6Addr::from(block)))
                }
            },
            v4 => Self(v4),
        }
    }

    /// An address given as text (API Gateway's `sourceIp`); `None` when it is not one.
    pub fn parse(raw: &str) -> Option<Self> {
        raw.parse().ok().map(Self::new)
    }
}

impl fmt::Display for SourceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What the counters of one login are kept under: the tenant, a digest of the username (so
/// neither the table nor a log line holds the name in clear) and the source.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LoginKey {
    pub tenant: TenantPath,
    pub username_digest: String,
    pub source: SourceAddress,
}

impl LoginKey {
    pub fn new(tenant: &TenantPath, username: &Username, source: SourceAddress) -> Self {
        Self { tenant: tenant.clone(), username_digest: username_digest(tenant, username), source }
    }
}

/// SHA-256 of tenant and username, unpadded base64url: the same name in two tenants gives two
/// digests.
pub fn username_digest(tenant: &TenantPath, username: &Username) -> String {
    let hashed = digest(&SHA256, format!("{tenant}\0{username}").as_bytes());
    URL_SAFE_NO_PAD.encode(hashed.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_begin_at_the_threshold_double_and_cap() {
        let settings = LoginDefenceSettings::default();
        let waits: Vec<Option<u64>> = (3..=16).map(|f| settings.wait_after(f, 5)).collect();
        assert_eq!(
            waits,
            [
                None,
                None,
                Some(1),
                Some(2),
                Some(4),
                Some(8),
                Some(16),
                Some(32),
                Some(64),
                Some(128),
                Some(256),
                Some(512),
                Some(900),
                Some(900)
            ]
        );
        assert_eq!(settings.wait_after(u64::MAX, 5), Some(900), "no overflow");
    }

    #[test]
    fn the_later_of_both_windows_applies() {
        let settings = LoginDefenceSettings::default();
        let count = |failures, last_failure_at| Some(FailureCount { failures, last_failure_at });
        let source_only = LoginAttempts {
            by_source: count(6, 100),
            by_username: count(6, 100),
            source_revision: 6,
            unlocked_at: 0,
        };
        assert_eq!(settings.waiting_until(&source_only), Some(102));
        let campaign = LoginAttempts {
            by_source: count(1, 100),
            by_username: count(21, 100),
            source_revision: 1,
            unlocked_at: 0,
        };
        assert_eq!(settings.waiting_until(&campaign), Some(102));
        assert_eq!(settings.waiting_until(&LoginAttempts::default()), None);
    }

    #[test]
    fn an_ipv6_source_is_its_64_block_and_a_mapped_ipv4_is_itself() {
        let a = SourceAddress::parse("2001:db8:1:2:aaaa::1").unwrap();
        let b = SourceAddress::parse("2001:db8:1:2:ffff:ffff:ffff:ffff").unwrap();
        let other = SourceAddress::parse("2001:db8:1:3::1").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(a.to_string(), "2001:db8:1:2::");
        let mapped = SourceAddress::parse("::ffff:192.0.2.7").unwrap();
        assert_eq!(mapped, SourceAddress::parse("192.0.2.7").unwrap());
    }

    #[test]
    fn a_username_digest_depends_on_the_tenant() {
        let alice = Username::parse("alice").unwrap();
        let acme = TenantPath::parse("/acme").unwrap();
        let globex = TenantPath::parse("/globex").unwrap();
        assert_ne!(username_digest(&acme, &alice), username_digest(&globex, &alice));
        assert!(!username_digest(&acme, &alice).contains("alice"));
    }
}
