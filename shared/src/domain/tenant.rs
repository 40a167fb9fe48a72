//! Hierarchical tenant paths such as `/acme/emea/sales`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest path accepted, slashes included.
pub const MAX_TENANT_PATH_LEN: usize = 256;
/// Deepest nesting accepted. Bounded because verification checks a cutoff for every ancestor.
pub const MAX_TENANT_DEPTH: usize = 8;
/// Longest single segment.
pub const MAX_SEGMENT_LEN: usize = 64;

/// A validated tenant path: `/` followed by 1 to [`MAX_TENANT_DEPTH`] segments separated by `/`,
/// each segment 1 to [`MAX_SEGMENT_LEN`] characters of `A-Z a-z 0-9 _ -`. No trailing slash, no
/// empty segment, no `.` (so no `..` tricks), case-sensitive.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantPath(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tenant path must be '/' followed by 1-{MAX_TENANT_DEPTH} segments of A-Z a-z 0-9 _ - (at most {MAX_SEGMENT_LEN} characters each, {MAX_TENANT_PATH_LEN} in all)"
)]
pub struct InvalidTenantPath;

impl TenantPath {
    pub fn parse(raw: &str) -> Result<Self, InvalidTenantPath> {
        if raw.len() > MAX_TENANT_PATH_LEN {
            return Err(InvalidTenantPath);
        }
        let rest = raw.strip_prefix('/').ok_or(InvalidTenantPath)?;
        let mut depth = 0;
        for segment in rest.split('/') {
            depth += 1;
            let valid_segment = !segment.is_empty()
                && segment.len() <= MAX_SEGMENT_LEN
                && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid_segment || depth > MAX_TENANT_DEPTH {
                return Err(InvalidTenantPath);
            }
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `self` is `ancestor` or lies below it. Compared segment-wise, so `/a/bc` is not
    /// within `/a/b`.
    pub fn is_within(&self, ancestor: &TenantPath) -> bool {
        self.0 == ancestor.0
            || (self.0.starts_with(&ancestor.0) && self.0.as_bytes()[ancestor.0.len()] == b'/')
    }

    /// This path and every ancestor, outermost first: `/a/b` gives `/a`, `/a/b`.
    pub fn lineage(&self) -> impl Iterator<Item = &str> {
        self.0
            .match_indices('/')
            .skip(1)
            .map(|(end, _)| &self.0[..end])
            .chain(std::iter::once(self.0.as_str()))
    }
}

impl TryFrom<String> for TenantPath {
    type Error = InvalidTenantPath;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<TenantPath> for String {
    fn from(path: TenantPath) -> Self {
        path.0
    }
}

impl fmt::Display for TenantPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_well_formed_paths() {
        for ok in ["/acme", "/acme/sub_tenant", "/a-1/B_2/c", "/1/2/3/4/5/6/7/8"] {
            assert!(TenantPath::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed_paths() {
        let long_segment = format!("/{}", "a".repeat(MAX_SEGMENT_LEN + 1));
        for bad in [
            "",
            "/",
            "acme",
            "/acme/",
            "//acme",
            "/acme//x",
            "/ac me",
            "/acme/../x",
            "/a.b",
            "/é",
            "/1/2/3/4/5/6/7/8/9",
            long_segment.as_str(),
        ] {
            assert_eq!(TenantPath::parse(bad), Err(InvalidTenantPath), "{bad:?}");
        }
    }

    #[test]
    fn total_length_is_capped() {
        let seg = "a".repeat(MAX_SEGMENT_LEN);
        let too_long = format!("/{seg}/{seg}/{seg}/{seg}/x");
        assert!(too_long.len() > MAX_TENANT_PATH_LEN);
        assert!(TenantPath::parse(&too_long).is_err());
    }

    #[test]
    fn containment_is_segment_wise() {
        let parent = TenantPath::parse("/a/b").unwrap();
        assert!(TenantPath::parse("/a/b").unwrap().is_within(&parent));
        assert!(TenantPath::parse("/a/b/c").unwrap().is_within(&parent));
        assert!(!TenantPath::parse("/a/bc").unwrap().is_within(&parent));
        assert!(!TenantPath::parse("/a").unwrap().is_within(&parent));
    }

    #[test]
    fn lineage_lists_every_ancestor_outermost_first() {
        let path = TenantPath::parse("/a/b/c").unwrap();
        assert_eq!(path.lineage().collect::<Vec<_>>(), ["/a", "/a/b", "/a/b/c"]);
        let root = TenantPath::parse("/a").unwrap();
        assert_eq!(root.lineage().collect::<Vec<_>>(), ["/a"]);
    }
}
