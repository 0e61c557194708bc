//! Quorum math: which index a majority has acknowledged, and whether an election is decided.
//!
//! This module is pure arithmetic over voter ids. It imports nothing from the role logic, so it
//! can be tested and benchmarked alone; the [`crate::tracker`] feeds it the match indexes and
//! votes it keeps per peer.
//!
//! A [`MajorityConfig`] is one set of voters; a decision needs more than half of them. A
//! [`JointConfig`] is the pair used during a joint-consensus configuration change (Raft thesis
//! §4.3): a decision needs a majority of the incoming set *and* a majority of the outgoing set.
//! Outside a change the outgoing set is empty, and an empty set agrees with everything, so the
//! joint rules collapse to the plain majority rules.
//!
//! Invariants:
//! 1. A [`MajorityConfig`]'s ids are sorted ascending and unique.
//! 2. An empty [`MajorityConfig`] has committed index `u64::MAX` and wins every vote, so it is
//!    the neutral element of the joint `min` and of the joint "both won" rule.
//! 3. `committed_index` of a non-empty config is the largest `i` such that a majority of voters
//!    report an acked index `>= i` (voters with no report count as 0).
//! 4. `committed_index` does not allocate for up to [`STACK_VOTERS_MAX`] voters; it is called on
//!    every append response the leader handles.
//!
//! References: Raft thesis §3.6 (commitment), §4.3 (joint consensus); etcd's `quorum` package.

use std::fmt;

/// The outcome of an election as far as the votes received so far can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// Neither a win nor a loss is certain yet: the missing votes could decide either way.
    Pending,
    /// Enough rejections that a majority of grants is no longer possible.
    Lost,
    /// A majority granted the vote.
    Won,
}

/// The largest voter count for which [`MajorityConfig::committed_index`] sorts on the stack.
///
/// Seven covers every cluster size seen in practice (1, 3, 5, 7); larger configurations fall
/// back to a heap buffer.
pub const STACK_VOTERS_MAX: usize = 7;

/// A set of voters whose decisions need a strict majority.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MajorityConfig {
    /// Sorted ascending, unique (invariant 1).
    voters: Vec<u64>,
}

impl MajorityConfig {
    /// A configuration of the given voters; duplicates are dropped and the ids sorted.
    pub fn new(voters: impl IntoIterator<Item = u64>) -> MajorityConfig {
        let mut voters: Vec<u64> = voters.into_iter().collect();
        voters.sort_unstable();
        voters.dedup();
        MajorityConfig { voters }
    }

    /// The number of voters.
    #[inline]
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// Whether there are no voters.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// Whether `id` is a voter.
    #[inline]
    pub fn contains(&self, id: u64) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    /// The voter ids, ascending.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.voters.iter().copied()
    }

    /// The number of voters that make a majority: `len / 2 + 1` (1 for an empty config, which
    /// never counts anything because of invariant 2).
    #[inline]
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The largest index acknowledged by a majority of the voters.
    ///
    /// `acked(id)` returns the voter's match index, or `None` if it is unknown (counted as 0).
    /// An empty configuration returns `u64::MAX`, so that the `min` in
    /// [`JointConfig::committed_index`] ignores an empty half.
    #[inline]
    pub fn committed_index(&self, acked: impl Fn(u64) -> Option<u64>) -> u64 {
        let n = self.voters.len();
        if n == 0 {
            return u64::MAX;
        }
        if n == 1 {
            // A lone voter is its own majority (the leader asks on every write).
            return acked(self.voters[0]).unwrap_or(0);
        }
        if n <= STACK_VOTERS_MAX {
            let mut buf = [0u64; STACK_VOTERS_MAX];
            let srt = &mut buf[..n];
            for (slot, &id) in srt.iter_mut().zip(&self.voters) {
                *slot = acked(id).unwrap_or(0);
            }
            insertion_sort(srt);
            majority_element(srt)
        } else {
            let mut srt: Vec<u64> = self
                .voters
                .iter()
                .map(|&id| acked(id).unwrap_or(0))
                .collect();
            srt.sort_unstable();
            majority_element(&srt)
        }
    }

    /// Whether the votes so far decide the election.
    ///
    /// `votes(id)` is `Some(true)` for a grant, `Some(false)` for a rejection and `None` for a
    /// voter not heard from yet. An empty configuration wins (invariant 2).
    pub fn vote_result(&self, votes: impl Fn(u64) -> Option<bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let (mut granted, mut missing) = (0usize, 0usize);
        for &id in &self.voters {
            match votes(id) {
                Some(true) => granted += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let quorum = self.quorum();
        if granted >= quorum {
            VoteResult::Won
        } else if granted + missing >= quorum {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }
}

impl fmt::Display for MajorityConfig {
    /// etcd's notation: `(1 2 3)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, id) in self.voters.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{id}")?;
        }
        f.write_str(")")
    }
}

/// The two voter sets of a joint-consensus configuration; decisions need a majority in each.
///
/// Outside a configuration change `outgoing` is empty and only `incoming` matters.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct JointConfig {
    /// The configuration being moved to (the only one when not joint).
    pub incoming: MajorityConfig,
    /// The configuration being left; empty when not joint.
    pub outgoing: MajorityConfig,
}

impl JointConfig {
    /// A joint configuration of the two halves.
    pub fn new(incoming: MajorityConfig, outgoing: MajorityConfig) -> JointConfig {
        JointConfig { incoming, outgoing }
    }

    /// Whether this is a joint configuration, i.e. the outgoing half is non-empty.
    #[inline]
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether `id` is a voter in either half.
    #[inline]
    pub fn contains(&self, id: u64) -> bool {
        self.incoming.contains(id) || self.outgoing.contains(id)
    }

    /// Every voter of either half, ascending and unique.
    pub fn ids(&self) -> Vec<u64> {
        // Both halves are sorted (invariant 1), so a merge keeps the union sorted.
        let (a, b) = (&self.incoming.voters, &self.outgoing.voters);
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].cmp(&b[j]) {
                std::cmp::Ordering::Less => {
                    out.push(a[i]);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(b[j]);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    out.push(a[i]);
                    i += 1;
                    j += 1;
                }
            }
        }
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        out
    }

    /// The largest index acknowledged by a majority of each half: the `min` of the halves.
    ///
    /// Returns `u64::MAX` when both halves are empty (invariant 2).
    #[inline]
    pub fn committed_index(&self, acked: impl Fn(u64) -> Option<u64>) -> u64 {
        let incoming = self.incoming.committed_index(&acked);
        if self.outgoing.is_empty() {
            // Not joint: the empty half would answer `u64::MAX` (invariant 2).
            return incoming;
        }
        let outgoing = self.outgoing.committed_index(&acked);
        incoming.min(outgoing)
    }

    /// `Won` iff both halves won, `Lost` if either half lost, otherwise `Pending`.
    pub fn vote_result(&self, votes: impl Fn(u64) -> Option<bool>) -> VoteResult {
        let incoming = self.incoming.vote_result(&votes);
        let outgoing = self.outgoing.vote_result(&votes);
        match (incoming, outgoing) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }
}

impl fmt::Display for JointConfig {
    /// etcd's notation: `(1 2 3)` or, while joint, `(1 2 3)&&(1 2 4)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.incoming)?;
        if self.is_joint() {
            write!(f, "&&{}", self.outgoing)?;
        }
        Ok(())
    }
}

/// The largest index acknowledged by a majority of a set of voters, given each voter's acked
/// index in `acked` (in any order; it is sorted in place). An empty set gives `u64::MAX`, as
/// [`MajorityConfig::committed_index`] does.
///
/// For callers that hold the acked indexes already (the tracker, when every member is a voter)
/// and need no lookup by id.
#[inline]
pub fn committed_index_of(acked: &mut [u64]) -> u64 {
    if acked.is_empty() {
        return u64::MAX;
    }
    if acked.len() <= STACK_VOTERS_MAX {
        insertion_sort(acked);
    } else {
        acked.sort_unstable();
    }
    majority_element(acked)
}

/// Sorts a short slice ascending in place; for at most [`STACK_VOTERS_MAX`] elements this beats
/// the general sort and never allocates.
#[inline]
fn insertion_sort(s: &mut [u64]) {
    for i in 1..s.len() {
        let x = s[i];
        let mut j = i;
        while j > 0 && s[j - 1] > x {
            s[j] = s[j - 1];
            j -= 1;
        }
        s[j] = x;
    }
}

/// The committed index of an ascending, non-empty slice of acked indexes.
///
/// With `n` voters sorted ascending, the voters at positions `n - quorum ..` all acked at least
/// `s[n - quorum]`, and they are exactly a quorum; no larger value is acked by as many.
#[inline]
fn majority_element(s: &[u64]) -> u64 {
    assert!(
        !s.is_empty(),
        "majority_element: an empty config is handled by the caller"
    );
    debug_assert!(
        s.windows(2).all(|w| w[0] <= w[1]),
        "majority_element: input sorted"
    );
    let quorum = s.len() / 2 + 1;
    s[s.len() - quorum]
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen, QuickCheck};
    use std::collections::BTreeMap;

    #[test]
    fn committed_index_of_matches_committed_index() {
        fn prop(acks: Vec<u32>) -> bool {
            let voters = MajorityConfig::new(1..=acks.len() as u64);
            let acked = |id: u64| Some(u64::from(acks[id as usize - 1]));
            let mut list: Vec<u64> = acks.iter().map(|&a| u64::from(a)).collect();
            committed_index_of(&mut list) == voters.committed_index(acked)
        }
        QuickCheck::new()
            .tests(500)
            .quickcheck(prop as fn(Vec<u32>) -> bool);
    }

    /// Voter ids drawn from a small space so that sets overlap and acks hit unknown ids.
    fn small_ids(raw: &[u8]) -> Vec<u64> {
        raw.iter().map(|&b| u64::from(b % 16) + 1).collect()
    }

    /// The naive committed index: collect every voter's ack, sort descending, take the element at
    /// `majority - 1`.
    fn committed_model(voters: &[u64], acks: &BTreeMap<u64, u64>) -> u64 {
        let mut ids = voters.to_vec();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return u64::MAX;
        }
        let mut all: Vec<u64> = ids
            .iter()
            .map(|id| acks.get(id).copied().unwrap_or(0))
            .collect();
        all.sort_unstable_by(|a, b| b.cmp(a));
        all[ids.len() / 2]
    }

    /// The naive vote result: count grants and rejections, compare with the majority.
    fn vote_model(voters: &[u64], votes: &BTreeMap<u64, bool>) -> VoteResult {
        let mut ids = voters.to_vec();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return VoteResult::Won;
        }
        let majority = ids.len() / 2 + 1;
        let granted = ids.iter().filter(|id| votes.get(id) == Some(&true)).count();
        let rejected = ids
            .iter()
            .filter(|id| votes.get(id) == Some(&false))
            .count();
        if granted >= majority {
            VoteResult::Won
        } else if rejected > ids.len() - majority {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }

    /// Acks over the small id space; small indexes so that ties are common.
    #[derive(Clone, Debug)]
    struct Acks(BTreeMap<u64, u64>);

    impl Arbitrary for Acks {
        fn arbitrary(g: &mut Gen) -> Acks {
            let raw: Vec<(u8, u8)> = Arbitrary::arbitrary(g);
            Acks(
                raw.into_iter()
                    .map(|(id, idx)| (u64::from(id % 20) + 1, u64::from(idx)))
                    .collect(),
            )
        }

        fn shrink(&self) -> Box<dyn Iterator<Item = Acks>> {
            let v: Vec<(u64, u64)> = self.0.clone().into_iter().collect();
            Box::new(v.shrink().map(|v| Acks(v.into_iter().collect())))
        }
    }

    #[derive(Clone, Debug)]
    struct Votes(BTreeMap<u64, bool>);

    impl Arbitrary for Votes {
        fn arbitrary(g: &mut Gen) -> Votes {
            let raw: Vec<(u8, bool)> = Arbitrary::arbitrary(g);
            Votes(
                raw.into_iter()
                    .map(|(id, v)| (u64::from(id % 20) + 1, v))
                    .collect(),
            )
        }

        fn shrink(&self) -> Box<dyn Iterator<Item = Votes>> {
            let v: Vec<(u64, bool)> = self.0.clone().into_iter().collect();
            Box::new(v.shrink().map(|v| Votes(v.into_iter().collect())))
        }
    }

    /// A table row: voters, acks as `(id, index)`, the expected committed index.
    type CommitCase = (&'static [u64], &'static [(u64, u64)], u64);

    /// A table row: voters, votes as `(id, granted)`, the expected result.
    type VoteCase = (&'static [u64], &'static [(u64, bool)], VoteResult);

    fn qc() -> QuickCheck {
        QuickCheck::new().tests(2000)
    }

    #[test]
    fn committed_index_matches_sorting_model() {
        fn prop(voters: Vec<u8>, acks: Acks) -> bool {
            let voters = small_ids(&voters);
            let cfg = MajorityConfig::new(voters.iter().copied());
            cfg.committed_index(|id| acks.0.get(&id).copied()) == committed_model(&voters, &acks.0)
        }
        qc().quickcheck(prop as fn(Vec<u8>, Acks) -> bool);
    }

    #[test]
    fn committed_index_matches_sorting_model_above_the_stack_limit() {
        // Force configurations of 8..=40 voters through the heap path.
        fn prop(extra: Vec<u8>, acks: Acks) -> bool {
            let mut voters: Vec<u64> = (1..=8).collect();
            voters.extend(extra.iter().map(|&b| u64::from(b % 40) + 1));
            let cfg = MajorityConfig::new(voters.iter().copied());
            assert!(cfg.len() > STACK_VOTERS_MAX);
            cfg.committed_index(|id| acks.0.get(&id).copied()) == committed_model(&voters, &acks.0)
        }
        qc().quickcheck(prop as fn(Vec<u8>, Acks) -> bool);
    }

    #[test]
    fn joint_committed_index_is_the_min_of_the_halves() {
        fn prop(incoming: Vec<u8>, outgoing: Vec<u8>, acks: Acks) -> bool {
            let (inc, out) = (small_ids(&incoming), small_ids(&outgoing));
            let cfg = JointConfig::new(
                MajorityConfig::new(inc.iter().copied()),
                MajorityConfig::new(out.iter().copied()),
            );
            let want = committed_model(&inc, &acks.0).min(committed_model(&out, &acks.0));
            cfg.committed_index(|id| acks.0.get(&id).copied()) == want
        }
        qc().quickcheck(prop as fn(Vec<u8>, Vec<u8>, Acks) -> bool);
    }

    #[test]
    fn vote_result_matches_counting_model() {
        fn prop(voters: Vec<u8>, votes: Votes) -> bool {
            let voters = small_ids(&voters);
            let cfg = MajorityConfig::new(voters.iter().copied());
            cfg.vote_result(|id| votes.0.get(&id).copied()) == vote_model(&voters, &votes.0)
        }
        qc().quickcheck(prop as fn(Vec<u8>, Votes) -> bool);
    }

    #[test]
    fn joint_vote_result_needs_both_halves() {
        fn prop(incoming: Vec<u8>, outgoing: Vec<u8>, votes: Votes) -> bool {
            let (inc, out) = (small_ids(&incoming), small_ids(&outgoing));
            let cfg = JointConfig::new(
                MajorityConfig::new(inc.iter().copied()),
                MajorityConfig::new(out.iter().copied()),
            );
            let (a, b) = (vote_model(&inc, &votes.0), vote_model(&out, &votes.0));
            let want = if a == VoteResult::Won && b == VoteResult::Won {
                VoteResult::Won
            } else if a == VoteResult::Lost || b == VoteResult::Lost {
                VoteResult::Lost
            } else {
                VoteResult::Pending
            };
            cfg.vote_result(|id| votes.0.get(&id).copied()) == want
        }
        qc().quickcheck(prop as fn(Vec<u8>, Vec<u8>, Votes) -> bool);
    }

    #[test]
    fn joint_ids_are_the_sorted_union() {
        fn prop(incoming: Vec<u8>, outgoing: Vec<u8>) -> bool {
            let (inc, out) = (small_ids(&incoming), small_ids(&outgoing));
            let cfg = JointConfig::new(
                MajorityConfig::new(inc.iter().copied()),
                MajorityConfig::new(out.iter().copied()),
            );
            let want: Vec<u64> = inc
                .iter()
                .chain(&out)
                .copied()
                .collect::<std::collections::BTreeSet<u64>>()
                .into_iter()
                .collect();
            let ids = cfg.ids();
            ids == want && ids.iter().all(|&id| cfg.contains(id))
        }
        qc().quickcheck(prop as fn(Vec<u8>, Vec<u8>) -> bool);
    }

    #[test]
    fn new_sorts_and_dedups_voters() {
        let cfg = MajorityConfig::new([3, 1, 2, 3, 1]);
        assert_eq!(cfg.ids().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(cfg.len(), 3);
        assert!(cfg.contains(2) && !cfg.contains(4));
        assert_eq!(cfg.to_string(), "(1 2 3)");
        assert!(MajorityConfig::default().is_empty());
    }

    #[test]
    fn committed_index_table() {
        let cases: &[CommitCase] = &[
            (&[], &[], u64::MAX),
            (&[1], &[], 0),
            (&[1], &[(1, 5)], 5),
            (&[1, 2], &[(1, 5)], 0),
            (&[1, 2], &[(1, 5), (2, 3)], 3),
            (&[1, 2, 3], &[(1, 5)], 0),
            (&[1, 2, 3], &[(1, 5), (2, 3)], 3),
            (&[1, 2, 3], &[(1, 5), (2, 3), (3, 9)], 5),
            // An ack from a non-voter counts for nothing.
            (&[1, 2, 3], &[(1, 5), (4, 9), (5, 9)], 0),
            (&[1, 2, 3, 4], &[(1, 5), (2, 6), (3, 7), (4, 8)], 6),
            (
                &[1, 2, 3, 4, 5],
                &[(1, 5), (2, 6), (3, 7), (4, 8), (5, 9)],
                7,
            ),
            // Two voters never acked: the fourth highest of (5 4 3 2 1 0 0) is 2.
            (
                &[1, 2, 3, 4, 5, 6, 7],
                &[(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)],
                2,
            ),
        ];
        for &(voters, acks, want) in cases {
            let cfg = MajorityConfig::new(voters.iter().copied());
            let acks: BTreeMap<u64, u64> = acks.iter().copied().collect();
            let got = cfg.committed_index(|id| acks.get(&id).copied());
            assert_eq!(got, want, "voters {voters:?} acks {acks:?}");
        }
    }

    #[test]
    fn joint_committed_index_ignores_an_empty_outgoing_half() {
        let acks = |id: u64| Some(id * 10);
        let simple = JointConfig::new(MajorityConfig::new([1, 2, 3]), MajorityConfig::default());
        assert!(!simple.is_joint());
        assert_eq!(simple.committed_index(acks), 20);
        let joint = JointConfig::new(
            MajorityConfig::new([1, 2, 3]),
            MajorityConfig::new([3, 4, 5]),
        );
        assert!(joint.is_joint());
        assert_eq!(joint.committed_index(acks), 20);
        let joint = JointConfig::new(
            MajorityConfig::new([4, 5, 6]),
            MajorityConfig::new([1, 2, 3]),
        );
        assert_eq!(joint.committed_index(acks), 20);
        assert_eq!(joint.to_string(), "(4 5 6)&&(1 2 3)");
        assert_eq!(JointConfig::default().committed_index(acks), u64::MAX);
    }

    #[test]
    fn vote_result_table() {
        use VoteResult::*;
        let cases: &[VoteCase] = &[
            (&[], &[], Won),
            (&[1], &[], Pending),
            (&[1], &[(1, true)], Won),
            (&[1], &[(1, false)], Lost),
            (&[1, 2], &[(1, true)], Pending),
            (&[1, 2], &[(1, true), (2, false)], Lost),
            (&[1, 2, 3], &[(1, true)], Pending),
            (&[1, 2, 3], &[(1, true), (2, true)], Won),
            (&[1, 2, 3], &[(1, true), (2, false)], Pending),
            (&[1, 2, 3], &[(1, false), (2, false)], Lost),
            // Votes from non-voters count for nothing.
            (&[1, 2, 3], &[(1, true), (4, true), (5, true)], Pending),
            (&[1, 2, 3, 4], &[(1, true), (2, true), (3, false)], Pending),
            (&[1, 2, 3, 4], &[(1, true), (2, false), (3, false)], Lost),
        ];
        for &(voters, votes, want) in cases {
            let cfg = MajorityConfig::new(voters.iter().copied());
            let votes: BTreeMap<u64, bool> = votes.iter().copied().collect();
            let got = cfg.vote_result(|id| votes.get(&id).copied());
            assert_eq!(got, want, "voters {voters:?} votes {votes:?}");
        }
    }

    #[test]
    fn joint_vote_result_table() {
        use VoteResult::*;
        let joint = JointConfig::new(
            MajorityConfig::new([1, 2, 3]),
            MajorityConfig::new([3, 4, 5]),
        );
        let run = |votes: &[(u64, bool)]| {
            let votes: BTreeMap<u64, bool> = votes.iter().copied().collect();
            joint.vote_result(|id| votes.get(&id).copied())
        };
        assert_eq!(run(&[]), Pending);
        // A majority of the incoming half alone is not enough.
        assert_eq!(run(&[(1, true), (2, true)]), Pending);
        assert_eq!(run(&[(1, true), (2, true), (3, true)]), Pending);
        assert_eq!(run(&[(1, true), (3, true), (4, true)]), Won);
        // Losing either half loses the election.
        assert_eq!(run(&[(1, true), (2, true), (4, false), (5, false)]), Lost);
        assert_eq!(run(&[(1, false), (2, false), (4, true), (5, true)]), Lost);
    }
}
