//! A small Lambda Runtime API emulator: it runs a real function binary (its `main.rs`, its
//! configuration, its init), feeds it events over the same HTTP API Lambda uses, and returns
//! what the function answered. It also times a cold start: exec to first response.
//!
//! Routes served (Runtime API 2018-06-01): `GET invocation/next` (long-poll for an event),
//! `POST invocation/{id}/response`, `POST invocation/{id}/error`, `POST init/error`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc, oneshot};

/// How long an invocation may take before the test gives up.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(20);

/// What a function answered to one event.
#[derive(Debug)]
pub enum Outcome {
    Response(Value),
    Error(Value),
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Outcome>>>>;

/// One function process behind its own Runtime API endpoint.
pub struct Function {
    events: mpsc::Sender<(String, Value)>,
    pending: Pending,
    init_error: Arc<Mutex<Option<Value>>>,
    polls: Arc<AtomicUsize>,
    child: Child,
    next_id: AtomicUsize,
    started: Instant,
}

/// The path of a workspace binary built by `cargo build` (debug unless `profile` says otherwise).
pub fn binary(name: &str, profile: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| crate::repo_path("../target"));
    let path = target.join(profile).join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first (`cargo build --workspace --bins`, as make test does)",
        path.display()
    );
    path
}

impl Function {
    /// Starts `binary` with `env` (plus the variables Lambda itself sets) against a fresh
    /// Runtime API endpoint.
    pub async fn start(binary: PathBuf, env: &[(&str, String)]) -> Function {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding a port");
        let address = listener.local_addr().expect("bound address");
        let (events, queue) = mpsc::channel::<(String, Value)>(16);
        let queue = Arc::new(Mutex::new(queue));
        let pending: Pending = Arc::default();
        let init_error = Arc::new(Mutex::new(None));
        let polls = Arc::new(AtomicUsize::new(0));
        {
            let (pending, init_error, polls) = (pending.clone(), init_error.clone(), polls.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let state = (queue.clone(), pending.clone(), init_error.clone(), polls.clone());
                    tokio::spawn(serve_connection(stream, state));
                }
            });
        }
        let name = binary.file_name().and_then(|n| n.to_str()).unwrap_or("function").to_owned();
        let started = Instant::now();
        let child = Command::new(&binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        Function {
            events,
            pending,
            init_error,
            polls,
            child,
            next_id: AtomicUsize::new(0),
            started,
        }
    }

    /// Sends one event and waits for the function's answer.
    pub async fn invoke(&self, event: Value) -> Outcome {
        let id = format!("req-{}", self.next_id.fetch_add(1, Ordering::SeqCst));
        let (answer, answered) = oneshot::channel();
        self.pending.lock().await.insert(id.clone(), answer);
        self.events.send((id, event)).await.expect("emulator running");
        tokio::time::timeout(INVOKE_TIMEOUT, answered)
            .await
            .expect("the function answered in time")
            .expect("emulator running")
    }

    /// The JSON body of a successful invocation.
    pub async fn respond(&self, event: Value) -> Value {
        match self.invoke(event).await {
            Outcome::Response(value) => value,
            Outcome::Error(error) => panic!("the function reported an error: {error}"),
        }
    }

    /// Time from exec to the function's first `next` poll (its init).
    pub async fn wait_until_polling(&self) -> Duration {
        let deadline = Instant::now() + INVOKE_TIMEOUT;
        while self.polls.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the function never asked for an event");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.started.elapsed()
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Waits for the process to exit (an init failure) and returns its status, what it
    /// reported to `init/error` if anything, and its stderr.
    pub async fn exit(mut self) -> (std::process::ExitStatus, Option<Value>, String) {
        let status = tokio::time::timeout(INVOKE_TIMEOUT, self.child.wait())
            .await
            .expect("exits")
            .expect("waits");
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr).await;
        }
        let reported = self.init_error.lock().await.take();
        (status, reported, stderr)
    }

    /// Everything the function logged to stdout so far (it is stopped first).
    pub async fn logs(mut self) -> String {
        let _ = self.child.kill().await;
        let mut logs = String::new();
        if let Some(mut pipe) = self.child.stdout.take() {
            let _ = pipe.read_to_string(&mut logs).await;
        }
        logs
    }
}

type ConnectionState = (
    Arc<Mutex<mpsc::Receiver<(String, Value)>>>,
    Pending,
    Arc<Mutex<Option<Value>>>,
    Arc<AtomicUsize>,
);

/// Serves HTTP/1.1 requests on one keep-alive connection from the runtime client.
async fn serve_connection(
    mut stream: TcpStream,
    (queue, pending, init_error, polls): ConnectionState,
) {
    let mut buffer = Vec::new();
    loop {
        let Some((method, path, body)) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        let (status, headers, response_body) = if method == "GET"
            && path.ends_with("/runtime/invocation/next")
        {
            polls.fetch_add(1, Ordering::SeqCst);
            let Some((id, event)) = queue.lock().await.recv().await else { return };
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() + INVOKE_TIMEOUT.as_millis())
                .unwrap_or_default();
            let headers = format!(
                "lambda-runtime-aws-request-id: {id}\r\nlambda-runtime-deadline-ms: {deadline}\r\n\
                 lambda-runtime-invoked-function-arn: arn:aws:lambda:eu-west-1:123456789012:function:test\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\n"
            );
            (200, headers, serde_json::to_vec(&event).unwrap_or_default())
        } else if method == "POST" && path.ends_with("/runtime/init/error") {
            *init_error.lock().await = serde_json::from_slice(&body).ok();
            (202, String::new(), b"{}".to_vec())
        } else if method == "POST" && (path.ends_with("/response") || path.ends_with("/error")) {
            let id = path.split('/').rev().nth(1).unwrap_or_default().to_owned();
            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let outcome = if path.ends_with("/response") {
                Outcome::Response(value)
            } else {
                Outcome::Error(value)
            };
            if let Some(answer) = pending.lock().await.remove(&id) {
                let _ = answer.send(outcome);
            }
            (202, String::new(), b"{}".to_vec())
        } else {
            (404, String::new(), Vec::new())
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\n\r\n",
            response_body.len()
        );
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(&response_body).await.is_err()
        {
            return;
        }
    }
}

/// Reads one request (head and `content-length` body) from `stream`, keeping any bytes of the
/// next request in `buffer`.
async fn read_request(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Option<(String, String, Vec<u8>)> {
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let read = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut first = head.lines().next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let read = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = buffer[head_end..head_end + length].to_vec();
    buffer.drain(..head_end + length);
    Some((method, path, body))
}
