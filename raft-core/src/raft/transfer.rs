//! Leadership transfer (thesis §3.10): the leader catches the target up, then sends it
//! `MsgTimeoutNow`; the target campaigns at once, past pre-vote and stickiness.
//!
//! Invariants:
//! 1. Only a leader transfers; proposals and changes are refused meanwhile, and the transfer
//!    is abandoned after an election timeout (`tick_heartbeat`).
//! 2. `MsgTransferLeader` means "transfer to the requester": a follower passes one on (and
//!    `transfer_leader` on a follower is passed on) naming the node that asked, never itself.

use super::*;

impl<S: Storage> Raft<S> {
    pub fn transfer_leader(&mut self, to: u64) -> Result<(), TransferError> {
        if self.role != Role::Leader {
            if self.role != Role::Follower || self.leader_id == 0 {
                return Err(TransferError::NotLeader {
                    leader_hint: (self.leader_id != 0).then_some(self.leader_id),
                });
            }
            return self.forward_transfer(to);
        }
        if to == self.id {
            return Err(TransferError::ToSelf);
        }
        if self.prs.get(to).is_none() {
            return Err(TransferError::UnknownNode { id: to });
        }
        if !self.prs.is_voter(to) {
            return Err(TransferError::Learner { id: to });
        }
        if self.lead_transferee == to {
            return Ok(());
        }
        info!(self.logger, "transferring leadership"; "to" => to);
        self.lead_transferee = to;
        // The transfer must finish within an election timeout or it is abandoned.
        self.election_elapsed = 0;
        if self
            .prs
            .get(to)
            .is_some_and(|pr| pr.matched == self.log.last_index())
        {
            self.send_timeout_now(to);
        } else {
            // Catch the target up now, even if it looks up to date in replicate state.
            self.append_due = true;
            if !self.empty_append_due.contains(&to) {
                self.empty_append_due.push(to);
            }
        }
        Ok(())
    }

    /// A transfer asked on a follower goes to the leader, naming `to` as the requester (etcd
    /// forwards it too). The checks this node can make with its configuration are made here;
    /// the leader makes them again with its own.
    pub(super) fn forward_transfer(&mut self, to: u64) -> Result<(), TransferError> {
        if self.prs.get(to).is_none() {
            return Err(TransferError::UnknownNode { id: to });
        }
        if !self.prs.is_voter(to) {
            return Err(TransferError::Learner { id: to });
        }
        if to == self.leader_id {
            // Already the leader: nothing to transfer.
            return Ok(());
        }
        info!(self.logger, "forwarding a leadership transfer to the leader";
              "leader" => self.leader_id, "to" => to);
        let mut m = self.msg(self.leader_id, MessageType::MsgTransferLeader);
        m.requester = to;
        self.send(m);
        Ok(())
    }

    pub(super) fn send_timeout_now(&mut self, to: u64) {
        self.timeout_now_sent = true;
        let m = self.msg(to, MessageType::MsgTimeoutNow);
        self.send(m);
    }
}
