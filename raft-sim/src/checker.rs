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
//! | state machine safety | a canonical committed log, extended by whichever node commits an index first; every later commit and every applied entry must match it |
//! | commit and term monotonic | per node incarnation in memory; across restarts on durable state (see [`crate::disk`]) |
//! | committed ⇒ durable on a quorum | when an index is first committed, a quorum of disks holds it durably |
//! | committed ⇒ no leader can lack it | when an index is first committed, no node lacking it is at least as up to date as a quorum (so leader completeness cannot break later; catches Figure 8 at the commit) |
//! | durable before send | checked by the driver ([`crate::node`]) as each vote grant or append acknowledgement leaves |
//! | indexes ordered | snapshot ≤ applied ≤ commit ≤ last index (the simulator does not compact logs, so the snapshot is the bootstrap one at index 1) |
//!
//! Invariants:
//! 1. `canonical.len()` is at least every live node's commit index.
//! 2. The first violation is kept; later ones are ignored (the run stops at the first).

use crate::node::SimNode;
use raft_core::{Entry, EntryId, MemStorage, Message, MessageType, RawNode, Role, Storage};
use std::collections::BTreeMap;
use std::fmt;

/// A property the simulator checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Property {
    /// At most one leader per term.
    ElectionSafety,
    /// A leader never overwrites or deletes entries of its log.
    LeaderAppendOnly,
    /// Equal (index, term) means equal entries and equal prefixes.
    LogMatching,
    /// A leader holds every entry committed in earlier terms.
    LeaderCompleteness,
    /// No two nodes commit or apply different entries at one index.
    StateMachineSafety,
    /// Term and commit never go backwards (in memory, and durably across restarts).
    Monotonicity,
    /// A committed entry is durable on a quorum.
    CommittedDurableOnQuorum,
    /// Acknowledgements and vote grants leave only after the state they vouch for is durable.
    DurableBeforeSend,
    /// snapshot ≤ applied ≤ commit ≤ last index.
    IndexOrder,
    /// An honest message was refused by `step` (a raft-core bug).
    HonestMessageRefused,
    /// A message did not survive protobuf encode/decode unchanged.
    WireRoundTrip,
    /// raft-core panicked (an invariant or a contract assertion).
    CorePanic,
    /// An acknowledged client operation is missing from the state machine.
    LostWrite,
    /// The client history has no linearization.
    Linearizability,
    /// Two live nodes at the same applied index hold different states.
    StateDivergence,
    /// The liveness phase did not elect a leader or converge within its bound.
    Liveness,
    /// raft-core asked for something the simulator does not model (a snapshot to apply
    /// although no log was compacted).
    Unmodelled,
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Property::ElectionSafety => "election safety",
            Property::LeaderAppendOnly => "leader append-only",
            Property::LogMatching => "log matching",
            Property::LeaderCompleteness => "leader completeness",
            Property::StateMachineSafety => "state machine safety",
            Property::Monotonicity => "term/commit monotonicity",
            Property::CommittedDurableOnQuorum => "committed entry durable on a quorum",
            Property::DurableBeforeSend => "durable before send",
            Property::IndexOrder => "snapshot <= applied <= commit <= last index",
            Property::HonestMessageRefused => "honest message refused",
            Property::WireRoundTrip => "wire round trip",
            Property::CorePanic => "raft-core panic",
            Property::LostWrite => "acknowledged write lost",
            Property::Linearizability => "linearizability",
            Property::StateDivergence => "identical state at equal applied index",
            Property::Liveness => "liveness",
            Property::Unmodelled => "unmodelled request",
        })
    }
}

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
    nodes: usize,
    /// `canonical[i - 1]` = (term, payload hash) of committed index `i`.
    canonical: Vec<(u64, u64)>,
    /// term → highest index first committed by a node in that term.
    committed_in_term: BTreeMap<u64, u64>,
    /// term → its leader.
    leaders: BTreeMap<u64, u64>,
    /// `registry[i]` = every entry id written at index `i`, with predecessor term and hash.
    registry: Vec<Vec<Registered>>,
    views: Vec<View>,
    /// Indexes committed for the first time whose quorum durability is still to be checked.
    newly_committed: Vec<u64>,
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
    /// A checker for `nodes` nodes that all start from a bootstrap snapshot at
    /// `base_index`/`base_term` (raft-core's founders start with a snapshot of the founding
    /// configuration at index 1). Indexes up to the base count as committed; their payloads
    /// are unknown (hash 0) and never compared, since no node hands them out as entries.
    pub fn new(nodes: usize, base_index: u64, base_term: u64) -> Checker {
        let mut canonical = vec![(0, 0); base_index as usize];
        if let Some(last) = canonical.last_mut() {
            last.0 = base_term;
        }
        Checker {
            nodes,
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

    /// Checks node `n` after one of its steps (any input or completion).
    pub fn observe(&mut self, n: usize, raw: &RawNode<MemStorage>, applied: u64, now_us: u64) {
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
        let snapshot = raw.storage().first_index().map_or(0, |i| i - 1);
        if !(snapshot <= applied && applied <= commit && commit <= last) {
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
                    if last < l.last_index || kept != Some(l.last_term) {
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
            self.on_commit(id, raw, old.commit, commit, term, now_us);
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

    fn on_commit(
        &mut self,
        id: u64,
        raw: &RawNode<MemStorage>,
        from: u64,
        to: u64,
        term: u64,
        now_us: u64,
    ) {
        let entries = match raw.log_entries(from + 1, to + 1) {
            Ok(e) => e,
            Err(e) => {
                self.fail(
                    Property::StateMachineSafety,
                    now_us,
                    format!(
                        "n{id} committed {to} but cannot read entries {}..={to}: {e}",
                        from + 1
                    ),
                );
                return;
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
                self.newly_committed.push(e.index);
            }
        }
    }

    /// Checks every index committed for the first time since the last call, once per event
    /// after the event's steps:
    ///
    /// 1. it is durable on a quorum of disks;
    /// 2. no node lacking it could win an election now: for the highest new index `c`, every
    ///    node without entry `c` must be less up to date (thesis §3.6.1: last term, then last
    ///    index) than more than `n - quorum` of the others. In correct Raft this holds at
    ///    commit time because a leader commits only an entry of its own term, which every
    ///    node lacking it is behind; a leader that counts replicas of an older entry (Figure 8)
    ///    breaks it the moment it commits, before any later leader overwrites the entry.
    ///
    /// For the election, a voter's log is its durable one when that is shorter (it may crash
    /// and lose the rest), and the candidate's is the longer of its durable and in-memory
    /// logs: the most favourable case for the candidate.
    pub fn check_new_commits(&mut self, nodes: &[SimNode], now_us: u64) {
        let Some(&top) = self.newly_committed.last() else {
            return;
        };
        let quorum = self.nodes / 2 + 1;
        for index in std::mem::take(&mut self.newly_committed) {
            let term = self.canonical[index as usize - 1].0;
            let holders = nodes
                .iter()
                .filter(|n| n.disk.durable().term(index) == Ok(term))
                .count();
            if holders < quorum {
                self.fail(
                    Property::CommittedDurableOnQuorum,
                    now_us,
                    format!(
                        "entry {term}/{index} committed but durable on {holders} of {} disks",
                        self.nodes
                    ),
                );
                return;
            }
        }
        let term = self.canonical[top as usize - 1].0;
        let ids: Vec<(EntryId, EntryId, bool)> = nodes
            .iter()
            .map(|n| {
                let durable = durable_last(n.disk.durable());
                let memory = n.raw.as_ref().map_or(durable, RawNode::last_entry_id);
                let has = match n.raw.as_ref() {
                    Some(r) => r.log_term(top) == Some(term),
                    None => n.disk.durable().term(top) == Ok(term),
                };
                (
                    up_to_date_min(durable, memory),
                    up_to_date_max(durable, memory),
                    has,
                )
            })
            .collect();
        for (c, &(_, candidate, has)) in ids.iter().enumerate() {
            if has {
                continue;
            }
            let voters: Vec<usize> = (0..ids.len())
                .filter(|&v| v == c || at_least_as_up_to_date(candidate, ids[v].0))
                .collect();
            if voters.len() >= quorum {
                let names: Vec<String> = voters.iter().map(|v| format!("n{}", v + 1)).collect();
                self.fail(
                    Property::LeaderCompleteness,
                    now_us,
                    format!(
                        "entry {term}/{top} was just committed, yet n{} (last entry {candidate}) \
                         lacks it and could win an election with votes of {{{}}}",
                        c + 1,
                        names.join(",")
                    ),
                );
                return;
            }
        }
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
            MessageType::MsgAppResp if !m.reject && m.index > 0 => {
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
