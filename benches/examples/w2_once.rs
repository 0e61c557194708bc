//! Runs W2 for profiling: `cargo run --release -p raft-benches --example w2_once -- core|rs`.
fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "core".into());
    if which != "core" && which != "rs" {
        eprintln!("{which:?}: expected core (raft-core) or rs (raft-rs)");
        std::process::exit(2);
    }
    let payload = [0xA5u8; 128];
    let batch = raft_benches::BATCH_LARGE;
    if which == "rs" {
        let mut s = raft_benches::rraft::RaftRsSingle::new();
        for _ in 0..50_000 {
            s.propose_commit_apply_batch(&payload, batch);
        }
        println!("rs applied {}", s.applied_count());
    } else {
        let mut s = raft_benches::ours::CoreSingle::new();
        for _ in 0..50_000 {
            s.propose_commit_apply_batch(&payload, batch);
        }
        println!("core applied {}", s.applied_count());
    }
}
