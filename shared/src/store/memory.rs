//! The in-memory store: the local server's default, and the reference the DynamoDB store is
//! checked against by the shared contract suite.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;

use super::{
    ClientStore, CutoffGuard, GrantStore, IssuanceFilter, IssuanceLog, IssuedToken,
    RevocationRecord, RevocationState, RevocationStore, Rotation, StoreError, TokenRef, UserStore,
};
use crate::domain::{
    Client, ClientId, Grant, GrantId, RefreshRecord, SecretDigest, TenantPath, TokenId, User,
    UserId, Username,
};

#[derive(Default)]
pub struct MemoryStore {
    clients: RwLock<HashMap<ClientId, Client>>,
    users: RwLock<HashMap<(TenantPath, Username), User>>,
    /// Grants, refresh records, cutoffs and the log share one lock, so that a rotation (which
    /// checks cutoffs and writes the log) is atomic, as the DynamoDB transaction is.
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    grants: HashMap<GrantId, Grant>,
    refresh: HashMap<SecretDigest, RefreshRecord>,
    /// Revoked access tokens: expiry, device id.
    revoked: HashMap<TokenId, (u64, Option<String>)>,
    /// Batch cutoffs by layer: (not_before, expires_at).
    cutoffs: HashMap<String, (u64, u64)>,
    issued: IssuanceChunks,
    /// Log entries of tokens revoked on their own or (refresh tokens) used, with when each
    /// entry expires: past that it is pruned with the log.
    spent: HashMap<TokenId, u64>,
}

/// Entries a sealed chunk of the log holds.
const CHUNK: usize = 4096;

/// The issuance log as sealed, shared chunks and an open tail. A count copies the list of
/// chunks under the lock (a few hundred pointers for a million entries) and reads them after
/// releasing it, so counting never holds issuance up for longer than that copy.
#[derive(Default)]
struct IssuanceChunks {
    /// Each holds exactly [`CHUNK`] entries.
    sealed: Vec<Arc<Vec<IssuedToken>>>,
    open: Vec<IssuedToken>,
}

impl IssuanceChunks {
    fn push(&mut self, token: IssuedToken) {
        self.open.push(token);
        if self.open.len() == CHUNK {
            self.sealed.push(Arc::new(std::mem::take(&mut self.open)));
        }
    }

    fn len(&self) -> usize {
        self.sealed.len() * CHUNK + self.open.len()
    }

    fn snapshot(&self) -> (Vec<Arc<Vec<IssuedToken>>>, Vec<IssuedToken>) {
        (self.sealed.clone(), self.open.clone())
    }

    /// Keeps the entries not yet expired at `now`, rebuilding the chunks.
    fn prune(&mut self, now: u64) {
        let old = std::mem::take(self);
        let entries = old.sealed.into_iter().flat_map(Arc::unwrap_or_clone).chain(old.open);
        for token in entries.filter(|t| t.expires_at > now) {
            self.push(token);
        }
    }
}

impl State {
    fn log(&mut self, tokens: &[IssuedToken]) {
        for token in tokens {
            // Drop expired entries as the log doubles, as TTL would, so memory stays bounded by
            // the number of live tokens.
            let logged = self.issued.len();
            if logged >= 1024 && logged.is_power_of_two() {
                let now = token.issued_at;
                self.issued.prune(now);
                self.spent.retain(|_, expires_at| *expires_at > now);
                self.refresh.retain(|_, r| r.expires_at > now);
                self.revoked.retain(|_, (expires_at, _)| *expires_at > now);
                self.grants.retain(|_, g| g.expires_at > now);
            }
            self.issued.push(token.clone());
        }
    }

    fn cutoff(&self, layer: &str, now: u64) -> Option<u64> {
        self.cutoffs.get(layer).filter(|(_, expires_at)| *expires_at > now).map(|(nb, _)| *nb)
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        self.state.lock().map_err(|_| poisoned())
    }
}

fn poisoned() -> StoreError {
    StoreError("in-memory store lock poisoned".into())
}

#[async_trait]
impl ClientStore for MemoryStore {
    async fn client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        Ok(self.clients.read().map_err(|_| poisoned())?.get(id).cloned())
    }

    async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        self.clients.write().map_err(|_| poisoned())?.insert(client.id.clone(), client.clone());
        Ok(())
    }

    async fn create_client(&self, client: &Client) -> Result<bool, StoreError> {
        let mut clients = self.clients.write().map_err(|_| poisoned())?;
        if clients.contains_key(&client.id) {
            return Ok(false);
        }
        clients.insert(client.id.clone(), client.clone());
        Ok(true)
    }
}

#[async_trait]
impl IssuanceLog for MemoryStore {
    async fn record_issued(&self, token: &IssuedToken) -> Result<(), StoreError> {
        self.state()?.log(std::slice::from_ref(token));
        Ok(())
    }

    async fn live_issued(
        &self,
        filter: &IssuanceFilter,
        now: u64,
    ) -> Result<Vec<IssuedToken>, StoreError> {
        let (sealed, open) = self.state()?.issued.snapshot();
        let (filter, state) = (filter.clone(), self.state.clone());
        // Scanning a large log takes a while: off the async workers, and outside the lock but
        // for the spent flags, which change under it and so are read under it, chunk by chunk.
        tokio::task::spawn_blocking(move || {
            let mut live = Vec::new();
            for chunk in sealed.iter().map(|chunk| chunk.as_slice()).chain([open.as_slice()]) {
                let covered: Vec<&IssuedToken> =
                    chunk.iter().filter(|t| t.expires_at > now && filter.covers(t)).collect();
                let state = state.lock().map_err(|_| poisoned())?;
                live.extend(
                    covered.into_iter().filter(|t| !state.spent.contains_key(&t.id)).cloned(),
                );
            }
            Ok(live)
        })
        .await
        .map_err(|e| StoreError(format!("scanning the issuance log: {e}")))?
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn user(
        &self,
        tenant: &TenantPath,
        username: &Username,
    ) -> Result<Option<User>, StoreError> {
        let users = self.users.read().map_err(|_| poisoned())?;
        Ok(users.get(&(tenant.clone(), username.clone())).cloned())
    }

    async fn create_user(&self, user: &User) -> Result<bool, StoreError> {
        let mut users = self.users.write().map_err(|_| poisoned())?;
        let key = (user.tenant.clone(), user.username.clone());
        // A user id is one user's, as the table's id entry makes it.
        if users.contains_key(&key) || users.values().any(|other| other.id == user.id) {
            return Ok(false);
        }
        users.insert(key, user.clone());
        Ok(true)
    }

    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        let mut users = self.users.write().map_err(|_| poisoned())?;
        let taken = users.values().any(|other| {
            other.id == user.id && (other.tenant != user.tenant || other.username != user.username)
        });
        if taken {
            return Err(StoreError(format!("user id {} belongs to another user", user.id)));
        }
        users.insert((user.tenant.clone(), user.username.clone()), user.clone());
        Ok(())
    }

    async fn tenant_of_user(&self, id: &UserId) -> Result<Option<TenantPath>, StoreError> {
        let users = self.users.read().map_err(|_| poisoned())?;
        Ok(users.values().find(|user| user.id == *id).map(|user| user.tenant.clone()))
    }

    async fn replace_password_hash(&self, user: &User, new_hash: &str) -> Result<bool, StoreError> {
        let mut users = self.users.write().map_err(|_| poisoned())?;
        match users.get_mut(&(user.tenant.clone(), user.username.clone())) {
            Some(stored) if stored.password_hash == user.password_hash => {
                stored.password_hash = new_hash.to_owned();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl GrantStore for MemoryStore {
    async fn start_grant(
        &self,
        grant: &Grant,
        refresh: &RefreshRecord,
        issued: &[IssuedToken],
    ) -> Result<(), StoreError> {
        let mut state = self.state()?;
        state.grants.insert(grant.id.clone(), grant.clone());
        state.refresh.insert(refresh.digest.clone(), refresh.clone());
        state.log(issued);
        Ok(())
    }

    async fn refresh_token(
        &self,
        grant: &GrantId,
        digest: &SecretDigest,
        now: u64,
    ) -> Result<Option<(RefreshRecord, Grant)>, StoreError> {
        let state = self.state()?;
        let record =
            state.refresh.get(digest).filter(|r| r.expires_at > now && r.grant_id == *grant);
        let Some(record) = record else {
            return Ok(None);
        };
        let grant = state.grants.get(grant).filter(|g| g.expires_at > now);
        Ok(grant.map(|grant| (record.clone(), grant.clone())))
    }

    async fn rotate_refresh_token(
        &self,
        used: &RefreshRecord,
        next: &RefreshRecord,
        issued: &[IssuedToken],
        guard: &CutoffGuard,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        let mut state = self.state()?;
        match state.refresh.get(&used.digest) {
            Some(stored) if stored.used_at.is_none() && stored.expires_at > now => {}
            _ => return Ok(Rotation::AlreadyUsed),
        }
        let cut_off = guard
            .layers
            .iter()
            .any(|layer| state.cutoff(layer, now).is_some_and(|nb| nb > guard.grant_created_at));
        if cut_off {
            return Ok(Rotation::CutOff);
        }
        if let Some(stored) = state.refresh.get_mut(&used.digest) {
            stored.used_at = Some(now);
        }
        state.spent.insert(used.digest.token_id(), used.expires_at);
        state.refresh.insert(next.digest.clone(), next.clone());
        state.log(issued);
        Ok(Rotation::Rotated)
    }

    async fn grant(&self, id: &GrantId, now: u64) -> Result<Option<Grant>, StoreError> {
        Ok(self.state()?.grants.get(id).filter(|g| g.expires_at > now).cloned())
    }

    async fn grants(
        &self,
        ids: &[GrantId],
        now: u64,
    ) -> Result<HashMap<GrantId, Grant>, StoreError> {
        let state = self.state()?;
        let found = ids.iter().filter_map(|id| state.grants.get(id)).filter(|g| g.expires_at > now);
        Ok(found.map(|g| (g.id.clone(), g.clone())).collect())
    }

    async fn revoke_grant(&self, id: &GrantId, now: u64) -> Result<(), StoreError> {
        if let Some(grant) = self.state()?.grants.get_mut(id) {
            grant.revoked_at.get_or_insert(now);
        }
        Ok(())
    }
}

#[async_trait]
impl RevocationStore for MemoryStore {
    async fn revocation_state(
        &self,
        token: &TokenRef<'_>,
        now: u64,
    ) -> Result<RevocationState, StoreError> {
        let state = self.state()?;
        let token_revoked =
            state.revoked.get(token.id).is_some_and(|(expires_at, _)| *expires_at > now);
        let grant =
            token.grant.and_then(|id| state.grants.get(id)).filter(|g| g.expires_at > now).cloned();
        let not_before = token.layers().iter().filter_map(|layer| state.cutoff(layer, now)).max();
        Ok(RevocationState { token_revoked, grant, not_before })
    }

    async fn revoke_token(
        &self,
        token: &TokenId,
        expires_at: u64,
        device_id: Option<&str>,
        _now: u64,
    ) -> Result<(), StoreError> {
        let mut state = self.state()?;
        state
            .revoked
            .entry(token.clone())
            .or_insert_with(|| (expires_at, device_id.map(str::to_owned)));
        state.spent.insert(token.clone(), expires_at);
        Ok(())
    }

    async fn revocation_record(
        &self,
        token: &TokenId,
        now: u64,
    ) -> Result<Option<RevocationRecord>, StoreError> {
        let state = self.state()?;
        Ok(state.revoked.get(token).filter(|(expires_at, _)| *expires_at > now).map(
            |(expires_at, device_id)| RevocationRecord {
                expires_at: *expires_at,
                device_id: device_id.clone(),
            },
        ))
    }

    async fn raise_cutoff(
        &self,
        layer: &str,
        not_before: u64,
        expires_at: u64,
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut state = self.state()?;
        let previous = state.cutoff(layer, now);
        if previous.is_none_or(|previous| previous < not_before) {
            state.cutoffs.insert(layer.to_owned(), (not_before, expires_at));
        }
        Ok(previous)
    }

    async fn cutoffs(
        &self,
        layers: &[String],
        now: u64,
    ) -> Result<HashMap<String, u64>, StoreError> {
        let state = self.state()?;
        Ok(layers
            .iter()
            .filter_map(|layer| Some((layer.clone(), state.cutoff(layer, now)?)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::domain::TenantPath;
    use crate::store::TokenKind;

    fn entry(issued_at: u64, expires_at: u64) -> IssuedToken {
        IssuedToken {
            id: TokenId::generate(),
            kind: TokenKind::Access,
            tenant: TenantPath::parse("/acme/sales").unwrap(),
            client_id: ClientId::parse("app").unwrap(),
            subject: "app".into(),
            grant: None,
            issued_at,
            expires_at,
        }
    }

    /// Counting reads a snapshot of the log outside the lock: while one count scans 300,000
    /// entries, issuance goes on. Holding the lock for the scan let no token out until it ended.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counting_a_large_log_never_holds_issuance_up() {
        let store = Arc::new(MemoryStore::new());
        {
            let mut state = store.state().unwrap();
            for _ in 0..300_000 {
                state.issued.push(entry(100, 10_000));
            }
        }
        let filter = IssuanceFilter {
            tenant: TenantPath::parse("/acme").unwrap(),
            client_id: None,
            subject: None,
        };
        let counted = Arc::new(AtomicBool::new(false));
        let (started, counting_started) = tokio::sync::oneshot::channel();
        let count = tokio::spawn({
            let (store, counted) = (store.clone(), counted.clone());
            async move {
                let _ = started.send(());
                let live = store.live_issued(&filter, 200).await.unwrap();
                counted.store(true, Ordering::SeqCst);
                live.len()
            }
        });
        counting_started.await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let mut issued_meanwhile = 0;
        while !counted.load(Ordering::SeqCst) {
            store.record_issued(&entry(200, 10_000)).await.unwrap();
            issued_meanwhile += 1;
        }
        assert!(count.await.unwrap() >= 300_000);
        assert!(issued_meanwhile >= 50, "only {issued_meanwhile} tokens issued during the count");
    }

    /// Spent flags go with the log entries they flag: pruned once those have expired.
    #[tokio::test]
    async fn spent_flags_are_pruned_with_the_log() {
        let store = MemoryStore::new();
        for _ in 0..2_000 {
            store.revoke_token(&TokenId::generate(), 500, None, 100).await.unwrap();
        }
        let lasting = TokenId::generate();
        store.revoke_token(&lasting, 10_000, None, 100).await.unwrap();
        assert_eq!(store.state().unwrap().spent.len(), 2_001);
        for _ in 0..2_048 {
            store.record_issued(&entry(600, 10_000)).await.unwrap();
        }
        let state = store.state().unwrap();
        assert_eq!(state.spent.len(), 1, "expired flags pruned, the live one kept");
        assert!(state.spent.contains_key(&lasting));
    }
}
