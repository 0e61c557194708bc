//! raft-core: a deterministic, Sans-IO Raft state machine.
#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod log;
mod log_unstable;
mod outbox;
pub mod quorum;
mod raft;
mod raw_node;
pub mod ready;
pub mod status;
pub mod storage;
pub mod tracker;
mod types;
pub mod wire;

#[cfg(feature = "planted-bugs")]
pub use config::PlantedBugs;
pub use config::{Config, ConfigError};
pub use error::{DropReason, Fault, NewError, ProposeError, StepError};
pub use raw_node::{CampaignError, RawNode};
pub use ready::{Applied, ApplyBatch, PersistBatch, Persisted, Ready};
pub use status::{PeerStatus, Role, Status};
pub use storage::{MemStorage, RaftState, Storage, StorageError};
pub use types::EntryId;
pub use wire::{ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot};
