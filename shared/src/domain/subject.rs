//! Whom a token speaks for.

use super::{ClientId, TenantPath};

/// The subject of a token, by kind: a user of one tenant, or a client acting as itself. User ids
/// and client ids share an alphabet (a 22-character base64url client id is also a well-formed
/// user id, and administrators choose client ids), so a subject is only ever compared or keyed
/// together with its kind, and a user together with its tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subject<'a> {
    /// A user's token (password and refresh grants): `sub` is the user id.
    User { tenant: &'a TenantPath, id: &'a str },
    /// A client-credentials token: `sub` is the client id.
    Client(&'a ClientId),
}

impl<'a> Subject<'a> {
    /// The subject of a token of `tenant` and `client` whose `sub` is `sub`: a user's when the
    /// token belongs to a grant (only user logins start grants), else the client itself.
    pub fn of_token(
        tenant: &'a TenantPath,
        client: &'a ClientId,
        sub: &'a str,
        has_grant: bool,
    ) -> Self {
        if has_grant { Self::User { tenant, id: sub } } else { Self::Client(client) }
    }
}
