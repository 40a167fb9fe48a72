//! The OAuth2 token service's library: domain rules, token signing and verification, storage
//! traits and their in-memory implementation, and the HTTP handlers every Lambda function and
//! the local server share.

pub mod api;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod seed;
pub mod setup;
pub mod store;
pub mod token;

pub use error::Error;
