//! The one error type of the request path. `api::response::error_response` is the only place
//! that turns it into HTTP.

use std::borrow::Cow;

/// Why a request failed, in OAuth2 terms. The message is the `error_description` and must never
/// contain a secret, a token or an internal detail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidRequest(Cow<'static, str>),
    #[error("{0}")]
    PayloadTooLarge(Cow<'static, str>),
    /// The request headers exceed the cap the HTTP layer applies, `limit` bytes.
    #[error("the request headers exceed {limit} bytes")]
    HeadersTooLarge { limit: usize },
    /// Client authentication failed. One message for every cause, so a caller cannot tell an
    /// unknown client from a wrong secret.
    #[error("client authentication failed")]
    InvalidClient,
    #[error("{0}")]
    InvalidGrant(Cow<'static, str>),
    #[error("{0}")]
    UnauthorizedClient(Cow<'static, str>),
    #[error("{0}")]
    UnsupportedGrantType(Cow<'static, str>),
    #[error("{0}")]
    InvalidScope(Cow<'static, str>),
    #[error("{0}")]
    InvalidToken(Cow<'static, str>),
    /// A DPoP proof (RFC 9449 §4.3) that is missing where required, malformed or fails a check,
    /// at the token endpoint (RFC 9449 §5: a 400).
    #[error("{0}")]
    InvalidDpopProof(Cow<'static, str>),
    /// The same, with a DPoP-bound token presented to a protected route (RFC 9449 §7.1: a 401
    /// with a `DPoP` challenge).
    #[error("{0}")]
    RejectedDpopProof(Cow<'static, str>),
    #[error("{0}")]
    InsufficientScope(Cow<'static, str>),
    #[error("no such route")]
    NotFound,
    /// An admin resource that does not exist.
    #[error("{0}")]
    ResourceNotFound(Cow<'static, str>),
    /// An admin change that clashes with what exists: a taken id, a tenant not empty.
    #[error("{0}")]
    Conflict(Cow<'static, str>),
    /// The route exists but not for this method; the value is the `Allow` header (RFC 9110
    /// §15.5.6), e.g. `POST`.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// The store failed or timed out after the SDK's retries. Answered with 503 so that no
    /// client ever sees success for work that may not have been saved.
    #[error("storage is temporarily unavailable")]
    Storage(#[from] StoreError),
    /// Too many requests wait for the same scarce work (password hashing): refused at once,
    /// before doing any of it; `Retry-After` says when to try again.
    #[error("too many logins at once; retry after {retry_after_secs} s")]
    TemporarilyUnavailable { retry_after_secs: u64 },
    #[error("internal error")]
    Internal(String),
}

impl Error {
    /// The OAuth2 `error` code (RFC 6749 §5.2, RFC 6750 §3.1), or this service's own for what
    /// OAuth2 does not name.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_)
            | Self::PayloadTooLarge(_)
            | Self::HeadersTooLarge { .. }
            | Self::MethodNotAllowed(_) => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType(_) => "unsupported_grant_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidToken(_) => "invalid_token",
            Self::InvalidDpopProof(_) | Self::RejectedDpopProof(_) => "invalid_dpop_proof",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::NotFound | Self::ResourceNotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Storage(_) | Self::TemporarilyUnavailable { .. } => "temporarily_unavailable",
            Self::Internal(_) => "server_error",
        }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::InvalidRequest(description.into())
    }
}

/// A failure of the storage layer, as opposed to a domain outcome such as "not found" or "lost
/// a conditional-write race", which stores report in their return values.
#[derive(Debug, thiserror::Error)]
#[error("store failure: {0}")]
pub struct StoreError(pub String);
