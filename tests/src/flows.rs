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

/// Every answer of the revocation and introspection routes, errors included, is never cached:
/// `Cache-Control: no-store` (RFC 6749 §5.1) and `Pragma: no-cache` for HTTP/1.0 caches.
pub fn assert_never_cached(response: &reqwest::Response) {
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
    let status = response.status();
    assert_eq!(header("cache-control"), Some("no-store"), "{status}: Cache-Control");
    assert_eq!(header("pragma"), Some("no-cache"), "{status}: Pragma");
}

/// A POST to `path`, authenticated with HTTP Basic when `basic` is given.
fn post(server: &TestServer, path: &str, basic: Option<(&str, &str)>) -> reqwest::RequestBuilder {
    let request = server.http.post(server.url(path));
    match basic {
        Some((id, secret)) => request.header("authorization", basic_header(id, secret)),
        None => request,
    }
}

async fn send_never_cached(request: reqwest::RequestBuilder) -> reqwest::Response {
    let response = request.send().await.unwrap();
    assert_never_cached(&response);
    response
}

/// POSTs `body` to `path` with the given Content-Type (none when `None`), authenticated with
/// HTTP Basic when `basic` is given. The answer is checked never cached.
pub async fn post_body(
    server: &TestServer,
    path: &str,
    basic: Option<(&str, &str)>,
    content_type: Option<&str>,
    body: String,
) -> reqwest::Response {
    let mut request = post(server, path, basic).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    send_never_cached(request).await
}

/// POSTs `form` to `path`, authenticated with HTTP Basic when `basic` is given (otherwise only
/// by what the form carries). The answer is checked never cached.
pub async fn post_form(
    server: &TestServer,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    send_never_cached(post(server, path, basic).form(form)).await
}

/// POSTs `form` to `path` with `client`'s HTTP Basic credentials.
async fn post_as(
    server: &TestServer,
    path: &str,
    client: (&str, &str),
    form: &[(&str, &str)],
) -> reqwest::Response {
    post_form(server, path, Some(client), form).await
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

/// Self revocation with `Authorization: <scheme> <token>` and, if given, a DPoP proof: the
/// status, and the error code unless it is a 200.
pub async fn revoke_self_as(
    server: &TestServer,
    scheme: &str,
    token: &str,
    proof: Option<String>,
) -> (u16, String) {
    let authorization = format!("{scheme} {token}");
    let mut request =
        server.http.post(server.url("/oauth2/revoke")).header("authorization", authorization);
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    let response = request.send().await.unwrap();
    match response.status().as_u16() {
        200 => (200, String::new()),
        _ => error_of(response).await,
    }
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
    assert_never_cached(&response);
    let answer: Value = response.json().await.unwrap();
    answer["count"].as_u64().unwrap_or_else(|| panic!("no count: {answer}"))
}
