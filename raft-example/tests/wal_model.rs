//! Model test: random sequences of writes (appends that truncate, hard states, installed
//! snapshots), local compactions and restarts, with random segment sizes, against a plain
//! model of what the log must hold. Every restart must recover exactly the model.

mod wal_common;

use raft_core::{Entry, HardState, MemStorage, Snapshot};
use raft_example::disk::Durable;
use wal_common::*;

/// What the durable state must be: a snapshot, the entries after it, the last hard state.
#[derive(Default)]
struct Model {
    snap: Option<Snapshot>,
    entries: Vec<Entry>,
    hs: Option<HardState>,
    term: u64,
}

impl Model {
    fn snap_index(&self) -> u64 {
        self.snap.as_ref().map_or(0, Snapshot::index)
    }

    fn last(&self) -> u64 {
        self.entries.last().map_or(self.snap_index(), |e| e.index)
    }

    fn commit(&self) -> u64 {
        self.hs.map_or(0, |h| h.commit).max(self.snap_index())
    }

    fn storage(&self) -> MemStorage {
        let mut m = MemStorage::new();
        if let Some(s) = &self.snap {
            m.apply_snapshot(s.clone()).unwrap();
        }
        m.append(&self.entries).unwrap();
        if let Some(mut h) = self.hs {
            h.commit = h.commit.max(self.snap_index());
            m.set_hard_state(h);
        }
        m
    }
}

fn run(seed: u64) {
    let mut rng = Rng::seeded(seed);
    let t = tempfile::tempdir().unwrap();
    let seg = |r: &mut Rng| [600, 2000, 8192, 1 << 20][r.below(4) as usize];
    let (mut d, _) = Durable::open(t.path(), opts(seg(&mut rng))).unwrap();
    let mut m = Model {
        term: 1,
        ..Model::default()
    };
    let mut ops = Vec::new();
    for _ in 0..80 {
        match rng.below(20) {
            // Append, sometimes truncating above the commit index at a new term.
            0..=9 => {
                let truncate = rng.below(4) == 0 && m.last() > m.commit();
                let x = if truncate {
                    m.term += 1;
                    m.commit() + 1 + rng.below(m.last() - m.commit())
                } else {
                    m.last() + 1
                };
                let n = 1 + rng.below(4);
                let new = ents(x, x + n - 1, m.term);
                m.entries.retain(|e| e.index < x);
                m.entries.extend(new.iter().cloned());
                d.write_parts(None, None, &new).unwrap();
                ops.push(format!("append {x}..{} t{}", x + n - 1, m.term));
            }
            // A hard state: commit somewhere up to the last index.
            10..=13 => {
                let c = m.commit() + rng.below(m.last() - m.commit() + 1);
                let h = hs(m.term, rng.below(3), c);
                m.hs = Some(h);
                d.write_parts(Some(&h), None, &[]).unwrap();
                ops.push(format!("hs commit {c}"));
            }
            // A snapshot from the leader, with entries after it.
            14 => {
                m.term += 1;
                let i = m.commit() + 1 + rng.below(m.last() - m.commit() + 3);
                let s = snapshot(i, m.term, &format!("leader state at {i}"));
                let new = ents(i + 1, i + rng.below(3), m.term);
                let h = hs(m.term, 0, i);
                m.snap = Some(s.clone());
                m.entries = new.clone();
                m.hs = Some(h);
                d.write_parts(Some(&h), Some(&s), &new).unwrap();
                ops.push(format!("install {i}"));
            }
            // A local snapshot of committed state, then compaction.
            15..=16 => {
                let lo = m.snap_index() + 1;
                if m.commit() < lo {
                    continue;
                }
                let i = lo + rng.below(m.commit() - lo + 1);
                let term = m.entries.iter().find(|e| e.index == i).unwrap().term;
                let s = snapshot(i, term, &format!("local state at {i}"));
                d.snapshot_dir().save(&s).unwrap();
                d.compact_to(s.metadata.as_ref().unwrap()).unwrap();
                m.snap = Some(s);
                m.entries.retain(|e| e.index > i);
                ops.push(format!("compact {i}"));
            }
            17 => {
                d.sync().unwrap();
            }
            // Restart, possibly with another segment size.
            _ => {
                drop(d);
                let (d2, r) = Durable::open(t.path(), opts(seg(&mut rng))).unwrap();
                d = d2;
                let got = r.map(|r| r.storage).unwrap_or_default();
                assert!(
                    same(&got, &m.storage()),
                    "seed {seed}: after {ops:?}\n got {got:?}\nwant {:?}",
                    m.storage()
                );
                ops.push("restart".into());
            }
        }
    }
    d.sync().unwrap();
    drop(d);
    let (_d, r) = Durable::open(t.path(), opts(4096)).unwrap();
    let got = r.map(|r| r.storage).unwrap_or_default();
    assert!(
        same(&got, &m.storage()),
        "seed {seed}: after {ops:?}\n got {got:?}\nwant {:?}",
        m.storage()
    );
    assert!(raft_example::disk::verify(t.path()).is_ok());
}

#[test]
fn random_writes_compactions_and_restarts_recover_the_model_seeds_0_to_19() {
    (0..20).for_each(run);
}

#[test]
fn random_writes_compactions_and_restarts_recover_the_model_seeds_20_to_39() {
    (20..40).for_each(run);
}

#[test]
fn random_writes_compactions_and_restarts_recover_the_model_seeds_40_to_59() {
    (40..60).for_each(run);
}
