//! libFuzzer entry point for the `server_request` body in `fuzz/bodies/mod.rs` (the same body
//! `tests/fuzz_corpus_replay.rs` runs over the checked-in corpus with feature `server`).
#![no_main]

#[path = "../bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::server_request(data));
