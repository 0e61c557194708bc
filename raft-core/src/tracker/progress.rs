//! What the leader knows about one peer's log, and every transition of that knowledge.
//!
//! The leader keeps a [`Progress`] per peer: the highest index known to be on the peer
//! (`matched`), the next index to send (`next_idx`), and a [`ProgressState`] that says how to
//! send:
//!
//! ```text
//!                    become_replicate (an ack found the match point)
//!            +---------------------------------------------------------+
//!            |                                                         v
//!        +-------+   become_probe (a reject, or the peer unreachable)  +-----------+
//!  new ->| Probe |<----------------------------------------------------| Replicate |
//!        +-------+                                                     +-----------+
//!          |   ^                                                             |
//!          |   | become_probe (snapshot applied,                             |
//!          |   |  failed or reported)                                        |
//!          v   |                                                             |
//!        +----------+   become_snapshot (the entries at next_idx are compacted away)
//!        | Snapshot |<------------------------------------------------------+
//!        +----------+
//! ```
//!
//! - **Probe**: the leader does not know where the peer's log matches its own. It sends one
//!   append at a time (then pauses until an ack, a reject or a heartbeat response) and walks
//!   `next_idx` back on each reject, using the follower's hint to skip whole terms.
//! - **Replicate**: the match point is known; appends stream optimistically, `next_idx` advances
//!   as they are sent, and the [`Inflights`] window bounds how far ahead the leader runs.
//! - **Snapshot**: the entries the peer needs are gone from the leader's log; a snapshot at
//!   `pending_snapshot` is on its way and nothing else is sent until it is resolved.
//!
//! Invariants (checked by [`Progress::check_invariants`]):
//! 1. `matched < next_idx`.
//! 2. In Replicate, every in-flight record's index lies in `matched + 1 .. next_idx`.
//! 3. Outside Replicate, the in-flight window is empty.
//! 4. Outside Snapshot, `pending_snapshot == 0`.
//! 5. `matched` never decreases.
//!
//! Reference: Raft thesis §3.5 and §10.2.1 (pipelining); etcd's `tracker/progress.go`.

use std::fmt;

use super::Inflights;

/// How the leader sends to a peer; see the module diagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Find the match point: one append at a time, walking back on rejects.
    Probe,
    /// Stream appends, bounded by the in-flight window.
    Replicate,
    /// A snapshot is in flight; send nothing else.
    Snapshot,
}

impl fmt::Display for ProgressState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProgressState::Probe => "probe",
            ProgressState::Replicate => "replicate",
            ProgressState::Snapshot => "snapshot",
        })
    }
}

/// The leader's view of one peer's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The highest index known to be replicated on the peer.
    pub matched: u64,
    /// The next index to send.
    pub next_idx: u64,
    /// How to send to the peer.
    pub state: ProgressState,
    /// The index of the snapshot in flight while in [`ProgressState::Snapshot`]; 0 otherwise.
    pub pending_snapshot: u64,
    /// Whether the peer was heard from since the last check-quorum round.
    pub recent_active: bool,
    /// Whether appends to the peer are paused (see [`Progress::is_paused`]).
    pub msg_app_flow_paused: bool,
    /// The window of appends sent but not acknowledged (used in Replicate).
    pub inflights: Inflights,
    /// Whether the peer is a learner (receives the log, never votes).
    pub is_learner: bool,
}

impl Progress {
    /// A peer in Probe with nothing known to match, to be sent from `next_idx`.
    ///
    /// # Panics
    ///
    /// If `next_idx` is 0 (invariant 1: it must exceed `matched == 0`), or if
    /// `inflight_msgs_max` is 0.
    pub fn new(next_idx: u64, inflight_msgs_max: usize, inflight_bytes_max: u64) -> Progress {
        assert!(next_idx > 0, "progress: next_idx must be at least 1");
        Progress {
            matched: 0,
            next_idx,
            state: ProgressState::Probe,
            pending_snapshot: 0,
            recent_active: false,
            msg_app_flow_paused: false,
            inflights: Inflights::new(inflight_msgs_max, inflight_bytes_max),
            is_learner: false,
        }
    }

    /// Enters Probe: send from just after the match point, one append at a time.
    ///
    /// Leaving Snapshot, the peer is assumed to hold the snapshot if it was sent, so probing
    /// starts after whichever of `matched` and the snapshot index is higher; if the peer did
    /// not get it, the first reject walks `next_idx` back.
    #[inline]
    pub fn become_probe(&mut self) {
        let next_idx = if self.state == ProgressState::Snapshot {
            self.matched.max(self.pending_snapshot) + 1
        } else {
            self.matched + 1
        };
        self.reset_state(ProgressState::Probe);
        self.next_idx = next_idx;
    }

    /// Enters Replicate: stream from just after the match point with an empty window.
    #[inline]
    pub fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next_idx = self.matched + 1;
    }

    /// Enters Snapshot: a snapshot at `snapshot_index` is being sent; nothing else is until it
    /// resolves. `next_idx` moves past the snapshot, as a successful install will leave it.
    pub fn become_snapshot(&mut self, snapshot_index: u64) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = snapshot_index;
        self.next_idx = self.matched.max(snapshot_index) + 1;
    }

    /// Records that a `MsgApp` carrying `entries` entries of `bytes` payload bytes was sent,
    /// starting at `next_idx`.
    ///
    /// - Replicate: `next_idx` advances past the entries, a non-empty message takes a slot in
    ///   the window, and the flow pauses when the window is full.
    /// - Probe: a non-empty message pauses the flow, so one probe is in flight at a time.
    ///   `next_idx` stays, because the probe may be rejected.
    ///
    /// # Panics
    ///
    /// In Snapshot (nothing is sent then), or in Replicate if the window is already full (the
    /// caller sends only when [`is_paused`](Progress::is_paused) is false).
    #[inline]
    pub fn sent_entries(&mut self, entries: usize, bytes: u64) {
        match self.state {
            ProgressState::Replicate => {
                if entries > 0 {
                    // usize -> u64 is lossless on every platform Rust supports.
                    self.next_idx += entries as u64;
                    self.inflights.add(self.next_idx - 1, bytes);
                }
                self.msg_app_flow_paused = self.inflights.full();
            }
            ProgressState::Probe => {
                if entries > 0 {
                    self.msg_app_flow_paused = true;
                }
            }
            ProgressState::Snapshot => {
                panic!("progress: sent_entries in snapshot state (nothing is sent then)")
            }
        }
    }

    /// Handles an acknowledgement that the peer's log matches up to `n`. Returns whether
    /// `matched` advanced.
    ///
    /// `matched` becomes `max(matched, n)` and `next_idx` becomes `max(next_idx, n + 1)`. In
    /// Replicate the window frees every record `<= n` and the flow resumes if the window has
    /// room; in Probe the flow resumes (the probe was answered). A stale ack (`n <= matched`)
    /// changes nothing but the pause.
    ///
    /// # Panics
    ///
    /// If `n` is `u64::MAX`: the caller accepts acks only up to its own last index.
    #[inline]
    pub fn maybe_update(&mut self, n: u64) -> bool {
        assert!(n < u64::MAX, "progress: ack of index u64::MAX");
        let updated = n > self.matched;
        if updated {
            self.matched = n;
        }
        self.next_idx = self.next_idx.max(n + 1);
        match self.state {
            ProgressState::Replicate => {
                // Freeing here, not only in the caller, keeps invariant 2 whatever the caller
                // does next, and resuming only with room keeps `sent_entries` from overflowing
                // the window.
                self.inflights.free_le(n);
                self.msg_app_flow_paused = self.inflights.full();
            }
            ProgressState::Probe | ProgressState::Snapshot => self.msg_app_flow_paused = false,
        }
        updated
    }

    /// Handles a rejection of the append whose previous index was `rejected`, with the
    /// follower's hint `match_hint` (its best guess at the last index that could match).
    /// Returns false if the rejection is stale and was ignored.
    ///
    /// - Replicate: stale if `rejected <= matched` (an old message, overtaken by an ack).
    ///   Otherwise the pipeline is broken: `next_idx` returns to `matched + 1` and the window
    ///   empties (the caller then moves the peer to Probe).
    /// - Probe: stale unless it answers the probe in flight (`rejected == next_idx - 1`).
    ///   Otherwise `next_idx` moves back to `max(min(rejected, match_hint + 1), matched + 1)`
    ///   and the flow resumes, so the next probe goes out.
    /// - Snapshot: always stale; a snapshot is resolved by an ack or by the embedder's report,
    ///   never by the reject of an append sent before it.
    #[inline]
    pub fn maybe_decr_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        match self.state {
            ProgressState::Replicate => {
                if rejected <= self.matched {
                    return false;
                }
                self.next_idx = self.matched + 1;
                self.inflights.reset();
                self.msg_app_flow_paused = false;
                true
            }
            ProgressState::Probe => {
                if self.next_idx - 1 != rejected {
                    return false;
                }
                // Remote input: saturate rather than overflow on a hostile hint.
                let guess = rejected.min(match_hint.saturating_add(1));
                self.next_idx = guess.max(self.matched + 1);
                self.msg_app_flow_paused = false;
                true
            }
            ProgressState::Snapshot => false,
        }
    }

    /// Whether the leader must not send appends to this peer now: in Probe and Replicate when
    /// the flow is paused (a probe in flight, or the window full), always in Snapshot.
    #[inline]
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe | ProgressState::Replicate => self.msg_app_flow_paused,
            ProgressState::Snapshot => true,
        }
    }

    /// Asserts invariants 1 to 4 (5 is a property of the transitions, checked by the tests).
    /// O(in-flight count).
    pub fn check_invariants(&self) {
        assert!(
            self.matched < self.next_idx,
            "progress: matched {} not below next_idx {}",
            self.matched,
            self.next_idx
        );
        self.inflights.check_invariants();
        match self.state {
            ProgressState::Replicate => {
                for (index, _) in self.inflights.iter() {
                    assert!(
                        self.matched < index && index < self.next_idx,
                        "progress: in-flight index {index} outside matched {} .. next_idx {}",
                        self.matched,
                        self.next_idx
                    );
                }
            }
            ProgressState::Probe | ProgressState::Snapshot => {
                assert_eq!(
                    self.inflights.count(),
                    0,
                    "progress: in-flight window outside replicate"
                );
            }
        }
        if self.state != ProgressState::Snapshot {
            assert_eq!(
                self.pending_snapshot, 0,
                "progress: pending snapshot outside snapshot"
            );
        }
    }

    /// Moves to `state` with the flow resumed, no pending snapshot and an empty window.
    #[inline]
    fn reset_state(&mut self, state: ProgressState) {
        self.state = state;
        self.msg_app_flow_paused = false;
        self.pending_snapshot = 0;
        self.inflights.reset();
    }
}

impl fmt::Display for Progress {
    /// etcd's rendering with lower-case states: `replicate match=5 next=6 inflight=1`, with
    /// optional parts appended only when set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} match={} next={}",
            self.state, self.matched, self.next_idx
        )?;
        if self.is_learner {
            f.write_str(" learner")?;
        }
        if self.is_paused() {
            f.write_str(" paused")?;
        }
        if self.pending_snapshot > 0 {
            write!(f, " pendingSnap={}", self.pending_snapshot)?;
        }
        if !self.recent_active {
            f.write_str(" inactive")?;
        }
        let n = self.inflights.count();
        if n > 0 {
            write!(f, " inflight={n}")?;
            if self.inflights.full() {
                f.write_str("[full]")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen, QuickCheck};

    fn replicating(matched: u64, next_idx: u64, msgs_max: usize) -> Progress {
        let mut pr = Progress::new(next_idx, msgs_max, 0);
        pr.matched = matched;
        pr.state = ProgressState::Replicate;
        pr
    }

    #[test]
    fn new_progress_probes_from_next_idx() {
        let pr = Progress::new(5, 4, 0);
        assert_eq!(
            (pr.matched, pr.next_idx, pr.state),
            (0, 5, ProgressState::Probe)
        );
        assert!(!pr.is_paused());
        pr.check_invariants();
        assert_eq!(pr.to_string(), "probe match=0 next=5 inactive");
    }

    #[test]
    fn state_displays_as_etcd_lowercase_names() {
        assert_eq!(ProgressState::Probe.to_string(), "probe");
        assert_eq!(ProgressState::Replicate.to_string(), "replicate");
        assert_eq!(ProgressState::Snapshot.to_string(), "snapshot");
    }

    #[test]
    fn become_probe_from_snapshot_skips_past_the_snapshot() {
        let mut pr = Progress::new(2, 4, 0);
        pr.matched = 1;
        pr.become_snapshot(10);
        assert_eq!((pr.pending_snapshot, pr.next_idx), (10, 11));
        assert!(pr.is_paused());
        pr.become_probe();
        assert_eq!(
            (pr.state, pr.next_idx, pr.pending_snapshot),
            (ProgressState::Probe, 11, 0)
        );
        pr.check_invariants();

        // With matched beyond the snapshot (acked meanwhile), matched wins.
        let mut pr = Progress::new(2, 4, 0);
        pr.become_snapshot(10);
        pr.maybe_update(12);
        pr.become_probe();
        assert_eq!(pr.next_idx, 13);
    }

    #[test]
    fn become_probe_from_replicate_restarts_after_matched() {
        let mut pr = replicating(5, 6, 4);
        pr.sent_entries(3, 30);
        assert_eq!(pr.next_idx, 9);
        pr.become_probe();
        assert_eq!(
            (pr.state, pr.next_idx, pr.inflights.count()),
            (ProgressState::Probe, 6, 0)
        );
        assert!(!pr.is_paused());
        pr.check_invariants();
    }

    #[test]
    fn become_replicate_restarts_after_matched() {
        let mut pr = Progress::new(10, 4, 0);
        pr.maybe_update(7);
        pr.become_replicate();
        assert_eq!((pr.state, pr.next_idx), (ProgressState::Replicate, 8));
        pr.check_invariants();
    }

    #[test]
    fn probe_pauses_after_one_nonempty_append() {
        let mut pr = Progress::new(5, 4, 0);
        pr.sent_entries(0, 0);
        assert!(!pr.is_paused(), "an empty append does not pause a probe");
        pr.sent_entries(2, 20);
        assert!(pr.is_paused());
        assert_eq!(pr.next_idx, 5, "a probe does not advance next_idx");
        pr.maybe_update(3);
        assert!(!pr.is_paused(), "an ack resumes the probe flow");
    }

    #[test]
    fn replicate_pauses_when_the_window_fills_and_resumes_on_ack() {
        let mut pr = replicating(0, 1, 2);
        pr.sent_entries(1, 10);
        pr.sent_entries(2, 10);
        assert_eq!(pr.next_idx, 4);
        assert!(pr.is_paused());
        assert_eq!(
            pr.inflights.iter().collect::<Vec<_>>(),
            vec![(1, 10), (3, 10)]
        );
        // An ack below the oldest record frees nothing: still paused.
        assert!(!pr.maybe_update(0));
        assert!(pr.is_paused());
        assert!(pr.maybe_update(1));
        assert!(!pr.is_paused());
        assert_eq!(pr.inflights.count(), 1);
        pr.check_invariants();
    }

    #[test]
    fn replicate_byte_budget_pauses_the_flow() {
        let mut pr = Progress::new(1, 100, 50);
        pr.become_replicate();
        pr.sent_entries(1, 60);
        assert!(pr.is_paused());
        pr.maybe_update(1);
        assert!(!pr.is_paused());
    }

    #[test]
    fn maybe_update_reports_only_advances() {
        let mut pr = Progress::new(5, 4, 0);
        assert!(pr.maybe_update(4));
        assert_eq!((pr.matched, pr.next_idx), (4, 5));
        assert!(!pr.maybe_update(2), "a stale ack");
        assert_eq!((pr.matched, pr.next_idx), (4, 5));
        assert!(pr.maybe_update(9));
        assert_eq!((pr.matched, pr.next_idx), (9, 10));
    }

    #[test]
    fn replicate_reject_is_stale_at_or_below_matched() {
        let mut pr = replicating(5, 10, 8);
        assert!(!pr.maybe_decr_to(5, 5));
        assert!(!pr.maybe_decr_to(4, 4));
        assert_eq!(pr.next_idx, 10);
        pr.sent_entries(2, 0);
        assert!(pr.maybe_decr_to(9, 6));
        assert_eq!((pr.next_idx, pr.inflights.count()), (6, 0));
        pr.check_invariants();
    }

    #[test]
    fn probe_reject_is_stale_unless_it_answers_the_probe_in_flight() {
        let mut pr = Progress::new(10, 4, 0);
        assert!(!pr.maybe_decr_to(5, 5), "rejected must be next_idx - 1");
        assert_eq!(pr.next_idx, 10);
        pr.sent_entries(1, 0);
        assert!(pr.is_paused());
        assert!(pr.maybe_decr_to(9, 9), "a reject answering the probe");
        assert_eq!(pr.next_idx, 9);
        assert!(!pr.is_paused());
    }

    #[test]
    fn probe_reject_uses_the_followers_hint_but_never_goes_below_matched() {
        let mut pr = Progress::new(10, 4, 0);
        assert!(pr.maybe_decr_to(9, 3));
        assert_eq!(pr.next_idx, 4, "jumps to hint + 1");

        let mut pr = Progress::new(10, 4, 0);
        pr.matched = 5;
        assert!(pr.maybe_decr_to(9, 1));
        assert_eq!(pr.next_idx, 6, "clamped to matched + 1");

        let mut pr = Progress::new(10, 4, 0);
        assert!(pr.maybe_decr_to(9, 50));
        assert_eq!(pr.next_idx, 9, "a hint above rejected still moves back one");

        let mut pr = Progress::new(10, 4, 0);
        assert!(
            pr.maybe_decr_to(9, u64::MAX),
            "a hostile hint does not overflow"
        );
        assert_eq!(pr.next_idx, 9);
    }

    #[test]
    fn snapshot_ignores_rejects_and_is_always_paused() {
        let mut pr = Progress::new(10, 4, 0);
        pr.become_snapshot(20);
        assert!(!pr.maybe_decr_to(20, 5));
        assert!(!pr.maybe_decr_to(9, 5));
        assert!(pr.is_paused());
        pr.maybe_update(20);
        assert!(
            pr.is_paused(),
            "snapshot stays paused until the role moves it on"
        );
        assert_eq!((pr.matched, pr.next_idx), (20, 21));
    }

    #[test]
    #[should_panic(expected = "sent_entries in snapshot state")]
    fn sending_in_snapshot_state_panics() {
        let mut pr = Progress::new(10, 4, 0);
        pr.become_snapshot(20);
        pr.sent_entries(1, 0);
    }

    /// One step of a leader's dealings with a peer, generated freely and applied only when the
    /// leader would do it (never a send while paused).
    #[derive(Clone, Debug)]
    enum Op {
        Send { entries: u8, bytes: u8 },
        Ack { back: u8 },
        Reject { back: u8, hint_back: u8 },
        BecomeProbe,
        BecomeReplicate,
        BecomeSnapshot { ahead: u8 },
    }

    impl Arbitrary for Op {
        fn arbitrary(g: &mut Gen) -> Op {
            let a = u8::arbitrary(g) % 8;
            let b = u8::arbitrary(g) % 8;
            match u8::arbitrary(g) % 12 {
                0..=3 => Op::Send {
                    entries: a,
                    bytes: u8::arbitrary(g),
                },
                4..=6 => Op::Ack { back: a },
                7 | 8 => Op::Reject {
                    back: a,
                    hint_back: b,
                },
                9 => Op::BecomeProbe,
                10 => Op::BecomeReplicate,
                _ => Op::BecomeSnapshot { ahead: a },
            }
        }
    }

    #[test]
    fn transitions_keep_the_invariants() {
        fn prop(msgs_max: u8, bytes_max: u8, ops: Vec<Op>) -> bool {
            let msgs_max = usize::from(msgs_max % 4) + 1;
            let bytes_max = u64::from(bytes_max) * 2;
            let mut pr = Progress::new(1, msgs_max, bytes_max);
            for op in ops {
                let matched_before = pr.matched;
                match op {
                    Op::Send { entries, bytes } => {
                        if !pr.is_paused() {
                            pr.sent_entries(usize::from(entries), u64::from(bytes));
                        }
                    }
                    Op::Ack { back } => {
                        // Acks come for indexes the leader sent: below next_idx.
                        let n = (pr.next_idx - 1).saturating_sub(u64::from(back));
                        let updated = pr.maybe_update(n);
                        assert_eq!(updated, n > matched_before);
                    }
                    Op::Reject { back, hint_back } => {
                        let rejected = (pr.next_idx - 1).saturating_sub(u64::from(back));
                        let hint = rejected.saturating_sub(u64::from(hint_back));
                        let next_before = pr.next_idx;
                        if pr.maybe_decr_to(rejected, hint) {
                            assert!(pr.next_idx <= next_before, "a reject never moves next up");
                        } else {
                            assert_eq!(pr.next_idx, next_before, "a stale reject changes nothing");
                        }
                    }
                    Op::BecomeProbe => pr.become_probe(),
                    Op::BecomeReplicate => pr.become_replicate(),
                    Op::BecomeSnapshot { ahead } => {
                        pr.become_snapshot(pr.next_idx - 1 + u64::from(ahead));
                    }
                }
                pr.check_invariants();
                assert!(
                    pr.matched >= matched_before,
                    "invariant 5: matched never decreases"
                );
            }
            true
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop as fn(u8, u8, Vec<Op>) -> bool);
    }
}
