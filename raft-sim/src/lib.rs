//! raft-sim: a deterministic discrete-event simulator for `raft-core`.
//!
//! One seed is one run: a [`world::World`] whose every random choice comes from one ChaCha
//! stream seeded with it ([`rng`]). The seed first draws its swarm options ([`options`]):
//! cluster size, raft-core switches, which fault families are on and how strong. Then the
//! nodes run the same Ready loop an integrator writes ([`node`]) over a simulated disk
//! ([`disk`]: writes are volatile until an fsync completes; a crash loses them or tears the
//! tail) and network ([`net`]: delay, loss, duplication, replays, reordering, bounded links,
//! partitions of several shapes, clogging), while clients ([`client`]) run a key-value
//! workload ([`kv`]) with unique operation ids, timeouts and retries: writes through the log,
//! reads through the log, by ReadIndex or by lease, as the seed chose.
//!
//! Agents run beside the clients, each a swarm option the seed draws: the compaction agent
//! (nodes snapshot their state machine and compact their logs, so lagging and new nodes catch
//! up by `MsgSnap`, reported with `report_snapshot`; restarts start from the durable snapshot;
//! see [`node`]), the leadership-transfer and membership agents (`agents`: transfers, adds of
//! new nodes, removals, promotions, demotions, joint changes with automatic or explicit leave),
//! and the read path (gets through the log, by ReadIndex, or by lease, under per-node clock
//! drift).
//!
//! A run has two phases. In the safety phase the nemesis (`nemesis`) injects faults. In the
//! liveness phase every fault is undone except a minority left out, and the connected core
//! (a quorum of the current configuration) must elect a leader within 50 election timeouts and
//! converge (every client answered, every core log fully applied and equal) within 100 (see
//! [`world`] for why these bounds).
//!
//! After every step of every node the checkers ([`checker`]) test the Raft safety properties
//! and their durable-state extensions, with quorums per configuration, and
//! `RawNode::check_invariants` runs; every configuration applied joins a chain that must be
//! agreed on and legal ([`conf_chain`]). At the end the client history must be linearizable
//! ([`linearizability`]), no operation may see a state older than one acknowledged before it
//! began ([`staleness`]), no acknowledged write may be missing, and live nodes at equal
//! applied indexes must hold equal states. The checkers never see a node: each node reports
//! what it did as [`observation`]s, and the world hands them to the checker, so the modules
//! read top-down (world → node, world → checker) with no import cycle
//! (`tests/module_graph.rs` keeps it that way).
//!
//! Simulated time: microseconds; one node tick is 10 ms (`election_ticks` 10, `heartbeat_ticks`
//! 1), so one base election timeout is 100 ms of simulated time.
//!
//! The command line (`src/main.rs`):
//!
//! ```text
//! cargo run --release -p raft-sim -- run --seed S [--trace FILE] [--bug NAME]... [--profile P]
//! cargo run --release -p raft-sim -- sweep --seeds N [--start S] [--jobs J] [--time-limit SECS]
//!                                           [--shard K/N] [--json FILE]
//! cargo run --release -p raft-sim -- merge FILE... [--json FILE]
//! cargo run --release -p raft-sim -- shrink --seed S [--bug NAME]... [--time-limit SECS] [--out F]
//! cargo run --release -p raft-sim -- replay FILE [--trace F] [--html F] [--script]
//! cargo run --release -p raft-sim -- run --seed S --html FILE
//! ```
//!
//! A run is data too ([`schedule`]): its options and the words it drew from its stream, which
//! replay it bit for bit; [`shrink`] cuts a failing schedule down while the same property
//! breaks, [`timeline`] prints it as a short script, and [`html`] draws it as one page.
//!
//! A sweep ends with one line `seeds=N failed=F sim_secs=X wall_secs=Y speedup=X/Yx events=E`
//! (speedup: simulated cluster-seconds per wall-clock second) and exits non-zero iff a seed
//! failed; every failure prints the property, the seed, its options and the command that
//! replays it bit for bit. A sweep can be spread over many machines: `--shard K/N` runs every
//! N-th seed ([`sweep::Shard`]), `--json` writes its summary as JSON, and `merge` adds the
//! shards' summaries up into the one of the whole sweep ([`summary`]).
//!
//! Not modelled yet: snapshot transfers that take time (a `MsgSnap` is one message; the
//! transport reports its fate when it arrives or is dropped), asynchronous snapshot creation,
//! clock pauses separate from process pauses, and `forget_leader`.
//!
//! ```
//! let report = raft_sim::run(7, &raft_sim::Settings::default());
//! assert!(report.violation.is_none(), "{}", report.failure_text());
//! ```
#![warn(missing_docs)]

mod agents;
pub mod checker;
pub mod client;
pub mod conf_chain;
pub mod disk;
#[doc(hidden)]
pub mod fuzzing;
pub mod html;
pub mod kv;
pub mod linearizability;
mod nemesis;
pub mod net;
pub mod node;
pub mod observation;
pub mod options;
pub mod rng;
pub mod schedule;
pub mod shrink;
pub mod staleness;
pub mod stats;
pub mod summary;
pub mod sweep;
pub mod timeline;
pub mod trace;
pub mod world;

use checker::{Property, Violation};
use options::{Options, PlantedBugs};
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// How to run a seed, beyond the seed itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Settings {
    /// Keep a readable trace (costs time; the hash is always kept).
    pub trace: bool,
    /// Planted bugs to switch on (on top of the drawn options).
    pub bugs: PlantedBugs,
    /// A profile that overrides some drawn options.
    pub profile: Profile,
}

/// Named overrides of the drawn options (the replay command names them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// The options as drawn.
    #[default]
    Swarm,
    /// [`Options::apply_churn_profile`]: leader churn with diverging logs.
    Churn,
    /// [`Options::apply_lease_profile`]: lease reads at the edge of the clock bound.
    Lease,
    /// [`Options::apply_lease_skew_profile`] (test-only): lease reads under a leader whose
    /// clock runs three times slow; stale reads are expected.
    LeaseSkew,
    /// [`Options::apply_agents_profile`]: every agent at a high rate.
    Agents,
}

impl Profile {
    /// The name the command line uses (`--profile NAME`); `None` for the default.
    pub fn flag(self) -> Option<&'static str> {
        match self {
            Profile::Swarm => None,
            Profile::Churn => Some("churn"),
            Profile::Lease => Some("lease"),
            Profile::LeaseSkew => Some("lease-skew"),
            Profile::Agents => Some("agents"),
        }
    }
}

/// What one run did.
#[derive(Debug)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// The options it drew (with the planted bugs and profile of the settings).
    pub options: Options,
    /// The profile applied to them.
    pub profile: Profile,
    /// The first property broken, if any.
    pub violation: Option<Violation>,
    /// Simulated time the run covered.
    pub sim_us: u64,
    /// Events processed.
    pub events: u64,
    /// Hash of the whole event sequence (equal for equal runs).
    pub trace_hash: u64,
    /// Time from the start of the liveness phase until a leader was known to every core node.
    pub liveness_election_us: Option<u64>,
    /// Time from the start of the liveness phase until convergence.
    pub liveness_converge_us: Option<u64>,
    /// Terms that had a leader.
    pub leader_terms: usize,
    /// Highest committed index.
    pub committed: u64,
    /// Times a leader committed up to an entry of an earlier term (planted Figure 8 bug).
    pub old_term_commits: u64,
    /// Client operations answered.
    pub ops_answered: u64,
    /// Network counters.
    pub net: net::NetStats,
    /// Fault counters.
    pub faults: world::FaultStats,
    /// Agent counters.
    pub agents: world::AgentStats,
    /// Configurations applied in the run (the founding one included).
    pub configurations: usize,
    /// The readable trace, if asked for.
    pub trace: Option<String>,
}

impl RunReport {
    /// The command that replays this run bit for bit.
    pub fn replay_command(&self) -> String {
        let features = if self.options.bugs.commit_previous_term {
            " --features planted-bugs"
        } else {
            ""
        };
        let profile = self
            .profile
            .flag()
            .map_or(String::new(), |p| format!(" --profile {p}"));
        format!(
            "cargo run --release -p raft-sim{features} -- run --seed {}{profile}{}",
            self.seed,
            self.options.bug_flags()
        )
    }

    /// A readable failure report: property, seed, options, replay command.
    pub fn failure_text(&self) -> String {
        let Some(v) = &self.violation else {
            return format!("seed {} passed", self.seed);
        };
        format!(
            "FAILED: {} (seed {}, at {})\n  {}\noptions:\n{}\nreplay: {}",
            v.property,
            self.seed,
            world::ms(v.at_us),
            v.detail,
            self.options,
            self.replay_command()
        )
    }
}

thread_local! {
    /// Set while a run is in progress on this thread: its panics are captured here instead
    /// of printed, and turned into a `CorePanic` violation.
    static PANIC_SLOT: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let captured = PANIC_SLOT.with(|slot| {
                let mut slot = slot.borrow_mut();
                match slot.as_mut() {
                    Some(s) => {
                        let loc = info
                            .location()
                            .map(|l| format!(" at {}:{}", l.file(), l.line()))
                            .unwrap_or_default();
                        let msg = info
                            .payload()
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| {
                                info.payload().downcast_ref::<&str>().map(|s| s.to_string())
                            })
                            .unwrap_or_else(|| "(no message)".into());
                        *s = Some(format!("{msg}{loc}"));
                        true
                    }
                    None => false,
                }
            });
            if !captured {
                default(info);
            }
        }));
    });
}

/// Runs seed `seed`.
pub fn run(seed: u64, settings: &Settings) -> RunReport {
    let mut rng = rng::SimRng::new(seed);
    let options = draw_options(&mut rng, settings);
    let w = world::World::new(options.clone(), rng, settings.trace);
    run_world(seed, options, settings.profile, w)
}

/// Draws a run's options from its stream, with the planted bugs and profile of `settings`.
pub(crate) fn draw_options(rng: &mut rng::SimRng, settings: &Settings) -> Options {
    let mut options = Options::draw(rng);
    options.bugs = settings.bugs;
    match settings.profile {
        Profile::Swarm => {}
        Profile::Churn => options.apply_churn_profile(),
        Profile::Lease => options.apply_lease_profile(),
        Profile::LeaseSkew => options.apply_lease_skew_profile(),
        Profile::Agents => options.apply_agents_profile(),
    }
    options
}

/// Runs a built world to its end and reports on it; a panic inside the run (raft-core's
/// assertions, the driver's checks) becomes a `CorePanic` violation. `seed` and `profile` are
/// only reported; `options` are the ones `w` was built with.
pub(crate) fn run_world(
    seed: u64,
    options: Options,
    profile: Profile,
    mut w: world::World,
) -> RunReport {
    run_world_in_place(seed, options, profile, &mut w)
}

/// [`run_world`] on a world the caller keeps (a schedule's run reads its tape afterwards).
pub(crate) fn run_world_in_place(
    seed: u64,
    options: Options,
    profile: Profile,
    w: &mut world::World,
) -> RunReport {
    install_panic_hook();
    PANIC_SLOT.with(|s| *s.borrow_mut() = Some(None));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| w.run()));
    let captured = PANIC_SLOT.with(|s| s.borrow_mut().take()).flatten();
    if outcome.is_err() {
        let now = w.now_us;
        w.checker.fail(
            Property::CorePanic,
            now,
            captured.unwrap_or_else(|| "panic without a message".into()),
        );
    }
    let (liveness_election_us, liveness_converge_us) = match &w.phase {
        world::Phase::Done {
            election_us,
            converge_us,
        } => (Some(*election_us), Some(*converge_us)),
        world::Phase::Liveness { election_us, .. } => (*election_us, None),
        world::Phase::Safety => (None, None),
    };
    let ops_answered = w.history.iter().filter(|h| h.ret_us.is_some()).count() as u64;
    RunReport {
        seed,
        violation: w.take_violation(),
        sim_us: w.now_us,
        events: w.events,
        trace_hash: w.trace.hash(),
        liveness_election_us,
        liveness_converge_us,
        leader_terms: w.checker.leader_terms(),
        committed: w.checker.committed_index(),
        ops_answered,
        old_term_commits: w.checker.old_term_commits,
        net: w.net_stats(),
        faults: w.faults,
        agents: w.stats,
        configurations: w.checker.chain.len(),
        options,
        profile,
        trace: std::mem::replace(&mut w.trace, trace::Trace::new(false)).into_text(),
    }
}
