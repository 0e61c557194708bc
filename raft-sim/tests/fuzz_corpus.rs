//! Runs the `simulation` fuzz target body over its committed corpus
//! (`fuzz/corpus/simulation/`), so the inputs the fuzzer found interesting — and every crash it
//! found, once fixed, kept as `regression-<name>` — are replayed on stable in every test run.
//! (raft-core's targets are replayed by `raft-core/tests/fuzz_corpus.rs`.)

use std::path::Path;

/// Runs `body` over the files of the `target` corpus whose position in name order is
/// `shard` modulo `shards`: the corpus is split over several tests so that they run in
/// parallel.
fn run_corpus(target: &str, shard: usize, shards: usize, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the {target} corpus is empty");
    for f in files.iter().skip(shard).step_by(shards) {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
        // Shown only if the test fails: the last file named is the failing input.
        println!("{}", f.display());
        body(&data);
    }
}

#[test]
fn simulation_corpus_shard_0_of_2() {
    run_corpus("simulation", 0, 2, raft_sim::fuzzing::simulation);
}

#[test]
fn simulation_corpus_shard_1_of_2() {
    run_corpus("simulation", 1, 2, raft_sim::fuzzing::simulation);
}

/// Replays one named regression input of the `simulation` corpus and returns its report.
fn replay_regression(name: &str) -> raft_sim::RunReport {
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus/simulation")
        .join(name);
    let data = std::fs::read(&f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
    let r = raft_sim::fuzzing::simulate(&data, &raft_sim::Settings::default());
    assert!(
        r.violation.is_none(),
        "{}",
        raft_sim::fuzzing::failure_text(&r, &data)
    );
    r
}

/// Postmortem: the first input the `simulation` target found failed liveness with a connected
/// core and a leader: the clients were still waiting after 10 s. (This input, found again once
/// byte mode stopped reading timer seeds from the input, tells the same story with other node
/// numbers.) The liveness phase cut off n4, whose leader hint still named n3, the leader of
/// term 2; a membership change then removed n3 and stopped it for good. A client at n4
/// followed the hint to n3, which did not answer; after the timeout the next node round the
/// ring after n3 was n4, which named n3 again, so the client bounced between the two and never
/// reached the leader n2. The simulated client now remembers the nodes a hint led it to in vain
/// (`Client::dead_ends`) and goes round the ring instead of following a hint back to one. A
/// harness bug, not a raft-core one: a cut-off node's hint is stale by nature.
#[test]
fn regression_stale_hint_ping_pong() {
    let r = replay_regression("regression-stale-hint-ping-pong");
    assert!(r.agents.nodes_retired > 0, "the run still removes nodes");
}

/// Postmortem: the same bounce without a removal: the liveness phase cut off both the leader
/// of term 2, n7, and n8, which still named n7. n7 knew no leader and the next node round the
/// ring after it is n8, so a client went n8 → n7 → n8 → ... some 550 times in 10 s. Fixed by
/// the same `Client::dead_ends`. Seeded runs can meet this too (a random search found it in
/// about one run in 3,000 of the fuzz target's short runs).
#[test]
fn regression_stale_hint_cut_off_leader() {
    replay_regression("regression-stale-hint-cut-off-leader");
}

/// Postmortem: raft-core panicked in `stable_to(3/25)`: "the unstable snapshot at 23 not
/// durable". A follower persisted a snapshot at 23 (batch #12), then entries 24..=26 in term 2
/// (#13, #14); before any of them was fsynced, a new leader overwrote entry 25 (#15), which set
/// `overwrite_seq` to 15. When #12 became durable, `on_persisted` skipped its snapshot along
/// with its entries because 12 < `overwrite_seq`, so the snapshot stayed unstable for good,
/// and #15's completion found a durable entry behind a snapshot that was not. The guard exists
/// for entries (an id alone cannot tell an overwritten write from its rewrite); a snapshot's
/// index names its write, since no node restores a second snapshot at an index it already
/// committed. raft-core now marks the snapshot stable whatever `overwrite_seq` says; its own
/// regression is the interaction script
/// `a_snapshot_written_before_an_overwrite_still_becomes_stable`.
#[test]
fn regression_snapshot_then_overwrite() {
    let r = replay_regression("regression-snapshot-then-overwrite");
    assert!(
        r.agents.snapshots_applied > 0,
        "the run still restores snapshots"
    );
}

/// Postmortem: a 5-node run without pre-vote failed liveness: the core {n2, n4, n5} was still
/// electing after 50 election timeouts, n2 and n4 campaigning in step term after term and n5
/// too far behind to win. The input had given n2, n3 and n4 one election-timer seed (the words
/// `c8c8c8c8c8c8c8c8`), so with no clock drift they timed out together every round and split
/// every vote. Raft's liveness rests on independent randomized timeouts, so this is no bug; in
/// byte mode, seeds of other generators now come from the fallback ChaCha stream
/// (`SimRng::next_seed`), never from the input. Seeded runs draw the same words as before.
/// (Those words now feed later draws, so this input only shows it passes; the mechanism is
/// pinned by `rng::tests::byte_mode_seeds_come_from_the_fallback_stream`.)
#[test]
fn regression_equal_timer_seeds() {
    let r = replay_regression("regression-equal-timer-seeds");
    assert!(r.faults.crashes > 0, "the run still crashes nodes");
}

/// Postmortem: a run with membership changes failed liveness: the core {n1, n4} stayed
/// pre-candidates for 50 election timeouts. The leader n3 had committed and applied the exit
/// from the joint configuration (1 3 4)&&(2 3 4), so n2, removed, was scheduled to stop; n1
/// and n4 had not learned that the exit committed and still counted votes in the joint
/// configuration. The liveness phase then left out n3, counting n2 as staying, which held the
/// outgoing half's quorum with n4; once n2 stopped, no quorum of (2 3 4) was left and no
/// leader could ever be elected. Not a raft-core bug (a node uses a configuration once it
/// applies it, as in etcd): the liveness phase no longer counts a node whose retirement is
/// scheduled among those that stay (`World::choose_out`).
#[test]
fn regression_retiring_node_counted_as_staying() {
    let r = replay_regression("regression-retiring-node-counted-as-staying");
    assert!(
        r.agents.joint_changes_proposed > 0,
        "the run still uses joint changes"
    );
}
