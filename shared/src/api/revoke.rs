//! `POST /oauth2/revoke`: RFC 7009 with client authentication, or self revocation with
//! `Authorization: Bearer`, or `Authorization: DPoP` and a proof for a DPoP-bound token.

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};

use super::client_auth::{access_token, device_id, presented_client};
use super::form::{Form, check_body_size};
use super::response::{Caching, empty_response, json_response};
use crate::endpoints::REVOKE_PATH;
use crate::error::Error;
use crate::revocation::RevocationService;
use crate::verify::Presented;

pub async fn handle(
    service: &RevocationService,
    request: &Request,
) -> Result<Response<Body>, Error> {
    if request.method() != Method::POST {
        return Err(Error::MethodNotAllowed("POST"));
    }
    if let Some(token) = access_token(request, REVOKE_PATH)? {
        return revoke_self(service, request, &token).await;
    }
    let form = Form::parse(request.headers(), request.body().as_ref())?;
    let presented = presented_client(request.headers(), &form, REVOKE_PATH)?;
    let client = service.authenticator().authenticate(&presented).await?;
    let token = form.get("token").ok_or_else(|| Error::invalid_request("token is required"))?;
    service.revoke(&client, token, form.get("token_type_hint")).await?;
    Ok(empty_response())
}

/// Seed 002's logout: the body may be empty or `{}`. The token is verified before the body, the
/// query and `x-device-id` are judged (see [`RevocationService::verify_presented`]); only the body
/// size cap comes first, as it does on every route, ahead of any work the request costs.
async fn revoke_self(
    service: &RevocationService,
    request: &Request,
    token: &Presented<'_>,
) -> Result<Response<Body>, Error> {
    let body = request.body().as_ref();
    check_body_size(body)?;
    let verified = service.verify_presented(token).await?;
    let empty_or_object = body.iter().all(u8::is_ascii_whitespace)
        || serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body).is_ok();
    if !empty_or_object {
        return Err(Error::invalid_request("the body must be empty or a JSON object"));
    }
    let query = Form::parse_query(request.uri().query())?;
    let device_id = device_id(request.headers())?;
    service.revoke_self(&verified, query.get("client_id"), device_id).await?;
    Ok(json_response(StatusCode::OK, &serde_json::json!({}), Caching::NoStore))
}
