//! `GET /openapi.json` on the local server, and the 405 answers Schemathesis checked against it.

use integration_tests::{TestServer, repo_path};
use serde_json::Value;
use token_service::api::{
    BATCH_REVOKE_PATH, INTROSPECT_PATH, JWKS_PATH, METADATA_PATH, REVOKE_PATH, TOKEN_PATH,
};

#[tokio::test]
async fn the_local_server_serves_the_openapi_document() {
    let server = TestServer::start().await;
    let response = server.http.get(server.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served: Value = response.json().await.unwrap();
    let version = served["openapi"].as_str().expect("an openapi version string");
    assert!(version.starts_with("3.1."), "{version}");

    let file = std::fs::read_to_string(repo_path("../openapi.json")).unwrap();
    assert_eq!(
        served,
        serde_json::from_str::<Value>(&file).unwrap(),
        "served as in the repository"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let document: Value = serde_json::from_str(tokenctl::server::OPENAPI_JSON).unwrap();
    let paths = document["paths"].as_object().unwrap();
    let routes = [
        (TOKEN_PATH, "post"),
        (REVOKE_PATH, "post"),
        (BATCH_REVOKE_PATH, "post"),
        (INTROSPECT_PATH, "post"),
        (JWKS_PATH, "get"),
        (METADATA_PATH, "get"),
        (tokenctl::server::OPENAPI_PATH, "get"),
    ];
    for (path, method) in routes {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path}");
    }
    assert_eq!(paths.len(), routes.len(), "no path the server does not serve");
}

/// RFC 9110 §15.5.6: a 405 names the allowed methods in `Allow` (Schemathesis found it missing).
#[tokio::test]
async fn a_method_a_route_does_not_support_is_405_with_allow() {
    let server = TestServer::start().await;
    let cases = [
        (http::Method::GET, TOKEN_PATH, "POST"),
        (http::Method::PUT, REVOKE_PATH, "POST"),
        (http::Method::DELETE, BATCH_REVOKE_PATH, "POST"),
        (http::Method::GET, INTROSPECT_PATH, "POST"),
        (http::Method::POST, JWKS_PATH, "GET, HEAD"),
        (http::Method::TRACE, METADATA_PATH, "GET, HEAD"),
        (http::Method::POST, tokenctl::server::OPENAPI_PATH, "GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        let response = server.http.request(method.clone(), server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{method} {path}");
    }
}
