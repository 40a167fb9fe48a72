//! Replays the fuzz targets' committed inputs under plain `cargo test`: every seed in
//! `fuzz/seeds/<target>/` and every input that once crashed a target or broke one of its
//! properties, kept in `fuzz/regressions/<target>/`. Each goes through the same entry point as
//! the `cargo fuzz` target (`token_service::fuzzing`), so a fixed bug stays fixed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use token_service::fuzzing;

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let hidden =
                path.file_name().is_some_and(|name| name.to_string_lossy().starts_with('.'));
            if path.is_file() && !hidden {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn replay(target: &str, entry_point: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no seeds found for fuzz target {target}");
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("readable input");
            catch_unwind(AssertUnwindSafe(|| entry_point(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "fuzz target {target} fails on: {failed:#?}");
}

#[test]
fn form() {
    replay("form", fuzzing::form);
}

#[test]
fn basic_auth() {
    replay("basic_auth", fuzzing::basic_auth);
}

#[test]
fn jwt_verify() {
    replay("jwt_verify", fuzzing::jwt_verify);
}

#[test]
fn jwt_signed() {
    replay("jwt_signed", fuzzing::jwt_signed);
}

#[test]
fn domain() {
    replay("domain", fuzzing::domain);
}

#[test]
fn batch_body() {
    replay("batch_body", fuzzing::batch_body);
}

#[test]
fn client_assertion() {
    replay("client_assertion", fuzzing::client_assertion);
}

#[test]
fn dpop_proof() {
    replay("dpop_proof", fuzzing::dpop_proof);
}
