//! An in-memory cluster driven through the Ready contract: elects a leader, replicates
//! proposals and checks that every node applied the same entries.
//!
//! `cargo run --release -p raft-core --example cluster -- [nodes] [entries]`

use raft_core::{Config, MemStorage, Message, RawNode, Ready, Role};
use std::collections::VecDeque;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let nodes: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3);
    let entries: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    if !(1..=9).contains(&nodes) {
        return Err("nodes must be between 1 and 9".into());
    }
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let voters: Vec<u64> = (1..=nodes).collect();
    let mut cluster = Vec::new();
    for id in 1..=nodes {
        let storage =
            MemStorage::new_with_conf_state(raft_core::ConfState::with_voters(voters.clone()));
        cluster.push(RawNode::new(&Config::new(id), storage, &logger)?);
    }
    let mut applied = vec![Vec::<u64>::new(); nodes as usize];
    let mut net: VecDeque<Message> = VecDeque::new();
    let mut ticks = 0u64;
    let mut proposed = 0u64;
    while applied.iter().any(|a| (a.len() as u64) < entries) {
        let leader = cluster.iter().position(|n| n.role() == Role::Leader);
        match leader {
            None => {
                for n in &mut cluster {
                    n.tick();
                }
                ticks += 1;
            }
            Some(l) if proposed < entries => {
                for _ in 0..64.min(entries - proposed) {
                    let data = proposed.to_le_bytes().to_vec();
                    if cluster[l].propose(data).is_ok() {
                        proposed += 1;
                    }
                }
            }
            Some(_) => {}
        }
        for (i, n) in cluster.iter_mut().enumerate() {
            while n.has_ready() {
                let Ready {
                    messages,
                    persist,
                    apply,
                    read_states: _,
                } = n.ready();
                net.extend(messages);
                if let Some(batch) = persist {
                    n.storage_mut().persist(&batch)?;
                    n.on_persisted(batch.durable());
                }
                if let Some(batch) = apply {
                    for e in &batch.entries {
                        if e.data.len() == 8 {
                            let v = u64::from_le_bytes(e.data[..].try_into()?);
                            applied[i].push(v);
                        }
                    }
                    n.on_applied(batch.applied());
                }
            }
        }
        while let Some(m) = net.pop_front() {
            let to = m.to as usize - 1;
            cluster[to].step(m)?;
        }
    }
    let leader = cluster
        .iter()
        .find(|n| n.role() == Role::Leader)
        .map(|n| n.id());
    for (i, a) in applied.iter().enumerate() {
        assert_eq!(
            a,
            &applied[0],
            "node {} applied a different sequence",
            i + 1
        );
    }
    println!(
        "nodes={nodes} leader={leader:?} election_ticks={ticks} entries_applied_per_node={} \
         term={} commit={}",
        applied[0].len(),
        cluster[0].term(),
        cluster[0].commit()
    );
    Ok(())
}
