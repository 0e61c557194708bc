//! Appending to the WAL: records are framed into a buffer, written with one `write` per batch,
//! and made durable by [`Writer::sync`] (one `fdatasync`).
//!
//! Invariants:
//! 1. `offset` is the length of the current (last) segment as written by this process, and
//!    `crc` is the chain value after its last record; both move only when bytes reach the file.
//! 2. A segment is created only after the previous one is fsynced, so only the last segment
//!    can have an unsynced (possibly torn) tail after a power loss.
//! 3. After any write or fsync error the writer is failed for good: every later call returns
//!    [`WalError::Failed`] (fail-stop; an fsync is never retried).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{
    SegmentFile, SegmentHeader, TYPE_SEGMENT_HEADER, WalError, encode_record, segment_name,
    sync_dir,
};

/// Test hooks and limits for a [`Writer`].
#[derive(Clone, Debug, Default)]
pub struct WriterHooks {
    /// Writes fail (after writing what fits) once this many bytes were written since open.
    pub fail_after_bytes: Option<u64>,
    /// After each fsync, write `"<segment file name> <offset>\n"` to `wal/SYNCED`.
    pub report_synced: bool,
    /// Keep at least a quarter of this many fill bytes written ahead of the records (0: no
    /// preallocation). Appending then rewrites allocated blocks instead of growing the file,
    /// and an fdatasync flushes the data without a journal commit for the new size.
    pub prealloc_chunk_bytes: u64,
}

/// The WAL's appender.
#[derive(Debug)]
pub struct Writer {
    wal_dir: PathBuf,
    file: File,
    /// The segments present, in order; the last is the one being written.
    segments: Vec<SegmentFile>,
    offset: u64,
    /// The current segment's length: records plus the fill written ahead of them.
    prealloc_end: u64,
    crc: u32,
    /// Records framed but not yet written.
    buf: Vec<u8>,
    /// The chain value after the last record in `buf`.
    buf_crc: u32,
    written_bytes: u64,
    hooks: WriterHooks,
    dirty: bool,
    failed: Option<String>,
}

impl Writer {
    /// Creates segment `seq` (first index `first_index`, chained from `prev_crc`) as a new,
    /// empty WAL's first segment, or to replace a last segment that was cut to nothing.
    /// `segments` are the ones before it (kept in order for compaction).
    ///
    /// # Errors
    /// [`WalError::Io`] if the file cannot be created or the directory fsynced.
    pub fn create(
        wal_dir: &Path,
        mut segments: Vec<SegmentFile>,
        seq: u64,
        first_index: u64,
        prev_crc: u32,
        hooks: WriterHooks,
    ) -> Result<Writer, WalError> {
        let path = wal_dir.join(segment_name(seq, first_index));
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| WalError::io(&path, "create segment", e))?;
        sync_dir(wal_dir).map_err(|e| WalError::io(wal_dir, "fsync directory", e))?;
        segments.push(SegmentFile {
            seq,
            first_index,
            path,
        });
        let mut w = Writer {
            wal_dir: wal_dir.to_path_buf(),
            file,
            segments,
            offset: 0,
            prealloc_end: 0,
            crc: prev_crc,
            buf: Vec::new(),
            buf_crc: prev_crc,
            written_bytes: 0,
            hooks,
            dirty: true,
            failed: None,
        };
        w.push_header(seq, first_index, prev_crc)?;
        Ok(w)
    }

    /// Continues the last of `segments` at `offset`, whose last record has CRC `crc`.
    ///
    /// # Errors
    /// [`WalError::Io`] if the file cannot be opened.
    pub fn resume(
        wal_dir: &Path,
        segments: Vec<SegmentFile>,
        offset: u64,
        crc: u32,
        hooks: WriterHooks,
    ) -> Result<Writer, WalError> {
        let last = segments
            .last()
            .ok_or_else(|| WalError::corrupt(wal_dir, 0, "no segment to resume"))?;
        let file = OpenOptions::new()
            .write(true)
            .open(&last.path)
            .map_err(|e| WalError::io(&last.path, "open segment", e))?;
        let prealloc_end = file
            .metadata()
            .map_err(|e| WalError::io(&last.path, "stat segment", e))?
            .len()
            .max(offset);
        Ok(Writer {
            wal_dir: wal_dir.to_path_buf(),
            file,
            segments,
            offset,
            prealloc_end,
            crc,
            buf: Vec::new(),
            buf_crc: crc,
            written_bytes: 0,
            hooks,
            dirty: false,
            failed: None,
        })
    }

    fn push_header(&mut self, seq: u64, first_index: u64, prev_crc: u32) -> Result<(), WalError> {
        let h = SegmentHeader {
            prev_crc,
            seq,
            first_index,
        };
        self.push(TYPE_SEGMENT_HEADER, &h.encode())
    }

    /// Frames a record into the write buffer (nothing reaches the file until
    /// [`Writer::flush`]).
    ///
    /// # Errors
    /// [`WalError::Failed`] after an earlier failure; [`WalError::RecordTooLarge`].
    pub fn push(&mut self, rtype: u8, payload: &[u8]) -> Result<(), WalError> {
        self.check()?;
        self.buf_crc = encode_record(&mut self.buf, self.buf_crc, rtype, payload)?;
        Ok(())
    }

    /// Writes the buffered records to the current segment (no fsync).
    ///
    /// # Errors
    /// [`WalError::Io`] or [`WalError::InjectedNoSpace`]; the writer is failed afterwards.
    pub fn flush(&mut self) -> Result<(), WalError> {
        self.check()?;
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.current_path().to_path_buf();
        let mut n = self.buf.len();
        let mut injected = None;
        if let Some(limit) = self.hooks.fail_after_bytes {
            let room = limit.saturating_sub(self.written_bytes);
            if (n as u64) > room {
                // The disk fills in the middle of the write: what fits is written, as a real
                // short write would leave it.
                n = room as usize;
                injected = Some(WalError::InjectedNoSpace {
                    path: path.clone(),
                    offset: self.offset + room,
                    limit,
                });
            }
        }
        let res = self.file.write_all_at(&self.buf[..n], self.offset);
        if let Err(e) = res {
            return Err(self.fail(WalError::io(&path, "write", e)));
        }
        self.dirty = true;
        self.written_bytes += n as u64;
        if let Some(err) = injected {
            self.offset += n as u64;
            return Err(self.fail(err));
        }
        self.offset += n as u64;
        self.crc = self.buf_crc;
        self.buf.clear();
        let chunk = self.hooks.prealloc_chunk_bytes;
        if chunk > 0 && self.offset + chunk / 4 > self.prealloc_end {
            self.preallocate(self.offset + chunk)?;
        }
        Ok(())
    }

    /// Writes fill bytes from the current end of the file up to `end`. Preallocation is an
    /// optimisation: if it fails (a nearly full disk), the writer stops preallocating and
    /// goes on appending; the records' own writes report a full disk when it is one.
    fn preallocate(&mut self, end: u64) -> Result<(), WalError> {
        static FILL: [u8; 64 << 10] = [super::PREALLOC_FILL; 64 << 10];
        let mut at = self.prealloc_end.max(self.offset);
        self.dirty = true;
        while at < end {
            let n = (end - at).min(FILL.len() as u64) as usize;
            if self.file.write_all_at(&FILL[..n], at).is_err() {
                self.hooks.prealloc_chunk_bytes = 0;
                // Part of the fill may be there; whatever is, is fill, which reads as the end.
                self.prealloc_end = match self.file.metadata() {
                    Ok(m) => m.len().max(self.offset),
                    Err(_) => self.offset,
                };
                return Ok(());
            }
            at += n as u64;
        }
        self.prealloc_end = end;
        Ok(())
    }

    /// Makes everything written so far durable: one `fdatasync` of the current segment (none
    /// if nothing was written since the last one).
    ///
    /// # Errors
    /// [`WalError::Io`]; the writer is failed afterwards (an fsync is never retried).
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.flush()?;
        if !self.dirty {
            return Ok(());
        }
        if let Err(e) = self.file.sync_data() {
            let path = self.current_path().to_path_buf();
            return Err(self.fail(WalError::io(&path, "fdatasync", e)));
        }
        self.dirty = false;
        self.report_synced();
        Ok(())
    }

    fn report_synced(&self) {
        if !self.hooks.report_synced {
            return;
        }
        let name = self
            .current_path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Written aside and renamed, so that a kill -9 at any point leaves a complete report
        // (the previous one or this one; the previous one is only ever behind by bytes this
        // sync made durable, none of which is acknowledged before this returns). A failed
        // report is ignored: it is a test hook, not part of the log.
        let tmp = self.wal_dir.join("SYNCED.tmp");
        if std::fs::write(&tmp, format!("{name} {}\n", self.offset)).is_ok() {
            let _ = std::fs::rename(&tmp, self.wal_dir.join("SYNCED"));
        }
    }

    /// Fsyncs the current segment whether or not this process wrote to it: after a restart,
    /// what recovery read may still be only in the page cache (the previous process was
    /// killed before its fsync); it must be durable before the node acts on it.
    ///
    /// # Errors
    /// [`WalError::Io`]; the writer is failed afterwards.
    pub fn sync_all_now(&mut self) -> Result<(), WalError> {
        self.flush()?;
        if let Err(e) = self.file.sync_all() {
            let path = self.current_path().to_path_buf();
            return Err(self.fail(WalError::io(&path, "fsync", e)));
        }
        self.dirty = false;
        self.report_synced();
        Ok(())
    }

    /// Starts a new segment whose first index is `first_index`: the current one is written
    /// and fsynced first, the new one is created and the directory fsynced. The new segment's
    /// header is buffered; push the records that must start every segment right after.
    ///
    /// # Errors
    /// [`WalError::Io`]; the writer is failed afterwards.
    pub fn roll(&mut self, first_index: u64) -> Result<(), WalError> {
        self.flush()?;
        // The finished segment keeps no fill: only the last segment may end in fill bytes.
        if self.prealloc_end > self.offset {
            if let Err(e) = self.file.set_len(self.offset) {
                let path = self.current_path().to_path_buf();
                return Err(self.fail(WalError::io(&path, "truncate preallocation", e)));
            }
            self.prealloc_end = self.offset;
            self.dirty = true;
        }
        if self.dirty {
            if let Err(e) = self.file.sync_all() {
                let path = self.current_path().to_path_buf();
                return Err(self.fail(WalError::io(&path, "fsync", e)));
            }
            self.dirty = false;
            self.report_synced();
        }
        let seq = self.segments.last().map_or(1, |s| s.seq + 1);
        let path = self.wal_dir.join(segment_name(seq, first_index));
        let file = match OpenOptions::new().create_new(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) => return Err(self.fail(WalError::io(&path, "create segment", e))),
        };
        if let Err(e) = sync_dir(&self.wal_dir) {
            let dir = self.wal_dir.clone();
            return Err(self.fail(WalError::io(&dir, "fsync directory", e)));
        }
        self.file = file;
        self.segments.push(SegmentFile {
            seq,
            first_index,
            path,
        });
        self.offset = 0;
        self.prealloc_end = 0;
        self.dirty = true;
        let prev = self.crc;
        self.push_header(seq, first_index, prev)
    }

    /// Removes the oldest segments that hold nothing above `index`: every segment `k` (never
    /// the last) whose successor's first index is at most `index + 1`, since all of `k`'s live
    /// entries are then at or below `index` (and every segment repeats the hard state and the
    /// latest snapshot marker after its header). Returns the removed paths; the directory is
    /// fsynced after.
    ///
    /// # Errors
    /// [`WalError::Io`] if a file cannot be removed or the directory fsynced.
    pub fn remove_segments_through(&mut self, index: u64) -> Result<Vec<PathBuf>, WalError> {
        let mut n = 0;
        while n + 1 < self.segments.len() && self.segments[n + 1].first_index <= index + 1 {
            n += 1;
        }
        let mut removed = Vec::new();
        for seg in self.segments.drain(..n) {
            std::fs::remove_file(&seg.path)
                .map_err(|e| WalError::io(&seg.path, "remove segment", e))?;
            removed.push(seg.path);
        }
        if !removed.is_empty() {
            sync_dir(&self.wal_dir)
                .map_err(|e| WalError::io(&self.wal_dir, "fsync directory", e))?;
        }
        Ok(removed)
    }

    /// Bytes in the current segment (written, not counting the buffer).
    pub fn segment_bytes(&self) -> u64 {
        self.offset
    }

    /// The segment being written.
    pub fn current_path(&self) -> &Path {
        // The writer always has its current segment in the list (see create/resume/roll).
        &self.segments[self.segments.len() - 1].path
    }

    /// The segments present, in order.
    pub fn segments(&self) -> &[SegmentFile] {
        &self.segments
    }

    fn check(&self) -> Result<(), WalError> {
        match &self.failed {
            Some(first) => Err(WalError::Failed {
                first: first.clone(),
            }),
            None => Ok(()),
        }
    }

    fn fail(&mut self, err: WalError) -> WalError {
        if self.failed.is_none() {
            self.failed = Some(err.to_string());
        }
        err
    }
}
