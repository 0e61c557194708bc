//! The driver of one simulated node: the same Ready loop an integrator writes, over the
//! simulated disk and network.
//!
//! ```text
//!   input (tick / step / propose / read_index / transfer / conf change / reports / fsync done)
//!     └─► loop: check ─► ready() ─► messages: check durable-before-send, hand to the net
//!                                   persist:  register (log matching), write to the disk
//!                                             cache, start an fsync if `sync`
//!                                   apply:    a snapshot: restore the KV from it; entries:
//!                                             check them against the committed log, follow
//!                                             their configuration changes, apply them to
//!                                             the KV, answer waiting clients; on_applied;
//!                                             then maybe snapshot (and compact)
//!                                   reads:    match read states to waiting reads; serve
//!                                             each once its index is applied
//!               until !has_ready() and no written batch can be reported
//!   fsync done ─► for each covered batch, in order: durable; storage.persist;
//!                 on_persisted(batch.durable()); drive
//! ```
//!
//! A batch that needs no fsync (`sync == false`) is reported as soon as every batch before it
//! was; it stays in the volatile cache until a later fsync covers it.
//!
//! Snapshots. The driver snapshots its state machine ([`Kv::encode`] as the snapshot data,
//! `create_snapshot(applied, conf_state, data)`) into both its in-memory storage (which
//! the leader reads `MsgSnap` snapshots from) and its disk, where the snapshot is durable at
//! once (see [`crate::disk`]). It does so
//! - whenever it has applied `compact_every_entries` entries past its last snapshot, and then
//!   compacts the log up to `compact_keep_entries` behind it (the compaction agent);
//! - whenever an apply batch changes the configuration, because the durable configuration
//!   (`set_conf_state(ApplyBatch.conf_state)`) must belong to the durable state machine: a
//!   restart starts from both at the snapshot index and re-applies the log after it, so a
//!   configuration ahead of the state machine would have its own changes re-applied on top of
//!   it (the planted `conf_state_ahead_of_snapshot` bug does exactly that).
//!
//! Reads. With ReadIndex or lease reads, a get never enters the log: the node asks
//! `read_index` with a context naming the request, and serves the read from its KV once it has
//! applied the index of the matching `ReadState`. Every answer names the log index of the
//! state it reflects (see [`crate::staleness`]).
//!
//! Invariants:
//! 1. Batches are reported with `on_persisted` in the order they were handed out, and (unless
//!    the `ack_before_durable` bug is planted) a `sync` batch only after an fsync covering it.
//! 2. The node's `MemStorage` holds exactly what was reported, plus the driver's own snapshots
//!    and compactions (which cover only applied entries).
//! 3. A restart rebuilds the node from the disk's durable state only: the state machine from
//!    the durable snapshot (empty for the founding one), `Config.applied` = its index, the
//!    configuration stored with it; the log after it is re-applied (see [`crate::kv`]).
//! 4. Compaction never passes the applied index, and the durable configuration always belongs
//!    to the durable snapshot's index.

use crate::client::Reply;
use crate::conf_chain;
use crate::disk::{CrashLoss, Disk};
use crate::kv::{Applied, Kv, Op};
use crate::observation::{NodeState, Observation, Observer, Property};
use crate::options::{Options, PlantedBugs, ReadMode};
use crate::rng::SimRng;
use crate::stats::AgentStats;
use crate::trace::{Trace, describe};
use bytes::Bytes;
use raft_core::{
    ApplyBatch, ConfChangeV2, ConfState, Config, DropReason, EntryId, MemStorage, Message,
    ProposeError, RawNode, ReadIndexError, ReadOnlyOption, Ready, Role, SnapshotStatus, Storage,
};
use std::rc::Rc;

/// A client request waiting at a node for its operation to be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// The client.
    pub client: u32,
    /// Its operation.
    pub seq: u32,
    /// The operation's number among the client's logged operations.
    pub log_seq: u32,
    /// The attempt that brought it here.
    pub attempt: u32,
    /// The id `propose` returned, if this node proposed it as leader.
    pub id: Option<EntryId>,
}

/// A read waiting at a node for its read state, then for the node to apply its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingRead {
    /// The client.
    pub client: u32,
    /// Its operation.
    pub seq: u32,
    /// The attempt that brought it here.
    pub attempt: u32,
    /// The key to read.
    pub key: u8,
    /// The read index, once the read state arrived.
    pub index: Option<u64>,
}

/// Where a node slot is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    /// A spare slot the membership agent has not started yet.
    Spare,
    /// Started (running, crashed or paused).
    Started,
    /// Removed from the configuration and stopped for good.
    Retired,
}

/// What a node's steps ask the world to do.
#[derive(Debug, Default)]
pub struct Effects {
    /// Messages to hand to the network.
    pub sends: Vec<Message>,
    /// Fsyncs started: (completion time, batch sequence number).
    pub fsyncs: Vec<(u64, u64)>,
    /// Answers to clients: (client, seq, attempt, reply).
    pub replies: Vec<(u32, u32, u32, Reply)>,
}

/// Disk latency knobs in force (stalls are off in the liveness phase).
#[derive(Clone, Copy, Debug)]
pub struct DiskTiming {
    /// Smallest fsync latency.
    pub fsync_min_us: u64,
    /// Random extra latency.
    pub fsync_jitter_us: u64,
    /// Chance of a stall.
    pub stall_ppm: u32,
    /// Longest stall.
    pub stall_max_us: u64,
}

/// Everything a node's step may touch besides the node itself.
pub struct Cx<'a> {
    /// Now.
    pub now_us: u64,
    /// The run's random stream.
    pub rng: &'a mut SimRng,
    /// Who hears what the node observes (the world passes its checker).
    pub observer: &'a mut dyn Observer,
    /// The run's trace.
    pub trace: &'a mut Trace,
    /// Requests to the world.
    pub fx: &'a mut Effects,
    /// Planted bugs.
    pub bugs: PlantedBugs,
    /// Fsync latencies.
    pub disk: DiskTiming,
    /// Agent counters.
    pub stats: &'a mut AgentStats,
}

impl Cx<'_> {
    /// Node `id` reports `what` to the observer, now.
    fn report(&mut self, id: u64, what: Observation<'_>) {
        self.observer.observe(id, self.now_us, what);
    }

    /// Node `id`'s driver saw `property` break.
    fn broken(&mut self, id: u64, property: Property, detail: String) {
        self.report(id, Observation::Broken { property, detail });
    }

    fn fsync_latency(&mut self) -> u64 {
        let d = self.disk;
        let mut lat = d.fsync_min_us + self.rng.range(0, d.fsync_jitter_us);
        if self.rng.chance(d.stall_ppm) {
            lat += self.rng.range(0, d.stall_max_us);
        }
        lat
    }
}

/// The snapshot and clock policy of a node, from the seed's options.
#[derive(Clone, Copy, Debug)]
struct Policy {
    compact_every_entries: u64,
    compact_keep_entries: u64,
    leader_clock_slowdown: u64,
    membership: bool,
}

/// One simulated node: the Raft node (while up), its disk and its state machine.
pub struct SimNode {
    /// Node id (1-based).
    pub id: u64,
    /// The running node; `None` while crashed, before a spare starts, and once retired.
    pub raw: Option<RawNode<MemStorage>>,
    /// Its disk (survives crashes).
    pub disk: Disk,
    /// Its state machine (restored from the durable snapshot at restart).
    pub kv: Kv,
    /// The last index applied to `kv`.
    pub applied: u64,
    /// The configuration in effect, as the driver applied it (shared with the checker, which
    /// keeps the one in force when an index was committed).
    pub conf: Rc<ConfState>,
    /// Index of the last snapshot this node made durable (its own or a leader's).
    pub snapshot_index: u64,
    /// Where the slot is in its life.
    pub life: Life,
    /// Bumped on every crash: events of an older incarnation (fsyncs) are ignored.
    pub incarnation: u64,
    /// Bumped when the tick chain restarts (restart, resume): older ticks are ignored.
    pub epoch: u64,
    /// Paused: no ticks; deliveries wait.
    pub paused: bool,
    /// When the current pause began.
    pub paused_at_us: u64,
    /// Client requests waiting for their operation to be applied here.
    pub waiting: Vec<Waiting>,
    /// Reads waiting for their read state or for their index to be applied.
    pub reads: Vec<PendingRead>,
    /// Simulated microseconds between two ticks now (10 ms, give or take clock drift, and
    /// slower while leading under the test-only `leader_clock_slowdown`).
    pub tick_us: u64,
    /// `tick_us` when not slowed down.
    base_tick_us: u64,
    /// Role and term last seen by the driver (for the trace).
    seen: (Role, u64),
    config: Config,
    policy: Policy,
    keys: u8,
    clients: u32,
    logger: slog::Logger,
}

/// A read's context: client, seq, attempt (little-endian u32 each).
fn read_ctx(client: u32, seq: u32, attempt: u32) -> Bytes {
    let mut b = [0u8; 12];
    b[0..4].copy_from_slice(&client.to_le_bytes());
    b[4..8].copy_from_slice(&seq.to_le_bytes());
    b[8..12].copy_from_slice(&attempt.to_le_bytes());
    Bytes::copy_from_slice(&b)
}

fn parse_read_ctx(b: &[u8]) -> Option<(u32, u32, u32)> {
    let w = |i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
    (b.len() == 12).then_some(())?;
    Some((w(0)?, w(4)?, w(8)?))
}

impl SimNode {
    /// A founding member `id` of a cluster of `voters`, started.
    ///
    /// # Panics
    /// If raft-core refuses the configuration (a simulator bug).
    pub fn new(id: u64, voters: &[u64], opts: &Options, tick_us: u64, rng: &mut SimRng) -> SimNode {
        let mut node = SimNode::unstarted(
            id,
            opts,
            tick_us,
            Disk::new(ConfState::with_voters(voters.to_vec())),
        );
        node.life = Life::Started;
        node.boot(rng)
            .expect("a fresh node with a valid config starts");
        node
    }

    /// A spare slot `id` with an empty disk, not started (see [`SimNode::start`]).
    pub fn spare(id: u64, opts: &Options, tick_us: u64) -> SimNode {
        SimNode::unstarted(id, opts, tick_us, Disk::empty())
    }

    fn unstarted(id: u64, opts: &Options, tick_us: u64, disk: Disk) -> SimNode {
        let mut config = Config::new(id);
        config.election_ticks = crate::options::ELECTION_TICKS;
        config.heartbeat_ticks = crate::options::HEARTBEAT_TICKS;
        config.pre_vote = opts.pre_vote;
        config.check_quorum = opts.check_quorum;
        config.proposal_forwarding = opts.proposal_forwarding;
        config.msg_bytes_max = opts.msg_bytes_max;
        config.inflight_msgs_max = opts.inflight_msgs_max;
        config.uncommitted_bytes_max = opts.uncommitted_bytes_max;
        config.step_down_on_removal = opts.step_down_on_removal;
        if opts.reads == ReadMode::Lease {
            config.read_only = ReadOnlyOption::LeaseBased;
        }
        #[cfg(feature = "planted-bugs")]
        {
            config.planted_bugs.commit_previous_term_entries = opts.bugs.commit_previous_term;
        }
        SimNode {
            id,
            raw: None,
            conf: Rc::new(disk.durable().conf_state().clone()),
            disk,
            kv: Kv::new(opts.keys, opts.clients),
            applied: 0,
            snapshot_index: 0,
            life: Life::Spare,
            incarnation: 0,
            epoch: 0,
            paused: false,
            paused_at_us: 0,
            waiting: Vec::new(),
            reads: Vec::new(),
            tick_us,
            base_tick_us: tick_us,
            seen: (Role::Follower, 0),
            config,
            policy: Policy {
                compact_every_entries: opts.compact_every_entries,
                compact_keep_entries: opts.compact_keep_entries,
                leader_clock_slowdown: opts.leader_clock_slowdown,
                membership: opts.membership_gap_max_us > 0,
            },
            keys: opts.keys,
            clients: opts.clients,
            logger: slog::Logger::root(slog::Discard, slog::o!()),
        }
    }

    /// Builds the Raft node from the durable state: the state machine from the durable
    /// snapshot, `applied` at its index, the configuration stored with it.
    fn boot(&mut self, rng: &mut SimRng) -> Result<(), String> {
        let durable = self.disk.durable();
        let snap = durable
            .snapshot(0, self.id)
            .map_err(|e| format!("no durable snapshot to start from: {e}"))?;
        let kv = Kv::decode(&snap.data, self.keys, self.clients)?;
        let mut cfg = self.config.clone();
        // Each incarnation draws its own election-timer seed, as a restarted process would.
        cfg.seed = Some(rng.next_seed());
        cfg.applied = snap.index();
        let raw = RawNode::new(&cfg, durable.clone(), &self.logger).map_err(|e| e.to_string())?;
        self.applied = snap.index();
        self.snapshot_index = snap.index();
        self.conf = Rc::new(durable.conf_state().clone());
        self.raw = Some(raw);
        self.kv = kv;
        self.tick_us = self.base_tick_us;
        self.seen = (Role::Follower, 0);
        self.epoch += 1;
        Ok(())
    }

    /// The slot as the cluster-wide checks see it ([`crate::observation`]).
    pub fn state(&self) -> NodeState<'_> {
        NodeState {
            started: self.life == Life::Started,
            raw: self.raw.as_ref(),
            durable: self.disk.durable(),
            conf: &self.conf,
            applied: self.applied,
        }
    }

    /// Whether the node is running (not crashed, started, not retired).
    pub fn is_up(&self) -> bool {
        self.raw.is_some()
    }

    /// Crashes the node: the process is gone, unsynced writes are lost (or, with torn
    /// writes, a random prefix of their records survives).
    pub fn crash(&mut self, torn_writes: bool, cx: &mut Cx) -> CrashLoss {
        let total = self.disk.cached_records();
        let survive = if torn_writes {
            cx.rng.range(0, total as u64) as usize
        } else {
            0
        };
        let torn = torn_writes && cx.rng.coin();
        self.raw = None;
        self.waiting.clear();
        self.reads.clear();
        self.paused = false;
        self.incarnation += 1;
        self.epoch += 1;
        match self.disk.crash(survive, torn) {
            Ok(loss) => loss,
            Err(e) => {
                cx.broken(
                    self.id,
                    Property::Monotonicity,
                    format!("n{} at crash: {e}", self.id),
                );
                CrashLoss {
                    survived: 0,
                    lost: 0,
                    torn: false,
                }
            }
        }
    }

    /// Starts a spare slot for the first time (a new node joining with an empty disk).
    ///
    /// # Panics
    /// If the slot was started before.
    pub fn start(&mut self, cx: &mut Cx) {
        assert_eq!(self.life, Life::Spare, "a spare slot starts once");
        self.life = Life::Started;
        self.restart(cx);
    }

    /// Stops the node for good: it was removed from the configuration.
    pub fn retire(&mut self, cx: &mut Cx) {
        if self.is_up() {
            self.crash(false, cx);
        }
        self.life = Life::Retired;
    }

    /// Restarts a crashed node from its durable state.
    pub fn restart(&mut self, cx: &mut Cx) {
        assert!(self.raw.is_none(), "restart of a running node");
        if let Err(e) = self.boot(cx.rng) {
            cx.broken(
                self.id,
                Property::CorePanic,
                format!("n{} cannot restart from its durable state: {e}", self.id),
            );
            return;
        }
        let raw = self.raw.as_ref().expect("just booted");
        cx.report(self.id, Observation::Started { raw });
        if self.applied > 0 {
            let (index, conf) = (self.applied, &*self.conf);
            cx.report(self.id, Observation::ConfAt { index, conf });
        }
        if self.applied > 1 {
            cx.stats.restarts_from_snapshot += 1;
        }
        cx.trace.mix(0x5245_5354 ^ self.id);
        let (t, c, a) = (raw.term(), raw.commit(), self.applied);
        let id = self.id;
        cx.trace.line(cx.now_us, || {
            format!("n{id} starts at term {t} commit {c} from its snapshot at {a}")
        });
        self.drive(cx);
    }

    /// One tick of the node's clock.
    pub fn tick(&mut self, cx: &mut Cx) {
        self.raw
            .as_mut()
            .expect("ticks only reach running nodes")
            .tick();
        self.drive(cx);
    }

    /// Hands the node a message from the network.
    pub fn deliver(&mut self, m: Message, cx: &mut Cx) {
        let raw = self
            .raw
            .as_mut()
            .expect("deliveries only reach running nodes");
        cx.trace.mix_msg(&m);
        if cx.trace.is_readable() {
            let (id, term, from, what) = (self.id, raw.term(), m.from, describe(&m));
            cx.trace
                .line(cx.now_us, || format!("n{id}@{term} ← n{from} {what}"));
        }
        // Keep what the error report needs: `step` takes the message.
        let (kind, from, term, index, log_term, ents) = (
            m.kind(),
            m.from,
            m.term,
            m.index,
            m.log_term,
            m.entries.len(),
        );
        match raw.step(m) {
            Ok(()) => {}
            // Honest traffic that lost its meaning (a late response from a removed peer).
            Err(e) if e.is_stale() => {
                let id = self.id;
                cx.trace
                    .line(cx.now_us, || format!("n{id} ignores stale {kind:?}: {e}"));
            }
            Err(e) => cx.broken(
                self.id,
                Property::HonestMessageRefused,
                format!(
                    "n{} refused {kind:?} from n{from} (term {term}, index {index}, log term \
                     {log_term}, {ents} entries): {e}",
                    self.id
                ),
            ),
        }
        self.drive(cx);
    }

    /// A client request arrives.
    pub fn client_request(&mut self, op: Op, attempt: u32, cx: &mut Cx) {
        let (client, seq) = (op.client, op.seq);
        if op.log_seq == 0 {
            self.read_request(op, attempt, cx);
            return;
        }
        if let Some(s) = self.kv.session(client) {
            if s.log_seq == op.log_seq {
                cx.fx
                    .replies
                    .push((client, seq, attempt, Reply::Result(s.result, s.index)));
                return;
            }
            if s.log_seq > op.log_seq {
                return;
            }
        }
        let raw = self
            .raw
            .as_mut()
            .expect("requests only reach running nodes");
        self.waiting.retain(|w| w.client != client);
        let outcome = raw.propose(op.encode());
        cx.trace.mix(u64::from(client) << 32 | u64::from(seq));
        let id = self.id;
        cx.trace.line(cx.now_us, || {
            format!("n{id} ← client {client} op {seq} attempt {attempt}: {outcome:?}")
        });
        let waiting = |id| Waiting {
            client,
            seq,
            log_seq: op.log_seq,
            attempt,
            id,
        };
        match outcome {
            Ok(eid) => self.waiting.push(waiting(Some(eid))),
            Err(ProposeError::Forwarded { .. }) => self.waiting.push(waiting(None)),
            Err(ProposeError::NotLeader { leader_hint }) => {
                cx.fx
                    .replies
                    .push((client, seq, attempt, Reply::Redirect(leader_hint)));
            }
            Err(ProposeError::Dropped {
                reason: DropReason::TransferInProgress,
            }) => {
                cx.stats.busy_refusals += 1;
                cx.fx.replies.push((client, seq, attempt, Reply::Busy));
            }
            Err(_) => cx.fx.replies.push((client, seq, attempt, Reply::Refused)),
        }
        self.drive(cx);
    }

    /// A read served by ReadIndex or lease: ask `read_index`, serve it later.
    fn read_request(&mut self, op: Op, attempt: u32, cx: &mut Cx) {
        let (client, seq) = (op.client, op.seq);
        let raw = self
            .raw
            .as_mut()
            .expect("requests only reach running nodes");
        self.reads.retain(|r| r.client != client);
        let outcome = raw.read_index(read_ctx(client, seq, attempt));
        cx.trace
            .mix(0x5245_4144 ^ u64::from(client) << 32 | u64::from(seq));
        let id = self.id;
        cx.trace.line(cx.now_us, || {
            format!("n{id} ← client {client} read {seq} attempt {attempt}: {outcome:?}")
        });
        match outcome {
            Ok(()) => self.reads.push(PendingRead {
                client,
                seq,
                attempt,
                key: op.key,
                index: None,
            }),
            Err(ReadIndexError::NoLeader) => {
                cx.fx
                    .replies
                    .push((client, seq, attempt, Reply::Redirect(None)));
            }
            Err(ReadIndexError::TransferInProgress) => {
                cx.stats.busy_refusals += 1;
                cx.fx.replies.push((client, seq, attempt, Reply::Busy));
            }
            Err(_) => cx.fx.replies.push((client, seq, attempt, Reply::Refused)),
        }
        self.drive(cx);
    }

    /// The transport reports that `peer` could not be reached.
    pub fn report_unreachable(&mut self, peer: u64, cx: &mut Cx) {
        let raw = self.raw.as_mut().expect("reports only reach running nodes");
        raw.report_unreachable(peer);
        let id = self.id;
        cx.trace.mix(0x554e_5245 ^ peer << 8 ^ id);
        cx.trace.line(cx.now_us, || {
            format!("n{id} transport: n{peer} unreachable")
        });
        self.drive(cx);
    }

    /// The transport reports how sending a snapshot to `peer` ended.
    pub fn report_snapshot(&mut self, peer: u64, status: SnapshotStatus, cx: &mut Cx) {
        let raw = self.raw.as_mut().expect("reports only reach running nodes");
        raw.report_snapshot(peer, status);
        let id = self.id;
        cx.trace
            .mix(0x534e_4150 ^ peer << 8 ^ id ^ u64::from(status == SnapshotStatus::Finish) << 20);
        cx.trace.line(cx.now_us, || {
            format!("n{id} transport: snapshot to n{peer} {status:?}")
        });
        self.drive(cx);
    }

    /// The leadership-transfer agent asks this node to hand leadership to `to`.
    pub fn transfer_leader(&mut self, to: u64, cx: &mut Cx) {
        let raw = self.raw.as_mut().expect("agents only call running nodes");
        let outcome = raw.transfer_leader(to);
        cx.stats.transfers_asked += 1;
        if outcome.is_ok() {
            cx.stats.transfers_accepted += 1;
        }
        let id = self.id;
        cx.trace.mix(0x5452_414e ^ to << 8 ^ id);
        cx.trace.line(cx.now_us, || {
            format!("agent: n{id} transfer_leader(n{to}): {outcome:?}")
        });
        self.drive(cx);
    }

    /// The membership agent proposes `cc` on this node. Returns whether it was accepted.
    pub fn propose_conf_change(&mut self, cc: ConfChangeV2, cx: &mut Cx) -> bool {
        let raw = self.raw.as_mut().expect("agents only call running nodes");
        let what = format!("{:?} {:?}", cc.transition, cc.changes);
        let outcome = raw.propose_conf_change(cc);
        let id = self.id;
        cx.trace
            .mix(0x434f_4e46 ^ id ^ u64::from(outcome.is_ok()) << 8);
        cx.trace.line(cx.now_us, || {
            format!("agent: n{id} propose_conf_change({what}): {outcome:?}")
        });
        if let Ok(eid) = outcome {
            cx.stats.conf_changes_proposed += 1;
            if let Err(prev) = conf_chain::check_one_change_in_flight(raw, self.applied, eid.index)
            {
                cx.broken(
                    self.id,
                    Property::ConfigSafety,
                    format!(
                        "n{id} accepted a configuration change at {eid} while the change at \
                         {prev} is not applied (applied {})",
                        self.applied
                    ),
                );
            }
        }
        self.drive(cx);
        outcome.is_ok()
    }

    /// The fsync that covers batch `seq` (and every batch before it) completed.
    pub fn fsync_done(&mut self, seq: u64, cx: &mut Cx) {
        let id = self.id;
        cx.trace.mix(0x4653_594e ^ seq ^ (id << 48));
        cx.trace.line(cx.now_us, || format!("n{id} fsync #{seq}"));
        loop {
            match self.disk.sync_next(seq) {
                Err(e) => {
                    cx.broken(self.id, Property::Monotonicity, format!("n{id}: {e}"));
                    return;
                }
                Ok(None) => break,
                Ok(Some((batch, true))) => drop(batch),
                Ok(Some((batch, false))) => {
                    let raw = self
                        .raw
                        .as_mut()
                        .expect("fsyncs of a crashed incarnation are dropped");
                    raw.storage_mut()
                        .persist(&batch)
                        .expect("batches connect to the stored log");
                    raw.on_persisted(batch.durable());
                    self.drive(cx);
                }
            }
        }
        self.drive(cx);
    }

    /// Runs the Ready loop until the node has nothing to do.
    pub fn drive(&mut self, cx: &mut Cx) {
        // Checks run after every step: the input that led here, and every completion
        // (`on_persisted`, `on_applied`) below. `ready()` alone moves output out and changes
        // no term, commit, role or log, so it is not followed by a check of its own.
        let mut stepped = true;
        loop {
            let raw = self.raw.as_mut().expect("only running nodes are driven");
            if stepped {
                stepped = false;
                raw.check_invariants();
                let (applied, conf) = (self.applied, &self.conf);
                cx.report(self.id, Observation::Stepped { raw, applied, conf });
                let now_seen = (raw.role(), raw.term());
                if now_seen != self.seen {
                    self.seen = now_seen;
                    let id = self.id;
                    cx.trace.mix(0x524f_4c45 ^ now_seen.1 << 8 ^ id);
                    cx.trace.line(cx.now_us, || {
                        format!("n{id} is {} in term {}", now_seen.0, now_seen.1)
                    });
                    if self.policy.leader_clock_slowdown > 1 {
                        self.tick_us = if now_seen.0 == Role::Leader {
                            self.base_tick_us * self.policy.leader_clock_slowdown
                        } else {
                            self.base_tick_us
                        };
                    }
                }
            }
            if !raw.has_ready() {
                if self.report_unsynced(cx) {
                    stepped = true;
                    continue;
                }
                return;
            }
            let Ready {
                messages,
                persist,
                apply,
                read_states,
            } = raw.ready();
            for m in messages {
                if !cx.bugs.skip_durable_before_send_check {
                    let durable = self.disk.durable();
                    cx.report(self.id, Observation::Released { msg: &m, durable });
                }
                cx.trace.mix_msg(&m);
                if cx.trace.is_readable() {
                    let (id, term, to, what) = (self.id, raw.term(), m.to, describe(&m));
                    cx.trace
                        .line(cx.now_us, || format!("n{id}@{term} → n{to} {what}"));
                }
                cx.fx.sends.push(m);
            }
            if let Some(batch) = persist {
                let prev_term = batch
                    .entries
                    .first()
                    .map_or(0, |e| raw.log_term(e.index - 1).unwrap_or(0));
                let entries = &batch.entries;
                cx.report(self.id, Observation::Written { entries, prev_term });
                let seq = batch.seq();
                let sync = batch.sync;
                cx.trace
                    .mix(seq ^ (batch.entries.len() as u64) << 32 ^ u64::from(sync) << 63);
                if cx.trace.is_readable() {
                    let id = self.id;
                    let hs = batch
                        .hard_state
                        .map(|h| format!(" hs {}/{}/{}", h.term, h.vote, h.commit));
                    let snap = batch
                        .snapshot
                        .as_ref()
                        .map(|s| format!(" snapshot {}/{}", s.term(), s.index()));
                    let ents = match (batch.entries.first(), batch.entries.last()) {
                        (Some(a), Some(b)) => {
                            format!(" ents {}..={} (term {})", a.index, b.index, b.term)
                        }
                        _ => String::new(),
                    };
                    cx.trace.line(cx.now_us, || {
                        format!(
                            "n{id} persist #{seq}{}{}{ents}{}",
                            hs.unwrap_or_default(),
                            snap.unwrap_or_default(),
                            if sync { " sync" } else { "" }
                        )
                    });
                }
                self.disk.write(batch);
                if sync {
                    let latency = cx.fsync_latency();
                    let at = self.disk.start_fsync(cx.now_us, latency);
                    cx.fx.fsyncs.push((at, seq));
                }
            }
            for rs in read_states {
                let Some(key) = parse_read_ctx(&rs.request_ctx) else {
                    cx.broken(
                        self.id,
                        Property::HonestMessageRefused,
                        format!("n{} got a read state with a context it never sent", self.id),
                    );
                    continue;
                };
                // Duplicates (a response delivered twice) find their read answered already.
                if let Some(r) = self
                    .reads
                    .iter_mut()
                    .find(|r| (r.client, r.seq, r.attempt) == key && r.index.is_none())
                {
                    r.index = Some(rs.index);
                }
            }
            if let Some(batch) = apply {
                self.apply(batch, cx);
                stepped = true;
            }
            if !self.reads.is_empty() {
                self.serve_reads(cx);
            }
        }
    }

    /// Answers every read whose read index is applied (at once, under the planted
    /// `read_before_apply` bug).
    fn serve_reads(&mut self, cx: &mut Cx) {
        let (applied, eager) = (self.applied, cx.bugs.read_before_apply);
        let kv = &self.kv;
        let (id, now) = (self.id, cx.now_us);
        let (fx, stats, trace) = (&mut *cx.fx, &mut *cx.stats, &mut *cx.trace);
        self.reads.retain(|r| {
            let Some(index) = r.index else {
                return true;
            };
            if index > applied && !eager {
                return true;
            }
            let value = kv.value(r.key);
            stats.reads_served += 1;
            trace.mix(0x5345_5256 ^ u64::from(r.client) << 32 ^ applied);
            trace.line(now, || {
                format!(
                    "n{id} serves client {} read {} at applied {applied} (read index {index}): \
                     {value:?}",
                    r.client, r.seq
                )
            });
            fx.replies.push((
                r.client,
                r.seq,
                r.attempt,
                Reply::Result(crate::kv::OpResult::Value(value), applied),
            ));
            false
        });
    }

    /// Reports the first written, unreported batch if that is allowed now: it needs no
    /// fsync (or the driver lies). Returns whether it reported one.
    fn report_unsynced(&mut self, cx: &mut Cx) -> bool {
        let Some(batch) = self.disk.first_unreported() else {
            return false;
        };
        if batch.sync && !cx.bugs.ack_before_durable {
            return false;
        }
        let raw = self.raw.as_mut().expect("only running nodes report writes");
        raw.storage_mut()
            .persist(batch)
            .expect("batches connect to the stored log");
        raw.on_persisted(batch.durable());
        self.disk.mark_reported();
        true
    }

    fn apply(&mut self, batch: ApplyBatch, cx: &mut Cx) {
        let conf_changed = if let Some(snap) = &batch.snapshot {
            self.restore(snap, batch.conf_state.as_ref(), cx);
            false
        } else {
            self.apply_entries(&batch, cx)
        };
        let raw = self.raw.as_mut().expect("only running nodes apply");
        let last_before = raw.last_index();
        raw.on_applied(batch.applied());
        // A leader leaving a joint configuration by itself appends the change at on_applied.
        if self.policy.membership && raw.last_index() > last_before && raw.role() == Role::Leader {
            self.check_appended_changes(last_before + 1, cx);
        }
        if conf_changed {
            if cx.bugs.conf_state_ahead_of_snapshot {
                let conf = (*self.conf).clone();
                let raw = self.raw.as_mut().expect("only running nodes apply");
                raw.storage_mut().set_conf_state(conf.clone());
                self.disk.set_conf_state(conf);
            } else {
                self.snapshot(self.policy.compact_every_entries > 0, cx);
            }
        } else if self.policy.compact_every_entries > 0
            && self.applied >= self.snapshot_index + self.policy.compact_every_entries
        {
            self.snapshot(true, cx);
        }
    }

    /// Checks the configuration-change entries a leader appended from `from` on.
    fn check_appended_changes(&mut self, from: u64, cx: &mut Cx) {
        let raw = self.raw.as_ref().expect("only running nodes apply");
        let ents = raw
            .log_entries(from, raw.last_index() + 1)
            .unwrap_or_default();
        for e in ents.iter().filter(|e| conf_chain::is_conf_entry(e)) {
            if let Err(prev) = conf_chain::check_one_change_in_flight(raw, self.applied, e.index) {
                cx.broken(
                    self.id,
                    Property::ConfigSafety,
                    format!(
                        "leader n{} appended a configuration change at {}/{} while the change \
                         at {prev} is not applied (applied {})",
                        self.id, e.term, e.index, self.applied
                    ),
                );
            }
        }
    }

    /// Applies the entries of a batch; returns whether they changed the configuration.
    fn apply_entries(&mut self, batch: &ApplyBatch, cx: &mut Cx) -> bool {
        let entries = &batch.entries;
        cx.report(self.id, Observation::Applied { entries });
        let id = self.id;
        let last = batch.last_index();
        if !cx.bugs.ack_before_durable
            && let Some(e) = batch.entries.last()
        {
            // Ready rule 4: an apply batch holds only entries already durable locally.
            let durable = self.disk.durable();
            let base = durable.first_index().unwrap_or(1) - 1;
            if e.index > base && durable.term(e.index) != Ok(e.term) {
                cx.broken(
                    self.id,
                    Property::AppliedDurable,
                    format!(
                        "n{id} was handed {}/{} to apply, but its durable log has {:?} there",
                        e.term,
                        e.index,
                        durable.term(e.index)
                    ),
                );
            }
        }
        let first = batch.entries.first().map_or(last, |e| e.index);
        cx.trace.mix(first << 32 ^ last ^ 0x4150);
        cx.trace
            .line(cx.now_us, || format!("n{id} apply {first}..={last}"));
        let mut conf_changed = false;
        if batch.entries.iter().any(conf_chain::is_conf_entry) {
            let mut changed = false;
            let next = conf_chain::follow(&self.conf, &batch.entries, |index, conf| {
                changed = true;
                cx.report(id, Observation::ConfApplied { index, conf });
            });
            let want = changed.then_some(&next);
            if batch.conf_state.as_ref() != want {
                cx.broken(
                    self.id,
                    Property::ConfigSafety,
                    format!(
                        "n{id} apply batch {first}..={last} announces configuration {:?}, but \
                         its changes give {want:?}",
                        batch.conf_state
                    ),
                );
            }
            if changed {
                cx.stats.conf_changes_applied += 1;
                cx.trace.mix(0x4343_4150 ^ id);
                cx.trace
                    .line(cx.now_us, || format!("n{id} configuration is now {next:?}"));
                self.conf = Rc::new(next);
                conf_changed = true;
            }
        }
        for e in &batch.entries {
            let applied = self.kv.apply(&e.data, e.index);
            let answered =
                match applied {
                    Applied::Fresh(op, r) => Some((op, r, e.index)),
                    Applied::Duplicate(op, r, index) => Some((op, r, index)),
                    Applied::Gap { op, missing } => {
                        cx.broken(self.id, Property::LostWrite,
                        format!(
                            "n{id} applies client {} op {} (logged op {}) at {}/{} but logged op \
                             {missing} is not in the log before it",
                            op.client, op.seq, op.log_seq, e.term, e.index
                        ),
                    );
                        None
                    }
                    Applied::Stale(_) | Applied::Nothing => None,
                };
            let fx = &mut *cx.fx;
            self.waiting.retain(|w| {
                if let Some((op, r, index)) = answered
                    && (op.client, op.seq) == (w.client, w.seq)
                {
                    fx.replies
                        .push((w.client, w.seq, w.attempt, Reply::Result(r, index)));
                    return false;
                }
                if let Some(eid) = w.id
                    && eid.index == e.index
                    && eid.term != e.term
                {
                    fx.replies.push((w.client, w.seq, w.attempt, Reply::Lost));
                    return false;
                }
                true
            });
        }
        self.applied = last;
        conf_changed
    }

    /// Restores the state machine from a snapshot the leader sent (already durable).
    fn restore(&mut self, snap: &raft_core::Snapshot, conf: Option<&ConfState>, cx: &mut Cx) {
        let (id, index, term) = (self.id, snap.index(), snap.term());
        let data = &snap.data;
        cx.report(id, Observation::SnapshotRestored { index, term, data });
        match Kv::decode(&snap.data, self.keys, self.clients) {
            Ok(kv) => self.kv = kv,
            Err(e) => cx.broken(
                self.id,
                Property::StateDivergence,
                format!("n{id} cannot restore the snapshot at {term}/{index}: {e}"),
            ),
        }
        self.applied = index;
        self.snapshot_index = index;
        match conf {
            Some(c) => {
                cx.report(id, Observation::ConfAt { index, conf: c });
                self.conf = Rc::new(c.clone());
            }
            None => cx.broken(
                self.id,
                Property::ConfigSafety,
                format!("n{id} was handed the snapshot at {index} without its configuration"),
            ),
        }
        cx.stats.snapshots_applied += 1;
        cx.trace.mix(0x5245_5354_4f52 ^ index ^ id << 40);
        cx.trace.line(cx.now_us, || {
            format!("n{id} restores the snapshot at {term}/{index}")
        });
        // Requests waiting here: the snapshot's sessions say which took effect.
        let kv = &self.kv;
        let fx = &mut *cx.fx;
        self.waiting.retain(|w| {
            let s = kv.session(w.client);
            if let Some(s) = s
                && s.log_seq >= w.log_seq
            {
                if s.log_seq == w.log_seq {
                    fx.replies
                        .push((w.client, w.seq, w.attempt, Reply::Result(s.result, s.index)));
                }
                return false;
            }
            // Not applied by the snapshot's index: the entry at its id's index was another.
            if w.id.is_some_and(|eid| eid.index <= index) {
                fx.replies.push((w.client, w.seq, w.attempt, Reply::Lost));
                return false;
            }
            true
        });
    }

    /// Snapshots the state machine at the applied index into the in-memory storage and the
    /// disk, with the configuration in effect; with `compact`, then discards the log up to
    /// `compact_keep_entries` before it.
    fn snapshot(&mut self, compact: bool, cx: &mut Cx) {
        let (id, index) = (self.id, self.applied);
        let data = self.kv.encode();
        let conf = (*self.conf).clone();
        let compact_to = if compact {
            index.saturating_sub(self.policy.compact_keep_entries)
        } else {
            0
        };
        let raw = self.raw.as_mut().expect("only running nodes snapshot");
        let st = raw.storage_mut();
        let made = st
            .create_snapshot(index, conf.clone(), data.clone())
            .and_then(|snap| {
                st.set_conf_state(conf.clone());
                st.compact(compact_to)?;
                Ok(snap)
            });
        let snap = match made {
            Ok(s) => s,
            Err(e) => {
                cx.broken(
                    self.id,
                    Property::IndexOrder,
                    format!("n{id} cannot snapshot its applied index {index}: {e}"),
                );
                return;
            }
        };
        if let Err(e) = self.disk.snapshot(index, conf, data.clone(), compact_to)
            && !cx.bugs.ack_before_durable
        {
            cx.broken(
                self.id,
                Property::AppliedDurable,
                format!("n{id}: {e}, although it applied that index"),
            );
        }
        let (term, data) = (snap.term(), &data);
        cx.report(id, Observation::SnapshotMade { index, term, data });
        self.snapshot_index = index;
        cx.stats.snapshots_made += 1;
        cx.trace.mix(0x534e_4150_5348 ^ index ^ id << 40);
        cx.trace.line(cx.now_us, || {
            format!("n{id} snapshots at {index} and compacts up to {compact_to}")
        });
    }

    /// The node's role, if running.
    pub fn role(&self) -> Option<Role> {
        self.raw.as_ref().map(RawNode::role)
    }
}
