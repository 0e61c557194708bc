//! Power loss, simulated sector by sector: after a random run of writes and fsyncs, every
//! 512-byte sector of the last segment written since its last fsync is independently either
//! the new bytes or what the disk held at that fsync (fill, or zeros past the old end), and
//! the file keeps its old or new length. Recovery must never refuse, and must return a prefix
//! of the batches that includes every fsynced one.

mod wal_common;

use std::path::PathBuf;

use raft_example::disk::Durable;
use wal_common::*;

fn run(seed: u64) {
    let mut rng = Rng::seeded(seed);
    let t = tempfile::tempdir().unwrap();
    let segment_bytes = [3000, 20_000, 1 << 20][rng.below(3) as usize];
    let (mut d, _) = Durable::open(t.path(), opts(segment_bytes)).unwrap();
    // Single-record batches, so that every record prefix is a batch prefix; payloads of
    // varied sizes so that records straddle sectors and pages.
    let mut bs: Vec<Batch> = Vec::new();
    let mut last = 0u64;
    let mut acked = 0;
    // The last segment's bytes as of the last fsync (what a power loss falls back to).
    let mut durable: Option<(PathBuf, Vec<u8>)> = None;
    for _ in 0..(20 + rng.below(60)) {
        let b = if rng.below(5) == 0 {
            Batch {
                hs: Some(hs(1, 1, last)),
                ..Batch::default()
            }
        } else {
            let n = 1 + rng.below(3);
            let size = [5, 60, 300, 900][rng.below(4) as usize];
            let ents = (last + 1..=last + n)
                .map(|i| raft_core::Entry::normal(i, 1, vec![b'a' + (i % 26) as u8; size]))
                .collect::<Vec<_>>();
            last += n;
            Batch {
                ents,
                ..Batch::default()
            }
        };
        write(&mut d, &b);
        bs.push(b);
        if rng.below(4) == 0 {
            d.sync().unwrap();
            acked = bs.len();
            let p = d.wal_end().0.to_path_buf();
            let bytes = std::fs::read(&p).unwrap();
            durable = Some((p, bytes));
        }
    }
    let (cur, _) = d.wal_end();
    let cur = cur.to_path_buf();
    drop(d);
    // Older segments were fsynced whole when the writer rolled past them. The last one falls
    // back, sector by sector, to its image at the last fsync (empty if it was created after).
    let new = std::fs::read(&cur).unwrap();
    let old = match &durable {
        Some((p, bytes)) if *p == cur => bytes.clone(),
        _ => Vec::new(),
    };
    let len = if rng.below(2) == 0 || old.len() >= new.len() {
        new.len()
    } else {
        old.len()
    };
    let mut image = vec![0u8; len];
    let keep_new = rng.below(3); // 0: all old, 1: all new, 2: mixed
    for s in (0..len).step_by(512) {
        let e = (s + 512).min(len);
        let take_new = match keep_new {
            0 => false,
            1 => true,
            _ => rng.below(2) == 0,
        };
        for i in s..e {
            image[i] = if take_new {
                new[i]
            } else if i < old.len() {
                old[i]
            } else {
                0
            };
        }
    }
    std::fs::write(&cur, &image).unwrap();
    let what = format!(
        "seed {seed}: {} batches, {acked} fsynced, segment_bytes {segment_bytes}, mode {keep_new}",
        bs.len()
    );
    let (_d, r) = Durable::open(t.path(), opts(segment_bytes))
        .unwrap_or_else(|e| panic!("{what}: recovery refused: {e}"));
    let got = r.map(|r| r.storage).unwrap_or_default();
    assert!(
        (acked..=bs.len()).any(|j| same(&got, &model_after(&bs, j))),
        "{what}: recovered state is not a prefix holding every fsynced batch"
    );
}

#[test]
fn power_loss_at_sector_granularity_keeps_every_fsynced_batch_seeds_0_to_99() {
    (0..100).for_each(run);
}

#[test]
fn power_loss_at_sector_granularity_keeps_every_fsynced_batch_seeds_100_to_199() {
    (100..200).for_each(run);
}
