//! Seeds pass end to end, and a sweep reports in the documented form.

use raft_sim::sweep::{SweepConfig, sweep};
use raft_sim::{Settings, run};

#[test]
fn first_twelve_seeds_pass_every_check() {
    for seed in 0..12 {
        let r = run(seed, &Settings::default());
        assert!(r.violation.is_none(), "{}", r.failure_text());
        assert!(r.liveness_election_us.is_some() && r.liveness_converge_us.is_some());
        assert!(r.ops_answered > 0, "seed {seed}: clients made progress");
    }
}

#[test]
fn sweep_summary_line_has_the_documented_fields() {
    let s = sweep(&SweepConfig {
        start: 100,
        seeds: 4,
        jobs: 2,
        time_limit: None,
        settings: Settings::default(),
    });
    assert_eq!(s.seeds, 4);
    assert!(s.failures.is_empty(), "{}", s.failures[0].failure_text());
    let line = s.line();
    let keys: Vec<&str> = line
        .split(' ')
        .map(|kv| kv.split('=').next().unwrap_or(""))
        .collect();
    assert_eq!(
        keys,
        [
            "seeds",
            "failed",
            "sim_secs",
            "wall_secs",
            "speedup",
            "events"
        ],
        "{line}"
    );
    assert!(line.starts_with("seeds=4 failed=0 "), "{line}");
    assert!(line.contains("x events="), "{line}");
}

#[test]
fn failure_report_names_property_seed_options_and_replay_command() {
    let settings = Settings {
        bugs: raft_sim::options::PlantedBugs {
            ack_before_durable: true,
            ..Default::default()
        },
        ..Settings::default()
    };
    let r = run(3, &settings);
    let text = r.failure_text();
    assert!(text.contains("durable before send"), "{text}");
    assert!(text.contains("seed 3"), "{text}");
    assert!(text.contains("network:"), "{text}");
    assert!(
        text.contains("cargo run --release -p raft-sim -- run --seed 3 --bug ack-before-durable"),
        "{text}"
    );
}
