//! The in-memory store: the local server's default, and the reference the DynamoDB store is
//! checked against by the shared contract suite.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use async_trait::async_trait;

use super::{
    ClientStore, GrantStore, IssuanceFilter, IssuanceLog, IssuedToken, RevocationState,
    RevocationStore, Rotation, StoreError, TokenRef, UserStore, cutoff_layers,
};
use crate::domain::{
    Client, ClientId, Grant, GrantId, RefreshRecord, SecretDigest, TenantPath, TokenId, User,
    Username,
};

#[derive(Default)]
pub struct MemoryStore {
    clients: RwLock<HashMap<ClientId, Client>>,
    /// Revoked access tokens: expiry, device id.
    revoked: Mutex<HashMap<TokenId, (u64, Option<String>)>>,
    /// Batch cutoffs by layer key: (not_before, expires_at).
    cutoffs: Mutex<HashMap<String, (u64, u64)>>,
    users: RwLock<HashMap<(TenantPath, Username), User>>,
    /// Grants and refresh records share one lock so that rotation is atomic.
    grants: Mutex<Grants>,
    issued: Mutex<Vec<IssuedToken>>,
}

#[derive(Default)]
struct Grants {
    grants: HashMap<GrantId, Grant>,
    refresh: HashMap<SecretDigest, RefreshRecord>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
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
}

impl MemoryStore {
    fn log(&self, tokens: &[IssuedToken]) -> Result<(), StoreError> {
        let mut issued = self.issued.lock().map_err(|_| poisoned())?;
        for token in tokens {
            // Drop expired records as the log doubles, as TTL would, so memory stays bounded
            // by the number of live tokens.
            if issued.len() >= 1024 && issued.len().is_power_of_two() {
                issued.retain(|t| t.expires_at > token.issued_at);
            }
            issued.push(token.clone());
        }
        Ok(())
    }
}

#[async_trait]
impl IssuanceLog for MemoryStore {
    async fn record_issued(&self, token: &IssuedToken) -> Result<(), StoreError> {
        self.log(std::slice::from_ref(token))
    }

    async fn count_issued(
        &self,
        filter: &IssuanceFilter,
        issued_before: u64,
        now: u64,
    ) -> Result<u64, StoreError> {
        let issued = self.issued.lock().map_err(|_| poisoned())?;
        let live = issued
            .iter()
            .filter(|t| t.expires_at > now && t.issued_at < issued_before && filter.covers(t));
        Ok(live.count() as u64)
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
        if users.contains_key(&key) {
            return Ok(false);
        }
        users.insert(key, user.clone());
        Ok(true)
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
        let mut grants = self.grants.lock().map_err(|_| poisoned())?;
        grants.grants.insert(grant.id.clone(), grant.clone());
        grants.refresh.insert(refresh.digest.clone(), refresh.clone());
        self.log(issued)
    }

    async fn refresh_token(
        &self,
        grant: &GrantId,
        digest: &SecretDigest,
        now: u64,
    ) -> Result<Option<(RefreshRecord, Grant)>, StoreError> {
        let grants = self.grants.lock().map_err(|_| poisoned())?;
        let record =
            grants.refresh.get(digest).filter(|r| r.expires_at > now && r.grant_id == *grant);
        let Some(record) = record else {
            return Ok(None);
        };
        let grant = grants.grants.get(grant).filter(|g| g.expires_at > now);
        Ok(grant.map(|grant| (record.clone(), grant.clone())))
    }

    async fn rotate_refresh_token(
        &self,
        used: &RefreshRecord,
        next: &RefreshRecord,
        issued: &[IssuedToken],
        now: u64,
    ) -> Result<Rotation, StoreError> {
        let mut grants = self.grants.lock().map_err(|_| poisoned())?;
        match grants.refresh.get_mut(&used.digest) {
            Some(stored) if stored.used_at.is_none() && stored.expires_at > now => {
                stored.used_at = Some(now);
            }
            _ => return Ok(Rotation::AlreadyUsed),
        }
        grants.refresh.insert(next.digest.clone(), next.clone());
        self.log(issued)?;
        Ok(Rotation::Rotated)
    }

    async fn grant(&self, id: &GrantId, now: u64) -> Result<Option<Grant>, StoreError> {
        let grants = self.grants.lock().map_err(|_| poisoned())?;
        Ok(grants.grants.get(id).filter(|g| g.expires_at > now).cloned())
    }

    async fn revoke_grant(&self, id: &GrantId, now: u64) -> Result<(), StoreError> {
        let mut grants = self.grants.lock().map_err(|_| poisoned())?;
        if let Some(grant) = grants.grants.get_mut(id) {
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
        let token_revoked = self
            .revoked
            .lock()
            .map_err(|_| poisoned())?
            .get(token.id)
            .is_some_and(|(expires_at, _)| *expires_at > now);
        let grant = match token.grant {
            Some(id) => self
                .grants
                .lock()
                .map_err(|_| poisoned())?
                .grants
                .get(id)
                .filter(|g| g.expires_at > now)
                .cloned(),
            None => None,
        };
        let cutoffs = self.cutoffs.lock().map_err(|_| poisoned())?;
        let not_before = cutoff_layers(token)
            .filter_map(|layer| cutoffs.get(&layer))
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(not_before, _)| *not_before)
            .max();
        Ok(RevocationState { token_revoked, grant, not_before })
    }

    async fn revoke_token(
        &self,
        token: &TokenId,
        expires_at: u64,
        device_id: Option<&str>,
        _now: u64,
    ) -> Result<(), StoreError> {
        let mut revoked = self.revoked.lock().map_err(|_| poisoned())?;
        revoked.entry(token.clone()).or_insert_with(|| (expires_at, device_id.map(str::to_owned)));
        Ok(())
    }
}
