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

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use token_service::key_parameters;
use token_service::keys::{KeySetDocument, SigningAlgorithm};
use token_service::setup;

use crate::{AUDIENCE, dynamo, load_seed, repo_path};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

pub const ISSUER: &str = "https://abc123.execute-api.eu-west-1.amazonaws.com";

/// A seeded table on the local DynamoDB (moto) and the configuration every function needs for
/// it: issuer, keys, table, local endpoint.
pub struct Deployment {
    /// What every function gets: issuer, audience, table, routes, AWS endpoints.
    pub env: Vec<(&'static str, String)>,
    /// Where the token function finds the private key set: `SIGNING_KEYS_FILE` or
    /// `SIGNING_KEYS_PARAMETER`.
    pub private_keys: (&'static str, String),
    /// Where the verifying functions find the public key set: `PUBLIC_KEYS_FILE` or
    /// `PUBLIC_KEYS_PARAMETER`.
    pub public_keys: (&'static str, String),
    pub kid: String,
    /// The private keys as stored (base64): no log may contain them.
    pub private_key_secrets: Vec<String>,
}

impl Deployment {
    /// The environment the template gives `function`: the token function reads the private key
    /// set, every other function only the public one.
    pub fn env_for(&self, function: &str) -> Vec<(&'static str, String)> {
        let mut env = self.env.clone();
        env.push(if function == "token" {
            self.private_keys.clone()
        } else {
            self.public_keys.clone()
        });
        env
    }

    /// Makes the private key set unreadable from now on, as a verifying function's IAM role
    /// leaves it: deletes the key file, or the SSM parameter.
    pub async fn withdraw_private_keys(&self) {
        match self.private_keys {
            ("SIGNING_KEYS_FILE", ref path) => std::fs::remove_file(path).unwrap(),
            (_, ref name) => {
                let ssm = aws_sdk_ssm::Client::new(&setup::admin_aws_config().await);
                ssm.delete_parameter().name(name).send().await.unwrap();
            }
        }
    }
}

/// The environment every function shares, on the local AWS endpoints.
async fn seeded_env() -> (Vec<(&'static str, String)>, String) {
    let store = dynamo::fresh_store().await;
    load_seed(&repo_path("seed.toml")).install(&store, &store, &store).await.unwrap();
    let mut env = vec![
        ("ISSUER", ISSUER.to_owned()),
        ("AUDIENCE", AUDIENCE.to_owned()),
        ("TABLE_NAME", store.table_name().to_owned()),
        ("AUTHORIZER_ROUTE_SCOPES", r#"{"GET /orders": "read"}"#.to_owned()),
    ];
    for name in [
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_SSM",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_MAX_ATTEMPTS",
    ] {
        if let Ok(value) = std::env::var(name) {
            env.push((name, value));
        }
    }
    (env, store.table_name().to_owned())
}

/// A deployment with its keys in files: the private key set and its public half.
pub async fn deployment() -> Deployment {
    let (env, table) = seeded_env().await;
    let keys = KeySetDocument::generate(SigningAlgorithm::ES256, 0).unwrap();
    let dir = std::env::temp_dir().join(format!("lambda-keys-{}-{table}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (private, public) = (dir.join("keys.json"), dir.join("public-keys.json"));
    std::fs::write(&private, serde_json::to_vec(&keys).unwrap()).unwrap();
    std::fs::write(&public, serde_json::to_vec(&keys.public().unwrap()).unwrap()).unwrap();
    Deployment {
        env,
        private_keys: ("SIGNING_KEYS_FILE", private.display().to_string()),
        public_keys: ("PUBLIC_KEYS_FILE", public.display().to_string()),
        kid: keys.current.clone(),
        private_key_secrets: keys.keys.iter().map(|key| key.private_key.clone()).collect(),
    }
}

/// A deployment with its keys in SSM (moto), written by `tokenctl keys init`: the private
/// SecureString and the public parameter beside it.
pub async fn deployment_on_ssm() -> Deployment {
    let (env, _) = seeded_env().await;
    let ssm = aws_sdk_ssm::Client::new(&setup::admin_aws_config().await);
    let name = format!("/token-service/test/{}", token_service::domain::TokenId::generate());
    let kid = tokenctl::keys::init(&ssm, &name, SigningAlgorithm::ES256, 0).await.unwrap();
    let stored = token_service::key_parameters::read_private(&ssm, &name).await.unwrap().unwrap();
    Deployment {
        env,
        public_keys: ("PUBLIC_KEYS_PARAMETER", key_parameters::public_parameter_name(&name)),
        private_keys: ("SIGNING_KEYS_PARAMETER", name),
        kid,
        private_key_secrets: stored.document.keys.iter().map(|k| k.private_key.clone()).collect(),
    }
}

pub fn fixture(name: &str, token: &str) -> Value {
    let text = std::fs::read_to_string(repo_path(&format!("events/{name}")))
        .unwrap()
        .replace("{{TOKEN}}", token);
    serde_json::from_str(&text).unwrap()
}

/// A token-endpoint event carrying `form`, authenticated as `client` with HTTP Basic.
pub fn token_event(form: &str, (id, secret): (&str, &str)) -> Value {
    let mut event = fixture("token-client-credentials-basic.json", "");
    event["body"] = json!(form);
    event["headers"]["authorization"] =
        json!(format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))));
    event["headers"]["content-length"] = json!(form.len().to_string());
    event
}

/// The status and JSON body of an API Gateway v2 response.
pub fn http(response: &Value) -> (u64, Value) {
    let status = response["statusCode"].as_u64().unwrap();
    let body = response["body"].as_str().unwrap_or_default();
    let body = if response["isBase64Encoded"] == true {
        String::from_utf8(STANDARD.decode(body).unwrap()).unwrap()
    } else {
        body.to_owned()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

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
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
    next_id: AtomicUsize,
    started: Instant,
}

/// Reads a child's pipe to its end in the background. Reading only at the end would let a
/// chatty function fill the 64 KiB pipe and block on its next log line (one JSON line per
/// request: about 160 invocations).
fn drain(pipe: Option<impl AsyncRead + Unpin + Send + 'static>) -> JoinHandle<String> {
    tokio::spawn(async move {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text).await;
        }
        text
    })
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
        let mut child = Command::new(&binary)
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
        let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
        Function {
            events,
            pending,
            init_error,
            polls,
            child,
            stdout,
            stderr,
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

    /// The function's peak resident memory so far (`VmHWM`), in bytes; Linux only.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// The CPU time (user and system) the process has used so far; Linux only, in its clock
    /// ticks of 10 ms, so measure it over many invocations.
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()?)).ok()?;
        // Fields after the parenthesised command name start at the third, the state; utime and
        // stime are the 14th and 15th.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Duration::from_millis(ticks * 10))
    }

    /// Waits for the process to exit (an init failure) and returns its status, what it
    /// reported to `init/error` if anything, and its stderr.
    pub async fn exit(mut self) -> (std::process::ExitStatus, Option<Value>, String) {
        let status = tokio::time::timeout(INVOKE_TIMEOUT, self.child.wait())
            .await
            .expect("exits")
            .expect("waits");
        let stderr = self.stderr.await.unwrap_or_default();
        let reported = self.init_error.lock().await.take();
        (status, reported, stderr)
    }

    /// What the function wrote to stdout (it is stopped first): where Lambda reads EMF from.
    pub async fn stdout(mut self) -> String {
        let _ = self.child.kill().await;
        self.stdout.await.unwrap_or_default()
    }

    /// Everything the function wrote so far, stdout then stderr (it is stopped first).
    pub async fn output(mut self) -> String {
        let _ = self.child.kill().await;
        let stdout = self.stdout.await.unwrap_or_default();
        stdout + &self.stderr.await.unwrap_or_default()
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
        // Head and body in one write, as one segment: a body arriving after its head leaves the
        // runtime client's connection busy when it next polls, and it would open a new one for
        // every invocation, which the Runtime API never makes it do.
        let mut response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\n\r\n",
            response_body.len()
        )
        .into_bytes();
        response.extend_from_slice(&response_body);
        if stream.write_all(&response).await.is_err() {
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
