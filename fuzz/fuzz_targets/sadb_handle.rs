//! The simulated kernel's request path (body in `fuzz/bodies.rs`).
#![no_main]

#[path = "../bodies.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::sadb_handle(data));
