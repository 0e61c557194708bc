//! Determinism: a seed names one run, bit for bit.
//!
//! `same_seed_runs_the_same_events_twice` compares whole-run trace hashes of repeated runs.
//! `golden_traces_are_unchanged` pins the hash of a few fixed seeds in `golden/traces.txt`:
//! any change to raft-core's behaviour, the simulator or a dependency that changes what a seed
//! means changes them. That is expected when behaviour changes on purpose; regenerate with
//! `RAFT_SIM_BLESS=1 cargo test -p raft-sim --test determinism` and review the diff.

use raft_sim::{Settings, run};
use std::fmt::Write as _;

const GOLDEN_SEEDS: [u64; 4] = [1, 2, 3, 42];
const GOLDEN_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/traces.txt");

#[test]
fn same_seed_runs_the_same_events_twice() {
    for seed in [0, 5, 9] {
        let a = run(seed, &Settings::default());
        let b = run(seed, &Settings::default());
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!((a.events, a.sim_us), (b.events, b.sim_us), "seed {seed}");
        assert_eq!(a.committed, b.committed, "seed {seed}");
    }
}

#[test]
fn readable_tracing_does_not_change_the_run() {
    let plain = run(4, &Settings::default());
    let traced = run(
        4,
        &Settings {
            trace: true,
            ..Settings::default()
        },
    );
    assert_eq!(plain.trace_hash, traced.trace_hash);
    let text = traced.trace.expect("a readable trace");
    assert!(text.contains("MsgApp"), "the trace names messages");
    assert!(text.contains("persist #"), "the trace names writes");
    assert!(
        text.contains("liveness phase"),
        "the trace marks the phases"
    );
}

fn summary(seed: u64) -> String {
    let r = run(seed, &Settings::default());
    assert!(r.violation.is_none(), "{}", r.failure_text());
    format!(
        "seed={seed} hash={:016x} events={} sim_us={} committed={} leader_terms={}",
        r.trace_hash, r.events, r.sim_us, r.committed, r.leader_terms
    )
}

#[test]
fn golden_traces_are_unchanged() {
    let mut now = String::new();
    for seed in GOLDEN_SEEDS {
        let _ = writeln!(now, "{}", summary(seed));
    }
    if std::env::var_os("RAFT_SIM_BLESS").is_some() {
        std::fs::write(GOLDEN_FILE, &now).expect("write the golden file");
        return;
    }
    let want = std::fs::read_to_string(GOLDEN_FILE).unwrap_or_default();
    assert!(
        want == now,
        "golden traces changed (a trace-changing event: rerun with RAFT_SIM_BLESS=1 and review \
         the diff if intended)\n--- golden\n{want}--- now\n{now}"
    );
}
