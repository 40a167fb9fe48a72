//! Client authentication, shared by the token, revocation and introspection endpoints.

use std::sync::Arc;
use std::sync::OnceLock;

use crate::clock::Clock;
use crate::domain::{Client, ClientId, MAX_SECRET_LEN, Redacted, SecretDigest};
use crate::error::Error;
use crate::store::{ClientStore, GrantRead, GrantRecords};

/// Client credentials as presented, not yet checked. `Debug` leaves out the secret.
pub struct PresentedClient {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for PresentedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresentedClient").field("id", &self.id).field("secret", &Redacted).finish()
    }
}

#[derive(Clone)]
pub struct Authenticator {
    clients: Arc<dyn ClientStore>,
    clock: Arc<dyn Clock>,
}

impl Authenticator {
    pub fn new(clients: Arc<dyn ClientStore>, clock: Arc<dyn Clock>) -> Self {
        Self { clients, clock }
    }

    /// Checks the client's secret against its stored digest. Every failure is the same
    /// `invalid_client`, and an unknown client costs the same digest comparison as a known one.
    pub async fn authenticate(&self, presented: &PresentedClient) -> Result<Client, Error> {
        let id = presented_id(presented)?;
        let now = self.clock.now();
        let accept = |client: &Client| accepts(client, presented, now);
        check_secret(presented, self.clients.client_accepted(&id, &accept).await?, now)
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
        Ok((check_secret(presented, client, now)?, records))
    }
}

fn presented_id(presented: &PresentedClient) -> Result<ClientId, Error> {
    if presented.secret.len() > MAX_SECRET_LEN {
        return Err(Error::InvalidClient);
    }
    ClientId::parse(&presented.id).map_err(|_| Error::InvalidClient)
}

/// A disabled client fails like a wrong secret. A previous secret counts until its overlap ends.
fn check_secret(
    presented: &PresentedClient,
    found: Option<Client>,
    now: u64,
) -> Result<Client, Error> {
    match found {
        Some(client) if accepts(&client, presented, now) => {
            tracing::Span::current().record("client_id", client.id.as_str());
            Ok(client)
        }
        Some(_) => Err(Error::InvalidClient),
        None => {
            std::hint::black_box(unknown_client_digest().matches(&presented.secret));
            Err(Error::InvalidClient)
        }
    }
}

fn accepts(client: &Client, presented: &PresentedClient, now: u64) -> bool {
    client.enabled && client.credentials.secret_matches(&presented.secret, now)
}

/// A fixed digest compared when the client is unknown, so that both paths do the same work.
fn unknown_client_digest() -> &'static SecretDigest {
    static DIGEST: OnceLock<SecretDigest> = OnceLock::new();
    DIGEST.get_or_init(|| SecretDigest::of(b"unknown-client"))
}
