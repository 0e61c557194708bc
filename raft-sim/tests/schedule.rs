//! Schedules (a run as data): a recorded run replays bit for bit, from its file too, and a
//! shrunk schedule of a planted bug replays to the same violation.

use raft_sim::checker::Property;
use raft_sim::options::PlantedBugs;
use raft_sim::schedule::{self, Schedule};
use raft_sim::shrink::{self, Runs};
use raft_sim::{Settings, run};
use std::process::Command;

fn bug(b: PlantedBugs) -> Settings {
    Settings {
        bugs: b,
        ..Settings::default()
    }
}

fn ack_before_durable() -> PlantedBugs {
    PlantedBugs {
        ack_before_durable: true,
        ..PlantedBugs::default()
    }
}

#[test]
fn a_recorded_run_replays_bit_for_bit_from_its_file() {
    let cases = [
        (0, Settings::default()),
        (5, Settings::default()),
        (0, bug(ack_before_durable())),
    ];
    for (seed, settings) in cases {
        let plain = run(seed, &settings);
        let (recorded, s) = schedule::record(seed, &settings);
        assert_eq!(
            recorded.trace_hash, plain.trace_hash,
            "recording changes nothing"
        );
        let back = Schedule::parse(&s.to_text()).expect("a written schedule parses");
        assert_eq!(back, s);
        let (replayed, words) = schedule::replay(&back, false);
        assert_eq!(
            words, s.words,
            "seed {seed}: the replay draws exactly the recorded words"
        );
        assert_eq!(replayed.trace_hash, plain.trace_hash, "seed {seed}");
        assert_eq!(replayed.events, plain.events, "seed {seed}");
        assert_eq!(replayed.sim_us, plain.sim_us, "seed {seed}");
        assert_eq!(replayed.committed, plain.committed, "seed {seed}");
        assert_eq!(
            replayed.violation.map(|v| (v.property, v.detail, v.at_us)),
            plain.violation.map(|v| (v.property, v.detail, v.at_us)),
            "seed {seed}"
        );
    }
}

#[test]
fn an_edited_schedule_is_a_different_run() {
    let (_, mut s) = schedule::record(2, &Settings::default());
    let (a, _) = schedule::replay(&s, false);
    s.words.truncate(s.words.len() / 2);
    let (b, _) = schedule::replay(&s, false);
    assert_ne!(a.trace_hash, b.trace_hash, "the words decide the run");
}

fn shrinks_and_replays(settings: &Settings, seed: u64, want: Property) {
    let (report, s) = schedule::record(seed, settings);
    let v = report.violation.expect("the planted bug is caught");
    assert_eq!(v.property, want);
    let shrunk = shrink::shrink(s, want, &mut Runs(600));
    assert!(
        shrunk.after.events < report.events,
        "{} -> {}",
        report.events,
        shrunk.after.events
    );
    let back = Schedule::parse(&shrunk.schedule.to_text()).expect("the shrunk file parses");
    let (again, _) = schedule::replay(&back, false);
    let v = again
        .violation
        .as_ref()
        .expect("the shrunk schedule still fails");
    assert_eq!(v.property, want, "{}", v.detail);
    assert_eq!(again.trace_hash, shrunk.report.trace_hash);
    assert_eq!(back.expect, Some(schedule::Expect::of(&again)));
}

#[test]
fn a_shrunk_acknowledge_before_fsync_replays_to_the_same_violation() {
    shrinks_and_replays(&bug(ack_before_durable()), 0, Property::DurableBeforeSend);
}

#[test]
fn a_shrunk_lost_durability_replays_to_the_same_violation() {
    let b = PlantedBugs {
        ack_before_durable: true,
        skip_durable_before_send_check: true,
        ..PlantedBugs::default()
    };
    let settings = bug(b);
    let seed = (0..5)
        .find(|&s| run(s, &settings).violation.is_some())
        .expect("caught within 5 seeds");
    shrinks_and_replays(&settings, seed, Property::CommittedDurableOnQuorum);
}

/// The command line end to end: `shrink` writes a schedule that `replay` reproduces.
#[test]
fn the_shrink_command_writes_a_schedule_that_replay_reproduces() {
    let dir = std::env::temp_dir().join(format!("raft-sim-schedule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let file = dir.join("s.schedule");
    let bin = env!("CARGO_BIN_EXE_raft-sim");
    let out = Command::new(bin)
        .args([
            "shrink",
            "--seed",
            "0",
            "--bug",
            "ack-before-durable",
            "--time-limit",
            "20",
        ])
        .arg("--out")
        .arg(&file)
        .output()
        .expect("raft-sim runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("shrunk: events"), "{stdout}");
    assert!(stdout.contains("BROKEN: durable before send"), "{stdout}");
    let out = Command::new(bin)
        .arg("replay")
        .arg(&file)
        .output()
        .expect("raft-sim runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("matches the recorded run: yes"), "{stdout}");
    assert!(stdout.contains("violation=durable before send"), "{stdout}");
    std::fs::write(&file, "raft-sim schedule 1\nseed x\n").expect("write");
    let out = Command::new(bin)
        .arg("replay")
        .arg(&file)
        .output()
        .expect("raft-sim runs");
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad file is an error, not a panic"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
    let _ = std::fs::remove_dir_all(&dir);
}
