#![no_main]
//! Fuzz target: the whole simulation with the input as its source of decisions; see
//! raft_sim::fuzzing::simulation.
libfuzzer_sys::fuzz_target!(|data: &[u8]| raft_sim::fuzzing::simulation(data));
