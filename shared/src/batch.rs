//! Batch revocation: one cutoff record revokes every token of a scope issued before a time, with
//! a constant number of writes however many tokens it covers, then the covered live tokens are
//! counted from the issuance log.
//!
//! A scope is a tenant subtree, a client (in all its subtree or below a tenant of it), a subject,
//! or a subject through one client; each is one cutoff layer (see `store::layer`), and
//! verification reads every layer that applies to a token.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::clock::Clock;
// A cutoff record may expire once no token it covers can verify: they were all issued before its
// `not_before`, none lives longer than `MAX_LIFETIME` (enforced when clients are registered), and
// each verifies until `verifiable_until` its expiry.
use crate::domain::{
    BATCH_REVOCATION_SCOPE, ClientId, Grant, GrantId, MAX_LIFETIME, TenantPath, UserId,
};
use crate::error::{Error, StoreError};
use crate::jwt::verifiable_until;
use crate::store::{IssuanceFilter, IssuedToken, Stores, SubjectId, layer};
use crate::telemetry::{self, RevocationKind};
use crate::verify::{Presented, VerifiedToken, Verifier};

/// How far in the future `creationBefore` may lie, for clock skew between caller and server.
pub const FUTURE_SKEW_SECS: u64 = 5;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BatchRequest {
    creation_before: Option<String>,
    tenant_path: Option<String>,
    client_id: Option<String>,
    subject: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn forbidden(what: &str) -> Error {
    Error::InsufficientScope(format!("{what} is outside the caller's tenant subtree").into())
}

pub struct BatchRevocation {
    verifier: Verifier,
    stores: Stores,
    clock: Arc<dyn Clock>,
    /// One count per core at a time: each holds every entry it covers in memory, so running
    /// more at once (many dry runs on the local server) only adds memory. A Lambda instance
    /// serves one request at a time and never waits here.
    counting: Arc<Semaphore>,
}

impl BatchRevocation {
    pub fn new(verifier: Verifier, stores: Stores, clock: Arc<dyn Clock>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self { verifier, stores, clock, counting: Arc::new(Semaphore::new(cores)) }
    }

    /// Authorizes the caller's token, writes the cutoffs (unless `dryRun`), and returns how many live
    /// tokens they revoked (or would revoke). Counting stops at `deadline`, when given (a Lambda
    /// function's own, less a margin to answer): the answer is then a 503; the cutoffs, written
    /// before any counting, stand, and the count is lost (a retry finds those tokens revoked).
    pub async fn revoke(
        &self,
        token: &Presented<'_>,
        body: &[u8],
        deadline: Option<Instant>,
    ) -> Result<u64, Error> {
        let caller = self.verifier.verify_presented(token).await?;
        caller.require_administrative(BATCH_REVOCATION_SCOPE)?;
        let request: BatchRequest = if body.iter().all(u8::is_ascii_whitespace) {
            BatchRequest::default()
        } else {
            serde_json::from_slice(body)
                .map_err(|e| Error::invalid_request(format!("malformed JSON body: {e}")))?
        };
        let now = self.clock.now();
        let cutoff = cutoff_second(request.creation_before.as_deref(), now)?;
        let targets = self.targets(&caller, &request).await?;
        let mut replaced = Vec::with_capacity(targets.len());
        for Target { layer, .. } in &targets {
            replaced.push(if request.dry_run {
                None
            } else {
                // The revocation itself: one conditional write (every copy of the cutoff in one
                // transaction), before any counting. It is audited as soon as it stands,
                // whether or not the count then completes.
                let expires_at = verifiable_until(cutoff + MAX_LIFETIME);
                let replaced =
                    self.stores.revocations.raise_cutoff(layer, cutoff, expires_at, now).await?;
                let client = Some(caller.client_id.as_str());
                telemetry::audit(client, &caller.claims.sub, "batch_revoke", layer, "ok");
                telemetry::revoked(RevocationKind::Batch);
                Some(replaced)
            });
        }
        let counting = async {
            let _turn = self
                .counting
                .acquire()
                .await
                .map_err(|e| Error::Internal(format!("batch count queue: {e}")))?;
            let mut count = 0;
            for (Target { filter, layer }, replaced) in targets.iter().zip(replaced) {
                let covered = self.count(filter, cutoff, layer, replaced, now).await?;
                tracing::info!(%layer, cutoff, count = covered, dry_run = request.dry_run, "batch revocation");
                if !request.dry_run {
                    telemetry::batch_revoked(covered);
                }
                count += covered;
            }
            Ok::<_, Error>(count)
        };
        match deadline {
            None => counting.await,
            Some(deadline) => {
                tokio::time::timeout_at(deadline.into(), counting).await.map_err(|_| {
                    tracing::error!(
                        dry_run = request.dry_run,
                        "batch count stopped at the deadline; the cutoffs stand"
                    );
                    Error::Storage(StoreError("counting did not finish before the deadline".into()))
                })?
            }
        }
    }

    /// The cutoff layers the request names, each with the filter of the tokens it covers: none
    /// when the narrowing leaves nothing (a client or subject whose tokens all lie outside
    /// `tenantPath`), two when `subject` names both a user and a client of the caller's subtree
    /// (each id is its own subject, and the caller may cut off both, so both are).
    async fn targets(
        &self,
        caller: &VerifiedToken,
        request: &BatchRequest,
    ) -> Result<Vec<Target>, Error> {
        let tenant = match &request.tenant_path {
            Some(raw) => {
                TenantPath::parse(raw).map_err(|e| Error::invalid_request(e.to_string()))?
            }
            None => caller.tenant.clone(),
        };
        if !tenant.is_within(&caller.tenant) {
            return Err(forbidden("tenantPath"));
        }
        let client = match &request.client_id {
            Some(raw) => {
                let id = ClientId::parse(raw).map_err(|e| Error::invalid_request(e.to_string()))?;
                // An unknown client and another tenant's client answer alike.
                let client =
                    self.stores.clients.client(&id).await?.ok_or_else(|| forbidden("clientId"))?;
                if !client.tenant.is_within(&caller.tenant) {
                    return Err(forbidden("clientId"));
                }
                Some(client)
            }
            None => None,
        };
        let subjects = match &request.subject {
            Some(raw) => {
                self.subjects_named(raw, &caller.tenant).await?.into_iter().map(Some).collect()
            }
            None => vec![None],
        };
        let mut targets = Vec::new();
        for named in subjects {
            // A subject's tokens all carry its one tenant; a client's lie in its tenant's subtree.
            if named.as_ref().is_some_and(|(_, home)| !home.is_within(&tenant)) {
                continue;
            }
            let subject = named.map(|(subject, _)| subject);
            let layer = match (&client, &subject) {
                (Some(client), Some(subject)) => {
                    layer::client_subject(&client.id, subject.as_subject())
                }
                (Some(client), None) => {
                    if client.tenant.is_within(&tenant) {
                        layer::client(&client.id)
                    } else if tenant.is_within(&client.tenant) {
                        layer::client_tenant(&client.id, tenant.as_str())
                    } else {
                        continue;
                    }
                }
                (None, Some(subject)) => layer::subject(subject.as_subject()),
                (None, None) => layer::tenant(tenant.as_str()),
            };
            let filter = IssuanceFilter {
                tenant: tenant.clone(),
                client_id: client.as_ref().map(|c| c.id.clone()),
                subject,
            };
            targets.push(Target { filter, layer });
        }
        Ok(targets)
    }

    /// The subjects of the caller's subtree that `raw` names, each with the tenant its tokens
    /// carry: a user with that id, a client with that id, or both. One outside the subtree is
    /// passed over, so an id that collides with another tenant's neither reaches that subject
    /// nor hides the caller's own.
    async fn subjects_named(
        &self,
        raw: &str,
        caller: &TenantPath,
    ) -> Result<Vec<(SubjectId, TenantPath)>, Error> {
        let mut found = Vec::new();
        if let Ok(id) = UserId::parse(raw)
            && let Some(tenant) = self.stores.users.tenant_of_user(&id).await?
            && tenant.is_within(caller)
        {
            found.push((SubjectId::User { tenant: tenant.clone(), id }, tenant));
        }
        if let Ok(id) = ClientId::parse(raw)
            && let Some(client) = self.stores.clients.client(&id).await?
            && client.tenant.is_within(caller)
        {
            found.push((SubjectId::Client(id), client.tenant));
        }
        if found.is_empty() {
            // An unknown subject and another tenant's answer alike.
            return Err(forbidden("subject"));
        }
        Ok(found)
    }

    /// Live tokens in `filter` that the cutoff covers and that nothing had revoked before: not
    /// on their own, not through their grant, not by an earlier cutoff. `replaced` is the value
    /// `layer` held before this request wrote it (`None` for a dry run, which wrote nothing).
    async fn count(
        &self,
        filter: &IssuanceFilter,
        cutoff: u64,
        layer: &str,
        replaced: Option<Option<u64>>,
        now: u64,
    ) -> Result<u64, Error> {
        let entries = self.stores.issuance.live_issued(filter, now).await?;
        // Gathering the keys and judging each entry is CPU work over what can be a whole
        // tenant's log: done off the async workers, so other requests of the process go on.
        let (entries, grant_ids, layers) = off_the_workers(move || {
            let grant_ids: HashSet<GrantId> =
                entries.iter().filter_map(|e| e.grant.clone()).collect();
            let layers: HashSet<String> = entries
                .iter()
                .flat_map(|e| layer::applying_to(&e.tenant, &e.client_id, e.subject_ref()))
                .collect();
            (entries, Vec::from_iter(grant_ids), Vec::from_iter(layers))
        })
        .await?;
        let grants = self.stores.grants.grants(&grant_ids, now).await?;
        let mut earlier = self.stores.revocations.cutoffs(&layers, now).await?;
        if let Some(replaced) = replaced {
            match replaced {
                Some(previous) => earlier.insert(layer.to_owned(), previous),
                None => earlier.remove(layer),
            };
        }
        off_the_workers(move || {
            let covered = entries.iter().filter(|entry| {
                let grant = entry.grant.as_ref().and_then(|id| grants.get(id));
                !already_revoked(entry, grant, &earlier) && revoked_by(entry, grant, cutoff)
            });
            covered.count() as u64
        })
        .await
    }
}

async fn off_the_workers<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("batch count task: {e}")))
}

/// One cutoff layer a batch revocation writes, and the tokens it covers.
struct Target {
    filter: IssuanceFilter,
    layer: String,
}

/// Whether a cutoff at `not_before` kills this token: issued before it, or of a grant that
/// began before it.
fn revoked_by(entry: &IssuedToken, grant: Option<&Grant>, not_before: u64) -> bool {
    entry.issued_at < not_before || grant.is_some_and(|g| g.created_at < not_before)
}

fn already_revoked(
    entry: &IssuedToken,
    grant: Option<&Grant>,
    cutoffs: &HashMap<String, u64>,
) -> bool {
    if entry.grant.is_some() && grant.is_none_or(|g| g.revoked_at.is_some()) {
        return true;
    }
    layer::applying_to(&entry.tenant, &entry.client_id, entry.subject_ref())
        .iter()
        .filter_map(|layer| cutoffs.get(layer))
        .any(|not_before| revoked_by(entry, grant, *not_before))
}

/// `creationBefore` rounded up to the whole second; absent means now, which (being part-way
/// through the current second) rounds up to the next. Later than now plus a small skew is
/// refused.
fn cutoff_second(creation_before: Option<&str>, now: u64) -> Result<u64, Error> {
    let Some(raw) = creation_before else {
        return Ok(now + 1);
    };
    let instant = OffsetDateTime::parse(raw, &Rfc3339)
        .map_err(|_| Error::invalid_request("creationBefore must be an RFC 3339 date-time"))?;
    let nanos = instant.unix_timestamp_nanos();
    let second = u64::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or(0);
    let rounded = if nanos.rem_euclid(1_000_000_000) > 0 { second + 1 } else { second };
    if second > now + FUTURE_SKEW_SECS {
        return Err(Error::invalid_request("creationBefore is in the future"));
    }
    Ok(rounded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_before_rounds_up_to_the_whole_second() {
        let now = 1_800_000_100;
        assert_eq!(cutoff_second(Some("2027-01-15T08:00:00Z"), now).unwrap(), 1_800_000_000);
        assert_eq!(cutoff_second(Some("2027-01-15T08:00:00.001Z"), now).unwrap(), 1_800_000_001);
        assert_eq!(cutoff_second(Some("2027-01-15T09:00:00.5+01:00"), now).unwrap(), 1_800_000_001);
        assert_eq!(cutoff_second(None, now).unwrap(), now + 1);
    }

    #[test]
    fn future_and_malformed_dates_are_invalid_requests() {
        let now = 1_800_000_000;
        assert!(cutoff_second(Some("2027-01-15T08:00:05Z"), now).is_ok(), "within the skew");
        for bad in [
            "2027-01-15T08:00:06Z",
            "2030-01-01T00:00:00Z",
            "yesterday",
            "2027-01-15",
            "2027-13-01T00:00:00Z",
            "",
        ] {
            assert!(
                matches!(cutoff_second(Some(bad), now), Err(Error::InvalidRequest(_))),
                "{bad}"
            );
        }
    }
}
