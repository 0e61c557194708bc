//! W5: W4 with pipelined persistence: every write is reported durable at the end of the 4th
//! round counting the one it was handed out in, so each node has 4 writes outstanding while
//! the leader proposes the next 64 entries (raft-core: `on_persisted` late; raft-rs:
//! `advance_append_async`, then `on_persist_ready` late). The exact protocol is in the
//! `raft_benches` crate docs. One iteration is the whole 100k run.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use raft_benches::ours::{PayloadAlloc, core_three_nodes_pipelined};
use raft_benches::rraft::raft_rs_three_nodes_pipelined;
use raft_benches::{BATCH_LARGE, ENTRIES_THREE_NODES, PAYLOAD_LEN, PERSIST_LATENCY_ROUNDS};

fn w5_three_nodes_pipelined(c: &mut Criterion) {
    let mut group = c.benchmark_group("w5_three_nodes_100k_batch64_pipelined");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ENTRIES_THREE_NODES));

    group.bench_function("raft-core", |b| {
        b.iter(|| {
            let stats = core_three_nodes_pipelined(
                black_box(ENTRIES_THREE_NODES),
                black_box(PAYLOAD_LEN),
                black_box(BATCH_LARGE),
                black_box(PERSIST_LATENCY_ROUNDS),
                PayloadAlloc::Arena,
            );
            assert_eq!(stats.applied_min, ENTRIES_THREE_NODES);
            stats
        })
    });

    group.bench_function("raft-rs", |b| {
        b.iter(|| {
            let stats = raft_rs_three_nodes_pipelined(
                black_box(ENTRIES_THREE_NODES),
                black_box(PAYLOAD_LEN),
                black_box(BATCH_LARGE),
                black_box(PERSIST_LATENCY_ROUNDS),
            );
            assert_eq!(stats.applied_min, ENTRIES_THREE_NODES);
            stats
        })
    });

    group.finish();
}

criterion_group!(benches, w5_three_nodes_pipelined);
criterion_main!(benches);
