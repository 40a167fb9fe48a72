//! Strict `application/x-www-form-urlencoded` parsing (RFC 6749 §3.1, Appendix B).

use std::collections::HashMap;
use std::fmt;

use http::HeaderMap;
use http::header::CONTENT_TYPE;

use crate::error::Error;

/// Request bodies larger than this are refused before parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// More parameters than any request of the contract needs.
pub const MAX_PARAMS: usize = 32;

/// Decoded form parameters. Each name appears once; a parameter sent without a value is treated
/// as omitted (RFC 6749 §3.1).
#[derive(Default)]
pub struct Form(HashMap<String, String>);

/// Names only: values include passwords, client secrets and tokens.
impl fmt::Debug for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_tuple("Form").field(&names).finish()
    }
}

impl Form {
    /// Parses a form body after checking its size and content type. Rejects duplicate names,
    /// percent-escapes that decode to invalid UTF-8, and more than a handful of parameters.
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, Error> {
        check_body_size(body)?;
        require_form_content_type(headers)?;
        let text = std::str::from_utf8(body)
            .map_err(|_| Error::invalid_request("the request body is not valid UTF-8"))?;
        Self::parse_pairs(text)
    }

    /// Parses a URL query string by the same rules as a form body.
    pub fn parse_query(query: Option<&str>) -> Result<Self, Error> {
        Self::parse_pairs(query.unwrap_or_default())
    }

    fn parse_pairs(text: &str) -> Result<Self, Error> {
        let mut params = HashMap::new();
        for pair in text.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode_component(name)?;
            let value = decode_component(value)?;
            if params.len() == MAX_PARAMS {
                return Err(Error::invalid_request("too many parameters"));
            }
            if params.insert(name.clone(), value).is_some() {
                return Err(repeated(&name));
            }
        }
        Ok(Self(params))
    }

    /// Refuses any parameter not in `allowed`.
    pub fn only(&self, allowed: &[&str]) -> Result<(), Error> {
        match self.0.keys().find(|name| !allowed.contains(&name.as_str())) {
            Some(name)
                if name.len() <= 64
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                Err(Error::invalid_request(format!("unknown parameter {name}")))
            }
            Some(_) => Err(Error::invalid_request("an unknown parameter was given")),
            None => Ok(()),
        }
    }

    /// The parameter's value, or `None` when it is absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|value| !value.is_empty())
    }
}

/// Names the repeated parameter only when the name is short and plain (as every parameter of
/// the contract is), so the description never quotes arbitrary request text.
fn repeated(name: &str) -> Error {
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
    if !name.is_empty() && name.len() <= 64 && name.bytes().all(plain) {
        Error::invalid_request(format!("parameter {name} is repeated"))
    } else {
        Error::invalid_request("a parameter is repeated")
    }
}

pub fn check_body_size(body: &[u8]) -> Result<(), Error> {
    if body.len() > MAX_BODY_BYTES {
        return Err(body_too_large());
    }
    Ok(())
}

pub fn body_too_large() -> Error {
    Error::PayloadTooLarge(format!("the request body exceeds {MAX_BODY_BYTES} bytes").into())
}

fn require_form_content_type(headers: &HeaderMap) -> Result<(), Error> {
    let wrong = || Error::invalid_request("Content-Type must be application/x-www-form-urlencoded");
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(wrong());
    };
    let value = value.to_str().map_err(|_| wrong())?;
    let mut parts = value.split(';').map(str::trim);
    let media_type = parts.next().unwrap_or_default();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(wrong());
    }
    for param in parts.filter(|p| !p.is_empty()) {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let value = value.trim_matches('"');
        if name.trim().eq_ignore_ascii_case("charset") && !value.eq_ignore_ascii_case("utf-8") {
            return Err(Error::invalid_request("the form must be encoded in UTF-8"));
        }
    }
    Ok(())
}

/// `+` is a space; percent-escapes must decode to UTF-8.
pub fn decode_component(raw: &str) -> Result<String, Error> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| Error::invalid_request("a parameter is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn form_headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        headers
    }

    fn parse(body: &str) -> Result<Form, Error> {
        Form::parse(&form_headers("application/x-www-form-urlencoded"), body.as_bytes())
    }

    #[test]
    fn decodes_plus_and_percent_escapes() {
        let form = parse("scope=read+write&x=%C3%A9%26&empty=").unwrap();
        assert_eq!(form.get("scope"), Some("read write"));
        assert_eq!(form.get("x"), Some("é&"));
        assert_eq!(form.get("empty"), None);
        assert_eq!(form.get("missing"), None);
    }

    #[test]
    fn repeated_parameters_are_invalid_requests() {
        assert!(matches!(parse("a=1&a=2"), Err(Error::InvalidRequest(_))));
        assert!(matches!(parse("a=&a=2"), Err(Error::InvalidRequest(_))));
    }

    #[test]
    fn a_repeated_name_is_quoted_only_when_plain() {
        let Err(error) = parse("scope=a&scope=b") else { panic!("accepted") };
        assert_eq!(error.to_string(), "parameter scope is repeated");
        let Err(error) = parse("a%0A%22=1&a%0A%22=2") else { panic!("accepted") };
        assert_eq!(error.to_string(), "a parameter is repeated");
    }

    #[test]
    fn invalid_utf8_is_an_invalid_request() {
        assert!(matches!(parse("a=%FF"), Err(Error::InvalidRequest(_))));
        let headers = form_headers("application/x-www-form-urlencoded");
        assert!(matches!(Form::parse(&headers, b"a=\xff"), Err(Error::InvalidRequest(_))));
    }

    #[test]
    fn content_type_must_be_a_utf8_form() {
        for ok in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
            "application/x-www-form-urlencoded;charset=\"utf-8\"",
        ] {
            assert!(Form::parse(&form_headers(ok), b"a=1").is_ok(), "{ok}");
        }
        for bad in
            ["application/json", "text/plain", "application/x-www-form-urlencoded; charset=latin1"]
        {
            assert!(Form::parse(&form_headers(bad), b"a=1").is_err(), "{bad}");
        }
        assert!(Form::parse(&HeaderMap::new(), b"a=1").is_err());
    }

    #[test]
    fn oversized_bodies_are_refused_before_parsing() {
        let body = vec![b'a'; MAX_BODY_BYTES + 1];
        let headers = form_headers("application/x-www-form-urlencoded");
        assert!(matches!(Form::parse(&headers, &body), Err(Error::PayloadTooLarge(_))));
    }

    #[test]
    fn parameter_count_is_capped() {
        let body: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=1")).collect();
        assert!(parse(&body.join("&")).is_err());
    }
}
