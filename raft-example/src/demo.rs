//! `raft-example demo`: a narrated tour of a three-member cluster that exits 0 only when every
//! step held.
//!
//! The steps: start three members (a temp data directory, a small snapshot interval so that
//! compaction happens), write, read through a follower, kill -9 the leader, watch a new one be
//! elected, write more than the snapshot interval, restart the killed member and see it catch
//! up (by snapshot, since the leader compacted past it), and read every value on every member
//! from its own state. On a failure the step and the reason are printed and the exit code is 1;
//! the members are stopped in every case (and killed if the demo panics: [`LocalCluster`]'s
//! drop).
//!
//! Invariants:
//! 1. Every claim the narration makes is checked against the members' answers before it is
//!    printed.
//! 2. The data directory is removed on success and kept (and named) on failure.

use crate::client::{Consistency, RangeQuery};
use crate::cluster::{ClusterOptions, LocalCluster};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Arguments of `raft-example demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshot after this many applied entries (small, so the tour shows compaction).
    #[arg(long, default_value_t = 50)]
    pub snapshot_entries: u64,
    /// Keys written while the old leader is down (more than the snapshot interval).
    #[arg(long, default_value_t = 120)]
    pub writes: u64,
    /// Keep the data directory afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// Runs `raft-example demo`; returns the process exit code.
pub fn run(args: Args) -> ExitCode {
    crate::block_on("demo", tour(args))
}

/// A failed step: its number and what went wrong.
struct Failed(usize, String);

/// Narration with step numbers.
struct Narrator {
    step: usize,
    started: Instant,
}

impl Narrator {
    fn step(&mut self, what: &str) {
        self.step += 1;
        println!();
        println!(
            "[{:>5.1}s] step {}: {what}",
            self.started.elapsed().as_secs_f64(),
            self.step
        );
    }

    fn say(&self, line: &str) {
        println!("         {line}");
    }

    fn fail(&self, why: impl Into<String>) -> Failed {
        Failed(self.step, why.into())
    }
}

async fn tour(args: Args) -> ExitCode {
    let root = std::env::temp_dir().join(format!(
        "raft-example-demo-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    ));
    let binary = match std::env::current_exe() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("raft-example demo: cannot find my own binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut opts = ClusterOptions::new(binary, 3, &root);
    opts.snapshot_entries = Some(args.snapshot_entries);
    let mut n = Narrator {
        step: 0,
        started: Instant::now(),
    };
    let mut cluster = None;
    let result = steps(&mut n, &mut cluster, opts, &args).await;
    if let Some(c) = cluster.as_mut() {
        c.stop_all().await;
    }
    let logs = cluster.as_ref().map(|c| (c.ids(), root.clone()));
    drop(cluster);
    match result {
        Ok(()) => {
            println!();
            println!(
                "every step held ({} steps, {:.1} s); members stopped.",
                n.step,
                n.started.elapsed().as_secs_f64()
            );
            if args.keep {
                println!("data and logs kept in {}", root.display());
            } else {
                let _ = std::fs::remove_dir_all(&root);
            }
            ExitCode::SUCCESS
        }
        Err(Failed(step, why)) => {
            println!();
            println!("FAILED at step {step}: {why}");
            if let Some((ids, root)) = logs {
                let paths: Vec<PathBuf> = ids
                    .iter()
                    .map(|id| root.join(format!("n{id}.log")))
                    .collect();
                println!("members stopped; their logs are kept:");
                for p in paths {
                    println!("  {}", p.display());
                }
            }
            ExitCode::FAILURE
        }
    }
}

async fn steps(
    n: &mut Narrator,
    slot: &mut Option<LocalCluster>,
    opts: ClusterOptions,
    args: &Args,
) -> Result<(), Failed> {
    let election_timeout = opts.election_timeout();
    let leader_wait = election_timeout * 30;

    n.step("start three members on 127.0.0.1");
    n.say(&format!(
        "data under {}, snapshot every {} applied entries",
        opts.root.display(),
        args.snapshot_entries
    ));
    let c = slot.insert(LocalCluster::start(opts).map_err(|e| n.fail(e.to_string()))?);
    for id in c.ids() {
        n.say(&format!(
            "member {id}: http://{}  peer {}",
            c.http_addr(id),
            c.peer_addr(id)
        ));
    }
    let t = Instant::now();
    let leader = c
        .wait_for_leader(leader_wait)
        .await
        .map_err(|e| n.fail(e.to_string()))?;
    let term = c.status(leader).await.map(|s| s.term).unwrap_or(0);
    n.say(&format!(
        "member {leader} was elected leader (term {term}) after {} ms",
        t.elapsed().as_millis()
    ));

    n.step("write through the leader");
    let lc = c.client(leader);
    let put = lc
        .put("greeting", "hello, raft")
        .await
        .map_err(|e| n.fail(format!("PUT greeting: {e}")))?;
    n.say(&format!(
        "PUT /v1/kv/greeting = \"hello, raft\" -> committed and applied at index {} (revision {})",
        put.index, put.revision
    ));
    let mut expected = BTreeMap::new();
    expected.insert("greeting".to_owned(), "hello, raft".to_owned());

    n.step("read it through a follower");
    let follower = c
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .ok_or_else(|| n.fail("no follower"))?;
    let kv = c
        .client(follower)
        .get("greeting", Consistency::Linearizable)
        .await
        .map_err(|e| n.fail(format!("GET greeting via member {follower}: {e}")))?
        .ok_or_else(|| n.fail(format!("member {follower} says greeting does not exist")))?;
    if kv.value != "hello, raft" {
        return Err(n.fail(format!("member {follower} read {:?}", kv.value)));
    }
    n.say(&format!(
        "GET via member {follower} (a follower: it forwards the linearizable read to the \
         leader) -> \"{}\"",
        kv.value
    ));

    n.step("kill -9 the leader");
    let old = leader;
    let applied_at_kill = c.status(old).await.map(|s| s.applied).unwrap_or(0);
    c.kill(old).map_err(|e| n.fail(e.to_string()))?;
    let t = Instant::now();
    n.say(&format!(
        "member {old} killed (no shutdown) at applied index {applied_at_kill}"
    ));
    let new = c
        .wait_for_leader(leader_wait)
        .await
        .map_err(|e| n.fail(format!("no new leader: {e}")))?;
    if new == old {
        return Err(n.fail("the dead member is still named leader"));
    }
    let term = c.status(new).await.map(|s| s.term).unwrap_or(0);
    n.say(&format!(
        "member {new} was elected leader (term {term}) {} ms after the kill \
         (election timeout {} ms)",
        t.elapsed().as_millis(),
        election_timeout.as_millis()
    ));

    n.step(&format!(
        "write {} keys while member {old} is down (more than the snapshot interval)",
        args.writes
    ));
    let nc = c.client(new);
    let t = Instant::now();
    for i in 0..args.writes {
        let (k, v) = (format!("demo/{i:04}"), format!("value {i}"));
        nc.put(&k, &v)
            .await
            .map_err(|e| n.fail(format!("PUT {k}: {e}")))?;
        expected.insert(k, v);
    }
    let s = c
        .status(new)
        .await
        .ok_or_else(|| n.fail("the leader does not answer /status"))?;
    n.say(&format!(
        "{} writes in {} ms; leader commit {}, its snapshot at index {}",
        args.writes,
        t.elapsed().as_millis(),
        s.commit,
        s.snapshot_index
    ));
    // Wait until the leader has compacted past the dead member, so the catch-up must be by
    // snapshot (the node snapshots off its Ready loop, a moment after applying).
    let compacted = wait(Duration::from_secs(10), || async {
        c.status(new)
            .await
            .is_some_and(|s| s.snapshot_index > applied_at_kill)
    })
    .await;
    let s = c.status(new).await.ok_or_else(|| n.fail("no status"))?;
    if !compacted {
        return Err(n.fail(format!(
            "the leader did not snapshot past index {applied_at_kill} (snapshot at {})",
            s.snapshot_index
        )));
    }
    n.say(&format!(
        "the leader snapshotted at index {}: member {old}'s last applied index \
         {applied_at_kill} is behind it",
        s.snapshot_index
    ));

    n.step(&format!("restart member {old} and let it catch up"));
    let target = s.commit;
    c.restart(old).map_err(|e| n.fail(e.to_string()))?;
    let t = Instant::now();
    let caught_up = wait(Duration::from_secs(30), || async {
        c.status(old).await.is_some_and(|s| s.applied >= target)
    })
    .await;
    let s = c
        .status(old)
        .await
        .ok_or_else(|| n.fail(format!("member {old} does not answer after restart")))?;
    if !caught_up {
        return Err(n.fail(format!(
            "member {old} applied {} of {target} after 30 s",
            s.applied
        )));
    }
    // Its WAL says whether it installed a snapshot from the leader (a marker record).
    let installed: Vec<(u64, u64)> = crate::cluster::installed_snapshots(&c.data_dir(old))
        .into_iter()
        .filter(|&(index, _)| index > applied_at_kill)
        .collect();
    let Some(&(snap_index, snap_term)) = installed.last() else {
        return Err(n.fail(format!(
            "member {old} caught up (applied {}) without installing a snapshot from the leader",
            s.applied
        )));
    };
    n.say(&format!(
        "member {old} applied index {} after {} ms: it installed the leader's snapshot at \
         index {snap_index} (term {snap_term}), then the entries after it",
        s.applied,
        t.elapsed().as_millis(),
    ));

    n.step("every value on every member (serializable reads: each member's own state)");
    for id in c.ids() {
        let client = c.client(id);
        let deadline = Instant::now() + Duration::from_secs(10);
        let q = RangeQuery {
            prefix: Some(String::new()),
            serializable: true,
            ..RangeQuery::default()
        };
        loop {
            let got: BTreeMap<String, String> = match client.range(&q).await {
                Ok(r) => r.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect(),
                Err(_) => BTreeMap::new(),
            };
            if got == expected {
                break;
            }
            if Instant::now() >= deadline {
                let missing = expected.keys().filter(|k| !got.contains_key(*k)).count();
                let wrong = expected
                    .iter()
                    .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
                    .count();
                return Err(n.fail(format!(
                    "member {id} holds {} keys: {missing} missing, {wrong} with another value",
                    got.len()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        n.say(&format!(
            "member {id}: all {} keys, every value as written",
            expected.len()
        ));
    }
    n.say(&format!(
        "no acknowledged value was lost across the leader's crash (member {old} -> member {new})"
    ));
    Ok(())
}

/// Polls `cond` every 50 ms up to `timeout`; whether it held.
async fn wait<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
