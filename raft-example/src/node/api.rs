//! What the HTTP layer asks the node task, and what it answers.
//!
//! Requests travel on one bounded channel into the node task, each with a oneshot for the
//! answer. The key-value store itself is shared (`Arc<RwLock<Kv>>`): the node task writes it
//! while applying, the HTTP layer reads it, so a read costs the node task nothing but the
//! ReadIndex round that makes it linearizable.

use crate::kv::{Kv, Member, OpResult};
use crate::metrics::Metrics;
use crate::transport::AddressBook;
use serde::Serialize;
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, oneshot, watch};

/// Requests queued for the node task before the HTTP layer waits.
pub const REQUEST_QUEUE: usize = 4096;

/// A request to the node task.
#[derive(Debug)]
pub enum Request {
    /// Propose a write; answered once its entry (exactly its `EntryId`) is applied.
    Write {
        /// The operation.
        op: crate::kv::Op,
        /// The answer.
        reply: oneshot::Sender<Result<WriteDone, Reject>>,
    },
    /// Confirm a linearizable read: answered with the applied index once the node has
    /// applied at least the read index a heartbeat round confirmed.
    Read {
        /// The answer.
        reply: oneshot::Sender<Result<u64, Reject>>,
    },
    /// The node's status.
    Status {
        /// The answer.
        reply: oneshot::Sender<StatusView>,
    },
    /// Add a member as a learner (promoted to voter once caught up).
    AddMember {
        /// Who.
        member: Member,
        /// The answer: the members once the learner is added.
        reply: oneshot::Sender<Result<Vec<MemberView>, Reject>>,
    },
    /// Remove a member.
    RemoveMember {
        /// Whom.
        id: u64,
        /// The answer: the members once it is removed.
        reply: oneshot::Sender<Result<Vec<MemberView>, Reject>>,
    },
}

/// A write that was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteDone {
    /// What it did.
    pub result: OpResult,
    /// Its entry's index.
    pub index: u64,
    /// Its entry's term.
    pub term: u64,
}

/// Why the node did not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// This node is not the leader (the HTTP layer forwards or redirects).
    #[error("not the leader")]
    NotLeader {
        /// The leader it knows of.
        leader: Option<u64>,
    },
    /// The entry at the write's index is another term's: the write is lost.
    #[error(
        "write lost: entry {index} of term {term} was replaced by term {found_term}'s; it may be \
         retried"
    )]
    Lost {
        /// The write's index.
        index: u64,
        /// The write's term.
        term: u64,
        /// The term of the entry applied there.
        found_term: u64,
    },
    /// The outcome cannot be known here (a snapshot replaced the log around it).
    #[error("indeterminate: {0}")]
    Indeterminate(String),
    /// Refused for now (flow control, a change in flight); retry.
    #[error("busy: {0}")]
    Busy(String),
    /// The request contradicts the cluster (an id with other addresses).
    #[error("{0}")]
    Conflict(String),
    /// No such member.
    #[error("node {0} is not a member")]
    NoSuchMember(u64),
    /// The node is shutting down; the request never reached it (definite).
    #[error("shutting down")]
    ShuttingDown,
    /// The node stopped after taking the request, before answering: it may have taken effect.
    #[error("the node stopped before answering; the request may or may not have taken effect")]
    Stopped,
}

/// One member as `/status` and `/v1/members` list it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberView {
    /// Its id.
    pub id: u64,
    /// Its peer address.
    pub peer_addr: String,
    /// Its HTTP address.
    pub http_addr: String,
    /// Whether it votes (false for a learner).
    pub voter: bool,
}

/// A peer's replication progress, on a leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProgressView {
    /// The peer.
    pub id: u64,
    /// Highest index known replicated on it.
    #[serde(rename = "match")]
    pub matched: u64,
    /// Next index to send it.
    pub next: u64,
    /// "probe", "replicate" or "snapshot".
    pub state: String,
}

/// `GET /status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusView {
    /// This node.
    pub id: u64,
    /// "leader", "follower", "candidate", "pre_candidate" or "learner".
    pub role: &'static str,
    /// Its term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// The leader's HTTP address.
    pub leader_http: Option<String>,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Latest snapshot index.
    pub snapshot_index: u64,
    /// The store's revision.
    pub revision: u64,
    /// Every member.
    pub members: Vec<MemberView>,
    /// Every peer's progress (leaders only).
    pub progress: Vec<ProgressView>,
}

/// What routing needs at every request: who leads, and whether this node is ready.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderView {
    /// The leader in the current term.
    pub leader: Option<u64>,
    /// The last leader known in any term.
    pub last_leader: Option<u64>,
    /// The current term.
    pub term: u64,
    /// Whether this node leads.
    pub is_leader: bool,
    /// Whether it has applied everything it recovered (and is not far behind its commit).
    pub caught_up: bool,
}

/// The HTTP layer's handle on the node.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    /// This node's id.
    pub id: u64,
    /// The request channel.
    pub requests: mpsc::Sender<Request>,
    /// The state machine (read-only for the HTTP layer).
    pub kv: Arc<RwLock<Kv>>,
    /// Who leads.
    pub leader: watch::Receiver<LeaderView>,
    /// Everyone's addresses.
    pub book: AddressBook,
    /// The node's metrics.
    pub metrics: Arc<Metrics>,
}

impl NodeHandle {
    /// Sends `make(reply)` to the node task and waits for the answer.
    ///
    /// # Errors
    /// [`Reject::ShuttingDown`] when the node task is gone before taking the request,
    /// [`Reject::Stopped`] when it stopped before answering.
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, Reject> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(make(tx))
            .await
            .map_err(|_| Reject::ShuttingDown)?;
        rx.await.map_err(|_| Reject::Stopped)
    }

    /// The leader's HTTP address, if a leader is known and in the book.
    pub fn leader_http(&self) -> Option<(u64, String)> {
        let leader = self.leader.borrow().leader?;
        self.book.get(leader).map(|m| (leader, m.http_addr))
    }
}
