//! `raft-example wal verify DIR` and `raft-example wal dump DIR`: read a data directory
//! offline, never changing it.
//!
//! - `verify` runs recovery read-only ([`crate::disk::verify`]): exit 0 and one summary line
//!   (a torn tail is named as "would be cut on open"), or exit 1 and one line naming the file,
//!   the offset and what is wrong. Snapshot files recovery does not need are checked too and
//!   named if damaged.
//! - `dump` prints one line per record, `<segment> <offset> <type> <fields>`, then one line per
//!   snapshot file; exit 1 at the first damage, after printing what came before it.

use std::path::Path;
use std::process::ExitCode;

use crate::snapfile::SnapshotDir;
use crate::wal::reader::Record;
use crate::wal::{self, WalError};

/// The `wal` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Check every record of a data directory's WAL and snapshot files; exit 1 on damage.
    Verify {
        /// The member's data directory.
        dir: std::path::PathBuf,
    },
    /// Print every record of a data directory's WAL, one line each.
    Dump {
        /// The member's data directory.
        dir: std::path::PathBuf,
    },
}

/// Runs a `wal` subcommand; returns the process exit code.
pub fn run(args: Args) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let code = match args {
        Args::Verify { dir } => verify(&dir, &mut out),
        Args::Dump { dir } => dump(&dir, &mut out),
    };
    if code == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `wal verify`: writes the summary (or the error) to `out`; returns the exit code.
pub fn verify(dir: &Path, out: &mut impl std::io::Write) -> u8 {
    if !dir.is_dir() {
        let _ = writeln!(out, "error: {}: not a directory", dir.display());
        return 1;
    }
    match crate::disk::verify(dir) {
        Ok(None) => {
            let _ = writeln!(
                out,
                "ok: {}: no durable state (a fresh member)",
                dir.display()
            );
            0
        }
        Ok(Some(rec)) => {
            let mut line = format!("ok: {}: {}", dir.display(), rec.report);
            let snaps = SnapshotDir::new(dir.join("snap"));
            if let Ok(files) = snaps.list() {
                for f in &files {
                    if let Err(e) = snaps.load(f) {
                        line.push_str(&format!("; unused snapshot file damaged: {e}"));
                    }
                }
            }
            let _ = writeln!(out, "{line}");
            0
        }
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            1
        }
    }
}

/// `wal dump`: writes one line per record to `out`; returns the exit code.
pub fn dump(dir: &Path, out: &mut impl std::io::Write) -> u8 {
    match dump_inner(dir, out) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            1
        }
    }
}

fn dump_inner(dir: &Path, out: &mut impl std::io::Write) -> Result<(), WalError> {
    let segments = wal::list_segments(&dir.join("wal"))?;
    let mut prev = None;
    for (k, seg) in segments.iter().enumerate() {
        let name = seg
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if k > 0 && seg.seq != segments[k - 1].seq + 1 {
            return Err(WalError::corrupt(
                &seg.path,
                0,
                format!(
                    "segment sequence {} follows {}: expected {}",
                    seg.seq,
                    segments[k - 1].seq,
                    segments[k - 1].seq + 1
                ),
            ));
        }
        let data = std::fs::read(&seg.path).map_err(|e| WalError::io(&seg.path, "read", e))?;
        let (r, err) =
            wal::reader::parse_segment_partial(seg, &data, prev, k + 1 == segments.len());
        for rec in &r.records {
            let _ = writeln!(
                out,
                "{name} {} {} {}",
                rec.offset,
                rec.record.type_name(),
                fields(&rec.record)
            );
        }
        if let Some(t) = &r.torn {
            let _ = writeln!(
                out,
                "{name} {} torn {} bytes: {} (cut on open)",
                t.offset,
                t.file_bytes - t.offset,
                t.reason
            );
        }
        if let Some(e) = err {
            return Err(e);
        }
        prev = Some(r.last_crc);
    }
    let snaps = SnapshotDir::new(dir.join("snap"));
    if let Ok(files) = snaps.list() {
        for f in &files {
            let name = f
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match snaps.load(f) {
                Ok(s) => {
                    let cs = s
                        .metadata
                        .as_ref()
                        .and_then(|m| m.conf_state.as_ref())
                        .map(|c| format!("voters={:?} learners={:?}", c.voters, c.learners))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "snap/{name} index={} term={} data_bytes={} {cs}",
                        s.index(),
                        s.term(),
                        s.data.len()
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "snap/{name} damaged: {e}");
                }
            }
        }
    }
    Ok(())
}

fn fields(r: &Record) -> String {
    match r {
        Record::SegmentHeader(h) => format!(
            "seq={} first_index={} prev_crc={:#010x}",
            h.seq, h.first_index, h.prev_crc
        ),
        Record::Entries(e) => {
            let n = e.entries.len();
            match (e.entries.first(), e.entries.last()) {
                (Some(f), Some(l)) => format!(
                    "truncate_after={} count={n} index={}..={} term={}..={} data_bytes={}",
                    e.truncate_after,
                    f.index,
                    l.index,
                    f.term,
                    l.term,
                    e.entries.iter().map(|x| x.data.len()).sum::<usize>()
                ),
                _ => format!("truncate_after={} count=0", e.truncate_after),
            }
        }
        Record::HardState(h) => format!("term={} vote={} commit={}", h.term, h.vote, h.commit),
        Record::SnapshotMarker(m) => format!(
            "index={} term={} installed={}",
            m.index, m.term, m.installed
        ),
    }
}
