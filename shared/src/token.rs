//! The token endpoint's rules (RFC 6749 §4.3, §4.4, §5, §6; RFC 9700 §4.14), free of HTTP and of
//! any storage technology.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::auth::{Authenticator, PresentedClient};
use crate::clock::Clock;
use crate::domain::{
    Client, Grant, GrantId, GrantType, Redacted, RefreshRecord, RefreshToken, ScopeSet,
    SecretDigest, TenantPath, TokenId, Username, redacted,
};
use crate::error::Error;
use crate::jwt::{AccessTokenClaims, TokenSigner};
use crate::password::{MAX_PASSWORD_LEN, Passwords, Verified};
use crate::store::{
    CutoffGuard, GrantRead, GrantRecords, IssuedToken, Rotation, Stores, TokenKind, layer,
};

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
    User(TenantPath, Username),
    RefreshToken(GrantId, SecretDigest),
}

impl NextRead {
    fn of(params: &TokenParams<'_>) -> Option<Self> {
        match params.grant_type? {
            "password" => Some(Self::User(
                TenantPath::parse(params.tenant_path?).ok()?,
                Username::parse(params.username?).ok()?,
            )),
            "refresh_token" => {
                let (grant, digest) = RefreshToken::parse(params.refresh_token?)?;
                Some(Self::RefreshToken(grant, digest))
            }
            _ => None,
        }
    }

    fn as_grant_read(&self) -> GrantRead<'_> {
        match self {
            Self::User(tenant, username) => GrantRead::User { tenant, username },
            Self::RefreshToken(grant, digest) => GrantRead::RefreshToken { grant, digest },
        }
    }
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
}

impl TokenService {
    pub fn new(
        stores: Stores,
        tokens: TokenSigner,
        passwords: Passwords,
        clock: Arc<dyn Clock>,
        default_lifetime: u64,
    ) -> Self {
        Self {
            auth: Authenticator::new(stores.clients.clone()),
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
        match grant {
            GrantType::ClientCredentials => {
                let scope = narrow(requested_scope, &client.scopes)?;
                let principal =
                    Principal { subject: client.id.as_str(), tenant: &client.tenant, grant: None };
                let now = self.clock.now();
                let (access_token, logged) =
                    self.mint_access_token(client, &principal, &scope, lifetime, now)?;
                // Recorded before the token leaves: a token the log does not know could not be
                // counted by a batch revocation.
                self.stores.issuance.record_issued(&logged).await?;
                Ok(response(access_token, lifetime, &scope, None))
            }
            GrantType::Password => {
                let scope = narrow_for_user(requested_scope, &client.scopes)?;
                self.password_grant(client, params, scope, lifetime, records).await
            }
            GrantType::RefreshToken => {
                self.refresh_grant(client, params, requested_scope, lifetime, records).await
            }
        }
    }

    async fn password_grant(
        &self,
        client: &Client,
        params: &TokenParams<'_>,
        scope: ScopeSet,
        lifetime: u64,
        records: Option<GrantRecords>,
    ) -> Result<TokenResponse, Error> {
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

        // A place in the hashing queue before the user is read (unless it came with the
        // client): a full queue sheds at once, without a store read. It sheds every login
        // alike, since a known and an unknown user each need one Argon2 run.
        let admission = self.passwords.admit().map_err(|busy| Error::TemporarilyUnavailable {
            retry_after_secs: busy.retry_after_secs,
        })?;
        let user = match records {
            Some(GrantRecords::User(user)) => user,
            _ => self.stores.users.user(&tenant, &username).await?,
        };
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let verified = admission
            .verify(stored_hash, password.to_owned())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let user = match (user, verified) {
            (Some(user), Verified::Yes) => user,
            (Some(user), Verified::YesRehashed(new_hash)) => {
                if let Err(error) = self.stores.users.replace_password_hash(&user, &new_hash).await
                {
                    tracing::warn!(%error, "storing a rehashed password failed; login proceeds");
                }
                user
            }
            _ => return Err(bad_credentials()),
        };

        let now = self.clock.now();
        let grant = Grant {
            id: GrantId::generate(),
            client_id: client.id.clone(),
            tenant,
            subject: user.id.to_string(),
            username: Some(user.username),
            scope: scope.clone(),
            created_at: now,
            expires_at: now + client.refresh_absolute_lifetime,
            revoked_at: None,
        };
        let lifetime = lifetime.min(client.refresh_absolute_lifetime);
        let principal =
            Principal { subject: &grant.subject, tenant: &grant.tenant, grant: Some(&grant.id) };
        let (access_token, access_logged) =
            self.mint_access_token(client, &principal, &scope, lifetime, now)?;
        let (refresh_token, refresh_record, refresh_logged) =
            self.mint_refresh_token(client, &grant, now);
        self.stores
            .grants
            .start_grant(&grant, &refresh_record, &[access_logged, refresh_logged])
            .await?;
        Ok(response(access_token, lifetime, &scope, Some(refresh_token)))
    }

    async fn refresh_grant(
        &self,
        client: &Client,
        params: &TokenParams<'_>,
        requested_scope: Option<ScopeSet>,
        lifetime: u64,
        records: Option<GrantRecords>,
    ) -> Result<TokenResponse, Error> {
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
        if used.used_at.is_some() {
            return self.reuse_detected(&grant, now).await;
        }
        let scope = narrow_for_user(requested_scope, &grant.scope.intersection(&client.scopes))?;
        // An access token dies with its grant, so it never promises to outlive it.
        let lifetime = lifetime.min(grant.expires_at.saturating_sub(now));
        let principal =
            Principal { subject: &grant.subject, tenant: &grant.tenant, grant: Some(&grant.id) };
        let (access_token, access_logged) =
            self.mint_access_token(client, &principal, &scope, lifetime, now)?;
        let (refresh_token, next, refresh_logged) = self.mint_refresh_token(client, &grant, now);
        // Any batch cutoff that covers the grant is checked inside the rotation itself.
        let guard = CutoffGuard {
            layers: layer::applying_to(&grant.tenant, &grant.client_id, grant.subject_ref()),
            grant_created_at: grant.created_at,
        };
        let rotation = self
            .stores
            .grants
            .rotate_refresh_token(&used, &next, &[access_logged, refresh_logged], &guard, now)
            .await?;
        match rotation {
            Rotation::Rotated => Ok(response(access_token, lifetime, &scope, Some(refresh_token))),
            // Lost a race to a concurrent use of the same token: that is a second use too.
            Rotation::AlreadyUsed => self.reuse_detected(&grant, now).await,
            Rotation::CutOff => Err(bad_refresh_token()),
        }
    }

    /// A used refresh token came back: it may have been stolen, and the server cannot tell by
    /// whom, so the whole grant ends (RFC 9700 §4.14.2).
    async fn reuse_detected(&self, grant: &Grant, now: u64) -> Result<TokenResponse, Error> {
        tracing::warn!(grant = %grant.id, client = %grant.client_id, "refresh token reused; revoking the grant");
        self.stores.grants.revoke_grant(&grant.id, now).await?;
        Err(bad_refresh_token())
    }

    fn mint_access_token(
        &self,
        client: &Client,
        principal: &Principal<'_>,
        scope: &ScopeSet,
        lifetime: u64,
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
) -> TokenResponse {
    TokenResponse {
        access_token,
        token_type: "Bearer",
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
        };
        store.create_user(&alice).await.unwrap();
        let client = Client {
            id: crate::domain::ClientId::parse("app").unwrap(),
            secret_digest: ClientSecret::generate().digest(),
            tenant,
            grants: [GrantType::Password, GrantType::RefreshToken].into(),
            scopes: ScopeSet::parse("read").unwrap(),
            max_access_token_lifetime: 600,
            refresh_idle_lifetime: 3600,
            refresh_absolute_lifetime: 7200,
        };
        let tokens = TokenSigner::new(
            KeySet::generate(SigningAlgorithm::ES256).unwrap(),
            "https://issuer".into(),
            "api".into(),
        );
        let clock = Arc::new(ManualClock::new(1_800_000_000));
        let service = TokenService::new(Stores::all(store), tokens, passwords.clone(), clock, 600);
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
