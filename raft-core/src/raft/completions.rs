//! Completions: what a node does when the driver reports a persist batch durable (DESIGN §2
//! rule 3). Applied batches are reported through `RawNode::on_applied`, which applies the
//! configuration changes (`membership.rs`).
//!
//! Invariants:
//! 1. A completion marks entries stable only if no later batch overwrote them (the etcd "ABA"
//!    race); a snapshot's write stays stable whatever came after it.
//! 2. Durable terms never go back.
//! 3. A leader's own entries, and a candidate's own vote, count only once durable
//!    (thesis §10.2.1).

use super::*;

impl<S: Storage> Raft<S> {
    /// The persist batch `seq` carrying `hard_state` and entries up to `last_entry` is durable.
    pub fn on_persisted(
        &mut self,
        seq: u64,
        hard_state: Option<HardState>,
        snapshot_index: Option<u64>,
        last_entry: Option<EntryId>,
    ) {
        if let Some(hs) = hard_state {
            assert!(
                hs.term >= self.durable_hs.term,
                "durable terms never go back"
            );
            self.durable_hs = hs;
        }
        if let Some(index) = snapshot_index {
            // Not guarded by `overwrite_seq`: a later batch that overwrites entries after the
            // snapshot does not undo the snapshot's write, and the index names that write
            // (a node restores no snapshot at or below its commit index, so never a second one
            // at the same index). Skipping it left the snapshot unstable for good, and the
            // next entry completion tripped the in-order check (fuzz target `simulation`; the
            // script `a_snapshot_written_before_an_overwrite_still_becomes_stable`).
            self.log.stable_snap_to(index);
        }
        if let Some(id) = last_entry
            && seq >= self.overwrite_seq
        {
            self.log.stable_to(id);
        }
        self.outbox.on_durable(seq);
        match self.role {
            Role::Leader => {
                let persisted = self.log.persisted_index();
                if let Some(pr) = self.prs.get_mut(self.id)
                    && pr.maybe_update(persisted)
                {
                    self.maybe_commit();
                }
            }
            Role::Candidate => self.maybe_count_own_vote(),
            Role::Follower | Role::PreCandidate => {}
        }
    }

    /// A candidate's own vote counts only once it is durable: otherwise a crash could let
    /// it vote again in the same term and two leaders could be elected.
    pub(super) fn maybe_count_own_vote(&mut self) {
        if self.role == Role::Candidate
            && self.durable_hs.term == self.term
            && self.durable_hs.vote == self.id
        {
            self.prs.record_vote(self.id, true);
            self.poll();
        }
    }
}
