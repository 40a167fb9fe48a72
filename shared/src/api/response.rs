//! Building responses. [`error_response`] is the one place where an [`Error`] becomes HTTP.

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::domain::CLIENT_ASSERTION_ALGORITHMS;
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
    let status = match error {
        Error::InvalidRequest(_)
        | Error::InvalidGrant(_)
        | Error::UnauthorizedClient(_)
        | Error::UnsupportedGrantType(_)
        | Error::InvalidScope(_)
        | Error::InvalidDpopProof(_) => StatusCode::BAD_REQUEST,
        Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        Error::InvalidClient | Error::InvalidToken(_) | Error::RejectedDpopProof(_) => {
            StatusCode::UNAUTHORIZED
        }
        Error::InsufficientScope(_) => StatusCode::FORBIDDEN,
        Error::NotFound | Error::ResourceNotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        Error::Storage(_) | Error::TemporarilyUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, error.code())
}

/// Longest `error_description` sent; longer ones (quoting request data) are cut.
const MAX_DESCRIPTION_CHARS: usize = 256;

/// The error's description as RFC 6749 §5.2 allows it: only `%x20-21 / %x23-5B / %x5D-7E`, so a
/// description that quotes request data (a JSON parse error naming a field) can't carry control
/// characters, quotes or non-ASCII text; anything else becomes `?`.
fn public_description(error: &Error) -> String {
    let allowed =
        |c: char| matches!(c, '\u{20}'..='\u{21}' | '\u{23}'..='\u{5B}' | '\u{5D}'..='\u{7E}');
    let description = error.to_string();
    description
        .chars()
        .take(MAX_DESCRIPTION_CHARS)
        .map(|c| if allowed(c) { c } else { '?' })
        .collect()
}

/// The `DPoP` challenge (RFC 9449 §7.1): the proof algorithms accepted, and the error if any.
fn dpop_challenge(code: Option<&str>) -> String {
    let algs = CLIENT_ASSERTION_ALGORITHMS.join(" ");
    match code {
        Some(code) => format!("DPoP error=\"{code}\", algs=\"{algs}\""),
        None => format!("DPoP algs=\"{algs}\""),
    }
}

/// The response for an error: status, OAuth2 error code and challenge. Server-side failures are
/// logged here with their detail; the client sees only the error's public description.
pub fn error_response(error: &Error) -> Response<Body> {
    let (status, code) = status_and_code(error);
    match error {
        // Load shed on purpose, not a fault: a flood would otherwise log one error a request.
        Error::TemporarilyUnavailable { .. } => tracing::warn!(error = ?error, "request shed"),
        _ if status.is_server_error() => tracing::error!(error = ?error, "request failed"),
        _ => {}
    }
    let description = public_description(error);
    let challenge = match error {
        Error::InvalidClient => Some(format!("Basic realm=\"{REALM}\"")),
        // Both schemes are offered (RFC 9449 §7.1): a DPoP-bound token is presented as DPoP.
        Error::InvalidToken(_) | Error::InsufficientScope(_) => Some(format!(
            "Bearer error=\"{code}\", error_description=\"{}\", {}",
            description.replace(['"', '\\'], ""),
            dpop_challenge(None)
        )),
        Error::InvalidDpopProof(_) | Error::RejectedDpopProof(_) => {
            Some(dpop_challenge(Some(code)))
        }
        _ => None,
    };
    let body = ErrorBody { error: code, error_description: description };
    let mut response = json_response(status, &body, Caching::NoStore);
    if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    if let Error::MethodNotAllowed(allow) = error {
        response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    }
    if let Error::TemporarilyUnavailable { retry_after_secs } = error {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
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
    fn a_shed_request_is_503_with_retry_after() {
        let response = error_response(&Error::TemporarilyUnavailable { retry_after_secs: 2 });
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        let body = body_json(&response);
        assert_eq!(body["error"], "temporarily_unavailable");
        assert_eq!(body["error_description"], "too many logins at once; retry after 2 s");
        let storage = error_response(&Error::Storage(StoreError("d".into())));
        assert!(!storage.headers().contains_key(RETRY_AFTER), "a store failure has no estimate");
    }

    /// One value of every variant. The match has no wildcard, so a new variant does not compile
    /// until it is listed here, and so checked by the tests below.
    fn every_variant() -> Vec<Error> {
        let all = vec![
            Error::invalid_request("d"),
            Error::PayloadTooLarge("d".into()),
            Error::HeadersTooLarge { limit: 10 },
            Error::InvalidClient,
            Error::InvalidGrant("d".into()),
            Error::UnauthorizedClient("d".into()),
            Error::UnsupportedGrantType("d".into()),
            Error::InvalidScope("d".into()),
            Error::InvalidToken("d".into()),
            Error::InvalidDpopProof("d".into()),
            Error::RejectedDpopProof("d".into()),
            Error::InsufficientScope("d".into()),
            Error::NotFound,
            Error::ResourceNotFound("d".into()),
            Error::Conflict("d".into()),
            Error::MethodNotAllowed("POST"),
            Error::Storage(StoreError("d".into())),
            Error::TemporarilyUnavailable { retry_after_secs: 1 },
            Error::Internal("d".into()),
        ];
        for error in &all {
            match error {
                Error::InvalidRequest(_)
                | Error::PayloadTooLarge(_)
                | Error::HeadersTooLarge { .. }
                | Error::InvalidClient
                | Error::InvalidGrant(_)
                | Error::UnauthorizedClient(_)
                | Error::UnsupportedGrantType(_)
                | Error::InvalidScope(_)
                | Error::InvalidToken(_)
                | Error::InvalidDpopProof(_)
                | Error::RejectedDpopProof(_)
                | Error::InsufficientScope(_)
                | Error::NotFound
                | Error::ResourceNotFound(_)
                | Error::Conflict(_)
                | Error::MethodNotAllowed(_)
                | Error::Storage(_)
                | Error::TemporarilyUnavailable { .. }
                | Error::Internal(_) => {}
            }
        }
        all
    }

    /// RFC 6749 §5.2: `error` is one or more of %x20-21 / %x23-5B / %x5D-7E.
    fn rfc6749_error_chars(code: &str) -> bool {
        !code.is_empty()
            && code.bytes().all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
    }

    #[test]
    fn every_error_code_uses_only_rfc6749_characters() {
        assert!(
            !rfc6749_error_chars("bad\"code")
                && !rfc6749_error_chars("é")
                && !rfc6749_error_chars("")
        );
        for error in every_variant() {
            let (status, code) = status_and_code(&error);
            assert!(rfc6749_error_chars(code), "{error:?}: {code:?}");
            assert!(status.is_client_error() || status.is_server_error(), "{error:?}");
            let response = error_response(&error);
            assert_eq!(body_json(&response)["error"], code, "{error:?}");
        }
    }

    #[test]
    fn every_error_is_never_cached_and_explains_itself() {
        for error in every_variant() {
            let response = error_response(&error);
            assert_eq!(response.headers()[CACHE_CONTROL], "no-store", "{error:?}");
            assert_eq!(response.headers()[PRAGMA], "no-cache", "{error:?}");
            assert_eq!(response.headers()[CONTENT_TYPE], "application/json", "{error:?}");
            let body = body_json(&response);
            assert!(
                body["error_description"].as_str().is_some_and(|d| !d.is_empty()),
                "{error:?}: {body}"
            );
        }
    }

    #[test]
    fn the_token_endpoint_errors_are_400_except_invalid_client() {
        for (error, code) in [
            (Error::invalid_request("d"), "invalid_request"),
            (Error::InvalidGrant("d".into()), "invalid_grant"),
            (Error::UnauthorizedClient("d".into()), "unauthorized_client"),
            (Error::UnsupportedGrantType("d".into()), "unsupported_grant_type"),
            (Error::InvalidScope("d".into()), "invalid_scope"),
            (Error::InvalidDpopProof("d".into()), "invalid_dpop_proof"),
        ] {
            assert_eq!(status_and_code(&error), (StatusCode::BAD_REQUEST, code));
        }
        assert_eq!(
            status_and_code(&Error::InvalidClient),
            (StatusCode::UNAUTHORIZED, "invalid_client")
        );
    }

    #[test]
    fn internal_error_details_never_reach_the_client() {
        let response = error_response(&Error::Internal("secret detail: key xyz".into()));
        assert_eq!(response.status(), 500);
        let body = body_json(&response);
        assert!(!body.to_string().contains("xyz"), "{body}");
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
