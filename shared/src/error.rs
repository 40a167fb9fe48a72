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
    #[error("{0}")]
    InsufficientScope(Cow<'static, str>),
    #[error("no such route")]
    NotFound,
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
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::InvalidRequest(description.into())
    }
}

/// A failure of the storage layer, as opposed to a domain outcome such as "not found" or "lost
/// a conditional-write race", which stores report in their return values.
#[derive(Debug, thiserror::Error)]
#[error("store failure: {0}")]
pub struct StoreError(pub String);
