//! Drivers for raft-core, doing the same work as [`crate::rraft`] does for raft-rs: the same
//! workloads, the same in-memory storage duties (entries, hard state, compaction every
//! [`crate::rraft::COMPACT_EVERY`] applied entries) and the same "apply" (count entries and
//! sum their data length). Every proposal copies its payload once, as raft-rs's
//! `propose(Vec)` does; see [`PayloadAlloc`] for where the copy goes.
//!
//! The workloads themselves (W1 to W5, the micro fixtures) are described in the crate docs.

use bytes::{Bytes, BytesMut};
use raft_core::tracker::ProgressTracker;
use raft_core::{
    ConfState, Config, Entry, MemStorage, Message, MessageType, Persisted, RawNode, Ready, Role,
};
use std::mem;

use crate::pipeline::WriteQueue;
use crate::rraft::COMPACT_EVERY;
use crate::{PipelineStats, matched_of};

/// The configuration both libraries get: 1 MiB per message, 256 inflight messages,
/// election 10 ticks, heartbeat 1, no check-quorum, no pre-vote.
pub fn config(id: u64) -> Config {
    let mut c = Config::new(id);
    c.msg_bytes_max = 1 << 20;
    c.inflight_msgs_max = 256;
    c.election_ticks = 10;
    c.heartbeat_ticks = 1;
    c.check_quorum = false;
    c.pre_vote = false;
    c
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Applier {
    pub(crate) applied_index: u64,
    count_above: u64,
    pub(crate) count: u64,
    pub(crate) bytes: u64,
}

impl Applier {
    /// Counts the entries of an apply batch (those above `count_above`) and their bytes.
    pub(crate) fn apply(&mut self, entries: &[Entry], last_index: u64) {
        for e in entries {
            if e.index > self.count_above {
                self.count += 1;
                self.bytes += e.data.len() as u64;
            }
        }
        self.applied_index = last_index;
    }

    pub(crate) fn reset_count(&mut self) {
        self.count_above = self.applied_index;
        self.count = 0;
        self.bytes = 0;
    }
}

pub(crate) fn new_node(id: u64, voters: &[u64]) -> RawNode<MemStorage> {
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let storage = MemStorage::new_with_conf_state(ConfState::with_voters(voters.to_vec()));
    RawNode::new(&config(id), storage, &logger).expect("valid config")
}

/// Runs one node's Ready loop until it has nothing to do; returns whether it did anything.
///
/// `rd` is the node's last handled `Ready`, passed back to `ready_into` so that its lists
/// are reused rather than reallocated and the `Ready` (several hundred bytes) is not copied
/// out on every call; it is destructured by reference for the same reason. The storage
/// takes the entries with `persist_from` (a move) rather than `persist` (a copy).
///
/// Each persist batch is written to storage when handed out. Without `pipeline` it is
/// reported durable at once (W1–W4); with one, its completion goes through the node's
/// [`WriteQueue`], tagged with the round, and is reported later (W5, protocol in the crate
/// docs).
fn handle_ready(
    node: &mut RawNode<MemStorage>,
    rd: &mut Ready,
    out: &mut Vec<Message>,
    app: &mut Applier,
    mut pipeline: Option<(&mut WriteQueue<Persisted>, u64)>,
) -> bool {
    let mut progressed = false;
    while node.has_ready() {
        progressed = true;
        node.ready_into(rd);
        let Ready {
            messages,
            persist,
            apply,
            read_states: _,
        } = rd;
        out.append(messages);
        if let Some(batch) = persist {
            node.storage_mut()
                .persist_from(batch)
                .expect("in-memory write");
            let done = batch.durable();
            match &mut pipeline {
                None => node.on_persisted(done),
                Some((writes, round)) => {
                    writes.push(done, batch.sync, *round, |done| node.on_persisted(done));
                }
            }
        }
        if let Some(batch) = apply {
            app.apply(&batch.entries, batch.last_index());
            node.on_applied(batch.applied());
        }
    }
    progressed
}

pub(crate) fn maybe_compact(node: &mut RawNode<MemStorage>, applied_index: u64) {
    let first = raft_core::Storage::first_index(node.storage()).expect("in-memory");
    if applied_index >= first + COMPACT_EVERY {
        node.storage_mut()
            .compact(applied_index)
            .expect("compact below applied");
    }
}

/// W1: a single node that already leads.
pub struct CoreSingle {
    node: RawNode<MemStorage>,
    rd: Ready,
    app: Applier,
    sink: Vec<Message>,
    payloads: Payloads,
}

impl Default for CoreSingle {
    fn default() -> Self {
        Self::new()
    }
}

impl CoreSingle {
    /// Campaigns and runs until the node leads and applied its empty entry; payloads go to
    /// an arena ([`PayloadAlloc::Arena`]).
    pub fn new() -> Self {
        Self::with_payloads(PayloadAlloc::Arena)
    }

    /// As [`CoreSingle::new`], payloads copied as `alloc` says.
    pub fn with_payloads(alloc: PayloadAlloc) -> Self {
        let mut node = new_node(1, &[1]);
        node.campaign().expect("campaign");
        let mut app = Applier::default();
        let mut rd = Ready::default();
        let mut sink = Vec::new();
        while node.role() != Role::Leader || app.applied_index < node.last_index() {
            assert!(
                handle_ready(&mut node, &mut rd, &mut sink, &mut app, None),
                "single node stuck"
            );
        }
        app.reset_count();
        CoreSingle {
            node,
            rd,
            app,
            sink,
            payloads: Payloads::new(alloc),
        }
    }

    /// W1's round: propose one entry, then run the Ready loop until it is applied.
    pub fn propose_commit_apply_one(&mut self, payload: &[u8]) {
        self.propose_commit_apply_batch(payload, 1);
    }

    /// W2's round: propose `count` entries, then run the Ready loop until the last of them
    /// is applied.
    ///
    /// # Panics
    /// If `count` is 0.
    pub fn propose_commit_apply_batch(&mut self, payload: &[u8], count: usize) {
        assert!(count > 0, "a W2 round proposes at least one entry");
        let mut last_index = 0;
        for _ in 0..count {
            last_index = self
                .node
                .propose(self.payloads.copy(payload))
                .expect("leader accepts")
                .index;
        }
        while self.app.applied_index < last_index {
            assert!(
                handle_ready(
                    &mut self.node,
                    &mut self.rd,
                    &mut self.sink,
                    &mut self.app,
                    None
                ),
                "stuck"
            );
        }
        self.sink.clear();
        maybe_compact(&mut self.node, self.app.applied_index);
    }

    /// Entries applied since `new()`.
    pub fn applied_count(&self) -> u64 {
        self.app.count
    }

    /// Payload bytes applied since `new()`.
    pub fn applied_bytes(&self) -> u64 {
        self.app.bytes
    }
}

/// Where raft-core's drivers copy each proposal's payload to. raft-core takes a payload as
/// [`Bytes`], so an application can hand over a slice of a buffer it already holds (a request
/// read into a [`BytesMut`], say) without an allocation per entry; raft-rs's
/// `propose(context: Vec<u8>, data: Vec<u8>)` takes an owned vector, so its driver allocates
/// one per proposal whatever it does. Both drivers copy each payload exactly once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PayloadAlloc {
    /// Appended to a shared buffer of [`ARENA_CHUNK`] bytes and split off it (what a server
    /// reading requests into a `BytesMut` does); a new buffer is allocated when one is full,
    /// and a buffer is freed when the last entry in it is dropped (compaction). The
    /// performance table's raft-core column.
    #[default]
    Arena,
    /// Copied into an allocation of its own (`Bytes::copy_from_slice`), as raft-rs's driver
    /// must; a clone then promotes it to a shared buffer (a second allocation). The
    /// performance table's "own allocation" column.
    PerPayload,
}

/// Bytes per [`PayloadAlloc::Arena`] buffer (512 payloads of 128 bytes).
pub const ARENA_CHUNK: usize = 64 * 1024;

/// Copies payloads into [`Bytes`] the way its [`PayloadAlloc`] says.
#[derive(Debug)]
pub struct Payloads {
    alloc: PayloadAlloc,
    buf: BytesMut,
}

impl Payloads {
    /// A copier for `alloc`.
    pub fn new(alloc: PayloadAlloc) -> Payloads {
        let buf = match alloc {
            PayloadAlloc::Arena => BytesMut::with_capacity(ARENA_CHUNK),
            PayloadAlloc::PerPayload => BytesMut::new(),
        };
        Payloads { alloc, buf }
    }

    /// One copy of `payload`.
    pub fn copy(&mut self, payload: &[u8]) -> Bytes {
        match self.alloc {
            PayloadAlloc::PerPayload => Bytes::copy_from_slice(payload),
            PayloadAlloc::Arena => {
                if self.buf.capacity() < payload.len() {
                    // Frees nothing the entries still use: they keep their buffer alive.
                    self.buf = BytesMut::with_capacity(ARENA_CHUNK.max(payload.len()));
                }
                self.buf.extend_from_slice(payload);
                self.buf.split().freeze()
            }
        }
    }
}

struct ThreeNodes {
    nodes: Vec<RawNode<MemStorage>>,
    readies: Vec<Ready>,
    apps: Vec<Applier>,
    queue: Vec<Message>,
    /// The messages being delivered; kept so that its buffer is reused across rounds.
    inbox: Vec<Message>,
}

impl ThreeNodes {
    fn new() -> Self {
        let voters = [1, 2, 3];
        let nodes = voters.iter().map(|&id| new_node(id, &voters)).collect();
        let mut c = ThreeNodes {
            nodes,
            readies: (0..3).map(|_| Ready::default()).collect(),
            apps: vec![Applier::default(); 3],
            queue: Vec::new(),
            inbox: Vec::new(),
        };
        c.nodes[0].campaign().expect("campaign");
        c.run_until(|c| {
            let last = c.nodes[0].last_index();
            c.nodes[0].role() == Role::Leader && c.apps.iter().all(|a| a.applied_index == last)
        });
        for a in &mut c.apps {
            a.reset_count();
        }
        c
    }

    fn run_until(&mut self, done: impl Fn(&Self) -> bool) {
        loop {
            let mut progressed = false;
            let nodes = self.nodes.iter_mut().zip(&mut self.readies);
            for ((node, rd), app) in nodes.zip(self.apps.iter_mut()) {
                progressed |= handle_ready(node, rd, &mut self.queue, app, None);
            }
            if !self.queue.is_empty() {
                progressed = true;
                mem::swap(&mut self.inbox, &mut self.queue);
                for m in self.inbox.drain(..) {
                    let to = m.to as usize;
                    self.nodes[to - 1]
                        .step(m)
                        .expect("honest traffic is accepted");
                }
            }
            if !progressed {
                assert!(done(self), "raft-core three nodes stuck: {:?}", self.apps);
                return;
            }
            if done(self) {
                return;
            }
        }
    }

    /// Whether no node has a Ready and no message is in flight.
    fn is_quiet(&self) -> bool {
        self.queue.is_empty() && self.nodes.iter().all(|n| !n.has_ready())
    }

    fn maybe_compact(&mut self) {
        let applied = self.apps.iter().map(|a| a.applied_index).min().unwrap_or(0);
        for n in &mut self.nodes {
            maybe_compact(n, applied);
        }
    }
}

/// W3 (and W4 with `batch` > 1): three nodes, node 1 leader, `batch` proposals per round, each
/// round run until applied on all three, payloads copied as `alloc` says. Returns the count
/// applied on the slowest node.
pub fn core_three_nodes(
    entries: u64,
    payload_len: usize,
    batch: usize,
    alloc: PayloadAlloc,
) -> u64 {
    assert!(batch > 0, "batch must be at least 1");
    let mut c = ThreeNodes::new();
    let mut payloads = Payloads::new(alloc);
    let payload = vec![0xA5u8; payload_len];
    let mut proposed = 0u64;
    while proposed < entries {
        let n = (entries - proposed).min(batch as u64);
        for _ in 0..n {
            c.nodes[0]
                .propose(payloads.copy(&payload))
                .expect("propose on leader");
        }
        proposed += n;
        c.run_until(|c| c.apps.iter().all(|a| a.count >= proposed));
        c.maybe_compact();
    }
    debug_assert!(
        c.apps
            .iter()
            .all(|a| a.bytes == entries * payload_len as u64)
    );
    c.apps.iter().map(|a| a.count).min().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// W5: W4 with pipelined persistence (protocol in the crate docs).
// ---------------------------------------------------------------------------------------

/// Three nodes whose persist batches complete `latency_rounds` rounds late (W5).
struct PipelinedThree {
    c: ThreeNodes,
    writes: Vec<WriteQueue<Persisted>>,
    latency_rounds: u64,
    round: u64,
}

impl PipelinedThree {
    /// Elects node 1 with synchronous persistence (as W3/W4 do), then switches to pipelined.
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

    /// Handles Readies and delivers messages until no node has a Ready and no message is
    /// queued. No write completes here, except unsynced ones with nothing ahead.
    fn run_to_quiet(&mut self) {
        let c = &mut self.c;
        loop {
            let mut progressed = false;
            let nodes = c.nodes.iter_mut().zip(&mut c.readies);
            for (((node, rd), app), writes) in nodes.zip(&mut c.apps).zip(&mut self.writes) {
                progressed |= handle_ready(node, rd, &mut c.queue, app, Some((writes, self.round)));
            }
            if !c.queue.is_empty() {
                progressed = true;
                mem::swap(&mut c.inbox, &mut c.queue);
                for m in c.inbox.drain(..) {
                    let to = m.to as usize;
                    c.nodes[to - 1].step(m).expect("honest traffic is accepted");
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
            for (node, writes) in self.c.nodes.iter_mut().zip(&mut self.writes) {
                writes.complete_through(due, |done| node.on_persisted(done));
            }
        }
        self.run_to_quiet();
        self.c.maybe_compact();
        self.round += 1;
        self.writes.iter().any(|w| !w.is_empty())
    }

    fn stats(&self) -> PipelineStats {
        PipelineStats {
            applied_min: self.c.apps.iter().map(|a| a.count).min().unwrap_or(0),
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
/// leader proposing the next `batch` meanwhile, payloads copied as `alloc` says. See the
/// crate docs for the exact protocol.
pub fn core_three_nodes_pipelined(
    entries: u64,
    payload_len: usize,
    batch: usize,
    latency_rounds: u64,
    alloc: PayloadAlloc,
) -> PipelineStats {
    assert!(batch > 0, "batch must be at least 1");
    let mut p = PipelinedThree::new(latency_rounds);
    let mut payloads = Payloads::new(alloc);
    let payload = vec![0xA5u8; payload_len];
    let mut proposed = 0u64;
    loop {
        let n = (entries - proposed).min(batch as u64);
        for _ in 0..n {
            p.c.nodes[0]
                .propose(payloads.copy(&payload))
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
            "raft-core pipelined three nodes stuck: {:?}",
            p.c.apps
        );
    }
    debug_assert!(
        p.c.apps
            .iter()
            .all(|a| a.bytes == entries * payload_len as u64)
    );
    p.stats()
}

// ---------------------------------------------------------------------------------------
// Micro-benchmark fixtures.
// ---------------------------------------------------------------------------------------

/// A leader's progress tracker over voters `1..=voters` whose match indexes are
/// [`crate::matched_of`]: what the leader consults on every append acknowledgement.
pub fn tracker_with_voters(voters: u64) -> ProgressTracker {
    let mut prs = ProgressTracker::new(256, 0);
    prs.apply_conf(&ConfState::with_voters((1..=voters).collect::<Vec<_>>()), 1);
    for id in 1..=voters {
        let pr = prs.get_mut(id).expect("a voter has a progress");
        pr.matched = matched_of(id, voters);
        pr.next_idx = pr.matched + 1;
    }
    prs
}

/// Node 1, leader of a three-node group that replicated and applied 100 entries everywhere.
pub fn leader_of_three() -> RawNode<MemStorage> {
    let mut c = ThreeNodes::new();
    let mut payloads = Payloads::new(PayloadAlloc::Arena);
    for _ in 0..100 {
        c.nodes[0]
            .propose(payloads.copy(&[1u8; 128]))
            .expect("propose on leader");
    }
    c.run_until(|c| c.apps.iter().all(|a| a.count >= 100) && c.is_quiet());
    c.nodes.swap_remove(0)
}

/// Node 2 of a three-node group led by node 1, taken out of the group: the micro benchmark
/// plays the leader and hands it one append at a time.
pub struct CoreFollower {
    node: RawNode<MemStorage>,
    rd: Ready,
    app: Applier,
    sink: Vec<Message>,
    term: u64,
    last_index: u64,
    /// Stands for the receive buffer a decoded append's payloads would be slices of.
    payloads: Payloads,
}

impl Default for CoreFollower {
    fn default() -> Self {
        Self::new()
    }
}

impl CoreFollower {
    /// Elects node 1 in a three-node group and keeps node 2.
    pub fn new() -> Self {
        let mut c = ThreeNodes::new();
        c.run_until(ThreeNodes::is_quiet);
        let node = c.nodes.swap_remove(1);
        let rd = c.readies.swap_remove(1);
        let mut app = c.apps.swap_remove(1);
        app.reset_count();
        assert_eq!(node.role(), Role::Follower);
        let last = node.last_entry_id();
        CoreFollower {
            term: node.term(),
            last_index: last.index,
            node,
            rd,
            app,
            sink: Vec::new(),
            payloads: Payloads::new(PayloadAlloc::Arena),
        }
    }

    /// Steps one MsgApp from node 1 with one entry of `payload` right after the follower's
    /// last entry (committing the entry before it), then handles the Readies: persist the
    /// entry, apply the newly committed one, produce the MsgAppResp (dropped here).
    pub fn step_one_append(&mut self, payload: &[u8]) {
        let prev = self.last_index;
        let m = Message {
            msg_type: MessageType::MsgApp as i32,
            to: 2,
            from: 1,
            term: self.term,
            log_term: self.term,
            index: prev,
            entries: vec![Entry::normal(
                prev + 1,
                self.term,
                self.payloads.copy(payload),
            )],
            commit: prev,
            ..Message::default()
        };
        self.node.step(m).expect("append from the leader");
        handle_ready(
            &mut self.node,
            &mut self.rd,
            &mut self.sink,
            &mut self.app,
            None,
        );
        debug_assert_eq!(self.sink.len(), 1, "one append response");
        self.sink.clear();
        self.last_index = prev + 1;
        maybe_compact(&mut self.node, self.app.applied_index);
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
    fn payload_copies_hold_their_bytes_across_arena_buffers() {
        for alloc in [PayloadAlloc::Arena, PayloadAlloc::PerPayload] {
            let mut p = Payloads::new(alloc);
            // 3,000 payloads of 100 bytes span several 64 KiB buffers, none is overwritten.
            let kept: Vec<(u8, Bytes)> = (0..3_000u32)
                .map(|i| {
                    let v = (i % 251) as u8;
                    (v, p.copy(&[v; 100]))
                })
                .collect();
            for (v, b) in &kept {
                assert_eq!(b.len(), 100);
                assert!(
                    b.iter().all(|x| x == v),
                    "{alloc:?}: payload {v} overwritten"
                );
            }
            // A payload larger than a buffer gets a buffer of its own.
            let big = vec![7u8; ARENA_CHUNK + 1];
            assert_eq!(p.copy(&big), big);
        }
    }

    #[test]
    fn single_node_applies_every_proposal() {
        let mut s = CoreSingle::new();
        let payload = [7u8; 128];
        for i in 1..=25_000u64 {
            s.propose_commit_apply_one(&payload);
            assert_eq!(s.applied_count(), i);
        }
        assert_eq!(s.applied_bytes(), 25_000 * 128);
    }

    #[test]
    fn three_nodes_apply_every_proposal_on_all_nodes() {
        for alloc in [PayloadAlloc::Arena, PayloadAlloc::PerPayload] {
            assert_eq!(core_three_nodes(2_000, 128, 1, alloc), 2_000);
            assert_eq!(core_three_nodes(2_000, 128, 64, alloc), 2_000);
        }
    }

    #[test]
    fn single_node_applies_every_proposal_in_batches() {
        let mut s = CoreSingle::new();
        let payload = [7u8; 128];
        for round in 1..=400u64 {
            s.propose_commit_apply_batch(&payload, 64);
            assert_eq!(s.applied_count(), round * 64);
        }
        s.propose_commit_apply_batch(&payload, 5);
        assert_eq!(s.applied_count(), 400 * 64 + 5);
        assert_eq!(s.applied_bytes(), (400 * 64 + 5) * 128);
        let first = raft_core::Storage::first_index(s.node.storage()).unwrap();
        assert!(first > COMPACT_EVERY, "not compacted: first index {first}");
    }

    #[test]
    fn pipelined_three_nodes_apply_every_proposal_with_writes_outstanding() {
        let entries = COMPACT_EVERY + 1_000;
        let stats = core_three_nodes_pipelined(entries, 128, 64, 4, PayloadAlloc::Arena);
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
            core_three_nodes_pipelined(1_000, 16, 7, 4, PayloadAlloc::PerPayload).applied_min,
            1_000
        );
        let stats = core_three_nodes_pipelined(1_000, 16, 64, 1, PayloadAlloc::Arena);
        assert_eq!(stats.applied_min, 1_000);
        assert_eq!(stats.outstanding_max, 1, "{stats:?}");
    }

    #[test]
    fn tracker_fixture_commits_the_majority_match() {
        for voters in [3, 5, 7] {
            let prs = tracker_with_voters(voters);
            assert_eq!(
                prs.committed(),
                crate::committed_of(voters),
                "{voters} voters"
            );
        }
    }

    #[test]
    fn leader_fixture_leads_three_nodes() {
        let leader = leader_of_three();
        let status = leader.status();
        assert_eq!(status.role, Role::Leader);
        assert_eq!(status.progress.len(), 3);
        assert!(
            status
                .progress
                .iter()
                .all(|p| p.matched == status.last_index)
        );
    }

    #[test]
    fn follower_applies_each_append_one_step_later() {
        let mut f = CoreFollower::new();
        let payload = [3u8; 128];
        for _ in 0..(COMPACT_EVERY + 100) {
            f.step_one_append(&payload);
        }
        assert_eq!(f.applied_count(), COMPACT_EVERY + 99);
        assert_eq!(f.app.bytes, (COMPACT_EVERY + 99) * 128);
        let first = raft_core::Storage::first_index(f.node.storage()).unwrap();
        assert!(first > COMPACT_EVERY, "not compacted: first index {first}");
    }
}
