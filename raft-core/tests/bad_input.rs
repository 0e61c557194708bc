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

/// A number for one field of a message: one of the extremes of `u64`, the value an honest
/// peer would send in that field, or near a number of the node under test. The honest and
/// near values let a message get past the checks of its other fields, so that its one or
/// two extreme fields reach the arithmetic behind those checks.
#[derive(Clone, Copy, Debug)]
enum Num {
    /// 0, 1, `u64::MAX / 2 ± 1`, `u64::MAX - k` for `k` in 0..3.
    Edge(u64),
    /// What an honest peer would put in this field (see [`ExtremeMsg::realize`]).
    Honest,
    /// The node's term, plus a small delta.
    Term(i8),
    /// The node's last index, plus a small delta.
    Last(i8),
}

impl Arbitrary for Num {
    fn arbitrary(g: &mut Gen) -> Num {
        const EDGES: [u64; 8] = [
            0,
            1,
            u64::MAX / 2 - 1,
            u64::MAX / 2,
            u64::MAX / 2 + 1,
            u64::MAX - 2,
            u64::MAX - 1,
            u64::MAX,
        ];
        match u8::arbitrary(g) % 8 {
            0 | 1 => Num::Edge(*g.choose(&EDGES).expect("non-empty")),
            2..=5 => Num::Honest,
            6 => Num::Term(i8::arbitrary(g) % 2),
            _ => Num::Last(i8::arbitrary(g) % 3),
        }
    }
}

impl Num {
    fn realize(self, node: &Node, honest: u64) -> u64 {
        match self {
            Num::Edge(v) => v,
            Num::Honest => honest,
            Num::Term(d) => add(node.term(), d),
            Num::Last(d) => add(node.status().last_index, d),
        }
    }
}

/// A message whose numeric fields are drawn from [`Num`].
#[derive(Clone, Debug)]
struct ExtremeMsg {
    kind: i32,
    from: u64,
    term: Num,
    log_term: Num,
    index: Num,
    commit: Num,
    reject: bool,
    reject_hint: Num,
    read_round: Num,
    /// Per entry: its index (`None`: the next after the previous one, wrapping past
    /// `u64::MAX` as a hostile sender's would) and its term.
    entries: Vec<(Option<Num>, Num)>,
    /// A snapshot's index and term.
    snapshot: Option<(Num, Num)>,
}

impl Arbitrary for ExtremeMsg {
    fn arbitrary(g: &mut Gen) -> ExtremeMsg {
        let kinds = [2, 3, 3, 4, 5, 6, 7, 7, 8, 9, 13, 14, 15, 16, 17, 18];
        let kind = *g.choose(&kinds).expect("non-empty");
        // A snapshot mostly where it belongs, so that its numbers rarely get others refused.
        let with_snapshot = u8::arbitrary(g) % 8 < if kind == 7 { 7 } else { 1 };
        ExtremeMsg {
            kind,
            from: *g.choose(&[2, 3]).expect("non-empty"),
            term: Num::arbitrary(g),
            log_term: Num::arbitrary(g),
            index: Num::arbitrary(g),
            commit: Num::arbitrary(g),
            reject: bool::arbitrary(g),
            reject_hint: Num::arbitrary(g),
            read_round: Num::arbitrary(g),
            entries: (0..usize::arbitrary(g) % 4)
                .map(|_| {
                    let index = (u8::arbitrary(g) % 4 == 0).then(|| Num::arbitrary(g));
                    (index, Num::arbitrary(g))
                })
                .collect(),
            snapshot: with_snapshot.then(|| (Num::arbitrary(g), Num::arbitrary(g))),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = ExtremeMsg>> {
        let mut fewer = self.clone();
        fewer.entries.pop();
        let mut no_snapshot = self.clone();
        no_snapshot.snapshot = None;
        let smaller = [fewer, no_snapshot];
        let unchanged = (self.entries.len(), self.snapshot.is_some());
        Box::new(
            smaller
                .into_iter()
                .filter(move |m| (m.entries.len(), m.snapshot.is_some()) != unchanged),
        )
    }
}

impl ExtremeMsg {
    /// The honest values: the node's term; its last index, with the term there; its commit
    /// index; entries that follow in the message's term; a snapshot a few entries ahead.
    fn realize(&self, node: &Node) -> Message {
        let st = node.status();
        let term = self.term.realize(node, st.term);
        let index = self.index.realize(node, st.last_index);
        let log_term = self
            .log_term
            .realize(node, node.log_term(index).unwrap_or(0));
        let mut prev = index;
        let entries = self
            .entries
            .iter()
            .map(|(i, t)| {
                prev = i.map_or(prev.wrapping_add(1), |i| i.realize(node, prev));
                Entry::normal(prev, t.realize(node, term), vec![7])
            })
            .collect();
        let snapshot = self.snapshot.map(|(i, t)| {
            Box::new(raft_core::Snapshot {
                data: Default::default(),
                metadata: Some(raft_core::wire::SnapshotMetadata {
                    conf_state: Some(ConfState::with_voters(vec![1, 2, 3])),
                    index: i.realize(node, st.last_index.saturating_add(5)),
                    term: t.realize(node, term),
                }),
            })
        });
        Message {
            msg_type: self.kind,
            to: node.id(),
            from: self.from,
            term,
            log_term,
            index,
            commit: self.commit.realize(node, st.commit),
            entries,
            snapshot,
            reject: self.reject,
            reject_hint: self.reject_hint.realize(node, st.last_index),
            read_round: self.read_round.realize(node, 1),
            ..Message::default()
        }
    }
}

#[derive(Clone, Debug)]
struct ExtremeCase {
    role: Role,
    msgs: Vec<ExtremeMsg>,
}

impl Arbitrary for ExtremeCase {
    fn arbitrary(g: &mut Gen) -> ExtremeCase {
        let roles = [
            Role::Follower,
            Role::PreCandidate,
            Role::Candidate,
            Role::Leader,
        ];
        ExtremeCase {
            role: *g.choose(&roles).expect("non-empty"),
            msgs: (0..usize::arbitrary(g) % 6 + 1)
                .map(|_| ExtremeMsg::arbitrary(g))
                .collect(),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = ExtremeCase>> {
        let role = self.role;
        Box::new(
            self.msgs
                .shrink()
                .filter(|m| !m.is_empty())
                .map(move |msgs| ExtremeCase { role, msgs }),
        )
    }
}

/// Steps messages with extreme numbers into a node in `case.role`. A refusal must leave the
/// node exactly as it was; an accepted message must leave a node that keeps working: its
/// invariants hold, and it goes on ticking (elections and heartbeats add to its term and
/// indexes) and running its Ready loop without a panic.
fn extreme_numbers_are_refused_or_handled(case: ExtremeCase) -> bool {
    let mut nodes = cluster_with(case.role);
    let node = &mut nodes[0];
    for raw in &case.msgs {
        let m = raw.realize(node);
        let before = fingerprint(node);
        let kind = MessageType::try_from(m.msg_type).ok();
        if let Err(e) = node.step(m) {
            assert_eq!(
                before,
                fingerprint(node),
                "refused {kind:?} ({e}) changed the node"
            );
        }
        node.check_invariants();
        let _ = drain(node);
        node.check_invariants();
    }
    // Two election timeouts at most (the default timeout is 10 ticks, randomized up to 20):
    // a follower campaigns, a leader sends heartbeats and appends.
    for _ in 0..40 {
        node.tick();
        let _ = drain(node);
        node.check_invariants();
    }
    let _ = node.propose(vec![1]);
    let _ = drain(node);
    node.check_invariants();
    true
}

#[test]
fn messages_with_extreme_numbers_are_refused_unchanged_or_handled_without_overflow() {
    QuickCheck::new()
        .tests(2000)
        .quickcheck(extreme_numbers_are_refused_or_handled as fn(ExtremeCase) -> bool);
}

/// Issue 19: the fuzzer's `MsgApp` whose `index` is near `u64::MAX` (the committed
/// `regression-append-index-overflow`, a role byte then the message) panicked the node with
/// "attempt to add with overflow" while it was being validated (`m.index + 1 + i`). It is now
/// refused as malformed and changes nothing, on a node in every role.
#[test]
fn append_with_index_near_u64_max_is_refused_and_changes_nothing() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/corpus/decode_and_step/regression-append-index-overflow"
    );
    let bytes = std::fs::read(path).expect("the regression file is committed");
    let m = Message::decode_from(&bytes[1..]).expect("the input decodes");
    assert_eq!(m.msg_type, MessageType::MsgApp as i32);
    assert!(m.index > u64::MAX - 1000, "index {}", m.index);
    for role in [
        Role::Follower,
        Role::PreCandidate,
        Role::Candidate,
        Role::Leader,
    ] {
        let mut nodes = cluster_with(role);
        let node = &mut nodes[0];
        let mut m = m.clone();
        m.to = node.id();
        m.from = 2;
        let before = fingerprint(node);
        let err = node.step(m).expect_err("refused");
        assert!(
            matches!(
                err,
                raft_core::StepError::Malformed {
                    fault: raft_core::Fault::NumberTooLarge { .. },
                    ..
                }
            ),
            "{role:?}: {err}"
        );
        assert_eq!(before, fingerprint(node), "{role:?}: the node changed");
        node.check_invariants();
    }
}

/// A term or a snapshot index at `u64::MAX` would be accepted and then overflow the node's
/// own arithmetic (the next campaign's `term + 1`, the restored log's `last_index + 1`): such
/// numbers are refused up front, unchanged.
#[test]
fn term_or_snapshot_index_at_u64_max_is_refused_and_changes_nothing() {
    let mut nodes = cluster_with(Role::Follower);
    let node = &mut nodes[0];
    let st = node.status();
    let heartbeat = Message {
        msg_type: MessageType::MsgHeartbeat as i32,
        to: 1,
        from: 2,
        term: u64::MAX,
        ..Message::default()
    };
    let snapshot = Message {
        msg_type: MessageType::MsgSnap as i32,
        to: 1,
        from: 2,
        term: st.term,
        snapshot: Some(Box::new(raft_core::Snapshot {
            data: Default::default(),
            metadata: Some(raft_core::wire::SnapshotMetadata {
                conf_state: Some(ConfState::with_voters(vec![1, 2, 3])),
                index: u64::MAX,
                term: st.term,
            }),
        })),
        ..Message::default()
    };
    for m in [heartbeat, snapshot] {
        let before = fingerprint(node);
        let err = node.step(m).expect_err("refused");
        assert!(
            matches!(
                err,
                raft_core::StepError::Malformed {
                    fault: raft_core::Fault::NumberTooLarge {
                        value: u64::MAX,
                        ..
                    },
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(before, fingerprint(node));
    }
    // Still a working member: it campaigns and wins.
    node.campaign().expect("voter");
    let _ = drain(node);
    node.check_invariants();
}
