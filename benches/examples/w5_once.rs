//! Runs W5 once for profiling and prints what the pipeline did:
//! `cargo run --release -p raft-benches --example w5_once -- core|rs [batch] [latency_rounds]`.
fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "core".into());
    if which != "core" && which != "rs" {
        eprintln!("{which:?}: expected core (raft-core) or rs (raft-rs)");
        std::process::exit(2);
    }
    let arg = |n: usize, default: u64| {
        std::env::args()
            .nth(n)
            .map_or(default, |s| match s.parse() {
                Ok(n) if n > 0 => n,
                _ => {
                    eprintln!("argument {n}, {s:?}: not a positive count");
                    std::process::exit(2)
                }
            })
    };
    let batch = arg(2, raft_benches::BATCH_LARGE as u64) as usize;
    let latency_rounds = arg(3, raft_benches::PERSIST_LATENCY_ROUNDS);
    let stats = if which == "rs" {
        raft_benches::rraft::raft_rs_three_nodes_pipelined(100_000, 128, batch, latency_rounds)
    } else {
        raft_benches::ours::core_three_nodes_pipelined(
            100_000,
            128,
            batch,
            latency_rounds,
            raft_benches::ours::PayloadAlloc::Arena,
        )
    };
    println!("{which} {stats:?}");
}
