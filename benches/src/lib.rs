//! Shared workloads for the benchmarks.
//!
//! Each workload is a plain function (or a small struct) so that the criterion benches in
//! `benches/`, the binaries in `src/bin/` and the unit tests here drive exactly the same code.
//!
//! - [`ours`]: raft-core's drivers.
//! - [`rraft`]: the comparison target, tikv/raft-rs 0.7 (`raft` crate) over its own `MemStorage`.
//! - [`measure`]: per-thread CPU time and resident memory, for `perf_table` and `w6_memory`.
//! - `pipeline`: the FIFO of outstanding writes both W5 drivers share (crate-private).
//! - [`w6`]: the peak-memory workload, run in a process of its own.
//! - [`fsync`]: a raft-core node whose log is a real file, for the `e2e_fsync` example.
//!
//! Both libraries get the same configuration (1 MiB per message, 256 inflight messages,
//! election 10 ticks, heartbeat 1, no check-quorum, no pre-vote; raft-rs with its
//! `batch_append` option on, which is off by default and makes its W4 about twice as
//! cheap), the same storage duties (entries and hard state into their in-memory storage,
//! compaction to the applied index every [`rraft::COMPACT_EVERY`] applied entries), the same
//! payload copying (one copy of each payload per proposal) and the same "apply" (count
//! entries, sum their lengths).
//!
//! Where a payload is copied to differs, as each library's API leads: raft-rs's
//! `propose(Vec<u8>, Vec<u8>)` takes an owned vector, so its driver allocates one per
//! proposal; raft-core takes [`bytes::Bytes`], so its driver copies payloads into a shared
//! 64 KiB buffer and hands out slices of it, as a server reading requests into a `BytesMut`
//! would ([`ours::PayloadAlloc`]). `perf_table` also runs raft-core with an allocation per
//! payload, so that the table shows what the choice is worth.
//!
//! # Workloads
//!
//! | name | nodes | per round | criterion bench |
//! | --- | --- | --- | --- |
//! | W1 | 1 | propose 1 entry, run the Ready loop until it is applied | `w1_single` |
//! | W2 | 1 | propose [`BATCH_LARGE`] entries, run the Ready loop until all are applied | `w2_single_batch` |
//! | W3 | 3 | propose 1 entry on node 1, run until applied on all three | `w3_three` |
//! | W4 | 3 | as W3 with [`BATCH_LARGE`] entries per round | `w4_three_batch` |
//! | W5 | 3 | as W4, persistence pipelined (below) | `w5_three_pipelined` |
//! | W6 | 3 | W3 or W4 in a process of its own, peak RSS | `src/bin/w6_memory.rs` |
//!
//! W3 to W6 propose [`ENTRIES_THREE_NODES`] entries of [`PAYLOAD_LEN`] bytes; one run
//! includes building the group and electing node 1. Messages go through one in-memory queue
//! in one thread: each pass handles every node's Readies (node 1, 2, 3), then steps every
//! queued message into its recipient.
//!
//! # W5: the pipelined protocol
//!
//! A node's write is "handed out" when its Ready carries one (raft-core: a `PersistBatch`;
//! raft-rs: a ready with entries, a hard state or a snapshot, passed to
//! `advance_append_async(ready)`) and "completed" when it is reported durable (raft-core:
//! `on_persisted(batch.durable())`; raft-rs: `on_persist_ready(ready.number())`). A write is
//! "synced" when it needs an fsync (raft-core: `batch.sync`; raft-rs: `ready.must_sync()`:
//! entries, a snapshot, a new term or vote), unsynced when it only carries a new commit index.
//! The disk is modelled as a fixed latency counted in rounds.
//!
//! 1. The group is built and node 1 elected with synchronous persistence, as in W3.
//! 2. Handling one Ready: send its messages; write its entries and hard state into the
//!    in-memory storage at once (so that the library can read them back); queue the write,
//!    tagged with the current round, on the node's FIFO of outstanding writes; apply the
//!    committed entries and report them applied at once (raft-rs: `advance_apply()`).
//! 3. Writes complete in FIFO order only. An unsynced write completes at once when nothing
//!    is ahead of it, else right behind the synced write before it.
//! 4. Messages that vouch for a write are sent only after it completes (raft-rs:
//!    `persisted_messages()`, which the driver holds with their ready's write, or with the
//!    newest outstanding write when the ready wrote nothing; raft-core holds them itself and
//!    releases them in a later Ready).
//! 5. Round `r` (from 0): node 1 proposes the next [`BATCH_LARGE`] entries (fewer in the
//!    last round, none once all are proposed); the group runs to quiescence (no Ready on any
//!    node, no message queued); then every node completes each synced write tagged
//!    `r + 1 − L` or earlier, with `L` = [`PERSIST_LATENCY_ROUNDS`], oldest first; the group
//!    runs to quiescence again (writes handed out now are tagged `r` too); storage is
//!    compacted as in W3.
//! 6. The run ends after the first round at whose end every entry is applied on every node.
//!
//! So each node keeps about `L` rounds of writes outstanding (4 synced writes in steady
//! state, for both libraries) while the leader proposes the next round, and the run takes
//! `L − 1` more rounds than W4 has. A latency in rounds, rather than "complete the oldest
//! when `L` are queued", cannot stall: raft-rs sends one append per proposal, so with 64
//! per round its 256-message inflight window fills after 4 rounds, and a follower that
//! receives nothing new would never complete the writes whose acknowledgements the leader
//! waits for. The drivers report what they did in [`PipelineStats`]; the unit tests assert
//! that four synced writes really are outstanding at once.
//!
//! # Micro benchmarks (`benches/micro.rs`)
//!
//! - Committed index for 3, 5 and 7 voters: the leader's progress tracker with the match
//!   indexes of [`matched_of`] (raft-core: `ProgressTracker::committed`; raft-rs:
//!   `ProgressTracker::maximal_committed_index`).
//! - A follower (node 2 of an elected three-node group) steps one append with one
//!   [`PAYLOAD_LEN`]-byte entry at its next index and handles the resulting Ready.
//! - `status()` on the leader of a three-node group.
#![warn(missing_docs)]

pub mod fsync;
pub mod measure;
pub mod ours;
mod pipeline;
pub mod rraft;
pub mod w6;

/// Payload of every proposal, in bytes.
pub const PAYLOAD_LEN: usize = 128;

/// Entries proposed in one three-node run (W3 to W6).
pub const ENTRIES_THREE_NODES: u64 = 100_000;

/// Entries per round in W2, W4 and W5.
pub const BATCH_LARGE: usize = 64;

/// W5: a write completes at the end of the round this many rounds after the one it was
/// handed out in, counting that one: with one write per node per round, 4 are outstanding
/// when the leader proposes.
pub const PERSIST_LATENCY_ROUNDS: u64 = 4;

/// What a pipelined run (W5) did, summed or maximised over the three nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Proposed entries applied on the slowest node.
    pub applied_min: u64,
    /// Most synced writes one node had outstanding at once.
    pub outstanding_max: usize,
    /// Writes handed out (all nodes), synced or not.
    pub writes: u64,
    /// Writes that needed an fsync (entries, a new term or vote, a snapshot).
    pub writes_synced: u64,
    /// Rounds run, the drain rounds after the last proposal included.
    pub rounds: u64,
}

/// The library a measurement runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lib {
    /// This workspace's raft-core.
    RaftCore,
    /// tikv/raft-rs 0.7.
    RaftRs,
}

impl Lib {
    /// Both, in table order.
    pub const ALL: [Lib; 2] = [Lib::RaftCore, Lib::RaftRs];

    /// The command-line and table name.
    pub fn name(self) -> &'static str {
        match self {
            Lib::RaftCore => "raft-core",
            Lib::RaftRs => "raft-rs",
        }
    }

    /// Parses [`Lib::name`].
    pub fn parse(s: &str) -> Option<Lib> {
        Lib::ALL.into_iter().find(|l| l.name() == s)
    }
}

/// The match index the committed-index micro benchmark gives voter `id` of `voters`: a
/// permutation of `1000, 1010, ..` over the ids, so that the values arrive unsorted.
pub fn matched_of(id: u64, voters: u64) -> u64 {
    1000 + 10 * ((2 * id) % voters)
}

/// The committed index of [`matched_of`]'s values: the largest value a majority reaches.
///
/// # Panics
/// If `voters` is even (`2 * id` is then not a permutation).
pub fn committed_of(voters: u64) -> u64 {
    assert!(voters % 2 == 1, "odd voter counts only");
    let quorum = voters / 2 + 1;
    1000 + 10 * (voters - quorum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matched_values_are_a_permutation_and_commit_is_their_majority_value() {
        for voters in [3u64, 5, 7] {
            let mut v: Vec<u64> = (1..=voters).map(|id| matched_of(id, voters)).collect();
            v.sort_unstable();
            let expected: Vec<u64> = (0..voters).map(|k| 1000 + 10 * k).collect();
            assert_eq!(v, expected);
            let quorum = (voters / 2 + 1) as usize;
            let at_least = |x: u64| v.iter().filter(|&&m| m >= x).count();
            let c = committed_of(voters);
            assert!(at_least(c) >= quorum && at_least(c + 1) < quorum);
        }
    }

    #[test]
    fn lib_names_round_trip() {
        for lib in Lib::ALL {
            assert_eq!(Lib::parse(lib.name()), Some(lib));
        }
        assert_eq!(Lib::parse("etcd"), None);
    }
}
