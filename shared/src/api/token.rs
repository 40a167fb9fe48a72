//! `POST /oauth2/token`.

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};

use super::client_auth::{device_id, dpop_proof, presented_client};
use super::form::Form;
use super::response::{Caching, json_response};
use crate::endpoints::TOKEN_PATH;
use crate::error::Error;
use crate::token::{TokenParams, TokenService};

pub async fn handle(service: &TokenService, request: &Request) -> Result<Response<Body>, Error> {
    if request.method() != Method::POST {
        return Err(Error::MethodNotAllowed("POST"));
    }
    let form = Form::parse(request.headers(), request.body().as_ref())?;
    let presented = presented_client(request.headers(), &form, TOKEN_PATH)?;
    let params = TokenParams {
        grant_type: form.get("grant_type"),
        scope: form.get("scope"),
        access_token_lifetime: form.get("access-token-lifetime"),
        username: form.get("username"),
        password: form.get("password"),
        tenant_path: form.get("tenant_path"),
        refresh_token: form.get("refresh_token"),
        device_id: device_id(request.headers())?,
        source: Some(super::source_address(request)),
        dpop_proof: dpop_proof(request.headers())?,
    };
    let response = service.authenticate_and_issue(&presented, &params).await?;
    Ok(json_response(StatusCode::OK, &response, Caching::NoStore))
}
