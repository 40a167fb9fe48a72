//! Client authentication as presented: HTTP Basic (RFC 6749 §2.3.1, with form-urlencoded id and
//! secret) or `client_id`/`client_secret` in the body, never both.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::form::{Form, decode_component};
use crate::auth::PresentedClient;
use crate::error::Error;

/// Extracts the client's credentials. No credentials, or malformed Basic credentials, is
/// `invalid_client`; two methods at once is `invalid_request`.
pub fn presented_client(headers: &HeaderMap, form: &Form) -> Result<PresentedClient, Error> {
    let basic = basic_credentials(headers)?;
    match (basic, form.get("client_id"), form.get("client_secret")) {
        (Some(_), _, Some(_)) => Err(Error::invalid_request(
            "use one client authentication method: HTTP Basic or client_secret in the body",
        )),
        // A body client_id that repeats the Basic one only identifies the client (RFC 6749
        // §2.3.1); one that differs is a confused or hostile request.
        (Some(basic), Some(body_id), None) if body_id != basic.id => Err(Error::invalid_request(
            "client_id in the body differs from the one in the Authorization header",
        )),
        (Some(basic), _, None) => Ok(basic),
        (None, Some(id), Some(secret)) => {
            Ok(PresentedClient { id: id.to_owned(), secret: secret.to_owned() })
        }
        (None, _, _) => Err(Error::InvalidClient),
    }
}

/// The `x-device-id` header as text, `None` when absent; the service judges its content.
pub fn device_id(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    headers
        .get("x-device-id")
        .map(|value| {
            value.to_str().map_err(|_| Error::invalid_request("x-device-id must be printable text"))
        })
        .transpose()
}

/// The token of an `Authorization: Bearer` header, `None` when there is no such header. A second
/// Authorization header is an invalid request.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Error::invalid_request("only one Authorization header is allowed"));
    }
    let Some((scheme, token)) = value.to_str().ok().and_then(|v| v.trim().split_once(' ')) else {
        return Ok(None);
    };
    Ok(scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()))
}

/// `Some` when an `Authorization: Basic` header is present and well formed.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<PresentedClient>, Error> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Error::invalid_request("only one Authorization header is allowed"));
    }
    let value = value.to_str().map_err(|_| Error::InvalidClient)?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or(Error::InvalidClient)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Error::InvalidClient);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| Error::InvalidClient)?;
    let decoded = String::from_utf8(decoded).map_err(|_| Error::InvalidClient)?;
    let (id, secret) = decoded.split_once(':').ok_or(Error::InvalidClient)?;
    let id = decode_component(id).map_err(|_| Error::InvalidClient)?;
    let secret = decode_component(secret).map_err(|_| Error::InvalidClient)?;
    Ok(Some(PresentedClient { id, secret }))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use http::header::CONTENT_TYPE;

    use super::*;

    fn request(authorization: Option<&str>, body: &str) -> (HeaderMap, Form) {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        if let Some(value) = authorization {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        let form = Form::parse(&headers, body.as_bytes()).unwrap();
        (headers, form)
    }

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    #[test]
    fn basic_credentials_are_form_urldecoded() {
        let (headers, form) = request(Some(&basic("my%20client", "p%3Ass+word")), "");
        let client = presented_client(&headers, &form).unwrap();
        assert_eq!(client.id, "my client");
        assert_eq!(client.secret, "p:ss word");
    }

    #[test]
    fn secret_may_contain_colons_after_the_first() {
        let (headers, form) = request(Some(&basic("id", "a:b")), "");
        assert_eq!(presented_client(&headers, &form).unwrap().secret, "a:b");
    }

    #[test]
    fn body_credentials_are_accepted() {
        let (headers, form) = request(None, "client_id=id&client_secret=s");
        let client = presented_client(&headers, &form).unwrap();
        assert_eq!((client.id.as_str(), client.secret.as_str()), ("id", "s"));
    }

    #[test]
    fn both_methods_at_once_are_an_invalid_request() {
        let (headers, form) = request(Some(&basic("id", "s")), "client_secret=s");
        assert!(matches!(presented_client(&headers, &form), Err(Error::InvalidRequest(_))));
        let (headers, form) = request(Some(&basic("id", "s")), "client_id=other");
        assert!(matches!(presented_client(&headers, &form), Err(Error::InvalidRequest(_))));
        let (headers, form) = request(Some(&basic("id", "s")), "client_id=id");
        assert!(presented_client(&headers, &form).is_ok());
    }

    #[test]
    fn missing_or_malformed_credentials_are_invalid_client() {
        for (authorization, body) in [
            (None, ""),
            (None, "client_id=id"),
            (Some("Basic !!!"), ""),
            (Some("Basic"), ""),
            (Some(&*format!("Basic {}", STANDARD.encode("no-colon"))), ""),
            (Some("Bearer abc"), ""),
        ] {
            let (headers, form) = request(authorization, body);
            assert!(
                matches!(presented_client(&headers, &form), Err(Error::InvalidClient)),
                "{authorization:?} {body}"
            );
        }
    }
}
