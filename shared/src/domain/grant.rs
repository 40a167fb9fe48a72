//! Grants (sessions) and the refresh tokens that carry them forward.

use serde::{Deserialize, Serialize};

use super::{ClientId, GrantId, ScopeSet, SecretDigest, TenantPath, Username, random_bytes};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Longest refresh token read; ours are 66 characters.
pub const MAX_REFRESH_TOKEN_LEN: usize = 128;

/// One password grant and every token descended from it by refresh. Revoking it revokes them
/// all: access tokens carry its id as `sid`, refresh records point at it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: GrantId,
    pub client_id: ClientId,
    pub tenant: TenantPath,
    pub subject: String,
    pub username: Option<Username>,
    /// The scope the resource owner granted; refreshes may narrow it, never widen it.
    pub scope: ScopeSet,
    pub created_at: u64,
    /// Absolute end of the grant, whatever its refreshes.
    pub expires_at: u64,
    pub revoked_at: Option<u64>,
    /// When a refresh last rotated one of its tokens.
    pub last_refreshed_at: Option<u64>,
    /// The `x-device-id`s its token requests carried, first seen first, at most
    /// [`MAX_DEVICE_IDS`].
    pub device_ids: Vec<DeviceId>,
}

impl Grant {
    /// Records a device id the grant's requests carried; past [`MAX_DEVICE_IDS`] new ones are
    /// not kept, so a grant's record stays small whatever a client sends.
    pub fn saw_device(&mut self, device: &DeviceId) {
        if self.would_keep(device) {
            self.device_ids.push(device.clone());
        }
    }

    /// Whether [`Self::saw_device`] would add `device`: it is new, and there is room.
    pub fn would_keep(&self, device: &DeviceId) -> bool {
        !self.device_ids.contains(device) && self.device_ids.len() < MAX_DEVICE_IDS
    }

    /// Only a user's login starts a grant, so its subject is that user, of the grant's tenant.
    pub fn subject_ref(&self) -> super::Subject<'_> {
        super::Subject::User { tenant: &self.tenant, id: &self.subject }
    }
}

/// Device ids a grant remembers at most.
pub const MAX_DEVICE_IDS: usize = 8;
/// Longest device id accepted.
pub const MAX_DEVICE_ID_LEN: usize = 256;

/// A client-chosen device identifier (`x-device-id`): 1 to [`MAX_DEVICE_ID_LEN`] bytes, no
/// control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("x-device-id must be 1-{MAX_DEVICE_ID_LEN} printable characters")]
pub struct InvalidDeviceId;

impl DeviceId {
    pub fn parse(raw: &str) -> Result<Self, InvalidDeviceId> {
        if raw.is_empty() || raw.len() > MAX_DEVICE_ID_LEN || raw.chars().any(char::is_control) {
            return Err(InvalidDeviceId);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DeviceId {
    type Error = InvalidDeviceId;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<DeviceId> for String {
    fn from(id: DeviceId) -> Self {
        id.0
    }
}

/// What is stored of one refresh token: its digest, never the token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub digest: SecretDigest,
    pub grant_id: GrantId,
    pub client_id: ClientId,
    pub issued_at: u64,
    /// Idle expiry: `issued_at` + the client's idle lifetime, capped at the grant's end.
    pub expires_at: u64,
    /// Set when the token is rotated. Kept so that a second use is recognised as reuse.
    pub used_at: Option<u64>,
}

/// A refresh token as handed to the client: `<grant id>.<256 bits from the OS CSPRNG>`, both
/// base64url. The grant id lets the store read the token and its grant in one round trip; the
/// random part is what makes it unguessable.
pub struct RefreshToken(String);

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

impl RefreshToken {
    pub fn generate(grant: &GrantId) -> Self {
        Self(format!("{grant}.{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>())))
    }

    /// The grant a presented token names and the digest it is stored under, or `None` when it
    /// cannot be one of ours.
    pub fn parse(presented: &str) -> Option<(GrantId, SecretDigest)> {
        if presented.len() > MAX_REFRESH_TOKEN_LEN {
            return None;
        }
        let (grant, secret) = presented.split_once('.')?;
        let grant = GrantId::parse(grant).ok()?;
        (secret.len() == 43).then(|| (grant, SecretDigest::of(presented.as_bytes())))
    }

    pub fn digest(&self) -> SecretDigest {
        SecretDigest::of(self.0.as_bytes())
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_name_their_grant_and_parse_back() {
        let grant = GrantId::generate();
        let token = RefreshToken::generate(&grant);
        let digest = token.digest();
        let text = token.into_string();
        assert_eq!(text.len(), 22 + 1 + 43);
        assert_eq!(RefreshToken::parse(&text), Some((grant, digest)));
    }

    #[test]
    fn foreign_shapes_do_not_parse() {
        let grant = GrantId::generate();
        for bad in
            [String::new(), "no-dot".into(), format!("{grant}."), format!("x.{}", "a".repeat(43))]
        {
            assert_eq!(RefreshToken::parse(&bad), None, "{bad}");
        }
    }
}
