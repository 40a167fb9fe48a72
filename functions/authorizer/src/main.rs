//! The API Gateway HTTP API Lambda authorizer (payload 2.0, simple responses).

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use token_service::authorizer::AuthorizerResponse;
use token_service::config::Config;
use token_service::setup::{self, Wiring};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let keys = setup::keys(&config).await?;
    let stores = setup::stores(&config).await?;
    let authorizer = Wiring::with_system_clock(config, keys, stores).authorizer();

    run(service_fn(async |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| {
        Ok::<AuthorizerResponse, Error>(authorizer.authorize(&event.payload).await)
    }))
    .await
}
