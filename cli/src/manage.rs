//! `tokenctl tenants|clients|users|sessions`: the admin plane's operations on a table, as the
//! operator ([`Caller::operator`]). Every rule is the admin service's: these commands only parse
//! their arguments into its request types and print its answer as JSON.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use token_service::admin::{
    AdminService, Caller, ClientPatch, ClientRegistration, ListQuery, NewTenant, NewUser,
    SecretRotation, UserPatch,
};
use token_service::error::Error;

// The table every one of these commands works on.
#[derive(Args, Debug)]
pub struct Table {
    /// The DynamoDB table (endpoint from the standard AWS variables).
    #[arg(long, env = "TABLE_NAME")]
    pub table: String,
}

// Where a list page begins and how long it is.
#[derive(Args, Debug)]
pub struct Page {
    /// Items on the page (1-100; default 100).
    #[arg(long)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[arg(long, allow_hyphen_values = true)]
    cursor: Option<String>,
}

impl Page {
    fn query(self, tenant: Option<String>) -> ListQuery {
        ListQuery { limit: self.limit, cursor: self.cursor, tenant }
    }
}

/// The admin commands, each a subcommand of `tokenctl`.
#[derive(Subcommand, Debug)]
pub enum Manage {
    /// Create, list and delete tenants.
    Tenants {
        #[command(subcommand)]
        action: TenantsAction,
    },
    /// Register, list, show, change, rotate the secret of and delete clients.
    Clients {
        #[command(subcommand)]
        action: ClientsAction,
    },
    /// Create, list, show, change, unlock and delete users, and list their sessions.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// End a session (a password grant and every token descended from it).
    Sessions {
        #[command(subcommand)]
        action: SessionsAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum TenantsAction {
    /// Create a tenant; its parent must exist.
    Create {
        #[command(flatten)]
        table: Table,
        #[arg(long)]
        path: String,
    },
    /// The tenants of a subtree.
    List {
        #[command(flatten)]
        table: Table,
        /// The subtree's root.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        page: Page,
    },
    /// Delete an empty tenant.
    Delete {
        #[command(flatten)]
        table: Table,
        #[arg(long)]
        path: String,
    },
}

// A client's settings, as `clients create` and `clients update` take them.
#[derive(Args, Debug)]
pub struct ClientSettings {
    /// client_secret_basic (the default), client_secret_post or private_key_jwt.
    #[arg(long)]
    auth_method: Option<String>,
    /// A JSON file holding a private_key_jwt client's public keys ({"keys": [...]}).
    #[arg(long)]
    jwks: Option<PathBuf>,
    #[arg(long)]
    max_access_token_lifetime: Option<u64>,
    #[arg(long)]
    refresh_idle_lifetime: Option<u64>,
    #[arg(long)]
    refresh_absolute_lifetime: Option<u64>,
    #[arg(long)]
    refresh_reuse_interval: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum ClientsAction {
    /// Register a client; a generated secret is printed once.
    Create {
        #[command(flatten)]
        table: Table,
        #[arg(long)]
        tenant: String,
        /// Comma-separated: client_credentials, password, refresh_token.
        #[arg(long, value_delimiter = ',', required = true)]
        grant_types: Vec<String>,
        /// Space-separated scopes the client may ask for.
        #[arg(long)]
        scope: String,
        /// Generated when absent.
        #[arg(long, allow_hyphen_values = true)]
        client_id: Option<String>,
        #[command(flatten)]
        settings: ClientSettings,
        /// Bind the client's access tokens to DPoP keys.
        #[arg(long)]
        dpop_bound: bool,
    },
    /// The clients of a tenant's subtree.
    List {
        #[command(flatten)]
        table: Table,
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        page: Page,
    },
    /// A client's registration (never its secret).
    Show {
        #[command(flatten)]
        table: Table,
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Change what is given; disabling ends every token of the client.
    Update {
        #[command(flatten)]
        table: Table,
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[arg(long)]
        enabled: Option<bool>,
        #[arg(long)]
        scope: Option<String>,
        #[arg(long, value_delimiter = ',')]
        grant_types: Option<Vec<String>>,
        #[command(flatten)]
        settings: ClientSettings,
        #[arg(long)]
        dpop_bound: Option<bool>,
    },
    /// A new secret, printed once; the previous one works on for the given seconds (default 0).
    RotateSecret {
        #[command(flatten)]
        table: Table,
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[arg(long)]
        previous_secret_valid_for: Option<u64>,
    },
    /// Delete the client and end every token of it.
    Delete {
        #[command(flatten)]
        table: Table,
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum UsersAction {
    /// Create a user; the password is the first line of standard input, never an argument.
    Create {
        #[command(flatten)]
        table: Table,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        username: String,
    },
    /// The users of a tenant's subtree.
    List {
        #[command(flatten)]
        table: Table,
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        page: Page,
    },
    /// A user by id.
    Show {
        #[command(flatten)]
        table: Table,
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Change what is given; a new password, or disabling, ends every session of the user.
    Update {
        #[command(flatten)]
        table: Table,
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[arg(long)]
        enabled: Option<bool>,
        /// Read a new password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete the user and end every session and token of it.
    Delete {
        #[command(flatten)]
        table: Table,
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Clear the user's failed-login counters, so no source waits before its next login.
    Unlock {
        #[command(flatten)]
        table: Table,
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// The user's live sessions.
    Sessions {
        #[command(flatten)]
        table: Table,
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[command(flatten)]
        page: Page,
    },
}

#[derive(Subcommand, Debug)]
pub enum SessionsAction {
    /// End the session: its grant and every token descended from it stop working.
    End {
        #[command(flatten)]
        table: Table,
        #[arg(allow_hyphen_values = true)]
        grant_id: String,
    },
}

/// One admin operation, its request parsed from the command line: what the service is asked.
#[derive(Debug)]
pub enum Operation {
    CreateTenant(NewTenant),
    Tenants(ListQuery),
    DeleteTenant(String),
    CreateClient(ClientRegistration),
    Clients(ListQuery),
    Client(String),
    UpdateClient(String, ClientPatch),
    RotateSecret(String, SecretRotation),
    DeleteClient(String),
    CreateUser(NewUser),
    Users(ListQuery),
    User(String),
    UpdateUser(String, UserPatch),
    DeleteUser(String),
    UnlockUser(String),
    Sessions(String, ListQuery),
    EndSession(String),
}

/// Why a command could not be turned into a request: a file or standard input unread.
#[derive(Debug, thiserror::Error)]
pub enum ArgumentError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("reading the password from standard input: {0}")]
    Stdin(std::io::Error),
}

impl Manage {
    /// The table and the request; a password is read from `stdin`, the first line.
    pub fn operation(self, stdin: &mut dyn BufRead) -> Result<(String, Operation), ArgumentError> {
        Ok(match self {
            Manage::Tenants { action } => match action {
                TenantsAction::Create { table, path } => {
                    (table.table, Operation::CreateTenant(NewTenant { path }))
                }
                TenantsAction::List { table, tenant, page } => {
                    (table.table, Operation::Tenants(page.query(Some(tenant))))
                }
                TenantsAction::Delete { table, path } => {
                    (table.table, Operation::DeleteTenant(path))
                }
            },
            Manage::Clients { action } => match action {
                ClientsAction::Create {
                    table,
                    tenant,
                    grant_types,
                    scope,
                    client_id,
                    settings,
                    dpop_bound,
                } => {
                    let registration = ClientRegistration {
                        client_id,
                        tenant,
                        grant_types,
                        scope,
                        token_endpoint_auth_method: settings.auth_method,
                        jwks: settings.jwks.as_deref().map(read_jwks).transpose()?,
                        max_access_token_lifetime: settings.max_access_token_lifetime,
                        refresh_idle_lifetime: settings.refresh_idle_lifetime,
                        refresh_absolute_lifetime: settings.refresh_absolute_lifetime,
                        refresh_reuse_interval: settings.refresh_reuse_interval,
                        dpop_bound_access_tokens: dpop_bound.then_some(true),
                    };
                    (table.table, Operation::CreateClient(registration))
                }
                ClientsAction::List { table, tenant, page } => {
                    (table.table, Operation::Clients(page.query(Some(tenant))))
                }
                ClientsAction::Show { table, id } => (table.table, Operation::Client(id)),
                ClientsAction::Update {
                    table,
                    id,
                    enabled,
                    scope,
                    grant_types,
                    settings,
                    dpop_bound,
                } => {
                    let patch = ClientPatch {
                        grant_types,
                        scope,
                        token_endpoint_auth_method: settings.auth_method,
                        jwks: settings.jwks.as_deref().map(read_jwks).transpose()?,
                        max_access_token_lifetime: settings.max_access_token_lifetime,
                        refresh_idle_lifetime: settings.refresh_idle_lifetime,
                        refresh_absolute_lifetime: settings.refresh_absolute_lifetime,
                        refresh_reuse_interval: settings.refresh_reuse_interval,
                        dpop_bound_access_tokens: dpop_bound,
                        enabled,
                    };
                    (table.table, Operation::UpdateClient(id, patch))
                }
                ClientsAction::RotateSecret { table, id, previous_secret_valid_for } => {
                    let rotation = SecretRotation { previous_secret_valid_for };
                    (table.table, Operation::RotateSecret(id, rotation))
                }
                ClientsAction::Delete { table, id } => (table.table, Operation::DeleteClient(id)),
            },
            Manage::Users { action } => match action {
                UsersAction::Create { table, tenant, username } => {
                    let password = read_password(stdin)?;
                    (table.table, Operation::CreateUser(NewUser { tenant, username, password }))
                }
                UsersAction::List { table, tenant, page } => {
                    (table.table, Operation::Users(page.query(Some(tenant))))
                }
                UsersAction::Show { table, id } => (table.table, Operation::User(id)),
                UsersAction::Update { table, id, enabled, password_stdin } => {
                    let password = password_stdin.then(|| read_password(stdin)).transpose()?;
                    (table.table, Operation::UpdateUser(id, UserPatch { password, enabled }))
                }
                UsersAction::Delete { table, id } => (table.table, Operation::DeleteUser(id)),
                UsersAction::Unlock { table, id } => (table.table, Operation::UnlockUser(id)),
                UsersAction::Sessions { table, id, page } => {
                    (table.table, Operation::Sessions(id, page.query(None)))
                }
            },
            Manage::Sessions { action: SessionsAction::End { table, grant_id } } => {
                (table.table, Operation::EndSession(grant_id))
            }
        })
    }
}

fn read_jwks(path: &std::path::Path) -> Result<serde_json::Value, ArgumentError> {
    let file = |reason: String| ArgumentError::File { path: path.display().to_string(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| file(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| file(format!("not JSON: {e}")))
}

/// The first line of standard input, without its line ending.
fn read_password(stdin: &mut dyn BufRead) -> Result<String, ArgumentError> {
    let mut line = String::new();
    stdin.read_line(&mut line).map_err(ArgumentError::Stdin)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Asks the service as the operator. The answer as JSON, `None` for a deletion, an unlock or an
/// ended session (which answer nothing).
pub async fn perform(
    service: &AdminService,
    operation: Operation,
) -> Result<Option<serde_json::Value>, Error> {
    let caller = &Caller::operator();
    fn json(value: impl serde::Serialize) -> Result<Option<serde_json::Value>, Error> {
        serde_json::to_value(value)
            .map(Some)
            .map_err(|e| Error::Internal(format!("encoding the answer: {e}")))
    }
    match operation {
        Operation::CreateTenant(request) => json(service.create_tenant(caller, request).await?),
        Operation::Tenants(query) => json(service.tenants(caller, &query).await?),
        Operation::DeleteTenant(path) => service.delete_tenant(caller, &path).await.map(|()| None),
        Operation::CreateClient(request) => json(service.create_client(caller, request).await?),
        Operation::Clients(query) => json(service.clients(caller, &query).await?),
        Operation::Client(id) => json(service.client(caller, &id).await?),
        Operation::UpdateClient(id, patch) => {
            json(service.update_client(caller, &id, patch).await?)
        }
        Operation::RotateSecret(id, rotation) => {
            json(service.rotate_secret(caller, &id, rotation).await?)
        }
        Operation::DeleteClient(id) => service.delete_client(caller, &id).await.map(|()| None),
        Operation::CreateUser(request) => json(service.create_user(caller, request).await?),
        Operation::Users(query) => json(service.users(caller, &query).await?),
        Operation::User(id) => json(service.user(caller, &id).await?),
        Operation::UpdateUser(id, patch) => json(service.update_user(caller, &id, patch).await?),
        Operation::DeleteUser(id) => service.delete_user(caller, &id).await.map(|()| None),
        Operation::UnlockUser(id) => service.unlock_user(caller, &id).await.map(|()| None),
        Operation::Sessions(id, query) => json(service.sessions(caller, &id, &query).await?),
        Operation::EndSession(id) => service.end_session(caller, &id).await.map(|()| None),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        manage: Manage,
    }

    fn parse(args: &[&str], stdin: &str) -> (String, Operation) {
        let cli = Cli::try_parse_from(std::iter::once("tokenctl").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        cli.manage.operation(&mut stdin.as_bytes()).unwrap()
    }

    #[test]
    fn clients_create_maps_every_flag_to_the_registration() {
        let jwks = std::env::temp_dir().join(format!("manage-jwks-{}.json", std::process::id()));
        std::fs::write(&jwks, r#"{"keys": []}"#).unwrap();
        let args = [
            "clients",
            "create",
            "--table",
            "T",
            "--tenant",
            "/acme",
            "--grant-types",
            "client_credentials,refresh_token",
            "--scope",
            "read write",
            "--client-id",
            "-app",
            "--auth-method",
            "private_key_jwt",
            "--jwks",
            jwks.to_str().unwrap(),
            "--max-access-token-lifetime",
            "600",
            "--refresh-idle-lifetime",
            "700",
            "--refresh-absolute-lifetime",
            "800",
            "--refresh-reuse-interval",
            "5",
            "--dpop-bound",
        ];
        let (table, Operation::CreateClient(r)) = parse(&args, "") else { panic!() };
        std::fs::remove_file(&jwks).unwrap();
        assert_eq!(table, "T");
        assert_eq!(r.client_id.as_deref(), Some("-app"));
        assert_eq!((r.tenant.as_str(), r.scope.as_str()), ("/acme", "read write"));
        assert_eq!(r.grant_types, ["client_credentials", "refresh_token"]);
        assert_eq!(r.token_endpoint_auth_method.as_deref(), Some("private_key_jwt"));
        assert_eq!(r.jwks, Some(serde_json::json!({"keys": []})));
        assert_eq!(r.max_access_token_lifetime, Some(600));
        assert_eq!((r.refresh_idle_lifetime, r.refresh_absolute_lifetime), (Some(700), Some(800)));
        assert_eq!(r.refresh_reuse_interval, Some(5));
        assert_eq!(r.dpop_bound_access_tokens, Some(true));

        let minimal = ["clients", "create", "--table", "T", "--tenant", "/a", "--grant-types"];
        let (_, Operation::CreateClient(r)) =
            parse(&[&minimal[..], &["password", "--scope", "read"]].concat(), "")
        else {
            panic!()
        };
        assert_eq!((r.client_id, r.jwks, r.dpop_bound_access_tokens), (None, None, None));
    }

    #[test]
    fn updates_carry_only_what_is_given() {
        let args = ["clients", "update", "--table", "T", "app", "--enabled", "false"];
        let (_, Operation::UpdateClient(id, patch)) = parse(&args, "") else { panic!() };
        assert_eq!((id.as_str(), patch.enabled), ("app", Some(false)));
        assert!(patch.scope.is_none() && patch.grant_types.is_none() && patch.jwks.is_none());

        let args = ["clients", "update", "--table", "T", "app", "--grant-types", "password"];
        let (_, Operation::UpdateClient(_, patch)) = parse(&args, "") else { panic!() };
        assert_eq!(patch.grant_types, Some(vec!["password".to_owned()]));
        assert_eq!(patch.enabled, None);

        let args = ["users", "update", "--table", "T", "-u1", "--password-stdin"];
        let (_, Operation::UpdateUser(id, patch)) = parse(&args, "new-password\nrest\n") else {
            panic!()
        };
        assert_eq!(id, "-u1");
        assert_eq!((patch.password.as_deref(), patch.enabled), (Some("new-password"), None));
        let args = ["users", "update", "--table", "T", "u1", "--enabled", "true"];
        let (_, Operation::UpdateUser(_, patch)) = parse(&args, "unread\n") else { panic!() };
        assert_eq!((patch.password, patch.enabled), (None, Some(true)));
    }

    /// The password comes from standard input, never the command line.
    #[test]
    fn users_create_reads_the_password_from_stdin_only() {
        let args = ["users", "create", "--table", "T", "--tenant", "/acme", "--username", "bob"];
        let (_, Operation::CreateUser(user)) = parse(&args, "bobs-password\r\n") else { panic!() };
        assert_eq!((user.tenant.as_str(), user.username.as_str()), ("/acme", "bob"));
        assert_eq!(user.password, "bobs-password");
        let with_flag = [&args[..], &["--password", "x"]].concat();
        assert!(Cli::try_parse_from([&["tokenctl"][..], &with_flag].concat()).is_err());
    }

    #[test]
    fn lists_rotation_and_the_rest_map_to_their_requests() {
        let args = ["tenants", "list", "--table", "T", "--tenant", "/a", "--limit", "5"];
        let (_, Operation::Tenants(q)) = parse(&args, "") else { panic!() };
        assert_eq!((q.tenant.as_deref(), q.limit, q.cursor), (Some("/a"), Some(5), None));
        let args = ["users", "sessions", "--table", "T", "u1", "--cursor", "-abc"];
        let (_, Operation::Sessions(id, q)) = parse(&args, "") else { panic!() };
        assert_eq!((id.as_str(), q.tenant, q.cursor.as_deref()), ("u1", None, Some("-abc")));
        let args = ["clients", "rotate-secret", "--table", "T", "app"];
        let (_, Operation::RotateSecret(_, r)) = parse(&args, "") else { panic!() };
        assert_eq!(r.previous_secret_valid_for, None);
        let args = [&args[..], &["--previous-secret-valid-for", "300"]].concat();
        let (_, Operation::RotateSecret(_, r)) = parse(&args, "") else { panic!() };
        assert_eq!(r.previous_secret_valid_for, Some(300));
        for (args, expected) in [
            (&["tenants", "create", "--table", "T", "--path", "/a"][..], "CreateTenant"),
            (&["tenants", "delete", "--table", "T", "--path", "/a"], "DeleteTenant"),
            (&["clients", "list", "--table", "T", "--tenant", "/a"], "Clients"),
            (&["clients", "show", "--table", "T", "app"], "Client"),
            (&["clients", "delete", "--table", "T", "app"], "DeleteClient"),
            (&["users", "list", "--table", "T", "--tenant", "/a"], "Users"),
            (&["users", "show", "--table", "T", "u1"], "User"),
            (&["users", "delete", "--table", "T", "u1"], "DeleteUser"),
            (&["users", "unlock", "--table", "T", "u1"], "UnlockUser"),
            (&["sessions", "end", "--table", "T", "g1"], "EndSession"),
        ] {
            let (table, operation) = parse(args, "");
            assert_eq!(table, "T");
            let debug = format!("{operation:?}");
            assert!(debug.starts_with(&format!("{expected}(")), "{args:?}: {debug}");
        }
    }

    /// The commands end to end short of the table: parsed, performed by the service as the
    /// operator on a memory store, answered as JSON.
    #[tokio::test]
    async fn commands_run_through_the_admin_service_as_the_operator() {
        use std::sync::Arc;
        use token_service::clock::ManualClock;
        use token_service::password::{HashParams, Passwords};
        use token_service::store::Stores;
        use token_service::store::memory::MemoryStore;

        let passwords =
            Passwords::new(HashParams { memory_kib: 64, iterations: 1, parallelism: 1 });
        let clock = Arc::new(ManualClock::new(1_800_000_000));
        let stores = Stores::all(Arc::new(MemoryStore::new()));
        let service = AdminService::for_operator(stores, passwords, clock, 0, Default::default());
        let run = async |args: &[&str], stdin: &str| perform(&service, parse(args, stdin).1).await;
        fn with<'a>(args: &[&'a str]) -> Vec<&'a str> {
            [args, &["--table", "T"][..]].concat()
        }

        let tenant = run(&with(&["tenants", "create", "--path", "/acme"]), "").await.unwrap();
        assert_eq!(tenant, Some(serde_json::json!({"path": "/acme"})));
        let taken = run(&with(&["tenants", "create", "--path", "/acme"]), "").await.unwrap_err();
        assert_eq!(taken.code(), "conflict");

        let create = ["clients", "create", "--tenant", "/acme", "--grant-types", "password"];
        let created =
            run(&with(&[&create[..], &["--scope", "read", "--client-id", "app"]].concat()), "")
                .await
                .unwrap()
                .unwrap();
        assert_eq!(created["client_id"], "app");
        assert!(created["client_secret"].as_str().is_some_and(|s| s.len() >= 32), "{created}");
        let shown = run(&with(&["clients", "show", "app"]), "").await.unwrap().unwrap();
        assert_eq!(shown["enabled"], true);
        assert!(shown.get("client_secret").is_none(), "{shown}");
        let updated = run(&with(&["clients", "update", "app", "--enabled", "false"]), "")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated["enabled"], false);
        let rotated = run(&with(&["clients", "rotate-secret", "app"]), "").await.unwrap().unwrap();
        assert_ne!(rotated["client_secret"], created["client_secret"]);
        let listed = run(&with(&["clients", "list", "--tenant", "/acme"]), "").await.unwrap();
        assert_eq!(listed.unwrap()["items"][0]["client_id"], "app");

        let user = ["users", "create", "--tenant", "/acme", "--username", "bob"];
        let user = run(&with(&user), "bobs-password-1\n").await.unwrap().unwrap();
        let id = user["id"].as_str().unwrap().to_owned();
        assert_eq!(user["username"], "bob");
        let short = run(&with(&["users", "update", &id, "--password-stdin"]), "x\n").await;
        assert!(short.unwrap_err().to_string().starts_with("password:"), "the service's rule");
        assert_eq!(run(&with(&["users", "unlock", &id]), "").await.unwrap(), None);
        let sessions = run(&with(&["users", "sessions", &id]), "").await.unwrap().unwrap();
        assert_eq!(sessions["items"], serde_json::json!([]));
        assert_eq!(run(&with(&["users", "delete", &id]), "").await.unwrap(), None);
        let gone = run(&with(&["users", "show", &id]), "").await.unwrap_err();
        assert_eq!(gone.code(), "not_found");

        let occupied = run(&with(&["tenants", "delete", "--path", "/acme"]), "").await;
        assert_eq!(occupied.unwrap_err().code(), "conflict");
        assert_eq!(run(&with(&["clients", "delete", "app"]), "").await.unwrap(), None);
        assert_eq!(run(&with(&["tenants", "delete", "--path", "/acme"]), "").await.unwrap(), None);
    }

    #[test]
    fn a_table_is_required() {
        if std::env::var_os("TABLE_NAME").is_none() {
            assert!(Cli::try_parse_from(["tokenctl", "clients", "show", "app"]).is_err());
        }
    }
}
