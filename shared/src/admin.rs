//! The admin plane: tenants, clients, users and sessions. Every rule lives here (validation, the
//! subtree check, what each change revokes); the HTTP routes (`api::admin`) and `tokenctl` are
//! front ends that parse their input into these requests and print what comes back.
//!
//! Who may act:
//! - an access token with scope `admin` from the `client_credentials` grant manages its own
//!   tenant and every tenant below it;
//! - the operator (`tokenctl`, holding the table's credentials) manages every tenant.
//!
//! A resource that exists outside the caller's subtree answers 403, the same as a tenant path
//! outside it whether or not it exists. A client id that exists nowhere answers 404: client ids
//! are one namespace across tenants, and creation answers 409 for a taken one, so a client's
//! existence is no secret. A user id that exists nowhere answers 403 to a tenant's admin, as
//! one outside its subtree would (seed users' ids derive from tenant and username, so anyone
//! can compute them): user existence is never told across tenants. A session's id is random.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::domain::{
    ADMIN_SCOPE, AuthMethod, Client, ClientId, ClientJwks, ClientSecret, Credentials, Grant,
    GrantId, GrantType, LoginDefenceSettings, MAX_LIFETIME, MAX_PREVIOUS_SECRET_VALIDITY,
    MAX_REFRESH_REUSE_INTERVAL, PreviousSecret, ScopeSet, Subject, TenantPath, User, UserId,
    Username, random_bytes,
};
use crate::error::Error;
use crate::jwt::verifiable_until;
use crate::login_defence::LoginDefence;
use crate::password::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, Passwords};
use crate::store::{
    ClientPosition, Page, PageRequest, StoreError, Stores, TenantDeletion, UserPosition, layer,
};
use crate::telemetry;
use crate::verify::{Presented, Verifier};

/// Items a list page holds at most, and by default.
pub const MAX_PAGE_SIZE: usize = 100;

/// Who is acting, for the subtree check and the audit line.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The admin token's client; `None` for the operator.
    pub client_id: Option<ClientId>,
    /// The token's `sub`, or the operator's name.
    pub subject: String,
    /// The subtree it manages; `None` for the operator: every tenant.
    pub tenant: Option<TenantPath>,
}

impl Caller {
    /// The operator: `tokenctl` with the table's credentials, over every tenant.
    pub fn operator() -> Self {
        let subject = std::env::var("USER").unwrap_or_else(|_| "operator".into());
        Self { client_id: None, subject: format!("tokenctl:{subject}"), tenant: None }
    }

    fn manages(&self, tenant: &TenantPath) -> bool {
        self.tenant.as_ref().is_none_or(|own| tenant.is_within(own))
    }

    /// The subtree a list reads: the one asked for, which must lie within the caller's.
    fn list_root(&self, asked: Option<&str>) -> Result<Option<TenantPath>, Error> {
        match asked {
            Some(raw) => {
                let tenant = parse_tenant("tenant", raw)?;
                self.require(&tenant)?;
                Ok(Some(tenant))
            }
            None => Ok(self.tenant.clone()),
        }
    }

    fn require(&self, tenant: &TenantPath) -> Result<(), Error> {
        if self.manages(tenant) {
            Ok(())
        } else {
            Err(Error::InsufficientScope("outside the caller's tenant subtree".into()))
        }
    }
}

fn invalid(field: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid_request(format!("{field}: {why}"))
}

fn parse_tenant(field: &str, raw: &str) -> Result<TenantPath, Error> {
    TenantPath::parse(raw).map_err(|e| invalid(field, e))
}

fn not_found(what: &str) -> Error {
    Error::ResourceNotFound(format!("no such {what}").into())
}

/// A conditional write found the record deleted or changed since it was read.
fn changed_meanwhile(what: &str) -> Error {
    conflict(format!("the {what} changed or went while this change was made; read it again"))
}

fn conflict(why: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::Conflict(why.into())
}

/// Parses a JSON request body into `T`, naming the offending field in the error and never
/// quoting a value (a password may be the value). Only a JSON object: serde would also read a
/// struct from an array, its fields in order.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    if body.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::invalid_request("the body must be a JSON object"));
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.inner();
        if inner.is_syntax() || inner.is_eof() {
            Error::invalid_request(format!(
                "malformed JSON body at line {} column {}",
                inner.line(),
                inner.column()
            ))
        } else if let Some(field) = named_field(&inner.to_string()) {
            Error::invalid_request(field)
        } else if path == "." {
            Error::invalid_request("the body must be a JSON object with the documented fields")
        } else {
            Error::invalid_request(format!("{path}: missing, or of the wrong type or value"))
        }
    })
}

/// serde's messages that name a field (`unknown field `x``, `missing field `x``,
/// `duplicate field `x``), without the rest, which may quote the value.
fn named_field(message: &str) -> Option<String> {
    let kind = ["unknown field", "missing field", "duplicate field"]
        .into_iter()
        .find(|kind| message.starts_with(kind))?;
    let field = message.split('`').nth(1)?;
    let plain = field.len() <= 64 && field.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    Some(if plain { format!("{kind} {field}") } else { kind.to_owned() })
}

/// A list's page size and where it continues.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    pub tenant: Option<String>,
}

impl ListQuery {
    fn limit(&self) -> Result<usize, Error> {
        match self.limit {
            None => Ok(MAX_PAGE_SIZE),
            Some(limit) if (1..=MAX_PAGE_SIZE).contains(&limit) => Ok(limit),
            Some(_) => Err(invalid("limit", format!("must be 1 to {MAX_PAGE_SIZE}"))),
        }
    }

    /// The position the cursor names, if any. A cursor is the base64url JSON of the last
    /// position read; whatever it says, a list reads only within the caller's subtree.
    fn position<P: DeserializeOwned>(&self) -> Result<Option<P>, Error> {
        let Some(cursor) = &self.cursor else { return Ok(None) };
        URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .map(Some)
            .ok_or_else(|| invalid("cursor", "is not one this service issued"))
    }
}

fn cursor_of<P: Serialize>(position: &P) -> Result<String, Error> {
    serde_json::to_vec(position)
        .map(|json| URL_SAFE_NO_PAD.encode(json))
        .map_err(|e| Error::Internal(format!("encoding a cursor: {e}")))
}

/// One page of a list as answered: `{"items": [...], "next_cursor"?}`.
#[derive(Clone, Debug, Serialize)]
pub struct Listing<T> {
    pub items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantView {
    pub path: String,
}

/// A client as read: its RFC 7591 fields, `tenant` and `enabled`. Never its secret.
#[derive(Clone, Debug, Serialize)]
pub struct ClientView {
    pub client_id: String,
    pub tenant: String,
    pub grant_types: Vec<&'static str>,
    pub scope: String,
    pub token_endpoint_auth_method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    pub max_access_token_lifetime: u64,
    pub refresh_idle_lifetime: u64,
    pub refresh_absolute_lifetime: u64,
    pub refresh_reuse_interval: u64,
    pub dpop_bound_access_tokens: bool,
    pub enabled: bool,
}

impl From<&Client> for ClientView {
    fn from(client: &Client) -> Self {
        Self {
            client_id: client.id.to_string(),
            tenant: client.tenant.to_string(),
            grant_types: client.grants.iter().map(|grant| grant.as_str()).collect(),
            scope: client.scopes.to_string(),
            token_endpoint_auth_method: client.credentials.method().as_str(),
            jwks: match &client.credentials {
                Credentials::PrivateKeyJwt { jwks } => Some(jwks.as_value().clone()),
                Credentials::Secret { .. } => None,
            },
            max_access_token_lifetime: client.max_access_token_lifetime,
            refresh_idle_lifetime: client.refresh_idle_lifetime,
            refresh_absolute_lifetime: client.refresh_absolute_lifetime,
            refresh_reuse_interval: client.refresh_reuse_interval,
            dpop_bound_access_tokens: client.dpop_bound_access_tokens,
            enabled: client.enabled,
        }
    }
}

/// A client just registered or given a new secret: the secret is shown this once.
#[derive(Debug, Serialize)]
pub struct ClientWithSecret {
    #[serde(flatten)]
    pub client: ClientView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserView {
    pub id: String,
    pub tenant: String,
    pub username: String,
    pub enabled: bool,
    pub created_at: u64,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            tenant: user.tenant.to_string(),
            username: user.username.to_string(),
            enabled: user.enabled,
            created_at: user.created_at,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionView {
    pub grant_id: String,
    pub client_id: String,
    pub created_at: u64,
    pub last_refreshed_at: Option<u64>,
    pub device_ids: Vec<String>,
}

impl From<&Grant> for SessionView {
    fn from(grant: &Grant) -> Self {
        Self {
            grant_id: grant.id.to_string(),
            client_id: grant.client_id.to_string(),
            created_at: grant.created_at,
            last_refreshed_at: grant.last_refreshed_at,
            device_ids: grant.device_ids.iter().map(|d| d.as_str().to_owned()).collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub path: String,
}

/// A client registration, with RFC 7591 names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRegistration {
    pub client_id: Option<String>,
    pub tenant: String,
    pub grant_types: Vec<String>,
    pub scope: String,
    pub token_endpoint_auth_method: Option<String>,
    pub jwks: Option<serde_json::Value>,
    pub max_access_token_lifetime: Option<u64>,
    pub refresh_idle_lifetime: Option<u64>,
    pub refresh_absolute_lifetime: Option<u64>,
    pub refresh_reuse_interval: Option<u64>,
    pub dpop_bound_access_tokens: Option<bool>,
}

/// A change to a client: any registration field but `client_id` and `tenant`, and `enabled`.
/// (Its settings repeat the registration's: serde refuses unknown fields only without
/// `flatten`.)
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    pub grant_types: Option<Vec<String>>,
    pub scope: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub jwks: Option<serde_json::Value>,
    pub max_access_token_lifetime: Option<u64>,
    pub refresh_idle_lifetime: Option<u64>,
    pub refresh_absolute_lifetime: Option<u64>,
    pub refresh_reuse_interval: Option<u64>,
    pub dpop_bound_access_tokens: Option<bool>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRotation {
    pub previous_secret_valid_for: Option<u64>,
}

/// `Debug` leaves out the password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub tenant: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("tenant", &self.tenant)
            .field("username", &self.username)
            .field("password", &crate::domain::Redacted)
            .finish()
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub password: Option<String>,
    pub enabled: Option<bool>,
}

impl std::fmt::Debug for UserPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPatch")
            .field("password", &crate::domain::redacted(&self.password))
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// The admin service. Cheap to clone.
#[derive(Clone)]
pub struct AdminService {
    /// Verifies admin tokens; `None` for the operator's service, which takes none.
    verifier: Option<Verifier>,
    stores: Stores,
    passwords: Passwords,
    clock: Arc<dyn Clock>,
    /// How long a token-issuing process may go on trusting a cached client record.
    client_cache_ttl: u64,
    login_defence: LoginDefence,
}

impl AdminService {
    pub fn new(
        verifier: Verifier,
        stores: Stores,
        passwords: Passwords,
        clock: Arc<dyn Clock>,
        client_cache_ttl: u64,
        login_defence: LoginDefenceSettings,
    ) -> Self {
        let login_defence = LoginDefence::new(login_defence, stores.login_attempts.clone());
        Self { verifier: Some(verifier), stores, passwords, clock, client_cache_ttl, login_defence }
    }

    /// The service as `tokenctl` runs it for [`Caller::operator`]: no admin token to verify.
    pub fn for_operator(
        stores: Stores,
        passwords: Passwords,
        clock: Arc<dyn Clock>,
        client_cache_ttl: u64,
        login_defence: LoginDefenceSettings,
    ) -> Self {
        let login_defence = LoginDefence::new(login_defence, stores.login_attempts.clone());
        Self { verifier: None, stores, passwords, clock, client_cache_ttl, login_defence }
    }

    /// The caller an admin access token speaks for: verified by the one routine (so a revoked
    /// or cut-off token is refused), a `client_credentials` token with scope `admin`.
    pub async fn caller(&self, presented: &Presented<'_>) -> Result<Caller, Error> {
        let verifier = self.verifier.as_ref().ok_or_else(|| {
            Error::Internal("the operator's admin service takes no tokens".into())
        })?;
        let token = verifier.verify_presented(presented).await?;
        token.require_administrative(ADMIN_SCOPE)?;
        Ok(Caller {
            client_id: Some(token.client_id.clone()),
            subject: token.claims.sub.clone(),
            tenant: Some(token.tenant.clone()),
        })
    }

    /// One page of a list within the subtree the caller may read (and asked for), continued
    /// from the cursor's position, which must lie in that subtree; items outside it, whatever
    /// a store returned, are dropped.
    async fn list<T: Listed>(
        &self,
        caller: &Caller,
        query: &ListQuery,
        read: impl AsyncFnOnce(
            &TenantPath,
            PageRequest<'_, T::Position>,
        ) -> Result<Page<T, T::Position>, StoreError>,
    ) -> Result<Listing<T::View>, Error> {
        let root = caller.list_root(query.tenant.as_deref())?;
        let after: Option<T::Position> = query.position()?;
        let (root, after) = list_bounds(root, after, T::position_tenant)?;
        let page =
            read(&root, PageRequest { limit: query.limit()?, after: after.as_ref() }).await?;
        let items =
            page.items.iter().filter(|item| item.tenant().is_within(&root)).map(T::view).collect();
        Ok(Listing { items, next_cursor: page.next.as_ref().map(cursor_of).transpose()? })
    }

    // Tenants.

    pub async fn create_tenant(
        &self,
        caller: &Caller,
        request: NewTenant,
    ) -> Result<TenantView, Error> {
        let result = async {
            let path = parse_tenant("path", &request.path)?;
            caller.require(&path)?;
            if !self.stores.tenants.create_tenant(&path).await? {
                return Err(conflict("the tenant exists"));
            }
            Ok(TenantView { path: path.to_string() })
        }
        .await;
        audit(caller, "create_tenant", &request.path, &result);
        result
    }

    pub async fn tenants(
        &self,
        caller: &Caller,
        query: &ListQuery,
    ) -> Result<Listing<TenantView>, Error> {
        let tenants = &self.stores.tenants;
        self.list(caller, query, async |root, page| tenants.tenants(root, page).await).await
    }

    pub async fn delete_tenant(&self, caller: &Caller, raw: &str) -> Result<(), Error> {
        let result = async {
            let path = parse_tenant("path", raw)?;
            caller.require(&path)?;
            if caller.tenant.as_ref() == Some(&path) {
                return Err(Error::InsufficientScope(
                    "a caller cannot delete its own tenant".into(),
                ));
            }
            match self.stores.tenants.delete_tenant(&path).await? {
                TenantDeletion::Deleted => Ok(()),
                TenantDeletion::Missing => Err(not_found("tenant")),
                TenantDeletion::NotEmpty => {
                    Err(conflict("the tenant still holds clients, users or tenants"))
                }
            }
        }
        .await;
        audit(caller, "delete_tenant", raw, &result);
        result
    }

    // Clients.

    pub async fn create_client(
        &self,
        caller: &Caller,
        registration: ClientRegistration,
    ) -> Result<ClientWithSecret, Error> {
        let named = registration.client_id.clone().unwrap_or_default();
        let result = async {
            let tenant = parse_tenant("tenant", &registration.tenant)?;
            caller.require(&tenant)?;
            let id = match &registration.client_id {
                Some(raw) => ClientId::parse(raw).map_err(|e| invalid("client_id", e))?,
                None => ClientId::parse(&URL_SAFE_NO_PAD.encode(random_bytes::<16>()))
                    .map_err(|e| Error::Internal(format!("generating a client id: {e}")))?,
            };
            if !self.stores.tenants.tenant_exists(&tenant).await? {
                return Err(invalid("tenant", "no such tenant"));
            }
            let method = parse_method(registration.token_endpoint_auth_method.as_deref())?;
            let (credentials, secret) = credentials_for(method, registration.jwks.clone())?;
            let mut client = Client::new(id, credentials, tenant);
            client.grants = parse_grants(&registration.grant_types)?;
            client.scopes = parse_client_scope(&registration.scope)?;
            apply_settings(
                &mut client,
                &Settings {
                    max_access_token_lifetime: registration.max_access_token_lifetime,
                    refresh_idle_lifetime: registration.refresh_idle_lifetime,
                    refresh_absolute_lifetime: registration.refresh_absolute_lifetime,
                    refresh_reuse_interval: registration.refresh_reuse_interval,
                    dpop_bound_access_tokens: registration.dpop_bound_access_tokens,
                },
            )?;
            if !self.stores.clients.create_client(&client).await? {
                return Err(conflict("the client id is taken"));
            }
            Ok(ClientWithSecret {
                client: ClientView::from(&client),
                client_secret: secret.map(|s| s.expose().to_owned()),
            })
        }
        .await;
        let resource = result.as_ref().map_or(named, |c| c.client.client_id.clone());
        audit(caller, "create_client", &resource, &result);
        result
    }

    pub async fn clients(
        &self,
        caller: &Caller,
        query: &ListQuery,
    ) -> Result<Listing<ClientView>, Error> {
        let clients = &self.stores.clients;
        self.list(caller, query, async |root, page| clients.clients(root, page).await).await
    }

    /// The client with this id, if the caller manages it.
    async fn managed_client(&self, caller: &Caller, raw: &str) -> Result<Client, Error> {
        let id = ClientId::parse(raw).map_err(|e| invalid("client_id", e))?;
        let client = self.stores.clients.client(&id).await?.ok_or_else(|| not_found("client"))?;
        caller.require(&client.tenant)?;
        Ok(client)
    }

    pub async fn client(&self, caller: &Caller, id: &str) -> Result<ClientView, Error> {
        Ok(ClientView::from(&self.managed_client(caller, id).await?))
    }

    pub async fn update_client(
        &self,
        caller: &Caller,
        id: &str,
        patch: ClientPatch,
    ) -> Result<ClientView, Error> {
        let result = async {
            let mut client = self.managed_client(caller, id).await?;
            let was_enabled = client.enabled;
            if let Some(grants) = &patch.grant_types {
                client.grants = parse_grants(grants)?;
            }
            if let Some(scope) = &patch.scope {
                client.scopes = parse_client_scope(scope)?;
            }
            match parse_method_patch(patch.token_endpoint_auth_method.as_deref())? {
                Some(method) if method != client.credentials.method() => {
                    if method.uses_secret() != client.credentials.method().uses_secret() {
                        // A secret is issued only by rotation, so a switch between kinds goes
                        // through delete and register: the caller sees the new secret once.
                        return Err(invalid(
                            "token_endpoint_auth_method",
                            "cannot switch between a secret and private_key_jwt; register the client anew",
                        ));
                    }
                    if let Credentials::Secret { method: stored, .. } = &mut client.credentials {
                        *stored = method;
                    }
                }
                _ => {}
            }
            if let Some(jwks) = patch.jwks.clone() {
                match &mut client.credentials {
                    Credentials::PrivateKeyJwt { jwks: stored } => {
                        *stored = ClientJwks::parse(jwks).map_err(|e| invalid("jwks", e))?;
                    }
                    Credentials::Secret { .. } => {
                        return Err(invalid("jwks", "only a private_key_jwt client has keys"));
                    }
                }
            }
            apply_settings(
                &mut client,
                &Settings {
                    max_access_token_lifetime: patch.max_access_token_lifetime,
                    refresh_idle_lifetime: patch.refresh_idle_lifetime,
                    refresh_absolute_lifetime: patch.refresh_absolute_lifetime,
                    refresh_reuse_interval: patch.refresh_reuse_interval,
                    dpop_bound_access_tokens: patch.dpop_bound_access_tokens,
                },
            )?;
            if let Some(enabled) = patch.enabled {
                client.enabled = enabled;
            }
            self.store_client(&client).await?;
            if was_enabled && !client.enabled {
                self.cut_off_client(&client.id).await?;
            }
            Ok(ClientView::from(&client))
        }
        .await;
        audit(caller, "update_client", id, &result);
        result
    }

    /// A new secret, shown once; the previous one keeps working for
    /// `previous_secret_valid_for` seconds (default 0: never again).
    pub async fn rotate_secret(
        &self,
        caller: &Caller,
        id: &str,
        rotation: SecretRotation,
    ) -> Result<ClientWithSecret, Error> {
        let result = async {
            let overlap = rotation.previous_secret_valid_for.unwrap_or(0);
            if overlap > MAX_PREVIOUS_SECRET_VALIDITY {
                return Err(invalid(
                    "previous_secret_valid_for",
                    format!("must be 0 to {MAX_PREVIOUS_SECRET_VALIDITY} seconds"),
                ));
            }
            let mut client = self.managed_client(caller, id).await?;
            let Credentials::Secret { method, digest, .. } = &client.credentials else {
                return Err(invalid("client_id", "a private_key_jwt client has no secret"));
            };
            let secret = ClientSecret::generate();
            let now = self.clock.now();
            let previous = (overlap > 0)
                .then(|| PreviousSecret { digest: digest.clone(), valid_until: now + overlap });
            client.credentials =
                Credentials::Secret { method: *method, digest: secret.digest(), previous };
            self.store_client(&client).await?;
            Ok(ClientWithSecret {
                client: ClientView::from(&client),
                client_secret: Some(secret.expose().to_owned()),
            })
        }
        .await;
        audit(caller, "rotate_client_secret", id, &result);
        result
    }

    pub async fn delete_client(&self, caller: &Caller, id: &str) -> Result<(), Error> {
        let result = async {
            let client = self.managed_client(caller, id).await?;
            // Cut off first: if the delete then fails, the tokens are dead and a retry finishes.
            self.cut_off_client(&client.id).await?;
            if !self.stores.clients.delete_client(&client).await? {
                return Err(not_found("client"));
            }
            Ok(())
        }
        .await;
        audit(caller, "delete_client", id, &result);
        result
    }

    async fn store_client(&self, client: &Client) -> Result<(), Error> {
        if !self.stores.clients.update_client(client).await? {
            return Err(changed_meanwhile("client"));
        }
        Ok(())
    }

    /// Kills every token of the client at once, and those a process still trusting its cached
    /// record (for at most `CLIENT_CACHE_TTL`) could yet issue.
    async fn cut_off_client(&self, id: &ClientId) -> Result<(), Error> {
        let not_before = self.clock.now() + 1 + self.client_cache_ttl;
        self.raise_cutoff(&layer::client(id), not_before).await
    }

    // Users.

    pub async fn create_user(&self, caller: &Caller, request: NewUser) -> Result<UserView, Error> {
        let resource = format!("{}:{}", request.tenant, request.username);
        let result = async {
            let tenant = parse_tenant("tenant", &request.tenant)?;
            caller.require(&tenant)?;
            let username =
                Username::parse(&request.username).map_err(|e| invalid("username", e))?;
            check_password(&request.password)?;
            if !self.stores.tenants.tenant_exists(&tenant).await? {
                return Err(invalid("tenant", "no such tenant"));
            }
            let user = User {
                id: UserId::generate(),
                tenant,
                username,
                password_hash: self.hash(&request.password).await?,
                enabled: true,
                created_at: self.clock.now(),
                version: 0,
            };
            if !self.stores.users.create_user(&user).await? {
                return Err(conflict("the username is taken in this tenant"));
            }
            Ok(UserView::from(&user))
        }
        .await;
        let resource = result.as_ref().map_or(resource, |user| user.id.clone());
        audit(caller, "create_user", &resource, &result);
        result
    }

    pub async fn users(
        &self,
        caller: &Caller,
        query: &ListQuery,
    ) -> Result<Listing<UserView>, Error> {
        let users = &self.stores.users;
        self.list(caller, query, async |root, page| users.users(root, page).await).await
    }

    /// The user with this id, if the caller manages it. A user id can be computed from a
    /// tenant and a username (seed users'), so to a tenant's admin an unknown id answers as
    /// one outside its subtree: whether a user exists elsewhere is never told. Only the
    /// operator, who manages every tenant, is told "no such user".
    async fn managed_user(&self, caller: &Caller, raw: &str) -> Result<User, Error> {
        let id = UserId::parse(raw).map_err(|e| invalid("id", e))?;
        match self.stores.users.user_by_id(&id).await? {
            Some(user) => {
                caller.require(&user.tenant)?;
                Ok(user)
            }
            None if caller.tenant.is_none() => Err(not_found("user")),
            None => Err(Error::InsufficientScope("outside the caller's tenant subtree".into())),
        }
    }

    pub async fn user(&self, caller: &Caller, id: &str) -> Result<UserView, Error> {
        Ok(UserView::from(&self.managed_user(caller, id).await?))
    }

    /// A new password or `enabled`. A new password, and disabling, end every session and kill
    /// every token of the user.
    pub async fn update_user(
        &self,
        caller: &Caller,
        id: &str,
        patch: UserPatch,
    ) -> Result<UserView, Error> {
        let result = async {
            if let Some(password) = &patch.password {
                check_password(password)?;
            }
            let mut user = self.managed_user(caller, id).await?;
            let cut_off =
                patch.password.is_some() || (user.enabled && patch.enabled == Some(false));
            if let Some(password) = &patch.password {
                user.password_hash = self.hash(password).await?;
            }
            if let Some(enabled) = patch.enabled {
                user.enabled = enabled;
            }
            if cut_off {
                self.cut_off_user(&user).await?;
            }
            if !self.stores.users.update_user(&user).await? {
                return Err(changed_meanwhile("user"));
            }
            Ok(UserView::from(&user))
        }
        .await;
        audit(caller, "update_user", id, &result);
        result
    }

    /// Clears the user's login-defence counters, from every source.
    pub async fn unlock_user(&self, caller: &Caller, id: &str) -> Result<(), Error> {
        let result = async {
            let user = self.managed_user(caller, id).await?;
            self.login_defence.unlock(&user.tenant, &user.username, self.clock.now()).await?;
            Ok(())
        }
        .await;
        audit(caller, "unlock_user", id, &result);
        result
    }

    pub async fn delete_user(&self, caller: &Caller, id: &str) -> Result<(), Error> {
        let result = async {
            let user = self.managed_user(caller, id).await?;
            self.cut_off_user(&user).await?;
            if !self.stores.users.delete_user(&user).await? {
                return Err(not_found("user"));
            }
            Ok(())
        }
        .await;
        audit(caller, "delete_user", id, &result);
        result
    }

    /// Kills every token and grant of the user issued up to now, then waits for the cutoff's
    /// second to begin: a login after this returns is never caught by it.
    async fn cut_off_user(&self, user: &User) -> Result<(), Error> {
        let subject = Subject::User { tenant: &user.tenant, id: user.id.as_str() };
        let not_before = self.clock.now() + 1;
        self.raise_cutoff(&layer::subject(subject), not_before).await?;
        tokio::time::sleep(self.clock.wait_until(not_before)).await;
        Ok(())
    }

    // Sessions.

    pub async fn sessions(
        &self,
        caller: &Caller,
        user_id: &str,
        query: &ListQuery,
    ) -> Result<Listing<SessionView>, Error> {
        if query.tenant.is_some() {
            return Err(invalid("tenant", "a user's sessions are listed by the user's id alone"));
        }
        let user = self.managed_user(caller, user_id).await?;
        let after: Option<(u64, GrantId)> = query.position()?;
        let now = self.clock.now();
        let page = self
            .stores
            .grants
            .sessions(
                &user.tenant,
                &user.id,
                PageRequest { limit: query.limit()?, after: after.as_ref() },
                now,
            )
            .await?;
        let mine: Vec<&Grant> = page
            .items
            .iter()
            .filter(|grant| grant.tenant == user.tenant && grant.subject == user.id.as_str())
            .collect();
        // A batch cutoff may have killed a grant whose record stays: one read of every layer
        // that applies to any of them.
        let layers: std::collections::BTreeSet<String> = mine
            .iter()
            .flat_map(|g| layer::applying_to(&g.tenant, &g.client_id, g.subject_ref()))
            .collect();
        let layers: Vec<String> = layers.into_iter().collect();
        let cutoffs = self.stores.revocations.cutoffs(&layers, now).await?;
        let alive = |grant: &Grant| {
            layer::applying_to(&grant.tenant, &grant.client_id, grant.subject_ref())
                .iter()
                .filter_map(|layer| cutoffs.get(layer))
                .all(|not_before| grant.created_at >= *not_before)
        };
        let items = mine.into_iter().filter(|g| alive(g)).map(SessionView::from).collect();
        Ok(Listing { items, next_cursor: page.next.as_ref().map(cursor_of).transpose()? })
    }

    pub async fn end_session(&self, caller: &Caller, grant_id: &str) -> Result<(), Error> {
        let result = async {
            let id = GrantId::parse(grant_id).map_err(|e| invalid("grant_id", e))?;
            let now = self.clock.now();
            let grant =
                self.stores.grants.grant(&id, now).await?.ok_or_else(|| not_found("session"))?;
            caller.require(&grant.tenant)?;
            self.stores.grants.revoke_grant(&id, now).await?;
            Ok(())
        }
        .await;
        audit(caller, "end_session", grant_id, &result);
        result
    }

    async fn raise_cutoff(&self, layer: &str, not_before: u64) -> Result<(), Error> {
        let expires_at = verifiable_until(not_before + MAX_LIFETIME);
        self.stores
            .revocations
            .raise_cutoff(layer, not_before, expires_at, self.clock.now())
            .await?;
        Ok(())
    }

    /// Argon2id off the async workers, as the password grant does.
    async fn hash(&self, password: &str) -> Result<String, Error> {
        let (passwords, password) = (self.passwords.clone(), password.to_owned());
        tokio::task::spawn_blocking(move || passwords.hash(&password))
            .await
            .map_err(|e| Error::Internal(format!("password hashing task: {e}")))?
            .map_err(|e| Error::Internal(e.to_string()))
    }
}

/// What the admin plane lists: each item's tenant, its position's tenant, and how it reads.
trait Listed {
    type Position: Serialize + DeserializeOwned;
    type View;
    fn tenant(&self) -> &TenantPath;
    fn position_tenant(position: &Self::Position) -> &TenantPath;
    fn view(&self) -> Self::View;
}

impl Listed for TenantPath {
    type Position = TenantPath;
    type View = TenantView;
    fn tenant(&self) -> &TenantPath {
        self
    }
    fn position_tenant(position: &TenantPath) -> &TenantPath {
        position
    }
    fn view(&self) -> TenantView {
        TenantView { path: self.to_string() }
    }
}

impl Listed for Client {
    type Position = ClientPosition;
    type View = ClientView;
    fn tenant(&self) -> &TenantPath {
        &self.tenant
    }
    fn position_tenant((tenant, _): &ClientPosition) -> &TenantPath {
        tenant
    }
    fn view(&self) -> ClientView {
        ClientView::from(self)
    }
}

impl Listed for User {
    type Position = UserPosition;
    type View = UserView;
    fn tenant(&self) -> &TenantPath {
        &self.tenant
    }
    fn position_tenant((tenant, _): &UserPosition) -> &TenantPath {
        tenant
    }
    fn view(&self) -> UserView {
        UserView::from(self)
    }
}

/// The subtree a list reads and where it continues. A cursor naming a position outside the
/// subtree is refused, and the store reads only within the subtree whatever the cursor says.
fn list_bounds<P>(
    root: Option<TenantPath>,
    after: Option<P>,
    tenant_of: impl Fn(&P) -> &TenantPath,
) -> Result<(TenantPath, Option<P>), Error> {
    let Some(root) = root else {
        // The operator lists every root tenant's subtree: only one at a time, named.
        return Err(invalid("tenant", "name the tenant whose subtree to list"));
    };
    if after.as_ref().is_some_and(|position| !tenant_of(position).is_within(&root)) {
        return Err(invalid("cursor", "is not one this list issued"));
    }
    Ok((root, after))
}

/// One audit line per change: who (the caller's client and subject), what, which resource and
/// the outcome. Never a secret or a password: only ids reach it.
fn audit<T>(caller: &Caller, action: &str, resource: &str, result: &Result<T, Error>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(error) => error.code(),
    };
    let client = caller.client_id.as_ref().map(ClientId::as_str);
    telemetry::audit(client, &caller.subject, action, resource, outcome);
}

fn check_password(password: &str) -> Result<(), Error> {
    if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&password.len()) {
        return Err(invalid(
            "password",
            format!("must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} bytes"),
        ));
    }
    Ok(())
}

fn parse_method(raw: Option<&str>) -> Result<AuthMethod, Error> {
    Ok(parse_method_patch(raw)?.unwrap_or(AuthMethod::ClientSecretBasic))
}

fn parse_method_patch(raw: Option<&str>) -> Result<Option<AuthMethod>, Error> {
    raw.map(|raw| raw.parse().map_err(|e| invalid("token_endpoint_auth_method", e))).transpose()
}

/// A new client's credentials: a generated secret (returned to be shown once), or its keys.
fn credentials_for(
    method: AuthMethod,
    jwks: Option<serde_json::Value>,
) -> Result<(Credentials, Option<ClientSecret>), Error> {
    match (method, jwks) {
        (AuthMethod::PrivateKeyJwt, Some(jwks)) => {
            let jwks = ClientJwks::parse(jwks).map_err(|e| invalid("jwks", e))?;
            Ok((Credentials::PrivateKeyJwt { jwks }, None))
        }
        (AuthMethod::PrivateKeyJwt, None) => {
            Err(invalid("jwks", "a private_key_jwt client must register its public keys"))
        }
        (_, Some(_)) => Err(invalid("jwks", "only a private_key_jwt client has keys")),
        (method, None) => {
            let secret = ClientSecret::generate();
            let credentials =
                Credentials::Secret { method, digest: secret.digest(), previous: None };
            Ok((credentials, Some(secret)))
        }
    }
}

fn parse_grants(raw: &[String]) -> Result<std::collections::BTreeSet<GrantType>, Error> {
    if raw.is_empty() {
        return Err(invalid("grant_types", "must name at least one grant type"));
    }
    raw.iter()
        .map(|grant| {
            grant
                .parse()
                .map_err(|_| invalid("grant_types", format!("unsupported grant type {grant:?}")))
        })
        .collect()
}

fn parse_client_scope(raw: &str) -> Result<ScopeSet, Error> {
    let scopes = ScopeSet::parse(raw).map_err(|e| invalid("scope", e))?;
    if scopes.is_empty() {
        return Err(invalid("scope", "must name at least one scope"));
    }
    Ok(scopes)
}

struct Settings {
    max_access_token_lifetime: Option<u64>,
    refresh_idle_lifetime: Option<u64>,
    refresh_absolute_lifetime: Option<u64>,
    refresh_reuse_interval: Option<u64>,
    dpop_bound_access_tokens: Option<bool>,
}

/// Applies the settings given, each checked as registration checks it.
fn apply_settings(client: &mut Client, settings: &Settings) -> Result<(), Error> {
    for (field, value, target) in [
        (
            "max_access_token_lifetime",
            settings.max_access_token_lifetime,
            &mut client.max_access_token_lifetime,
        ),
        (
            "refresh_idle_lifetime",
            settings.refresh_idle_lifetime,
            &mut client.refresh_idle_lifetime,
        ),
        (
            "refresh_absolute_lifetime",
            settings.refresh_absolute_lifetime,
            &mut client.refresh_absolute_lifetime,
        ),
    ] {
        if let Some(value) = value {
            if value == 0 || value > MAX_LIFETIME {
                return Err(invalid(field, format!("must be 1 to {MAX_LIFETIME} seconds")));
            }
            *target = value;
        }
    }
    if let Some(interval) = settings.refresh_reuse_interval {
        if interval > MAX_REFRESH_REUSE_INTERVAL {
            return Err(invalid(
                "refresh_reuse_interval",
                format!("must be 0 to {MAX_REFRESH_REUSE_INTERVAL} seconds"),
            ));
        }
        client.refresh_reuse_interval = interval;
    }
    if let Some(bound) = settings.dpop_bound_access_tokens {
        client.dpop_bound_access_tokens = bound;
    }
    Ok(())
}
