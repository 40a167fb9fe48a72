//! `x-device-id` on the token endpoint: recorded on the grant a password login starts and a
//! refresh continues, refused when malformed.

use std::sync::Arc;

use integration_tests::{APP_CLIENT, Backend, basic_header, on_both_backends};
use reqwest::header::HeaderValue;
use serde_json::Value;
use token_service::clock::{Clock, ManualClock};
use token_service::domain::{MAX_DEVICE_ID_LEN, RefreshToken};

on_both_backends!(
    a_login_and_its_refreshes_record_their_device_ids_on_the_grant,
    a_malformed_device_id_is_an_invalid_request_naming_the_header,
);

fn token_request(
    server: &integration_tests::TestServer,
    form: &[(&str, &str)],
    device: Option<HeaderValue>,
) -> reqwest::RequestBuilder {
    let request = server
        .http
        .post(server.url("/oauth2/token"))
        .header("authorization", basic_header(APP_CLIENT.0, APP_CLIENT.1))
        .form(form);
    match device {
        Some(device) => request.header("x-device-id", device),
        None => request,
    }
}

const LOGIN: [(&str, &str); 3] =
    [("grant_type", "password"), ("username", "alice"), ("password", "alice-password-1")];

async fn a_login_and_its_refreshes_record_their_device_ids_on_the_grant(backend: Backend) {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let (server, stores) = backend.server_and_stores(clock.clone()).await;
    let login = token_request(&server, &LOGIN, Some(HeaderValue::from_static("phone-1")));
    let login: Value = login.send().await.unwrap().json().await.unwrap();
    let mut refresh_token = login["refresh_token"].as_str().unwrap().to_owned();
    let (grant_id, _) = RefreshToken::parse(&refresh_token).unwrap();
    for device in [Some("tablet-2"), None, Some("phone-1")] {
        clock.advance(1);
        let form = [("grant_type", "refresh_token"), ("refresh_token", &refresh_token)];
        let refreshed = token_request(&server, &form, device.map(HeaderValue::from_static));
        let refreshed = refreshed.send().await.unwrap();
        assert_eq!(refreshed.status(), 200, "{device:?}");
        let refreshed: Value = refreshed.json().await.unwrap();
        refresh_token = refreshed["refresh_token"].as_str().unwrap().to_owned();
    }
    let grant = stores.grants.grant(&grant_id, clock.now()).await.unwrap().unwrap();
    let devices: Vec<&str> = grant.device_ids.iter().map(|d| d.as_str()).collect();
    assert_eq!(devices, ["phone-1", "tablet-2"], "each once, first seen first");
    assert_eq!(grant.last_refreshed_at, Some(clock.now()));
}

async fn a_malformed_device_id_is_an_invalid_request_naming_the_header(backend: Backend) {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let (server, _stores) = backend.server_and_stores(clock.clone()).await;
    let too_long = HeaderValue::from_str(&"d".repeat(MAX_DEVICE_ID_LEN + 1)).unwrap();
    let empty = HeaderValue::from_static("");
    let tab = HeaderValue::from_static("phone\t1");
    let not_text = HeaderValue::from_bytes(b"phone-\xe9").unwrap();
    for device in [too_long, empty, tab, not_text] {
        let response = token_request(&server, &LOGIN, Some(device.clone())).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 400, "{device:?}");
        assert_eq!(body["error"], "invalid_request", "{device:?}");
        assert!(body["error_description"].as_str().unwrap().contains("x-device-id"), "{body}");
    }
    let longest = HeaderValue::from_str(&"d".repeat(MAX_DEVICE_ID_LEN)).unwrap();
    let response = token_request(&server, &LOGIN, Some(longest)).send().await.unwrap();
    assert_eq!(response.status(), 200, "256 characters are fine");
}
