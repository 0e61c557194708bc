//! The Raft log of one node: what storage holds durably, followed by what is still unstable,
//! with the commit and apply cursors over it.
//!
//! ```text
//!   snapshot        storage (durable)                unstable (being persisted)
//!  [..first-1] [first ........ persisted] [offset ............................ last]
//!                    applied <= applying <= committed <= last
//!                    handed to apply: (applying, min(committed, persisted)]
//! ```
//!
//! Reads ([`RaftLog::term`], [`RaftLog::slice`]) consult the unstable part first, because it
//! supersedes storage: an entry overwritten by a new leader is still in storage until the next
//! persist batch rewrites it. Entries are handed to the application only once they are
//! committed *and* durable locally (DESIGN.md §2 rule 4).
//!
//! Entries that become durable are usually handed to apply soon after. Rather than dropping
//! them from the unstable part and copying them back from storage then, the log keeps them
//! (up to [`APPLY_CACHE_MAX`]) and moves them into the apply batch: they are exactly what the
//! persist batch wrote to storage.
//!
//! Invariants (checked by [`RaftLog::check_invariants`]):
//! 1. `applied <= applying <= committed <= last_index()`.
//! 2. `first_index() - 1 <= committed`, and `first_index() - 1 <= applied` unless a snapshot is
//!    waiting to be applied (then `applying < first_index() - 1`, and no entries are handed
//!    to apply until it is).
//! 3. Storage and unstable entries leave no gap: the unstable offset is at most storage's
//!    `last_index() + 1` (unless an unstable snapshot replaces the whole log).
//! 4. `committed` never decreases, and no append truncates at or below it.
//! 5. Log terms do not decrease with the index (Raft's log matching), which
//!    [`RaftLog::find_conflict_by_term`] relies on.
//! 6. The kept durable entries are contiguous, above `applying` and below the unstable offset,
//!    and equal to what storage holds at their indexes (an append that overwrites storage
//!    drops them from its first index on; a snapshot drops them all).
//!
//! Reference: Raft paper §5.3; etcd-io/raft `log.go`.

use crate::EntryId;
use crate::log_unstable::Unstable;
use crate::storage::{Storage, StorageError, len_within_bytes};
use crate::wire::{Entry, Snapshot};

/// The most durable entries kept for the next apply batches (see the module docs). Beyond it,
/// apply batches read from storage: a bound on the memory the log holds besides storage.
pub const APPLY_CACHE_MAX: usize = 1024;

/// The log of one node: storage, the unstable suffix, and the commit and apply cursors.
///
/// The cursors are public for reading; change them only through [`RaftLog::commit_to`],
/// [`RaftLog::applying_to`], [`RaftLog::applied_to`] and [`RaftLog::restore`], which keep the
/// invariants.
#[derive(Debug)]
pub struct RaftLog<S: Storage> {
    store: S,
    unstable: Unstable,
    /// The highest index known to be committed (on a quorum's durable logs).
    pub committed: u64,
    /// The highest index handed to the application to apply.
    pub applying: u64,
    /// The highest index the application reported applied.
    pub applied: u64,
    /// Durable entries not yet handed to apply (invariant 6). Usually handed out all at once,
    /// so a `Vec` that is swapped out whole beats a ring buffer.
    to_apply: Vec<Entry>,
}

impl<S: Storage> RaftLog<S> {
    /// A log over `store`: all of storage is durable, nothing is unstable, and the cursors
    /// start at the snapshot index (the caller raises `committed` from the hard state).
    ///
    /// # Errors
    /// Whatever `store` reports for `first_index` or `last_index`.
    pub fn new(store: S) -> Result<RaftLog<S>, StorageError> {
        let first_index = store.first_index()?;
        let last_index = store.last_index()?;
        let base = first_index - 1;
        Ok(RaftLog {
            store,
            unstable: Unstable::new(last_index + 1),
            committed: base,
            applying: base,
            applied: base,
            to_apply: Vec::new(),
        })
    }

    /// The storage, for reading.
    #[inline]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The storage, for the driver's writes.
    #[inline]
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The first index in the log (the snapshot index + 1).
    ///
    /// # Panics
    /// If storage cannot report its first index.
    #[inline]
    pub fn first_index(&self) -> u64 {
        self.unstable.maybe_first_index().unwrap_or_else(|| {
            self.store
                .first_index()
                .expect("storage must report its first index")
        })
    }

    /// The last index in the log (the snapshot index if there are no entries).
    ///
    /// # Panics
    /// If storage cannot report its last index.
    #[inline]
    pub fn last_index(&self) -> u64 {
        self.unstable.maybe_last_index().unwrap_or_else(|| {
            self.store
                .last_index()
                .expect("storage must report its last index")
        })
    }

    /// The term of entry `idx`. Index 0 (before the log) has term 0.
    ///
    /// # Errors
    /// [`StorageError::Compacted`] below `first_index() - 1`, [`StorageError::Unavailable`]
    /// above `last_index()`, or what storage reports.
    #[inline]
    pub fn term(&self, idx: u64) -> Result<u64, StorageError> {
        // The common case first: an unstable entry answers for itself. Unstable entries lie
        // within [first_index(), last_index()], so the checks below could not refuse it.
        if let Some(term) = self.unstable.entry_term(idx) {
            return Ok(term);
        }
        if idx == 0 {
            return Ok(0);
        }
        if idx < self.unstable.offset && self.unstable.snapshot.is_none() {
            // Below the unstable entries storage answers, and its bounds are the log's: its
            // first index is the log's, and the unstable entries follow its last one.
            let first_index = self
                .store
                .first_index()
                .expect("storage must report its first index");
            if idx + 1 >= first_index {
                return self.store.term(idx);
            }
        }
        let first_index = self.first_index();
        if idx < first_index - 1 {
            return Err(StorageError::Compacted {
                index: idx,
                first_index,
            });
        }
        let last_index = self.last_index();
        if idx > last_index {
            return Err(StorageError::Unavailable {
                index: idx,
                last_index,
            });
        }
        match self.unstable.maybe_term(idx) {
            Some(term) => Ok(term),
            None => self.store.term(idx),
        }
    }

    /// The id of the last entry (or of the snapshot, if there are no entries).
    ///
    /// # Panics
    /// If the term of the last index is not available (a broken storage).
    #[inline]
    pub fn last_entry_id(&self) -> EntryId {
        let index = self.last_index();
        let term = self
            .term(index)
            .expect("the term of the last index is always available");
        EntryId { index, term }
    }

    /// Whether the log holds an entry with exactly this id.
    #[inline]
    pub fn match_term(&self, id: EntryId) -> bool {
        self.term(id.index) == Ok(id.term)
    }

    /// Whether a candidate whose last entry is `candidate_last` is at least as up to date as
    /// this log (Raft §5.4.1): a later last term, or the same last term and at least as long.
    pub fn is_up_to_date(&self, candidate_last: EntryId) -> bool {
        let ours = self.last_entry_id();
        candidate_last.term > ours.term
            || (candidate_last.term == ours.term && candidate_last.index >= ours.index)
    }

    /// The index of the first entry of `ents` whose term differs from ours or that is past
    /// our last index; 0 if all match. `ents` must be contiguous.
    ///
    /// Entries below our first index are compacted, hence committed and applied, and count as
    /// matching: by log matching a leader's entry there cannot differ.
    pub fn find_conflict(&self, ents: &[Entry]) -> u64 {
        let base = self.first_index() - 1;
        ents.iter()
            .find(|e| e.index >= base && !self.match_term(EntryId::new(e.index, e.term)))
            .map_or(0, |e| e.index)
    }

    /// For fast backtracking (etcd `findConflictByTerm`): the largest index `<= index` whose
    /// term is `<= term`, with that term. `index` above the last index is treated as the last
    /// index. If every available entry up to `index` has a larger term, the answer is the
    /// index just below the available range with term 0 ("unknown, may match").
    pub fn find_conflict_by_term(&self, index: u64, term: u64) -> (u64, u64) {
        let hi = index.min(self.last_index());
        let lo = self.first_index() - 1;
        if hi < lo {
            // `index` is compacted: its term is unknown.
            return (hi, 0);
        }
        let term_at = |i: u64| {
            self.term(i)
                .expect("terms in [first_index - 1, last] are known")
        };
        if term_at(lo) > term {
            return (lo.saturating_sub(1), 0);
        }
        // Terms do not decrease with the index, so binary search for the last index in
        // [lo, hi] whose term is <= `term`. Invariant: term(lo) <= term.
        let (mut lo, mut hi) = (lo, hi);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if term_at(mid) <= term {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        (lo, term_at(lo))
    }

    /// Writes `ents` over the log: truncates after `ents[0].index - 1` and appends. Returns the
    /// new last index. `ents` must be contiguous and follow the log without a gap.
    ///
    /// # Panics
    /// If `ents[0].index - 1 < committed` (a committed entry would be overwritten) or `ents`
    /// would leave a gap: the caller checks both, so either is a bug.
    pub fn append(&mut self, ents: &[Entry]) -> u64 {
        let Some(first) = ents.first() else {
            return self.last_index();
        };
        self.check_append_at(first.index);
        self.forget_to_apply_from(first.index);
        self.unstable.truncate_and_append(ents);
        self.last_index()
    }

    /// As [`RaftLog::append`], but moves the payloads out of `ents` instead of sharing them
    /// (each entry of `ents` keeps its index, term and type, with empty data). The node's own
    /// proposals and a follower's received entries are owned already: moving them saves a
    /// reference-count round trip per entry.
    ///
    /// # Panics
    /// As [`RaftLog::append`].
    pub fn append_from(&mut self, ents: &mut [Entry]) -> u64 {
        let Some(first) = ents.first() else {
            return self.last_index();
        };
        self.check_append_at(first.index);
        self.forget_to_apply_from(first.index);
        self.unstable.truncate_and_append_from(ents);
        self.last_index()
    }

    /// Drops the kept durable entries from `index` on: an append from there overwrites them
    /// in storage.
    #[inline]
    fn forget_to_apply_from(&mut self, index: u64) {
        if let Some(front) = self.to_apply.first() {
            let keep = index.saturating_sub(front.index);
            self.to_apply
                .truncate(usize::try_from(keep).unwrap_or(usize::MAX));
        }
    }

    /// Panics unless entries starting at `first_index` may be written: after the commit index
    /// and without a gap.
    #[inline]
    fn check_append_at(&self, first_index: u64) {
        assert!(first_index > 0, "append of an entry with index 0");
        let after = first_index - 1;
        assert!(
            after >= self.committed,
            "append after {after} would overwrite committed entries (committed {})",
            self.committed
        );
        assert!(
            after <= self.last_index(),
            "append after {after} leaves a gap (last index {})",
            self.last_index()
        );
    }

    /// Entries `[lo, hi)` with total payload at most `max_bytes` (but at least one entry if
    /// `lo < hi`), read from storage and then from the unstable part.
    ///
    /// # Errors
    /// [`StorageError::Compacted`] if `lo < first_index()`, [`StorageError::Unavailable`] if
    /// `hi > last_index() + 1`, or what storage reports.
    ///
    /// # Panics
    /// If `lo > hi`, or storage returns something other than a non-empty prefix of the range.
    pub fn slice(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        let mut ents = Vec::new();
        self.slice_into(lo, hi, max_bytes, &mut ents)?;
        Ok(ents)
    }

    /// As [`RaftLog::slice`], appending the entries to `buf` (which the node reuses).
    ///
    /// # Errors
    /// As [`RaftLog::slice`]; `buf` is unchanged then.
    ///
    /// # Panics
    /// As [`RaftLog::slice`].
    pub(crate) fn slice_into(
        &self,
        lo: u64,
        hi: u64,
        max_bytes: u64,
        buf: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        assert!(lo <= hi, "slice: invalid range [{lo}, {hi})");
        let first_index = self.first_index();
        if lo < first_index {
            return Err(StorageError::Compacted {
                index: lo,
                first_index,
            });
        }
        let last_index = self.last_index();
        if hi > last_index + 1 {
            return Err(StorageError::Unavailable {
                index: hi - 1,
                last_index,
            });
        }
        if lo == hi {
            return Ok(());
        }
        let offset = self.unstable.offset;
        let base = buf.len();
        let used_bytes = if lo < offset {
            let stored_hi = hi.min(offset);
            self.store.entries_into(lo, stored_hi, max_bytes, buf)?;
            let ents = &buf[base..];
            let got = ents.len() as u64;
            assert!(
                got >= 1 && got <= stored_hi - lo && ents[0].index == lo,
                "storage returned {got} entries from {:?} for [{lo}, {stored_hi})",
                ents.first().map(|e| e.index)
            );
            if lo + got < stored_hi || stored_hi == hi {
                // The byte limit was reached in storage, or the range ends there.
                return Ok(());
            }
            ents.iter().map(Entry::payload_bytes).sum()
        } else {
            0
        };
        let rest = self.unstable.slice(lo.max(offset), hi);
        let mut take = len_within_bytes(rest, max_bytes.saturating_sub(used_bytes));
        if buf.len() == base {
            take = take.max(1);
        } else if used_bytes > max_bytes {
            take = 0;
        }
        buf.extend_from_slice(&rest[..take]);
        Ok(())
    }

    /// Entries from `lo` to the last index, with total payload at most `max_bytes` (but at
    /// least one entry if `lo <= last_index()`).
    ///
    /// # Errors
    /// As [`RaftLog::slice`].
    pub fn entries(&self, lo: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        let mut ents = Vec::new();
        self.entries_into(lo, max_bytes, &mut ents)?;
        Ok(ents)
    }

    /// As [`RaftLog::entries`], appending the entries to `buf` (which the node reuses).
    ///
    /// # Errors
    /// As [`RaftLog::slice`]; `buf` is unchanged then.
    pub(crate) fn entries_into(
        &self,
        lo: u64,
        max_bytes: u64,
        buf: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        let last_index = self.last_index();
        if lo > last_index {
            return Ok(());
        }
        self.slice_into(lo, last_index + 1, max_bytes, buf)
    }

    /// Raises the commit index to `idx`; a lower `idx` is ignored.
    ///
    /// # Panics
    /// If `idx > last_index()`: the caller must never commit what the log does not hold.
    #[inline]
    pub fn commit_to(&mut self, idx: u64) {
        if idx <= self.committed {
            return;
        }
        assert!(
            idx <= self.last_index(),
            "commit_to({idx}) is past the last index {}",
            self.last_index()
        );
        self.committed = idx;
    }

    /// Commits up to `id` if it is above the commit index and the log holds exactly that
    /// entry. Returns whether the commit index moved.
    #[inline]
    pub fn maybe_commit(&mut self, id: EntryId) -> bool {
        if id.index > self.committed && self.match_term(id) {
            self.commit_to(id.index);
            true
        } else {
            false
        }
    }

    /// The highest index durable locally. Entries below the unstable offset are in storage;
    /// while an unstable snapshot is pending, nothing from its index on is durable.
    ///
    /// This can go down: when a new leader overwrites a suffix, the overwritten entries stop
    /// counting until their replacement is durable. While a snapshot is pending the value
    /// only says that the snapshot is not durable; the log before it is being replaced, so
    /// nothing should be acknowledged on its strength (and no entries are handed to apply).
    #[inline]
    pub fn persisted_index(&self) -> u64 {
        match &self.unstable.snapshot {
            Some(snapshot) => snapshot.index().saturating_sub(1),
            None => self.unstable.offset - 1,
        }
    }

    /// Unstable entries not yet handed to a persist batch.
    #[inline]
    pub fn next_unstable_entries(&self) -> &[Entry] {
        self.unstable.next_entries()
    }

    /// The unstable snapshot, if not yet handed to a persist batch.
    #[inline]
    pub fn next_unstable_snapshot(&self) -> Option<&Snapshot> {
        self.unstable.next_snapshot()
    }

    /// Whether there is an unstable snapshot or entries not yet handed to a persist batch.
    #[inline]
    pub fn has_next_unstable(&self) -> bool {
        self.unstable.has_next()
    }

    /// Marks everything [`RaftLog::next_unstable_entries`] and
    /// [`RaftLog::next_unstable_snapshot`] return as handed to a persist batch.
    #[inline]
    pub fn accept_unstable(&mut self) {
        self.unstable.accept_in_progress();
    }

    /// A persist batch ending with entry `id` is durable. Ignored if the log no longer holds
    /// `id` in its unstable part (a stale completion from before an overwrite).
    ///
    /// # Panics
    /// If the entry is found but a pending unstable snapshot before it is not reported
    /// durable yet (batches are durable in order).
    #[inline]
    pub fn stable_to(&mut self, id: EntryId) {
        // Kept for the apply batches to come (invariant 6): contiguous, and only while there
        // is room. They are above `applying`: only durable entries are handed to apply.
        let to_apply = &mut self.to_apply;
        self.unstable.stable_to_with(id, |e| {
            if to_apply.last().is_some_and(|b| b.index + 1 != e.index) {
                to_apply.clear();
            }
            if to_apply.len() < APPLY_CACHE_MAX {
                to_apply.push(e);
            }
        });
    }

    /// The unstable snapshot at `index` is durable. Ignored if the pending snapshot is
    /// another one.
    #[inline]
    pub fn stable_snap_to(&mut self, index: u64) {
        self.unstable.stable_snap_to(index);
    }

    /// Whether [`RaftLog::next_committed_entries`] would return anything.
    #[inline]
    pub fn has_next_committed_entries(&self) -> bool {
        self.next_committed_range().is_some()
    }

    /// Committed, durable entries not yet handed to apply: `(applying, min(committed,
    /// persisted_index())]`, total payload at most `max_bytes` (but at least one). Empty while
    /// a snapshot is waiting to be persisted or applied: it comes first.
    ///
    /// # Panics
    /// If storage cannot produce entries the log says it holds.
    pub fn next_committed_entries(&self, max_bytes: u64) -> Vec<Entry> {
        match self.next_committed_range() {
            Some((lo, hi)) => self
                .slice(lo, hi, max_bytes)
                .expect("committed, durable entries above applying are in the log"),
            None => Vec::new(),
        }
    }

    /// As [`RaftLog::next_committed_entries`], appending the entries to `buf`, and taking
    /// them from the kept durable entries when those hold them (the caller hands them to
    /// apply: see [`RaftLog::applying_to`]).
    ///
    /// # Panics
    /// As [`RaftLog::next_committed_entries`].
    pub(crate) fn next_committed_entries_into(&mut self, max_bytes: u64, buf: &mut Vec<Entry>) {
        if let Some((lo, hi)) = self.next_committed_range()
            && !self.take_to_apply(lo, hi, max_bytes, buf)
        {
            self.slice_into(lo, hi, max_bytes, buf)
                .expect("committed, durable entries above applying are in the log");
        }
    }

    /// Moves into `buf` what [`RaftLog::slice`] would return for `[lo, hi)` within
    /// `max_bytes` (a prefix within the byte limit, at least one entry), from the kept
    /// durable entries, if they hold all of it. Returns whether they did (if not, nothing
    /// moved).
    #[inline]
    fn take_to_apply(&mut self, lo: u64, hi: u64, max_bytes: u64, buf: &mut Vec<Entry>) -> bool {
        if self.to_apply.first().is_none_or(|e| e.index != lo) {
            return false;
        }
        let wanted = usize::try_from(hi - lo).unwrap_or(usize::MAX);
        let held = &self.to_apply[..wanted.min(self.to_apply.len())];
        let fit = len_within_bytes(held, max_bytes);
        if fit == held.len() && held.len() < wanted {
            // All that is held fits: the answer may go on past it, in storage.
            return false;
        }
        let take = fit.max(1);
        if take == self.to_apply.len() && buf.is_empty() {
            // The usual case: all of them, into an empty list. Swapping hands over the whole
            // list; the (recycled) empty one keeps the next entries.
            std::mem::swap(buf, &mut self.to_apply);
        } else {
            buf.extend(self.to_apply.drain(..take));
        }
        true
    }

    /// Records that entries up to `idx` were handed to the application.
    ///
    /// # Panics
    /// If `idx` is below `applying` or above `committed`.
    #[inline]
    pub fn applying_to(&mut self, idx: u64) {
        assert!(
            self.applying <= idx && idx <= self.committed,
            "applying_to({idx}) must be in [applying {}, committed {}]",
            self.applying,
            self.committed
        );
        self.applying = idx;
        self.forget_to_apply_up_to(idx);
    }

    /// Records that the application applied entries up to `idx`. Also raises `applying`, so a
    /// snapshot can be reported applied without being reported applying first.
    ///
    /// # Panics
    /// If `idx` is below `applied` or above `committed`.
    #[inline]
    pub fn applied_to(&mut self, idx: u64) {
        assert!(
            self.applied <= idx && idx <= self.committed,
            "applied_to({idx}) must be in [applied {}, committed {}]",
            self.applied,
            self.committed
        );
        self.applied = idx;
        self.applying = self.applying.max(idx);
        self.forget_to_apply_up_to(idx);
    }

    /// Drops the kept durable entries up to `index`: they were handed to apply (from storage,
    /// or with a snapshot).
    #[inline]
    fn forget_to_apply_up_to(&mut self, index: u64) {
        let n = self.to_apply.partition_point(|e| e.index <= index);
        if n > 0 {
            self.to_apply.drain(..n);
        }
    }

    /// Replaces the log with `snapshot` (received from a leader): it becomes the unstable
    /// snapshot, unstable entries are dropped and `committed` moves to its index. The
    /// application cursors stay until the snapshot is applied.
    ///
    /// # Panics
    /// If the snapshot is below the commit index: the caller must reject such snapshots.
    pub fn restore(&mut self, snapshot: Snapshot) {
        let index = snapshot.index();
        assert!(
            index >= self.committed,
            "restore of snapshot {index} below committed {}",
            self.committed
        );
        self.unstable.restore(snapshot);
        self.to_apply.clear();
        self.committed = index;
    }

    /// The snapshot received from a leader and not yet durable, if any.
    #[inline]
    pub fn unstable_snapshot(&self) -> Option<&Snapshot> {
        self.unstable.snapshot.as_ref()
    }

    /// Panics if an invariant from the module docs is broken.
    pub fn check_invariants(&self) {
        self.unstable.check_invariants();
        let first_index = self.first_index();
        let last_index = self.last_index();
        assert!(
            self.applied <= self.applying
                && self.applying <= self.committed
                && self.committed <= last_index,
            "applied {} <= applying {} <= committed {} <= last {last_index}",
            self.applied,
            self.applying,
            self.committed
        );
        assert!(
            first_index - 1 <= self.committed,
            "committed {} is below the snapshot {}",
            self.committed,
            first_index - 1
        );
        // `applied` may lag behind the snapshot index while a received snapshot waits to be
        // handed out (`applying` below it) or is being applied (`applying` at it, `applied`
        // below until `on_applied`); the log cannot tell these apart from a driver that
        // compacted past what it applied, so that is checked by the driver, not here.
        if self.unstable.snapshot.is_none() {
            let stored_last = self
                .store
                .last_index()
                .expect("storage must report its last index");
            assert!(
                self.unstable.offset <= stored_last + 1,
                "unstable offset {} leaves a gap after storage's last index {stored_last}",
                self.unstable.offset
            );
        }
        if let (Some(front), Some(back)) = (self.to_apply.first(), self.to_apply.last()) {
            assert!(
                self.to_apply
                    .iter()
                    .zip(front.index..)
                    .all(|(e, i)| e.index == i),
                "kept durable entries are contiguous"
            );
            assert!(
                self.applying < front.index && back.index < self.unstable.offset,
                "kept durable entries [{}, {}] lie in (applying {}, unstable offset {})",
                front.index,
                back.index,
                self.applying,
                self.unstable.offset
            );
            // What storage can still answer for must be what is kept.
            if let Ok(stored) = self.store.entries(front.index, back.index + 1, u64::MAX) {
                assert!(
                    stored.iter().eq(self.to_apply.iter().take(stored.len())),
                    "kept durable entries are what storage holds"
                );
            }
        }
    }

    /// The range `[lo, hi)` of committed, durable entries to hand to apply, if any.
    #[inline]
    fn next_committed_range(&self) -> Option<(u64, u64)> {
        if self.unstable.snapshot.is_some() {
            return None;
        }
        let lo = self.applying + 1;
        // The range first (usually empty: asked before every Ready), then the snapshot.
        let hi = self.committed.min(self.persisted_index()) + 1;
        if lo >= hi || lo < self.first_index() {
            // Nothing new, or a snapshot is durable but not yet applied: it goes first.
            return None;
        }
        Some((lo, hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;
    use crate::wire::SnapshotMetadata;
    use quickcheck::{Arbitrary, Gen, QuickCheck};

    /// An entry whose payload size depends on its id, so byte limits cut at varied places.
    fn ent(index: u64, term: u64) -> Entry {
        Entry::normal(
            index,
            term,
            vec![b'x'; ((index * 7 + term * 3) % 11) as usize],
        )
    }

    /// Entries with these terms, from index `first` on.
    fn ents_with_terms(first: u64, terms: &[u64]) -> Vec<Entry> {
        terms.iter().zip(first..).map(|(&t, i)| ent(i, t)).collect()
    }

    fn snap(index: u64, term: u64) -> Snapshot {
        Snapshot {
            data: bytes::Bytes::new(),
            metadata: Some(SnapshotMetadata {
                conf_state: None,
                index,
                term,
            }),
        }
    }

    /// A log whose storage holds entries 1..=n with `terms`, all durable.
    fn stored_log(terms: &[u64]) -> RaftLog<MemStorage> {
        let mut store = MemStorage::new();
        store.append(&ents_with_terms(1, terms)).unwrap();
        RaftLog::new(store).unwrap()
    }

    /// Hands every unstable entry to a batch, writes it to storage and reports it durable.
    fn persist_all(log: &mut RaftLog<MemStorage>) {
        let snapshot = log.next_unstable_snapshot().cloned();
        let batch = log.next_unstable_entries().to_vec();
        log.accept_unstable();
        if let Some(s) = snapshot {
            log.store_mut().apply_snapshot(s.clone()).unwrap();
            log.stable_snap_to(s.index());
        }
        if let Some(last) = batch.last() {
            log.store_mut().append(&batch).unwrap();
            log.stable_to(EntryId::new(last.index, last.term));
        }
    }

    #[test]
    fn new_log_starts_at_the_storage_snapshot_with_nothing_unstable() {
        let mut store = MemStorage::new();
        store.append(&ents_with_terms(1, &[1, 1, 2, 2])).unwrap();
        store.compact(2).unwrap();
        let log = RaftLog::new(store).unwrap();
        assert_eq!((log.first_index(), log.last_index()), (3, 4));
        assert_eq!((log.committed, log.applying, log.applied), (2, 2, 2));
        assert_eq!(log.persisted_index(), 4);
        assert!(!log.has_next_unstable());
        assert_eq!(log.last_entry_id(), EntryId::new(4, 2));
        log.check_invariants();
    }

    #[test]
    fn term_answers_from_the_snapshot_to_the_last_index_and_errs_outside() {
        let mut store = MemStorage::new();
        store.apply_snapshot(snap(5, 3)).unwrap();
        store.append(&ents_with_terms(6, &[3, 4])).unwrap();
        let mut log = RaftLog::new(store).unwrap();
        assert_eq!(log.term(0), Ok(0), "index 0 is before every log");
        assert_eq!(
            log.term(4),
            Err(StorageError::Compacted {
                index: 4,
                first_index: 6
            })
        );
        assert_eq!(
            log.term(5),
            Ok(3),
            "first_index - 1 answers with the snapshot term"
        );
        assert_eq!(log.term(7), Ok(4));
        assert_eq!(
            log.term(8),
            Err(StorageError::Unavailable {
                index: 8,
                last_index: 7
            })
        );
        // An unstable snapshot takes over: the storage log before it is gone.
        log.restore(snap(10, 6));
        assert_eq!((log.first_index(), log.last_index()), (11, 10));
        assert_eq!(log.term(10), Ok(6));
        assert_eq!(
            log.term(7),
            Err(StorageError::Compacted {
                index: 7,
                first_index: 11
            })
        );
        assert_eq!(
            log.term(11),
            Err(StorageError::Unavailable {
                index: 11,
                last_index: 10
            })
        );
        assert_eq!(log.last_entry_id(), EntryId::new(10, 6));
        log.check_invariants();
    }

    #[test]
    fn unstable_entries_shadow_the_storage_entries_they_overwrite() {
        let mut log = stored_log(&[1, 1, 1, 1]);
        log.commit_to(2);
        assert_eq!(log.append(&ents_with_terms(3, &[2])), 3);
        assert_eq!(log.term(3), Ok(2));
        assert_eq!(
            log.term(4),
            Err(StorageError::Unavailable {
                index: 4,
                last_index: 3
            })
        );
        assert_eq!(
            log.persisted_index(),
            2,
            "storage's 3 and 4 are about to be overwritten"
        );
        assert_eq!(log.entries(1, u64::MAX), Ok(ents_with_terms(1, &[1, 1, 2])));
        log.check_invariants();
    }

    #[test]
    fn find_conflict_returns_the_first_mismatch_or_new_entry() {
        let log = stored_log(&[1, 2, 3]);
        let cases: [(Vec<Entry>, u64); 8] = [
            (vec![], 0),
            (ents_with_terms(1, &[1, 2, 3]), 0),
            (ents_with_terms(2, &[2, 3]), 0),
            (ents_with_terms(3, &[3]), 0),
            (ents_with_terms(2, &[2, 3, 4, 4]), 4),
            (ents_with_terms(4, &[4, 4]), 4),
            (ents_with_terms(1, &[4, 4]), 1),
            (ents_with_terms(2, &[1, 4, 4]), 2),
        ];
        for (ents, want) in cases {
            assert_eq!(log.find_conflict(&ents), want, "{ents:?}");
        }
    }

    #[test]
    fn find_conflict_treats_compacted_entries_as_matching() {
        let mut log = stored_log(&[1, 2, 3, 4]);
        log.store_mut().compact(3).unwrap();
        assert_eq!(log.find_conflict(&ents_with_terms(1, &[1, 2, 3, 4])), 0);
        assert_eq!(log.find_conflict(&ents_with_terms(2, &[2, 3, 5])), 4);
        assert_eq!(
            log.find_conflict(&ents_with_terms(2, &[2, 9, 4])),
            3,
            "the base is known"
        );
    }

    #[test]
    fn find_conflict_by_term_finds_the_last_index_with_a_term_not_above() {
        // Index: 1 2 3 4 5 6 7
        // Term:  1 1 3 3 3 5 5
        let log = stored_log(&[1, 1, 3, 3, 3, 5, 5]);
        let cases = [
            ((7, 5), (7, 5)),
            ((7, 4), (5, 3)),
            ((7, 3), (5, 3)),
            ((7, 2), (2, 1)),
            ((4, 2), (2, 1)),
            ((7, 0), (0, 0)),
            ((1, 1), (1, 1)),
            ((0, 9), (0, 0)),
            ((100, 4), (5, 3)),
            ((100, 9), (7, 5)),
        ];
        for ((index, term), want) in cases {
            assert_eq!(
                log.find_conflict_by_term(index, term),
                want,
                "({index}, {term})"
            );
        }
    }

    #[test]
    fn find_conflict_by_term_answers_unknown_below_the_snapshot() {
        let mut log = stored_log(&[1, 1, 3, 3, 3, 5, 5]);
        log.store_mut().compact(4).unwrap();
        assert_eq!(log.find_conflict_by_term(7, 3), (5, 3));
        assert_eq!(
            log.find_conflict_by_term(7, 2),
            (3, 0),
            "every known term is above 2"
        );
        assert_eq!(
            log.find_conflict_by_term(2, 1),
            (2, 0),
            "index 2 is compacted"
        );
    }

    #[test]
    fn is_up_to_date_prefers_the_later_term_then_the_longer_log() {
        let log = stored_log(&[1, 2, 2]);
        assert!(log.is_up_to_date(EntryId::new(1, 3)));
        assert!(log.is_up_to_date(EntryId::new(3, 2)));
        assert!(log.is_up_to_date(EntryId::new(4, 2)));
        assert!(!log.is_up_to_date(EntryId::new(2, 2)));
        assert!(!log.is_up_to_date(EntryId::new(9, 1)));
    }

    #[test]
    fn maybe_commit_needs_a_higher_index_and_the_matching_term() {
        let mut log = stored_log(&[1, 2, 2]);
        assert!(!log.maybe_commit(EntryId::new(3, 1)));
        assert!(log.maybe_commit(EntryId::new(2, 2)));
        assert_eq!(log.committed, 2);
        assert!(!log.maybe_commit(EntryId::new(1, 1)));
        log.commit_to(1);
        assert_eq!(log.committed, 2, "commit_to never decreases");
    }

    #[test]
    #[should_panic(expected = "overwrite committed entries")]
    fn append_over_a_committed_entry_panics() {
        let mut log = stored_log(&[1, 1, 1]);
        log.commit_to(3);
        log.append(&ents_with_terms(3, &[2]));
    }

    #[test]
    fn stable_to_ignores_a_completion_from_before_an_overwrite() {
        let mut log = stored_log(&[1]);
        log.append(&ents_with_terms(2, &[1, 1, 1]));
        let old_batch = log.next_unstable_entries().to_vec();
        log.accept_unstable();
        // A leader of term 2 overwrites 3 and 4 while the old batch is being written.
        log.append(&ents_with_terms(3, &[2, 2]));
        assert_eq!(
            log.next_unstable_entries(),
            ents_with_terms(3, &[2, 2]).as_slice()
        );
        log.store_mut().append(&old_batch).unwrap();
        log.stable_to(EntryId::new(4, 1));
        // Entry 2 is on disk too, but a stale completion cannot vouch for any of it; the
        // completion of the rewrite will.
        assert_eq!(
            log.persisted_index(),
            1,
            "the old batch's 4/1 is not this log's entry 4"
        );
        assert_eq!(log.term(4), Ok(2));
        persist_all(&mut log);
        assert_eq!(log.persisted_index(), 4);
        assert_eq!(log.store().term(4), Ok(2));
        log.check_invariants();
    }

    #[test]
    fn next_committed_entries_never_pass_the_persisted_index() {
        let mut log = stored_log(&[1, 1]);
        log.append(&ents_with_terms(3, &[1, 1, 1]));
        log.commit_to(5);
        assert_eq!(log.persisted_index(), 2);
        assert_eq!(
            log.next_committed_entries(u64::MAX),
            ents_with_terms(1, &[1, 1])
        );
        log.applying_to(2);
        assert!(
            !log.has_next_committed_entries(),
            "3..=5 are committed but not durable"
        );
        assert!(log.next_committed_entries(u64::MAX).is_empty());
        let batch = log.next_unstable_entries().to_vec();
        log.accept_unstable();
        log.store_mut().append(&batch[..1]).unwrap();
        log.stable_to(EntryId::new(3, 1));
        assert_eq!(
            log.next_committed_entries(u64::MAX),
            ents_with_terms(3, &[1])
        );
        log.applying_to(3);
        log.applied_to(3);
        log.check_invariants();
    }

    #[test]
    fn next_committed_entries_wait_for_a_snapshot_to_be_persisted_and_applied() {
        let mut log = stored_log(&[1, 1]);
        log.restore(snap(10, 2));
        log.append(&ents_with_terms(11, &[2]));
        log.commit_to(11);
        assert_eq!(
            log.persisted_index(),
            9,
            "the pending snapshot is not durable"
        );
        assert!(!log.has_next_committed_entries());
        persist_all(&mut log);
        assert_eq!(log.persisted_index(), 11);
        assert!(
            !log.has_next_committed_entries(),
            "the snapshot is applied first"
        );
        log.check_invariants();
        log.applying_to(10);
        log.applied_to(10);
        assert_eq!(
            log.next_committed_entries(u64::MAX),
            ents_with_terms(11, &[2])
        );
        log.check_invariants();
    }

    #[test]
    fn slice_limits_bytes_across_storage_and_unstable_but_returns_at_least_one() {
        // Payloads (index*7 + term*3) % 11: 1/1 -> 10, 2/1 -> 6, 3/1 -> 2, 4/1 -> 9, 5/1 -> 5.
        let mut log = stored_log(&[1, 1, 1]);
        log.append(&ents_with_terms(4, &[1, 1]));
        let all = ents_with_terms(1, &[1, 1, 1, 1, 1]);
        assert_eq!(log.slice(1, 6, u64::MAX), Ok(all.clone()));
        assert_eq!(log.slice(1, 6, 0), Ok(all[..1].to_vec()));
        assert_eq!(log.slice(1, 6, 16), Ok(all[..2].to_vec()));
        assert_eq!(log.slice(1, 6, 18), Ok(all[..3].to_vec()));
        assert_eq!(log.slice(1, 6, 26), Ok(all[..3].to_vec()));
        assert_eq!(log.slice(1, 6, 27), Ok(all[..4].to_vec()));
        assert_eq!(log.slice(2, 6, 17), Ok(all[1..4].to_vec()));
        assert_eq!(log.slice(4, 6, 0), Ok(all[3..4].to_vec()));
        assert_eq!(log.slice(4, 6, 14), Ok(all[3..5].to_vec()));
        assert_eq!(log.slice(3, 3, 0), Ok(vec![]));
        assert_eq!(
            log.slice(0, 2, 0),
            Err(StorageError::Compacted {
                index: 0,
                first_index: 1
            })
        );
        assert_eq!(
            log.slice(1, 7, 0),
            Err(StorageError::Unavailable {
                index: 6,
                last_index: 5
            })
        );
        assert_eq!(log.entries(6, 0), Ok(vec![]));
        assert_eq!(log.entries(5, 0), Ok(all[4..].to_vec()));
    }

    #[test]
    fn slice_after_an_oversized_first_entry_adds_nothing_more() {
        let mut store = MemStorage::new();
        store.append(&[Entry::normal(1, 1, vec![0u8; 10])]).unwrap();
        let mut log = RaftLog::new(store).unwrap();
        log.append(&[Entry::normal(2, 1, vec![])]);
        assert_eq!(log.slice(1, 3, 5).unwrap().len(), 1);
        assert_eq!(log.slice(1, 3, 10).unwrap().len(), 2);
    }

    /// One step of the log model test, each an input the role logic or the driver makes.
    #[derive(Clone, Debug)]
    enum Op {
        /// A leader's append of `len` entries starting `back` entries before the end (never
        /// at or below the commit index); an overwrite comes from a new, higher term.
        Append { back: u8, len: u8, new_term: bool },
        /// The driver takes the next persist batch.
        Accept,
        /// The driver makes the oldest outstanding batch durable and reports it.
        Persist,
        /// The commit index moves forward.
        Commit { ahead: u8 },
        /// The driver takes committed entries to apply (or the durable snapshot) and applies
        /// them.
        Apply { max_bytes: u8 },
        /// The driver compacts storage up to `behind` entries before `applied`.
        Compact { behind: u8 },
        /// A leader's snapshot `ahead` entries past the commit index.
        Restore { ahead: u8 },
    }

    impl Arbitrary for Op {
        fn arbitrary(g: &mut Gen) -> Op {
            match u8::arbitrary(g) % 16 {
                0..=4 => Op::Append {
                    back: u8::arbitrary(g) % 6,
                    len: u8::arbitrary(g) % 5,
                    new_term: bool::arbitrary(g),
                },
                5..=7 => Op::Accept,
                8..=10 => Op::Persist,
                11 | 12 => Op::Commit {
                    ahead: u8::arbitrary(g) % 6,
                },
                13 => Op::Apply {
                    max_bytes: u8::arbitrary(g) % 24,
                },
                14 => Op::Compact {
                    behind: u8::arbitrary(g) % 4,
                },
                _ => Op::Restore {
                    ahead: u8::arbitrary(g) % 8 + 1,
                },
            }
        }
    }

    /// A batch the driver has taken and not yet made durable.
    struct Batch {
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
    }

    /// The naive model: the whole log as a Vec (`log[i]` has index `i + 1`). Entries below a
    /// restored snapshot are placeholders; only `[first_index - 1, last]` is compared.
    struct Model {
        log: Vec<Entry>,
        term_max: u64,
    }

    impl Model {
        fn term(&self, index: u64) -> u64 {
            if index == 0 {
                0
            } else {
                self.log[index as usize - 1].term
            }
        }
    }

    fn check_against_model(log: &RaftLog<MemStorage>, m: &Model) {
        log.check_invariants();
        let last = m.log.len() as u64;
        assert_eq!(log.last_index(), last);
        let first = log.first_index();
        for i in first - 1..=last {
            assert_eq!(log.term(i), Ok(m.term(i)), "term({i})");
        }
        assert_eq!(
            log.entries(first, u64::MAX).unwrap(),
            &m.log[first as usize - 1..]
        );
        // What the log calls durable is in storage and is this log (unless a snapshot is
        // pending: then the whole log before it is replaced and nothing is claimed).
        if log.unstable_snapshot().is_none() {
            let persisted = log.persisted_index();
            let store = log.store();
            assert!(store.last_index().unwrap() >= persisted);
            for i in store.first_index().unwrap() - 1..=persisted {
                assert_eq!(store.term(i), Ok(m.term(i)), "durable term({i})");
            }
        }
    }

    fn log_behaves_like_a_vec(ops: Vec<Op>) {
        let mut log = RaftLog::new(MemStorage::new()).unwrap();
        let mut m = Model {
            log: Vec::new(),
            term_max: 1,
        };
        let mut batches: std::collections::VecDeque<Batch> = Default::default();
        for op in ops {
            match op {
                Op::Append {
                    back,
                    len,
                    new_term,
                } => {
                    let last = log.last_index();
                    let start = (last + 1)
                        .saturating_sub(u64::from(back))
                        .max(log.committed + 1);
                    if len == 0 {
                        continue;
                    }
                    if start <= last || new_term {
                        m.term_max += 1;
                    }
                    let new: Vec<Entry> = (start..start + u64::from(len))
                        .map(|i| ent(i, m.term_max))
                        .collect();
                    assert_eq!(log.find_conflict(&new), start);
                    assert_eq!(log.append(&new), start + u64::from(len) - 1);
                    m.log.truncate(start as usize - 1);
                    m.log.extend(new);
                }
                Op::Accept => {
                    if log.has_next_unstable() {
                        batches.push_back(Batch {
                            snapshot: log.next_unstable_snapshot().cloned(),
                            entries: log.next_unstable_entries().to_vec(),
                        });
                        log.accept_unstable();
                        assert!(!log.has_next_unstable());
                    }
                }
                Op::Persist => {
                    let Some(batch) = batches.pop_front() else {
                        continue;
                    };
                    if let Some(s) = batch.snapshot {
                        log.store_mut().apply_snapshot(s.clone()).unwrap();
                        log.stable_snap_to(s.index());
                    }
                    if let Some(last) = batch.entries.last() {
                        log.store_mut().append(&batch.entries).unwrap();
                        log.stable_to(EntryId::new(last.index, last.term));
                    }
                }
                Op::Commit { ahead } => {
                    log.commit_to((log.committed + u64::from(ahead)).min(log.last_index()));
                }
                Op::Apply { max_bytes } => {
                    let snapshot_index = log.first_index() - 1;
                    if log.unstable_snapshot().is_none() && log.applying < snapshot_index {
                        // The durable snapshot is handed to apply first.
                        assert!(!log.has_next_committed_entries());
                        log.applying_to(snapshot_index);
                        log.applied_to(snapshot_index);
                        continue;
                    }
                    let max_bytes = u64::from(max_bytes);
                    let got = log.next_committed_entries(max_bytes);
                    assert_eq!(log.has_next_committed_entries(), !got.is_empty());
                    let Some(last) = got.last() else { continue };
                    assert!(last.index <= log.committed.min(log.persisted_index()));
                    let lo = log.applying as usize;
                    assert_eq!(got, &m.log[lo..lo + got.len()]);
                    let bytes: u64 = got.iter().map(Entry::payload_bytes).sum();
                    assert!(got.len() == 1 || bytes <= max_bytes, "byte limit");
                    let last = last.index;
                    log.applying_to(last);
                    log.applied_to(last);
                }
                Op::Compact { behind } => {
                    let store_last = log.store().last_index().unwrap();
                    let target = log
                        .applied
                        .saturating_sub(u64::from(behind))
                        .min(store_last);
                    log.store_mut().compact(target).unwrap();
                }
                Op::Restore { ahead } => {
                    let index = log.committed + u64::from(ahead);
                    m.term_max += 1;
                    log.restore(snap(index, m.term_max));
                    let placeholder = |i| Entry::normal(i, 0, vec![]);
                    m.log.truncate(index as usize - 1);
                    m.log
                        .extend((m.log.len() as u64 + 1..index).map(placeholder));
                    m.log.push(ent(index, m.term_max));
                }
            }
            check_against_model(&log, &m);
        }
        // Drain: once every batch is durable, storage holds the whole log.
        while let Some(batch) = batches.pop_front() {
            if let Some(s) = batch.snapshot {
                log.store_mut().apply_snapshot(s.clone()).unwrap();
                log.stable_snap_to(s.index());
            }
            if let Some(last) = batch.entries.last() {
                log.store_mut().append(&batch.entries).unwrap();
                log.stable_to(EntryId::new(last.index, last.term));
            }
        }
        persist_all(&mut log);
        check_against_model(&log, &m);
        assert_eq!(log.persisted_index(), log.last_index());
        assert_eq!(log.store().last_index(), Ok(log.last_index()));
    }

    #[test]
    fn log_append_truncate_and_persist_behave_like_a_vec_model() {
        QuickCheck::new()
            .tests(1000)
            .quickcheck(log_behaves_like_a_vec as fn(Vec<Op>));
    }
}
