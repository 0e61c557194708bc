//! Runs W1 (or W2, with a batch of 64) for profiling:
//! `cargo run --release -p raft-benches --example w1_once -- core|rs [batch]`.
//! 2,000,000 entries in all, `batch` proposed per Ready (default 1).
fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "core".into());
    if which != "core" && which != "rs" {
        eprintln!("{which:?}: expected core (raft-core) or rs (raft-rs)");
        std::process::exit(2);
    }
    let batch: usize = std::env::args().nth(2).map_or(1, |s| match s.parse() {
        Ok(n) if n > 0 => n,
        _ => {
            eprintln!("batch {s:?}: not a positive count");
            std::process::exit(2)
        }
    });
    let rounds = 2_000_000 / batch;
    let payload = [0xA5u8; 128];
    if which == "rs" {
        let mut s = raft_benches::rraft::RaftRsSingle::new();
        for _ in 0..rounds {
            s.propose_commit_apply_batch(&payload, batch);
        }
        println!("rs applied {}", s.applied_count());
    } else {
        let mut s = raft_benches::ours::CoreSingle::new();
        for _ in 0..rounds {
            s.propose_commit_apply_batch(&payload, batch);
        }
        println!("core applied {}", s.applied_count());
    }
}
