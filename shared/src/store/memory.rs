//! The in-memory store: the local server's default, and the reference the DynamoDB store is
//! checked against by the shared contract suite.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;

use super::{
    ClientPosition, ClientStore, CutoffCopy, CutoffGuard, GrantStore, IssuanceFilter, IssuanceLog,
    IssuedToken, LoginAttemptStore, Page, PageRequest, Reissue, ReplayStore, RevocationRecord,
    RevocationState, RevocationStore, Rotation, SessionPosition, StoreError, Successor,
    TenantDeletion, TenantStore, TokenRef, UserPosition, UserStore, list_key,
};
use crate::domain::{
    Client, ClientId, DeviceId, FailureCount, Grant, GrantId, LoginAttempts, LoginKey,
    RefreshRecord, ReplayKey, SecretDigest, SourceAddress, TenantPath, TokenId, User, UserId,
    Username,
};

#[derive(Default)]
pub struct MemoryStore {
    /// Tenants, clients and users share one lock, so that a tenant is deleted only while
    /// nothing is in it, as the table's counts make it.
    directory: RwLock<Directory>,
    /// Grants, refresh records, cutoffs and the log share one lock, so that a rotation (which
    /// checks cutoffs and writes the log) is atomic, as the DynamoDB transaction is.
    state: Arc<Mutex<State>>,
    /// One-time JWT ids and when each may be forgotten.
    replays: Mutex<HashMap<ReplayKey, u64>>,
}

#[derive(Default)]
struct Directory {
    tenants: BTreeSet<TenantPath>,
    clients: HashMap<ClientId, Client>,
    users: HashMap<(TenantPath, Username), User>,
}

impl Directory {
    fn holds_anything(&self, tenant: &TenantPath) -> bool {
        self.clients.values().any(|client| client.tenant == *tenant)
            || self.users.values().any(|user| user.tenant == *tenant)
            || self.tenants.iter().any(|other| other != tenant && other.is_within(tenant))
    }
}

/// One page of `items` in the order of `key`, restricted to `within`'s subtree, after `after`.
fn page_of<T, P>(
    items: impl Iterator<Item = T>,
    within: &TenantPath,
    page: PageRequest<'_, P>,
    key: impl Fn(&T) -> String,
    position_key: impl Fn(&P) -> String,
    position: impl Fn(&T) -> P,
) -> Page<T, P> {
    let prefix = list_key::subtree(within);
    let after = page.after.map(position_key);
    let mut keyed: Vec<(String, T)> = items
        .map(|item| (key(&item), item))
        .filter(|(key, _)| key.starts_with(&prefix) && after.as_ref().is_none_or(|a| key > a))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let more = keyed.len() > page.limit;
    let items: Vec<T> = keyed.into_iter().take(page.limit).map(|(_, item)| item).collect();
    let next = if more { items.last().map(position) } else { None };
    Page { items, next }
}

#[derive(Default)]
struct State {
    grants: HashMap<GrantId, Grant>,
    refresh: HashMap<SecretDigest, RefreshRecord>,
    /// Revoked access tokens: expiry, device id.
    revoked: HashMap<TokenId, (u64, Option<String>)>,
    /// Batch cutoffs by layer and copy: (not_before, expires_at). Kept per copy, as the table
    /// keeps them, so the contract suite can read each copy and plant one out of step.
    cutoffs: HashMap<(String, CutoffCopy), (u64, u64)>,
    issued: IssuanceChunks,
    /// Login-defence counters: by tenant, username digest and source (`None`: every source),
    /// with when each expires.
    login_failures: HashMap<(TenantPath, String, Option<SourceAddress>), (FailureCount, u64)>,
    /// Each source counter's revision, as the table keeps it: raised by every failure settled,
    /// kept by a success and an unlock, gone when the counter expires.
    login_revisions: HashMap<(TenantPath, String, SourceAddress), u64>,
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

    fn login_revision(&self, key: &LoginKey) -> u64 {
        let source = (key.tenant.clone(), key.username_digest.clone(), key.source);
        self.login_revisions.get(&source).copied().unwrap_or(0)
    }

    /// Clears both counters, as a success does; the source's revision stays.
    fn clear_login(&mut self, key: &LoginKey) {
        for counter in login_counters(key) {
            self.login_failures.remove(&counter);
        }
    }

    fn cutoff_copy(&self, layer: &str, copy: CutoffCopy, now: u64) -> Option<u64> {
        let stored = self.cutoffs.get(&(layer.to_owned(), copy));
        stored.filter(|(_, expires_at)| *expires_at > now).map(|(nb, _)| *nb)
    }

    /// The cutoff as every reader but a verification sees it: its first copy.
    fn cutoff(&self, layer: &str, now: u64) -> Option<u64> {
        self.cutoff_copy(layer, CutoffCopy::FIRST, now)
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores one copy of a cutoff alone, as only a function from before copies does: how tests
    /// put a copy out of step with the others to see that a raise brings them all level.
    pub fn plant_cutoff_copy(
        &self,
        layer: &str,
        copy: CutoffCopy,
        not_before: u64,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.state()?.cutoffs.insert((layer.to_owned(), copy), (not_before, expires_at));
        Ok(())
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        self.state.lock().map_err(|_| poisoned())
    }

    fn directory(&self) -> Result<RwLockReadGuard<'_, Directory>, StoreError> {
        self.directory.read().map_err(|_| poisoned())
    }

    fn directory_mut(&self) -> Result<RwLockWriteGuard<'_, Directory>, StoreError> {
        self.directory.write().map_err(|_| poisoned())
    }
}

#[async_trait]
impl TenantStore for MemoryStore {
    async fn create_tenant(&self, path: &TenantPath) -> Result<bool, StoreError> {
        Ok(self.directory_mut()?.tenants.insert(path.clone()))
    }

    async fn tenant_exists(&self, path: &TenantPath) -> Result<bool, StoreError> {
        Ok(self.directory()?.tenants.contains(path))
    }

    async fn tenants(
        &self,
        within: &TenantPath,
        page: PageRequest<'_, TenantPath>,
    ) -> Result<Page<TenantPath, TenantPath>, StoreError> {
        let directory = self.directory()?;
        Ok(page_of(
            directory.tenants.iter().cloned(),
            within,
            page,
            list_key::tenant,
            list_key::tenant,
            Clone::clone,
        ))
    }

    async fn delete_tenant(&self, path: &TenantPath) -> Result<TenantDeletion, StoreError> {
        let mut directory = self.directory_mut()?;
        if !directory.tenants.contains(path) {
            return Ok(TenantDeletion::Missing);
        }
        if directory.holds_anything(path) {
            return Ok(TenantDeletion::NotEmpty);
        }
        directory.tenants.remove(path);
        Ok(TenantDeletion::Deleted)
    }
}

fn poisoned() -> StoreError {
    StoreError("in-memory store lock poisoned".into())
}

#[async_trait]
impl ClientStore for MemoryStore {
    async fn client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        Ok(self.directory()?.clients.get(id).cloned())
    }

    async fn create_client(&self, client: &Client) -> Result<bool, StoreError> {
        let mut directory = self.directory_mut()?;
        if directory.clients.contains_key(&client.id) {
            return Ok(false);
        }
        directory.tenants.insert(client.tenant.clone());
        directory.clients.insert(client.id.clone(), client.clone());
        Ok(true)
    }

    async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
        let mut directory = self.directory_mut()?;
        match directory.clients.get_mut(&client.id) {
            Some(stored) if stored.tenant == client.tenant && stored.version == client.version => {
                *stored = Client { version: client.version + 1, ..client.clone() };
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_client(&self, client: &Client) -> Result<bool, StoreError> {
        let mut directory = self.directory_mut()?;
        if directory.clients.get(&client.id).is_none_or(|stored| stored.tenant != client.tenant) {
            return Ok(false);
        }
        Ok(directory.clients.remove(&client.id).is_some())
    }

    async fn clients(
        &self,
        within: &TenantPath,
        page: PageRequest<'_, ClientPosition>,
    ) -> Result<Page<Client, ClientPosition>, StoreError> {
        let directory = self.directory()?;
        Ok(page_of(
            directory.clients.values().cloned(),
            within,
            page,
            |client| list_key::client(&client.tenant, &client.id),
            |(tenant, id)| list_key::client(tenant, id),
            |client| (client.tenant.clone(), client.id.clone()),
        ))
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
        Ok(self.directory()?.users.get(&(tenant.clone(), username.clone())).cloned())
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        Ok(self.directory()?.users.values().find(|user| user.id == *id).cloned())
    }

    async fn create_user(&self, user: &User) -> Result<bool, StoreError> {
        let mut directory = self.directory_mut()?;
        let key = (user.tenant.clone(), user.username.clone());
        // A user id is one user's, as the table's id entry makes it.
        if directory.users.contains_key(&key)
            || directory.users.values().any(|other| other.id == user.id)
        {
            return Ok(false);
        }
        directory.tenants.insert(user.tenant.clone());
        directory.users.insert(key, user.clone());
        Ok(true)
    }

    async fn update_user(&self, user: &User) -> Result<bool, StoreError> {
        let mut directory = self.directory_mut()?;
        match directory.users.get_mut(&(user.tenant.clone(), user.username.clone())) {
            Some(stored) if stored.id == user.id && stored.version == user.version => {
                stored.password_hash = user.password_hash.clone();
                stored.enabled = user.enabled;
                stored.version += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_user(&self, user: &User) -> Result<bool, StoreError> {
        let mut directory = self.directory_mut()?;
        let key = (user.tenant.clone(), user.username.clone());
        if directory.users.get(&key).is_none_or(|stored| stored.id != user.id) {
            return Ok(false);
        }
        Ok(directory.users.remove(&key).is_some())
    }

    async fn users(
        &self,
        within: &TenantPath,
        page: PageRequest<'_, UserPosition>,
    ) -> Result<Page<User, UserPosition>, StoreError> {
        let directory = self.directory()?;
        Ok(page_of(
            directory.users.values().cloned(),
            within,
            page,
            |user| list_key::user(&user.tenant, &user.username),
            |(tenant, username)| list_key::user(tenant, username),
            |user| (user.tenant.clone(), user.username.clone()),
        ))
    }

    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        let mut directory = self.directory_mut()?;
        let users = &mut directory.users;
        let taken = users.values().any(|other| {
            other.id == user.id && (other.tenant != user.tenant || other.username != user.username)
        });
        if taken {
            return Err(StoreError(format!("user id {} belongs to another user", user.id)));
        }
        users.insert((user.tenant.clone(), user.username.clone()), user.clone());
        directory.tenants.insert(user.tenant.clone());
        Ok(())
    }

    async fn tenant_of_user(&self, id: &UserId) -> Result<Option<TenantPath>, StoreError> {
        let directory = self.directory()?;
        Ok(directory.users.values().find(|user| user.id == *id).map(|user| user.tenant.clone()))
    }

    async fn replace_password_hash(&self, user: &User, new_hash: &str) -> Result<bool, StoreError> {
        let mut directory = self.directory_mut()?;
        match directory.users.get_mut(&(user.tenant.clone(), user.username.clone())) {
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
        login: Option<(&LoginKey, &LoginAttempts)>,
        signed_in: Option<&User>,
    ) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        if let Some((key, read)) = login
            && state.login_revision(key) != read.source_revision
        {
            return Ok(false);
        }
        if let Some(user) = signed_in {
            let directory = self.directory()?;
            let stored = directory.users.get(&(user.tenant.clone(), user.username.clone()));
            if stored.is_none_or(|stored| stored.id != user.id || stored.version != user.version) {
                return Ok(false);
            }
        }
        state.grants.insert(grant.id.clone(), grant.clone());
        state.refresh.insert(refresh.digest.clone(), refresh.clone());
        state.log(issued);
        if let Some((key, _)) = login {
            state.clear_login(key);
        }
        Ok(true)
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
        device: Option<&DeviceId>,
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
        if let Some(grant) = state.grants.get_mut(&used.grant_id) {
            grant.last_refreshed_at = Some(now);
            if let Some(device) = device {
                grant.saw_device(device);
            }
        }
        state.log(issued);
        Ok(Rotation::Rotated)
    }

    async fn reissue_refresh_token(
        &self,
        successor: &Successor<'_>,
        rotated_since: u64,
        now: u64,
    ) -> Result<Reissue, StoreError> {
        let Successor { used, next, issued, guard, new_device } = *successor;
        let mut state = self.state()?;
        match state.refresh.get(&used.digest).filter(|stored| stored.expires_at > now) {
            Some(RefreshRecord { used_at: Some(used_at), .. }) if *used_at >= rotated_since => {}
            Some(RefreshRecord { used_at: None, .. }) => return Ok(Reissue::NotRotated),
            _ => return Ok(Reissue::OutsideInterval),
        }
        let cut_off = guard
            .layers
            .iter()
            .any(|layer| state.cutoff(layer, now).is_some_and(|nb| nb > guard.grant_created_at));
        if cut_off {
            return Ok(Reissue::CutOff);
        }
        state.refresh.insert(next.digest.clone(), next.clone());
        if let Some(grant) = state.grants.get_mut(&used.grant_id) {
            grant.last_refreshed_at = Some(now);
            if let Some(device) = new_device {
                grant.saw_device(device);
            }
        }
        state.log(issued);
        Ok(Reissue::Reissued)
    }

    async fn sessions(
        &self,
        tenant: &TenantPath,
        user: &UserId,
        page: PageRequest<'_, SessionPosition>,
        now: u64,
    ) -> Result<Page<Grant, SessionPosition>, StoreError> {
        let state = self.state()?;
        let after = page.after.map(|(created_at, id)| list_key::session(*created_at, id));
        let mut live: Vec<(String, &Grant)> = state
            .grants
            .values()
            .filter(|g| g.tenant == *tenant && g.subject == user.as_str())
            .filter(|g| g.revoked_at.is_none() && g.expires_at > now)
            .map(|g| (list_key::session(g.created_at, &g.id), g))
            .filter(|(key, _)| after.as_ref().is_none_or(|after| key > after))
            .collect();
        live.sort_by(|a, b| a.0.cmp(&b.0));
        let more = live.len() > page.limit;
        let items: Vec<Grant> = live.into_iter().take(page.limit).map(|(_, g)| g.clone()).collect();
        let next = if more { items.last().map(|g| (g.created_at, g.id.clone())) } else { None };
        Ok(Page { items, next })
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
    async fn revocation_state_through(
        &self,
        token: &TokenRef<'_>,
        copy: CutoffCopy,
        now: u64,
    ) -> Result<RevocationState, StoreError> {
        let state = self.state()?;
        let token_revoked =
            state.revoked.get(token.id).is_some_and(|(expires_at, _)| *expires_at > now);
        let grant =
            token.grant.and_then(|id| state.grants.get(id)).filter(|g| g.expires_at > now).cloned();
        let not_before =
            token.layers().iter().filter_map(|layer| state.cutoff_copy(layer, copy, now)).max();
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
        // As the table's raise: every copy ends at the latest cutoff any copy held or the new
        // one, whichever is later, and the latest that stood before is reported.
        let standing =
            CutoffCopy::all().filter_map(|copy| state.cutoff_copy(layer, copy, now)).max();
        let target = standing.map_or(not_before, |standing| standing.max(not_before));
        for copy in CutoffCopy::all() {
            let entry = state.cutoffs.entry((layer.to_owned(), copy)).or_insert((0, 0));
            if entry.1 <= now || entry.0 < target {
                *entry = (target, entry.1.max(expires_at));
            } else {
                entry.1 = entry.1.max(expires_at);
            }
        }
        Ok(standing)
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

/// The two counters of a login key: its source's and its username's.
fn login_counters(key: &LoginKey) -> [(TenantPath, String, Option<SourceAddress>); 2] {
    let (tenant, digest) = (key.tenant.clone(), key.username_digest.clone());
    [(tenant.clone(), digest.clone(), Some(key.source)), (tenant, digest, None)]
}

#[async_trait]
impl LoginAttemptStore for MemoryStore {
    async fn login_attempts(&self, key: &LoginKey, now: u64) -> Result<LoginAttempts, StoreError> {
        let state = self.state()?;
        let [by_source, by_username] = login_counters(key).map(|counter| {
            let live = state.login_failures.get(&counter).filter(|(_, until)| *until > now);
            live.map(|(count, _)| *count)
        });
        let source_revision = state.login_revision(key);
        Ok(LoginAttempts { by_source, by_username, source_revision, unlocked_at: 0 })
    }

    async fn record_login_failure(
        &self,
        key: &LoginKey,
        _read: &LoginAttempts,
        now: u64,
        expires_at: u64,
    ) -> Result<LoginAttempts, StoreError> {
        let mut state = self.state()?;
        // Unknown usernames from many sources would grow the map: expired counters go as it
        // doubles, as TTL would take them.
        let held = state.login_failures.len();
        if held >= 1024 && held.is_power_of_two() {
            let State { login_failures, login_revisions, .. } = &mut *state;
            login_failures.retain(|_, (_, until)| *until > now);
            login_revisions.retain(|(tenant, digest, source), _| {
                login_failures.contains_key(&(tenant.clone(), digest.clone(), Some(*source)))
            });
        }
        *state
            .login_revisions
            .entry((key.tenant.clone(), key.username_digest.clone(), key.source))
            .or_default() += 1;
        let [by_source, by_username] = login_counters(key).map(|counter| {
            let (count, until) = state.login_failures.entry(counter).or_default();
            if *until <= now {
                *count = FailureCount::default();
            }
            count.failures += 1;
            count.last_failure_at = now;
            *until = expires_at;
            Some(*count)
        });
        let source_revision = state.login_revision(key);
        Ok(LoginAttempts { by_source, by_username, source_revision, unlocked_at: 0 })
    }

    async fn clear_login_failures(&self, key: &LoginKey) -> Result<(), StoreError> {
        self.state()?.clear_login(key);
        Ok(())
    }

    async fn unlock_username(
        &self,
        tenant: &TenantPath,
        username_digest: &str,
        _now: u64,
        _expires_at: u64,
    ) -> Result<(), StoreError> {
        self.state()?
            .login_failures
            .retain(|(t, digest, _), _| !(t == tenant && digest == username_digest));
        Ok(())
    }
}

/// Records kept before expired ones are swept: the sweep is O(n), so it runs once the map has
/// doubled since the last one, which keeps each insert O(1) amortised and the map bounded by
/// twice the live records.
const REPLAY_SWEEP_FLOOR: usize = 1024;

#[async_trait]
impl ReplayStore for MemoryStore {
    async fn first_use(
        &self,
        key: &ReplayKey,
        expires_at: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut replays = self.replays.lock().map_err(|_| poisoned())?;
        if replays.get(key).is_some_and(|until| *until > now) {
            return Ok(false);
        }
        if replays.len() >= REPLAY_SWEEP_FLOOR && replays.len().is_power_of_two() {
            replays.retain(|_, until| *until > now);
        }
        replays.insert(key.clone(), expires_at);
        Ok(true)
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
