//! DynamoDB for tests: a fresh table per test on the local server `make test` starts, and an SDK
//! interceptor that counts round trips.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use token_service::setup;
use token_service::store::dynamodb::{DynamoStore, table};

const HOW_TO_START: &str = "DynamoDB tests need a local server: run them through `make test`, or \
     `tests/dynamodb-local.sh cargo test`, which starts moto and sets AWS_ENDPOINT_URL_DYNAMODB";

/// Counts the HTTP requests the SDK sends, retries included.
#[derive(Clone, Debug, Default)]
pub struct RoundTrips(Arc<AtomicUsize>);

impl RoundTrips {
    pub fn take(&self) -> usize {
        self.0.swap(0, Ordering::SeqCst)
    }
}

impl Intercept for RoundTrips {
    fn name(&self) -> &'static str {
        "RoundTrips"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
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
    let sdk_config = setup::aws_config().await;
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
    (DynamoStore::new(client, name), round_trips)
}

pub async fn fresh_store() -> DynamoStore {
    fresh_store_counting().await.0
}
