//! The output of a node ([`Ready`]) and the completion tokens that report it done.
//!
//! A `Ready` moves everything out of the node (DESIGN §2, rule 1). Its three parts carry
//! three different obligations:
//!
//! ```text
//!   messages ──────────── send in any order; may be lost like any packet
//!   persist  ── write ──► fsync if `sync` ──► node.on_persisted(batch.durable())
//!   apply    ── apply ──────────────────────► node.on_applied(batch.applied())
//! ```
//!
//! Invariants:
//! 1. Persist batches carry consecutive sequence numbers from 1; the node accepts their
//!    completions only in that order (a gap or a repeat is embedding misuse and panics).
//! 2. A persist batch's `entries`, when non-empty, are contiguous; the write they describe is
//!    "truncate the log after `entries[0].index - 1`, then append `entries`".
//! 3. An apply batch holds committed entries already durable locally, contiguous and starting
//!    right after the previous apply batch.
//! 4. Tokens name the node that minted them; a token from another node panics.

use crate::EntryId;
use crate::read_only::ReadState;
use crate::wire::{ConfState, Entry, HardState, Message, Snapshot};

/// Everything a node asks its driver to do, moved out by [`crate::RawNode::ready`].
///
/// Destructure it without `..` so that a new obligation breaks your driver at compile time:
/// `let Ready { messages, persist, apply, read_states } = node.ready();`
#[must_use = "a Ready holds messages to send, a write to persist and entries to apply; \
              dropping it stalls the node"]
#[derive(Debug, Default, PartialEq)]
pub struct Ready {
    /// Messages that are safe to send now, in any order. Anything that vouches for local
    /// durable state (a vote grant, an append acknowledgement) appears only after the write
    /// it depends on was reported with [`crate::RawNode::on_persisted`].
    pub messages: Vec<Message>,
    /// State to make durable, if any.
    pub persist: Option<PersistBatch>,
    /// Committed entries to apply, if any.
    pub apply: Option<ApplyBatch>,
    /// Confirmed linearizable reads: serve each once the state machine has applied its
    /// index. Requests that cannot be confirmed (leadership lost) are never answered here;
    /// callers retry after a timeout.
    pub read_states: Vec<ReadState>,
}

/// One write to make durable. Several may be outstanding; complete them in order.
#[must_use = "a PersistBatch must be written (and fsynced if `sync`) and then reported with \
              on_persisted(batch.durable()); dropping it stalls the node"]
#[derive(Debug, PartialEq)]
pub struct PersistBatch {
    /// The new hard state, if it changed since the previous batch.
    ///
    /// A change of the commit index alone does not make a batch: it rides along with the next
    /// batch that has something else to write (entries, a snapshot, a new term or vote). The
    /// durable commit index may therefore lag the applied one; that is safe, because the
    /// commit index is only a hint for what to re-apply after a restart: a restarted node
    /// takes `max(hard_state.commit, Config::applied)`, and entries above that are learned
    /// committed again from the leader. This saves one write per commit on every node.
    pub hard_state: Option<HardState>,
    /// A snapshot received from the leader: replace the log with it (before `entries`).
    pub snapshot: Option<Snapshot>,
    /// Entries to write: truncate the log after `entries[0].index - 1`, then append these.
    pub entries: Vec<Entry>,
    /// Whether the write must be fsynced before it is reported durable (new entries, a new
    /// term or a new vote). The hard state alone, with only a new commit index, need not be.
    pub sync: bool,
    token: Persisted,
}

/// Proof that a [`PersistBatch`] is durable; minted only by the batch.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "report the write with RawNode::on_persisted"]
pub struct Persisted {
    pub(crate) node: u64,
    pub(crate) seq: u64,
    pub(crate) last_entry: Option<EntryId>,
    pub(crate) hard_state: Option<HardState>,
    pub(crate) snapshot_index: Option<u64>,
}

/// Committed entries to apply to the state machine, in order.
#[must_use = "an ApplyBatch must be applied to the state machine and then reported with \
              on_applied(batch.applied()); dropping it stalls applying"]
#[derive(Debug, PartialEq)]
pub struct ApplyBatch {
    /// A snapshot to restore the state machine from, before `entries`.
    pub snapshot: Option<Snapshot>,
    /// The configuration in effect once this batch is applied, when the batch changes it
    /// (a snapshot, or configuration-change entries). Store it with your snapshots. A
    /// snapshot taken in the middle of the batch needs the configuration at its index
    /// instead: [`ApplyBatch::conf_state_at`].
    pub conf_state: Option<ConfState>,
    /// The entries, contiguous, all committed and durable locally.
    pub entries: Vec<Entry>,
    /// The configuration after each change of the batch, by the index of its entry (a
    /// snapshot counts as a change at its index), in index order; the last one is
    /// `conf_state`.
    conf_changes: Vec<(u64, ConfState)>,
    token: Applied,
}

/// Proof that an [`ApplyBatch`] was applied; minted only by the batch.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "report the batch with RawNode::on_applied"]
pub struct Applied {
    pub(crate) node: u64,
    pub(crate) first_index: u64,
    pub(crate) last_index: u64,
}

impl PersistBatch {
    /// A placeholder for [`PersistBatch::refill`] to fill in place (it is not a valid batch
    /// until then: sequence number 0 is never issued).
    #[inline(always)]
    pub(crate) fn empty(node: u64) -> PersistBatch {
        PersistBatch {
            hard_state: None,
            snapshot: None,
            entries: Vec::new(),
            sync: false,
            token: Persisted {
                node,
                seq: 0,
                last_entry: None,
                hard_state: None,
                snapshot_index: None,
            },
        }
    }

    /// Makes this the batch of write `seq` of `node`: `hard_state`, `snapshot` and `entries`,
    /// to be made durable (with an fsync if `sync`).
    ///
    /// Batches are filled in place in the `Ready` the driver passed back (or in an
    /// [`PersistBatch::empty`] one): a batch is a few hundred bytes, and building one aside
    /// costs a copy of it into the `Ready`.
    #[inline]
    pub(crate) fn refill(
        &mut self,
        node: u64,
        seq: u64,
        hard_state: Option<HardState>,
        snapshot: Option<&Snapshot>,
        entries: Vec<Entry>,
        sync: bool,
    ) {
        assert!(
            entries.windows(2).all(|w| w[1].index == w[0].index + 1),
            "persist batch entries are contiguous"
        );
        if let (Some(snap), Some(first)) = (snapshot, entries.first()) {
            assert_eq!(first.index, snap.index() + 1, "entries follow the snapshot");
        }
        self.token = Persisted {
            node,
            seq,
            last_entry: entries.last().map(|e| EntryId::new(e.index, e.term)),
            hard_state,
            snapshot_index: snapshot.map(Snapshot::index),
        };
        self.hard_state = hard_state;
        // Assigned per case, so that the common `None` stores a tag instead of copying the
        // whole (large) option.
        match snapshot {
            None => self.snapshot = None,
            Some(snap) => self.snapshot = Some(snap.clone()),
        }
        self.entries = entries;
        self.sync = sync;
    }

    /// The completion to hand to [`crate::RawNode::on_persisted`] once this batch is durable.
    #[inline]
    pub fn durable(&self) -> Persisted {
        Persisted {
            node: self.token.node,
            seq: self.token.seq,
            last_entry: self.token.last_entry,
            hard_state: self.token.hard_state,
            snapshot_index: self.token.snapshot_index,
        }
    }

    /// The index after which the log must be truncated before `entries` are appended.
    #[inline]
    pub fn truncate_after(&self) -> Option<u64> {
        self.entries.first().map(|e| e.index - 1)
    }

    /// This batch's position in the node's sequence of writes (from 1).
    #[inline]
    pub fn seq(&self) -> u64 {
        self.token.seq
    }
}

impl ApplyBatch {
    #[inline]
    pub(crate) fn new(
        node: u64,
        first_index: u64,
        snapshot: Option<Snapshot>,
        conf_changes: Vec<(u64, ConfState)>,
        entries: Vec<Entry>,
    ) -> ApplyBatch {
        let mut batch = ApplyBatch::empty(node);
        batch.refill(node, first_index, snapshot, conf_changes, entries);
        batch
    }

    /// The configuration in effect once the batch is applied up to `index` (a snapshot of
    /// the application as of `index` must carry it), when the batch changed it at or before
    /// `index`; `None` when the configuration at `index` is still the one in effect before the
    /// batch (the one the previous batches announced, or the storage's).
    #[inline]
    pub fn conf_state_at(&self, index: u64) -> Option<&ConfState> {
        self.conf_changes
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map(|(_, cs)| cs)
    }

    /// Each configuration change of the batch: the index of its entry (or of the snapshot)
    /// and the configuration in effect from that index on, in index order.
    #[inline]
    pub fn conf_changes(&self) -> &[(u64, ConfState)] {
        &self.conf_changes
    }

    /// A placeholder for [`ApplyBatch::refill`] to fill in place (it is not a valid batch
    /// until then).
    #[inline(always)]
    pub(crate) fn empty(node: u64) -> ApplyBatch {
        ApplyBatch {
            snapshot: None,
            conf_state: None,
            entries: Vec::new(),
            conf_changes: Vec::new(),
            token: Applied {
                node,
                first_index: 0,
                last_index: 0,
            },
        }
    }

    /// Makes this the batch [`ApplyBatch::new`] would build from the same arguments, in
    /// place (see [`PersistBatch::refill`]).
    #[inline]
    pub(crate) fn refill(
        &mut self,
        node: u64,
        first_index: u64,
        snapshot: Option<Snapshot>,
        conf_changes: Vec<(u64, ConfState)>,
        entries: Vec<Entry>,
    ) {
        assert!(
            conf_changes.windows(2).all(|w| w[0].0 < w[1].0),
            "apply batch configuration changes are in index order"
        );
        assert!(
            snapshot.is_some() || !entries.is_empty(),
            "an apply batch is never empty"
        );
        assert!(
            entries.windows(2).all(|w| w[1].index == w[0].index + 1),
            "apply batch entries are contiguous"
        );
        let last_index = match (entries.last(), &snapshot) {
            (Some(e), _) => e.index,
            (None, Some(s)) => s.index(),
            (None, None) => unreachable!("checked above"),
        };
        self.token = Applied {
            node,
            first_index,
            last_index,
        };
        match snapshot {
            None => self.snapshot = None,
            Some(snap) => self.snapshot = Some(snap),
        }
        match conf_changes.last() {
            None => self.conf_state = None,
            Some((_, cs)) => self.conf_state = Some(cs.clone()),
        }
        self.conf_changes = conf_changes;
        self.entries = entries;
    }

    /// The completion to hand to [`crate::RawNode::on_applied`] once applied.
    #[inline]
    pub fn applied(&self) -> Applied {
        Applied {
            node: self.token.node,
            first_index: self.token.first_index,
            last_index: self.token.last_index,
        }
    }

    /// The index of the last entry in the batch.
    #[inline]
    pub fn last_index(&self) -> u64 {
        self.token.last_index
    }
}

impl Ready {
    /// Whether there is nothing to do.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.persist.is_none()
            && self.apply.is_none()
            && self.read_states.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::SnapshotMetadata;

    fn snapshot(index: u64) -> Snapshot {
        Snapshot {
            data: bytes::Bytes::from_static(b"state"),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(ConfState::with_voters(vec![1, 2])),
                index,
                term: 2,
            }),
        }
    }

    fn entries(lo: u64, hi: u64) -> Vec<Entry> {
        (lo..hi)
            .map(|i| Entry::normal(i, 2, vec![7u8; 3]))
            .collect()
    }

    #[test]
    fn a_refilled_persist_batch_keeps_nothing_of_its_previous_contents() {
        let hs = HardState {
            term: 2,
            vote: 1,
            commit: 5,
        };
        let mut reused = PersistBatch::empty(1);
        reused.refill(1, 1, Some(hs), Some(&snapshot(5)), entries(6, 9), true);
        assert_eq!(reused.durable().snapshot_index, Some(5));
        reused.refill(1, 2, None, None, entries(9, 10), false);
        let mut fresh = PersistBatch::empty(1);
        fresh.refill(1, 2, None, None, entries(9, 10), false);
        assert_eq!(reused, fresh);
        assert_eq!(reused.durable(), fresh.durable());
    }

    #[test]
    fn a_refilled_apply_batch_keeps_nothing_of_its_previous_contents() {
        let cs = ConfState::with_voters(vec![1, 2]);
        let mut reused = ApplyBatch::new(1, 1, Some(snapshot(5)), vec![(5, cs)], Vec::new());
        assert_eq!(reused.last_index(), 5);
        reused.refill(1, 6, None, Vec::new(), entries(6, 8));
        let fresh = ApplyBatch::new(1, 6, None, Vec::new(), entries(6, 8));
        assert_eq!(reused, fresh);
        assert_eq!(reused.applied(), fresh.applied());
    }

    #[test]
    fn the_configuration_at_an_index_is_the_one_after_the_last_change_up_to_it() {
        let a = ConfState::with_voters(vec![1, 2]);
        let b = ConfState::with_voters(vec![1, 2, 3]);
        let batch = ApplyBatch::new(
            1,
            6,
            None,
            vec![(7, a.clone()), (9, b.clone())],
            entries(6, 11),
        );
        assert_eq!(
            batch.conf_state_at(6),
            None,
            "before the first change: the old one"
        );
        assert_eq!(batch.conf_state_at(7), Some(&a));
        assert_eq!(batch.conf_state_at(8), Some(&a));
        assert_eq!(batch.conf_state_at(9), Some(&b));
        assert_eq!(batch.conf_state_at(10), Some(&b));
        assert_eq!(
            batch.conf_state.as_ref(),
            Some(&b),
            "after the batch: the last one"
        );
        assert_eq!(batch.conf_changes(), &[(7, a), (9, b)]);
    }
}
