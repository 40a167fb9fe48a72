//! RFC 7662 introspection for authenticated clients. Anything not active, including a token of a
//! tenant outside the caller's subtree, is `{"active": false}` and nothing more.

use serde::Serialize;

use crate::auth::Authenticator;
use crate::domain::{Client, RefreshToken};
use crate::error::Error;
use crate::jwt::Confirmation;
use crate::store::TokenRef;
use crate::token_cache::VerifiedTokenCache;
use crate::verify::{TokenState, VerifyError};

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub details: Option<ActiveToken>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ActiveToken {
    pub token_type: &'static str,
    pub scope: String,
    pub client_id: String,
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    pub iss: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    pub tenant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// RFC 9449 §6.2: the key a bound token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

impl Introspection {
    pub const INACTIVE: Introspection = Introspection { active: false, details: None };

    fn active(details: ActiveToken) -> Self {
        Self { active: true, details: Some(details) }
    }
}

pub struct IntrospectionService {
    auth: Authenticator,
    tokens: TokenState,
}

impl IntrospectionService {
    /// The process's cache of verified tokens, which every service built by one wiring shares.
    pub fn verified_tokens(&self) -> &VerifiedTokenCache {
        self.tokens.verifier.tokens().verified_tokens()
    }

    pub fn new(auth: Authenticator, tokens: TokenState) -> Self {
        Self { auth, tokens }
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    /// Access tokens are active for any caller whose tenant contains the token's tenant. Refresh
    /// tokens are active only for the client they were issued to. A storage failure is an error
    /// (503), never an answer.
    pub async fn introspect(
        &self,
        caller: &Client,
        token: &str,
        hint: Option<&str>,
    ) -> Result<Introspection, Error> {
        let refresh_first = hint == Some("refresh_token");
        if refresh_first && let Some(found) = self.refresh_token(caller, token).await? {
            return Ok(found);
        }
        match self.tokens.verifier.inspect(token).await {
            Ok(verified) if verified.tenant.is_within(&caller.tenant) => {
                let claims = verified.claims;
                return Ok(Introspection::active(ActiveToken {
                    token_type: if claims.cnf.is_some() { "DPoP" } else { "Bearer" },
                    scope: claims.scope,
                    client_id: claims.client_id,
                    sub: claims.sub,
                    exp: claims.exp,
                    iat: claims.iat,
                    jti: Some(claims.jti),
                    iss: claims.iss,
                    aud: Some(claims.aud),
                    tenant: claims.tenant,
                    username: verified.username.map(String::from),
                    cnf: claims.cnf,
                }));
            }
            Ok(_) | Err(VerifyError::Rejected(_)) => {}
            Err(VerifyError::Storage(error)) => return Err(error.into()),
        }
        if !refresh_first && let Some(found) = self.refresh_token(caller, token).await? {
            return Ok(found);
        }
        Ok(Introspection::INACTIVE)
    }

    /// `Some` only for a live refresh token of `caller`.
    async fn refresh_token(
        &self,
        caller: &Client,
        token: &str,
    ) -> Result<Option<Introspection>, Error> {
        let now = self.tokens.clock.now();
        let Some((grant_id, digest)) = RefreshToken::parse(token) else { return Ok(None) };
        let Some((record, grant)) =
            self.tokens.grants.refresh_token(&grant_id, &digest, now).await?
        else {
            return Ok(None);
        };
        if record.client_id != caller.id || record.used_at.is_some() || grant.revoked_at.is_some() {
            return Ok(None);
        }
        let token_id = digest.token_id();
        let state = self
            .tokens
            .revocations
            .revocation_state(
                &TokenRef {
                    id: &token_id,
                    grant: Some(&grant.id),
                    tenant: &grant.tenant,
                    client_id: &grant.client_id,
                    subject: grant.subject_ref(),
                },
                now,
            )
            .await?;
        if state.not_before.is_some_and(|cutoff| grant.created_at < cutoff) {
            return Ok(None);
        }
        Ok(Some(Introspection::active(ActiveToken {
            token_type: "refresh_token",
            scope: grant.scope.to_string(),
            client_id: grant.client_id.to_string(),
            sub: grant.subject,
            exp: record.expires_at,
            iat: record.issued_at,
            jti: None,
            cnf: None,
            iss: self.tokens.verifier.tokens().issuer().to_owned(),
            aud: None,
            tenant: grant.tenant.to_string(),
            username: grant.username.map(String::from),
        })))
    }
}
