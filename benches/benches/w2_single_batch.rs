//! W2: one node that is already leader; one round = propose 64 entries of 128 bytes, then run
//! the ready loop (persist to in-memory storage, commit, apply) until all 64 are applied.
//! Throughput is per entry.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use raft_benches::ours::CoreSingle;
use raft_benches::rraft::RaftRsSingle;
use raft_benches::{BATCH_LARGE, PAYLOAD_LEN};

fn w2_single_node_batch(c: &mut Criterion) {
    let payload = [0xA5u8; PAYLOAD_LEN];
    let mut group = c.benchmark_group("w2_single_node_batch64");
    group.throughput(Throughput::Elements(BATCH_LARGE as u64));

    let mut rc = CoreSingle::new();
    group.bench_function("raft-core", |b| {
        b.iter(|| rc.propose_commit_apply_batch(black_box(&payload), black_box(BATCH_LARGE)))
    });
    assert_eq!(rc.applied_bytes(), rc.applied_count() * PAYLOAD_LEN as u64);
    assert_eq!(rc.applied_count() % BATCH_LARGE as u64, 0);

    let mut rr = RaftRsSingle::new();
    group.bench_function("raft-rs", |b| {
        b.iter(|| rr.propose_commit_apply_batch(black_box(&payload), black_box(BATCH_LARGE)))
    });
    assert_eq!(rr.applied_bytes(), rr.applied_count() * PAYLOAD_LEN as u64);
    assert_eq!(rr.applied_count() % BATCH_LARGE as u64, 0);

    group.finish();
}

criterion_group!(benches, w2_single_node_batch);
criterion_main!(benches);
