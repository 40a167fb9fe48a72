//! The HTTP layer: `lambda_http` requests in, responses out. Each Lambda function calls one
//! handler; the local server calls [`Router::handle`], which dispatches to the same handlers, so
//! both run one code path.

pub mod admin;
pub mod batch;
pub mod client_auth;
pub mod discovery;
pub mod form;
pub mod introspect;
pub mod response;
pub mod revoke;
pub mod token;

use std::time::Instant;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument;

pub use self::discovery::Discovery;
use self::response::{error_response, status_and_code};
use crate::admin::AdminService;
use crate::batch::BatchRevocation;
use crate::domain::SourceAddress;
use crate::error::Error;
use crate::introspection::IntrospectionService;
use crate::revocation::RevocationService;
use crate::telemetry;
use crate::token::TokenService;

pub use crate::endpoints::{
    BATCH_REVOKE_PATH, INTROSPECT_PATH, JWKS_PATH, METADATA_PATH, REVOKE_PATH, TOKEN_PATH,
};
/// Cap on the request headers, names and values: API Gateway HTTP API's own limit (10 KiB for the
/// request line and headers), so the local server and every function refuse what the gateway
/// would, before any work.
pub const MAX_HEADER_BYTES: usize = 10 * 1024;

/// Where the request came from: API Gateway's `requestContext.http.sourceIp` (the local server
/// puts the peer address there). Never `X-Forwarded-For`, which a client writes. A request
/// without one (a direct invocation) counts as the unspecified address.
pub fn source_address(request: &Request) -> SourceAddress {
    let context = request.request_context_ref();
    let ip = match context {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.as_deref(),
        _ => None,
    };
    ip.and_then(SourceAddress::parse)
        .unwrap_or(SourceAddress::new(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)))
}

/// `request` as API Gateway would have delivered it from `peer`: its source address in the
/// request context. For the local server, so the handlers read one place for both.
pub fn with_source_address(request: Request, peer: std::net::IpAddr) -> Request {
    let mut context =
        lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext::default();
    context.http.source_ip = Some(peer.to_string());
    request.with_request_context(RequestContext::ApiGatewayV2(context))
}

fn header_bytes(request: &Request) -> usize {
    request.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum()
}

/// Runs a handler and turns its error into a response, logging one line per request: request
/// id, route, client id (recorded by authentication or verification), outcome and latency.
/// Never a secret or a token.
async fn respond<F>(request: &Request, handler: F) -> Response<Body>
where
    F: AsyncFnOnce(&Request) -> Result<Response<Body>, Error>,
{
    let started = Instant::now();
    let request_id = request.lambda_context_ref().map(|context| context.request_id.clone());
    let span = tracing::info_span!("request", request_id, client_id = tracing::field::Empty);
    let result = if header_bytes(request) > MAX_HEADER_BYTES {
        Err(Error::HeadersTooLarge { limit: MAX_HEADER_BYTES })
    } else {
        handler(request).instrument(span.clone()).await
    };
    let route = metric_route(request.uri().path());
    let (response, outcome) = match result {
        Ok(response) => (response, "ok"),
        Err(error) => {
            let code = status_and_code(&error).1;
            telemetry::error(route, code);
            if matches!(error, Error::Storage(_)) {
                telemetry::storage_error();
            }
            (error_response(&error), code)
        }
    };
    telemetry::latency(route, started.elapsed().as_secs_f64() * 1000.0);
    span.in_scope(|| {
        tracing::info!(
            method = %request.method(),
            route = request.uri().path(),
            status = response.status().as_u16(),
            outcome,
            latency_us = started.elapsed().as_micros() as u64,
            "request"
        )
    });
    response
}

/// The `Route` dimension of a request's metrics: one of the service's paths, so that what a
/// client puts in a path (an admin resource id, a path that does not exist) never becomes a
/// dimension value.
fn metric_route(path: &str) -> &'static str {
    match path {
        TOKEN_PATH => TOKEN_PATH,
        REVOKE_PATH => REVOKE_PATH,
        INTROSPECT_PATH => INTROSPECT_PATH,
        BATCH_REVOKE_PATH => BATCH_REVOKE_PATH,
        JWKS_PATH => JWKS_PATH,
        METADATA_PATH => METADATA_PATH,
        path if path.starts_with(admin::ADMIN_PREFIX) => "/admin",
        _ => "other",
    }
}

/// The token function's entry point.
pub async fn token_endpoint(service: &TokenService, request: Request) -> Response<Body> {
    respond(&request, async |request| token::handle(service, request).await).await
}

/// The revoke function's entry point.
pub async fn revoke_endpoint(service: &RevocationService, request: Request) -> Response<Body> {
    respond(&request, async |request| revoke::handle(service, request).await).await
}

/// The batch-revoke function's entry point.
pub async fn batch_revoke_endpoint(service: &BatchRevocation, request: Request) -> Response<Body> {
    respond(&request, async |request| batch::handle(service, request).await).await
}

/// The introspect function's entry point.
pub async fn introspect_endpoint(
    service: &IntrospectionService,
    request: Request,
) -> Response<Body> {
    respond(&request, async |request| introspect::handle(service, request).await).await
}

/// The keys function's entry point: JWKS and authorization server metadata.
pub async fn discovery_endpoint(discovery: &Discovery, request: Request) -> Response<Body> {
    respond(&request, async |request| discovery.handle(request)).await
}

/// The admin function's entry point: every route under `/admin/`.
pub async fn admin_endpoint(service: &AdminService, request: Request) -> Response<Body> {
    respond(&request, async |request| admin::handle(service, request).await).await
}

/// Every route, for the local server.
pub struct Router {
    pub admin: AdminService,
    pub token: TokenService,
    pub revocation: RevocationService,
    pub introspection: IntrospectionService,
    pub batch: BatchRevocation,
    pub discovery: Discovery,
}

impl Router {
    pub async fn handle(&self, request: Request) -> Response<Body> {
        match request.uri().path() {
            TOKEN_PATH => token_endpoint(&self.token, request).await,
            REVOKE_PATH => revoke_endpoint(&self.revocation, request).await,
            INTROSPECT_PATH => introspect_endpoint(&self.introspection, request).await,
            BATCH_REVOKE_PATH => batch_revoke_endpoint(&self.batch, request).await,
            JWKS_PATH | METADATA_PATH => discovery_endpoint(&self.discovery, request).await,
            path if path.starts_with(admin::ADMIN_PREFIX) => {
                admin_endpoint(&self.admin, request).await
            }
            _ => respond(&request, async |_| Err(Error::NotFound)).await,
        }
    }
}
