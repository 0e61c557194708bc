//! Error values of the node's inputs, one enum per operation.
//!
//! Remote input that is malformed, misaddressed or impossible is answered with a
//! [`StepError`] and leaves the node unchanged; it never panics the node (DESIGN §5).

use crate::config::ConfigError;
use crate::storage::StorageError;
use crate::wire::MessageType;
use thiserror::Error;

/// Why a message from the network was refused. The node's state is unchanged.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepError {
    /// The message kind is unknown to this build, or is the protobuf zero value.
    #[error("unknown message type {msg_type}")]
    UnknownMessageType {
        /// The raw kind.
        msg_type: i32,
    },
    /// The message is addressed to another node.
    #[error("message for node {to} delivered to node {id}")]
    Misaddressed {
        /// The addressee named in the message.
        to: u64,
        /// This node.
        id: u64,
    },
    /// The sender id is 0 or this node's own id.
    #[error("invalid sender {from}")]
    InvalidSender {
        /// The sender named in the message.
        from: u64,
    },
    /// A response came from a peer this node does not track.
    #[error("{kind:?} from untracked peer {from}")]
    UnknownPeer {
        /// The sender.
        from: u64,
        /// The message kind.
        kind: MessageType,
    },
    /// A kind that must carry a term arrived with term 0.
    #[error("{kind:?} without a term")]
    MissingTerm {
        /// The message kind.
        kind: MessageType,
    },
    /// The message's fields contradict each other or the Raft rules.
    #[error("malformed {kind:?}: {fault}")]
    Malformed {
        /// The message kind.
        kind: MessageType,
        /// What is wrong with it.
        fault: Fault,
    },
    /// The message asks to change entries this node knows to be committed.
    #[error("append would overwrite committed index {index} (committed {committed})")]
    ConflictBelowCommit {
        /// The first conflicting index.
        index: u64,
        /// This node's commit index.
        committed: u64,
    },
    /// The message vouches for a commit index past this node's log.
    #[error("commit {commit} beyond last index {last_index}")]
    CommitBeyondLog {
        /// The commit index in the message.
        commit: u64,
        /// This node's last index.
        last_index: u64,
    },
    /// A follower acknowledged an index the leader never had.
    #[error("acknowledgement of index {index} beyond leader's last index {last_index}")]
    AckBeyondLog {
        /// The acknowledged index.
        index: u64,
        /// The leader's last index.
        last_index: u64,
    },
    /// This build does not handle the kind yet (for example snapshots).
    #[error("{kind:?} is not supported by this build")]
    Unsupported {
        /// The message kind.
        kind: MessageType,
    },
    /// The log could not be read while handling the message.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

impl StepError {
    /// Whether the message is merely stale: honest traffic that lost its meaning, such as a
    /// response from a peer removed from the configuration. Drivers may log these quietly;
    /// every other error means a peer sent something no correct node sends.
    pub fn is_stale(&self) -> bool {
        matches!(self, StepError::UnknownPeer { .. })
    }
}

/// What makes a message malformed.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Entry `position` of the message does not have index `expected`.
    #[error("entry {position} has index {got}, expected {expected}")]
    EntryIndex {
        /// Position in `entries`.
        position: usize,
        /// The index the entry should have.
        expected: u64,
        /// The index it has.
        got: u64,
    },
    /// Entry terms must not decrease, start at or above `log_term`, nor exceed the
    /// message's term.
    #[error("entry at index {index} has impossible term {term}")]
    EntryTerm {
        /// The entry's index.
        index: u64,
        /// The entry's term.
        term: u64,
    },
    /// An entry kind this build does not know.
    #[error("entry at index {index} has unknown type {entry_type}")]
    EntryType {
        /// The entry's index.
        index: u64,
        /// The raw kind.
        entry_type: i32,
    },
    /// `log_term` exceeds the message's term, or is non-zero at index 0.
    #[error("log term {log_term} impossible at index {index} in term {term}")]
    LogTerm {
        /// The previous index.
        index: u64,
        /// The claimed term of it.
        log_term: u64,
        /// The message's term.
        term: u64,
    },
    /// The commit index exceeds the last index the message carries.
    #[error("commit {commit} beyond the message's last index {last_index}")]
    CommitNotVouched {
        /// The commit index in the message.
        commit: u64,
        /// The last index in the message.
        last_index: u64,
    },
    /// A forwarded proposal carries no entries.
    #[error("no entries")]
    NoEntries,
    /// A snapshot message without a snapshot, metadata or configuration, or at index 0.
    #[error("snapshot missing or incomplete")]
    SnapshotIncomplete,
    /// A configuration that contradicts itself (an id in two roles, id 0, ...).
    #[error("invalid configuration")]
    InvalidConfState,
    /// A term or an index above the largest a node accepts (`u64::MAX / 2`), or one the next
    /// index after would not fit in a `u64`. The node adds to the numbers it accepts (a
    /// campaign adds one to the term, an append one per entry to the last index), so no
    /// number from the network may leave it without room to do so.
    #[error("{field} {value} is too large")]
    NumberTooLarge {
        /// The message field (`term`, `index`, `entry index`, `snapshot index`, ...).
        field: &'static str,
        /// Its value.
        value: u64,
    },
}

/// Why a proposal was not appended.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProposeError {
    /// This node is not the leader and will not forward; retry at `leader_hint` if known.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this node believes in, if any.
        leader_hint: Option<u64>,
    },
    /// The proposal was forwarded to `leader` as a message in the next Ready. It has no
    /// id here, so its fate is unknown to this node: the client should retry on a timeout.
    #[error("forwarded to leader {leader}")]
    Forwarded {
        /// The leader it was sent to.
        leader: u64,
    },
    /// The leader refused the proposal.
    #[error("proposal dropped: {reason}")]
    Dropped {
        /// Why.
        reason: DropReason,
    },
}

/// Why a leader refused a proposal.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Uncommitted entries already reach `uncommitted_bytes_max`.
    #[error("uncommitted bytes at the bound")]
    UncommittedBytesMax,
    /// The leader is not in the configuration it leads.
    #[error("leader is not a member")]
    NotMember,
    /// A leadership transfer is in progress.
    #[error("leadership transfer in progress")]
    TransferInProgress,
}

/// Why a membership change was refused. Never silently turned into an empty entry.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfChangeError {
    /// Only the leader proposes membership changes (they are not forwarded).
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this node believes in, if any.
        leader_hint: Option<u64>,
    },
    /// A change is in flight (or this new leader has not applied its first entry yet).
    #[error("a configuration change at index {index} is not applied yet")]
    Pending {
        /// Index of the change (or first entry) that must be applied first.
        index: u64,
    },
    /// A leadership transfer is in progress.
    #[error("leadership transfer in progress")]
    TransferInProgress,
    /// The change is invalid against the current configuration.
    #[error("invalid change: {0}")]
    Invalid(#[from] crate::confchange::ChangeError),
    /// The leader refused the entry (flow control).
    #[error("dropped: {reason}")]
    Dropped {
        /// Why.
        reason: DropReason,
    },
}

/// Why a read-index request was refused.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadIndexError {
    /// No leader is known to forward the request to.
    #[error("no leader known")]
    NoLeader,
    /// Lease reads are refused while leadership is being transferred.
    #[error("leadership transfer in progress")]
    TransferInProgress,
    /// `reads_pending_max` requests already wait for confirmation.
    #[error("too many pending reads")]
    TooManyPending,
}

/// Why a leadership transfer was refused.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferError {
    /// Only the leader transfers leadership.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this node believes in, if any.
        leader_hint: Option<u64>,
    },
    /// The leader cannot transfer to itself.
    #[error("transfer to self")]
    ToSelf,
    /// The target is not in the configuration.
    #[error("node {id} is not in the configuration")]
    UnknownNode {
        /// The target.
        id: u64,
    },
    /// A learner cannot lead.
    #[error("node {id} is a learner")]
    Learner {
        /// The target.
        id: u64,
    },
}

/// Why `forget_leader` was refused.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForgetLeaderError {
    /// With lease reads the leader counts on followers refusing votes while they hear from
    /// it; forgetting it would break that.
    #[error("refused under lease-based reads")]
    LeaseBasedReads,
    /// Only a follower forgets its leader.
    #[error("not a follower")]
    NotFollower,
}

/// Why a node could not be built.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NewError {
    /// The configuration is invalid.
    #[error("config: {0}")]
    Config(#[from] ConfigError),
    /// Storage could not be read.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The durable state contradicts itself.
    #[error("durable commit {commit} beyond last index {last_index}")]
    CommitBeyondLog {
        /// The stored commit index.
        commit: u64,
        /// The stored last index.
        last_index: u64,
    },
    /// `Config::applied` is past the durable commit index.
    #[error("applied {applied} beyond commit {commit}")]
    AppliedBeyondCommit {
        /// The configured applied index.
        applied: u64,
        /// The stored commit index.
        commit: u64,
    },
}
