//! Storage, as one trait per concern so that each Lambda function's IAM policy can mirror the
//! traits it uses. Implementations: [`memory::MemoryStore`] here, DynamoDB in its own module.
//!
//! Rules every implementation keeps:
//! - a read that decides validity takes `now` and treats an expired record as absent, because
//!   DynamoDB's TTL deletes only eventually;
//! - a write that can race is conditional, and losing the race is a return value, not an error;
//! - [`StoreError`] means "unknown outcome": callers answer 503 and never report success.

pub mod cache;
pub mod dynamodb;
pub mod memory;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{
    Client, ClientId, DeviceId, Grant, GrantId, LoginAttempts, LoginKey, RefreshRecord, ReplayKey,
    SecretDigest, Subject, TenantPath, TokenId, User, UserId, Username,
};
pub use crate::error::StoreError;

/// The stores a service uses, each behind the trait for its concern.
#[derive(Clone)]
pub struct Stores {
    pub tenants: Arc<dyn TenantStore>,
    pub clients: Arc<dyn ClientStore>,
    pub users: Arc<dyn UserStore>,
    pub grants: Arc<dyn GrantStore>,
    pub issuance: Arc<dyn IssuanceLog>,
    pub revocations: Arc<dyn RevocationStore>,
    pub login_attempts: Arc<dyn LoginAttemptStore>,
    pub replays: Arc<dyn ReplayStore>,
}

impl Stores {
    /// Every concern served by one store.
    pub fn all<S>(store: Arc<S>) -> Self
    where
        S: TenantStore
            + ClientStore
            + UserStore
            + GrantStore
            + IssuanceLog
            + RevocationStore
            + LoginAttemptStore
            + ReplayStore
            + 'static,
    {
        Self {
            tenants: store.clone(),
            clients: store.clone(),
            users: store.clone(),
            grants: store.clone(),
            issuance: store.clone(),
            revocations: store.clone(),
            login_attempts: store.clone(),
            replays: store,
        }
    }
}

/// What a password or refresh request reads right after its client. Its keys are known before
/// the client is authenticated, so a store can fetch both in one round trip.
#[derive(Clone, Copy, Debug)]
pub enum GrantRead<'a> {
    /// The user and the login defence's counters of this login (`login` names the same tenant
    /// and username).
    User {
        tenant: &'a TenantPath,
        username: &'a Username,
        login: &'a LoginKey,
    },
    RefreshToken {
        grant: &'a GrantId,
        digest: &'a SecretDigest,
    },
}

/// What a [`GrantRead`] found, as [`UserStore::user`], [`LoginAttemptStore::login_attempts`]
/// and [`GrantStore::refresh_token`] would have answered.
// One value per request, moved once: boxing the larger variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum GrantRecords {
    User { user: Option<User>, attempts: LoginAttempts },
    RefreshToken(Option<(RefreshRecord, Grant)>),
}

/// One page of a list, in the list's order, and the position of its last item when more may
/// follow. Positions are natural keys (a tenant path, a client's tenant and id), so a caller
/// can check them against what it may read before continuing a list from one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T, P> {
    pub items: Vec<T>,
    pub next: Option<P>,
}

/// Where a list of clients or users stands: the tenant and the name of the last item read.
/// Lists run in the order of [`list_key`].
pub type ClientPosition = (TenantPath, ClientId);
pub type UserPosition = (TenantPath, Username);
/// Sessions run oldest first: the last one's start and id.
pub type SessionPosition = (u64, GrantId);

/// How a list is asked for: at most `limit` items after `after` (from the start when `None`).
#[derive(Clone, Copy, Debug)]
pub struct PageRequest<'a, P> {
    pub limit: usize,
    pub after: Option<&'a P>,
}

/// The sort keys lists run in, the same in every store: a tenant's subtree is one contiguous
/// range (`<path>/` is a prefix of every key in it, and of no key outside it, since paths
/// cannot contain `#`).
pub mod list_key {
    use crate::domain::{ClientId, GrantId, TenantPath, Username};

    /// The prefix every key of `tenant`'s subtree starts with.
    pub fn subtree(tenant: &TenantPath) -> String {
        format!("{tenant}/")
    }

    pub fn tenant(path: &TenantPath) -> String {
        format!("{path}/")
    }

    pub fn client(tenant: &TenantPath, id: &ClientId) -> String {
        format!("{tenant}/#{id}")
    }

    pub fn user(tenant: &TenantPath, username: &Username) -> String {
        format!("{tenant}/#{username}")
    }

    /// Zero-padded so that the string order is the time order.
    pub fn session(created_at: u64, id: &GrantId) -> String {
        format!("{created_at:020}#{id}")
    }
}

/// How deleting a tenant ended.
#[derive(Debug, PartialEq, Eq)]
pub enum TenantDeletion {
    Deleted,
    Missing,
    /// It still holds clients, users or tenants.
    NotEmpty,
}

/// Tenant records. A tenant exists once created, or once a client or user is stored in it.
/// Each counts what it holds (clients, users, child tenants), in the same write that adds or
/// removes one, so that only an empty tenant can be deleted however writes race.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates the tenant; `false` when it exists, which is left as it was.
    async fn create_tenant(&self, path: &TenantPath) -> Result<bool, StoreError>;

    async fn tenant_exists(&self, path: &TenantPath) -> Result<bool, StoreError>;

    /// The tenants of `within`'s subtree, itself included, in [`list_key::tenant`] order.
    async fn tenants(
        &self,
        within: &TenantPath,
        page: PageRequest<'_, TenantPath>,
    ) -> Result<Page<TenantPath, TenantPath>, StoreError>;

    /// Deletes the tenant if it holds nothing.
    async fn delete_tenant(&self, path: &TenantPath) -> Result<TenantDeletion, StoreError>;
}

/// Failed-login counters of the login defence: per (tenant, username, source) and per
/// (tenant, username). Expired counters (past `expires_at`) are absent.
#[async_trait]
pub trait LoginAttemptStore: Send + Sync {
    /// Both counters of `key`, strongly consistent.
    async fn login_attempts(&self, key: &LoginKey, now: u64) -> Result<LoginAttempts, StoreError>;

    /// Counts one more failure on both counters, each atomically (concurrent failures all
    /// count), sets their last failure to `now`, raises the source's revision and keeps them
    /// until `expires_at`. Returns both as they now stand.
    /// `read` is what the login read of them (its unlock stamp tells a stale source count).
    async fn record_login_failure(
        &self,
        key: &LoginKey,
        read: &LoginAttempts,
        now: u64,
        expires_at: u64,
    ) -> Result<LoginAttempts, StoreError>;

    /// Clears the counter of `key`'s source and the username's counter (a successful login).
    async fn clear_login_failures(&self, key: &LoginKey) -> Result<(), StoreError>;

    /// Clears every counter of the username, whatever the source (an operator's unlock).
    /// What records the unlock may go at `expires_at`, which must be no earlier than any
    /// counter it clears would have gone.
    async fn unlock_username(
        &self,
        tenant: &TenantPath,
        username_digest: &str,
        now: u64,
        expires_at: u64,
    ) -> Result<(), StoreError>;
}

/// One-time JWT identifiers seen (client assertions, DPoP proofs): each is accepted once while
/// the JWT that carries it could still be valid.
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// Records `key` as used until `expires_at`, atomically (a conditional write). `false`: it
    /// was already used and that record has not expired by `now`, so this is a replay.
    async fn first_use(
        &self,
        key: &ReplayKey,
        expires_at: u64,
        now: u64,
    ) -> Result<bool, StoreError>;
}

/// What authentication requires of a client record it reads.
pub type Accept<'a> = &'a (dyn Fn(&Client) -> bool + Send + Sync);

/// Client records: read on every token request.
#[async_trait]
pub trait ClientStore: Send + Sync {
    async fn client(&self, id: &ClientId) -> Result<Option<Client>, StoreError>;

    /// The records `next` names in one round trip, where the store can (`None`: the caller
    /// reads them itself). What a process holding the client in memory reads.
    async fn grant_records(
        &self,
        _next: GrantRead<'_>,
        _now: u64,
    ) -> Result<Option<GrantRecords>, StoreError> {
        Ok(None)
    }

    /// The client and, where the store can read them in the same round trip, the records
    /// `next` names (`None`: not read, the caller reads them itself).
    async fn client_with(
        &self,
        id: &ClientId,
        _next: GrantRead<'_>,
        _now: u64,
    ) -> Result<(Option<Client>, Option<GrantRecords>), StoreError> {
        Ok((self.client(id).await?, None))
    }

    /// [`Self::client`] for authentication, which holds the record to `accept` (the presented
    /// secret matches). A store answering from a cache reads the client once more past it when
    /// the cached record fails `accept`: a secret rotated elsewhere then works at once.
    async fn client_accepted(
        &self,
        id: &ClientId,
        _accept: Accept<'_>,
    ) -> Result<Option<Client>, StoreError> {
        self.client(id).await
    }

    /// [`Self::client_with`] as [`Self::client_accepted`] reads the client.
    async fn client_with_accepted(
        &self,
        id: &ClientId,
        next: GrantRead<'_>,
        now: u64,
        _accept: Accept<'_>,
    ) -> Result<(Option<Client>, Option<GrantRecords>), StoreError> {
        self.client_with(id, next, now).await
    }

    /// Creates or replaces a client (admin path only): [`Self::create_client`], or
    /// [`Self::update_client`] when it exists.
    async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        if self.create_client(client).await? {
            return Ok(());
        }
        let stored = self.client(&client.id).await?;
        let version = stored.map_or(0, |stored| stored.version);
        if !self.update_client(&Client { version, ..client.clone() }).await? {
            return Err(StoreError(format!("client {} changed while being replaced", client.id)));
        }
        Ok(())
    }

    /// Creates the client unless one with its id exists; `false` when one does, which is left
    /// as it was (admin path only). One conditional write with its tenant's count: of
    /// concurrent creations one wins.
    async fn create_client(&self, client: &Client) -> Result<bool, StoreError>;

    /// Replaces an existing client, which keeps its tenant, if its stored `version` is still
    /// `client.version`, and stores it as the next version; `false` when there is none with
    /// that id, tenant and version (admin path only).
    async fn update_client(&self, client: &Client) -> Result<bool, StoreError>;

    /// Deletes the client, with its tenant's count; `false` when there was none.
    async fn delete_client(&self, client: &Client) -> Result<bool, StoreError>;

    /// The clients of `within`'s subtree in [`list_key::client`] order.
    async fn clients(
        &self,
        within: &TenantPath,
        page: PageRequest<'_, ClientPosition>,
    ) -> Result<Page<Client, ClientPosition>, StoreError>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Access,
    Refresh,
}

/// What the issuance log keeps of each token: enough to count the live tokens a batch
/// revocation covers, never the token itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    pub id: TokenId,
    pub kind: TokenKind,
    pub tenant: TenantPath,
    pub client_id: ClientId,
    pub subject: String,
    pub grant: Option<GrantId>,
    pub issued_at: u64,
    /// Also when the record may be deleted (the TTL).
    pub expires_at: u64,
}

impl IssuedToken {
    /// Whom the token speaks for, by kind.
    pub fn subject_ref(&self) -> Subject<'_> {
        Subject::of_token(&self.tenant, &self.client_id, &self.subject, self.grant.is_some())
    }
}

/// A subject a batch revocation names, resolved to its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectId {
    User { tenant: TenantPath, id: UserId },
    Client(ClientId),
}

impl SubjectId {
    pub fn as_subject(&self) -> Subject<'_> {
        match self {
            Self::User { tenant, id } => Subject::User { tenant, id: id.as_str() },
            Self::Client(id) => Subject::Client(id),
        }
    }

    /// The `sub` its tokens carry.
    pub fn sub(&self) -> &str {
        match self {
            Self::User { id, .. } => id.as_str(),
            Self::Client(id) => id.as_str(),
        }
    }
}

/// Which issued tokens a batch revocation covers: a tenant subtree, optionally narrowed.
#[derive(Clone, Debug)]
pub struct IssuanceFilter {
    pub tenant: TenantPath,
    pub client_id: Option<ClientId>,
    pub subject: Option<SubjectId>,
}

impl IssuanceFilter {
    pub fn covers(&self, token: &IssuedToken) -> bool {
        token.tenant.is_within(&self.tenant)
            && self.client_id.as_ref().is_none_or(|id| *id == token.client_id)
            && self.subject.as_ref().is_none_or(|sub| sub.as_subject() == token.subject_ref())
    }
}

/// The issuance log. A token is handed out only after its record is written.
#[async_trait]
pub trait IssuanceLog: Send + Sync {
    async fn record_issued(&self, token: &IssuedToken) -> Result<(), StoreError>;

    /// Every log entry covered by `filter` whose token has not expired, was not revoked on its
    /// own and (for a refresh token) was not used. Pages through the whole log; O(entries).
    async fn live_issued(
        &self,
        filter: &IssuanceFilter,
        now: u64,
    ) -> Result<Vec<IssuedToken>, StoreError>;
}

/// Users, looked up by tenant and username.
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn user(
        &self,
        tenant: &TenantPath,
        username: &Username,
    ) -> Result<Option<User>, StoreError>;
    /// The user with this id (the `sub` of its tokens).
    async fn user_by_id(&self, id: &UserId) -> Result<Option<User>, StoreError>;
    /// Creates the user unless the username is taken in its tenant (or its id by anyone);
    /// `false` when taken. One transaction with the id entry and the tenant's count.
    async fn create_user(&self, user: &User) -> Result<bool, StoreError>;
    /// Replaces an existing user's password hash and `enabled` if its stored `version` is
    /// still `user.version`, and stores it as the next version; `false` when no user with that
    /// tenant, username, id and version exists.
    async fn update_user(&self, user: &User) -> Result<bool, StoreError>;
    /// Deletes the user, its id entry and its tenant's count together; `false` when it was
    /// not there.
    async fn delete_user(&self, user: &User) -> Result<bool, StoreError>;
    /// The users of `within`'s subtree in [`list_key::user`] order.
    async fn users(
        &self,
        within: &TenantPath,
        page: PageRequest<'_, UserPosition>,
    ) -> Result<Page<User, UserPosition>, StoreError>;
    /// Creates or replaces the user with this tenant and username (admin path only). A replaced
    /// user's former id no longer leads to the tenant.
    async fn put_user(&self, user: &User) -> Result<(), StoreError>;
    /// The tenant of the user with this id (to authorize a batch revocation by subject).
    async fn tenant_of_user(&self, id: &UserId) -> Result<Option<TenantPath>, StoreError>;
    /// Replaces the password hash only if it is still `user.password_hash`, so a rehash never
    /// overwrites a concurrent password change; `false` when it was not.
    async fn replace_password_hash(&self, user: &User, new_hash: &str) -> Result<bool, StoreError>;
}

/// How a rotation ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    Rotated,
    /// The token had already been used (by an earlier or a concurrent request).
    AlreadyUsed,
    /// A batch cutoff covering the grant exists: the grant began before it.
    CutOff,
}

/// A refresh token's successor as a reissue stores it: the used token, the next one with the
/// log records of the tokens issued, the cutoffs that must be clear, and a device new to the
/// grant.
#[derive(Clone, Copy, Debug)]
pub struct Successor<'a> {
    pub used: &'a RefreshRecord,
    pub next: &'a RefreshRecord,
    pub issued: &'a [IssuedToken],
    pub guard: &'a CutoffGuard,
    pub new_device: Option<&'a DeviceId>,
}

/// How a reissue within the reuse interval ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Reissue {
    Reissued,
    /// The token was rotated before `rotated_since`, or has expired: reuse.
    OutsideInterval,
    /// The token is not rotated yet: a concurrent rotation is still being written, or failed.
    NotRotated,
    /// A batch cutoff covering the grant exists.
    CutOff,
}

/// The cutoff layers a rotation must find clear: none may hold a `not_before` later than the
/// grant's start. Checked inside the rotation's own transaction, so a batch revocation racing
/// the refresh cannot be missed.
#[derive(Clone, Debug)]
pub struct CutoffGuard {
    pub layers: Vec<String>,
    pub grant_created_at: u64,
}

/// Grants and their refresh tokens.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a new grant, its first refresh token and the log records of the tokens issued
    /// with it, all or nothing. With `login` (a password login's key and counters as read):
    /// only while no failure from its source was settled since the read (its revision), and
    /// clearing its counters in the same write. With `signed_in`: only while that user's record
    /// is still the version the login checked (not a new password, not disabled). `false` when
    /// either changed, and nothing is stored.
    async fn start_grant(
        &self,
        grant: &Grant,
        refresh: &RefreshRecord,
        issued: &[IssuedToken],
        login: Option<(&LoginKey, &LoginAttempts)>,
        signed_in: Option<&User>,
    ) -> Result<bool, StoreError>;

    /// The refresh token with this digest and `grant`, the grant it names. Used tokens are
    /// returned (so reuse can be recognised); expired tokens and grants, and a token that does not
    /// belong to `grant`, are absent.
    async fn refresh_token(
        &self,
        grant: &GrantId,
        digest: &SecretDigest,
        now: u64,
    ) -> Result<Option<(RefreshRecord, Grant)>, StoreError>;

    /// Marks `used` as used (in the log too) and stores `next` with the log records, all or
    /// nothing, and only if `used` was still unused and no cutoff in `guard` covers the grant:
    /// of concurrent rotations of one token exactly one succeeds. The grant records the
    /// refresh: `last_refreshed_at`, and `new_device` appended to its device ids (the caller
    /// passes one only when the grant it read lacks it and has room: `Grant::would_keep`).
    async fn rotate_refresh_token(
        &self,
        used: &RefreshRecord,
        next: &RefreshRecord,
        issued: &[IssuedToken],
        guard: &CutoffGuard,
        new_device: Option<&DeviceId>,
        now: u64,
    ) -> Result<Rotation, StoreError>;

    /// The user's grants that are neither revoked nor expired, oldest first (`tenant` is the
    /// user's). A query on the user's own key, never a scan.
    async fn sessions(
        &self,
        tenant: &TenantPath,
        user: &UserId,
        page: PageRequest<'_, SessionPosition>,
        now: u64,
    ) -> Result<Page<Grant, SessionPosition>, StoreError>;

    /// Within a client's reuse interval: stores `next` (with the log records) as another
    /// successor of `used`, all or nothing, if `used` was rotated at `rotated_since` or later
    /// and no cutoff in `guard` covers the grant. The grant records the refresh as a rotation
    /// does.
    async fn reissue_refresh_token(
        &self,
        successor: &Successor<'_>,
        rotated_since: u64,
        now: u64,
    ) -> Result<Reissue, StoreError>;

    async fn grant(&self, id: &GrantId, now: u64) -> Result<Option<Grant>, StoreError>;

    /// The unexpired grants among `ids` (for counting; several round trips for many ids).
    async fn grants(
        &self,
        ids: &[GrantId],
        now: u64,
    ) -> Result<HashMap<GrantId, Grant>, StoreError>;

    /// Revokes the grant and so every token of it. Idempotent; keeps the first revocation time.
    async fn revoke_grant(&self, id: &GrantId, now: u64) -> Result<(), StoreError>;
}

/// What identifies an access token for revocation checks: its id, its grant, and the layers a
/// batch cutoff can apply to (every ancestor of its tenant, its client, its subject).
#[derive(Clone, Debug)]
pub struct TokenRef<'a> {
    pub id: &'a TokenId,
    pub grant: Option<&'a GrantId>,
    pub tenant: &'a TenantPath,
    pub client_id: &'a ClientId,
    pub subject: Subject<'a>,
}

impl TokenRef<'_> {
    /// Every batch-cutoff layer that applies to the token.
    pub fn layers(&self) -> Vec<String> {
        layer::applying_to(self.tenant, self.client_id, self.subject)
    }
}

/// The revocation state of one token, read in one consistent round trip.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevocationState {
    /// The token itself was revoked.
    pub token_revoked: bool,
    /// The token's grant, if it has one and the grant still exists.
    pub grant: Option<Grant>,
    /// The latest batch cutoff over every layer that applies: tokens issued before it are dead.
    pub not_before: Option<u64>,
}

/// What the revocation of one access token recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationRecord {
    /// When the record may go: once the revoked token can no longer verify
    /// (`jwt::verifiable_until` its expiry).
    pub expires_at: u64,
    /// The `x-device-id` of the logout that revoked it.
    pub device_id: Option<String>,
}

/// How many copies of each cutoff a store keeps. Every write raises all of them together (one
/// transaction), and a verification reads one, chosen at random, so a layer every token of a
/// busy tenant or client reads is spread over this many items (DynamoDB serves one item at most
/// 3,000 strongly consistent reads a second): 16 copies, 48,000 verifications a second of one
/// tenant or one client, against the 30,000 the service is held to, with room for the uneven
/// draw.
///
/// A constant, not a setting: a reader choosing among more copies than its writer wrote would
/// find nothing in the copies the writer skipped and accept tokens a cutoff killed. Changing it
/// is a table migration (docs/performance.md#scaling-past-one-partition).
pub const CUTOFF_COPIES: usize = 16;

/// One of the [`CUTOFF_COPIES`] copies of a cutoff. Copy 0 is the one a table written before
/// copies existed holds, under the same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CutoffCopy(usize);

impl CutoffCopy {
    /// The copy older tables hold, and the one whose value [`RevocationStore::raise_cutoff`]
    /// reports as replaced.
    pub const FIRST: Self = Self(0);

    /// `None` outside `0..CUTOFF_COPIES`.
    pub fn new(index: usize) -> Option<Self> {
        (index < CUTOFF_COPIES).then_some(Self(index))
    }

    pub fn all() -> impl Iterator<Item = Self> {
        (0..CUTOFF_COPIES).map(Self)
    }

    pub fn index(self) -> usize {
        self.0
    }
}

/// How many copies verifications choose among: all of them, or, while a table from before
/// copies is upgraded, only the first, the one older functions still write alone
/// (`CUTOFF_READ_COPIES`; docs/deployment.md). Every raise writes every copy whatever this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CutoffReadCopies(usize);

impl CutoffReadCopies {
    pub const ALL: Self = Self(CUTOFF_COPIES);

    /// `None` outside `1..=CUTOFF_COPIES`: more would choose copies no raise writes.
    pub fn new(copies: usize) -> Option<Self> {
        (1..=CUTOFF_COPIES).contains(&copies).then_some(Self(copies))
    }

    pub fn get(self) -> usize {
        self.0
    }

    /// A copy chosen uniformly among those read.
    pub fn draw(self) -> CutoffCopy {
        let draw = usize::from(u16::from_le_bytes(crate::domain::random_bytes::<2>()));
        CutoffCopy(draw % self.0)
    }
}

/// Revocation records.
#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Reads the token's revocation record, its grant and every cutoff layer that applies, in
    /// one strongly consistent round trip. Expired records are absent. Each cutoff is read
    /// through one copy chosen at random.
    async fn revocation_state(
        &self,
        token: &TokenRef<'_>,
        now: u64,
    ) -> Result<RevocationState, StoreError> {
        self.revocation_state_through(token, CutoffReadCopies::ALL.draw(), now).await
    }

    /// [`Self::revocation_state`] reading every cutoff through `copy`: what tests use to see
    /// that each copy holds every cutoff.
    async fn revocation_state_through(
        &self,
        token: &TokenRef<'_>,
        copy: CutoffCopy,
        now: u64,
    ) -> Result<RevocationState, StoreError>;

    /// Records the access token as revoked until `expires_at`, when the record may go (TTL):
    /// callers pass `jwt::verifiable_until` the token's expiry. Flags its log entry so counts
    /// skip it. Idempotent.
    async fn revoke_token(
        &self,
        token: &TokenId,
        expires_at: u64,
        device_id: Option<&str>,
        now: u64,
    ) -> Result<(), StoreError>;

    /// The token's revocation record, strongly consistent; an expired record is absent. No
    /// verification reads it ([`Self::revocation_state`] does, with everything else, in one round
    /// trip): it is what a logout left behind, for audits and tests.
    async fn revocation_record(
        &self,
        token: &TokenId,
        now: u64,
    ) -> Result<Option<RevocationRecord>, StoreError>;

    /// Raises the cutoff of `layer` to `not_before` in every copy at once, or in none, never
    /// lowering any (conditional writes keep the maximum); the records may go at `expires_at`.
    /// Returns the live cutoff it replaced, or the later one that stands when nothing was
    /// written.
    async fn raise_cutoff(
        &self,
        layer: &str,
        not_before: u64,
        expires_at: u64,
        now: u64,
    ) -> Result<Option<u64>, StoreError>;

    /// The live cutoffs among `layers` (for counting; several round trips for many layers).
    async fn cutoffs(
        &self,
        layers: &[String],
        now: u64,
    ) -> Result<HashMap<String, u64>, StoreError>;
}

/// Names of batch-cutoff layers. A cutoff on a layer kills every token of that layer issued
/// before its `not_before`, and every token of a grant that began before it.
///
/// Subject layers are keyed by the subject's kind, and a user's by its tenant too
/// (`SUBJECT#USER#/acme#<id>`, `SUBJECT#CLIENT#<id>`): ids of users and clients share one
/// alphabet, so a bare id could name another tenant's client. No part of a key can contain `#`
/// (tenant paths, client ids and user ids exclude it), so every key reads one way only.
pub mod layer {
    use crate::domain::{ClientId, Subject, TenantPath};

    /// A tenant path and its whole subtree.
    pub fn tenant(path: &str) -> String {
        format!("TENANT#{path}")
    }

    pub fn client(id: &ClientId) -> String {
        format!("CLIENT#{id}")
    }

    fn subject_key(subject: Subject<'_>) -> String {
        match subject {
            Subject::User { tenant, id } => format!("USER#{tenant}#{id}"),
            Subject::Client(id) => format!("CLIENT#{id}"),
        }
    }

    pub fn subject(subject: Subject<'_>) -> String {
        format!("SUBJECT#{}", subject_key(subject))
    }

    /// One subject's tokens obtained through one client.
    pub fn client_subject(id: &ClientId, subject: Subject<'_>) -> String {
        format!("CLIENT#{id}#SUBJECT#{}", subject_key(subject))
    }

    /// One client's tokens in a subtree strictly below the client's own tenant (the client
    /// layer covers the rest).
    pub fn client_tenant(id: &ClientId, path: &str) -> String {
        format!("CLIENT#{id}#TENANT#{path}")
    }

    /// Every layer that applies to a token of `tenant`, `client` and `subject`: each ancestor of
    /// its tenant (and the tenant itself), its client, its subject, the client and subject pair,
    /// and the client in each of its tenant's ancestors below the root: a client's own tenant
    /// is at least a root, and at or above it the client layer applies, so a token of a root
    /// tenant needs no client-in-tenant key at all.
    pub fn applying_to(
        tenant: &TenantPath,
        client: &ClientId,
        subject: Subject<'_>,
    ) -> Vec<String> {
        let mut layers: Vec<String> = tenant.lineage().map(self::tenant).collect();
        layers.extend([
            self::client(client),
            self::subject(subject),
            client_subject(client, subject),
        ]);
        layers.extend(tenant.lineage().skip(1).map(|path| client_tenant(client, path)));
        layers
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{CUTOFF_COPIES, CutoffCopy, CutoffReadCopies};

    #[test]
    fn cutoff_copies_are_numbered_below_the_constant_and_drawn_among_all() {
        assert!(CutoffCopy::new(CUTOFF_COPIES).is_none());
        assert_eq!(
            CutoffCopy::new(CUTOFF_COPIES - 1).map(CutoffCopy::index),
            Some(CUTOFF_COPIES - 1)
        );
        let all: HashSet<CutoffCopy> = CutoffCopy::all().collect();
        assert_eq!(all.len(), CUTOFF_COPIES);
        let drawn: HashSet<CutoffCopy> = (0..400).map(|_| CutoffReadCopies::ALL.draw()).collect();
        assert_eq!(drawn, all, "400 draws reach every copy");
        let first_only = CutoffReadCopies::new(1).unwrap();
        assert!(
            (0..100).all(|_| first_only.draw() == CutoffCopy::FIRST),
            "an upgrade reads copy 0"
        );
        assert!(CutoffReadCopies::new(0).is_none());
        assert!(CutoffReadCopies::new(CUTOFF_COPIES + 1).is_none(), "no copy a raise skips");
    }
}
