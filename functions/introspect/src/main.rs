//! `POST /oauth2/introspect` (RFC 7662) as a Lambda function behind API Gateway.

use std::convert::Infallible;

use lambda_http::{Error, Request, run, service_fn};
use token_service::api;
use token_service::setup::Wiring;
use token_service::telemetry::Emf;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    token_service::logging::init();
    let metrics = Emf::init()?;
    let service = Wiring::from_env().await?.introspection_service();

    run(service_fn(async |request: Request| {
        let response = api::introspect_endpoint(&service, request).await;
        metrics.flush();
        Ok::<_, Infallible>(response)
    }))
    .await
}
