#![no_main]
//! Fuzz target: see raft_core::fuzzing::conf_change_sequence.
libfuzzer_sys::fuzz_target!(|data: &[u8]| raft_core::fuzzing::conf_change_sequence(data));
