//! The API Gateway HTTP API Lambda authorizer (payload 2.0, simple responses).

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use token_service::authorizer::AuthorizerResponse;
use token_service::setup::Wiring;
use token_service::telemetry::Emf;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    token_service::logging::init();
    let metrics = Emf::init()?;
    let authorizer = Wiring::from_env().await?.authorizer();

    run(service_fn(async |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| {
        let response = authorizer.handle(event).await;
        metrics.flush();
        Ok::<AuthorizerResponse, Error>(response)
    }))
    .await
}
