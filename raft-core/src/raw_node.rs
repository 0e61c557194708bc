//! [`RawNode`]: the public face of a node, grouped as inputs, output and completions.
//!
//! Calling protocol (DESIGN §2): feed inputs (`tick`, `step`, `propose`, `campaign`) in any
//! order; when `has_ready()`, take `ready()` and carry out its three parts; report writes
//! with `on_persisted` in the order the batches were handed out, and applied batches with
//! `on_applied` in order. Any input or completion may come between any two others.
//!
//! Invariants:
//! 1. `ready()` moves everything out; nothing handed out is taken back.
//! 2. A completion token names this node and its batch; a foreign or out-of-order token is
//!    embedding misuse and panics with a message naming the rule.

use crate::EntryId;
use crate::config::Config;
#[allow(unused_imports)] // named in docs
use crate::config::ReadOnlyOption;
use crate::error::{
    ConfChangeError, ForgetLeaderError, NewError, ProposeError, ReadIndexError, StepError,
    TransferError,
};
use crate::raft::{Raft, SnapshotStatus};
#[allow(unused_imports)] // named in docs
use crate::read_only::ReadState;
use crate::ready::{Applied, ApplyBatch, PersistBatch, Persisted, Ready};
use crate::status::{PeerStatus, Role, Status};
use crate::storage::{MemStorage, Storage, StorageError};
use crate::wire::Message;
use crate::wire::{ConfChangeV2, ConfState, EntryType, Snapshot};
use bytes::Bytes;
use slog::Logger;

/// A Raft node driven through the Ready contract.
pub struct RawNode<S: Storage> {
    raft: Raft<S>,
}

/// Why `campaign` did nothing.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CampaignError {
    /// This node is not a voter of its configuration.
    #[error("not a voter")]
    NotVoter,
    /// This node already leads its term.
    #[error("already leader")]
    AlreadyLeader,
    /// A committed configuration change is not applied yet: once it is, this node may no
    /// longer be a voter.
    #[error("a committed configuration change is not applied yet")]
    PendingConfChange,
}

impl<S: Storage> RawNode<S> {
    /// Builds a node from its configuration and its durable state in `storage`.
    ///
    /// # Errors
    /// [`NewError`] when the configuration is invalid or the storage is unreadable or
    /// contradicts itself.
    pub fn new(config: &Config, storage: S, logger: &Logger) -> Result<RawNode<S>, NewError> {
        Ok(RawNode {
            raft: Raft::new(config, storage, logger)?,
        })
    }

    // ------------------------------------------------------------ inputs

    /// Advances the logical clock by one tick (elections, heartbeats, check-quorum).
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Hands the node a message from a peer.
    ///
    /// # Errors
    /// A [`StepError`] when the message is malformed, misaddressed, stale in an impossible
    /// way or not supported; the node's state is then unchanged.
    #[inline]
    pub fn step(&mut self, mut m: Message) -> Result<(), StepError> {
        let r = self.raft.step(&mut m);
        if let Err(e) = &r {
            slog::warn!(self.raft.logger, "refused message"; "error" => %e);
        }
        r
    }

    /// Proposes `data` for the log. On the leader, returns the id the entry was given: the
    /// proposal is committed iff an entry with exactly this id is applied.
    ///
    /// # Errors
    /// [`ProposeError::NotLeader`] on a node that will not forward,
    /// [`ProposeError::Forwarded`] when the proposal went to the leader (its id is unknown
    /// here), [`ProposeError::Dropped`] when the leader refused it.
    pub fn propose(&mut self, data: impl Into<Bytes>) -> Result<EntryId, ProposeError> {
        self.raft.propose(data.into())
    }

    /// Asks for a linearizable read. The leader confirms it with a heartbeat round (or its
    /// lease, under [`ReadOnlyOption::LeaseBased`]); a follower forwards it to the leader,
    /// tagged with an id of its own, and accepts only an answer to a read it asked for.
    /// The answer arrives as a [`ReadState`] in [`Ready::read_states`], carrying `ctx` back.
    ///
    /// # Errors
    /// [`ReadIndexError`] when no leader is known, too many reads wait, or a lease read
    /// meets a leadership transfer.
    pub fn read_index(&mut self, ctx: impl Into<Bytes>) -> Result<(), ReadIndexError> {
        self.raft.read_index(ctx.into())
    }

    /// Hands leadership to `to`: catches it up, then tells it to campaign at once.
    /// Proposals are refused meanwhile; the transfer is abandoned after an election timeout.
    /// On a follower that knows the leader, the request is passed on to it (naming `to`), as
    /// etcd does; the leader may still refuse it.
    ///
    /// # Errors
    /// [`TransferError`] when no leader is known (or this node is a candidate), or `to`
    /// cannot lead (as far as this node's configuration tells).
    pub fn transfer_leader(&mut self, to: u64) -> Result<(), TransferError> {
        self.raft.transfer_leader(to)
    }

    /// Tells the leader that a message to `id` could not be delivered: it probes `id` again.
    pub fn report_unreachable(&mut self, id: u64) {
        self.raft.report_unreachable(id);
    }

    /// Tells the leader how sending a snapshot to `id` ended.
    pub fn report_snapshot(&mut self, id: u64, status: SnapshotStatus) {
        self.raft.report_snapshot(id, status);
    }

    /// Forgets the current leader, so that this follower may grant a (pre-)vote to a
    /// candidate at once (for example after learning the leader is being shut down).
    ///
    /// # Errors
    /// [`ForgetLeaderError`] under lease-based reads or when not a follower.
    pub fn forget_leader(&mut self) -> Result<(), ForgetLeaderError> {
        self.raft.forget_leader()
    }

    /// Proposes a membership change: a single-step change, or several at once through a
    /// joint configuration (see [`crate::confchange::apply`] for the rules). It takes effect
    /// on each node when its entry is reported applied there.
    ///
    /// # Errors
    /// [`ConfChangeError`] when this node is not the leader, a change is still pending, a
    /// transfer is in progress, or the change is invalid; never a silent no-op.
    pub fn propose_conf_change(
        &mut self,
        cc: impl Into<ConfChangeV2>,
    ) -> Result<EntryId, ConfChangeError> {
        self.raft.propose_conf_change(cc.into())
    }

    /// The configuration in effect (changes reported applied).
    pub fn conf_state(&self) -> ConfState {
        self.raft.prs.conf_state()
    }

    /// Starts an election now (a pre-vote first when configured).
    ///
    /// # Errors
    /// [`CampaignError`] when this node cannot or need not campaign.
    pub fn campaign(&mut self) -> Result<(), CampaignError> {
        if self.raft.role == Role::Leader {
            return Err(CampaignError::AlreadyLeader);
        }
        if !self.raft.prs.is_voter(self.raft.id) {
            return Err(CampaignError::NotVoter);
        }
        if self.raft.has_unapplied_conf_change() {
            return Err(CampaignError::PendingConfChange);
        }
        let started = self.raft.campaign_now();
        debug_assert!(started, "a voter with no pending change can campaign");
        Ok(())
    }

    // ------------------------------------------------------------ output

    /// Whether `ready()` would return something to do.
    #[inline]
    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        !r.outbox.ready.is_empty()
            || !r.read_states.is_empty()
            || r.has_unhanded_state()
            || r.has_append_due()
            || r.log.has_next_committed_entries()
            || self.snapshot_ready_to_apply()
    }

    fn snapshot_ready_to_apply(&self) -> bool {
        let r = &self.raft;
        r.snapshot_to_apply
            .as_ref()
            .is_some_and(|s| r.log.unstable_snapshot().is_none() && r.log.applying < s.index())
    }

    /// Moves out everything the driver must do now: messages to send, a write to persist,
    /// entries to apply, confirmed reads. See [`Ready`] for the obligations.
    pub fn ready(&mut self) -> Ready {
        let mut rd = Ready::default();
        self.ready_into(&mut rd);
        rd
    }

    /// As [`RawNode::ready`], but into `rd`: a `Ready` the driver is done with (or a new
    /// one). Its lists (the messages, the batches' entries) are emptied and reused for the
    /// new contents instead of allocating new ones, and a `Ready` is several hundred bytes
    /// that need not be copied out. A driver that handles Readies in a loop keeps one and
    /// passes it each time.
    ///
    /// Whatever `rd` still holds is dropped first, as dropping it would: messages not sent
    /// count as lost, a batch not carried out stalls the node. Nothing is taken back, except
    /// memory: a driver that sends messages by reference (encodes them from
    /// `&rd.messages`) and leaves them in `rd` has their entry lists reused for the next
    /// appends, so a leader allocates none per append.
    pub fn ready_into(&mut self, rd: &mut Ready) {
        let Ready {
            messages,
            persist,
            apply,
            read_states,
        } = rd;
        // The old batches' lists are kept for reuse, and the batches themselves refilled in
        // place below (or cleared).
        let buffers = &mut self.raft.buffers;
        if let Some(batch) = persist {
            buffers.keep_entries(std::mem::take(&mut batch.entries));
        }
        if let Some(batch) = apply {
            buffers.keep_entries(std::mem::take(&mut batch.entries));
        }
        for m in messages.iter_mut() {
            buffers.keep_entries(std::mem::take(&mut m.entries));
        }
        messages.clear();
        read_states.clear();
        let apply_snapshot = self.snapshot_ready_to_apply();
        self.raft.flush_appends();
        self.raft.flush_read_round();
        // The persist batch comes before the messages are taken: building it may release
        // held messages.
        self.next_persist_batch(persist);
        self.next_apply_batch(apply_snapshot, apply);
        // The driver's emptied list becomes the outbox, so neither side allocates.
        std::mem::swap(messages, &mut self.raft.outbox.ready);
        std::mem::swap(read_states, &mut self.raft.read_states);
    }

    /// Sets `slot` to the persist batch of everything not yet handed out, if any; otherwise
    /// messages waiting for "the next batch" are retargeted to the last one issued.
    fn next_persist_batch(&mut self, slot: &mut Option<PersistBatch>) {
        let r = &mut self.raft;
        if !r.has_unhanded_state() {
            *slot = None;
            r.outbox.retarget_unissued();
            return;
        }
        let hs = r.hard_state();
        let hard_state = (hs != r.handed_hs).then_some(hs);
        // Only the index for now; the snapshot stays in the log and is cloned straight into
        // the batch below.
        let snapshot_index = r.log.next_unstable_snapshot().map(Snapshot::index);
        let next_entries = r.log.next_unstable_entries();
        let entries = if next_entries.is_empty() {
            Vec::new()
        } else {
            let mut list = r.buffers.entries();
            list.extend_from_slice(next_entries);
            list
        };
        r.log.accept_unstable();
        r.outbox.seq_issued += 1;
        if let Some(index) = snapshot_index {
            // A snapshot replaces the whole log: earlier batches' completions must not
            // mark anything stable.
            r.overwrite_seq = r.outbox.seq_issued;
            r.handed_last_index = index;
        }
        if let Some(first) = entries.first() {
            if first.index <= r.handed_last_index {
                // This batch overwrites entries an earlier, possibly outstanding batch
                // wrote: completions before it must not mark anything stable.
                r.overwrite_seq = r.outbox.seq_issued;
            }
            r.handed_last_index = entries[entries.len() - 1].index;
        }
        let sync = hs.term != r.handed_hs.term
            || hs.vote != r.handed_hs.vote
            || snapshot_index.is_some()
            || !entries.is_empty();
        if sync {
            r.vouch_seq = r.outbox.seq_issued;
        }
        r.handed_hs = hs;
        // Still in the log: handing it out only marked it in progress.
        let snapshot = snapshot_index.and(r.log.unstable_snapshot());
        debug_assert_eq!(snapshot.map(Snapshot::index), snapshot_index);
        // Filled in place: building a batch aside and moving it into the slot copies it.
        slot.get_or_insert_with(|| PersistBatch::empty(r.id))
            .refill(
                r.id,
                r.outbox.seq_issued,
                hard_state,
                snapshot,
                entries,
                sync,
            );
    }

    /// Sets `slot` to the apply batch: the snapshot to restore when `apply_snapshot`, else the
    /// committed, durable entries not yet handed out, if any.
    fn next_apply_batch(&mut self, apply_snapshot: bool, slot: &mut Option<ApplyBatch>) {
        let r = &mut self.raft;
        if apply_snapshot {
            let snap = r
                .snapshot_to_apply
                .take()
                .expect("checked by snapshot_ready_to_apply");
            let first_index = r.log.applying + 1;
            r.log.applying_to(snap.index());
            let conf_changes = snap
                .metadata
                .as_ref()
                .and_then(|m| m.conf_state.clone())
                .map(|cs| vec![(snap.index(), cs)])
                .unwrap_or_default();
            *slot = Some(ApplyBatch::new(
                r.id,
                first_index,
                Some(snap),
                conf_changes,
                Vec::new(),
            ));
            return;
        }
        if !r.log.has_next_committed_entries() {
            *slot = None;
            return;
        }
        let mut entries = r.buffers.entries();
        r.log
            .next_committed_entries_into(r.apply_bytes_max, &mut entries);
        let first_index = r.log.applying + 1;
        let last = entries
            .last()
            .expect("has_next_committed_entries said some")
            .index;
        r.log.applying_to(last);
        if r.role == Role::Leader {
            let bytes: u64 = entries.iter().map(|e| e.payload_bytes()).sum();
            r.uncommitted_bytes = r.uncommitted_bytes.saturating_sub(bytes);
        }
        // Configuration changes are rare: skip the scan for them when there are none.
        let normal = EntryType::EntryNormal as i32;
        let conf_changes = if entries.iter().all(|e| e.entry_type == normal) {
            Vec::new()
        } else {
            r.queue_conf_changes(&entries)
        };
        slot.get_or_insert_with(|| ApplyBatch::empty(r.id)).refill(
            r.id,
            first_index,
            None,
            conf_changes,
            entries,
        );
    }

    // ------------------------------------------------------------ completions

    /// Reports a persist batch durable.
    ///
    /// # Panics
    /// If the token was minted by another node, or batches are reported out of order
    /// (each must follow the previous one handed out) — both are misuse of the contract.
    #[inline]
    pub fn on_persisted(&mut self, done: Persisted) {
        assert_eq!(
            done.node, self.raft.id,
            "on_persisted: token minted by another node"
        );
        self.raft.on_persisted(
            done.seq,
            done.hard_state,
            done.snapshot_index,
            done.last_entry,
        );
    }

    /// Reports an apply batch applied.
    ///
    /// # Panics
    /// If the token was minted by another node or batches are reported out of order.
    #[inline]
    pub fn on_applied(&mut self, done: Applied) {
        assert_eq!(
            done.node, self.raft.id,
            "on_applied: token minted by another node"
        );
        assert_eq!(
            done.first_index,
            self.raft.log.applied + 1,
            "on_applied: apply batches are reported in order"
        );
        self.raft.log.applied_to(done.last_index);
        self.raft.apply_conf_changes(done.last_index);
        self.raft.maybe_auto_leave();
    }

    // ------------------------------------------------------------ getters

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.raft.id
    }

    /// Its current term.
    pub fn term(&self) -> u64 {
        self.raft.term
    }

    /// Its role.
    pub fn role(&self) -> Role {
        self.raft.role
    }

    /// The leader it knows of, if any.
    pub fn leader(&self) -> Option<u64> {
        (self.raft.leader_id != 0).then_some(self.raft.leader_id)
    }

    /// Its commit index.
    pub fn commit(&self) -> u64 {
        self.raft.log.committed
    }

    /// Its last log index (durable or not).
    pub fn last_index(&self) -> u64 {
        self.raft.log.last_index()
    }

    /// The id of its last log entry.
    pub fn last_entry_id(&self) -> EntryId {
        self.raft.log.last_entry_id()
    }

    /// The term of the entry at `index` in its log (durable or not), if known.
    pub fn log_term(&self, index: u64) -> Option<u64> {
        self.raft.log.term(index).ok()
    }

    /// Entries `[lo, hi)` of its log (durable or not).
    ///
    /// # Errors
    /// [`StorageError`] when the range is compacted or past the last index.
    pub fn log_entries(&self, lo: u64, hi: u64) -> Result<Vec<crate::wire::Entry>, StorageError> {
        self.raft.log.slice(lo, hi, u64::MAX)
    }

    /// The hard state as of now (not necessarily durable yet).
    pub fn hard_state(&self) -> crate::wire::HardState {
        self.raft.hard_state()
    }

    /// The storage the node reads its durable log from.
    pub fn storage(&self) -> &S {
        self.raft.log.store()
    }

    /// Mutable access to the storage, for the driver's writes (persist batches).
    pub fn storage_mut(&mut self) -> &mut S {
        self.raft.log.store_mut()
    }

    /// Role, term, indexes and (on a leader) every peer's progress. Allocates the progress
    /// list; [`RawNode::status_into`] refills one instead.
    pub fn status(&self) -> Status {
        let mut status = Status::default();
        self.status_into(&mut status);
        status
    }

    /// Overwrites `status` with what [`RawNode::status`] returns, reusing its progress
    /// list: a monitor that polls a leader keeps one `Status` and allocates nothing.
    pub fn status_into(&self, status: &mut Status) {
        let r = &self.raft;
        status.id = r.id;
        status.role = r.role;
        status.term = r.term;
        status.vote = r.vote;
        status.leader = self.leader();
        status.commit = r.log.committed;
        status.applied = r.log.applied;
        status.last_index = r.log.last_index();
        status.progress.clear();
        if r.role == Role::Leader {
            status
                .progress
                .extend(r.prs.iter().map(|(id, pr)| PeerStatus {
                    id,
                    matched: pr.matched,
                    next: pr.next_idx,
                    state: pr.state,
                    paused: pr.is_paused(),
                    inflight_msgs: pr.inflights.count(),
                    recent_active: pr.recent_active,
                    is_learner: pr.is_learner,
                }));
        }
    }

    /// Asserts every internal invariant (O(n)); the simulator calls it after every step.
    ///
    /// # Panics
    /// If an invariant is broken — a bug in this crate.
    pub fn check_invariants(&self) {
        self.raft.check_invariants();
    }

    /// Messages held until a write is durable (for tests and diagnostics).
    pub fn held_messages(&self) -> usize {
        self.raft.outbox.held_len()
    }
}

impl MemStorage {
    /// Carries out a persist batch: sets the hard state and writes the entries
    /// (truncating after `entries[0].index - 1`). Memory is "durable" at once.
    ///
    /// # Errors
    /// [`StorageError::LogGap`] if the entries do not connect to the stored log.
    pub fn persist(&mut self, batch: &PersistBatch) -> Result<(), StorageError> {
        if let Some(snap) = &batch.snapshot {
            self.apply_snapshot(snap.clone())?;
        }
        if !batch.entries.is_empty() {
            self.append(&batch.entries)?;
        }
        if let Some(hs) = batch.hard_state {
            self.set_hard_state(hs);
        }
        Ok(())
    }

    /// As [`MemStorage::persist`], but moves the entries out of the batch instead of copying
    /// them: the batch's `entries` are left empty, its completion token is unchanged. This
    /// saves a reference-count round trip per entry.
    ///
    /// # Errors
    /// As [`MemStorage::persist`].
    pub fn persist_from(&mut self, batch: &mut PersistBatch) -> Result<(), StorageError> {
        if let Some(snap) = &batch.snapshot {
            self.apply_snapshot(snap.clone())?;
        }
        self.append_from(&mut batch.entries)?;
        if let Some(hs) = batch.hard_state {
            self.set_hard_state(hs);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random schedule (an LCG: no RNG crate needed in tests).
    struct Schedule(u64);

    impl Schedule {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    /// One cluster of three nodes, driven through `ready()` or through `ready_into()` with
    /// one reused `Ready` per node (and `persist_from`).
    struct Cluster {
        nodes: Vec<RawNode<MemStorage>>,
        readies: Vec<Ready>,
        in_flight: Vec<Message>,
        reuse: bool,
    }

    impl Cluster {
        fn new(reuse: bool) -> Cluster {
            let logger = Logger::root(slog::Discard, slog::o!());
            let nodes = (1..=3)
                .map(|id| {
                    let mut cfg = Config::new(id);
                    cfg.inflight_msgs_max = 4;
                    cfg.msg_bytes_max = 64;
                    let storage =
                        MemStorage::new_with_conf_state(ConfState::with_voters(vec![1, 2, 3]));
                    RawNode::new(&cfg, storage, &logger).expect("valid config")
                })
                .collect();
            Cluster {
                nodes,
                readies: (0..3).map(|_| Ready::default()).collect(),
                in_flight: Vec::new(),
                reuse,
            }
        }

        /// Takes node `i`'s next Ready, carries it out, and returns what it was before that.
        fn handle(&mut self, i: usize) -> Option<String> {
            let node = &mut self.nodes[i];
            if !node.has_ready() {
                return None;
            }
            let seen;
            if self.reuse {
                let rd = &mut self.readies[i];
                node.ready_into(rd);
                seen = format!("{rd:?}");
                let Ready {
                    messages,
                    persist,
                    apply,
                    read_states: _,
                } = rd;
                self.in_flight.append(messages);
                if let Some(batch) = persist {
                    node.storage_mut().persist_from(batch).expect("connects");
                    node.on_persisted(batch.durable());
                }
                if let Some(batch) = apply {
                    node.on_applied(batch.applied());
                }
            } else {
                let rd = node.ready();
                seen = format!("{rd:?}");
                let Ready {
                    messages,
                    persist,
                    apply,
                    read_states: _,
                } = rd;
                self.in_flight.extend(messages);
                if let Some(batch) = persist {
                    node.storage_mut().persist(&batch).expect("connects");
                    node.on_persisted(batch.durable());
                }
                if let Some(batch) = apply {
                    node.on_applied(batch.applied());
                }
            }
            node.check_invariants();
            Some(seen)
        }

        /// Runs one step of the schedule and returns a trace of what the nodes handed out.
        fn step(&mut self, s: &mut Schedule, trace: &mut Vec<String>) {
            let i = s.next(3) as usize;
            match s.next(10) {
                0 => self.nodes[i].tick(),
                1 | 2 => {
                    let data = vec![b'x'; s.next(40) as usize];
                    trace.push(format!("propose {:?}", self.nodes[i].propose(data)));
                }
                3 => {
                    // Compact to what was applied: a lagging peer then needs a snapshot.
                    let applied = self.nodes[i].status().applied;
                    self.nodes[i]
                        .storage_mut()
                        .compact(applied)
                        .expect("applied entries are stored");
                }
                4..=6 => {
                    // Deliver the in-flight messages, losing some (all to node 3 at times).
                    let drop_to_3 = s.next(4) == 0;
                    for m in std::mem::take(&mut self.in_flight) {
                        let lost = s.next(8) == 0 || (drop_to_3 && m.to == 3);
                        if !lost {
                            let to = m.to as usize - 1;
                            trace.push(format!("step {:?}", self.nodes[to].step(m)));
                        }
                    }
                }
                _ => {
                    while let Some(seen) = self.handle(i) {
                        trace.push(seen);
                    }
                }
            }
        }
    }

    #[test]
    fn status_into_refills_what_status_returns_without_reallocating() {
        let mut c = Cluster::new(true);
        c.nodes[0].campaign().expect("a voter campaigns");
        let mut sched = Schedule(7);
        let mut kept: Vec<Status> = c.nodes.iter().map(|n| n.status()).collect();
        let mut leader_seen = false;
        for round in 0..400 {
            let mut trace = Vec::new();
            c.step(&mut sched, &mut trace);
            for (node, status) in c.nodes.iter().zip(&mut kept) {
                let before = (status.progress.as_ptr(), status.progress.capacity());
                node.status_into(status);
                assert_eq!(*status, node.status(), "round {round}");
                if status.role == Role::Leader {
                    leader_seen = true;
                    assert_eq!(status.progress.len(), 3, "a leader reports every voter");
                    if before.1 >= 3 {
                        assert_eq!(
                            (status.progress.as_ptr(), status.progress.capacity()),
                            before,
                            "round {round}: the kept progress list was reused"
                        );
                    }
                } else {
                    assert!(status.progress.is_empty(), "only a leader reports progress");
                }
            }
        }
        assert!(leader_seen, "the schedule elects a leader");
    }

    /// Handles every node's Readies and delivers every message until none is left.
    fn settle(c: &mut Cluster) {
        for _ in 0..100 {
            for i in 0..3 {
                while c.handle(i).is_some() {}
            }
            if c.in_flight.is_empty() {
                return;
            }
            for m in std::mem::take(&mut c.in_flight) {
                let to = m.to as usize - 1;
                c.nodes[to].step(m).expect("honest traffic");
            }
        }
        panic!("the cluster does not settle");
    }

    #[test]
    fn entry_lists_of_messages_left_in_the_ready_are_kept_for_the_next_appends() {
        let mut c = Cluster::new(true);
        c.nodes[0].campaign().expect("a voter campaigns");
        settle(&mut c);
        assert_eq!(c.nodes[0].role(), Role::Leader);
        // The leader's driver sends by reference: it delivers copies and leaves the
        // messages in its own `Ready`, which the next `ready_into` gets back.
        let mut rd = Ready::default();
        for round in 0..10 {
            c.nodes[0].propose(vec![b'x'; 8]).expect("a leader accepts");
            c.nodes[0].ready_into(&mut rd);
            let sent: Vec<_> = rd
                .messages
                .iter()
                .filter(|m| !m.entries.is_empty())
                .map(|m| m.entries.as_ptr())
                .collect();
            assert_eq!(sent.len(), 2, "round {round}: one append to each follower");
            if let Some(batch) = &mut rd.persist {
                c.nodes[0]
                    .storage_mut()
                    .persist_from(batch)
                    .expect("connects");
                c.nodes[0].on_persisted(batch.durable());
            }
            if let Some(batch) = &rd.apply {
                c.nodes[0].on_applied(batch.applied());
            }
            c.in_flight.extend(rd.messages.iter().cloned());
            settle(&mut c);
            // Nothing new to send: the lists come back and stay until the next appends.
            c.nodes[0].ready_into(&mut rd);
            assert!(
                rd.messages.is_empty(),
                "round {round}: the cluster had settled"
            );
            for p in sent {
                assert!(
                    c.nodes[0].raft.buffers.holds(p),
                    "round {round}: a sent append's entry list was not kept"
                );
            }
        }
        assert_eq!(
            c.nodes[0].commit(),
            c.nodes[0].last_index(),
            "all committed"
        );
    }

    /// The two ways of taking a Ready (a new one each time, or one reused with its batches
    /// refilled in place) must hand out the same things, through elections, lost messages,
    /// flow control and snapshots to lagging peers.
    #[test]
    fn ready_into_with_reused_readies_hands_out_what_ready_would() {
        let mut snapshots = 0;
        for seed in 0..40 {
            let (mut a, mut b) = (Cluster::new(false), Cluster::new(true));
            a.nodes[0].campaign().expect("a voter campaigns");
            b.nodes[0].campaign().expect("a voter campaigns");
            let (mut sa, mut sb) = (Schedule(seed), Schedule(seed));
            for round in 0..600 {
                let (mut ta, mut tb) = (Vec::new(), Vec::new());
                a.step(&mut sa, &mut ta);
                b.step(&mut sb, &mut tb);
                assert_eq!(ta, tb, "seed {seed} round {round}");
                snapshots += ta.iter().filter(|t| t.contains("snapshot: Some")).count();
            }
            let states = |c: &Cluster| c.nodes.iter().map(|n| n.status()).collect::<Vec<_>>();
            assert_eq!(states(&a), states(&b), "seed {seed}: final states");
            assert!(
                seed != 0 || a.nodes.iter().any(|n| n.commit() > 10),
                "the schedule commits entries"
            );
        }
        assert!(snapshots > 0, "some schedule sends a snapshot");
    }
}
