//! Runs every fuzz target body over its committed corpus (`fuzz/corpus/<target>/`), so the
//! inputs the fuzzer found interesting — and every crash it found, once fixed — are replayed
//! on stable in every test run.

use std::path::Path;

fn run_corpus(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the {target} corpus is empty");
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
        body(&data);
    }
}

#[test]
fn decode_and_step_corpus() {
    run_corpus("decode_and_step", raft_core::fuzzing::decode_and_step);
}

#[test]
fn cluster_schedule_corpus() {
    run_corpus("cluster_schedule", raft_core::fuzzing::cluster_schedule);
}

#[test]
fn conf_change_sequence_corpus() {
    run_corpus(
        "conf_change_sequence",
        raft_core::fuzzing::conf_change_sequence,
    );
}

#[test]
fn log_operations_corpus() {
    run_corpus("log_operations", raft_core::fuzzing::log_operations);
}
