//! DynamoDB for tests: a fresh table per test on the local server `make test` starts, and an SDK
//! interceptor that counts round trips.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use token_service::setup;
use token_service::store::dynamodb::{DynamoStore, table};

const HOW_TO_START: &str = "DynamoDB tests need a local server: run them through `make test`, or \
     `tests/aws-local.sh cargo test`, which starts moto and sets AWS_ENDPOINT_URL_DYNAMODB";

/// Index query page size in tests: small, so paging is exercised on every count.
pub const TEST_PAGE_SIZE: i32 = 7;

/// Records the HTTP requests the SDK sends, retries included, by operation (`PutItem`, …).
#[derive(Clone, Debug, Default)]
pub struct RoundTrips(Arc<Mutex<Vec<String>>>);

impl RoundTrips {
    /// How many requests were sent since the last take.
    pub fn take(&self) -> usize {
        self.take_operations().len()
    }

    /// The operations sent since the last take, in order.
    pub fn take_operations(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for RoundTrips {
    fn name(&self) -> &'static str {
        "RoundTrips"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context.request().headers().get("x-amz-target").unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
        self.0.lock().unwrap().push(operation);
        Ok(())
    }
}

fn unique_table_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("test-{}-{nanos}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

/// An SDK client for the local server, counting its round trips.
pub async fn sdk_client(round_trips: &RoundTrips) -> aws_sdk_dynamodb::Client {
    if std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_err()
        && std::env::var("AWS_ENDPOINT_URL").is_err()
    {
        panic!("{HOW_TO_START}");
    }
    // Generous timeouts: moto on a busy 2-core CI machine can take seconds for a transaction,
    // and a timeout here would be the test's flake, not the service's fault.
    let sdk_config =
        setup::aws_config_with_timeouts(Duration::from_secs(10), Duration::from_secs(30)).await;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config)
        .interceptor(round_trips.clone())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A store on a new, empty table, and the counter of its round trips.
pub async fn fresh_store_counting() -> (DynamoStore, RoundTrips) {
    let round_trips = RoundTrips::default();
    let client = sdk_client(&round_trips).await;
    let name = unique_table_name();
    if let Err(error) = table::create_table(&client, &name).await {
        panic!("{error}\n{HOW_TO_START}");
    }
    round_trips.take();
    // Small pages, so that every count in the tests pages through the issuance index.
    (DynamoStore::new(client, name).with_page_size(TEST_PAGE_SIZE), round_trips)
}

pub async fn fresh_store() -> DynamoStore {
    fresh_store_counting().await.0
}

/// A DynamoDB endpoint that forwards every request to the local server, except that while
/// switched on it answers the operations in `failing` (`PutItem`, `UpdateItem`, …) with an
/// `InternalServerError`. A test can so fail exactly the write a request depends on.
pub struct FaultyEndpoint {
    pub url: String,
    on: Arc<std::sync::atomic::AtomicBool>,
}

impl FaultyEndpoint {
    pub fn fail(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
    }
}

pub async fn faulty_endpoint(failing: &'static [&'static str]) -> FaultyEndpoint {
    faulty_endpoint_with(failing, Fault::INTERNAL_ERROR).await
}

/// [`faulty_endpoint`], answering the failing operations with `status` and the JSON `error`
/// (a `TransactionCanceledException` with chosen cancellation reasons, say).
pub async fn faulty_endpoint_answering(
    failing: &'static [&'static str],
    status: u16,
    error: &'static str,
) -> FaultyEndpoint {
    faulty_endpoint_with(failing, Fault::Answer { status, body: error }).await
}

/// What a [`FaultyEndpoint`] does to a failing operation while switched on.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answers at once with this status and JSON body instead of forwarding.
    Answer { status: u16, body: &'static str },
    /// Forwards, but only after this delay: a slow DynamoDB that does answer in the end.
    Delay(Duration),
}

impl Fault {
    pub const INTERNAL_ERROR: Fault = Fault::Answer {
        status: 500,
        body: r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected"}"#,
    };
    pub const THROTTLING: Fault = Fault::Answer {
        status: 400,
        body: r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"injected"}"#,
    };
    pub const THROUGHPUT_EXCEEDED: Fault = Fault::Answer {
        status: 400,
        body: r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"injected"}"#,
    };
}

/// Every DynamoDB operation the service sends.
pub const EVERY_OPERATION: &[&str] =
    &["GetItem", "BatchGetItem", "PutItem", "UpdateItem", "Query", "TransactWriteItems"];

pub async fn faulty_endpoint_with(
    failing: &'static [&'static str],
    fault: Fault,
) -> FaultyEndpoint {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let on = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let switch = on.clone();

    let upstream =
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| panic!("{HOW_TO_START}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding a port");
    let endpoint = format!("http://{}", listener.local_addr().expect("bound address"));
    let http = reqwest::Client::new();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (http, upstream, on) = (http.clone(), upstream.clone(), on.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0u8; 16 * 1024];
                let head_end = loop {
                    let Ok(read) = socket.read(&mut chunk).await else { return };
                    if read == 0 {
                        return;
                    }
                    request.extend_from_slice(&chunk[..read]);
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break end + 4;
                    }
                };
                let head = String::from_utf8_lossy(&request[..head_end]).to_string();
                let header = |name: &str| {
                    head.lines().find_map(|line| {
                        let (key, value) = line.split_once(':')?;
                        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
                    })
                };
                let length: usize =
                    header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                while request.len() < head_end + length {
                    let Ok(read) = socket.read(&mut chunk).await else { return };
                    if read == 0 {
                        return;
                    }
                    request.extend_from_slice(&chunk[..read]);
                }
                let body = request[head_end..head_end + length].to_vec();
                let target = header("x-amz-target").unwrap_or_default();
                let operation = target.rsplit('.').next().unwrap_or_default();
                let faulty = on.load(Ordering::SeqCst) && failing.contains(&operation);
                let answer = match fault {
                    Fault::Answer { status, body } if faulty => Some((status, body)),
                    Fault::Delay(delay) if faulty => {
                        tokio::time::sleep(delay).await;
                        None
                    }
                    _ => None,
                };
                let (status, response_body) = if let Some((status, body)) = answer {
                    (status, body.as_bytes().to_vec())
                } else {
                    let forwarded = http
                        .post(&upstream)
                        .header("content-type", header("content-type").unwrap_or_default())
                        .header("x-amz-target", target.clone())
                        .header("authorization", header("authorization").unwrap_or_default())
                        .header("x-amz-date", header("x-amz-date").unwrap_or_default())
                        .body(body)
                        .send()
                        .await;
                    match forwarded {
                        Ok(response) => (
                            response.status().as_u16(),
                            response.bytes().await.unwrap_or_default().to_vec(),
                        ),
                        Err(_) => return,
                    }
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: proxy\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    response_body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&response_body).await;
            });
        }
    });
    FaultyEndpoint { url: endpoint, on: switch }
}

/// What [`write_first_stage_records`] wrote.
pub struct FirstStage {
    /// `alice` of `/old`, whose id entry lacks its username.
    pub alice: token_service::domain::UserId,
    /// `bob` of `/old/eu`, whose id entry names him.
    pub bob: token_service::domain::UserId,
    /// A live grant of alice's, unlisted.
    pub grant: token_service::domain::GrantId,
    /// An id entry without username naming no user.
    pub dangling: token_service::domain::UserId,
}

/// Writes records as the first stage (before the admin plane) wrote them, with the SDK: client
/// `old-app` of `/old`, users `alice` of `/old` and `bob` of `/old/eu` with their id entries, a
/// live grant of alice's, and a dangling id entry; no tenant items, no `counted`, no list keys.
pub async fn write_first_stage_records(store: &DynamoStore, now: u64) -> FirstStage {
    use aws_sdk_dynamodb::types::AttributeValue;
    use token_service::domain::{ClientSecret, GrantId, UserId};
    let text = |pairs: &[(&str, &str)]| -> std::collections::HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), AttributeValue::S((*value).to_owned())))
            .collect()
    };
    let number = |value: u64| AttributeValue::N(value.to_string());
    let (alice, bob, grant, dangling) =
        (UserId::generate(), UserId::generate(), GrantId::generate(), UserId::generate());
    let digest = String::from(ClientSecret::generate().digest());
    let mut client = text(&[
        ("pk", "CLIENT#old-app"),
        ("sk", "CLIENT"),
        ("client_id", "old-app"),
        ("secret_sha256", &digest),
        ("tenant", "/old"),
        ("grants", "password refresh_token"),
        ("scopes", "read"),
    ]);
    for lifetime in
        ["max_access_token_lifetime", "refresh_idle_lifetime", "refresh_absolute_lifetime"]
    {
        client.insert(lifetime.to_owned(), number(600));
    }
    let mut grant_item = text(&[
        ("pk", &format!("GRANT#{grant}")),
        ("sk", "GRANT"),
        ("grant_id", grant.as_str()),
        ("client_id", "old-app"),
        ("tenant", "/old"),
        ("subject", alice.as_str()),
        ("scope", "read"),
    ]);
    grant_item.insert("created_at".to_owned(), number(now - 10));
    grant_item.insert("ttl".to_owned(), number(now + 3600));
    let items = [
        client,
        text(&[
            ("pk", "USER#/old#alice"),
            ("sk", "USER"),
            ("user_id", alice.as_str()),
            ("tenant", "/old"),
            ("username", "alice"),
            ("password_hash", "hash"),
        ]),
        text(&[("pk", &format!("USERID#{alice}")), ("sk", "USERID"), ("tenant", "/old")]),
        text(&[
            ("pk", "USER#/old/eu#bob"),
            ("sk", "USER"),
            ("user_id", bob.as_str()),
            ("tenant", "/old/eu"),
            ("username", "bob"),
            ("password_hash", "hash"),
        ]),
        text(&[
            ("pk", &format!("USERID#{bob}")),
            ("sk", "USERID"),
            ("tenant", "/old/eu"),
            ("username", "bob"),
        ]),
        grant_item,
        text(&[("pk", &format!("USERID#{dangling}")), ("sk", "USERID"), ("tenant", "/old")]),
    ];
    for item in items {
        let put = store.sdk_client().put_item().table_name(store.table_name()).set_item(Some(item));
        put.send().await.unwrap();
    }
    FirstStage { alice, bob, grant, dangling }
}

/// The `members` count of tenant `path`'s item, if it has one.
pub async fn tenant_members(store: &DynamoStore, path: &str) -> Option<u64> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let item = store
        .sdk_client()
        .get_item()
        .table_name(store.table_name())
        .key("pk", AttributeValue::S(format!("TENANT#{path}")))
        .key("sk", AttributeValue::S("TENANT".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item?;
    item.get("members").and_then(|v| v.as_n().ok()).and_then(|raw| raw.parse().ok())
}
