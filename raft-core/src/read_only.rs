//! ReadIndex bookkeeping on a leader: read requests, the heartbeat rounds that confirm them,
//! and the lease that lease-based reads rely on (thesis §6.4).
//!
//! A read is confirmed by a heartbeat round *started after the request arrived*: the leader
//! tags each round with a fresh id, followers echo it, and an acknowledgement of round `r`
//! from a peer also acknowledges every earlier round (the peer accepted this leader at a
//! later time). Acknowledgements are matched by these leader-generated ids only, never by the
//! caller's context, so a reused context cannot confirm the wrong read (etcd #20418).
//!
//! Invariants:
//! 1. Round ids increase; a request waits for a round issued after it arrived (the next
//!    one, started at the next `ready()` or heartbeat).
//! 2. Requests are released in arrival order, each with the commit index it arrived at.
//! 3. Everything here belongs to one term of one leader; a role or term change clears it.
//! 4. The number of pending requests is bounded by `reads_pending_max`.
//! 5. Whether a round is confirmed is decided again whenever it may have changed: at an
//!    acknowledgement, at the leader's own acknowledgement when a round starts, and when the
//!    configuration (the quorum) changes. A read never waits on a quorum that no longer
//!    exists.

use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};

/// A confirmed read: once the node has applied `index`, a read that started when the
/// request was made sees every write acknowledged before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The commit index the read must wait for (apply up to it, then read).
    pub index: u64,
    /// The caller's context, passed back unchanged (for the caller's own matching).
    pub request_ctx: Bytes,
}

/// A read waiting for its heartbeat round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PendingRead {
    /// The node that asked (this leader, or the follower whose request was forwarded).
    pub from: u64,
    pub ctx: Bytes,
    /// The requester's id for a forwarded request, echoed in the answer so that it accepts
    /// only answers to reads it asked for (0 for this leader's own reads).
    pub req_id: u64,
    /// Commit index when the request arrived.
    pub index: u64,
    /// The round whose quorum acknowledgement confirms it.
    pub round: u64,
}

#[derive(Debug, Default)]
pub(crate) struct ReadOnly {
    pending: VecDeque<PendingRead>,
    /// Rounds sent and not yet confirmed, with the tick each was sent at.
    rounds: VecDeque<(u64, u64)>,
    /// Highest round each peer acknowledged (this leader acknowledges its own at once).
    acked: BTreeMap<u64, u64>,
    last_round: u64,
    /// The send tick of the newest round a quorum acknowledged.
    confirmed_sent_tick: Option<u64>,
}

impl ReadOnly {
    pub fn reset(&mut self) {
        *self = ReadOnly::default();
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Starts a new round at tick `now`; returns its id.
    pub fn new_round(&mut self, leader: u64, now: u64) -> u64 {
        self.last_round += 1;
        let round = self.last_round;
        self.rounds.push_back((round, now));
        // Rounds that never gather a quorum must not pile up: keep the newest few hundred.
        while self.rounds.len() > 256 {
            self.rounds.pop_front();
        }
        self.acked.insert(leader, round);
        round
    }

    /// The newest round id issued, or 0.
    pub fn last_round(&self) -> u64 {
        self.last_round
    }

    /// Queues a read confirmed by `round` (issued after the request arrived).
    pub fn add_request(&mut self, req: PendingRead) {
        debug_assert!(self.pending.back().is_none_or(|p| p.round <= req.round));
        self.pending.push_back(req);
    }

    /// Records that `peer` acknowledged rounds up to `round`, then releases the requests a
    /// quorum now confirms. `is_quorum(acks)` decides whether a set of peers is a quorum.
    pub fn recv_ack(
        &mut self,
        peer: u64,
        round: u64,
        is_quorum: impl Fn(&dyn Fn(u64) -> bool) -> bool,
    ) -> Vec<PendingRead> {
        if round == 0 || round > self.last_round {
            return Vec::new();
        }
        let e = self.acked.entry(peer).or_insert(0);
        if *e < round {
            *e = round;
        }
        // Evaluated even when the acknowledgement is not new: the leader's own one is
        // recorded when its round starts, and a lone voter's round is confirmed by it alone.
        self.release(is_quorum)
    }

    /// Releases the requests that a quorum (as `is_quorum` decides it now) has confirmed:
    /// called after an acknowledgement and whenever the configuration changes.
    pub fn release(
        &mut self,
        is_quorum: impl Fn(&dyn Fn(u64) -> bool) -> bool,
    ) -> Vec<PendingRead> {
        // The newest round a quorum has acknowledged.
        let mut confirmed = 0;
        for &(r, sent) in self.rounds.iter().rev() {
            let acked = &self.acked;
            if is_quorum(&|id| acked.get(&id).is_some_and(|a| *a >= r)) {
                confirmed = r;
                self.confirmed_sent_tick = Some(sent);
                break;
            }
        }
        if confirmed == 0 {
            return Vec::new();
        }
        self.rounds.retain(|(r, _)| *r > confirmed);
        let mut done = Vec::new();
        while self.pending.front().is_some_and(|p| p.round <= confirmed) {
            done.push(self.pending.pop_front().expect("front checked"));
        }
        done
    }

    /// The send tick of the newest round a quorum acknowledged, if any.
    pub fn confirmed_sent_tick(&self) -> Option<u64> {
        self.confirmed_sent_tick
    }

    pub fn check_invariants(&self) {
        let mut prev = 0;
        for p in &self.pending {
            assert!(p.round >= prev, "pending reads are in round order");
            assert!(
                p.round <= self.last_round + 1,
                "a read waits for an issued round or the next one"
            );
            prev = p.round;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn majority_of_3(acked: &dyn Fn(u64) -> bool) -> bool {
        [1, 2, 3].iter().filter(|id| acked(**id)).count() >= 2
    }

    fn req(round: u64, index: u64) -> PendingRead {
        PendingRead {
            from: 1,
            ctx: Bytes::from_static(b"c"),
            req_id: 0,
            index,
            round,
        }
    }

    #[test]
    fn a_read_is_released_only_by_a_quorum_ack_of_its_round_or_later() {
        let mut ro = ReadOnly::default();
        let r1 = ro.new_round(1, 0);
        ro.add_request(req(r1, 5));
        let r2 = ro.new_round(1, 1);
        ro.add_request(req(r2, 6));
        assert!(
            ro.recv_ack(2, r1, majority_of_3).len() == 1,
            "r1 confirmed by 1 and 2"
        );
        assert_eq!(ro.pending_len(), 1);
        assert!(
            ro.recv_ack(2, r1, majority_of_3).is_empty(),
            "a duplicate ack changes nothing"
        );
        let done = ro.recv_ack(3, r2, majority_of_3);
        assert_eq!(done, vec![req(r2, 6)]);
        assert_eq!(ro.confirmed_sent_tick(), Some(1));
    }

    #[test]
    fn an_ack_of_an_older_round_never_confirms_a_newer_request() {
        let mut ro = ReadOnly::default();
        let r1 = ro.new_round(1, 0);
        let r2 = ro.new_round(1, 1);
        ro.add_request(req(r2, 9));
        assert!(ro.recv_ack(2, r1, majority_of_3).is_empty());
        assert!(ro.recv_ack(3, r1, majority_of_3).is_empty());
        assert_eq!(ro.pending_len(), 1);
    }

    #[test]
    fn a_shrunk_quorum_releases_a_read_its_old_quorum_never_confirmed() {
        let mut ro = ReadOnly::default();
        let r1 = ro.new_round(1, 0);
        ro.add_request(req(r1, 4));
        assert!(
            ro.recv_ack(1, r1, majority_of_3).is_empty(),
            "the leader alone"
        );
        let only_1 = |acked: &dyn Fn(u64) -> bool| acked(1);
        assert_eq!(ro.release(only_1), vec![req(r1, 4)]);
    }

    #[test]
    fn a_lone_voter_confirms_its_round_by_its_own_ack() {
        let mut ro = ReadOnly::default();
        let r1 = ro.new_round(1, 0);
        ro.add_request(req(r1, 2));
        let only_1 = |acked: &dyn Fn(u64) -> bool| acked(1);
        assert_eq!(ro.recv_ack(1, r1, only_1), vec![req(r1, 2)]);
    }

    #[test]
    fn acks_for_rounds_never_issued_are_ignored() {
        let mut ro = ReadOnly::default();
        let r1 = ro.new_round(1, 0);
        ro.add_request(req(r1, 1));
        assert!(ro.recv_ack(2, 99, majority_of_3).is_empty());
        assert!(ro.recv_ack(2, 0, majority_of_3).is_empty());
        assert_eq!(ro.pending_len(), 1);
    }
}
