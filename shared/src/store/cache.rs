//! A per-process cache of client records. A warm Lambda instance then authenticates a client
//! without a DynamoDB read, which keeps every grant within two round trips.
//!
//! Bound on staleness: a changed or deleted client (a removed grant type, a disabled client) is
//! seen by every instance at most `ttl` after the change. A secret the cached record refuses is
//! checked against the stored record before it is refused, so a rotated secret, or a client
//! enabled again, works at once. Unknown clients are never cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{
    Accept, ClientPosition, ClientStore, GrantRead, GrantRecords, Page, PageRequest, StoreError,
};
use crate::clock::Clock;
use crate::domain::{Client, ClientId, TenantPath};

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

    fn forget(&self, id: &ClientId) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(id);
        }
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
            return Ok((Some(client), self.inner.grant_records(next, now).await?));
        }
        let (found, records) = self.inner.client_with(id, next, now).await?;
        self.remember(&found, cache_now);
        Ok((found, records))
    }

    /// A cached record that fails `accept` may predate a change made elsewhere (a rotated
    /// secret, a re-enabled client): it is read again from the store, once, and cached anew.
    async fn client_accepted(
        &self,
        id: &ClientId,
        accept: Accept<'_>,
    ) -> Result<Option<Client>, StoreError> {
        let now = self.clock.now();
        match self.cached(id, now) {
            Some(client) if accept(&client) => Ok(Some(client)),
            _ => {
                let found = self.inner.client(id).await?;
                self.remember(&found, now);
                Ok(found)
            }
        }
    }

    async fn client_with_accepted(
        &self,
        id: &ClientId,
        next: GrantRead<'_>,
        now: u64,
        accept: Accept<'_>,
    ) -> Result<(Option<Client>, Option<GrantRecords>), StoreError> {
        let cache_now = self.clock.now();
        match self.cached(id, cache_now) {
            Some(client) if accept(&client) => {
                Ok((Some(client), self.inner.grant_records(next, now).await?))
            }
            _ => {
                let (found, records) = self.inner.client_with(id, next, now).await?;
                self.remember(&found, cache_now);
                Ok((found, records))
            }
        }
    }

    async fn grant_records(
        &self,
        next: GrantRead<'_>,
        now: u64,
    ) -> Result<Option<GrantRecords>, StoreError> {
        self.inner.grant_records(next, now).await
    }

    /// Unknown clients are never cached, so a created client has no entry to drop.
    async fn create_client(&self, client: &Client) -> Result<bool, StoreError> {
        self.inner.create_client(client).await
    }

    /// Drops this process's entry; other processes see the change within `ttl`.
    async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
        self.forget(&client.id);
        self.inner.update_client(client).await
    }

    async fn delete_client(&self, client: &Client) -> Result<bool, StoreError> {
        self.forget(&client.id);
        self.inner.delete_client(client).await
    }

    async fn clients(
        &self,
        within: &TenantPath,
        page: PageRequest<'_, ClientPosition>,
    ) -> Result<Page<Client, ClientPosition>, StoreError> {
        self.inner.clients(within, page).await
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
        async fn create_client(&self, client: &Client) -> Result<bool, StoreError> {
            self.0.create_client(client).await
        }
        async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
            self.0.update_client(client).await
        }
        async fn delete_client(&self, client: &Client) -> Result<bool, StoreError> {
            self.0.delete_client(client).await
        }
        async fn clients(
            &self,
            within: &TenantPath,
            page: PageRequest<'_, ClientPosition>,
        ) -> Result<Page<Client, ClientPosition>, StoreError> {
            self.0.clients(within, page).await
        }
    }

    fn client(lifetime: u64) -> Client {
        Client {
            id: ClientId::parse("cached").unwrap(),
            credentials: crate::domain::Credentials::secret(ClientSecret::generate().digest()),
            tenant: TenantPath::parse("/t").unwrap(),
            grants: Default::default(),
            scopes: ScopeSet::default(),
            max_access_token_lifetime: lifetime,
            refresh_idle_lifetime: 1,
            refresh_absolute_lifetime: 1,
            refresh_reuse_interval: 0,
            dpop_bound_access_tokens: false,
            enabled: true,
            version: 0,
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

    /// Another process rotates the secret while this one holds the client cached: the new secret
    /// works at once (one read past the cache, which then holds the new record), and a wrong
    /// secret costs one store read, as an unknown client does.
    #[tokio::test]
    async fn a_secret_rotated_elsewhere_is_accepted_through_a_warm_cache() {
        use crate::auth::{Authenticator, PresentedClient};
        use crate::domain::Credentials;
        use crate::error::Error;

        let inner = Arc::new(CountingStore(MemoryStore::new(), AtomicUsize::new(0)));
        let clock = Arc::new(ManualClock::new(1_000));
        let cache = Arc::new(CachedClients::new(inner.clone(), clock.clone(), 30));
        let replays = Arc::new(MemoryStore::new());
        let auth = Authenticator::new(cache, replays, clock.clone(), "https://i".into());
        let reads = || inner.1.load(Ordering::SeqCst);
        let presented = |secret: &ClientSecret| PresentedClient::secret("cached", secret.expose());
        let (old, new) = (ClientSecret::generate(), ClientSecret::generate());
        let mut stored = client(60);
        stored.credentials = Credentials::secret(old.digest());
        inner.put_client(&stored).await.unwrap();
        auth.authenticate(&presented(&old)).await.unwrap();
        auth.authenticate(&presented(&old)).await.unwrap();
        assert_eq!(reads(), 1, "warm");

        let mut rotated = inner.client(&stored.id).await.unwrap().unwrap();
        rotated.credentials = Credentials::secret(new.digest());
        assert!(inner.update_client(&rotated).await.unwrap(), "rotated by another process");
        let before = reads();
        auth.authenticate(&presented(&new)).await.expect("the new secret works at once");
        assert_eq!(reads(), before + 1, "one read past the cache");
        auth.authenticate(&presented(&new)).await.unwrap();
        assert_eq!(reads(), before + 1, "and the cache holds the new record");

        let before = reads();
        let wrong = auth.authenticate(&presented(&old)).await.unwrap_err();
        assert!(matches!(wrong, Error::InvalidClient), "{wrong:?}");
        assert_eq!(reads(), before + 1, "a wrong secret: one store read");
        let unknown = PresentedClient::secret("nobody", new.expose());
        let unknown = auth.authenticate(&unknown).await.unwrap_err();
        assert!(matches!(unknown, Error::InvalidClient), "{unknown:?}");
        assert_eq!(reads(), before + 2, "an unknown client: one store read too");
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
