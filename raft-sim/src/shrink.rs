//! Shrinking a failing schedule: smaller runs that still break the same property.
//!
//! The input is a [`Schedule`] whose run breaks property `P`. Every candidate is a complete,
//! legal run (see [`crate::schedule`] on why edits of the word list are always runs); a
//! candidate is kept iff its run breaks `P` too and it is smaller by [`Cost`]:
//! events processed first (the run stops at the violation, so this is "the violation comes
//! sooner"), then how complex the options are (nodes, clients, fault families and agents on),
//! then how many faults the run injected, then how many words it drew. After every kept
//! candidate the schedule's words become the words that run drew, so later passes edit real
//! decisions only.
//!
//! Passes, repeated until a round keeps nothing or the budget says stop:
//! 1. a shorter run: the smallest `events_max` (binary search) that still breaks `P`;
//! 2. options: each simplification (fewer nodes, clients, keys; a fault family, an agent,
//!    message loss or duplication off; a shorter safety phase; plain reads; ...) is tried on
//!    the current words, then on a few fresh streams (a new stream with simpler options is a
//!    different run, but if it breaks `P` sooner it is the better witness);
//!    when a round keeps nothing, the current options are tried on up to 256 fresh streams
//!    (random restarts) before the shrinker gives up;
//! 3. truncation: keep a prefix of the words (halving), the rest from the fallback stream;
//! 4. deletion (delta debugging, Zeller's ddmin in the greedy form Hypothesis uses): remove
//!    big chunks (halves, quarters, ...) at aligned positions, then chunks of 64, 16, 8, 4, 2 and 1
//!    words at every position;
//! 5. values: overwrite a word with the extremes (`u64::MAX` turns a chance into "no", a range
//!    into its top; 0 the other way), with its half, and with four other words (SplitMix64 of
//!    the word and its position: a word that seeds an election timer has no "simpler" value,
//!    only one that times out sooner).
//!
//!
//! After the first descent, up to six more start from other failing runs of the simplest
//! options found (fresh streams), and the lowest end wins: greedy shrinking stops in local
//! minima, and which one depends on the path.
//!
//! Determinism: the shrinker has no clock. The caller's [`Budget`] decides when to stop
//! (the command line's `--time-limit` lives in the binary, `src/cli_schedule.rs`), and with a budget counted in runs
//! the result is a function of the input.

use crate::RunReport;
use crate::checker::Property;
use crate::options::{ELECTION_US, Options, ReadMode};
use crate::schedule::{self, Expect, Schedule};

/// Decides when the shrinker stops and hears its progress.
pub trait Budget {
    /// Whether to try another candidate.
    fn more(&mut self) -> bool;
    /// A line of progress (a kept candidate, or the start of a pass).
    fn progress(&mut self, line: &str);
}

/// A budget of `n` runs that prints nothing (for tests).
pub struct Runs(pub u64);

impl Budget for Runs {
    fn more(&mut self) -> bool {
        if self.0 == 0 {
            return false;
        }
        self.0 -= 1;
        true
    }
    fn progress(&mut self, _line: &str) {}
}

/// How big a failing run is (smaller is better, compared in field order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cost {
    /// Events until the violation.
    pub events: u64,
    /// Option complexity (see [`option_weight`]).
    pub options: u64,
    /// Faults injected (partitions, clogs, crashes, pauses, lost and duplicated messages).
    pub faults: u64,
    /// Words drawn.
    pub words: u64,
}

/// What shrinking did.
#[derive(Debug)]
pub struct Shrunk {
    /// The shrunk schedule (its `expect` is its own run).
    pub schedule: Schedule,
    /// Its run.
    pub report: RunReport,
    /// Cost before and after.
    pub before: Cost,
    /// Cost after.
    pub after: Cost,
    /// Runs tried.
    pub runs: u64,
}

/// Fresh streams tried per option simplification.
const FRESH_STREAMS: u64 = 12;
/// Fresh streams tried per restart round with the current options ...
const RESEEDS: u64 = 32;
/// ... and restart rounds at a fixpoint before the shrinker gives up.
const RESTART_ROUNDS: u64 = 8;

/// Shrinks `schedule`, whose run breaks `property`, within `budget`.
///
/// # Panics
/// If the schedule's own run does not break `property` (there is nothing to keep).
pub fn shrink(schedule: Schedule, property: Property, budget: &mut dyn Budget) -> Shrunk {
    let (report, words) = schedule::replay(&schedule, false);
    assert_eq!(
        report.violation.as_ref().map(|v| v.property),
        Some(property),
        "the schedule to shrink breaks the property"
    );
    let mut s = Shrinker {
        property,
        budget,
        runs: 1,
        spent: false,
        kept_since_shorten: 0,
        cost: cost(&report, &schedule.options, words.len()),
        best: Schedule { words, ..schedule },
        report,
    };
    let before = s.cost;
    s.budget.progress(&format!("start: {}", describe(&s.cost)));
    s.descend();
    // Random restarts: a descent from another failing run of the simplest options found may
    // end lower (greedy shrinking stops in local minima). The best descent wins.
    for r in 0..RESTARTS {
        if s.spent {
            break;
        }
        let global = (s.best.clone(), s.cost);
        let Some(start) = s.failing_fresh_run(r) else {
            break;
        };
        let (best, report, cost) = start;
        s.budget
            .progress(&format!("restart {}: {}", r + 1, describe(&cost)));
        let kept_report = std::mem::replace(&mut s.report, report);
        s.best = best;
        s.cost = cost;
        s.descend();
        if s.cost >= global.1 {
            s.budget.progress(&format!(
                "restart {} ends at {} events: keeping {} events",
                r + 1,
                s.cost.events,
                global.1.events
            ));
            s.best = global.0;
            s.cost = global.1;
            s.report = kept_report;
        }
    }
    let mut schedule = s.best;
    schedule.expect = Some(Expect::of(&s.report));
    s.budget.progress(&format!(
        "done after {} runs: {}",
        s.runs,
        describe(&s.cost)
    ));
    Shrunk {
        schedule,
        report: s.report,
        before,
        after: s.cost,
        runs: s.runs,
    }
}

/// Descents from fresh failing runs after the first (see [`shrink`]).
const RESTARTS: u64 = 6;
/// Fresh streams tried to find a failing run to restart from.
const RESTART_TRIES: u64 = 64;

struct Shrinker<'a> {
    property: Property,
    budget: &'a mut dyn Budget,
    runs: u64,
    /// The budget said stop.
    spent: bool,
    /// Candidates kept since the last shorter-run search.
    kept_since_shorten: u64,
    best: Schedule,
    report: RunReport,
    cost: Cost,
}

impl Shrinker<'_> {
    /// The passes, until a round keeps nothing (or the budget is spent).
    fn descend(&mut self) {
        loop {
            let at_start = self.cost;
            self.shorten_pass();
            self.options_pass();
            self.shorten_pass();
            self.truncate_pass();
            self.delete_pass();
            self.values_pass();
            if self.cost == at_start && !self.spent {
                // A fixpoint of the edits: a fresh stream that fails sooner, if one is near.
                for _ in 0..RESTART_ROUNDS {
                    if self.reseed_pass() || self.spent {
                        break;
                    }
                }
            }
            if self.cost == at_start || self.spent {
                return;
            }
        }
    }

    /// A run of the current options on a fresh stream that breaks the property (at any
    /// cost), to restart from.
    fn failing_fresh_run(&mut self, restart: u64) -> Option<(Schedule, RunReport, Cost)> {
        for k in 0..RESTART_TRIES {
            if self.spent || !self.budget.more() {
                self.spent = true;
                return None;
            }
            self.runs += 1;
            let stream = self.best.seed.wrapping_mul(0xa076_1d64_78bd_642f) ^ (restart << 32) ^ k;
            let (report, s) = schedule::record_with(
                self.best.seed,
                self.best.profile,
                &self.best.options,
                stream,
                None,
            );
            if report.violation.as_ref().map(|v| v.property) == Some(self.property) {
                let c = cost(&report, &s.options, s.words.len());
                return Some((s, report, c));
            }
        }
        None
    }

    /// Runs `candidate`; keeps it if it breaks the property at a lower cost. `None`: the
    /// budget is spent.
    fn try_schedule(&mut self, candidate: Schedule, what: &str) -> Option<bool> {
        if self.spent || !self.budget.more() {
            self.spent = true;
            return None;
        }
        self.runs += 1;
        let (report, words) = schedule::replay(&candidate, false);
        Some(self.consider(report, Schedule { words, ..candidate }, what))
    }

    /// Runs `options` on fresh stream `stream`; keeps it as [`Shrinker::try_schedule`] does.
    fn try_fresh(&mut self, options: &Options, stream: u64, what: &str) -> Option<bool> {
        if self.spent || !self.budget.more() {
            self.spent = true;
            return None;
        }
        self.runs += 1;
        // Cut at the current length: a fresh run only wins if it breaks the property sooner.
        let cut = Some(self.cost.events);
        let (report, s) =
            schedule::record_with(self.best.seed, self.best.profile, options, stream, cut);
        Some(self.consider(report, s, what))
    }

    fn consider(&mut self, report: RunReport, s: Schedule, what: &str) -> bool {
        if report.violation.as_ref().map(|v| v.property) != Some(self.property) {
            return false;
        }
        let c = cost(&report, &s.options, s.words.len());
        if c >= self.cost {
            return false;
        }
        self.budget
            .progress(&format!("{what}: {} (run {})", describe(&c), self.runs));
        self.cost = c;
        self.best = s;
        self.report = report;
        self.kept_since_shorten += 1;
        true
    }

    fn options_pass(&mut self) {
        for (name, simplify) in SIMPLIFICATIONS {
            let Some(o) = simplify(
                &self.best.options,
                self.report.violation.as_ref().map_or(0, |v| v.at_us),
            ) else {
                continue;
            };
            if o == self.best.options || schedule::validate(&o).is_err() {
                continue;
            }
            let same_words = Schedule {
                options: o.clone(),
                expect: None,
                ..self.best.clone()
            };
            match self.try_schedule(same_words, name) {
                None => return,
                Some(true) => continue,
                Some(false) => {}
            }
            for k in 1..=FRESH_STREAMS {
                let stream =
                    self.best.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (k << 48) ^ self.runs;
                match self.try_fresh(&o, stream, name) {
                    None => return,
                    Some(true) => break,
                    Some(false) => {}
                }
            }
        }
    }

    /// Binary search for the shortest run (`events_max`) that still breaks the property:
    /// end-of-run properties (linearizability, read freshness, lost writes) hold at any
    /// instant, so a run cut after its witnesses still breaks them.
    fn shorten_pass(&mut self) {
        self.kept_since_shorten = 0;
        let (mut lo, mut hi) = (1, self.cost.events);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let c = Schedule {
                events_max: Some(mid),
                ..self.best.clone()
            };
            match self.try_schedule(c, "shorter run") {
                None => return,
                Some(true) => hi = self.cost.events.min(mid),
                Some(false) => lo = mid + 1,
            }
        }
    }

    /// The current options on fresh streams: a random restart that keeps any run breaking
    /// the property sooner (options simplified earlier stay simplified).
    /// Whether a restart was kept.
    fn reseed_pass(&mut self) -> bool {
        let o = self.best.options.clone();
        for k in 0..RESEEDS {
            let stream = self.best.seed.wrapping_mul(0xd1b5_4a32_d192_ed03) ^ (k << 40) ^ self.runs;
            match self.try_fresh(&o, stream, "fresh stream") {
                None => return false,
                Some(true) => return true,
                Some(false) => {}
            }
        }
        false
    }

    /// A shorter-run search after every 16 kept edits: a run cut at `events_max` keeps its
    /// length however much its words shrink, until the cut moves.
    fn maybe_shorten(&mut self) {
        if self.kept_since_shorten >= 16 {
            self.shorten_pass();
        }
    }

    fn truncate_pass(&mut self) {
        let mut keep = self.best.words.len() / 2;
        while keep > 0 {
            let mut c = self.best.clone();
            c.words.truncate(keep);
            match self.try_schedule(c, "truncate words") {
                None => return,
                Some(true) => keep = self.best.words.len() / 2,
                Some(false) => keep /= 2,
            }
        }
    }

    /// Deletes chunks of words: big chunks at chunk-aligned positions first, then chunks of
    /// 64 words and less at every position.
    fn delete_pass(&mut self) {
        let n = self.best.words.len();
        let mut sizes = vec![n / 2, n / 4, n / 8, n / 16, 64, 16, 8, 4, 2, 1];
        sizes.retain(|&c| c > 0);
        sizes.dedup();
        for chunk in sizes {
            let step = if chunk > 64 { chunk } else { 1 };
            let mut i = 0;
            while i + chunk <= self.best.words.len() {
                let mut c = self.best.clone();
                c.words.drain(i..i + chunk);
                match self.try_schedule(c, "delete words") {
                    None => return,
                    Some(true) => self.maybe_shorten(),
                    Some(false) => i += step,
                }
            }
        }
    }

    fn values_pass(&mut self) {
        let mut i = 0;
        while i < self.best.words.len() {
            let w = self.best.words[i];
            // The extremes, the half, and a few other words (a word may seed a node's
            // election timer, where no order means "simpler", only sooner or later).
            let mut h = w ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut other = || {
                h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = h;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            };
            let values = [u64::MAX, 0, w / 2, other(), other(), other(), other()];
            for v in values {
                if v == w {
                    continue;
                }
                let mut c = self.best.clone();
                c.words[i] = v;
                match self.try_schedule(c, "simplify a word") {
                    None => return,
                    Some(true) => {
                        self.maybe_shorten();
                        break;
                    }
                    Some(false) => {}
                }
            }
            i += 1;
        }
    }
}

type Simplify = fn(&Options, u64) -> Option<Options>;

/// The option simplifications, most effective first. Each gets the options and the time of
/// the violation and returns the simpler options (or `None` when it does not apply).
const SIMPLIFICATIONS: &[(&str, Simplify)] = &[
    ("3 nodes", |o, _| {
        (o.nodes > 3).then(|| Options {
            nodes: 3,
            liveness_out: o.liveness_out.min(1),
            ..o.clone()
        })
    }),
    ("no membership agent", |o, _| {
        (o.membership_gap_max_us > 0).then(|| Options {
            membership_gap_max_us: 0,
            spare_nodes: 0,
            promotion_crash: false,
            ..o.clone()
        })
    }),
    ("no promotion-crash agent", |o, _| {
        o.promotion_crash.then(|| Options {
            promotion_crash: false,
            ..o.clone()
        })
    }),
    ("no transfer agent", |o, _| {
        (o.transfer_gap_max_us > 0).then(|| Options {
            transfer_gap_max_us: 0,
            ..o.clone()
        })
    }),
    ("1 client", |o, _| {
        (o.clients > 1).then(|| Options {
            clients: 1,
            ..o.clone()
        })
    }),
    ("half the clients", |o, _| {
        (o.clients > 2).then(|| Options {
            clients: o.clients / 2,
            ..o.clone()
        })
    }),
    ("1 key", |o, _| {
        (o.keys > 1).then(|| Options {
            keys: 1,
            ..o.clone()
        })
    }),
    ("safety phase ends at the violation", |o, at| {
        let end = at.max(ELECTION_US);
        (end < o.safety_us).then(|| Options {
            safety_us: end,
            ..o.clone()
        })
    }),
    ("half the safety phase", |o, _| {
        (o.safety_us >= 4 * ELECTION_US).then(|| Options {
            safety_us: o.safety_us / 2,
            ..o.clone()
        })
    }),
    ("no partitions", |o, _| {
        o.partitions.then(|| Options {
            partitions: false,
            ..o.clone()
        })
    }),
    ("no clogging", |o, _| {
        o.clogging.then(|| Options {
            clogging: false,
            ..o.clone()
        })
    }),
    ("no pauses", |o, _| {
        o.pauses.then(|| Options {
            pauses: false,
            ..o.clone()
        })
    }),
    ("no crashes", |o, _| {
        o.crashes.then(|| Options {
            crashes: false,
            ..o.clone()
        })
    }),
    ("no compaction", |o, _| {
        (o.compact_every_entries > 0).then(|| Options {
            compact_every_entries: 0,
            ..o.clone()
        })
    }),
    ("no message loss", |o, _| {
        (o.net_loss_ppm > 0 || o.client_loss_ppm > 0).then(|| Options {
            net_loss_ppm: 0,
            client_loss_ppm: 0,
            ..o.clone()
        })
    }),
    ("no duplicates or replays", |o, _| {
        (o.net_dup_ppm > 0 || o.net_replay_ppm > 0).then(|| Options {
            net_dup_ppm: 0,
            net_replay_ppm: 0,
            ..o.clone()
        })
    }),
    ("no slow links or jitter", |o, _| {
        (o.net_slow_link_us > 0 || o.net_delay_jitter_us > 0).then(|| Options {
            net_slow_link_us: 0,
            net_delay_jitter_us: 0,
            ..o.clone()
        })
    }),
    ("no reordering", |o, _| {
        o.net_reorder.then(|| Options {
            net_reorder: false,
            ..o.clone()
        })
    }),
    ("no fsync stalls or jitter", |o, _| {
        (o.fsync_stall_ppm > 0 || o.fsync_jitter_us > 0).then(|| Options {
            fsync_stall_ppm: 0,
            fsync_jitter_us: 0,
            ..o.clone()
        })
    }),
    ("no clock drift", |o, _| {
        (o.clock_drift_ppm > 0).then(|| Options {
            clock_drift_ppm: 0,
            ..o.clone()
        })
    }),
    ("reads through the log", |o, _| {
        (o.reads != ReadMode::Log).then(|| Options {
            reads: ReadMode::Log,
            ..o.clone()
        })
    }),
    ("no pre-vote", |o, _| {
        o.pre_vote.then(|| Options {
            pre_vote: false,
            ..o.clone()
        })
    }),
    ("no wire round trips", |o, _| {
        (o.net_wire_roundtrip_ppm > 0).then(|| Options {
            net_wire_roundtrip_ppm: 0,
            ..o.clone()
        })
    }),
    ("nobody left out of the liveness phase", |o, _| {
        (o.liveness_out > 0).then(|| Options {
            liveness_out: 0,
            ..o.clone()
        })
    }),
];

/// How complex options are: nodes and clients count most, then each fault family, agent and
/// source of nondeterminism that is on.
pub fn option_weight(o: &Options) -> u64 {
    let flags = [
        o.partitions,
        o.clogging,
        o.crashes,
        o.pauses,
        o.compact_every_entries > 0,
        o.transfer_gap_max_us > 0,
        o.membership_gap_max_us > 0,
        o.promotion_crash,
        o.net_loss_ppm > 0 || o.client_loss_ppm > 0,
        o.net_dup_ppm > 0 || o.net_replay_ppm > 0,
        o.net_slow_link_us > 0 || o.net_delay_jitter_us > 0,
        o.net_reorder,
        o.fsync_stall_ppm > 0 || o.fsync_jitter_us > 0,
        o.clock_drift_ppm > 0,
        o.reads != ReadMode::Log,
        o.pre_vote,
        o.net_wire_roundtrip_ppm > 0,
        o.liveness_out > 0,
    ];
    10 * o.slots()
        + 4 * u64::from(o.clients)
        + u64::from(o.keys)
        + flags.iter().filter(|&&f| f).count() as u64
}

fn cost(report: &RunReport, options: &Options, words: usize) -> Cost {
    let f = &report.faults;
    Cost {
        events: report.events,
        options: option_weight(options),
        faults: f.partitions
            + f.clogs
            + f.crashes
            + f.pauses
            + report.net.dropped
            + report.net.copies,
        words: words as u64,
    }
}

fn describe(c: &Cost) -> String {
    format!(
        "{} events, option weight {}, {} faults, {} words",
        c.events, c.options, c.faults, c.words
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;
    use crate::options::PlantedBugs;

    #[test]
    fn a_shrunk_schedule_is_smaller_and_replays_to_the_same_violation() {
        let settings = Settings {
            bugs: PlantedBugs {
                ack_before_durable: true,
                ..PlantedBugs::default()
            },
            ..Settings::default()
        };
        let (report, schedule) = schedule::record(0, &settings);
        let property = report
            .violation
            .as_ref()
            .expect("seed 0 catches the bug")
            .property;
        let shrunk = shrink(schedule, property, &mut Runs(400));
        assert!(
            shrunk.after < shrunk.before,
            "{:?} -> {:?}",
            shrunk.before,
            shrunk.after
        );
        assert!(shrunk.after.events < report.events);
        let text = shrunk.schedule.to_text();
        let back = Schedule::parse(&text).expect("the shrunk file parses");
        let (again, _) = schedule::replay(&back, false);
        let v = again.violation.expect("the shrunk schedule still fails");
        assert_eq!(v.property, property);
        assert_eq!(again.trace_hash, shrunk.report.trace_hash);
        assert_eq!(again.events, shrunk.after.events);
    }
}
