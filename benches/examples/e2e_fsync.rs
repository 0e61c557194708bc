//! End to end with a real disk: one raft-core node (a single-voter group) whose persist
//! batches are appended to a file and made durable with `File::sync_data` (fdatasync) once
//! per Ready that asks for it, reporting applied entries per second at batch sizes 1, 64
//! and 256 (entries proposed per Ready).
//!
//! ```text
//! cargo run --release -p raft-benches --example e2e_fsync [-- --seconds 2 --max-entries 200000]
//! ```
//!
//! Each batch size runs for `--seconds` of wall time (default 2) or `--max-entries` entries
//! (default 200,000), whichever comes first, on a fresh log file in
//! `$TMPDIR/raft-benches-e2e-<pid>/`, removed at the end. What fdatasync costs depends on
//! the file system under the temp dir: on tmpfs it is nearly free, so point `TMPDIR` at a
//! disk to measure the disk. CI only compiles this example.
#![allow(
    clippy::disallowed_methods,
    reason = "throughput against a disk is wall time; this is not deterministic code"
)]

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use raft_benches::PAYLOAD_LEN;
use raft_benches::fsync::FsyncSingle;

const BATCHES: [usize; 3] = [1, 64, 256];

struct Row {
    batch: usize,
    entries: u64,
    fsyncs: u64,
    bytes: u64,
    elapsed: Duration,
}

fn main() -> ExitCode {
    let mut seconds = 2.0f64;
    let mut max_entries = 200_000u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        let shown = value.clone().unwrap_or_else(|| "nothing".into());
        let ok = match arg.as_str() {
            "--seconds" => value
                .and_then(|v| v.parse().ok())
                .filter(|&s: &f64| s > 0.0)
                .map(|s| seconds = s),
            "--max-entries" => value
                .and_then(|v| v.parse().ok())
                .filter(|&n: &u64| n > 0)
                .map(|n| max_entries = n),
            _ => None,
        };
        if ok.is_none() {
            eprintln!(
                "{arg} {shown}: not an option with a positive value\n\
                 usage: e2e_fsync [--seconds S] [--max-entries N]"
            );
            return ExitCode::FAILURE;
        }
    }

    let dir = std::env::temp_dir().join(format!("raft-benches-e2e-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let result = run_all(&dir, Duration::from_secs_f64(seconds), max_entries);
    let cleanup = std::fs::remove_dir_all(&dir);
    let rows = match result {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("I/O error under {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = cleanup {
        eprintln!("warning: could not remove {}: {e}", dir.display());
    }

    println!(
        "raft-core, one node, {PAYLOAD_LEN}-byte entries, log file under {} (fdatasync per Ready)",
        std::env::temp_dir().display()
    );
    println!();
    println!(
        "| entries per Ready | entries | fdatasyncs | seconds | entries/s | µs per fdatasync round |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        let secs = r.elapsed.as_secs_f64();
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {:.1} |",
            r.batch,
            r.entries,
            r.fsyncs,
            secs,
            r.entries as f64 / secs,
            secs * 1e6 / r.fsyncs.max(1) as f64,
        );
    }
    let bytes: u64 = rows.iter().map(|r| r.bytes).sum();
    println!();
    println!("{bytes} bytes written in all.");
    ExitCode::SUCCESS
}

fn run_all(dir: &Path, budget: Duration, max_entries: u64) -> std::io::Result<Vec<Row>> {
    let payload = [0xA5u8; PAYLOAD_LEN];
    let mut rows = Vec::new();
    for batch in BATCHES {
        let path = dir.join(format!("log-batch-{batch}"));
        let mut node = FsyncSingle::create(&path)?;
        let start = Instant::now();
        while node.applied_count() < max_entries && start.elapsed() < budget {
            let n = (max_entries - node.applied_count()).min(batch as u64) as usize;
            node.propose_commit_apply_batch(&payload, n)?;
        }
        rows.push(Row {
            batch,
            entries: node.applied_count(),
            fsyncs: node.fsyncs(),
            bytes: node.bytes_written(),
            elapsed: start.elapsed(),
        });
        drop(node);
        std::fs::remove_file(&path)?;
    }
    Ok(rows)
}
