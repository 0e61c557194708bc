//! Sweeps spread over shards: `sweep --shard K/N` over all N shards runs exactly the seeds of
//! the unsharded sweep, and `merge` of their JSON summaries gives the unsharded summary (every
//! field but wall time and speed, which depend on the machine).

use raft_sim::Settings;
use raft_sim::options::PlantedBugs;
use raft_sim::summary::{MergeError, SweepFile, merge};
use raft_sim::sweep::{Shard, SweepConfig, sweep, sweep_shard};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn config(start: u64, seeds: u64, settings: Settings) -> SweepConfig {
    SweepConfig {
        start,
        seeds,
        jobs: 2,
        time_limit: None,
        settings,
    }
}

fn read_before_apply() -> Settings {
    Settings {
        bugs: PlantedBugs {
            read_before_apply: true,
            ..Default::default()
        },
        ..Settings::default()
    }
}

/// The summary line without its wall-clock fields.
fn deterministic(line: &str) -> String {
    line.split(' ')
        .filter(|kv| !kv.starts_with("wall_secs=") && !kv.starts_with("speedup="))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn shards_cover_exactly_the_seeds_of_the_unsharded_sweep() {
    // 13 seeds over 4 shards: shards of 4, 3, 3 and 3 seeds.
    let cfg = config(50, 13, Settings::default());
    let whole = sweep(&cfg);
    assert_eq!(whole.ran, (50..63).collect::<Vec<u64>>());
    let mut union = BTreeSet::new();
    for k in 1..=4 {
        let shard = Shard::new(k, 4).expect("a valid shard");
        let part = sweep_shard(&cfg, shard);
        assert_eq!(part.seeds, shard.len(13), "shard {shard}");
        assert_eq!(part.ran, shard.seeds(50, 13).collect::<Vec<u64>>());
        for &s in &part.ran {
            assert!(shard.contains(50, s), "seed {s} is not in shard {shard}");
            assert_eq!((s - 50) % 4, k - 1, "seed {s} in shard {shard}");
            assert!(union.insert(s), "seed {s} ran in two shards");
        }
    }
    assert_eq!(union.into_iter().collect::<Vec<u64>>(), whole.ran);
}

#[test]
fn merged_shard_summaries_equal_the_unsharded_summary() {
    // A planted bug, so that the summaries carry failures (seeds 3 and 8 fail; all 12
    // reach the liveness phase).
    let cfg = config(0, 12, read_before_apply());
    let whole = SweepFile::of(&cfg, Shard::WHOLE, &sweep(&cfg));
    assert!(whole.failed > 0, "the planted bug fails some seeds");
    assert!(whole.failed < whole.seeds && !whole.election_us.is_empty());
    let files: Vec<SweepFile> = (1..=3)
        .map(|k| {
            let shard = Shard::new(k, 3).expect("a valid shard");
            let file = SweepFile::of(&cfg, shard, &sweep_shard(&cfg, shard));
            // Through the file's text, as a CI job would hand it on.
            let back = SweepFile::from_json(&file.to_json()).expect("a summary reads back");
            assert_eq!(back, file);
            back
        })
        .collect();
    let merged = merge(&files).expect("three shards of one sweep merge");
    assert_eq!(merged.shard, Shard::WHOLE);
    assert_eq!(merged.seeds, whole.seeds);
    assert_eq!(merged.failed, whole.failed);
    assert_eq!(merged.failures, whole.failures);
    assert_eq!(merged.events, whole.events);
    assert_eq!(merged.sim_us, whole.sim_us);
    assert_eq!(merged.sim_secs, whole.sim_secs);
    assert_eq!(merged.election_us, whole.election_us);
    assert_eq!(merged.features, whole.features);
    assert_eq!(merged.settings, "--bug read-before-apply");
    let (m, w) = (merged.report_lines(), whole.report_lines());
    assert_eq!(
        m[..m.len() - 1],
        w[..w.len() - 1],
        "failed seeds, features, elections"
    );
    assert_eq!(
        deterministic(&m[m.len() - 1]),
        deterministic(&w[w.len() - 1])
    );
    // Wall time is summed over shards (worker-seconds).
    let wall: f64 = files.iter().map(|f| f.wall_secs).sum();
    assert_eq!(merged.wall_secs, wall);
    let f = &merged.failures[0];
    assert!(
        f.replay
            .contains(&format!("--seed {} --bug read-before-apply", f.seed))
    );
    assert!(f.options.contains("network:"), "{}", f.options);
}

#[test]
fn shard_flags_parse_and_bad_ones_are_refused() {
    assert_eq!("2/8".parse::<Shard>(), Ok(Shard { index: 2, count: 8 }));
    assert_eq!("1/1".parse::<Shard>(), Ok(Shard::WHOLE));
    for bad in ["0/4", "5/4", "1/0", "4", "a/4", "1/2/3", "-1/4", ""] {
        let e = bad.parse::<Shard>().expect_err(bad);
        assert!(e.contains("shard"), "{bad}: {e}");
    }
    // 10 seeds over 3 shards: 4, 3 and 3, the first holding 0, 3, 6, 9.
    let lens: Vec<u64> = (1..=3)
        .map(|k| Shard { index: k, count: 3 }.len(10))
        .collect();
    assert_eq!(lens, [4, 3, 3]);
    let first: Vec<u64> = Shard { index: 1, count: 3 }.seeds(0, 10).collect();
    assert_eq!(first, [0, 3, 6, 9]);
    assert!(Shard { index: 3, count: 4 }.is_empty(2));
}

fn tiny(shard: Shard) -> SweepFile {
    let mut f = SweepFile::of(
        &config(0, 4, Settings::default()),
        shard,
        &Default::default(),
    );
    f.seeds = shard.len(4);
    f
}

#[test]
fn summaries_that_are_not_one_sweep_are_not_merged() {
    let s = |k, n| Shard { index: k, count: n };
    assert_eq!(merge(&[]), Err(MergeError::Empty));
    assert_eq!(
        merge(&[tiny(s(1, 3)), tiny(s(3, 3))]),
        Err(MergeError::Missing(vec![s(2, 3)]))
    );
    assert_eq!(
        merge(&[tiny(s(1, 2)), tiny(s(1, 2))]),
        Err(MergeError::Duplicate(s(1, 2)))
    );
    let mut other = tiny(s(2, 2));
    other.settings = "--profile churn".into();
    assert!(matches!(
        merge(&[tiny(s(1, 2)), other]),
        Err(MergeError::Mismatch(_))
    ));
    let mut other = tiny(s(2, 2));
    other.start = 1000;
    assert!(matches!(
        merge(&[tiny(s(1, 2)), other]),
        Err(MergeError::Mismatch(_))
    ));
    assert!(matches!(
        merge(&[tiny(s(1, 2)), tiny(s(2, 3))]),
        Err(MergeError::Mismatch(_))
    ));
    // An impossible shard in a hand-made file is refused, not indexed.
    assert!(matches!(
        merge(&[
            tiny(s(1, 2)),
            SweepFile {
                shard: s(3, 2),
                ..tiny(s(2, 2))
            }
        ]),
        Err(MergeError::Parse(_))
    ));
    assert!(merge(&[tiny(s(2, 2)), tiny(s(1, 2))]).is_ok());
}

#[test]
fn unreadable_summaries_get_a_clear_error() {
    assert!(matches!(
        SweepFile::from_json("not json"),
        Err(MergeError::Parse(_))
    ));
    assert!(matches!(
        SweepFile::from_json("{\"format\": 1}"),
        Err(MergeError::Parse(_))
    ));
    let json = tiny(Shard::WHOLE).to_json();
    let v2 = json.replacen("\"format\": 1", "\"format\": 2", 1);
    assert_eq!(SweepFile::from_json(&v2), Err(MergeError::Format(2)));
    let bad_shard = json.replacen("\"index\": 1", "\"index\": 7", 1);
    assert!(matches!(
        SweepFile::from_json(&bad_shard),
        Err(MergeError::Parse(_))
    ));
    let too_many = json.replacen("\"seeds\": 4", "\"seeds\": 5", 1);
    assert!(matches!(
        SweepFile::from_json(&too_many),
        Err(MergeError::Parse(_))
    ));
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("raft-sim-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir.join(name)
}

fn raft_sim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_raft-sim"))
        .args(args)
        .output()
        .expect("raft-sim runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_command_line_shards_writes_json_and_merges() {
    let (a, b) = (scratch("a.json"), scratch("b.json"));
    let (a, b) = (a.to_str().expect("UTF-8"), b.to_str().expect("UTF-8"));
    let common = [
        "sweep",
        "--seeds",
        "6",
        "--jobs",
        "1",
        "--bug",
        "ack-before-durable",
    ];
    let mut whole_args = common.to_vec();
    whole_args.extend(["--json", a]);
    let (code, whole, _) = raft_sim(&whole_args);
    assert_eq!(code, 1, "a failing sweep exits 1");
    let whole_last = whole.lines().last().expect("a summary line").to_string();
    for (k, path) in [("1/2", a), ("2/2", b)] {
        let mut args = common.to_vec();
        args.extend(["--shard", k, "--json", path]);
        let (code, _, err) = raft_sim(&args);
        assert!(code == 0 || code == 1, "shard {k}: {err}");
    }
    let (code, merged, err) = raft_sim(&["merge", a, b]);
    assert_eq!(code, 1, "a merge with failures exits 1: {err}");
    let merged_last = merged.lines().last().expect("a summary line");
    assert!(merged_last.starts_with("seeds=6 failed="), "{merged}");
    assert_eq!(deterministic(merged_last), deterministic(&whole_last));
    assert!(merged.contains("replay: cargo run --release -p raft-sim -- run --seed "));
    // One shard of two: refused, nothing merged.
    let (code, out, err) = raft_sim(&["merge", a]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("shards missing: 2/2"), "{err}");
    // Not a summary.
    std::fs::write(b, "{ not json").expect("write");
    let (code, _, err) = raft_sim(&["merge", a, b]);
    assert_eq!(code, 2);
    assert!(err.contains("not a sweep summary"), "{err}");
    // A shard that does not exist.
    let (code, _, err) = raft_sim(&["sweep", "--seeds", "2", "--shard", "3/2"]);
    assert_eq!(code, 2);
    assert!(err.contains("K must be between 1 and 2"), "{err}");
}
