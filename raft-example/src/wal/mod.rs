//! The write-ahead log: segmented files of framed, CRC-chained records.
//!
//! The WAL holds everything raft-core asks a node to make durable except snapshot data (which
//! lives in `snap/`, see [`crate::snapfile`]): hard states, entries (with the truncation each
//! write implies), and markers naming the snapshots the log stands on. [`crate::disk`] writes
//! it and rebuilds a `MemStorage` from it; this module is the format, the [`writer`] and the
//! [`reader`] (which also classifies damage).
//!
//! # Files
//!
//! `<data-dir>/wal/SSSSSSSSSSSSSSSS-IIIIIIIIIIIIIIII.wal`: `S` is the segment's sequence number
//! and `I` the first log index the segment may hold (the log's last index + 1 when the segment
//! was created), both as 16 lower-case hex digits, so names sort in log order. Sequence
//! numbers of the segments present are consecutive; the first one present need not be 1 (older
//! segments are removed by compaction). Other files in `wal/` (`SYNCED[.tmp]`, `*.broken`) are not
//! part of the log.
//!
//! # Records
//!
//! A segment is a sequence of records, each starting at a multiple of 8 bytes:
//!
//! ```text
//!  offset  size  field
//!  0       4     len     payload length in bytes, u32 little-endian
//!  4       1     type    record type (below)
//!  5       1     0       reserved, must be zero
//!  6       2     hcheck  low 16 bits of CRC32C(bytes 0..6), u16 little-endian
//!  8       len   payload
//!  8+len   pad   zero bytes, 0..=7 of them, so that the record ends on a multiple of 8
//!  end-4   4     crc     CRC32C of everything before it in the record, chained (below), u32 LE
//! ```
//!
//! A record is therefore `8 + round_up_8(len + 4)` bytes. The 8-byte header is aligned, so it
//! never straddles a sector (512 bytes) or a page: a power loss tears it as a whole or not at
//! all, and `hcheck` catches a damaged length before the reader trusts it. The CRC is the
//! record's last word, so a record whose end was never written (blank, below) fails its CRC.
//!
//! | type | name | payload |
//! | --- | --- | --- |
//! | 1 | segment header | `prev_crc: u32, 0: u32, seq: u64, first_index: u64` (24 bytes, LE) |
//! | 2 | entries | prost [`EntriesRecord`]: truncate the log after `truncate_after`, then append `entries` (raft-core `Entry`, contiguous, the first at `truncate_after + 1`) |
//! | 3 | hard state | prost raft-core `HardState` |
//! | 4 | snapshot marker | prost [`SnapshotMarker`]: snapshot `index`/`term` is durable in `snap/`; `installed` = it replaced the log (a snapshot from the leader), else it only allows compaction below it |
//!
//! # CRC chaining
//!
//! `crc(record) = CRC32C_append(crc(previous record), header ++ payload ++ padding)`: each
//! CRC covers the whole log before it. The chain runs across segments: every segment begins
//! with a segment header record whose payload repeats `prev_crc`, the CRC of the last record
//! of the previous segment (0 for segment 1), and whose own CRC is chained from it. A
//! missing, reordered or foreign segment breaks the chain at the next one's header. The first
//! segment present is trusted for its `prev_crc` (its predecessors were removed by
//! compaction).
//!
//! Every segment header is followed by the current hard state and the latest snapshot marker
//! (as a non-installing marker), so that removing older segments never loses the vote or the
//! snapshot the log stands on.
//!
//! # Preallocation
//!
//! The writer keeps fill bytes (`0xff`, [`PREALLOC_FILL`]) written ahead of the records in the
//! last segment (up to 1 MiB, or `segment_bytes` if smaller), so that appending overwrites
//! blocks the file already has: an `fdatasync` then flushes data, not a new file size (a probe
//! on this machine's ext4, 300-byte writes each followed by `fdatasync`, quiet disk: p50 about
//! 135 µs instead of 205 µs). The fill is not zero on purpose: zeros mean "never
//! written" to the torn rules below, fill means "written ahead, nothing here yet". When a
//! segment is finished (rolled) its fill is cut off before it is fsynced, so only the last
//! segment ends in fill.
//!
//! # What is torn, what is repaired, what is refused
//!
//! Writes only ever append, and only the tail written since the last fsync can be lost in a
//! power failure; in that tail any mix of written pages, unwritten (zero) blocks and fill can
//! be found. Call a byte *blank* if it is zero or fill. Reading the last segment:
//!
//! - **End**: at a record boundary `o`, only fill bytes from `o` to the end of the file (the
//!   preallocated space), or the end of the file itself. Nothing is repaired.
//!
//! Otherwise let `o` be the offset of the first record that does not verify. The segment's
//! tail from `o` is **torn** when:
//!
//! 1. the file ends inside that record: fewer than 8 bytes left, or a header whose `hcheck`
//!    holds and whose record would run past the end of the file (a write cut short), or a
//!    header that fails `hcheck` but is blank from some byte inside it to the end of the file
//!    (the same cut, with the preallocated fill after it); or
//! 2. its header is blank, and so is the rest of its sector (from `o` to the next multiple of
//!    512, or to the end of the file): a block that was never written, e.g. a whole small
//!    record zeroed; or
//! 3. its header holds, it fits in the file, its CRC fails, and its CRC word and everything
//!    after it to the end of the file are blank (the record's end never reached the disk, e.g.
//!    its last 512 bytes zeroed); or
//! 4. its header holds, it fits, its CRC fails, and a whole 512-byte sector (aligned in the
//!    file) that starts inside the record is blank (it may reach past the record's end): the
//!    record's end never reached the disk though later sectors did (pages written back out of
//!    order).
//!
//! A torn tail is **repaired** by `Durable::open`: the segment is copied to
//! `<segment>.broken` (or `.broken.N` if that exists), cut at `o`, fsynced, and the cut is
//! named in the recovery report. Writing resumes at `o`. An empty last segment, or one cut
//! inside its header, is rewritten with a fresh header.
//!
//! Everything else is **refused** with an error naming the file, the offset and what was
//! expected: any bad record in a segment other than the last (including fill there); in the
//! last one, a CRC mismatch whose bytes are not blank at the end (a flipped bit looks like
//! this: the record may have been acknowledged, so it is never silently dropped), a header
//! that fails `hcheck` and is not blank, an unknown record type, a non-zero reserved byte, a
//! payload that passes its CRC but does not decode; a gap in the sequence numbers, a segment
//! header that disagrees with its file name or with the previous segment's last CRC; entries
//! that leave a hole in the log; a hard state whose commit index is beyond the recovered log.
//!
//! Not detectable: the loss of the whole last segment(s) when nothing later refers to them
//! (the chain has no successor to check; the commit-index check catches it only when the
//! remaining hard state committed entries that were in them), and a record's CRC word that
//! happens to be blank (odds about 2^-28) turning a flipped bit in the very last record into a
//! torn tail.
//!
//! # Invariants
//!
//! 1. Records start at multiples of 8 and are contiguous from offset 0 of a segment; every
//!    segment starts with its segment header, then the carried hard state and marker.
//! 2. The CRC chain is unbroken from the first segment present to the last record.
//! 3. Only the last segment can hold bytes that were not fsynced, and only it ends in fill: a
//!    segment is cut to its records and fsynced before the next one is created.
//! 4. Nothing is removed (segment or snapshot file) before the marker that makes it
//!    unnecessary is fsynced.
//!
//! Test hook: with `DiskOptions::report_synced`, each fsync writes `"<segment> <offset>"` (the
//! end of the fsynced records) to `wal/SYNCED`; cutting that segment there and removing later
//! ones is exactly what a power loss may leave at worst.
//!
//! Reference: etcd-io/etcd `server/storage/wal` (segment naming, CRC records, zero-sector torn
//! writes); the text and layout here are this crate's own.

pub mod cli;
pub mod reader;
pub mod writer;

use std::io;
use std::path::{Path, PathBuf};

pub use reader::{ReadRecord, Record, SegmentRead, TornTail, read_segment};
pub use writer::Writer;

/// Record type: segment header (`prev_crc`, `seq`, `first_index`).
pub const TYPE_SEGMENT_HEADER: u8 = 1;
/// Record type: entries (prost [`EntriesRecord`]).
pub const TYPE_ENTRIES: u8 = 2;
/// Record type: hard state (prost `HardState`).
pub const TYPE_HARD_STATE: u8 = 3;
/// Record type: snapshot marker (prost [`SnapshotMarker`]).
pub const TYPE_SNAPSHOT_MARKER: u8 = 4;

/// Size of the record header word.
pub const HEADER_BYTES: usize = 8;
/// Size of the segment header payload.
pub const SEGMENT_HEADER_PAYLOAD_BYTES: usize = 24;
/// Largest payload a record may carry (the length field is a u32; the record must fit too).
pub const PAYLOAD_BYTES_MAX: usize = (u32::MAX - 16) as usize;
/// The byte the writer preallocates segments with (written ahead of the records, so that
/// an fsync after an append flushes data only, not a new file size).
pub const PREALLOC_FILL: u8 = 0xff;
/// The sector size the torn-write rules reason about.
pub const SECTOR_BYTES: u64 = 512;

/// Payload of an entries record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntriesRecord {
    /// The log is truncated after this index before `entries` are appended.
    #[prost(uint64, tag = "1")]
    pub truncate_after: u64,
    /// Contiguous entries, the first at `truncate_after + 1`.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<raft_core::Entry>,
}

/// Payload of a snapshot marker record.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct SnapshotMarker {
    /// The snapshot's last included index.
    #[prost(uint64, tag = "1")]
    pub index: u64,
    /// The term of that entry.
    #[prost(uint64, tag = "2")]
    pub term: u64,
    /// The snapshot replaced the log (a snapshot received from the leader); otherwise it was
    /// made locally and only allows compaction below it.
    #[prost(bool, tag = "3")]
    pub installed: bool,
}

/// Payload of a segment header record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The CRC of the previous segment's last record (0 for segment 1).
    pub prev_crc: u32,
    /// The segment's sequence number (as in its name).
    pub seq: u64,
    /// The first log index the segment may hold (as in its name).
    pub first_index: u64,
}

impl SegmentHeader {
    /// The 24-byte payload.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_PAYLOAD_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_PAYLOAD_BYTES];
        b[0..4].copy_from_slice(&self.prev_crc.to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.first_index.to_le_bytes());
        b
    }

    /// Parses a payload; `None` if it has the wrong size or a non-zero reserved word.
    pub fn decode(b: &[u8]) -> Option<SegmentHeader> {
        if b.len() != SEGMENT_HEADER_PAYLOAD_BYTES || b[4..8] != [0; 4] {
            return None;
        }
        Some(SegmentHeader {
            prev_crc: u32::from_le_bytes(b[0..4].try_into().ok()?),
            seq: u64::from_le_bytes(b[8..16].try_into().ok()?),
            first_index: u64::from_le_bytes(b[16..24].try_into().ok()?),
        })
    }
}

/// Why the WAL could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// An operating-system error on a WAL file or directory.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("write", "fdatasync", ...).
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The WAL's contents are damaged in a way recovery refuses to repair.
    #[error("{} at offset {offset}: {problem}", path.display())]
    Corrupt {
        /// The segment file (or the WAL directory for a missing segment).
        path: PathBuf,
        /// Byte offset in that file.
        offset: u64,
        /// What was found and what was expected.
        problem: String,
    },
    /// `DiskOptions::fail_after_bytes` was reached: the injected "disk full".
    #[error(
        "{}: write at offset {offset}: no space left on device (injected: \
         fail_after_bytes = {limit})",
        path.display()
    )]
    InjectedNoSpace {
        /// The segment being written.
        path: PathBuf,
        /// Where the write stopped.
        offset: u64,
        /// The configured limit.
        limit: u64,
    },
    /// An earlier write or fsync failed; the WAL accepts nothing more (fail-stop).
    #[error("the WAL failed earlier ({first}); no further writes are accepted")]
    Failed {
        /// The first failure, as text.
        first: String,
    },
    /// A record too large for the format.
    #[error("record of {len} bytes exceeds the maximum of {PAYLOAD_BYTES_MAX}")]
    RecordTooLarge {
        /// The payload length.
        len: usize,
    },
}

impl WalError {
    pub(crate) fn io(path: &Path, op: &'static str, source: io::Error) -> WalError {
        WalError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, offset: u64, problem: impl Into<String>) -> WalError {
        WalError::Corrupt {
            path: path.to_path_buf(),
            offset,
            problem: problem.into(),
        }
    }
}

/// The file name of segment `seq` whose first index is `first_index`.
pub fn segment_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}.wal")
}

/// Parses a segment file name into `(seq, first_index)`; `None` if it is not one.
pub fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (seq, first) = stem.split_once('-')?;
    if seq.len() != 16 || first.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(seq, 16).ok()?,
        u64::from_str_radix(first, 16).ok()?,
    ))
}

/// A segment file present in the WAL directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFile {
    /// Its sequence number.
    pub seq: u64,
    /// The first index it may hold.
    pub first_index: u64,
    /// Its path.
    pub path: PathBuf,
}

/// The segment files in `wal_dir`, in sequence order (an absent directory has none).
///
/// # Errors
/// [`WalError::Io`] if the directory cannot be listed.
pub fn list_segments(wal_dir: &Path) -> Result<Vec<SegmentFile>, WalError> {
    let rd = match std::fs::read_dir(wal_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(WalError::io(wal_dir, "read directory", e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| WalError::io(wal_dir, "read directory", e))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some((seq, first_index)) = parse_segment_name(name) {
            out.push(SegmentFile {
                seq,
                first_index,
                path: ent.path(),
            });
        }
    }
    out.sort_by_key(|s| s.seq);
    Ok(out)
}

/// The header check of a record header's first 6 bytes.
#[inline]
pub fn header_check(first6: &[u8]) -> u16 {
    (crc32c::crc32c(first6) & 0xffff) as u16
}

/// The full size of a record with a payload of `len` bytes.
#[inline]
pub fn record_bytes(len: usize) -> usize {
    HEADER_BYTES + (len + 4).div_ceil(8) * 8
}

/// Appends one framed record to `out`, chained from `prev_crc`; returns its CRC.
///
/// # Errors
/// [`WalError::RecordTooLarge`] if the payload does not fit the format (`out` unchanged).
pub fn encode_record(
    out: &mut Vec<u8>,
    prev_crc: u32,
    rtype: u8,
    payload: &[u8],
) -> Result<u32, WalError> {
    if payload.len() > PAYLOAD_BYTES_MAX {
        return Err(WalError::RecordTooLarge { len: payload.len() });
    }
    let start = out.len();
    // Checked above: the length fits in a u32.
    let len = payload.len() as u32;
    let mut header = [0u8; HEADER_BYTES];
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[4] = rtype;
    let hcheck = header_check(&header[0..6]);
    header[6..8].copy_from_slice(&hcheck.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    let total = record_bytes(payload.len());
    out.resize(start + total - 4, 0);
    let crc = crc32c::crc32c_append(prev_crc, &out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len() - start, total);
    Ok(crc)
}

/// Fsyncs a directory, so that a file created, renamed or removed in it stays so.
///
/// # Errors
/// The OS error.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_aligned_and_end_with_their_crc() {
        for len in 0..40 {
            let mut out = vec![0u8; 8];
            let payload = vec![0xabu8; len];
            let crc = encode_record(&mut out, 7, TYPE_HARD_STATE, &payload).unwrap();
            assert_eq!(out.len() % 8, 0);
            assert_eq!(out.len() - 8, record_bytes(len));
            assert_eq!(out[out.len() - 4..], crc.to_le_bytes());
        }
    }

    #[test]
    fn segment_names_round_trip() {
        let n = segment_name(3, 0x1234);
        assert_eq!(n, "0000000000000003-0000000000001234.wal");
        assert_eq!(parse_segment_name(&n), Some((3, 0x1234)));
        assert_eq!(
            parse_segment_name("0000000000000003-0000000000001234.wal.broken"),
            None
        );
        assert_eq!(parse_segment_name("SYNCED"), None);
    }
}
