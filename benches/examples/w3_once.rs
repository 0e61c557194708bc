//! Runs W3 once for profiling: `cargo run --release -p raft-benches --example w3_once -- core|rs [batch]`.
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
    let n = if which == "rs" {
        raft_benches::rraft::raft_rs_three_nodes(100_000, 128, batch)
    } else {
        raft_benches::ours::core_three_nodes(
            100_000,
            128,
            batch,
            raft_benches::ours::PayloadAlloc::Arena,
        )
    };
    println!("{which} applied {n}");
}
