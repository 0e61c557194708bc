//! Safety checkers, run after every step of every node.
//!
//! The properties are those of the Raft paper (Figure 3) and their durable-state extensions.
//! Every check is incremental: it looks only at what changed since the node's last step (new
//! commit indexes, the batch just handed out, the message just released), never at whole logs.
//!
//! | property | how it is checked |
//! | --- | --- |
//! | election safety | a map term → leader; a second node leading a term is a violation |
//! | leader append-only | while a node leads a term, its last index never drops and the entry at its last-seen last index keeps its term |
//! | log matching | every entry any node writes is registered by (index, term) with its predecessor's term and a hash of its payload; a second entry with the same id but another predecessor or payload is a violation (by induction, equal ids mean equal prefixes) |
//! | leader completeness | when a node becomes leader of term T, it holds the last entry committed in any term below T |
//! | state machine safety | a canonical committed log, extended by whichever node commits an index first; every later commit and every applied entry must match it; a snapshot's last entry too |
//! | commit and term monotonic | per node incarnation in memory; across restarts on durable state (see [`crate::disk`]) |
//! | committed ⇒ durable on a quorum | when an index is first committed, a quorum of the committing node's configuration holds it durably (in its log, or covered by its durable snapshot) |
//! | committed ⇒ no leader can lack it | when an index is first committed, no voter lacking it can gather a quorum of its own configuration from nodes it is at least as up to date as (so leader completeness cannot break later; catches Figure 8 at the commit) |
//! | durable before send | checked by the driver ([`crate::node`]) as each vote grant or append acknowledgement leaves |
//! | applied ⇒ durable | checked by the driver as each apply batch arrives (Ready rule 4) |
//! | indexes ordered | applied ≤ commit ≤ last index, and the log's snapshot ≤ commit |
//! | snapshots agree | two snapshots of the same index hold the same state machine, and a snapshot's index and term are a committed entry |
//! | configuration safety | every applied configuration joins the chain of [`crate::conf_chain`]: nodes agree at each index, and each step is legal |
//!
//! The checker sees nodes only through what they report ([`crate::observation`]): the
//! world passes it as the [`Observer`] of every node step, and between events hands it a
//! [`NodeState`] per slot. It imports no other simulator module but the pure
//! [`crate::conf_chain`].
//!
//! Quorums are those of a configuration: the configuration in force on the node that commits,
//! and for a would-be candidate its own (which a stale node may hold).
//!
//! Invariants:
//! 1. `canonical.len()` is at least every live node's commit index.
//! 2. The first violation is kept; later ones are ignored (the run stops at the first).

use crate::conf_chain::{self, ConfChain};
use crate::observation::{NodeState, Observation, Observer};
use raft_core::{
    ConfState, Entry, EntryId, MemStorage, Message, MessageType, RawNode, Role, Storage,
    StorageError,
};
use std::collections::BTreeMap;
use std::rc::Rc;

/// The properties, named where the driver reports them too ([`crate::observation`]).
pub use crate::observation::Property;

/// A broken property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which.
    pub property: Property,
    /// What was seen.
    pub detail: String,
    /// When (simulated microseconds).
    pub at_us: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Leading {
    term: u64,
    /// The last index seen while leading and the term of its entry.
    last_index: u64,
    last_term: u64,
}

#[derive(Clone, Copy, Debug)]
struct View {
    term: u64,
    commit: u64,
    leading: Option<Leading>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Registered {
    term: u64,
    prev_term: u64,
    hash: u64,
}

/// The checker of one run.
#[derive(Debug)]
pub struct Checker {
    /// `canonical[i - 1]` = (term, payload hash) of committed index `i`.
    canonical: Vec<(u64, u64)>,
    /// term → highest index first committed by a node in that term.
    committed_in_term: BTreeMap<u64, u64>,
    /// term → its leader.
    leaders: BTreeMap<u64, u64>,
    /// `registry[i]` = every entry id written at index `i`, with predecessor term and hash.
    registry: Vec<Vec<Registered>>,
    views: Vec<View>,
    /// Indexes committed for the first time whose quorum durability is still to be checked,
    /// with the configuration in force on the node that committed them.
    newly_committed: Vec<(u64, Rc<ConfState>)>,
    /// The configurations applied anywhere.
    pub chain: ConfChain,
    /// index → hash of the state machine a snapshot at that index holds.
    snapshots: BTreeMap<u64, u64>,
    /// Whether configurations change in this run (each would-be candidate then counts votes
    /// with raft-core's own configuration, which may differ from the driver's for a moment).
    membership: bool,
    violation: Option<Violation>,
    /// Times a leader's commit index landed on an entry of an earlier term (only the
    /// planted Figure 8 bug does this).
    pub old_term_commits: u64,
}

/// A payload hash (FNV-1a, 64 bit), with the entry type folded in.
pub fn entry_hash(e: &Entry) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ (e.entry_type as u64);
    for &b in e.data.iter() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Checker {
    /// A checker for `nodes` node slots whose founders all start from a bootstrap snapshot at
    /// `base_index`/`base_term` of the `founding` configuration (raft-core's founders start
    /// with a snapshot at index 1, whose state machine is empty). Indexes up to the base count
    /// as committed; their payloads are unknown (hash 0) and never compared, since no node
    /// hands them out as entries. `membership`: whether configurations change in this run.
    pub fn new(
        nodes: usize,
        base_index: u64,
        base_term: u64,
        founding: ConfState,
        membership: bool,
    ) -> Checker {
        let mut canonical = vec![(0, 0); base_index as usize];
        if let Some(last) = canonical.last_mut() {
            last.0 = base_term;
        }
        Checker {
            canonical,
            committed_in_term: BTreeMap::new(),
            leaders: BTreeMap::new(),
            registry: vec![Vec::new(); base_index as usize + 1],
            views: vec![
                View {
                    term: 0,
                    commit: 0,
                    leading: None,
                };
                nodes
            ],
            newly_committed: Vec::new(),
            chain: ConfChain::new(founding),
            snapshots: BTreeMap::from([(base_index, data_hash(&[]))]),
            membership,
            violation: None,
            old_term_commits: 0,
        }
    }

    /// Records a violation (the first one wins).
    pub fn fail(&mut self, property: Property, at_us: u64, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation {
                property,
                detail,
                at_us,
            });
        }
    }

    /// The first violation, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// Takes the first violation out.
    pub fn take_violation(&mut self) -> Option<Violation> {
        self.violation.take()
    }

    /// Number of terms that had a leader.
    pub fn leader_terms(&self) -> usize {
        self.leaders.len()
    }

    /// Whether indexes were committed for the first time since the last
    /// [`Checker::check_new_commits`] (which has nothing to do otherwise).
    pub fn has_new_commits(&self) -> bool {
        !self.newly_committed.is_empty()
    }

    /// The highest committed index any node reached.
    pub fn committed_index(&self) -> u64 {
        self.canonical.len() as u64
    }

    /// The node at index `n` (id `n + 1`) restarted from its durable state.
    pub fn on_restart(&mut self, n: usize, raw: &RawNode<MemStorage>) {
        self.views[n] = View {
            term: raw.term(),
            commit: raw.commit(),
            leading: None,
        };
    }

    /// Checks node `n` after one of its steps (any input or completion). `conf` is the
    /// configuration in force on it (kept with the indexes it commits first).
    pub fn on_step(
        &mut self,
        n: usize,
        raw: &RawNode<MemStorage>,
        applied: u64,
        conf: &Rc<ConfState>,
        now_us: u64,
    ) {
        let id = n as u64 + 1;
        let (term, role, commit, last) = (raw.term(), raw.role(), raw.commit(), raw.last_index());
        let old = self.views[n];
        if term < old.term {
            self.fail(
                Property::Monotonicity,
                now_us,
                format!("n{id} term went back from {} to {term}", old.term),
            );
        }
        if commit < old.commit {
            self.fail(
                Property::Monotonicity,
                now_us,
                format!("n{id} commit went back from {} to {commit}", old.commit),
            );
        }
        // A snapshot received from the leader is in storage (and committed) before it is
        // applied, so the snapshot is bounded by commit, not by applied.
        let snapshot = raw.storage().first_index().map_or(0, |i| i - 1);
        if !(snapshot <= commit && applied <= commit && commit <= last) {
            self.fail(
                Property::IndexOrder,
                now_us,
                format!(
                    "n{id} snapshot {snapshot}, applied {applied}, commit {commit}, \
                     last index {last}"
                ),
            );
        }
        let mut leading = None;
        if role == Role::Leader {
            let known = old.leading.is_some_and(|l| l.term == term);
            let prior = if known {
                id
            } else {
                *self.leaders.entry(term).or_insert(id)
            };
            if prior != id {
                self.fail(
                    Property::ElectionSafety,
                    now_us,
                    format!("n{prior} and n{id} both lead term {term}"),
                );
            }
            match old.leading {
                Some(l) if l.term == term => {
                    let kept = raw.log_term(l.last_index);
                    // An entry compacted away was applied, hence kept.
                    let compacted = kept.is_none() && l.last_index <= snapshot;
                    if last < l.last_index || (kept != Some(l.last_term) && !compacted) {
                        self.fail(
                            Property::LeaderAppendOnly,
                            now_us,
                            format!(
                                "n{id} leading term {term}: entry {}/{} became {kept:?}, \
                                 last index {} -> {last}",
                                l.last_term, l.last_index, l.last_index
                            ),
                        );
                    }
                }
                _ => self.check_leader_completeness(id, raw, term, now_us),
            }
            leading = Some(Leading {
                term,
                last_index: last,
                last_term: raw.log_term(last).unwrap_or(0),
            });
        }
        if commit > old.commit && role == Role::Leader && raw.log_term(commit) != Some(term) {
            self.old_term_commits += 1;
        }
        if commit > old.commit {
            self.on_commit(id, raw, old.commit, commit, term, conf, now_us);
        }
        self.views[n] = View {
            term,
            commit: commit.max(old.commit),
            leading,
        };
    }

    fn check_leader_completeness(
        &mut self,
        id: u64,
        raw: &RawNode<MemStorage>,
        term: u64,
        now_us: u64,
    ) {
        let Some(&index) = self.committed_in_term.range(..term).map(|(_, i)| i).max() else {
            return;
        };
        let want = self.canonical[index as usize - 1].0;
        let have = raw.log_term(index);
        if have != Some(want) {
            self.fail(
                Property::LeaderCompleteness,
                now_us,
                format!(
                    "n{id} leads term {term} without committed entry {want}/{index} \
                     (its log has {have:?} there)"
                ),
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_commit(
        &mut self,
        id: u64,
        raw: &RawNode<MemStorage>,
        from: u64,
        to: u64,
        term: u64,
        conf: &Rc<ConfState>,
        now_us: u64,
    ) {
        // A commit that jumped over compacted entries (a snapshot restored): the snapshot's
        // last entry must be the committed one; the entries after it are checked one by one.
        let mut lo = from + 1;
        let entries = loop {
            match raw.log_entries(lo, to + 1) {
                Ok(e) => break e,
                Err(StorageError::Compacted { first_index, .. }) if first_index > lo => {
                    let base = first_index - 1;
                    let want = self.canonical.get(base as usize - 1).map(|c| c.0);
                    if want.is_none() || want != raw.log_term(base) {
                        self.fail(
                            Property::StateMachineSafety,
                            now_us,
                            format!(
                                "n{id} committed through a snapshot at {:?}/{base}, but \
                                 {want:?}/{base} was committed",
                                raw.log_term(base)
                            ),
                        );
                        return;
                    }
                    if first_index > to {
                        return;
                    }
                    lo = first_index;
                }
                Err(e) => {
                    self.fail(
                        Property::StateMachineSafety,
                        now_us,
                        format!("n{id} committed {to} but cannot read entries {lo}..={to}: {e}"),
                    );
                    return;
                }
            }
        };
        for e in &entries {
            let h = entry_hash(e);
            let i = e.index as usize;
            if i <= self.canonical.len() {
                let (ct, ch) = self.canonical[i - 1];
                if (ct, ch) != (e.term, h) {
                    self.fail(
                        Property::StateMachineSafety,
                        now_us,
                        format!(
                            "n{id} committed {}/{} but {ct}/{} was committed before \
                             (payloads {})",
                            e.term,
                            e.index,
                            e.index,
                            if ch == h { "equal" } else { "differ" }
                        ),
                    );
                    return;
                }
            } else {
                assert_eq!(
                    i,
                    self.canonical.len() + 1,
                    "the canonical log grows by one"
                );
                self.canonical.push((e.term, h));
                let m = self.committed_in_term.entry(term).or_insert(0);
                *m = (*m).max(e.index);
                self.newly_committed.push((e.index, Rc::clone(conf)));
            }
        }
    }

    /// Checks every index committed for the first time since the last call, once per event
    /// after the event's steps:
    ///
    /// 1. it is durable on a quorum of the configuration in force on the node that committed
    ///    it (in the log, or covered by the durable snapshot);
    /// 2. no node lacking it could win an election now: for the highest new index `c`, no
    ///    voter without entry `c` may be at least as up to date (thesis §3.6.1: last term,
    ///    then last index) as a quorum of its own configuration. In correct Raft this holds at
    ///    commit time because a leader commits only an entry of its own term, which every
    ///    node lacking it is behind, and because configurations in use at once share quorums;
    ///    a leader that counts replicas of an older entry (Figure 8) breaks it the moment it
    ///    commits, before any later leader overwrites the entry.
    ///
    /// For the election, a voter's log is its durable one when that is shorter (it may crash
    /// and lose the rest), and the candidate's is the longer of its durable and in-memory
    /// logs: the most favourable case for the candidate. Retired nodes and spare slots never
    /// started take no part in elections.
    pub fn check_new_commits(&mut self, nodes: &[NodeState<'_>], now_us: u64) {
        let Some(&(top, _)) = self.newly_committed.last() else {
            return;
        };
        let live = |n: &NodeState<'_>| n.started;
        for (index, conf) in std::mem::take(&mut self.newly_committed) {
            let term = self.canonical[index as usize - 1].0;
            // A retired node's disk counts: its acknowledgement was as good as any when the
            // entry was committed (its absence later is a matter of liveness, not safety).
            let holds = |id: u64| {
                nodes
                    .get(id as usize - 1)
                    .is_some_and(|n| durably_holds(n.durable, index, term))
            };
            if !conf_chain::has_quorum(&conf, holds) {
                let holders: Vec<u64> = conf_chain::voters(&conf).filter(|&v| holds(v)).collect();
                self.fail(
                    Property::CommittedDurableOnQuorum,
                    now_us,
                    format!(
                        "entry {term}/{index} committed but durable only on {holders:?} of \
                         configuration {conf:?}"
                    ),
                );
                return;
            }
        }
        let term = self.canonical[top as usize - 1].0;
        // Per node: the log a voter votes with (the less up to date of durable and in-memory),
        // and the would-be candidates it can become: running as it is, or restarted from its
        // disk, each with the log it would hold, whether that log holds the entry, and (with
        // membership changes) the configuration it would count votes with.
        let holds_mem = |r: &RawNode<MemStorage>| match r.log_term(top) {
            Some(t) => t == term,
            // Within the log but without a term: under the node's snapshot.
            None => top <= r.last_index(),
        };
        let voter_logs: Vec<EntryId> = nodes
            .iter()
            .map(|n| {
                let durable = durable_last(n.durable);
                let memory = n.raw.map_or(durable, RawNode::last_entry_id);
                up_to_date_min(durable, memory)
            })
            .collect();
        for (c, n) in nodes.iter().enumerate() {
            if !live(n) {
                continue;
            }
            let cid = c as u64 + 1;
            let durable = n.durable;
            let mut states: Vec<(EntryId, bool, bool)> = Vec::with_capacity(2);
            if let Some(r) = n.raw {
                states.push((r.last_entry_id(), holds_mem(r), true));
            }
            states.push((
                durable_last(durable),
                durably_holds(durable, top, term),
                false,
            ));
            if !self.membership {
                // One configuration for all: the most up-to-date state lacking the entry is
                // the strongest candidate.
                states.retain(|s| !s.1);
                let Some(best) = states.iter().map(|s| s.0).reduce(up_to_date_max) else {
                    continue;
                };
                states = vec![(best, false, true)];
            }
            for (candidate, has, running) in states {
                if has {
                    continue;
                }
                let conf = match (self.membership, running) {
                    (false, _) => n.conf.clone(),
                    (true, true) => committed_conf(n.raw.expect("running"), n.applied),
                    (true, false) => restart_conf(durable),
                };
                if !conf_chain::is_voter(&conf, cid) {
                    continue;
                }
                let grants = |v: u64| {
                    let i = v as usize - 1;
                    v == cid
                        || (i < nodes.len()
                            && live(&nodes[i])
                            && at_least_as_up_to_date(candidate, voter_logs[i]))
                };
                if conf_chain::has_quorum(&conf, grants) {
                    let names: Vec<String> = conf_chain::voters(&conf)
                        .filter(|&v| grants(v))
                        .map(|v| format!("n{v}"))
                        .collect();
                    self.fail(
                        Property::LeaderCompleteness,
                        now_us,
                        format!(
                            "entry {term}/{top} was just committed, yet n{cid} ({}, last entry \
                             {candidate}) lacks it and could win an election with votes of \
                             {{{}}} in its configuration {conf:?}",
                            if running {
                                "as it runs"
                            } else {
                                "restarted from its disk"
                            },
                            names.join(",")
                        ),
                    );
                    return;
                }
            }
        }
    }

    /// Records that node `id` applied configuration `conf` through the change at `index`.
    pub fn on_conf_applied(&mut self, id: u64, index: u64, conf: &ConfState, now_us: u64) {
        if let Err(e) = self.chain.record(index, conf) {
            self.fail(Property::ConfigSafety, now_us, format!("n{id}: {e}"));
        }
    }

    /// Checks that node `id`, starting (or restoring a snapshot) at `index`, holds the
    /// configuration in effect there.
    pub fn on_conf_at(&mut self, id: u64, index: u64, conf: &ConfState, now_us: u64) {
        if let Err(e) = self.chain.check_at(index, conf) {
            self.fail(Property::ConfigSafety, now_us, format!("n{id}: {e}"));
        }
    }

    /// Node `id` snapshotted its state machine (`data`) at `index`/`term`: the entry must be
    /// the committed one, and every snapshot of an index must hold the same state.
    pub fn on_snapshot_made(&mut self, id: u64, index: u64, term: u64, data: &[u8], now_us: u64) {
        if !self.snapshot_entry_is_committed(id, index, term, now_us) {
            return;
        }
        let h = data_hash(data);
        match self.snapshots.get(&index) {
            Some(&other) if other != h => self.fail(
                Property::StateDivergence,
                now_us,
                format!("n{id} snapshots a state at {index} that differs from another node's"),
            ),
            Some(_) => {}
            None => {
                self.snapshots.insert(index, h);
            }
        }
    }

    /// Node `id` restores a snapshot a leader sent: it must be one a node made.
    pub fn on_snapshot_applied(
        &mut self,
        id: u64,
        index: u64,
        term: u64,
        data: &[u8],
        now_us: u64,
    ) {
        if !self.snapshot_entry_is_committed(id, index, term, now_us) {
            return;
        }
        if self.snapshots.get(&index) != Some(&data_hash(data)) {
            self.fail(
                Property::StateDivergence,
                now_us,
                format!("n{id} restores a snapshot at {index} that no node made"),
            );
        }
    }

    fn snapshot_entry_is_committed(&mut self, id: u64, index: u64, term: u64, now_us: u64) -> bool {
        let want = self
            .canonical
            .get((index as usize).wrapping_sub(1))
            .map(|c| c.0);
        if want != Some(term) {
            self.fail(
                Property::StateMachineSafety,
                now_us,
                format!("n{id} holds a snapshot at {term}/{index}, but the committed entry there is {want:?}"),
            );
            return false;
        }
        true
    }

    /// Registers the entries of a persist batch node `id` just received (log matching).
    /// `prev_term` is the term, in that node's log, of the entry before the first one.
    pub fn on_write(&mut self, id: u64, entries: &[Entry], prev_term: u64, now_us: u64) {
        let mut prev = prev_term;
        for e in entries {
            let i = e.index as usize;
            if self.registry.len() <= i {
                self.registry.resize(i + 1, Vec::new());
            }
            let reg = Registered {
                term: e.term,
                prev_term: prev,
                hash: entry_hash(e),
            };
            match self.registry[i].iter().find(|r| r.term == e.term) {
                Some(r) if *r != reg => {
                    let r = *r;
                    self.fail(
                        Property::LogMatching,
                        now_us,
                        format!(
                            "n{id} writes {}/{} after term {prev} with payload {:x}; \
                             elsewhere it follows term {} with payload {:x}",
                            e.term, e.index, reg.hash, r.prev_term, r.hash
                        ),
                    );
                    return;
                }
                Some(_) => {}
                None => self.registry[i].push(reg),
            }
            prev = e.term;
        }
    }

    /// Checks the entries of an apply batch against the canonical committed log.
    pub fn on_apply(&mut self, id: u64, entries: &[Entry], now_us: u64) {
        for e in entries {
            let i = e.index as usize;
            let want = self.canonical.get(i.wrapping_sub(1)).copied();
            let have = (e.term, entry_hash(e));
            if want != Some(have) {
                self.fail(
                    Property::StateMachineSafety,
                    now_us,
                    format!(
                        "n{id} applies {}/{} but the committed entry there is {want:?}",
                        e.term, e.index
                    ),
                );
                return;
            }
        }
    }

    /// Checks a message leaving node `id` against its durable state (durable before send).
    pub fn on_release(&mut self, m: &Message, durable: &MemStorage, now_us: u64) {
        match m.kind() {
            MessageType::MsgAppResp
                if !m.reject && m.index >= durable.first_index().unwrap_or(1) =>
            {
                // Indexes at or below the durable snapshot are covered by it.
                let last = durable.last_index().unwrap_or(0);
                let term = durable.term(m.index).ok();
                if last < m.index || term.is_none_or(|t| t > m.term) {
                    self.fail(
                        Property::DurableBeforeSend,
                        now_us,
                        format!(
                            "n{} acknowledges index {} in term {} to n{} but its durable log \
                             ends at {last} (term there: {term:?})",
                            m.from, m.index, m.term, m.to
                        ),
                    );
                }
            }
            MessageType::MsgVoteResp if !m.reject => {
                let hs = durable.hard_state();
                if !(hs.term > m.term || (hs.term == m.term && hs.vote == m.to)) {
                    self.fail(
                        Property::DurableBeforeSend,
                        now_us,
                        format!(
                            "n{} grants its vote in term {} to n{} but its durable hard state \
                             is term {} vote {}",
                            m.from, m.term, m.to, hs.term, hs.vote
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}

/// The world passes the checker as the observer of every node step it runs.
impl Observer for Checker {
    fn observe(&mut self, node: u64, now_us: u64, what: Observation<'_>) {
        match what {
            Observation::Stepped { raw, applied, conf } => {
                self.on_step(node as usize - 1, raw, applied, conf, now_us);
            }
            Observation::Started { raw } => self.on_restart(node as usize - 1, raw),
            Observation::Released { msg, durable } => self.on_release(msg, durable, now_us),
            Observation::Written { entries, prev_term } => {
                self.on_write(node, entries, prev_term, now_us);
            }
            Observation::Applied { entries } => self.on_apply(node, entries, now_us),
            Observation::ConfApplied { index, conf } => {
                self.on_conf_applied(node, index, conf, now_us);
            }
            Observation::ConfAt { index, conf } => self.on_conf_at(node, index, conf, now_us),
            Observation::SnapshotMade { index, term, data } => {
                self.on_snapshot_made(node, index, term, data, now_us);
            }
            Observation::SnapshotRestored { index, term, data } => {
                self.on_snapshot_applied(node, index, term, data, now_us);
            }
            Observation::Broken { property, detail } => self.fail(property, now_us, detail),
        }
    }
}

/// Whether `s` durably holds entry `term`/`index`: in its log, or under its snapshot (which
/// covers only committed entries).
fn durably_holds(s: &MemStorage, index: u64, term: u64) -> bool {
    index < s.first_index().unwrap_or(1) || s.term(index) == Ok(term)
}

/// The configuration a running node campaigns with: raft-core refuses to campaign while a
/// committed configuration change is unapplied, so it is the applied configuration followed by
/// the changes committed after `applied`.
fn committed_conf(raw: &RawNode<MemStorage>, applied: u64) -> ConfState {
    let conf = raw.conf_state();
    let commit = raw.commit();
    let mut lo = applied + 1;
    while lo <= commit {
        match raw.log_entries(lo, commit + 1) {
            Ok(ents) => return conf_chain::follow(&conf, &ents, |_, _| {}),
            // A snapshot not applied yet: its configuration is in force already.
            Err(StorageError::Compacted { first_index, .. }) if first_index > lo => {
                lo = first_index
            }
            Err(_) => break,
        }
    }
    conf
}

/// The configuration a node restarted from `durable` campaigns with: the one stored with its
/// snapshot, followed by the changes it re-applies up to its durable commit index.
fn restart_conf(durable: &MemStorage) -> ConfState {
    let conf = durable.conf_state().clone();
    let from = durable.snapshot(0, 0).map_or(0, |s| s.index()) + 1;
    let to = durable
        .hard_state()
        .commit
        .min(durable.last_index().unwrap_or(0));
    if from > to {
        return conf;
    }
    match durable.entries(from, to + 1, u64::MAX) {
        Ok(ents) => conf_chain::follow(&conf, &ents, |_, _| {}),
        Err(_) => conf,
    }
}

/// A hash of snapshot data (FNV-1a, 64 bit).
fn data_hash(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The id of the last entry of a storage (its snapshot base if it holds no entries).
fn durable_last(s: &MemStorage) -> EntryId {
    let index = s.last_index().expect("MemStorage answers");
    EntryId::new(index, s.term(index).expect("the last index has a term"))
}

/// Raft's "at least as up to date": a later last term, or the same term and a last index at
/// least as high.
fn at_least_as_up_to_date(a: EntryId, b: EntryId) -> bool {
    (a.term, a.index) >= (b.term, b.index)
}

fn up_to_date_min(a: EntryId, b: EntryId) -> EntryId {
    if at_least_as_up_to_date(a, b) { b } else { a }
}

fn up_to_date_max(a: EntryId, b: EntryId) -> EntryId {
    if at_least_as_up_to_date(a, b) { a } else { b }
}
