//! W4: three nodes in one thread, messages delivered in memory; 100,000 entries of 128 bytes,
//! 64 entries proposed per round, each round run until applied on all three nodes. One
//! iteration is the whole 100k run (including building the group and electing node 1).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use raft_benches::ours::{PayloadAlloc, core_three_nodes};
use raft_benches::rraft::raft_rs_three_nodes;
use raft_benches::{BATCH_LARGE, ENTRIES_THREE_NODES, PAYLOAD_LEN};

fn w4_three_nodes_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("w4_three_nodes_100k_batch64");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ENTRIES_THREE_NODES));

    group.bench_function("raft-core", |b| {
        b.iter(|| {
            let applied = core_three_nodes(
                black_box(ENTRIES_THREE_NODES),
                black_box(PAYLOAD_LEN),
                black_box(BATCH_LARGE),
                PayloadAlloc::Arena,
            );
            assert_eq!(applied, ENTRIES_THREE_NODES);
            applied
        })
    });

    group.bench_function("raft-rs", |b| {
        b.iter(|| {
            let applied = raft_rs_three_nodes(
                black_box(ENTRIES_THREE_NODES),
                black_box(PAYLOAD_LEN),
                black_box(BATCH_LARGE),
            );
            assert_eq!(applied, ENTRIES_THREE_NODES);
            applied
        })
    });

    group.finish();
}

criterion_group!(benches, w4_three_nodes_batch);
criterion_main!(benches);
