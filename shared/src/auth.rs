//! Client authentication, shared by the token, revocation and introspection endpoints: a secret
//! (RFC 6749 §2.3.1) or a signed assertion (`private_key_jwt`, RFC 7523), each only for a client
//! registered for it.

use std::sync::Arc;
use std::sync::OnceLock;

use crate::client_assertion::{MAX_ASSERTION_LEN, assertion_kid, verify_assertion};
use crate::clock::Clock;
use crate::domain::{Client, ClientId, Credentials, MAX_SECRET_LEN, Redacted, SecretDigest};
use crate::endpoints;
use crate::error::Error;
use crate::store::{ClientStore, GrantRead, GrantRecords, ReplayStore};

/// Client credentials as presented, not yet checked. `Debug` leaves out the secret and the
/// assertion.
pub enum PresentedClient {
    /// A secret, in HTTP Basic or in the body: both are `client_secret_basic` and
    /// `client_secret_post` clients' one credential, presented either way.
    Secret { id: String, secret: String },
    /// A JWT signed with one of the client's registered keys, made for `endpoint` (the path of
    /// the route it was presented at).
    Assertion { id: String, assertion: String, endpoint: &'static str },
}

impl PresentedClient {
    pub fn secret(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self::Secret { id: id.into(), secret: secret.into() }
    }

    pub fn id(&self) -> &str {
        match self {
            Self::Secret { id, .. } | Self::Assertion { id, .. } => id,
        }
    }
}

impl std::fmt::Debug for PresentedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret { id, .. } => {
                f.debug_struct("Secret").field("id", id).field("secret", &Redacted).finish()
            }
            Self::Assertion { id, endpoint, .. } => f
                .debug_struct("Assertion")
                .field("id", id)
                .field("assertion", &Redacted)
                .field("endpoint", endpoint)
                .finish(),
        }
    }
}

#[derive(Clone)]
pub struct Authenticator {
    clients: Arc<dyn ClientStore>,
    replays: Arc<dyn ReplayStore>,
    clock: Arc<dyn Clock>,
    /// An assertion's `aud` names the issuer or the URL of the endpoint it is presented at.
    issuer: String,
}

impl Authenticator {
    pub fn new(
        clients: Arc<dyn ClientStore>,
        replays: Arc<dyn ReplayStore>,
        clock: Arc<dyn Clock>,
        issuer: String,
    ) -> Self {
        Self { clients, replays, clock, issuer }
    }

    /// Checks the presented credential against the client's registration. Every failure is the
    /// same `invalid_client`, and an unknown client costs the same digest comparison as a known
    /// one.
    pub async fn authenticate(&self, presented: &PresentedClient) -> Result<Client, Error> {
        let id = presented_id(presented)?;
        let now = self.clock.now();
        let accept = |client: &Client| accepts(client, presented, now);
        let found = self.clients.client_accepted(&id, &accept).await?;
        self.check(presented, found, now).await
    }

    /// [`Authenticator::authenticate`], reading with the client the records `next` names when
    /// the store can do both in one round trip. Nothing of them is used before the client is
    /// authenticated.
    pub async fn authenticate_with(
        &self,
        presented: &PresentedClient,
        next: GrantRead<'_>,
        now: u64,
    ) -> Result<(Client, Option<GrantRecords>), Error> {
        let id = presented_id(presented)?;
        let accept = |client: &Client| accepts(client, presented, now);
        let (client, records) = self.clients.client_with_accepted(&id, next, now, &accept).await?;
        Ok((self.check(presented, client, now).await?, records))
    }

    async fn check(
        &self,
        presented: &PresentedClient,
        found: Option<Client>,
        now: u64,
    ) -> Result<Client, Error> {
        let client = match presented {
            PresentedClient::Secret { secret, .. } => check_secret(secret, found, now)?,
            PresentedClient::Assertion { assertion, endpoint, .. } => {
                let client = found.filter(|client| client.enabled).ok_or(Error::InvalidClient)?;
                let endpoint_url = endpoints::url(&self.issuer, endpoint);
                let audiences = [self.issuer.as_str(), endpoint_url.as_str()];
                let verified =
                    verify_assertion(assertion, &client, &audiences, now).map_err(|rejected| {
                        tracing::info!(client = %client.id, %rejected, "client assertion refused");
                        Error::InvalidClient
                    })?;
                // Written only for an assertion that verified, so nobody else can burn a
                // client's jti; a jti seen before is a replay, refused like any failure.
                if !self.replays.first_use(&verified.replay, verified.replay_until, now).await? {
                    tracing::warn!(client = %client.id, "client assertion replayed");
                    return Err(Error::InvalidClient);
                }
                client
            }
        };
        tracing::Span::current().record("client_id", client.id.as_str());
        Ok(client)
    }
}

fn presented_id(presented: &PresentedClient) -> Result<ClientId, Error> {
    let too_long = match presented {
        PresentedClient::Secret { secret, .. } => secret.len() > MAX_SECRET_LEN,
        PresentedClient::Assertion { assertion, .. } => assertion.len() > MAX_ASSERTION_LEN,
    };
    if too_long {
        return Err(Error::InvalidClient);
    }
    ClientId::parse(presented.id()).map_err(|_| Error::InvalidClient)
}

/// A disabled client fails like a wrong secret. A previous secret counts until its overlap ends.
fn check_secret(secret: &str, found: Option<Client>, now: u64) -> Result<Client, Error> {
    match found {
        Some(client) if client.enabled && client.credentials.secret_matches(secret, now) => {
            Ok(client)
        }
        Some(_) => Err(Error::InvalidClient),
        None => {
            std::hint::black_box(unknown_client_digest().matches(secret));
            Err(Error::InvalidClient)
        }
    }
}

/// Whether a (possibly cached) record can accept what was presented; when it cannot, a caching
/// store reads the record again, so a rotated secret or a newly registered key works at once.
/// An assertion is checked for its key only here: its signature is checked once, afterwards.
fn accepts(client: &Client, presented: &PresentedClient, now: u64) -> bool {
    if !client.enabled {
        return false;
    }
    match (presented, &client.credentials) {
        (PresentedClient::Secret { secret, .. }, credentials) => {
            credentials.secret_matches(secret, now)
        }
        (PresentedClient::Assertion { assertion, .. }, Credentials::PrivateKeyJwt { jwks }) => {
            assertion_kid(assertion).is_some_and(|kid| jwks.keys().any(|(id, _, _)| id == kid))
        }
        (PresentedClient::Assertion { .. }, Credentials::Secret { .. }) => false,
    }
}

/// A fixed digest compared when the client is unknown, so that both paths do the same work.
fn unknown_client_digest() -> &'static SecretDigest {
    static DIGEST: OnceLock<SecretDigest> = OnceLock::new();
    DIGEST.get_or_init(|| SecretDigest::of(b"unknown-client"))
}
