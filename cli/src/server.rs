//! The local HTTP server: each request becomes a `lambda_http::Request` and goes through the
//! same [`Router`] and handlers the Lambda functions run.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use lambda_http::Body;
use token_service::api::Router;
use token_service::api::form::{MAX_BODY_BYTES, body_too_large};
use token_service::api::response::{Caching, error_response, raw_json_response};
use token_service::error::Error;
use tokio::net::TcpListener;

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the local server publishes the OpenAPI description of the contract.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// The OpenAPI 3.1 description of the HTTP contract, `openapi.json` at the repository root.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");
const OPENAPI_MAX_AGE: u32 = 3600;

/// Serves `router` on `listener` until `shutdown` resolves, then drains open connections.
pub async fn serve(
    listener: TcpListener,
    router: Arc<Router>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        continue;
                    }
                };
                let router = router.clone();
                let service = service_fn(move |request| {
                    let router = router.clone();
                    async move { Ok::<_, Infallible>(handle(&router, request).await) }
                });
                // hyper's own cap on the request head (about 400 KiB) bounds memory; the
                // handlers answer anything over `MAX_HEADER_BYTES` with a JSON 431.
                let connection = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
    Ok(())
}

async fn handle(
    router: &Router,
    request: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    if request.uri().path() == OPENAPI_PATH {
        return to_hyper(openapi(request.method()));
    }
    let (parts, body) = request.into_parts();
    // One byte over the cap is enough for the handler to see the body is too large.
    let response = match Limited::new(body, MAX_BODY_BYTES + 1).collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            let body = if bytes.is_empty() { Body::Empty } else { Body::Binary(bytes.to_vec()) };
            router.handle(lambda_http::Request::from_parts(parts, body)).await
        }
        Err(_) => error_response(&body_too_large()),
    };
    to_hyper(response)
}

/// `GET /openapi.json`: the local server's own route; the Lambda functions do not serve it.
fn openapi(method: &http::Method) -> lambda_http::Response<Body> {
    if method != http::Method::GET && method != http::Method::HEAD {
        return error_response(&Error::MethodNotAllowed("GET, HEAD"));
    }
    raw_json_response(
        http::StatusCode::OK,
        OPENAPI_JSON.to_owned(),
        Caching::Public(OPENAPI_MAX_AGE),
    )
}

fn to_hyper(response: lambda_http::Response<Body>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = response.into_parts();
    hyper::Response::from_parts(parts, Full::new(Bytes::copy_from_slice(body.as_ref())))
}
