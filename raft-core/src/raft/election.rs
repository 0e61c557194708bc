//! Elections: when a node campaigns, how it asks for votes, which votes it grants, and the
//! role changes that follow (Raft §5.2, §5.4.1; thesis §3.4, §9.6 pre-vote, §6.4.1
//! check-quorum and stickiness).
//!
//! A reader asking "why did this vote get refused" starts at `handle_vote_request`: a vote
//! is granted only to a candidate whose log is at least as up to date as ours (§5.4.1) and,
//! for a real vote, only once per term; a pre-vote changes neither term nor vote. Requests
//! that arrive while this node still hears from a live leader under check-quorum are ignored
//! before they get here (`step`, in `mod.rs`).
//!
//! Invariants:
//! 1. A node campaigns only while promotable: a voter with no committed configuration change
//!    left to apply. A node that may not campaign lets its timer run on and forgets a leader
//!    it no longer hears from (as etcd does), so a dead leader's lease does not outlive it.
//! 2. A candidate's own vote counts only once durable (`completions.rs`).
//! 3. One randomized timeout draw per timer reset, from the node's seeded ChaCha.
//! 4. What a candidate reports committed (commit index and its term) is learned by a voter
//!    holding that entry (log matching): a promoted learner holding the longest log is never
//!    stuck as a learner (issue 12 item 1).

use super::*;

impl<S: Storage> Raft<S> {
    pub(super) fn tick_election(&mut self) {
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.election_elapsed < self.randomized_election_timeout {
            return;
        }
        if self.promotable() {
            self.reset_election_timer();
            self.start_campaign();
        } else if self.leader_id != 0 {
            // A node that may not campaign (a learner, or a voter with a committed change
            // left to apply) lets its timer run on, as etcd does: its view of the leader's
            // lease expires with it, so it stops ignoring (pre-)vote requests as "the leader
            // is live", and it forgets the leader it no longer hears from. Resetting the timer
            // here kept a dead leader's lease alive for half of every timeout cycle. Once it
            // may campaign, it does so at its next tick.
            info!(self.logger, "forgetting the leader: not heard from within the election timeout";
                  "leader" => self.leader_id, "term" => self.term);
            self.leader_id = 0;
        }
    }

    /// Starts an election now (pre-vote first when enabled). Returns false when this node
    /// cannot campaign (a learner or not a member) or already leads.
    pub fn campaign_now(&mut self) -> bool {
        if self.role == Role::Leader || !self.promotable() {
            return false;
        }
        self.start_campaign();
        true
    }

    pub(super) fn start_campaign(&mut self) {
        if self.pre_vote {
            self.campaign(CampaignKind::PreElection);
        } else {
            self.campaign(CampaignKind::Election);
        }
    }

    /// Whether this node may campaign: a voter with no committed configuration change left
    /// to apply (it might not be a voter once that is applied).
    pub fn promotable(&self) -> bool {
        self.prs.is_voter(self.id) && !self.has_unapplied_conf_change()
    }

    /// A (pre-)vote request carries the candidate's commit index and the term of its entry
    /// there. If this node's log holds that entry, its log matches the candidate's up to it
    /// (log matching), so everything up to it is committed here too.
    ///
    /// This is what keeps a promoted learner from being stuck (issue 12 item 1): a node whose
    /// applied configuration still makes it a learner may hold the longest log, refuse every
    /// candidate, and never campaign itself, while the only nodes that know the promotion is
    /// committed need its vote. Learning the commit index lets it apply the promotion (once
    /// its entries are durable: only durable entries are handed out to apply) and campaign.
    /// A leader learns nothing here: it commits only by counting (Figure 8), and a higher
    /// term turns it into a follower before the request is handled.
    pub(super) fn learn_commit_from_candidate(&mut self, m: &Message) {
        if self.role == Role::Leader
            || m.commit <= self.log.committed
            || m.commit > m.index
            || m.commit_term == 0
            || m.commit_term > m.log_term
        {
            return;
        }
        if self.log.term(m.commit).is_ok_and(|t| t == m.commit_term) {
            info!(self.logger, "learned the commit index from a candidate"; "from" => m.from,
                  "commit" => m.commit, "was" => self.log.committed);
            self.log.commit_to(m.commit);
        }
    }

    pub(super) fn handle_vote_request(&mut self, m: &Message) {
        let kind = m.kind();
        let resp_kind = if kind == MessageType::MsgVote {
            MessageType::MsgVoteResp
        } else {
            MessageType::MsgPreVoteResp
        };
        let can_vote = self.vote == m.from
            || (self.vote == 0 && self.leader_id == 0)
            || (kind == MessageType::MsgPreVote && m.term > self.term);
        let up_to_date = self.log.is_up_to_date(EntryId::new(m.index, m.log_term));
        if can_vote && up_to_date {
            info!(self.logger, "granting vote"; "kind" => ?kind, "to" => m.from,
                  "term" => m.term);
            if kind == MessageType::MsgVote {
                self.election_elapsed = 0;
                self.vote = m.from;
            }
            let mut r = self.msg(m.from, resp_kind);
            r.term = m.term;
            self.send(r);
        } else {
            info!(self.logger, "rejecting vote"; "kind" => ?kind, "to" => m.from,
                  "term" => m.term, "vote" => self.vote, "up_to_date" => up_to_date);
            let mut r = self.msg(m.from, resp_kind);
            r.reject = true;
            // Tell the candidate how far the log is known committed, with the term of that
            // entry: a candidate holding the same entry may commit up to it (log matching).
            // Without this, voters stuck in a joint configuration whose leave committed
            // (the leader crashed before they learned it) could need the vote of a demoted
            // node that refuses it and never campaigns (simulator seed 2765).
            r.commit = self.log.committed;
            r.log_term = self.log.term(self.log.committed).unwrap_or(0);
            self.send(r);
        }
    }

    pub(super) fn step_candidate(&mut self, m: &mut Message) {
        let kind = m.kind();
        match kind {
            MessageType::MsgProp => {
                debug!(self.logger, "dropping forwarded proposal: no leader"; "from" => m.from);
            }
            MessageType::MsgApp => {
                self.become_follower(m.term, m.from);
                self.handle_append(m);
            }
            MessageType::MsgHeartbeat => {
                self.become_follower(m.term, m.from);
                self.handle_heartbeat(m);
            }
            MessageType::MsgSnap => {
                self.become_follower(m.term, m.from);
                self.handle_snapshot(m);
            }
            MessageType::MsgVoteResp | MessageType::MsgPreVoteResp => {
                let expected = if self.role == Role::PreCandidate {
                    MessageType::MsgPreVoteResp
                } else {
                    MessageType::MsgVoteResp
                };
                if kind == expected {
                    if m.reject
                        && m.commit > self.log.committed
                        && m.log_term != 0
                        && self.log.term(m.commit).is_ok_and(|t| t == m.log_term)
                    {
                        // Our log holds the voter's committed entry: everything up to it is
                        // committed here too.
                        self.log.commit_to(m.commit);
                    }
                    self.prs.record_vote(m.from, !m.reject);
                    self.poll();
                }
            }
            _ => {}
        }
    }

    pub(super) fn campaign(&mut self, kind: CampaignKind) {
        let (vote_term, msg_kind) = match kind {
            CampaignKind::PreElection => {
                self.become_pre_candidate();
                (self.term + 1, MessageType::MsgPreVote)
            }
            CampaignKind::Election | CampaignKind::Transfer => {
                self.become_candidate();
                (self.term, MessageType::MsgVote)
            }
        };
        let last = self.log.last_entry_id();
        for to in self.prs.config.voters.ids() {
            if to == self.id {
                continue;
            }
            let mut m = self.msg(to, msg_kind);
            m.term = vote_term;
            m.index = last.index;
            m.log_term = last.term;
            // What this candidate knows committed: a voter holding the same entry learns it
            // (see `learn_commit_from_candidate`).
            m.commit = self.log.committed;
            m.commit_term = self.log.term(self.log.committed).unwrap_or(0);
            if kind == CampaignKind::Transfer {
                m.context = Bytes::from_static(CAMPAIGN_TRANSFER);
            }
            self.send(m);
        }
        match kind {
            CampaignKind::PreElection => {
                self.prs.record_vote(self.id, true);
                self.poll();
            }
            CampaignKind::Election | CampaignKind::Transfer => self.maybe_count_own_vote(),
        }
    }

    /// Counts the votes and acts on the result.
    pub(super) fn poll(&mut self) {
        let (granted, rejected, result) = self.prs.tally_votes();
        debug!(self.logger, "votes"; "role" => ?self.role, "granted" => granted,
               "rejected" => rejected);
        match result {
            VoteResult::Won => {
                if self.role == Role::PreCandidate {
                    self.campaign(CampaignKind::Election);
                } else {
                    self.become_leader();
                }
            }
            VoteResult::Lost => self.become_follower(self.term, 0),
            VoteResult::Pending => {}
        }
    }

    pub(super) fn reset(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.vote = 0;
        }
        self.leader_id = 0;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_election_timer();
        self.prs.reset_votes();
        let next = self.log.last_index() + 1;
        let (msgs_max, bytes_max) = (self.inflight_msgs_max, self.inflight_bytes_max);
        let (id, persisted) = (self.id, self.log.persisted_index());
        for (pid, pr) in self.prs.iter_mut() {
            let is_learner = pr.is_learner;
            *pr = Progress::new(next, msgs_max, bytes_max);
            pr.is_learner = is_learner;
            if pid == id {
                pr.maybe_update(persisted);
            }
        }
        self.uncommitted_bytes = 0;
        self.append_due = false;
        self.commit_due = false;
        self.lead_transferee = 0;
        self.empty_append_due.clear();
        self.stepdown_at = None;
        self.peer_commit.clear();
        self.timeout_now_sent = false;
        self.read_only.reset();
        self.reads_before_commit.clear();
        self.read_round_due = false;
    }

    /// Draws a new randomized election timeout in `[election_ticks, 2 × election_ticks)`.
    pub(super) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let span = u64::from(self.election_ticks);
        let extra = (self.rng.next_u64() % span) as u32;
        self.randomized_election_timeout = self.election_ticks + extra;
    }

    pub fn become_follower(&mut self, term: u64, leader_id: u64) {
        self.reset(term);
        self.role = Role::Follower;
        self.leader_id = leader_id;
        info!(self.logger, "became follower"; "term" => term, "leader" => leader_id);
    }

    pub(super) fn become_pre_candidate(&mut self) {
        assert_ne!(
            self.role,
            Role::Leader,
            "a leader never becomes a pre-candidate"
        );
        // Pre-vote changes neither term nor vote (thesis §9.6).
        self.prs.reset_votes();
        self.leader_id = 0;
        self.role = Role::PreCandidate;
        info!(self.logger, "became pre-candidate"; "term" => self.term);
    }

    pub(super) fn become_candidate(&mut self) {
        assert_ne!(
            self.role,
            Role::Leader,
            "a leader never becomes a candidate"
        );
        self.reset(self.term + 1);
        self.vote = self.id;
        self.role = Role::Candidate;
        info!(self.logger, "became candidate"; "term" => self.term);
    }

    pub(super) fn become_leader(&mut self) {
        assert_eq!(
            self.role,
            Role::Candidate,
            "only a candidate becomes leader"
        );
        self.reset(self.term);
        self.leader_id = self.id;
        self.role = Role::Leader;
        if let Some(pr) = self.prs.get_mut(self.id) {
            pr.become_replicate();
            pr.recent_active = true;
            let persisted = self.log.persisted_index();
            pr.maybe_update(persisted);
        }
        info!(self.logger, "became leader"; "term" => self.term);
        // An empty entry of the new term lets the leader commit (and learn the commit
        // index of) everything before it (thesis §6.4).
        let mut noop = [Entry::normal(0, 0, Bytes::new())];
        self.append_entries(&mut noop)
            .expect("the first entry of a term is never refused: nothing is uncommitted yet");
        // No configuration change until everything up to this entry is applied: an earlier
        // change may still be in the log, and this leader must commit in its term first.
        self.pending_conf_index = noop[0].index;
    }

    pub fn forget_leader(&mut self) -> Result<(), ForgetLeaderError> {
        if self.read_only_option == ReadOnlyOption::LeaseBased {
            return Err(ForgetLeaderError::LeaseBasedReads);
        }
        if self.role != Role::Follower {
            return Err(ForgetLeaderError::NotFollower);
        }
        self.leader_id = 0;
        Ok(())
    }
}
