//! `POST /oauth2/revoke/batch`: revoke every token of a scope issued before a time as a Lambda function behind API Gateway.

use std::convert::Infallible;

use lambda_http::{Error, Request, run, service_fn};
use token_service::api;
use token_service::config::Config;
use token_service::setup::{self, Wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let keys = setup::keys(&config).await?;
    let stores = setup::stores(&config).await?;
    let service = Wiring::with_system_clock(config, keys, stores).batch_revocation();

    run(service_fn(async |request: Request| {
        Ok::<_, Infallible>(api::batch_revoke_endpoint(&service, request).await)
    }))
    .await
}
