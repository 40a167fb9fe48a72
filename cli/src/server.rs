//! The local HTTP server: each request becomes a `lambda_http::Request` and goes through the
//! same [`Router`] and handlers the Lambda functions run.
//!
//! It guards itself the way API Gateway guards the functions: a cap on open connections, a
//! deadline for each request's head and body, and an accept loop that backs off when the
//! process runs out of file descriptors instead of spinning on the error.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use lambda_http::Body;
use token_service::api::form::{MAX_BODY_BYTES, body_too_large};
use token_service::api::response::{Caching, error_response, raw_json_response};
use token_service::api::{self, Router};
use token_service::error::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_io_timeout::TimeoutStream;

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

/// The first and the longest pause after a failed accept. Running out of file descriptors
/// (EMFILE) leaves the listener readable, so retrying at once would spin a core and log without
/// end; a second is a short wait for the next try once connections have closed.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How often, at most, the server says that every connection slot is taken.
const FULL_LOG_EVERY: Duration = Duration::from_secs(60);

pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What one server allows a client: the defaults suit `make run`, the tests and the soak test.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once. When all are open the server stops accepting (new clients
    /// wait in the kernel's listen backlog) until one closes.
    pub max_connections: usize,
    /// Time a client has to send a whole request head, counted from the connection's start or
    /// from the end of the previous answer: so it is also how long an idle keep-alive
    /// connection stays open.
    pub header_read_timeout: Duration,
    /// Time a client has to send the request body once its head has arrived.
    pub body_read_timeout: Duration,
    /// Time an answer may wait for the client to take it: a client that stops reading (its
    /// pipelined answers fill the socket buffers) would otherwise hold its slot for ever.
    pub answer_write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            answer_write_timeout: DEFAULT_BODY_READ_TIMEOUT,
        }
    }
}

/// Serves `router` on `listener` with the default [`Limits`] until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Arc<Router>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_with(listener, router, Limits::default(), shutdown).await
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains open connections.
pub async fn serve_with(
    listener: TcpListener,
    router: Arc<Router>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = Backoff::default();
    let mut last_full_log: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let next = async {
            let slot = match slots.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    if last_full_log.is_none_or(|at| at.elapsed() >= FULL_LOG_EVERY) {
                        last_full_log = Some(Instant::now());
                        tracing::warn!(
                            max_connections = limits.max_connections,
                            "every connection slot is taken; accepting again when one closes"
                        );
                    }
                    // The semaphore is never closed, so this waits for a slot.
                    slots.clone().acquire_owned().await.map_err(io::Error::other)?
                }
            };
            listener.accept().await.map(|(stream, _)| (stream, slot))
        };
        let accepted = tokio::select! {
            accepted = next => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, slot)) => {
                backoff.reset();
                serve_connection(stream, slot, &router, limits, &graceful);
            }
            // The client gave up between connecting and being accepted: nothing to wait for.
            Err(error) if is_connection_error(&error) => {
                tracing::debug!(%error, "connection closed before it was accepted");
            }
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "accept failed");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = &mut shutdown => break,
                }
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
    Ok(())
}

fn serve_connection(
    stream: TcpStream,
    slot: OwnedSemaphorePermit,
    router: &Arc<Router>,
    limits: Limits,
    graceful: &GracefulShutdown,
) {
    let router = router.clone();
    let peer = stream
        .peer_addr()
        .map_or(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), |addr| addr.ip());
    let service = service_fn(move |request| {
        let router = router.clone();
        async move { Ok::<_, Infallible>(handle(&router, limits, peer, request).await) }
    });
    // hyper's own cap on the request head (about 400 KiB) bounds memory; the handlers answer
    // anything over `MAX_HEADER_BYTES` with a JSON 431.
    let mut stream = TimeoutStream::new(stream);
    stream.set_write_timeout(Some(limits.answer_write_timeout));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(Box::pin(stream)), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "connection ended with an error");
        }
        drop(slot);
    });
}

/// Errors of one incoming connection rather than of the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// Exponential pauses between failed accepts: from [`ACCEPT_BACKOFF_MIN`], doubling up to
/// [`ACCEPT_BACKOFF_MAX`], back to the minimum after an accept succeeds.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: ACCEPT_BACKOFF_MIN }
    }
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(ACCEPT_BACKOFF_MAX);
        delay
    }

    fn reset(&mut self) {
        self.next = ACCEPT_BACKOFF_MIN;
    }
}

async fn handle(
    router: &Router,
    limits: Limits,
    peer: std::net::IpAddr,
    request: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    if request.uri().path() == OPENAPI_PATH {
        return to_hyper(openapi(request.method()));
    }
    let (parts, mut body) = request.into_parts();
    let read = tokio::time::timeout(limits.body_read_timeout, read_body(&mut body)).await;
    let refusal = match read {
        Ok(Ok(bytes)) => {
            let body = if bytes.is_empty() { Body::Empty } else { Body::Binary(bytes.to_vec()) };
            let request = lambda_http::Request::from_parts(parts, body);
            let response = router.handle(api::with_source_address(request, peer)).await;
            return to_hyper(response);
        }
        Ok(Err(BodyError::TooLarge)) => {
            tokio::spawn(discard(body));
            body_too_large()
        }
        Ok(Err(BodyError::Unreadable)) => Error::invalid_request("the request body is malformed"),
        Err(_) => Error::invalid_request(format!(
            "the request body did not arrive within {} seconds",
            limits.body_read_timeout.as_secs_f64()
        )),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_from_10ms_to_a_1s_ceiling_and_resets_on_success() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..10).map(|_| backoff.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), ACCEPT_BACKOFF_MIN);
    }
}
