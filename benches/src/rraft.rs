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

use raft::prelude::{Entry, EntryType, Message};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole, Storage};

/// Compact a node's `MemStorage` after this many applied entries.
pub const COMPACT_EVERY: u64 = 10_000;

/// A logger that drops every record (raft-rs logs at info level on elections etc.).
pub fn discard_logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// The configuration both workloads use, the same knobs raft-core gets in its benchmarks:
/// max_size_per_msg 1 MiB, max_inflight_msgs 256, election_tick 10, heartbeat_tick 1,
/// no check_quorum, no pre_vote.
pub fn config(id: u64) -> Config {
    Config {
        id,
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
    if !rd.snapshot().is_empty() {
        store
            .wl()
            .apply_snapshot(rd.snapshot().clone())
            .expect("apply snapshot");
    }
    // Entries committed here were persisted by an earlier ready.
    app.apply(rd.take_committed_entries());
    if !rd.entries().is_empty() {
        store.wl().append(rd.entries()).expect("append entries");
    }
    if let Some(hs) = rd.hs() {
        store.wl().set_hardstate(hs.clone());
    }
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

/// W1: a single-voter group (id 1, voters [1]) that is already leader.
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

    /// Proposes one entry and runs the ready loop until it is applied.
    pub fn propose_commit_apply_one(&mut self, payload: &[u8]) {
        let index = self.node.raft.raft_log.last_index() + 1;
        self.node
            .propose(vec![], payload.to_vec())
            .expect("propose");
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
        let mut inbox = Vec::new();
        loop {
            let mut progressed = false;
            for (node, app) in self.nodes.iter_mut().zip(self.apps.iter_mut()) {
                progressed |= handle_ready(node, &mut self.queue, app);
            }
            if !self.queue.is_empty() {
                progressed = true;
                mem::swap(&mut inbox, &mut self.queue);
                for m in inbox.drain(..) {
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
}
