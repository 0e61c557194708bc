//! The Raft role logic: what a node does on a tick, a message or a proposal.
//!
//! ```text
//!                 timeout (pre-vote on)            pre-vote won
//!   ┌──────────┐ ───────────────────► ┌──────────────┐ ─────────► ┌───────────┐
//!   │ Follower │                      │ PreCandidate │            │ Candidate │
//!   └──────────┘ ◄─────────────────── └──────────────┘            └───────────┘
//!     ▲   ▲        lost / higher term                        won │   │ timeout:
//!     │   └──────────────────────────────────────────────────────┼───┘ new term
//!     │            higher term / lost                           ▼
//!     └─────────────── higher term / quorum lost ─────────── ┌────────┐
//!                                                           │ Leader │
//!                                                           └────────┘
//! ```
//!
//! Invariants (asserted in [`Raft::check_invariants`]):
//! 1. A leader names itself as leader and has voted for itself in its term.
//! 2. The durable hard state never runs ahead of the in-memory one (term, vote).
//! 3. The commit index only grows and never passes the last index.
//! 4. A leader commits by counting replicas only entries of its own term (Figure 8).
//! 5. A node's own vote and its own entries count only once they are durable
//!    (DESIGN §2 rule 2; thesis §10.2.1).
//!
//! Remote input is checked by [`Raft::validate`] before any state changes, so a refused
//! message leaves the node as it was.

use crate::EntryId;
use crate::buffers::Buffers;
use crate::confchange;
use crate::config::{Config, ReadOnlyOption};
use crate::error::ConfChangeError;
use crate::error::{
    DropReason, Fault, ForgetLeaderError, NewError, ProposeError, ReadIndexError, StepError,
    TransferError,
};
use crate::log::RaftLog;
use crate::outbox::Outbox;
use crate::quorum::VoteResult;
use crate::read_only::{PendingRead, ReadOnly, ReadState};
use crate::status::Role;
use crate::storage::Storage;
use crate::tracker::{Progress, ProgressState, ProgressTracker};
use crate::wire::{
    ConfChange, ConfChangeV2, ConfState, Entry, EntryType, HardState, Message, MessageType,
    Snapshot,
};
use bytes::Bytes;
use prost::Message as _;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use slog::{Logger, debug, info, warn};
use std::collections::{BTreeMap, VecDeque};

/// Context of a vote request sent on a leadership transfer: it bypasses stickiness.
pub(crate) const CAMPAIGN_TRANSFER: &[u8] = b"CampaignTransfer";

/// Which election a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CampaignKind {
    PreElection,
    Election,
    /// Asked for by the leader (MsgTimeoutNow): no pre-vote, and voters' stickiness yields.
    Transfer,
}

/// The outcome of a snapshot sent to a peer, as the driver learned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// The peer received the whole snapshot.
    Finish,
    /// Sending failed; the leader probes the peer again.
    Failure,
}

pub(crate) struct Raft<S: Storage> {
    pub id: u64,
    pub term: u64,
    pub vote: u64,
    pub role: Role,
    /// The leader of `term` as far as this node knows; 0 for none.
    pub leader_id: u64,
    pub log: RaftLog<S>,
    pub prs: ProgressTracker,
    pub outbox: Outbox,
    /// Emptied message and entry lists, reused for the next ones handed out.
    pub buffers: Buffers,
    /// The hard state carried by the last persist batch handed out (or read at start).
    pub handed_hs: HardState,
    /// The hard state last reported durable.
    pub durable_hs: HardState,
    /// Sequence number of the last persist batch carrying entries, a term or a vote: what an
    /// acknowledgement or a vote grant vouches for. A batch that only moves the commit index
    /// holds nothing back.
    pub vouch_seq: u64,
    /// Index of the last entry handed out in a persist batch.
    pub handed_last_index: u64,
    /// Sequence number of the last persist batch that overwrote entries handed out before.
    /// A completion of an earlier batch marks no entry stable: the overwrite is still on its
    /// way to disk, and an entry id alone cannot tell the two writes apart when a later
    /// leader rewrote the same ids (the etcd "ABA" race).
    pub overwrite_seq: u64,

    election_ticks: u32,
    heartbeat_ticks: u32,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_election_timeout: u32,
    rng: ChaCha8Rng,

    check_quorum: bool,
    pre_vote: bool,
    proposal_forwarding: bool,
    msg_bytes_max: u64,
    uncommitted_bytes_max: u64,
    pub apply_bytes_max: u64,
    inflight_msgs_max: usize,
    inflight_bytes_max: u64,

    /// Payload bytes of entries appended by this leader and not yet handed out to apply.
    pub uncommitted_bytes: u64,
    /// Appends may be due to some peer; `flush_appends` sends them at `ready()` time, so
    /// many proposals or acknowledgements between two Readies make one message per peer.
    append_due: bool,
    /// The commit index advanced: peers that are caught up get an empty append carrying it.
    commit_due: bool,
    /// Reused buffer of peer ids, so that sending appends allocates nothing per Ready.
    peers_scratch: Vec<u64>,
    /// Peers that answered a heartbeat while behind: they get an append even if empty.
    empty_append_due: Vec<u64>,

    /// Ticks since this node started: the clock of heartbeat rounds and leases.
    now: u64,
    /// The node leadership is being transferred to (0 for none).
    pub lead_transferee: u64,
    /// A MsgTimeoutNow was sent in this term: a delayed one may still start an election
    /// that ignores stickiness, so no lease can be trusted again in this term.
    timeout_now_sent: bool,
    read_only_option: ReadOnlyOption,
    reads_pending_max: usize,
    read_only: ReadOnly,
    /// Reads that arrived before this leader committed an entry of its term: requester,
    /// context and the requester's id for it.
    reads_before_commit: Vec<(u64, Bytes, u64)>,
    /// Reads this node forwarded to a leader and not yet answered: its id for each and the
    /// context. An answer is accepted only for one of these (at most `reads_pending_max`,
    /// the oldest forgotten first: its answer was lost, or the caller retries).
    reads_forwarded: VecDeque<(u64, Bytes)>,
    /// The id of the last read this node forwarded.
    read_forwarded_seq: u64,
    /// A heartbeat round is due for reads waiting on it.
    read_round_due: bool,
    /// Confirmed reads for the next Ready.
    pub read_states: Vec<ReadState>,
    /// A snapshot to hand to the application once durable.
    pub snapshot_to_apply: Option<Snapshot>,

    /// Index of the last configuration change this leader proposed (or of its first entry).
    pending_conf_index: u64,
    step_down_on_removal: bool,
    /// The configuration after every change handed out to apply.
    applying_conf: ConfState,
    /// Changes handed out to apply and not yet reported applied, in log order.
    conf_queue: VecDeque<(u64, ConfChangeV2)>,
    /// This leader applied a change that removed it, at this index: it steps down once a
    /// quorum of the new configuration reports a commit index at or past it.
    stepdown_at: Option<u64>,
    /// Commit indexes peers reported in their responses (only while `stepdown_at` is set).
    peer_commit: BTreeMap<u64, u64>,

    pub logger: Logger,
    #[cfg(feature = "planted-bugs")]
    planted_bugs: crate::config::PlantedBugs,
}

impl<S: Storage> Raft<S> {
    pub fn new(cfg: &Config, store: S, logger: &Logger) -> Result<Raft<S>, NewError> {
        cfg.validate()?;
        let rs = store.initial_state()?;
        let mut log = RaftLog::new(store)?;
        let hs = rs.hard_state;
        let last_index = log.last_index();
        // Applied entries were committed; the durable commit may lag behind them when the
        // driver applied a batch before persisting the commit index that came with it.
        let commit = hs.commit.max(cfg.applied).max(log.committed);
        if commit > last_index {
            return Err(NewError::CommitBeyondLog { commit, last_index });
        }
        log.commit_to(commit);
        let applied = cfg.applied.max(log.applied);
        if applied > commit {
            return Err(NewError::AppliedBeyondCommit { applied, commit });
        }
        if applied > log.applied {
            log.applying_to(applied);
            log.applied_to(applied);
        }
        let mut prs = ProgressTracker::new(cfg.inflight_msgs_max, cfg.inflight_bytes_max);
        prs.apply_conf(&rs.conf_state, last_index + 1);
        let logger = logger.new(slog::o!("raft_id" => cfg.id));
        let mut r = Raft {
            id: cfg.id,
            term: hs.term,
            vote: hs.vote,
            role: Role::Follower,
            leader_id: 0,
            log,
            prs,
            outbox: Outbox::default(),
            buffers: Buffers::default(),
            handed_hs: hs,
            durable_hs: hs,
            vouch_seq: 0,
            handed_last_index: last_index,
            overwrite_seq: 0,
            election_ticks: cfg.election_ticks,
            heartbeat_ticks: cfg.heartbeat_ticks,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: cfg.election_ticks,
            rng: ChaCha8Rng::seed_from_u64(cfg.rng_seed()),
            check_quorum: cfg.check_quorum,
            pre_vote: cfg.pre_vote,
            proposal_forwarding: cfg.proposal_forwarding,
            msg_bytes_max: cfg.msg_bytes_max,
            uncommitted_bytes_max: cfg.uncommitted_bytes_max,
            apply_bytes_max: cfg.apply_bytes_max,
            inflight_msgs_max: cfg.inflight_msgs_max,
            inflight_bytes_max: cfg.inflight_bytes_max,
            uncommitted_bytes: 0,
            append_due: false,
            commit_due: false,
            peers_scratch: Vec::new(),
            empty_append_due: Vec::new(),
            now: 0,
            lead_transferee: 0,
            timeout_now_sent: false,
            read_only_option: cfg.read_only,
            reads_pending_max: cfg.reads_pending_max,
            read_only: ReadOnly::default(),
            reads_before_commit: Vec::new(),
            reads_forwarded: VecDeque::new(),
            read_forwarded_seq: 0,
            read_round_due: false,
            read_states: Vec::new(),
            snapshot_to_apply: None,
            pending_conf_index: 0,
            step_down_on_removal: cfg.step_down_on_removal,
            applying_conf: rs.conf_state.clone(),
            conf_queue: VecDeque::new(),
            stepdown_at: None,
            peer_commit: BTreeMap::new(),
            logger,
            #[cfg(feature = "planted-bugs")]
            planted_bugs: cfg.planted_bugs,
        };
        r.handed_hs = r.hard_state();
        r.become_follower(hs.term, 0);
        info!(r.logger, "started"; "term" => r.term, "commit" => r.log.committed,
              "applied" => r.log.applied, "last_index" => last_index);
        Ok(r)
    }

    // ---------------------------------------------------------------- inputs

    pub fn tick(&mut self) {
        self.now += 1;
        if self.role == Role::Leader {
            self.tick_heartbeat();
        } else {
            self.tick_election();
        }
    }

    fn tick_election(&mut self) {
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

    fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_ticks {
            self.election_elapsed = 0;
            if self.lead_transferee != 0 {
                info!(self.logger, "leadership transfer timed out";
                      "transferee" => self.lead_transferee);
                self.lead_transferee = 0;
            }
            if self.check_quorum {
                if let Some(pr) = self.prs.get_mut(self.id) {
                    pr.recent_active = true;
                }
                if !self.prs.quorum_active() {
                    warn!(self.logger, "stepping down: no quorum heard within the election timeout";
                          "term" => self.term);
                    self.become_follower(self.term, 0);
                    return;
                }
                let id = self.id;
                for (pid, pr) in self.prs.iter_mut() {
                    pr.recent_active = pid == id;
                }
            }
        }
        if self.heartbeat_elapsed >= self.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat();
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

    fn start_campaign(&mut self) {
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
    fn maybe_step_down_after_removal(&mut self) {
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

    pub fn propose(&mut self, data: Bytes) -> Result<EntryId, ProposeError> {
        match self.role {
            Role::Leader => {
                let mut ents = [Entry {
                    entry_type: EntryType::EntryNormal as i32,
                    term: 0,
                    index: 0,
                    data,
                }];
                self.append_entries(&mut ents)?;
                Ok(EntryId::new(ents[0].index, ents[0].term))
            }
            Role::Follower if self.leader_id != 0 && self.proposal_forwarding => {
                let mut m = self.msg(self.leader_id, MessageType::MsgProp);
                m.term = 0;
                m.entries.push(Entry::normal(0, 0, data));
                let leader = self.leader_id;
                self.send(m);
                Err(ProposeError::Forwarded { leader })
            }
            _ => Err(ProposeError::NotLeader {
                leader_hint: (self.leader_id != 0).then_some(self.leader_id),
            }),
        }
    }

    /// Gives `ents` their index and term and appends them to the leader's log.
    fn append_entries(&mut self, ents: &mut [Entry]) -> Result<(), ProposeError> {
        debug_assert_eq!(self.role, Role::Leader);
        if self.stepdown_at.is_some() {
            return Err(ProposeError::Dropped {
                reason: DropReason::NotMember,
            });
        }
        if self.lead_transferee != 0 {
            return Err(ProposeError::Dropped {
                reason: DropReason::TransferInProgress,
            });
        }
        let bytes: u64 = ents.iter().map(Entry::payload_bytes).sum();
        if self.uncommitted_bytes_max > 0
            && self.uncommitted_bytes > 0
            && self.uncommitted_bytes + bytes > self.uncommitted_bytes_max
        {
            return Err(ProposeError::Dropped {
                reason: DropReason::UncommittedBytesMax,
            });
        }
        let last = self.log.last_index();
        for (i, e) in ents.iter_mut().enumerate() {
            e.index = last + 1 + i as u64;
            e.term = self.term;
        }
        self.log.append_from(ents);
        self.uncommitted_bytes += bytes;
        self.append_due = true;
        Ok(())
    }

    // ---------------------------------------------------------------- step

    /// Steps `m`; handlers take what they keep out of it (it is large: passing it by reference
    /// saves a copy at each level of calls).
    pub fn step(&mut self, m: &mut Message) -> Result<(), StepError> {
        self.validate(m)?;
        let kind = m.kind();
        if matches!(kind, MessageType::MsgVote | MessageType::MsgPreVote) {
            // Before the term and lease rules: what a candidate knows committed is true
            // whatever its term, and whether this node grants or ignores its request.
            self.learn_commit_from_candidate(m);
        }
        if m.term == 0 {
            // A forwarded proposal or read request: no term to reconcile.
        } else if m.term > self.term {
            if matches!(kind, MessageType::MsgVote | MessageType::MsgPreVote) {
                let force = m.context.as_ref() == CAMPAIGN_TRANSFER;
                let in_lease = self.check_quorum
                    && self.leader_id != 0
                    && self.election_elapsed < self.election_ticks;
                if !force && in_lease {
                    debug!(self.logger, "ignoring vote request: leader is live";
                           "from" => m.from, "term" => m.term, "leader" => self.leader_id);
                    return Ok(());
                }
            }
            match kind {
                MessageType::MsgPreVote => {}
                MessageType::MsgPreVoteResp if !m.reject => {}
                _ => {
                    let lead = match kind {
                        MessageType::MsgApp | MessageType::MsgHeartbeat | MessageType::MsgSnap => {
                            m.from
                        }
                        _ => 0,
                    };
                    info!(self.logger, "higher term seen"; "term" => self.term,
                          "msg_term" => m.term, "from" => m.from, "kind" => ?kind);
                    self.become_follower(m.term, lead);
                }
            }
        } else if m.term < self.term {
            if (self.check_quorum || self.pre_vote)
                && matches!(kind, MessageType::MsgHeartbeat | MessageType::MsgApp)
            {
                // A leader cut off by a partition learns of the newer term from this and
                // steps down; without it, it could keep a pre-voting node from winning.
                let r = self.msg(m.from, MessageType::MsgAppResp);
                self.send(r);
            } else if kind == MessageType::MsgPreVote {
                let mut r = self.msg(m.from, MessageType::MsgPreVoteResp);
                r.reject = true;
                self.send(r);
            } else if kind == MessageType::MsgVote {
                // Tell a candidate of an older term about ours (Raft's RequestVote reply):
                // otherwise a node that never hears from us cannot catch up its term.
                let mut r = self.msg(m.from, MessageType::MsgVoteResp);
                r.reject = true;
                self.send(r);
            }
            return Ok(());
        }

        match kind {
            MessageType::MsgVote | MessageType::MsgPreVote => {
                self.handle_vote_request(m);
                Ok(())
            }
            _ => match self.role {
                Role::Leader => self.step_leader(m),
                Role::Candidate | Role::PreCandidate => {
                    self.step_candidate(m);
                    Ok(())
                }
                Role::Follower => {
                    self.step_follower(m);
                    Ok(())
                }
            },
        }
    }

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
    fn validate(&self, m: &Message) -> Result<(), StepError> {
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
    fn learn_commit_from_candidate(&mut self, m: &Message) {
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

    fn handle_vote_request(&mut self, m: &Message) {
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

    fn step_leader(&mut self, m: &mut Message) -> Result<(), StepError> {
        if self.stepdown_at.is_some()
            && matches!(
                m.kind(),
                MessageType::MsgAppResp | MessageType::MsgHeartbeatResp
            )
        {
            let known = self.peer_commit.entry(m.from).or_insert(0);
            *known = (*known).max(m.commit);
            self.maybe_step_down_after_removal();
            if self.role != Role::Leader {
                return Ok(());
            }
        }
        match m.kind() {
            MessageType::MsgProp => {
                let mut ents = std::mem::take(&mut m.entries);
                if let Err(e) = self.append_entries(&mut ents) {
                    debug!(self.logger, "dropping forwarded proposal"; "from" => m.from,
                           "reason" => %e);
                }
            }
            MessageType::MsgAppResp => self.handle_append_response(m)?,
            MessageType::MsgHeartbeatResp => {
                let last_index = self.log.last_index();
                let pr = self.prs.get_mut(m.from).ok_or(StepError::UnknownPeer {
                    from: m.from,
                    kind: m.kind(),
                })?;
                pr.recent_active = true;
                // Unpause even a full replicate window: if every append in it was lost, the
                // empty append sent now is answered and clears the window (etcd does this).
                if pr.state != ProgressState::Snapshot {
                    pr.msg_app_flow_paused = false;
                }
                if pr.matched < last_index || pr.state == ProgressState::Probe {
                    self.append_due = true;
                    if !self.empty_append_due.contains(&m.from) {
                        self.empty_append_due.push(m.from);
                    }
                }
                if m.read_round != 0 && self.prs.is_voter(m.from) {
                    self.recv_read_ack(m.from, m.read_round);
                }
            }
            MessageType::MsgReadIndex => {
                if self.prs.get(m.from).is_none() {
                    return Err(StepError::UnknownPeer {
                        from: m.from,
                        kind: m.kind(),
                    });
                }
                // Answered to the node that asked, even if another one passed it on.
                let requester = requester_of(m);
                if self.prs.get(requester).is_none() {
                    debug!(self.logger, "refusing forwarded read: unknown requester";
                           "from" => m.from, "requester" => requester);
                    return Ok(());
                }
                let ctx = std::mem::take(&mut m.context);
                if let Err(e) = self.leader_read(requester, ctx, m.read_round) {
                    debug!(self.logger, "refusing forwarded read"; "from" => m.from,
                           "reason" => %e);
                }
            }
            MessageType::MsgTransferLeader => {
                // The kind means "transfer to the requester": the sender, unless it passed on
                // another node's request.
                let to = requester_of(m);
                if let Err(e) = self.transfer_leader(to) {
                    debug!(self.logger, "refusing transfer request"; "from" => m.from,
                           "to" => to, "reason" => %e);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn handle_append_response(&mut self, m: &Message) -> Result<(), StepError> {
        let next_probe = if m.reject && m.log_term > 0 {
            self.log.find_conflict_by_term(m.reject_hint, m.log_term).0
        } else {
            m.reject_hint
        };
        let pr = self.prs.get_mut(m.from).ok_or(StepError::UnknownPeer {
            from: m.from,
            kind: m.kind(),
        })?;
        pr.recent_active = true;
        if m.reject {
            debug!(self.logger, "append rejected"; "from" => m.from, "index" => m.index,
                   "hint" => m.reject_hint, "hint_term" => m.log_term);
            if pr.maybe_decr_to(m.index, next_probe) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.append_due = true;
            }
            return Ok(());
        }
        let first_index = self.log.first_index();
        // An acknowledgement at the match while probing also ends the probe: the follower is
        // caught up and the next appends may be pipelined (etcd does the same). Without it, a
        // caught-up peer stayed in probe until the next proposal grew its match.
        let caught_up_probe = pr.state == ProgressState::Probe && m.index == pr.matched;
        let updated = pr.maybe_update(m.index);
        if updated || caught_up_probe {
            match pr.state {
                ProgressState::Probe => pr.become_replicate(),
                ProgressState::Replicate => pr.inflights.free_le(m.index),
                ProgressState::Snapshot => {
                    // The follower caught up (through the snapshot or otherwise): what it
                    // now lacks is still in the log, so replicate again.
                    if pr.matched + 1 >= first_index {
                        pr.become_probe();
                        pr.become_replicate();
                    }
                }
            }
            if updated {
                self.append_due = true;
                self.maybe_commit();
            } else if pr.matched < self.log.last_index() {
                // Back in replicate with entries to send.
                self.append_due = true;
            }
        }
        if m.from == self.lead_transferee
            && self
                .prs
                .get(m.from)
                .is_some_and(|pr| pr.matched == self.log.last_index())
        {
            self.send_timeout_now(m.from);
        }
        Ok(())
    }

    fn step_candidate(&mut self, m: &mut Message) {
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

    fn step_follower(&mut self, m: &mut Message) {
        match m.kind() {
            MessageType::MsgProp => {
                if self.leader_id == 0 || !self.proposal_forwarding {
                    debug!(self.logger, "dropping forwarded proposal"; "from" => m.from,
                           "leader" => self.leader_id);
                    return;
                }
                let mut fwd = std::mem::take(m);
                fwd.to = self.leader_id;
                fwd.from = self.id;
                self.send(fwd);
            }
            MessageType::MsgApp => {
                self.election_elapsed = 0;
                self.leader_id = m.from;
                self.handle_append(m);
            }
            MessageType::MsgHeartbeat => {
                self.election_elapsed = 0;
                self.leader_id = m.from;
                self.handle_heartbeat(m);
            }
            MessageType::MsgSnap => {
                self.election_elapsed = 0;
                self.leader_id = m.from;
                self.handle_snapshot(m);
            }
            MessageType::MsgTimeoutNow => {
                if self.promotable() {
                    info!(self.logger, "campaigning on the leader's request"; "from" => m.from);
                    self.campaign(CampaignKind::Transfer);
                } else {
                    debug!(self.logger, "ignoring MsgTimeoutNow: not a voter");
                }
            }
            MessageType::MsgReadIndex if self.leader_id != 0 => {
                // Passed on with the requester (and its id for the read) kept: the leader
                // answers the node that asked, not this one (issue 12 item 5).
                let mut fwd = std::mem::take(m);
                fwd.requester = requester_of(&fwd);
                fwd.to = self.leader_id;
                fwd.from = self.id;
                self.send(fwd);
            }
            MessageType::MsgReadIndexResp => self.handle_read_index_response(m),
            MessageType::MsgTransferLeader if self.leader_id != 0 => {
                // Passed on with the requester kept: leadership goes to the node that asked,
                // not to this one (issue 12 item 6).
                let mut fwd = std::mem::take(m);
                fwd.requester = requester_of(&fwd);
                fwd.to = self.leader_id;
                fwd.from = self.id;
                fwd.term = self.term;
                self.send(fwd);
            }
            _ => {}
        }
    }

    fn handle_snapshot(&mut self, m: &mut Message) {
        let snap = *m
            .snapshot
            .take()
            .expect("validated: MsgSnap carries a snapshot");
        let (index, term) = (snap.index(), snap.term());
        let mut r = self.msg(m.from, MessageType::MsgAppResp);
        if index <= self.log.committed {
            debug!(self.logger, "ignoring stale snapshot"; "index" => index,
                   "committed" => self.log.committed);
            r.index = self.log.committed;
        } else if self.log.match_term(EntryId::new(index, term)) {
            // Our log already holds the snapshot's last entry: just fast-forward commit. The
            // answer vouches only for what was compared with the leader's log: the snapshot's
            // entry and what is committed (entries after it were never checked).
            self.log.commit_to(index);
            r.index = self.log.committed;
        } else {
            let cs = snap
                .metadata
                .as_ref()
                .and_then(|md| md.conf_state.clone())
                .expect("validated: snapshot has a configuration");
            info!(self.logger, "restoring snapshot"; "index" => index, "term" => term);
            self.log.restore(snap.clone());
            self.snapshot_to_apply = Some(snap);
            let next = self.log.last_index() + 1;
            // The snapshot's configuration supersedes changes still waiting to be applied.
            self.conf_queue.clear();
            self.applying_conf = cs.clone();
            self.prs.apply_conf(&cs, next);
            r.index = self.log.last_index();
        }
        self.send(r);
    }

    fn handle_append(&mut self, m: &mut Message) {
        let mut r = self.msg(m.from, MessageType::MsgAppResp);
        if m.index < self.log.committed {
            r.index = self.log.committed;
            self.send(r);
            return;
        }
        if self.log.match_term(EntryId::new(m.index, m.log_term)) {
            let last_new = m.index + m.entries.len() as u64;
            let conflict = self.log.find_conflict(&m.entries);
            if conflict != 0 {
                let start = (conflict - m.index - 1) as usize;
                self.log.append_from(&mut m.entries[start..]);
            }
            // The payloads moved to the log: the emptied list serves the next batch.
            self.buffers.keep_entries(std::mem::take(&mut m.entries));
            self.log.commit_to(m.commit.min(last_new));
            r.index = last_new;
            self.send(r);
        } else {
            let hint_index = m.index.min(self.log.last_index());
            let (hint_index, hint_term) = self.log.find_conflict_by_term(hint_index, m.log_term);
            debug!(self.logger, "rejecting append"; "from" => m.from, "index" => m.index,
                   "log_term" => m.log_term, "hint" => hint_index, "hint_term" => hint_term);
            r.index = m.index;
            r.reject = true;
            r.reject_hint = hint_index;
            r.log_term = hint_term;
            self.send(r);
        }
    }

    fn handle_heartbeat(&mut self, m: &Message) {
        self.log.commit_to(m.commit);
        let mut r = self.msg(m.from, MessageType::MsgHeartbeatResp);
        r.context = m.context.clone();
        r.read_round = m.read_round;
        self.send(r);
    }

    // ---------------------------------------------------------------- completions

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
    fn maybe_count_own_vote(&mut self) {
        if self.role == Role::Candidate
            && self.durable_hs.term == self.term
            && self.durable_hs.vote == self.id
        {
            self.prs.record_vote(self.id, true);
            self.poll();
        }
    }

    // ---------------------------------------------------------------- elections

    fn campaign(&mut self, kind: CampaignKind) {
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
    fn poll(&mut self) {
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

    // ---------------------------------------------------------------- roles

    fn reset(&mut self, term: u64) {
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
    fn reset_election_timer(&mut self) {
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

    fn become_pre_candidate(&mut self) {
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

    fn become_candidate(&mut self) {
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

    fn become_leader(&mut self) {
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

    // ---------------------------------------------------------------- replication

    /// Advances the commit index to what a quorum holds, if it is of the current term.
    fn maybe_commit(&mut self) -> bool {
        let mci = self.prs.committed().min(self.log.last_index());
        #[cfg(feature = "planted-bugs")]
        if self.planted_bugs.commit_previous_term_entries {
            // Planted bug (tests only): count replicas of any term, breaking Figure 8.
            if mci > self.log.committed {
                self.log.commit_to(mci);
                self.commit_due = true;
                self.append_due = true;
                return true;
            }
            return false;
        }
        if self.log.maybe_commit(EntryId::new(mci, self.term)) {
            self.commit_due = true;
            self.append_due = true;
            if !self.reads_before_commit.is_empty() {
                for (from, ctx, req_id) in std::mem::take(&mut self.reads_before_commit) {
                    if let Err(e) = self.leader_read(from, ctx, req_id) {
                        debug!(self.logger, "dropping queued read"; "reason" => %e);
                    }
                }
            }
            true
        } else {
            false
        }
    }

    /// Sends every append that flow control allows, once per Ready.
    pub fn flush_appends(&mut self) {
        if self.role != Role::Leader || !self.append_due {
            return;
        }
        self.append_due = false;
        if self.prs.is_only_member(self.id) {
            // A lone node: nobody to send to.
            self.commit_due = false;
            self.empty_append_due.clear();
            return;
        }
        let commit_due = std::mem::take(&mut self.commit_due);
        let mut peers = std::mem::take(&mut self.peers_scratch);
        peers.clear();
        peers.extend(
            self.prs
                .iter()
                .map(|(id, _)| id)
                .filter(|id| *id != self.id),
        );
        for &to in &peers {
            let probe = self
                .prs
                .get(to)
                .is_some_and(|pr| pr.state == ProgressState::Probe);
            let nudge = self.empty_append_due.contains(&to);
            let mut send_empty = commit_due || probe || nudge;
            while self.maybe_send_append(to, send_empty) {
                send_empty = false;
            }
        }
        self.peers_scratch = peers;
        self.empty_append_due.clear();
    }

    /// Sends one append to `to` if its progress allows; returns whether one was sent.
    fn maybe_send_append(&mut self, to: u64, send_if_empty: bool) -> bool {
        let Some(pr) = self.prs.get(to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        let next = pr.next_idx;
        let prev_index = next - 1;
        let prev_term = match self.log.term(prev_index) {
            Ok(t) => t,
            Err(_) => return self.maybe_send_snapshot(to),
        };
        let last_index = self.log.last_index();
        // A full replicate window sends only an empty append (after a heartbeat response):
        // enough to learn where the follower stands, without overfilling the window.
        let window_full = pr.state == ProgressState::Replicate && pr.inflights.full();
        let entries = if next <= last_index && !window_full {
            let mut ents = self.buffers.entries();
            match self.log.entries_into(next, self.msg_bytes_max, &mut ents) {
                Ok(()) => ents,
                Err(_) => {
                    self.buffers.keep_entries(ents);
                    return self.maybe_send_snapshot(to);
                }
            }
        } else {
            Vec::new()
        };
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let count = entries.len();
        let bytes: u64 = entries.iter().map(Entry::payload_bytes).sum();
        let pr = self.prs.get_mut(to).expect("checked above");
        pr.sent_entries(count, bytes);
        if pr.state == ProgressState::Probe {
            // One probe in flight at a time, with or without entries.
            pr.msg_app_flow_paused = true;
        }
        let mut m = self.msg(to, MessageType::MsgApp);
        m.index = prev_index;
        m.log_term = prev_term;
        m.commit = self.log.committed.min(prev_index + count as u64);
        m.entries = entries;
        self.send(m);
        true
    }

    /// The follower needs entries that were compacted away: send the storage's snapshot.
    /// Returns false: nothing more goes to this peer until it answers.
    fn maybe_send_snapshot(&mut self, to: u64) -> bool {
        let Some(pr) = self.prs.get(to) else {
            return false;
        };
        if !pr.recent_active {
            debug!(self.logger, "not sending snapshot to an inactive peer"; "to" => to);
            return false;
        }
        let snap = match self.log.store().snapshot(pr.next_idx - 1, to) {
            Ok(s) => s,
            Err(e) => {
                debug!(self.logger, "snapshot not available"; "to" => to, "error" => %e);
                return false;
            }
        };
        if snap.index() == 0
            || snap
                .metadata
                .as_ref()
                .is_none_or(|m| m.conf_state.is_none())
        {
            warn!(self.logger, "storage returned an empty snapshot"; "to" => to);
            return false;
        }
        let index = snap.index();
        info!(self.logger, "sending snapshot"; "to" => to, "index" => index);
        self.prs
            .get_mut(to)
            .expect("checked above")
            .become_snapshot(index);
        let mut m = self.msg(to, MessageType::MsgSnap);
        m.snapshot = Some(Box::new(snap));
        self.send(m);
        false
    }

    /// Sends a heartbeat to every peer, as a new read round.
    fn bcast_heartbeat(&mut self) {
        let round = self.read_only.new_round(self.id, self.now);
        self.read_round_due = false;
        for to in self.prs.ids() {
            if to == self.id {
                continue;
            }
            let matched = self.prs.get(to).map_or(0, |pr| pr.matched);
            let mut m = self.msg(to, MessageType::MsgHeartbeat);
            // Capped at the follower's match: it may not have the leader's later entries.
            m.commit = self.log.committed.min(matched);
            m.read_round = round;
            self.send(m);
        }
        // The leader acknowledges its own round at once (a lone voter confirms it alone).
        self.recv_read_ack(self.id, round);
    }

    // ---------------------------------------------------------------- reads

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
    fn handle_read_index_response(&mut self, m: &mut Message) {
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
    fn lease_valid(&self) -> bool {
        let lease_ticks = u64::from(self.election_ticks) - 1;
        !self.timeout_now_sent
            && self
                .read_only
                .confirmed_sent_tick()
                .is_some_and(|t| self.now < t + lease_ticks)
    }

    /// A read on the leader, asked by `from` (itself or a follower, whose id for the request
    /// is `req_id`).
    fn leader_read(&mut self, from: u64, ctx: Bytes, req_id: u64) -> Result<(), ReadIndexError> {
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

    fn recv_read_ack(&mut self, from: u64, round: u64) {
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
    fn release_confirmed_reads(&mut self) {
        let voters = &self.prs.config.voters;
        let done = self
            .read_only
            .release(|acked| voters.vote_result(|id| acked(id).then_some(true)) == VoteResult::Won);
        for req in done {
            self.respond_read(req);
        }
    }

    fn respond_read(&mut self, req: PendingRead) {
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

    // ---------------------------------------------------------------- transfer & reports

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
    fn forward_transfer(&mut self, to: u64) -> Result<(), TransferError> {
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

    fn send_timeout_now(&mut self, to: u64) {
        self.timeout_now_sent = true;
        let m = self.msg(to, MessageType::MsgTimeoutNow);
        self.send(m);
    }

    pub fn report_unreachable(&mut self, id: u64) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(pr) = self.prs.get_mut(id)
            && pr.state == ProgressState::Replicate
        {
            pr.become_probe();
        }
    }

    pub fn report_snapshot(&mut self, id: u64, status: SnapshotStatus) {
        if self.role != Role::Leader {
            return;
        }
        let Some(pr) = self.prs.get_mut(id) else {
            return;
        };
        if pr.state != ProgressState::Snapshot {
            return;
        }
        if status == SnapshotStatus::Failure {
            pr.pending_snapshot = 0;
        }
        pr.become_probe();
        // Success: wait for the follower's append response. Failure: wait for a heartbeat
        // response before probing again.
        pr.msg_app_flow_paused = true;
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

    // ---------------------------------------------------------------- output

    fn msg(&self, to: u64, kind: MessageType) -> Message {
        Message {
            msg_type: kind as i32,
            to,
            from: self.id,
            term: self.term,
            ..Message::default()
        }
    }

    /// Queues `m`, holding it until the state it vouches for is durable.
    #[inline(always)]
    fn send(&mut self, mut m: Message) {
        debug_assert_ne!(m.to, self.id, "a node never messages itself");
        if matches!(
            m.kind(),
            MessageType::MsgAppResp | MessageType::MsgHeartbeatResp
        ) {
            // Responses report the follower's commit index: a leader that removed itself
            // waits for a quorum of the new configuration to know of the removal.
            m.commit = self.log.committed;
        }
        let vouches = matches!(m.kind(), MessageType::MsgAppResp | MessageType::MsgVoteResp);
        // Only a vouching message needs `vouched_state_seq` (a few compares).
        match if vouches {
            self.vouched_state_seq()
        } else {
            None
        } {
            Some(seq) => self.outbox.hold(seq, m),
            None => self.outbox.ready.push(m),
        }
    }

    /// The persist batch that must be durable before a message vouching for the current log,
    /// term and vote may leave; `None` when all of that is durable already.
    fn vouched_state_seq(&self) -> Option<u64> {
        if self.has_unhanded_state() {
            Some(self.outbox.seq_issued + 1)
        } else if self.vouch_seq > self.outbox.seq_done {
            Some(self.vouch_seq)
        } else {
            None
        }
    }

    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    /// Whether there is state not yet handed out in a persist batch: entries, a snapshot, a
    /// term or a vote. A new commit index alone is not: it is written with the next batch
    /// that carries one of those (see [`crate::PersistBatch::hard_state`]).
    pub fn has_unhanded_state(&self) -> bool {
        self.log.has_next_unstable()
            || self.term != self.handed_hs.term
            || self.vote != self.handed_hs.vote
    }

    pub fn has_append_due(&self) -> bool {
        (self.append_due || self.read_round_due) && self.role == Role::Leader
    }

    pub fn check_invariants(&self) {
        self.log.check_invariants();
        self.outbox.check_invariants();
        self.buffers.check_invariants();
        self.read_only.check_invariants();
        if self.lead_transferee != 0 {
            assert_eq!(
                self.role,
                Role::Leader,
                "only a leader transfers leadership"
            );
        }
        assert!(
            self.durable_hs.term <= self.term,
            "durable term never runs ahead"
        );
        assert!(
            self.handed_hs.term <= self.term,
            "handed-out term never runs ahead"
        );
        assert!(
            self.log.committed <= self.log.last_index(),
            "commit within the log"
        );
        if self.role == Role::Leader {
            assert_eq!(self.leader_id, self.id, "a leader names itself leader");
            assert_eq!(self.vote, self.id, "a leader voted for itself in its term");
        }
        for (_, pr) in self.prs.iter() {
            pr.check_invariants();
        }
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
fn number_too_large(m: &Message) -> Option<Fault> {
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

/// The node a read or transfer request is for: the one that asked, which is the sender
/// unless the sender passed on another node's request.
fn requester_of(m: &Message) -> u64 {
    if m.requester != 0 {
        m.requester
    } else {
        m.from
    }
}

/// Decodes the change carried by a configuration entry: `None` for a normal entry,
/// `Some(Err(None))` for one whose data does not decode.
fn decode_conf_change(e: &Entry) -> Option<Result<ConfChangeV2, Option<confchange::ChangeError>>> {
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
