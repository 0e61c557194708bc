//! Determinism (DESIGN §4): a node's behaviour is a function of its configuration, its seed
//! and its inputs. Two runs of one scripted three-node scenario with the same seed hand out
//! identical Ready sequences, byte for byte in their `Debug` form; a different seed draws
//! different election timeouts, so elections start at other ticks.
//!
//! The scenario uses the default configuration (pre-vote and check-quorum on) and only
//! ticks to start elections, so the randomized timeouts decide who campaigns when: an
//! election from cold, proposals, then the leader cut off for a while (its followers time
//! out and elect another leader; it steps down by check-quorum) and healed.

use raft_core::{ConfState, Config, MemStorage, Message, RawNode, Ready, Role};

const NODES: u64 = 3;
const TICKS: u64 = 400;

/// What one run produced: every Ready as `node@tick: {:?}`, and the ticks at which nodes
/// started a (pre-)campaign.
struct Trace {
    readies: Vec<String>,
    campaigns: Vec<(u64, u64, Role, u64)>,
}

fn run(seed: u64) -> Trace {
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let voters: Vec<u64> = (1..=NODES).collect();
    let mut nodes: Vec<RawNode<MemStorage>> = voters
        .iter()
        .map(|&id| {
            let mut cfg = Config::new(id);
            cfg.seed = Some(seed.wrapping_mul(1_000_003).wrapping_add(id));
            let storage = MemStorage::new_with_conf_state(ConfState::with_voters(voters.clone()));
            RawNode::new(&cfg, storage, &logger).expect("valid config and empty storage")
        })
        .collect();
    let mut trace = Trace {
        readies: Vec::new(),
        campaigns: Vec::new(),
    };
    let mut net: Vec<Message> = Vec::new();
    let mut isolated: Option<u64> = None;
    let mut proposed = 0u32;
    for tick in 0..TICKS {
        // The script: propose while there is a leader, cut the leader off at tick 150 and
        // heal at tick 300.
        let leader = nodes
            .iter()
            .find(|n| n.role() == Role::Leader)
            .map(|n| n.id());
        if tick == 150 {
            isolated = leader;
        }
        if tick == 300 {
            isolated = None;
        }
        if let Some(l) = leader
            && tick % 10 == 0
            && proposed < 20
            && nodes[index(l)]
                .propose(format!("v{proposed}").into_bytes())
                .is_ok()
        {
            proposed += 1;
        }
        for n in &mut nodes {
            let before = (n.role(), n.term());
            n.tick();
            let after = (n.role(), n.term());
            if after != before && matches!(after.0, Role::PreCandidate | Role::Candidate) {
                trace.campaigns.push((tick, n.id(), after.0, after.1));
            }
        }
        // Drive every node to quiescence through the Ready contract.
        for _ in 0..20 {
            for n in &mut nodes {
                while n.has_ready() {
                    let Ready {
                        messages,
                        persist,
                        apply,
                        read_states,
                    } = n.ready();
                    trace.readies.push(format!(
                        "{}@{tick}: {messages:?} {persist:?} {apply:?} {read_states:?}",
                        n.id()
                    ));
                    net.extend(messages);
                    if let Some(batch) = persist {
                        n.storage_mut()
                            .persist(&batch)
                            .expect("batches are written in order");
                        n.on_persisted(batch.durable());
                    }
                    if let Some(batch) = apply {
                        n.on_applied(batch.applied());
                    }
                }
            }
            if net.is_empty() {
                break;
            }
            for m in std::mem::take(&mut net) {
                if isolated.is_some_and(|i| i == m.from || i == m.to) {
                    continue;
                }
                let to = index(m.to);
                let before = (nodes[to].role(), nodes[to].term());
                nodes[to].step(m).expect("peers send well-formed messages");
                let after = (nodes[to].role(), nodes[to].term());
                if after != before && matches!(after.0, Role::PreCandidate | Role::Candidate) {
                    trace
                        .campaigns
                        .push((tick, nodes[to].id(), after.0, after.1));
                }
            }
        }
        for n in &nodes {
            n.check_invariants();
        }
    }
    trace
}

/// Position of node `id` in the cluster vector.
fn index(id: u64) -> usize {
    usize::try_from(id - 1).expect("node ids are small")
}

#[test]
fn same_seed_and_inputs_give_identical_ready_sequences() {
    let a = run(7);
    let b = run(7);
    assert!(
        a.campaigns.len() >= 2,
        "the scenario elects at least twice (from cold and after the cut): {:?}",
        a.campaigns
    );
    assert_eq!(a.campaigns, b.campaigns);
    assert_eq!(a.readies.len(), b.readies.len());
    for (k, (ra, rb)) in a.readies.iter().zip(&b.readies).enumerate() {
        assert_eq!(ra, rb, "Ready {k} differs between two runs of seed 7");
    }
}

#[test]
fn a_different_seed_draws_different_election_timing() {
    let a = run(7);
    let b = run(8);
    assert_ne!(
        a.campaigns, b.campaigns,
        "seeds 7 and 8 campaigned at the same ticks"
    );
}
