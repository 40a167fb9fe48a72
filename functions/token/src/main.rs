//! `POST /oauth2/token` as a Lambda function behind API Gateway.

use std::convert::Infallible;

use lambda_http::{Error, Request, run, service_fn};
use token_service::api;
use token_service::setup::SigningWiring;
use token_service::telemetry::Emf;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    token_service::logging::init();
    let metrics = Emf::init()?;
    // The one function that reads the private keys: it alone signs.
    let service = SigningWiring::from_env().await?.token_service();

    run(service_fn(async |request: Request| {
        let response = api::token_endpoint(&service, request).await;
        metrics.flush();
        Ok::<_, Infallible>(response)
    }))
    .await
}
