//! Linearizable reads: ReadIndex rounds and leases on the leader, forwarding on followers
//! (thesis §6.4, §6.4.1).
//!
//! A read is confirmed by a heartbeat round started after it arrived, matched by
//! leader-generated round ids (`read_only.rs`), or at once by a valid lease under
//! `ReadOnlyOption::LeaseBased`. A new leader postpones reads until it commits in its term.
//!
//! Invariants:
//! 1. A read is answered to the node that asked, even when another node passed it on; a node
//!    accepts an answer only for a read it forwarded itself (its id and context), so a node
//!    passing on another's read never hands the answer to its own application.
//! 2. Pending reads are decided again whenever the quorum changes (issue 12 item 3).
//! 3. No lease is trusted during a transfer or after a `MsgTimeoutNow` of this term.

use super::*;

impl<S: Storage> Raft<S> {
    pub fn read_index(&mut self, ctx: Bytes) -> Result<(), ReadIndexError> {
        if self.role == Role::Leader {
            return self.leader_read(self.id, ctx, 0);
        }
        if self.leader_id == 0 {
            return Err(ReadIndexError::NoLeader);
        }
        // Tagged with an id of this node's own, echoed in the answer: this node accepts only
        // answers to reads it asked for, never one to another node's read with the same
        // context (a stale read) or an old answer to an earlier read (issue 12 item 5).
        self.read_forwarded_seq += 1;
        let id = self.read_forwarded_seq;
        if self.reads_forwarded.len() >= self.reads_pending_max {
            self.reads_forwarded.pop_front();
        }
        self.reads_forwarded.push_back((id, ctx.clone()));
        let mut m = self.msg(self.leader_id, MessageType::MsgReadIndex);
        m.term = 0;
        m.context = ctx;
        m.read_round = id;
        self.send(m);
        Ok(())
    }

    /// An answer to a forwarded read: accepted only if it answers one this node asked for.
    pub(super) fn handle_read_index_response(&mut self, m: &mut Message) {
        let pos = self
            .reads_forwarded
            .iter()
            .position(|(id, ctx)| *id == m.read_round && *ctx == m.context);
        let Some(pos) = pos else {
            debug!(self.logger, "ignoring an answer to a read this node did not ask for";
                   "from" => m.from, "id" => m.read_round);
            return;
        };
        self.reads_forwarded.remove(pos);
        self.read_states.push(ReadState {
            index: m.index,
            request_ctx: std::mem::take(&mut m.context),
        });
    }

    /// Whether the lease from the newest quorum-acknowledged heartbeat round still holds.
    pub(super) fn lease_valid(&self) -> bool {
        let lease_ticks = u64::from(self.election_ticks) - 1;
        !self.timeout_now_sent
            && self
                .read_only
                .confirmed_sent_tick()
                .is_some_and(|t| self.now < t + lease_ticks)
    }

    /// A read on the leader, asked by `from` (itself or a follower, whose id for the request
    /// is `req_id`).
    pub(super) fn leader_read(
        &mut self,
        from: u64,
        ctx: Bytes,
        req_id: u64,
    ) -> Result<(), ReadIndexError> {
        let lease = self.read_only_option == ReadOnlyOption::LeaseBased;
        if lease && self.lead_transferee != 0 {
            return Err(ReadIndexError::TransferInProgress);
        }
        if self.read_only.pending_len() + self.reads_before_commit.len() >= self.reads_pending_max {
            return Err(ReadIndexError::TooManyPending);
        }
        let committed = self.log.committed;
        if self.log.term(committed).ok() != Some(self.term) {
            // Until it commits an entry of its term, a new leader does not know its
            // predecessors' commit index (thesis §6.4): postpone.
            self.reads_before_commit.push((from, ctx, req_id));
            return Ok(());
        }
        if self.prs.is_singleton() || (lease && self.lease_valid()) {
            self.respond_read(PendingRead {
                from,
                ctx,
                req_id,
                index: committed,
                round: 0,
            });
            return Ok(());
        }
        // Confirmed by the next round, which starts after this request arrived.
        let round = self.read_only.last_round() + 1;
        self.read_only.add_request(PendingRead {
            from,
            ctx,
            req_id,
            index: committed,
            round,
        });
        self.read_round_due = true;
        Ok(())
    }

    pub(super) fn recv_read_ack(&mut self, from: u64, round: u64) {
        let voters = &self.prs.config.voters;
        let done = self.read_only.recv_ack(from, round, |acked| {
            voters.vote_result(|id| acked(id).then_some(true)) == VoteResult::Won
        });
        for req in done {
            self.respond_read(req);
        }
    }

    /// Decides again which pending reads the current quorum has confirmed: after a
    /// configuration change, a quorum of the new voters may already have acknowledged a round
    /// that the old one never confirmed (issue 12 item 3: a read pending when the voters shrank
    /// to the leader alone waited for ever).
    pub(super) fn release_confirmed_reads(&mut self) {
        let voters = &self.prs.config.voters;
        let done = self
            .read_only
            .release(|acked| voters.vote_result(|id| acked(id).then_some(true)) == VoteResult::Won);
        for req in done {
            self.respond_read(req);
        }
    }

    pub(super) fn respond_read(&mut self, req: PendingRead) {
        if req.from == self.id {
            self.read_states.push(ReadState {
                index: req.index,
                request_ctx: req.ctx,
            });
        } else {
            let mut m = self.msg(req.from, MessageType::MsgReadIndexResp);
            m.index = req.index;
            m.context = req.ctx;
            m.read_round = req.req_id;
            self.send(m);
        }
    }

    /// Starts the heartbeat round that reads queued since the last Ready wait for.
    pub fn flush_read_round(&mut self) {
        if self.role == Role::Leader && self.read_round_due {
            self.bcast_heartbeat();
        }
    }
}
