//! `tokenctl`: the local server and the admin commands of the token service.

pub mod admin;
pub mod keys;
pub mod manage;
pub mod server;
