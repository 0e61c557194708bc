//! Damage to the WAL: what recovery repairs (a torn tail of the last segment) and what it
//! refuses (everything else), and that no damage makes it panic or return anything but a
//! prefix of what was written.

mod wal_common;

/// Large enough for one segment; small enough that its preallocated fill (as large as a
/// segment, up to 1 MiB) is cheap to copy hundreds of times.
const SEG: u64 = 64 << 10;

use std::path::Path;

use raft_core::{MemStorage, Storage};
use raft_example::disk::{DiskError, Durable};
use raft_example::wal::{self, SegmentFile};
use wal_common::*;

/// Single-record batches (entries only, or hard state only), so that every prefix of the
/// records is a prefix of the batches; with overwrites and an installed snapshot.
fn one_record_batches() -> Vec<Batch> {
    let mut v = vec![Batch {
        hs: Some(hs(1, 1, 0)),
        ..Batch::default()
    }];
    for i in 0..12u64 {
        v.push(Batch {
            ents: ents(i * 2 + 1, i * 2 + 2, 1),
            ..Batch::default()
        });
        if i % 4 == 3 {
            v.push(Batch {
                hs: Some(hs(1, 1, i * 2)),
                ..Batch::default()
            });
        }
    }
    // Overwrite the tail at a new term, then a snapshot that replaces the log.
    v.push(Batch {
        ents: ents(20, 26, 2),
        ..Batch::default()
    });
    v.push(Batch {
        hs: Some(hs(2, 0, 21)),
        ..Batch::default()
    });
    v.push(Batch {
        snap: Some(snapshot(40, 3, "state at 40")),
        ..Batch::default()
    });
    v.push(Batch {
        ents: ents(41, 44, 3),
        ..Batch::default()
    });
    v.push(Batch {
        hs: Some(hs(3, 2, 42)),
        ..Batch::default()
    });
    v
}

/// Writes the batches into one segment with a sync after each; returns the segment's path
/// and its length after each batch (`ends[k]` = length after batch k).
fn write_single_segment(dir: &Path, bs: &[Batch]) -> (std::path::PathBuf, Vec<u64>) {
    let (mut d, _) = Durable::open(dir, opts(SEG)).unwrap();
    let mut ends = Vec::new();
    for b in bs {
        write(&mut d, b);
        d.sync().unwrap();
        ends.push(d.wal_end().1);
    }
    drop(d);
    let segs = segments(dir);
    assert_eq!(segs.len(), 1);
    (segs[0].clone(), ends)
}

fn recovered_or_empty(dir: &Path) -> Result<MemStorage, DiskError> {
    let (_d, r) = Durable::open(dir, opts(SEG))?;
    Ok(r.map(|r| r.storage).unwrap_or_default())
}

fn records_of(seg: &Path) -> Vec<raft_example::wal::ReadRecord> {
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    let (seq, first_index) = wal::parse_segment_name(&name).unwrap();
    let f = SegmentFile {
        seq,
        first_index,
        path: seg.to_path_buf(),
    };
    wal::read_segment(&f, None, true).unwrap().records
}

#[test]
fn a_tail_cut_in_the_middle_of_the_last_record_is_repaired_and_copied_aside() {
    let t = tempfile::tempdir().unwrap();
    let bs = one_record_batches();
    let (seg, ends) = write_single_segment(t.path(), &bs);
    let n = bs.len();
    let cut = ends[n - 2] + (ends[n - 1] - ends[n - 2]) / 2 + 3;
    truncate(&seg, cut);
    let (mut d, r) = reopen(t.path(), opts(SEG));
    assert_same(&r.storage, &model_after(&bs, n - 1));
    let rep = r.report.repaired.clone().expect("a repair is reported");
    assert_eq!(rep.offset, ends[n - 2]);
    assert_eq!(rep.cut_bytes, cut - ends[n - 2]);
    let copy = rep.copy.clone().expect("copied aside");
    assert_eq!(
        file_len(&copy),
        cut,
        "the copy holds the whole segment as found"
    );
    assert_eq!(broken_copies(t.path()), vec![copy]);
    assert_eq!(file_len(&seg), ends[n - 2]);
    assert!(r.report.to_string().contains("torn tail"), "{}", r.report);
    // Later records are appendable, and a restart reads them.
    let more = Batch {
        ents: ents(45, 46, 3),
        hs: Some(hs(3, 2, 44)),
        ..Batch::default()
    };
    write(&mut d, &more);
    d.sync().unwrap();
    drop(d);
    let mut all = bs[..n - 1].to_vec();
    all.push(more);
    let (_d, r) = reopen(t.path(), opts(SEG));
    assert_same(&r.storage, &model_after(&all, all.len()));
    assert!(r.report.repaired.is_none(), "nothing left to repair");
}

#[test]
fn a_last_record_whose_last_512_bytes_are_zero_is_repaired() {
    let t = tempfile::tempdir().unwrap();
    // A last record of more than 512 bytes, so that only its end is zeroed.
    let mut bs = one_record_batches();
    let big: Vec<_> = (45..=60)
        .map(|i| raft_core::Entry::normal(i, 3, vec![b'x'; 100]))
        .collect();
    bs.push(Batch {
        ents: big,
        ..Batch::default()
    });
    let (seg, ends) = write_single_segment(t.path(), &bs);
    let n = bs.len();
    assert!(ends[n - 1] - ends[n - 2] > 600);
    zero(&seg, ends[n - 1] - 512, 512);
    let (_d, r) = reopen(t.path(), opts(SEG));
    assert_same(&r.storage, &model_after(&bs, n - 1));
    let rep = r.report.repaired.expect("a repair is reported");
    assert_eq!(rep.offset, ends[n - 2]);
    assert!(rep.copy.unwrap().exists());
}

#[test]
fn zeroing_the_last_512_bytes_across_several_small_records_is_repaired() {
    let t = tempfile::tempdir().unwrap();
    let bs = one_record_batches();
    let (seg, ends) = write_single_segment(t.path(), &bs);
    let len = *ends.last().unwrap();
    zero(&seg, len - 512, 512);
    let keep = ends.iter().filter(|&&e| e <= len - 512).count();
    let (_d, r) = reopen(t.path(), opts(SEG));
    assert_same(&r.storage, &model_after(&bs, keep));
    assert!(r.report.repaired.is_some());
    assert_eq!(broken_copies(t.path()).len(), 1);
}

#[test]
fn cutting_the_tail_at_every_byte_offset_recovers_a_prefix_of_the_batches() {
    let t = tempfile::tempdir().unwrap();
    let bs = one_record_batches();
    let (seg, ends) = write_single_segment(t.path(), &bs);
    let len = *ends.last().unwrap();
    let models: Vec<MemStorage> = (0..=bs.len()).map(|k| model_after(&bs, k)).collect();
    let name = seg.file_name().unwrap().to_owned();
    // Every offset of the last two records; before them every 8-byte word boundary, and a
    // byte inside every 4th word.
    let from = ends[ends.len() - 3];
    let cuts: Vec<u64> = (0..from)
        .step_by(8)
        .flat_map(|w| if w % 32 == 0 { vec![w, w + 3] } else { vec![w] })
        .chain(from..len)
        .collect();
    let original = std::fs::read(&seg).unwrap();
    let c = tempfile::tempdir().unwrap();
    copy_dir(t.path(), c.path());
    let s = c.path().join("wal").join(&name);
    for (n, &cut) in cuts.iter().enumerate() {
        std::fs::write(&s, &original[..cut as usize]).unwrap();
        let k = ends.iter().filter(|&&e| e <= cut).count();
        // Most cuts through the read-only check (the same recovery, without the fsyncs of a
        // repair); every 8th through a real open that repairs, writes more and reopens.
        if n % 8 != 0 {
            let got = raft_example::disk::verify(c.path())
                .unwrap_or_else(|e| panic!("cut at {cut}: recovery refused: {e}"))
                .map(|r| r.storage)
                .unwrap_or_default();
            assert!(
                same(&got, &models[k]),
                "cut at {cut}: expected the first {k} batches"
            );
            continue;
        }
        let got = recovered_or_empty(c.path())
            .unwrap_or_else(|e| panic!("cut at {cut}: recovery refused: {e}"));
        assert!(
            same(&got, &models[k]),
            "cut at {cut}: expected the first {k} batches"
        );
        let (mut d, _) = Durable::open(c.path(), opts(SEG)).unwrap();
        let more = Batch {
            hs: Some(hs(9, 9, 0)),
            ..Batch::default()
        };
        write(&mut d, &more);
        d.sync().unwrap();
        drop(d);
        let got = recovered_or_empty(c.path()).unwrap();
        assert_eq!(got.hard_state().term, 9, "cut at {cut}");
        assert_eq!(got.last_index(), models[k].last_index(), "cut at {cut}");
    }
}

#[test]
fn zeroing_the_tail_from_every_aligned_offset_recovers_a_prefix_of_the_batches() {
    let t = tempfile::tempdir().unwrap();
    let bs = one_record_batches();
    let (seg, ends) = write_single_segment(t.path(), &bs);
    let len = *ends.last().unwrap();
    let name = seg.file_name().unwrap().to_owned();
    let original = std::fs::read(&seg).unwrap();
    let c = tempfile::tempdir().unwrap();
    copy_dir(t.path(), c.path());
    let s = c.path().join("wal").join(&name);
    for z in (0..len).step_by(8) {
        std::fs::write(&s, &original).unwrap();
        zero(&s, z, len);
        // Every 4th through a real (repairing) open, the rest read-only.
        let got = if z % 32 == 0 {
            recovered_or_empty(c.path())
        } else {
            raft_example::disk::verify(c.path()).map(|r| r.map(|r| r.storage).unwrap_or_default())
        }
        .unwrap_or_else(|e| panic!("zeros from {z}: recovery refused: {e}"));
        let k = ends.iter().filter(|&&e| e <= z).count();
        assert!(
            same(&got, &model_after(&bs, k)),
            "zeros from {z}: expected the first {k} batches"
        );
    }
}

#[test]
fn a_flipped_byte_in_any_record_is_refused_naming_the_file_and_the_records_offset() {
    let t = tempfile::tempdir().unwrap();
    let bs = one_record_batches();
    let (seg, _ends) = write_single_segment(t.path(), &bs);
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    let recs = records_of(&seg);
    assert!(recs.len() > 10);
    for (k, rec) in recs.iter().enumerate() {
        // Every byte of the first, a middle and the last record; every 5th byte elsewhere.
        let every = k == 0 || k == recs.len() / 2 || k + 1 == recs.len();
        let step = if every { 1 } else { 5 };
        for at in (rec.offset..rec.offset + rec.bytes).step_by(step) {
            let c = tempfile::tempdir().unwrap();
            copy_dir(t.path(), c.path());
            flip(&c.path().join("wal").join(&name), at);
            let err = match Durable::open(c.path(), opts(SEG)) {
                Ok(_) => panic!("flipped byte at {at} was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(
                err.contains(&name) && err.contains(&format!("at offset {}", rec.offset)),
                "flipped byte at {at} (record at {}): {err}",
                rec.offset
            );
            assert!(broken_copies(c.path()).is_empty(), "nothing repaired");
        }
    }
}

#[test]
fn a_flipped_byte_in_a_middle_segment_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let bs = one_record_batches();
    {
        let (mut d, _) = Durable::open(t.path(), opts(200)).unwrap();
        for b in &bs {
            write(&mut d, b);
            d.sync().unwrap();
        }
    }
    let segs = segments(t.path());
    assert!(segs.len() >= 4);
    let mid = &segs[segs.len() / 2];
    let at = file_len(mid) - 2;
    flip(mid, at);
    let err = Durable::open(t.path(), opts(200)).unwrap_err().to_string();
    let name = mid.file_name().unwrap().to_string_lossy();
    assert!(err.contains(&*name), "{err}");
    assert!(err.contains("CRC mismatch"), "{err}");
    // Truncating a middle segment is not a torn tail either.
    let t2 = tempfile::tempdir().unwrap();
    {
        let (mut d, _) = Durable::open(t2.path(), opts(200)).unwrap();
        for b in &bs {
            write(&mut d, b);
            d.sync().unwrap();
        }
    }
    let segs = segments(t2.path());
    let mid = &segs[1];
    truncate(mid, file_len(mid) - 5);
    let err = Durable::open(t2.path(), opts(200)).unwrap_err().to_string();
    assert!(
        err.contains(&*mid.file_name().unwrap().to_string_lossy()),
        "{err}"
    );
    assert!(err.contains("not the last"), "{err}");
}

#[test]
fn a_missing_middle_segment_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let bs = one_record_batches();
    {
        let (mut d, _) = Durable::open(t.path(), opts(200)).unwrap();
        for b in &bs {
            write(&mut d, b);
            d.sync().unwrap();
        }
    }
    let segs = segments(t.path());
    assert!(segs.len() >= 4);
    std::fs::remove_file(&segs[2]).unwrap();
    let err = Durable::open(t.path(), opts(200)).unwrap_err().to_string();
    assert!(
        err.contains(&*segs[3].file_name().unwrap().to_string_lossy()),
        "{err}"
    );
    assert!(err.contains("missing"), "{err}");
    assert!(raft_example::disk::verify(t.path()).is_err());
}

#[test]
fn a_segment_replaced_by_another_chain_is_refused() {
    // Two members' WALs: member B's second segment put in place of A's breaks the chain.
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let bs = one_record_batches();
    for (dir, term) in [(a.path(), 1), (b.path(), 5)] {
        let (mut d, _) = Durable::open(dir, opts(200)).unwrap();
        write(
            &mut d,
            &Batch {
                hs: Some(hs(term, 0, 0)),
                ..Batch::default()
            },
        );
        for x in &bs[1..] {
            write(&mut d, x);
        }
        d.sync().unwrap();
    }
    let sa = segments(a.path());
    let sb = segments(b.path());
    assert_eq!(
        sa[1].file_name(),
        sb[1].file_name(),
        "same layout in both WALs"
    );
    std::fs::copy(&sb[1], &sa[1]).unwrap();
    let err = Durable::open(a.path(), opts(200)).unwrap_err().to_string();
    assert!(err.contains("previous CRC"), "{err}");
    assert!(
        err.contains(&*sa[1].file_name().unwrap().to_string_lossy()),
        "{err}"
    );
}

#[test]
fn a_hard_state_beyond_the_log_is_refused() {
    let t = tempfile::tempdir().unwrap();
    {
        let (mut d, _) = Durable::open(t.path(), opts(1 << 20)).unwrap();
        d.write_parts(Some(&hs(1, 1, 9)), None, &ents(1, 5, 1))
            .unwrap();
        d.sync().unwrap();
    }
    let err = Durable::open(t.path(), opts(1 << 20))
        .unwrap_err()
        .to_string();
    assert!(err.contains("commit index 9"), "{err}");
}

#[test]
fn garbage_and_empty_files_never_panic() {
    // Random bytes as a segment, as the only segment: an error (not the last segment's torn
    // tail: its header does not verify), never a panic.
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("wal")).unwrap();
    let p = t.path().join("wal").join(wal::segment_name(1, 1));
    let mut x = 0x1234_5678_9abc_def0u64;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(&p, &garbage).unwrap();
    assert!(Durable::open(t.path(), opts(1 << 20)).is_err());
    // An empty last segment (crash right after creating it) is rewritten.
    std::fs::write(&p, b"").unwrap();
    let (mut d, r) = Durable::open(t.path(), opts(1 << 20)).unwrap();
    assert!(r.is_none());
    write(
        &mut d,
        &Batch {
            ents: ents(1, 3, 1),
            ..Batch::default()
        },
    );
    d.sync().unwrap();
    drop(d);
    let (_d, r) = reopen(t.path(), opts(1 << 20));
    assert_eq!(r.storage.last_index().unwrap(), 3);
}

#[test]
fn the_preallocated_fill_is_the_end_of_the_log_not_a_torn_tail() {
    let t = tempfile::tempdir().unwrap();
    let bs = one_record_batches();
    let (seg, ends) = write_single_segment(t.path(), &bs);
    assert!(
        file_len(&seg) > *ends.last().unwrap(),
        "the segment is preallocated"
    );
    let (_d, r) = reopen(t.path(), opts(SEG));
    assert_same(&r.storage, &model_after(&bs, bs.len()));
    assert!(r.report.repaired.is_none(), "{}", r.report);
    assert!(broken_copies(t.path()).is_empty());
}

#[test]
fn a_whole_small_last_record_zeroed_is_repaired_and_copied_aside() {
    let t = tempfile::tempdir().unwrap();
    let bs = one_record_batches();
    let (seg, ends) = write_single_segment(t.path(), &bs);
    let n = bs.len();
    let (from, to) = (ends[n - 2], ends[n - 1]);
    assert!(to - from < 512);
    zero(&seg, from, to - from);
    let (_d, r) = reopen(t.path(), opts(SEG));
    assert_same(&r.storage, &model_after(&bs, n - 1));
    let rep = r.report.repaired.expect("a repair is reported");
    assert_eq!(rep.offset, from);
    assert_eq!(broken_copies(t.path()).len(), 1);
}

#[test]
fn a_stray_byte_in_the_fill_is_cut_off_as_a_torn_tail() {
    // Blank sector at the end of the records, something non-blank later: as if a later,
    // unsynced write reached the disk before the one at the end of the records (rule 2).
    let t = tempfile::tempdir().unwrap();
    let bs = one_record_batches();
    let (seg, ends) = write_single_segment(t.path(), &bs);
    let end = *ends.last().unwrap();
    flip(&seg, end + 1000);
    let (_d, r) = reopen(t.path(), opts(SEG));
    assert_same(&r.storage, &model_after(&bs, bs.len()));
    assert_eq!(r.report.repaired.expect("cut").offset, end);
}

#[test]
fn random_damage_never_panics_and_never_yields_a_log_that_was_not_written() {
    // A WAL over several segments, then random damage: bytes overwritten with random values,
    // segments cut or extended with garbage, a segment removed. Recovery may refuse or repair,
    // but never panics, and what it returns is a prefix of the batches.
    let t = tempfile::tempdir().unwrap();
    let bs = one_record_batches();
    {
        let (mut d, _) = Durable::open(t.path(), opts(400)).unwrap();
        for b in &bs {
            write(&mut d, b);
            d.sync().unwrap();
        }
    }
    let models: Vec<MemStorage> = (0..=bs.len()).map(|k| model_after(&bs, k)).collect();
    let segs = segments(t.path());
    let names: Vec<_> = segs
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    let originals: Vec<Vec<u8>> = segs.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let c = tempfile::tempdir().unwrap();
    copy_dir(t.path(), c.path());
    let mut x = 0x0123_4567_89ab_cdefu64;
    let mut rnd = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n.max(1) as u64) as usize
    };
    let (mut refused, mut accepted) = (0, 0);
    for _ in 0..400 {
        for (n, o) in names.iter().zip(&originals) {
            std::fs::write(c.path().join("wal").join(n), o).unwrap();
        }
        let k = rnd(names.len());
        let p = c.path().join("wal").join(&names[k]);
        let mut data = originals[k].clone();
        match rnd(4) {
            0 => {
                for _ in 0..1 + rnd(8) {
                    let at = rnd(data.len());
                    data[at] = rnd(256) as u8;
                }
            }
            1 => data.truncate(rnd(data.len() + 1)),
            2 => data.extend((0..rnd(600)).map(|_| rnd(256) as u8)),
            _ => {
                std::fs::remove_file(&p).unwrap();
                data.clear();
            }
        }
        if !data.is_empty() || p.exists() {
            std::fs::write(&p, &data).unwrap();
        }
        match raft_example::disk::verify(c.path()) {
            Err(_) => refused += 1,
            Ok(r) => {
                accepted += 1;
                let got = r.map(|r| r.storage).unwrap_or_default();
                // Accepted damage is a repaired tail of the last segment, a lost last
                // segment (undetectable, see the wal docs), or a byte overwritten with its
                // own value: each leaves a prefix of the batches.
                assert!(
                    models.iter().any(|m| same(&got, m)),
                    "damage to {:?} accepted with a state that is no prefix",
                    names[k]
                );
            }
        }
    }
    assert!(
        refused > 0 && accepted > 0,
        "{refused} refused, {accepted} accepted"
    );
}
