//! Round trips through the WAL: what `Durable` writes, `Durable::open` rebuilds exactly —
//! overwrites (truncation), installed snapshots, hard states, segment rolls, appends after a
//! restart, and bootstrap.

mod wal_common;

use raft_core::{ConfState, MemStorage, Storage};
use raft_example::disk::Durable;
use wal_common::*;

fn batches() -> Vec<Batch> {
    vec![
        Batch {
            hs: Some(hs(1, 1, 0)),
            ..Batch::default()
        },
        Batch {
            ents: ents(1, 5, 1),
            hs: Some(hs(1, 1, 3)),
            ..Batch::default()
        },
        // A new leader overwrites 4 and 5 and goes on.
        Batch {
            ents: ents(4, 7, 2),
            hs: Some(hs(2, 2, 3)),
            ..Batch::default()
        },
        // A commit-only hard state.
        Batch {
            hs: Some(hs(2, 2, 6)),
            ..Batch::default()
        },
        // A snapshot from the leader replaces the log; entries follow it.
        Batch {
            snap: Some(snapshot(20, 3, "state at 20")),
            ents: ents(21, 23, 3),
            hs: Some(hs(3, 0, 21)),
        },
        // Overwrite right after the snapshot.
        Batch {
            ents: ents(22, 24, 4),
            hs: Some(hs(4, 0, 22)),
            ..Batch::default()
        },
    ]
}

#[test]
fn a_fresh_directory_has_no_state() {
    let t = tempfile::tempdir().unwrap();
    let (_d, r) = Durable::open(t.path(), opts(1 << 20)).unwrap();
    assert!(r.is_none());
    // Opening again (an empty first segment exists now) is still fresh.
    let (_d, r) = Durable::open(t.path(), opts(1 << 20)).unwrap();
    assert!(r.is_none());
}

#[test]
fn batches_round_trip_with_overwrite_and_snapshot() {
    let t = tempfile::tempdir().unwrap();
    let bs = batches();
    {
        let (mut d, r) = Durable::open(t.path(), opts(1 << 20)).unwrap();
        assert!(r.is_none());
        for b in &bs {
            write(&mut d, b);
            d.sync().unwrap();
        }
    }
    for k in 0..2 {
        let (_d, r) = reopen(t.path(), opts(1 << 20));
        let want = model_after(&bs, bs.len());
        assert_same(&r.storage, &want);
        assert_eq!(r.storage.first_index().unwrap(), 21, "reopen {k}");
        assert_eq!(r.storage.last_index().unwrap(), 24);
        assert_eq!(r.storage.term(22).unwrap(), 4);
        let snap = r.snapshot.expect("snapshot recovered");
        assert_eq!((snap.index(), snap.term()), (20, 3));
        assert_eq!(&snap.data[..], b"state at 20");
        assert_eq!(r.storage.hard_state(), hs(4, 0, 22));
        assert!(r.report.repaired.is_none());
        assert!(r.report.to_string().contains("snapshot index 20 term 3"));
    }
}

#[test]
fn every_prefix_of_batches_round_trips() {
    let bs = batches();
    for k in 1..=bs.len() {
        let t = tempfile::tempdir().unwrap();
        let (mut d, _) = Durable::open(t.path(), opts(1 << 20)).unwrap();
        for b in &bs[..k] {
            write(&mut d, b);
        }
        d.sync().unwrap();
        drop(d);
        let (_d, r) = reopen(t.path(), opts(1 << 20));
        assert_same(&r.storage, &model_after(&bs, k));
    }
}

#[test]
fn segments_roll_and_recovery_reads_across_them() {
    let t = tempfile::tempdir().unwrap();
    let mut all = vec![Batch {
        hs: Some(hs(1, 1, 0)),
        ..Batch::default()
    }];
    for i in 0..60u64 {
        all.push(Batch {
            ents: ents(i * 3 + 1, i * 3 + 3, 1),
            hs: (i % 7 == 0).then(|| hs(1, 1, i * 3)),
            ..Batch::default()
        });
    }
    {
        let (mut d, _) = Durable::open(t.path(), opts(512)).unwrap();
        for b in &all {
            write(&mut d, b);
            d.sync().unwrap();
        }
    }
    let segs = segments(t.path());
    assert!(
        segs.len() > 10,
        "expected many segments, got {}",
        segs.len()
    );
    // Names encode consecutive sequence numbers and increasing first indexes.
    let parsed: Vec<(u64, u64)> = segs
        .iter()
        .map(|p| {
            raft_example::wal::parse_segment_name(&p.file_name().unwrap().to_string_lossy())
                .unwrap()
        })
        .collect();
    for (k, w) in parsed.windows(2).enumerate() {
        assert_eq!(w[1].0, w[0].0 + 1, "segment {k}");
        assert!(w[1].1 >= w[0].1);
    }
    assert_eq!(parsed[0], (1, 1));
    let (mut d, r) = reopen(t.path(), opts(512));
    assert_same(&r.storage, &model_after(&all, all.len()));
    assert_eq!(r.report.segments, segs.len());
    // Appending after recovery continues the chain; a second restart sees it all.
    let more = Batch {
        ents: ents(181, 190, 2),
        hs: Some(hs(2, 0, 185)),
        ..Batch::default()
    };
    write(&mut d, &more);
    d.sync().unwrap();
    drop(d);
    all.push(more);
    let (_d, r) = reopen(t.path(), opts(512));
    assert_same(&r.storage, &model_after(&all, all.len()));
    assert_eq!(r.storage.last_index().unwrap(), 190);
}

#[test]
fn bootstrap_recovers_the_founding_storage() {
    let t = tempfile::tempdir().unwrap();
    let cs = ConfState::with_voters([1, 2, 3]);
    let founding = MemStorage::new_with_conf_state(cs.clone());
    {
        let (mut d, r) = Durable::open(t.path(), opts(1 << 20)).unwrap();
        assert!(r.is_none());
        d.bootstrap(&founding.snapshot(0, 0).unwrap()).unwrap();
        // A second bootstrap is refused: the member has state now.
        assert!(d.bootstrap(&founding.snapshot(0, 0).unwrap()).is_err());
    }
    let (mut d, r) = reopen(t.path(), opts(1 << 20));
    assert_same(&r.storage, &founding);
    assert_eq!(r.storage.conf_state(), &cs);
    assert!(d.bootstrap(&founding.snapshot(0, 0).unwrap()).is_err());
}

#[test]
fn unsynced_writes_of_a_live_process_are_read_back() {
    // Without fsync the data is still in the page cache: a restart after a clean exit (or a
    // kill -9) reads it. Durability across power loss is the SYNCED test's business.
    let t = tempfile::tempdir().unwrap();
    let bs = batches();
    {
        let (mut d, _) = Durable::open(t.path(), opts(300)).unwrap();
        for b in &bs {
            write(&mut d, b);
        }
    }
    let (_d, r) = reopen(t.path(), opts(300));
    assert_same(&r.storage, &model_after(&bs, bs.len()));
}

#[test]
fn a_raft_nodes_persist_batches_round_trip_and_it_restarts_on_them() {
    use raft_core::{Config, RawNode};
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let t = tempfile::tempdir().unwrap();
    let founding = MemStorage::new_with_conf_state(ConfState::with_voters(vec![1]));
    let (mut d, r) = Durable::open(t.path(), opts(2048)).unwrap();
    assert!(r.is_none());
    d.bootstrap(&founding.snapshot(0, 0).unwrap()).unwrap();
    let mut node = RawNode::new(&Config::new(1), founding, &logger).unwrap();
    node.campaign().unwrap();
    let (mut proposed, mut batches, mut syncs) = (0, 0, 0);
    for _ in 0..10_000 {
        if node.leader() == Some(1) && proposed < 300 {
            node.propose(format!("value {proposed}").into_bytes())
                .unwrap();
            proposed += 1;
        }
        let rd = node.ready();
        if let Some(b) = rd.persist {
            d.write(&b).unwrap();
            if b.sync {
                d.sync().unwrap();
                syncs += 1;
            }
            batches += 1;
            node.storage_mut().persist(&b).unwrap();
            node.on_persisted(b.durable());
        }
        if let Some(a) = rd.apply {
            node.on_applied(a.applied());
        }
        if proposed == 300 && !node.has_ready() {
            break;
        }
    }
    assert_eq!(proposed, 300);
    assert!(
        batches > 100 && syncs > 100,
        "{batches} batches, {syncs} syncs"
    );
    assert!(d.segments().len() > 5, "the log spans segments");
    // Local snapshots at 150 and 250, each followed by compaction. The WAL is kept from the
    // previous snapshot on (so a damaged newest one can fall back): the first compaction
    // keeps it from the founding snapshot (1), the second from 150.
    let before = d.segments().len();
    let mut snap = None;
    for at in [150, 250] {
        // One voter throughout: the configuration at `at` is the current one.
        let conf = node.conf_state();
        let s = node
            .storage_mut()
            .create_snapshot(
                at,
                conf,
                format!("state machine at {at}").into_bytes().into(),
            )
            .unwrap();
        d.snapshot_dir().save(&s).unwrap();
        node.storage_mut().compact(at).unwrap();
        d.compact_to(s.metadata.as_ref().unwrap()).unwrap();
        snap = Some(s);
    }
    let snap = snap.unwrap();
    assert!(d.segments().len() < before, "segments below 150 removed");
    let files: Vec<u64> = d
        .snapshot_dir()
        .list()
        .unwrap()
        .iter()
        .map(|f| f.index)
        .collect();
    assert_eq!(files, vec![150, 250]);
    drop(d);
    let (_d, r) = reopen(t.path(), opts(2048));
    assert_same(&r.storage, node.storage());
    assert_eq!(r.snapshot.unwrap(), snap);
    // The node restarts on what was recovered.
    let mut cfg = Config::new(1);
    cfg.applied = 250;
    let restarted = RawNode::new(&cfg, r.storage, &logger).unwrap();
    assert_eq!(restarted.last_index(), node.last_index());
    assert_eq!(restarted.term(), node.term());
}
