//! Durable Raft state as the library reads it: the [`Storage`] trait and an in-memory
//! [`MemStorage`].
//!
//! The library never writes storage itself. The driver writes what a persist batch says
//! ("truncate after `prev`, then append these entries", a hard state, a snapshot) and the
//! library reads it back through [`Storage`] when it needs entries that are no longer in its
//! unstable buffer (see [`crate::log`]). A storage therefore only ever holds what the driver has
//! made durable.
//!
//! The log in storage is a snapshot followed by entries:
//!
//! ```text
//!   compacted        base        entries
//!  ...........  [ index/term ]  [ base+1 ] [ base+2 ] ... [ last ]
//!                first_index-1   first_index               last_index
//! ```
//!
//! Invariants (of [`MemStorage`], and expected of every [`Storage`]):
//! 1. `first_index() == base + 1` and `last_index() == base + number of entries`, so an empty
//!    log has `last_index() == first_index() - 1`.
//! 2. `term(i)` is known exactly for `i` in `[first_index() - 1, last_index()]`; the term of
//!    `first_index() - 1` is the term of the compaction base (the snapshot).
//! 3. Entries are contiguous: the `k`-th stored entry has index `first_index() + k`.
//! 4. The stored snapshot, if one was created or applied, has an index of at most
//!    `last_index()` when it is created; compaction never discards it.
//!
//! Reference: Raft thesis §5.1 (log compaction); etcd-io/raft `storage.go`.

use bytes::Bytes;

use crate::wire::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};

/// Why a [`Storage`] call could not answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageError {
    /// The requested index is below the first available one: it was compacted into a snapshot.
    #[error("index {index} is compacted (first available index is {first_index})")]
    Compacted {
        /// The index asked for.
        index: u64,
        /// The first index still available.
        first_index: u64,
    },
    /// The requested index is above the last index in the log.
    #[error("index {index} is unavailable (last index is {last_index})")]
    Unavailable {
        /// The index asked for.
        index: u64,
        /// The last index in the log.
        last_index: u64,
    },
    /// A snapshot at or below the current one was offered or requested.
    #[error("snapshot at index {index} is out of date (current snapshot index is {current})")]
    SnapshotOutOfDate {
        /// The index of the offered or requested snapshot.
        index: u64,
        /// The index of the snapshot storage already holds.
        current: u64,
    },
    /// No snapshot recent enough exists yet; the caller should retry later.
    #[error("snapshot is temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
    /// An append would leave a hole in the log.
    #[error("append leaves a gap: expected index {expected}, got {got}")]
    LogGap {
        /// The index the next appended entry must have at most (`last_index + 1`).
        expected: u64,
        /// The index of the first entry offered.
        got: u64,
    },
}

/// The state a node restarts from: its hard state and its configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RaftState {
    /// Term, vote and commit index as last persisted.
    pub hard_state: HardState,
    /// The configuration as of the last applied configuration change (or snapshot).
    pub conf_state: ConfState,
}

/// Read access to the durable log, hard state and snapshot of one node.
///
/// The library calls these from its own methods, so they should be fast; an implementation
/// backed by files keeps an index of terms in memory. Errors other than the ones listed on a
/// method are not expected: the library panics on them, because it cannot make progress
/// without its own durable log.
pub trait Storage {
    /// The hard state and configuration to start from.
    ///
    /// # Errors
    /// Implementation-specific; [`MemStorage`] never fails.
    fn initial_state(&self) -> Result<RaftState, StorageError>;

    /// Entries `[lo, hi)`, total payload bytes ([`Entry::payload_bytes`]) at most `max_bytes`,
    /// but always at least one entry if `lo < hi`. The result is a prefix of the range.
    ///
    /// # Errors
    /// [`StorageError::Compacted`] if `lo < first_index()`, [`StorageError::Unavailable`] if
    /// `hi > last_index() + 1`.
    fn entries(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError>;

    /// Appends to `buf` what [`Storage::entries`] returns for the same arguments. The default
    /// calls `entries`; an implementation that copies straight into `buf` saves the node an
    /// allocation per read, because the node reuses its buffers.
    ///
    /// # Errors
    /// As [`Storage::entries`]; `buf` is unchanged then.
    fn entries_into(
        &self,
        lo: u64,
        hi: u64,
        max_bytes: u64,
        buf: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        buf.extend(self.entries(lo, hi, max_bytes)?);
        Ok(())
    }

    /// Term of entry `idx`; valid for `idx` in `[first_index() - 1, last_index()]`
    /// (`first_index() - 1` is the snapshot index and answers with the snapshot term).
    ///
    /// # Errors
    /// [`StorageError::Compacted`] below that range, [`StorageError::Unavailable`] above it.
    fn term(&self, idx: u64) -> Result<u64, StorageError>;

    /// The first index available in the log: the snapshot index + 1.
    ///
    /// # Errors
    /// Implementation-specific; [`MemStorage`] never fails.
    fn first_index(&self) -> Result<u64, StorageError>;

    /// The last index in the log; the snapshot index if there are no entries.
    ///
    /// # Errors
    /// Implementation-specific; [`MemStorage`] never fails.
    fn last_index(&self) -> Result<u64, StorageError>;

    /// The most recent snapshot. `request_index` is the index the leader needs at least
    /// (0 for "any"); `to` is the peer it is for.
    ///
    /// # Errors
    /// [`StorageError::SnapshotTemporarilyUnavailable`] if no snapshot at or above
    /// `request_index` is ready yet; the leader retries later.
    fn snapshot(&self, request_index: u64, to: u64) -> Result<Snapshot, StorageError>;
}

/// A [`Storage`] kept in memory: for tests, the simulator, and as a model for real ones.
///
/// It is a plain struct: the driver that owns the node owns the storage, writes to it through
/// the `&mut self` methods below and lends it to the library for reading.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    conf_state: ConfState,
    /// Index and term of the compaction base (`first_index - 1`).
    base_index: u64,
    base_term: u64,
    /// `entries[k].index == base_index + 1 + k`.
    entries: Vec<Entry>,
    /// The snapshot created or applied last; `None` means "synthesise one at the base".
    snapshot: Option<Snapshot>,
}

impl MemStorage {
    /// An empty storage: no entries, `first_index() == 1`, `last_index() == 0`.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// A founding member's storage: the initial configuration `conf_state` stands as a
    /// snapshot at index 1, term 1 (hard state term 1, commit 1), and the log starts at 2.
    ///
    /// Why a snapshot: a node that joins later starts from [`MemStorage::new`] with no
    /// configuration at all. It cannot rebuild the founding configuration from the log (it is
    /// not in the log), so it must receive a snapshot; because the founders' logs start at 2,
    /// a leader finds index 1 compacted for a joiner and sends it the snapshot, configuration
    /// included. raft-rs bootstraps the same way.
    pub fn new_with_conf_state(conf_state: ConfState) -> MemStorage {
        // The founding snapshot is kept explicitly: it must carry the configuration as of
        // index 1 even after the driver records later configurations with set_conf_state.
        let founding = Snapshot {
            data: Bytes::new(),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(conf_state.clone()),
                index: 1,
                term: 1,
            }),
        };
        MemStorage {
            hard_state: HardState {
                term: 1,
                vote: 0,
                commit: 1,
            },
            conf_state,
            base_index: 1,
            base_term: 1,
            snapshot: Some(founding),
            ..MemStorage::default()
        }
    }

    /// The stored hard state.
    #[inline]
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Replaces the stored hard state.
    #[inline]
    pub fn set_hard_state(&mut self, hard_state: HardState) {
        self.hard_state = hard_state;
    }

    /// The stored configuration.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Replaces the stored configuration.
    pub fn set_conf_state(&mut self, conf_state: ConfState) {
        self.conf_state = conf_state;
    }

    /// Writes `entries` the way a persist batch asks: everything from `entries[0].index` on is
    /// replaced ("truncate after `entries[0].index - 1`, then append"). The part of `entries`
    /// below `first_index()` is already covered by the snapshot and is skipped.
    ///
    /// `entries` must be contiguous; this is checked only in debug builds.
    ///
    /// # Errors
    /// [`StorageError::LogGap`] if `entries[0].index > last_index() + 1`; nothing is changed.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(skip) = self.append_at(entries)? else {
            return Ok(());
        };
        self.entries.extend_from_slice(&entries[skip..]);
        Ok(())
    }

    /// As [`MemStorage::append`], but moves the entries out of `entries` (left empty, its
    /// capacity kept) instead of copying them.
    ///
    /// # Errors
    /// As [`MemStorage::append`]; `entries` is unchanged then.
    pub fn append_from(&mut self, entries: &mut Vec<Entry>) -> Result<(), StorageError> {
        let Some(skip) = self.append_at(entries)? else {
            entries.clear();
            return Ok(());
        };
        if skip == 0 {
            // The usual case: one block move.
            self.entries.append(entries);
        } else {
            self.entries.extend(entries.drain(skip..));
            entries.clear();
        }
        Ok(())
    }

    /// Checks that `entries` connect to the log and truncates the log where they start.
    /// Returns how many leading entries the snapshot already covers (to skip), or `None` if it
    /// covers them all (or there are none).
    #[inline]
    fn append_at(&mut self, entries: &[Entry]) -> Result<Option<usize>, StorageError> {
        let Some(first) = entries.first() else {
            return Ok(None);
        };
        debug_assert!(
            entries.windows(2).all(|w| w[1].index == w[0].index + 1),
            "appended entries must be contiguous"
        );
        let expected = self.last_index_inner() + 1;
        if first.index > expected {
            return Err(StorageError::LogGap {
                expected,
                got: first.index,
            });
        }
        // Skip what the snapshot already covers (usually nothing: the first entry is kept).
        let first_index = self.base_index + 1;
        let skip = if first.index >= first_index {
            0
        } else {
            match entries.iter().position(|e| e.index >= first_index) {
                Some(skip) => skip,
                None => return Ok(None),
            }
        };
        let at = self.position(entries[skip].index);
        self.entries.truncate(at);
        Ok(Some(skip))
    }

    /// Replaces the whole log with `snapshot`: entries are dropped, the base becomes the
    /// snapshot's index and term, the configuration comes from its metadata, and the hard
    /// state's commit index is raised to at least the snapshot index.
    ///
    /// # Errors
    /// [`StorageError::SnapshotOutOfDate`] if the snapshot's index is not above the current
    /// snapshot index (the larger of the base and the last created snapshot); nothing changes.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        let index = snapshot.index();
        let current = self.snapshot_index();
        if index <= current {
            return Err(StorageError::SnapshotOutOfDate { index, current });
        }
        self.base_index = index;
        self.base_term = snapshot.term();
        self.entries.clear();
        self.hard_state.commit = self.hard_state.commit.max(index);
        self.conf_state = snapshot
            .metadata
            .as_ref()
            .and_then(|m| m.conf_state.clone())
            .unwrap_or_default();
        self.snapshot = Some(snapshot);
        Ok(())
    }

    /// Discards the entries up to and including `compact_index`, which becomes the new base
    /// (its term is kept). Compacting to the current base or below is a no-op.
    ///
    /// The caller must only compact what the application has applied (and, for followers that
    /// may need it, what a snapshot covers).
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] if `compact_index > last_index()`.
    pub fn compact(&mut self, compact_index: u64) -> Result<(), StorageError> {
        if compact_index <= self.base_index {
            return Ok(());
        }
        let last_index = self.last_index_inner();
        if compact_index > last_index {
            return Err(StorageError::Unavailable {
                index: compact_index,
                last_index,
            });
        }
        let at = self.position(compact_index);
        self.base_term = self.entries[at].term;
        self.base_index = compact_index;
        self.entries.drain(..=at);
        Ok(())
    }

    /// Records a snapshot of the application's state as of `index` (which must still be in the
    /// log) and returns it. `conf_state` is the configuration in effect at `index`: required,
    /// because the newest one (the stored one) is wrong for an older index. Take it from the
    /// apply batch that applied `index` ([`crate::ApplyBatch::conf_state_at`]) or from the
    /// last one that changed it. The log is not compacted; call [`MemStorage::compact`] for
    /// that.
    ///
    /// # Errors
    /// [`StorageError::SnapshotOutOfDate`] if `index` is below the current snapshot index,
    /// [`StorageError::Unavailable`] if `index > last_index()`.
    pub fn create_snapshot(
        &mut self,
        index: u64,
        conf_state: ConfState,
        data: Bytes,
    ) -> Result<Snapshot, StorageError> {
        let current = self.snapshot_index();
        if index < current {
            return Err(StorageError::SnapshotOutOfDate { index, current });
        }
        let term = self.term(index)?;
        let snapshot = Snapshot {
            data,
            metadata: Some(SnapshotMetadata {
                conf_state: Some(conf_state),
                index,
                term,
            }),
        };
        self.snapshot = Some(snapshot.clone());
        Ok(snapshot)
    }

    /// The index of the snapshot this storage stands on: the larger of the compaction base and
    /// the last created or applied snapshot.
    fn snapshot_index(&self) -> u64 {
        self.snapshot
            .as_ref()
            .map_or(0, Snapshot::index)
            .max(self.base_index)
    }

    #[inline]
    fn last_index_inner(&self) -> u64 {
        self.base_index + self.entries.len() as u64
    }

    /// Position in `entries` of log index `index`, which must be above the base.
    #[inline]
    fn position(&self, index: u64) -> usize {
        debug_assert!(
            index > self.base_index,
            "index {index} is at or below the base"
        );
        // The Vec holds the entries, so their count fits in usize.
        usize::try_from(index - self.base_index - 1).expect("entry position fits in usize")
    }

    /// The stored entries `[lo, hi)`, cut to `max_bytes` of payload but at least one: what
    /// [`Storage::entries`] returns, borrowed.
    #[inline]
    fn stored_range(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<&[Entry], StorageError> {
        assert!(lo <= hi, "entries: invalid range [{lo}, {hi})");
        let first_index = self.base_index + 1;
        if lo < first_index {
            return Err(StorageError::Compacted {
                index: lo,
                first_index,
            });
        }
        let last_index = self.last_index_inner();
        if hi > last_index + 1 {
            return Err(StorageError::Unavailable {
                index: hi - 1,
                last_index,
            });
        }
        if lo == hi {
            return Ok(&[]);
        }
        let range = &self.entries[self.position(lo)..self.position(hi)];
        Ok(&range[..len_within_bytes(range, max_bytes).max(1)])
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<RaftState, StorageError> {
        Ok(RaftState {
            hard_state: self.hard_state,
            conf_state: self.conf_state.clone(),
        })
    }

    /// # Panics
    /// If `lo > hi` (a caller bug).
    #[inline]
    fn entries(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        Ok(self.stored_range(lo, hi, max_bytes)?.to_vec())
    }

    /// # Panics
    /// If `lo > hi` (a caller bug).
    #[inline]
    fn entries_into(
        &self,
        lo: u64,
        hi: u64,
        max_bytes: u64,
        buf: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        buf.extend_from_slice(self.stored_range(lo, hi, max_bytes)?);
        Ok(())
    }

    #[inline]
    fn term(&self, idx: u64) -> Result<u64, StorageError> {
        if idx < self.base_index {
            return Err(StorageError::Compacted {
                index: idx,
                first_index: self.base_index + 1,
            });
        }
        if idx == self.base_index {
            return Ok(self.base_term);
        }
        let last_index = self.last_index_inner();
        if idx > last_index {
            return Err(StorageError::Unavailable {
                index: idx,
                last_index,
            });
        }
        Ok(self.entries[self.position(idx)].term)
    }

    #[inline]
    fn first_index(&self) -> Result<u64, StorageError> {
        Ok(self.base_index + 1)
    }

    #[inline]
    fn last_index(&self) -> Result<u64, StorageError> {
        Ok(self.last_index_inner())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> Result<Snapshot, StorageError> {
        let snapshot = match &self.snapshot {
            Some(snapshot) => snapshot.clone(),
            None => Snapshot {
                data: Bytes::new(),
                metadata: Some(SnapshotMetadata {
                    conf_state: Some(self.conf_state.clone()),
                    index: self.base_index,
                    term: self.base_term,
                }),
            },
        };
        if snapshot.index() < request_index {
            return Err(StorageError::SnapshotTemporarilyUnavailable);
        }
        Ok(snapshot)
    }
}

/// How many leading entries of `ents` fit in `max_bytes` of payload (possibly 0).
///
/// Callers that must return at least one entry take `.max(1)` of the result.
#[inline]
pub(crate) fn len_within_bytes(ents: &[Entry], max_bytes: u64) -> usize {
    let mut total_bytes = 0u64;
    ents.iter()
        .position(|e| {
            total_bytes = total_bytes.saturating_add(e.payload_bytes());
            total_bytes > max_bytes
        })
        .unwrap_or(ents.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen, QuickCheck};

    fn ent(index: u64, term: u64) -> Entry {
        Entry::normal(index, term, vec![0u8; (index % 5) as usize])
    }

    fn ents(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
        (lo..hi).map(|i| ent(i, term)).collect()
    }

    /// Storage with base 3 (term 3) and entries 4, 5 (terms 4, 5).
    fn storage_3_to_5() -> MemStorage {
        let mut s = MemStorage::new();
        s.append(&[ent(1, 1), ent(2, 2), ent(3, 3), ent(4, 4), ent(5, 5)])
            .unwrap();
        s.compact(3).unwrap();
        s
    }

    #[test]
    fn new_storage_is_empty_with_first_index_one() {
        let s = MemStorage::new();
        assert_eq!(s.first_index(), Ok(1));
        assert_eq!(s.last_index(), Ok(0));
        assert_eq!(s.term(0), Ok(0));
        assert_eq!(
            s.term(1),
            Err(StorageError::Unavailable {
                index: 1,
                last_index: 0
            })
        );
        assert_eq!(s.entries(1, 1, u64::MAX), Ok(vec![]));
        let cs = ConfState::with_voters([1, 2, 3]);
        let s = MemStorage::new_with_conf_state(cs.clone());
        assert_eq!(s.initial_state().unwrap().conf_state, cs);
        assert_eq!(
            s.snapshot(0, 2).unwrap().metadata.unwrap().conf_state,
            Some(cs)
        );
    }

    #[test]
    fn term_is_known_from_base_to_last_index() {
        let s = storage_3_to_5();
        assert_eq!(
            s.term(2),
            Err(StorageError::Compacted {
                index: 2,
                first_index: 4
            })
        );
        assert_eq!(s.term(3), Ok(3));
        assert_eq!(s.term(4), Ok(4));
        assert_eq!(s.term(5), Ok(5));
        assert_eq!(
            s.term(6),
            Err(StorageError::Unavailable {
                index: 6,
                last_index: 5
            })
        );
    }

    #[test]
    fn entries_checks_bounds_and_limits_bytes_but_returns_at_least_one() {
        let s = storage_3_to_5();
        assert_eq!(
            s.entries(3, 5, u64::MAX),
            Err(StorageError::Compacted {
                index: 3,
                first_index: 4
            })
        );
        assert_eq!(
            s.entries(4, 7, u64::MAX),
            Err(StorageError::Unavailable {
                index: 6,
                last_index: 5
            })
        );
        assert_eq!(s.entries(4, 6, u64::MAX), Ok(vec![ent(4, 4), ent(5, 5)]));
        // Entry 4 has 4 payload bytes, entry 5 has 0.
        assert_eq!(s.entries(4, 6, 0), Ok(vec![ent(4, 4)]));
        assert_eq!(s.entries(4, 6, 3), Ok(vec![ent(4, 4)]));
        assert_eq!(s.entries(4, 6, 4), Ok(vec![ent(4, 4), ent(5, 5)]));
    }

    #[test]
    fn append_truncates_the_conflicting_suffix() {
        let mut s = storage_3_to_5();
        s.append(&ents(5, 8, 6)).unwrap();
        assert_eq!(
            s.entries(4, 8, u64::MAX),
            Ok(vec![ent(4, 4), ent(5, 6), ent(6, 6), ent(7, 6)])
        );
        s.append(&ents(5, 6, 7)).unwrap();
        assert_eq!(s.last_index(), Ok(5));
        assert_eq!(s.term(5), Ok(7));
    }

    #[test]
    fn append_skips_entries_below_the_first_index() {
        let mut s = storage_3_to_5();
        s.append(&ents(1, 3, 9)).unwrap();
        assert_eq!(s.entries(4, 6, u64::MAX), Ok(vec![ent(4, 4), ent(5, 5)]));
        s.append(&ents(2, 7, 9)).unwrap();
        assert_eq!(s.first_index(), Ok(4));
        assert_eq!(s.term(3), Ok(3));
        assert_eq!(s.entries(4, 7, u64::MAX), Ok(ents(4, 7, 9)));
    }

    #[test]
    fn append_with_a_gap_is_refused_and_changes_nothing() {
        let mut s = storage_3_to_5();
        assert_eq!(
            s.append(&ents(7, 9, 6)),
            Err(StorageError::LogGap {
                expected: 6,
                got: 7
            })
        );
        assert_eq!(s.last_index(), Ok(5));
    }

    #[test]
    fn compact_to_the_base_or_below_is_a_no_op() {
        let mut s = storage_3_to_5();
        assert_eq!(s.compact(2), Ok(()));
        assert_eq!(s.compact(3), Ok(()));
        assert_eq!(s.first_index(), Ok(4));
        assert_eq!(
            s.compact(6),
            Err(StorageError::Unavailable {
                index: 6,
                last_index: 5
            })
        );
        assert_eq!(s.compact(5), Ok(()));
        assert_eq!(s.first_index(), Ok(6));
        assert_eq!(s.last_index(), Ok(5));
        assert_eq!(s.term(5), Ok(5));
    }

    #[test]
    fn create_snapshot_records_the_term_and_does_not_compact() {
        let mut s = storage_3_to_5();
        s.set_conf_state(ConfState::with_voters([1]));
        let snap = s
            .create_snapshot(4, ConfState::with_voters([1]), Bytes::from_static(b"app"))
            .unwrap();
        assert_eq!((snap.index(), snap.term()), (4, 4));
        assert_eq!(
            snap.metadata.as_ref().unwrap().conf_state,
            Some(ConfState::with_voters([1]))
        );
        assert_eq!(s.first_index(), Ok(4));
        assert_eq!(s.snapshot(4, 2), Ok(snap.clone()));
        assert_eq!(
            s.snapshot(5, 2),
            Err(StorageError::SnapshotTemporarilyUnavailable)
        );
        assert_eq!(
            s.create_snapshot(3, ConfState::with_voters([1]), Bytes::new()),
            Err(StorageError::SnapshotOutOfDate {
                index: 3,
                current: 4
            })
        );
        assert_eq!(
            s.create_snapshot(6, ConfState::with_voters([1]), Bytes::new()),
            Err(StorageError::Unavailable {
                index: 6,
                last_index: 5
            })
        );
    }

    #[test]
    fn snapshot_without_a_created_one_stands_at_the_base() {
        let s = storage_3_to_5();
        let snap = s.snapshot(0, 2).unwrap();
        assert_eq!((snap.index(), snap.term()), (3, 3));
        assert!(snap.data.is_empty());
    }

    #[test]
    fn apply_snapshot_replaces_the_log_and_raises_commit() {
        let mut s = storage_3_to_5();
        s.set_hard_state(HardState {
            term: 5,
            vote: 1,
            commit: 4,
        });
        let cs = ConfState::with_voters([1, 2]);
        let snap = Snapshot {
            data: Bytes::from_static(b"state"),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(cs.clone()),
                index: 10,
                term: 7,
            }),
        };
        s.apply_snapshot(snap.clone()).unwrap();
        assert_eq!(s.first_index(), Ok(11));
        assert_eq!(s.last_index(), Ok(10));
        assert_eq!(s.term(10), Ok(7));
        assert_eq!(
            s.hard_state(),
            HardState {
                term: 5,
                vote: 1,
                commit: 10
            }
        );
        assert_eq!(s.conf_state(), &cs);
        assert_eq!(s.snapshot(0, 2), Ok(snap.clone()));
        assert_eq!(
            s.apply_snapshot(snap),
            Err(StorageError::SnapshotOutOfDate {
                index: 10,
                current: 10
            })
        );
        s.append(&ents(11, 13, 8)).unwrap();
        assert_eq!(s.entries(11, 13, u64::MAX), Ok(ents(11, 13, 8)));
    }

    /// One step of the storage model test.
    #[derive(Clone, Debug)]
    enum Op {
        /// Append `len` entries in `term` starting `back` entries before `last_index + 1`.
        Append { back: u8, len: u8, term: u8 },
        /// Compact `ahead` entries past the base.
        Compact { ahead: u8 },
    }

    impl Arbitrary for Op {
        fn arbitrary(g: &mut Gen) -> Op {
            if u8::arbitrary(g) % 4 == 0 {
                Op::Compact {
                    ahead: u8::arbitrary(g) % 8,
                }
            } else {
                Op::Append {
                    back: u8::arbitrary(g) % 8,
                    len: u8::arbitrary(g) % 6,
                    term: u8::arbitrary(g) % 4,
                }
            }
        }
    }

    /// The naive model: every entry ever kept, plus how many of them are compacted.
    struct Model {
        /// `log[i]` has index `i + 1`.
        log: Vec<Entry>,
        base_index: u64,
    }

    fn check_against_model(s: &MemStorage, m: &Model) {
        let last = m.log.len() as u64;
        assert_eq!(s.first_index(), Ok(m.base_index + 1));
        assert_eq!(s.last_index(), Ok(last));
        let base_term = if m.base_index == 0 {
            0
        } else {
            m.log[m.base_index as usize - 1].term
        };
        assert_eq!(s.term(m.base_index), Ok(base_term));
        for i in m.base_index + 1..=last {
            assert_eq!(s.term(i), Ok(m.log[i as usize - 1].term), "term({i})");
        }
        for lo in m.base_index + 1..=last + 1 {
            for hi in lo..=last + 1 {
                let want = &m.log[lo as usize - 1..hi as usize - 1];
                assert_eq!(s.entries(lo, hi, u64::MAX).unwrap(), want);
                let limited = s.entries(lo, hi, 3).unwrap();
                assert!(want.starts_with(&limited));
                assert_eq!(
                    limited.len(),
                    len_within_bytes(want, 3).max(1).min(want.len())
                );
            }
        }
    }

    fn storage_behaves_like_a_vec(ops: Vec<Op>) {
        let mut s = MemStorage::new();
        let mut m = Model {
            log: Vec::new(),
            base_index: 0,
        };
        for op in ops {
            match op {
                Op::Append { back, len, term } => {
                    let last = m.log.len() as u64;
                    let start = (last + 1).saturating_sub(u64::from(back)).max(1);
                    let new = ents(start, start + u64::from(len), u64::from(term));
                    s.append(&new).unwrap();
                    // Entries below the base are covered by the snapshot and stay.
                    let keep_from = start.max(m.base_index + 1);
                    if start + u64::from(len) > keep_from {
                        m.log.truncate(keep_from as usize - 1);
                        m.log
                            .extend_from_slice(&new[(keep_from - start) as usize..]);
                    }
                }
                Op::Compact { ahead } => {
                    let target = m.base_index + u64::from(ahead);
                    let result = s.compact(target);
                    if target > m.log.len() as u64 {
                        assert!(matches!(result, Err(StorageError::Unavailable { .. })));
                    } else {
                        assert_eq!(result, Ok(()));
                        m.base_index = target;
                    }
                }
            }
            check_against_model(&s, &m);
        }
    }

    #[test]
    fn storage_append_and_compact_behave_like_a_vec_model() {
        QuickCheck::new()
            .tests(500)
            .quickcheck(storage_behaves_like_a_vec as fn(Vec<Op>));
    }

    #[test]
    fn append_from_moves_what_append_copies() {
        let cases = [
            ents(6, 9, 6),  // follows the log
            ents(5, 8, 7),  // overwrites a suffix
            ents(2, 8, 8),  // starts below the first index
            ents(1, 3, 9),  // entirely covered by the snapshot
            Vec::new(),     // nothing
            ents(8, 10, 9), // leaves a gap: refused
        ];
        for case in cases {
            let (mut copied, mut moved) = (storage_3_to_5(), storage_3_to_5());
            let mut list = case.clone();
            let result = copied.append(&case);
            assert_eq!(result, moved.append_from(&mut list));
            let all = |s: &MemStorage| {
                let (lo, hi) = (s.first_index().unwrap(), s.last_index().unwrap() + 1);
                (lo, s.term(lo - 1), s.entries(lo, hi, u64::MAX))
            };
            assert_eq!(all(&copied), all(&moved), "case {case:?}");
            if result.is_ok() {
                assert!(list.is_empty(), "the entries were moved out");
            } else {
                assert_eq!(list, case, "a refused append leaves the entries");
            }
        }
    }

    #[test]
    fn entries_into_appends_what_entries_returns() {
        let mut s = storage_3_to_5();
        s.append(&ents(6, 12, 6)).unwrap();
        for (lo, hi, max_bytes) in [
            (4, 12, u64::MAX),
            (4, 12, 5),
            (6, 7, 0),
            (3, 5, 9),
            (9, 13, 1),
        ] {
            let mut buf = vec![ent(100, 1)];
            let got = s.entries_into(lo, hi, max_bytes, &mut buf);
            match s.entries(lo, hi, max_bytes) {
                Ok(want) => {
                    assert_eq!(got, Ok(()));
                    assert_eq!(buf[1..], want[..], "[{lo}, {hi}) within {max_bytes}");
                }
                Err(e) => {
                    assert_eq!(got, Err(e));
                    assert_eq!(buf, vec![ent(100, 1)], "an error leaves the buffer");
                }
            }
        }
    }
}
