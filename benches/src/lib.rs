//! Shared workloads for the benchmarks.
//!
//! Each workload is a plain function (or a small struct) so that the criterion benches in
//! `benches/` and the unit tests here drive exactly the same code.
//!
//! - [`rraft`]: the comparison target, tikv/raft-rs 0.7 (`raft` crate) over its own `MemStorage`.
//! - raft-core's drivers for the same workloads are added beside it.

pub mod ours;
pub mod rraft;
