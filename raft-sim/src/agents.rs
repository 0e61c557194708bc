//! The agents of the safety phase that act like operators rather than faults: leadership
//! transfers and membership changes, and the end of removed nodes.
//!
//! | agent | every | does |
//! | --- | --- | --- |
//! | transfer | up to `transfer_gap_max_us` | `transfer_leader(random voter)` on the current leader (errors are fine; clients retry proposals refused meanwhile) |
//! | membership | up to `membership_gap_max_us` | on the current leader: leave an explicit joint configuration, or propose one change (add a new node as learner or voter, promote, demote, remove) or several at once through a joint configuration (left automatically or explicitly) |
//! | promotion crash (`promotion_crash`, with membership) | each membership turn | three turns in four, a joint change that promotes a learner and demotes a voter other than the leader, with (half the time) another voter crashed first; then the leader is watched and crashed for good (it stays down into the liveness phase, which leaves it out first) as soon as it commits the change, before every node knows: the shape of issue 12 item 1, where a promoted learner holding the longest log stays a learner in its applied configuration |
//!
//! A new node is a spare slot started with an empty disk just before its addition is
//! proposed; the leader then finds index 1 missing from it and sends it a snapshot. Node ids
//! are never reused: a node once removed is never added again, and it is stopped for good
//! (retired) a little later, because a removed node that does not know it was removed can
//! disrupt the cluster with elections of its old configuration.
//!
//! The liveness phase stops both agents and leaves out only nodes whose absence keeps a quorum
//! of every configuration that may still come into force ([`World::choose_out`]); its core is
//! the latest configuration's members that are not left out ([`World::liveness_core`]).
//!
//! Invariants:
//! 1. The membership agent keeps at least two voters in the incoming configuration.
//! 2. A retired node was a member of some applied configuration and is a member of none since.

use crate::conf_chain;
use crate::node::Life;
use crate::world::{Ev, Phase, World};
use raft_core::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, Role, Storage,
    confchange,
};

/// The fewest voters the membership agent leaves in a configuration.
const VOTERS_MIN: usize = 2;
/// How often the promotion-crash agent looks whether the leader committed the change: well
/// below a network delay, so that it crashes the leader before its commit index spreads.
const PROMOTION_POLL_US: u64 = 100;
/// How many times it looks before it gives up (a second of simulated time).
const PROMOTION_POLLS_MAX: u32 = 10_000;

impl World {
    /// The running, unpaused leader with the highest term, if any.
    pub(crate) fn current_leader(&self) -> Option<usize> {
        (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].paused && self.nodes[i].role() == Some(Role::Leader))
            .max_by_key(|&i| self.nodes[i].raw.as_ref().map_or(0, |r| r.term()))
    }

    /// One request of the leadership-transfer agent, and the next one scheduled.
    pub(crate) fn transfer_agent(&mut self) {
        if self.phase != Phase::Safety {
            return;
        }
        let gap = self.rng.range(1, self.opts.transfer_gap_max_us);
        self.schedule(gap, Ev::Transfer);
        let Some(l) = self.current_leader() else {
            return;
        };
        // Any voter, the leader itself included (refused: ToSelf), now and then a learner
        // (refused: Learner).
        let conf = &self.nodes[l].conf;
        let mut targets: Vec<u64> = conf_chain::voters(conf).collect();
        targets.extend(conf.learners.iter().copied().take(1));
        targets.sort_unstable();
        targets.dedup();
        if targets.is_empty() {
            return;
        }
        let to = self.rng.pick(&targets);
        self.with_node(l, |n, cx| n.transfer_leader(to, cx));
    }

    /// One change of the membership agent, and the next one scheduled.
    pub(crate) fn membership_agent(&mut self) {
        if self.phase != Phase::Safety {
            return;
        }
        let gap = self.rng.range(1, self.opts.membership_gap_max_us);
        self.schedule(gap, Ev::Membership);
        self.retire_removed();
        let Some(l) = self.current_leader() else {
            return;
        };
        let conf = (*self.nodes[l].conf).clone();
        // The promotion-crash agent takes three turns in four; the others draw an ordinary
        // change.
        let ordinary =
            !conf.voters_outgoing.is_empty() || !self.opts.promotion_crash || !self.rng.ratio(3, 4);
        let cc = if !conf.voters_outgoing.is_empty() {
            if conf.auto_leave {
                // The leader leaves by itself.
                return;
            }
            ConfChangeV2::leave_joint()
        } else if let Some(cc) = (!ordinary).then(|| self.draw_promotion(&conf, l)).flatten() {
            cc
        } else {
            match self.draw_change(&conf) {
                Some(cc) => cc,
                None => return,
            }
        };
        // A new node starts just before its addition is proposed.
        for c in &cc.changes {
            let i = c.node_id as usize - 1;
            if self.nodes[i].life == Life::Spare {
                self.start_spare(i);
            }
        }
        let joint = cc.changes.len() > 1;
        let promotes = cc.changes.iter().any(|c| {
            c.change_type == ConfChangeType::AddNode as i32 && conf.learners.contains(&c.node_id)
        });
        let mut accepted = false;
        self.with_node(l, |n, cx| accepted = n.propose_conf_change(cc, cx));
        if accepted && joint {
            self.stats.joint_changes_proposed += 1;
        }
        if accepted && promotes && self.opts.promotion_crash {
            let index = self.nodes[l].raw.as_ref().map_or(0, |r| r.last_index());
            self.schedule(
                PROMOTION_POLL_US,
                Ev::PromotionCrash {
                    node: l,
                    index,
                    polls_left: PROMOTION_POLLS_MAX,
                },
            );
        }
    }

    /// A joint change promoting a learner and demoting a voter other than leader `l`, left
    /// automatically; half the time another voter (neither of them nor the leader) is crashed
    /// first, if the old configuration keeps a quorum without it. `None` when `conf` has no
    /// learner or no voter to demote.
    fn draw_promotion(&mut self, conf: &ConfState, l: usize) -> Option<ConfChangeV2> {
        use ConfChangeType::{AddLearnerNode, AddNode};
        let leader = l as u64 + 1;
        let learners: Vec<u64> = conf.learners.clone();
        let demotable: Vec<u64> = conf
            .voters
            .iter()
            .copied()
            .filter(|&v| v != leader)
            .collect();
        if learners.is_empty() || demotable.is_empty() || conf.voters.len() < VOTERS_MIN + 1 {
            return None;
        }
        let promoted = self.rng.pick(&learners);
        let demoted = self.rng.pick(&demotable);
        let cc = ConfChangeV2::new(
            ConfChangeTransition::Auto,
            vec![
                ConfChangeSingle::new(AddNode, promoted),
                ConfChangeSingle::new(AddLearnerNode, demoted),
            ],
        );
        confchange::apply(conf, &cc).ok()?;
        let others: Vec<u64> = conf
            .voters
            .iter()
            .copied()
            .filter(|&v| v != leader && v != demoted)
            .filter(|&v| self.nodes[v as usize - 1].is_up())
            .collect();
        if !others.is_empty() && self.rng.coin() {
            let down = self.rng.pick(&others);
            let stays = |id: u64| id != down && self.nodes[id as usize - 1].is_up();
            if conf_chain::has_quorum(conf, stays) {
                let node = down as usize - 1;
                self.crash(node);
                let d = self.fault_duration();
                self.schedule(d, Ev::Restart { node });
            }
        }
        Some(cc)
    }

    /// The promotion-crash agent's watch of leader `node`: once it has committed the change at
    /// `index`, it is crashed at once and left down (the liveness phase leaves it out first).
    /// Its last appends, carrying the new commit index, are still in flight: some nodes learn
    /// it, others (those it sent no entries to, for lack of room in their window) do not.
    /// Until then it looks again shortly, `polls_left` more times.
    pub(crate) fn promotion_crash(&mut self, node: usize, index: u64, polls_left: u32) {
        if self.phase != Phase::Safety || !self.nodes[node].is_up() {
            return;
        }
        let Some(raw) = self.nodes[node].raw.as_ref() else {
            return;
        };
        if raw.role() != Role::Leader {
            return;
        }
        if raw.commit() >= index {
            self.stats.promotion_crashes += 1;
            let now = self.now_us;
            self.trace.line(now, || {
                format!(
                    "agent: promotion committed: crash leader n{} for good",
                    node + 1
                )
            });
            self.crash(node);
        } else if polls_left > 0 {
            self.schedule(
                PROMOTION_POLL_US,
                Ev::PromotionCrash {
                    node,
                    index,
                    polls_left: polls_left - 1,
                },
            );
        }
    }

    /// Draws a change of `conf` (not joint): one or, about one time in three, several at
    /// once. `None` when nothing fits.
    fn draw_change(&mut self, conf: &ConfState) -> Option<ConfChangeV2> {
        use ConfChangeType::{AddLearnerNode, AddNode, RemoveNode};
        let spare = (0..self.nodes.len()).find(|&i| self.nodes[i].life == Life::Spare);
        // Started nodes that never were members: joiners whose addition did not go through.
        let mut newcomers: Vec<u64> = (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i].life == Life::Started && !self.checker.chain.ever_member(i as u64 + 1)
            })
            .map(|i| i as u64 + 1)
            .collect();
        if newcomers.is_empty()
            && let Some(s) = spare
        {
            newcomers.push(s as u64 + 1);
        }
        let count = if self.rng.ratio(1, 3) {
            self.rng.range(2, 3)
        } else {
            1
        };
        let mut changes: Vec<ConfChangeSingle> = Vec::new();
        let mut cur = conf.clone();
        for _ in 0..count {
            let learners = cur.learners.clone();
            let voters = cur.voters.clone();
            let touched = |id: u64, ch: &[ConfChangeSingle]| ch.iter().any(|c| c.node_id == id);
            let fresh: Vec<u64> = newcomers
                .iter()
                .copied()
                .filter(|&id| !touched(id, &changes))
                .collect();
            let learners: Vec<u64> = learners
                .into_iter()
                .filter(|&id| !touched(id, &changes))
                .collect();
            let voters_free: Vec<u64> = voters
                .iter()
                .copied()
                .filter(|&id| !touched(id, &changes))
                .collect();
            let can_drop_voter = voters.len() > VOTERS_MIN && !voters_free.is_empty();
            // add learner, add voter, promote, demote, remove learner, remove voter
            let weights = [
                if fresh.is_empty() { 0 } else { 4 },
                if fresh.is_empty() { 0 } else { 1 },
                if learners.is_empty() { 0 } else { 4 },
                if can_drop_voter { 2 } else { 0 },
                if learners.is_empty() { 0 } else { 2 },
                // Removals shrink the cluster for good (ids are not reused): rarer when small.
                match (can_drop_voter, voters.len() > 3) {
                    (false, _) => 0,
                    (true, true) => 3,
                    (true, false) => 1,
                },
            ];
            if weights.iter().all(|&w| w == 0) {
                break;
            }
            let (kind, id) = match self.rng.weighted(&weights) {
                0 => (AddLearnerNode, self.rng.pick(&fresh)),
                1 => (AddNode, self.rng.pick(&fresh)),
                2 => (AddNode, self.rng.pick(&learners)),
                3 => (AddLearnerNode, self.rng.pick(&voters_free)),
                4 => (RemoveNode, self.rng.pick(&learners)),
                _ => (RemoveNode, self.rng.pick(&voters_free)),
            };
            let change = ConfChangeSingle::new(kind, id);
            // Track the incoming voters and learners for the next pick.
            cur.voters.retain(|&v| v != id);
            cur.learners.retain(|&v| v != id);
            match kind {
                AddNode => cur.voters.push(id),
                AddLearnerNode => cur.learners.push(id),
                _ => {}
            }
            changes.push(change);
        }
        if changes.is_empty() {
            return None;
        }
        let transition = if changes.len() == 1 {
            match self.rng.below(6) {
                0 => ConfChangeTransition::JointImplicit,
                1 => ConfChangeTransition::JointExplicit,
                _ => ConfChangeTransition::Auto,
            }
        } else if self.rng.coin() {
            ConfChangeTransition::JointExplicit
        } else {
            [
                ConfChangeTransition::Auto,
                ConfChangeTransition::JointImplicit,
            ][self.rng.index(2)]
        };
        let cc = ConfChangeV2::new(transition, changes);
        // Keep the invariant: at least VOTERS_MIN incoming voters.
        let result = confchange::apply(conf, &cc).ok()?;
        (result.voters.len() >= VOTERS_MIN).then_some(cc)
    }

    /// Starts spare slot `i` as a new node with an empty disk.
    fn start_spare(&mut self, i: usize) {
        self.with_node(i, |n, cx| n.start(cx));
        self.stats.nodes_started += 1;
        let id = i as u64 + 1;
        if let Err(at) = self.contacts.binary_search(&id) {
            self.contacts.insert(at, id);
        }
        let now = self.now_us;
        self.trace
            .line(now, || format!("agent: start new node n{id}"));
        if self.nodes[i].is_up() {
            let epoch = self.nodes[i].epoch;
            let first = self.rng.range(1, self.nodes[i].tick_us);
            self.schedule(first, Ev::Tick { node: i, epoch });
        }
    }

    /// Schedules the end of every started node that was a member and is none any more: soon
    /// in the safety phase, at once in the liveness phase.
    ///
    /// Only once a quorum of the new configuration has applied a configuration without the
    /// node, as an operator decommissions a removed member only after the rest applied its
    /// removal. Stopping it as soon as the removal committed (global knowledge no node has)
    /// could leave the others, which still count votes with the old configuration because
    /// only the crashed leader knew the commit, without a quorum of it: no leader for ever
    /// (fuzz regression `regression-removed-node-stopped-before-the-rest-applied-it`).
    pub(crate) fn retire_removed(&mut self) {
        let latest = self.checker.chain.latest().1.clone();
        for i in 0..self.nodes.len() {
            let id = i as u64 + 1;
            if self.nodes[i].life != Life::Started
                || self.retiring[i]
                || conf_chain::is_member(&latest, id)
                || !self.checker.chain.ever_member(id)
            {
                continue;
            }
            let applied_removal = |voter: u64| {
                let j = voter as usize - 1;
                j < self.nodes.len() && !conf_chain::is_member(&self.nodes[j].conf, id)
            };
            if !conf_chain::has_quorum(&latest, applied_removal) {
                continue;
            }
            self.retiring[i] = true;
            if self.phase == Phase::Safety {
                let d = self.rng.range(0, self.opts.fault_duration_max_us);
                self.schedule(d, Ev::Retire { node: i });
            } else {
                self.retire(i);
            }
        }
    }

    /// Stops node `i` for good.
    pub(crate) fn retire(&mut self, i: usize) {
        if self.nodes[i].life != Life::Started {
            return;
        }
        self.with_node(i, |n, cx| n.retire(cx));
        self.deferred[i].clear();
        self.stats.nodes_retired += 1;
        let id = i as u64 + 1;
        self.contacts.retain(|&c| c != id);
        for c in &mut self.clients {
            if c.leader_hint == Some(id) {
                c.leader_hint = None;
            }
        }
        self.trace.mix(0x5245_5449 ^ id);
        let now = self.now_us;
        self.trace.line(now, || {
            format!("agent: n{id} was removed; stopped for good")
        });
    }

    /// The nodes the liveness phase leaves out with membership changes: at most
    /// `liveness_out` members of the latest configuration, chosen so that the nodes left
    /// (running or restartable, and not about to be retired) hold a quorum of every
    /// configuration that is or may come into use: the latest, the one each node applied,
    /// each one the changes in any node's log after the latest lead to, and the exit of
    /// each joint one.
    pub(crate) fn choose_out(&mut self) -> Vec<usize> {
        let (at, latest) = self.checker.chain.latest();
        let latest = latest.clone();
        let mut confs = vec![latest.clone()];
        // Configurations nodes still use: a node that has not learned that a change committed
        // counts votes with the one before it.
        for n in self.nodes.iter().filter(|n| n.life == Life::Started) {
            if !confs.contains(&n.conf) {
                confs.push((*n.conf).clone());
            }
        }
        for n in self.nodes.iter().filter(|n| n.life == Life::Started) {
            // A crashed node restarts with its durable log; a running one has its own.
            let ents = match &n.raw {
                Some(r) => {
                    let lo = (at + 1).max(r.storage().first_index().unwrap_or(1));
                    if lo > r.last_index() {
                        continue;
                    }
                    r.log_entries(lo, r.last_index() + 1).unwrap_or_default()
                }
                None => {
                    let d = n.disk.durable();
                    let lo = (at + 1).max(d.first_index().unwrap_or(1));
                    let hi = d.last_index().unwrap_or(0) + 1;
                    if lo >= hi {
                        continue;
                    }
                    d.entries(lo, hi, u64::MAX).unwrap_or_default()
                }
            };
            conf_chain::follow(&latest, &ents, |_, c| confs.push(c.clone()));
        }
        let exits: Vec<ConfState> = confs
            .iter()
            .filter_map(|c| confchange::leave_joint(c).ok())
            .collect();
        confs.extend(exits);
        let mut candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i].life == Life::Started && conf_chain::is_member(&latest, i as u64 + 1)
            })
            .collect();
        self.rng.shuffle(&mut candidates);
        if self.opts.promotion_crash {
            // A leader the promotion-crash agent crashed stays down: it is left out first.
            candidates.sort_by_key(|&i| self.nodes[i].is_up());
        }
        let mut out: Vec<usize> = Vec::new();
        for c in candidates {
            if out.len() as u64 >= self.opts.liveness_out {
                break;
            }
            out.push(c);
            // A removed node whose end is already scheduled does not stay either: counting it
            // let the liveness phase cut off a joint configuration's last outgoing quorum (the
            // fuzz regression `regression-retiring-node-counted-as-staying`).
            let stays = |id: u64| {
                let i = id as usize - 1;
                i < self.nodes.len()
                    && self.nodes[i].life == Life::Started
                    && !self.retiring[i]
                    && !out.contains(&i)
            };
            if !confs.iter().all(|conf| conf_chain::has_quorum(conf, stays)) {
                out.pop();
            }
        }
        out
    }

    /// The nodes that must elect a leader and converge in the liveness phase: without
    /// membership changes, the nodes not left out; with them, the members of the latest
    /// configuration not left out (recomputed as the configuration moves on).
    pub(crate) fn liveness_core(&self, fixed: &[usize]) -> Vec<usize> {
        if self.opts.membership_gap_max_us == 0 {
            return fixed.to_vec();
        }
        let latest = self.checker.chain.latest().1;
        (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i].life == Life::Started
                    && !self.out.contains(&i)
                    && conf_chain::is_member(latest, i as u64 + 1)
            })
            .collect()
    }
}
