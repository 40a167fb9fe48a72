//! `POST /oauth2/revoke/batch`.

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::json;

use super::client_auth::bearer_token;
use super::form::check_body_size;
use super::response::{Caching, json_response};
use crate::batch::{BATCH_SCOPE, BatchRevocation};
use crate::error::Error;

pub async fn handle(service: &BatchRevocation, request: &Request) -> Result<Response<Body>, Error> {
    if request.method() != Method::POST {
        return Err(Error::MethodNotAllowed("POST"));
    }
    let bearer = bearer_token(request.headers())?.ok_or_else(|| {
        Error::InvalidToken(
            format!("a Bearer access token with the {BATCH_SCOPE} scope is required").into(),
        )
    })?;
    let body = request.body().as_ref();
    check_body_size(body)?;
    let count = service.revoke(bearer, body).await?;
    Ok(json_response(StatusCode::OK, &json!({ "count": count }), Caching::NoStore))
}
