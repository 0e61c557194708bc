//! The process-level test harness: a thin layer over [`raft_example::cluster::LocalCluster`].
//!
//! Every test:
//! 1. holds [`serial`] for its whole body, so the clusters of one test binary do not compete
//!    for the CI box's two cores (test binaries already run one after another);
//! 2. runs its body under [`deadline`], so a hang fails the test instead of the CI job;
//! 3. owns a [`TestCluster`], whose drop kills every member (kill -9) and removes its temp
//!    directory, and, when the test failed, prints the tail of every member's log.
//!
//! Members run with short ticks (`TICK_MS` x `ELECTION_TICKS` = a 200 ms election timeout)
//! and `--test-hooks`, on ephemeral 127.0.0.1 ports.
#![allow(dead_code)] // each test binary uses a different part

use raft_example::client::{Client, ClientError, Consistency, RangeQuery};
use raft_example::cluster::{ClusterOptions, LocalCluster};
use std::collections::BTreeMap;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Tick length the tests run members with.
pub const TICK_MS: u64 = 20;
/// Election ticks the tests run members with.
pub const ELECTION_TICKS: u64 = 10;

/// The `raft-example` binary cargo built for these tests.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_raft-example"))
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One cluster test at a time per test binary.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// Runs `body`, failing the test if it takes longer than `secs` seconds.
pub async fn deadline<F: Future<Output = ()>>(secs: u64, body: F) {
    if tokio::time::timeout(Duration::from_secs(secs), body)
        .await
        .is_err()
    {
        panic!("test did not finish within its {secs} s deadline");
    }
}

/// A cluster in a temp directory; every member is killed when it drops.
pub struct TestCluster {
    // Field order matters: the processes die before their directory is removed.
    cluster: LocalCluster,
    /// `None` once kept for a post-mortem (a failed test).
    dir: Option<tempfile::TempDir>,
}

impl TestCluster {
    /// Options for `nodes` members with the tests' short ticks and test hooks, in a fresh temp
    /// directory.
    pub fn options(nodes: u64) -> (tempfile::TempDir, ClusterOptions) {
        let dir = tempfile::Builder::new()
            .prefix("raft-example-test-")
            .tempdir()
            .expect("temp dir");
        let mut o = ClusterOptions::new(binary(), nodes, dir.path());
        o.tick_ms = Some(TICK_MS);
        o.election_ticks = Some(ELECTION_TICKS);
        o.heartbeat_ticks = Some(1);
        o.test_hooks = true;
        o.log_level = Some("info".into());
        (dir, o)
    }

    /// Plans `nodes` members (not started), after `configure` adjusts the options.
    pub fn plan(nodes: u64, configure: impl FnOnce(&mut ClusterOptions)) -> TestCluster {
        let (dir, mut o) = TestCluster::options(nodes);
        configure(&mut o);
        let cluster = LocalCluster::new(o).expect("plan the cluster");
        TestCluster {
            cluster,
            dir: Some(dir),
        }
    }

    /// Starts `nodes` members and waits for a leader.
    pub async fn start(nodes: u64) -> TestCluster {
        TestCluster::start_with(nodes, |_| {}).await
    }

    /// [`TestCluster::start`] after `configure` adjusts the options.
    pub async fn start_with(
        nodes: u64,
        configure: impl FnOnce(&mut ClusterOptions),
    ) -> TestCluster {
        let mut c = TestCluster::plan(nodes, configure);
        c.start_all().expect("start the members");
        c.leader_within(LEADER_WAIT).await;
        c
    }

    /// The temp directory.
    pub fn root(&self) -> &Path {
        self.cluster.options().root.as_path()
    }

    /// Waits for a leader, failing the test after `timeout`.
    pub async fn leader_within(&mut self, timeout: Duration) -> u64 {
        match self.cluster.wait_for_leader(timeout).await {
            Ok(id) => id,
            Err(e) => panic!("{e}"),
        }
    }

    /// A running member other than `not`.
    pub fn other_than(&mut self, not: &[u64]) -> u64 {
        self.cluster
            .running_ids()
            .into_iter()
            .find(|id| !not.contains(id))
            .expect("another running member")
    }

    /// Waits until member `id` has applied at least `index`.
    pub async fn wait_applied(&self, id: u64, index: u64, timeout: Duration) {
        let what = format!("member {id} applies index {index}");
        wait_until(timeout, &what, || async {
            self.cluster
                .status(id)
                .await
                .is_some_and(|s| s.applied >= index)
        })
        .await;
    }

    /// The commit index the leader reports.
    pub async fn leader_commit(&mut self) -> u64 {
        let l = self.leader_within(LEADER_WAIT).await;
        self.cluster.status(l).await.expect("leader status").commit
    }
}

/// How long tests wait for an election in a healthy cluster (generous: a loaded CI box).
pub const LEADER_WAIT: Duration = Duration::from_secs(20);

/// How long tests wait for a member to catch up.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(30);

impl Deref for TestCluster {
    type Target = LocalCluster;
    fn deref(&self) -> &LocalCluster {
        &self.cluster
    }
}

impl DerefMut for TestCluster {
    fn deref_mut(&mut self) -> &mut LocalCluster {
        &mut self.cluster
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                // Kept (with every member's whole log) for a post-mortem.
                eprintln!("---- data and logs kept in {} ----", dir.keep().display());
            }
            for id in self.cluster.ids() {
                let log = self.cluster.log(id);
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                eprintln!("---- member {id} log (last {} lines) ----", tail.len());
                for l in tail {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// Polls `cond` every 20 ms until it holds, failing the test after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {} ms waiting until {what}",
                timeout.as_millis()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Puts `key`, retrying (up to `timeout`) only after failures that say the write did not
/// happen (no connection, 503 "no leader", a retryable "write lost"), so a retry never applies
/// a write twice. Any other failure, indeterminate ones included, fails the test.
pub async fn put_retrying(c: &Client, key: &str, value: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        match c.put(key, value).await {
            Ok(_) => return,
            Err(e) if retry_is_safe(&e) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("put {key}={value} via {}: {e}", c.addr()),
        }
    }
}

/// A failure after which retrying a put cannot apply it twice: the write never reached a
/// leader's log, or was reported lost.
pub fn retry_is_safe(e: &ClientError) -> bool {
    if let ClientError::Connect(_) = e {
        return true;
    }
    let Some(j) = e.json() else { return false };
    let error = j.get("error").and_then(|v| v.as_str()).unwrap_or("");
    error == "no leader" || j.get("retryable").and_then(|v| v.as_bool()) == Some(true)
}

/// Every key under `prefix` on one member (serializable: that member's own state), paging
/// past any limit.
pub async fn all_values(c: &Client, prefix: &str) -> BTreeMap<String, String> {
    let r = c
        .range(&RangeQuery {
            prefix: Some(prefix.to_owned()),
            serializable: true,
            ..RangeQuery::default()
        })
        .await
        .unwrap_or_else(|e| panic!("range {prefix} on {}: {e}", c.addr()));
    assert!(!r.more, "an unlimited range says there is more");
    r.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()
}

/// Waits until member `id` holds every key/value of `expected` (serializable reads).
pub async fn wait_has_all(
    c: &LocalCluster,
    id: u64,
    prefix: &str,
    expected: &BTreeMap<String, String>,
    timeout: Duration,
) {
    let client = c.client(id);
    let deadline = Instant::now() + timeout;
    loop {
        let got = match client
            .range(&RangeQuery {
                prefix: Some(prefix.to_owned()),
                serializable: true,
                ..RangeQuery::default()
            })
            .await
        {
            Ok(r) => r.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect(),
            Err(_) => BTreeMap::new(),
        };
        let missing: Vec<&String> = expected
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .collect();
        if missing.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "member {id} still lacks {} of {} values after {} ms, e.g. keys {:?}",
                missing.len(),
                expected.len(),
                timeout.as_millis(),
                &missing[..missing.len().min(5)]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A linearizable read of `key` through member `id`.
pub async fn read(c: &LocalCluster, id: u64, key: &str) -> Option<String> {
    c.client(id)
        .get(key, Consistency::Linearizable)
        .await
        .unwrap_or_else(|e| panic!("get {key} via member {id}: {e}"))
        .map(|kv| kv.value)
}

#[allow(unused_imports)] // each test binary uses a different part
pub use raft_example::cluster::{WalRecord, installed_snapshots, wal_records, wal_segments};

/// The test hook's report: (segment file, offset) of the last fsync.
pub fn synced_offset(data_dir: &Path) -> (PathBuf, u64) {
    let path = data_dir.join("wal").join("SYNCED");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let line = text
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("{} is empty", path.display()));
    let mut parts = line.split_whitespace();
    let (Some(seg), Some(off), None) = (parts.next(), parts.next(), parts.next()) else {
        panic!(
            "{}: expected \"<segment> <offset>\", got {line:?}",
            path.display()
        );
    };
    let off: u64 = off
        .parse()
        .unwrap_or_else(|e| panic!("{}: offset {off:?}: {e}", path.display()));
    (data_dir.join("wal").join(seg), off)
}

/// Power loss: cuts the member's WAL back to its last fsynced offset (that segment truncated,
/// later segments removed). Returns how many bytes were dropped.
pub fn cut_to_synced(data_dir: &Path) -> u64 {
    let (seg, off) = synced_offset(data_dir);
    let mut dropped = 0;
    for s in wal_segments(data_dir) {
        let len = std::fs::metadata(&s).expect("segment metadata").len();
        if s == seg {
            assert!(
                len >= off,
                "{} is {len} bytes, shorter than its synced offset {off}",
                s.display()
            );
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&s)
                .expect("open segment");
            f.set_len(off).expect("truncate segment");
            dropped += len - off;
        } else if s > seg {
            std::fs::remove_file(&s).expect("remove later segment");
            dropped += len;
        }
    }
    dropped
}

/// Whether `wal/` holds a copy of a cut-off tail (`<segment>.broken[.N]`).
pub fn has_broken_copy(data_dir: &Path) -> bool {
    std::fs::read_dir(data_dir.join("wal"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().contains(".broken"))
        })
        .unwrap_or(false)
}
