//! `GET /.well-known/jwks.json` and `GET /.well-known/oauth-authorization-server` as a Lambda
//! function behind API Gateway.

use std::convert::Infallible;

use lambda_http::{Error, Request, run, service_fn};
use token_service::api::{self, Discovery};
use token_service::config::Config;
use token_service::setup;
use token_service::telemetry::Emf;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    token_service::logging::init();
    let metrics = Emf::init()?;
    let config = Config::from_env()?;
    let keys = setup::verification_keys(&config).await?;
    let discovery = Discovery::new(&config.issuer, &keys);

    run(service_fn(async |request: Request| {
        let response = api::discovery_endpoint(&discovery, request).await;
        metrics.flush();
        Ok::<_, Infallible>(response)
    }))
    .await
}
