//! `GET /openapi.json` on the local server, and the 405 answers Schemathesis checked against it.

use integration_tests::{ACME_ADMIN, TestServer, repo_path};
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
        ("/admin/tenants", "post"),
        ("/admin/tenants", "get"),
        ("/admin/tenants", "delete"),
        ("/admin/clients", "post"),
        ("/admin/clients", "get"),
        ("/admin/clients/{id}", "get"),
        ("/admin/clients/{id}", "patch"),
        ("/admin/clients/{id}", "delete"),
        ("/admin/clients/{id}/secret", "post"),
        ("/admin/users", "post"),
        ("/admin/users", "get"),
        ("/admin/users/{id}", "get"),
        ("/admin/users/{id}", "patch"),
        ("/admin/users/{id}", "delete"),
        ("/admin/users/{id}/sessions", "get"),
        ("/admin/sessions/{grant_id}", "delete"),
    ];
    for (path, method) in routes {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path}");
    }
    let served: std::collections::BTreeSet<&str> = routes.iter().map(|(path, _)| *path).collect();
    assert_eq!(paths.len(), served.len(), "no path the server does not serve");
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            if method != "parameters" {
                let route = (path.as_str(), method.as_str());
                assert!(routes.contains(&route), "{method} {path} is not served");
            }
            if path.starts_with("/admin/") && method != "parameters" {
                let security = &operation["security"][0];
                assert!(security.get("adminBearer").is_some(), "{method} {path}: {security}");
            }
        }
    }
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
        (http::Method::PUT, "/admin/tenants", "GET, POST, DELETE"),
        (http::Method::DELETE, "/admin/clients", "GET, POST"),
        (http::Method::POST, "/admin/users/some-id", "GET, PATCH, DELETE"),
        (http::Method::GET, "/admin/clients/some-id/secret", "POST"),
        (http::Method::DELETE, "/admin/users/some-id/sessions", "GET"),
        (http::Method::GET, "/admin/sessions/some-id", "DELETE"),
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

/// Serde reads a struct from a JSON array too, field by field in order: `[null, null]` once
/// changed nothing and answered 200, and `["pw", false]` would have set a password and disabled
/// the user. Schemathesis found it; every admin body is a JSON object or a 400.
#[tokio::test]
async fn an_admin_body_that_is_not_a_json_object_is_refused() {
    let server = TestServer::start().await;
    let response = server.token(&[("grant_type", "client_credentials")], Some(ACME_ADMIN)).await;
    let token =
        response.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    let send = async |method: http::Method, path: &str, body: &str| {
        let response = server
            .http
            .request(method, server.url(path))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json::<Value>().await.unwrap())
    };
    let (status, users) = send(http::Method::GET, "/admin/users?tenant=/acme", "").await;
    assert_eq!(status, 200, "{users}");
    let alice = users["items"].as_array().unwrap().iter().find(|u| u["username"] == "alice");
    let alice = alice.unwrap()["id"].as_str().unwrap().to_owned();
    let cases = [
        (http::Method::PATCH, format!("/admin/users/{alice}"), r#"[null, null]"#),
        (http::Method::PATCH, format!("/admin/users/{alice}"), r#"["new-password-1", false]"#),
        (http::Method::POST, "/admin/tenants".to_owned(), r#"["/acme/arrays"]"#),
        (http::Method::POST, "/admin/clients/cc-client/secret".to_owned(), "[60]"),
        (http::Method::PATCH, "/admin/clients/cc-client".to_owned(), "[]"),
    ];
    for (method, path, body) in cases {
        let (status, answer) = send(method.clone(), &path, body).await;
        assert_eq!(
            (status.as_u16(), answer["error"].as_str()),
            (400, Some("invalid_request")),
            "{method} {path} {body}: {answer}"
        );
    }
    let (_, alice) = send(http::Method::GET, &format!("/admin/users/{alice}"), "").await;
    assert_eq!(alice["enabled"], true, "{alice}");
    let (_, tenants) = send(http::Method::GET, "/admin/tenants", "").await;
    assert!(tenants["items"].as_array().is_some_and(|items| !items.is_empty()), "{tenants}");
    assert!(!tenants.to_string().contains("/acme/arrays"), "nothing was created: {tenants}");
}
