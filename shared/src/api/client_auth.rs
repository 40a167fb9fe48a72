//! Client authentication as presented: HTTP Basic (RFC 6749 §2.3.1, with form-urlencoded id and
//! secret), `client_id`/`client_secret` in the body, or a `client_assertion` (RFC 7523 §2.2);
//! only one of them. Also the other credentials a request carries in its headers: the
//! `Authorization: Bearer` or `DPoP` access token, and the `DPoP` proof.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use lambda_http::Request;

use super::form::{Form, decode_component};
use crate::auth::PresentedClient;
use crate::client_assertion::{CLIENT_ASSERTION_TYPE, claimed_client_id};
use crate::dpop::{DPOP_HEADER, DpopError, ProofRejected};
use crate::error::Error;
use crate::verify::Presented;

/// Extracts the client's credentials, presented at the route whose path is `endpoint`. No
/// credentials, or malformed Basic credentials, is `invalid_client`; two methods at once is
/// `invalid_request`.
pub fn presented_client(
    headers: &HeaderMap,
    form: &Form,
    endpoint: &'static str,
) -> Result<PresentedClient, Error> {
    let basic = basic_credentials(headers)?;
    let assertion_type = form.get("client_assertion_type");
    let assertion = form.get("client_assertion");
    if assertion_type.is_some() || assertion.is_some() {
        if basic.is_some() || form.get("client_secret").is_some() {
            return Err(Error::invalid_request(
                "use one client authentication method: a secret or a client_assertion",
            ));
        }
        // Half an assertion (an empty value counts as absent) authenticates nobody.
        let (Some(assertion_type), Some(assertion)) = (assertion_type, assertion) else {
            return Err(Error::InvalidClient);
        };
        if assertion_type != CLIENT_ASSERTION_TYPE {
            return Err(Error::InvalidClient);
        }
        // RFC 7521 §4.2: client_id is optional; the assertion's subject names the client, and
        // must be the same one when both are given (checked with the signature).
        let id = match form.get("client_id") {
            Some(id) => id.to_owned(),
            None => claimed_client_id(assertion).ok_or(Error::InvalidClient)?,
        };
        return Ok(PresentedClient::Assertion { id, assertion: assertion.to_owned(), endpoint });
    }
    match (basic, form.get("client_id"), form.get("client_secret")) {
        (Some(_), _, Some(_)) => Err(Error::invalid_request(
            "use one client authentication method: HTTP Basic or client_secret in the body",
        )),
        // A body client_id that repeats the Basic one only identifies the client (RFC 6749
        // §2.3.1); one that differs is a confused or hostile request.
        (Some(basic), Some(body_id), None) if body_id != basic.id() => Err(Error::invalid_request(
            "client_id in the body differs from the one in the Authorization header",
        )),
        (Some(basic), _, None) => Ok(basic),
        (None, Some(id), Some(secret)) => Ok(PresentedClient::secret(id, secret)),
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

/// The access token of an `Authorization: Bearer` or `Authorization: DPoP` header (with the
/// `DPoP` proof, if any, for this request), `None` when there is no such header. A second
/// Authorization header is an invalid request. `path` is the route's path on this service, which
/// a proof's `htu` names after the issuer: not the request's, which may carry a stage segment.
pub fn access_token<'a>(
    request: &'a Request,
    path: &'a str,
) -> Result<Option<Presented<'a>>, Error> {
    let headers = request.headers();
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
    let token = token.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Some(Presented::Bearer(token)));
    }
    if !scheme.eq_ignore_ascii_case("dpop") {
        return Ok(None);
    }
    Ok(Some(Presented::Dpop {
        token,
        proof: dpop_proof(headers)?,
        method: request.method().as_str(),
        path,
    }))
}

/// The `DPoP` header's proof, `None` when absent. Two proofs is a bad proof (RFC 9449 §4.3).
pub fn dpop_proof(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let mut values = headers.get_all(DPOP_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(DpopError::from(ProofRejected::Repeated).into());
    }
    value
        .to_str()
        .map(|proof| Some(proof.trim()))
        .map_err(|_| DpopError::from(ProofRejected::Malformed).into())
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
    Ok(Some(PresentedClient::Secret { id, secret }))
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

    fn secret(presented: PresentedClient) -> (String, String) {
        match presented {
            PresentedClient::Secret { id, secret } => (id, secret),
            other => panic!("not a secret: {other:?}"),
        }
    }

    /// An unsigned JWT whose payload is `{"sub": sub}`: enough to be read for the client id.
    fn assertion_for(sub: &str) -> String {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{{\"sub\":\"{sub}\"}}"));
        format!("eyJhbGciOiJFUzI1NiJ9.{payload}.c2ln")
    }

    #[test]
    fn an_assertion_names_its_client_by_sub_or_by_client_id() {
        let typ = "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
        let body = format!("{typ}&client_assertion={}", assertion_for("signer"));
        let (headers, form) = request(None, &body);
        match presented_client(&headers, &form, "/t").unwrap() {
            PresentedClient::Assertion { id, endpoint, .. } => {
                assert_eq!((id.as_str(), endpoint), ("signer", "/t"));
            }
            other => panic!("{other:?}"),
        }
        let (headers, form) = request(None, &format!("{body}&client_id=named"));
        assert_eq!(presented_client(&headers, &form, "/t").unwrap().id(), "named");
    }

    #[test]
    fn an_assertion_with_a_secret_is_an_invalid_request_and_half_of_one_authenticates_nobody() {
        let typ = "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
        let assertion = format!("client_assertion={}", assertion_for("signer"));
        for (authorization, body) in [
            (None, format!("{typ}&{assertion}&client_id=signer&client_secret=s")),
            (Some(basic("signer", "s")), format!("{typ}&{assertion}")),
        ] {
            let (headers, form) = request(authorization.as_deref(), &body);
            let result = presented_client(&headers, &form, "/t");
            assert!(matches!(result, Err(Error::InvalidRequest(_))), "{body}: {result:?}");
        }
        let other_type = format!("client_assertion_type=urn%3Aother&{assertion}");
        for body in
            [other_type, assertion.clone(), typ.to_owned(), format!("{typ}&client_assertion=")]
        {
            let (headers, form) = request(None, &body);
            let result = presented_client(&headers, &form, "/t");
            assert!(matches!(result, Err(Error::InvalidClient)), "{body}: {result:?}");
        }
    }

    #[test]
    fn the_authorization_header_presents_a_bearer_or_a_dpop_token() {
        for (value, proof, expected) in [
            ("Bearer abc", None, "Bearer(\"abc\")"),
            (
                "DPoP abc",
                Some("p.r.f"),
                "Dpop { token: \"abc\", proof: Some(\"p.r.f\"), method: \"POST\", path: \"/x\" }",
            ),
            (
                "dpop abc",
                None,
                "Dpop { token: \"abc\", proof: None, method: \"POST\", path: \"/x\" }",
            ),
            ("Basic abc", None, "None"),
        ] {
            let mut request =
                http::Request::builder().method("POST").uri("/x").header(AUTHORIZATION, value);
            if let Some(proof) = proof {
                request = request.header(DPOP_HEADER, proof);
            }
            let request: Request = request.body(lambda_http::Body::Empty).unwrap();
            let presented = access_token(&request, "/x").unwrap();
            let shown = presented.map_or("None".to_owned(), |p| format!("{p:?}"));
            assert_eq!(shown, expected, "{value}");
        }
    }

    #[test]
    fn two_dpop_headers_are_a_bad_proof() {
        let (mut headers, _) = request(None, "");
        assert_eq!(dpop_proof(&headers).unwrap(), None);
        headers.append(DPOP_HEADER, HeaderValue::from_static("a.b.c"));
        assert_eq!(dpop_proof(&headers).unwrap(), Some("a.b.c"));
        headers.append(DPOP_HEADER, HeaderValue::from_static("d.e.f"));
        assert!(matches!(dpop_proof(&headers), Err(Error::InvalidDpopProof(_))));
    }

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    #[test]
    fn basic_credentials_are_form_urldecoded() {
        let (headers, form) = request(Some(&basic("my%20client", "p%3Ass+word")), "");
        let client = secret(presented_client(&headers, &form, "/t").unwrap());
        assert_eq!(client, ("my client".into(), "p:ss word".into()));
    }

    #[test]
    fn secret_may_contain_colons_after_the_first() {
        let (headers, form) = request(Some(&basic("id", "a:b")), "");
        assert_eq!(secret(presented_client(&headers, &form, "/t").unwrap()).1, "a:b");
    }

    #[test]
    fn body_credentials_are_accepted() {
        let (headers, form) = request(None, "client_id=id&client_secret=s");
        let client = secret(presented_client(&headers, &form, "/t").unwrap());
        assert_eq!(client, ("id".into(), "s".into()));
    }

    #[test]
    fn both_methods_at_once_are_an_invalid_request() {
        let (headers, form) = request(Some(&basic("id", "s")), "client_secret=s");
        assert!(matches!(presented_client(&headers, &form, "/t"), Err(Error::InvalidRequest(_))));
        let (headers, form) = request(Some(&basic("id", "s")), "client_id=other");
        assert!(matches!(presented_client(&headers, &form, "/t"), Err(Error::InvalidRequest(_))));
        let (headers, form) = request(Some(&basic("id", "s")), "client_id=id");
        assert!(presented_client(&headers, &form, "/t").is_ok());
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
                matches!(presented_client(&headers, &form, "/t"), Err(Error::InvalidClient)),
                "{authorization:?} {body}"
            );
        }
    }
}
