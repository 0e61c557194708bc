//! Damaged and full disks on one member of three: a torn tail is repaired, a flipped byte in
//! the middle of the log is refused with the file and offset named, and a full disk stops
//! that member (fail-stop) while the rest go on; no acknowledged write is lost.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{TestCluster, deadline, serial, wait_until};

/// Writes `n` keys `{prefix}{i}` through the leader (the last one 4 KiB, so the last WAL record
/// is large), then waits until every member applied them. Returns what was written.
async fn write_and_settle(c: &mut TestCluster, prefix: &str, n: usize) -> BTreeMap<String, String> {
    let leader = c.leader_within(support::LEADER_WAIT).await;
    let lc = c.client(leader);
    let mut written = BTreeMap::new();
    for i in 0..n {
        let key = format!("{prefix}{i:03}");
        let value = if i + 1 == n {
            "x".repeat(4096)
        } else {
            format!("value-{i}")
        };
        support::put_retrying(&lc, &key, &value, Duration::from_secs(10)).await;
        written.insert(key, value);
    }
    let commit = c.leader_commit().await;
    for id in c.running_ids() {
        c.wait_applied(id, commit, support::CATCH_UP_WAIT).await;
    }
    written
}

fn last_segment(data_dir: &Path) -> PathBuf {
    support::wal_segments(data_dir)
        .pop()
        .unwrap_or_else(|| panic!("no WAL segment in {}", data_dir.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_repaired_and_the_member_catches_up() {
    let _serial = serial().await;
    deadline(120, async {
        let mut c = TestCluster::start(3).await;
        let written = write_and_settle(&mut c, "t/", 30).await;
        let leader = c.leader_within(support::LEADER_WAIT).await;
        let a = c.other_than(&[leader]);
        let b = c.other_than(&[leader, a]);
        c.kill(a).expect("kill -9 a follower");
        c.kill(b).expect("kill -9 the other follower");

        // Member a: the last record cut in the middle (a write cut short).
        let seg = last_segment(&c.data_dir(a));
        let records = support::wal_records(&seg);
        let last = *records.last().expect("records");
        let cut = last.offset + last.size / 2;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .expect("open")
            .set_len(cut)
            .expect("truncate");
        eprintln!(
            "member {a}: {} cut at {cut} (last record at {}, {} bytes)",
            seg.display(),
            last.offset,
            last.size
        );

        // Member b: the last 512 bytes of its log zeroed (a sector never written).
        let seg = last_segment(&c.data_dir(b));
        let records = support::wal_records(&seg);
        let last = *records.last().expect("records");
        // The last 512 bytes of the log: the small records a batch ends with and the end of
        // the 4 KiB entry before them (its CRC word included), never the headers before it.
        let mut bytes = std::fs::read(&seg).expect("read");
        let end = usize::try_from(last.offset + last.size).expect("fits");
        let big = records
            .iter()
            .rev()
            .find(|r| r.size > 1024)
            .expect("the 4 KiB entry's record");
        let keep = usize::try_from(big.offset + 8).expect("fits");
        let zero_from = end.saturating_sub(512).max(keep);
        bytes[zero_from..end].fill(0);
        std::fs::write(&seg, &bytes).expect("write");
        eprintln!(
            "member {b}: {} bytes {zero_from}..{end} zeroed (last record at {}, {} bytes)",
            seg.display(),
            last.offset,
            last.size
        );

        // The leader dies too: torn tails come from a power loss, which stops every member.
        // (It also matters: the cut took entries these members had acknowledged, which a
        // real torn write cannot, since they were fsynced. A leader that kept running would
        // still count them matched, and a member refuses a heartbeat whose commit index is
        // beyond its log without answering, so that leader would never learn; see the
        // findings in the contract file.)
        c.kill(leader).expect("kill -9 the leader");
        c.start_all().expect("restart every member");
        c.leader_within(support::LEADER_WAIT).await;
        for id in [a, b] {
            assert!(c.is_running(id), "member {id} repaired its tail and runs");
            assert!(
                support::has_broken_copy(&c.data_dir(id)),
                "member {id} copied the cut-off tail aside"
            );
        }
        let lc = c.client(a);
        support::put_retrying(&lc, "t/after", "1", Duration::from_secs(10)).await;
        let mut written = written;
        written.insert("t/after".into(), "1".into());
        for id in c.ids() {
            support::wait_has_all(&c, id, "t/", &written, support::CATCH_UP_WAIT).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_middle_record_is_refused_naming_file_and_offset() {
    let _serial = serial().await;
    deadline(120, async {
        let mut c = TestCluster::start(3).await;
        let written = write_and_settle(&mut c, "f/", 30).await;
        let leader = c.leader_within(support::LEADER_WAIT).await;
        let victim = c.other_than(&[leader]);
        c.kill(victim).expect("kill -9 a follower");

        let data_dir = c.data_dir(victim);
        let seg = last_segment(&data_dir);
        let records = support::wal_records(&seg);
        assert!(records.len() >= 5, "a log of several records: {records:?}");
        let target = records[records.len() / 2..records.len() - 1]
            .iter()
            .find(|r| r.payload_len > 0)
            .copied()
            .expect("a middle record with a payload");
        let mut bytes = std::fs::read(&seg).expect("read");
        let at = usize::try_from(target.offset + 8 + target.payload_len / 2).expect("fits");
        bytes[at] ^= 0xff;
        std::fs::write(&seg, &bytes).expect("write");
        let seg_name = seg
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        eprintln!(
            "member {victim}: byte {at} of {seg_name} flipped (record at {})",
            target.offset
        );

        // The offline verifier refuses it too, naming the file.
        let out = Command::new(support::binary())
            .args(["wal", "verify"])
            .arg(&data_dir)
            .output()
            .expect("run wal verify");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "wal verify accepts a flipped byte: {text}"
        );
        assert!(
            text.contains(&seg_name),
            "wal verify names the file: {text}"
        );

        let log_before = c.log(victim).len();
        c.restart(victim).expect("restart");
        let status = c
            .wait_exit(victim, Duration::from_secs(30))
            .await
            .expect("the member refuses to start");
        assert!(!status.success(), "it exits non-zero: {status}");
        let log = c.log(victim);
        let log = &log[log_before..];
        assert!(log.contains(&seg_name), "the message names the file: {log}");
        let offset_named = [target.offset, at as u64]
            .iter()
            .any(|o| log.contains(&o.to_string()) || log.contains(&format!("{o:#x}")));
        assert!(
            log.contains("offset") && offset_named,
            "the message names the offset ({} or {at}): {log}",
            target.offset
        );
        // Nothing was "repaired" away: the damaged segment is as the test left it.
        assert_eq!(
            std::fs::read(&seg).expect("read"),
            bytes,
            "a refused WAL is left untouched"
        );

        // The other two go on.
        let lc = c.client(leader);
        support::put_retrying(&lc, "f/after", "1", Duration::from_secs(10)).await;
        for id in c.running_ids() {
            support::wait_has_all(&c, id, "f/", &written, support::CATCH_UP_WAIT).await;
        }
    })
    .await;
}

/// A small tmpfs mounted on a temp directory; unmounted (and the directory removed) on drop.
struct Tmpfs {
    dir: Option<tempfile::TempDir>,
}

impl Tmpfs {
    /// Mounts a `bytes`-sized tmpfs, if this process may (root, and mount(8) works here).
    fn mount(bytes: u64) -> Option<Tmpfs> {
        let dir = tempfile::Builder::new()
            .prefix("raft-example-full-")
            .tempdir()
            .ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(Tmpfs { dir: Some(dir) })
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().expect("mounted").path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = Command::new("umount").arg(dir.path()).status();
            drop(dir);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_that_member_and_the_rest_go_on() {
    let _serial = serial().await;
    deadline(150, async {
        // Declared before the cluster, so it is unmounted after the members are killed.
        let tmpfs = Tmpfs::mount(4 << 20);
        let full = 3;
        let mut c = TestCluster::plan(3, |o| {
            if tmpfs.is_none() {
                // No tmpfs here: the node's injected ENOSPC-like failure past this many bytes.
                o.member_args.insert(
                    full,
                    vec!["--test-wal-fail-after-bytes".into(), "400000".into()],
                );
            }
        });
        if let Some(t) = &tmpfs {
            std::os::unix::fs::symlink(t.path(), c.data_dir(full)).expect("symlink the data dir");
            eprintln!("member {full}'s data dir is a 4 MiB tmpfs");
        } else {
            eprintln!("no tmpfs: member {full} runs with --test-wal-fail-after-bytes 400000");
        }
        c.start_all().expect("start");
        c.leader_within(support::LEADER_WAIT).await;
        // The member is up and replicating before its disk fills.
        let commit = c.leader_commit().await;
        c.wait_applied(full, commit, support::CATCH_UP_WAIT).await;

        // Write 16 KiB values (through the other members, which forward to the leader) until
        // the full member exits; 16 MiB, four times its disk, is the bound.
        let writers: Vec<u64> = c.ids().into_iter().filter(|&id| id != full).collect();
        let value = "v".repeat(16 << 10);
        let mut acked = BTreeMap::new();
        let started = Instant::now();
        let mut i = 0;
        while c.is_running(full) {
            assert!(
                i < 512,
                "member {full} still runs after {i} writes of 4 KiB"
            );
            let key = format!("d/{i:04}");
            let client = c.client(writers[i % writers.len()]);
            if client.put(&key, &value).await.is_ok() {
                acked.insert(key, value.clone());
            }
            i += 1;
        }
        let status = c.exit_status(full).expect("it exited");
        eprintln!(
            "member {full} stopped after {i} writes ({} ms): {status}",
            started.elapsed().as_millis()
        );
        assert!(
            !status.success(),
            "a full disk is a fail-stop (non-zero exit): {status}"
        );
        let log = c.log(full);
        assert!(log.contains("fatal"), "one clear fatal log line: {log}");

        // The rest go on.
        c.leader_within(support::LEADER_WAIT).await;
        for j in 0..20 {
            let key = format!("d/after-{j:02}");
            let client = c.client(writers[j % writers.len()]);
            support::put_retrying(&client, &key, "after", Duration::from_secs(10)).await;
            acked.insert(key, "after".into());
        }
        for &id in &writers {
            support::wait_has_all(&c, id, "d/", &acked, support::CATCH_UP_WAIT).await;
        }
        wait_until(
            Duration::from_secs(5),
            "the full member stays down",
            || async { c.status(full).await.is_none() },
        )
        .await;
    })
    .await;
}
