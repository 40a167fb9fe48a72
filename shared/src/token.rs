//! The token endpoint's rules (RFC 6749 §4.4, §5), free of HTTP and of any storage technology.

use std::sync::Arc;

use serde::Serialize;

use crate::clock::Clock;
use crate::domain::{Client, ClientId, GrantType, MAX_SECRET_LEN, ScopeSet, SecretDigest, TokenId};
use crate::error::Error;
use crate::jwt::{AccessTokenClaims, AccessTokens};
use crate::store::{ClientStore, IssuanceLog, IssuedToken, TokenKind};

/// Longest `access-token-lifetime` value read; longer is malformed, not merely large.
const MAX_LIFETIME_DIGITS: usize = 32;

/// Client credentials as presented, not yet checked.
pub struct PresentedClient {
    pub id: String,
    pub secret: String,
}

/// The token request's parameters as received (empty values already dropped).
#[derive(Default)]
pub struct TokenParams<'a> {
    pub grant_type: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub access_token_lifetime: Option<&'a str>,
}

/// The successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

pub struct TokenService {
    clients: Arc<dyn ClientStore>,
    log: Arc<dyn IssuanceLog>,
    tokens: AccessTokens,
    clock: Arc<dyn Clock>,
    default_lifetime: u64,
}

impl TokenService {
    pub fn new(
        clients: Arc<dyn ClientStore>,
        log: Arc<dyn IssuanceLog>,
        tokens: AccessTokens,
        clock: Arc<dyn Clock>,
        default_lifetime: u64,
    ) -> Self {
        Self {
            clients,
            log,
            tokens,
            clock,
            default_lifetime,
        }
    }

    /// Checks the client's secret against its stored digest. Every failure is the same
    /// `invalid_client`, and an unknown client costs the same digest comparison as a known one.
    pub async fn authenticate(&self, presented: &PresentedClient) -> Result<Client, Error> {
        if presented.secret.len() > MAX_SECRET_LEN {
            return Err(Error::InvalidClient);
        }
        let Ok(id) = ClientId::parse(&presented.id) else {
            return Err(Error::InvalidClient);
        };
        match self.clients.client(&id).await? {
            Some(client) if client.secret_digest.matches(&presented.secret) => Ok(client),
            Some(_) => Err(Error::InvalidClient),
            None => {
                std::hint::black_box(unknown_client_digest().matches(&presented.secret));
                Err(Error::InvalidClient)
            }
        }
    }

    pub async fn issue(
        &self,
        client: &Client,
        params: &TokenParams<'_>,
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
        let scope = granted_scope(client, params.scope)?;
        let lifetime = self.lifetime(client, params.access_token_lifetime)?;
        match grant {
            GrantType::ClientCredentials => {
                self.issue_access_token(client, client.id.as_str(), scope, lifetime)
                    .await
            }
            GrantType::Password | GrantType::RefreshToken => Err(Error::UnsupportedGrantType(
                format!("the {grant} grant is not available yet").into(),
            )),
        }
    }

    async fn issue_access_token(
        &self,
        client: &Client,
        subject: &str,
        scope: ScopeSet,
        lifetime: u64,
    ) -> Result<TokenResponse, Error> {
        let now = self.clock.now();
        let id = TokenId::generate();
        let scope = scope.to_string();
        let claims = AccessTokenClaims {
            iss: self.tokens.issuer().to_owned(),
            sub: subject.to_owned(),
            aud: self.tokens.audience().to_owned(),
            exp: now + lifetime,
            iat: now,
            nbf: None,
            jti: id.to_string(),
            client_id: client.id.to_string(),
            scope: scope.clone(),
            tenant: client.tenant.to_string(),
            sid: None,
        };
        let access_token = self.tokens.sign(&claims)?;
        // Recorded before the token leaves: a token the log does not know could not be counted
        // or revoked by a batch revocation.
        self.log
            .record_issued(&IssuedToken {
                id,
                kind: TokenKind::Access,
                tenant: client.tenant.clone(),
                client_id: client.id.clone(),
                subject: subject.to_owned(),
                grant: None,
                issued_at: now,
                expires_at: claims.exp,
            })
            .await?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: lifetime,
            scope,
            refresh_token: None,
        })
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

/// Absent means every scope the client is allowed; otherwise a subset of them.
fn granted_scope(client: &Client, requested: Option<&str>) -> Result<ScopeSet, Error> {
    let Some(raw) = requested else {
        return Ok(client.scopes.clone());
    };
    let requested = ScopeSet::parse(raw).map_err(|e| Error::InvalidScope(e.to_string().into()))?;
    if !requested.is_subset(&client.scopes) {
        return Err(Error::InvalidScope(
            "a requested scope is not allowed for this client".into(),
        ));
    }
    Ok(requested)
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

/// A fixed digest compared when the client is unknown, so that both paths do the same work.
fn unknown_client_digest() -> &'static SecretDigest {
    static DIGEST: std::sync::OnceLock<SecretDigest> = std::sync::OnceLock::new();
    DIGEST.get_or_init(|| SecretDigest::of(b"unknown-client"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_must_be_positive_decimal_integers() {
        assert_eq!(parse_positive_integer("60"), Some(60));
        assert_eq!(parse_positive_integer("0060"), Some(60));
        assert_eq!(
            parse_positive_integer("99999999999999999999999"),
            Some(u64::MAX)
        );
        for bad in [
            "",
            "0",
            "000",
            "-1",
            "+5",
            "1.5",
            "1e3",
            " 60",
            "sixty",
            &"9".repeat(33),
        ] {
            assert_eq!(parse_positive_integer(bad), None, "{bad:?}");
        }
    }
}
