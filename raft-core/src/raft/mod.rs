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
//!
//! This file keeps the [`Raft`] struct, its construction, `tick` and `step`'s dispatch (the
//! term rules, then per role) and the output helpers (`msg`, `send` holding what vouches for
//! non-durable state). Each concern is a room of its own, one `impl` block each:
//!
//! | file | decides |
//! | --- | --- |
//! | `election.rs` | when to campaign, which (pre-)votes to grant, role changes |
//! | `replication.rs` | proposals, appends and their answers, heartbeats, snapshots sent, commit |
//! | `reads.rs` | ReadIndex rounds, leases, forwarded reads and their answers |
//! | `transfer.rs` | leadership transfer |
//! | `membership.rs` | proposing configuration changes and applying them |
//! | `validate.rs` | whether a message from the network is acceptable at all |
//! | `completions.rs` | what a durable persist batch releases |

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

mod completions;
mod election;
mod membership;
mod reads;
mod replication;
mod transfer;
mod validate;

pub(crate) use validate::conf_state_is_valid;

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

    pub fn tick(&mut self) {
        self.now += 1;
        if self.role == Role::Leader {
            self.tick_heartbeat();
        } else {
            self.tick_election();
        }
    }

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

/// The node a read or transfer request is for: the one that asked, which is the sender
/// unless the sender passed on another node's request.
fn requester_of(m: &Message) -> u64 {
    if m.requester != 0 {
        m.requester
    } else {
        m.from
    }
}
