//! OAuth2 scopes (RFC 6749 §3.3).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

pub const MAX_SCOPE_LEN: usize = 128;
pub const MAX_SCOPES: usize = 64;

/// Lets a token cut off every token of its tenant subtree (`POST /oauth2/revoke/batch`).
pub const BATCH_REVOCATION_SCOPE: &str = "revoke:batch";
/// Lets a token manage the clients and users of its tenant subtree (`/admin/`).
pub const ADMIN_SCOPE: &str = "admin";
/// Scopes that act on other principals or on the service itself. Only a `client_credentials`
/// token, whose subject is the client itself, ever carries them: a user signing in through a
/// client that holds one must not inherit the client's power.
pub const ADMINISTRATIVE_SCOPES: [&str; 2] = [BATCH_REVOCATION_SCOPE, ADMIN_SCOPE];

/// One scope token: 1 to [`MAX_SCOPE_LEN`] characters from `%x21 / %x23-5B / %x5D-7E`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidScope {
    #[error(
        "scope must be space-separated tokens of printable ASCII without double quotes or backslashes, at most {MAX_SCOPE_LEN} characters each and {MAX_SCOPES} in all"
    )]
    Malformed,
}

impl Scope {
    pub fn parse(raw: &str) -> Result<Self, InvalidScope> {
        let allowed = |b: u8| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b);
        if raw.is_empty() || raw.len() > MAX_SCOPE_LEN || !raw.bytes().all(allowed) {
            return Err(InvalidScope::Malformed);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Scope {
    type Error = InvalidScope;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Scope> for String {
    fn from(scope: Scope) -> Self {
        scope.0
    }
}

/// A set of scopes, rendered in sorted order separated by single spaces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// Parses the space-delimited form of the `scope` parameter. Repeated scopes collapse; empty
    /// tokens (a leading, trailing or doubled space) are malformed.
    pub fn parse(raw: &str) -> Result<Self, InvalidScope> {
        let scopes = raw.split(' ').map(Scope::parse).collect::<Result<BTreeSet<_>, _>>()?;
        if scopes.len() > MAX_SCOPES {
            return Err(InvalidScope::Malformed);
        }
        Ok(Self(scopes))
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        Self(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any of [`ADMINISTRATIVE_SCOPES`] is in the set.
    pub fn has_administrative(&self) -> bool {
        self.0.iter().any(|scope| ADMINISTRATIVE_SCOPES.contains(&scope.as_str()))
    }

    /// The set less every administrative scope: what a user's token may carry.
    pub fn without_administrative(&self) -> ScopeSet {
        Self(
            self.0
                .iter()
                .filter(|scope| !ADMINISTRATIVE_SCOPES.contains(&scope.as_str()))
                .cloned()
                .collect(),
        )
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_sorted_unique() {
        let set = ScopeSet::parse("write read read revoke:batch").unwrap();
        assert_eq!(set.to_string(), "read revoke:batch write");
    }

    #[test]
    fn rejects_malformed_scope_strings() {
        for bad in ["", " read", "read ", "read  write", "re\"ad", "re\\ad", "réad", "a\tb"] {
            assert!(ScopeSet::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ScopeSet::parse(&"x".repeat(MAX_SCOPE_LEN + 1)).is_err());
        let too_many: Vec<String> = (0..=MAX_SCOPES).map(|i| format!("s{i}")).collect();
        assert!(ScopeSet::parse(&too_many.join(" ")).is_err());
    }

    #[test]
    fn administrative_scopes_are_recognised_and_removed() {
        let set = ScopeSet::parse("read revoke:batch admin write").unwrap();
        assert!(set.has_administrative());
        assert_eq!(set.without_administrative().to_string(), "read write");
        assert!(!set.without_administrative().has_administrative());
        assert!(!ScopeSet::parse("read admin:x revoke").unwrap().has_administrative());
    }

    #[test]
    fn subset_decides_narrowing() {
        let allowed = ScopeSet::parse("read write").unwrap();
        assert!(ScopeSet::parse("read").unwrap().is_subset(&allowed));
        assert!(!ScopeSet::parse("read admin").unwrap().is_subset(&allowed));
    }
}
