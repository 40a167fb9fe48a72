//! The login defence's service: whether a password login must wait, and counting failures.
//! The rules (thresholds, doubling waits, the cap) are `domain::LoginDefenceSettings`; this
//! applies them to the counters in the store.

use crate::telemetry;
use std::sync::Arc;

use crate::domain::{
    LoginAttempts, LoginDefenceSettings, LoginKey, TenantPath, Username, username_digest,
};
use crate::error::StoreError;
use crate::store::LoginAttemptStore;

#[derive(Clone)]
pub struct LoginDefence {
    settings: LoginDefenceSettings,
    attempts: Arc<dyn LoginAttemptStore>,
}

impl LoginDefence {
    pub fn new(settings: LoginDefenceSettings, attempts: Arc<dyn LoginAttemptStore>) -> Self {
        Self { settings, attempts }
    }

    /// The counters of a login, when the store did not read them with the client.
    pub async fn attempts(&self, key: &LoginKey, now: u64) -> Result<LoginAttempts, StoreError> {
        self.attempts.login_attempts(key, now).await
    }

    /// Whether a login with these counters falls inside a wait window. Such a login is
    /// answered as a wrong password, without checking it and without counting it.
    pub fn must_wait(&self, attempts: &LoginAttempts, now: u64) -> bool {
        self.settings.waiting_until(attempts).is_some_and(|until| now < until)
    }

    /// Counts a failed login. A storage failure is logged at ERROR and goes no further: the
    /// answer stays the wrong password's, so it tells nothing of the store and lets no guess
    /// through.
    pub async fn failed(&self, key: &LoginKey, read: &LoginAttempts, now: u64) {
        let expires_at = now + self.settings.counter_lifetime();
        match self.attempts.record_login_failure(key, read, now, expires_at).await {
            Ok(after) => {
                if let Some(until) = self.settings.waiting_until(&after).filter(|u| *u > now) {
                    tracing::warn!(
                        tenant = %key.tenant,
                        username_digest = %key.username_digest,
                        source = %key.source,
                        wait_secs = until - now,
                        "login wait imposed"
                    );
                    telemetry::login_wait_imposed();
                }
            }
            Err(error) => {
                tracing::error!(%error, tenant = %key.tenant, "recording a failed login failed")
            }
        }
    }

    /// Clears every counter of a username, whatever the source.
    pub async fn unlock(
        &self,
        tenant: &TenantPath,
        username: &Username,
        now: u64,
    ) -> Result<(), StoreError> {
        let digest = username_digest(tenant, username);
        let expires_at = now + self.settings.counter_lifetime();
        self.attempts.unlock_username(tenant, &digest, now, expires_at).await
    }
}
