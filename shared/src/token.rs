//! The token endpoint's rules (RFC 6749 §4.3, §4.4, §5, §6; RFC 9700 §4.14), free of HTTP and of
//! any storage technology.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::auth::{Authenticator, PresentedClient};
use crate::clock::Clock;
use crate::domain::{
    Client, DeviceId, Grant, GrantId, GrantType, LoginDefenceSettings, LoginKey, Redacted,
    RefreshRecord, RefreshToken, ScopeSet, SecretDigest, SourceAddress, TenantPath, TokenId,
    Username, redacted,
};
use crate::dpop::{DpopError, DpopVerifier, ProofContext, ProofRejected};
use crate::endpoints;
use crate::error::Error;
use crate::jwt::{AccessTokenClaims, Confirmation, TokenSigner};
use crate::login_defence::LoginDefence;
use crate::password::{MAX_PASSWORD_LEN, Passwords, Verified};
use crate::store::{
    CutoffGuard, GrantRead, GrantRecords, IssuedToken, Reissue, Rotation, Stores, Successor,
    TokenKind, layer,
};
use crate::telemetry;

/// Rounds of rotate-then-reissue a refresh within the reuse interval tries while a concurrent
/// rotation of the same token is still being written.
const REISSUE_ATTEMPTS: u32 = 5;

/// Whether a token rotated at `used_at` may be presented again now (RFC 9700 §4.14.2 allows a
/// short grace for retries): within the client's `refresh_reuse_interval` seconds.
fn within_reuse_interval(client: &Client, used_at: u64, now: u64) -> bool {
    client.refresh_reuse_interval > 0 && now <= used_at + client.refresh_reuse_interval
}

/// Longest `access-token-lifetime` value read; longer is malformed, not merely large.
const MAX_LIFETIME_DIGITS: usize = 32;

/// The token request's parameters as received (empty values already dropped). `Debug` leaves
/// out the password and the refresh token.
#[derive(Default)]
pub struct TokenParams<'a> {
    pub grant_type: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub access_token_lifetime: Option<&'a str>,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub tenant_path: Option<&'a str>,
    pub refresh_token: Option<&'a str>,
    /// The `x-device-id` header: remembered on the grant a password login starts or a refresh
    /// continues.
    pub device_id: Option<&'a str>,
    /// Where the request came from, for the login defence (`None`: unknown, counted as one
    /// source).
    pub source: Option<SourceAddress>,
    /// The `DPoP` header (RFC 9449 §4): a proof binds the access token to its key.
    pub dpop_proof: Option<&'a str>,
}

/// The successful token response (RFC 6749 §5.1). `Debug` leaves out both tokens.
#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl fmt::Debug for TokenParams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenParams")
            .field("grant_type", &self.grant_type)
            .field("scope", &self.scope)
            .field("access_token_lifetime", &self.access_token_lifetime)
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("tenant_path", &self.tenant_path)
            .field("refresh_token", &redacted(&self.refresh_token))
            .field("device_id", &self.device_id)
            .field("source", &self.source)
            .field("dpop_proof", &redacted(&self.dpop_proof))
            .finish()
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &Redacted)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("refresh_token", &redacted(&self.refresh_token))
            .finish()
    }
}

/// What a request asks of the tokens a user's grant issues, beyond the grant's own parameters:
/// the access token's lifetime, the DPoP key to bind it to, the device to remember.
struct Requested<'a> {
    lifetime: u64,
    binding: Option<&'a str>,
    device: Option<DeviceId>,
}

/// Who a token speaks for, and under which grant.
struct Principal<'a> {
    subject: &'a str,
    tenant: &'a TenantPath,
    grant: Option<&'a GrantId>,
}

/// The keys of what a grant reads after its client, parsed from the request where they are well
/// formed; a malformed value is left for the grant itself to refuse, after authentication. A
/// password login without `tenant_path` reads its user in the client's tenant, which only the
/// client record tells.
enum NextRead {
    User(TenantPath, Username, LoginKey),
    RefreshToken(GrantId, SecretDigest),
}

impl NextRead {
    fn of(params: &TokenParams<'_>) -> Option<Self> {
        match params.grant_type? {
            "password" => {
                let tenant = TenantPath::parse(params.tenant_path?).ok()?;
                let username = Username::parse(params.username?).ok()?;
                let login = LoginKey::new(&tenant, &username, source_of(params));
                Some(Self::User(tenant, username, login))
            }
            "refresh_token" => {
                let (grant, digest) = RefreshToken::parse(params.refresh_token?)?;
                Some(Self::RefreshToken(grant, digest))
            }
            _ => None,
        }
    }

    fn as_grant_read(&self) -> GrantRead<'_> {
        match self {
            Self::User(tenant, username, login) => GrantRead::User { tenant, username, login },
            Self::RefreshToken(grant, digest) => GrantRead::RefreshToken { grant, digest },
        }
    }
}

fn source_of(params: &TokenParams<'_>) -> SourceAddress {
    params.source.unwrap_or(SourceAddress::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED)))
}

fn bad_credentials() -> Error {
    Error::InvalidGrant("invalid username or password".into())
}

fn bad_refresh_token() -> Error {
    Error::InvalidGrant("the refresh token is invalid, expired or revoked".into())
}

pub struct TokenService {
    auth: Authenticator,
    stores: Stores,
    tokens: TokenSigner,
    passwords: Passwords,
    clock: Arc<dyn Clock>,
    default_lifetime: u64,
    login_defence: LoginDefence,
    dpop: DpopVerifier,
    /// The token endpoint's URL, which a DPoP proof's `htu` must name.
    token_url: String,
}

impl TokenService {
    pub fn new(
        stores: Stores,
        tokens: TokenSigner,
        passwords: Passwords,
        clock: Arc<dyn Clock>,
        default_lifetime: u64,
        login_defence: LoginDefenceSettings,
    ) -> Self {
        Self {
            auth: Authenticator::new(
                stores.clients.clone(),
                stores.replays.clone(),
                clock.clone(),
                tokens.issuer().to_owned(),
            ),
            login_defence: LoginDefence::new(login_defence, stores.login_attempts.clone()),
            dpop: DpopVerifier::new(stores.replays.clone(), clock.clone()),
            token_url: endpoints::url(tokens.issuer(), endpoints::TOKEN_PATH),
            stores,
            tokens,
            passwords,
            clock,
            default_lifetime,
        }
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    /// Authenticates the client, then issues. A refresh, and a password login naming its
    /// `tenant_path`, read the client together with the refresh token and its grant, or the
    /// user, so a cold instance issues in two round trips as a warm one does.
    pub async fn authenticate_and_issue(
        &self,
        presented: &PresentedClient,
        params: &TokenParams<'_>,
    ) -> Result<TokenResponse, Error> {
        let (client, records) = match NextRead::of(params) {
            Some(next) => {
                let now = self.clock.now();
                self.auth.authenticate_with(presented, next.as_grant_read(), now).await?
            }
            None => (self.auth.authenticate(presented).await?, None),
        };
        self.issue_with(&client, params, records).await
    }

    pub async fn issue(
        &self,
        client: &Client,
        params: &TokenParams<'_>,
    ) -> Result<TokenResponse, Error> {
        self.issue_with(client, params, None).await
    }

    /// Issues for an authenticated client; `records` are what [`Self::authenticate_and_issue`]
    /// already read for the grant, if anything.
    async fn issue_with(
        &self,
        client: &Client,
        params: &TokenParams<'_>,
        records: Option<GrantRecords>,
    ) -> Result<TokenResponse, Error> {
        let grant = params
            .grant_type
            .ok_or_else(|| Error::invalid_request("grant_type is required"))?
            .parse::<GrantType>()
            .map_err(|_| {
                Error::UnsupportedGrantType(
                    "grant_type must be client_credentials, password or refresh_token".into(),
                )
            })?;
        if !client.may_use(grant) {
            return Err(Error::UnauthorizedClient(
                format!("this client may not use the {grant} grant").into(),
            ));
        }
        let requested_scope = params
            .scope
            .map(ScopeSet::parse)
            .transpose()
            .map_err(|e| Error::InvalidScope(e.to_string().into()))?;
        let lifetime = self.lifetime(client, params.access_token_lifetime)?;
        let device = params
            .device_id
            .map(DeviceId::parse)
            .transpose()
            .map_err(|e| Error::invalid_request(e.to_string()))?;
        let binding = self.dpop_binding(client, params.dpop_proof).await?;
        let binding = binding.as_deref();
        let answer = match grant {
            GrantType::ClientCredentials => {
                let scope = narrow(requested_scope, &client.scopes)?;
                let principal =
                    Principal { subject: client.id.as_str(), tenant: &client.tenant, grant: None };
                let now = self.clock.now();
                let (access_token, logged) =
                    self.mint_access_token(client, &principal, &scope, lifetime, binding, now)?;
                // Recorded before the token leaves: a token the log does not know could not be
                // counted by a batch revocation.
                self.stores.issuance.record_issued(&logged).await?;
                Ok(response(access_token, lifetime, &scope, None, binding))
            }
            GrantType::Password => {
                let scope = narrow_for_user(requested_scope, &client.scopes)?;
                let requested = Requested { lifetime, binding, device };
                self.password_grant(client, params, scope, requested, records).await
            }
            GrantType::RefreshToken => {
                let requested = Requested { lifetime, binding, device };
                self.refresh_grant(client, params, requested_scope, requested, records).await
            }
        };
        if answer.is_ok() {
            telemetry::token_issued(grant);
        }
        answer
    }

    /// The DPoP key thumbprint the access token is to be bound to: the proof's, once it passed
    /// every check (one conditional write, for its `jti`). A client registered with
    /// `dpop_bound_access_tokens` must send one. Refresh tokens stay unbound: every client here
    /// is confidential, and RFC 9449 §5 binds only public clients' refresh tokens.
    async fn dpop_binding(
        &self,
        client: &Client,
        proof: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let Some(proof) = proof else {
            return match client.dpop_bound_access_tokens {
                true => Err(DpopError::from(ProofRejected::Missing).into()),
                false => Ok(None),
            };
        };
        let context = ProofContext { method: "POST", url: &self.token_url, access_token: None };
        Ok(Some(self.dpop.verify(proof, &context).await?))
    }

    async fn password_grant(
        &self,
        client: &Client,
        params: &TokenParams<'_>,
        scope: ScopeSet,
        requested: Requested<'_>,
        records: Option<GrantRecords>,
    ) -> Result<TokenResponse, Error> {
        let Requested { lifetime, binding, device } = requested;
        // Every limit is checked before the expensive hash.
        let username =
            params.username.ok_or_else(|| Error::invalid_request("username is required"))?;
        let password =
            params.password.ok_or_else(|| Error::invalid_request("password is required"))?;
        if password.len() > MAX_PASSWORD_LEN {
            return Err(Error::invalid_request(format!(
                "password must be at most {MAX_PASSWORD_LEN} bytes"
            )));
        }
        let username =
            Username::parse(username).map_err(|e| Error::invalid_request(e.to_string()))?;
        let tenant = match params.tenant_path {
            None => client.tenant.clone(),
            Some(raw) => {
                TenantPath::parse(raw).map_err(|e| Error::invalid_request(e.to_string()))?
            }
        };
        if !tenant.is_within(&client.tenant) {
            return Err(Error::invalid_request(
                "tenant_path must be the client's tenant or lie below it",
            ));
        }

        let login = LoginKey::new(&tenant, &username, source_of(params));
        let now = self.clock.now();
        let records = match records {
            Some(records) => Some(records),
            // Read together where the store can (a password login without `tenant_path`, whose
            // tenant only the client record told).
            None => {
                let next = GrantRead::User { tenant: &tenant, username: &username, login: &login };
                self.stores.clients.grant_records(next, now).await?
            }
        };
        let (user, attempts) = match records {
            Some(GrantRecords::User { user, attempts }) => (user, attempts),
            _ => (
                self.stores.users.user(&tenant, &username).await?,
                self.login_defence.attempts(&login, now).await?,
            ),
        };
        // Inside a wait window: the wrong password's answer, without checking the password and
        // without counting the attempt.
        if self.login_defence.must_wait(&attempts, now) {
            return Err(bad_credentials());
        }
        // A place in the hashing queue: a full queue sheds at once. It sheds every login alike,
        // since a known and an unknown user each need one Argon2 run.
        let admission = self.passwords.admit().map_err(|busy| Error::TemporarilyUnavailable {
            retry_after_secs: busy.retry_after_secs,
        })?;
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let verified = admission
            .verify(stored_hash, password.to_owned())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        // A disabled user's password is still verified (above), then refused exactly as a wrong
        // one: neither the answer nor its timing tells a disabled account from a bad password.
        let user = match (user.filter(|user| user.enabled), verified) {
            (Some(user), Verified::Yes) => user,
            (Some(user), Verified::YesRehashed(new_hash)) => {
                if let Err(error) = self.stores.users.replace_password_hash(&user, &new_hash).await
                {
                    tracing::warn!(%error, "storing a rehashed password failed; login proceeds");
                }
                user
            }
            // Unknown, disabled or wrong: counted alike.
            _ => {
                self.login_defence.failed(&login, &attempts, now).await;
                return Err(bad_credentials());
            }
        };

        let grant = Grant {
            id: GrantId::generate(),
            client_id: client.id.clone(),
            tenant,
            subject: user.id.to_string(),
            username: Some(user.username.clone()),
            scope: scope.clone(),
            created_at: now,
            expires_at: now + client.refresh_absolute_lifetime,
            revoked_at: None,
            last_refreshed_at: None,
            device_ids: device.into_iter().collect(),
        };
        let lifetime = lifetime.min(client.refresh_absolute_lifetime);
        let principal =
            Principal { subject: &grant.subject, tenant: &grant.tenant, grant: Some(&grant.id) };
        let (access_token, access_logged) =
            self.mint_access_token(client, &principal, &scope, lifetime, binding, now)?;
        let (refresh_token, refresh_record, refresh_logged) =
            self.mint_refresh_token(client, &grant, now);
        let started = self
            .stores
            .grants
            .start_grant(
                &grant,
                &refresh_record,
                &[access_logged, refresh_logged],
                Some((&login, &attempts)),
                Some(&user),
            )
            .await?;
        if !started {
            // Changed while the password was checked: the user (a new password, a disable), or
            // the source's counter (a wrong guess from it settled first). The login checked
            // what no longer holds: refused and counted as a failure, so that it leaves the
            // same trace as a wrong password and the counters never tell a right guess in a
            // burst.
            self.login_defence.failed(&login, &attempts, now).await;
            return Err(bad_credentials());
        }
        Ok(response(access_token, lifetime, &scope, Some(refresh_token), binding))
    }

    async fn refresh_grant(
        &self,
        client: &Client,
        params: &TokenParams<'_>,
        requested_scope: Option<ScopeSet>,
        requested: Requested<'_>,
        records: Option<GrantRecords>,
    ) -> Result<TokenResponse, Error> {
        let Requested { lifetime, binding, device } = requested;
        let presented = params
            .refresh_token
            .ok_or_else(|| Error::invalid_request("refresh_token is required"))?;
        let (grant_id, digest) = RefreshToken::parse(presented).ok_or_else(bad_refresh_token)?;
        let now = self.clock.now();
        let found = match records {
            Some(GrantRecords::RefreshToken(found)) => found,
            _ => self.stores.grants.refresh_token(&grant_id, &digest, now).await?,
        };
        let Some((used, grant)) = found else {
            return Err(bad_refresh_token());
        };
        // Bound to its client: another client learns nothing and changes nothing.
        if used.client_id != client.id || grant.revoked_at.is_some() {
            return Err(bad_refresh_token());
        }
        if let Some(used_at) = used.used_at
            && !within_reuse_interval(client, used_at, now)
        {
            return self.reuse_detected(&grant, now).await;
        }
        let scope = narrow_for_user(requested_scope, &grant.scope.intersection(&client.scopes))?;
        // An access token dies with its grant, so it never promises to outlive it.
        let lifetime = lifetime.min(grant.expires_at.saturating_sub(now));
        let principal =
            Principal { subject: &grant.subject, tenant: &grant.tenant, grant: Some(&grant.id) };
        let (access_token, access_logged) =
            self.mint_access_token(client, &principal, &scope, lifetime, binding, now)?;
        let (refresh_token, next, refresh_logged) = self.mint_refresh_token(client, &grant, now);
        // Any batch cutoff that covers the grant is checked inside the rotation itself.
        let guard = CutoffGuard {
            layers: layer::applying_to(&grant.tenant, &grant.client_id, grant.subject_ref()),
            grant_created_at: grant.created_at,
        };
        let issued = [access_logged, refresh_logged];
        let new_device = device.as_ref().filter(|device| grant.would_keep(device));
        let grants = &self.stores.grants;
        let answer = response(access_token, lifetime, &scope, Some(refresh_token), binding);
        let interval = client.refresh_reuse_interval;
        // A token rotated within the client's reuse interval (a retry after a lost answer,
        // two tabs) continues the grant on a new branch; a concurrent rotation of it may still
        // be being written, so a token not yet rotated is tried again, a few times.
        for attempt in 0..REISSUE_ATTEMPTS {
            if used.used_at.is_none() || attempt > 0 {
                match grants
                    .rotate_refresh_token(&used, &next, &issued, &guard, new_device, now)
                    .await?
                {
                    Rotation::Rotated => return Ok(answer),
                    Rotation::CutOff => return Err(bad_refresh_token()),
                    // Lost a race to a concurrent use of the same token: a second use too.
                    Rotation::AlreadyUsed if interval == 0 => {
                        return self.reuse_detected(&grant, now).await;
                    }
                    Rotation::AlreadyUsed => {}
                }
            }
            let since = now.saturating_sub(interval);
            let successor =
                Successor { used: &used, next: &next, issued: &issued, guard: &guard, new_device };
            match grants.reissue_refresh_token(&successor, since, now).await? {
                Reissue::Reissued => return Ok(answer),
                Reissue::CutOff => return Err(bad_refresh_token()),
                Reissue::OutsideInterval => return self.reuse_detected(&grant, now).await,
                Reissue::NotRotated => {
                    tokio::time::sleep(Duration::from_millis(10 << attempt)).await;
                }
            }
        }
        Err(Error::Storage(crate::error::StoreError(
            "a refresh token's concurrent rotation neither finished nor failed".into(),
        )))
    }

    /// A used refresh token came back: it may have been stolen, and the server cannot tell by
    /// whom, so the whole grant ends (RFC 9700 §4.14.2).
    async fn reuse_detected(&self, grant: &Grant, now: u64) -> Result<TokenResponse, Error> {
        tracing::warn!(grant = %grant.id, client = %grant.client_id, "refresh token reused; revoking the grant");
        telemetry::refresh_reuse_detected();
        self.stores.grants.revoke_grant(&grant.id, now).await?;
        Err(bad_refresh_token())
    }

    fn mint_access_token(
        &self,
        client: &Client,
        principal: &Principal<'_>,
        scope: &ScopeSet,
        lifetime: u64,
        bound_to: Option<&str>,
        now: u64,
    ) -> Result<(String, IssuedToken), Error> {
        let id = TokenId::generate();
        let claims = AccessTokenClaims {
            iss: self.tokens.issuer().to_owned(),
            sub: principal.subject.to_owned(),
            aud: self.tokens.audience().to_owned(),
            exp: now + lifetime,
            iat: now,
            nbf: None,
            jti: id.to_string(),
            client_id: client.id.to_string(),
            scope: scope.to_string(),
            tenant: principal.tenant.to_string(),
            sid: principal.grant.map(GrantId::to_string),
            cnf: bound_to.map(|jkt| Confirmation { jkt: jkt.to_owned() }),
        };
        let jwt = self.tokens.sign(&claims)?;
        let logged = IssuedToken {
            id,
            kind: TokenKind::Access,
            tenant: principal.tenant.clone(),
            client_id: client.id.clone(),
            subject: principal.subject.to_owned(),
            grant: principal.grant.cloned(),
            issued_at: now,
            expires_at: claims.exp,
        };
        Ok((jwt, logged))
    }

    fn mint_refresh_token(
        &self,
        client: &Client,
        grant: &Grant,
        now: u64,
    ) -> (String, RefreshRecord, IssuedToken) {
        let token = RefreshToken::generate(&grant.id);
        let record = RefreshRecord {
            digest: token.digest(),
            grant_id: grant.id.clone(),
            client_id: client.id.clone(),
            issued_at: now,
            expires_at: (now + client.refresh_idle_lifetime).min(grant.expires_at),
            used_at: None,
        };
        let logged = IssuedToken {
            id: record.digest.token_id(),
            kind: TokenKind::Refresh,
            tenant: grant.tenant.clone(),
            client_id: client.id.clone(),
            subject: grant.subject.clone(),
            grant: Some(grant.id.clone()),
            issued_at: now,
            expires_at: record.expires_at,
        };
        (token.into_string(), record, logged)
    }

    /// The requested lifetime, or the default, lowered to the client's maximum.
    fn lifetime(&self, client: &Client, requested: Option<&str>) -> Result<u64, Error> {
        let requested = match requested {
            None => self.default_lifetime,
            Some(raw) => parse_positive_integer(raw).ok_or_else(|| {
                Error::invalid_request(
                    "access-token-lifetime must be a positive integer of seconds",
                )
            })?,
        };
        Ok(requested.min(client.max_access_token_lifetime))
    }
}

fn response(
    access_token: String,
    lifetime: u64,
    scope: &ScopeSet,
    refresh_token: Option<String>,
    bound_to: Option<&str>,
) -> TokenResponse {
    TokenResponse {
        access_token,
        // RFC 9449 §5: a bound token is of type DPoP, and is presented with that scheme.
        token_type: if bound_to.is_some() { "DPoP" } else { "Bearer" },
        expires_in: lifetime,
        scope: scope.to_string(),
        refresh_token,
    }
}

/// Absent means everything `available`; otherwise a subset of it.
fn narrow(requested: Option<ScopeSet>, available: &ScopeSet) -> Result<ScopeSet, Error> {
    match requested {
        None => Ok(available.clone()),
        Some(requested) if requested.is_subset(available) => Ok(requested),
        Some(_) => Err(Error::InvalidScope("a requested scope is not allowed here".into())),
    }
}

/// [`narrow`] for a user's token: an absent scope means every scope `available` but the
/// administrative ones, and asking for one of those is `invalid_scope`.
fn narrow_for_user(requested: Option<ScopeSet>, available: &ScopeSet) -> Result<ScopeSet, Error> {
    if requested.as_ref().is_some_and(ScopeSet::has_administrative) {
        return Err(Error::InvalidScope(
            "administrative scopes are granted only to client_credentials tokens".into(),
        ));
    }
    narrow(requested, &available.without_administrative())
}

/// Decimal digits only, not zero; values past `u64::MAX` saturate (they are lowered anyway).
fn parse_positive_integer(raw: &str) -> Option<u64> {
    if raw.is_empty() || raw.len() > MAX_LIFETIME_DIGITS || !raw.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let value = raw.parse::<u64>().unwrap_or(u64::MAX);
    (value > 0).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::{ClientSecret, User, UserId};
    use crate::keys::{KeySet, SigningAlgorithm};
    use crate::password::HashParams;
    use crate::store::UserStore;
    use crate::store::memory::MemoryStore;

    /// Cheap Argon2 parameters: these tests count verifications, they do not time them.
    const FAST: HashParams = HashParams { memory_kib: 64, iterations: 1, parallelism: 1 };

    /// A token service over a memory store holding one password client and the user alice.
    async fn password_service() -> (TokenService, Passwords, Client) {
        let store = Arc::new(MemoryStore::new());
        let passwords = Passwords::new(FAST);
        let tenant = TenantPath::parse("/acme").unwrap();
        let alice = User {
            id: UserId::generate(),
            tenant: tenant.clone(),
            username: Username::parse("alice").unwrap(),
            password_hash: passwords.hash("alice-password").unwrap(),
            enabled: true,
            created_at: 0,
            version: 0,
        };
        store.create_user(&alice).await.unwrap();
        let client = Client {
            id: crate::domain::ClientId::parse("app").unwrap(),
            credentials: crate::domain::Credentials::secret(ClientSecret::generate().digest()),
            tenant,
            grants: [GrantType::Password, GrantType::RefreshToken].into(),
            scopes: ScopeSet::parse("read").unwrap(),
            max_access_token_lifetime: 600,
            refresh_idle_lifetime: 3600,
            refresh_absolute_lifetime: 7200,
            refresh_reuse_interval: 0,
            dpop_bound_access_tokens: false,
            enabled: true,
            version: 0,
        };
        let tokens = TokenSigner::new(
            KeySet::generate(SigningAlgorithm::ES256).unwrap(),
            "https://issuer".into(),
            "api".into(),
        );
        let clock = Arc::new(ManualClock::new(1_800_000_000));
        let service = TokenService::new(
            Stores::all(store),
            tokens,
            passwords.clone(),
            clock,
            600,
            Default::default(),
        );
        (service, passwords, client)
    }

    fn login<'a>(username: &'a str, password: &'a str) -> TokenParams<'a> {
        TokenParams {
            grant_type: Some("password"),
            username: Some(username),
            password: Some(password),
            ..TokenParams::default()
        }
    }

    /// The password grant's timing rule, proved by counting rather than timing: an unknown user
    /// and a wrong password each cost exactly one Argon2 verification and get the same answer.
    #[tokio::test]
    async fn unknown_user_and_wrong_password_each_run_exactly_one_argon2_verification() {
        let (service, passwords, client) = password_service().await;
        let wrong = service.issue(&client, &login("alice", "not-it")).await.unwrap_err();
        assert_eq!(passwords.argon2_runs(), 1, "wrong password");
        let unknown = service.issue(&client, &login("mallory", "not-it")).await.unwrap_err();
        assert_eq!(passwords.argon2_runs(), 2, "unknown user: the dummy hash is verified");
        assert_eq!(passwords.dummy_params(), Some(FAST), "at the real hashes' parameters");
        assert!(
            matches!(wrong, Error::InvalidGrant(_)) && matches!(unknown, Error::InvalidGrant(_))
        );
        assert_eq!(wrong.to_string(), unknown.to_string());
        service.issue(&client, &login("alice", "alice-password")).await.unwrap();
        assert_eq!(passwords.argon2_runs(), 3);
    }

    /// Counters that cannot be written: the guess is still a wrong password, and the next guess
    /// is checked as one (the failure is logged at ERROR, never let through or told).
    #[tokio::test]
    async fn a_failure_to_count_a_wrong_password_still_answers_invalid_grant() {
        use crate::domain::{LoginAttempts, LoginKey};
        use crate::store::{LoginAttemptStore, StoreError};

        struct Unwritable;
        #[async_trait::async_trait]
        impl LoginAttemptStore for Unwritable {
            async fn login_attempts(
                &self,
                _: &LoginKey,
                _: u64,
            ) -> Result<LoginAttempts, StoreError> {
                Ok(LoginAttempts::default())
            }
            async fn record_login_failure(
                &self,
                _: &LoginKey,
                _: &LoginAttempts,
                _: u64,
                _: u64,
            ) -> Result<LoginAttempts, StoreError> {
                Err(StoreError("throttled".into()))
            }
            async fn clear_login_failures(&self, _: &LoginKey) -> Result<(), StoreError> {
                Ok(())
            }
            async fn unlock_username(
                &self,
                _: &TenantPath,
                _: &str,
                _: u64,
                _: u64,
            ) -> Result<(), StoreError> {
                Ok(())
            }
        }
        let (service, _, client) = password_service().await;
        let stores = Stores { login_attempts: Arc::new(Unwritable), ..service.stores.clone() };
        let service = TokenService {
            login_defence: LoginDefence::new(Default::default(), stores.login_attempts.clone()),
            stores,
            ..service
        };
        for _ in 0..6 {
            let refused = service.issue(&client, &login("alice", "not-it")).await.unwrap_err();
            assert!(matches!(refused, Error::InvalidGrant(_)), "{refused:?}");
        }
        service.issue(&client, &login("alice", "alice-password")).await.unwrap();
    }

    /// A right password whose login lost the race to a wrong guess from its source (settled
    /// between the read and the session) is refused and counted like that wrong guess, so the
    /// counters after a burst never tell whether it held the password.
    #[tokio::test]
    async fn a_right_password_refused_for_a_race_counts_as_a_failure() {
        use crate::domain::{LoginAttempts, LoginKey, SourceAddress};
        use crate::store::{LoginAttemptStore, StoreError};

        /// Reads the counters as they were before one more failure settled.
        struct OneBehind(Arc<dyn LoginAttemptStore>);
        #[async_trait::async_trait]
        impl LoginAttemptStore for OneBehind {
            async fn login_attempts(
                &self,
                key: &LoginKey,
                now: u64,
            ) -> Result<LoginAttempts, StoreError> {
                let read = self.0.login_attempts(key, now).await?;
                self.0.record_login_failure(key, &read, now, now + 3600).await?;
                Ok(read)
            }
            async fn record_login_failure(
                &self,
                key: &LoginKey,
                read: &LoginAttempts,
                now: u64,
                until: u64,
            ) -> Result<LoginAttempts, StoreError> {
                self.0.record_login_failure(key, read, now, until).await
            }
            async fn clear_login_failures(&self, key: &LoginKey) -> Result<(), StoreError> {
                self.0.clear_login_failures(key).await
            }
            async fn unlock_username(
                &self,
                t: &TenantPath,
                d: &str,
                now: u64,
                until: u64,
            ) -> Result<(), StoreError> {
                self.0.unlock_username(t, d, now, until).await
            }
        }
        let (service, _, client) = password_service().await;
        let counters = service.stores.login_attempts.clone();
        let stores = Stores {
            login_attempts: Arc::new(OneBehind(counters.clone())),
            ..service.stores.clone()
        };
        let service = TokenService {
            login_defence: LoginDefence::new(Default::default(), stores.login_attempts.clone()),
            stores,
            ..service
        };
        let refused = service.issue(&client, &login("alice", "alice-password")).await.unwrap_err();
        assert!(matches!(refused, Error::InvalidGrant(_)), "{refused:?}");
        let key = LoginKey::new(
            &TenantPath::parse("/acme").unwrap(),
            &Username::parse("alice").unwrap(),
            SourceAddress::new(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)),
        );
        let after = counters.login_attempts(&key, 1_800_000_000).await.unwrap();
        assert_eq!(after.by_source.unwrap().failures, 2, "the racing failure, and this login");
    }

    /// A disabled user with the right password gets the wrong password's answer, after the same
    /// one Argon2 run, so neither the body nor the timing tells the account is disabled.
    #[tokio::test]
    async fn a_disabled_user_is_refused_exactly_like_a_wrong_password() {
        let (service, passwords, client) = password_service().await;
        let tenant = TenantPath::parse("/acme").unwrap();
        let alice = Username::parse("alice").unwrap();
        let mut user = service.stores.users.user(&tenant, &alice).await.unwrap().unwrap();
        user.enabled = false;
        assert!(service.stores.users.update_user(&user).await.unwrap());

        let disabled = service.issue(&client, &login("alice", "alice-password")).await.unwrap_err();
        assert_eq!(passwords.argon2_runs(), 1, "the hash is verified all the same");
        let wrong = service.issue(&client, &login("alice", "not-it")).await.unwrap_err();
        assert_eq!(passwords.argon2_runs(), 2);
        assert!(matches!(disabled, Error::InvalidGrant(_)), "{disabled:?}");
        assert_eq!(disabled.to_string(), wrong.to_string());
        assert_eq!(disabled.code(), wrong.code());
    }

    fn with_device<'a>(params: TokenParams<'a>, device: &'a str) -> TokenParams<'a> {
        TokenParams { device_id: Some(device), ..params }
    }

    /// `x-device-id` on a password login is stored on the grant it starts; on a refresh it is
    /// added to the grant's device ids.
    #[tokio::test]
    async fn device_ids_of_logins_and_refreshes_are_stored_on_the_grant() {
        let (service, _, client) = password_service().await;
        let issued = service
            .issue(&client, &with_device(login("alice", "alice-password"), "phone-1"))
            .await
            .unwrap();
        let refresh_token = issued.refresh_token.unwrap();
        let (grant_id, _) = RefreshToken::parse(&refresh_token).unwrap();
        let now = service.clock.now();
        let grant = service.stores.grants.grant(&grant_id, now).await.unwrap().unwrap();
        let ids = |grant: &Grant| -> Vec<String> {
            grant.device_ids.iter().map(|d| d.as_str().to_owned()).collect()
        };
        assert_eq!(ids(&grant), vec!["phone-1".to_owned()]);

        let refresh = TokenParams {
            grant_type: Some("refresh_token"),
            refresh_token: Some(&refresh_token),
            device_id: Some("tablet-2"),
            ..TokenParams::default()
        };
        service.issue(&client, &refresh).await.unwrap();
        let grant = service.stores.grants.grant(&grant_id, now).await.unwrap().unwrap();
        assert_eq!(ids(&grant), vec!["phone-1".to_owned(), "tablet-2".to_owned()]);
    }

    #[tokio::test]
    async fn a_malformed_device_id_is_an_invalid_request_naming_the_header() {
        let (service, passwords, client) = password_service().await;
        let too_long = "d".repeat(crate::domain::MAX_DEVICE_ID_LEN + 1);
        for device in ["", "phone\t1", too_long.as_str()] {
            let params = with_device(login("alice", "alice-password"), device);
            let error = service.issue(&client, &params).await.unwrap_err();
            assert!(matches!(error, Error::InvalidRequest(_)), "{device:?}: {error:?}");
            assert!(error.to_string().contains("x-device-id"), "{device:?}: {error:?}");
        }
        assert_eq!(passwords.argon2_runs(), 0, "refused before any hashing");
    }

    /// Issue 13: with the hashing queue full, a login is answered 503 at once (its future is
    /// ready at the first poll), without hashing, whether the user exists or not.
    #[tokio::test]
    async fn a_full_hashing_queue_sheds_known_and_unknown_users_alike_without_hashing() {
        let (service, passwords, client) = password_service().await;
        let full = passwords.fill_queue().await;
        let at_once = |params: TokenParams<'static>| {
            let mut login = std::pin::pin!(service.issue(&client, &params));
            let mut context = std::task::Context::from_waker(std::task::Waker::noop());
            match login.as_mut().poll(&mut context) {
                std::task::Poll::Ready(answer) => answer.unwrap_err(),
                std::task::Poll::Pending => panic!("a shed login waits for nothing"),
            }
        };
        let known = at_once(login("alice", "alice-password"));
        let unknown = at_once(login("mallory", "alice-password"));
        assert!(matches!(known, Error::TemporarilyUnavailable { retry_after_secs: 1.. }));
        assert!(matches!(unknown, Error::TemporarilyUnavailable { retry_after_secs: 1.. }));
        assert_eq!(known.to_string(), unknown.to_string());
        assert_eq!(passwords.argon2_runs(), 0, "nothing hashed");
        drop(full);
        service.issue(&client, &login("alice", "alice-password")).await.unwrap();
    }

    #[tokio::test]
    async fn oversized_and_malformed_credentials_are_refused_before_any_hashing() {
        let (service, passwords, client) = password_service().await;
        let long_password = "p".repeat(MAX_PASSWORD_LEN + 1);
        let long_username = "u".repeat(crate::domain::MAX_USERNAME_LEN + 1);
        for params in [
            login("alice", &long_password),
            login(&long_username, "pw"),
            login(" alice", "pw"),
            TokenParams { tenant_path: Some("/globex"), ..login("alice", "alice-password") },
            TokenParams { tenant_path: Some("not a path"), ..login("alice", "alice-password") },
        ] {
            let error = service.issue(&client, &params).await.unwrap_err();
            assert!(matches!(error, Error::InvalidRequest(_)), "{error:?}");
        }
        assert_eq!(passwords.argon2_runs(), 0, "no Argon2 run for a request refused on its limits");
    }

    #[test]
    fn lifetimes_must_be_positive_decimal_integers() {
        assert_eq!(parse_positive_integer("60"), Some(60));
        assert_eq!(parse_positive_integer("0060"), Some(60));
        assert_eq!(parse_positive_integer("99999999999999999999999"), Some(u64::MAX));
        for bad in ["", "0", "000", "-1", "+5", "1.5", "1e3", " 60", "sixty", &"9".repeat(33)] {
            assert_eq!(parse_positive_integer(bad), None, "{bad:?}");
        }
    }
}
