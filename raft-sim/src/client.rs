//! Clients of the key-value service: each runs one operation at a time, retries it until it
//! gets an answer, and records the history the linearizability checker reads.
//!
//! ```text
//!   idle ──think──► issue op (seq+1) ──► attempt at a node ──► answer ──► idle
//!                                          │   ▲
//!                 timeout / lost / refused └───┘ retry: same op id, leader hint or another node
//! ```
//!
//! A request reaches a node after a client-link delay. A logged operation is proposed (or
//! answered at once from the session table if it was already applied there); the node answers
//! when it applies an entry carrying the operation's id (whether it proposed it, forwarded it,
//! or another node did on an earlier attempt), or says the proposal was lost when a different
//! entry takes the index `propose` returned. A read, when the seed reads by ReadIndex or
//! lease, is asked with `read_index` and answered once the node has applied the read index.
//! Every answer carries the log index of the state it reflects (see [`crate::staleness`]).
//!
//! Invariants:
//! 1. A client's `seq` grows by one per operation, its `log_seq` by one per logged operation,
//!    and the next operation starts only after the previous one was answered (the state
//!    machine's gap check relies on this).
//! 2. An operation's history record has a return time iff it has a result.

use crate::kv::{Op, OpKind, OpResult};
use crate::linearizability::HistoryOp;
use crate::rng::SimRng;

/// A node's answer to a client attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The operation was applied (or the read served) with this result, on the state as of
    /// this log index.
    Result(OpResult, u64),
    /// Not the leader; try this one (if known).
    Redirect(Option<u64>),
    /// The leader refused the proposal for now (flow control); try again later elsewhere.
    Refused,
    /// The node is busy with a leadership transfer; try it again after a pause.
    Busy,
    /// The proposal's index was taken by another entry; the attempt is over.
    Lost,
}

/// How a client chose the node of an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A leader hint: a redirect, or the hint the client remembered.
    Hint,
    /// Anything else: the first pick, the next node round the ring, the same node again.
    Other,
}

/// The operation a client is waiting for.
#[derive(Clone, Copy, Debug)]
pub struct InFlight {
    /// The operation.
    pub op: Op,
    /// Attempts so far (the current one's number).
    pub attempt: u32,
    /// The node of the current attempt.
    pub node: u64,
    /// How the client chose it.
    pub route: Route,
    /// Its record in the history.
    pub history_index: usize,
}

/// One client.
#[derive(Clone, Debug)]
pub struct Client {
    /// Its id (0-based; also its session slot in the state machine).
    pub id: u32,
    /// The last `seq` issued.
    pub seq: u32,
    /// The last `log_seq` issued.
    pub log_seq: u32,
    /// The operation in flight, if any.
    pub in_flight: Option<InFlight>,
    /// The leader it last heard of.
    pub leader_hint: Option<u64>,
    /// The last node that refused its operation: a stale redirect back to it is not
    /// followed (two cut-off nodes could otherwise bounce a client between them forever).
    pub refused_by: Option<u64>,
    /// Nodes a leader hint led its operation to that then knew no leader or did not answer
    /// (cleared by an answer; at most one entry per node): a hint to one of them is not
    /// followed; the client goes round the ring instead, which still reaches them. (A cut-off
    /// node whose stale hint names a crashed or removed leader just before it in the ring
    /// could otherwise bounce a client between the two forever: the fuzz regression
    /// `regression-stale-hint-ping-pong`.)
    pub dead_ends: Vec<u64>,
    /// The last value it saw per key (for compare-and-set arguments).
    seen: Vec<Option<u64>>,
    /// Whether it may start new operations (off in the liveness phase).
    pub issuing: bool,
    /// The last `log_seq` that was answered.
    pub acked_log_seq: u32,
}

impl Client {
    /// A fresh client for `keys` keys.
    pub fn new(id: u32, keys: u8) -> Client {
        Client {
            id,
            seq: 0,
            log_seq: 0,
            in_flight: None,
            leader_hint: None,
            refused_by: None,
            dead_ends: Vec::new(),
            seen: vec![None; usize::from(keys)],
            issuing: true,
            acked_log_seq: 0,
        }
    }

    /// Draws the next operation: 40% put, 35% get, 25% compare-and-set against the last
    /// value this client saw (so it succeeds often enough to matter). Gets go through the log
    /// only if `logged_reads`.
    pub fn next_op(&mut self, rng: &mut SimRng, logged_reads: bool) -> Op {
        assert!(self.in_flight.is_none(), "one operation at a time");
        self.seq += 1;
        let key = rng.index(self.seen.len()) as u8;
        let unique = (u64::from(self.id) + 1) << 32 | u64::from(self.seq);
        let kind = match rng.weighted(&[40, 35, 25]) {
            0 => OpKind::Put { value: unique },
            1 => OpKind::Get,
            _ => OpKind::Cas {
                expected: self.seen[usize::from(key)].unwrap_or(0),
                new: unique,
            },
        };
        let log_seq = if kind != OpKind::Get || logged_reads {
            self.log_seq += 1;
            self.log_seq
        } else {
            0
        };
        Op {
            client: self.id,
            seq: self.seq,
            log_seq,
            key,
            kind,
        }
    }

    /// Chooses the node for the first attempt: the leader hint if there is one, otherwise a
    /// node of `nodes` (the ones the client knows of) at random.
    ///
    /// # Panics
    /// If `nodes` is empty.
    pub fn choose_node(&mut self, rng: &mut SimRng, nodes: &[u64]) -> u64 {
        if let Some(h) = self.leader_hint
            && nodes.contains(&h)
        {
            return h;
        }
        rng.pick(nodes)
    }

    /// Records that a hint led the operation in flight to `node`, which knew no leader or did
    /// not answer.
    pub fn mark_dead_end(&mut self, node: u64) {
        if !self.dead_ends.contains(&node) {
            self.dead_ends.push(node);
        }
    }

    /// Whether a hint to `node` is not to be followed (see `dead_ends`).
    pub fn is_dead_end(&self, node: u64) -> bool {
        self.dead_ends.contains(&node)
    }

    /// Records the answer to the operation in flight; returns it for the history.
    pub fn complete(&mut self, result: OpResult) -> InFlight {
        let f = self
            .in_flight
            .take()
            .expect("an answer for an operation in flight");
        self.acked_log_seq = self.acked_log_seq.max(f.op.log_seq);
        self.dead_ends.clear();
        let key = usize::from(f.op.key);
        match (f.op.kind, result) {
            (OpKind::Put { value }, _) => self.seen[key] = Some(value),
            (OpKind::Get, OpResult::Value(v)) => self.seen[key] = v,
            (OpKind::Cas { new, .. }, OpResult::Swapped(true)) => self.seen[key] = Some(new),
            _ => {}
        }
        f
    }
}

/// A history record for an operation called at `now_us`.
pub fn history_record(op: &Op, now_us: u64) -> HistoryOp {
    HistoryOp {
        client: op.client,
        key: op.key,
        kind: op.kind,
        call_us: now_us,
        ret_us: None,
        result: None,
        index: None,
    }
}
