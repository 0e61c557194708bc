//! The configuration changer: pure functions from a configuration and a membership change to
//! the next configuration, or a typed error. No Raft roles, no I/O.
//!
//! Three moves (Raft thesis §4.3, etcd's `confchange`):
//!
//! ```text
//!   C ──simple (≤ 1 voter changed)──► C'
//!   C ──enter joint──► C_new && C_old ──leave joint──► C_new
//! ```
//!
//! Invariants of every configuration returned (the same ones `conf_state_is_valid` checks
//! on input from peers):
//! 1. At least one voter in the incoming half; no id 0.
//! 2. No id is both a learner and a voter (in either half).
//! 3. `learners_next` holds only outgoing voters that are not incoming voters.
//! 4. Outside a joint configuration `voters_outgoing`, `learners_next` are empty and
//!    `auto_leave` is false.
//! 5. Every list is ascending and free of duplicates.

use crate::wire::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
};
use std::collections::BTreeSet;
use thiserror::Error;

/// Why a membership change cannot be made.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeError {
    /// Entering a joint configuration while in one.
    #[error("already in a joint configuration")]
    AlreadyJoint,
    /// Leaving a joint configuration while not in one.
    #[error("not in a joint configuration")]
    NotJoint,
    /// A simple change may add or remove at most one voter; use a joint change.
    #[error("a simple change may change at most one voter ({changed} changed)")]
    TooManyVoterChanges {
        /// Voters added plus voters removed.
        changed: usize,
    },
    /// The change would leave no voter.
    #[error("the change removes every voter")]
    NoVoters,
    /// Node id 0 means "nobody".
    #[error("node id 0")]
    ZeroId,
    /// A change kind this build does not know.
    #[error("unknown change type {change_type}")]
    UnknownType {
        /// The raw kind.
        change_type: i32,
    },
    /// An unknown transition kind.
    #[error("unknown transition {transition}")]
    UnknownTransition {
        /// The raw kind.
        transition: i32,
    },
}

/// A working copy of a configuration, as sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Sets {
    incoming: BTreeSet<u64>,
    outgoing: BTreeSet<u64>,
    learners: BTreeSet<u64>,
    learners_next: BTreeSet<u64>,
    auto_leave: bool,
}

impl Sets {
    fn from(cs: &ConfState) -> Sets {
        Sets {
            incoming: cs.voters.iter().copied().collect(),
            outgoing: cs.voters_outgoing.iter().copied().collect(),
            learners: cs.learners.iter().copied().collect(),
            learners_next: cs.learners_next.iter().copied().collect(),
            auto_leave: cs.auto_leave,
        }
    }

    fn into_conf_state(self) -> ConfState {
        ConfState {
            voters: self.incoming.into_iter().collect(),
            learners: self.learners.into_iter().collect(),
            voters_outgoing: self.outgoing.into_iter().collect(),
            learners_next: self.learners_next.into_iter().collect(),
            auto_leave: self.auto_leave,
        }
    }

    fn joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    fn apply(&mut self, change: &ConfChangeSingle) -> Result<(), ChangeError> {
        let id = change.node_id;
        if id == 0 {
            return Err(ChangeError::ZeroId);
        }
        let kind =
            ConfChangeType::try_from(change.change_type).map_err(|_| ChangeError::UnknownType {
                change_type: change.change_type,
            })?;
        match kind {
            ConfChangeType::AddNode => {
                self.learners.remove(&id);
                self.learners_next.remove(&id);
                self.incoming.insert(id);
            }
            ConfChangeType::AddLearnerNode => {
                self.incoming.remove(&id);
                if self.outgoing.contains(&id) {
                    // Still votes in the outgoing half: becomes a learner on leaving.
                    self.learners_next.insert(id);
                } else {
                    self.learners.insert(id);
                }
            }
            ConfChangeType::RemoveNode => {
                self.incoming.remove(&id);
                self.learners.remove(&id);
                self.learners_next.remove(&id);
            }
            ConfChangeType::UpdateNode => {}
        }
        Ok(())
    }

    fn check(&self) -> Result<(), ChangeError> {
        if self.incoming.is_empty() {
            return Err(ChangeError::NoVoters);
        }
        debug_assert!(
            self.learners.is_disjoint(&self.incoming),
            "learner is not a voter"
        );
        debug_assert!(
            self.learners.is_disjoint(&self.outgoing),
            "learner is not a voter"
        );
        debug_assert!(
            self.learners_next.is_subset(&self.outgoing),
            "demotions are outgoing"
        );
        debug_assert!(
            self.learners_next.is_disjoint(&self.incoming),
            "demotions left incoming"
        );
        Ok(())
    }
}

/// Applies `changes` as a simple change: at most one voter added or removed.
///
/// # Errors
/// [`ChangeError`] when joint, when more than one voter would change, or when the result is
/// invalid.
pub fn simple(cs: &ConfState, changes: &[ConfChangeSingle]) -> Result<ConfState, ChangeError> {
    let mut s = Sets::from(cs);
    if s.joint() {
        return Err(ChangeError::AlreadyJoint);
    }
    let before = s.incoming.clone();
    for c in changes {
        s.apply(c)?;
    }
    let changed = before.symmetric_difference(&s.incoming).count();
    if changed > 1 {
        return Err(ChangeError::TooManyVoterChanges { changed });
    }
    s.check()?;
    Ok(s.into_conf_state())
}

/// Enters the joint configuration `C_new && C_old`, where `C_new` is `cs` with `changes`.
///
/// # Errors
/// [`ChangeError`] when already joint or when the result is invalid.
pub fn enter_joint(
    cs: &ConfState,
    auto_leave: bool,
    changes: &[ConfChangeSingle],
) -> Result<ConfState, ChangeError> {
    let mut s = Sets::from(cs);
    if s.joint() {
        return Err(ChangeError::AlreadyJoint);
    }
    s.outgoing = s.incoming.clone();
    for c in changes {
        s.apply(c)?;
    }
    s.auto_leave = auto_leave;
    s.check()?;
    if s.outgoing.is_empty() {
        return Err(ChangeError::NoVoters);
    }
    Ok(s.into_conf_state())
}

/// Leaves a joint configuration: the outgoing half goes, demoted voters become learners.
///
/// # Errors
/// [`ChangeError::NotJoint`] when not joint.
pub fn leave_joint(cs: &ConfState) -> Result<ConfState, ChangeError> {
    let mut s = Sets::from(cs);
    if !s.joint() {
        return Err(ChangeError::NotJoint);
    }
    let demoted = std::mem::take(&mut s.learners_next);
    s.learners.extend(demoted);
    s.outgoing.clear();
    s.auto_leave = false;
    s.check()?;
    Ok(s.into_conf_state())
}

/// Applies a [`ConfChangeV2`] as etcd defines it: no changes means "leave the joint
/// configuration"; a single change with the `Auto` transition is simple; anything else enters
/// a joint configuration, left automatically unless the transition is `JointExplicit`.
///
/// # Errors
/// [`ChangeError`] for an invalid change.
pub fn apply(cs: &ConfState, cc: &ConfChangeV2) -> Result<ConfState, ChangeError> {
    let transition = ConfChangeTransition::try_from(cc.transition).map_err(|_| {
        ChangeError::UnknownTransition {
            transition: cc.transition,
        }
    })?;
    if cc.changes.is_empty() {
        return leave_joint(cs);
    }
    match transition {
        ConfChangeTransition::Auto if cc.changes.len() == 1 => simple(cs, &cc.changes),
        ConfChangeTransition::Auto | ConfChangeTransition::JointImplicit => {
            enter_joint(cs, true, &cc.changes)
        }
        ConfChangeTransition::JointExplicit => enter_joint(cs, false, &cc.changes),
    }
}

impl From<ConfChange> for ConfChangeV2 {
    fn from(cc: ConfChange) -> ConfChangeV2 {
        ConfChangeV2 {
            transition: ConfChangeTransition::Auto as i32,
            changes: vec![ConfChangeSingle {
                change_type: cc.change_type,
                node_id: cc.node_id,
            }],
            context: cc.context,
        }
    }
}

impl ConfChangeSingle {
    /// A single change of `kind` about `node_id`.
    pub fn new(kind: ConfChangeType, node_id: u64) -> ConfChangeSingle {
        ConfChangeSingle {
            change_type: kind as i32,
            node_id,
        }
    }
}

impl ConfChangeV2 {
    /// A change of `changes` with the given transition.
    pub fn new(transition: ConfChangeTransition, changes: Vec<ConfChangeSingle>) -> ConfChangeV2 {
        ConfChangeV2 {
            transition: transition as i32,
            changes,
            context: bytes::Bytes::new(),
        }
    }

    /// The change that leaves a joint configuration (no changes).
    pub fn leave_joint() -> ConfChangeV2 {
        ConfChangeV2::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConfChangeType::{AddLearnerNode as L, AddNode as V, RemoveNode as R};
    use quickcheck::{Arbitrary, Gen, QuickCheck};

    fn cs(voters: &[u64], learners: &[u64]) -> ConfState {
        ConfState {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            ..ConfState::default()
        }
    }

    fn ch(list: &[(ConfChangeType, u64)]) -> Vec<ConfChangeSingle> {
        list.iter()
            .map(|(k, id)| ConfChangeSingle::new(*k, *id))
            .collect()
    }

    #[test]
    fn simple_changes_table() {
        let base = cs(&[1, 2, 3], &[]);
        type Case = (Vec<(ConfChangeType, u64)>, Result<ConfState, ChangeError>);
        let cases: Vec<Case> = vec![
            (vec![(V, 4)], Ok(cs(&[1, 2, 3, 4], &[]))),
            (vec![(R, 3)], Ok(cs(&[1, 2], &[]))),
            (vec![(L, 4)], Ok(cs(&[1, 2, 3], &[4]))),
            (vec![(L, 3)], Ok(cs(&[1, 2], &[3]))),
            (vec![(V, 3)], Ok(cs(&[1, 2, 3], &[]))),
            (vec![(R, 9)], Ok(cs(&[1, 2, 3], &[]))),
            (
                vec![(V, 4), (V, 5)],
                Err(ChangeError::TooManyVoterChanges { changed: 2 }),
            ),
            (
                vec![(R, 1), (V, 4)],
                Err(ChangeError::TooManyVoterChanges { changed: 2 }),
            ),
            (vec![(V, 0)], Err(ChangeError::ZeroId)),
        ];
        for (changes, want) in cases {
            assert_eq!(simple(&base, &ch(&changes)), want, "{changes:?}");
        }
        assert_eq!(
            simple(&cs(&[1], &[]), &ch(&[(R, 1)])),
            Err(ChangeError::NoVoters)
        );
        let promoted = simple(&cs(&[1, 2, 3], &[4]), &ch(&[(V, 4)]));
        assert_eq!(
            promoted,
            Ok(cs(&[1, 2, 3, 4], &[])),
            "a learner is promoted"
        );
    }

    #[test]
    fn joint_changes_table() {
        let base = cs(&[1, 2, 3], &[]);
        let joint = enter_joint(&base, true, &ch(&[(R, 3), (V, 4), (L, 2)])).expect("valid");
        assert_eq!(joint.voters, vec![1, 4]);
        assert_eq!(joint.voters_outgoing, vec![1, 2, 3]);
        assert_eq!(
            joint.learners_next,
            vec![2],
            "a demoted voter waits in learners_next"
        );
        assert!(joint.learners.is_empty());
        assert!(joint.auto_leave);
        assert_eq!(
            enter_joint(&joint, true, &ch(&[(V, 5)])),
            Err(ChangeError::AlreadyJoint)
        );
        assert_eq!(
            simple(&joint, &ch(&[(V, 5)])),
            Err(ChangeError::AlreadyJoint)
        );
        let left = leave_joint(&joint).expect("joint");
        assert_eq!(left, cs(&[1, 4], &[2]));
        assert_eq!(leave_joint(&left), Err(ChangeError::NotJoint));
        let gone = enter_joint(&base, false, &ch(&[(R, 1), (R, 2), (R, 3)]));
        assert_eq!(gone, Err(ChangeError::NoVoters));
    }

    #[test]
    fn v2_transitions_follow_etcd() {
        let base = cs(&[1, 2, 3], &[]);
        let one = ConfChangeV2::new(ConfChangeTransition::Auto, ch(&[(V, 4)]));
        assert!(
            apply(&base, &one)
                .expect("valid")
                .voters_outgoing
                .is_empty(),
            "auto 1 = simple"
        );
        let two = ConfChangeV2::new(ConfChangeTransition::Auto, ch(&[(V, 4), (V, 5)]));
        let j = apply(&base, &two).expect("valid");
        assert!(
            j.auto_leave && !j.voters_outgoing.is_empty(),
            "auto 2 = joint, auto leave"
        );
        let explicit = ConfChangeV2::new(ConfChangeTransition::JointExplicit, ch(&[(V, 4)]));
        let j = apply(&base, &explicit).expect("valid");
        assert!(!j.auto_leave && !j.voters_outgoing.is_empty());
        assert_eq!(
            apply(&j, &ConfChangeV2::leave_joint())
                .expect("joint")
                .voters,
            vec![1, 2, 3, 4]
        );
        let bad = ConfChangeV2 {
            transition: 9,
            ..one
        };
        assert_eq!(
            apply(&base, &bad),
            Err(ChangeError::UnknownTransition { transition: 9 })
        );
    }

    #[derive(Clone, Debug)]
    struct Steps(Vec<(u8, u64)>);

    impl Arbitrary for Steps {
        fn arbitrary(g: &mut Gen) -> Steps {
            let n = usize::arbitrary(g) % 8;
            Steps(
                (0..n)
                    .map(|_| (u8::arbitrary(g) % 3, u64::arbitrary(g) % 7 + 1))
                    .collect(),
            )
        }
    }

    /// Any sequence of valid simple changes, applied one by one, ends at the same
    /// configuration as one joint change of all of them followed by leaving.
    #[test]
    fn simple_steps_and_the_equivalent_joint_change_agree() {
        fn prop(steps: Steps) -> bool {
            let kinds = [V, L, R];
            let mut via_simple = cs(&[1, 2, 3], &[]);
            let mut applied = Vec::new();
            for (k, id) in steps.0 {
                let c = ConfChangeSingle::new(kinds[k as usize], id);
                if let Ok(next) = simple(&via_simple, std::slice::from_ref(&c)) {
                    via_simple = next;
                    applied.push(c);
                }
            }
            if applied.is_empty() {
                return true;
            }
            let joint = enter_joint(&cs(&[1, 2, 3], &[]), true, &applied).expect("valid");
            leave_joint(&joint).expect("joint") == via_simple
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop as fn(Steps) -> bool);
    }
}
