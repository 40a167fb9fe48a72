//! Empty: the fixture exists for its Cargo.lock (see Cargo.toml).
