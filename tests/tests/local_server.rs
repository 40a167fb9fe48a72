//! The local server's own defences, over raw TCP where a client library would hide what the
//! server does with the connection.

use std::time::Duration;

use integration_tests::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Far longer than any limit the tests configure: reaching it means the server did not act.
const BOUND: Duration = Duration::from_secs(10);

async fn connect(server: &TestServer) -> TcpStream {
    let address = server.base_url.trim_start_matches("http://");
    TcpStream::connect(address).await.expect("connecting to the server")
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
