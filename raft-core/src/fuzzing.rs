//! Bodies of the fuzz targets in `fuzz/`. They live here, in the library, so that the same
//! code runs under `cargo fuzz` (nightly, coverage-guided) and as ordinary tests over the
//! committed corpus on stable (`tests/fuzz_corpus.rs`).
//!
//! Each body takes arbitrary bytes, never panics on them unless it found a bug, and checks
//! what its target is about after every step:
//! 1. [`decode_and_step`]: bytes → `Message` → `step` into a node in some role: never a
//!    panic; a refused message changes nothing; invariants hold, then and while the node
//!    goes on ticking and proposing (an accepted number must leave room for its arithmetic).
//! 2. [`cluster_schedule`]: bytes choose a schedule of deliveries, drops, duplicates, ticks,
//!    proposals and field mutations in a three-node cluster: invariants hold on every node,
//!    and, unless a forged (mutated) message was accepted, no two nodes lead one term or
//!    apply different entries at one index.
//! 3. [`conf_change_sequence`]: bytes → membership changes against the changer: every result
//!    is a valid configuration, errors leave it unchanged.
//! 4. [`log_operations`]: bytes → append/truncate/compact/snapshot on `MemStorage`, compared
//!    with a `Vec` model after every operation.

use crate::confchange;
use crate::wire::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, Entry, Message,
};
use crate::{Config, MemStorage, RawNode, Ready, Role, Storage};
use std::collections::BTreeMap;

type Node = RawNode<MemStorage>;

/// A little reader of fuzz bytes: every read succeeds (zeros once the input is used up).
struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

fn node(id: u64, voters: &[u64]) -> Node {
    let mut cfg = Config::new(id);
    cfg.seed = Some(id);
    let st = MemStorage::new_with_conf_state(ConfState::with_voters(voters.to_vec()));
    RawNode::new(&cfg, st, &logger()).expect("valid config")
}

/// Runs a node's Ready loop to completion, returning its messages and applied entries.
fn drain(n: &mut Node, applied: &mut Vec<(u64, u64)>) -> Vec<Message> {
    let mut out = Vec::new();
    while n.has_ready() {
        let Ready {
            messages,
            persist,
            apply,
            read_states: _,
        } = n.ready();
        out.extend(messages);
        if let Some(b) = persist {
            n.storage_mut()
                .persist(&b)
                .expect("batches connect to the stored log");
            n.on_persisted(b.durable());
        }
        if let Some(b) = apply {
            applied.extend(b.entries.iter().map(|e| (e.index, e.term)));
            n.on_applied(b.applied());
        }
    }
    out
}

type Fingerprint = (crate::Status, crate::HardState, crate::EntryId, usize);

fn fingerprint(n: &Node) -> Fingerprint {
    (
        n.status(),
        n.hard_state(),
        n.last_entry_id(),
        n.held_messages(),
    )
}

/// Target 1: decode bytes into a message and step it into a node whose role the first
/// byte picks.
pub fn decode_and_step(data: &[u8]) {
    let Some((&role, rest)) = data.split_first() else {
        return;
    };
    let Ok(mut m) = Message::decode_from(rest) else {
        return;
    };
    let mut nodes: Vec<Node> = (1..=3).map(|id| node(id, &[1, 2, 3])).collect();
    let mut sink = Vec::new();
    if role % 3 != 0 {
        nodes[0].campaign().expect("voter");
        for _ in 0..10 {
            let mut msgs = Vec::new();
            for n in nodes.iter_mut() {
                msgs.extend(drain(n, &mut sink));
            }
            for msg in msgs {
                let to = msg.to as usize - 1;
                let _ = nodes[to].step(msg);
            }
        }
    }
    let target = &mut nodes[usize::from(role % 3 == 2)];
    if role & 0x80 != 0 {
        m.to = target.id();
    }
    let before = fingerprint(target);
    if target.step(m).is_err() {
        assert_eq!(
            before,
            fingerprint(target),
            "a refused message changed the node"
        );
    }
    target.check_invariants();
    let _ = drain(target, &mut sink);
    target.check_invariants();
    // An accepted number must also leave the node room for its own arithmetic: past an
    // election timeout (at most twice the default 10 ticks) it campaigns (`term + 1`) or,
    // leading, sends heartbeats and appends; then it takes a proposal (`last_index + 1`).
    for _ in 0..21 {
        target.tick();
        let _ = drain(target, &mut sink);
        target.check_invariants();
    }
    let _ = target.propose(vec![1]);
    let _ = drain(target, &mut sink);
    target.check_invariants();
}

/// Target 2: a schedule over a three-node cluster, chosen byte by byte.
pub fn cluster_schedule(data: &[u8]) {
    let mut b = Bytes { data, pos: 0 };
    let mut nodes: Vec<Node> = (1..=3).map(|id| node(id, &[1, 2, 3])).collect();
    let mut net: Vec<Message> = Vec::new();
    let mut applied: Vec<Vec<(u64, u64)>> = vec![Vec::new(); 3];
    let mut leaders: BTreeMap<u64, u64> = BTreeMap::new();
    let mut steps = 0;
    // Raft tolerates loss, duplication and reordering, not forgery: once a mutated message
    // was delivered, only panics and invariants are checked, not agreement.
    let mut forged = false;
    while !b.done() && steps < 2_000 {
        steps += 1;
        let op = b.u8();
        let who = usize::from(b.u8() % 3);
        match op % 8 {
            0 => nodes[who].tick(),
            1 => {
                let _ = nodes[who].propose(vec![b.u8()]);
            }
            2 | 3 if !net.is_empty() => {
                let i = usize::from(b.u8()) % net.len();
                let m = net.remove(i);
                let to = m.to as usize - 1;
                let _ = nodes[to].step(m);
            }
            4 if !net.is_empty() => {
                let i = usize::from(b.u8()) % net.len();
                net.remove(i);
            }
            5 if !net.is_empty() => {
                let i = usize::from(b.u8()) % net.len();
                let dup = net[i].clone();
                net.push(dup);
            }
            6 if !net.is_empty() => {
                // A near-valid mutation: one field nudged. May be refused; must not panic
                // or corrupt anything.
                let i = usize::from(b.u8()) % net.len();
                let mut m = net[i].clone();
                let delta = u64::from(b.u8() % 3);
                match b.u8() % 4 {
                    0 => m.term += delta,
                    1 => m.index = m.index.saturating_add(delta),
                    2 => m.commit = m.commit.saturating_add(delta),
                    _ => m.log_term = m.log_term.saturating_sub(delta),
                }
                let to = m.to as usize - 1;
                forged |= nodes[to].step(m).is_ok();
            }
            _ => {
                let _ = nodes[who].campaign();
            }
        }
        for (i, n) in nodes.iter_mut().enumerate() {
            net.extend(drain(n, &mut applied[i]));
            n.check_invariants();
            if n.role() == Role::Leader && !forged {
                let prev = leaders.insert(n.term(), n.id());
                assert!(
                    prev.is_none_or(|p| p == n.id()),
                    "two leaders in term {}",
                    n.term()
                );
            }
        }
        if net.len() > 256 {
            net.drain(..128);
        }
    }
    if forged {
        return;
    }
    for i in 0..3 {
        for j in 0..3 {
            let common = applied[i].len().min(applied[j].len());
            assert_eq!(
                applied[i][..common],
                applied[j][..common],
                "state machine safety"
            );
        }
    }
}

/// Target 3: a sequence of membership changes against the changer.
pub fn conf_change_sequence(data: &[u8]) {
    let mut b = Bytes { data, pos: 0 };
    let mut cs = ConfState::with_voters(vec![1, 2, 3]);
    let kinds = [
        ConfChangeType::AddNode,
        ConfChangeType::AddLearnerNode,
        ConfChangeType::RemoveNode,
        ConfChangeType::UpdateNode,
    ];
    let transitions = [
        ConfChangeTransition::Auto,
        ConfChangeTransition::JointImplicit,
        ConfChangeTransition::JointExplicit,
    ];
    while !b.done() {
        let n = usize::from(b.u8() % 4);
        let changes = (0..n)
            .map(|_| ConfChangeSingle::new(kinds[usize::from(b.u8() % 4)], u64::from(b.u8() % 8)))
            .collect();
        let cc = ConfChangeV2::new(transitions[usize::from(b.u8() % 3)], changes);
        if let Ok(next) = confchange::apply(&cs, &cc) {
            assert!(
                crate::raft::conf_state_is_valid(&next),
                "changer produced {next:?}"
            );
            for list in [
                &next.voters,
                &next.learners,
                &next.voters_outgoing,
                &next.learners_next,
            ] {
                assert!(
                    list.windows(2).all(|w| w[0] < w[1]),
                    "lists ascending and unique"
                );
            }
            cs = next;
        }
    }
}

/// Target 4: storage operations against a `Vec` model.
pub fn log_operations(data: &[u8]) {
    let mut b = Bytes { data, pos: 0 };
    let mut st = MemStorage::new();
    // The model: the terms of indexes base+1..; base index and term.
    let mut model: Vec<u64> = Vec::new();
    let (mut base, mut base_term) = (0u64, 0u64);
    while !b.done() {
        let last = base + model.len() as u64;
        match b.u8() % 4 {
            0 | 1 => {
                // Append with truncation: from an index in [base+1, last+1].
                let from = base + 1 + u64::from(b.u8()) % (last - base + 1);
                let n = u64::from(b.u8() % 5) + 1;
                let term0 = if from > base + 1 {
                    model[(from - base - 2) as usize]
                } else {
                    base_term
                };
                let term = term0 + u64::from(b.u8() % 2);
                let ents: Vec<Entry> = (0..n)
                    .map(|k| Entry::normal(from + k, term, vec![1]))
                    .collect();
                st.append(&ents).expect("append connects");
                model.truncate((from - base - 1) as usize);
                model.extend(std::iter::repeat_n(term, n as usize));
            }
            2 if last > base => {
                let to = base + 1 + u64::from(b.u8()) % (last - base);
                st.compact(to).expect("compact within the log");
                base_term = model[(to - base - 1) as usize];
                model.drain(..(to - base) as usize);
                base = to;
            }
            _ => {
                let r = st.append(&[Entry::normal(last + 2, base_term + 9, vec![])]);
                assert!(r.is_err(), "a gap is refused");
            }
        }
        assert_eq!(st.first_index(), Ok(base + 1));
        assert_eq!(st.last_index(), Ok(base + model.len() as u64));
        assert_eq!(st.term(base), Ok(base_term));
        for (k, t) in model.iter().enumerate() {
            assert_eq!(st.term(base + 1 + k as u64), Ok(*t));
        }
    }
}
