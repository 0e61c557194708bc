//! `raft-example wal verify` and `wal dump`: a summary or an error naming file and offset,
//! one line per record, and the same through the binary's exit code.

mod wal_common;

use std::process::Command;

use raft_example::disk::Durable;
use raft_example::wal::cli;
use wal_common::*;

fn populated() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let (mut d, _) = Durable::open(t.path(), opts(300)).unwrap();
    write(
        &mut d,
        &Batch {
            hs: Some(hs(2, 1, 0)),
            ..Batch::default()
        },
    );
    for i in 0..10 {
        write(
            &mut d,
            &Batch {
                ents: ents(i * 2 + 1, i * 2 + 2, 2),
                hs: Some(hs(2, 1, i * 2)),
                ..Batch::default()
            },
        );
    }
    let s = snapshot(10, 2, "kv at 10");
    d.snapshot_dir().save(&s).unwrap();
    d.compact_to(s.metadata.as_ref().unwrap()).unwrap();
    d.sync().unwrap();
    t
}

fn run(f: fn(&std::path::Path, &mut Vec<u8>) -> u8, dir: &std::path::Path) -> (u8, String) {
    let mut out = Vec::new();
    let code = f(dir, &mut out);
    (code, String::from_utf8(out).unwrap())
}

#[test]
fn verify_summarises_a_good_directory_and_names_the_damage_in_a_bad_one() {
    let t = populated();
    let (code, text) = run(cli::verify, t.path());
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("ok: "), "{text}");
    assert!(text.contains("snapshot index 10 term 2"), "{text}");
    assert!(text.contains("log [11, 20]"), "{text}");
    assert!(text.contains("commit 18"), "{text}");
    // Verify changes nothing: the same answer again, and no repair copies.
    assert_eq!(run(cli::verify, t.path()), (0, text));

    let segs = segments(t.path());
    let mid = &segs[0];
    flip(mid, file_len(mid) - 6);
    let (code, text) = run(cli::verify, t.path());
    assert_eq!(code, 1, "{text}");
    let name = mid.file_name().unwrap().to_string_lossy();
    assert!(text.starts_with("error: "), "{text}");
    assert!(
        text.contains(&*name) && text.contains("at offset "),
        "{text}"
    );
    assert!(broken_copies(t.path()).is_empty());
}

#[test]
fn verify_reports_a_torn_tail_it_would_cut_without_cutting_it() {
    let t = populated();
    let last = segments(t.path()).pop().unwrap();
    let (_d, end) = {
        let (d, _) = Durable::open(t.path(), opts(300)).unwrap();
        let (p, off) = d.wal_end();
        (p.to_path_buf(), off)
    };
    truncate(&last, end - 5);
    let (code, text) = run(cli::verify, t.path());
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("would be cut on open"), "{text}");
    assert_eq!(file_len(&last), end - 5, "verify does not repair");
}

#[test]
fn dump_prints_one_line_per_record_with_its_fields() {
    let t = populated();
    let (code, text) = run(cli::dump, t.path());
    assert_eq!(code, 0, "{text}");
    let recs: Vec<&str> = text.lines().filter(|l| l.contains(".wal ")).collect();
    let headers = recs
        .iter()
        .filter(|l| l.contains(" segment-header "))
        .count();
    assert_eq!(headers, segments(t.path()).len(), "{text}");
    assert!(
        recs.iter()
            .any(|l| l.contains(" entries truncate_after=18 count=2 index=19..=20 term=2..=2")),
        "{text}"
    );
    assert!(
        recs.iter()
            .any(|l| l.contains(" hard-state term=2 vote=1 commit=18")),
        "{text}"
    );
    assert!(
        recs.iter()
            .any(|l| l.contains(" snapshot-marker index=10 term=2 installed=false")),
        "{text}"
    );
    // Offsets are 8-aligned and increase within a segment.
    for l in &recs {
        let off: u64 = l.split(' ').nth(1).unwrap().parse().unwrap();
        assert_eq!(off % 8, 0, "{l}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("snap/") && l.contains("index=10 term=2")),
        "{text}"
    );
    // Damage: the records before it, then the error.
    let seg = segments(t.path()).pop().unwrap();
    let n_last = recs
        .iter()
        .filter(|l| l.starts_with(&*seg.file_name().unwrap().to_string_lossy()))
        .count();
    assert!(n_last >= 3);
    let second_off: u64 = recs
        .iter()
        .filter(|l| l.starts_with(&*seg.file_name().unwrap().to_string_lossy()))
        .nth(1)
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    flip(&seg, second_off + 9);
    let (code, text) = run(cli::dump, t.path());
    assert_eq!(code, 1, "{text}");
    let last_line = text.lines().last().unwrap();
    assert!(
        last_line.starts_with("error: ") && last_line.contains(&format!("at offset {second_off}")),
        "{text}"
    );
}

#[test]
fn the_binary_exits_zero_on_a_good_directory_and_one_on_a_bad_one() {
    let t = populated();
    let bin = env!("CARGO_BIN_EXE_raft-example");
    let out = Command::new(bin)
        .args(["wal", "verify"])
        .arg(t.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(bin)
        .args(["wal", "dump"])
        .arg(t.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).lines().count() > 10);
    let seg = &segments(t.path())[0];
    flip(seg, 12);
    let out = Command::new(bin)
        .args(["wal", "verify"])
        .arg(t.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&*seg.file_name().unwrap().to_string_lossy()) && text.contains("at offset 0"),
        "{text}"
    );
    let missing = t.path().join("no-such-dir");
    let out = Command::new(bin)
        .args(["wal", "verify"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
