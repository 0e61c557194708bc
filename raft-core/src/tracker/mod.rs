//! The leader's bookkeeping of every peer: the configuration, one [`Progress`] per member, and
//! the votes of an election.
//!
//! The tracker owns *which* peers exist and what the quorum rules are ([`TrackerConfig`]); each
//! [`Progress`] owns the transitions of one peer's replication state. The role logic asks the
//! tracker the cluster-wide questions: the committed index ([`ProgressTracker::committed`]),
//! whether a quorum was recently heard from ([`ProgressTracker::quorum_active`]), and how an
//! election stands ([`ProgressTracker::tally_votes`]). The arithmetic behind the answers is in
//! [`crate::quorum`].
//!
//! Invariants (checked by [`ProgressTracker::check_invariants`]):
//! 1. There is a [`Progress`] for exactly the ids in the configuration: the voters of both
//!    halves and the learners (`learners_next` are outgoing voters, so they are included),
//!    kept in ascending id order.
//! 2. A learner is a voter in neither half.
//! 3. Every id in `learners_next` is an outgoing voter and not an incoming voter: a voter being
//!    demoted keeps voting in the outgoing half until the joint configuration is left.
//! 4. Outside a joint configuration, `learners_next` is empty and `auto_leave` is false.
//! 5. `Progress::is_learner` is true exactly for the ids in `learners`.
//!
//! Reference: Raft thesis §4.3 (joint consensus); etcd's `tracker/tracker.go`.

mod inflights;
mod progress;

pub use inflights::Inflights;
pub use progress::{Progress, ProgressState};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::quorum::{
    JointConfig, MajorityConfig, STACK_VOTERS_MAX, VoteResult, committed_index_of,
};
use crate::wire::ConfState;

/// A cluster configuration as the tracker holds it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TrackerConfig {
    /// The voters: the incoming half, and the outgoing half while joint.
    pub voters: JointConfig,
    /// Learners: replicated to, never counted in a quorum (invariant 2).
    pub learners: BTreeSet<u64>,
    /// Outgoing voters that become learners when the joint configuration is left (invariant 3).
    pub learners_next: BTreeSet<u64>,
    /// Whether the leader leaves the joint configuration by itself once it is committed.
    pub auto_leave: bool,
}

impl TrackerConfig {
    /// The configuration described by `cs`.
    pub fn from_conf_state(cs: &ConfState) -> TrackerConfig {
        TrackerConfig {
            voters: JointConfig::new(
                MajorityConfig::new(cs.voters.iter().copied()),
                MajorityConfig::new(cs.voters_outgoing.iter().copied()),
            ),
            learners: cs.learners.iter().copied().collect(),
            learners_next: cs.learners_next.iter().copied().collect(),
            auto_leave: cs.auto_leave,
        }
    }

    /// The configuration as a [`ConfState`], every list ascending.
    pub fn to_conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.incoming.ids().collect(),
            learners: self.learners.iter().copied().collect(),
            voters_outgoing: self.voters.outgoing.ids().collect(),
            learners_next: self.learners_next.iter().copied().collect(),
            auto_leave: self.auto_leave,
        }
    }

    /// Every id of the configuration, ascending: voters of both halves and learners.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: BTreeSet<u64> = self.voters.ids().into_iter().collect();
        ids.extend(self.learners.iter().copied());
        ids.into_iter().collect()
    }

    /// Asserts invariants 2 to 4.
    pub fn check_invariants(&self) {
        for &id in &self.learners {
            assert!(
                !self.voters.contains(id),
                "tracker config: learner {id} is also a voter"
            );
        }
        for &id in &self.learners_next {
            assert!(
                self.voters.outgoing.contains(id),
                "tracker config: learner_next {id} is not an outgoing voter"
            );
            assert!(
                !self.voters.incoming.contains(id),
                "tracker config: learner_next {id} is an incoming voter"
            );
        }
        if !self.voters.is_joint() {
            assert!(
                self.learners_next.is_empty(),
                "tracker config: learners_next while not joint"
            );
            assert!(
                !self.auto_leave,
                "tracker config: auto_leave while not joint"
            );
        }
    }
}

impl fmt::Display for TrackerConfig {
    /// etcd's notation: `voters=(1 2 3)&&(1 2 4) learners=(5) learners_next=(4) autoleave`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "voters={}", self.voters)?;
        if !self.learners.is_empty() {
            write!(
                f,
                " learners={}",
                MajorityConfig::new(self.learners.iter().copied())
            )?;
        }
        if !self.learners_next.is_empty() {
            write!(
                f,
                " learners_next={}",
                MajorityConfig::new(self.learners_next.iter().copied())
            )?;
        }
        if self.auto_leave {
            f.write_str(" autoleave")?;
        }
        Ok(())
    }
}

/// The configuration, the [`Progress`] of every member, and the votes of the current election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressTracker {
    /// The current configuration. Change it through [`ProgressTracker::apply_conf`], which keeps
    /// the progress map in step (invariant 1).
    pub config: TrackerConfig,
    /// One entry per member of `config`, sorted by id. Clusters are small (3 to 7 members),
    /// and the leader looks a peer up on every acknowledgement: a sorted `Vec` is a few
    /// compares over one cache line where a `BTreeMap` walks nodes.
    progress: Vec<(u64, Progress)>,
    /// Votes received in the current election; the first vote of an id counts.
    votes: BTreeMap<u64, bool>,
    /// The in-flight window of each new [`Progress`]: message count.
    inflight_msgs_max: usize,
    /// The in-flight window of each new [`Progress`]: payload bytes (0 = no limit).
    inflight_bytes_max: u64,
}

impl ProgressTracker {
    /// An empty tracker (no members) whose peers will get in-flight windows of
    /// `inflight_msgs_max` messages and `inflight_bytes_max` bytes (0 = no byte limit).
    ///
    /// # Panics
    ///
    /// If `inflight_msgs_max` is 0.
    pub fn new(inflight_msgs_max: usize, inflight_bytes_max: u64) -> ProgressTracker {
        assert!(
            inflight_msgs_max > 0,
            "tracker: inflight_msgs_max must be at least 1"
        );
        ProgressTracker {
            config: TrackerConfig::default(),
            progress: Vec::new(),
            votes: BTreeMap::new(),
            inflight_msgs_max,
            inflight_bytes_max,
        }
    }

    /// Replaces the configuration with `cs`.
    ///
    /// Members that stay keep their [`Progress`] (with `is_learner` updated: a promoted learner
    /// becomes a voter in place). New members get `Progress::new(next_idx, ..)`, marked recently
    /// active so that a check-quorum round right after the change does not count them against
    /// the leader before they had a chance to answer. Members that left are dropped.
    ///
    /// # Panics
    ///
    /// If `cs` breaks invariants 2 to 4 (a configuration is produced by the role logic and is
    /// valid by construction), or if `next_idx` is 0.
    pub fn apply_conf(&mut self, cs: &ConfState, next_idx: u64) {
        let config = TrackerConfig::from_conf_state(cs);
        config.check_invariants();
        let ids = config.ids();
        let mut old: BTreeMap<u64, Progress> =
            std::mem::take(&mut self.progress).into_iter().collect();
        // `ids` is ascending, so the new list is sorted by id.
        for id in ids {
            let mut pr = old.remove(&id).unwrap_or_else(|| {
                let mut pr =
                    Progress::new(next_idx, self.inflight_msgs_max, self.inflight_bytes_max);
                pr.recent_active = true;
                pr
            });
            pr.is_learner = config.learners.contains(&id);
            self.progress.push((id, pr));
        }
        self.config = config;
        self.check_invariants_shallow();
    }

    /// The configuration as a [`ConfState`], every list ascending.
    pub fn conf_state(&self) -> ConfState {
        self.config.to_conf_state()
    }

    /// The progress of member `id`.
    #[inline]
    pub fn get(&self, id: u64) -> Option<&Progress> {
        let at = self.position(id)?;
        Some(&self.progress[at].1)
    }

    /// The progress of member `id`, mutable.
    #[inline]
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Progress> {
        let at = self.position(id)?;
        Some(&mut self.progress[at].1)
    }

    /// Every member's progress, by ascending id.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Progress)> {
        self.progress.iter().map(|(id, pr)| (*id, pr))
    }

    /// Every member's progress, mutable, by ascending id.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut Progress)> {
        self.progress.iter_mut().map(|(id, pr)| (*id, pr))
    }

    /// Whether `id` is the only member (a lone node has no peer to replicate to).
    #[inline]
    pub fn is_only_member(&self, id: u64) -> bool {
        matches!(self.progress.as_slice(), [(only, _)] if *only == id)
    }

    /// Every member id, ascending (voters and learners).
    pub fn ids(&self) -> Vec<u64> {
        self.progress.iter().map(|(id, _)| *id).collect()
    }

    /// Where member `id` is in `progress`. A linear scan: the list is a handful of members,
    /// sorted, so the scan stops early and never mispredicts much.
    #[inline]
    fn position(&self, id: u64) -> Option<usize> {
        self.progress
            .iter()
            .position(|(i, _)| *i >= id)
            .filter(|&at| self.progress[at].0 == id)
    }

    /// Whether `id` is a voter in either half of the configuration (an id in `learners_next`
    /// still is, until the joint configuration is left).
    #[inline]
    pub fn is_voter(&self, id: u64) -> bool {
        self.config.voters.contains(id)
    }

    /// Whether `id` is a learner.
    pub fn is_learner(&self, id: u64) -> bool {
        self.config.learners.contains(&id)
    }

    /// Whether the configuration has exactly one voter and is not joint: such a node commits
    /// and wins elections on its own.
    #[inline]
    pub fn is_singleton(&self) -> bool {
        !self.config.voters.is_joint() && self.config.voters.incoming.len() == 1
    }

    /// The largest index replicated on a quorum of voters (both halves while joint), from the
    /// voters' `matched`. With no voters at all this is `u64::MAX` (see [`crate::quorum`]); the
    /// caller clamps it to its log.
    #[inline]
    pub fn committed(&self) -> u64 {
        let voters = &self.config.voters;
        let n = self.progress.len();
        if !voters.is_joint() && voters.incoming.len() == n && n <= STACK_VOTERS_MAX {
            // Not joint and as many voters as members: every member is a voter (invariant 1),
            // so the matches are read off the list instead of looked up by id. The leader
            // asks on every acknowledgement.
            let mut acked = [0u64; STACK_VOTERS_MAX];
            for (slot, (_, pr)) in acked.iter_mut().zip(&self.progress) {
                *slot = pr.matched;
            }
            return committed_index_of(&mut acked[..n]);
        }
        voters.committed_index(|id| self.get(id).map(|pr| pr.matched))
    }

    /// Whether the voters marked `recent_active` form a quorum (of both halves while joint).
    pub fn quorum_active(&self) -> bool {
        let active = |id: u64| self.get(id).map(|pr| pr.recent_active);
        self.config.voters.vote_result(active) == VoteResult::Won
    }

    /// Forgets every recorded vote (a new election starts).
    pub fn reset_votes(&mut self) {
        self.votes.clear();
    }

    /// Records `id`'s vote; a repeated vote from the same id in one election is ignored, so
    /// a duplicated or reordered response cannot flip it.
    pub fn record_vote(&mut self, id: u64, granted: bool) {
        self.votes.entry(id).or_insert(granted);
    }

    /// The vote recorded for `id` in this election, if any.
    pub fn vote(&self, id: u64) -> Option<bool> {
        self.votes.get(&id).copied()
    }

    /// The election so far: grants and rejections counted over voters only (votes from
    /// non-voters are recorded but do not count), and the result under the joint rules.
    pub fn tally_votes(&self) -> (usize, usize, VoteResult) {
        let (mut granted, mut rejected) = (0, 0);
        for id in self.config.voters.ids() {
            match self.votes.get(&id) {
                Some(true) => granted += 1,
                Some(false) => rejected += 1,
                None => {}
            }
        }
        let result = self
            .config
            .voters
            .vote_result(|id| self.votes.get(&id).copied());
        (granted, rejected, result)
    }

    /// Asserts invariants 1 to 5 and every member's [`Progress::check_invariants`]. O(members).
    pub fn check_invariants(&self) {
        self.check_invariants_shallow();
        for (_, pr) in &self.progress {
            pr.check_invariants();
        }
    }

    /// Invariants 1 to 5 without descending into each progress.
    fn check_invariants_shallow(&self) {
        self.config.check_invariants();
        let ids = self.config.ids();
        assert!(
            self.progress
                .iter()
                .map(|(id, _)| *id)
                .eq(ids.iter().copied()),
            "tracker: progress ids {:?} are not the configuration's {ids:?}",
            self.ids()
        );
        for &(id, ref pr) in &self.progress {
            assert_eq!(
                pr.is_learner,
                self.config.learners.contains(&id),
                "tracker: is_learner of {id} disagrees with the configuration"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen, QuickCheck};

    fn cs(voters: &[u64], learners: &[u64]) -> ConfState {
        ConfState {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            ..ConfState::default()
        }
    }

    fn joint(incoming: &[u64], outgoing: &[u64], learners: &[u64], next: &[u64]) -> ConfState {
        ConfState {
            voters: incoming.to_vec(),
            learners: learners.to_vec(),
            voters_outgoing: outgoing.to_vec(),
            learners_next: next.to_vec(),
            auto_leave: false,
        }
    }

    fn tracker(cs: &ConfState) -> ProgressTracker {
        let mut trk = ProgressTracker::new(4, 0);
        trk.apply_conf(cs, 1);
        trk
    }

    #[test]
    fn apply_conf_keeps_progress_of_ids_that_stay_and_drops_the_rest() {
        let mut trk = tracker(&cs(&[1, 2, 3], &[]));
        trk.get_mut(2).unwrap().maybe_update(7);
        trk.apply_conf(&cs(&[2, 4], &[5]), 10);
        trk.check_invariants();
        assert_eq!(trk.ids(), vec![2, 4, 5]);
        assert_eq!(
            trk.get(2).unwrap().matched,
            7,
            "a staying member keeps its progress"
        );
        let new = trk.get(4).unwrap();
        assert_eq!(
            (new.matched, new.next_idx, new.state),
            (0, 10, ProgressState::Probe)
        );
        assert!(new.recent_active, "a new member starts recently active");
        assert!(trk.get(1).is_none() && trk.get(3).is_none());
    }

    #[test]
    fn apply_conf_marks_learners_and_promotes_in_place() {
        let mut trk = tracker(&cs(&[1], &[2]));
        assert!(trk.is_learner(2) && !trk.is_voter(2) && trk.get(2).unwrap().is_learner);
        trk.get_mut(2).unwrap().maybe_update(3);
        trk.apply_conf(&cs(&[1, 2], &[]), 10);
        let pr = trk.get(2).unwrap();
        assert!(!pr.is_learner && trk.is_voter(2) && !trk.is_learner(2));
        assert_eq!(pr.matched, 3, "promotion keeps the progress");
    }

    #[test]
    fn learners_next_are_still_voters_until_the_joint_config_is_left() {
        let trk = tracker(&joint(&[1, 2], &[1, 2, 3], &[], &[3]));
        trk.check_invariants();
        assert!(trk.is_voter(3) && !trk.is_learner(3) && !trk.get(3).unwrap().is_learner);
        assert_eq!(
            trk.config.to_string(),
            "voters=(1 2)&&(1 2 3) learners_next=(3)"
        );
    }

    #[test]
    #[should_panic(expected = "is also a voter")]
    fn apply_conf_rejects_a_learner_that_is_also_a_voter() {
        tracker(&cs(&[1, 2], &[2]));
    }

    #[test]
    #[should_panic(expected = "is not an outgoing voter")]
    fn apply_conf_rejects_learners_next_that_are_not_outgoing_voters() {
        tracker(&joint(&[1, 2], &[], &[], &[3]));
    }

    #[test]
    #[should_panic(expected = "auto_leave while not joint")]
    fn apply_conf_rejects_auto_leave_outside_a_joint_config() {
        tracker(&ConfState {
            auto_leave: true,
            ..cs(&[1, 2], &[])
        });
    }

    #[test]
    fn is_singleton_needs_one_voter_and_no_joint() {
        assert!(tracker(&cs(&[1], &[])).is_singleton());
        assert!(
            tracker(&cs(&[1], &[2, 3])).is_singleton(),
            "learners do not count"
        );
        assert!(!tracker(&cs(&[1, 2], &[])).is_singleton());
        assert!(!tracker(&joint(&[1], &[2], &[], &[])).is_singleton());
        assert!(!tracker(&cs(&[], &[])).is_singleton());
    }

    #[test]
    fn committed_is_the_joint_quorum_of_voters_matched() {
        let mut trk = tracker(&joint(&[1, 2, 3], &[3, 4, 5], &[6], &[]));
        for (id, m) in [(1, 9), (2, 8), (3, 3), (4, 5), (5, 1), (6, 100)] {
            trk.get_mut(id).unwrap().maybe_update(m);
        }
        // incoming (9 8 3) -> 8; outgoing (3 5 1) -> 3; the learner's 100 counts nowhere.
        assert_eq!(trk.committed(), 3);
        trk.apply_conf(&cs(&[1, 2, 3], &[6]), 1);
        assert_eq!(trk.committed(), 8);
    }

    #[test]
    fn quorum_active_counts_only_voters() {
        let mut trk = tracker(&cs(&[1, 2, 3], &[4, 5]));
        for (_, pr) in trk.iter_mut() {
            pr.recent_active = false;
        }
        trk.get_mut(4).unwrap().recent_active = true;
        trk.get_mut(5).unwrap().recent_active = true;
        trk.get_mut(1).unwrap().recent_active = true;
        assert!(!trk.quorum_active());
        trk.get_mut(3).unwrap().recent_active = true;
        assert!(trk.quorum_active());
    }

    #[test]
    fn first_vote_of_an_id_wins_and_only_voters_are_tallied() {
        let mut trk = tracker(&cs(&[1, 2, 3], &[4]));
        trk.record_vote(1, true);
        trk.record_vote(1, false);
        trk.record_vote(4, true);
        trk.record_vote(9, true);
        assert_eq!(trk.vote(1), Some(true));
        assert_eq!(trk.tally_votes(), (1, 0, VoteResult::Pending));
        trk.record_vote(2, false);
        assert_eq!(trk.tally_votes(), (1, 1, VoteResult::Pending));
        trk.record_vote(3, true);
        assert_eq!(trk.tally_votes(), (2, 1, VoteResult::Won));
        trk.reset_votes();
        assert_eq!(trk.tally_votes(), (0, 0, VoteResult::Pending));
    }

    #[test]
    fn joint_election_needs_both_halves() {
        let mut trk = tracker(&joint(&[1, 2, 3], &[3, 4, 5], &[], &[]));
        for id in [1, 2] {
            trk.record_vote(id, true);
        }
        assert_eq!(trk.tally_votes(), (2, 0, VoteResult::Pending));
        trk.record_vote(4, false);
        trk.record_vote(5, false);
        assert_eq!(trk.tally_votes(), (2, 2, VoteResult::Lost));
    }

    /// A valid configuration over ids 1..=8: each id draws a role.
    #[derive(Clone, Debug)]
    struct ValidConf(ConfState);

    impl Arbitrary for ValidConf {
        fn arbitrary(g: &mut Gen) -> ValidConf {
            let mut cs = ConfState::default();
            for id in 1..=8u64 {
                match u8::arbitrary(g) % 7 {
                    0 | 1 => {}
                    2 => cs.voters.push(id),
                    3 => cs.voters_outgoing.push(id),
                    4 => {
                        cs.voters.push(id);
                        cs.voters_outgoing.push(id);
                    }
                    5 => cs.learners.push(id),
                    _ => {
                        cs.voters_outgoing.push(id);
                        cs.learners_next.push(id);
                    }
                }
            }
            cs.auto_leave = !cs.voters_outgoing.is_empty() && bool::arbitrary(g);
            ValidConf(cs)
        }
    }

    #[test]
    fn apply_conf_tracks_exactly_the_members_and_round_trips() {
        fn prop(confs: Vec<ValidConf>) -> bool {
            let mut trk = ProgressTracker::new(4, 0);
            for (round, ValidConf(cs)) in confs.into_iter().enumerate() {
                // Stamp each existing member with matched = id so survivors can be recognised.
                for (id, pr) in trk.iter_mut() {
                    pr.maybe_update(id);
                }
                let before = trk.ids();
                let next_idx = round as u64 + 100;
                trk.apply_conf(&cs, next_idx);
                trk.check_invariants();
                if trk.conf_state() != cs {
                    return false;
                }
                for (id, pr) in trk.iter() {
                    let want = if before.contains(&id) { id } else { 0 };
                    if pr.matched != want || (want == 0 && pr.next_idx != next_idx) {
                        return false;
                    }
                }
            }
            true
        }
        QuickCheck::new()
            .tests(500)
            .quickcheck(prop as fn(Vec<ValidConf>) -> bool);
    }
}
