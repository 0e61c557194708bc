#![no_main]
//! Fuzz target: see raft_core::fuzzing::cluster_schedule.
libfuzzer_sys::fuzz_target!(|data: &[u8]| raft_core::fuzzing::cluster_schedule(data));
