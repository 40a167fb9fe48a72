//! The in-memory store: the local server's default, and the reference the DynamoDB store is
//! checked against by the shared contract suite.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use async_trait::async_trait;

use super::{ClientStore, IssuanceFilter, IssuanceLog, IssuedToken, StoreError};
use crate::domain::{Client, ClientId};

#[derive(Default)]
pub struct MemoryStore {
    clients: RwLock<HashMap<ClientId, Client>>,
    issued: Mutex<Vec<IssuedToken>>,
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
        Ok(self
            .clients
            .read()
            .map_err(|_| poisoned())?
            .get(id)
            .cloned())
    }

    async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        self.clients
            .write()
            .map_err(|_| poisoned())?
            .insert(client.id.clone(), client.clone());
        Ok(())
    }
}

#[async_trait]
impl IssuanceLog for MemoryStore {
    async fn record_issued(&self, token: &IssuedToken) -> Result<(), StoreError> {
        let mut issued = self.issued.lock().map_err(|_| poisoned())?;
        // Drop expired records as the log doubles, as TTL would, so memory stays bounded by the
        // number of live tokens.
        if issued.len() >= 1024 && issued.len().is_power_of_two() {
            issued.retain(|t| t.expires_at > token.issued_at);
        }
        issued.push(token.clone());
        Ok(())
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
