//! Membership changes: proposing them, and applying them when their entry is reported
//! applied (thesis §4.1 single-server changes, §4.3 joint consensus; etcd's `confchange`).
//!
//! Invariants:
//! 1. One change in flight: a leader proposes no change while an earlier one (or, new leader,
//!    its first entry) is not applied (the single-server bug of 2015).
//! 2. A change takes effect on a node when its entry is reported applied; the configuration
//!    after each change is predicted when the entries are handed out (`queue_conf_changes`),
//!    so the driver sees it in the apply batch.
//! 3. A leader leaves an automatic joint configuration itself once the entering change is
//!    applied; a removed leader steps down only once a quorum of the new configuration knows
//!    of the removal.

use super::*;

impl<S: Storage> Raft<S> {
    pub fn has_unapplied_conf_change(&self) -> bool {
        let (lo, hi) = (self.log.applied + 1, self.log.committed + 1);
        if lo >= hi {
            return false;
        }
        match self.log.slice(lo, hi, u64::MAX) {
            Ok(ents) => ents
                .iter()
                .any(|e| e.entry_type != EntryType::EntryNormal as i32),
            // Unreadable: be conservative and do not campaign.
            Err(_) => true,
        }
    }

    /// Proposes a membership change; it takes effect on each node when its entry is
    /// reported applied there.
    pub fn propose_conf_change(&mut self, cc: ConfChangeV2) -> Result<EntryId, ConfChangeError> {
        if self.role != Role::Leader {
            return Err(ConfChangeError::NotLeader {
                leader_hint: (self.leader_id != 0).then_some(self.leader_id),
            });
        }
        if self.lead_transferee != 0 {
            return Err(ConfChangeError::TransferInProgress);
        }
        if self.pending_conf_index > self.log.applied {
            // Either a change is in flight, or this new leader has not yet applied the
            // entries of its term up to its first one (the single-server bug of 2015).
            return Err(ConfChangeError::Pending {
                index: self.pending_conf_index,
            });
        }
        confchange::apply(&self.prs.conf_state(), &cc).map_err(ConfChangeError::Invalid)?;
        let mut ents = [Entry {
            entry_type: EntryType::EntryConfChangeV2 as i32,
            term: 0,
            index: 0,
            data: Bytes::from(cc.encode_to_vec()),
        }];
        self.append_entries(&mut ents).map_err(|e| match e {
            ProposeError::Dropped { reason } => ConfChangeError::Dropped { reason },
            _ => ConfChangeError::NotLeader {
                leader_hint: Some(self.id),
            },
        })?;
        self.pending_conf_index = ents[0].index;
        info!(self.logger, "proposed configuration change"; "index" => ents[0].index);
        Ok(EntryId::new(ents[0].index, ents[0].term))
    }

    /// Called at `ready()` for the entries handed out to apply: predicts the configuration
    /// each change leads to and queues the changes for `on_applied`. Returns the
    /// configuration after each change, by the index of its entry.
    pub fn queue_conf_changes(&mut self, ents: &[Entry]) -> Vec<(u64, ConfState)> {
        let mut changed = Vec::new();
        for e in ents {
            let Some(cc) = decode_conf_change(e) else {
                continue;
            };
            match cc.and_then(|cc| {
                confchange::apply(&self.applying_conf, &cc)
                    .map(|cs| (cc, cs))
                    .map_err(Some)
            }) {
                Ok((cc, cs)) => {
                    self.applying_conf = cs.clone();
                    self.conf_queue.push_back((e.index, cc));
                    changed.push((e.index, cs));
                }
                Err(err) => {
                    // Every node skips the same entry: the log is the same everywhere.
                    warn!(self.logger, "skipping invalid configuration change";
                          "index" => e.index, "error" => ?err);
                }
            }
        }
        changed
    }

    /// Applies the configuration changes queued up to `applied`.
    pub fn apply_conf_changes(&mut self, applied: u64) {
        let mut any = false;
        while self.conf_queue.front().is_some_and(|(i, _)| *i <= applied) {
            let (index, cc) = self.conf_queue.pop_front().expect("front checked");
            let cs = confchange::apply(&self.prs.conf_state(), &cc)
                .expect("a change validated at ready() applies to the same configuration");
            info!(self.logger, "applied configuration change"; "index" => index,
                  "voters" => ?cs.voters, "outgoing" => ?cs.voters_outgoing,
                  "learners" => ?cs.learners);
            self.prs.apply_conf(&cs, self.log.last_index() + 1);
            any = true;
        }
        if !any || self.role != Role::Leader {
            return;
        }
        if self.lead_transferee != 0 && !self.prs.is_voter(self.lead_transferee) {
            self.lead_transferee = 0;
        }
        // The quorum changed: reads may now be confirmed by acknowledgements already in.
        self.release_confirmed_reads();
        let member = self.prs.config.voters.contains(self.id);
        if !member && self.step_down_on_removal && self.stepdown_at.is_none() {
            // Not at once: this leader may be the only node that knows the change is
            // committed, and the remaining voters may still need it (a joint configuration
            // includes it). It keeps leading, refusing proposals, until a quorum of the new
            // configuration reports a commit index at or past the change.
            info!(self.logger, "removed from the configuration: stepping down once the rest know";
                  "index" => applied);
            self.stepdown_at = Some(applied);
            self.commit_due = true;
        }
        self.append_due = true;
        self.maybe_commit();
        self.maybe_auto_leave();
        self.maybe_step_down_after_removal();
    }

    /// Steps down once a quorum of the configuration that removed this leader knows the
    /// removal is committed: they can then elect a leader among themselves.
    pub(super) fn maybe_step_down_after_removal(&mut self) {
        let Some(index) = self.stepdown_at else {
            return;
        };
        if self.role != Role::Leader {
            return;
        }
        let peer_commit = &self.peer_commit;
        let known = self
            .prs
            .config
            .voters
            .vote_result(|id| Some(peer_commit.get(&id).is_some_and(|c| *c >= index)))
            == VoteResult::Won;
        if known {
            info!(self.logger, "stepping down: removed from the configuration"; "index" => index);
            self.become_follower(self.term, 0);
        }
    }

    /// A leader leaves a joint configuration by itself once the change that entered it is
    /// applied, including a leader elected while joint (etcd #12136).
    pub fn maybe_auto_leave(&mut self) {
        let cfg = &self.prs.config;
        if self.role == Role::Leader
            && cfg.auto_leave
            && cfg.voters.is_joint()
            && self.log.applied >= self.pending_conf_index
        {
            let ents = [Entry {
                entry_type: EntryType::EntryConfChangeV2 as i32,
                term: self.term,
                index: self.log.last_index() + 1,
                data: Bytes::from(ConfChangeV2::leave_joint().encode_to_vec()),
            }];
            self.log.append(&ents);
            self.append_due = true;
            self.pending_conf_index = ents[0].index;
            info!(self.logger, "leaving joint configuration"; "index" => self.pending_conf_index);
        }
    }
}

/// Decodes the change carried by a configuration entry: `None` for a normal entry,
/// `Some(Err(None))` for one whose data does not decode.
pub(super) fn decode_conf_change(
    e: &Entry,
) -> Option<Result<ConfChangeV2, Option<confchange::ChangeError>>> {
    match EntryType::try_from(e.entry_type) {
        Ok(EntryType::EntryConfChangeV2) => {
            Some(ConfChangeV2::decode(e.data.as_ref()).map_err(|_| None))
        }
        Ok(EntryType::EntryConfChange) => Some(
            ConfChange::decode(e.data.as_ref())
                .map(ConfChangeV2::from)
                .map_err(|_| None),
        ),
        _ => None,
    }
}
