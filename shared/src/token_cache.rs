//! Access tokens whose signature and claims were already checked, remembered by a warm instance so
//! that a repeated token costs a digest instead of a signature verification.
//!
//! Only what the token itself proves is remembered. Whether it was revoked, cut off or belongs to a
//! disabled client is read from the store on every verification (`verify::Verifier::inspect`), so
//! a revocation takes effect on the next request whether or not the token is cached.

use std::mem::size_of;
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest::{SHA256, digest};
use lru::LruCache;

use crate::jwt::{AccessTokenClaims, verifiable_until};

/// How much a cache may hold: the first bound reached evicts the least recently used entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenCacheLimits {
    /// At most this many tokens; 0 turns the cache off.
    pub entries: usize,
    /// At most about this many bytes of keys and claims.
    pub bytes: usize,
}

impl Default for TokenCacheLimits {
    /// 10,000 tokens of a few hundred bytes each: a few MB, well within the smallest function.
    fn default() -> Self {
        Self { entries: 10_000, bytes: 8 * 1024 * 1024 }
    }
}

/// The SHA-256 digest of the whole token string: a token that differs in any byte, its signature
/// included, is another key, so a forgery never finds the entry of the token it imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        Self(bytes)
    }
}

struct Entry {
    claims: Arc<AccessTokenClaims>,
    weight: usize,
}

struct Entries {
    lru: LruCache<TokenDigest, Entry>,
    bytes: usize,
}

/// Verified claims by token digest, bounded in entries and bytes, least recently used out first.
/// Shared by every clone, so one instance's services fill and read one cache.
#[derive(Clone)]
pub struct VerifiedTokenCache {
    limits: TokenCacheLimits,
    entries: Option<Arc<Mutex<Entries>>>,
}

impl VerifiedTokenCache {
    pub fn new(limits: TokenCacheLimits) -> Self {
        // Unbounded to the LRU itself, which would size its map for the whole entry bound at
        // once; `insert` keeps both bounds.
        let entries = (limits.entries > 0)
            .then(|| Arc::new(Mutex::new(Entries { lru: LruCache::unbounded(), bytes: 0 })));
        Self { limits, entries }
    }

    /// The claims of a token verified before, unless it can no longer verify at `now`: an entry
    /// never outlives its token's `exp` (leeway included), and is dropped once past it.
    pub fn get(&self, token: &TokenDigest, now: u64) -> Option<Arc<AccessTokenClaims>> {
        let mut entries = self.lock()?;
        let claims = entries.lru.get(token)?.claims.clone();
        if now >= verifiable_until(claims.exp) {
            entries.remove(token);
            return None;
        }
        Some(claims)
    }

    /// Remembers the claims of a token that passed every signature and claim check.
    pub fn insert(&self, token: TokenDigest, claims: Arc<AccessTokenClaims>) {
        let weight = weight_of(&claims);
        if weight > self.limits.bytes {
            return;
        }
        let Some(mut entries) = self.lock() else { return };
        entries.remove(&token);
        while entries.bytes + weight > self.limits.bytes || entries.lru.len() >= self.limits.entries
        {
            let Some((_, evicted)) = entries.lru.pop_lru() else { break };
            entries.bytes -= evicted.weight;
        }
        entries.lru.put(token, Entry { claims, weight });
        entries.bytes += weight;
    }

    /// How many tokens and about how many bytes it holds.
    pub fn usage(&self) -> (usize, usize) {
        self.lock().map_or((0, 0), |entries| (entries.lru.len(), entries.bytes))
    }

    fn lock(&self) -> Option<std::sync::MutexGuard<'_, Entries>> {
        // A panic while holding the lock cannot leave an entry half written (each change is one
        // call into the LRU), so a poisoned lock is still sound to use.
        Some(self.entries.as_ref()?.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl Entries {
    fn remove(&mut self, token: &TokenDigest) {
        if let Some(removed) = self.lru.pop(token) {
            self.bytes -= removed.weight;
        }
    }
}

/// The bytes an entry holds: the LRU's node and map slot, the claims and their strings.
fn weight_of(claims: &AccessTokenClaims) -> usize {
    let strings = [&claims.iss, &claims.sub, &claims.aud, &claims.jti, &claims.client_id]
        .into_iter()
        .chain([&claims.scope, &claims.tenant])
        .chain(claims.sid.as_ref())
        .chain(claims.cnf.as_ref().map(|cnf| &cnf.jkt))
        .map(String::capacity)
        .sum::<usize>();
    // Per entry the LRU keeps a node (key, value and two links) and a map slot (key and pointer).
    let node = size_of::<TokenDigest>() + size_of::<Entry>() + 2 * size_of::<usize>();
    let slot = size_of::<TokenDigest>() + size_of::<usize>();
    node + slot + size_of::<AccessTokenClaims>() + strings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: &str, exp: u64) -> Arc<AccessTokenClaims> {
        Arc::new(AccessTokenClaims {
            iss: "https://issuer.example".into(),
            sub: "machine".into(),
            aud: "api".into(),
            exp,
            iat: exp - 300,
            nbf: None,
            jti: jti.into(),
            client_id: "machine".into(),
            scope: "read".into(),
            tenant: "/acme".into(),
            sid: None,
            cnf: None,
        })
    }

    #[test]
    fn a_hit_returns_the_claims_until_the_token_expires_then_never_again() {
        let cache = VerifiedTokenCache::new(TokenCacheLimits::default());
        let token = TokenDigest::of("header.payload.signature");
        cache.insert(token, claims("a", 1_000));
        assert_eq!(cache.get(&token, 999).map(|c| c.jti.clone()), Some("a".into()));
        let last_second = verifiable_until(1_000) - 1;
        assert!(cache.get(&token, last_second).is_some(), "within the leeway it still verifies");
        assert!(cache.get(&token, last_second + 1).is_none());
        assert_eq!(cache.usage(), (0, 0), "the expired entry was dropped, not kept");
    }

    #[test]
    fn the_least_recently_used_token_goes_first_when_the_entry_bound_is_reached() {
        let cache = VerifiedTokenCache::new(TokenCacheLimits { entries: 2, bytes: usize::MAX });
        let [a, b, c] = ["a", "b", "c"].map(TokenDigest::of);
        cache.insert(a, claims("a", 1_000));
        cache.insert(b, claims("b", 1_000));
        assert!(cache.get(&a, 0).is_some(), "a is now the most recently used");
        cache.insert(c, claims("c", 1_000));
        assert!(cache.get(&b, 0).is_none(), "b was the least recently used");
        assert!(cache.get(&a, 0).is_some() && cache.get(&c, 0).is_some());
    }

    #[test]
    fn the_byte_bound_holds_whatever_the_entry_bound() {
        let one = weight_of(&claims("0", 1_000));
        let cache = VerifiedTokenCache::new(TokenCacheLimits { entries: 1_000, bytes: 10 * one });
        for i in 0..100 {
            cache.insert(TokenDigest::of(&i.to_string()), claims(&(i % 10).to_string(), 1_000));
            let (entries, bytes) = cache.usage();
            assert!(bytes <= 10 * one, "{bytes} bytes in {entries} entries");
        }
        assert_eq!(cache.usage(), (10, 10 * one));
    }

    #[test]
    fn the_cache_holds_its_bounds_under_100k_distinct_tokens() {
        let limits = TokenCacheLimits::default();
        let cache = VerifiedTokenCache::new(limits);
        let token = |i: usize| TokenDigest::of(&format!("header.payload-{i}.signature"));
        for i in 0..100_000 {
            cache.insert(token(i), claims(&format!("{i:022}"), 1_000));
        }
        let (entries, bytes) = cache.usage();
        assert_eq!(entries, limits.entries, "the entry bound binds for tokens of this size");
        assert!(bytes <= limits.bytes, "{bytes}");
        assert!(cache.get(&token(99_999), 0).is_some() && cache.get(&token(89_999), 0).is_none());

        // Tokens with 4 KB of scopes: the byte bound binds first.
        let mut large = AccessTokenClaims::clone(&claims("large", 1_000));
        large.scope = "s".repeat(4096);
        let large = Arc::new(large);
        for i in 0..100_000 {
            cache.insert(token(i), large.clone());
        }
        let (entries, bytes) = cache.usage();
        assert!(bytes <= limits.bytes && entries < limits.entries, "{entries} entries, {bytes} B");
        assert_eq!(entries, limits.bytes / weight_of(&large));
    }

    #[test]
    fn reinserting_a_token_counts_its_bytes_once() {
        let cache = VerifiedTokenCache::new(TokenCacheLimits::default());
        let token = TokenDigest::of("t");
        cache.insert(token, claims("t", 1_000));
        cache.insert(token, claims("t", 1_000));
        assert_eq!(cache.usage(), (1, weight_of(&claims("t", 1_000))));
    }

    #[test]
    fn a_cache_of_no_entries_remembers_nothing() {
        let cache = VerifiedTokenCache::new(TokenCacheLimits { entries: 0, bytes: usize::MAX });
        cache.insert(TokenDigest::of("t"), claims("t", 1_000));
        assert!(cache.get(&TokenDigest::of("t"), 0).is_none());
    }
}
