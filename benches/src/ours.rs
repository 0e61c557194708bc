//! Drivers for raft-core, doing the same work as [`crate::rraft`] does for raft-rs: the same
//! workloads, the same in-memory storage duties (entries, hard state, compaction every
//! [`crate::rraft::COMPACT_EVERY`] applied entries) and the same "apply" (count entries and
//! sum their data length). Every proposal copies its payload, as raft-rs's `propose(Vec)` does.

use raft_core::{ConfState, Config, MemStorage, Message, RawNode, Ready, Role};
use std::mem;

use crate::rraft::COMPACT_EVERY;

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
struct Applier {
    applied_index: u64,
    count_above: u64,
    count: u64,
    bytes: u64,
}

impl Applier {
    fn reset_count(&mut self) {
        self.count_above = self.applied_index;
        self.count = 0;
        self.bytes = 0;
    }
}

fn new_node(id: u64, voters: &[u64]) -> RawNode<MemStorage> {
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
fn handle_ready(
    node: &mut RawNode<MemStorage>,
    rd: &mut Ready,
    out: &mut Vec<Message>,
    app: &mut Applier,
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
            node.on_persisted(batch.durable());
        }
        if let Some(batch) = apply {
            for e in &batch.entries {
                if e.index > app.count_above {
                    app.count += 1;
                    app.bytes += e.data.len() as u64;
                }
            }
            app.applied_index = batch.last_index();
            node.on_applied(batch.applied());
        }
    }
    progressed
}

fn maybe_compact(node: &mut RawNode<MemStorage>, applied_index: u64) {
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
}

impl Default for CoreSingle {
    fn default() -> Self {
        Self::new()
    }
}

impl CoreSingle {
    /// Campaigns and runs until the node leads and applied its empty entry.
    pub fn new() -> Self {
        let mut node = new_node(1, &[1]);
        node.campaign().expect("campaign");
        let mut app = Applier::default();
        let mut rd = Ready::default();
        let mut sink = Vec::new();
        while node.role() != Role::Leader || app.applied_index < node.last_index() {
            assert!(
                handle_ready(&mut node, &mut rd, &mut sink, &mut app),
                "single node stuck"
            );
        }
        app.reset_count();
        CoreSingle {
            node,
            rd,
            app,
            sink,
        }
    }

    /// One round: propose one entry, then run the Ready loop until it is applied.
    pub fn propose_commit_apply_one(&mut self, payload: &[u8]) {
        let id = self
            .node
            .propose(bytes_of(payload))
            .expect("leader accepts");
        while self.app.applied_index < id.index {
            assert!(
                handle_ready(&mut self.node, &mut self.rd, &mut self.sink, &mut self.app),
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

fn bytes_of(payload: &[u8]) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(payload)
}

struct ThreeNodes {
    nodes: Vec<RawNode<MemStorage>>,
    readies: Vec<Ready>,
    apps: Vec<Applier>,
    queue: Vec<Message>,
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
        let mut inbox = Vec::new();
        loop {
            let mut progressed = false;
            let nodes = self.nodes.iter_mut().zip(&mut self.readies);
            for ((node, rd), app) in nodes.zip(self.apps.iter_mut()) {
                progressed |= handle_ready(node, rd, &mut self.queue, app);
            }
            if !self.queue.is_empty() {
                progressed = true;
                mem::swap(&mut inbox, &mut self.queue);
                for m in inbox.drain(..) {
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

    fn maybe_compact(&mut self) {
        let applied = self.apps.iter().map(|a| a.applied_index).min().unwrap_or(0);
        for n in &mut self.nodes {
            maybe_compact(n, applied);
        }
    }
}

/// W3 (and W4 with `batch` > 1): three nodes, node 1 leader, `batch` proposals per round, each
/// round run until applied on all three. Returns the count applied on the slowest node.
pub fn core_three_nodes(entries: u64, payload_len: usize, batch: usize) -> u64 {
    assert!(batch > 0, "batch must be at least 1");
    let mut c = ThreeNodes::new();
    let payload = vec![0xA5u8; payload_len];
    let mut proposed = 0u64;
    while proposed < entries {
        let n = (entries - proposed).min(batch as u64);
        for _ in 0..n {
            c.nodes[0]
                .propose(bytes_of(&payload))
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(core_three_nodes(2_000, 128, 1), 2_000);
        assert_eq!(core_three_nodes(2_000, 128, 64), 2_000);
    }
}
