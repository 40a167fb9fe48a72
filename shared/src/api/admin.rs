//! The admin routes under `/admin/`: JSON in and out, every rule in [`crate::admin`].

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use super::client_auth::access_token;
use super::form::{Form, check_body_size};
use super::response::{Caching, json_response};
use crate::admin::{AdminService, Caller, ListQuery, parse_body};
use crate::error::Error;

pub const ADMIN_PREFIX: &str = "/admin/";

/// The route a path and method name, with the ids it carries.
enum Route<'a> {
    CreateTenant,
    ListTenants,
    DeleteTenant,
    CreateClient,
    ListClients,
    ReadClient(&'a str),
    UpdateClient(&'a str),
    DeleteClient(&'a str),
    RotateSecret(&'a str),
    CreateUser,
    ListUsers,
    ReadUser(&'a str),
    UpdateUser(&'a str),
    DeleteUser(&'a str),
    UnlockUser(&'a str),
    Sessions(&'a str),
    EndSession(&'a str),
}

/// The route, `NotFound` for an unknown path, `MethodNotAllowed` (with `Allow`) for a known
/// path and another method.
fn route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, Error> {
    let rest = path.strip_prefix(ADMIN_PREFIX).ok_or(Error::NotFound)?;
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().skip(1).any(|segment| segment.is_empty()) {
        return Err(Error::NotFound);
    }
    let route = match (segments.as_slice(), method.as_str()) {
        (["tenants"], "POST") => Route::CreateTenant,
        (["tenants"], "GET") => Route::ListTenants,
        (["tenants"], "DELETE") => Route::DeleteTenant,
        (["tenants"], _) => return Err(Error::MethodNotAllowed("GET, POST, DELETE")),
        (["clients"], "POST") => Route::CreateClient,
        (["clients"], "GET") => Route::ListClients,
        (["users"], "POST") => Route::CreateUser,
        (["users"], "GET") => Route::ListUsers,
        (["clients" | "users"], _) => return Err(Error::MethodNotAllowed("GET, POST")),
        (["clients", id], "GET") => Route::ReadClient(id),
        (["clients", id], "PATCH") => Route::UpdateClient(id),
        (["clients", id], "DELETE") => Route::DeleteClient(id),
        (["users", id], "GET") => Route::ReadUser(id),
        (["users", id], "PATCH") => Route::UpdateUser(id),
        (["users", id], "DELETE") => Route::DeleteUser(id),
        (["clients" | "users", _], _) => return Err(Error::MethodNotAllowed("GET, PATCH, DELETE")),
        (["clients", id, "secret"], "POST") => Route::RotateSecret(id),
        (["clients", _, "secret"], _) => return Err(Error::MethodNotAllowed("POST")),
        (["users", id, "unlock"], "POST") => Route::UnlockUser(id),
        (["users", _, "unlock"], _) => return Err(Error::MethodNotAllowed("POST")),
        (["users", id, "sessions"], "GET") => Route::Sessions(id),
        (["users", _, "sessions"], _) => return Err(Error::MethodNotAllowed("GET")),
        (["sessions", id], "DELETE") => Route::EndSession(id),
        (["sessions", _], _) => return Err(Error::MethodNotAllowed("DELETE")),
        _ => return Err(Error::NotFound),
    };
    Ok(route)
}

fn ok<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    json_response(status, body, Caching::NoStore)
}

fn no_content() -> Response<Body> {
    let mut response = super::response::empty_response();
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// The query string's list parameters (`limit`, `cursor`, `tenant`), and nothing else.
fn list_query(request: &Request) -> Result<ListQuery, Error> {
    let form = Form::parse_query(request.uri().query())?;
    let limit = form
        .get("limit")
        .map(|raw| raw.parse().map_err(|_| Error::invalid_request("limit: must be 1 to 100")))
        .transpose()?;
    form.only(&["limit", "cursor", "tenant"])?;
    Ok(ListQuery {
        limit,
        cursor: form.get("cursor").map(str::to_owned),
        tenant: form.get("tenant").map(str::to_owned),
    })
}

async fn caller(service: &AdminService, request: &Request) -> Result<Caller, Error> {
    let token = access_token(request, request.uri().path())?.ok_or_else(|| {
        Error::InvalidToken("an access token with the admin scope is required".into())
    })?;
    service.caller(&token).await
}

pub async fn handle(service: &AdminService, request: &Request) -> Result<Response<Body>, Error> {
    let path = request.uri().path();
    let route = route(request.method(), path)?;
    let body = request.body().as_ref();
    check_body_size(body)?;
    let caller = caller(service, request).await?;
    let response = match route {
        Route::CreateTenant => {
            ok(StatusCode::CREATED, &service.create_tenant(&caller, parse_body(body)?).await?)
        }
        Route::ListTenants => {
            ok(StatusCode::OK, &service.tenants(&caller, &list_query(request)?).await?)
        }
        Route::DeleteTenant => {
            let form = Form::parse_query(request.uri().query())?;
            form.only(&["path"])?;
            let path = form.get("path").ok_or_else(|| Error::invalid_request("path: required"))?;
            service.delete_tenant(&caller, path).await?;
            no_content()
        }
        Route::CreateClient => {
            ok(StatusCode::CREATED, &service.create_client(&caller, parse_body(body)?).await?)
        }
        Route::ListClients => {
            ok(StatusCode::OK, &service.clients(&caller, &list_query(request)?).await?)
        }
        Route::ReadClient(id) => ok(StatusCode::OK, &service.client(&caller, &decoded(id)?).await?),
        Route::UpdateClient(id) => ok(
            StatusCode::OK,
            &service.update_client(&caller, &decoded(id)?, parse_body(body)?).await?,
        ),
        Route::DeleteClient(id) => {
            service.delete_client(&caller, &decoded(id)?).await?;
            no_content()
        }
        Route::RotateSecret(id) => {
            let rotation = if body.iter().all(u8::is_ascii_whitespace) {
                Default::default()
            } else {
                parse_body(body)?
            };
            ok(StatusCode::OK, &service.rotate_secret(&caller, &decoded(id)?, rotation).await?)
        }
        Route::CreateUser => {
            ok(StatusCode::CREATED, &service.create_user(&caller, parse_body(body)?).await?)
        }
        Route::ListUsers => {
            ok(StatusCode::OK, &service.users(&caller, &list_query(request)?).await?)
        }
        Route::ReadUser(id) => ok(StatusCode::OK, &service.user(&caller, &decoded(id)?).await?),
        Route::UpdateUser(id) => ok(
            StatusCode::OK,
            &service.update_user(&caller, &decoded(id)?, parse_body(body)?).await?,
        ),
        Route::DeleteUser(id) => {
            service.delete_user(&caller, &decoded(id)?).await?;
            no_content()
        }
        Route::UnlockUser(id) => {
            service.unlock_user(&caller, &decoded(id)?).await?;
            no_content()
        }
        Route::Sessions(id) => ok(
            StatusCode::OK,
            &service.sessions(&caller, &decoded(id)?, &list_query(request)?).await?,
        ),
        Route::EndSession(id) => {
            service.end_session(&caller, &decoded(id)?).await?;
            no_content()
        }
    };
    Ok(response)
}

/// A path segment, percent-decoded.
fn decoded(segment: &str) -> Result<String, Error> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| Error::invalid_request("a path segment is not valid UTF-8"))
}
