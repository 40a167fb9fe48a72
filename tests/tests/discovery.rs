//! JWKS and RFC 8414 metadata over real HTTP.

use integration_tests::{CC_CLIENT, TestServer};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde_json::Value;
use token_service::keys::SigningAlgorithm;

#[tokio::test]
async fn metadata_names_the_issuer_endpoints_and_methods() {
    let server = TestServer::start().await;
    let response = server
        .http
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let metadata: Value = response.json().await.unwrap();
    assert_eq!(metadata["issuer"], server.base_url);
    assert_eq!(metadata["token_endpoint"], server.url("/oauth2/token"));
    assert_eq!(metadata["jwks_uri"], server.url("/.well-known/jwks.json"));
    assert_eq!(metadata["revocation_endpoint"], server.url("/oauth2/revoke"));
    assert_eq!(metadata["introspection_endpoint"], server.url("/oauth2/introspect"));
    assert_eq!(metadata["batch_revocation_endpoint"], server.url("/oauth2/revoke/batch"));
    assert_eq!(metadata["access_token_signing_alg_values_supported"], serde_json::json!(["ES256"]));
    let methods =
        serde_json::json!(["client_secret_basic", "client_secret_post", "private_key_jwt"]);
    let algorithms = serde_json::json!(["ES256", "EdDSA", "RS256", "PS256"]);
    for endpoint in ["token", "revocation", "introspection"] {
        let methods_member = format!("{endpoint}_endpoint_auth_methods_supported");
        assert_eq!(metadata[&methods_member], methods, "{methods_member}");
        let algorithms_member = format!("{endpoint}_endpoint_auth_signing_alg_values_supported");
        assert_eq!(metadata[&algorithms_member], algorithms, "{algorithms_member}");
    }
    assert_eq!(metadata["dpop_signing_alg_values_supported"], algorithms);
    assert_eq!(
        metadata["grant_types_supported"],
        serde_json::json!(["client_credentials", "password", "refresh_token"])
    );
}

#[tokio::test]
async fn tokens_of_every_algorithm_verify_against_the_served_jwks() {
    for alg in SigningAlgorithm::ALL {
        let server = TestServer::start_with(alg).await;
        let response = server.http.get(server.url("/.well-known/jwks.json")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["cache-control"].to_str().unwrap().starts_with("public"));
        let jwks: JwkSet = response.json().await.unwrap();
        let token: Value = server
            .token(&[("grant_type", "client_credentials")], Some(CC_CLIENT))
            .await
            .json()
            .await
            .unwrap();
        let token = token["access_token"].as_str().unwrap();

        let header = decode_header(token).unwrap();
        assert_eq!(header.alg, alg.jwt());
        let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("kid is in the JWKS");
        assert_eq!(jwk.common.public_key_use, Some(jsonwebtoken::jwk::PublicKeyUse::Signature));
        let mut validation = Validation::new(alg.jwt());
        validation.set_audience(&[integration_tests::AUDIENCE]);
        validation.set_issuer(&[&server.base_url]);
        let claims = decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["client_id"], "cc-client", "{alg}");
    }
}

#[tokio::test]
async fn jwks_publishes_only_public_key_material() {
    let server = TestServer::start_with(SigningAlgorithm::RS256).await;
    let jwks = server.get_json("/.well-known/jwks.json").await;
    for key in jwks["keys"].as_array().unwrap() {
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key.get(private).is_none(), "{private} leaked: {key}");
        }
        assert_eq!(key["alg"], "RS256");
        assert!(key["kid"].as_str().is_some());
    }
}
