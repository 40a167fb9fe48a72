//! The log set-up of every function and of the local server.
//!
//! The level is Lambda's (`AWS_LAMBDA_LOG_LEVEL`, set from the template's `LogLevel`), else
//! `RUST_LOG`, else INFO; `RUST_LOG` may also carry per-target directives. Lambda's JSON log
//! format (`AWS_LAMBDA_LOG_FORMAT=JSON`) gives one JSON object a line.
//!
//! Whatever is asked for, the runtime, HTTP and SDK crates never log below INFO: at TRACE,
//! lambda_runtime logs every raw event (Authorization headers, passwords, tokens), and the SDK and
//! hyper log request and response bodies (client secret digests, password hashes). Our own code
//! logs no secret at any level, so DEBUG and TRACE stay usable for it.

use std::str::FromStr;

use lambda_http::tracing::subscriber::filter::{EnvFilter, LevelFilter, Targets};
use lambda_http::tracing::subscriber::fmt::MakeWriter;
use lambda_http::tracing::subscriber::layer::SubscriberExt;
use lambda_http::tracing::subscriber::util::SubscriberInitExt;
use lambda_http::tracing::subscriber::{fmt, registry};

/// Targets (and every target below them: a prefix match) capped at INFO.
pub const CAPPED_TARGETS: &[&str] = &[
    "lambda_runtime",
    "lambda_http",
    "aws_",
    "hyper",
    "h2",
    "http_body",
    "tower",
    "rustls",
    "reqwest",
];

/// Logs to stdout, where Lambda collects them.
pub fn init() {
    init_with_writer(std::io::stdout);
}

/// Logs to `writer` (the local server uses stderr, keeping stdout for its banner).
pub fn init_with_writer<W>(writer: W)
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let requested = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG"));
    let level = requested
        .ok()
        .and_then(|level| LevelFilter::from_str(&level).ok())
        .unwrap_or(LevelFilter::INFO);
    let requested = EnvFilter::builder().with_default_directive(level.into()).from_env_lossy();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let format = fmt::layer().with_target(false).without_time().with_writer(writer);
    // The cap is a filter of its own, beside the requested one, so no directive in `RUST_LOG`
    // (however specific: `lambda_runtime::layers=trace`) can lift it: both must let a line pass.
    let subscriber = registry().with(cap()).with(requested);
    // A second initialisation in one process keeps the first subscriber, which is what we want.
    let _ = if json {
        subscriber.with(format.json()).try_init()
    } else {
        subscriber.with(format).try_init()
    };
}

/// Everything passes except the capped targets below INFO.
pub fn cap() -> Targets {
    CAPPED_TARGETS
        .iter()
        .fold(Targets::new().with_default(LevelFilter::TRACE), |targets, target| {
            targets.with_target(*target, LevelFilter::INFO)
        })
}

#[cfg(test)]
mod tests {
    use lambda_http::tracing::Level;

    use super::*;

    #[test]
    fn noisy_crates_are_capped_at_info_and_ours_are_not() {
        let cap = cap();
        for target in [
            "lambda_runtime::layers::api_response",
            "lambda_runtime_api_client",
            "lambda_http",
            "aws_smithy_runtime::client::orchestrator",
            "aws_config",
            "hyper_util::client",
            "h2::codec",
        ] {
            assert!(!cap.would_enable(target, &Level::TRACE), "{target}");
            assert!(!cap.would_enable(target, &Level::DEBUG), "{target}");
            assert!(cap.would_enable(target, &Level::INFO), "{target}");
        }
        assert!(cap.would_enable("token_service::verify", &Level::TRACE));
    }
}
