//! The discrete-event loop of one seed: an event queue ordered by (time, sequence number),
//! the nodes, the network, the clients and the checkers.
//!
//! ```text
//!   World::new(seed) ── draw options ── start nodes, clients, nemesis
//!   loop: pop the earliest event ─► dispatch ─► node steps (each checked) ─► effects queued
//!         ─► per-event checks ─► stop at the first violation
//!   at safety_us: liveness phase (see crate::nemesis) ─► probe every tick until converged
//!   end: linearizability, read freshness, lost writes, identical states
//! ```
//!
//! Node slots: the founders `1..=nodes`, then `spare_nodes` slots the membership agent may
//! start as new nodes (`crate::agents`). Clients know the nodes that were started and not
//! retired.
//!
//! Time is in simulated microseconds; a node tick is 10 ms ([`crate::options::TICK_US`]).
//! Events at the same time run in the order they were scheduled (the sequence number), so the
//! order never depends on anything but the seed.
//!
//! Invariants:
//! 1. Time never goes backwards: every event is scheduled at or after `now`.
//! 2. All randomness comes from `rng`, drawn in event order.
//! 3. Events of a crashed incarnation (fsyncs) or a stopped tick chain are ignored, by
//!    comparing the incarnation or epoch they carry.

use crate::checker::{Checker, Property, Violation};
use crate::client::{Client, InFlight, Reply, Route, history_record};
use crate::kv::Op;
use crate::linearizability::{self, HistoryOp};
use crate::net::{Arrival, CopyKind, Delivery, Net, NetStats, Report};
use crate::node::{Cx, DiskTiming, Effects, SimNode};
use crate::observation::NodeState;
use crate::options::{ELECTION_US, Options, ReadMode, TICK_US};
use crate::rng::SimRng;
use crate::staleness;
use crate::trace::Trace;
use raft_core::{Message, MessageType, Role, SnapshotStatus, Storage};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// The agent counters (kept in [`crate::stats`], which the nodes' drivers add to as well).
pub use crate::stats::AgentStats;

/// The liveness phase must have a leader, known to every core node, within this many base
/// election timeouts (5 s). Why so many: without pre-vote, every candidate bumps the term and
/// resets everyone's timer, and when the core is exactly a quorum only the most up-to-date
/// node can win; it must time out first, alone in its tick (timeouts are drawn from 10 tick
/// values), which happens in about one round in five. 50 timeouts (about 35 rounds) leave a
/// false alarm at about 1e-4 for that worst case; with pre-vote, elections take 1 to 3.
pub const LIVENESS_ELECTION_TIMEOUTS_MAX: u64 = 50;
/// ... and must have answered every client and converged (every core node has applied its
/// whole log, and the logs are equal) within this many (10 s): the election, then a client
/// may need a timeout (up to 1 s) per node it tries before it finds the leader.
pub const LIVENESS_CONVERGE_TIMEOUTS_MAX: u64 = 100;

/// One-way delay between a client and a node: uniform in this range.
const CLIENT_DELAY_US: (u64, u64) = (100, 2_000);
/// Pause before retrying when no node is known to lead.
const CLIENT_BACKOFF_US: (u64, u64) = (10_000, 50_000);

/// Something that happens at an instant.
#[derive(Debug)]
pub(crate) enum Ev {
    Tick {
        node: usize,
        epoch: u64,
    },
    Deliver {
        msg: Message,
        report: Report,
    },
    SnapshotReport {
        node: usize,
        incarnation: u64,
        peer: u64,
        status: SnapshotStatus,
    },
    Transfer,
    Membership,
    Retire {
        node: usize,
    },
    FsyncDone {
        node: usize,
        incarnation: u64,
        seq: u64,
    },
    ClientIssue {
        client: u32,
    },
    ClientArrive {
        node: usize,
        op: Op,
        attempt: u32,
    },
    ClientReply {
        client: u32,
        seq: u32,
        attempt: u32,
        reply: Reply,
    },
    ClientTimeout {
        client: u32,
        seq: u32,
        attempt: u32,
    },
    ClientRetry {
        client: u32,
        seq: u32,
        attempt: u32,
        node: Option<u64>,
    },
    Unreachable {
        node: usize,
        epoch: u64,
        peer: u64,
    },
    Nemesis,
    Heal {
        generation: u64,
    },
    Unclog {
        from: u64,
        to: u64,
    },
    Restart {
        node: usize,
    },
    Resume {
        node: usize,
    },
    Liveness,
    Probe,
    /// The promotion-crash agent watches leader `node` until it commits `index`.
    PromotionCrash {
        node: usize,
        index: u64,
        polls_left: u32,
    },
}

/// An event input that waits while its node is paused.
#[derive(Debug)]
pub(crate) enum Deferred {
    Message(Message),
    SnapshotReport { peer: u64, status: SnapshotStatus },
    Fsync { incarnation: u64, seq: u64 },
    Request { op: Op, attempt: u32 },
}

/// A queue entry: when, in which order, and where the event waits in the slab. Kept small
/// so the heap moves little; the events themselves (messages included) stay put.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Queued {
    at_us: u64,
    seq: u64,
    slot: u32,
}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Queued) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    /// Reversed, so the max-heap pops the earliest (time, sequence) first. Sequence numbers
    /// are unique, so the slot never decides.
    fn cmp(&self, other: &Queued) -> Ordering {
        (other.at_us, other.seq).cmp(&(self.at_us, self.seq))
    }
}

/// Which phase the run is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Safety,
    Liveness {
        start_us: u64,
        /// Indexes of the nodes that must elect and converge.
        core: Vec<usize>,
        election_us: Option<u64>,
    },
    Done {
        election_us: u64,
        converge_us: u64,
    },
}

/// Fault counters for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Partitions made.
    pub partitions: u64,
    /// Links clogged.
    pub clogs: u64,
    /// Crashes.
    pub crashes: u64,
    /// Cached records lost in crashes.
    pub records_lost: u64,
    /// Pauses.
    pub pauses: u64,
}

/// One seed's world.
pub struct World {
    pub(crate) opts: Options,
    pub(crate) rng: SimRng,
    pub(crate) now_us: u64,
    seq: u64,
    queue: BinaryHeap<Queued>,
    /// Events waiting in the queue, by slot; `free` lists the empty slots.
    slab: Vec<Option<Ev>>,
    free: Vec<u32>,
    /// `unreachable_due[node * nodes + peer]`: a report is already scheduled.
    unreachable_due: Vec<bool>,
    pub(crate) nodes: Vec<SimNode>,
    pub(crate) deferred: Vec<Vec<Deferred>>,
    pub(crate) net: Net,
    pub(crate) checker: Checker,
    pub(crate) trace: Trace,
    fx: Effects,
    deliveries: Vec<Delivery>,
    pub(crate) clients: Vec<Client>,
    pub(crate) history: Vec<HistoryOp>,
    pub(crate) phase: Phase,
    pub(crate) partition_generation: u64,
    pub(crate) disk_timing: DiskTiming,
    pub(crate) faults: FaultStats,
    pub(crate) stats: AgentStats,
    pub(crate) events: u64,
    /// The run stops after this many events (the fuzz target's bound; `u64::MAX` otherwise),
    /// and the end-of-run checks run on what happened until then.
    pub(crate) events_max: u64,
    /// Node ids clients may contact: started and not retired.
    pub(crate) contacts: Vec<u64>,
    /// Nodes the liveness phase leaves out (crashed or cut off).
    pub(crate) out: Vec<usize>,
    /// `retiring[i]`: node `i` was removed and its end is scheduled.
    pub(crate) retiring: Vec<bool>,
}

impl World {
    /// Builds the world of `seed` with `opts`, with every node started and the first events
    /// queued. `rng` is the seed's stream, already past the options draw.
    pub fn new(opts: Options, mut rng: SimRng, readable_trace: bool) -> World {
        opts.check();
        let voters: Vec<u64> = (1..=opts.nodes).collect();
        let mut nodes = Vec::new();
        for id in 1..=opts.slots() {
            let drift = i64::from(opts.clock_drift_ppm);
            let ppm = rng.range(0, 2 * drift as u64) as i64 - drift;
            let tick_us = (TICK_US as i64 + TICK_US as i64 * ppm / 1_000_000) as u64;
            if id <= opts.nodes {
                nodes.push(SimNode::new(id, &voters, &opts, tick_us, &mut rng));
            } else {
                nodes.push(SimNode::spare(id, &opts, tick_us));
            }
        }
        let net = Net::new(nodes.len(), &opts, &mut rng);
        let clients = (0..opts.clients)
            .map(|c| Client::new(c, opts.keys))
            .collect();
        let disk_timing = DiskTiming {
            fsync_min_us: opts.fsync_min_us,
            fsync_jitter_us: opts.fsync_jitter_us,
            stall_ppm: opts.fsync_stall_ppm,
            stall_max_us: opts.fsync_stall_max_us,
        };
        let n = nodes.len();
        let base = nodes[0].disk.durable();
        let base_index = base.first_index().expect("MemStorage answers") - 1;
        let base_term = base.term(base_index).expect("the base term is known");
        let founding = base.conf_state().clone();
        let membership = opts.membership_gap_max_us > 0;
        let mut checker = Checker::new(n, base_index, base_term, founding, membership);
        for (i, node) in nodes.iter().enumerate() {
            if let Some(raw) = &node.raw {
                checker.on_restart(i, raw);
            }
        }
        let contacts = voters.clone();
        let mut w = World {
            checker,
            deferred: (0..n).map(|_| Vec::new()).collect(),
            opts,
            rng,
            now_us: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            unreachable_due: vec![false; n * n],
            nodes,
            net,
            trace: Trace::new(readable_trace),
            fx: Effects::default(),
            deliveries: Vec::new(),
            clients,
            history: Vec::new(),
            phase: Phase::Safety,
            partition_generation: 0,
            disk_timing,
            faults: FaultStats::default(),
            stats: AgentStats::default(),
            events: 0,
            events_max: u64::MAX,
            contacts,
            out: Vec::new(),
            retiring: vec![false; n],
        };
        for node in 0..w.opts.nodes as usize {
            let first = w.rng.range(1, TICK_US);
            let epoch = w.nodes[node].epoch;
            w.schedule(first, Ev::Tick { node, epoch });
        }
        for client in 0..w.opts.clients {
            let t = w.rng.range(0, 50_000);
            w.schedule(t, Ev::ClientIssue { client });
        }
        if w.opts.partitions || w.opts.clogging || w.opts.crashes || w.opts.pauses {
            let t = w
                .rng
                .range(w.opts.nemesis_gap_min_us, w.opts.nemesis_gap_max_us);
            w.schedule(t, Ev::Nemesis);
        }
        if w.opts.transfer_gap_max_us > 0 {
            let t = w.rng.range(1, w.opts.transfer_gap_max_us);
            w.schedule(t, Ev::Transfer);
        }
        if w.opts.membership_gap_max_us > 0 {
            let t = w.rng.range(1, w.opts.membership_gap_max_us);
            w.schedule(t, Ev::Membership);
        }
        let safety_us = w.opts.safety_us;
        w.schedule(safety_us, Ev::Liveness);
        w
    }

    /// Queues `ev` at `delay_us` from now.
    pub(crate) fn schedule(&mut self, delay_us: u64, ev: Ev) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(ev);
                s
            }
            None => {
                self.slab.push(Some(ev));
                u32::try_from(self.slab.len() - 1).expect("fewer than 2^32 pending events")
            }
        };
        self.queue.push(Queued {
            at_us: self.now_us + delay_us,
            seq: self.seq,
            slot,
        });
    }

    /// Runs events until the run converges, a property breaks, the queue runs dry, or
    /// `events_max` events have run.
    pub fn run(&mut self) {
        let hard_end_us = self.opts.safety_us + (LIVENESS_CONVERGE_TIMEOUTS_MAX + 10) * ELECTION_US;
        while let Some(q) = self.queue.pop() {
            assert!(q.at_us >= self.now_us, "time never goes backwards");
            self.now_us = q.at_us;
            if self.now_us > hard_end_us {
                let now = self.now_us;
                self.checker.fail(
                    Property::Liveness,
                    now,
                    "the run passed its time limit without converging".into(),
                );
            }
            self.events += 1;
            self.trace.mix(self.now_us);
            let ev = self.slab[q.slot as usize]
                .take()
                .expect("a queued slot holds its event");
            self.free.push(q.slot);
            self.dispatch(ev);
            if self.checker.has_new_commits() {
                let now = self.now_us;
                let nodes: Vec<NodeState<'_>> = self.nodes.iter().map(SimNode::state).collect();
                self.checker.check_new_commits(&nodes, now);
            }
            if self.checker.violation().is_some()
                || matches!(self.phase, Phase::Done { .. })
                || self.events >= self.events_max
            {
                break;
            }
        }
        if self.checker.violation().is_none() {
            self.final_checks();
        }
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Tick { node, epoch } => {
                let nd = &self.nodes[node];
                if !nd.is_up() || nd.paused || nd.epoch != epoch {
                    return;
                }
                let tick_us = nd.tick_us;
                self.with_node(node, |n, cx| n.tick(cx));
                self.schedule(tick_us, Ev::Tick { node, epoch });
            }
            Ev::Deliver { msg, report } => self.arrive(msg, report),
            Ev::SnapshotReport {
                node,
                incarnation,
                peer,
                status,
            } => {
                let nd = &self.nodes[node];
                if !nd.is_up() || nd.incarnation != incarnation {
                    return;
                }
                if nd.paused {
                    self.deferred[node].push(Deferred::SnapshotReport { peer, status });
                    return;
                }
                self.count_report(status);
                self.with_node(node, |n, cx| n.report_snapshot(peer, status, cx));
            }
            Ev::Transfer => self.transfer_agent(),
            Ev::Membership => self.membership_agent(),
            Ev::Retire { node } => self.retire(node),
            Ev::FsyncDone {
                node,
                incarnation,
                seq,
            } => {
                if self.nodes[node].incarnation != incarnation {
                    return;
                }
                if self.nodes[node].paused {
                    self.deferred[node].push(Deferred::Fsync { incarnation, seq });
                    return;
                }
                self.with_node(node, |n, cx| n.fsync_done(seq, cx));
            }
            Ev::ClientIssue { client } => self.client_issue(client),
            Ev::ClientArrive { node, op, attempt } => {
                if !self.nodes[node].is_up() {
                    return;
                }
                if self.nodes[node].paused {
                    self.deferred[node].push(Deferred::Request { op, attempt });
                    return;
                }
                self.with_node(node, |n, cx| n.client_request(op, attempt, cx));
            }
            Ev::ClientReply {
                client,
                seq,
                attempt,
                reply,
            } => self.client_reply(client, seq, attempt, reply),
            Ev::ClientTimeout {
                client,
                seq,
                attempt,
            } => {
                if let Some(f) = self.in_flight(client, seq, attempt) {
                    // Try the leader hint, else the next node round the ring: within
                    // `nodes` timeouts every node has been asked (a hint is not followed to a
                    // node a hint already led to in vain, see `Client::dead_ends`).
                    let c = &mut self.clients[client as usize];
                    if f.route == Route::Hint {
                        c.mark_dead_end(f.node);
                    }
                    if c.leader_hint == Some(f.node) {
                        c.leader_hint = None;
                    }
                    let hint = c.leader_hint.filter(|&h| !c.is_dead_end(h));
                    let (next, route) = match hint {
                        Some(h) => (h, Route::Hint),
                        None => (self.next_contact(f.node), Route::Other),
                    };
                    self.client_attempt(client, next, route);
                }
            }
            Ev::ClientRetry {
                client,
                seq,
                attempt,
                node,
            } => {
                if let Some(f) = self.in_flight(client, seq, attempt) {
                    let next = node.unwrap_or_else(|| self.next_contact(f.node));
                    self.client_attempt(client, next, Route::Other);
                }
            }
            Ev::Unreachable { node, epoch, peer } => {
                self.unreachable_due[node * self.nodes.len() + peer as usize - 1] = false;
                let nd = &self.nodes[node];
                if nd.is_up() && !nd.paused && nd.epoch == epoch {
                    self.with_node(node, |n, cx| n.report_unreachable(peer, cx));
                }
            }
            Ev::Nemesis => self.nemesis(),
            Ev::Heal { generation } => self.heal(generation),
            Ev::Unclog { from, to } => self.unclog(from, to),
            Ev::Restart { node } => self.restart(node),
            Ev::Resume { node } => self.resume(node),
            Ev::Liveness => self.start_liveness(),
            Ev::Probe => self.probe(),
            Ev::PromotionCrash {
                node,
                index,
                polls_left,
            } => self.promotion_crash(node, index, polls_left),
        }
    }

    /// Runs `f` on node `node` with a step context, then carries out what it asked for.
    pub(crate) fn with_node(&mut self, node: usize, f: impl FnOnce(&mut SimNode, &mut Cx)) {
        let mut cx = Cx {
            now_us: self.now_us,
            rng: &mut self.rng,
            observer: &mut self.checker,
            trace: &mut self.trace,
            fx: &mut self.fx,
            bugs: self.opts.bugs,
            disk: self.disk_timing,
            stats: &mut self.stats,
        };
        f(&mut self.nodes[node], &mut cx);
        self.flush_effects(node);
    }

    fn flush_effects(&mut self, node: usize) {
        let mut sends = std::mem::take(&mut self.fx.sends);
        let mut deliveries = std::mem::take(&mut self.deliveries);
        for m in sends.drain(..) {
            let to = m.to;
            let snap = m.kind() == MessageType::MsgSnap;
            let outcome = self
                .net
                .send(self.now_us, m, &mut self.rng, &mut deliveries);
            if snap {
                self.stats.snapshots_sent += 1;
                if outcome.blocked || outcome.lost || outcome.overflow {
                    // The transport sees the transfer fail (a refused or broken stream).
                    self.report_snapshot_later(node, to, SnapshotStatus::Failure);
                }
            }
            let down = !self.nodes[to as usize - 1].is_up();
            let due = node * self.nodes.len() + to as usize - 1;
            if self.opts.report_unreachable
                && (outcome.blocked || down)
                && !self.unreachable_due[due]
            {
                // The transport notices a cut link or a refused connection a little later
                // (once: further failures before the report fold into it).
                self.unreachable_due[due] = true;
                let d = self.rng.range(1_000, 20_000);
                let epoch = self.nodes[node].epoch;
                self.schedule(
                    d,
                    Ev::Unreachable {
                        node,
                        epoch,
                        peer: to,
                    },
                );
            }
        }
        let incarnation = self.nodes[node].incarnation;
        for d in deliveries.drain(..) {
            let delay = d.at_us - self.now_us;
            let report = (d.copy == CopyKind::Original && d.msg.kind() == MessageType::MsgSnap)
                .then_some(incarnation);
            self.schedule(delay, Ev::Deliver { msg: d.msg, report });
        }
        self.fx.sends = sends;
        self.deliveries = deliveries;
        let mut fsyncs = std::mem::take(&mut self.fx.fsyncs);
        for (at_us, seq) in fsyncs.drain(..) {
            self.schedule(
                at_us - self.now_us,
                Ev::FsyncDone {
                    node,
                    incarnation,
                    seq,
                },
            );
        }
        self.fx.fsyncs = fsyncs;
        let mut replies = std::mem::take(&mut self.fx.replies);
        for (client, seq, attempt, reply) in replies.drain(..) {
            if !self.rng.chance(self.opts.client_loss_ppm) {
                let d = self.rng.range(CLIENT_DELAY_US.0, CLIENT_DELAY_US.1);
                self.schedule(
                    d,
                    Ev::ClientReply {
                        client,
                        seq,
                        attempt,
                        reply,
                    },
                );
            }
        }
        self.fx.replies = replies;
    }

    /// A message arrives at the end of its link.
    fn arrive(&mut self, msg: Message, report: Report) {
        let (mut msg, report) = match self.net.arrive(msg, report) {
            Arrival::Through(m, r) => (m, r),
            Arrival::Dropped(m, r) => {
                if let Some(inc) = r {
                    self.report_snapshot_to(m.from, inc, m.to, SnapshotStatus::Failure);
                }
                return;
            }
            Arrival::Held => return,
        };
        if self.rng.chance(self.opts.net_wire_roundtrip_ppm) {
            let bytes = msg.encode_to_bytes();
            match Message::decode_from(&bytes) {
                Ok(back) if back == msg => msg = back,
                other => {
                    let now = self.now_us;
                    self.checker.fail(
                        Property::WireRoundTrip,
                        now,
                        format!("{msg:?} came back from the wire as {other:?}"),
                    );
                    return;
                }
            }
        }
        let node = msg.to as usize - 1;
        let up = self.nodes[node].is_up();
        if let Some(inc) = report {
            // The snapshot reached the peer's transport (or found nobody listening).
            let status = if up {
                SnapshotStatus::Finish
            } else {
                SnapshotStatus::Failure
            };
            self.report_snapshot_to(msg.from, inc, msg.to, status);
        }
        if !up {
            self.net.count_dropped();
        } else if self.nodes[node].paused {
            self.deferred[node].push(Deferred::Message(msg));
        } else {
            self.net.count_delivered();
            self.with_node(node, |n, cx| n.deliver(msg, cx));
        }
    }

    /// Schedules a snapshot report to `node` (an index) about `peer`, for its current
    /// incarnation.
    fn report_snapshot_later(&mut self, node: usize, peer: u64, status: SnapshotStatus) {
        let incarnation = self.nodes[node].incarnation;
        self.report_snapshot_to(node as u64 + 1, incarnation, peer, status);
    }

    /// Schedules a snapshot report to incarnation `incarnation` of node `id` about `peer`.
    fn report_snapshot_to(&mut self, id: u64, incarnation: u64, peer: u64, status: SnapshotStatus) {
        let d = self.rng.range(100, 5_000);
        self.schedule(
            d,
            Ev::SnapshotReport {
                node: id as usize - 1,
                incarnation,
                peer,
                status,
            },
        );
    }

    fn count_report(&mut self, status: SnapshotStatus) {
        match status {
            SnapshotStatus::Finish => self.stats.snapshot_reports_finish += 1,
            SnapshotStatus::Failure => self.stats.snapshot_reports_failure += 1,
        }
    }

    /// The node clients try after `node`: the next one round the ring of contacts.
    pub(crate) fn next_contact(&self, node: u64) -> u64 {
        let c = &self.contacts;
        match c.iter().position(|&x| x > node) {
            Some(i) => c[i],
            None => c[0],
        }
    }

    /// Delivers what waited while `node` was paused, in arrival order.
    pub(crate) fn replay_deferred(&mut self, node: usize) {
        for d in std::mem::take(&mut self.deferred[node]) {
            if !self.nodes[node].is_up() || self.nodes[node].paused {
                break;
            }
            match d {
                Deferred::Message(m) => {
                    self.net.count_delivered();
                    self.with_node(node, |n, cx| n.deliver(m, cx));
                }
                Deferred::SnapshotReport { peer, status } => {
                    self.count_report(status);
                    self.with_node(node, |n, cx| n.report_snapshot(peer, status, cx));
                }
                Deferred::Fsync { incarnation, seq } => {
                    if self.nodes[node].incarnation == incarnation {
                        self.with_node(node, |n, cx| n.fsync_done(seq, cx));
                    }
                }
                Deferred::Request { op, attempt } => {
                    self.with_node(node, |n, cx| n.client_request(op, attempt, cx));
                }
            }
        }
    }

    // ------------------------------------------------------------ clients

    fn in_flight(&self, client: u32, seq: u32, attempt: u32) -> Option<InFlight> {
        self.clients[client as usize]
            .in_flight
            .filter(|f| f.op.seq == seq && f.attempt == attempt)
    }

    fn client_issue(&mut self, client: u32) {
        let c = &mut self.clients[client as usize];
        if !c.issuing || c.in_flight.is_some() {
            return;
        }
        let op = c.next_op(&mut self.rng, self.opts.reads == ReadMode::Log);
        let history_index = self.history.len();
        self.history.push(history_record(&op, self.now_us));
        let node = self.clients[client as usize].choose_node(&mut self.rng, &self.contacts);
        self.clients[client as usize].in_flight = Some(InFlight {
            op,
            attempt: 0,
            node,
            route: Route::Other,
            history_index,
        });
        self.trace.mix(u64::from(client) << 32 | u64::from(op.seq));
        let now = self.now_us;
        self.trace.line(now, || {
            format!(
                "client {client} calls op {} {:?} key {}",
                op.seq, op.kind, op.key
            )
        });
        self.client_attempt(client, node, Route::Other);
    }

    /// Starts the next attempt of `client`'s operation at `node`, chosen by `route`.
    fn client_attempt(&mut self, client: u32, node: u64, route: Route) {
        let c = &mut self.clients[client as usize];
        let f = c
            .in_flight
            .as_mut()
            .expect("an attempt of an operation in flight");
        f.attempt += 1;
        f.node = node;
        f.route = route;
        let (op, attempt) = (f.op, f.attempt);
        if !self.rng.chance(self.opts.client_loss_ppm) {
            let d = self.rng.range(CLIENT_DELAY_US.0, CLIENT_DELAY_US.1);
            self.schedule(
                d,
                Ev::ClientArrive {
                    node: node as usize - 1,
                    op,
                    attempt,
                },
            );
        }
        let timeout = self.opts.client_timeout_us;
        self.schedule(
            timeout,
            Ev::ClientTimeout {
                client,
                seq: op.seq,
                attempt,
            },
        );
    }

    fn client_reply(&mut self, client: u32, seq: u32, attempt: u32, reply: Reply) {
        let Some(f) = self.clients[client as usize].in_flight else {
            return;
        };
        if f.op.seq != seq {
            return;
        }
        let now = self.now_us;
        self.trace
            .mix(u64::from(client) << 40 | u64::from(seq) << 8 | u64::from(attempt));
        self.trace.line(now, || {
            format!("client {client} ← op {seq} attempt {attempt}: {reply:?}")
        });
        match reply {
            Reply::Result(r, index) => {
                // Any attempt's answer is the operation's: retries are deduplicated.
                self.clients[client as usize].refused_by = None;
                let done = self.clients[client as usize].complete(r);
                let rec = &mut self.history[done.history_index];
                rec.ret_us = Some(now);
                rec.result = Some(r);
                rec.index = Some(index);
                if self.clients[client as usize].issuing {
                    let think = self
                        .rng
                        .range(self.opts.think_min_us, self.opts.think_max_us);
                    self.schedule(think, Ev::ClientIssue { client });
                }
            }
            _ if attempt != f.attempt => {}
            Reply::Redirect(hint) => {
                let c = &mut self.clients[client as usize];
                c.leader_hint = hint;
                let refused_by = c.refused_by;
                let followed = hint.filter(|&h| h != f.node);
                // A hint back to a node that refused, or to a dead end, is stale: go round
                // the ring from here instead.
                let stale = followed.is_some_and(|h| Some(h) == refused_by || c.is_dead_end(h));
                if f.route == Route::Hint && followed.is_none() {
                    // A hint led here and this node knows no leader: a dead end.
                    c.mark_dead_end(f.node);
                }
                match hint {
                    Some(h) if h != f.node && !stale => self.client_attempt(client, h, Route::Hint),
                    Some(h) if Some(h) == refused_by || stale => {
                        let next = self.next_contact(f.node);
                        self.client_backoff(client, f, Some(next));
                    }
                    _ => self.client_backoff(client, f, None),
                }
            }
            Reply::Refused => {
                // A leader that refuses (flow control) may be cut off from its followers
                // for good: back off and ask the next node, which redirects if it knows
                // a leader.
                if self.clients[client as usize].leader_hint == Some(f.node) {
                    self.clients[client as usize].leader_hint = None;
                }
                self.clients[client as usize].refused_by = Some(f.node);
                let next = self.next_contact(f.node);
                self.client_backoff(client, f, Some(next));
            }
            // A leadership transfer is under way: the same node redirects once it is over.
            Reply::Busy => self.client_backoff(client, f, Some(f.node)),
            Reply::Lost => self.client_attempt(client, f.node, Route::Other),
        }
    }

    fn client_backoff(&mut self, client: u32, f: InFlight, node: Option<u64>) {
        let d = self.rng.range(CLIENT_BACKOFF_US.0, CLIENT_BACKOFF_US.1);
        self.schedule(
            d,
            Ev::ClientRetry {
                client,
                seq: f.op.seq,
                attempt: f.attempt,
                node,
            },
        );
    }

    // ------------------------------------------------------------ liveness

    fn probe(&mut self) {
        let Phase::Liveness {
            start_us,
            core,
            election_us,
        } = &self.phase
        else {
            return;
        };
        let (start_us, mut election_us) = (*start_us, *election_us);
        let core = self.liveness_core(core);
        if self.opts.membership_gap_max_us > 0 {
            // A removal that commits now ends its node at once.
            self.retire_removed();
        }
        let elapsed = self.now_us - start_us;
        let leader = self.established_leader(&core);
        if election_us.is_none() && leader.is_some() {
            election_us = Some(elapsed);
            let now = self.now_us;
            self.trace.line(now, || {
                format!(
                    "liveness: leader n{} established after {elapsed}us",
                    leader.unwrap_or(0) + 1
                )
            });
        }
        if let Phase::Liveness { election_us: e, .. } = &mut self.phase {
            *e = election_us;
        }
        if election_us.is_none() && elapsed > LIVENESS_ELECTION_TIMEOUTS_MAX * ELECTION_US {
            let detail = format!(
                "no leader known to every core node {} within {} election timeouts ({}): {}",
                names(&core),
                LIVENESS_ELECTION_TIMEOUTS_MAX,
                ms(LIVENESS_ELECTION_TIMEOUTS_MAX * ELECTION_US),
                self.describe_nodes(&core)
            );
            self.checker.fail(Property::Liveness, self.now_us, detail);
            return;
        }
        if let (Some(l), Some(e)) = (leader, election_us)
            && self.converged(l, &core)
        {
            self.phase = Phase::Done {
                election_us: e,
                converge_us: elapsed,
            };
            return;
        }
        if elapsed > LIVENESS_CONVERGE_TIMEOUTS_MAX * ELECTION_US {
            let pending: Vec<String> = self
                .clients
                .iter()
                .filter_map(|c| {
                    c.in_flight.map(|f| {
                        format!(
                            "client {} op {} at n{} attempt {}",
                            c.id, f.op.seq, f.node, f.attempt
                        )
                    })
                })
                .collect();
            let detail = format!(
                "core {} not converged within {} election timeouts ({}): {}; waiting: [{}]",
                names(&core),
                LIVENESS_CONVERGE_TIMEOUTS_MAX,
                ms(LIVENESS_CONVERGE_TIMEOUTS_MAX * ELECTION_US),
                self.describe_nodes(&core),
                pending.join(", ")
            );
            self.checker.fail(Property::Liveness, self.now_us, detail);
            return;
        }
        self.schedule(TICK_US, Ev::Probe);
    }

    /// The core node that leads with every core node following it in its term, if any.
    fn established_leader(&self, core: &[usize]) -> Option<usize> {
        let l = *core
            .iter()
            .find(|&&n| self.nodes[n].role() == Some(Role::Leader))?;
        let lr = self.nodes[l].raw.as_ref()?;
        let (term, id) = (lr.term(), lr.id());
        core.iter()
            .all(|&n| {
                self.nodes[n]
                    .raw
                    .as_ref()
                    .is_some_and(|r| r.term() == term && r.leader() == Some(id))
            })
            .then_some(l)
    }

    fn converged(&self, leader: usize, core: &[usize]) -> bool {
        if self.clients.iter().any(|c| c.in_flight.is_some()) {
            return false;
        }
        let Some(lr) = self.nodes[leader].raw.as_ref() else {
            return false;
        };
        let last = lr.last_entry_id();
        core.iter().all(|&n| {
            let node = &self.nodes[n];
            node.raw.as_ref().is_some_and(|r| {
                r.last_entry_id() == last && r.commit() == last.index && node.applied == last.index
            })
        })
    }

    fn describe_nodes(&self, core: &[usize]) -> String {
        core.iter()
            .map(|&n| match self.nodes[n].raw.as_ref() {
                None => format!("n{} down", n + 1),
                Some(r) => format!(
                    "n{} {}@{} leader {:?} commit {} applied {} last {}",
                    n + 1,
                    r.role(),
                    r.term(),
                    r.leader(),
                    r.commit(),
                    self.nodes[n].applied,
                    r.last_entry_id()
                ),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    // ------------------------------------------------------------ end of run

    fn final_checks(&mut self) {
        let now = self.now_us;
        // Freshness first: it is cheaper, and names the two operations and their indexes.
        if let Err(e) = staleness::check(&self.history) {
            self.checker.fail(Property::StaleRead, now, e.to_string());
            return;
        }
        if let Err(e) = linearizability::check(&self.history) {
            self.checker
                .fail(Property::Linearizability, now, e.to_string());
            return;
        }
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].is_up())
            .collect();
        for c in &self.clients {
            for &n in &live {
                let node = &self.nodes[n];
                if node.applied < self.checker.committed_index() {
                    continue;
                }
                let applied_seq = node.kv.session(c.id).map_or(0, |s| s.log_seq);
                if applied_seq < c.acked_log_seq {
                    self.checker.fail(
                        Property::LostWrite,
                        now,
                        format!(
                            "client {} logged op {} was acknowledged but n{} applied the whole \
                             committed log and has only up to logged op {applied_seq}",
                            c.id,
                            c.acked_log_seq,
                            n + 1
                        ),
                    );
                    return;
                }
            }
        }
        for (i, &a) in live.iter().enumerate() {
            for &b in &live[i + 1..] {
                let (na, nb) = (&self.nodes[a], &self.nodes[b]);
                if na.applied == nb.applied && na.kv != nb.kv {
                    self.checker.fail(
                        Property::StateDivergence,
                        now,
                        format!(
                            "n{} and n{} both applied up to {} but their states differ",
                            a + 1,
                            b + 1,
                            na.applied
                        ),
                    );
                    return;
                }
            }
        }
    }

    /// The first violation, if any.
    pub fn take_violation(&mut self) -> Option<Violation> {
        self.checker.take_violation()
    }

    /// Network counters.
    pub fn net_stats(&self) -> NetStats {
        self.net.stats
    }
}

fn names(core: &[usize]) -> String {
    let v: Vec<String> = core.iter().map(|n| format!("n{}", n + 1)).collect();
    format!("{{{}}}", v.join(","))
}

/// Simulated microseconds as seconds with millisecond precision (`12.345s`).
pub fn ms(us: u64) -> String {
    format!("{}.{:03}s", us / 1_000_000, us / 1000 % 1000)
}
