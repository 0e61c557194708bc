//! raft-core: a deterministic, Sans-IO Raft state machine.
//!
//! The library never does I/O. You feed it inputs (`tick`, `step`, `propose`, `campaign`),
//! take a [`Ready`] when it has one, carry out the three things a `Ready` asks (send
//! messages, persist a batch, apply committed entries) and report the last two back with
//! the tokens the batches mint. Time is `tick()`; randomness is a per-node ChaCha seeded from
//! [`Config`]; the same inputs give the same outputs, bit for bit.
//!
//! # The driver loop
//!
//! ```
//! use raft_core::{ConfState, Config, MemStorage, MessageType, RawNode, Ready, SnapshotStatus};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let logger = slog::Logger::root(slog::Discard, slog::o!());
//! let storage = MemStorage::new_with_conf_state(ConfState::with_voters(vec![1]));
//! let mut node = RawNode::new(&Config::new(1), storage, &logger)?;
//! node.campaign()?;
//! let mut proposed = None;
//! let mut applied = Vec::new();
//! // Your transport: here every send succeeds (a single node sends nothing anyway).
//! let send = |_m: &raft_core::Message| -> Result<(), std::io::Error> { Ok(()) };
//! for _round in 0..10 {
//!     // 1. Inputs: ticks from your timer, messages from your network, proposals.
//!     node.tick();
//!     if proposed.is_none() && node.leader() == Some(node.id()) {
//!         proposed = Some(node.propose(b"x=1".to_vec())?);
//!     }
//!     // 2. Output: everything the node wants done, moved out. Completions create work
//!     //    (a durable vote elects a lone voter, an applied change appends the leave-joint
//!     //    entry), so loop while there is some.
//!     while node.has_ready() {
//!         let Ready { messages, persist, apply, read_states: _ } = node.ready();
//!         for m in messages {
//!             // Send to m.to; the network may lose it. Tell the leader how snapshot sends
//!             // end, and which peers could not be reached: an unreported lost MsgSnap leaves
//!             // the peer in snapshot state for ever.
//!             let (to, snap) = (m.to, m.kind() == MessageType::MsgSnap);
//!             match (send(&m), snap) {
//!                 (Ok(()), true) => node.report_snapshot(to, SnapshotStatus::Finish),
//!                 (Err(_), true) => node.report_snapshot(to, SnapshotStatus::Failure),
//!                 (Err(_), false) => node.report_unreachable(to),
//!                 (Ok(()), false) => {}
//!             }
//!         }
//!         if let Some(batch) = persist {
//!             node.storage_mut().persist(&batch)?; // write (and fsync if batch.sync)
//!             node.on_persisted(batch.durable()); // 3. completion, in batch order
//!         }
//!         if let Some(batch) = apply {
//!             applied.extend(batch.entries.iter().map(|e| (e.index, e.term)));
//!             node.on_applied(batch.applied()); // 3. completion
//!         }
//!     }
//! }
//! // A proposal is committed iff an entry with exactly its id is applied.
//! let id = proposed.expect("a single node elects itself");
//! assert!(applied.contains(&(id.index, id.term)));
//! # Ok(())
//! # }
//! ```
//!
//! Beside the loop:
//! - **Restart**: build the node from the durable state with [`Config::applied`] set to what
//!   the application applied. The founding snapshot ([`MemStorage::new_with_conf_state`], at
//!   index 1) counts as applied index 1. If the durable snapshot is newer than the
//!   application (the crash came between installing a snapshot and restoring the application
//!   from it), restore the application from the storage's snapshot first: the node treats
//!   everything up to the snapshot as applied and hands out only what follows.
//! - **Snapshots of the application** need the configuration in effect at their index:
//!   [`MemStorage::create_snapshot`] requires it, and [`ApplyBatch::conf_state_at`] gives it
//!   for any index of an apply batch.
//! - **Held replies**: an acknowledgement or a vote grant leaves once the write it vouches for
//!   is durable, possibly after a later message overwrote that entry in memory. That is
//!   correct (it was true when made), like a delayed packet.
//!
//! # Why vote requests carry the commit index
//!
//! A (pre-)vote request carries the candidate's commit index and the term of its entry there;
//! a voter holding that entry learns that everything up to it is committed (log matching) and
//! applies it once durable. Without it a learner promoted through a joint change could hold
//! the longest log while its applied configuration still made it a learner: it refused every
//! candidate and never campaigned, and the nodes that knew the promotion committed needed its
//! vote, so no leader was ever elected (issue 12 item 1; etcd-io/etcd #12359). The commit
//! index a candidate reports is true whatever its term, so learning it needs no new trust;
//! letting "a voter of a committed configuration" campaign instead would need the very
//! knowledge the stuck learner lacks.
//!
//! A driver on a hot path can keep one `Ready` per node and pass it back to
//! [`RawNode::ready_into`] instead of calling `ready()`: the node then refills it in place and
//! reuses its lists instead of allocating new ones. With [`MemStorage`],
//! [`MemStorage::persist_from`] moves a batch's entries into storage instead of copying them.
//!
//! # From etcd/raft and raft-rs
//!
//! | etcd/raft (Go) | raft-rs (`raft` crate) | raft-core |
//! | --- | --- | --- |
//! | `RawNode.Tick()` | `RawNode::tick()` | [`RawNode::tick`] |
//! | `RawNode.Step(m)` | `RawNode::step(m)` | [`RawNode::step`] → `Result<(), StepError>`; never panics on peer input |
//! | `RawNode.Propose(data)` | `RawNode::propose(ctx, data)` | [`RawNode::propose`] → `Result<EntryId, ProposeError>` |
//! | `RawNode.Campaign()` | `RawNode::campaign()` | [`RawNode::campaign`] |
//! | `HasReady()` / `Ready()` | `has_ready()` / `ready()` | [`RawNode::has_ready`] / [`RawNode::ready`] (moves everything out) |
//! | `Ready.Messages` (+ `MustSync`, async `msgsAfterAppend`) | `messages()` + `persisted_messages()` | [`Ready::messages`]: always safe to send now |
//! | `Ready.Entries`, `HardState`, `Snapshot` | `entries()`, `hs()`, `snapshot()` | [`Ready::persist`]: one [`PersistBatch`] with `sync` |
//! | `Ready.CommittedEntries` | `committed_entries()` (+ `LightReady`) | [`Ready::apply`]: one [`ApplyBatch`] |
//! | `Advance()` / `AdvanceAppend` / `AdvanceApply` | `advance()`, `advance_append()`, `advance_apply()`, `on_persist_ready()` | [`RawNode::on_persisted`]`(batch.durable())` and [`RawNode::on_applied`]`(batch.applied())` |
//! | `Status()` | `status()` | [`RawNode::status`] |
//! | `MemoryStorage` | `MemStorage` (behind a lock) | [`MemStorage`] (plain struct) |
//! | `Config.Rand` (global RNG) | thread-local RNG | [`Config::seed`] (per-node ChaCha) |
//!
//! Membership changes: [`RawNode::propose_conf_change`] (single-step or joint); a change
//! takes effect when its entry is reported applied, and [`ApplyBatch::conf_state`] shows the
//! configuration after the batch ([`ApplyBatch::conf_state_at`]: at any index of it) for the
//! driver's snapshots.
//!
//! # Modules
//!
//! | module | what it holds |
//! | --- | --- |
//! | `raw_node` | [`RawNode`]: inputs, `ready()`, completions, getters |
//! | `raft/` | the role logic, by concern: `mod.rs` (the `Raft` struct, `step`'s dispatch, output), `election.rs`, `replication.rs`, `reads.rs`, `transfer.rs`, `membership.rs`, `validate.rs` (remote input), `completions.rs` |
//! | [`ready`] | [`Ready`], [`PersistBatch`], [`ApplyBatch`] and their completion tokens |
//! | [`log`], [`storage`] | the log over the [`Storage`] trait, [`MemStorage`] |
//! | [`tracker`], [`quorum`], [`confchange`], [`read_only`] | progress per peer, quorum math, the configuration changer, read-index rounds (pure pieces) |
//! | [`wire`] | the prost types of `proto/raft.proto` |
#![warn(missing_docs)]

mod buffers;
pub mod confchange;
pub mod config;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod log;
mod log_unstable;
mod outbox;
pub mod quorum;
mod raft;
mod raw_node;
pub mod read_only;
pub mod ready;
pub mod status;
pub mod storage;
pub mod tracker;
mod types;
pub mod wire;

#[cfg(feature = "planted-bugs")]
pub use config::PlantedBugs;
pub use config::{Config, ConfigError, ReadOnlyOption};
pub use error::{
    ConfChangeError, DropReason, Fault, ForgetLeaderError, NewError, ProposeError, ReadIndexError,
    StepError, TransferError,
};
pub use raft::SnapshotStatus;
pub use raw_node::{CampaignError, RawNode};
pub use read_only::ReadState;
pub use ready::{Applied, ApplyBatch, PersistBatch, Persisted, Ready};
pub use status::{PeerStatus, Role, Status};
pub use storage::{MemStorage, RaftState, Storage, StorageError};
pub use types::EntryId;
pub use wire::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
    Entry, EntryType, HardState, Message, MessageType, Snapshot,
};
