//! Fault hooks: an injected full disk stops the WAL without losing anything acknowledged, and
//! the SYNCED report lets a test cut the WAL back to its last fsync (power loss).

mod wal_common;

use raft_example::disk::{DiskError, DiskOptions, Durable};
use raft_example::wal::WalError;
use wal_common::*;

fn single_record_batches(n: u64) -> Vec<Batch> {
    let mut v = vec![Batch {
        hs: Some(hs(1, 1, 0)),
        ..Batch::default()
    }];
    for i in 0..n {
        v.push(Batch {
            ents: ents(i * 2 + 1, i * 2 + 2, 1),
            ..Batch::default()
        });
    }
    v
}

#[test]
fn an_injected_full_disk_fails_the_write_and_loses_nothing_acknowledged() {
    for limit in [900u64, 1_234, 2_000, 3_333] {
        let t = tempfile::tempdir().unwrap();
        let bs = single_record_batches(100);
        let o = DiskOptions {
            segment_bytes: 700,
            fail_after_bytes: Some(limit),
            report_synced: false,
        };
        let (mut d, _) = Durable::open(t.path(), o).unwrap();
        let mut acked = 0;
        let mut failure = None;
        for b in &bs {
            let r = d
                .write_parts(b.hs.as_ref(), b.snap.as_ref(), &b.ents)
                .and_then(|()| d.sync());
            match r {
                Ok(()) => acked += 1,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let err = failure.expect("the disk fills up");
        assert!(
            matches!(err, DiskError::Wal(WalError::InjectedNoSpace { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("no space left"), "{err}");
        // Fail-stop: nothing more is accepted, not even a sync.
        assert!(matches!(
            d.sync(),
            Err(DiskError::Wal(WalError::Failed { .. }))
        ));
        let b = &bs[acked];
        assert!(d.write_parts(b.hs.as_ref(), None, &b.ents).is_err());
        drop(d);
        let (_d, r) = reopen(t.path(), opts(700));
        assert_same(&r.storage, &model_after(&bs, acked));
        assert!(
            acked > 3 && acked < bs.len(),
            "limit {limit}: {acked} acked"
        );
    }
}

#[test]
fn cutting_the_wal_back_to_the_synced_report_keeps_every_synced_batch() {
    let t = tempfile::tempdir().unwrap();
    let bs = single_record_batches(80);
    let o = DiskOptions {
        segment_bytes: 600,
        fail_after_bytes: None,
        report_synced: true,
    };
    let (mut d, _) = Durable::open(t.path(), o).unwrap();
    let mut acked = 0;
    for (k, b) in bs.iter().enumerate() {
        write(&mut d, b);
        if k % 5 == 4 && k < 60 {
            d.sync().unwrap();
            acked = k + 1;
        }
    }
    drop(d); // "kill -9": the unsynced tail is still in the page cache here.
    let report = std::fs::read_to_string(t.path().join("wal").join("SYNCED")).unwrap();
    let (name, off) = report.trim().split_once(' ').unwrap();
    let off: u64 = off.parse().unwrap();
    // Power loss: everything after the synced offset is gone.
    let segs = segments(t.path());
    let k = segs
        .iter()
        .position(|p| p.file_name().unwrap().to_string_lossy() == name)
        .expect("SYNCED names a segment");
    assert!(
        k + 1 < segs.len(),
        "later segments exist (unsynced writes rolled)"
    );
    truncate(&segs[k], off);
    for p in &segs[k + 1..] {
        std::fs::remove_file(p).unwrap();
    }
    let (_d, r) = reopen(t.path(), opts(600));
    let j = (acked..=bs.len())
        .find(|&j| same(&r.storage, &model_after(&bs, j)))
        .unwrap_or_else(|| {
            panic!("recovered state is not a prefix with the {acked} synced batches")
        });
    assert!(j < bs.len(), "the unsynced tail was cut");
}

/// A small tmpfs on a temp directory, unmounted on drop; `None` where this process may not
/// mount (then the injected-failure test above stands alone).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_really_full_disk_fails_the_write_and_loses_nothing_acknowledged() {
    // 256 KiB: less than one preallocation chunk of the default options, so preallocation
    // gives up at once and the records themselves hit ENOSPC.
    let Some(fs) = Tmpfs::mount(256 << 10) else {
        eprintln!("cannot mount a tmpfs here: skipped (the injected failure is tested above)");
        return;
    };
    let dir = fs.dir.path().join("member");
    let bs: Vec<Batch> = (0..2000u64)
        .map(|i| Batch {
            ents: vec![raft_core::Entry::normal(i + 1, 1, vec![b'v'; 1000])],
            ..Batch::default()
        })
        .collect();
    let (mut d, r) = Durable::open(&dir, DiskOptions::default()).unwrap();
    assert!(r.is_none());
    let mut acked = 0;
    let mut failure = None;
    for b in &bs {
        match d.write_parts(None, None, &b.ents).and_then(|()| d.sync()) {
            Ok(()) => acked += 1,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let err = failure.expect("the disk fills up").to_string();
    assert!(
        err.contains("No space left") || err.contains("os error 28"),
        "{err}"
    );
    assert!(acked > 50, "{acked} batches fit");
    drop(d);
    // Recover from a copy on a disk with room (a repair needs space for the .broken copy).
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&dir, copy.path());
    let (_d, r) = reopen(copy.path(), opts(64 << 20));
    assert_same(&r.storage, &model_after(&bs, acked));
}
