#![no_main]
//! Fuzz target: see raft_core::fuzzing::decode_and_step.
libfuzzer_sys::fuzz_target!(|data: &[u8]| raft_core::fuzzing::decode_and_step(data));
