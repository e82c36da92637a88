//! libFuzzer entry point for the `txn_state_log` body in `fuzz/bodies/mod.rs` (the same body
//! `tests/fuzz_corpus_replay.rs` runs over the checked-in corpus).
#![no_main]

#[path = "../bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::txn_state_log(data));
