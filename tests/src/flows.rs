//! Requests the revocation and introspection tests repeat: logging in, refreshing, introspecting,
//! revoking, each over real HTTP.

use serde_json::Value;

use crate::{ADMIN_CLIENT, APP_CLIENT, CC_CLIENT, TestServer, basic_header};

/// A password login as alice through `app-client`: the token response.
pub async fn login(server: &TestServer) -> Value {
    let form =
        [("grant_type", "password"), ("username", "alice"), ("password", "alice-password-1")];
    let response = server.token(&form, Some(APP_CLIENT)).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A client-credentials token of `cc-client`.
pub async fn service_token(server: &TestServer) -> String {
    let response = server.token(&[("grant_type", "client_credentials")], Some(CC_CLIENT)).await;
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

pub async fn refresh(server: &TestServer, client: (&str, &str), token: &str) -> reqwest::Response {
    server.token(&[("grant_type", "refresh_token"), ("refresh_token", token)], Some(client)).await
}

/// POSTs `form` to `path` with `client`'s HTTP Basic credentials.
async fn post_as(
    server: &TestServer,
    path: &str,
    client: (&str, &str),
    form: &[(&str, &str)],
) -> reqwest::Response {
    server
        .http
        .post(server.url(path))
        .header("authorization", basic_header(client.0, client.1))
        .form(form)
        .send()
        .await
        .unwrap()
}

pub async fn introspect_as(
    server: &TestServer,
    client: (&str, &str),
    form: &[(&str, &str)],
) -> reqwest::Response {
    post_as(server, "/oauth2/introspect", client, form).await
}

/// The introspection answer for `token`, asked by `client`.
pub async fn introspect(server: &TestServer, client: (&str, &str), token: &str) -> Value {
    let response = introspect_as(server, client, &[("token", token)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

pub async fn is_active(server: &TestServer, token: &str) -> bool {
    let answer = introspect(server, APP_CLIENT, token).await;
    match answer["active"].as_bool() {
        Some(false) => {
            assert_eq!(answer, serde_json::json!({"active": false}), "inactive says nothing more");
            false
        }
        Some(true) => true,
        None => panic!("no active member: {answer}"),
    }
}

/// RFC 7009 revocation by `client`.
pub async fn revoke(
    server: &TestServer,
    client: (&str, &str),
    form: &[(&str, &str)],
) -> reqwest::Response {
    post_as(server, "/oauth2/revoke", client, form).await
}

/// Self revocation with `Authorization: Bearer`.
pub fn revoke_self(server: &TestServer, bearer: &str) -> reqwest::RequestBuilder {
    server
        .http
        .post(server.url("/oauth2/revoke"))
        .header("authorization", format!("Bearer {bearer}"))
}

pub async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"].as_str().unwrap_or_default().to_owned())
}

/// A token of `admin-client` (tenant `/acme`), which carries the `revoke:batch` scope.
pub async fn admin_token(server: &TestServer) -> String {
    let response = server.token(&[("grant_type", "client_credentials")], Some(ADMIN_CLIENT)).await;
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// `POST /oauth2/revoke/batch` with `body` as JSON.
pub async fn batch(server: &TestServer, bearer: &str, body: Value) -> reqwest::Response {
    server
        .http
        .post(server.url("/oauth2/revoke/batch"))
        .header("authorization", format!("Bearer {bearer}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A successful batch revocation's count.
pub async fn batch_count(server: &TestServer, bearer: &str, body: Value) -> u64 {
    let response = batch(server, bearer, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let answer: Value = response.json().await.unwrap();
    answer["count"].as_u64().unwrap_or_else(|| panic!("no count: {answer}"))
}
