#![no_main]
//! Fuzz target: see raft_core::fuzzing::log_operations.
libfuzzer_sys::fuzz_target!(|data: &[u8]| raft_core::fuzzing::log_operations(data));
