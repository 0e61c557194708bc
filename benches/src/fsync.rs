//! A single raft-core node whose log is a real file: every persist batch is appended to it,
//! and batches that ask for it (`sync`) are made durable with `File::sync_data` (fdatasync)
//! before `on_persisted`. Used by the `e2e_fsync` example to show what the library costs
//! next to the disk.
//!
//! The file is a write-ahead log of records, each a tag byte then little-endian fields:
//!
//! ```text
//!   'H' term:u64 vote:u64 commit:u64                  hard state
//!   'E' index:u64 term:u64 type:i32 len:u32 data      one entry; a later record for the
//!                                                     same index supersedes (truncation)
//! ```
//!
//! Recovery (replaying it) is not written: the benchmark measures the write path only. The
//! node reads its log back from a [`MemStorage`] that the driver fills alongside the file,
//! as a real log keeps a cache of its tail; that copy is compacted like the other workloads'.
//!
//! Invariants:
//! 1. `on_persisted` is called only after the batch's bytes were written and, if `sync`,
//!    `sync_data` returned.
//! 2. Counters start at zero once the node leads (the election's writes are not counted).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use raft_core::{MemStorage, Message, PersistBatch, RawNode, Ready, Role};

use crate::ours::{Applier, PayloadAlloc, Payloads, maybe_compact, new_node};

/// A single-voter group (id 1) persisting to a file.
pub struct FsyncSingle {
    node: RawNode<MemStorage>,
    rd: Ready,
    app: Applier,
    payloads: Payloads,
    sink: Vec<Message>,
    file: File,
    buf: Vec<u8>,
    fsyncs: u64,
    bytes_written: u64,
}

impl FsyncSingle {
    /// Creates the log file at `path` (which must not exist), elects the node and runs until
    /// it has applied its empty entry.
    ///
    /// # Errors
    /// Any I/O error creating or writing the file.
    pub fn create(path: &Path) -> io::Result<FsyncSingle> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)?;
        let mut node = new_node(1, &[1]);
        node.campaign().expect("campaign");
        let mut s = FsyncSingle {
            node,
            rd: Ready::default(),
            app: Applier::default(),
            payloads: Payloads::new(PayloadAlloc::Arena),
            sink: Vec::new(),
            file,
            buf: Vec::new(),
            fsyncs: 0,
            bytes_written: 0,
        };
        while s.node.role() != Role::Leader || s.app.applied_index < s.node.last_index() {
            assert!(s.handle_ready()?, "single node stuck");
        }
        s.app.reset_count();
        s.fsyncs = 0;
        s.bytes_written = 0;
        Ok(s)
    }

    /// Proposes `count` entries, then runs the Ready loop (write, fdatasync, apply) until the
    /// last of them is applied.
    ///
    /// # Errors
    /// Any I/O error writing or syncing the file.
    ///
    /// # Panics
    /// If `count` is 0.
    pub fn propose_commit_apply_batch(&mut self, payload: &[u8], count: usize) -> io::Result<()> {
        assert!(count > 0, "a round proposes at least one entry");
        let mut last_index = 0;
        for _ in 0..count {
            let data = self.payloads.copy(payload);
            last_index = self.node.propose(data).expect("leader accepts").index;
        }
        while self.app.applied_index < last_index {
            assert!(self.handle_ready()?, "stuck");
        }
        self.sink.clear();
        maybe_compact(&mut self.node, self.app.applied_index);
        Ok(())
    }

    /// Entries applied since the node became leader.
    pub fn applied_count(&self) -> u64 {
        self.app.count
    }

    /// `sync_data` calls since the node became leader.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs
    }

    /// Bytes appended to the file since the node became leader.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Runs the Ready loop until the node has nothing to do; returns whether it did anything.
    fn handle_ready(&mut self) -> io::Result<bool> {
        let mut progressed = false;
        while self.node.has_ready() {
            progressed = true;
            self.node.ready_into(&mut self.rd);
            let Ready {
                messages,
                persist,
                apply,
                read_states: _,
            } = &mut self.rd;
            self.sink.append(messages);
            if let Some(batch) = persist {
                self.buf.clear();
                encode_batch(batch, &mut self.buf);
                self.file.write_all(&self.buf)?;
                self.bytes_written += self.buf.len() as u64;
                if batch.sync {
                    self.file.sync_data()?;
                    self.fsyncs += 1;
                }
                self.node
                    .storage_mut()
                    .persist_from(batch)
                    .expect("in-memory write");
                self.node.on_persisted(batch.durable());
            }
            if let Some(batch) = apply {
                self.app.apply(&batch.entries, batch.last_index());
                self.node.on_applied(batch.applied());
            }
        }
        Ok(progressed)
    }
}

/// Appends the records of `batch` to `buf` (format in the module docs).
fn encode_batch(batch: &PersistBatch, buf: &mut Vec<u8>) {
    assert!(
        batch.snapshot.is_none(),
        "a single-voter group never receives a snapshot"
    );
    if let Some(hs) = batch.hard_state {
        buf.push(b'H');
        for v in [hs.term, hs.vote, hs.commit] {
            buf.extend_from_slice(&v.to_le_bytes());
        }
    }
    for e in &batch.entries {
        buf.push(b'E');
        buf.extend_from_slice(&e.index.to_le_bytes());
        buf.extend_from_slice(&e.term.to_le_bytes());
        buf.extend_from_slice(&e.entry_type.to_le_bytes());
        let len = u32::try_from(e.data.len()).expect("an entry is below 4 GiB");
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&e.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_batch_is_written_and_synced_once() {
        let dir =
            std::env::temp_dir().join(format!("raft-benches-fsync-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let mut s = FsyncSingle::create(&path).unwrap();
        for _ in 0..3 {
            s.propose_commit_apply_batch(&[9u8; 16], 4).unwrap();
        }
        assert_eq!(s.applied_count(), 12);
        // One fsync per round: the entries' batch; the commit-only batch needs none.
        assert_eq!(s.fsyncs(), 3);
        let entry_record = 1 + 8 + 8 + 4 + 4 + 16;
        assert!(s.bytes_written() >= 12 * entry_record);
        let on_disk = std::fs::metadata(&path).unwrap().len();
        assert!(on_disk >= s.bytes_written());
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
