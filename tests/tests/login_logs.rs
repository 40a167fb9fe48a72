//! What the real `tokenctl serve` process logs of the login defence: one line per wait imposed,
//! with the tenant, a digest of the username, the source and the wait, and never the username
//! or the password in clear.

use std::time::Duration;

use integration_tests::process::ServeProcess;
use integration_tests::{APP_CLIENT, basic_header};
use token_service::domain::{TenantPath, Username, username_digest};

#[tokio::test]
async fn each_wait_imposed_is_one_line_without_the_username_or_password() {
    // A first wait long enough that the sixth attempt falls inside it however slow the machine.
    let env = [("RUST_LOG", "debug"), ("LOGIN_FIRST_WAIT", "60")];
    let server = ServeProcess::start("login-logs", &env);
    let http = reqwest::Client::new();
    let username = "alice";
    for _ in 0..6 {
        let form = [
            ("grant_type", "password"),
            ("username", username),
            ("password", "guess-number-one"),
            ("tenant_path", "/acme"),
        ];
        let response = http
            .post(format!("http://{}/oauth2/token", server.address))
            .header("authorization", basic_header(APP_CLIENT.0, APP_CLIENT.1))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = server.log.lock().unwrap().clone();
    let waits: Vec<&String> =
        lines.iter().filter(|line| line.contains("login wait imposed")).collect();
    let digest =
        username_digest(&TenantPath::parse("/acme").unwrap(), &Username::parse(username).unwrap());
    assert_eq!(waits.len(), 1, "the fifth failure imposes the wait; the sixth waits: {waits:?}");
    let expected = format!("tenant=/acme username_digest={digest} source=127.0.0.1 wait_secs=60");
    assert!(waits[0].contains(&expected), "{}", waits[0]);
    assert!(lines.len() > 6, "every request was logged: {lines:?}");
    for line in &lines {
        assert!(!line.contains("guess-number-one"), "a password in the log: {line}");
        assert!(!line.contains(username), "a username in clear: {line}");
    }
}
