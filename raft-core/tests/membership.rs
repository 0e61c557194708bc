//! Membership changes end to end on an in-memory cluster: a learner joins through a
//! snapshot and is promoted, a change is refused while another is pending, an invalid change
//! is refused with an error, the leader is removed and steps down, and a node is replaced
//! through a joint configuration that the leader leaves by itself.

use raft_core::{
    ConfChange, ConfChangeError, ConfChangeSingle, ConfChangeTransition, ConfChangeType,
    ConfChangeV2, ConfState, Config, MemStorage, Message, RawNode, Ready, Role,
};
use std::collections::BTreeMap;

type Node = RawNode<MemStorage>;

struct Cluster {
    nodes: BTreeMap<u64, Node>,
    applied: BTreeMap<u64, Vec<u64>>,
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

fn cfg(id: u64) -> Config {
    let mut c = Config::new(id);
    c.pre_vote = false;
    c.check_quorum = false;
    c
}

impl Cluster {
    fn new(voters: &[u64]) -> Cluster {
        let mut nodes = BTreeMap::new();
        for &id in voters {
            let st = MemStorage::new_with_conf_state(ConfState::with_voters(voters.to_vec()));
            nodes.insert(id, RawNode::new(&cfg(id), st, &logger()).expect("valid"));
        }
        Cluster {
            nodes,
            applied: BTreeMap::new(),
        }
    }

    fn join(&mut self, id: u64) {
        let node = RawNode::new(&cfg(id), MemStorage::new(), &logger()).expect("valid");
        self.nodes.insert(id, node);
    }

    fn stabilize(&mut self) {
        for _ in 0..200 {
            let mut msgs: Vec<Message> = Vec::new();
            for (id, n) in self.nodes.iter_mut() {
                while n.has_ready() {
                    let Ready {
                        messages,
                        persist,
                        apply,
                        read_states: _,
                    } = n.ready();
                    msgs.extend(messages);
                    if let Some(b) = persist {
                        n.storage_mut().persist(&b).expect("write");
                        n.on_persisted(b.durable());
                    }
                    if let Some(b) = apply {
                        if let Some(cs) = &b.conf_state {
                            n.storage_mut().set_conf_state(cs.clone());
                        }
                        let log = self.applied.entry(*id).or_default();
                        log.extend(
                            b.entries
                                .iter()
                                .filter(|e| !e.data.is_empty())
                                .map(|e| e.index),
                        );
                        n.on_applied(b.applied());
                    }
                    n.check_invariants();
                }
            }
            if msgs.is_empty() {
                return;
            }
            for m in msgs {
                if let Some(n) = self.nodes.get_mut(&m.to) {
                    // A removed node's late responses are stale, not malformed.
                    if let Err(e) = n.step(m) {
                        assert!(e.is_stale(), "honest traffic refused: {e}");
                    }
                }
            }
        }
        panic!("cluster did not quiesce");
    }

    fn elect(&mut self, id: u64) {
        self.nodes
            .get_mut(&id)
            .expect("node")
            .campaign()
            .expect("can campaign");
        self.stabilize();
        assert_eq!(self.nodes[&id].role(), Role::Leader);
    }

    fn leader(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&id).expect("node")
    }
}

fn single(kind: ConfChangeType, id: u64) -> ConfChange {
    ConfChange {
        change_type: kind as i32,
        node_id: id,
        ..ConfChange::default()
    }
}

#[test]
fn a_learner_joins_by_snapshot_and_is_promoted_to_voter() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.leader(1).propose(b"a".to_vec()).expect("leader");
    c.stabilize();
    c.join(4);
    c.leader(1)
        .propose_conf_change(single(ConfChangeType::AddLearnerNode, 4))
        .expect("valid");
    c.stabilize();
    let cs = c.nodes[&4].conf_state();
    assert_eq!(
        (cs.voters, cs.learners),
        (vec![1, 2, 3], vec![4]),
        "the joiner learned the config"
    );
    assert_eq!(
        c.nodes[&4].commit(),
        c.nodes[&1].commit(),
        "the learner has the whole log"
    );
    assert_eq!(
        c.nodes.get_mut(&4).expect("node").campaign(),
        Err(raft_core::CampaignError::NotVoter)
    );
    c.leader(1)
        .propose_conf_change(single(ConfChangeType::AddNode, 4))
        .expect("valid");
    c.stabilize();
    for n in c.nodes.values() {
        assert_eq!(
            n.conf_state().voters,
            vec![1, 2, 3, 4],
            "node {} sees the promotion",
            n.id()
        );
    }
    c.leader(1).propose(b"b".to_vec()).expect("leader");
    c.stabilize();
    assert_eq!(c.applied[&4].last(), c.applied[&1].last());
}

#[test]
fn a_second_change_is_refused_while_one_is_pending_and_invalid_ones_are_errors() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.leader(1)
        .propose_conf_change(single(ConfChangeType::AddLearnerNode, 4))
        .expect("valid");
    let second = c
        .leader(1)
        .propose_conf_change(single(ConfChangeType::AddLearnerNode, 5));
    assert!(
        matches!(second, Err(ConfChangeError::Pending { .. })),
        "{second:?}"
    );
    c.stabilize();
    let two_voters = ConfChangeV2::new(
        ConfChangeTransition::Auto,
        vec![ConfChangeSingle::new(ConfChangeType::AddNode, 5)],
    );
    let mut bad = two_voters.clone();
    bad.changes
        .push(ConfChangeSingle::new(ConfChangeType::AddNode, 0));
    assert!(matches!(
        c.leader(1).propose_conf_change(bad),
        Err(ConfChangeError::Invalid(_))
    ));
    let leave = c.leader(1).propose_conf_change(ConfChangeV2::leave_joint());
    assert!(
        matches!(leave, Err(ConfChangeError::Invalid(_))),
        "not joint: {leave:?}"
    );
    let last = c.nodes[&1].last_index();
    c.stabilize();
    assert_eq!(
        c.nodes[&1].last_index(),
        last,
        "refused changes appended nothing"
    );
    let follower = c
        .nodes
        .get_mut(&2)
        .expect("node")
        .propose_conf_change(two_voters);
    assert_eq!(
        follower,
        Err(ConfChangeError::NotLeader {
            leader_hint: Some(1)
        })
    );
}

#[test]
fn a_removed_leader_steps_down_and_the_rest_elect_a_new_one() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.leader(1)
        .propose_conf_change(single(ConfChangeType::RemoveNode, 1))
        .expect("valid");
    c.stabilize();
    assert_ne!(
        c.nodes[&1].role(),
        Role::Leader,
        "removed leader stepped down"
    );
    assert_eq!(c.nodes[&2].conf_state().voters, vec![2, 3]);
    c.nodes.remove(&1);
    c.elect(2);
    c.leader(2).propose(b"after".to_vec()).expect("leader");
    c.stabilize();
    assert_eq!(c.nodes[&3].commit(), c.nodes[&2].commit());
}

#[test]
fn a_node_is_replaced_through_a_joint_configuration_left_automatically() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.join(4);
    let replace = ConfChangeV2::new(
        ConfChangeTransition::Auto,
        vec![
            ConfChangeSingle::new(ConfChangeType::AddNode, 4),
            ConfChangeSingle::new(ConfChangeType::RemoveNode, 3),
        ],
    );
    c.leader(1).propose_conf_change(replace).expect("valid");
    c.stabilize();
    for id in [1, 2, 4] {
        let cs = c.nodes[&id].conf_state();
        assert_eq!(cs.voters, vec![1, 2, 4], "node {id}");
        assert!(
            cs.voters_outgoing.is_empty(),
            "node {id} left the joint configuration"
        );
    }
}
