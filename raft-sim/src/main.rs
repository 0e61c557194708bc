//! `raft-sim`: run one seed, or sweep many.
//!
//! ```text
//! raft-sim run --seed S [--trace FILE] [--bug NAME]... [--profile P]
//! raft-sim run --seed S [--html FILE] ...
//! raft-sim replay FILE [--trace FILE] [--html FILE]
//! raft-sim shrink --seed S [--bug NAME]... [--profile P] [--time-limit SECS] [--out FILE] [--html FILE]
//! raft-sim sweep --seeds N [--start S] [--jobs J] [--time-limit SECS] [--bug NAME]... [--profile P]
//!                [--shard K/N] [--json FILE]
//! raft-sim merge FILE... [--json FILE]
//! ```
//!
//! `run` prints the seed's options and result and exits non-zero if a property broke; a
//! sweep prints each failure as it comes and ends with one summary line, exiting non-zero iff
//! a seed failed. `--shard K/N` (K from 1) runs only the seeds `s` of the range with
//! `(s - start) mod N == K - 1`; `--json` also writes the summary as JSON, and `merge` adds up
//! the JSON summaries of all shards of one sweep into the summary the whole sweep prints
//! (exit 1 if a seed failed, 2 if the files are unreadable or do not make up one sweep).

use clap::{Parser, Subcommand, ValueEnum};
use raft_sim::options::PlantedBugs;
use raft_sim::summary::{self, SweepFile};
use raft_sim::sweep::{Shard, SweepConfig, sweep_shard};
use raft_sim::{Profile, Settings, run, world};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

// `replay` and `shrink` (schedules: issue 15), kept in a file of their own.
mod cli_schedule;

#[derive(Parser)]
#[command(
    name = "raft-sim",
    about = "Deterministic simulator for raft-core",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one seed (bit-for-bit reproducible).
    Run {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Write a readable event trace to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Plant a bug (to watch the checkers catch it).
        #[arg(long = "bug", value_enum)]
        bugs: Vec<Bug>,
        /// Override some drawn options.
        #[arg(long, value_enum, default_value_t = ProfileArg::Swarm)]
        profile: ProfileArg,
        /// Write the run as one self-contained HTML page to this file.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Replay a schedule file bit for bit (written by `shrink`).
    Replay(cli_schedule::ReplayArgs),
    /// Shrink a failing seed to a short schedule that breaks the same property.
    Shrink(cli_schedule::ShrinkArgs),
    /// Run many seeds in parallel and summarise.
    Sweep {
        /// How many seeds.
        #[arg(long)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Threads (default: available cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Stop starting new seeds after this many wall-clock seconds.
        #[arg(long)]
        time_limit: Option<u64>,
        /// Plant a bug in every seed.
        #[arg(long = "bug", value_enum)]
        bugs: Vec<Bug>,
        /// Override some drawn options in every seed.
        #[arg(long, value_enum, default_value_t = ProfileArg::Swarm)]
        profile: ProfileArg,
        /// Run only shard K of N (K from 1): the seeds s with (s - start) mod N == K - 1.
        #[arg(long, value_name = "K/N", default_value = "1/1")]
        shard: Shard,
        /// Also write the summary as JSON to this file (for `merge`).
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Shrink the first failure (as `raft-sim shrink`, for at most 110 s).
        #[arg(long)]
        shrink: bool,
    },
    /// Merge the JSON summaries of the shards of one sweep into its summary.
    Merge {
        /// The shards' summaries (`sweep --shard K/N --json FILE`), one per shard.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also write the merged summary as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Bug {
    /// The driver reports writes durable before their fsync.
    AckBeforeDurable,
    /// Leaders commit previous-term entries by counting replicas (needs the planted-bugs
    /// feature: `--features planted-bugs`).
    CommitPreviousTerm,
    /// Switch off the driver's durable-before-send check.
    SkipDurableBeforeSendCheck,
    /// The driver serves ReadIndex reads before it applied their index.
    ReadBeforeApply,
    /// The driver stores applied configurations without a snapshot of the same index.
    ConfStateAheadOfSnapshot,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProfileArg {
    /// The options as the seed draws them.
    Swarm,
    /// Leader churn with diverging logs (3 nodes, frequent short partitions and crashes,
    /// one entry per append).
    Churn,
    /// Lease reads at the edge of the clock bound, partitions isolating the leader.
    Lease,
    /// Lease reads under a leader whose clock runs 3x slow (test-only: stale reads expected).
    LeaseSkew,
    /// Every agent (compaction, transfer, membership) at a high rate.
    Agents,
}

impl From<ProfileArg> for Profile {
    fn from(p: ProfileArg) -> Profile {
        match p {
            ProfileArg::Swarm => Profile::Swarm,
            ProfileArg::Churn => Profile::Churn,
            ProfileArg::Lease => Profile::Lease,
            ProfileArg::LeaseSkew => Profile::LeaseSkew,
            ProfileArg::Agents => Profile::Agents,
        }
    }
}

pub(crate) fn planted(bugs: &[Bug]) -> PlantedBugs {
    let mut p = PlantedBugs::default();
    for b in bugs {
        match b {
            Bug::AckBeforeDurable => p.ack_before_durable = true,
            Bug::CommitPreviousTerm => p.commit_previous_term = true,
            Bug::SkipDurableBeforeSendCheck => p.skip_durable_before_send_check = true,
            Bug::ReadBeforeApply => p.read_before_apply = true,
            Bug::ConfStateAheadOfSnapshot => p.conf_state_ahead_of_snapshot = true,
        }
    }
    p
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let bugs: &[Bug] = match &cli.command {
        Command::Run { bugs, .. } | Command::Sweep { bugs, .. } => bugs,
        Command::Merge { .. } => &[],
        Command::Shrink(a) => &a.bugs,
        Command::Replay(_) => &[],
    };
    if bugs.iter().any(|b| matches!(b, Bug::CommitPreviousTerm)) && !cfg!(feature = "planted-bugs")
    {
        eprintln!(
            "--bug commit-previous-term needs raft-core's planted bugs: \
             cargo run --release -p raft-sim --features planted-bugs -- ..."
        );
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Run {
            seed,
            trace,
            bugs,
            profile,
            html,
        } => {
            let settings = Settings {
                trace: trace.is_some() || html.is_some(),
                bugs: planted(&bugs),
                profile: profile.into(),
            };
            let report = run(seed, &settings);
            println!("seed {seed}\noptions:\n{}", report.options);
            if let (Some(path), Some(text)) = (&trace, &report.trace) {
                if let Err(e) = std::fs::write(path, text) {
                    eprintln!("cannot write trace to {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                println!("trace: {} ({} lines)", path.display(), text.lines().count());
            }
            if let Some(path) = &html
                && let Err(e) =
                    cli_schedule::write_html(path, &report, &format!("raft-sim seed {seed}"))
            {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
            println!(
                "events={} sim={} leader_terms={} committed={} old_term_commits={} ops_answered={} \
                 liveness_election={} liveness_converge={} trace_hash={:016x}",
                report.events,
                world::ms(report.sim_us),
                report.leader_terms,
                report.committed,
                report.old_term_commits,
                report.ops_answered,
                report.liveness_election_us.map_or("-".into(), world::ms),
                report.liveness_converge_us.map_or("-".into(), world::ms),
                report.trace_hash
            );
            println!(
                "net: sent={} delivered={} dropped={} copies={}; faults: partitions={} \
                 clogs={} crashes={} records_lost={} pauses={}",
                report.net.sent,
                report.net.delivered,
                report.net.dropped,
                report.net.copies,
                report.faults.partitions,
                report.faults.clogs,
                report.faults.crashes,
                report.faults.records_lost,
                report.faults.pauses
            );
            let a = &report.agents;
            println!(
                "agents: snapshots made={} sent={} applied={} reports finish={} failure={} \
                 restarts_from_snapshot={}; \
                 transfers asked={} accepted={} busy_refusals={}; conf changes proposed={} \
                 (joint {}) applied={} configurations={} nodes started={} retired={}; \
                 reads served={}",
                a.snapshots_made,
                a.snapshots_sent,
                a.snapshots_applied,
                a.snapshot_reports_finish,
                a.snapshot_reports_failure,
                a.restarts_from_snapshot,
                a.transfers_asked,
                a.transfers_accepted,
                a.busy_refusals,
                a.conf_changes_proposed,
                a.joint_changes_proposed,
                a.conf_changes_applied,
                report.configurations,
                a.nodes_started,
                a.nodes_retired,
                a.reads_served
            );
            if report.violation.is_some() {
                println!("{}", report.failure_text());
                ExitCode::FAILURE
            } else {
                println!("ok");
                ExitCode::SUCCESS
            }
        }
        Command::Replay(args) => cli_schedule::replay(&args),
        Command::Shrink(args) => cli_schedule::shrink(&args),
        Command::Sweep {
            seeds,
            start,
            jobs,
            time_limit,
            bugs,
            profile,
            shard,
            json,
            shrink,
        } => {
            let jobs = jobs.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
            });
            let cfg = SweepConfig {
                start,
                seeds,
                jobs,
                time_limit: time_limit.map(Duration::from_secs),
                settings: Settings {
                    trace: false,
                    bugs: planted(&bugs),
                    profile: profile.into(),
                },
            };
            let summary = sweep_shard(&cfg, shard);
            if !summary.failures.is_empty() {
                let seeds: Vec<String> = summary
                    .failures
                    .iter()
                    .map(|r| r.seed.to_string())
                    .collect();
                println!("failed seeds: {}", seeds.join(" "));
            }
            println!("{}", summary.features_line());
            println!("{}", summary.elections_line());
            println!("{}", summary.line());
            if let Some(path) = json {
                let file = SweepFile::of(&cfg, shard, &summary);
                if let Err(e) = std::fs::write(&path, file.to_json()) {
                    eprintln!("cannot write the summary to {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
            if let (true, Some(first)) = (shrink, summary.failures.first()) {
                let _ = cli_schedule::shrink_seed(first.seed, &cfg.settings, 110, None, None);
            }
            if summary.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Merge { files, json } => merge(&files, json.as_deref()),
    }
}

/// `raft-sim merge`: reads every file first, merges nothing unless all of them make up one
/// sweep, then prints what the whole sweep would have printed at its end.
fn merge(paths: &[PathBuf], json: Option<&std::path::Path>) -> ExitCode {
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| SweepFile::from_json(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(f) => files.push(f),
            Err(e) => {
                eprintln!("merge: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let incomplete: Vec<String> = files
        .iter()
        .filter(|f| !f.complete())
        .map(|f| {
            format!(
                "{} ran {} of {}",
                f.shard,
                f.seeds,
                f.shard.len(f.range_seeds)
            )
        })
        .collect();
    let merged = match summary::merge(&files) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("merge: {e}");
            return ExitCode::from(2);
        }
    };
    for f in &merged.failures {
        println!(
            "FAILED: {} (seed {}, at {})\n  {}\nreplay: {}\n",
            f.property,
            f.seed,
            world::ms(f.at_us),
            f.detail,
            f.replay
        );
    }
    if !incomplete.is_empty() {
        println!(
            "note: time limits stopped shards early ({}): {} of {} seeds ran",
            incomplete.join(", "),
            merged.seeds,
            merged.range_seeds
        );
    }
    for line in merged.report_lines() {
        println!("{line}");
    }
    if let Some(path) = json
        && let Err(e) = std::fs::write(path, merged.to_json())
    {
        eprintln!("cannot write the merged summary to {}: {e}", path.display());
        return ExitCode::from(2);
    }
    if merged.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
