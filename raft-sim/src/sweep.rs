//! Sweeps: many seeds in parallel threads, one summary.
//!
//! A sweep may be one shard of a larger one ([`Shard`], `--shard K/N`): shard `K` of `N`
//! (1-based) runs the seeds `s` of the range with `(s - start) mod N == K - 1`, so a CI
//! matrix or an indexed job of `N` workers covers the range exactly once between them. Each
//! worker writes its summary as JSON ([`crate::summary`], `--json FILE`), and `raft-sim
//! merge` adds them up into the summary the whole sweep would have printed.
//!
//! This is the one place in the crate that uses threads and the wall clock, and neither
//! touches what a seed means: every seed runs start to finish on one thread, in its own
//! `World`, with its own random stream; the wall clock only decides when to stop *starting*
//! seeds (`--time-limit`) and feeds the summary's `wall_secs` and `speedup`.
//!
//! Before it, a line counts the seeds that turned each feature on and what the features did
//! (snapshots sent and restored, transfers, membership changes, reads served). The output ends
//! with exactly one summary line:
//! `seeds=<N> failed=<F> sim_secs=<X> wall_secs=<Y> speedup=<X/Y>x events=<E>`.
//!
//! Invariants:
//! 1. Each seed of the shard in `[start, start + seeds)` is run at most once; with a time
//!    limit, the seeds run are reported and the others are not counted. The seeds run are
//!    always the first ones of the shard, in order (seeds are started in order and every
//!    seed started finishes).
//! 2. The summary counts only seeds that finished.
//! 3. Every field of the summary but `wall_secs` depends only on the seeds run, not on the
//!    order threads finish them (simulated time is summed in integer microseconds).

use crate::options::ReadMode;
use crate::{RunReport, Settings, run};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What to sweep.
#[derive(Clone, Copy, Debug)]
pub struct SweepConfig {
    /// First seed.
    pub start: u64,
    /// Number of seeds.
    pub seeds: u64,
    /// Threads.
    pub jobs: usize,
    /// Stop starting new seeds after this much wall time.
    pub time_limit: Option<Duration>,
    /// Per-run settings.
    pub settings: Settings,
}

/// Which share of a seed range a sweep runs: shard `index` of `count` (1-based) holds the
/// seeds `s` with `(s - start) mod count == index - 1`. `1/1` is the whole range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which shard, from 1.
    pub index: u64,
    /// Of how many.
    pub count: u64,
}

impl Shard {
    /// The whole range.
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// Shard `index` of `count`.
    ///
    /// # Errors
    /// If `count` is 0 or `index` is not in `1..=count`.
    pub fn new(index: u64, count: u64) -> Result<Shard, String> {
        if count == 0 {
            return Err(format!(
                "shard {index}/{count}: the number of shards must be at least 1"
            ));
        }
        if index == 0 || index > count {
            return Err(format!(
                "shard {index}/{count}: K must be between 1 and {count} (shards count from 1)"
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether `seed` of the range starting at `start` is in this shard.
    pub fn contains(self, start: u64, seed: u64) -> bool {
        seed >= start && (seed - start) % self.count == self.index - 1
    }

    /// How many of the `seeds` seeds of a range this shard holds.
    pub fn len(self, seeds: u64) -> u64 {
        let first = self.index - 1;
        if seeds <= first {
            0
        } else {
            (seeds - first).div_ceil(self.count)
        }
    }

    /// Whether this shard holds none of the `seeds` seeds of a range.
    pub fn is_empty(self, seeds: u64) -> bool {
        self.len(seeds) == 0
    }

    /// The `j`-th seed (from 0) of this shard of the range starting at `start`.
    pub fn nth(self, start: u64, j: u64) -> u64 {
        start + self.index - 1 + j * self.count
    }

    /// The seeds of this shard of `[start, start + seeds)`, in order.
    pub fn seeds(self, start: u64, seeds: u64) -> impl Iterator<Item = u64> {
        (0..self.len(seeds)).map(move |j| self.nth(start, j))
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// Parses `K/N`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("shard {s:?}: expected K/N, for example 2/8"))?;
        let num = |x: &str| {
            x.trim()
                .parse::<u64>()
                .map_err(|e| format!("shard {s:?}: {x:?} is not a number ({e})"))
        };
        Shard::new(num(k)?, num(n)?)
    }
}

/// What a sweep found.
#[derive(Debug, Default)]
pub struct SweepSummary {
    /// Seeds that finished.
    pub seeds: u64,
    /// Their failures, in seed order.
    pub failures: Vec<RunReport>,
    /// Simulated microseconds, summed over seeds.
    pub sim_us: u64,
    /// Simulated seconds, summed over seeds (`sim_us` in seconds).
    pub sim_secs: f64,
    /// Wall-clock seconds of the sweep.
    pub wall_secs: f64,
    /// Events, summed over seeds.
    pub events: u64,
    /// Liveness-phase election times (µs) of the seeds that elected.
    pub election_us: Vec<u64>,
    /// Seeds with each feature on, and what the features did, summed.
    pub features: FeatureCounts,
    /// The seeds that finished, in order.
    pub ran: Vec<u64>,
}

/// How many seeds turned each feature on, and what it did over the sweep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureCounts {
    /// Seeds with the compaction agent.
    pub compaction: u64,
    /// Seeds with the leadership-transfer agent.
    pub transfer: u64,
    /// Seeds with the membership agent.
    pub membership: u64,
    /// Seeds reading by ReadIndex.
    pub read_index: u64,
    /// Seeds reading by lease.
    pub lease: u64,
    /// `MsgSnap` sent.
    pub snapshots_sent: u64,
    /// Snapshots restored.
    pub snapshots_applied: u64,
    /// Restarts from a snapshot.
    pub restarts_from_snapshot: u64,
    /// Transfers accepted.
    pub transfers: u64,
    /// Membership changes applied (per node).
    pub conf_changes: u64,
    /// Nodes added.
    pub nodes_started: u64,
    /// Nodes removed and stopped.
    pub nodes_retired: u64,
    /// Reads served by ReadIndex or lease.
    pub reads: u64,
    /// Seeds with the promotion-crash agent on.
    pub promotion_crash: u64,
    /// Leaders it crashed right after they committed a promotion.
    pub promotion_crashes: u64,
}

impl FeatureCounts {
    fn add(&mut self, r: &RunReport) {
        let (o, a) = (&r.options, &r.agents);
        self.compaction += u64::from(o.compact_every_entries > 0);
        self.transfer += u64::from(o.transfer_gap_max_us > 0);
        self.membership += u64::from(o.membership_gap_max_us > 0);
        self.read_index += u64::from(o.reads == ReadMode::ReadIndex);
        self.lease += u64::from(o.reads == ReadMode::Lease);
        self.snapshots_sent += a.snapshots_sent;
        self.snapshots_applied += a.snapshots_applied;
        self.restarts_from_snapshot += a.restarts_from_snapshot;
        self.transfers += a.transfers_accepted;
        self.conf_changes += a.conf_changes_applied;
        self.nodes_started += a.nodes_started;
        self.nodes_retired += a.nodes_retired;
        self.reads += a.reads_served;
        self.promotion_crash += u64::from(o.promotion_crash);
        self.promotion_crashes += a.promotion_crashes;
    }

    /// Adds the counts of another part of a sweep. The destructuring has no `..`, so a new
    /// counter that is not merged here does not compile.
    pub fn merge(&mut self, o: &FeatureCounts) {
        let FeatureCounts {
            compaction,
            transfer,
            membership,
            read_index,
            lease,
            snapshots_sent,
            snapshots_applied,
            restarts_from_snapshot,
            transfers,
            conf_changes,
            nodes_started,
            nodes_retired,
            reads,
            promotion_crash,
            promotion_crashes,
        } = *o;
        self.compaction += compaction;
        self.transfer += transfer;
        self.membership += membership;
        self.read_index += read_index;
        self.lease += lease;
        self.snapshots_sent += snapshots_sent;
        self.snapshots_applied += snapshots_applied;
        self.restarts_from_snapshot += restarts_from_snapshot;
        self.transfers += transfers;
        self.conf_changes += conf_changes;
        self.nodes_started += nodes_started;
        self.nodes_retired += nodes_retired;
        self.reads += reads;
        self.promotion_crash += promotion_crash;
        self.promotion_crashes += promotion_crashes;
    }

    /// Which features the seeds turned on and what they did, as one line.
    pub fn line(&self) -> String {
        let f = self;
        format!(
            "features (seeds on): compaction={} transfer={} membership={} read_index={} \
             lease={} promotion_crash={}; did: snapshots sent={} restored={} \
             restarts_from_snapshot={} transfers={} conf_changes_applied={} nodes added={} \
             removed={} reads_served={} promotion_crashes={}",
            f.compaction,
            f.transfer,
            f.membership,
            f.read_index,
            f.lease,
            f.promotion_crash,
            f.snapshots_sent,
            f.snapshots_applied,
            f.restarts_from_snapshot,
            f.transfers,
            f.conf_changes,
            f.nodes_started,
            f.nodes_retired,
            f.reads,
            f.promotion_crashes
        )
    }
}

/// The one summary line: `seeds=<N> failed=<F> sim_secs=<X> wall_secs=<Y> speedup=<X/Y>x
/// events=<E>`.
pub fn summary_line(
    seeds: u64,
    failed: usize,
    sim_secs: f64,
    wall_secs: f64,
    events: u64,
) -> String {
    let speedup = if wall_secs > 0.0 {
        sim_secs / wall_secs
    } else {
        0.0
    };
    format!(
        "seeds={seeds} failed={failed} sim_secs={sim_secs:.1} wall_secs={wall_secs:.2} \
         speedup={speedup:.0}x events={events}"
    )
}

/// The distribution of liveness-phase election times (µs), as one line.
pub fn elections_line(election_us: &[u64]) -> String {
    let mut v = election_us.to_vec();
    if v.is_empty() {
        return "liveness elections: none".into();
    }
    v.sort_unstable();
    let q = |p: usize| v[(v.len() - 1) * p / 100] as f64 / 1000.0;
    let mean = v.iter().sum::<u64>() as f64 / v.len() as f64 / 1000.0;
    format!(
        "liveness elections (ms from phase start to a leader every core node follows): \
         n={} min={:.0} p50={:.0} p90={:.0} p99={:.0} max={:.0} mean={mean:.0}",
        v.len(),
        q(0),
        q(50),
        q(90),
        q(99),
        q(100)
    )
}

impl SweepSummary {
    /// The one summary line.
    pub fn line(&self) -> String {
        summary_line(
            self.seeds,
            self.failures.len(),
            self.sim_secs,
            self.wall_secs,
            self.events,
        )
    }

    /// Which features the seeds turned on and what they did, as one line.
    pub fn features_line(&self) -> String {
        self.features.line()
    }

    /// The distribution of liveness-phase election times, as one line.
    pub fn elections_line(&self) -> String {
        elections_line(&self.election_us)
    }
}

/// Runs the seeds of `cfg` on `cfg.jobs` threads, printing failures as they come and a
/// progress line on a terminal. Returns the summary (the caller prints its line).
pub fn sweep(cfg: &SweepConfig) -> SweepSummary {
    sweep_shard(cfg, Shard::WHOLE)
}

/// [`sweep`] over the seeds of `shard` of the range of `cfg` only.
// Threads and the wall clock are allowed here only: each seed stays single-threaded and
// deterministic; wall time only decides when to stop starting seeds and feeds the summary.
#[allow(clippy::disallowed_methods)]
pub fn sweep_shard(cfg: &SweepConfig, shard: Shard) -> SweepSummary {
    let total = shard.len(cfg.seeds);
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<RunReport>();
    let progress = std::io::stderr().is_terminal();
    let mut summary = SweepSummary::default();
    std::thread::scope(|s| {
        for _ in 0..cfg.jobs.max(1) {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            s.spawn(move || {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if cfg.time_limit.is_some_and(|l| started.elapsed() >= l) {
                        stop.store(true, Ordering::Relaxed);
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return;
                    }
                    let mut report = run(shard.nth(cfg.start, i), &cfg.settings);
                    report.trace = None;
                    if tx.send(report).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        for report in rx {
            summary.seeds += 1;
            summary.ran.push(report.seed);
            summary.sim_us += report.sim_us;
            summary.sim_secs = summary.sim_us as f64 / 1e6;
            summary.events += report.events;
            summary.features.add(&report);
            if let Some(e) = report.liveness_election_us {
                summary.election_us.push(e);
            }
            if report.violation.is_some() {
                if progress {
                    eprint!("\r\x1b[K");
                }
                println!("{}\n", report.failure_text());
                summary.failures.push(report);
            }
            if progress {
                let secs = started.elapsed().as_secs_f64();
                eprint!(
                    "\r[{}/{}] failed={} sim_secs={:.0} wall_secs={:.1} speedup={:.0}x",
                    summary.seeds,
                    total,
                    summary.failures.len(),
                    summary.sim_secs,
                    secs,
                    summary.sim_secs / secs.max(1e-9)
                );
                let _ = std::io::stderr().flush();
            }
        }
    });
    if progress {
        eprint!("\r\x1b[K");
    }
    summary.wall_secs = started.elapsed().as_secs_f64();
    summary.failures.sort_by_key(|r| r.seed);
    summary.ran.sort_unstable();
    summary.election_us.sort_unstable();
    summary
}
