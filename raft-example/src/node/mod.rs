//! The node task: the one owner of the `RawNode`, running the Ready loop.
//!
//! ```text
//! loop {
//!     select! {                                      // one input at a time
//!         storage event  => for batch in persisted { storage_mut().persist_from(&mut batch);
//!                                                    on_persisted(batch.durable()) }
//!         tick           => raw.tick()               // + learner promotion on a leader
//!         peer messages  => raw.step(m)              // everything waiting
//!         client requests=> propose / read_index     // everything waiting: one Ready
//!         transport report => report_unreachable / report_snapshot
//!         snapshot saved => create_snapshot + compact, then Durable::compact_to
//!         shutdown       => break
//!     }
//!     while storage has room && raw.has_ready() {    // drive
//!         let Ready { messages, persist, apply, read_states } = raw.ready();
//!         messages    -> transport (sent now, while the leader's own write proceeds)
//!         persist     -> storage thread (write, one fsync per group, hand back in order)
//!         apply       -> state machine; answer writes whose EntryId was applied;
//!                        on_applied(batch.applied()); maybe start a snapshot
//!         read_states -> serve reads once applied >= their index
//!     }
//! }
//! ```
//!
//! Files: [`storage`] (the storage thread), [`boot`] (fresh member, join, restart),
//! [`api`] (requests from the HTTP layer), [`cli`] (the `node` subcommand).

pub mod api;
pub mod boot;
pub mod cli;
pub mod storage;
#[cfg(test)]
mod tests;

use crate::kv::{Kv, KvError, Member, Op, OpResult};
use crate::metrics::{self, Metrics};
use crate::shutdown::Shutdown;
use crate::transport::{AddressBook, Report, Transport};
use api::{LeaderView, MemberView, ProgressView, Reject, Request, StatusView, WriteDone};
use bytes::Bytes;
use prost::Message as _;
use raft_core::wire::SnapshotMetadata;
use raft_core::{
    ApplyBatch, ConfChange, ConfChangeError, ConfChangeType, ConfChangeV2, Config, EntryType,
    MemStorage, Message, ProposeError, RawNode, ReadIndexError, ReadState, Ready, Role, Snapshot,
    StorageError,
};
use slog::{Logger, debug, info, warn};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use storage::{Event, StorageHandle};
use tokio::sync::{mpsc, oneshot, watch};

/// Peer messages queued for the node task.
pub const INBOUND_QUEUE: usize = 4096;
/// Inputs of one kind handled before the loop looks at the others again.
const DRAIN_MAX: usize = 1024;

/// Why the node stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The disk failed (fail-stop).
    #[error("{0}")]
    Disk(String),
    /// The storage thread is gone.
    #[error(transparent)]
    StorageStopped(#[from] storage::StorageStopped),
    /// The in-memory log refused a durable batch (a bug).
    #[error("log storage: {0}")]
    Storage(#[from] StorageError),
    /// A snapshot from the leader does not decode.
    #[error("cannot restore the snapshot at index {index}: {err}")]
    BadSnapshot {
        /// Its index.
        index: u64,
        /// Why.
        err: KvError,
    },
    /// Saving a snapshot file failed.
    #[error("snapshot save failed: {0}")]
    SnapshotSave(String),
    /// raft-core refused the configuration or the recovered state.
    #[error("raft: {0}")]
    Raft(#[from] raft_core::NewError),
    /// Booting failed.
    #[error("{0}")]
    Boot(String),
}

/// The node's settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's id.
    pub id: u64,
    /// Tick interval.
    pub tick: Duration,
    /// Election timeout in ticks.
    pub election_ticks: u32,
    /// Heartbeat interval in ticks.
    pub heartbeat_ticks: u32,
    /// Snapshot after this many applied entries.
    pub snapshot_entries: u64,
}

/// Saves snapshot files (off the loop). `snapfile::SnapshotDir` is the real one.
pub trait SnapshotSaver: Send + Sync + 'static {
    /// Saves `snap` durably.
    ///
    /// # Errors
    /// Any I/O failure.
    fn save(&self, snap: &Snapshot) -> Result<(), storage::DiskFailure>;
}

impl SnapshotSaver for crate::snapfile::SnapshotDir {
    fn save(&self, snap: &Snapshot) -> Result<(), storage::DiskFailure> {
        crate::snapfile::SnapshotDir::save(self, snap)
            .map(drop)
            .map_err(Into::into)
    }
}

/// What a node starts from (see [`boot`]).
pub struct Start {
    /// The durable log (recovered, founding or empty).
    pub storage: MemStorage,
    /// The state machine as of `applied`.
    pub kv: Kv,
    /// The index the state machine reflects (the snapshot's).
    pub applied: u64,
}

/// The node task's ends of its channels.
pub struct Inputs {
    requests: mpsc::Receiver<Request>,
    inbound: mpsc::Receiver<Message>,
    reports: mpsc::Receiver<Report>,
    storage: mpsc::Receiver<Event>,
    snapshots: mpsc::Receiver<SnapshotSaved>,
}

/// A snapshot saved off the loop.
pub struct SnapshotSaved {
    snap: Snapshot,
    result: Result<(), String>,
}

/// Everything the node task owns.
pub struct Node {
    cfg: NodeConfig,
    raw: RawNode<MemStorage>,
    kv: Arc<RwLock<Kv>>,
    book: AddressBook,
    transport: Transport,
    storage: StorageHandle,
    saver: Arc<dyn SnapshotSaver>,
    snap_tx: mpsc::Sender<SnapshotSaved>,
    snapshotting: bool,
    /// Whether this node was in the configuration last time it changed.
    was_member: bool,
    snapshot_index: u64,
    applied: u64,
    /// The commit index recovered at start: the node is "caught up" once it applied it.
    boot_commit: u64,
    /// Writes and membership changes waiting for their entry, by index.
    waiting: BTreeMap<u64, Waiter>,
    /// Membership changes not proposed yet (another change is in flight).
    member_ops: VecDeque<MemberOp>,
    /// Linearizable reads: context → (answer, read index once confirmed).
    reads: BTreeMap<u64, PendingRead>,
    next_read: u64,
    seen: (Role, u64, Option<u64>),
    last_leader: Option<u64>,
    view: watch::Sender<LeaderView>,
    metrics: Arc<Metrics>,
    logger: Logger,
}

/// A linearizable read: its answer, and its read index once a heartbeat round confirmed it.
type PendingRead = (oneshot::Sender<Result<u64, Reject>>, Option<u64>);

/// A waiter released by an applied entry.
struct Answer {
    waiter: Waiter,
    /// The index it waited for.
    index: u64,
    /// The entry applied (index, term).
    entry: (u64, u64),
    /// What the entry did.
    result: Option<OpResult>,
}

struct Waiter {
    term: u64,
    kind: WaitKind,
}

enum WaitKind {
    Write(oneshot::Sender<Result<WriteDone, Reject>>),
    Member(oneshot::Sender<Result<Vec<MemberView>, Reject>>),
}

enum MemberOp {
    Add(Member, oneshot::Sender<Result<Vec<MemberView>, Reject>>),
    Remove(u64, oneshot::Sender<Result<Vec<MemberView>, Reject>>),
}

/// Channels the transport and the HTTP layer feed.
pub struct Wiring {
    /// Where the transport delivers peer messages.
    pub inbound: mpsc::Sender<Message>,
    /// Where the transport reports outcomes.
    pub reports: mpsc::Sender<Report>,
}

impl Node {
    /// Builds the node task's state and its handle. Spawn [`Node::run`] to start it.
    ///
    /// # Errors
    /// [`NodeError`] when raft-core refuses the state or the storage thread cannot start.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: NodeConfig,
        start: Start,
        disk: impl storage::Disk,
        saver: Arc<dyn SnapshotSaver>,
        book: AddressBook,
        transport_for: impl FnOnce(mpsc::Sender<Report>) -> Transport,
        metrics: Arc<Metrics>,
        logger: Logger,
    ) -> Result<(Node, Inputs, api::NodeHandle, Wiring), NodeError> {
        let mut rc = Config::new(cfg.id);
        rc.election_ticks = cfg.election_ticks;
        rc.heartbeat_ticks = cfg.heartbeat_ticks;
        rc.applied = start.applied;
        // The HTTP layer forwards writes to the leader itself, so it can track their ids.
        rc.proposal_forwarding = false;
        let boot_commit = start.storage.hard_state().commit;
        let cs = start.storage.conf_state();
        let was_member = cs.voters.contains(&cfg.id) || cs.learners.contains(&cfg.id);
        let raw = RawNode::new(&rc, start.storage, &logger)?;
        let (storage, storage_rx) = StorageHandle::start(disk, metrics.clone(), logger.clone())
            .map_err(|e| NodeError::Boot(format!("cannot start the storage thread: {e}")))?;
        let (req_tx, req_rx) = mpsc::channel(api::REQUEST_QUEUE);
        let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
        let (rep_tx, rep_rx) = mpsc::channel(1024);
        let (snap_tx, snap_rx) = mpsc::channel(2);
        let (view, view_rx) = watch::channel(LeaderView::default());
        let kv = Arc::new(RwLock::new(start.kv));
        let handle = api::NodeHandle {
            id: cfg.id,
            requests: req_tx,
            kv: kv.clone(),
            leader: view_rx,
            book: book.clone(),
            metrics: metrics.clone(),
        };
        let transport = transport_for(rep_tx.clone());
        let node = Node {
            snapshot_index: start.applied,
            applied: start.applied,
            boot_commit,
            cfg,
            raw,
            kv,
            book,
            transport,
            storage,
            saver,
            snap_tx,
            snapshotting: false,
            was_member,
            waiting: BTreeMap::new(),
            member_ops: VecDeque::new(),
            reads: BTreeMap::new(),
            next_read: 0,
            seen: (Role::Follower, 0, None),
            last_leader: None,
            view,
            metrics,
            logger,
        };
        let inputs = Inputs {
            requests: req_rx,
            inbound: in_rx,
            reports: rep_rx,
            storage: storage_rx,
            snapshots: snap_rx,
        };
        let wiring = Wiring {
            inbound: in_tx,
            reports: rep_tx,
        };
        Ok((node, inputs, handle, wiring))
    }

    /// The Ready loop, until shutdown (Ok) or a fatal error.
    ///
    /// # Errors
    /// [`NodeError`] on fail-stop (disk failure, undecodable snapshot, broken invariant).
    pub async fn run(mut self, mut rx: Inputs, shutdown: Shutdown) -> Result<(), NodeError> {
        let mut ticker = tokio::time::interval(self.cfg.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.publish();
        let result = loop {
            let step = tokio::select! {
                biased;
                () = shutdown.fired() => break Ok(()),
                ev = rx.storage.recv() => self.on_storage(ev),
                _ = ticker.tick() => {
                    self.on_tick();
                    Ok(())
                }
                Some(m) = rx.inbound.recv() => {
                    self.step(m);
                    for _ in 0..DRAIN_MAX {
                        let Ok(m) = rx.inbound.try_recv() else { break };
                        self.step(m);
                    }
                    Ok(())
                }
                Some(req) = rx.requests.recv() => {
                    // Everything that arrived together goes into one Ready.
                    self.handle(req);
                    for _ in 0..DRAIN_MAX {
                        let Ok(req) = rx.requests.try_recv() else { break };
                        self.handle(req);
                    }
                    metrics::set(&self.metrics.request_queue_depth, rx.requests.len() as u64);
                    Ok(())
                }
                Some(r) = rx.reports.recv() => {
                    self.on_report(r);
                    while let Ok(r) = rx.reports.try_recv() {
                        self.on_report(r);
                    }
                    Ok(())
                }
                Some(s) = rx.snapshots.recv() => self.on_snapshot_saved(s),
            };
            if let Err(e) = step.and_then(|()| self.drive()) {
                break Err(e);
            }
        };
        if result.is_ok() {
            // Clean shutdown: let the storage thread finish what it was given.
            info!(self.logger, "node task stops"; "applied" => self.applied);
            self.storage.stop();
        }
        result
    }

    /// Takes Readies and carries them out until the node has nothing to do (or the storage
    /// thread has as many batches as it may hold).
    fn drive(&mut self) -> Result<(), NodeError> {
        while self.storage.has_room() && self.raw.has_ready() {
            let Ready {
                messages,
                persist,
                apply,
                read_states,
            } = self.raw.ready();
            // Messages first: a leader's appends leave while its own write proceeds.
            for m in messages {
                self.transport.send(m);
            }
            if let Some(batch) = persist {
                self.storage.write(batch)?;
            }
            if let Some(batch) = apply {
                self.apply(batch)?;
            }
            for rs in read_states {
                self.read_confirmed(rs);
            }
            if !self.reads.is_empty() {
                self.serve_reads();
            }
        }
        self.publish();
        Ok(())
    }

    fn on_storage(&mut self, ev: Option<Event>) -> Result<(), NodeError> {
        match ev {
            Some(Event::Persisted(batches)) => {
                self.storage.completed(batches.len());
                for mut batch in batches {
                    if batch.snapshot.is_some() {
                        metrics::inc(&self.metrics.snapshots_installed_total);
                    }
                    self.raw.storage_mut().persist_from(&mut batch)?;
                    self.raw.on_persisted(batch.durable());
                }
                Ok(())
            }
            Some(Event::Compacted(index)) => {
                debug!(self.logger, "WAL compacted"; "snapshot_index" => index);
                Ok(())
            }
            Some(Event::Failed(e)) => Err(NodeError::Disk(e)),
            None => Err(NodeError::Disk("the storage thread stopped".into())),
        }
    }

    fn on_tick(&mut self) {
        self.raw.tick();
        if self.raw.role() == Role::Leader {
            self.propose_member_ops();
            self.promote_learners();
        } else if !self.member_ops.is_empty() {
            self.refuse_member_ops();
        }
    }

    fn step(&mut self, m: Message) {
        let (from, kind) = (m.from, m.kind());
        if let Err(e) = self.raw.step(m) {
            if e.is_stale() {
                debug!(self.logger, "stale message ignored"; "from" => from, "kind" => ?kind, "error" => %e);
            } else {
                warn!(self.logger, "peer message refused"; "from" => from, "kind" => ?kind, "error" => %e);
            }
        }
    }

    fn on_report(&mut self, r: Report) {
        match r {
            Report::Unreachable(id) => self.raw.report_unreachable(id),
            Report::Snapshot(id, status) => {
                info!(self.logger, "snapshot send finished"; "peer" => id, "status" => ?status);
                self.raw.report_snapshot(id, status);
            }
        }
    }

    fn handle(&mut self, req: Request) {
        match req {
            Request::Write { op, reply } => match self.raw.propose(op.encode()) {
                Ok(id) => {
                    metrics::inc(&self.metrics.proposals_total);
                    self.wait(id.index, id.term, WaitKind::Write(reply));
                }
                Err(e) => {
                    metrics::inc(&self.metrics.proposals_failed_total);
                    let _ = reply.send(Err(self.propose_reject(e)));
                }
            },
            Request::Read { reply } => {
                if self.raw.role() != Role::Leader {
                    let _ = reply.send(Err(Reject::NotLeader {
                        leader: self.raw.leader(),
                    }));
                    return;
                }
                self.next_read += 1;
                let ctx = self.next_read;
                match self
                    .raw
                    .read_index(Bytes::copy_from_slice(&ctx.to_be_bytes()))
                {
                    Ok(()) => {
                        self.reads.insert(ctx, (reply, None));
                    }
                    Err(ReadIndexError::NoLeader) => {
                        let _ = reply.send(Err(Reject::NotLeader { leader: None }));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(Reject::Busy(e.to_string())));
                    }
                }
                metrics::set(&self.metrics.pending_reads, self.reads.len() as u64);
            }
            Request::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Request::AddMember { member, reply } => {
                self.member_ops.push_back(MemberOp::Add(member, reply));
                if self.raw.role() == Role::Leader {
                    self.propose_member_ops();
                } else {
                    self.refuse_member_ops();
                }
            }
            Request::RemoveMember { id, reply } => {
                self.member_ops.push_back(MemberOp::Remove(id, reply));
                if self.raw.role() == Role::Leader {
                    self.propose_member_ops();
                } else {
                    self.refuse_member_ops();
                }
            }
        }
    }

    fn refuse_member_ops(&mut self) {
        let leader = self.raw.leader();
        for op in self.member_ops.drain(..) {
            let reply = match op {
                MemberOp::Add(_, r) | MemberOp::Remove(_, r) => r,
            };
            let _ = reply.send(Err(Reject::NotLeader { leader }));
        }
    }

    fn propose_reject(&self, e: ProposeError) -> Reject {
        match e {
            ProposeError::NotLeader { leader_hint } => Reject::NotLeader {
                leader: leader_hint,
            },
            ProposeError::Forwarded { leader } => Reject::NotLeader {
                leader: Some(leader),
            },
            other => Reject::Busy(other.to_string()),
        }
    }

    fn wait(&mut self, index: u64, term: u64, kind: WaitKind) {
        // A leader never hands out an index twice in one term; an older waiter at the same
        // index (a previous term's, overwritten) is lost.
        if let Some(old) = self.waiting.insert(index, Waiter { term, kind }) {
            old.answer_lost(index, term);
        }
        metrics::set(&self.metrics.pending_writes, self.waiting.len() as u64);
    }

    /// Proposes queued membership changes while none is in flight.
    fn propose_member_ops(&mut self) {
        while let Some(op) = self.member_ops.pop_front() {
            let conf = self.raw.conf_state();
            let is_member = |id: u64| conf.voters.contains(&id) || conf.learners.contains(&id);
            let (cc, reply) = match op {
                MemberOp::Add(m, reply) => {
                    if is_member(m.id) {
                        let known = self
                            .kv
                            .read()
                            .unwrap_or_else(|e| e.into_inner())
                            .members()
                            .get(&m.id)
                            .cloned();
                        match known {
                            Some(k) if k == m => {
                                let _ = reply.send(Ok(self.member_views()));
                            }
                            _ => {
                                let _ = reply.send(Err(Reject::Conflict(format!(
                                    "node {} is already a member with other addresses",
                                    m.id
                                ))));
                            }
                        }
                        continue;
                    }
                    let cc = ConfChange {
                        id: 0,
                        change_type: ConfChangeType::AddLearnerNode as i32,
                        node_id: m.id,
                        context: Bytes::from(m.encode()),
                    };
                    (cc, reply)
                }
                MemberOp::Remove(id, reply) => {
                    if !is_member(id) {
                        let _ = reply.send(Err(Reject::NoSuchMember(id)));
                        continue;
                    }
                    let cc = ConfChange {
                        id: 0,
                        change_type: ConfChangeType::RemoveNode as i32,
                        node_id: id,
                        context: Bytes::new(),
                    };
                    (cc, reply)
                }
            };
            match self.raw.propose_conf_change(cc.clone()) {
                Ok(id) => {
                    info!(self.logger, "membership change proposed"; "node" => cc.node_id, "change" => ?ConfChangeType::try_from(cc.change_type), "index" => id.index);
                    metrics::inc(&self.metrics.proposals_total);
                    self.wait(id.index, id.term, WaitKind::Member(reply));
                }
                Err(ConfChangeError::Pending { .. } | ConfChangeError::TransferInProgress) => {
                    // Retried at the next tick (the HTTP request times out if it never goes).
                    self.member_ops
                        .push_front(match ConfChangeType::try_from(cc.change_type) {
                            Ok(ConfChangeType::RemoveNode) => MemberOp::Remove(cc.node_id, reply),
                            _ => MemberOp::Add(
                                Member::decode(&cc.context).expect("encoded above"),
                                reply,
                            ),
                        });
                    return;
                }
                Err(ConfChangeError::NotLeader { leader_hint }) => {
                    let _ = reply.send(Err(Reject::NotLeader {
                        leader: leader_hint,
                    }));
                }
                Err(e) => {
                    let _ = reply.send(Err(Reject::Conflict(e.to_string())));
                }
            }
        }
    }

    /// On a leader: promotes one learner that has caught up to voter.
    fn promote_learners(&mut self) {
        let conf = self.raw.conf_state();
        if conf.learners.is_empty() || !self.member_ops.is_empty() {
            return;
        }
        let status = self.raw.status();
        let last = self.raw.last_index();
        for p in &status.progress {
            if !conf.learners.contains(&p.id) || p.matched + 64 < last {
                continue;
            }
            let cc = ConfChange {
                id: 0,
                change_type: ConfChangeType::AddNode as i32,
                node_id: p.id,
                context: Bytes::new(),
            };
            match self.raw.propose_conf_change(cc) {
                Ok(id) => {
                    info!(self.logger, "promoting caught-up learner to voter"; "node" => p.id, "matched" => p.matched, "index" => id.index);
                }
                Err(e) => debug!(self.logger, "promotion deferred"; "node" => p.id, "error" => %e),
            }
            return;
        }
    }

    fn apply(&mut self, batch: ApplyBatch) -> Result<(), NodeError> {
        let mut conf_changed = batch.conf_state.is_some();
        let mut answers: Vec<Answer> = Vec::new();
        if let Some(snap) = &batch.snapshot {
            let index = snap.index();
            let kv = Kv::decode(&snap.data).map_err(|err| NodeError::BadSnapshot { index, err })?;
            info!(self.logger, "installing the leader's snapshot"; "index" => index, "term" => snap.term(), "keys" => kv.len());
            *self.kv.write().unwrap_or_else(|e| e.into_inner()) = kv;
            self.snapshot_index = index;
            self.applied = index;
            conf_changed = true;
            // Writes at or below it: the snapshot says nothing about which entry was there.
            let later = self.waiting.split_off(&(index + 1));
            for (i, w) in std::mem::replace(&mut self.waiting, later) {
                w.answer(Err(Reject::Indeterminate(format!(
                    "entry {i} was replaced by the leader's snapshot at {index}"
                ))));
            }
        }
        if !batch.entries.is_empty() {
            let mut kv = self.kv.write().unwrap_or_else(|e| e.into_inner());
            for e in &batch.entries {
                let result = match EntryType::try_from(e.entry_type) {
                    Ok(EntryType::EntryNormal) => match Op::decode(&e.data) {
                        Ok(Some(op)) => kv.apply(e.index, &op),
                        Ok(None) => {
                            kv.apply_noop(e.index);
                            None
                        }
                        Err(err) => {
                            warn!(self.logger, "entry does not decode; applied as a no-op"; "index" => e.index, "error" => %err);
                            kv.apply_noop(e.index);
                            None
                        }
                    },
                    Ok(EntryType::EntryConfChangeV2) => {
                        match ConfChangeV2::decode(e.data.clone()) {
                            Ok(cc) => {
                                kv.apply_conf_change(e.index, &cc);
                            }
                            Err(_) => {
                                kv.apply_noop(e.index);
                            }
                        }
                        conf_changed = true;
                        None
                    }
                    Ok(EntryType::EntryConfChange) => {
                        match ConfChange::decode(e.data.clone()) {
                            Ok(cc) => {
                                kv.apply_conf_change(e.index, &cc.into());
                            }
                            Err(_) => {
                                kv.apply_noop(e.index);
                            }
                        }
                        conf_changed = true;
                        None
                    }
                    Err(_) => {
                        kv.apply_noop(e.index);
                        None
                    }
                };
                while let Some(entry) = self.waiting.first_entry() {
                    if *entry.key() > e.index {
                        break;
                    }
                    let (index, w) = entry.remove_entry();
                    answers.push(Answer {
                        waiter: w,
                        index,
                        entry: (e.index, e.term),
                        result,
                    });
                }
            }
        }
        let n = batch.entries.len() as u64;
        let token = batch.applied();
        self.applied = batch.last_index();
        self.raw.on_applied(token);
        metrics::set(&self.metrics.pending_writes, self.waiting.len() as u64);
        self.metrics.commits_total.fetch_add(n, Relaxed);
        if conf_changed {
            self.conf_changed();
        }
        for Answer {
            waiter: w,
            index,
            entry,
            result,
        } in answers
        {
            if entry.0 != index {
                // Its index was passed without it (cannot happen without a snapshot).
                w.answer(Err(Reject::Indeterminate(format!(
                    "entry {index} was not seen applied"
                ))));
                continue;
            }
            if w.term != entry.1 {
                w.answer_lost(index, entry.1);
                continue;
            }
            match w.kind {
                WaitKind::Write(reply) => {
                    let answer = match result {
                        Some(result) => Ok(WriteDone {
                            result,
                            index,
                            term: w.term,
                        }),
                        None => Err(Reject::Indeterminate(format!(
                            "entry {index} was applied before (replay)"
                        ))),
                    };
                    let _ = reply.send(answer);
                }
                WaitKind::Member(reply) => {
                    let _ = reply.send(Ok(self.member_views()));
                }
            }
        }
        self.maybe_snapshot();
        Ok(())
    }

    /// After a configuration change (or a snapshot): the address book follows the state
    /// machine's, writers of removed peers stop.
    fn conf_changed(&mut self) {
        let members: Vec<Member> = self
            .kv
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .members()
            .values()
            .cloned()
            .collect();
        let conf = self.raw.conf_state();
        for old in self.book.all() {
            if !members.iter().any(|m| m.id == old.id)
                && !conf.voters.contains(&old.id)
                && !conf.learners.contains(&old.id)
            {
                self.transport.remove_peer(old.id);
            }
        }
        // Keep entries the state machine does not know yet (addresses learned at a join).
        self.book.merge(members);
        info!(self.logger, "configuration"; "voters" => ?conf.voters, "learners" => ?conf.learners, "applied" => self.applied);
        let member = conf.voters.contains(&self.cfg.id) || conf.learners.contains(&self.cfg.id);
        if self.was_member && !member {
            warn!(self.logger, "this node was removed from the cluster");
        }
        self.was_member = member;
    }

    fn read_confirmed(&mut self, rs: ReadState) {
        let Ok(ctx) = <[u8; 8]>::try_from(&rs.request_ctx[..]) else {
            return;
        };
        if let Some(r) = self.reads.get_mut(&u64::from_be_bytes(ctx)) {
            r.1 = Some(rs.index);
        }
    }

    fn serve_reads(&mut self) {
        let applied = self.applied;
        self.reads.retain(|_, (reply, index)| match index {
            Some(i) if *i <= applied => {
                let (tx, _) = oneshot::channel();
                let _ = std::mem::replace(reply, tx).send(Ok(applied));
                false
            }
            _ => !reply.is_closed(),
        });
        metrics::set(&self.metrics.pending_reads, self.reads.len() as u64);
    }

    /// Starts a snapshot when enough entries were applied since the last one: the state
    /// machine is cloned here (cheap: values are shared `Bytes`), encoded and saved on a
    /// blocking thread; [`Node::on_snapshot_saved`] finishes it on the loop.
    fn maybe_snapshot(&mut self) {
        if self.snapshotting
            || self.cfg.snapshot_entries == 0
            || self.applied < self.snapshot_index + self.cfg.snapshot_entries
        {
            return;
        }
        let index = self.applied;
        let Some(term) = self.raw.log_term(index) else {
            return;
        };
        let conf = self.raw.conf_state();
        let kv = self.kv.read().unwrap_or_else(|e| e.into_inner()).clone();
        self.snapshotting = true;
        let (saver, tx) = (self.saver.clone(), self.snap_tx.clone());
        debug!(self.logger, "snapshot started"; "index" => index);
        tokio::task::spawn_blocking(move || {
            let snap = Snapshot {
                data: Bytes::from(kv.encode()),
                metadata: Some(SnapshotMetadata {
                    conf_state: Some(conf),
                    index,
                    term,
                }),
            };
            let result = saver.save(&snap).map_err(|e| e.to_string());
            let _ = tx.blocking_send(SnapshotSaved { snap, result });
        });
    }

    fn on_snapshot_saved(&mut self, s: SnapshotSaved) -> Result<(), NodeError> {
        self.snapshotting = false;
        s.result.map_err(NodeError::SnapshotSave)?;
        let meta = s.snap.metadata.clone().expect("made with metadata");
        // maybe_snapshot took the configuration applied at `meta.index` (the loop had applied
        // exactly up to it when it cloned the state machine).
        let conf = meta
            .conf_state
            .clone()
            .expect("maybe_snapshot sets the configuration");
        let st = self.raw.storage_mut();
        match st.create_snapshot(meta.index, conf, s.snap.data) {
            Ok(_) => {
                st.compact(meta.index)?;
                self.storage.compact_to(meta.clone())?;
                self.snapshot_index = meta.index;
                metrics::inc(&self.metrics.snapshots_made_total);
                metrics::set(&self.metrics.snapshot_index, meta.index);
                info!(self.logger, "snapshot made; log compacted"; "index" => meta.index, "term" => meta.term);
            }
            Err(StorageError::SnapshotOutOfDate { current, .. }) => {
                info!(self.logger, "snapshot superseded by a newer one"; "index" => meta.index, "current" => current);
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    fn member_views(&self) -> Vec<MemberView> {
        let conf = self.raw.conf_state();
        let kv = self.kv.read().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<u64> = conf
            .voters
            .iter()
            .chain(&conf.learners)
            .chain(&conf.voters_outgoing)
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .map(|id| {
                let m = kv.members().get(&id).cloned().or_else(|| self.book.get(id));
                MemberView {
                    id,
                    peer_addr: m.as_ref().map(|m| m.peer_addr.clone()).unwrap_or_default(),
                    http_addr: m.map(|m| m.http_addr).unwrap_or_default(),
                    voter: conf.voters.contains(&id) || conf.voters_outgoing.contains(&id),
                }
            })
            .collect()
    }

    fn status(&self) -> StatusView {
        let st = self.raw.status();
        let conf = self.raw.conf_state();
        let role = match st.role {
            Role::Leader => "leader",
            Role::Candidate => "candidate",
            Role::PreCandidate => "pre_candidate",
            Role::Follower if conf.learners.contains(&self.cfg.id) => "learner",
            Role::Follower => "follower",
        };
        StatusView {
            id: self.cfg.id,
            role,
            term: st.term,
            leader: st.leader,
            leader_http: st
                .leader
                .and_then(|l| self.book.get(l))
                .map(|m| m.http_addr),
            commit: st.commit,
            applied: self.applied,
            snapshot_index: self.snapshot_index,
            revision: self.kv.read().unwrap_or_else(|e| e.into_inner()).revision(),
            members: self.member_views(),
            progress: st
                .progress
                .iter()
                .map(|p| ProgressView {
                    id: p.id,
                    matched: p.matched,
                    next: p.next,
                    state: p.state.to_string(),
                })
                .collect(),
        }
    }

    /// Publishes role/leader changes (and the gauges) for the HTTP layer.
    fn publish(&mut self) {
        let (role, term, leader) = (self.raw.role(), self.raw.term(), self.raw.leader());
        let m = &self.metrics;
        metrics::set(&m.commit_index, self.raw.commit());
        metrics::set(&m.applied_index, self.applied);
        metrics::set(&m.term, term);
        metrics::set(&m.is_leader, u64::from(role == Role::Leader));
        metrics::set(&m.snapshot_index, self.snapshot_index);
        if (role, term, leader) != self.seen {
            if leader != self.seen.2 {
                metrics::inc(&m.leader_changes_total);
            }
            if leader.is_some() {
                self.last_leader = leader;
            }
            info!(self.logger, "role change"; "role" => %role, "term" => term, "leader" => ?leader);
            // Reads waiting on a leadership that ended will never be confirmed.
            if role != Role::Leader && !self.reads.is_empty() {
                for (_, (reply, _)) in std::mem::take(&mut self.reads) {
                    let _ = reply.send(Err(Reject::NotLeader { leader }));
                }
            }
            self.seen = (role, term, leader);
        }
        let caught_up = self.applied >= self.boot_commit
            && self.raw.commit().saturating_sub(self.applied) < 1024;
        let view = LeaderView {
            leader,
            last_leader: self.last_leader,
            term,
            is_leader: role == Role::Leader,
            caught_up,
        };
        self.view.send_if_modified(|v| {
            if *v == view {
                false
            } else {
                *v = view;
                true
            }
        });
    }
}

impl Waiter {
    fn answer(self, r: Result<(), Reject>) {
        let Err(e) = r else { return };
        match self.kind {
            WaitKind::Write(reply) => {
                let _ = reply.send(Err(e));
            }
            WaitKind::Member(reply) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    fn answer_lost(self, index: u64, found_term: u64) {
        let term = self.term;
        self.answer(Err(Reject::Lost {
            index,
            term,
            found_term,
        }));
    }
}
