//! What a node's driver reports about its steps, for the checkers: the vocabulary between
//! [`crate::node`] and [`crate::checker`], so that neither imports the other.
//!
//! ```text
//!   world ──► node ── Observation ──► &mut dyn Observer  (the world plugs in the checker)
//!     │                                      ▲
//!     └──► checker ── implements Observer ───┘
//! ```
//!
//! A node reports two kinds of things. Its effects on the world (messages, fsyncs, client
//! answers) go into [`crate::node::Effects`], which the world carries out after the step. Its
//! observations go to an [`Observer`] at the moment they happen, because most of them borrow
//! the node's live state: the checker reads the log the step left (`Stepped`), the durable
//! state a message leaves against (`Released`), the entries of the batch just handed out.
//! Buffering them for later would mean copying logs on every step. The world decides who
//! observes: it passes its checker as the observer of every step it runs.
//!
//! Between events the world hands the checker a [`NodeState`] per node slot for the checks
//! that look at the whole cluster at once (`Checker::check_new_commits`).
//!
//! Invariants:
//! 1. This module imports nothing from the simulator: only raft-core types.
//! 2. An observation names the node it is about by id (1-based); `now_us` is the step's time.

use raft_core::{ConfState, Entry, MemStorage, Message, RawNode};
use std::fmt;
use std::rc::Rc;

/// A property the simulator checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Property {
    /// At most one leader per term.
    ElectionSafety,
    /// A leader never overwrites or deletes entries of its log.
    LeaderAppendOnly,
    /// Equal (index, term) means equal entries and equal prefixes.
    LogMatching,
    /// A leader holds every entry committed in earlier terms.
    LeaderCompleteness,
    /// No two nodes commit or apply different entries at one index.
    StateMachineSafety,
    /// Term and commit never go backwards (in memory, and durably across restarts).
    Monotonicity,
    /// A committed entry is durable on a quorum.
    CommittedDurableOnQuorum,
    /// Acknowledgements and vote grants leave only after the state they vouch for is durable.
    DurableBeforeSend,
    /// snapshot ≤ applied ≤ commit ≤ last index.
    IndexOrder,
    /// An honest message was refused by `step` (a raft-core bug).
    HonestMessageRefused,
    /// A message did not survive protobuf encode/decode unchanged.
    WireRoundTrip,
    /// raft-core panicked (an invariant or a contract assertion).
    CorePanic,
    /// An acknowledged client operation is missing from the state machine.
    LostWrite,
    /// The client history has no linearization.
    Linearizability,
    /// Two live nodes at the same applied index hold different states.
    StateDivergence,
    /// The liveness phase did not elect a leader or converge within its bound.
    Liveness,
    /// An operation saw an older state than one acknowledged before it began.
    StaleRead,
    /// The configurations applied disagree, take an illegal step, or a change was accepted
    /// while another was in flight.
    ConfigSafety,
    /// An entry handed out for applying (or snapshotted) is not durable locally.
    AppliedDurable,
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Property::ElectionSafety => "election safety",
            Property::LeaderAppendOnly => "leader append-only",
            Property::LogMatching => "log matching",
            Property::LeaderCompleteness => "leader completeness",
            Property::StateMachineSafety => "state machine safety",
            Property::Monotonicity => "term/commit monotonicity",
            Property::CommittedDurableOnQuorum => "committed entry durable on a quorum",
            Property::DurableBeforeSend => "durable before send",
            Property::IndexOrder => "applied <= commit <= last index, snapshot <= commit",
            Property::HonestMessageRefused => "honest message refused",
            Property::WireRoundTrip => "wire round trip",
            Property::CorePanic => "raft-core panic",
            Property::LostWrite => "acknowledged write lost",
            Property::Linearizability => "linearizability",
            Property::StateDivergence => "identical state at equal applied index",
            Property::Liveness => "liveness",
            Property::StaleRead => "read freshness",
            Property::ConfigSafety => "configuration safety",
            Property::AppliedDurable => "applied entries are durable",
        })
    }
}

/// One thing a node's driver saw or did, reported as it happens.
pub enum Observation<'a> {
    /// The node took a step (an input or a completion); this is its state after it.
    /// `conf` is the configuration in force as the driver applied it.
    Stepped {
        /// The running node.
        raw: &'a RawNode<MemStorage>,
        /// The last index applied to its state machine.
        applied: u64,
        /// The configuration in effect (shared: the checker keeps the one in force when an
        /// index was committed).
        conf: &'a Rc<ConfState>,
    },
    /// The node (re)started from its durable state: its views of term and commit start over.
    Started {
        /// The node just built.
        raw: &'a RawNode<MemStorage>,
    },
    /// A message leaves the node, which holds `durable` on its disk at that moment.
    Released {
        /// The message.
        msg: &'a Message,
        /// The node's durable state.
        durable: &'a MemStorage,
    },
    /// The node hands the entries of a persist batch to its disk.
    Written {
        /// The batch's entries.
        entries: &'a [Entry],
        /// The term, in the node's log, of the entry before the first one.
        prev_term: u64,
    },
    /// The node applies the entries of an apply batch.
    Applied {
        /// The batch's entries.
        entries: &'a [Entry],
    },
    /// The node applied the configuration change at `index`, which gave `conf`.
    ConfApplied {
        /// The change's index.
        index: u64,
        /// The configuration after it.
        conf: &'a ConfState,
    },
    /// The node holds configuration `conf` at `index` (after a restart, or restoring a
    /// snapshot).
    ConfAt {
        /// The index its state machine is at.
        index: u64,
        /// The configuration it holds there.
        conf: &'a ConfState,
    },
    /// The node snapshotted its state machine (`data`) at `index`/`term`.
    SnapshotMade {
        /// The snapshot's index.
        index: u64,
        /// The term of the entry at that index.
        term: u64,
        /// The state machine.
        data: &'a [u8],
    },
    /// The node restores a snapshot a leader sent.
    SnapshotRestored {
        /// The snapshot's index.
        index: u64,
        /// The term of the entry at that index.
        term: u64,
        /// The state machine.
        data: &'a [u8],
    },
    /// The driver itself saw a property break (a check only the driver can make: a refused
    /// honest message, an apply batch that is not durable, a disk that went back, ...).
    Broken {
        /// The property.
        property: Property,
        /// What was seen.
        detail: String,
    },
}

/// Receives the observations of a node's steps.
pub trait Observer {
    /// Node `node` (its id) reports `what` at `now_us`.
    fn observe(&mut self, node: u64, now_us: u64, what: Observation<'_>);
}

/// A node slot as the cluster-wide checks see it between events.
#[derive(Clone, Copy)]
pub struct NodeState<'a> {
    /// Started and not retired (it may be crashed or paused). Spare slots never started and
    /// retired nodes take no part in elections.
    pub started: bool,
    /// The running node; `None` while crashed, before a spare starts, and once retired.
    pub raw: Option<&'a RawNode<MemStorage>>,
    /// Its durable state (survives crashes).
    pub durable: &'a MemStorage,
    /// The configuration in effect, as the driver applied it.
    pub conf: &'a ConfState,
    /// The last index applied to its state machine.
    pub applied: u64,
}
