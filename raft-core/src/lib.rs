//! raft-core: a deterministic, Sans-IO Raft state machine.
#![warn(missing_docs)]

pub mod wire;
pub mod quorum;
pub mod tracker;
pub mod storage;
mod log_unstable;
pub mod log;
mod types;

pub use types::EntryId;
