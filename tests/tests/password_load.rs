//! Password logins in a flood, against the real `tokenctl serve` process: bounds on what the
//! server holds and on what it answers, never timings.

use std::time::{Duration, Instant};

use integration_tests::process::ServeProcess;
use integration_tests::{APP_CLIENT, basic_header};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// `tokenctl serve` over the test seed, killed when dropped.
struct Server(ServeProcess);

impl std::ops::Deref for Server {
    type Target = ServeProcess;
    fn deref(&self) -> &ServeProcess {
        &self.0
    }
}

impl Server {
    fn start(env: &[(&str, &str)]) -> Self {
        Self(ServeProcess::start(&format!("password-load-{}", env.len()), env))
    }

    /// Resident memory in MB and threads, from /proc.
    fn memory_and_threads(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server is running");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .expect("a /proc status field")
        };
        (field("VmRSS:") / 1024, field("Threads:"))
    }
}

fn wrong_password_login(address: &str, username: &str) -> String {
    let body = format!("grant_type=password&username={username}&password=not-it&tenant_path=/acme");
    format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: {address}\r\nAuthorization: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        basic_header(APP_CLIENT.0, APP_CLIENT.1),
        body.len()
    )
}

/// Issue 13: a login whose client gives up took its hashing permit away with the dropped
/// request while its hash ran on, so logins cancelled after about 4 ms ran hashes without
/// bound: 4.6 GB and 242 threads, still held after the flood. At most one hash per core now
/// runs, each with one pooled 19 MiB buffer, whoever hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_cancelled_mid_hash_leave_the_servers_memory_and_threads_bounded() {
    let server = Server::start(&[]);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as u64;
    let (at_rest, _) = server.memory_and_threads();
    let flood_ends = Instant::now() + Duration::from_secs(6);
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let (address, username) =
                (server.address.clone(), if i % 2 == 0 { "alice" } else { "mallory" });
            tokio::spawn(async move {
                while Instant::now() < flood_ends {
                    let Ok(mut stream) = TcpStream::connect(&address).await else { continue };
                    let login = wrong_password_login(&address, username);
                    let _ = stream.write_all(login.as_bytes()).await;
                    tokio::time::sleep(Duration::from_millis(4)).await;
                }
            })
        })
        .collect();
    let mut most = (0, 0);
    while Instant::now() < flood_ends + Duration::from_secs(1) {
        let (memory, threads) = server.memory_and_threads();
        most = (most.0.max(memory), most.1.max(threads));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for client in clients {
        client.await.unwrap();
    }
    let (memory, threads) = most;
    eprintln!("at rest {at_rest} MB; peak during the flood: {memory} MB, {threads} threads");
    // A 19 MiB buffer per core, and room for the dummy hash and the allocator's slack.
    let bound = at_rest + (cores + 4) * 20;
    assert!(memory <= bound, "the server reached {memory} MB from {at_rest} MB at rest");
    assert!(threads <= 2 * cores + 8, "the server reached {threads} threads");
}

/// Issue 13: the hashing queue was unbounded, and 1,000 concurrent logins waited 7.1 s at the
/// median. With no queue (`PASSWORD_QUEUE_LIMIT=0`), logins beyond the hashing slots are
/// answered at once with `503 temporarily_unavailable` and `Retry-After`; the others are
/// served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_beyond_the_queue_are_shed_with_503_and_retry_after() {
    let server = Server::start(&[("PASSWORD_QUEUE_LIMIT", "0")]);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let http = reqwest::Client::new();
    let url = format!("http://{}/oauth2/token", server.address);
    let logins: Vec<_> = (0..16 * cores + 16)
        .map(|i| {
            let request = http
                .post(&url)
                .header("authorization", basic_header(APP_CLIENT.0, APP_CLIENT.1))
                .form(&[
                    ("grant_type", "password"),
                    ("username", if i % 2 == 0 { "alice" } else { "mallory" }),
                    ("password", "not-it"),
                    ("tenant_path", "/acme"),
                ]);
            tokio::spawn(async move { request.send().await.expect("the server answers") })
        })
        .collect();
    let (mut served, mut shed) = (0, 0);
    for login in logins {
        let response = login.await.unwrap();
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").cloned();
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: serde_json::Value = response.json().await.unwrap();
        match status {
            400 => {
                assert_eq!(body["error"], "invalid_grant");
                served += 1;
            }
            503 => {
                assert_eq!(body["error"], "temporarily_unavailable", "{body}");
                let seconds = retry_after.expect("Retry-After").to_str().unwrap().parse::<u64>();
                assert!(seconds.is_ok_and(|s| s >= 1));
                shed += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    eprintln!("{served} served, {shed} shed");
    assert!(shed > 0, "{served} served, none shed");
    assert!(served >= 1, "the logins within the slots are served");
}
