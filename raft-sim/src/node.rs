//! The driver of one simulated node: the same Ready loop an integrator writes, over the
//! simulated disk and network.
//!
//! ```text
//!   input (tick / step / propose / fsync done)
//!     └─► loop: check ─► ready() ─► messages: check durable-before-send, hand to the net
//!                                   persist:  register (log matching), write to the disk
//!                                             cache, start an fsync if `sync`
//!                                   apply:    check against the committed log, apply to
//!                                             the KV, answer waiting clients, on_applied
//!               until !has_ready() and no written batch can be reported
//!   fsync done ─► for each covered batch, in order: durable; storage.persist;
//!                 on_persisted(batch.durable()); drive
//! ```
//!
//! A batch that needs no fsync (`sync == false`) is reported as soon as every batch before it
//! was; it stays in the volatile cache until a later fsync covers it.
//!
//! Invariants:
//! 1. Batches are reported with `on_persisted` in the order they were handed out, and (unless
//!    the `ack_before_durable` bug is planted) a `sync` batch only after an fsync covering it.
//! 2. The node's `MemStorage` holds exactly what was reported: it is written at report time.
//! 3. A restart rebuilds the node from the disk's durable state only, with `applied = 0` and
//!    an empty state machine that re-applies the committed log (see [`crate::kv`]).

use crate::checker::{Checker, Property};
use crate::client::Reply;
use crate::disk::{CrashLoss, Disk};
use crate::kv::{Applied, Kv, Op};
use crate::options::{Options, PlantedBugs};
use crate::rng::SimRng;
use crate::trace::{Trace, describe};
use raft_core::{
    ApplyBatch, ConfState, Config, EntryId, MemStorage, Message, ProposeError, RawNode, Ready, Role,
};

/// A client request waiting at a node for its operation to be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// The client.
    pub client: u32,
    /// Its operation.
    pub seq: u32,
    /// The attempt that brought it here.
    pub attempt: u32,
    /// The id `propose` returned, if this node proposed it as leader.
    pub id: Option<EntryId>,
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
    /// The run's safety checker.
    pub checker: &'a mut Checker,
    /// The run's trace.
    pub trace: &'a mut Trace,
    /// Requests to the world.
    pub fx: &'a mut Effects,
    /// Planted bugs.
    pub bugs: PlantedBugs,
    /// Fsync latencies.
    pub disk: DiskTiming,
}

impl Cx<'_> {
    fn fsync_latency(&mut self) -> u64 {
        let d = self.disk;
        let mut lat = d.fsync_min_us + self.rng.range(0, d.fsync_jitter_us);
        if self.rng.chance(d.stall_ppm) {
            lat += self.rng.range(0, d.stall_max_us);
        }
        lat
    }
}

/// One simulated node: the Raft node (while up), its disk and its state machine.
pub struct SimNode {
    /// Node id (1-based).
    pub id: u64,
    /// The running node; `None` while crashed.
    pub raw: Option<RawNode<MemStorage>>,
    /// Its disk (survives crashes).
    pub disk: Disk,
    /// Its state machine (rebuilt at restart).
    pub kv: Kv,
    /// The last index applied to `kv`.
    pub applied: u64,
    /// Bumped on every crash: events of an older incarnation (fsyncs) are ignored.
    pub incarnation: u64,
    /// Bumped when the tick chain restarts (restart, resume): older ticks are ignored.
    pub epoch: u64,
    /// Paused: no ticks; deliveries wait.
    pub paused: bool,
    /// Client requests waiting for their operation to be applied here.
    pub waiting: Vec<Waiting>,
    /// Simulated microseconds between two ticks (10 ms, give or take clock drift).
    pub tick_us: u64,
    /// Role and term last seen by the driver (for the trace).
    seen: (Role, u64),
    config: Config,
    keys: u8,
    clients: u32,
    logger: slog::Logger,
}

impl SimNode {
    /// A founding member `id` of a cluster of `voters`, started.
    ///
    /// # Panics
    /// If raft-core refuses the configuration (a simulator bug).
    pub fn new(id: u64, voters: &[u64], opts: &Options, tick_us: u64, rng: &mut SimRng) -> SimNode {
        let mut config = Config::new(id);
        config.election_ticks = crate::options::ELECTION_TICKS;
        config.heartbeat_ticks = crate::options::HEARTBEAT_TICKS;
        config.pre_vote = opts.pre_vote;
        config.check_quorum = opts.check_quorum;
        config.proposal_forwarding = opts.proposal_forwarding;
        config.msg_bytes_max = opts.msg_bytes_max;
        config.inflight_msgs_max = opts.inflight_msgs_max;
        config.uncommitted_bytes_max = opts.uncommitted_bytes_max;
        #[cfg(feature = "planted-bugs")]
        {
            config.planted_bugs.commit_previous_term_entries = opts.bugs.commit_previous_term;
        }
        let conf = ConfState::with_voters(voters.to_vec());
        let mut node = SimNode {
            id,
            raw: None,
            disk: Disk::new(conf),
            kv: Kv::new(opts.keys, opts.clients),
            applied: 0,
            incarnation: 0,
            epoch: 0,
            paused: false,
            waiting: Vec::new(),
            tick_us,
            seen: (Role::Follower, 0),
            config,
            keys: opts.keys,
            clients: opts.clients,
            logger: slog::Logger::root(slog::Discard, slog::o!()),
        };
        node.boot(rng)
            .expect("a fresh node with a valid config starts");
        node
    }

    fn index(&self) -> usize {
        self.id as usize - 1
    }

    /// Builds the Raft node from the durable state; the state machine starts empty.
    fn boot(&mut self, rng: &mut SimRng) -> Result<(), raft_core::NewError> {
        let mut cfg = self.config.clone();
        // Each incarnation draws its own election-timer seed, as a restarted process would.
        cfg.seed = Some(rng.next_u64());
        cfg.applied = 0;
        let raw = RawNode::new(&cfg, self.disk.durable().clone(), &self.logger)?;
        // Entries up to the bootstrap snapshot are not handed out for applying; they hold no
        // client operations, so the empty state machine stands at that index.
        self.applied = raw.status().applied;
        self.raw = Some(raw);
        self.kv = Kv::new(self.keys, self.clients);
        self.epoch += 1;
        Ok(())
    }

    /// Whether the node is running (not crashed).
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
        self.paused = false;
        self.incarnation += 1;
        self.epoch += 1;
        match self.disk.crash(survive, torn) {
            Ok(loss) => loss,
            Err(e) => {
                cx.checker.fail(
                    Property::Monotonicity,
                    cx.now_us,
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

    /// Restarts a crashed node from its durable state.
    pub fn restart(&mut self, cx: &mut Cx) {
        assert!(self.raw.is_none(), "restart of a running node");
        if let Err(e) = self.boot(cx.rng) {
            cx.checker.fail(
                Property::CorePanic,
                cx.now_us,
                format!("n{} cannot restart from its durable state: {e}", self.id),
            );
            return;
        }
        let raw = self.raw.as_ref().expect("just booted");
        cx.checker.on_restart(self.index(), raw);
        cx.trace.mix(0x5245_5354 ^ self.id);
        let (t, c) = (raw.term(), raw.commit());
        let id = self.id;
        cx.trace.line(cx.now_us, || {
            format!("n{id} restarts at term {t} commit {c}")
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
        if let Err(e) = raw.step(m) {
            cx.checker.fail(
                Property::HonestMessageRefused,
                cx.now_us,
                format!(
                    "n{} refused {kind:?} from n{from} (term {term}, index {index}, log term \
                     {log_term}, {ents} entries): {e}",
                    self.id
                ),
            );
        }
        self.drive(cx);
    }

    /// A client request arrives.
    pub fn client_request(&mut self, op: Op, attempt: u32, cx: &mut Cx) {
        let (client, seq) = (op.client, op.seq);
        if let Some((last, result)) = self.kv.session(client) {
            if last == seq {
                cx.fx
                    .replies
                    .push((client, seq, attempt, Reply::Result(result)));
                return;
            }
            if last > seq {
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
        match outcome {
            Ok(eid) => self.waiting.push(Waiting {
                client,
                seq,
                attempt,
                id: Some(eid),
            }),
            Err(ProposeError::Forwarded { .. }) => self.waiting.push(Waiting {
                client,
                seq,
                attempt,
                id: None,
            }),
            Err(ProposeError::NotLeader { leader_hint }) => {
                cx.fx
                    .replies
                    .push((client, seq, attempt, Reply::Redirect(leader_hint)));
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

    /// The fsync that covers batch `seq` (and every batch before it) completed.
    pub fn fsync_done(&mut self, seq: u64, cx: &mut Cx) {
        let id = self.id;
        cx.trace.mix(0x4653_594e ^ seq ^ (id << 48));
        cx.trace.line(cx.now_us, || format!("n{id} fsync #{seq}"));
        loop {
            match self.disk.sync_next(seq) {
                Err(e) => {
                    cx.checker
                        .fail(Property::Monotonicity, cx.now_us, format!("n{id}: {e}"));
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
        let n = self.index();
        // Checks run after every step: the input that led here, and every completion
        // (`on_persisted`, `on_applied`) below. `ready()` alone moves output out and changes
        // no term, commit, role or log, so it is not followed by a check of its own.
        let mut stepped = true;
        loop {
            let raw = self.raw.as_mut().expect("only running nodes are driven");
            if stepped {
                stepped = false;
                raw.check_invariants();
                cx.checker.observe(n, raw, self.applied, cx.now_us);
                let now_seen = (raw.role(), raw.term());
                if now_seen != self.seen {
                    self.seen = now_seen;
                    let id = self.id;
                    cx.trace.mix(0x524f_4c45 ^ now_seen.1 << 8 ^ id);
                    cx.trace.line(cx.now_us, || {
                        format!("n{id} is {} in term {}", now_seen.0, now_seen.1)
                    });
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
            // The simulator never calls read_index: reads go through the log.
            assert!(read_states.is_empty(), "read states without read requests");
            for m in messages {
                if !cx.bugs.skip_durable_before_send_check {
                    cx.checker.on_release(&m, self.disk.durable(), cx.now_us);
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
                cx.checker
                    .on_write(self.id, &batch.entries, prev_term, cx.now_us);
                let seq = batch.seq();
                let sync = batch.sync;
                cx.trace
                    .mix(seq ^ (batch.entries.len() as u64) << 32 ^ u64::from(sync) << 63);
                if cx.trace.is_readable() {
                    let id = self.id;
                    let hs = batch
                        .hard_state
                        .map(|h| format!(" hs {}/{}/{}", h.term, h.vote, h.commit));
                    let ents = match (batch.entries.first(), batch.entries.last()) {
                        (Some(a), Some(b)) => {
                            format!(" ents {}..={} (term {})", a.index, b.index, b.term)
                        }
                        _ => String::new(),
                    };
                    cx.trace.line(cx.now_us, || {
                        format!(
                            "n{id} persist #{seq}{}{ents}{}",
                            hs.unwrap_or_default(),
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
            if let Some(batch) = apply {
                self.apply(batch, cx);
                stepped = true;
            }
        }
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
        if batch.snapshot.is_some() {
            // The simulator never compacts a log, so no leader should need to send one.
            cx.checker.fail(
                Property::Unmodelled,
                cx.now_us,
                format!(
                    "n{} was handed a snapshot to apply, but no log was compacted",
                    self.id
                ),
            );
            return;
        }
        cx.checker.on_apply(self.id, &batch.entries, cx.now_us);
        let id = self.id;
        let last = batch.last_index();
        let first = batch.entries.first().map_or(last, |e| e.index);
        cx.trace.mix(first << 32 ^ last ^ 0x4150);
        cx.trace
            .line(cx.now_us, || format!("n{id} apply {first}..={last}"));
        for e in &batch.entries {
            let applied = self.kv.apply(&e.data);
            let answered = match applied {
                Applied::Fresh(op, r) | Applied::Duplicate(op, r) => Some((op, r)),
                Applied::Gap { op, missing } => {
                    cx.checker.fail(
                        Property::LostWrite,
                        cx.now_us,
                        format!(
                            "n{id} applies client {} op {} at {}/{} but op {missing} is not \
                             in the log before it",
                            op.client, op.seq, e.term, e.index
                        ),
                    );
                    None
                }
                Applied::Stale(_) | Applied::Nothing => None,
            };
            let fx = &mut *cx.fx;
            self.waiting.retain(|w| {
                if let Some((op, r)) = answered
                    && (op.client, op.seq) == (w.client, w.seq)
                {
                    fx.replies
                        .push((w.client, w.seq, w.attempt, crate::client::Reply::Result(r)));
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
        let raw = self.raw.as_mut().expect("only running nodes apply");
        raw.on_applied(batch.applied());
    }

    /// The node's role, if running.
    pub fn role(&self) -> Option<Role> {
        self.raw.as_ref().map(RawNode::role)
    }
}
