//! Configuration safety: the chain of configurations the nodes apply, checked against an
//! independent model of legal membership transitions, and the quorum math the other checkers
//! use once membership changes.
//!
//! Every node reports each configuration it applies, at the index of the change that made it
//! (the driver decodes each configuration-change entry and follows it with raft-core's
//! `confchange::apply`, and compares the result with the `conf_state` the apply batch
//! announces). The chain is the map index → configuration over all nodes. It must satisfy:
//!
//! 1. agreement: two nodes that apply a configuration at the same index apply the same one
//!    (and a node that starts from a snapshot or restarts holds the chain's configuration as
//!    of its applied index);
//! 2. legality: consecutive configurations of the chain differ by one legal step, checked by
//!    [`legal_transition`], a model written here from the thesis (§4.3) rather than by calling
//!    raft-core: a simple change of at most one voter, entering a joint configuration whose
//!    outgoing half is the previous voters, or leaving one (demoted voters become learners);
//!    never from one joint configuration to another.
//!
//! Legality gives quorum overlap: a majority of a voter set and a majority of that set with one
//! voter added or removed always share a node, and a joint configuration's quorums are quorums
//! of both halves. With at most one change in flight (checked by the driver on every leader:
//! a leader never holds a configuration change after an unapplied one, see
//! [`check_one_change_in_flight`]), the configurations that can be in use at once are adjacent
//! in the chain, so any two of them have overlapping quorums.
//!
//! Invariants:
//! 1. The chain always holds the founding configuration at index 1.
//! 2. Entries are inserted only after both neighbours accepted them.

use raft_core::{
    ConfChange, ConfChangeV2, ConfState, Entry, EntryType, MemStorage, RawNode, confchange,
};
use std::collections::{BTreeMap, BTreeSet};

/// Every voter of `conf`, incoming and outgoing (a node in both appears twice).
pub fn voters(conf: &ConfState) -> impl Iterator<Item = u64> + '_ {
    conf.voters.iter().chain(&conf.voters_outgoing).copied()
}

/// Whether `id` votes in `conf` (in either half).
pub fn is_voter(conf: &ConfState, id: u64) -> bool {
    conf.voters.contains(&id) || conf.voters_outgoing.contains(&id)
}

/// Whether `id` is a member of `conf`: a voter in either half, a learner, or a voter about to
/// become a learner.
pub fn is_member(conf: &ConfState, id: u64) -> bool {
    is_voter(conf, id) || conf.learners.contains(&id) || conf.learners_next.contains(&id)
}

/// Whether the nodes for which `holds` is true form a quorum of `conf`: a majority of the
/// incoming voters and, while joint, a majority of the outgoing ones. An empty half (a node
/// that has no configuration yet) has no quorum.
pub fn has_quorum(conf: &ConfState, holds: impl Fn(u64) -> bool) -> bool {
    let majority = |ids: &[u64]| {
        let yes = ids.iter().filter(|&&id| holds(id)).count();
        yes > ids.len() / 2
    };
    !conf.voters.is_empty()
        && majority(&conf.voters)
        && (conf.voters_outgoing.is_empty() || majority(&conf.voters_outgoing))
}

/// Decodes the membership change an entry carries, if it is a configuration-change entry
/// whose payload decodes (raft-core skips the others, and so do we).
pub fn conf_change(e: &Entry) -> Option<ConfChangeV2> {
    use prost::Message as _;
    match EntryType::try_from(e.entry_type) {
        Ok(EntryType::EntryConfChangeV2) => ConfChangeV2::decode(e.data.as_ref()).ok(),
        Ok(EntryType::EntryConfChange) => ConfChange::decode(e.data.as_ref())
            .ok()
            .map(ConfChangeV2::from),
        _ => None,
    }
}

/// Whether an entry is a configuration change (whatever its payload).
pub fn is_conf_entry(e: &Entry) -> bool {
    e.entry_type != EntryType::EntryNormal as i32
}

/// Follows the configuration-change entries of `entries` from `conf`, as every node does when
/// it applies them; calls `each(index, conf)` for each change that applies. Returns the last
/// configuration.
pub fn follow(
    conf: &ConfState,
    entries: &[Entry],
    mut each: impl FnMut(u64, &ConfState),
) -> ConfState {
    let mut cur = conf.clone();
    for e in entries.iter().filter(|e| is_conf_entry(e)) {
        if let Some(next) = conf_change(e).and_then(|cc| confchange::apply(&cur, &cc).ok()) {
            cur = next;
            each(e.index, &cur);
        }
    }
    cur
}

/// Checks that `to` can follow `from` in one legal step (see the module docs).
///
/// # Errors
/// What makes the step illegal, in words.
pub fn legal_transition(from: &ConfState, to: &ConfState) -> Result<(), String> {
    well_formed(to)?;
    let set = |v: &[u64]| v.iter().copied().collect::<BTreeSet<u64>>();
    let (from_joint, to_joint) = (
        !from.voters_outgoing.is_empty(),
        !to.voters_outgoing.is_empty(),
    );
    match (from_joint, to_joint) {
        (false, false) => {
            let changed = set(&from.voters)
                .symmetric_difference(&set(&to.voters))
                .count();
            if changed > 1 {
                return Err(format!(
                    "a simple change replaced {changed} voters ({:?} -> {:?})",
                    from.voters, to.voters
                ));
            }
        }
        (false, true) => {
            if set(&to.voters_outgoing) != set(&from.voters) {
                return Err(format!(
                    "entering joint with outgoing voters {:?}, but the voters were {:?}",
                    to.voters_outgoing, from.voters
                ));
            }
        }
        (true, false) => {
            let mut learners = set(&from.learners);
            learners.extend(from.learners_next.iter().copied());
            if set(&to.voters) != set(&from.voters) || set(&to.learners) != learners {
                return Err(format!(
                    "leaving joint {from:?} did not keep the incoming voters and turn demoted \
                     voters into learners: {to:?}"
                ));
            }
        }
        (true, true) => {
            return Err(format!(
                "went from one joint configuration to another: {from:?} -> {to:?}"
            ));
        }
    }
    Ok(())
}

/// A configuration must be well formed: voters, no id 0, no learner that votes, demotions
/// only of outgoing voters, joint-only fields only while joint.
fn well_formed(c: &ConfState) -> Result<(), String> {
    let joint = !c.voters_outgoing.is_empty();
    let all = || voters(c).chain(c.learners.iter().copied());
    let bad = if c.voters.is_empty() {
        Some("no voters")
    } else if all().any(|id| id == 0) {
        Some("node id 0")
    } else if c.learners.iter().any(|&l| is_voter(c, l)) {
        Some("a learner is also a voter")
    } else if c
        .learners_next
        .iter()
        .any(|l| c.voters.contains(l) || !c.voters_outgoing.contains(l))
    {
        Some("a demotion of a node that is not an outgoing-only voter")
    } else if !joint && (c.auto_leave || !c.learners_next.is_empty()) {
        Some("joint-only fields outside a joint configuration")
    } else {
        None
    };
    match bad {
        Some(what) => Err(format!("ill-formed configuration {c:?}: {what}")),
        None => Ok(()),
    }
}

/// Checks, on a leader, that a configuration-change entry it holds at `index` (appended in its
/// term) does not follow an unapplied one: every configuration-change entry of its log before
/// `index` must be at or below `applied`.
///
/// # Errors
/// The index of the unapplied earlier change.
pub fn check_one_change_in_flight(
    raw: &RawNode<MemStorage>,
    applied: u64,
    index: u64,
) -> Result<(), u64> {
    let lo = applied + 1;
    if lo >= index {
        return Ok(());
    }
    // Entries after `applied` are never compacted (the driver compacts only what it applied).
    let ents = raw.log_entries(lo, index).unwrap_or_default();
    match ents.iter().find(|e| is_conf_entry(e)) {
        Some(e) => Err(e.index),
        None => Ok(()),
    }
}

/// The configurations applied anywhere, by index.
#[derive(Debug)]
pub struct ConfChain {
    chain: BTreeMap<u64, ConfState>,
}

impl ConfChain {
    /// A chain that starts with the founding configuration at index 1.
    pub fn new(founding: ConfState) -> ConfChain {
        ConfChain {
            chain: BTreeMap::from([(1, founding)]),
        }
    }

    /// Records that a node applied `conf` through the change at `index`.
    ///
    /// # Errors
    /// A description of the disagreement or illegal step.
    pub fn record(&mut self, index: u64, conf: &ConfState) -> Result<(), String> {
        if let Some(c) = self.chain.get(&index) {
            if c != conf {
                return Err(format!(
                    "configuration {conf:?} applied at {index}, where {c:?} was applied before"
                ));
            }
            return Ok(());
        }
        if let Some((i, prev)) = self.chain.range(..index).next_back() {
            legal_transition(prev, conf).map_err(|e| format!("{i} -> {index}: {e}"))?;
        }
        if let Some((i, next)) = self.chain.range(index + 1..).next() {
            legal_transition(conf, next).map_err(|e| format!("{index} -> {i}: {e}"))?;
        }
        self.chain.insert(index, conf.clone());
        Ok(())
    }

    /// Checks that `conf` is the configuration in effect at `index` (a node restarting there,
    /// or restoring a snapshot of it).
    ///
    /// # Errors
    /// A description of the difference.
    pub fn check_at(&self, index: u64, conf: &ConfState) -> Result<(), String> {
        let (i, want) = self.at(index);
        if want != conf {
            return Err(format!(
                "a node holds {conf:?} as of index {index}, but the configuration in effect \
                 there is {want:?} (applied at {i})"
            ));
        }
        Ok(())
    }

    /// The configuration in effect at `index` and the index it was applied at.
    pub fn at(&self, index: u64) -> (u64, &ConfState) {
        let (i, c) = self
            .chain
            .range(..=index.max(1))
            .next_back()
            .expect("the founding configuration is at index 1");
        (*i, c)
    }

    /// The last configuration applied anywhere, and its index.
    pub fn latest(&self) -> (u64, &ConfState) {
        let (i, c) = self
            .chain
            .last_key_value()
            .expect("the founding configuration is at index 1");
        (*i, c)
    }

    /// Whether `id` was a member of any configuration applied so far.
    pub fn ever_member(&self, id: u64) -> bool {
        self.chain.values().any(|c| is_member(c, id))
    }

    /// Number of configurations recorded (the founding one included).
    pub fn len(&self) -> usize {
        self.chain.len()
    }

    /// Always false: the founding configuration is there from the start.
    pub fn is_empty(&self) -> bool {
        self.chain.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(voters: &[u64], learners: &[u64]) -> ConfState {
        ConfState {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            ..ConfState::default()
        }
    }

    fn joint(voters: &[u64], outgoing: &[u64], learners: &[u64], next: &[u64]) -> ConfState {
        ConfState {
            voters: voters.to_vec(),
            voters_outgoing: outgoing.to_vec(),
            learners: learners.to_vec(),
            learners_next: next.to_vec(),
            auto_leave: true,
        }
    }

    #[test]
    fn simple_changes_move_at_most_one_voter() {
        let a = cs(&[1, 2, 3], &[]);
        assert!(legal_transition(&a, &cs(&[1, 2, 3, 4], &[])).is_ok());
        assert!(legal_transition(&a, &cs(&[1, 2], &[3])).is_ok(), "demotion");
        assert!(
            legal_transition(&a, &cs(&[1, 2, 3], &[5, 6])).is_ok(),
            "learners"
        );
        assert!(
            legal_transition(&a, &cs(&[1, 2, 4], &[])).is_err(),
            "replace"
        );
        assert!(legal_transition(&a, &cs(&[1], &[])).is_err());
    }

    #[test]
    fn joint_configurations_are_entered_from_the_old_voters_and_left_to_the_new() {
        let a = cs(&[1, 2, 3], &[4]);
        let j = joint(&[2, 3, 4], &[1, 2, 3], &[], &[1]);
        assert!(legal_transition(&a, &j).is_ok());
        assert!(
            legal_transition(&cs(&[1, 2], &[]), &j).is_err(),
            "wrong outgoing"
        );
        assert!(legal_transition(&j, &cs(&[2, 3, 4], &[1])).is_ok());
        assert!(
            legal_transition(&j, &cs(&[2, 3, 4], &[])).is_err(),
            "lost demotion"
        );
        assert!(
            legal_transition(&j, &cs(&[2, 3], &[1])).is_err(),
            "changed voters"
        );
        assert!(legal_transition(&j, &j).is_err(), "joint to joint");
    }

    #[test]
    fn ill_formed_configurations_are_refused() {
        let a = cs(&[1, 2, 3], &[]);
        assert!(legal_transition(&a, &cs(&[1, 2, 3], &[3])).is_err());
        assert!(legal_transition(&a, &cs(&[], &[1])).is_err());
        let mut c = cs(&[1, 2, 3], &[]);
        c.auto_leave = true;
        assert!(legal_transition(&a, &c).is_err());
    }

    #[test]
    fn quorums_count_both_halves_of_a_joint_configuration() {
        let j = joint(&[3, 4, 5], &[1, 2, 3], &[], &[]);
        assert!(has_quorum(&j, |id| [1, 3, 4].contains(&id)));
        assert!(!has_quorum(&j, |id| [3, 4, 5].contains(&id)));
        assert!(!has_quorum(&ConfState::default(), |_| true));
        assert!(has_quorum(&cs(&[1, 2, 3, 4], &[]), |id| id != 4));
        assert!(!has_quorum(&cs(&[1, 2, 3, 4], &[]), |id| id > 2));
    }

    #[test]
    fn the_chain_checks_agreement_and_both_neighbours() {
        let mut ch = ConfChain::new(cs(&[1, 2, 3], &[]));
        assert!(ch.record(10, &cs(&[1, 2, 3], &[4])).is_ok());
        assert!(ch.record(10, &cs(&[1, 2, 3], &[4])).is_ok(), "same again");
        assert!(
            ch.record(10, &cs(&[1, 2, 3, 4], &[])).is_err(),
            "disagreement"
        );
        assert!(ch.record(20, &cs(&[1, 2, 3, 4], &[])).is_ok());
        // Between 10 and 20, a step that fits 10 but not 20.
        assert!(ch.record(15, &cs(&[1, 2], &[4])).is_err());
        assert!(ch.check_at(12, &cs(&[1, 2, 3], &[4])).is_ok());
        assert!(ch.check_at(25, &cs(&[1, 2, 3], &[4])).is_err());
        assert_eq!(ch.latest().0, 20);
    }
}
