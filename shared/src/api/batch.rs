//! `POST /oauth2/revoke/batch`.

use http::{Method, StatusCode};
use std::time::{Duration, Instant, SystemTime};

use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use super::client_auth::access_token;
use super::form::check_body_size;
use super::response::{Caching, json_response};
use crate::batch::BatchRevocation;
use crate::domain::BATCH_REVOCATION_SCOPE;
use crate::endpoints::BATCH_REVOKE_PATH;
use crate::error::Error;

pub async fn handle(service: &BatchRevocation, request: &Request) -> Result<Response<Body>, Error> {
    if request.method() != Method::POST {
        return Err(Error::MethodNotAllowed("POST"));
    }
    let token = access_token(request, BATCH_REVOKE_PATH)?.ok_or_else(|| {
        Error::InvalidToken(
            format!("an access token with the {BATCH_REVOCATION_SCOPE} scope is required").into(),
        )
    })?;
    let body = request.body().as_ref();
    check_body_size(body)?;
    let count = service.revoke(&token, body, counting_deadline(request)).await?;
    Ok(json_response(StatusCode::OK, &json!({ "count": count }), Caching::NoStore))
}

/// Time a function keeps, after counting stops, to answer and log before Lambda ends it.
const ANSWER_MARGIN: Duration = Duration::from_secs(1);

/// When counting must stop: the Lambda invocation's deadline less [`ANSWER_MARGIN`]. The local
/// server has no deadline.
fn counting_deadline(request: &Request) -> Option<Instant> {
    let deadline = request.lambda_context_ref()?.deadline();
    let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
    Some(Instant::now() + left.saturating_sub(ANSWER_MARGIN))
}
