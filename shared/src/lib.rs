//! The OAuth2 token service's library: domain rules, token signing and verification, storage
//! traits and their in-memory implementation, and the HTTP handlers every Lambda function and
//! the local server share.

pub mod admin;
pub mod api;
pub mod auth;
pub mod authorizer;
pub mod batch;
pub mod client_assertion;
pub mod clock;
pub mod config;
pub mod domain;
pub mod dpop;
pub mod endpoints;
pub mod error;
pub mod files;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod introspection;
pub mod jwt;
pub mod key_parameters;
pub mod keys;
pub mod logging;
pub mod login_defence;
pub mod password;
pub mod revocation;
pub mod seed;
pub mod setup;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod token_cache;
pub mod verify;

pub use error::Error;
