//! Clients of the key-value service: each runs one operation at a time, retries it until it
//! gets an answer, and records the history the linearizability checker reads.
//!
//! ```text
//!   idle ──think──► issue op (seq+1) ──► attempt at a node ──► answer ──► idle
//!                                          │   ▲
//!                 timeout / lost / refused └───┘ retry: same op id, leader hint or another node
//! ```
//!
//! A request reaches a node after a client-link delay; the node proposes the operation (or
//! answers at once from its session table if the operation was already applied there). The
//! node answers when it applies an entry carrying the operation's id (whether it proposed
//! it, forwarded it, or another node did on an earlier attempt), or says the proposal was lost
//! when a different entry takes the index `propose` returned.
//!
//! Invariants:
//! 1. A client's `seq` grows by one per operation and the next operation starts only after the
//!    previous one was answered (the state machine's gap check relies on this).
//! 2. An operation's history record has a return time iff it has a result.

use crate::kv::{Op, OpKind, OpResult};
use crate::linearizability::HistoryOp;
use crate::rng::SimRng;

/// A node's answer to a client attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The operation was applied with this result.
    Result(OpResult),
    /// Not the leader; try this one (if known).
    Redirect(Option<u64>),
    /// The leader refused the proposal for now; try again later.
    Refused,
    /// The proposal's index was taken by another entry; the attempt is over.
    Lost,
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
    /// The operation in flight, if any.
    pub in_flight: Option<InFlight>,
    /// The leader it last heard of.
    pub leader_hint: Option<u64>,
    /// The last value it saw per key (for compare-and-set arguments).
    seen: Vec<Option<u64>>,
    /// Whether it may start new operations (off in the liveness phase).
    pub issuing: bool,
    /// The last `seq` that was answered.
    pub acked_seq: u32,
}

impl Client {
    /// A fresh client for `keys` keys.
    pub fn new(id: u32, keys: u8) -> Client {
        Client {
            id,
            seq: 0,
            in_flight: None,
            leader_hint: None,
            seen: vec![None; usize::from(keys)],
            issuing: true,
            acked_seq: 0,
        }
    }

    /// Draws the next operation: 40% put, 35% get, 25% compare-and-set against the last
    /// value this client saw (so it succeeds often enough to matter).
    pub fn next_op(&mut self, rng: &mut SimRng) -> Op {
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
        Op {
            client: self.id,
            seq: self.seq,
            key,
            kind,
        }
    }

    /// Chooses the node for the next attempt: the leader hint if there is one and it is
    /// not the node that just failed, otherwise another node at random.
    pub fn choose_node(&mut self, rng: &mut SimRng, nodes: u64, avoid: Option<u64>) -> u64 {
        if let Some(h) = self.leader_hint
            && Some(h) != avoid
        {
            return h;
        }
        loop {
            let n = rng.range(1, nodes);
            if Some(n) != avoid || nodes == 1 {
                return n;
            }
        }
    }

    /// Records the answer to the operation in flight; returns it for the history.
    pub fn complete(&mut self, result: OpResult) -> InFlight {
        let f = self
            .in_flight
            .take()
            .expect("an answer for an operation in flight");
        self.acked_seq = f.op.seq;
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
    }
}
