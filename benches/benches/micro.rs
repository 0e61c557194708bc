//! Micro benchmarks, side by side where both libraries have the operation:
//!
//! - `committed_index/<lib>/<n>`: the leader's committed index from the match indexes of `n`
//!   voters (3, 5, 7), as computed on every append acknowledgement. raft-core:
//!   `ProgressTracker::committed`; raft-rs: `ProgressTracker::maximal_committed_index` (its
//!   `MajorityConfig::committed_index` takes a trait it does not export). `raft-core quorum`
//!   adds raft-core's pure `quorum::MajorityConfig::committed_index` over a lookup by id.
//! - `follower_step_append`: a follower of a three-node group steps one append with one
//!   128-byte entry at its next index (committing the previous one), persists it to memory,
//!   applies the committed entry and produces its response.
//! - `leader_status`: `status()` on the leader of a three-node group, and raft-core's
//!   `status_into`, which refills a kept `Status` without allocating. raft-rs's `Status`
//!   borrows the leader's progress tracker instead of copying it; `raft-rs copy` also copies
//!   the per-peer fields raft-core's `Status` holds into a `Vec`, for a like-for-like figure.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use raft::ProgressState;
use raft_benches::ours::{self, CoreFollower};
use raft_benches::rraft::{self, RaftRsFollower};
use raft_benches::{PAYLOAD_LEN, committed_of, matched_of};
use raft_core::quorum::MajorityConfig;

fn committed_index(c: &mut Criterion) {
    let mut group = c.benchmark_group("committed_index");
    for voters in [3u64, 5, 7] {
        let expected = committed_of(voters);

        let prs = ours::tracker_with_voters(voters);
        group.bench_with_input(BenchmarkId::new("raft-core", voters), &voters, |b, _| {
            b.iter(|| black_box(&prs).committed())
        });
        assert_eq!(prs.committed(), expected);

        let config = MajorityConfig::new(1..=voters);
        let matched: Vec<u64> = (1..=voters).map(|id| matched_of(id, voters)).collect();
        group.bench_with_input(
            BenchmarkId::new("raft-core quorum", voters),
            &voters,
            |b, _| {
                b.iter(|| {
                    let matched = black_box(&matched);
                    black_box(&config).committed_index(|id| matched.get(id as usize - 1).copied())
                })
            },
        );

        let mut raft = rraft::raft_with_voters(voters);
        group.bench_with_input(BenchmarkId::new("raft-rs", voters), &voters, |b, _| {
            b.iter(|| black_box(&mut raft).mut_prs().maximal_committed_index().0)
        });
        assert_eq!(raft.mut_prs().maximal_committed_index().0, expected);
    }
    group.finish();
}

fn follower_step_append(c: &mut Criterion) {
    let payload = [0xA5u8; PAYLOAD_LEN];
    let mut group = c.benchmark_group("follower_step_append");

    let mut rc = CoreFollower::new();
    group.bench_function("raft-core", |b| {
        b.iter(|| rc.step_one_append(black_box(&payload)))
    });
    black_box(rc.applied_count());

    let mut rr = RaftRsFollower::new();
    group.bench_function("raft-rs", |b| {
        b.iter(|| rr.step_one_append(black_box(&payload)))
    });
    black_box(rr.applied_count());

    group.finish();
}

fn leader_status(c: &mut Criterion) {
    let mut group = c.benchmark_group("leader_status");

    let rc = ours::leader_of_three();
    group.bench_function("raft-core", |b| b.iter(|| black_box(&rc).status()));
    let mut reused = rc.status();
    group.bench_function("raft-core status_into", |b| {
        b.iter(|| {
            black_box(&rc).status_into(&mut reused);
            black_box(reused.progress.len())
        })
    });

    let rr = rraft::leader_of_three();
    group.bench_function("raft-rs", |b| b.iter(|| black_box(&rr).status()));
    group.bench_function("raft-rs copy", |b| {
        b.iter(|| {
            let leader = black_box(&rr);
            let s = leader.status();
            let peers: Vec<(u64, u64, u64, ProgressState, bool, usize, bool)> = s
                .progress
                .map(|prs| {
                    prs.iter()
                        .map(|(&id, pr)| {
                            (
                                id,
                                pr.matched,
                                pr.next_idx,
                                pr.state,
                                pr.is_paused(),
                                pr.ins.count(),
                                pr.recent_active,
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (s.hs, s.applied, leader.raft.raft_log.last_index(), peers)
        })
    });

    group.finish();
}

criterion_group!(
    benches,
    committed_index,
    follower_step_append,
    leader_status
);
criterion_main!(benches);
