//! The one verification routine, used everywhere an access token is accepted: introspection,
//! bearer revocation, the batch-revoke caller, the admin API and the Lambda authorizer.
//!
//! 1. header against the allow-list, `kid` looked up in memory, `alg` bound to that key;
//! 2. signature;
//! 3. claims: `typ`, `iss`, `aud`, `exp`/`nbf` with a small leeway, strict types;
//! 4. revocation, in one consistent store round trip: the token, its grant, and every batch
//!    cutoff layer (each ancestor tenant, the client, the subject); the latest cutoff wins;
//! 5. presentation: a token bound to a DPoP key (`cnf.jkt`) is accepted only with the `DPoP`
//!    scheme and a proof by that key for this request (RFC 9449 §7.1), never as a bearer token;
//!    an unbound token only as a bearer token.

use std::sync::Arc;

use crate::clock::Clock;
use crate::domain::{
    ADMINISTRATIVE_SCOPES, ClientId, GrantId, Subject, TenantPath, TokenId, Username,
};
use crate::dpop::{DpopError, DpopVerifier, ProofContext, ProofRejected};
use crate::endpoints;
use crate::error::{Error, StoreError};
use crate::jwt::{AccessTokenClaims, AccessTokens, TokenRejected};
use crate::store::{GrantStore, ReplayStore, RevocationStore, TokenRef};

/// A token that passed every check.
#[derive(Clone, Debug)]
pub struct VerifiedToken {
    pub claims: AccessTokenClaims,
    pub id: TokenId,
    pub tenant: TenantPath,
    pub client_id: ClientId,
    pub grant: Option<GrantId>,
    /// The user's name, from the grant, for password-grant tokens.
    pub username: Option<Username>,
}

/// `scope` (a space-separated claim) without the administrative scopes; the same string when it
/// holds none.
fn without_administrative(scope: String) -> String {
    let administrative = |s: &str| ADMINISTRATIVE_SCOPES.contains(&s);
    if !scope.split(' ').any(administrative) {
        return scope;
    }
    scope.split(' ').filter(|s| !administrative(s)).collect::<Vec<_>>().join(" ")
}

impl VerifiedToken {
    /// Admits the token to an administrative operation needing `scope` (one of
    /// [`crate::domain::ADMINISTRATIVE_SCOPES`]): only a `client_credentials` token, whose
    /// subject is the client itself, may act so. A token of a user's grant is refused whatever
    /// its scope claim says; the grants never put such a scope there, and this holds even if one
    /// did.
    pub fn require_administrative(&self, scope: &str) -> Result<(), Error> {
        if self.grant.is_some() {
            return Err(Error::InsufficientScope(
                format!("a user's token never carries {scope}: use a client_credentials token")
                    .into(),
            ));
        }
        if !self.claims.scope.split(' ').any(|granted| granted == scope) {
            return Err(Error::InsufficientScope(
                format!("the token lacks the {scope} scope").into(),
            ));
        }
        Ok(())
    }
}

/// An access token as a request presents it: `Authorization: Bearer` (RFC 6750 §2.1), or
/// `Authorization: DPoP` with the `DPoP` proof header (RFC 9449 §7.1) for the request's method
/// and path on this service.
#[derive(Clone, Copy, Debug)]
pub enum Presented<'a> {
    Bearer(&'a str),
    Dpop { token: &'a str, proof: Option<&'a str>, method: &'a str, path: &'a str },
}

/// Why a token is not accepted. Logged; callers only ever see "invalid_token" or "inactive".
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Token(#[from] TokenRejected),
    #[error("claims are well signed but malformed")]
    MalformedClaims,
    #[error("token revoked")]
    Revoked,
    #[error("grant revoked or gone")]
    GrantRevoked,
    #[error("issued before a batch cutoff")]
    CutOff,
    #[error("a DPoP-bound token presented as a bearer token")]
    BoundTokenAsBearer,
    #[error("an unbound token presented with the DPoP scheme")]
    UnboundTokenAsDpop,
    #[error("{0}")]
    Proof(ProofRejected),
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("rejected: {0}")]
    Rejected(#[from] Rejection),
    /// The store could not say: verification fails closed, and the caller answers 503.
    #[error(transparent)]
    Storage(#[from] StoreError),
}

impl From<VerifyError> for Error {
    fn from(error: VerifyError) -> Self {
        match error {
            VerifyError::Rejected(Rejection::Proof(rejected)) => {
                tracing::debug!(%rejected, "DPoP proof rejected");
                Error::RejectedDpopProof(rejected.to_string().into())
            }
            VerifyError::Rejected(Rejection::BoundTokenAsBearer) => Error::InvalidToken(
                "the access token is DPoP-bound: present it as Authorization: DPoP with a proof"
                    .into(),
            ),
            VerifyError::Rejected(rejection) => {
                tracing::debug!(%rejection, "token rejected");
                Error::InvalidToken("the access token is invalid, expired or revoked".into())
            }
            VerifyError::Storage(error) => Error::Storage(error),
        }
    }
}

/// What revocation and introspection both work with besides client authentication: the
/// verifier, grants, revocation records and the clock.
#[derive(Clone)]
pub struct TokenState {
    pub verifier: Verifier,
    pub grants: Arc<dyn GrantStore>,
    pub revocations: Arc<dyn RevocationStore>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Clone)]
pub struct Verifier {
    tokens: AccessTokens,
    revocations: Arc<dyn RevocationStore>,
    dpop: DpopVerifier,
    clock: Arc<dyn Clock>,
}

impl Verifier {
    pub fn new(
        tokens: AccessTokens,
        revocations: Arc<dyn RevocationStore>,
        replays: Arc<dyn ReplayStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { tokens, revocations, dpop: DpopVerifier::new(replays, clock.clone()), clock }
    }

    pub fn tokens(&self) -> &AccessTokens {
        &self.tokens
    }

    /// A token presented as `Authorization: Bearer`: never a DPoP-bound one.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        let verified = self.inspect(token).await?;
        if verified.claims.bound_to().is_some() {
            return Err(Rejection::BoundTokenAsBearer.into());
        }
        Ok(verified)
    }

    /// A token presented as `Authorization: DPoP` with `proof` for the request `context`
    /// describes: only a bound token, with a proof by its key. The proof is checked after the
    /// token, so a proof's `jti` is recorded only for a token that could be used.
    pub async fn verify_dpop(
        &self,
        token: &str,
        proof: Option<&str>,
        context: &ProofContext<'_>,
    ) -> Result<VerifiedToken, VerifyError> {
        let verified = self.inspect(token).await?;
        let Some(jkt) = verified.claims.bound_to() else {
            return Err(Rejection::UnboundTokenAsDpop.into());
        };
        let proof = proof.ok_or(Rejection::Proof(ProofRejected::Missing))?;
        let context = ProofContext { access_token: Some(token), ..*context };
        match self.dpop.verify_bound(proof, &context, jkt).await {
            Ok(()) => Ok(verified),
            Err(DpopError::Rejected(rejected)) => Err(Rejection::Proof(rejected).into()),
            Err(DpopError::Storage(error)) => Err(error.into()),
        }
    }

    /// A token as a request to this service presents it: a DPoP proof's `htu` is the issuer's
    /// base plus the request's path.
    pub async fn verify_presented(
        &self,
        presented: &Presented<'_>,
    ) -> Result<VerifiedToken, VerifyError> {
        match *presented {
            Presented::Bearer(token) => self.verify(token).await,
            Presented::Dpop { token, proof, method, path } => {
                let url = endpoints::url(self.tokens.issuer(), path);
                let context = ProofContext { method, url: &url, access_token: None };
                self.verify_dpop(token, proof, &context).await
            }
        }
    }

    /// Every check but the presentation's: for introspection, which reports a bound token's
    /// binding rather than requiring a proof.
    pub async fn inspect(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        let now = self.clock.now();
        let claims = self.tokens.verify(token, now).map_err(Rejection::Token)?;
        let malformed = |_| Rejection::MalformedClaims;
        let id = TokenId::parse(&claims.jti).map_err(malformed)?;
        let tenant = TenantPath::parse(&claims.tenant).map_err(|_| Rejection::MalformedClaims)?;
        let client_id =
            ClientId::parse(&claims.client_id).map_err(|_| Rejection::MalformedClaims)?;
        let grant = claims
            .sid
            .as_deref()
            .map(GrantId::parse)
            .transpose()
            .map_err(|_| Rejection::MalformedClaims)?;

        // A token without a grant is the client's own, and names it as its subject.
        if grant.is_none() && claims.sub != claims.client_id {
            return Err(Rejection::MalformedClaims.into());
        }
        let token_ref = TokenRef {
            id: &id,
            grant: grant.as_ref(),
            tenant: &tenant,
            client_id: &client_id,
            subject: Subject::of_token(&tenant, &client_id, &claims.sub, grant.is_some()),
        };
        let state = self.revocations.revocation_state(&token_ref, now).await?;
        if state.token_revoked {
            return Err(Rejection::Revoked.into());
        }
        let username = match (&grant, &state.grant) {
            (None, _) => None,
            (Some(_), Some(stored)) if stored.revoked_at.is_none() => {
                // A grant that began before a cutoff is dead whole, whatever its tokens' iat.
                if state.not_before.is_some_and(|cutoff| stored.created_at < cutoff) {
                    return Err(Rejection::CutOff.into());
                }
                stored.username.clone()
            }
            (Some(_), _) => return Err(Rejection::GrantRevoked.into()),
        };
        if state.not_before.is_some_and(|cutoff| claims.iat < cutoff) {
            return Err(Rejection::CutOff.into());
        }
        tracing::Span::current().record("client_id", client_id.as_str());
        let mut claims = claims;
        if grant.is_some() {
            // A user's token never holds administrative power, whatever its claim says (one
            // issued before user grants left these scopes out, say): every consumer of a
            // verified token, introspection and the authorizer included, sees them stripped.
            claims.scope = without_administrative(std::mem::take(&mut claims.scope));
        }
        Ok(VerifiedToken { claims, id, tenant, client_id, grant, username })
    }
}
