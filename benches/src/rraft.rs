//! Drivers for tikv/raft-rs 0.7 (the `raft` crate), the comparison target.
//!
//! Both workloads use raft-rs the way its own examples and users do: a `RawNode` over
//! `raft::storage::MemStorage`, and the 0.7 ready loop:
//!
//! 1. `ready()`; send `messages()` at once (only a leader has them: it may replicate before
//!    its own append is durable);
//! 2. apply `committed_entries()` (these are already durable);
//! 3. persist `entries()` and `hs()` to the storage;
//! 4. send `persisted_messages()` (a follower's or candidate's messages, sendable only after
//!    step 3);
//! 5. `advance(ready)` gives a `LightReady`: store its `commit_index()`, send its `messages()`,
//!    apply its `committed_entries()`, then `advance_apply()`.
//!
//! Applying an entry only counts it and adds its data length to a counter.
//! Storage is compacted up to the applied index every [`COMPACT_EVERY`] applied entries, as
//! raft-rs users do (log GC), so a long criterion run does not grow memory without bound.

use std::mem;

use raft::prelude::{Entry, EntryType, Message, MessageType};
use raft::storage::MemStorage;
use raft::{Config, Raft, RawNode, Ready, StateRole, Storage};

use crate::pipeline::WriteQueue;
use crate::{PipelineStats, matched_of};

/// Compact a node's `MemStorage` after this many applied entries.
pub const COMPACT_EVERY: u64 = 10_000;

/// A logger that drops every record (raft-rs logs at info level on elections etc.).
pub fn discard_logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// The configuration both workloads use, the same knobs raft-core gets in its benchmarks:
/// max_size_per_msg 1 MiB, max_inflight_msgs 256, election_tick 10, heartbeat_tick 1,
/// no check_quorum, no pre_vote.
///
/// `batch_append` is on (raft-rs's default is off): raft-rs then merges appends to one peer
/// that are still queued in the same Ready into one message, as raft-core always does, so
/// the batched workloads (W4, W5) compare against raft-rs at its best rather than at its
/// default. With it off, raft-rs sends one append per proposal and W4 costs it about twice
/// as much.
pub fn config(id: u64) -> Config {
    Config {
        id,
        batch_append: true,
        election_tick: 10,
        heartbeat_tick: 1,
        max_size_per_msg: 1024 * 1024,
        max_inflight_msgs: 256,
        check_quorum: false,
        pre_vote: false,
        ..Default::default()
    }
}

/// The application's side of one node: what it has applied.
#[derive(Debug, Default, Clone)]
struct Applier {
    /// Index of the last entry applied (including the leaders' empty entries).
    applied_index: u64,
    /// Entries with an index above this are counted (set past the election's empty entry).
    count_above: u64,
    /// Counted entries applied.
    count: u64,
    /// Sum of the data lengths of the counted entries.
    bytes: u64,
}

impl Applier {
    fn apply(&mut self, entries: Vec<Entry>) {
        for e in entries {
            debug_assert_eq!(e.index, self.applied_index + 1, "applied out of order");
            self.applied_index = e.index;
            if e.get_entry_type() == EntryType::EntryNormal && e.index > self.count_above {
                self.count += 1;
                self.bytes += e.data.len() as u64;
            }
        }
    }

    /// Start counting from the next entry on.
    fn reset_count(&mut self) {
        self.count_above = self.applied_index;
        self.count = 0;
        self.bytes = 0;
    }
}

fn new_node(id: u64, voters: Vec<u64>, logger: &slog::Logger) -> RawNode<MemStorage> {
    let storage = MemStorage::new_with_conf_state((voters, vec![]));
    let cfg = config(id);
    RawNode::new(&cfg, storage, logger).expect("raft-rs RawNode::new")
}

/// Writes what `rd` asks to persist into `store`: the snapshot, the entries, the hard state.
fn write_ready(store: &MemStorage, rd: &Ready) {
    if !rd.snapshot().is_empty() {
        store
            .wl()
            .apply_snapshot(rd.snapshot().clone())
            .expect("apply snapshot");
    }
    if !rd.entries().is_empty() {
        store.wl().append(rd.entries()).expect("append entries");
    }
    if let Some(hs) = rd.hs() {
        store.wl().set_hardstate(hs.clone());
    }
}

/// Handles one `Ready` of `node` if it has one: persists to its `MemStorage`, applies
/// committed entries into `app`, and pushes every outgoing message onto `out`.
/// Returns whether there was a ready.
fn handle_ready(node: &mut RawNode<MemStorage>, out: &mut Vec<Message>, app: &mut Applier) -> bool {
    if !node.has_ready() {
        return false;
    }
    // MemStorage is an Arc<RwLock<..>>: a clone is a handle to the same log.
    let store = node.store().clone();
    let mut rd = node.ready();

    // A leader's messages may go out before its own entries are persisted.
    if !rd.messages().is_empty() {
        out.extend(rd.take_messages());
    }
    // Entries committed here were persisted by an earlier ready.
    app.apply(rd.take_committed_entries());
    write_ready(&store, &rd);
    // A follower's/candidate's messages (append responses, votes) only after persisting.
    if !rd.persisted_messages().is_empty() {
        out.extend(rd.take_persisted_messages());
    }

    let mut light = node.advance(rd);
    if let Some(commit) = light.commit_index() {
        store.wl().mut_hard_state().set_commit(commit);
    }
    out.extend(light.take_messages());
    app.apply(light.take_committed_entries());
    node.advance_apply();
    true
}

/// Drops log entries up to `applied_index` from `node`'s storage once `COMPACT_EVERY`
/// entries have been applied since the last compaction.
fn maybe_compact(node: &RawNode<MemStorage>, applied_index: u64) {
    let store = node.store();
    let first = Storage::first_index(store).expect("first index");
    if applied_index >= first + COMPACT_EVERY {
        store.wl().compact(applied_index).expect("compact");
    }
}

// ---------------------------------------------------------------------------------------
// W1: one node, one entry per round.
// ---------------------------------------------------------------------------------------

/// W1: a single-voter group (id 1, voters `[1]`) that is already leader.
pub struct RaftRsSingle {
    node: RawNode<MemStorage>,
    app: Applier,
    /// Messages a single node produces (none are expected); kept to reuse the allocation.
    out: Vec<Message>,
}

impl Default for RaftRsSingle {
    fn default() -> Self {
        Self::new()
    }
}

impl RaftRsSingle {
    /// Creates the node, campaigns, and processes readies until it is leader and has applied
    /// its term's empty entry. Counters start at zero afterwards.
    pub fn new() -> Self {
        let logger = discard_logger();
        let mut node = new_node(1, vec![1], &logger);
        let mut app = Applier::default();
        let mut out = Vec::new();
        node.campaign().expect("campaign");
        loop {
            let had = handle_ready(&mut node, &mut out, &mut app);
            if node.raft.state == StateRole::Leader
                && app.applied_index == node.raft.raft_log.last_index()
                && !node.has_ready()
            {
                break;
            }
            assert!(had, "raft-rs single node stuck before leadership");
        }
        assert!(out.is_empty(), "a single node sent messages: {out:?}");
        app.reset_count();
        RaftRsSingle { node, app, out }
    }

    /// W1's round: proposes one entry and runs the ready loop until it is applied.
    pub fn propose_commit_apply_one(&mut self, payload: &[u8]) {
        self.propose_commit_apply_batch(payload, 1);
    }

    /// W2's round: proposes `count` entries, then runs the ready loop until the last of them
    /// is applied.
    ///
    /// # Panics
    /// If `count` is 0.
    pub fn propose_commit_apply_batch(&mut self, payload: &[u8], count: usize) {
        assert!(count > 0, "a W2 round proposes at least one entry");
        let index = self.node.raft.raft_log.last_index() + count as u64;
        for _ in 0..count {
            self.node
                .propose(vec![], payload.to_vec())
                .expect("propose");
        }
        debug_assert_eq!(self.node.raft.raft_log.last_index(), index);
        while self.app.applied_index < index {
            let had = handle_ready(&mut self.node, &mut self.out, &mut self.app);
            assert!(had, "raft-rs single node stuck at entry {index}");
        }
        debug_assert!(self.out.is_empty());
        self.out.clear();
        maybe_compact(&self.node, self.app.applied_index);
    }

    /// Number of proposed entries applied since `new()`.
    pub fn applied_count(&self) -> u64 {
        self.app.count
    }

    /// Sum of the payload lengths applied since `new()`.
    pub fn applied_bytes(&self) -> u64 {
        self.app.bytes
    }
}

// ---------------------------------------------------------------------------------------
// W3: three nodes in one thread, messages delivered in memory.
// ---------------------------------------------------------------------------------------

/// Three raft-rs nodes (ids 1, 2, 3) in one thread; messages go through one in-memory queue.
struct ThreeNodes {
    nodes: Vec<RawNode<MemStorage>>,
    apps: Vec<Applier>,
    queue: Vec<Message>,
    /// The messages being delivered; kept so that its buffer is reused across rounds.
    inbox: Vec<Message>,
}

impl ThreeNodes {
    /// Builds the group and elects node 1; returns once all three have applied its empty entry.
    fn new() -> Self {
        let logger = discard_logger();
        let voters = vec![1, 2, 3];
        let nodes = (1..=3)
            .map(|id| new_node(id, voters.clone(), &logger))
            .collect();
        let mut c = ThreeNodes {
            nodes,
            apps: vec![Applier::default(); 3],
            queue: Vec::new(),
            inbox: Vec::new(),
        };
        c.nodes[0].campaign().expect("campaign");
        c.run_until(|c| {
            let last = c.nodes[0].raft.raft_log.last_index();
            c.nodes[0].raft.state == StateRole::Leader
                && c.apps.iter().all(|a| a.applied_index == last)
        });
        for a in &mut c.apps {
            a.reset_count();
        }
        c
    }

    /// Handles readies and delivers messages until `done` holds (checked once the cluster is
    /// quiet: no ready and no message in flight). Panics if quiet and not done.
    fn run_until(&mut self, done: impl Fn(&Self) -> bool) {
        loop {
            let mut progressed = false;
            for (node, app) in self.nodes.iter_mut().zip(self.apps.iter_mut()) {
                progressed |= handle_ready(node, &mut self.queue, app);
            }
            if !self.queue.is_empty() {
                progressed = true;
                mem::swap(&mut self.inbox, &mut self.queue);
                for m in self.inbox.drain(..) {
                    let to = m.to as usize;
                    // Stale-term messages are dropped inside step() with Ok; an Err here
                    // (StepLocalMsg, StepPeerNotFound) would be a driver bug.
                    self.nodes[to - 1].step(m).expect("raft-rs step");
                }
            }
            if !progressed {
                assert!(done(self), "raft-rs three nodes stuck: {:?}", self.apps);
                return;
            }
            if done(self) {
                return;
            }
        }
    }

    /// Whether no node has a ready and no message is in flight.
    fn is_quiet(&self) -> bool {
        self.queue.is_empty() && self.nodes.iter().all(|n| !n.has_ready())
    }

    fn min_count(&self) -> u64 {
        self.apps.iter().map(|a| a.count).min().unwrap_or(0)
    }

    /// Compacts every node up to the index all three have applied (never past a follower's
    /// log, so no snapshot is ever needed).
    fn maybe_compact(&self) {
        let applied = self.apps.iter().map(|a| a.applied_index).min().unwrap_or(0);
        for n in &self.nodes {
            maybe_compact(n, applied);
        }
    }
}

/// W3: three nodes, node 1 leader. Proposes `batch` entries of `payload_len` bytes per round
/// on the leader, then handles readies and delivers messages until every proposed entry is
/// applied on all three; repeats until `entries` have been applied. Returns the number applied
/// on the slowest node (the caller asserts it equals `entries`).
pub fn raft_rs_three_nodes(entries: u64, payload_len: usize, batch: usize) -> u64 {
    assert!(batch > 0, "batch must be at least 1");
    let mut c = ThreeNodes::new();
    let payload = vec![0xA5u8; payload_len];
    let mut proposed = 0u64;
    while proposed < entries {
        let n = (entries - proposed).min(batch as u64);
        for _ in 0..n {
            c.nodes[0]
                .propose(vec![], payload.clone())
                .expect("propose on leader");
        }
        proposed += n;
        c.run_until(|c| c.apps.iter().all(|a| a.count >= proposed));
        c.maybe_compact();
    }
    debug_assert!(
        c.apps
            .iter()
            .all(|a| a.bytes == entries * payload_len as u64),
        "applied bytes differ: {:?}",
        c.apps
    );
    c.min_count()
}

// ---------------------------------------------------------------------------------------
// W5: W4 with pipelined persistence (protocol in the crate docs).
// ---------------------------------------------------------------------------------------

/// A ready whose write is done but not yet reported with `on_persist_ready`, and the
/// messages that must wait for it (its `persisted_messages`, plus those of later readies that
/// wrote nothing).
#[derive(Debug)]
struct OutstandingWrite {
    number: u64,
    held: Vec<Message>,
}

/// Reports `done` durable and sends the messages it held.
fn complete(node: &mut RawNode<MemStorage>, out: &mut Vec<Message>, done: OutstandingWrite) {
    node.on_persist_ready(done.number);
    out.extend(done.held);
}

/// The async-ready loop of raft-rs 0.7 for one ready: send `messages()`, apply
/// `committed_entries()`, write `entries()`/`hs()` to the storage, `advance_append_async`,
/// `advance_apply`; the write's `on_persist_ready(number)` goes through the node's
/// [`WriteQueue`], tagged with `round`, and its `persisted_messages()` wait for it (W5,
/// protocol in the crate docs).
fn handle_ready_pipelined(
    node: &mut RawNode<MemStorage>,
    out: &mut Vec<Message>,
    app: &mut Applier,
    writes: &mut WriteQueue<OutstandingWrite>,
    round: u64,
) -> bool {
    if !node.has_ready() {
        return false;
    }
    let store = node.store().clone();
    let mut rd = node.ready();
    if !rd.messages().is_empty() {
        out.extend(rd.take_messages());
    }
    let wrote = !rd.snapshot().is_empty() || !rd.entries().is_empty() || rd.hs().is_some();
    let synced = rd.must_sync();
    app.apply(rd.take_committed_entries());
    write_ready(&store, &rd);
    let held = rd.take_persisted_messages();
    let number = rd.number();
    node.advance_append_async(rd);
    node.advance_apply();
    if wrote {
        let write = OutstandingWrite { number, held };
        writes.push(write, synced, round, |done| complete(node, out, done));
    } else if let Some(newest) = writes.back_mut() {
        // Nothing written, but these may vouch for what an outstanding write holds.
        newest.held.extend(held);
    } else {
        out.extend(held);
    }
    true
}

/// Three raft-rs nodes whose writes complete `latency_rounds` rounds late (W5).
struct PipelinedThree {
    c: ThreeNodes,
    writes: Vec<WriteQueue<OutstandingWrite>>,
    latency_rounds: u64,
    round: u64,
}

impl PipelinedThree {
    /// Elects node 1 with synchronous readies (as W3/W4 do), then switches to pipelined.
    fn new(latency_rounds: u64) -> Self {
        assert!(
            latency_rounds > 0,
            "a write takes at least the round it is handed out in"
        );
        PipelinedThree {
            c: ThreeNodes::new(),
            writes: (0..3).map(|_| WriteQueue::default()).collect(),
            latency_rounds,
            round: 0,
        }
    }

    /// Handles readies and delivers messages until no node has a ready and no message is
    /// queued. No write completes here, except unsynced ones with nothing ahead.
    fn run_to_quiet(&mut self) {
        let c = &mut self.c;
        loop {
            let mut progressed = false;
            let nodes = c.nodes.iter_mut().zip(&mut c.apps);
            for ((node, app), writes) in nodes.zip(&mut self.writes) {
                while handle_ready_pipelined(node, &mut c.queue, app, writes, self.round) {
                    progressed = true;
                }
            }
            if !c.queue.is_empty() {
                progressed = true;
                mem::swap(&mut c.inbox, &mut c.queue);
                for m in c.inbox.drain(..) {
                    let to = m.to as usize;
                    c.nodes[to - 1].step(m).expect("raft-rs step");
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Ends the round: completes every write handed out `latency_rounds` rounds ago (this
    /// round counting as one) or earlier, runs to quiescence again, moves to the next round.
    /// Returns whether anything is still outstanding.
    fn end_round(&mut self) -> bool {
        if let Some(due) = (self.round + 1).checked_sub(self.latency_rounds) {
            let out = &mut self.c.queue;
            for (node, writes) in self.c.nodes.iter_mut().zip(&mut self.writes) {
                writes.complete_through(due, |done| complete(node, out, done));
            }
        }
        self.run_to_quiet();
        self.c.maybe_compact();
        self.round += 1;
        self.writes.iter().any(|w| !w.is_empty())
    }

    fn stats(&self) -> PipelineStats {
        PipelineStats {
            applied_min: self.c.min_count(),
            outstanding_max: self
                .writes
                .iter()
                .map(|w| w.synced_max())
                .max()
                .unwrap_or(0),
            writes: self.writes.iter().map(|w| w.writes()).sum(),
            writes_synced: self.writes.iter().map(|w| w.writes_synced()).sum(),
            rounds: self.round,
        }
    }
}

/// W5: W4 with every write completing `latency_rounds` rounds after it was handed out, the
/// leader proposing the next `batch` meanwhile. See the crate docs for the exact protocol.
pub fn raft_rs_three_nodes_pipelined(
    entries: u64,
    payload_len: usize,
    batch: usize,
    latency_rounds: u64,
) -> PipelineStats {
    assert!(batch > 0, "batch must be at least 1");
    let mut p = PipelinedThree::new(latency_rounds);
    let payload = vec![0xA5u8; payload_len];
    let mut proposed = 0u64;
    loop {
        let n = (entries - proposed).min(batch as u64);
        for _ in 0..n {
            p.c.nodes[0]
                .propose(vec![], payload.clone())
                .expect("propose on leader");
        }
        proposed += n;
        p.run_to_quiet();
        let outstanding = p.end_round();
        if proposed == entries && p.c.apps.iter().all(|a| a.count >= entries) {
            break;
        }
        assert!(
            outstanding || proposed < entries,
            "raft-rs pipelined three nodes stuck: {:?}",
            p.c.apps
        );
    }
    debug_assert!(
        p.c.apps
            .iter()
            .all(|a| a.bytes == entries * payload_len as u64),
        "applied bytes differ: {:?}",
        p.c.apps
    );
    p.stats()
}

// ---------------------------------------------------------------------------------------
// Micro-benchmark fixtures.
// ---------------------------------------------------------------------------------------

/// A `Raft` (node 1) over voters `1..=voters` whose progress tracker holds the match indexes
/// of [`crate::matched_of`]. The micro benchmark calls
/// `raft.mut_prs().maximal_committed_index()`, what a raft-rs leader does on every append
/// acknowledgement (raft-rs's `MajorityConfig::committed_index` needs an `AckedIndexer`,
/// a trait it does not export, so the tracker is the narrowest public path).
pub fn raft_with_voters(voters: u64) -> Raft<MemStorage> {
    let storage = MemStorage::new_with_conf_state(((1..=voters).collect::<Vec<_>>(), vec![]));
    let mut raft = Raft::new(&config(1), storage, &discard_logger()).expect("raft-rs Raft::new");
    for id in 1..=voters {
        let pr = raft.mut_prs().get_mut(id).expect("a voter has a progress");
        pr.matched = matched_of(id, voters);
        pr.next_idx = pr.matched + 1;
    }
    raft
}

/// Node 1, leader of a three-node group that replicated and applied 100 entries everywhere.
pub fn leader_of_three() -> RawNode<MemStorage> {
    let mut c = ThreeNodes::new();
    for _ in 0..100 {
        c.nodes[0]
            .propose(vec![], vec![1u8; 128])
            .expect("propose on leader");
    }
    c.run_until(|c| c.apps.iter().all(|a| a.count >= 100) && c.is_quiet());
    c.nodes.swap_remove(0)
}

/// Node 2 of a three-node group led by node 1, taken out of the group: the micro benchmark
/// plays the leader and hands it one append at a time.
pub struct RaftRsFollower {
    node: RawNode<MemStorage>,
    app: Applier,
    sink: Vec<Message>,
    term: u64,
    last_index: u64,
}

impl Default for RaftRsFollower {
    fn default() -> Self {
        Self::new()
    }
}

impl RaftRsFollower {
    /// Elects node 1 in a three-node group and keeps node 2.
    pub fn new() -> Self {
        let mut c = ThreeNodes::new();
        c.run_until(ThreeNodes::is_quiet);
        let node = c.nodes.swap_remove(1);
        let mut app = c.apps.swap_remove(1);
        app.reset_count();
        assert_eq!(node.raft.state, StateRole::Follower);
        RaftRsFollower {
            term: node.raft.term,
            last_index: node.raft.raft_log.last_index(),
            node,
            app,
            sink: Vec::new(),
        }
    }

    /// Steps one MsgAppend from node 1 with one entry of `payload` right after the follower's
    /// last entry (committing the entry before it), then handles the ready: persist the
    /// entry, apply the newly committed one, produce the MsgAppendResponse (dropped here).
    pub fn step_one_append(&mut self, payload: &[u8]) {
        let prev = self.last_index;
        let mut e = Entry::default();
        e.set_entry_type(EntryType::EntryNormal);
        e.term = self.term;
        e.index = prev + 1;
        e.data = bytes::Bytes::copy_from_slice(payload);
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.to = 2;
        m.from = 1;
        m.term = self.term;
        m.log_term = self.term;
        m.index = prev;
        m.commit = prev;
        m.set_entries(vec![e].into());
        self.node.step(m).expect("append from the leader");
        while handle_ready(&mut self.node, &mut self.sink, &mut self.app) {}
        debug_assert!(!self.sink.is_empty(), "an append response");
        self.sink.clear();
        self.last_index = prev + 1;
        maybe_compact(&self.node, self.app.applied_index);
    }

    /// Entries applied since `new()` (each step commits the entry of the step before).
    pub fn applied_count(&self) -> u64 {
        self.app.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_node_applies_every_proposal() {
        let mut s = RaftRsSingle::new();
        assert_eq!(s.applied_count(), 0);
        let payload = [7u8; 128];
        for i in 1..=1000u64 {
            s.propose_commit_apply_one(&payload);
            assert_eq!(s.applied_count(), i);
        }
        assert_eq!(s.applied_bytes(), 1000 * 128);
    }

    #[test]
    fn single_node_compacts_and_keeps_going() {
        let mut s = RaftRsSingle::new();
        let n = COMPACT_EVERY * 2 + 17;
        for _ in 0..n {
            s.propose_commit_apply_one(&[1, 2, 3]);
        }
        assert_eq!(s.applied_count(), n);
        assert_eq!(s.applied_bytes(), n * 3);
        let first = raft::Storage::first_index(s.node.store()).unwrap();
        assert!(
            first > COMPACT_EVERY,
            "storage was not compacted: first index {first}"
        );
    }

    #[test]
    fn single_node_empty_payload_counts() {
        let mut s = RaftRsSingle::new();
        for _ in 0..10 {
            s.propose_commit_apply_one(&[]);
        }
        assert_eq!(s.applied_count(), 10);
        assert_eq!(s.applied_bytes(), 0);
    }

    #[test]
    fn three_nodes_batch_one() {
        assert_eq!(raft_rs_three_nodes(500, 128, 1), 500);
    }

    #[test]
    fn three_nodes_batch_not_dividing_total() {
        assert_eq!(raft_rs_three_nodes(1000, 128, 7), 1000);
    }

    #[test]
    fn three_nodes_large_batches_and_compaction() {
        // Batches beyond max_inflight_msgs and past a compaction point.
        assert_eq!(
            raft_rs_three_nodes(COMPACT_EVERY + 3000, 16, 300),
            COMPACT_EVERY + 3000
        );
    }

    #[test]
    fn three_nodes_all_nodes_apply_everything() {
        let mut c = ThreeNodes::new();
        for _ in 0..50 {
            c.nodes[0].propose(vec![], vec![1; 10]).unwrap();
        }
        c.run_until(|c| c.apps.iter().all(|a| a.count >= 50));
        for a in &c.apps {
            assert_eq!(a.count, 50);
            assert_eq!(a.bytes, 500);
        }
        let last = c.nodes[0].raft.raft_log.last_index();
        assert!(c.apps.iter().all(|a| a.applied_index == last));
    }

    #[test]
    fn three_nodes_compact_and_keep_replicating() {
        let mut c = ThreeNodes::new();
        let total = COMPACT_EVERY + 500;
        for round in 1..=total / 100 {
            for _ in 0..100 {
                c.nodes[0].propose(vec![], vec![2; 4]).unwrap();
            }
            c.run_until(|c| c.apps.iter().all(|a| a.count >= round * 100));
            c.maybe_compact();
        }
        for (a, n) in c.apps.iter().zip(&c.nodes) {
            assert_eq!(a.count, total);
            let first = Storage::first_index(n.store()).unwrap();
            assert!(
                first > COMPACT_EVERY,
                "node {} not compacted: {first}",
                n.raft.id
            );
        }
        // Nobody needed a snapshot.
        assert!(
            c.nodes
                .iter()
                .all(|n| n.raft.raft_log.unstable_snapshot().is_none())
        );
    }

    #[test]
    fn single_node_applies_every_proposal_in_batches() {
        let mut s = RaftRsSingle::new();
        let payload = [7u8; 128];
        for round in 1..=400u64 {
            s.propose_commit_apply_batch(&payload, 64);
            assert_eq!(s.applied_count(), round * 64);
        }
        s.propose_commit_apply_batch(&payload, 5);
        assert_eq!(s.applied_count(), 400 * 64 + 5);
        assert_eq!(s.applied_bytes(), (400 * 64 + 5) * 128);
        let first = Storage::first_index(s.node.store()).unwrap();
        assert!(first > COMPACT_EVERY, "not compacted: first index {first}");
    }

    #[test]
    fn pipelined_three_nodes_apply_every_proposal_with_writes_outstanding() {
        let entries = COMPACT_EVERY + 1_000;
        let stats = raft_rs_three_nodes_pipelined(entries, 128, 64, 4);
        eprintln!("{stats:?}");
        assert_eq!(stats.applied_min, entries);
        // Every node hands out one synced write per round and keeps four rounds' worth.
        assert_eq!(stats.outstanding_max, 4, "{stats:?}");
        // The drain after the last proposal takes a few rounds, not a second pass.
        let rounds_proposing = entries.div_ceil(64);
        assert!(stats.rounds <= rounds_proposing + 8, "{stats:?}");
    }

    #[test]
    fn pipelined_three_nodes_handle_odd_batches_and_latency_one() {
        assert_eq!(
            raft_rs_three_nodes_pipelined(1_000, 16, 7, 4).applied_min,
            1_000
        );
        let stats = raft_rs_three_nodes_pipelined(1_000, 16, 64, 1);
        assert_eq!(stats.applied_min, 1_000);
        assert_eq!(stats.outstanding_max, 1, "{stats:?}");
    }

    #[test]
    fn tracker_fixture_commits_the_majority_match() {
        for voters in [3, 5, 7] {
            let mut raft = raft_with_voters(voters);
            let (committed, _) = raft.mut_prs().maximal_committed_index();
            assert_eq!(committed, crate::committed_of(voters), "{voters} voters");
        }
    }

    #[test]
    fn leader_fixture_leads_three_nodes() {
        let leader = leader_of_three();
        let status = leader.status();
        assert_eq!(status.ss.raft_state, StateRole::Leader);
        let prs = status.progress.expect("a leader's status has progress");
        assert_eq!(prs.iter().len(), 3);
        let last = leader.raft.raft_log.last_index();
        assert!(prs.iter().all(|(_, p)| p.matched == last));
    }

    #[test]
    fn follower_applies_each_append_one_step_later() {
        let mut f = RaftRsFollower::new();
        let payload = [3u8; 128];
        for _ in 0..(COMPACT_EVERY + 100) {
            f.step_one_append(&payload);
        }
        assert_eq!(f.applied_count(), COMPACT_EVERY + 99);
        assert_eq!(f.app.bytes, (COMPACT_EVERY + 99) * 128);
        let first = Storage::first_index(f.node.store()).unwrap();
        assert!(first > COMPACT_EVERY, "not compacted: first index {first}");
    }
}
