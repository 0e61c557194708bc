//! Log replication: proposals, appends and their answers, heartbeats, snapshots sent to
//! followers that need them, and the commit index (Raft §5.3, §5.4.2 Figure 8, §7; thesis
//! §10.2.1 for a leader's own write).
//!
//! The leader keeps one progress per peer (probe, replicate or snapshot, `tracker/`) and sends
//! at most one round of appends per Ready (`flush_appends`); a follower appends what matches
//! its log and answers with what it can vouch for.
//!
//! Invariants:
//! 1. A leader commits by counting replicas only entries of its own term (Figure 8), and its
//!    own entries count only once durable.
//! 2. An acknowledgement vouches only for entries compared with the leader's log: an append's
//!    last index, or a snapshot's index / the commit index (never entries after a snapshot).
//! 3. A peer in probe has one append in flight; an acknowledgement at or past its match
//!    moves it to replicate. A failed or unreported `MsgSnap` is ended by `report_snapshot`.
//! 4. A heartbeat's commit index is capped at the follower's match.

use super::*;

impl<S: Storage> Raft<S> {
    pub(super) fn tick_heartbeat(&mut self) {
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
    pub(super) fn append_entries(&mut self, ents: &mut [Entry]) -> Result<(), ProposeError> {
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

    pub(super) fn handle_append_response(&mut self, m: &Message) -> Result<(), StepError> {
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

    pub(super) fn handle_snapshot(&mut self, m: &mut Message) {
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

    pub(super) fn handle_append(&mut self, m: &mut Message) {
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

    pub(super) fn handle_heartbeat(&mut self, m: &Message) {
        self.log.commit_to(m.commit);
        let mut r = self.msg(m.from, MessageType::MsgHeartbeatResp);
        r.context = m.context.clone();
        r.read_round = m.read_round;
        self.send(r);
    }

    /// Advances the commit index to what a quorum holds, if it is of the current term.
    pub(super) fn maybe_commit(&mut self) -> bool {
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
    pub(super) fn maybe_send_append(&mut self, to: u64, send_if_empty: bool) -> bool {
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
    pub(super) fn maybe_send_snapshot(&mut self, to: u64) -> bool {
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
    pub(super) fn bcast_heartbeat(&mut self) {
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
}
