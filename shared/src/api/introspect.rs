//! `POST /oauth2/introspect` (RFC 7662).

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};

use super::client_auth::presented_client;
use super::form::Form;
use super::response::{Caching, json_response};
use crate::endpoints::INTROSPECT_PATH;
use crate::error::Error;
use crate::introspection::IntrospectionService;

pub async fn handle(
    service: &IntrospectionService,
    request: &Request,
) -> Result<Response<Body>, Error> {
    if request.method() != Method::POST {
        return Err(Error::MethodNotAllowed("POST"));
    }
    let form = Form::parse(request.headers(), request.body().as_ref())?;
    let presented = presented_client(request.headers(), &form, INTROSPECT_PATH)?;
    let caller = service.authenticator().authenticate(&presented).await?;
    let token = form.get("token").ok_or_else(|| Error::invalid_request("token is required"))?;
    let answer = service.introspect(&caller, token, form.get("token_type_hint")).await?;
    Ok(json_response(StatusCode::OK, &answer, Caching::NoStore))
}
