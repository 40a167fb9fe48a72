//! Metrics, in CloudWatch Embedded Metric Format: recorded through the `metrics` facade on the
//! request path, written by each Lambda function as one JSON line per dimension set after each
//! invocation. EMF is a log line, so a metric costs no network call; recording one is an atomic
//! add or a channel send. With no recorder installed (the local server, the tests) every
//! recording is a no-op and nothing extra is printed.
//!
//! [`METRICS`] is the one list of names: the dashboard and alarms in `template.yaml` are held to
//! it by a test.

use std::io::Write;

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};
use metrics_cloudwatch_embedded::Builder;

use crate::domain::GrantType;

/// The namespace when `METRICS_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "TokenService";

pub const TOKENS_ISSUED: &str = "TokensIssued";
pub const ERRORS: &str = "Errors";
pub const REVOCATIONS: &str = "Revocations";
pub const BATCH_REVOKED_TOKENS: &str = "BatchRevokedTokens";
pub const REFRESH_REUSE_DETECTED: &str = "RefreshReuseDetected";
pub const LOGIN_WAITS_IMPOSED: &str = "LoginWaitsImposed";
pub const STORAGE_ERRORS: &str = "StorageErrors";
pub const AUTHORIZER_DECISIONS: &str = "AuthorizerDecisions";
pub const LATENCY: &str = "Latency";

/// Every metric, with its dimensions.
pub const METRICS: [(&str, &[&str]); 9] = [
    (TOKENS_ISSUED, &["GrantType"]),
    (ERRORS, &["Route", "Code"]),
    (REVOCATIONS, &["Kind"]),
    (BATCH_REVOKED_TOKENS, &[]),
    (REFRESH_REUSE_DETECTED, &[]),
    (LOGIN_WAITS_IMPOSED, &[]),
    (STORAGE_ERRORS, &[]),
    (AUTHORIZER_DECISIONS, &["Outcome", "Reason"]),
    (LATENCY, &["Route"]),
];

/// How a revocation was asked for.
#[derive(Clone, Copy, Debug)]
pub enum RevocationKind {
    /// RFC 7009, an access token.
    Access,
    /// RFC 7009, a refresh token (its whole grant).
    Refresh,
    /// The bearer of a token revoking it (logout).
    SelfRevocation,
    /// A batch revocation's cutoff.
    Batch,
}

impl RevocationKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
            Self::SelfRevocation => "self",
            Self::Batch => "batch",
        }
    }
}

pub fn token_issued(grant: GrantType) {
    counter!(TOKENS_ISSUED, "GrantType" => grant.as_str()).increment(1);
}

/// An answer with an error `code` on `route` (one of the service's paths, or `other`).
pub fn error(route: &'static str, code: &'static str) {
    counter!(ERRORS, "Route" => route, "Code" => code).increment(1);
}

pub fn revoked(kind: RevocationKind) {
    counter!(REVOCATIONS, "Kind" => kind.as_str()).increment(1);
}

/// Live tokens a batch revocation cut off.
pub fn batch_revoked(count: u64) {
    counter!(BATCH_REVOKED_TOKENS).increment(count);
}

pub fn refresh_reuse_detected() {
    counter!(REFRESH_REUSE_DETECTED).increment(1);
}

pub fn login_wait_imposed() {
    counter!(LOGIN_WAITS_IMPOSED).increment(1);
}

pub fn storage_error() {
    counter!(STORAGE_ERRORS).increment(1);
}

pub fn authorizer_decision(outcome: &'static str, reason: &'static str) {
    counter!(AUTHORIZER_DECISIONS, "Outcome" => outcome, "Reason" => reason).increment(1);
}

/// Time spent on a request of `route`, in milliseconds.
pub fn latency(route: &'static str, millis: f64) {
    histogram!(LATENCY, "Route" => route).record(millis);
}

/// One audit line (`"message": "audit"`): who (the caller's client and subject), what, which
/// resource, and the outcome (`ok` or the error code). Callers pass ids and names, never a
/// secret, a password or a token; the resource may echo what a request named, so it is cut to
/// printable ASCII and [`MAX_AUDITED_RESOURCE`] characters before it is written.
pub fn audit(
    caller_client: Option<&str>,
    caller_subject: &str,
    action: &str,
    resource: &str,
    outcome: &str,
) {
    let resource = audited(resource);
    tracing::info!(caller_client, caller_subject, action, resource, outcome, "audit");
}

/// Longest resource an audit line carries.
pub const MAX_AUDITED_RESOURCE: usize = 256;

fn audited(resource: &str) -> String {
    let printable = |c: char| if c.is_ascii_graphic() || c == ' ' { c } else { '?' };
    resource.chars().take(MAX_AUDITED_RESOURCE).map(printable).collect()
}

/// The EMF writer of one Lambda function.
pub struct Emf(&'static metrics_cloudwatch_embedded::Collector);

impl Emf {
    /// Installs the recorder, in the namespace `METRICS_NAMESPACE` names (or
    /// [`DEFAULT_NAMESPACE`]), with the function's name as a property of every document.
    pub fn init() -> Result<Self, metrics_cloudwatch_embedded::Error> {
        let namespace =
            std::env::var("METRICS_NAMESPACE").unwrap_or_else(|_| DEFAULT_NAMESPACE.to_owned());
        let collector = Builder::new().cloudwatch_namespace(namespace).init()?;
        describe_histogram!(LATENCY, Unit::Milliseconds, "time to answer a request");
        for (name, _) in METRICS {
            if name != LATENCY {
                describe_counter!(name, Unit::Count, name);
            }
        }
        if let Ok(function) = std::env::var("AWS_LAMBDA_FUNCTION_NAME") {
            collector.set_property("FunctionName", function);
        }
        Ok(Self(collector))
    }

    /// Writes what was recorded since the last flush to stdout, where Lambda's log capture
    /// turns it into metrics. A write that fails loses metrics, never the answer.
    pub fn flush(&self) {
        self.flush_to(std::io::stdout().lock());
    }

    /// [`Self::flush`] to `writer`.
    pub fn flush_to(&self, mut writer: impl Write) {
        if let Err(error) = self.0.flush(&mut writer).and_then(|()| writer.flush()) {
            tracing::warn!(%error, "writing metrics failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audited_resource_is_printable_ascii_and_bounded() {
        assert_eq!(audited("/acme/sales:bob"), "/acme/sales:bob");
        assert_eq!(audited("EVIL PATH\nline\u{202e}é"), "EVIL PATH?line??");
        assert_eq!(audited(&"a".repeat(1000)).len(), MAX_AUDITED_RESOURCE);
    }
}
