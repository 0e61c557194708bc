//! W3: three nodes in one thread, messages delivered in memory; 100,000 entries of 128 bytes,
//! one entry proposed per round, each round run until applied on all three nodes. One
//! iteration is the whole 100k run (including building the group and electing node 1).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use raft_benches::ours::{PayloadAlloc, core_three_nodes};
use raft_benches::rraft::raft_rs_three_nodes;

const ENTRIES: u64 = 100_000;
const PAYLOAD_LEN: usize = 128;
const BATCH: usize = 1;

fn w3_three_nodes(c: &mut Criterion) {
    let mut group = c.benchmark_group("w3_three_nodes_100k");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ENTRIES));

    group.bench_function("raft-core", |b| {
        b.iter(|| {
            let applied = core_three_nodes(
                black_box(ENTRIES),
                black_box(PAYLOAD_LEN),
                black_box(BATCH),
                PayloadAlloc::Arena,
            );
            assert_eq!(applied, ENTRIES);
            applied
        })
    });

    group.bench_function("raft-rs", |b| {
        b.iter(|| {
            let applied =
                raft_rs_three_nodes(black_box(ENTRIES), black_box(PAYLOAD_LEN), black_box(BATCH));
            assert_eq!(applied, ENTRIES);
            applied
        })
    });

    group.finish();
}

criterion_group!(benches, w3_three_nodes);
criterion_main!(benches);
