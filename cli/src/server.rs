//! The local HTTP server: each request becomes a `lambda_http::Request` and goes through the
//! same [`Router`] and handlers the Lambda functions run.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, HeaderValue};
use http_body_util::{BodyExt, Full};
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

/// After refusing an oversized body the server still reads and discards this much of it, for at
/// most [`DISCARD_TIME`], before closing. Closing a socket with unread data makes the kernel
/// send a reset, which can destroy the answer before the client reads it; a client still
/// sending its body would see a broken pipe instead of the 413.
const DISCARD_BYTES: usize = 16 * 1024 * 1024;
const DISCARD_TIME: Duration = Duration::from_secs(2);

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
    let (parts, mut body) = request.into_parts();
    let refusal = match read_body(&mut body).await {
        Ok(bytes) => {
            let body = if bytes.is_empty() { Body::Empty } else { Body::Binary(bytes.to_vec()) };
            let response = router.handle(lambda_http::Request::from_parts(parts, body)).await;
            return to_hyper(response);
        }
        Err(BodyError::TooLarge) => {
            tokio::spawn(discard(body));
            body_too_large()
        }
        Err(BodyError::Unreadable) => Error::invalid_request("the request body is malformed"),
    };
    // The rest of the body is not read, so the connection cannot carry another request: say
    // so, or a keep-alive client sends its next request into a connection about to close.
    let mut response = to_hyper(error_response(&refusal));
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

enum BodyError {
    TooLarge,
    Unreadable,
}

/// The body, read only until it exceeds [`MAX_BODY_BYTES`] (one byte over is enough for the
/// handler's answer), so that a refused body stays in `body` for [`discard`].
async fn read_body(body: &mut Incoming) -> Result<Bytes, BodyError> {
    let mut bytes = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Unreadable)?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > MAX_BODY_BYTES {
                return Err(BodyError::TooLarge);
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes.freeze())
}

/// Reads and drops what is left of a refused body, within [`DISCARD_BYTES`] and
/// [`DISCARD_TIME`], so the connection closes after the client has sent it (see the constants).
async fn discard(mut body: Incoming) {
    let drained = async {
        let mut left = DISCARD_BYTES;
        while let Some(Ok(frame)) = body.frame().await {
            let size = frame.data_ref().map_or(0, Bytes::len);
            left = left.checked_sub(size)?;
        }
        Some(())
    };
    let _ = tokio::time::timeout(DISCARD_TIME, drained).await;
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
