//! Batch revocation: one cutoff record revokes every token of a scope issued before a time, with
//! a constant number of writes however many tokens it covers, then the covered live tokens are
//! counted from the issuance log.
//!
//! A scope is a tenant subtree, a client (in all its subtree or below a tenant of it), a subject,
//! or a subject through one client; each is one cutoff layer (see `store::layer`), and verification reads every layer that applies to a token.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::clock::Clock;
// A cutoff record may expire once every token it covers has: they were all issued before its
// `not_before` and none lives longer than `MAX_LIFETIME` (enforced when clients are registered).
use crate::domain::{ClientId, Grant, GrantId, MAX_LIFETIME, TenantPath, UserId};
use crate::error::Error;
use crate::store::{IssuanceFilter, IssuedToken, Stores, layer};
use crate::verify::{VerifiedToken, Verifier};

/// The scope a caller's token needs.
pub const BATCH_SCOPE: &str = "revoke:batch";
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
}

impl BatchRevocation {
    pub fn new(verifier: Verifier, stores: Stores, clock: Arc<dyn Clock>) -> Self {
        Self { verifier, stores, clock }
    }

    /// Authorizes the bearer, writes the cutoff (unless `dryRun`), and returns how many live
    /// tokens it revoked (or would revoke).
    pub async fn revoke(&self, bearer: &str, body: &[u8]) -> Result<u64, Error> {
        let caller = self.verifier.verify(bearer).await?;
        if !caller.claims.scope.split(' ').any(|scope| scope == BATCH_SCOPE) {
            return Err(Error::InsufficientScope(
                format!("the token lacks the {BATCH_SCOPE} scope").into(),
            ));
        }
        let request: BatchRequest = if body.iter().all(u8::is_ascii_whitespace) {
            BatchRequest::default()
        } else {
            serde_json::from_slice(body)
                .map_err(|e| Error::invalid_request(format!("malformed JSON body: {e}")))?
        };
        let now = self.clock.now();
        let cutoff = cutoff_second(request.creation_before.as_deref(), now)?;
        let Some((filter, layer)) = self.scope(&caller, &request).await? else {
            return Ok(0);
        };
        let replaced = if request.dry_run {
            None
        } else {
            // The revocation itself: one conditional write, before any counting.
            let previous = self
                .stores
                .revocations
                .raise_cutoff(&layer, cutoff, cutoff + MAX_LIFETIME, now)
                .await?;
            Some(previous)
        };
        let count = self.count(&filter, cutoff, &layer, replaced, now).await?;
        tracing::info!(%layer, cutoff, count, dry_run = request.dry_run, "batch revocation");
        Ok(count)
    }

    /// The filter and cutoff layer for the request, or `None` when the narrowing leaves nothing
    /// (a client or subject whose tokens all lie outside `tenantPath`).
    async fn scope(
        &self,
        caller: &VerifiedToken,
        request: &BatchRequest,
    ) -> Result<Option<(IssuanceFilter, String)>, Error> {
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
        let subject = match &request.subject {
            Some(subject) => {
                let home =
                    self.subject_tenant(subject).await?.ok_or_else(|| forbidden("subject"))?;
                if !home.is_within(&caller.tenant) {
                    return Err(forbidden("subject"));
                }
                Some((subject.clone(), home))
            }
            None => None,
        };

        // A subject's tokens all carry its one tenant; a client's lie in its tenant's subtree.
        if let Some((_, home)) = &subject
            && !home.is_within(&tenant)
        {
            return Ok(None);
        }
        let layer = match (&client, &subject) {
            (Some(client), Some((subject, _))) => layer::client_subject(&client.id, subject),
            (Some(client), None) => {
                if client.tenant.is_within(&tenant) {
                    layer::client(&client.id)
                } else if tenant.is_within(&client.tenant) {
                    layer::client_tenant(&client.id, tenant.as_str())
                } else {
                    return Ok(None);
                }
            }
            (None, Some((subject, _))) => layer::subject(subject),
            (None, None) => layer::tenant(tenant.as_str()),
        };
        let filter = IssuanceFilter {
            tenant,
            client_id: client.map(|c| c.id),
            subject: subject.map(|(subject, _)| subject),
        };
        Ok(Some((filter, layer)))
    }

    /// The tenant a subject's tokens carry: a user's tenant, or for client credentials (where
    /// the subject is the client id) the client's.
    async fn subject_tenant(&self, subject: &str) -> Result<Option<TenantPath>, Error> {
        if let Ok(user) = UserId::parse(subject)
            && let Some(tenant) = self.stores.users.tenant_of_user(&user).await?
        {
            return Ok(Some(tenant));
        }
        match ClientId::parse(subject) {
            Ok(id) => Ok(self.stores.clients.client(&id).await?.map(|client| client.tenant)),
            Err(_) => Ok(None),
        }
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
        let grant_ids: Vec<GrantId> = entries
            .iter()
            .filter_map(|e| e.grant.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let grants = self.stores.grants.grants(&grant_ids, now).await?;
        let layers: Vec<String> = entries
            .iter()
            .flat_map(|e| layer::applying_to(&e.tenant, &e.client_id, &e.subject))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut earlier = self.stores.revocations.cutoffs(&layers, now).await?;
        if let Some(replaced) = replaced {
            match replaced {
                Some(previous) => earlier.insert(layer.to_owned(), previous),
                None => earlier.remove(layer),
            };
        }
        let covered = entries.iter().filter(|entry| {
            let grant = entry.grant.as_ref().and_then(|id| grants.get(id));
            !already_revoked(entry, grant, &earlier) && revoked_by(entry, grant, cutoff)
        });
        Ok(covered.count() as u64)
    }
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
    layer::applying_to(&entry.tenant, &entry.client_id, &entry.subject)
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
