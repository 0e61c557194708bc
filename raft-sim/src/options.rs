//! Swarm options: what each seed turns on, and how hard.
//!
//! Swarm testing (Groce et al., "Swarm Testing", ISSTA 2012): rather than every run mixing
//! every fault at a fixed rate, each seed first draws which fault families are on and how
//! strong they are, so some runs are calm enough for deep protocol states and others are
//! storms. The draw is the first thing a seed's stream does, and a run prints it.
//!
//! Units are in names: `_us` simulated microseconds, `_ppm` parts per million, `_ticks` node
//! ticks (1 tick = 10 ms simulated, see [`TICK_US`]).
//!
//! Besides faults, a seed draws which agents run (each is a swarm option the run prints):
//! the compaction agent (snapshots and log compaction, so lagging and new nodes catch up by
//! `MsgSnap`), the leadership-transfer agent, the membership agent (adds, removals, promotions,
//! demotions, joint changes) with its promotion-crash variant (promotions through joint
//! changes, the leader crashed as it commits one), and how clients read (through the log, by ReadIndex, or by
//! lease). Lease reads force check-quorum on (raft-core requires it) and cap clock drift at
//! [`LEASE_DRIFT_PPM_MAX`].
//!
//! Invariants:
//! 1. `nodes` is odd and between 3 and 7; `liveness_out <= (nodes - 1) / 2`, so the
//!    liveness phase always keeps a quorum connected (with membership changes the liveness
//!    phase recomputes who may be left out, see `crate::agents`).
//! 2. Every `_min` is at most its `_max`.
//! 3. Lease reads only with check-quorum, and with drift at most [`LEASE_DRIFT_PPM_MAX`] unless
//!    a test-only profile breaks the bound on purpose.

use crate::rng::{PPM, SimRng};
use std::fmt;

/// One tick of a node's logical clock in simulated microseconds: 10 ms.
pub const TICK_US: u64 = 10_000;
/// Election timeout base (`Config.election_ticks`).
pub const ELECTION_TICKS: u32 = 10;
/// Heartbeat interval (`Config.heartbeat_ticks`).
pub const HEARTBEAT_TICKS: u32 = 1;
/// One base election timeout in simulated microseconds (100 ms).
pub const ELECTION_US: u64 = TICK_US * ELECTION_TICKS as u64;
/// The largest clock drift (either way, per node) a lease-read seed draws: 4%, so two nodes'
/// clock rates differ by at most 1.04 / 0.96 - 1 = 8.3%, inside the one tick per election
/// timeout (1 / `ELECTION_TICKS` = 10%) that raft-core's lease documentation names as its
/// margin. (Sweeps at the edge pass; the test-only `lease-skew` profile shows what breaking the
/// bound does.)
pub const LEASE_DRIFT_PPM_MAX: u32 = 40_000;

/// How clients read a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// A get is a log entry like a write.
    Log,
    /// `read_index` on the node the client talks to (confirmed by a heartbeat round).
    ReadIndex,
    /// `read_index` with `ReadOnlyOption::LeaseBased` (needs check-quorum).
    Lease,
}

/// Deliberate bugs the simulator must catch (see the planted-bug tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    /// The sim driver reports every persist batch durable (`on_persisted`) as soon as it is
    /// written, before its fsync: acknowledgements and votes leave before the state they
    /// vouch for is durable, and a crash loses it ("a disk that lies").
    pub ack_before_durable: bool,
    /// raft-core's `Config.planted_bugs.commit_previous_term_entries` (Figure 8). Only has
    /// an effect when the crate is built with the `planted-bugs` feature.
    pub commit_previous_term: bool,
    /// Switch off the driver's durable-before-send check, to show that the downstream
    /// checkers (election safety, state machine safety, lost writes) also catch
    /// `ack_before_durable` once crashes make the lie matter.
    pub skip_durable_before_send_check: bool,
    /// The sim driver serves a ReadIndex read as soon as its read state arrives, without
    /// waiting until it has applied the read index.
    pub read_before_apply: bool,
    /// The sim driver persists each configuration it applies (`set_conf_state`) without
    /// snapshotting the state machine with it, so a restart re-applies configuration changes
    /// on top of their own result.
    pub conf_state_ahead_of_snapshot: bool,
}

/// Everything a seed decides before its first event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Cluster size.
    pub nodes: u64,
    /// Length of the safety phase (faults on).
    pub safety_us: u64,

    // -- raft-core configuration
    /// `Config.pre_vote`.
    pub pre_vote: bool,
    /// `Config.check_quorum`.
    pub check_quorum: bool,
    /// `Config.proposal_forwarding`.
    pub proposal_forwarding: bool,
    /// `Config.msg_bytes_max` (small values split appends and acks).
    pub msg_bytes_max: u64,
    /// `Config.inflight_msgs_max`.
    pub inflight_msgs_max: usize,
    /// `Config.uncommitted_bytes_max` (0 = unbounded).
    pub uncommitted_bytes_max: u64,
    /// `Config.step_down_on_removal` (matters only with membership changes).
    pub step_down_on_removal: bool,

    // -- network
    /// Smallest one-way delay of a message.
    pub net_delay_min_us: u64,
    /// Largest random extra delay on top of the minimum.
    pub net_delay_jitter_us: u64,
    /// Links that are slow get this much more jitter (0 = no slow links).
    pub net_slow_link_us: u64,
    /// Chance that a message is lost.
    pub net_loss_ppm: u32,
    /// Chance that a message is delivered twice.
    pub net_dup_ppm: u32,
    /// Chance that a send also replays an old message of the same link.
    pub net_replay_ppm: u32,
    /// Whether messages of one link may overtake each other.
    pub net_reorder: bool,
    /// Most messages in flight on one link; more are dropped.
    pub net_link_capacity_max: usize,
    /// Chance that a message goes through protobuf encode/decode on its way.
    pub net_wire_roundtrip_ppm: u32,
    /// Whether the driver reports a peer unreachable (`RawNode::report_unreachable`) when a
    /// send to it fails visibly (the link is cut or the peer is down), as a transport that
    /// sees a refused connection would.
    pub report_unreachable: bool,

    // -- faults (the nemesis)
    /// Partitions of several shapes.
    pub partitions: bool,
    /// Links that hold their traffic, then release it at once.
    pub clogging: bool,
    /// Node crashes (unsynced writes lost) and restarts.
    pub crashes: bool,
    /// Process pauses (no ticks, no message handling) and resumes.
    pub pauses: bool,
    /// On resume, the driver first ticks as many times as the pause was long (a clock that
    /// kept running); otherwise the pause is lost time for the node's clock. Always on with
    /// lease reads, whose safety assumes clocks that do not stop.
    pub pause_catch_up: bool,
    /// Smallest gap between two nemesis actions.
    pub nemesis_gap_min_us: u64,
    /// Largest gap between two nemesis actions.
    pub nemesis_gap_max_us: u64,
    /// How long a fault lasts at most before it is undone.
    pub fault_duration_max_us: u64,

    // -- disk
    /// Smallest fsync latency.
    pub fsync_min_us: u64,
    /// Largest random extra fsync latency.
    pub fsync_jitter_us: u64,
    /// Chance that an fsync stalls (a long latency).
    pub fsync_stall_ppm: u32,
    /// Length of a stall at most.
    pub fsync_stall_max_us: u64,
    /// On a crash, a random prefix of unsynced writes survives and the next record may be torn
    /// (and is discarded on recovery); otherwise every unsynced write is lost.
    pub torn_writes: bool,

    // -- clocks
    /// Largest drift of a node's tick rate, either way.
    pub clock_drift_ppm: u32,

    // -- workload
    /// Number of clients (each runs one operation at a time).
    pub clients: u32,
    /// Number of keys (fewer keys, more contention).
    pub keys: u8,
    /// Smallest pause between a client's operations.
    pub think_min_us: u64,
    /// Largest pause between a client's operations.
    pub think_max_us: u64,
    /// How long a client waits for an attempt before retrying elsewhere.
    pub client_timeout_us: u64,
    /// Chance that a client request or reply is lost.
    pub client_loss_ppm: u32,

    // -- liveness phase
    /// Nodes left crashed or cut off during the liveness phase (at most a minority).
    pub liveness_out: u64,

    // -- agents
    /// Compaction agent: a node snapshots its state machine and compacts its log whenever it
    /// has applied this many entries past its last snapshot (0 = off).
    pub compact_every_entries: u64,
    /// Entries kept in the log behind the snapshot when compacting.
    pub compact_keep_entries: u64,
    /// Leadership-transfer agent: most time between two requests (0 = off).
    pub transfer_gap_max_us: u64,
    /// Membership agent: most time between two changes (0 = off).
    pub membership_gap_max_us: u64,
    /// Node slots beyond the founders, for nodes the membership agent adds.
    pub spare_nodes: u64,
    /// The promotion-crash agent (with membership changes): joint changes that promote a
    /// learner and demote a voter, now and then with another voter down, and the leader
    /// crashed for good as soon as it commits one (before everyone knows). The shape of issue
    /// 12 item 1 (a promoted learner holding the longest log, stuck as a learner).
    pub promotion_crash: bool,
    /// How clients read.
    pub reads: ReadMode,
    /// Weight of the partition shape "isolate the current leader" (the other shapes weigh 1
    /// each).
    pub isolate_leader_weight: u64,
    /// Test-only: while a node leads, its clock runs this many times slower (1 = off).
    /// Breaks the lease's clock bound on purpose.
    pub leader_clock_slowdown: u64,

    /// Deliberate bugs (tests only; off in every drawn option set).
    pub bugs: PlantedBugs,
}

impl Options {
    /// Draws a seed's options from its stream.
    pub fn draw(rng: &mut SimRng) -> Options {
        let nodes = [3, 5, 5, 5, 7][rng.index(5)];
        let safety_us = rng.range(8_000_000, 16_000_000);
        let pre_vote = rng.ratio(3, 4);
        let check_quorum = rng.ratio(3, 4);
        let proposal_forwarding = rng.ratio(3, 4);
        let msg_bytes_max = [1, 64, 256, 4096, 1 << 20][rng.index(5)];
        let inflight_msgs_max = [1, 2, 4, 16, 256][rng.index(5)];
        let uncommitted_bytes_max = [0, 0, 0, 200, 2000][rng.index(5)];

        // Calm profile about one seed in six: no faults at all, only delays.
        let calm = rng.ratio(1, 6);
        let on = |rng: &mut SimRng, num: u64| !calm && rng.ratio(num, 4);

        let net_delay_min_us = rng.range(50, 2_000);
        let net_delay_jitter_us = [0, 500, 2_000, 10_000, 30_000][rng.index(5)];
        let net_slow_link_us = if on(rng, 1) {
            rng.range(5_000, 60_000)
        } else {
            0
        };
        let net_loss_ppm = if on(rng, 2) {
            rng.pick(&[1_000, 10_000, 50_000, 150_000])
        } else {
            0
        };
        let net_dup_ppm = if on(rng, 2) {
            rng.pick(&[1_000, 20_000, 100_000])
        } else {
            0
        };
        let net_replay_ppm = if on(rng, 1) {
            rng.pick(&[1_000, 10_000, 50_000])
        } else {
            0
        };
        let net_reorder = rng.ratio(3, 4);
        let net_link_capacity_max = [8, 64, 1024][rng.index(3)];
        let net_wire_roundtrip_ppm = [0, 10_000, 200_000, PPM][rng.index(4)];
        let report_unreachable = rng.ratio(3, 4);

        let partitions = on(rng, 3);
        let clogging = on(rng, 2);
        let crashes = on(rng, 3);
        let pauses = on(rng, 2);
        let nemesis_gap_min_us = rng.range(50_000, 500_000);
        let nemesis_gap_max_us = nemesis_gap_min_us + rng.range(100_000, 2_000_000);
        let fault_duration_max_us = rng.range(200_000, 3_000_000);

        let fsync_min_us = rng.range(20, 2_000);
        let fsync_jitter_us = [0, 500, 5_000, 20_000][rng.index(4)];
        let fsync_stall_ppm = if on(rng, 1) {
            rng.pick(&[1_000, 10_000, 50_000])
        } else {
            0
        };
        let fsync_stall_max_us = rng.range(50_000, 1_000_000);
        let torn_writes = rng.coin();
        let clock_drift_ppm = if on(rng, 2) {
            rng.pick(&[1_000, 20_000, 100_000])
        } else {
            0
        };

        let clients = rng.range(1, 8) as u32;
        let keys = rng.range(1, 5) as u8;
        let think_min_us = rng.range(0, 20_000);
        let think_max_us = think_min_us + rng.range(0, 100_000);
        let client_timeout_us = rng.range(200_000, 1_000_000);
        let client_loss_ppm = if on(rng, 1) {
            rng.pick(&[10_000, 50_000])
        } else {
            0
        };
        let liveness_out = rng.range(0, (nodes - 1) / 2);

        // Agents: drawn last, so the options above mean what they meant before agents existed.
        let compact_every_entries = if rng.ratio(1, 2) {
            rng.pick(&[4, 16, 64])
        } else {
            0
        };
        let compact_keep_entries = rng.pick(&[0, 0, 2, 16]);
        let transfer_gap_max_us = if rng.ratio(1, 3) {
            rng.range(200_000, 3_000_000)
        } else {
            0
        };
        let membership_gap_max_us = if rng.ratio(1, 3) {
            rng.range(200_000, 2_000_000)
        } else {
            0
        };
        let spare_nodes = rng.range(1, 3);
        let spare_nodes = if membership_gap_max_us > 0 {
            spare_nodes
        } else {
            0
        };
        let reads = [ReadMode::Log, ReadMode::ReadIndex, ReadMode::Lease][rng.index(3)];
        let pause_catch_up = rng.coin();
        let step_down_on_removal = rng.ratio(3, 4);
        // Drawn after every other option, so that those keep what they meant before it.
        let promotion_crash = membership_gap_max_us > 0 && rng.ratio(1, 2);
        // The shape needs followers that learn the commit index unevenly: one entry per
        // append and one append in flight make the leader's last appends reach some nodes and
        // not others.
        let (msg_bytes_max, inflight_msgs_max) = if promotion_crash {
            (1, 1)
        } else {
            (msg_bytes_max, inflight_msgs_max)
        };
        let (check_quorum, clock_drift_ppm, pause_catch_up) = if reads == ReadMode::Lease {
            (true, clock_drift_ppm.min(LEASE_DRIFT_PPM_MAX), true)
        } else {
            (check_quorum, clock_drift_ppm, pause_catch_up)
        };

        Options {
            nodes,
            safety_us,
            pre_vote,
            check_quorum,
            proposal_forwarding,
            msg_bytes_max,
            inflight_msgs_max,
            uncommitted_bytes_max,
            step_down_on_removal,
            net_delay_min_us,
            net_delay_jitter_us,
            net_slow_link_us,
            net_loss_ppm,
            net_dup_ppm,
            net_replay_ppm,
            net_reorder,
            net_link_capacity_max,
            net_wire_roundtrip_ppm,
            report_unreachable,
            partitions,
            clogging,
            crashes,
            pauses,
            pause_catch_up,
            nemesis_gap_min_us,
            nemesis_gap_max_us,
            fault_duration_max_us,
            fsync_min_us,
            fsync_jitter_us,
            fsync_stall_ppm,
            fsync_stall_max_us,
            torn_writes,
            clock_drift_ppm,
            clients,
            keys,
            think_min_us,
            think_max_us,
            client_timeout_us,
            client_loss_ppm,
            liveness_out,
            compact_every_entries,
            compact_keep_entries,
            transfer_gap_max_us,
            membership_gap_max_us,
            spare_nodes,
            promotion_crash,
            reads,
            isolate_leader_weight: 1,
            leader_clock_slowdown: 1,
            bugs: PlantedBugs::default(),
        }
    }

    /// All node slots: the founders and the spares.
    pub fn slots(&self) -> u64 {
        self.nodes + self.spare_nodes
    }

    /// Lease reads under a leader whose clock runs three times slow while partitions keep
    /// isolating it: the lease outlives the followers' promise not to elect anyone else, so a
    /// stale read is only a matter of time. A test-only profile (`--profile lease-skew`) that
    /// shows the read checks catch what a broken clock bound does.
    pub fn apply_lease_skew_profile(&mut self) {
        self.apply_lease_profile();
        self.clock_drift_ppm = 0;
        self.leader_clock_slowdown = 3;
    }

    /// Lease reads at the edge of the clock bound: every node drifts by up to
    /// [`LEASE_DRIFT_PPM_MAX`], partitions mostly isolate the leader, many clients read and
    /// write with little pause. Used by `--profile lease`.
    pub fn apply_lease_profile(&mut self) {
        self.reads = ReadMode::Lease;
        self.pause_catch_up = true;
        self.check_quorum = true;
        self.clock_drift_ppm = LEASE_DRIFT_PPM_MAX;
        self.partitions = true;
        self.isolate_leader_weight = 20;
        self.clogging = false;
        self.pauses = false;
        self.crashes = false;
        self.membership_gap_max_us = 0;
        self.spare_nodes = 0;
        self.promotion_crash = false;
        self.transfer_gap_max_us = 0;
        self.net_loss_ppm = 0;
        self.nemesis_gap_min_us = 100_000;
        self.nemesis_gap_max_us = 600_000;
        self.fault_duration_max_us = 1_000_000;
        self.clients = 6;
        self.keys = self.keys.min(2);
        self.think_min_us = 0;
        self.think_max_us = 5_000;
    }

    /// Every agent at a high rate: compaction every 4 entries with nothing kept, leadership
    /// transfers and membership changes every few hundred milliseconds, three spare slots,
    /// crashes on. Used by `--profile agents`.
    pub fn apply_agents_profile(&mut self) {
        self.compact_every_entries = 4;
        self.compact_keep_entries = 0;
        self.transfer_gap_max_us = 600_000;
        self.membership_gap_max_us = 400_000;
        self.spare_nodes = 3;
        self.crashes = true;
    }

    /// Tilts the drawn options towards leader churn with diverging logs (3 nodes, a short
    /// safety phase, frequent short partitions, crashes and pauses, lossy slow links, one
    /// entry per append, no pre-vote or check-quorum), the ground on which a leader that
    /// commits previous-term entries (Figure 8) shows. The agents are off and reads go through
    /// the log, so the profile stays what it was calibrated as. Used by `--profile churn`.
    pub fn apply_churn_profile(&mut self) {
        self.compact_every_entries = 0;
        self.transfer_gap_max_us = 0;
        self.membership_gap_max_us = 0;
        self.spare_nodes = 0;
        self.promotion_crash = false;
        self.reads = ReadMode::Log;
        self.nodes = 3;
        self.safety_us = 3_000_000;
        self.pre_vote = false;
        self.check_quorum = false;
        self.msg_bytes_max = 1;
        self.inflight_msgs_max = 1;
        self.net_delay_jitter_us = 10_000;
        self.net_loss_ppm = 50_000;
        self.partitions = true;
        self.crashes = true;
        self.pauses = true;
        self.clogging = false;
        self.nemesis_gap_min_us = 20_000;
        self.nemesis_gap_max_us = 200_000;
        self.fault_duration_max_us = 400_000;
        self.clients = 8;
        self.think_min_us = 0;
        self.think_max_us = 5_000;
        self.liveness_out = self.liveness_out.min(1);
    }

    /// Checks the invariants in the module docs.
    ///
    /// # Panics
    /// If one is broken (a bug in `draw` or in a test's override).
    pub fn check(&self) {
        assert!(
            (3..=7).contains(&self.nodes) && self.nodes % 2 == 1,
            "nodes is odd, 3..=7"
        );
        assert!(
            self.liveness_out <= (self.nodes - 1) / 2,
            "liveness keeps a quorum"
        );
        assert!(self.nemesis_gap_min_us <= self.nemesis_gap_max_us);
        assert!(self.think_min_us <= self.think_max_us);
        assert!(self.clients >= 1 && self.keys >= 1);
        assert!(self.net_link_capacity_max >= 1);
        assert!(
            self.reads != ReadMode::Lease || self.check_quorum,
            "lease reads need check-quorum"
        );
        assert!(
            self.reads != ReadMode::Lease
                || self.clock_drift_ppm <= LEASE_DRIFT_PPM_MAX
                || self.leader_clock_slowdown > 1,
            "lease reads keep the clock bound unless a test breaks it on purpose"
        );
        assert!(self.spare_nodes <= 3 && self.leader_clock_slowdown >= 1);
        assert!(
            self.reads != ReadMode::Lease || self.pause_catch_up,
            "lease reads need clocks that keep running through pauses"
        );
        assert!(self.spare_nodes == 0 || self.membership_gap_max_us > 0);
        assert!(!self.promotion_crash || self.membership_gap_max_us > 0);
    }

    /// The command-line flags that re-create `bugs` (empty when none is planted).
    pub fn bug_flags(&self) -> String {
        let mut s = String::new();
        if self.bugs.ack_before_durable {
            s.push_str(" --bug ack-before-durable");
        }
        if self.bugs.commit_previous_term {
            s.push_str(" --bug commit-previous-term");
        }
        if self.bugs.skip_durable_before_send_check {
            s.push_str(" --bug skip-durable-before-send-check");
        }
        if self.bugs.read_before_apply {
            s.push_str(" --bug read-before-apply");
        }
        if self.bugs.conf_state_ahead_of_snapshot {
            s.push_str(" --bug conf-state-ahead-of-snapshot");
        }
        s
    }
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn ms(us: u64) -> String {
    if us.is_multiple_of(1000) {
        format!("{}ms", us / 1000)
    } else {
        format!("{:.1}ms", us as f64 / 1000.0)
    }
}

fn pct(ppm: u32) -> String {
    format!("{}%", f64::from(ppm) / 10_000.0)
}

impl fmt::Display for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  cluster: nodes={} safety={} pre_vote={} check_quorum={} forwarding={} \
             msg_bytes_max={} inflight_msgs_max={} uncommitted_bytes_max={} \
             step_down_on_removal={}",
            self.nodes,
            ms(self.safety_us),
            on_off(self.pre_vote),
            on_off(self.check_quorum),
            on_off(self.proposal_forwarding),
            self.msg_bytes_max,
            self.inflight_msgs_max,
            self.uncommitted_bytes_max,
            on_off(self.step_down_on_removal)
        )?;
        writeln!(
            f,
            "  network: delay={}+{} slow_links={} loss={} dup={} replay={} reorder={} \
             link_capacity_max={} wire_roundtrip={} report_unreachable={}",
            ms(self.net_delay_min_us),
            ms(self.net_delay_jitter_us),
            ms(self.net_slow_link_us),
            pct(self.net_loss_ppm),
            pct(self.net_dup_ppm),
            pct(self.net_replay_ppm),
            on_off(self.net_reorder),
            self.net_link_capacity_max,
            pct(self.net_wire_roundtrip_ppm),
            on_off(self.report_unreachable)
        )?;
        writeln!(
            f,
            "  faults: partitions={} clogging={} crashes={} pauses={} pause_catch_up={} \
             gap={}..{} duration_max={} clock_drift={}",
            on_off(self.partitions),
            on_off(self.clogging),
            on_off(self.crashes),
            on_off(self.pauses),
            on_off(self.pause_catch_up),
            ms(self.nemesis_gap_min_us),
            ms(self.nemesis_gap_max_us),
            ms(self.fault_duration_max_us),
            pct(self.clock_drift_ppm)
        )?;
        writeln!(
            f,
            "  disk: fsync={}+{} stalls={} stall_max={} torn_writes={}",
            ms(self.fsync_min_us),
            ms(self.fsync_jitter_us),
            pct(self.fsync_stall_ppm),
            ms(self.fsync_stall_max_us),
            on_off(self.torn_writes)
        )?;
        writeln!(
            f,
            "  workload: clients={} keys={} think={}..{} timeout={} client_loss={} \
             liveness_out={}",
            self.clients,
            self.keys,
            ms(self.think_min_us),
            ms(self.think_max_us),
            ms(self.client_timeout_us),
            pct(self.client_loss_ppm),
            self.liveness_out
        )?;
        let every = |us: u64| {
            if us == 0 {
                "off".to_string()
            } else {
                format!("<={}", ms(us))
            }
        };
        writeln!(
            f,
            "  agents: compaction={} transfer={} membership={} spare_nodes={} \
             promotion_crash={} reads={:?} isolate_leader_weight={} leader_clock_slowdown={}x",
            if self.compact_every_entries == 0 {
                "off".to_string()
            } else {
                format!(
                    "every {} entries keep {}",
                    self.compact_every_entries, self.compact_keep_entries
                )
            },
            every(self.transfer_gap_max_us),
            every(self.membership_gap_max_us),
            self.spare_nodes,
            on_off(self.promotion_crash),
            self.reads,
            self.isolate_leader_weight,
            self.leader_clock_slowdown
        )?;
        write!(
            f,
            "  planted bugs: ack_before_durable={} commit_previous_term={} \
             skip_durable_before_send_check={} read_before_apply={} conf_state_ahead_of_snapshot={}",
            on_off(self.bugs.ack_before_durable),
            on_off(self.bugs.commit_previous_term),
            on_off(self.bugs.skip_durable_before_send_check),
            on_off(self.bugs.read_before_apply),
            on_off(self.bugs.conf_state_ahead_of_snapshot)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_options_satisfy_their_invariants() {
        for seed in 0..500 {
            Options::draw(&mut SimRng::new(seed)).check();
        }
    }

    #[test]
    fn draws_differ_between_seeds_and_repeat_within_one() {
        let a = Options::draw(&mut SimRng::new(1));
        let b = Options::draw(&mut SimRng::new(2));
        assert_ne!(a, b);
        assert_eq!(a, Options::draw(&mut SimRng::new(1)));
    }
}
