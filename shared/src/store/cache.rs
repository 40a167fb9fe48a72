//! A per-process cache of client records. A warm Lambda instance then authenticates a client
//! without a DynamoDB read, which keeps every grant within two round trips.
//!
//! Bound on staleness: a changed or deleted client (a rotated secret, a removed grant type) is
//! seen by every instance at most `ttl` after the change. Unknown clients are never cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{ClientStore, GrantRead, GrantRecords, StoreError};
use crate::clock::Clock;
use crate::domain::{Client, ClientId};

/// Entries held at most; past it the cache starts over, so memory stays bounded.
const MAX_ENTRIES: usize = 10_000;

pub struct CachedClients {
    inner: Arc<dyn ClientStore>,
    clock: Arc<dyn Clock>,
    ttl: u64,
    entries: Mutex<HashMap<ClientId, (Client, u64)>>,
}

impl CachedClients {
    pub fn new(inner: Arc<dyn ClientStore>, clock: Arc<dyn Clock>, ttl: u64) -> Self {
        Self { inner, clock, ttl, entries: Mutex::default() }
    }

    fn cached(&self, id: &ClientId, now: u64) -> Option<Client> {
        let entries = self.entries.lock().ok()?;
        let (client, fetched_at) = entries.get(id)?;
        (now < fetched_at + self.ttl).then(|| client.clone())
    }

    fn remember(&self, found: &Option<Client>, now: u64) {
        if let (Some(client), Ok(mut entries)) = (found, self.entries.lock()) {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(client.id.clone(), (client.clone(), now));
        }
    }
}

#[async_trait]
impl ClientStore for CachedClients {
    async fn client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        let now = self.clock.now();
        if let Some(client) = self.cached(id, now) {
            return Ok(Some(client));
        }
        let found = self.inner.client(id).await?;
        self.remember(&found, now);
        Ok(found)
    }

    /// A cached client leaves the grant's records to the caller (one read either way); a cold
    /// one is read together with them.
    async fn client_with(
        &self,
        id: &ClientId,
        next: GrantRead<'_>,
        now: u64,
    ) -> Result<(Option<Client>, Option<GrantRecords>), StoreError> {
        let cache_now = self.clock.now();
        if let Some(client) = self.cached(id, cache_now) {
            return Ok((Some(client), None));
        }
        let (found, records) = self.inner.client_with(id, next, now).await?;
        self.remember(&found, cache_now);
        Ok((found, records))
    }

    async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&client.id);
        }
        self.inner.put_client(client).await
    }

    /// Unknown clients are never cached, so a created client has no entry to drop.
    async fn create_client(&self, client: &Client) -> Result<bool, StoreError> {
        self.inner.create_client(client).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::{ClientSecret, ScopeSet, TenantPath};
    use crate::store::memory::MemoryStore;

    /// Counts reads that reach the store behind the cache.
    struct CountingStore(MemoryStore, AtomicUsize);

    #[async_trait]
    impl ClientStore for CountingStore {
        async fn client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.client(id).await
        }
        async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
            self.0.put_client(client).await
        }
        async fn create_client(&self, client: &Client) -> Result<bool, StoreError> {
            self.0.create_client(client).await
        }
    }

    fn client(lifetime: u64) -> Client {
        Client {
            id: ClientId::parse("cached").unwrap(),
            secret_digest: ClientSecret::generate().digest(),
            tenant: TenantPath::parse("/t").unwrap(),
            grants: Default::default(),
            scopes: ScopeSet::default(),
            max_access_token_lifetime: lifetime,
            refresh_idle_lifetime: 1,
            refresh_absolute_lifetime: 1,
        }
    }

    #[tokio::test]
    async fn serves_from_memory_until_the_ttl_then_reads_again() {
        let inner = Arc::new(CountingStore(MemoryStore::new(), AtomicUsize::new(0)));
        let clock = Arc::new(ManualClock::new(1_000));
        let cache = CachedClients::new(inner.clone(), clock.clone(), 30);
        let id = ClientId::parse("cached").unwrap();
        inner.put_client(&client(60)).await.unwrap();

        assert!(cache.client(&id).await.unwrap().is_some());
        assert!(cache.client(&id).await.unwrap().is_some());
        assert_eq!(inner.1.load(Ordering::SeqCst), 1, "second read served from memory");

        // A change made elsewhere is seen once the entry is older than the TTL.
        inner.put_client(&client(120)).await.unwrap();
        clock.advance(29);
        assert_eq!(cache.client(&id).await.unwrap().unwrap().max_access_token_lifetime, 60);
        clock.advance(1);
        assert_eq!(cache.client(&id).await.unwrap().unwrap().max_access_token_lifetime, 120);
    }

    #[tokio::test]
    async fn unknown_clients_are_not_cached() {
        let inner = Arc::new(CountingStore(MemoryStore::new(), AtomicUsize::new(0)));
        let cache = CachedClients::new(inner.clone(), Arc::new(ManualClock::new(0)), 30);
        let id = ClientId::parse("cached").unwrap();
        assert!(cache.client(&id).await.unwrap().is_none());
        inner.put_client(&client(60)).await.unwrap();
        assert!(cache.client(&id).await.unwrap().is_some(), "found as soon as it exists");
    }
}
