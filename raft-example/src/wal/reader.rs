//! Reading segments: framing, CRC chain, and the torn-tail rules of the module spec.
//!
//! [`read_segment`] reads one segment file whole and returns its records, decoded. In any
//! segment but the last, the first record that does not verify is an error. In the last one,
//! it is a [`TornTail`] if it matches one of the four torn rules in [`crate::wal`], an error
//! otherwise. This module never changes a file; repairing is [`crate::disk`]'s job.
//!
//! Invariants of a returned [`SegmentRead`]:
//! 1. `records[0]`, if any, is the segment header, and it agrees with the file name.
//! 2. Records are in file order, each at an 8-byte aligned offset, contiguous up to
//!    `valid_bytes`; `last_crc` is the CRC of the last one (or the header's `prev_crc`).
//! 3. `torn` is `Some` only for the last segment, and then `torn.offset == valid_bytes`.

use std::path::Path;

use prost::Message;
use raft_core::HardState;

use super::{
    EntriesRecord, HEADER_BYTES, PREALLOC_FILL, SECTOR_BYTES, SegmentFile, SegmentHeader,
    SnapshotMarker, TYPE_ENTRIES, TYPE_HARD_STATE, TYPE_SEGMENT_HEADER, TYPE_SNAPSHOT_MARKER,
    WalError, header_check, record_bytes,
};

/// A decoded record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// The segment's first record.
    SegmentHeader(SegmentHeader),
    /// Truncate after `truncate_after`, then append the entries.
    Entries(EntriesRecord),
    /// A hard state.
    HardState(HardState),
    /// A snapshot marker.
    SnapshotMarker(SnapshotMarker),
}

impl Record {
    /// The record type's name, as `wal dump` prints it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Record::SegmentHeader(_) => "segment-header",
            Record::Entries(_) => "entries",
            Record::HardState(_) => "hard-state",
            Record::SnapshotMarker(_) => "snapshot-marker",
        }
    }
}

/// A record and where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadRecord {
    /// Byte offset of the record's header in its segment.
    pub offset: u64,
    /// Its size in the file, padding and CRC included.
    pub bytes: u64,
    /// Its chained CRC.
    pub crc: u32,
    /// The decoded payload.
    pub record: Record,
}

/// Where and why the last segment's tail is torn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Offset of the first record that does not verify: the file is cut here.
    pub offset: u64,
    /// The file's length before the cut.
    pub file_bytes: u64,
    /// Which torn rule matched, in words.
    pub reason: String,
}

/// One segment, read.
#[derive(Clone, Debug)]
pub struct SegmentRead {
    /// The file.
    pub file: SegmentFile,
    /// The records that verify, in order (the first is the segment header).
    pub records: Vec<ReadRecord>,
    /// Bytes from the start that hold verified records.
    pub valid_bytes: u64,
    /// CRC of the last verified record, the chain value the next record starts from.
    pub last_crc: u32,
    /// The torn tail after `valid_bytes`, for the last segment only.
    pub torn: Option<TornTail>,
}

/// Why the record at an offset does not verify.
enum Bad {
    /// The file ends inside the record (or inside its header).
    Partial { record_bytes: u64 },
    /// The header word is blank (zero or fill bytes).
    BlankHeader,
    /// The header check fails on a non-zero header.
    HeaderCheck,
    /// The header's reserved byte is not zero.
    Reserved,
    /// The chained CRC does not match.
    Crc {
        stored: u32,
        computed: u32,
        end: u64,
    },
}

/// Reads segment `file`. `expected_prev_crc` is the previous segment's last CRC (`None` for
/// the first segment present, whose header is trusted for it); `is_last` enables the torn
/// rules.
///
/// # Errors
/// [`WalError::Io`] if the file cannot be read; [`WalError::Corrupt`] for damage that is not
/// a torn tail of the last segment.
pub fn read_segment(
    file: &SegmentFile,
    expected_prev_crc: Option<u32>,
    is_last: bool,
) -> Result<SegmentRead, WalError> {
    let data = std::fs::read(&file.path).map_err(|e| WalError::io(&file.path, "read", e))?;
    parse_segment(file, &data, expected_prev_crc, is_last)
}

/// [`read_segment`] on bytes already read.
///
/// # Errors
/// As [`read_segment`], without the I/O.
pub fn parse_segment(
    file: &SegmentFile,
    data: &[u8],
    expected_prev_crc: Option<u32>,
    is_last: bool,
) -> Result<SegmentRead, WalError> {
    let (read, err) = parse_segment_partial(file, data, expected_prev_crc, is_last);
    match err {
        Some(e) => Err(e),
        None => Ok(read),
    }
}

/// As [`parse_segment`], but on damage also returns the records that verified before it (for
/// `wal dump`, which prints them before the error).
pub fn parse_segment_partial(
    file: &SegmentFile,
    data: &[u8],
    expected_prev_crc: Option<u32>,
    is_last: bool,
) -> (SegmentRead, Option<WalError>) {
    let mut records = Vec::new();
    let mut off = 0u64;
    // The chain value before the next record; unknown before the header is read.
    let mut crc: Option<u32> = None;
    let mut torn = None;
    let err = parse_into(
        file,
        data,
        expected_prev_crc,
        is_last,
        &mut records,
        &mut off,
        &mut crc,
        &mut torn,
    )
    .err();
    let last_crc = match (crc, expected_prev_crc) {
        (Some(c), _) => c,
        (None, Some(p)) => p,
        (None, None) => 0,
    };
    let read = SegmentRead {
        file: file.clone(),
        records,
        valid_bytes: off,
        last_crc,
        torn,
    };
    (read, err)
}

#[allow(clippy::too_many_arguments)]
fn parse_into(
    file: &SegmentFile,
    data: &[u8],
    expected_prev_crc: Option<u32>,
    is_last: bool,
    records: &mut Vec<ReadRecord>,
    off: &mut u64,
    crc: &mut Option<u32>,
    torn: &mut Option<TornTail>,
) -> Result<(), WalError> {
    let path = file.path.as_path();
    let len = data.len() as u64;
    while *off < len {
        // The last segment's preallocated space: fill bytes, and nothing else, to the end.
        if is_last && data[*off as usize..].iter().all(|&b| b == PREALLOC_FILL) {
            return Ok(());
        }
        let (rtype, payload, rec_bytes, rec_crc) = match frame_at(data, *off, *crc) {
            Ok(x) => x,
            Err(bad) => {
                if is_last && let Some(reason) = torn_reason(data, *off, &bad) {
                    *torn = Some(TornTail {
                        offset: *off,
                        file_bytes: len,
                        reason,
                    });
                    return Ok(());
                }
                return Err(WalError::corrupt(path, *off, describe(&bad, is_last)));
            }
        };
        let at = *off;
        let record = decode(path, at, rtype, payload)?;
        match (&record, records.is_empty()) {
            (Record::SegmentHeader(h), true) => {
                if h.seq != file.seq || h.first_index != file.first_index {
                    return Err(WalError::corrupt(
                        path,
                        at,
                        format!(
                            "segment header says seq {} first index {}, expected seq {} first \
                             index {} (from the file name)",
                            h.seq, h.first_index, file.seq, file.first_index
                        ),
                    ));
                }
                if let Some(prev) = expected_prev_crc
                    && h.prev_crc != prev
                {
                    return Err(WalError::corrupt(
                        path,
                        at,
                        format!(
                            "segment header carries previous CRC {:#010x}, expected \
                                 {prev:#010x} \
                                 (the last CRC of the previous segment): a segment is missing, \
                                 replaced or out of order",
                            h.prev_crc
                        ),
                    ));
                }
            }
            (Record::SegmentHeader(_), false) => {
                return Err(WalError::corrupt(
                    path,
                    at,
                    "a second segment header inside the segment; expected a log record",
                ));
            }
            (_, true) => {
                return Err(WalError::corrupt(
                    path,
                    at,
                    format!(
                        "the segment starts with a {} record; expected a segment header",
                        record.type_name()
                    ),
                ));
            }
            (_, false) => {}
        }
        records.push(ReadRecord {
            offset: at,
            bytes: rec_bytes,
            crc: rec_crc,
            record,
        });
        *crc = Some(rec_crc);
        *off += rec_bytes;
    }
    Ok(())
}

/// Checks the framing and CRC of the record at `off`. `prev_crc` is `None` for the segment's
/// first record, which must be a segment header and carries its own chain start.
/// Returns `(type, payload, record bytes, crc)`.
fn frame_at(data: &[u8], off: u64, prev_crc: Option<u32>) -> Result<(u8, &[u8], u64, u32), Bad> {
    let len = data.len() as u64;
    // off < len and off fits in usize because it indexes into data.
    let o = off as usize;
    if len - off < HEADER_BYTES as u64 {
        return Err(Bad::Partial {
            record_bytes: HEADER_BYTES as u64,
        });
    }
    let header = &data[o..o + HEADER_BYTES];
    if all_blank(header) {
        return Err(Bad::BlankHeader);
    }
    let hcheck = u16::from_le_bytes([header[6], header[7]]);
    if hcheck != header_check(&header[0..6]) {
        return Err(Bad::HeaderCheck);
    }
    if header[5] != 0 {
        return Err(Bad::Reserved);
    }
    let plen = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let rec_bytes = record_bytes(plen) as u64;
    if rec_bytes > len - off {
        return Err(Bad::Partial {
            record_bytes: rec_bytes,
        });
    }
    let rtype = header[4];
    let payload = &data[o + HEADER_BYTES..o + HEADER_BYTES + plen];
    let end = o + rec_bytes as usize;
    let stored = u32::from_le_bytes([data[end - 4], data[end - 3], data[end - 2], data[end - 1]]);
    let prev = match prev_crc {
        Some(p) => p,
        // The first record: its payload names the chain start, if it is a header at all.
        None => match SegmentHeader::decode(payload) {
            Some(h) if rtype == TYPE_SEGMENT_HEADER => h.prev_crc,
            _ => 0,
        },
    };
    let computed = crc32c::crc32c_append(prev, &data[o..end - 4]);
    if computed != stored {
        return Err(Bad::Crc {
            stored,
            computed,
            end: end as u64,
        });
    }
    Ok((rtype, payload, rec_bytes, computed))
}

/// Decodes a verified payload; a failure is corruption (the CRC held).
fn decode(path: &Path, off: u64, rtype: u8, payload: &[u8]) -> Result<Record, WalError> {
    let bad = |what: String| WalError::corrupt(path, off, what);
    match rtype {
        TYPE_SEGMENT_HEADER => SegmentHeader::decode(payload)
            .map(Record::SegmentHeader)
            .ok_or_else(|| {
                bad(format!(
                    "segment header payload of {} bytes does not parse; expected 24 bytes with a \
                     zero reserved word",
                    payload.len()
                ))
            }),
        TYPE_ENTRIES => {
            let r = EntriesRecord::decode(payload)
                .map_err(|e| bad(format!("entries record does not decode: {e}")))?;
            for (k, e) in r.entries.iter().enumerate() {
                let want = r.truncate_after + 1 + k as u64;
                if e.index != want {
                    return Err(bad(format!(
                        "entries record (truncate after {}) has entry {k} at index {}, expected \
                         {want}",
                        r.truncate_after, e.index
                    )));
                }
            }
            Ok(Record::Entries(r))
        }
        TYPE_HARD_STATE => HardState::decode(payload)
            .map(Record::HardState)
            .map_err(|e| bad(format!("hard state record does not decode: {e}"))),
        TYPE_SNAPSHOT_MARKER => SnapshotMarker::decode(payload)
            .map(Record::SnapshotMarker)
            .map_err(|e| bad(format!("snapshot marker record does not decode: {e}"))),
        t => Err(bad(format!(
            "unknown record type {t}; expected 1 (segment header), 2 (entries), 3 (hard state) \
             or 4 (snapshot marker)"
        ))),
    }
}

/// Whether every byte is zero (never written) or the preallocation fill (written ahead).
fn all_blank(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0 || x == PREALLOC_FILL)
}

/// Which torn rule (see the module spec of [`crate::wal`]) the bad record at `off` matches.
fn torn_reason(data: &[u8], off: u64, bad: &Bad) -> Option<String> {
    let len = data.len() as u64;
    match *bad {
        Bad::Partial { record_bytes } => Some(format!(
            "partial record: {} of its {record_bytes} bytes present",
            len - off
        )),
        Bad::BlankHeader => {
            let sector_end = (off / SECTOR_BYTES + 1) * SECTOR_BYTES;
            let to = sector_end.min(len);
            all_blank(&data[off as usize..to as usize]).then(|| {
                if all_blank(&data[off as usize..]) {
                    format!(
                        "zeros from here to the end of the file ({} bytes)",
                        len - off
                    )
                } else {
                    "a zero (never written) sector where a record should start".to_string()
                }
            })
        }
        Bad::Crc { end, .. } => {
            if all_blank(&data[(end - 4) as usize..]) {
                return Some(format!(
                    "record of {} bytes whose end and everything after it ({} bytes) are zero",
                    end - off,
                    len - (end - 4)
                ));
            }
            // A blank sector that starts inside the record (it may reach past its end): the
            // record's bytes there never reached the disk, though later sectors did.
            let mut s = (off / SECTOR_BYTES + 1) * SECTOR_BYTES;
            while s < end && s + SECTOR_BYTES <= len {
                if all_blank(&data[s as usize..(s + SECTOR_BYTES) as usize]) {
                    return Some(format!(
                        "record of {} bytes with a blank (never written) sector at offset {s}",
                        end - off
                    ));
                }
                s += SECTOR_BYTES;
            }
            None
        }
        Bad::HeaderCheck => {
            // A header cut short: its first bytes written, the rest (and everything after)
            // blank. The header is not blank itself, so the blank suffix starts inside it.
            let o = off as usize;
            let tail_start = (o + 1..o + HEADER_BYTES).find(|&p| all_blank(&data[p..]))?;
            Some(format!(
                "record header cut short: {} of its 8 bytes written, blank after",
                tail_start - o
            ))
        }
        Bad::Reserved => None,
    }
}

fn describe(bad: &Bad, is_last: bool) -> String {
    let place = if is_last {
        "and the damage is not a torn write (see the torn rules in the wal module docs)"
    } else {
        "in a segment that is not the last one (only the last segment may have a torn tail)"
    };
    match bad {
        Bad::Partial { record_bytes } => {
            format!("the file ends inside a record of {record_bytes} bytes, {place}")
        }
        Bad::BlankHeader => {
            format!("zero (or fill) bytes where a record header was expected, {place}")
        }
        Bad::HeaderCheck => format!(
            "record header fails its check (length/type damaged); expected a valid header, {place}"
        ),
        Bad::Reserved => format!("record header has a non-zero reserved byte, {place}"),
        Bad::Crc {
            stored, computed, ..
        } => format!(
            "CRC mismatch: stored {stored:#010x}, expected {computed:#010x} (chained from the \
             previous record), {place}"
        ),
    }
}
