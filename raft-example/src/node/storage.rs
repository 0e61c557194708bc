//! The storage thread: the only place the WAL is written.
//!
//! ```text
//!   node task ── Cmd::Write(batch) ──► [bounded] ──► storage thread
//!                                                      take every command waiting
//!                                                      write each batch (no fsync)
//!                                                      one fsync if any batch needs it
//!   node task ◄── Event::Persisted(batches, in order) ◄┘   (group commit)
//! ```
//!
//! The thread owns the [`Disk`] (the real one is `disk::Durable`); it is a plain OS thread
//! because every call blocks. The node never has more than [`MAX_IN_FLIGHT`] batches out,
//! and both channels hold that many, so neither side ever waits on a full channel.
//!
//! A failed write or fsync is final (fail-stop): the thread reports [`Event::Failed`] with the
//! error and stops; the batches of that group are never handed back, so nothing they carry is
//! ever acknowledged, and the node exits.

use crate::metrics::{self, Metrics};
use raft_core::PersistBatch;
use raft_core::wire::SnapshotMetadata;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Most persist batches the node keeps outstanding (written or waiting to be).
pub const MAX_IN_FLIGHT: usize = 256;

/// An error of the disk, with its message (naming the file and offset).
pub type DiskFailure = Box<dyn std::error::Error + Send + Sync>;

/// What the storage thread needs of the durable state. `disk::Durable` implements it; tests
/// use an in-memory one.
pub trait Disk: Send + 'static {
    /// Writes a batch without fsync.
    ///
    /// # Errors
    /// Any I/O failure; the disk is unusable afterwards.
    fn write(&mut self, batch: &PersistBatch) -> Result<(), DiskFailure>;
    /// One fdatasync of everything written.
    ///
    /// # Errors
    /// Any I/O failure; the disk is unusable afterwards.
    fn sync(&mut self) -> Result<(), DiskFailure>;
    /// Records a snapshot whose file is already saved and removes what it makes obsolete.
    ///
    /// # Errors
    /// Any I/O failure.
    fn compact_to(&mut self, meta: &SnapshotMetadata) -> Result<(), DiskFailure>;
}

impl Disk for crate::disk::Durable {
    fn write(&mut self, batch: &PersistBatch) -> Result<(), DiskFailure> {
        crate::disk::Durable::write(self, batch).map_err(Into::into)
    }

    fn sync(&mut self) -> Result<(), DiskFailure> {
        crate::disk::Durable::sync(self).map_err(Into::into)
    }

    fn compact_to(&mut self, meta: &SnapshotMetadata) -> Result<(), DiskFailure> {
        crate::disk::Durable::compact_to(self, meta).map_err(Into::into)
    }
}

/// A command for the storage thread.
#[derive(Debug)]
pub enum Cmd {
    /// Make this batch durable (fsync if `batch.sync`).
    Write(PersistBatch),
    /// Record this snapshot (already saved) and compact below it.
    CompactTo(SnapshotMetadata),
}

/// What the storage thread reports.
#[derive(Debug)]
pub enum Event {
    /// These batches are durable, in the order they were sent.
    Persisted(Vec<PersistBatch>),
    /// A snapshot was recorded and the WAL compacted.
    Compacted(u64),
    /// The disk failed; the thread has stopped.
    Failed(String),
}

/// The node's side of the storage thread.
pub struct StorageHandle {
    tx: mpsc::Sender<Cmd>,
    /// Batches sent and not yet handed back.
    pub in_flight: usize,
    thread: Option<std::thread::JoinHandle<()>>,
    metrics: Arc<Metrics>,
}

impl StorageHandle {
    /// Starts the storage thread on `disk`; its events arrive on the returned receiver.
    ///
    /// # Errors
    /// The OS refused to start a thread.
    pub fn start(
        disk: impl Disk,
        metrics: Arc<Metrics>,
        logger: slog::Logger,
    ) -> std::io::Result<(StorageHandle, mpsc::Receiver<Event>)> {
        // One extra slot for compactions, which are rare and not counted as in flight.
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT + 4);
        let (etx, erx) = mpsc::channel(MAX_IN_FLIGHT + 4);
        let m = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("storage".into())
            .spawn(move || run(disk, rx, etx, &m, &logger))?;
        Ok((
            StorageHandle {
                tx,
                in_flight: 0,
                thread: Some(thread),
                metrics,
            },
            erx,
        ))
    }

    /// Whether another batch may be sent now.
    pub fn has_room(&self) -> bool {
        self.in_flight < MAX_IN_FLIGHT
    }

    /// Hands a batch to the thread (never blocks: the node checks [`Self::has_room`]).
    ///
    /// # Errors
    /// The thread has stopped (after a failure it already reported).
    pub fn write(&mut self, batch: PersistBatch) -> Result<(), StorageStopped> {
        self.tx
            .try_send(Cmd::Write(batch))
            .map_err(|_| StorageStopped)?;
        self.in_flight += 1;
        metrics::set(&self.metrics.persist_queue_depth, self.in_flight as u64);
        Ok(())
    }

    /// Records a snapshot on the thread.
    ///
    /// # Errors
    /// The thread has stopped.
    pub fn compact_to(&mut self, meta: SnapshotMetadata) -> Result<(), StorageStopped> {
        self.tx
            .try_send(Cmd::CompactTo(meta))
            .map_err(|_| StorageStopped)
    }

    /// Counts batches handed back.
    pub fn completed(&mut self, n: usize) {
        self.in_flight -= n;
        metrics::set(&self.metrics.persist_queue_depth, self.in_flight as u64);
    }

    /// Stops the thread after it has written everything sent (clean shutdown).
    pub fn stop(mut self) {
        let StorageHandle { tx, thread, .. } = &mut self;
        drop(std::mem::replace(tx, mpsc::channel(1).0));
        if let Some(t) = thread.take() {
            let _ = t.join();
        }
    }
}

/// The storage thread is gone.
#[derive(Debug, thiserror::Error)]
#[error("the storage thread has stopped")]
pub struct StorageStopped;

fn run(
    mut disk: impl Disk,
    mut rx: mpsc::Receiver<Cmd>,
    tx: mpsc::Sender<Event>,
    metrics: &Metrics,
    logger: &slog::Logger,
) {
    let mut cmds = Vec::new();
    while let Some(cmd) = rx.blocking_recv() {
        cmds.push(cmd);
        while let Ok(cmd) = rx.try_recv() {
            cmds.push(cmd);
        }
        let mut done = Vec::with_capacity(cmds.len());
        let mut need_sync = false;
        let mut compacted = Vec::new();
        let mut failure = None;
        for cmd in cmds.drain(..) {
            match cmd {
                Cmd::Write(batch) => {
                    if let Err(e) = disk.write(&batch) {
                        failure = Some(format!("write failed: {e}"));
                        break;
                    }
                    metrics::inc(&metrics.wal_batches_total);
                    need_sync |= batch.sync;
                    done.push(batch);
                }
                Cmd::CompactTo(meta) => {
                    if let Err(e) = disk.compact_to(&meta) {
                        failure = Some(format!("snapshot compaction failed: {e}"));
                        break;
                    }
                    compacted.push(meta.index);
                }
            }
        }
        if failure.is_none() && need_sync {
            let t = Instant::now();
            match disk.sync() {
                Ok(()) => metrics.fsync_seconds.observe(t.elapsed()),
                Err(e) => failure = Some(format!("fsync failed: {e}")),
            }
        }
        if let Some(f) = failure {
            // Fail-stop: nothing of this group is handed back, nothing is retried.
            slog::crit!(logger, "storage thread stops"; "error" => &f);
            let _ = tx.blocking_send(Event::Failed(f));
            return;
        }
        if !done.is_empty() && tx.blocking_send(Event::Persisted(done)).is_err() {
            return;
        }
        for index in compacted {
            if tx.blocking_send(Event::Compacted(index)).is_err() {
                return;
            }
        }
    }
}

/// An in-memory [`Disk`] for tests: records what it was asked, fails on request.
#[derive(Debug, Default)]
pub struct MemDisk {
    /// Sequence numbers of the batches written, in order.
    pub written: Arc<std::sync::Mutex<Vec<u64>>>,
    /// fsyncs so far.
    pub syncs: Arc<std::sync::atomic::AtomicU64>,
    /// Fail the write of the batch with this sequence number.
    pub fail_write_seq: Option<u64>,
}

impl Disk for MemDisk {
    fn write(&mut self, batch: &PersistBatch) -> Result<(), DiskFailure> {
        if self.fail_write_seq == Some(batch.seq()) {
            return Err("injected: no space left on device".into());
        }
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(batch.seq());
        Ok(())
    }

    fn sync(&mut self) -> Result<(), DiskFailure> {
        self.syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn compact_to(&mut self, _meta: &SnapshotMetadata) -> Result<(), DiskFailure> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{ConfState, Config, MemStorage, RawNode};

    /// `n` persist batches of a single-voter leader (one per proposal), not reported.
    fn batches(n: usize) -> Vec<PersistBatch> {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let storage = MemStorage::new_with_conf_state(ConfState::with_voters(vec![1]));
        let mut node = RawNode::new(&Config::new(1), storage, &logger).unwrap();
        node.campaign().unwrap();
        // Become leader: its vote and first entry must be durable (reported) first.
        for _ in 0..10 {
            let rd = node.ready();
            if let Some(mut b) = rd.persist {
                node.storage_mut().persist_from(&mut b).unwrap();
                node.on_persisted(b.durable());
            }
            if let Some(a) = rd.apply {
                node.on_applied(a.applied());
            }
        }
        assert_eq!(node.leader(), Some(1));
        let mut out = Vec::new();
        for _ in 0..n {
            node.propose(b"x".to_vec()).unwrap();
            let rd = node.ready();
            out.push(rd.persist.expect("a proposal makes a batch"));
        }
        out
    }

    #[tokio::test]
    async fn batches_come_back_in_order_with_group_commit() {
        let disk = MemDisk::default();
        let (written, syncs) = (disk.written.clone(), disk.syncs.clone());
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let (mut h, mut events) =
            StorageHandle::start(disk, Arc::new(Metrics::default()), logger).unwrap();
        let bs = batches(20);
        let seqs: Vec<u64> = bs.iter().map(PersistBatch::seq).collect();
        for b in bs {
            h.write(b).unwrap();
        }
        let mut back = Vec::new();
        while back.len() < 20 {
            match events.recv().await.unwrap() {
                Event::Persisted(v) => {
                    h.completed(v.len());
                    back.extend(v.iter().map(PersistBatch::seq));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(back, seqs);
        assert_eq!(*written.lock().unwrap(), seqs);
        let n = syncs.load(std::sync::atomic::Ordering::Relaxed);
        assert!((1..=20).contains(&n), "{n} fsyncs for 20 batches");
        assert_eq!(h.in_flight, 0);
        h.stop();
    }

    #[tokio::test]
    async fn a_failed_write_stops_the_thread_and_acknowledges_nothing_of_its_group() {
        let disk = MemDisk {
            fail_write_seq: Some(3),
            ..MemDisk::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let (mut h, mut events) =
            StorageHandle::start(disk, Arc::new(Metrics::default()), logger).unwrap();
        let mut acked = Vec::new();
        for b in batches(5) {
            // Some sends may find the thread gone already: that is the fail-stop.
            let _ = h.write(b);
        }
        loop {
            match events.recv().await {
                Some(Event::Persisted(v)) => acked.extend(v.iter().map(PersistBatch::seq)),
                Some(Event::Failed(e)) => {
                    assert!(e.contains("no space left"), "{e}");
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(acked.iter().all(|&s| s < 3), "acknowledged {acked:?}");
        // The thread is gone: nothing more comes back.
        assert!(events.recv().await.is_none());
    }
}
