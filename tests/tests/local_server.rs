//! The local server's own defences, over raw TCP where a client library would hide what the
//! server does with the connection: refused bodies, slow or idle clients, the connection cap.

use std::time::Duration;

use integration_tests::TestServer;
use token_service::api::JWKS_PATH;
use tokenctl::server::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Far longer than any limit the tests configure: reaching it means the server did not act.
const BOUND: Duration = Duration::from_secs(10);

/// Short limits, so the tests see the server act without waiting for the defaults.
fn short_limits() -> Limits {
    Limits {
        max_connections: 8,
        header_read_timeout: Duration::from_millis(300),
        body_read_timeout: Duration::from_millis(300),
        answer_write_timeout: Duration::from_millis(300),
    }
}

async fn connect(server: &TestServer) -> TcpStream {
    let address = server.base_url.trim_start_matches("http://");
    TcpStream::connect(address).await.expect("connecting to the server")
}

fn jwks_request() -> String {
    format!("GET {JWKS_PATH} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

/// One response: its head, lower-cased, and its body (by `Content-Length`).
async fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut received = Vec::new();
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0; 4096];
        let read = stream.read(&mut chunk).await.expect("reading a response");
        assert!(read > 0, "the connection closed before a whole response head");
        received.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |value| value.trim().parse().expect("a numeric Content-Length"));
    let mut body = received.split_off(head_end);
    while body.len() < length {
        let mut chunk = [0; 4096];
        let read = stream.read(&mut chunk).await.expect("reading a response body");
        assert!(read > 0, "the connection closed inside a response body");
        body.extend_from_slice(&chunk[..read]);
    }
    (head, body)
}

/// Whether the server closes the connection (end of stream or reset) within [`BOUND`], with
/// nothing more sent.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match timeout(BOUND, stream.read_to_end(&mut rest)).await {
        Ok(Ok(_)) => rest.is_empty(),
        Ok(Err(error)) => error.kind() == std::io::ErrorKind::ConnectionReset,
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_oversized_body_is_read_answered_with_connection_close_and_the_connection_closed()
{
    let server = TestServer::start().await;
    let mut stream = connect(&server).await;
    let size = 8_000_000;
    let head = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {size}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Sent concurrently, as a client does that writes its body before reading: the server
    // answers after the first 64 KiB.
    let sender = tokio::spawn(async move {
        let sent = writer.write_all(&vec![b'a'; size]).await;
        (sent, writer)
    });
    let mut received = Vec::new();
    let read = timeout(BOUND, reader.read_to_end(&mut received)).await;
    let (sent, _writer) = sender.await.unwrap();

    let received = String::from_utf8_lossy(&received).to_lowercase();
    assert!(received.starts_with("http/1.1 413"), "{received}");
    assert!(received.contains("\r\nconnection: close\r\n"), "{received}");
    assert!(matches!(read, Ok(Ok(_))), "the server closed the connection cleanly: {read:?}");
    // The server took the whole body before closing: no reset cut the client's upload short.
    assert!(sent.is_ok(), "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_finishes_its_head_is_closed_after_the_header_timeout() {
    let server = TestServer::start_with_limits(short_limits()).await;
    let mut stream = connect(&server).await;
    stream.write_all(b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: loc").await.unwrap();
    assert!(closed_by_server(&mut stream).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let server = TestServer::start_with_limits(short_limits()).await;
    let mut stream = connect(&server).await;
    stream.write_all(jwks_request().as_bytes()).await.unwrap();
    let (head, _) = read_response(&mut stream).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    assert!(closed_by_server(&mut stream).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_is_refused_and_its_connection_closed() {
    let server = TestServer::start_with_limits(short_limits()).await;
    let mut stream = connect(&server).await;
    let head = "POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"grant_type=client_cre").await.unwrap();
    let (head, body) = timeout(BOUND, read_response(&mut stream)).await.expect("an answer");
    assert!(head.starts_with("http/1.1 400"), "{head}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(closed_by_server(&mut stream).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_holding_every_connection_slot_do_not_lock_out_a_real_request() {
    let limits = short_limits();
    let server = TestServer::start_with_limits(limits).await;
    // Four times as many slow clients as slots: half send their head a byte at a time, half
    // send nothing at all.
    let mut slow = Vec::new();
    for i in 0..limits.max_connections * 4 {
        let mut stream = connect(&server).await;
        slow.push(tokio::spawn(async move {
            if i % 2 == 0 {
                for byte in jwks_request().bytes() {
                    if stream.write_all(&[byte]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
        }));
    }
    let response = timeout(BOUND, server.http.get(server.url(JWKS_PATH)).send())
        .await
        .expect("the real request is served while the slow clients hold on")
        .unwrap();
    assert_eq!(response.status(), 200);
    for client in slow {
        client.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_a_client_waits_until_a_connection_closes() {
    let limits = Limits { max_connections: 2, header_read_timeout: BOUND * 6, ..short_limits() };
    let server = TestServer::start_with_limits(limits).await;
    let mut held = vec![connect(&server).await, connect(&server).await];
    for stream in &mut held {
        stream.write_all(jwks_request().as_bytes()).await.unwrap();
        read_response(stream).await;
    }
    let mut third = connect(&server).await;
    third.write_all(jwks_request().as_bytes()).await.unwrap();
    let waited = timeout(Duration::from_millis(500), read_response(&mut third)).await;
    assert!(waited.is_err(), "served past the cap of {}", limits.max_connections);

    drop(held.pop());
    let (head, _) =
        timeout(BOUND, read_response(&mut third)).await.expect("served once a slot frees");
    assert!(head.starts_with("http/1.1 200"), "{head}");
}

/// A client that pipelines requests and never reads the answers fills the socket buffers, and
/// the server's write stalls: past the write timeout the server drops the connection and frees
/// its slot, so a real request is served even when such clients once held every slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_their_answers_lose_their_slots() {
    let limits = Limits { max_connections: 2, ..short_limits() };
    let server = TestServer::start_with_limits(limits).await;
    let mut stalled = Vec::new();
    for _ in 0..limits.max_connections {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let address = server.base_url.trim_start_matches("http://").parse().unwrap();
        let mut stream = socket.connect(address).await.unwrap();
        let requests = jwks_request().repeat(20_000);
        // The server stops reading once its answers back up; what it left unread stays queued.
        let _ = timeout(Duration::from_millis(500), stream.write_all(requests.as_bytes())).await;
        stalled.push(stream);
    }
    let mut real = connect(&server).await;
    real.write_all(jwks_request().as_bytes()).await.unwrap();
    let (head, _) = timeout(BOUND, read_response(&mut real)).await.expect("served in time");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    drop(stalled);
}
