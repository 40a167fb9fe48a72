//! Building responses. [`error_response`] is the one place where an [`Error`] becomes HTTP.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::error::Error;

/// The realm named in `WWW-Authenticate: Basic` challenges.
pub const REALM: &str = "token-service";

/// How a successful response may be cached.
#[derive(Clone, Copy)]
pub enum Caching {
    /// Tokens, introspection results and every error: never stored (RFC 6749 §5.1).
    NoStore,
    /// Public documents such as the JWKS, cacheable for this many seconds.
    Public(u32),
}

pub fn json_response(
    status: StatusCode,
    body: &impl Serialize,
    caching: Caching,
) -> Response<Body> {
    match serde_json::to_string(body) {
        Ok(text) => raw_json_response(status, text, caching),
        Err(e) => error_response(&Error::Internal(format!("serializing response: {e}"))),
    }
}

/// A JSON document already rendered. Sent as text, so API Gateway passes it through as is
/// rather than base64-encoded.
pub fn raw_json_response(status: StatusCode, body: String, caching: Caching) -> Response<Body> {
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    match caching {
        Caching::NoStore => {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        }
        Caching::Public(secs) => {
            if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={secs}")) {
                headers.insert(CACHE_CONTROL, value);
            }
        }
    }
    response
}

/// 200 with no body, never cached.
pub fn empty_response() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: String,
}

/// The HTTP status and OAuth2 error code of each error: the one mapping.
pub fn status_and_code(error: &Error) -> (StatusCode, &'static str) {
    match error {
        Error::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
        Error::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request"),
        Error::InvalidClient => (StatusCode::UNAUTHORIZED, "invalid_client"),
        Error::InvalidGrant(_) => (StatusCode::BAD_REQUEST, "invalid_grant"),
        Error::UnauthorizedClient(_) => (StatusCode::BAD_REQUEST, "unauthorized_client"),
        Error::UnsupportedGrantType(_) => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        Error::InvalidScope(_) => (StatusCode::BAD_REQUEST, "invalid_scope"),
        Error::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
        Error::InsufficientScope(_) => (StatusCode::FORBIDDEN, "insufficient_scope"),
        Error::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        Error::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "invalid_request"),
        Error::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
        Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
    }
}

/// The response for an error: status, OAuth2 error code and challenge. Server-side failures are
/// logged here with their detail; the client sees only the error's public description.
pub fn error_response(error: &Error) -> Response<Body> {
    let (status, code) = status_and_code(error);
    if status.is_server_error() {
        tracing::error!(error = ?error, "request failed");
    }
    let description = error.to_string();
    let challenge = match error {
        Error::InvalidClient => Some(format!("Basic realm=\"{REALM}\"")),
        Error::InvalidToken(_) | Error::InsufficientScope(_) => Some(format!(
            "Bearer error=\"{code}\", error_description=\"{}\"",
            description.replace(['"', '\\'], "")
        )),
        _ => None,
    };
    let body = ErrorBody { error: code, error_description: description };
    let mut response = json_response(status, &body, Caching::NoStore);
    if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StoreError;

    fn body_json(response: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(response.body().as_ref()).unwrap()
    }

    #[test]
    fn invalid_client_is_401_with_a_basic_challenge() {
        let response = error_response(&Error::InvalidClient);
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Basic realm=\"token-service\"");
        assert_eq!(body_json(&response)["error"], "invalid_client");
    }

    #[test]
    fn storage_failures_are_503_without_internal_detail() {
        let response = error_response(&Error::Storage(StoreError("table xyz throttled".into())));
        assert_eq!(response.status(), 503);
        let body = body_json(&response);
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(!body["error_description"].as_str().unwrap().contains("xyz"));
    }

    #[test]
    fn every_error_is_json_and_never_cached() {
        let response = error_response(&Error::invalid_request("bad"));
        assert_eq!(response.status(), 400);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(response.headers()[PRAGMA], "no-cache");
        assert_eq!(
            body_json(&response),
            serde_json::json!({"error": "invalid_request", "error_description": "bad"})
        );
    }
}
