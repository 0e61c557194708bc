//! W6: peak resident memory of the three-node workload for one library, in this process.
//!
//! ```text
//! cargo run --release -p raft-benches --bin w6_memory -- --lib raft-core|raft-rs [--batch 1] [--entries 100000]
//! ```
//!
//! Prints the baseline (resident set before the workload), then one `w6 ...` line with the
//! peak and the workload's share (peak minus baseline). See `raft_benches::w6` for the
//! protocol.

use std::process::ExitCode;

use raft_benches::measure::proc_status_kib;
use raft_benches::{ENTRIES_THREE_NODES, Lib, PAYLOAD_LEN, w6};

fn main() -> ExitCode {
    let mut lib = None;
    let mut batch = 1usize;
    let mut entries = ENTRIES_THREE_NODES;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        let shown = value.clone().unwrap_or_else(|| "nothing".into());
        let ok = match arg.as_str() {
            "--lib" => value.as_deref().and_then(Lib::parse).map(|l| lib = Some(l)),
            "--batch" => value
                .and_then(|v| v.parse().ok())
                .filter(|&b: &usize| b > 0)
                .map(|b| batch = b),
            "--entries" => value
                .and_then(|v| v.parse().ok())
                .filter(|&n: &u64| n > 0)
                .map(|n| entries = n),
            _ => None,
        };
        if ok.is_none() {
            return usage(&format!(
                "{arg} {shown}: not an option with a valid value (--lib takes raft-core or \
                 raft-rs; --batch and --entries a positive count)"
            ));
        }
    }
    let Some(lib) = lib else {
        return usage("--lib is required");
    };
    if proc_status_kib("VmRSS").is_none() {
        eprintln!("w6_memory reads /proc/self/status: Linux only");
        return ExitCode::FAILURE;
    }
    let report = w6::run(lib, entries, PAYLOAD_LEN, batch);
    println!(
        "{}: {entries} entries of {PAYLOAD_LEN} B on three nodes, {batch} per round",
        lib.name()
    );
    println!(
        "baseline RSS (before the workload): {} KiB",
        report.baseline_rss_kib
    );
    println!(
        "peak RSS: {} KiB; the workload's share: {} KiB{}",
        report.peak_rss_kib,
        report.workload_kib(),
        if report.peak_reset {
            ""
        } else {
            " (the kernel refused to reset the peak: it includes start-up)"
        }
    );
    println!("{}", report.to_line());
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("{problem}\nusage: w6_memory --lib raft-core|raft-rs [--batch N] [--entries N]");
    ExitCode::FAILURE
}
