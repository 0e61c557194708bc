//! Compaction and snapshot files: `compact_to` removes what it should and recovery still
//! works; a damaged newest snapshot falls back to the previous one only when the WAL still
//! covers it, and is refused otherwise.

mod wal_common;

use raft_core::wire::SnapshotMetadata;
use raft_core::{MemStorage, Snapshot, Storage};
use raft_example::disk::{DiskError, Durable};
use raft_example::snapfile::SnapshotDir;
use wal_common::*;

fn meta(s: &Snapshot) -> SnapshotMetadata {
    s.metadata.clone().unwrap()
}

/// Entries 1..=60 (term 1) in batches of 3 with hard states, in small segments.
fn write_log(d: &mut Durable) {
    write(
        d,
        &Batch {
            hs: Some(hs(1, 1, 0)),
            ..Batch::default()
        },
    );
    for i in 0..20u64 {
        write(
            d,
            &Batch {
                ents: ents(i * 3 + 1, i * 3 + 3, 1),
                hs: Some(hs(1, 1, i * 3 + 3)),
                ..Batch::default()
            },
        );
        d.sync().unwrap();
    }
}

fn expected(snap: &Snapshot, last: u64, commit: u64) -> MemStorage {
    let mut m = MemStorage::new();
    m.apply_snapshot(snap.clone()).unwrap();
    m.append(&ents(snap.index() + 1, last, 1)).unwrap();
    m.set_hard_state(hs(1, 1, commit));
    m
}

fn snap_indexes(dir: &SnapshotDir) -> Vec<u64> {
    dir.list().unwrap().iter().map(|f| f.index).collect()
}

#[test]
fn compact_to_removes_old_snapshots_and_segments_and_recovery_still_works() {
    let t = tempfile::tempdir().unwrap();
    let (mut d, _) = Durable::open(t.path(), opts(256)).unwrap();
    write_log(&mut d);
    let before = segments(t.path()).len();
    let first = segments(t.path())[0].clone();
    assert!(before > 8, "{before} segments");
    let sd = d.snapshot_dir();
    let s20 = snapshot(20, 1, "kv at 20");
    let s40 = snapshot(40, 1, "kv at 40");
    let s50 = snapshot(50, 1, "kv at 50");
    sd.save(&s20).unwrap();
    d.compact_to(&meta(&s20)).unwrap();
    // The first snapshot has no predecessor: the WAL is kept whole until there is one.
    assert_eq!(segments(t.path())[0], first);
    sd.save(&s40).unwrap();
    d.compact_to(&meta(&s40)).unwrap();
    assert_eq!(snap_indexes(&sd), vec![20, 40]);
    // Now segments wholly at or below the previous snapshot (20) go.
    let after40 = segments(t.path());
    assert!(after40.len() < before);
    let firsts: Vec<u64> = after40
        .iter()
        .map(|p| {
            raft_example::wal::parse_segment_name(&p.file_name().unwrap().to_string_lossy())
                .unwrap()
                .1
        })
        .collect();
    assert!(firsts[0] <= 21, "entry 21 is still in the WAL");
    assert!(
        firsts[1] > 21,
        "the first segment kept is needed: {firsts:?}"
    );
    sd.save(&s50).unwrap();
    d.compact_to(&meta(&s50)).unwrap();
    assert_eq!(
        snap_indexes(&sd),
        vec![40, 50],
        "the oldest snapshot is removed"
    );
    // The WAL is kept from the previous snapshot (40) on.
    let segs = segments(t.path());
    let firsts: Vec<u64> = segs
        .iter()
        .map(|p| {
            raft_example::wal::parse_segment_name(&p.file_name().unwrap().to_string_lossy())
                .unwrap()
                .1
        })
        .collect();
    assert!(
        firsts[0] <= 41 && (firsts.len() == 1 || firsts[1] > 41),
        "{firsts:?}"
    );
    drop(d);
    let (mut d, r) = reopen(t.path(), opts(256));
    assert_same(&r.storage, &expected(&s50, 60, 60));
    assert_eq!(r.snapshot.unwrap(), s50);
    // Writing goes on after a compacted restart.
    write(
        &mut d,
        &Batch {
            ents: ents(61, 62, 1),
            hs: Some(hs(1, 1, 62)),
            ..Batch::default()
        },
    );
    d.sync().unwrap();
    drop(d);
    let (_d, r) = reopen(t.path(), opts(256));
    assert_same(&r.storage, &expected(&s50, 62, 62));
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_the_previous_one_the_wal_covers() {
    let t = tempfile::tempdir().unwrap();
    let (mut d, _) = Durable::open(t.path(), opts(256)).unwrap();
    write_log(&mut d);
    let sd = d.snapshot_dir();
    let s30 = snapshot(30, 1, "kv at 30");
    let s45 = snapshot(45, 1, "kv at 45");
    for s in [&s30, &s45] {
        let p = sd.save(s).unwrap();
        assert!(p.exists());
        d.compact_to(&meta(s)).unwrap();
    }
    drop(d);
    let newest = sd.list().unwrap().pop().unwrap();
    assert_eq!(newest.index, 45);
    flip(&newest.path, file_len(&newest.path) - 3);
    let (_d, r) = reopen(t.path(), opts(256));
    assert_same(&r.storage, &expected(&s30, 60, 60));
    assert!(
        r.report.to_string().contains("instead of the newest"),
        "{}",
        r.report
    );
    // A missing newest file falls back the same way.
    std::fs::remove_file(&newest.path).unwrap();
    let (_d, r) = reopen(t.path(), opts(256));
    assert_eq!(r.snapshot.unwrap(), s30);
}

#[test]
fn a_damaged_installed_snapshot_is_refused_since_the_wal_does_not_cover_an_older_one() {
    let t = tempfile::tempdir().unwrap();
    let (mut d, _) = Durable::open(t.path(), opts(256)).unwrap();
    write_log(&mut d);
    let sd = d.snapshot_dir();
    let s30 = snapshot(30, 1, "kv at 30");
    sd.save(&s30).unwrap();
    d.compact_to(&meta(&s30)).unwrap();
    // The leader sends a snapshot at 100: it replaces the log.
    let s100 = snapshot(100, 2, "kv at 100");
    d.write_parts(Some(&hs(2, 0, 100)), Some(&s100), &[])
        .unwrap();
    d.sync().unwrap();
    drop(d);
    let (_d, r) = reopen(t.path(), opts(256));
    assert_eq!(r.snapshot.clone().unwrap(), s100);
    assert_eq!(r.storage.first_index().unwrap(), 101);
    drop(_d);
    let f = sd.list().unwrap().pop().unwrap();
    assert_eq!(f.index, 100);
    flip(&f.path, 30);
    let err = Durable::open(t.path(), opts(256)).unwrap_err();
    assert!(matches!(err, DiskError::Recovery { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("no usable snapshot"), "{msg}");
    assert!(msg.contains("index 100 term 2"), "{msg}");
    assert!(msg.contains("does not hold every entry"), "{msg}");
    assert!(raft_example::disk::verify(t.path()).is_err());
}

#[test]
fn compact_to_an_unsaved_snapshot_is_refused_and_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (mut d, _) = Durable::open(t.path(), opts(256)).unwrap();
    write_log(&mut d);
    let segs = segments(t.path());
    let err = d.compact_to(&meta(&snapshot(30, 1, ""))).unwrap_err();
    assert!(matches!(err, DiskError::Misuse(_)), "{err}");
    assert_eq!(segments(t.path()), segs);
}

#[test]
fn a_snapshot_file_the_wal_never_recorded_is_ignored() {
    // Saved, then a crash before compact_to recorded it: the WAL still has every entry.
    let t = tempfile::tempdir().unwrap();
    let (mut d, _) = Durable::open(t.path(), opts(256)).unwrap();
    write_log(&mut d);
    d.snapshot_dir().save(&snapshot(50, 1, "kv at 50")).unwrap();
    drop(d);
    let (_d, r) = reopen(t.path(), opts(256));
    assert!(r.snapshot.is_none());
    assert_eq!(r.storage.first_index().unwrap(), 1);
    assert_eq!(r.storage.last_index().unwrap(), 60);
    assert!(r.report.to_string().contains("ignored"), "{}", r.report);
}

#[test]
fn snapshot_files_round_trip_and_damage_is_named() {
    let t = tempfile::tempdir().unwrap();
    let sd = SnapshotDir::new(t.path().join("snap"));
    sd.prepare().unwrap();
    let s = snapshot(7, 3, "some state");
    let p = sd.save(&s).unwrap();
    let f = sd.list().unwrap().pop().unwrap();
    assert_eq!(f.path, p);
    assert_eq!(sd.load(&f).unwrap(), s);
    // A temp file left by a crash is removed by prepare.
    std::fs::write(t.path().join("snap").join("x.snap.tmp"), b"junk").unwrap();
    sd.prepare().unwrap();
    assert!(!t.path().join("snap").join("x.snap.tmp").exists());
    let len = file_len(&p);
    for at in 0..len {
        let data = std::fs::read(&p).unwrap();
        let mut bad = data.clone();
        bad[at as usize] ^= 1;
        std::fs::write(&p, &bad).unwrap();
        let err = sd.load(&f).unwrap_err().to_string();
        assert!(err.contains(&*p.to_string_lossy()), "{err}");
        assert!(err.contains("offset"), "{err}");
        std::fs::write(&p, &data).unwrap();
    }
    for cut in 0..len {
        let data = std::fs::read(&p).unwrap();
        std::fs::write(&p, &data[..cut as usize]).unwrap();
        assert!(sd.load(&f).is_err(), "cut at {cut}");
        std::fs::write(&p, &data).unwrap();
    }
}

#[test]
fn two_threads_saving_the_same_snapshot_leave_one_complete_file() {
    let t = tempfile::tempdir().unwrap();
    let sd = SnapshotDir::new(t.path().join("snap"));
    sd.prepare().unwrap();
    let s = snapshot(9, 2, &"x".repeat(100_000));
    // Threads are the point here (clippy.toml bans them for the deterministic crates).
    std::thread::scope(|sc| {
        for _ in 0..2 {
            let (sd, s) = (sd.clone(), s.clone());
            sc.spawn(move || {
                for _ in 0..10 {
                    sd.save(&s).unwrap();
                }
            });
        }
    });
    let files = sd.list().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(sd.load(&files[0]).unwrap(), s);
    let names: Vec<_> = std::fs::read_dir(t.path().join("snap"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
}
