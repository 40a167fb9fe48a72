#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| token_service::fuzzing::client_assertion(data));
