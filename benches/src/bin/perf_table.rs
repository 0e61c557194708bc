//! Prints the README's performance table: CPU time per entry of W1 to W5 for raft-core and
//! raft-rs, and W6's peak memory, as markdown.
//!
//! raft-core is run twice: with its driver copying payloads into a shared buffer
//! ([`PayloadAlloc::Arena`], the main column) and into an allocation per payload
//! ([`PayloadAlloc::PerPayload`], as raft-rs's `Vec<u8>` API makes its driver do), so that
//! the table shows how much of the gap that choice accounts for.
//!
//! ```text
//! cargo run --release -p raft-benches --bin perf_table [-- --reps 5] [--no-w6]
//! ```
//!
//! Each workload does a fixed amount of work per run (below); a run's cost is the CPU time
//! of this thread (`CLOCK_THREAD_CPUTIME_ID`), so time spent descheduled on a busy machine
//! is not counted (caches and memory bandwidth shared with other jobs still are). Runs
//! alternate between the libraries, `--reps` of each (default 5), and the median is
//! reported. W1 and W2 time the proposal rounds only; W3 to W5 time whole runs, including
//! building the group and electing node 1, as the criterion benches do.
//!
//! W6 runs in child processes (this binary again, with `--w6-child <lib> <batch>`), one per
//! library and batch size, so that each peak belongs to one library alone.

use std::process::{Command, ExitCode};
use std::time::Duration;

use raft_benches::measure::{cpu_time_of, load_average};
use raft_benches::ours::{self, CoreSingle, PayloadAlloc};
use raft_benches::rraft::{self, RaftRsSingle};
use raft_benches::w6::{self, W6Report};
use raft_benches::{BATCH_LARGE, ENTRIES_THREE_NODES, Lib, PAYLOAD_LEN, PERSIST_LATENCY_ROUNDS};

/// Entries per W1 run (one per round).
const W1_ENTRIES: u64 = 200_000;
/// Entries per W2 run ([`BATCH_LARGE`] per round).
const W2_ENTRIES: u64 = 640_000;

/// One row of the table.
struct Workload {
    label: &'static str,
    /// Runs the workload once on `variant`; returns the entries applied and the CPU time
    /// spent.
    run: fn(Variant) -> (u64, Duration),
}

/// What a column of the table runs.
#[derive(Clone, Copy)]
enum Variant {
    Core(PayloadAlloc),
    Rs,
}

/// The columns, in the order runs alternate and the table prints them.
const VARIANTS: [Variant; 3] = [
    Variant::Core(PayloadAlloc::Arena),
    Variant::Core(PayloadAlloc::PerPayload),
    Variant::Rs,
];

const WORKLOADS: [Workload; 5] = [
    Workload {
        label: "W1: 1 node, 1 entry per Ready (200,000 entries)",
        run: w1,
    },
    Workload {
        label: "W2: 1 node, 64 entries per Ready (640,000 entries)",
        run: w2,
    },
    Workload {
        label: "W3: 3 nodes, 1 entry per round (100,000 entries)",
        run: |v| three_nodes(v, 1),
    },
    Workload {
        label: "W4: 3 nodes, 64 entries per round (100,000 entries)",
        run: |v| three_nodes(v, BATCH_LARGE),
    },
    Workload {
        label: "W5: W4 pipelined, each write durable 4 rounds late (100,000 entries)",
        run: w5,
    },
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--w6-child") {
        return w6_child(&args[1..]);
    }
    let mut reps = 5usize;
    let mut with_w6 = true;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--reps" => match it.next().and_then(|s| s.parse().ok()) {
                Some(n) if n > 0 => reps = n,
                _ => return usage("--reps takes a positive count"),
            },
            "--no-w6" => with_w6 = false,
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }

    let load_start = load_average().unwrap_or_else(|| "unknown".into());
    println!(
        "CPU time of the measuring thread per applied entry, median of {reps} runs per library \
         (runs alternate between the columns)."
    );
    println!();
    println!(
        "| workload | raft-core | raft-rs | raft-rs / raft-core | raft-core, a payload \
         allocation per entry | raft-rs / that |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for w in &WORKLOADS {
        let mut per_entry_ns: [Vec<f64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..reps {
            for (k, variant) in VARIANTS.into_iter().enumerate() {
                let (entries, spent) = (w.run)(variant);
                assert!(entries > 0, "{}: nothing applied", w.label);
                per_entry_ns[k].push(spent.as_nanos() as f64 / entries as f64);
            }
        }
        let [core, core_per_payload, rs] = per_entry_ns.map(median);
        println!(
            "| {} | {} | {} | {:.2}× | {} | {:.2}× |",
            w.label,
            format_ns(core),
            format_ns(rs),
            rs / core,
            format_ns(core_per_payload),
            rs / core_per_payload
        );
    }

    if with_w6 {
        println!();
        println!(
            "| W6: peak RSS, 3 nodes, 100,000 entries of 128 B | raft-core | raft-rs | \
             raft-rs / raft-core (workload share) |"
        );
        println!("| --- | --- | --- | --- |");
        for (batch, shape) in [(1, "W3"), (BATCH_LARGE, "W4")] {
            let reports: Vec<W6Report> = match Lib::ALL
                .into_iter()
                .map(|lib| w6_in_child(lib, batch))
                .collect::<Result<_, _>>()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("W6 child failed: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let cell = |r: &W6Report| {
                format!(
                    "{} peak = {} baseline + {} workload{}",
                    format_kib(r.peak_rss_kib),
                    format_kib(r.baseline_rss_kib),
                    format_kib(r.workload_kib()),
                    if r.peak_reset {
                        ""
                    } else {
                        " (peak not reset)"
                    }
                )
            };
            println!(
                "| batch {batch} ({shape}) | {} | {} | {:.2}× |",
                cell(&reports[0]),
                cell(&reports[1]),
                reports[1].workload_kib() as f64 / reports[0].workload_kib().max(1) as f64
            );
        }
    }

    println!();
    println!(
        "Load average (1/5/15 min) at start: {load_start}; at end: {}.",
        load_average().unwrap_or_else(|| "unknown".into())
    );
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("{problem}\nusage: perf_table [--reps N] [--no-w6]");
    ExitCode::FAILURE
}

fn w1(variant: Variant) -> (u64, Duration) {
    let payload = [0xA5u8; PAYLOAD_LEN];
    match variant {
        Variant::Core(alloc) => {
            let mut s = CoreSingle::with_payloads(alloc);
            let ((), spent) = cpu_time_of(|| {
                for _ in 0..W1_ENTRIES {
                    s.propose_commit_apply_one(&payload);
                }
            });
            (s.applied_count(), spent)
        }
        Variant::Rs => {
            let mut s = RaftRsSingle::new();
            let ((), spent) = cpu_time_of(|| {
                for _ in 0..W1_ENTRIES {
                    s.propose_commit_apply_one(&payload);
                }
            });
            (s.applied_count(), spent)
        }
    }
}

fn w2(variant: Variant) -> (u64, Duration) {
    let payload = [0xA5u8; PAYLOAD_LEN];
    let rounds = W2_ENTRIES / BATCH_LARGE as u64;
    match variant {
        Variant::Core(alloc) => {
            let mut s = CoreSingle::with_payloads(alloc);
            let ((), spent) = cpu_time_of(|| {
                for _ in 0..rounds {
                    s.propose_commit_apply_batch(&payload, BATCH_LARGE);
                }
            });
            (s.applied_count(), spent)
        }
        Variant::Rs => {
            let mut s = RaftRsSingle::new();
            let ((), spent) = cpu_time_of(|| {
                for _ in 0..rounds {
                    s.propose_commit_apply_batch(&payload, BATCH_LARGE);
                }
            });
            (s.applied_count(), spent)
        }
    }
}

fn three_nodes(variant: Variant, batch: usize) -> (u64, Duration) {
    cpu_time_of(|| match variant {
        Variant::Core(alloc) => {
            ours::core_three_nodes(ENTRIES_THREE_NODES, PAYLOAD_LEN, batch, alloc)
        }
        Variant::Rs => rraft::raft_rs_three_nodes(ENTRIES_THREE_NODES, PAYLOAD_LEN, batch),
    })
}

fn w5(variant: Variant) -> (u64, Duration) {
    let (stats, spent) = cpu_time_of(|| match variant {
        Variant::Core(alloc) => ours::core_three_nodes_pipelined(
            ENTRIES_THREE_NODES,
            PAYLOAD_LEN,
            BATCH_LARGE,
            PERSIST_LATENCY_ROUNDS,
            alloc,
        ),
        Variant::Rs => rraft::raft_rs_three_nodes_pipelined(
            ENTRIES_THREE_NODES,
            PAYLOAD_LEN,
            BATCH_LARGE,
            PERSIST_LATENCY_ROUNDS,
        ),
    });
    assert!(stats.outstanding_max > 1, "W5 is pipelined: {stats:?}");
    (stats.applied_min, spent)
}

/// `--w6-child <lib> <batch>`: runs W6 here and prints its report line.
fn w6_child(args: &[String]) -> ExitCode {
    let (Some(lib), Some(batch)) = (
        args.first().and_then(|s| Lib::parse(s)),
        args.get(1).and_then(|s| s.parse::<usize>().ok()),
    ) else {
        return usage("--w6-child takes raft-core|raft-rs and a batch size");
    };
    println!(
        "{}",
        w6::run(lib, ENTRIES_THREE_NODES, PAYLOAD_LEN, batch).to_line()
    );
    ExitCode::SUCCESS
}

/// Runs this binary with `--w6-child` and reads the report it prints.
fn w6_in_child(lib: Lib, batch: usize) -> Result<W6Report, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe)
        .args(["--w6-child", lib.name(), &batch.to_string()])
        .output()
        .map_err(|e| format!("spawn: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{} exited with {}: {}{}",
            lib.name(),
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    W6Report::parse_line(&stdout).ok_or_else(|| format!("no report line in {stdout:?}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "median of nothing");
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

fn format_ns(ns: f64) -> String {
    if ns >= 100.0 {
        format!("{ns:.0} ns")
    } else {
        format!("{ns:.1} ns")
    }
}

fn format_kib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn numbers_are_formatted_for_the_readme() {
        assert_eq!(format_ns(894.4), "894 ns");
        assert_eq!(format_ns(52.26), "52.3 ns");
        assert_eq!(format_kib(6144), "6.0 MiB");
    }
}
