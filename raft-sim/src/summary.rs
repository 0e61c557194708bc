//! The machine-readable summary of a sweep (`raft-sim sweep --json FILE`), and merging the
//! summaries of the shards of one sweep (`raft-sim merge FILE...`).
//!
//! ```text
//!   sweep --shard 1/N --json s1.json ─┐
//!   sweep --shard 2/N --json s2.json ─┼─► merge s*.json ─► the summary the whole sweep prints
//!   ...                               │   (exit 1 if a seed failed, 2 if the files do not fit)
//!   sweep --shard N/N --json sN.json ─┘
//! ```
//!
//! A file is one JSON object ([`SweepFile`]): the range and shard it ran, the settings
//! (planted bugs and profile, as command-line flags), the seeds run, each failure with its
//! property, detail, options and replay command, events, simulated time (exact, in
//! microseconds), wall time and speed, the liveness election times, and the feature counts.
//! The seeds run are not listed: they are the first `seeds` seeds of the shard (see
//! [`crate::sweep`]), fewer than the shard holds only when a time limit stopped it.
//!
//! Merging adds up everything but wall time, which is summed too: the merged `wall_secs` is
//! worker-seconds, so the merged `speedup` is per worker, comparable with a one-machine sweep.
//!
//! Invariants:
//! 1. The shards merged come from one sweep: the same range, settings and shard count, each
//!    shard once and none missing; anything else is an error and merges nothing.
//! 2. A merged summary holds the same seeds, failures, events, simulated time, elections and
//!    feature counts as the unsharded sweep of the range (tests/shards.rs).

use crate::sweep::{FeatureCounts, Shard, SweepConfig, SweepSummary, elections_line, summary_line};
use crate::{Profile, RunReport, Settings};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The format version [`SweepFile::format`] holds.
pub const FORMAT: u32 = 1;

/// The most shards [`merge`] takes (it keeps one flag per shard).
pub const SHARDS_MAX: u64 = 1 << 16;

/// A sweep's summary, as written to a `--json` file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepFile {
    /// [`FORMAT`].
    pub format: u32,
    /// First seed of the range.
    pub start: u64,
    /// Seeds in the range (all shards together).
    pub range_seeds: u64,
    /// The shard run (`1/1`: the whole range).
    pub shard: Shard,
    /// The settings every seed ran with, as command-line flags (`--profile P --bug B`).
    pub settings: String,
    /// Seeds that finished: the first ones of the shard.
    pub seeds: u64,
    /// Seeds that broke a property.
    pub failed: u64,
    /// Their failures, in seed order.
    pub failures: Vec<Failure>,
    /// Events, summed over seeds.
    pub events: u64,
    /// Simulated microseconds, summed over seeds.
    pub sim_us: u64,
    /// Simulated seconds (`sim_us` in seconds).
    pub sim_secs: f64,
    /// Wall-clock seconds (summed over shards when merged).
    pub wall_secs: f64,
    /// Simulated cluster-seconds per wall-clock second.
    pub speedup: f64,
    /// Liveness-phase election times (µs) of the seeds that elected, in ascending order.
    pub election_us: Vec<u64>,
    /// Seeds with each feature on, and what the features did.
    pub features: FeatureCounts,
}

/// One failed seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// The property broken, by name.
    pub property: String,
    /// What was seen.
    pub detail: String,
    /// When (simulated microseconds).
    pub at_us: u64,
    /// The options the seed drew, as the run prints them.
    pub options: String,
    /// The command that replays it bit for bit.
    pub replay: String,
}

impl Failure {
    /// The failure of a run; `None` if it passed.
    pub fn of(r: &RunReport) -> Option<Failure> {
        let v = r.violation.as_ref()?;
        Some(Failure {
            seed: r.seed,
            property: v.property.to_string(),
            detail: v.detail.clone(),
            at_us: v.at_us,
            options: r.options.to_string(),
            replay: r.replay_command(),
        })
    }
}

/// The settings as the command-line flags that select them (empty for the defaults).
pub fn settings_flags(s: &Settings) -> String {
    let mut flags = Vec::new();
    if s.profile != Profile::Swarm
        && let Some(p) = s.profile.flag()
    {
        flags.push(format!("--profile {p}"));
    }
    let b = s.bugs;
    for (on, name) in [
        (b.ack_before_durable, "ack-before-durable"),
        (b.commit_previous_term, "commit-previous-term"),
        (
            b.skip_durable_before_send_check,
            "skip-durable-before-send-check",
        ),
        (b.read_before_apply, "read-before-apply"),
        (
            b.conf_state_ahead_of_snapshot,
            "conf-state-ahead-of-snapshot",
        ),
    ] {
        if on {
            flags.push(format!("--bug {name}"));
        }
    }
    flags.join(" ")
}

impl SweepFile {
    /// The file of a finished sweep of `shard` of `cfg`'s range.
    pub fn of(cfg: &SweepConfig, shard: Shard, s: &SweepSummary) -> SweepFile {
        let failures: Vec<Failure> = s.failures.iter().filter_map(Failure::of).collect();
        SweepFile {
            format: FORMAT,
            start: cfg.start,
            range_seeds: cfg.seeds,
            shard,
            settings: settings_flags(&cfg.settings),
            seeds: s.seeds,
            failed: failures.len() as u64,
            failures,
            events: s.events,
            sim_us: s.sim_us,
            sim_secs: s.sim_secs,
            wall_secs: s.wall_secs,
            speedup: speedup(s.sim_secs, s.wall_secs),
            election_us: s.election_us.clone(),
            features: s.features,
        }
    }

    /// Pretty JSON text.
    pub fn to_json(&self) -> String {
        // A struct of plain fields, strings, numbers and lists: serialising cannot fail.
        serde_json::to_string_pretty(self).expect("a sweep file serialises")
    }

    /// Parses a file's text.
    ///
    /// # Errors
    /// If it is not JSON of this shape, or of another format version.
    pub fn from_json(text: &str) -> Result<SweepFile, MergeError> {
        let f: SweepFile =
            serde_json::from_str(text).map_err(|e| MergeError::Parse(e.to_string()))?;
        if f.format != FORMAT {
            return Err(MergeError::Format(f.format));
        }
        Shard::new(f.shard.index, f.shard.count).map_err(MergeError::Parse)?;
        if f.seeds > f.shard.len(f.range_seeds) || f.failed != f.failures.len() as u64 {
            return Err(MergeError::Parse(format!(
                "shard {} of {} seeds claims {} seeds run and {} failures ({} listed)",
                f.shard,
                f.range_seeds,
                f.seeds,
                f.failed,
                f.failures.len()
            )));
        }
        Ok(f)
    }

    /// Whether the shard ran all of its seeds (a time limit may stop it early).
    pub fn complete(&self) -> bool {
        self.seeds == self.shard.len(self.range_seeds)
    }

    /// The one summary line, as the sweep prints it.
    pub fn line(&self) -> String {
        summary_line(
            self.seeds,
            self.failures.len(),
            self.sim_secs,
            self.wall_secs,
            self.events,
        )
    }

    /// The lines a sweep prints at its end: failed seeds (if any), features, elections, and
    /// the summary line last.
    pub fn report_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.failures.is_empty() {
            let seeds: Vec<String> = self.failures.iter().map(|f| f.seed.to_string()).collect();
            lines.push(format!("failed seeds: {}", seeds.join(" ")));
        }
        lines.push(self.features.line());
        lines.push(elections_line(&self.election_us));
        lines.push(self.line());
        lines
    }
}

fn speedup(sim_secs: f64, wall_secs: f64) -> f64 {
    if wall_secs > 0.0 {
        sim_secs / wall_secs
    } else {
        0.0
    }
}

/// Why shard summaries could not be merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MergeError {
    /// Nothing to merge.
    Empty,
    /// A file is not a sweep summary.
    Parse(String),
    /// A file of another format version.
    Format(u32),
    /// Two files come from different sweeps (range, settings or shard count differ).
    Mismatch(String),
    /// The same shard twice.
    Duplicate(Shard),
    /// Shards of the sweep that no file holds.
    Missing(Vec<Shard>),
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MergeError::Empty => write!(f, "no summaries to merge"),
            MergeError::Parse(e) => write!(f, "not a sweep summary: {e}"),
            MergeError::Format(v) => {
                write!(
                    f,
                    "summary format {v}, but this raft-sim reads format {FORMAT}"
                )
            }
            MergeError::Mismatch(e) => write!(f, "summaries of different sweeps: {e}"),
            MergeError::Duplicate(s) => write!(f, "shard {s} given twice"),
            MergeError::Missing(m) => {
                let names: Vec<String> = m.iter().map(Shard::to_string).collect();
                write!(f, "shards missing: {}", names.join(", "))
            }
        }
    }
}

impl std::error::Error for MergeError {}

/// Merges the summaries of the shards of one sweep into the summary of the whole range
/// (shard `1/1`).
///
/// # Errors
/// If `files` is empty, or its files do not make up one sweep: different ranges, settings or
/// shard counts, a shard twice, or a shard missing.
pub fn merge(files: &[SweepFile]) -> Result<SweepFile, MergeError> {
    let first = files.first().ok_or(MergeError::Empty)?;
    let key = |f: &SweepFile| (f.start, f.range_seeds, f.shard.count, f.settings.clone());
    if first.shard.count > SHARDS_MAX {
        return Err(MergeError::Mismatch(format!(
            "{} shards: at most {SHARDS_MAX} are merged",
            first.shard.count
        )));
    }
    let mut seen = vec![false; first.shard.count as usize];
    for f in files {
        Shard::new(f.shard.index, f.shard.count).map_err(MergeError::Parse)?;
        if key(f) != key(first) {
            return Err(MergeError::Mismatch(format!(
                "seeds {}+{} shard {} [{}] and seeds {}+{} shard {} [{}]",
                first.start,
                first.range_seeds,
                first.shard,
                first.settings,
                f.start,
                f.range_seeds,
                f.shard,
                f.settings
            )));
        }
        // `from_json` checked 1 <= index <= count, and count is the same for all.
        let i = (f.shard.index - 1) as usize;
        if seen[i] {
            return Err(MergeError::Duplicate(f.shard));
        }
        seen[i] = true;
    }
    let missing: Vec<Shard> = (0..seen.len())
        .filter(|&i| !seen[i])
        .map(|i| Shard {
            index: i as u64 + 1,
            count: first.shard.count,
        })
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing(missing));
    }
    let mut m = SweepFile {
        format: FORMAT,
        start: first.start,
        range_seeds: first.range_seeds,
        shard: Shard::WHOLE,
        settings: first.settings.clone(),
        seeds: 0,
        failed: 0,
        failures: Vec::new(),
        events: 0,
        sim_us: 0,
        sim_secs: 0.0,
        wall_secs: 0.0,
        speedup: 0.0,
        election_us: Vec::new(),
        features: FeatureCounts::default(),
    };
    for f in files {
        m.seeds += f.seeds;
        m.failures.extend(f.failures.iter().cloned());
        m.events += f.events;
        m.sim_us += f.sim_us;
        m.wall_secs += f.wall_secs;
        m.election_us.extend_from_slice(&f.election_us);
        m.features.merge(&f.features);
    }
    m.failures.sort_by_key(|f| f.seed);
    m.failed = m.failures.len() as u64;
    m.election_us.sort_unstable();
    m.sim_secs = m.sim_us as f64 / 1e6;
    m.speedup = speedup(m.sim_secs, m.wall_secs);
    Ok(m)
}
