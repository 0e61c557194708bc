//! Validation of remote input: every message from the network is checked against the Raft
//! rules and this node's state before anything changes (DESIGN §5), so a refused message
//! leaves the node as it was and a peer's message never panics it.
//!
//! The rules, one per message kind, are in `validate`; the numbers a node accepts are
//! bounded by [`NUMBER_MAX`] so that neither validation nor the node's own arithmetic after
//! it can overflow (issue 19).

use super::*;

impl<S: Storage> Raft<S> {
    /// Checks a message from the network against the Raft rules and this node's state,
    /// without changing anything.
    ///
    /// Numbers from the network never meet unchecked arithmetic here: this function denies
    /// `clippy::arithmetic_side_effects`, so an addition that could overflow on a hostile
    /// number (as `m.index + 1 + i` once did, issue 19) does not compile. The lint is denied
    /// for this function only, not for the crate: the role logic adds to numbers this
    /// function bounded (every term and index at most [`NUMBER_MAX`]), and checked arithmetic
    /// there would say nothing but "cannot happen" at every `+ 1`.
    #[deny(clippy::arithmetic_side_effects)]
    pub(super) fn validate(&self, m: &Message) -> Result<(), StepError> {
        let kind = MessageType::try_from(m.msg_type)
            .ok()
            .filter(|k| *k != MessageType::MsgUnspecified)
            .ok_or(StepError::UnknownMessageType {
                msg_type: m.msg_type,
            })?;
        if m.to != self.id {
            return Err(StepError::Misaddressed {
                to: m.to,
                id: self.id,
            });
        }
        if m.from == 0 || m.from == self.id {
            return Err(StepError::InvalidSender { from: m.from });
        }
        let termless = matches!(kind, MessageType::MsgProp | MessageType::MsgReadIndex);
        if m.term == 0 && !termless {
            return Err(StepError::MissingTerm { kind });
        }
        let malformed = |fault| Err(StepError::Malformed { kind, fault });
        if let Some(fault) = number_too_large(m) {
            return malformed(fault);
        }
        match kind {
            MessageType::MsgApp => {
                if m.log_term > m.term || (m.index == 0 && m.log_term != 0) {
                    return malformed(Fault::LogTerm {
                        index: m.index,
                        log_term: m.log_term,
                        term: m.term,
                    });
                }
                let mut prev_term = m.log_term;
                for (i, e) in m.entries.iter().enumerate() {
                    // `m.index <= NUMBER_MAX`, so this cannot overflow with any list that fits
                    // in memory; checked all the same, as the lint on this function asks.
                    let Some(expected) =
                        m.index.checked_add(1).and_then(|n| n.checked_add(i as u64))
                    else {
                        return malformed(Fault::NumberTooLarge {
                            field: "entry index",
                            value: e.index,
                        });
                    };
                    if expected > NUMBER_MAX {
                        return malformed(Fault::NumberTooLarge {
                            field: "entry index",
                            value: expected,
                        });
                    }
                    if e.index != expected {
                        return malformed(Fault::EntryIndex {
                            position: i,
                            expected,
                            got: e.index,
                        });
                    }
                    if e.term < prev_term || e.term > m.term {
                        return malformed(Fault::EntryTerm {
                            index: e.index,
                            term: e.term,
                        });
                    }
                    if EntryType::try_from(e.entry_type).is_err() {
                        return malformed(Fault::EntryType {
                            index: e.index,
                            entry_type: e.entry_type,
                        });
                    }
                    prev_term = e.term;
                }
                // The entries are consecutive from `m.index + 1` (checked above).
                let msg_last = m.entries.last().map_or(m.index, |e| e.index);
                if m.commit > msg_last {
                    return malformed(Fault::CommitNotVouched {
                        commit: m.commit,
                        last_index: msg_last,
                    });
                }
                if m.term >= self.term {
                    // A leader of this term or later holds every committed entry (leader
                    // completeness): any disagreement at or below our commit index is
                    // impossible. An older leader's late message may disagree honestly; it
                    // is ignored as stale instead.
                    let committed = self.log.committed;
                    let first_known = self.log.first_index().saturating_sub(1);
                    let claims = std::iter::once((m.index, m.log_term))
                        .chain(m.entries.iter().map(|e| (e.index, e.term)));
                    for (index, term) in claims {
                        if index > committed {
                            break;
                        }
                        if index >= first_known
                            && index > 0
                            && self.log.term(index).is_ok_and(|t| t != term)
                        {
                            return Err(StepError::ConflictBelowCommit { index, committed });
                        }
                    }
                }
            }
            MessageType::MsgHeartbeat => {
                let last_index = self.log.last_index();
                if m.term >= self.term && m.commit > last_index {
                    return Err(StepError::CommitBeyondLog {
                        commit: m.commit,
                        last_index,
                    });
                }
            }
            MessageType::MsgVote | MessageType::MsgPreVote => {
                if m.log_term > m.term {
                    return malformed(Fault::LogTerm {
                        index: m.index,
                        log_term: m.log_term,
                        term: m.term,
                    });
                }
            }
            MessageType::MsgAppResp | MessageType::MsgHeartbeatResp => {
                if m.term == self.term && self.role == Role::Leader {
                    if self.prs.get(m.from).is_none() {
                        return Err(StepError::UnknownPeer { from: m.from, kind });
                    }
                    let last_index = self.log.last_index();
                    if kind == MessageType::MsgAppResp && !m.reject && m.index > last_index {
                        return Err(StepError::AckBeyondLog {
                            index: m.index,
                            last_index,
                        });
                    }
                    if m.commit > last_index {
                        return Err(StepError::CommitBeyondLog {
                            commit: m.commit,
                            last_index,
                        });
                    }
                }
            }
            MessageType::MsgProp => {
                if m.entries.is_empty() {
                    return malformed(Fault::NoEntries);
                }
                for e in &m.entries {
                    if e.entry_type != EntryType::EntryNormal as i32 {
                        return malformed(Fault::EntryType {
                            index: e.index,
                            entry_type: e.entry_type,
                        });
                    }
                }
            }
            MessageType::MsgSnap => {
                let Some(snap) = m.snapshot.as_deref() else {
                    return malformed(Fault::SnapshotIncomplete);
                };
                let Some(meta) = snap.metadata.as_ref() else {
                    return malformed(Fault::SnapshotIncomplete);
                };
                let Some(cs) = meta.conf_state.as_ref() else {
                    return malformed(Fault::SnapshotIncomplete);
                };
                if meta.index == 0 || meta.term == 0 || meta.term > m.term {
                    return malformed(Fault::SnapshotIncomplete);
                }
                if !conf_state_is_valid(cs) {
                    return malformed(Fault::InvalidConfState);
                }
            }
            MessageType::MsgReadIndex
            | MessageType::MsgReadIndexResp
            | MessageType::MsgTransferLeader
            | MessageType::MsgTimeoutNow => {}
            MessageType::MsgVoteResp
            | MessageType::MsgPreVoteResp
            | MessageType::MsgUnspecified => {}
        }
        Ok(())
    }
}

/// The largest term or index a node accepts from the network (`u64::MAX / 2`). The node adds
/// to what it accepts: a campaign adds one to the term, an append one per entry to the last
/// index, a peer's next index is its match index plus one. With every number from the network
/// at most this, 2^63 elections or entries would be needed before any of that overflows,
/// which no cluster lives to see; an honest peer's numbers are never near it.
pub(crate) const NUMBER_MAX: u64 = u64::MAX / 2;

/// The first term or index in `m`, other than its entries', above [`NUMBER_MAX`] (entries are
/// checked where their indexes are: only `MsgApp`'s are kept as sent).
#[deny(clippy::arithmetic_side_effects)]
pub(super) fn number_too_large(m: &Message) -> Option<Fault> {
    let meta = m.snapshot.as_ref().and_then(|s| s.metadata.as_ref());
    [
        ("term", m.term),
        ("log term", m.log_term),
        ("index", m.index),
        ("commit", m.commit),
        ("reject hint", m.reject_hint),
        ("snapshot index", meta.map_or(0, |md| md.index)),
        ("snapshot term", meta.map_or(0, |md| md.term)),
    ]
    .into_iter()
    .find(|&(_, value)| value > NUMBER_MAX)
    .map(|(field, value)| Fault::NumberTooLarge { field, value })
}

/// Whether a configuration from a peer is self-consistent: at least one voter, no id 0, no
/// id both learner and voter, demotions only of outgoing voters, `auto_leave` only while joint.
pub(crate) fn conf_state_is_valid(cs: &ConfState) -> bool {
    let mut all = cs
        .voters
        .iter()
        .chain(&cs.learners)
        .chain(&cs.voters_outgoing);
    if cs.voters.is_empty() || all.any(|id| *id == 0) {
        return false;
    }
    let joint = !cs.voters_outgoing.is_empty();
    if !joint && (cs.auto_leave || !cs.learners_next.is_empty()) {
        return false;
    }
    let learner_is_voter = cs
        .learners
        .iter()
        .any(|l| cs.voters.contains(l) || cs.voters_outgoing.contains(l));
    let bad_demotion = cs
        .learners_next
        .iter()
        .any(|l| cs.voters.contains(l) || !cs.voters_outgoing.contains(l));
    !learner_is_voter && !bad_demotion
}
