//! `make soak`: the local server (in this process, in-memory store) under `connections`
//! keep-alive connections from wrk for `minutes`, cycling through valid requests on every
//! route but the password grant (see bench/soak.lua). Passes when every answer was 2xx, the
//! resident memory levelled off and every connection task ended once the load stopped.
//!
//! Usage: `soak <minutes> <connections>`

use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{CC_CLIENT, TestServer, basic_header, repo_path};

const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How far the peak memory of the last third of the run may exceed that of the middle third:
/// the in-memory store prunes expired tokens each time its log doubles, a sawtooth whose
/// peaks repeat once the live set is steady. Tokens that never expired (`TOKEN_LIFETIME=600`)
/// grow past this within two minutes.
fn levelled_off(middle: u64, last: u64) -> bool {
    last as f64 <= middle as f64 * 1.03 + 2e6
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kib| kib.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let minutes: f64 = args.get(1).and_then(|m| m.parse().ok()).unwrap_or(2.0);
    let connections: usize = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(256);
    let duration = Duration::from_secs_f64(minutes * 60.0);

    let server = TestServer::start().await;
    let runtime = tokio::runtime::Handle::current().metrics();
    let issued = server.token(&[("grant_type", "client_credentials")], Some(CC_CLIENT)).await;
    let token = match issued.json::<serde_json::Value>().await {
        Ok(body) => body["access_token"].as_str().unwrap_or_default().to_owned(),
        Err(e) => panic!("the first token request failed: {e}"),
    };

    // Counted after the first request, whose keep-alive connection stays open on both sides.
    let idle_tasks = runtime.num_alive_tasks();
    let wrk = tokio::process::Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{}s", duration.as_secs())])
        .args(["--latency", "-s", &repo_path("../bench/soak.lua").display().to_string()])
        .arg(&server.base_url)
        .env("AUTH", basic_header(CC_CLIENT.0, CC_CLIENT.1))
        .env("TOKEN", &token)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("wrk is installed (make soak installs it)");
    let started = Instant::now();
    let mut samples = Vec::new();
    let report = tokio::spawn(wrk.wait_with_output());
    while !report.is_finished() {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let (rss, tasks) = (resident_bytes(), runtime.num_alive_tasks());
        println!("{:>5.0} s  RSS {}  tasks {tasks}", started.elapsed().as_secs_f64(), mb(rss));
        samples.push(rss);
    }
    let report = match report.await {
        Ok(Ok(output)) => String::from_utf8_lossy(&output.stdout).into_owned(),
        other => panic!("wrk failed: {other:?}"),
    };
    println!("{report}");

    // wrk has closed its connections; give the server a moment to finish their tasks.
    let mut tasks_left = runtime.num_alive_tasks();
    for _ in 0..50 {
        if tasks_left <= idle_tasks {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        tasks_left = runtime.num_alive_tasks();
    }

    let field = |prefix: &str| {
        report
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix).map(str::trim).map(str::to_owned))
    };
    let requests =
        report.lines().find(|l| l.contains("requests in")).unwrap_or_default().trim().to_owned();
    let not_2xx = field("Non-2xx or 3xx responses:").unwrap_or_else(|| "0".into());
    let socket_errors = field("Socket errors:").unwrap_or_else(|| "none".into());
    let third = samples.len() / 3;
    let middle = samples[third..2 * third].iter().max().copied().unwrap_or_default();
    let last = samples[2 * third..].iter().max().copied().unwrap_or_default();

    let mut failures = Vec::new();
    if not_2xx != "0" {
        failures.push(format!("{not_2xx} answers were not 2xx"));
    }
    if socket_errors != "none" {
        failures.push(format!("socket errors: {socket_errors}"));
    }
    if third == 0 || !levelled_off(middle, last) {
        failures.push(format!(
            "memory did not level off: peak {} in the middle third, {} in the last",
            mb(middle),
            mb(last)
        ));
    }
    if tasks_left > idle_tasks {
        failures.push(format!("{tasks_left} tasks alive after the load, {idle_tasks} before it"));
    }
    println!(
        "soak: {minutes} min, {connections} connections; {requests}; non-2xx {not_2xx}; \
         peak RSS {} (middle third) -> {} (last third); tasks {idle_tasks} before, {tasks_left} after",
        mb(middle),
        mb(last)
    );
    if failures.is_empty() {
        println!("soak passed");
        ExitCode::SUCCESS
    } else {
        println!("soak FAILED: {}", failures.join("; "));
        ExitCode::FAILURE
    }
}
