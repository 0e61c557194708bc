//! W6: peak resident memory of the three-node workload (W3, or W4 with a batch), one library
//! per process so that neither sees the other's allocations.
//!
//! Protocol: read `VmRSS` (the baseline: binary, libraries, allocator), reset the peak to it
//! ([`crate::measure::reset_peak_rss`]), run [`crate::ours::core_three_nodes`] or
//! [`crate::rraft::raft_rs_three_nodes`] once, read `VmHWM`. The workload's own share is the
//! peak minus the baseline. With compaction every [`crate::rraft::COMPACT_EVERY`] applied
//! entries, the peak measures about that many entries on three nodes plus each library's
//! working state, not the whole 100,000.
//!
//! Run it with `cargo run --release -p raft-benches --bin w6_memory -- --lib raft-core`
//! (or `--lib raft-rs`, and `--batch 64` for the W4 shape); `perf_table` runs it as a child
//! process and reads the one [`W6Report`] line it prints.

use crate::measure::{proc_status_kib, reset_peak_rss};
use crate::ours::PayloadAlloc;
use crate::{Lib, ours, rraft};

/// One W6 measurement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct W6Report {
    /// The library measured.
    pub lib: Lib,
    /// Entries proposed.
    pub entries: u64,
    /// Payload bytes per entry.
    pub payload_len: usize,
    /// Entries per round.
    pub batch: usize,
    /// Resident set before the workload, KiB.
    pub baseline_rss_kib: u64,
    /// Peak resident set during the workload, KiB (since process start if `peak_reset` is
    /// false).
    pub peak_rss_kib: u64,
    /// Whether the kernel let the peak be reset to the baseline before the workload.
    pub peak_reset: bool,
}

impl W6Report {
    /// The workload's own share of the peak: peak minus baseline.
    pub fn workload_kib(&self) -> u64 {
        self.peak_rss_kib.saturating_sub(self.baseline_rss_kib)
    }

    /// One line, `key=value` pairs after a `w6` tag; [`W6Report::parse_line`] reads it back.
    pub fn to_line(&self) -> String {
        format!(
            "w6 lib={} entries={} payload={} batch={} baseline_rss_kib={} peak_rss_kib={} \
             workload_kib={} peak_reset={}",
            self.lib.name(),
            self.entries,
            self.payload_len,
            self.batch,
            self.baseline_rss_kib,
            self.peak_rss_kib,
            self.workload_kib(),
            if self.peak_reset { "yes" } else { "no" },
        )
    }

    /// Finds and parses the line [`W6Report::to_line`] wrote in `output`.
    pub fn parse_line(output: &str) -> Option<W6Report> {
        let line = output.lines().find(|l| l.starts_with("w6 "))?;
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        };
        let number = |key: &str| field(key)?.parse::<u64>().ok();
        Some(W6Report {
            lib: Lib::parse(field("lib")?)?,
            entries: number("entries")?,
            payload_len: usize::try_from(number("payload")?).ok()?,
            batch: usize::try_from(number("batch")?).ok()?,
            baseline_rss_kib: number("baseline_rss_kib")?,
            peak_rss_kib: number("peak_rss_kib")?,
            peak_reset: field("peak_reset")? == "yes",
        })
    }
}

/// Runs W6 in this process and measures it.
///
/// # Panics
/// If `/proc/self/status` cannot be read (W6 needs Linux), or the workload does not apply
/// every entry.
pub fn run(lib: Lib, entries: u64, payload_len: usize, batch: usize) -> W6Report {
    let baseline_rss_kib = proc_status_kib("VmRSS").expect("W6 reads /proc/self/status (Linux)");
    let peak_reset = reset_peak_rss();
    let applied = match lib {
        Lib::RaftCore => ours::core_three_nodes(entries, payload_len, batch, PayloadAlloc::Arena),
        Lib::RaftRs => rraft::raft_rs_three_nodes(entries, payload_len, batch),
    };
    assert_eq!(applied, entries, "W6 applies every entry on every node");
    let peak_rss_kib = proc_status_kib("VmHWM").expect("VmHWM in /proc/self/status");
    W6Report {
        lib,
        entries,
        payload_len,
        batch,
        baseline_rss_kib,
        peak_rss_kib,
        peak_reset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_line_round_trips() {
        let r = W6Report {
            lib: Lib::RaftRs,
            entries: 100_000,
            payload_len: 128,
            batch: 64,
            baseline_rss_kib: 2_000,
            peak_rss_kib: 9_500,
            peak_reset: true,
        };
        let out = format!("some banner\n{}\n", r.to_line());
        assert_eq!(W6Report::parse_line(&out), Some(r.clone()));
        assert_eq!(r.workload_kib(), 7_500);
        assert_eq!(W6Report::parse_line("nothing here"), None);
    }

    #[test]
    fn a_small_run_reports_its_memory() {
        if proc_status_kib("VmRSS").is_none() {
            return; // not Linux
        }
        // Other tests run in this process at the same time, so only sanity is checked here:
        // the numbers themselves are for a process of their own.
        for lib in Lib::ALL {
            let r = run(lib, 500, 128, 64);
            assert!(r.baseline_rss_kib > 0 && r.peak_rss_kib > 0, "{r:?}");
        }
    }
}
