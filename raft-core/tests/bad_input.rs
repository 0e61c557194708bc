//! Remote input never panics a node, and input it refuses changes nothing.
//!
//! A quickcheck property builds a three-node cluster, drives it so that the node under test
//! is a follower, a pre-candidate, a candidate or the leader, then steps sequences of random
//! and near-valid messages into it (kinds, senders, terms, indexes, entries and commit
//! indexes drawn around the node's real state). After every step the node's invariants must
//! hold, and a step that returns an error must leave its observable state exactly as it was.

use quickcheck::{Arbitrary, Gen, QuickCheck};
use raft_core::{
    ConfState, Config, Entry, MemStorage, Message, MessageType, RawNode, Ready, Role, Status,
};

type Node = RawNode<MemStorage>;

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

fn new_node(id: u64, pre_vote: bool) -> Node {
    let mut cfg = Config::new(id);
    cfg.pre_vote = pre_vote;
    cfg.check_quorum = pre_vote;
    let storage = MemStorage::new_with_conf_state(ConfState::with_voters(vec![1, 2, 3]));
    RawNode::new(&cfg, storage, &logger()).expect("valid config")
}

/// Runs every Ready of `node` to completion; returns the messages it sent.
fn drain(node: &mut Node) -> Vec<Message> {
    let mut out = Vec::new();
    while node.has_ready() {
        let Ready {
            messages,
            persist,
            apply,
            read_states: _,
        } = node.ready();
        out.extend(messages);
        if let Some(b) = persist {
            node.storage_mut().persist(&b).expect("in-memory write");
            node.on_persisted(b.durable());
        }
        if let Some(b) = apply {
            node.on_applied(b.applied());
        }
    }
    out
}

/// Delivers messages until the cluster is quiet.
fn stabilize(nodes: &mut [Node]) {
    for _ in 0..100 {
        let mut msgs = Vec::new();
        for n in nodes.iter_mut() {
            msgs.extend(drain(n));
        }
        if msgs.is_empty() {
            return;
        }
        for m in msgs {
            let to = m.to as usize - 1;
            nodes[to].step(m).expect("honest traffic is accepted");
        }
    }
    panic!("cluster did not quiesce");
}

/// A cluster whose node 1 plays `role`, with a few entries committed.
fn cluster_with(role: Role) -> Vec<Node> {
    let pre_vote = role == Role::PreCandidate;
    let mut nodes: Vec<Node> = (1..=3).map(|id| new_node(id, pre_vote)).collect();
    nodes[1].campaign().expect("node 2 can campaign");
    stabilize(&mut nodes);
    assert_eq!(nodes[1].role(), Role::Leader);
    for i in 0..5u8 {
        nodes[1].propose(vec![i; 3]).expect("leader accepts");
    }
    stabilize(&mut nodes);
    match role {
        Role::Follower => {}
        Role::Leader => {
            nodes[0].campaign().expect("node 1 can campaign");
            stabilize(&mut nodes);
            assert_eq!(nodes[0].role(), Role::Leader);
            nodes[0].propose(vec![9]).expect("leader accepts");
            stabilize(&mut nodes);
        }
        Role::Candidate | Role::PreCandidate => {
            nodes[0].campaign().expect("node 1 can campaign");
            let _ = drain(&mut nodes[0]);
            assert_eq!(nodes[0].role(), role);
        }
    }
    nodes
}

#[derive(Clone, Debug)]
struct Fuzz {
    role: Role,
    msgs: Vec<RawMsg>,
}

#[derive(Clone, Debug)]
struct RawMsg {
    kind: i32,
    from: u64,
    to_self: bool,
    term_delta: i8,
    index_delta: i8,
    log_term_delta: i8,
    commit_delta: i8,
    entries: Vec<(i8, i8)>,
    entry_type: i32,
    reject: bool,
    hint: u8,
}

impl Arbitrary for RawMsg {
    fn arbitrary(g: &mut Gen) -> RawMsg {
        let kinds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 18, 99, -1];
        RawMsg {
            kind: *g.choose(&kinds).expect("non-empty"),
            from: *g.choose(&[0, 1, 2, 3, 4, 7]).expect("non-empty"),
            to_self: *g.choose(&[true, true, true, false]).expect("non-empty"),
            term_delta: i8::arbitrary(g) % 3,
            index_delta: i8::arbitrary(g) % 4,
            log_term_delta: i8::arbitrary(g) % 3,
            commit_delta: i8::arbitrary(g) % 4,
            entries: (0..usize::arbitrary(g) % 4)
                .map(|_| (i8::arbitrary(g) % 2, i8::arbitrary(g) % 2))
                .collect(),
            entry_type: *g.choose(&[0, 0, 0, 1, 2, 7]).expect("non-empty"),
            reject: bool::arbitrary(g),
            hint: u8::arbitrary(g) % 10,
        }
    }
}

impl Arbitrary for Fuzz {
    fn arbitrary(g: &mut Gen) -> Fuzz {
        let roles = [
            Role::Follower,
            Role::PreCandidate,
            Role::Candidate,
            Role::Leader,
        ];
        let n = usize::arbitrary(g) % 40 + 1;
        Fuzz {
            role: *g.choose(&roles).expect("non-empty"),
            msgs: (0..n).map(|_| RawMsg::arbitrary(g)).collect(),
        }
    }
}

fn add(base: u64, delta: i8) -> u64 {
    base.saturating_add_signed(i64::from(delta))
}

/// Builds a message near the node's real state from the drawn deltas.
fn realize(raw: &RawMsg, node: &Node) -> Message {
    let st = node.status();
    let index = add(st.last_index, raw.index_delta);
    let term = add(st.term, raw.term_delta);
    let mut prev_term = node.log_term(index).unwrap_or(0);
    prev_term = add(prev_term, raw.log_term_delta);
    let mut entries = Vec::new();
    let mut idx = index;
    let mut t = prev_term;
    for (di, dt) in &raw.entries {
        idx = add(idx + 1, *di);
        t = add(t, *dt);
        let mut e = Entry::normal(idx, t, vec![1, 2]);
        e.entry_type = raw.entry_type;
        entries.push(e);
    }
    Message {
        msg_type: raw.kind,
        to: if raw.to_self { node.id() } else { 3 },
        from: raw.from,
        term,
        log_term: prev_term,
        index,
        commit: add(st.commit.max(index), raw.commit_delta),
        entries,
        reject: raw.reject,
        reject_hint: add(st.last_index, -(raw.hint as i8)),
        ..Message::default()
    }
}

type Fingerprint = (
    Status,
    raft_core::HardState,
    raft_core::EntryId,
    usize,
    bool,
);

fn fingerprint(n: &Node) -> Fingerprint {
    (
        n.status(),
        n.hard_state(),
        n.last_entry_id(),
        n.held_messages(),
        n.has_ready(),
    )
}

fn refused_input_changes_nothing_and_nothing_panics(f: Fuzz) -> bool {
    let mut nodes = cluster_with(f.role);
    let node = &mut nodes[0];
    for raw in &f.msgs {
        let m = realize(raw, node);
        let before = fingerprint(node);
        let kind = MessageType::try_from(m.msg_type).ok();
        match node.step(m) {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(
                    before,
                    fingerprint(node),
                    "refused {kind:?} ({e}) changed the node"
                );
            }
        }
        node.check_invariants();
        if raw.hint % 3 == 0 {
            let _ = drain(node);
            node.check_invariants();
        }
    }
    true
}

#[test]
fn random_and_near_valid_messages_never_panic_and_refusals_change_nothing() {
    QuickCheck::new()
        .tests(1000)
        .quickcheck(refused_input_changes_nothing_and_nothing_panics as fn(Fuzz) -> bool);
}

#[test]
fn garbage_bytes_decode_to_an_error_or_a_message_that_steps_safely() {
    fn prop(bytes: Vec<u8>) -> bool {
        let mut nodes = cluster_with(Role::Follower);
        if let Ok(m) = Message::decode_from(&bytes) {
            let before = fingerprint(&nodes[0]);
            if nodes[0].step(m).is_err() {
                assert_eq!(before, fingerprint(&nodes[0]));
            }
            nodes[0].check_invariants();
        }
        true
    }
    QuickCheck::new()
        .tests(300)
        .quickcheck(prop as fn(Vec<u8>) -> bool);
}
