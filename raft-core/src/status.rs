//! A snapshot of a node's state for monitoring and tests: role, term, leader, indexes and,
//! on a leader, the progress of every peer.

use crate::tracker::ProgressState;

/// The role a node plays in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Runs a pre-vote: asks whether it could win, without raising its term.
    PreCandidate,
    /// Runs an election in a new term.
    Candidate,
    /// Leads its term.
    Leader,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        })
    }
}

/// What a node knows about itself; built by [`crate::RawNode::status`] or refilled by
/// [`crate::RawNode::status_into`]. The default is an empty status of node 0 (a follower),
/// only meant to be refilled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node's id.
    pub id: u64,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: u64,
    /// Whom it voted for in `term` (0 for nobody).
    pub vote: u64,
    /// The leader it knows of in `term`.
    pub leader: Option<u64>,
    /// Its commit index.
    pub commit: u64,
    /// The last index reported applied.
    pub applied: u64,
    /// Its last log index.
    pub last_index: u64,
    /// On a leader, every tracked node (itself included) in id order; empty otherwise.
    pub progress: Vec<PeerStatus>,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            id: 0,
            role: Role::Follower,
            term: 0,
            vote: 0,
            leader: None,
            commit: 0,
            applied: 0,
            last_index: 0,
            progress: Vec::new(),
        }
    }
}

/// A leader's view of one peer's replication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's id.
    pub id: u64,
    /// Highest index known replicated on it.
    pub matched: u64,
    /// Next index to send it.
    pub next: u64,
    /// Probe, replicate or snapshot.
    pub state: ProgressState,
    /// Whether sending to it is paused by flow control.
    pub paused: bool,
    /// Append messages in flight to it.
    pub inflight_msgs: usize,
    /// Whether it was heard from since the last check-quorum round.
    pub recent_active: bool,
    /// Whether it is a learner.
    pub is_learner: bool,
}
