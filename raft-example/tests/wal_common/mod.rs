//! Helpers shared by the WAL and disk tests: batches, a model storage, comparisons, file
//! surgery.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use raft_core::wire::SnapshotMetadata;
use raft_core::{ConfState, Entry, HardState, MemStorage, Snapshot, Storage};
use raft_example::disk::{DiskOptions, Durable, Recovered};

/// One persist batch, as the parts `Durable::write_parts` takes.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub hs: Option<HardState>,
    pub snap: Option<Snapshot>,
    pub ents: Vec<Entry>,
}

pub fn ent(index: u64, term: u64) -> Entry {
    Entry::normal(
        index,
        term,
        format!("value {index} at term {term}").into_bytes(),
    )
}

pub fn ents(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
    (lo..=hi).map(|i| ent(i, term)).collect()
}

pub fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState { term, vote, commit }
}

pub fn snapshot(index: u64, term: u64, data: &str) -> Snapshot {
    Snapshot {
        data: data.as_bytes().to_vec().into(),
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState::with_voters([1, 2, 3])),
            index,
            term,
        }),
    }
}

pub fn opts(segment_bytes: u64) -> DiskOptions {
    DiskOptions {
        segment_bytes,
        ..DiskOptions::default()
    }
}

/// Applies a batch to the model the way recovery rebuilds storage.
pub fn apply(model: &mut MemStorage, b: &Batch) {
    if let Some(s) = &b.snap {
        model.apply_snapshot(s.clone()).unwrap();
    }
    model.append(&b.ents).unwrap();
    if let Some(h) = b.hs {
        // Recovery never lets the commit index fall below the snapshot's.
        let mut h = h;
        h.commit = h.commit.max(model.first_index().unwrap() - 1);
        model.set_hard_state(h);
    }
}

/// Writes a batch (no sync).
pub fn write(d: &mut Durable, b: &Batch) {
    d.write_parts(b.hs.as_ref(), b.snap.as_ref(), &b.ents)
        .unwrap();
}

/// The model after the first `k` batches.
pub fn model_after(batches: &[Batch], k: usize) -> MemStorage {
    let mut m = MemStorage::new();
    for b in &batches[..k] {
        apply(&mut m, b);
    }
    m
}

fn log_of(s: &MemStorage) -> (u64, u64, Vec<Entry>) {
    let first = s.first_index().unwrap();
    let last = s.last_index().unwrap();
    (first, last, s.entries(first, last + 1, u64::MAX).unwrap())
}

/// Whether two storages hold the same log, hard state and snapshot.
pub fn same(a: &MemStorage, b: &MemStorage) -> bool {
    log_of(a) == log_of(b)
        && a.hard_state() == b.hard_state()
        && a.term(a.first_index().unwrap() - 1) == b.term(b.first_index().unwrap() - 1)
        && a.snapshot(0, 0) == b.snapshot(0, 0)
        && a.conf_state() == b.conf_state()
}

pub fn assert_same(got: &MemStorage, want: &MemStorage) {
    assert!(
        same(got, want),
        "recovered storage differs from the model:\n got: {:?} {:?}\nwant: {:?} {:?}",
        log_of(got),
        got.hard_state(),
        log_of(want),
        want.hard_state()
    );
}

/// Opens and expects recovered state.
pub fn reopen(dir: &Path, o: DiskOptions) -> (Durable, Recovered) {
    let (d, r) = Durable::open(dir, o).unwrap();
    (d, r.expect("state expected"))
}

pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

pub fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

pub fn truncate(p: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Overwrites `[from, from + n)` of `p` with zeros (clipped to the file).
pub fn zero(p: &Path, from: u64, n: u64) {
    let mut data = std::fs::read(p).unwrap();
    let end = ((from + n) as usize).min(data.len());
    for b in &mut data[from as usize..end] {
        *b = 0;
    }
    std::fs::write(p, data).unwrap();
}

pub fn flip(p: &Path, at: u64) {
    let mut data = std::fs::read(p).unwrap();
    data[at as usize] ^= 0x40;
    std::fs::write(p, data).unwrap();
}

/// Copies a data directory (files one level under wal/ and snap/).
pub fn copy_dir(from: &Path, to: &Path) {
    for sub in ["wal", "snap"] {
        std::fs::create_dir_all(to.join(sub)).unwrap();
        if let Ok(rd) = std::fs::read_dir(from.join(sub)) {
            for e in rd {
                let e = e.unwrap();
                std::fs::copy(e.path(), to.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
}

pub fn broken_copies(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".broken"))
        .collect()
}

/// xorshift64*: a deterministic stream for the randomized WAL tests (one copy for all of them).
pub struct Rng(u64);

impl Rng {
    /// A stream for `seed` (never the all-zero state, which xorshift cannot leave).
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
