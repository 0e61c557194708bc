//! The unstable part of the log: entries (and possibly a snapshot) this node has accepted but
//! not yet seen durable in its own storage.
//!
//! Persistence is pipelined. The driver is handed a persist batch of what is new
//! ([`Unstable::next_entries`], [`Unstable::next_snapshot`]), the library marks it in progress
//! ([`Unstable::accept_in_progress`]) and keeps building further batches while the driver
//! writes. When a batch is reported durable, [`Unstable::stable_to`] /
//! [`Unstable::stable_snap_to`] drop what it covered, because storage can now answer for it.
//!
//! ```text
//!   storage (durable)     | unstable: in progress         | not yet handed out
//!  ... offset-1           | offset ... offset_in_progress-1 | offset_in_progress ... last
//! ```
//!
//! A new leader may overwrite a suffix of the log while batches that wrote the old suffix are
//! still in flight. The overwritten range is rewritten by a later batch
//! (`offset_in_progress` drops to the truncation point), and a completion for the old batch is
//! recognised as stale because the entry it names no longer has the same term (the etcd "ABA"
//! race; DESIGN.md §2 rule 3).
//!
//! Invariants (checked by [`Unstable::check_invariants`]):
//! 1. `entries[i].index == offset + i`.
//! 2. `offset <= offset_in_progress <= offset + entries.len()`.
//! 3. With a snapshot, `offset == snapshot.index + 1`.
//! 4. `snapshot_in_progress` implies a snapshot; entries after a snapshot are only in progress
//!    if the snapshot is (they are handed out together or after it).
//!
//! Known wart: the completion token is the id of the last entry written. If a suffix is
//! overwritten by a newer term and then overwritten *back* with the original entries (possible
//! only across three leaders), a completion of the first write is indistinguishable from one
//! of the last. The right shape is a token that also carries the term of the leader whose
//! appends the batch followed (etcd's `logMark`), ignored once that term has changed.
//!
//! Reference: etcd-io/raft `log_unstable.go`.

use crate::EntryId;
use crate::wire::{Entry, Snapshot};

/// Entries and snapshot not yet durable locally. See the module docs.
#[derive(Clone, Debug, Default)]
pub(crate) struct Unstable {
    /// A snapshot received from a leader and not yet durable.
    pub(crate) snapshot: Option<Snapshot>,
    /// Entries not yet durable; `entries[i].index == offset + i`.
    pub(crate) entries: Vec<Entry>,
    /// Index of `entries[0]` (or of the next entry to come, if there are none).
    pub(crate) offset: u64,
    /// Entries `[offset, offset_in_progress)` have been handed to a persist batch.
    pub(crate) offset_in_progress: u64,
    /// Whether the snapshot has been handed to a persist batch.
    pub(crate) snapshot_in_progress: bool,
}

/// Capacity kept for the unstable entries after they are drained; more than this is released
/// once the buffer is mostly empty, so one burst does not pin its memory forever.
const ENTRIES_CAPACITY_RETAINED_MAX: usize = 1024;

impl Unstable {
    /// An empty unstable log whose next entry will have index `offset`.
    pub(crate) fn new(offset: u64) -> Unstable {
        Unstable {
            offset,
            offset_in_progress: offset,
            ..Unstable::default()
        }
    }

    /// The first index of the log if it is decided here: the unstable snapshot's index + 1.
    #[inline]
    pub(crate) fn maybe_first_index(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| s.index() + 1)
    }

    /// The last index of the log if it is decided here: the last unstable entry, else the
    /// unstable snapshot.
    #[inline]
    pub(crate) fn maybe_last_index(&self) -> Option<u64> {
        match self.entries.len() {
            0 => self.snapshot.as_ref().map(Snapshot::index),
            len => Some(self.offset + len as u64 - 1),
        }
    }

    /// The term of entry `index` if it is decided here.
    #[inline]
    pub(crate) fn maybe_term(&self, index: u64) -> Option<u64> {
        if index < self.offset {
            return self
                .snapshot
                .as_ref()
                .filter(|s| s.index() == index)
                .map(Snapshot::term);
        }
        self.entries.get(self.position(index)?).map(|e| e.term)
    }

    /// The term of unstable entry `index`, if there is one (the snapshot does not count).
    #[inline]
    pub(crate) fn entry_term(&self, index: u64) -> Option<u64> {
        let k = usize::try_from(index.checked_sub(self.offset)?).ok()?;
        self.entries.get(k).map(|e| e.term)
    }

    /// Whether there are entries or a snapshot not yet handed to a persist batch.
    #[inline]
    pub(crate) fn has_next(&self) -> bool {
        self.offset_in_progress < self.offset + self.entries.len() as u64
            || (self.snapshot.is_some() && !self.snapshot_in_progress)
    }

    /// Entries not yet handed to a persist batch.
    #[inline]
    pub(crate) fn next_entries(&self) -> &[Entry] {
        let from = self
            .position(self.offset_in_progress)
            .expect("offset_in_progress >= offset");
        &self.entries[from..]
    }

    /// The snapshot, if it has not been handed to a persist batch yet.
    #[inline]
    pub(crate) fn next_snapshot(&self) -> Option<&Snapshot> {
        self.snapshot
            .as_ref()
            .filter(|_| !self.snapshot_in_progress)
    }

    /// Marks everything currently unstable as handed to a persist batch.
    #[inline]
    pub(crate) fn accept_in_progress(&mut self) {
        self.offset_in_progress = self.offset + self.entries.len() as u64;
        self.snapshot_in_progress = self.snapshot.is_some();
    }

    /// A persist batch whose last entry is `id` is durable: drop the entries up to `id.index`,
    /// handing each to `keep` (in index order; the log keeps them for applying).
    ///
    /// Ignored if no unstable entry has exactly this id: the batch was written before a newer
    /// leader overwrote that entry, and the overwrite is still to be made durable.
    ///
    /// # Panics
    /// If the entry is found but the unstable snapshot before it is not durable yet: batches
    /// are made durable in order, so the snapshot must be reported first.
    #[inline]
    pub(crate) fn stable_to_with(&mut self, id: EntryId, keep: impl FnMut(Entry)) {
        if id.index < self.offset || self.maybe_term(id.index) != Some(id.term) {
            return;
        }
        assert!(
            self.snapshot.is_none(),
            "stable_to({id}) with the unstable snapshot at {} not durable: batches are durable \
             in order, report the snapshot first",
            self.snapshot.as_ref().map_or(0, Snapshot::index)
        );
        let n = self.position(id.index).expect("id.index >= offset") + 1;
        self.entries.drain(..n).for_each(keep);
        self.offset = id.index + 1;
        self.offset_in_progress = self.offset_in_progress.max(self.offset);
        self.shrink_entries();
    }

    /// The snapshot at `index` is durable: drop it. Ignored if the unstable snapshot is
    /// another one (or there is none): the completion is stale.
    #[inline]
    pub(crate) fn stable_snap_to(&mut self, index: u64) {
        if self.snapshot.as_ref().is_some_and(|s| s.index() == index) {
            self.snapshot = None;
            self.snapshot_in_progress = false;
        }
    }

    /// Replaces everything with `snapshot`: the log now starts after it.
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        self.offset = snapshot.index() + 1;
        self.offset_in_progress = self.offset;
        self.entries.clear();
        self.snapshot = Some(snapshot);
        self.snapshot_in_progress = false;
    }

    /// Writes `ents` over the log from `ents[0].index` on: appends if they follow the last
    /// entry, else truncates the unstable entries from there first (replacing them all if
    /// `ents` starts at or before `offset`). Entries from the truncation point on must be
    /// (re)written, so they are no longer in progress.
    ///
    /// The caller ensures `ents` is contiguous and does not leave a gap after the log.
    #[inline]
    pub(crate) fn truncate_and_append(&mut self, ents: &[Entry]) {
        let Some(first) = ents.first() else {
            return;
        };
        let from = first.index;
        self.truncate_from(from);
        self.entries.extend_from_slice(ents);
        self.appended_from(from);
    }

    /// As [`Unstable::truncate_and_append`], but moves the payloads out of `ents`, leaving
    /// each entry's index, term and type in place.
    #[inline]
    pub(crate) fn truncate_and_append_from(&mut self, ents: &mut [Entry]) {
        let Some(first) = ents.first() else {
            return;
        };
        let from = first.index;
        self.truncate_from(from);
        self.entries.extend(ents.iter_mut().map(|e| Entry {
            entry_type: e.entry_type,
            term: e.term,
            index: e.index,
            data: std::mem::take(&mut e.data),
        }));
        self.appended_from(from);
    }

    /// First half of an append from index `from`: drops the unstable entries from `from` on.
    #[inline]
    fn truncate_from(&mut self, from: u64) {
        let end = self.offset + self.entries.len() as u64;
        assert!(
            from <= end,
            "truncate_and_append leaves a gap: {from} after last {}",
            end - 1
        );
        if from <= self.offset {
            // The whole unstable part is replaced; what storage holds from `from` on will be
            // overwritten by the next persist batch.
            self.offset = from;
            self.entries.clear();
        } else if from < end {
            let keep = self.position(from).expect("from > offset");
            self.entries.truncate(keep);
        }
    }

    /// Second half of an append from index `from`: what was written from `from` on is no
    /// longer in progress.
    #[inline]
    fn appended_from(&mut self, from: u64) {
        self.offset_in_progress = self.offset_in_progress.min(from).max(self.offset);
        debug_assert!(
            self.check_entries_contiguous(),
            "appended entries must be contiguous"
        );
    }

    /// Entries `[lo, hi)`, which must all be unstable.
    #[inline]
    pub(crate) fn slice(&self, lo: u64, hi: u64) -> &[Entry] {
        assert!(
            self.offset <= lo && lo <= hi && hi <= self.offset + self.entries.len() as u64,
            "unstable slice [{lo}, {hi}) out of bounds [{}, {})",
            self.offset,
            self.offset + self.entries.len() as u64
        );
        let lo = self.position(lo).expect("lo >= offset");
        let hi = self.position(hi).expect("hi >= offset");
        &self.entries[lo..hi]
    }

    /// Panics if an invariant from the module docs is broken.
    pub(crate) fn check_invariants(&self) {
        assert!(
            self.check_entries_contiguous(),
            "unstable entries are not at offset + i"
        );
        let end = self.offset + self.entries.len() as u64;
        assert!(
            self.offset <= self.offset_in_progress && self.offset_in_progress <= end,
            "offset {} <= offset_in_progress {} <= end {end}",
            self.offset,
            self.offset_in_progress
        );
        match &self.snapshot {
            Some(s) => {
                assert_eq!(
                    self.offset,
                    s.index() + 1,
                    "unstable snapshot must precede offset"
                );
                assert!(
                    self.snapshot_in_progress || self.offset_in_progress == self.offset,
                    "entries after a snapshot are in progress but the snapshot is not"
                );
            }
            None => assert!(
                !self.snapshot_in_progress,
                "snapshot in progress without snapshot"
            ),
        }
    }

    fn check_entries_contiguous(&self) -> bool {
        self.entries
            .iter()
            .zip(self.offset..)
            .all(|(e, i)| e.index == i)
    }

    /// Position of `index` in `entries` (possibly one past the end), if `index >= offset`.
    #[inline]
    fn position(&self, index: u64) -> Option<usize> {
        let k = index.checked_sub(self.offset)?;
        usize::try_from(k).ok()
    }

    fn shrink_entries(&mut self) {
        let cap = self.entries.capacity();
        if cap > ENTRIES_CAPACITY_RETAINED_MAX && self.entries.len() < cap / 4 {
            self.entries
                .shrink_to(ENTRIES_CAPACITY_RETAINED_MAX.max(self.entries.len() * 2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::SnapshotMetadata;

    fn ent(index: u64, term: u64) -> Entry {
        Entry::normal(index, term, vec![])
    }

    fn ents(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
        (lo..hi).map(|i| ent(i, term)).collect()
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

    #[test]
    fn truncate_and_append_appends_replaces_or_truncates() {
        let mut u = Unstable::new(5);
        u.truncate_and_append(&ents(5, 8, 1));
        assert_eq!(u.entries, ents(5, 8, 1));
        u.truncate_and_append(&ents(8, 9, 1));
        assert_eq!(u.entries, ents(5, 9, 1));
        u.truncate_and_append(&ents(7, 9, 2));
        assert_eq!(u.entries, [ents(5, 7, 1), ents(7, 9, 2)].concat());
        u.truncate_and_append(&ents(3, 5, 3));
        assert_eq!((u.offset, u.entries.clone()), (3, ents(3, 5, 3)));
        u.check_invariants();
    }

    #[test]
    fn truncation_puts_rewritten_entries_back_out_of_progress() {
        let mut u = Unstable::new(5);
        u.truncate_and_append(&ents(5, 10, 1));
        u.accept_in_progress();
        assert!(u.next_entries().is_empty());
        u.truncate_and_append(&ents(7, 9, 2));
        assert_eq!(u.offset_in_progress, 7);
        assert_eq!(u.next_entries(), ents(7, 9, 2).as_slice());
        u.check_invariants();
    }

    #[test]
    fn stable_to_ignores_a_completion_whose_entry_was_overwritten() {
        let mut u = Unstable::new(5);
        u.truncate_and_append(&ents(5, 10, 1));
        u.accept_in_progress();
        // A new leader overwrites 7..: the batch that wrote 5..=9 in term 1 is now stale.
        u.truncate_and_append(&ents(7, 10, 2));
        u.accept_in_progress();
        u.stable_to_with(EntryId::new(9, 1), drop);
        assert_eq!(u.offset, 5, "stale completion must not stabilize anything");
        u.stable_to_with(EntryId::new(9, 2), drop);
        assert_eq!((u.offset, u.entries.len()), (10, 0));
        u.check_invariants();
    }

    #[test]
    fn stable_to_keeps_entries_not_yet_durable() {
        let mut u = Unstable::new(1);
        u.truncate_and_append(&ents(1, 4, 1));
        u.accept_in_progress();
        u.truncate_and_append(&ents(4, 6, 1));
        u.stable_to_with(EntryId::new(3, 1), drop);
        assert_eq!((u.offset, u.offset_in_progress), (4, 4));
        assert_eq!(u.next_entries(), ents(4, 6, 1).as_slice());
        u.check_invariants();
    }

    #[test]
    fn restore_then_stable_snap_to_moves_the_offset_past_the_snapshot() {
        let mut u = Unstable::new(3);
        u.truncate_and_append(&ents(3, 5, 1));
        u.restore(snap(10, 2));
        assert_eq!(u.maybe_first_index(), Some(11));
        assert_eq!(u.maybe_last_index(), Some(10));
        assert_eq!(u.maybe_term(10), Some(2));
        assert_eq!(u.maybe_term(9), None);
        assert!(u.next_snapshot().is_some());
        u.truncate_and_append(&ents(11, 13, 2));
        u.accept_in_progress();
        assert!(u.next_snapshot().is_none());
        u.stable_snap_to(9);
        assert!(
            u.snapshot.is_some(),
            "a completion for another snapshot is ignored"
        );
        u.stable_snap_to(10);
        assert!(u.snapshot.is_none());
        u.stable_to_with(EntryId::new(12, 2), drop);
        assert_eq!(u.maybe_last_index(), None);
        u.check_invariants();
    }
}
