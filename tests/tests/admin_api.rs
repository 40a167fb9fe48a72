//! The admin routes under `/admin/` over HTTP, on both stores: who may act where, validation,
//! what each change revokes, secret rotation with overlap, sessions, and pagination.

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use integration_tests::flows::{error_of, introspect, is_active, login, refresh};
use integration_tests::{
    ACME_ADMIN, APP_CLIENT, Backend, CC_CLIENT, OTHER_APP, SALES_MANAGER, TestServer,
    on_both_backends,
};
use serde_json::{Value, json};
use token_service::clock::{ManualClock, SystemClock};

const T0: u64 = 1_800_000_000;

async fn token_of(server: &TestServer, client: (&str, &str)) -> String {
    let response = server.token(&[("grant_type", "client_credentials")], Some(client)).await;
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap_or_else(|| panic!("no token: {body}")).to_owned()
}

/// One admin request: status and JSON body (`null` when there is none).
async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server
        .http
        .request(method.parse().unwrap(), server.url(path))
        .header("authorization", format!("Bearer {bearer}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    assert_eq!(
        response.headers().get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "{method} {path}"
    );
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn server(backend: Backend) -> TestServer {
    backend.server(Arc::new(SystemClock)).await
}

fn registration(id: &str, tenant: &str) -> Value {
    json!({"client_id": id, "tenant": tenant, "grant_types": ["client_credentials"], "scope": "read"})
}

async fn password_login(
    server: &TestServer,
    client: (&str, &str),
    tenant: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let form = [
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
        ("tenant_path", tenant),
    ];
    server.token(&form, Some(client)).await
}

async fn tenants_are_created_listed_and_deleted_only_when_empty(backend: Backend) {
    let server = server(backend).await;
    let admin = token_of(&server, ACME_ADMIN).await;
    let (status, body) =
        call(&server, "POST", "/admin/tenants", &admin, Some(json!({"path": "/acme/eu"}))).await;
    assert_eq!((status, body), (201, json!({"path": "/acme/eu"})));
    let (status, body) =
        call(&server, "POST", "/admin/tenants", &admin, Some(json!({"path": "/acme/eu"}))).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")));
    let (status, body) =
        call(&server, "POST", "/admin/tenants", &admin, Some(json!({"path": "/globex/x"}))).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("insufficient_scope")));
    let (status, body) =
        call(&server, "POST", "/admin/tenants", &admin, Some(json!({"path": "acme"}))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("path"), "{body}");

    let (status, list) = call(&server, "GET", "/admin/tenants", &admin, None).await;
    assert_eq!(status, 200, "{list}");
    let paths: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|t| t["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/acme", "/acme/eu", "/acme/sales"], "the subtree, never /globex");

    let (status, _) =
        call(&server, "POST", "/admin/clients", &admin, Some(registration("eu-app", "/acme/eu")))
            .await;
    assert_eq!(status, 201);
    let (status, body) =
        call(&server, "DELETE", "/admin/tenants?path=/acme/eu", &admin, None).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")), "holds a client");
    assert_eq!(call(&server, "DELETE", "/admin/clients/eu-app", &admin, None).await.0, 204);
    assert_eq!(call(&server, "DELETE", "/admin/tenants?path=/acme/eu", &admin, None).await.0, 204);
    let (status, body) =
        call(&server, "DELETE", "/admin/tenants?path=/acme/eu", &admin, None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (status, _) = call(&server, "DELETE", "/admin/tenants?path=/globex", &admin, None).await;
    assert_eq!(status, 403, "outside the subtree, though it exists");
    let (status, _) =
        call(&server, "DELETE", "/admin/tenants?path=/globex/none", &admin, None).await;
    assert_eq!(status, 403, "outside the subtree, though it does not exist");
}

async fn a_registered_client_gets_a_secret_shown_once_that_works(backend: Backend) {
    let server = server(backend).await;
    let admin = token_of(&server, ACME_ADMIN).await;
    let (status, created) = call(
        &server,
        "POST",
        "/admin/clients",
        &admin,
        Some(registration("reporting", "/acme/sales")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(URL_SAFE_NO_PAD.decode(&secret).unwrap().len() >= 32, "at least 256 bits");
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["tenant"], "/acme/sales");
    assert_eq!(created["grant_types"], json!(["client_credentials"]));
    assert!(!token_of(&server, ("reporting", &secret)).await.is_empty());

    let (status, read) = call(&server, "GET", "/admin/clients/reporting", &admin, None).await;
    assert_eq!(status, 200);
    let text = read.to_string();
    assert!(read.get("client_secret").is_none() && !text.contains(&secret), "{read}");
    assert!(!text.contains("sha256") && !text.contains("digest"), "{read}");

    let (status, body) =
        call(&server, "POST", "/admin/clients", &admin, Some(registration("reporting", "/acme")))
            .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")));
    let (status, generated) = call(
        &server,
        "POST",
        "/admin/clients",
        &admin,
        Some(json!({"tenant": "/acme", "grant_types": ["password"], "scope": "read write"})),
    )
    .await;
    assert_eq!(status, 201);
    assert!(generated["client_id"].as_str().is_some_and(|id| id.len() >= 16), "{generated}");
}

async fn bad_registrations_name_the_field_and_change_nothing(backend: Backend) {
    let server = server(backend).await;
    let admin = token_of(&server, ACME_ADMIN).await;
    let base = registration("bad", "/acme");
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let cases = [
        (with("colour", json!("red")), "colour"),
        (with("max_access_token_lifetime", json!("long")), "max_access_token_lifetime"),
        (with("max_access_token_lifetime", json!(0)), "max_access_token_lifetime"),
        (with("tenant", json!("/acme/")), "tenant"),
        (with("grant_types", json!(["implicit"])), "grant_types"),
        (with("scope", json!("")), "scope"),
        (with("refresh_reuse_interval", json!(61)), "refresh_reuse_interval"),
        (with("token_endpoint_auth_method", json!("none")), "token_endpoint_auth_method"),
        (with("token_endpoint_auth_method", json!("private_key_jwt")), "jwks"),
        (
            with(
                "jwks",
                json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h", "alg": "HS256"}]}),
            ),
            "jwks",
        ),
        (with("client_id", json!("has space")), "client_id"),
        (json!({"client_id": "bad", "tenant": "/acme", "grant_types": ["password"]}), "scope"),
    ];
    for (body, field) in cases {
        let (status, answer) =
            call(&server, "POST", "/admin/clients", &admin, Some(body.clone())).await;
        assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_request")), "{body}");
        let description = answer["error_description"].as_str().unwrap();
        assert!(description.contains(field), "{field} not named in {description:?}");
    }
    let (status, _) = call(&server, "GET", "/admin/clients/bad", &admin, None).await;
    assert_eq!(status, 404, "nothing was written");
    let huge = json!({"client_id": "x", "tenant": "/acme", "grant_types": [], "scope": "a".repeat(70 * 1024)});
    assert_eq!(call(&server, "POST", "/admin/clients", &admin, Some(huge)).await.0, 413);
    let (status, _) = call(
        &server,
        "PATCH",
        "/admin/clients/cc-client",
        &admin,
        Some(json!({"refresh_idle_lifetime": 0})),
    )
    .await;
    assert_eq!(status, 400, "a patch validates like a registration");
    let (status, _) = call(
        &server,
        "PATCH",
        "/admin/clients/cc-client",
        &admin,
        Some(json!({"tenant": "/acme/sales"})),
    )
    .await;
    assert_eq!(status, 400, "the tenant never changes");
}

async fn only_a_client_credentials_admin_token_manages_and_only_its_subtree(backend: Backend) {
    let server = server(backend).await;
    let (status, body) = call(&server, "GET", "/admin/clients", "not-a-token", None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")));
    let response = server.http.get(server.url("/admin/clients")).send().await.unwrap();
    assert_eq!(error_of(response).await, (401, "invalid_token".into()));
    let reader = token_of(&server, CC_CLIENT).await;
    let (status, body) = call(&server, "GET", "/admin/clients", &reader, None).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("insufficient_scope")));
    let alice = login(&server).await;
    let (status, _) =
        call(&server, "GET", "/admin/clients", alice["access_token"].as_str().unwrap(), None).await;
    assert_eq!(status, 403, "a user's token never manages");

    let manager = token_of(&server, SALES_MANAGER).await;
    // A user id anyone can compute (tenant and username) tells nothing about another tenant.
    let alice = token_service::domain::UserId::derived("/acme", "alice");
    let mallory = token_service::domain::UserId::derived("/acme", "mallory");
    for id in [alice, mallory] {
        for suffix in ["", "/sessions"] {
            let (status, _) =
                call(&server, "GET", &format!("/admin/users/{id}{suffix}"), &manager, None).await;
            assert_eq!(status, 403, "{id}{suffix}: exists or not, the same answer");
        }
    }
    for (method, path, body) in [
        ("GET", "/admin/clients/cc-client", None),
        ("PATCH", "/admin/clients/cc-client", Some(json!({"enabled": false}))),
        ("DELETE", "/admin/clients/cc-client", None),
        ("POST", "/admin/clients/cc-client/secret", Some(json!({}))),
        ("POST", "/admin/clients", Some(registration("sneaky", "/acme"))),
        (
            "POST",
            "/admin/users",
            Some(json!({"tenant": "/acme", "username": "eve", "password": "long-enough"})),
        ),
        ("GET", "/admin/clients?tenant=/acme", None),
        ("GET", "/admin/clients?tenant=/acme/none", None),
        ("POST", "/admin/tenants", Some(json!({"path": "/acme/none"}))),
    ] {
        let (status, answer) = call(&server, method, path, &manager, body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (403, Some("insufficient_scope")),
            "{method} {path}"
        );
    }
    let admin = token_of(&server, ACME_ADMIN).await;
    assert_eq!(
        call(&server, "GET", "/admin/clients/cc-client", &admin, None).await.0,
        200,
        "unchanged"
    );
    assert!(!token_of(&server, CC_CLIENT).await.is_empty(), "still enabled");

    // A revoked admin token is refused by the same verification every route uses.
    let form = [("token", manager.as_str())];
    integration_tests::flows::revoke(&server, SALES_MANAGER, &form).await;
    let (status, _) = call(&server, "GET", "/admin/clients", &manager, None).await;
    assert_eq!(status, 401);
}

async fn a_disabled_clients_tokens_die_at_once_and_it_gets_no_more(backend: Backend) {
    let server = server(backend).await;
    let admin = token_of(&server, ACME_ADMIN).await;
    let alice = login(&server).await;
    let access = alice["access_token"].as_str().unwrap();
    assert!(is_active(&server, access).await);
    let (status, body) = call(
        &server,
        "PATCH",
        "/admin/clients/app-client",
        &admin,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!((status, &body["enabled"]), (200, &json!(false)), "{body}");
    let answer = introspect(&server, CC_CLIENT, access).await;
    assert_eq!(answer, json!({"active": false}));
    let response = refresh(&server, APP_CLIENT, alice["refresh_token"].as_str().unwrap()).await;
    assert_eq!(error_of(response).await.0, 401, "a disabled client authenticates nowhere");
    let response = password_login(&server, APP_CLIENT, "/acme", "alice", "alice-password-1").await;
    assert_eq!(error_of(response).await, (401, "invalid_client".into()));

    let service = token_of(&server, CC_CLIENT).await;
    assert_eq!(call(&server, "DELETE", "/admin/clients/cc-client", &admin, None).await.0, 204);
    assert_eq!(introspect(&server, OTHER_APP, &service).await, json!({"active": false}));
    let response = server.token(&[("grant_type", "client_credentials")], Some(CC_CLIENT)).await;
    assert_eq!(error_of(response).await, (401, "invalid_client".into()));
    assert_eq!(call(&server, "DELETE", "/admin/clients/cc-client", &admin, None).await.0, 404);
}

async fn a_rotated_secret_overlaps_for_the_interval_asked_then_never_again(backend: Backend) {
    let clock = Arc::new(ManualClock::new(T0));
    let server = backend.server(clock.clone()).await;
    let admin = token_of(&server, ACME_ADMIN).await;
    let old = CC_CLIENT.1;
    let (status, rotated) = call(
        &server,
        "POST",
        "/admin/clients/cc-client/secret",
        &admin,
        Some(json!({"previous_secret_valid_for": 300})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let works = async |secret: &str| {
        server
            .token(&[("grant_type", "client_credentials")], Some(("cc-client", secret)))
            .await
            .status()
            == 200
    };
    assert!(works(old).await && works(&new).await, "both inside the overlap");
    clock.advance(299);
    assert!(works(old).await);
    clock.advance(1);
    assert!(!works(old).await, "the previous secret ends with the overlap");
    assert!(works(&new).await);

    let (_, again) = call(&server, "POST", "/admin/clients/cc-client/secret", &admin, None).await;
    let newest = again["client_secret"].as_str().unwrap();
    assert!(!works(&new).await, "rotation with no overlap kills the old secret at once");
    assert!(works(newest).await);
    let (status, _) = call(
        &server,
        "POST",
        "/admin/clients/cc-client/secret",
        &admin,
        Some(json!({"previous_secret_valid_for": 7 * 24 * 3600 + 1})),
    )
    .await;
    assert_eq!(status, 400, "at most a week");
}

async fn users_are_created_read_and_their_passwords_set(backend: Backend) {
    let server = server(backend).await;
    let admin = token_of(&server, ACME_ADMIN).await;
    let new_user = |username: &str, password: &str| json!({"tenant": "/acme/sales", "username": username, "password": password});
    let (status, dave) =
        call(&server, "POST", "/admin/users", &admin, Some(new_user("dave", "dave-password-1")))
            .await;
    assert_eq!(status, 201, "{dave}");
    assert_eq!(dave["username"], "dave");
    assert_eq!(dave["enabled"], true);
    assert!(dave.get("password").is_none() && dave.get("password_hash").is_none());
    let id = dave["id"].as_str().unwrap().to_owned();
    let (status, read) = call(&server, "GET", &format!("/admin/users/{id}"), &admin, None).await;
    assert_eq!((status, &read), (200, &dave));
    for (body, field, code) in [
        (new_user("dave", "another-password"), "", 409),
        (new_user("erin", "short"), "password", 400),
        (new_user("erin", &"p".repeat(1025)), "password", 400),
        (new_user(" erin", "long-enough"), "username", 400),
        (json!({"tenant": "/acme/sales", "username": "erin"}), "password", 400),
    ] {
        let (status, answer) = call(&server, "POST", "/admin/users", &admin, Some(body)).await;
        assert_eq!(status, code, "{answer}");
        assert!(answer["error_description"].as_str().unwrap().contains(field), "{answer}");
    }

    let before =
        password_login(&server, APP_CLIENT, "/acme/sales", "dave", "dave-password-1").await;
    assert_eq!(before.status(), 200);
    let session: Value = before.json().await.unwrap();
    let (status, _) = call(
        &server,
        "PATCH",
        &format!("/admin/users/{id}"),
        &admin,
        Some(json!({"password": "dave-password-2"})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !is_active(&server, session["access_token"].as_str().unwrap()).await,
        "earlier sessions die"
    );
    let response = refresh(&server, APP_CLIENT, session["refresh_token"].as_str().unwrap()).await;
    assert_eq!(error_of(response).await.1, "invalid_grant");
    let old = password_login(&server, APP_CLIENT, "/acme/sales", "dave", "dave-password-1").await;
    assert_eq!(error_of(old).await, (400, "invalid_grant".into()));
    let new = password_login(&server, APP_CLIENT, "/acme/sales", "dave", "dave-password-2").await;
    assert_eq!(new.status(), 200);
    let fresh: Value = new.json().await.unwrap();
    assert!(
        is_active(&server, fresh["access_token"].as_str().unwrap()).await,
        "a login after the change lives"
    );
}

async fn a_disabled_or_deleted_users_tokens_die_and_it_cannot_sign_in(backend: Backend) {
    let server = server(backend).await;
    let admin = token_of(&server, ACME_ADMIN).await;
    let alice = login(&server).await;
    let sub = introspect(&server, CC_CLIENT, alice["access_token"].as_str().unwrap()).await["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = call(
        &server,
        "PATCH",
        &format!("/admin/users/{sub}"),
        &admin,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!is_active(&server, alice["access_token"].as_str().unwrap()).await);
    let response = refresh(&server, APP_CLIENT, alice["refresh_token"].as_str().unwrap()).await;
    assert_eq!(error_of(response).await.1, "invalid_grant");
    let again = password_login(&server, APP_CLIENT, "/acme", "alice", "alice-password-1").await;
    assert_eq!(error_of(again).await, (400, "invalid_grant".into()), "as a wrong password");

    let (status, _) = call(
        &server,
        "PATCH",
        &format!("/admin/users/{sub}"),
        &admin,
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, 200);
    let back = login(&server).await;
    assert!(is_active(&server, back["access_token"].as_str().unwrap()).await);
    assert_eq!(call(&server, "DELETE", &format!("/admin/users/{sub}"), &admin, None).await.0, 204);
    assert!(!is_active(&server, back["access_token"].as_str().unwrap()).await);
    let gone = password_login(&server, APP_CLIENT, "/acme", "alice", "alice-password-1").await;
    assert_eq!(error_of(gone).await, (400, "invalid_grant".into()));
    let (status, _) = call(&server, "GET", &format!("/admin/users/{sub}"), &admin, None).await;
    assert_eq!(status, 403, "a gone user answers as one elsewhere: existence is never told");
}

async fn sessions_are_listed_per_user_and_ended_one_at_a_time(backend: Backend) {
    let server = server(backend).await;
    let admin = token_of(&server, ACME_ADMIN).await;
    let with_device = async |device: &str| {
        let form = [
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-password-1"),
            ("tenant_path", "/acme"),
        ];
        let response = server
            .http
            .post(server.url("/oauth2/token"))
            .header("authorization", integration_tests::basic_header(APP_CLIENT.0, APP_CLIENT.1))
            .header("x-device-id", device)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()
    };
    let phone = with_device("phone-1").await;
    let laptop = with_device("laptop-7").await;
    let sub = introspect(&server, CC_CLIENT, phone["access_token"].as_str().unwrap()).await["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/admin/users/{sub}/sessions");
    let (status, list) = call(&server, "GET", &path, &admin, None).await;
    assert_eq!(status, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    let devices: HashSet<&str> =
        items.iter().map(|s| s["device_ids"][0].as_str().unwrap()).collect();
    assert_eq!(devices, HashSet::from(["phone-1", "laptop-7"]));
    assert!(items.iter().all(|s| s["client_id"] == "app-client" && s["created_at"].is_u64()));

    let phone_grant = items.iter().find(|s| s["device_ids"][0] == "phone-1").unwrap()["grant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) =
        call(&server, "DELETE", &format!("/admin/sessions/{phone_grant}"), &admin, None).await;
    assert_eq!(status, 204);
    assert!(!is_active(&server, phone["access_token"].as_str().unwrap()).await);
    assert!(is_active(&server, laptop["access_token"].as_str().unwrap()).await, "the other lives");
    let refreshed = refresh(&server, APP_CLIENT, laptop["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.status(), 200);
    let (_, list) = call(&server, "GET", &path, &admin, None).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert!(items[0]["last_refreshed_at"].is_u64(), "{list}");

    let manager = token_of(&server, SALES_MANAGER).await;
    assert_eq!(call(&server, "GET", &path, &manager, None).await.0, 403);
    let laptop_grant = items[0]["grant_id"].as_str().unwrap();
    assert_eq!(
        call(&server, "DELETE", &format!("/admin/sessions/{laptop_grant}"), &manager, None).await.0,
        403
    );
    assert_eq!(
        call(&server, "DELETE", "/admin/sessions/AAAAAAAAAAAAAAAAAAAAAA", &admin, None).await.0,
        404
    );
}

async fn lists_page_through_every_client_exactly_once_and_never_leave_the_subtree(
    backend: Backend,
) {
    let server = server(backend).await;
    let admin = token_of(&server, ACME_ADMIN).await;
    for path in ["/acme/big", "/acme/other"] {
        call(&server, "POST", "/admin/tenants", &admin, Some(json!({"path": path}))).await;
    }
    for i in 0..250 {
        let (status, _) = call(
            &server,
            "POST",
            "/admin/clients",
            &admin,
            Some(registration(&format!("big-{i:03}"), "/acme/big")),
        )
        .await;
        assert_eq!(status, 201);
    }
    for i in 0..3 {
        call(
            &server,
            "POST",
            "/admin/clients",
            &admin,
            Some(registration(&format!("zz-{i}"), "/acme/other")),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/admin/clients?tenant=/acme/big&limit=100&cursor={cursor}"),
            None => "/admin/clients?tenant=/acme/big&limit=100".to_owned(),
        };
        let (status, page) = call(&server, "GET", &path, &admin, None).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 100);
        seen.extend(items.iter().map(|c| c["client_id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (250, 250), "each exactly once");
    assert!(seen.iter().all(|id| id.starts_with("big-")));

    // A cursor edited to point into another tenant's range reads nothing from there.
    let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json!(["/globex", "a"])).unwrap());
    let (status, answer) = call(
        &server,
        "GET",
        &format!("/admin/clients?tenant=/acme/big&cursor={forged}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error_description"].as_str().unwrap().contains("cursor"));
    let manager = token_of(&server, SALES_MANAGER).await;
    let into_acme = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json!(["/acme", "a"])).unwrap());
    let (status, answer) =
        call(&server, "GET", &format!("/admin/clients?cursor={into_acme}"), &manager, None).await;
    assert_eq!(status, 400, "{answer}");
    let (status, own) = call(&server, "GET", "/admin/clients", &manager, None).await;
    assert_eq!(status, 200);
    assert!(
        own["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["tenant"].as_str().unwrap().starts_with("/acme/sales")),
        "{own}"
    );
    for bad in ["limit=0", "limit=101", "limit=x", "cursor=%%%", "colour=red"] {
        let (status, _) =
            call(&server, "GET", &format!("/admin/clients?{bad}"), &admin, None).await;
        assert_eq!(status, 400, "{bad}");
    }
}

/// A client id chosen to equal another tenant's user id: disabling either never reaches the
/// other, whichever way round.
async fn a_client_named_like_a_user_neither_shares_nor_triggers_its_cutoffs(backend: Backend) {
    let clock = Arc::new(ManualClock::new(T0));
    let server = backend.server(clock.clone()).await;
    let admin = token_of(&server, ACME_ADMIN).await;
    let alice = login(&server).await;
    let alice_access = alice["access_token"].as_str().unwrap();
    let alice_id =
        introspect(&server, CC_CLIENT, alice_access).await["sub"].as_str().unwrap().to_owned();
    let (status, twin) = call(
        &server,
        "POST",
        "/admin/clients",
        &admin,
        Some(registration(&alice_id, "/acme/sales")),
    )
    .await;
    assert_eq!(status, 201, "{twin}");
    let twin_secret = twin["client_secret"].as_str().unwrap().to_owned();
    let twin_token = token_of(&server, (&alice_id, &twin_secret)).await;
    assert_eq!(introspect(&server, CC_CLIENT, &twin_token).await["sub"], alice_id.as_str());

    // The user's cutoff leaves the client that bears its id alone.
    let user = format!("/admin/users/{alice_id}");
    assert_eq!(call(&server, "PATCH", &user, &admin, Some(json!({"enabled": false}))).await.0, 200);
    assert!(!is_active(&server, alice_access).await);
    assert!(is_active(&server, &twin_token).await, "the client is untouched by the user's cutoff");

    // And the client's cutoff leaves the user alone.
    assert_eq!(call(&server, "PATCH", &user, &admin, Some(json!({"enabled": true}))).await.0, 200);
    clock.advance(5);
    let alice_again = login(&server).await;
    let alice_again = alice_again["access_token"].as_str().unwrap();
    let client = format!("/admin/clients/{alice_id}");
    assert_eq!(
        call(&server, "PATCH", &client, &admin, Some(json!({"enabled": false}))).await.0,
        200
    );
    assert!(!is_active(&server, &twin_token).await);
    assert!(is_active(&server, alice_again).await, "the user is untouched by the client's cutoff");
}

on_both_backends!(
    tenants_are_created_listed_and_deleted_only_when_empty,
    a_registered_client_gets_a_secret_shown_once_that_works,
    bad_registrations_name_the_field_and_change_nothing,
    only_a_client_credentials_admin_token_manages_and_only_its_subtree,
    a_disabled_clients_tokens_die_at_once_and_it_gets_no_more,
    a_rotated_secret_overlaps_for_the_interval_asked_then_never_again,
    users_are_created_read_and_their_passwords_set,
    a_disabled_or_deleted_users_tokens_die_and_it_cannot_sign_in,
    sessions_are_listed_per_user_and_ended_one_at_a_time,
    lists_page_through_every_client_exactly_once_and_never_leave_the_subtree,
    a_client_named_like_a_user_neither_shares_nor_triggers_its_cutoffs,
);
