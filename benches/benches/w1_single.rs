//! W1: one node that is already leader; one round = propose one 128-byte entry, then run the
//! ready loop (persist to in-memory storage, commit, apply) until that entry is applied.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use raft_benches::ours::CoreSingle;
use raft_benches::rraft::RaftRsSingle;

const PAYLOAD_LEN: usize = 128;

fn w1_single_node(c: &mut Criterion) {
    let payload = [0xA5u8; PAYLOAD_LEN];
    let mut group = c.benchmark_group("w1_single_node");
    group.throughput(Throughput::Elements(1));

    let mut rc = CoreSingle::new();
    group.bench_function("raft-core", |b| {
        b.iter(|| rc.propose_commit_apply_one(black_box(&payload)))
    });
    assert_eq!(rc.applied_bytes(), rc.applied_count() * PAYLOAD_LEN as u64);

    let mut rr = RaftRsSingle::new();
    group.bench_function("raft-rs", |b| {
        b.iter(|| rr.propose_commit_apply_one(black_box(&payload)))
    });
    assert_eq!(rr.applied_bytes(), rr.applied_count() * PAYLOAD_LEN as u64);
    black_box(rr.applied_count());

    group.finish();
}

criterion_group!(benches, w1_single_node);
criterion_main!(benches);
