//! Revocation: RFC 7009 by an authenticated client, and logout-style self revocation by the
//! bearer of an access token.

use crate::auth::Authenticator;
use crate::domain::{Client, DeviceId, RefreshToken, TokenId};
use crate::error::Error;
use crate::jwt::verifiable_until;
use crate::telemetry::{self, RevocationKind};
use crate::verify::{Presented, TokenState, VerifiedToken};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Access,
    Refresh,
}

fn not_yours() -> Error {
    Error::UnauthorizedClient("the token was not issued to this client; nothing was revoked".into())
}

pub struct RevocationService {
    auth: Authenticator,
    tokens: TokenState,
}

impl RevocationService {
    pub fn new(auth: Authenticator, tokens: TokenState) -> Self {
        Self { auth, tokens }
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    /// RFC 7009 §2.1. Unknown, malformed, expired and already-revoked tokens succeed silently;
    /// a token of another client is refused and nothing is revoked. The hint only orders the
    /// search. A refresh token takes its whole grant with it; an access token only itself.
    pub async fn revoke(
        &self,
        client: &Client,
        token: &str,
        hint: Option<&str>,
    ) -> Result<(), Error> {
        let now = self.tokens.clock.now();
        let order = match hint {
            Some("refresh_token") => [Kind::Refresh, Kind::Access],
            _ => [Kind::Access, Kind::Refresh],
        };
        for kind in order {
            match kind {
                Kind::Refresh => {
                    let Some((grant_id, digest)) = RefreshToken::parse(token) else { continue };
                    let Some((record, grant)) =
                        self.tokens.grants.refresh_token(&grant_id, &digest, now).await?
                    else {
                        continue;
                    };
                    if record.client_id != client.id {
                        return Err(not_yours());
                    }
                    self.tokens.grants.revoke_grant(&grant.id, now).await?;
                    telemetry::revoked(RevocationKind::Refresh);
                    let id = client.id.as_str();
                    telemetry::audit(Some(id), id, "revoke_grant", grant.id.as_str(), "ok");
                    return Ok(());
                }
                Kind::Access => {
                    // Signature and claims only: an already-revoked token is revoked again
                    // harmlessly, and an expired one needs nothing.
                    let Ok(claims) = self.tokens.verifier.tokens().verify(token, now) else {
                        continue;
                    };
                    if claims.client_id != client.id.as_str() {
                        return Err(not_yours());
                    }
                    let Ok(id) = TokenId::parse(&claims.jti) else { continue };
                    let until = verifiable_until(claims.exp);
                    self.tokens.revocations.revoke_token(&id, until, None, now).await?;
                    telemetry::revoked(RevocationKind::Access);
                    let caller = client.id.as_str();
                    telemetry::audit(Some(caller), caller, "revoke_token", id.as_str(), "ok");
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Logout, first step: the bearer's token through the one verification routine. It comes
    /// before any other part of the request is judged, so that an invalid, expired or revoked
    /// token is `invalid_token` (RFC 6750 §3.1) whatever else is wrong with the request.
    pub async fn verify_presented(&self, token: &Presented<'_>) -> Result<VerifiedToken, Error> {
        Ok(self.tokens.verifier.verify_presented(token).await?)
    }

    /// Logout, second step: revokes a token [`Self::verify_presented`] accepted, and its whole
    /// grant. `client_id`, when given, must name the token's client; `device_id` is recorded
    /// with the revocation.
    pub async fn revoke_self(
        &self,
        verified: &VerifiedToken,
        client_id: Option<&str>,
        device_id: Option<&str>,
    ) -> Result<(), Error> {
        let device_id = device_id
            .map(DeviceId::parse)
            .transpose()
            .map_err(|e| Error::invalid_request(e.to_string()))?;
        if client_id.is_some_and(|id| id != verified.client_id.as_str()) {
            return Err(Error::invalid_request("client_id does not match the token's client"));
        }
        let now = self.tokens.clock.now();
        self.tokens
            .revocations
            .revoke_token(
                &verified.id,
                verifiable_until(verified.claims.exp),
                device_id.as_ref().map(DeviceId::as_str),
                now,
            )
            .await?;
        if let Some(grant) = &verified.grant {
            self.tokens.grants.revoke_grant(grant, now).await?;
        }
        telemetry::revoked(RevocationKind::SelfRevocation);
        let client = Some(verified.client_id.as_str());
        let subject = &verified.claims.sub;
        telemetry::audit(client, subject, "revoke_self", verified.id.as_str(), "ok");
        Ok(())
    }
}
