//! A simulated disk: writes land in a volatile cache at once and become durable when an
//! fsync that covers them completes.
//!
//! ```text
//!   write(batch) ──► cache (volatile, in order) ── fsync covering it ──► durable
//!                         │
//!                       crash: lost, except (with torn writes) a random prefix of its
//!                       records, the record after which may be torn and is discarded
//! ```
//!
//! A persist batch is a sequence of records in the order a write-ahead log would hold them:
//! a snapshot received from the leader, one per entry ("truncate after `index - 1`, then
//! append"), then the hard state. Recovery replays whole records only, so what survives a
//! crash is always the durable state followed by a prefix of the cached records.
//!
//! The durable state also holds the node's own snapshots: the state machine as of an applied
//! index, with the configuration in effect there ([`Disk::snapshot`]). A snapshot is written
//! the way a real node writes one (temp file, fsync, rename), so it is durable at once and
//! atomic: a crash keeps all of it or none. Compaction follows it and is durable at once too.
//!
//! Invariants:
//! 1. Writes reach the durable state in the order they were written.
//! 2. The durable term and commit never go backwards (checked at every durable write and at
//!    crash recovery; a violation is returned to the caller).
//! 3. The cache holds the batches not yet durable, in order; a batch leaves it only when
//!    an fsync covering it completes or the node crashes.
//! 4. The batches the driver reported with `on_persisted` are a prefix of the cache (plus
//!    those already durable): reports go in batch order.

use raft_core::{ConfState, MemStorage, PersistBatch};
use std::collections::VecDeque;

/// What a crash left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashLoss {
    /// Cached records that survived (replayed at recovery).
    pub survived: usize,
    /// Cached records lost.
    pub lost: usize,
    /// Whether the first lost record was torn (half written, discarded by recovery).
    pub torn: bool,
}

/// One node's disk.
#[derive(Debug)]
pub struct Disk {
    durable: MemStorage,
    /// Written batches not yet durable, oldest first.
    cache: VecDeque<PersistBatch>,
    /// How many batches at the front of `cache` the driver has reported (reports go in
    /// order, so the reported ones are always a prefix).
    reported: usize,
    /// When the fsync in progress (if any) completes; fsyncs run one at a time.
    fsync_busy_until_us: u64,
}

impl Disk {
    /// An empty disk of a founding member of `conf_state`.
    pub fn new(conf_state: ConfState) -> Disk {
        Disk {
            durable: MemStorage::new_with_conf_state(conf_state),
            cache: VecDeque::new(),
            reported: 0,
            fsync_busy_until_us: 0,
        }
    }

    /// An empty disk of a node that joins later: no log and no configuration until a leader
    /// sends it a snapshot.
    pub fn empty() -> Disk {
        Disk {
            durable: MemStorage::new(),
            cache: VecDeque::new(),
            reported: 0,
            fsync_busy_until_us: 0,
        }
    }

    /// Makes durable a snapshot of the state machine at `index` (`data`) with `conf`, the
    /// configuration in effect there, which also becomes the configuration a restart starts
    /// from; then compacts the durable log up to `compact_to`.
    ///
    /// # Errors
    /// If the durable log does not hold `index` (only possible when the driver reported writes
    /// that were never made durable, as the planted `ack_before_durable` bug does).
    ///
    /// # Panics
    /// If `compact_to > index`.
    pub fn snapshot(
        &mut self,
        index: u64,
        conf: ConfState,
        data: bytes::Bytes,
        compact_to: u64,
    ) -> Result<(), String> {
        assert!(compact_to <= index, "compaction stays within the snapshot");
        self.durable
            .create_snapshot(index, conf.clone(), data)
            .map_err(|e| format!("durable snapshot at {index} refused: {e}"))?;
        self.durable.set_conf_state(conf);
        self.durable
            .compact(compact_to)
            .map_err(|e| format!("durable compaction to {compact_to} refused: {e}"))
    }

    /// Replaces the durable configuration alone (the planted `conf_state_ahead_of_snapshot`
    /// bug: a correct driver stores it only with a snapshot of the same index).
    pub fn set_conf_state(&mut self, conf: ConfState) {
        self.durable.set_conf_state(conf);
    }

    /// The durable state (what a crash cannot take away).
    pub fn durable(&self) -> &MemStorage {
        &self.durable
    }

    /// Writes `batch` to the cache.
    pub fn write(&mut self, batch: PersistBatch) {
        debug_assert!(
            self.cache.back().is_none_or(|b| b.seq() < batch.seq()),
            "writes are issued in batch order"
        );
        self.cache.push_back(batch);
    }

    /// Starts an fsync at `now_us` that takes `latency_us` once the disk is free; returns when
    /// it completes. Fsyncs complete in the order they were started.
    pub fn start_fsync(&mut self, now_us: u64, latency_us: u64) -> u64 {
        let done = now_us.max(self.fsync_busy_until_us) + latency_us;
        self.fsync_busy_until_us = done;
        done
    }

    /// The first cached batch the driver has not reported yet.
    pub fn first_unreported(&self) -> Option<&PersistBatch> {
        self.cache.get(self.reported)
    }

    /// Marks the first unreported batch reported.
    ///
    /// # Panics
    /// If every cached batch is already reported.
    pub fn mark_reported(&mut self) {
        assert!(self.reported < self.cache.len(), "a cached batch to report");
        self.reported += 1;
    }

    /// Makes the oldest cached batch durable if its sequence number is at most `seq`, and
    /// returns it with whether the driver had reported it already.
    ///
    /// # Errors
    /// A description of the broken invariant if the durable term or commit would go back.
    pub fn sync_next(&mut self, seq: u64) -> Result<Option<(PersistBatch, bool)>, String> {
        if self.cache.front().is_none_or(|b| b.seq() > seq) {
            return Ok(None);
        }
        let b = self.cache.pop_front().expect("front checked above");
        let reported = self.reported > 0;
        self.reported = self.reported.saturating_sub(1);
        replay(&mut self.durable, &b, usize::MAX)?;
        Ok(Some((b, reported)))
    }

    /// Crashes the disk: the cache is lost except, with `torn_writes`, its first
    /// `survive_records` records (clamped to what it holds). Returns what was lost.
    ///
    /// # Errors
    /// A description of the broken invariant if a surviving record would move the durable
    /// term or commit back.
    pub fn crash(&mut self, survive_records: usize, torn: bool) -> Result<CrashLoss, String> {
        let total = self.cached_records();
        let survived = survive_records.min(total);
        let mut left = survived;
        self.reported = 0;
        for b in std::mem::take(&mut self.cache) {
            if left == 0 {
                break;
            }
            left -= replay(&mut self.durable, &b, left)?;
        }
        self.fsync_busy_until_us = 0;
        Ok(CrashLoss {
            survived,
            lost: total - survived,
            torn: torn && survived < total,
        })
    }

    /// Number of records the cache holds.
    pub fn cached_records(&self) -> usize {
        self.cache.iter().map(records).sum()
    }
}

fn records(b: &PersistBatch) -> usize {
    usize::from(b.snapshot.is_some()) + b.entries.len() + usize::from(b.hard_state.is_some())
}

/// Replays at most `max` records of `b` (snapshot, entries, hard state, in that order) onto
/// `s`; returns how many.
fn replay(s: &mut MemStorage, b: &PersistBatch, max: usize) -> Result<usize, String> {
    let mut done = 0;
    if let Some(snap) = &b.snapshot {
        if done == max {
            return Ok(done);
        }
        s.apply_snapshot(snap.clone())
            .map_err(|e| format!("durable snapshot refused: {e}"))?;
        done += 1;
    }
    let n = b.entries.len().min(max - done);
    if n > 0 {
        s.append(&b.entries[..n])
            .map_err(|e| format!("durable log refused a batch: {e}"))?;
        done += n;
    }
    if let Some(hs) = b.hard_state
        && done < max
    {
        let old = s.hard_state();
        if hs.term < old.term {
            return Err(format!(
                "durable term went back from {} to {}",
                old.term, hs.term
            ));
        }
        if hs.commit < old.commit {
            return Err(format!(
                "durable commit went back from {} to {}",
                old.commit, hs.commit
            ));
        }
        s.set_hard_state(hs);
        done += 1;
    }
    Ok(done)
}
