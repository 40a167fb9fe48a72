//! Helpers for the integration tests: an in-process local server on an ephemeral port, API
//! Gateway event fixtures, forged tokens, and the store contract suite.

pub mod contract;
pub mod dynamo;
pub mod emulator;
pub mod flows;
pub mod forgery;
pub mod jose;
pub mod process;

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use token_service::api::Router;
use token_service::clock::{Clock, SystemClock};
use token_service::config::Config;
use token_service::keys::{KeySet, SigningAlgorithm};
use token_service::password::{HashParams, Passwords};
use token_service::seed::Seed;
use token_service::setup::{self, SigningWiring};
use token_service::store::Stores;
use token_service::token_cache::VerifiedTokenCache;
use tokenctl::server::Limits;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const CC_CLIENT: (&str, &str) = ("cc-client", "cc-client-secret-0123456789abcdefghij");
pub const PASSWORD_ONLY_CLIENT: (&str, &str) =
    ("password-only", "password-only-secret-0123456789abcdef");
pub const APP_CLIENT: (&str, &str) = ("app-client", "app-client-secret-0123456789abcdefghij");
pub const OTHER_APP: (&str, &str) = ("other-app", "other-app-secret-0123456789abcdefghijk");
pub const SALES_APP: (&str, &str) = ("sales-app", "sales-app-secret-0123456789abcdefghijk");
pub const ADMIN_CLIENT: (&str, &str) = ("admin-client", "admin-client-secret-0123456789abcdefgh");
pub const SALES_ADMIN: (&str, &str) = ("sales-admin", "sales-admin-secret-0123456789abcdefghi");
pub const ACME_ADMIN: (&str, &str) = ("acme-admin", "acme-admin-secret-0123456789abcdefghijk");
pub const SALES_MANAGER: (&str, &str) =
    ("sales-manager", "sales-manager-secret-0123456789abcdefgh");
pub const SPECIAL_CLIENT: (&str, &str) = ("svc.a~b_c-d", "s3cr:t+with%special&chars/0123456789 é");
pub const AUDIENCE: &str = "https://api.test";

/// Alice's password login through app-client, as the token endpoint receives it, naming her
/// tenant `/acme`.
pub fn alice_login() -> token_service::token::TokenParams<'static> {
    token_service::token::TokenParams {
        grant_type: Some("password"),
        username: Some("alice"),
        password: Some("alice-password-1"),
        tenant_path: Some("/acme"),
        ..Default::default()
    }
}

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn test_config(issuer: &str, alg: SigningAlgorithm) -> Config {
    test_config_with(issuer, alg, &[])
}

/// The test configuration with extra variables set.
pub fn test_config_with(issuer: &str, alg: SigningAlgorithm, extra: &[(&str, &str)]) -> Config {
    Config::from_lookup(|name| match name {
        "ISSUER" => Some(issuer.to_owned()),
        "AUDIENCE" => Some(AUDIENCE.to_owned()),
        "SIGNING_ALG" => Some(alg.as_str().to_owned()),
        _ => extra.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned()),
    })
    .expect("test configuration is valid")
}

/// Every route over the test seed, with fresh keys.
pub async fn router(issuer: &str, alg: SigningAlgorithm) -> (Router, KeySet) {
    router_with_clock(issuer, alg, Arc::new(SystemClock)).await
}

/// Every route over the test seed, with fresh keys and the given clock.
pub async fn router_with_clock(
    issuer: &str,
    alg: SigningAlgorithm,
    clock: Arc<dyn Clock>,
) -> (Router, KeySet) {
    router_with(issuer, alg, clock, seeded_memory(&repo_path("seed.toml")).await).await
}

/// Every route over the seed at `seed`, with fresh keys and the given clock.
pub async fn router_from_seed(
    issuer: &str,
    alg: SigningAlgorithm,
    clock: Arc<dyn Clock>,
    seed: &std::path::Path,
) -> (Router, KeySet) {
    router_with(issuer, alg, clock, seeded_memory(seed).await).await
}

/// Every route over `stores`, with fresh keys and the given clock.
pub async fn router_with(
    issuer: &str,
    alg: SigningAlgorithm,
    clock: Arc<dyn Clock>,
    stores: Stores,
) -> (Router, KeySet) {
    router_configured(issuer, alg, clock, stores, &[]).await
}

/// [`router_with`], the configuration given `extra` variables.
pub async fn router_configured(
    issuer: &str,
    alg: SigningAlgorithm,
    clock: Arc<dyn Clock>,
    stores: Stores,
    extra: &[(&str, &str)],
) -> (Router, KeySet) {
    let keys = KeySet::generate(alg).expect("key generation");
    let config = test_config_with(issuer, alg, extra);
    let router = SigningWiring::new(config, keys.clone(), stores, clock).router();
    (router, keys)
}

pub fn load_seed(seed: &std::path::Path) -> Seed {
    Seed::load(seed, &Passwords::new(HashParams::OWASP)).expect("test seed loads")
}

/// An in-memory store holding the seed at `seed`.
pub async fn seeded_memory(seed: &std::path::Path) -> Stores {
    setup::memory_stores(&load_seed(seed)).await.expect("seeding the memory store")
}

/// A fresh DynamoDB table on the local server, holding the test seed.
pub async fn seeded_dynamodb() -> Stores {
    seeded_dynamodb_from(&repo_path("seed.toml")).await
}

/// A fresh DynamoDB table on the local server, holding the seed at `seed`.
pub async fn seeded_dynamodb_from(seed: &std::path::Path) -> Stores {
    let store = Arc::new(dynamo::fresh_store().await);
    load_seed(seed)
        .install(store.as_ref(), store.as_ref(), store.as_ref())
        .await
        .expect("seeding the table");
    Stores::all(store)
}

/// The local server, in-process on an ephemeral port, stopped when dropped.
pub struct TestServer {
    pub base_url: String,
    pub http: reqwest::Client,
    pub keys: KeySet,
    /// The server's cache of verified tokens, to see what it holds.
    pub verified_tokens: VerifiedTokenCache,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(SigningAlgorithm::ES256).await
    }

    pub async fn start_with(alg: SigningAlgorithm) -> Self {
        Self::start_with_clock(alg, Arc::new(SystemClock)).await
    }

    pub async fn start_with_clock(alg: SigningAlgorithm, clock: Arc<dyn Clock>) -> Self {
        Self::start_on(alg, clock, seeded_memory(&repo_path("seed.toml")).await).await
    }

    pub async fn start_on(alg: SigningAlgorithm, clock: Arc<dyn Clock>, stores: Stores) -> Self {
        Self::start_limited(alg, clock, stores, Limits::default()).await
    }

    /// The server on the test seed, allowing clients only what `limits` allows.
    pub async fn start_with_limits(limits: Limits) -> Self {
        let stores = seeded_memory(&repo_path("seed.toml")).await;
        Self::start_limited(SigningAlgorithm::ES256, Arc::new(SystemClock), stores, limits).await
    }

    async fn start_limited(
        alg: SigningAlgorithm,
        clock: Arc<dyn Clock>,
        stores: Stores,
        limits: Limits,
    ) -> Self {
        Self::start_full(alg, clock, stores, limits, &[]).await
    }

    /// The server on `stores` and `clock`, configured with `extra` variables besides the test
    /// configuration.
    pub async fn start_configured(
        clock: Arc<dyn Clock>,
        stores: Stores,
        extra: &[(&str, &str)],
    ) -> Self {
        Self::start_full(SigningAlgorithm::ES256, clock, stores, Limits::default(), extra).await
    }

    async fn start_full(
        alg: SigningAlgorithm,
        clock: Arc<dyn Clock>,
        stores: Stores,
        limits: Limits,
        extra: &[(&str, &str)],
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding a port");
        let base_url = format!("http://{}", listener.local_addr().expect("bound address"));
        let (router, keys) = router_configured(&base_url, alg, clock, stores, extra).await;
        let verified_tokens = router.introspection.verified_tokens().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(tokenctl::server::serve_with(listener, Arc::new(router), limits, async {
            let _ = stopped.await;
        }));
        Self { base_url, http: reqwest::Client::new(), keys, verified_tokens, stop: Some(stop) }
    }

    /// The server on a fresh DynamoDB table holding the test seed.
    pub async fn start_on_dynamodb() -> Self {
        Self::start_on(SigningAlgorithm::ES256, Arc::new(SystemClock), seeded_dynamodb().await)
            .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// GETs `path` and parses its JSON body.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response =
            self.http.get(self.url(path)).send().await.expect("request reaches the server");
        response.json().await.expect("JSON body")
    }

    /// POSTs a form to the token endpoint, with HTTP Basic credentials when given.
    pub async fn token(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url("/oauth2/token")).form(form);
        if let Some((id, secret)) = basic {
            request = request.header("authorization", basic_header(id, secret));
        }
        request.send().await.expect("token request reaches the server")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The two stores every rule is held on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Memory,
    DynamoDb,
}

impl Backend {
    /// A fresh store of this kind holding the test seed.
    pub async fn seeded(self) -> Stores {
        self.seeded_from(&repo_path("seed.toml")).await
    }

    /// A fresh store of this kind holding the seed at `seed`.
    pub async fn seeded_from(self, seed: &std::path::Path) -> Stores {
        match self {
            Backend::Memory => seeded_memory(seed).await,
            Backend::DynamoDb => seeded_dynamodb_from(seed).await,
        }
    }

    /// The local server on a fresh store of this kind, on the given clock.
    pub async fn server(self, clock: Arc<dyn Clock>) -> TestServer {
        self.server_and_stores(clock).await.0
    }

    /// [`Backend::server`] and the stores behind it, for tests that check what a request wrote.
    pub async fn server_and_stores(self, clock: Arc<dyn Clock>) -> (TestServer, Stores) {
        let stores = self.seeded().await;
        (TestServer::start_on(SigningAlgorithm::ES256, clock, stores.clone()).await, stores)
    }
}

/// Declares each listed `async fn(Backend)` as a test on the in-memory store and again on
/// DynamoDB.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Memory).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::DynamoDb).await;
                }
            )*
        }
    };
}

/// Declares each listed `async fn(TestServer)` as a test on the in-memory store and again on
/// DynamoDB, so every rule is held on both.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::TestServer::start().await).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::TestServer::start_on_dynamodb().await).await;
                }
            )*
        }
    };
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, as RFC 6749 §2.3.1 requires.
pub fn basic_header(id: &str, secret: &str) -> String {
    let encode = |s: &str| form_urlencode(s);
    format!("Basic {}", STANDARD.encode(format!("{}:{}", encode(id), encode(secret))))
}

pub fn form_urlencode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A token request as a `lambda_http::Request`, the shape the handlers receive.
pub fn event_from_form(form: &str) -> lambda_http::Request {
    let mut request = lambda_http::Request::new(lambda_http::Body::Text(form.to_owned()));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = "/oauth2/token".parse().expect("static URI");
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    request
}

/// Loads an API Gateway HTTP API (payload v2) event from `tests/events`.
pub fn event(name: &str) -> lambda_http::Request {
    event_with_token(name, "")
}

/// Loads an event from `tests/events`, with `{{TOKEN}}` replaced by a token minted for the test
/// (fixtures cannot hold a token that verifies against a fresh key).
pub fn event_with_token(name: &str, token: &str) -> lambda_http::Request {
    event_edited(name, &[("{{TOKEN}}", token)])
}

/// Loads an event from `tests/events` with each `(from, to)` replacement made in its JSON.
pub fn event_edited(name: &str, replacements: &[(&str, &str)]) -> lambda_http::Request {
    let path = repo_path(&format!("events/{name}"));
    let mut json =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (from, to) in replacements {
        json = json.replace(from, to);
    }
    lambda_http::request::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}"))
}
