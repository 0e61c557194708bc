//! Snapshot files: one raft-core `Snapshot` (state-machine data plus metadata) per file, with
//! a CRC, saved atomically.
//!
//! # Files
//!
//! `<data-dir>/snap/IIIIIIIIIIIIIIII-TTTTTTTTTTTTTTTT.snap`: the snapshot's index and term as
//! 16 hex digits each, so names sort by index. A save writes `<name>.<pid>-<n>.tmp`, fsyncs
//! it, renames it to `<name>` and fsyncs the directory: a snapshot file is either absent or
//! complete.
//! Leftover `*.tmp` files (a crash during a save) are removed when the directory is opened.
//!
//! # Format
//!
//! ```text
//!  offset  size  field
//!  0       8     magic    "RXSNAP01"
//!  8       8     len      payload length, u64 little-endian
//!  16      4     crc      CRC32C of the payload, u32 LE
//!  20      4     hcrc     CRC32C of bytes 0..20, u32 LE
//!  24      len   payload  prost-encoded raft-core Snapshot (data, metadata with ConfState,
//!                         index, term)
//! ```
//!
//! Invariants:
//! 1. A file that loads has the right magic, a header that passes `hcrc`, exactly `len`
//!    payload bytes, a payload that passes `crc` and decodes, and metadata whose index and
//!    term match the file name.
//! 2. Loading never panics on any file contents; damage is a [`SnapError::Corrupt`] naming
//!    the file and the offset.
//!
//! Which snapshot recovery uses, and what happens when the newest one is damaged, is decided
//! by [`crate::disk`] (it needs the WAL to judge).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use raft_core::Snapshot;

use crate::wal::sync_dir;

const MAGIC: &[u8; 8] = b"RXSNAP01";
const HEADER_BYTES: usize = 24;

/// Why a snapshot file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapError {
    /// An operating-system error on a snapshot file or the directory.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file's contents are damaged.
    #[error("{} at offset {offset}: {problem}", path.display())]
    Corrupt {
        /// The snapshot file.
        path: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What was found and what was expected.
        problem: String,
    },
    /// A snapshot without metadata cannot be named or installed.
    #[error("snapshot has no metadata (index, term, configuration)")]
    NoMetadata,
}

fn io_err(path: &Path, op: &'static str, source: io::Error) -> SnapError {
    SnapError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

fn corrupt(path: &Path, offset: u64, problem: impl Into<String>) -> SnapError {
    SnapError::Corrupt {
        path: path.to_path_buf(),
        offset,
        problem: problem.into(),
    }
}

/// A snapshot file present in the directory (named, not yet verified).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    /// The index in its name.
    pub index: u64,
    /// The term in its name.
    pub term: u64,
    /// Its path.
    pub path: PathBuf,
}

/// The file name of the snapshot at `index`, `term`.
pub fn snapshot_name(index: u64, term: u64) -> String {
    format!("{index:016x}-{term:016x}.snap")
}

/// Parses a snapshot file name into `(index, term)`.
pub fn parse_snapshot_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".snap")?;
    let (index, term) = stem.split_once('-')?;
    if index.len() != 16 || term.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(index, 16).ok()?,
        u64::from_str_radix(term, 16).ok()?,
    ))
}

/// The snapshot directory of a data directory. Cheap to clone; every method is blocking and
/// may be called from any thread.
#[derive(Clone, Debug)]
pub struct SnapshotDir {
    dir: PathBuf,
}

impl SnapshotDir {
    /// The directory `dir` (usually `<data-dir>/snap`); nothing is touched.
    pub fn new(dir: impl Into<PathBuf>) -> SnapshotDir {
        SnapshotDir { dir: dir.into() }
    }

    /// Creates the directory if needed and removes leftover temporary files.
    ///
    /// # Errors
    /// [`SnapError::Io`].
    pub fn prepare(&self) -> Result<(), SnapError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io_err(&self.dir, "create directory", e))?;
        let rd =
            std::fs::read_dir(&self.dir).map_err(|e| io_err(&self.dir, "read directory", e))?;
        for ent in rd {
            let ent = ent.map_err(|e| io_err(&self.dir, "read directory", e))?;
            if ent.file_name().to_string_lossy().ends_with(".tmp") {
                let p = ent.path();
                std::fs::remove_file(&p).map_err(|e| io_err(&p, "remove temporary file", e))?;
            }
        }
        Ok(())
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Saves `snap` durably: temp file, fsync, rename, fsync of the directory. Returns the
    /// file's path. Saving the same index and term again replaces the file atomically.
    ///
    /// # Errors
    /// [`SnapError::NoMetadata`]; [`SnapError::Io`] (then no file of that name was created or
    /// changed, though a `.tmp` may be left for the next [`SnapshotDir::prepare`]).
    pub fn save(&self, snap: &Snapshot) -> Result<PathBuf, SnapError> {
        let meta = snap.metadata.as_ref().ok_or(SnapError::NoMetadata)?;
        let name = snapshot_name(meta.index, meta.term);
        let path = self.dir.join(&name);
        // A name of its own per save: two threads saving the same snapshot never share a
        // temporary file (the later rename wins, both files complete).
        static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!("{name}.{}-{n}.tmp", std::process::id()));
        let bytes = encode(snap);
        let written = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)
            .map_err(|e| io_err(&tmp, "create", e))
            .and_then(|mut f| {
                f.write_all(&bytes).map_err(|e| io_err(&tmp, "write", e))?;
                f.sync_all().map_err(|e| io_err(&tmp, "fsync", e))
            })
            .and_then(|()| std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, "rename", e)));
        if let Err(e) = written {
            // Best effort: a full disk should not keep the partial file until the next open.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        sync_dir(&self.dir).map_err(|e| io_err(&self.dir, "fsync directory", e))?;
        Ok(path)
    }

    /// The snapshot files present, by index (then term), oldest first. Files that are not
    /// snapshots by name are ignored.
    ///
    /// # Errors
    /// [`SnapError::Io`] if the directory cannot be listed (an absent one has no files).
    pub fn list(&self) -> Result<Vec<SnapshotFile>, SnapError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.dir, "read directory", e)),
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| io_err(&self.dir, "read directory", e))?;
            let name = ent.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some((index, term)) = parse_snapshot_name(name) {
                out.push(SnapshotFile {
                    index,
                    term,
                    path: ent.path(),
                });
            }
        }
        out.sort_by_key(|f| (f.index, f.term));
        Ok(out)
    }

    /// Loads and verifies one snapshot file.
    ///
    /// # Errors
    /// [`SnapError::Io`], or [`SnapError::Corrupt`] naming the offset of the damage.
    pub fn load(&self, file: &SnapshotFile) -> Result<Snapshot, SnapError> {
        let data = std::fs::read(&file.path).map_err(|e| io_err(&file.path, "read", e))?;
        let snap = decode(&file.path, &data)?;
        let (index, term) = (snap.index(), snap.term());
        if (index, term) != (file.index, file.term) {
            return Err(corrupt(
                &file.path,
                HEADER_BYTES as u64,
                format!(
                    "snapshot metadata says index {index} term {term}, expected index {} term {} \
                     (from the file name)",
                    file.index, file.term
                ),
            ));
        }
        Ok(snap)
    }

    /// Removes one snapshot file (the directory is not fsynced; see
    /// [`SnapshotDir::sync`]).
    ///
    /// # Errors
    /// [`SnapError::Io`].
    pub fn remove(&self, file: &SnapshotFile) -> Result<(), SnapError> {
        std::fs::remove_file(&file.path).map_err(|e| io_err(&file.path, "remove", e))
    }

    /// Fsyncs the directory.
    ///
    /// # Errors
    /// [`SnapError::Io`].
    pub fn sync(&self) -> Result<(), SnapError> {
        sync_dir(&self.dir).map_err(|e| io_err(&self.dir, "fsync directory", e))
    }
}

/// The file contents for `snap`.
pub fn encode(snap: &Snapshot) -> Vec<u8> {
    let payload = snap.encode_to_vec();
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    let hcrc = crc32c::crc32c(&out[0..20]);
    out.extend_from_slice(&hcrc.to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Parses and verifies file contents; `path` is only used in errors.
///
/// # Errors
/// [`SnapError::Corrupt`].
pub fn decode(path: &Path, data: &[u8]) -> Result<Snapshot, SnapError> {
    if data.len() < HEADER_BYTES {
        return Err(corrupt(
            path,
            data.len() as u64,
            format!(
                "file of {} bytes is shorter than the {HEADER_BYTES}-byte header",
                data.len()
            ),
        ));
    }
    if &data[0..8] != MAGIC {
        return Err(corrupt(path, 0, "bad magic; expected \"RXSNAP01\""));
    }
    let hcrc = u32::from_le_bytes([data[20], data[21], data[22], data[23]]);
    if hcrc != crc32c::crc32c(&data[0..20]) {
        return Err(corrupt(
            path,
            20,
            "header CRC mismatch; the header is damaged",
        ));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&data[8..16]);
    let len = u64::from_le_bytes(len8);
    let have = (data.len() - HEADER_BYTES) as u64;
    if len != have {
        return Err(corrupt(
            path,
            data.len() as u64,
            format!("payload is {have} bytes, expected {len} (from the header)"),
        ));
    }
    let payload = &data[HEADER_BYTES..];
    let crc = u32::from_le_bytes([data[16], data[17], data[18], data[19]]);
    let computed = crc32c::crc32c(payload);
    if crc != computed {
        return Err(corrupt(
            path,
            HEADER_BYTES as u64,
            format!("payload CRC mismatch: stored {crc:#010x}, computed {computed:#010x}"),
        ));
    }
    let snap = Snapshot::decode(payload).map_err(|e| {
        corrupt(
            path,
            HEADER_BYTES as u64,
            format!("payload does not decode as a Snapshot: {e}"),
        )
    })?;
    if snap.metadata.is_none() {
        return Err(corrupt(
            path,
            HEADER_BYTES as u64,
            "snapshot has no metadata",
        ));
    }
    Ok(snap)
}
