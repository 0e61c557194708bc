//! `Durable`: a member's durable state — the WAL ([`crate::wal`]) and the snapshot files
//! ([`crate::snapfile`]) of one data directory — and recovery of it into a `MemStorage`.
//!
//! ```text
//!  <data-dir>/
//!    wal/0000000000000001-0000000000000001.wal   segments (format: crate::wal)
//!    wal/SYNCED                                  test hook: last fsynced segment and offset
//!    wal/*.broken                                torn tails copied aside by recovery
//!    snap/IIIIIIIIIIIIIIII-TTTTTTTTTTTTTTTT.snap  snapshots (format: crate::snapfile)
//! ```
//!
//! # Writing
//!
//! [`Durable::write`] writes a `PersistBatch` in this order, without fsync: the snapshot file
//! (saved durably by itself: temp file, fsync, rename, directory fsync) and an *installing*
//! snapshot marker naming it; then the entries record; then the hard state. Entries go before
//! the hard state so that a durable hard state implies its commit index is in the log (a torn
//! tail only ever removes a suffix). [`Durable::sync`] is one `fdatasync`. A segment is rolled
//! at a batch boundary once it holds `segment_bytes`; the old one is fsynced first.
//!
//! # Recovery ([`Durable::open`])
//!
//! 1. Segments are read in order, checking the sequence numbers, the CRC chain and the
//!    framing; the last one's torn tail is copied aside and cut (see [`crate::wal`] for what is
//!    torn and what is refused).
//! 2. The records are replayed into a log model: entries records truncate and append (a
//!    record that starts above the model's last index + 1 is a gap: refused), installing
//!    markers replace the log, the last hard state wins.
//! 3. The snapshot: the WAL's newest marker (highest index) names the snapshot the log stands
//!    on. Its file is used if it loads (magic, CRCs, metadata matching). If it is missing or
//!    damaged, an older snapshot file is used instead **only if the WAL still holds every
//!    entry after it up to the marker's index** (it does after local compactions, since
//!    compaction keeps the previous snapshot and the WAL from it; it does not after an
//!    installed snapshot, which replaced the log). Otherwise recovery is refused, naming the
//!    snapshot and why. Snapshot files newer than the newest marker are ignored (saved, but the
//!    WAL record naming them never became durable); the WAL still covers their entries.
//! 4. The last segment is fsynced: what recovery read may have been only in the page cache
//!    (a process killed before its fsync), and the node acts on it as durable.
//! 5. The storage: `apply_snapshot(snapshot)`, `append(entries after it)`,
//!    `set_hard_state(last hard state)`. A hard state whose commit index is beyond the last
//!    recovered index is refused: entries it committed are missing (a lost last segment).
//!
//! # Compaction ([`Durable::compact_to`])
//!
//! Records a (non-installing) marker for a snapshot already saved with
//! [`SnapshotDir::save`], fsyncs, then keeps that snapshot and the one before it, removes older
//! snapshot files, and removes the WAL segments wholly at or below the *previous* snapshot's
//! index (none if there is no previous one), so that a damaged or missing newest snapshot, or
//! a lost newest marker, can still fall back to the previous snapshot. The WAL thus holds
//! about two snapshot intervals of entries. (A founding member always has a previous one: its
//! bootstrap snapshot at index 1; a joining member has the snapshot it was sent.)
//!
//! Invariants:
//! 1. Nothing is removed (snapshot file or segment) before the marker that makes it
//!    unnecessary is fsynced.
//! 2. After any write or fsync error the `Durable` accepts nothing more (fail-stop).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use prost::Message;
use raft_core::wire::SnapshotMetadata;
use raft_core::{Entry, HardState, MemStorage, PersistBatch, Snapshot, Storage};

use crate::snapfile::{SnapError, SnapshotDir};
use crate::wal::reader::{Record, SegmentRead};
use crate::wal::writer::{Writer, WriterHooks};
use crate::wal::{
    self, SegmentFile, SnapshotMarker, TYPE_ENTRIES, TYPE_HARD_STATE, TYPE_SNAPSHOT_MARKER,
    WalError,
};

/// How a [`Durable`] writes.
#[derive(Clone, Debug)]
pub struct DiskOptions {
    /// A segment is rolled once it holds this many bytes (default 64 MiB).
    pub segment_bytes: u64,
    /// Test hook: WAL writes fail with an injected "no space left on device" once this many
    /// WAL bytes were written since open (the write that crosses it is written in part).
    pub fail_after_bytes: Option<u64>,
    /// Test hook: after each fsync (and the one at open), write
    /// `"<segment file name> <offset>\n"` to `<data-dir>/wal/SYNCED` (written aside and
    /// renamed, not fsynced: a kill -9 keeps the page cache). The
    /// power-loss test reads it after killing a member and cuts that segment back to the
    /// offset (removing later segments) to simulate losing everything that was not fsynced.
    pub report_synced: bool,
}

impl Default for DiskOptions {
    fn default() -> DiskOptions {
        DiskOptions {
            segment_bytes: 64 << 20,
            fail_after_bytes: None,
            report_synced: false,
        }
    }
}

/// Why the durable state could not be opened, written or recovered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// A WAL error (I/O, damage, injected disk full, fail-stop).
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A snapshot file error.
    #[error(transparent)]
    Snap(#[from] SnapError),
    /// An OS error on the data directory itself.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The WAL and the snapshot files do not add up to a state recovery can trust.
    #[error("{}: {problem}", path.display())]
    Recovery {
        /// The file (or directory) at fault.
        path: PathBuf,
        /// What is wrong and what was expected.
        problem: String,
    },
    /// A call that needs a different state ([`Durable::bootstrap`] on a member with state,
    /// [`Durable::compact_to`] for a snapshot that was not saved).
    #[error("{0}")]
    Misuse(String),
}

/// A torn tail that recovery cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repair {
    /// The segment that was cut.
    pub segment: PathBuf,
    /// Where it was cut (its new length).
    pub offset: u64,
    /// How many bytes were cut.
    pub cut_bytes: u64,
    /// The copy of the whole segment taken before the cut (`None` in read-only checks).
    pub copy: Option<PathBuf>,
    /// Which torn rule matched.
    pub reason: String,
}

/// What recovery read and repaired, for one log line ([`fmt::Display`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files read.
    pub segments: usize,
    /// Records read, segment headers included.
    pub records: u64,
    /// The snapshot the storage stands on (index, term).
    pub snapshot: Option<(u64, u64)>,
    /// The recovered log's first and last index.
    pub first_index: u64,
    /// The recovered log's last index.
    pub last_index: u64,
    /// The recovered hard state.
    pub hard_state: HardState,
    /// The torn tail cut off, if any.
    pub repaired: Option<Repair>,
    /// Anything else worth a line: snapshots skipped and why, orphan files.
    pub notes: Vec<String>,
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wal: {} segments, {} records",
            self.segments, self.records
        )?;
        match self.snapshot {
            Some((i, t)) => write!(f, ", snapshot index {i} term {t}")?,
            None => write!(f, ", no snapshot")?,
        }
        write!(
            f,
            ", log [{}, {}], hard state term {} vote {} commit {}",
            self.first_index,
            self.last_index,
            self.hard_state.term,
            self.hard_state.vote,
            self.hard_state.commit
        )?;
        if let Some(r) = &self.repaired {
            write!(
                f,
                "; torn tail: {} cut at offset {} ({} bytes, {})",
                r.segment.display(),
                r.offset,
                r.cut_bytes,
                r.reason
            )?;
            match &r.copy {
                Some(c) => write!(f, ", copied to {}", c.display())?,
                None => write!(f, ", would be cut on open")?,
            }
        }
        for n in &self.notes {
            write!(f, "; {n}")?;
        }
        Ok(())
    }
}

/// The state a member restarts from.
#[derive(Debug)]
pub struct Recovered {
    /// Snapshot installed (with its data), entries after it, hard state.
    pub storage: MemStorage,
    /// The newest durable snapshot (the state machine restores from its data).
    pub snapshot: Option<Snapshot>,
    /// What was read and repaired.
    pub report: RecoveryReport,
}

/// A member's WAL and snapshot directory, open for writing.
#[derive(Debug)]
pub struct Durable {
    dir: PathBuf,
    opts: DiskOptions,
    wal: Writer,
    snaps: SnapshotDir,
    /// The last hard state written (repeated after every segment header).
    hard_state: Option<HardState>,
    /// The newest snapshot marker written (repeated after every segment header).
    marker: Option<SnapshotMarker>,
    /// The log's last index as written (the first index of the next segment is this + 1).
    last_index: u64,
    /// Whether anything but segment headers was ever written (for bootstrap).
    has_state: bool,
    payload: Vec<u8>,
}

impl Durable {
    /// Opens `dir` (creating it). `Ok((d, None))` when it holds no state (a fresh member).
    /// A torn tail of the last segment is copied aside, cut off and named in the report. Any
    /// other damage is an error naming the file, the offset and what was expected.
    ///
    /// # Errors
    /// [`DiskError`]: I/O, WAL damage, or a snapshot recovery cannot use.
    pub fn open(dir: &Path, opts: DiskOptions) -> Result<(Durable, Option<Recovered>), DiskError> {
        let wal_dir = dir.join("wal");
        for d in [dir, wal_dir.as_path()] {
            std::fs::create_dir_all(d).map_err(|e| DiskError::Io {
                path: d.to_path_buf(),
                op: "create directory",
                source: e,
            })?;
        }
        let snaps = SnapshotDir::new(dir.join("snap"));
        snaps.prepare()?;
        wal::sync_dir(dir).map_err(|e| DiskError::Io {
            path: dir.to_path_buf(),
            op: "fsync directory",
            source: e,
        })?;
        let loaded = load(dir, &snaps, true)?;
        let hooks = WriterHooks {
            fail_after_bytes: opts.fail_after_bytes,
            report_synced: opts.report_synced,
            prealloc_chunk_bytes: opts.segment_bytes.next_multiple_of(4096).min(1 << 20),
        };
        let Loaded {
            recovered,
            mut segments,
            tail,
            hard_state,
            marker,
            last_index,
        } = loaded;
        let carry;
        let wal = match (segments.last(), tail) {
            (None, _) => {
                carry = false;
                Writer::create(&wal_dir, Vec::new(), 1, last_index + 1, 0, hooks)?
            }
            (Some(_), Tail::Rewrite { prev_crc }) => {
                // The last segment was cut inside its header: write it afresh (same name).
                let Some(last) = segments.pop() else {
                    unreachable!("segments is not empty in this arm")
                };
                carry = true;
                Writer::create(
                    &wal_dir,
                    segments,
                    last.seq,
                    last.first_index,
                    prev_crc,
                    hooks,
                )?
            }
            (Some(_), Tail::Resume { offset, crc }) => {
                carry = false;
                Writer::resume(&wal_dir, segments, offset, crc, hooks)?
            }
        };
        let mut d = Durable {
            dir: dir.to_path_buf(),
            opts,
            wal,
            snaps,
            hard_state,
            marker,
            last_index,
            has_state: recovered.is_some(),
            payload: Vec::new(),
        };
        if carry {
            d.push_carry()?;
        }
        // What was recovered may be only in the page cache (a process killed before its
        // fsync): make it durable before the node acknowledges anything based on it.
        d.wal.sync_all_now()?;
        Ok((d, recovered))
    }

    /// Writes a persist batch in its order (snapshot file and marker, entries, hard state),
    /// without fsync.
    ///
    /// # Errors
    /// [`DiskError`]; after a WAL error the `Durable` is failed for good.
    pub fn write(&mut self, batch: &PersistBatch) -> Result<(), DiskError> {
        self.write_parts(
            batch.hard_state.as_ref(),
            batch.snapshot.as_ref(),
            &batch.entries,
        )
    }

    /// [`Durable::write`] on the parts of a batch: a snapshot that replaces the log, entries
    /// (the log is truncated after `entries[0].index - 1` first), a hard state.
    ///
    /// # Errors
    /// As [`Durable::write`].
    pub fn write_parts(
        &mut self,
        hard_state: Option<&HardState>,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
    ) -> Result<(), DiskError> {
        if hard_state.is_none() && snapshot.is_none() && entries.is_empty() {
            return Ok(());
        }
        if self.wal.segment_bytes() >= self.opts.segment_bytes {
            self.wal.roll(self.last_index + 1)?;
            self.push_carry()?;
        }
        if let Some(snap) = snapshot {
            let meta = snap
                .metadata
                .as_ref()
                .ok_or(DiskError::Snap(SnapError::NoMetadata))?;
            self.snaps.save(snap)?;
            let m = SnapshotMarker {
                index: meta.index,
                term: meta.term,
                installed: true,
            };
            self.wal.push(TYPE_SNAPSHOT_MARKER, &m.encode_to_vec())?;
            self.marker = Some(m);
            self.last_index = meta.index;
        }
        if let Some(first) = entries.first() {
            self.payload.clear();
            prost::encoding::uint64::encode(1, &(first.index - 1), &mut self.payload);
            for e in entries {
                prost::encoding::message::encode(2, e, &mut self.payload);
            }
            self.wal.push(TYPE_ENTRIES, &self.payload)?;
            self.last_index = entries[entries.len() - 1].index;
        }
        if let Some(hs) = hard_state {
            self.wal.push(TYPE_HARD_STATE, &hs.encode_to_vec())?;
            self.hard_state = Some(*hs);
        }
        self.has_state = true;
        self.wal.flush()?;
        Ok(())
    }

    /// One `fdatasync` of the WAL (none if nothing was written since the last one). Group
    /// commit: write several batches, then sync once.
    ///
    /// # Errors
    /// [`DiskError::Wal`]; the `Durable` is failed afterwards (never retry an fsync).
    pub fn sync(&mut self) -> Result<(), DiskError> {
        self.wal.sync()?;
        Ok(())
    }

    /// Founds a fresh member on `snapshot` (usually `MemStorage::new_with_conf_state`'s
    /// snapshot at index 1, term 1): saves the snapshot file, records it and the hard state
    /// `{term: snapshot term, vote: 0, commit: snapshot index}`, and fsyncs. A restart then
    /// recovers exactly that storage.
    ///
    /// # Errors
    /// [`DiskError::Misuse`] if the member already has state; I/O errors.
    pub fn bootstrap(&mut self, snapshot: &Snapshot) -> Result<(), DiskError> {
        if self.has_state {
            return Err(DiskError::Misuse(format!(
                "bootstrap of {}: the member already has durable state",
                self.dir.display()
            )));
        }
        let hs = HardState {
            term: snapshot.term(),
            vote: 0,
            commit: snapshot.index(),
        };
        self.write_parts(Some(&hs), Some(snapshot), &[])?;
        self.sync()
    }

    /// Records a snapshot the local state machine made (its file already saved with
    /// [`SnapshotDir::save`]) in the WAL, fsyncs, then removes snapshot files older than the
    /// previous one and the WAL segments wholly at or below the previous snapshot's index
    /// (nothing if there is no previous snapshot file).
    ///
    /// # Errors
    /// [`DiskError::Misuse`] if no snapshot file for `meta` exists; I/O errors.
    pub fn compact_to(&mut self, meta: &SnapshotMetadata) -> Result<(), DiskError> {
        let files = self.snaps.list()?;
        if !files
            .iter()
            .any(|f| f.index == meta.index && f.term == meta.term)
        {
            return Err(DiskError::Misuse(format!(
                "compact_to index {} term {}: no such snapshot file in {}; save it first",
                meta.index,
                meta.term,
                self.snaps.path().display()
            )));
        }
        if self.wal.segment_bytes() >= self.opts.segment_bytes {
            self.wal.roll(self.last_index + 1)?;
            self.push_carry()?;
        }
        let m = SnapshotMarker {
            index: meta.index,
            term: meta.term,
            installed: false,
        };
        self.wal.push(TYPE_SNAPSHOT_MARKER, &m.encode_to_vec())?;
        if self.marker.is_none_or(|old| old.index <= m.index) {
            self.marker = Some(m);
        }
        self.wal.sync()?;
        // Keep this snapshot and the newest one below it; files above it (a save in
        // progress on another thread) are left alone.
        let mut older: Vec<_> = files.into_iter().filter(|f| f.index < meta.index).collect();
        let previous = older.pop();
        for f in &older {
            self.snaps.remove(f)?;
        }
        if !older.is_empty() {
            self.snaps.sync()?;
        }
        // The WAL is kept from the previous snapshot on, so that losing the newest snapshot
        // file, or the marker just written (a tail cut by hand), still leaves a snapshot the
        // WAL covers. Without a previous snapshot nothing is removed yet.
        if let Some(p) = previous {
            self.wal.remove_segments_through(p.index)?;
        }
        Ok(())
    }

    /// The snapshot directory (clone it to save snapshots from another thread).
    pub fn snapshot_dir(&self) -> SnapshotDir {
        self.snaps.clone()
    }

    /// The segment being written and the offset where the next record goes (the end of the
    /// records written so far; the file may be longer by its preallocated fill).
    pub fn wal_end(&self) -> (&Path, u64) {
        (self.wal.current_path(), self.wal.segment_bytes())
    }

    /// The WAL segments present, oldest first.
    pub fn segments(&self) -> &[SegmentFile] {
        self.wal.segments()
    }

    /// Pushes the records that follow every segment header: hard state, newest marker.
    fn push_carry(&mut self) -> Result<(), DiskError> {
        if let Some(hs) = self.hard_state {
            self.wal.push(TYPE_HARD_STATE, &hs.encode_to_vec())?;
        }
        if let Some(m) = self.marker {
            let m = SnapshotMarker {
                installed: false,
                ..m
            };
            self.wal.push(TYPE_SNAPSHOT_MARKER, &m.encode_to_vec())?;
        }
        Ok(())
    }
}

/// Checks a data directory without changing it: what [`Durable::open`] would recover (a torn
/// tail is reported as "would be cut").
///
/// # Errors
/// As [`Durable::open`].
pub fn verify(dir: &Path) -> Result<Option<Recovered>, DiskError> {
    let snaps = SnapshotDir::new(dir.join("snap"));
    Ok(load(dir, &snaps, false)?.recovered)
}

/// Where writing resumes after recovery.
enum Tail {
    /// Append to the last segment at `offset`, chaining from `crc`.
    Resume { offset: u64, crc: u32 },
    /// The last segment has no valid header: write it again, chaining from `prev_crc`.
    Rewrite { prev_crc: u32 },
}

struct Loaded {
    recovered: Option<Recovered>,
    segments: Vec<SegmentFile>,
    tail: Tail,
    hard_state: Option<HardState>,
    marker: Option<SnapshotMarker>,
    last_index: u64,
}

/// The log as replayed from the WAL.
#[derive(Default)]
struct LogModel {
    /// Index of `entries[0]` (meaningful when `entries` is non-empty, or after an installing
    /// marker: then the next entry must be `first`).
    first: u64,
    entries: Vec<Entry>,
    /// The newest installing marker: entries at or below it are replaced by the snapshot.
    floor: u64,
}

impl LogModel {
    fn last(&self) -> Option<u64> {
        self.entries.last().map(|e| e.index)
    }

    fn term(&self, index: u64) -> Option<u64> {
        let first = self.entries.first()?.index;
        if index < first {
            return None;
        }
        let k = usize::try_from(index - first).ok()?;
        self.entries.get(k).map(|e| e.term)
    }

    fn install(&mut self, index: u64) {
        self.entries.clear();
        self.floor = index;
        self.first = index + 1;
    }

    /// Truncates after `entries[0].index - 1` and appends; `Err(expected)` on a gap.
    fn append(&mut self, mut entries: Vec<Entry>) -> Result<(), u64> {
        entries.retain(|e| e.index > self.floor);
        let Some(x) = entries.first().map(|e| e.index) else {
            return Ok(());
        };
        match self.last() {
            None => {
                if self.floor > 0 && x != self.floor + 1 {
                    return Err(self.floor + 1);
                }
                self.first = x;
                self.entries = entries;
            }
            Some(last) => {
                if x > last + 1 {
                    return Err(last + 1);
                }
                if x < self.first {
                    self.first = x;
                    self.entries = entries;
                } else {
                    // x - first <= entries.len(), checked above.
                    self.entries.truncate((x - self.first) as usize);
                    self.entries.extend(entries);
                }
            }
        }
        Ok(())
    }
}

fn load(dir: &Path, snaps: &SnapshotDir, repair: bool) -> Result<Loaded, DiskError> {
    let wal_dir = dir.join("wal");
    let segments = wal::list_segments(&wal_dir)?;
    for w in segments.windows(2) {
        if w[1].seq != w[0].seq + 1 {
            return Err(WalError::corrupt(
                &w[1].path,
                0,
                format!(
                    "segment sequence {} follows {}: expected {} (segment {} is missing)",
                    w[1].seq,
                    w[0].seq,
                    w[0].seq + 1,
                    wal::segment_name(w[0].seq + 1, 0).replace("-0000000000000000.wal", "-*.wal")
                ),
            )
            .into());
        }
    }
    let mut reads: Vec<SegmentRead> = Vec::with_capacity(segments.len());
    let mut prev = None;
    for (k, seg) in segments.iter().enumerate() {
        let r = wal::read_segment(seg, prev, k + 1 == segments.len())?;
        prev = Some(r.last_crc);
        reads.push(r);
    }
    let mut report = RecoveryReport {
        segments: reads.len(),
        ..RecoveryReport::default()
    };
    let mut tail = Tail::Resume { offset: 0, crc: 0 };
    if let Some(last) = reads.last() {
        if let Some(torn) = &last.torn {
            let path = &last.file.path;
            let copy = if repair {
                Some(cut_torn_tail(path, torn.offset)?)
            } else {
                None
            };
            report.repaired = Some(Repair {
                segment: path.clone(),
                offset: torn.offset,
                cut_bytes: torn.file_bytes - torn.offset,
                copy,
                reason: torn.reason.clone(),
            });
        }
        tail = if last.records.is_empty() {
            let prev_crc = if reads.len() >= 2 {
                reads[reads.len() - 2].last_crc
            } else {
                0
            };
            Tail::Rewrite { prev_crc }
        } else {
            Tail::Resume {
                offset: last.valid_bytes,
                crc: last.last_crc,
            }
        };
    }

    // Replay.
    let mut model = LogModel::default();
    let mut hard_state: Option<HardState> = None;
    let mut newest: Option<(SnapshotMarker, PathBuf, u64)> = None;
    let mut has_state = false;
    // Records are moved out as they are replayed: a WAL is read once.
    for r in &mut reads {
        for rec in &mut r.records {
            report.records += 1;
            match &mut rec.record {
                Record::SegmentHeader(_) => {}
                Record::HardState(hs) => {
                    has_state = true;
                    hard_state = Some(*hs);
                }
                Record::SnapshotMarker(m) => {
                    has_state = true;
                    if m.installed {
                        model.install(m.index);
                    }
                    if newest.as_ref().is_none_or(|(n, _, _)| n.index <= m.index) {
                        newest = Some((*m, r.file.path.clone(), rec.offset));
                    }
                }
                Record::Entries(er) => {
                    has_state = true;
                    if let Err(expected) = model.append(std::mem::take(&mut er.entries)) {
                        return Err(WalError::corrupt(
                            &r.file.path,
                            rec.offset,
                            format!(
                                "entries record starts at index {}, expected at most {expected} \
                                 (entries are missing before it)",
                                er.truncate_after + 1
                            ),
                        )
                        .into());
                    }
                }
            }
        }
    }

    let snap_files = snaps.list()?;
    let marker = newest.as_ref().map(|(m, _, _)| *m);
    if !has_state {
        if !snap_files.is_empty() {
            report.notes.push(format!(
                "{} snapshot file(s) in {} ignored: the WAL records none of them",
                snap_files.len(),
                snaps.path().display()
            ));
        }
        return Ok(Loaded {
            recovered: None,
            segments,
            tail,
            hard_state: None,
            marker: None,
            last_index: 0,
        });
    }

    // The snapshot.
    let snapshot = match &newest {
        None => {
            if let (Some(first), false) = (model.entries.first(), model.entries.is_empty())
                && first.index > 1
            {
                return Err(DiskError::Recovery {
                    path: wal_dir.clone(),
                    problem: format!(
                        "the WAL's entries begin at index {} but it records no snapshot; \
                             expected entries from index 1",
                        first.index
                    ),
                });
            }
            None
        }
        Some((m, mpath, moff)) => Some(choose_snapshot(
            snaps,
            &snap_files,
            m,
            mpath,
            *moff,
            &model,
            &mut report,
        )?),
    };

    // The storage.
    let mut storage = MemStorage::new();
    let snap_index = snapshot.as_ref().map_or(0, Snapshot::index);
    if let Some(s) = &snapshot {
        storage
            .apply_snapshot(s.clone())
            .map_err(|e| DiskError::Recovery {
                path: snaps.path().to_path_buf(),
                problem: format!("snapshot index {} cannot be installed: {e}", s.index()),
            })?;
    }
    let mut after = std::mem::take(&mut model.entries);
    after.retain(|e| e.index > snap_index);
    storage
        .append_from(&mut after)
        .map_err(|e| DiskError::Recovery {
            path: wal_dir.clone(),
            problem: format!("entries after snapshot index {snap_index} do not connect: {e}"),
        })?;
    let last_index = storage.last_index().unwrap_or(snap_index);
    if let Some(mut hs) = hard_state {
        if hs.commit > last_index {
            return Err(DiskError::Recovery {
                path: wal_dir.clone(),
                problem: format!(
                    "hard state commit index {} is beyond the last recovered index {last_index}: \
                     committed entries are missing (a lost or truncated last segment?)",
                    hs.commit
                ),
            });
        }
        hs.commit = hs.commit.max(snap_index);
        storage.set_hard_state(hs);
    }
    report.snapshot = snapshot.as_ref().map(|s| (s.index(), s.term()));
    report.first_index = storage.first_index().unwrap_or(snap_index + 1);
    report.last_index = last_index;
    report.hard_state = storage.hard_state();
    let newer: Vec<_> = snap_files
        .iter()
        .filter(|f| marker.is_none_or(|m| f.index > m.index))
        .collect();
    if !newer.is_empty() {
        report.notes.push(format!(
            "{} snapshot file(s) the WAL never recorded ignored (newest: {})",
            newer.len(),
            newer[newer.len() - 1].path.display()
        ));
    }
    Ok(Loaded {
        recovered: Some(Recovered {
            storage,
            snapshot,
            report,
        }),
        segments,
        tail,
        hard_state,
        marker,
        last_index,
    })
}

/// The snapshot recovery stands on: the newest marker's file, or an older file the WAL still
/// covers (see the module docs).
fn choose_snapshot(
    snaps: &SnapshotDir,
    files: &[crate::snapfile::SnapshotFile],
    m: &SnapshotMarker,
    mpath: &Path,
    moff: u64,
    model: &LogModel,
    report: &mut RecoveryReport,
) -> Result<Snapshot, DiskError> {
    let mut why = Vec::new();
    let mut found_exact = false;
    for f in files.iter().rev().filter(|f| f.index <= m.index) {
        if f.index == m.index && f.term != m.term {
            why.push(format!(
                "{} has term {}, the WAL's marker term {}",
                f.path.display(),
                f.term,
                m.term
            ));
            continue;
        }
        found_exact |= f.index == m.index;
        let snap = match snaps.load(f) {
            Ok(s) => s,
            Err(e) => {
                why.push(format!("{e}"));
                continue;
            }
        };
        // Coverage: every entry after the snapshot up to the marker's index is in the WAL,
        // and the WAL agrees with the snapshot's term where they overlap.
        let s = f.index;
        if s < m.index {
            let covered = model.entries.first().is_some_and(|e| e.index <= s + 1)
                && model.last().is_some_and(|l| l >= m.index);
            if !covered {
                why.push(format!(
                    "older snapshot {} cannot stand in: the WAL does not hold every entry from \
                     index {} to {}",
                    f.path.display(),
                    s + 1,
                    m.index
                ));
                continue;
            }
        } else if model.entries.first().is_some_and(|e| e.index > s + 1) {
            return Err(DiskError::Recovery {
                path: mpath.to_path_buf(),
                problem: format!(
                    "the WAL's entries begin at index {} but its snapshot is at index {s}: \
                     entries {} to {} are missing",
                    model.entries[0].index,
                    s + 1,
                    model.entries[0].index - 1
                ),
            });
        }
        if let Some(t) = model.term(s)
            && t != f.term
        {
            why.push(format!(
                "{} has term {} but the WAL's entry {s} has term {t}",
                f.path.display(),
                f.term
            ));
            continue;
        }
        if f.index < m.index || !why.is_empty() {
            report.notes.push(format!(
                "using snapshot {} instead of the newest ({}); {}",
                f.path.display(),
                m.index,
                why.join("; ")
            ));
        }
        return Ok(snap);
    }
    if !found_exact {
        why.insert(
            0,
            format!(
                "no file {} in {}",
                crate::snapfile::snapshot_name(m.index, m.term),
                snaps.path().display()
            ),
        );
    }
    Err(DiskError::Recovery {
        path: snaps.path().to_path_buf(),
        problem: format!(
            "no usable snapshot: the WAL records snapshot index {} term {} (marker in {} at \
             offset {moff}); {}",
            m.index,
            m.term,
            mpath.display(),
            why.join("; ")
        ),
    })
}

/// Copies `path` to `<path>.broken` (or `.broken.N`), fsyncs the copy and the directory, then
/// cuts `path` to `offset` and fsyncs it. Returns the copy's path.
fn cut_torn_tail(path: &Path, offset: u64) -> Result<PathBuf, DiskError> {
    let io = |p: &Path, op: &'static str, e: io::Error| DiskError::Wal(WalError::io(p, op, e));
    let mut copy = PathBuf::from(format!("{}.broken", path.display()));
    let mut n = 1;
    while copy.exists() {
        copy = PathBuf::from(format!("{}.broken.{n}", path.display()));
        n += 1;
    }
    std::fs::copy(path, &copy).map_err(|e| io(&copy, "copy torn segment aside", e))?;
    std::fs::File::open(&copy)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(&copy, "fsync", e))?;
    let parent = path.parent().unwrap_or(Path::new("."));
    wal::sync_dir(parent).map_err(|e| io(parent, "fsync directory", e))?;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io(path, "open for repair", e))?;
    f.set_len(offset)
        .map_err(|e| io(path, "truncate torn tail", e))?;
    f.sync_all().map_err(|e| io(path, "fsync", e))?;
    Ok(copy)
}
