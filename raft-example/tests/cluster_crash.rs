//! Crashes under load: kill -9 of the leader while clients write concurrently, and a power
//! loss of the whole cluster (every member's WAL cut back to its last fsync).
//!
//! Clients record a Jepsen-style history of a few shared registers (call and return times;
//! an operation whose answer never came, or came as "may or may not have happened", is
//! indeterminate), checked with raft-sim's linearizability checker; and every client writes
//! unique keys whose acknowledged values must all survive.

mod support;

use raft_example::client::{Client, Consistency};
use raft_sim::kv::{OpKind, OpResult};
use raft_sim::linearizability::{self, HistoryOp};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::{TestCluster, deadline, serial};

/// Shared registers k0..k{SHARED_KEYS-1}.
const SHARED_KEYS: u8 = 3;

/// What one client saw.
#[derive(Default)]
struct ClientRun {
    /// Operations on the shared registers.
    history: Vec<HistoryOp>,
    /// Acknowledged writes of unique keys.
    acked: Vec<(String, String)>,
    /// Acknowledged operations issued at or after `since` (set by the caller).
    acked_after: usize,
    /// Writes left out of the history as definitely not done, with the answer that said so.
    refused: Vec<String>,
}

/// A tiny deterministic generator (the workload need not be random, only varied).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn micros(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).expect("test runs < 500k years")
}

/// Four clients (`run_client`) on every member of a cluster, from `start` until `finish`.
struct Workload {
    start: Instant,
    stop: Arc<AtomicBool>,
    mark: Arc<std::sync::Mutex<Option<u64>>>,
    tasks: Vec<tokio::task::JoinHandle<ClientRun>>,
}

impl Workload {
    fn start(c: &TestCluster) -> Workload {
        let addrs: Vec<SocketAddr> = c.ids().iter().map(|&id| c.http_addr(id)).collect();
        let start = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let mark = Arc::new(std::sync::Mutex::new(None));
        let tasks = (1..=4)
            .map(|client| {
                let run = run_client(client, addrs.clone(), start, stop.clone(), mark.clone());
                tokio::spawn(run)
            })
            .collect();
        Workload {
            start,
            stop,
            mark,
            tasks,
        }
    }

    /// From now on, acknowledged operations count in `ClientRun::acked_after`.
    fn mark_now(&self) {
        *self.mark.lock().expect("mark") = Some(micros(self.start));
    }

    /// Stops the clients and merges what they saw.
    async fn finish(self) -> ClientRun {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = ClientRun::default();
        for t in self.tasks {
            let run = t.await.expect("client task");
            all.history.extend(run.history);
            all.acked.extend(run.acked);
            all.acked_after += run.acked_after;
            all.refused.extend(run.refused);
        }
        all
    }
}

/// One client: until `stop`, picks a member and does a put or a get on a shared register, or
/// a put of a unique key. Every call is bounded (3 s), so the loop ends soon after `stop`.
async fn run_client(
    client: u32,
    members: Vec<SocketAddr>,
    start: Instant,
    stop: Arc<AtomicBool>,
    mark: Arc<std::sync::Mutex<Option<u64>>>,
) -> ClientRun {
    let clients: Vec<Client> = members
        .iter()
        .map(|&a| Client::with_timeout(a, Duration::from_secs(3)))
        .collect();
    let mut rng = Lcg(u64::from(client) * 7919 + 1);
    let mut run = ClientRun::default();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let c = &clients[(rng.next() as usize) % clients.len()];
        let call_us = micros(start);
        let since = *mark.lock().expect("mark");
        let after_mark = since.is_some_and(|m| call_us >= m);
        match rng.next() % 3 {
            0 => {
                let key = (rng.next() % u64::from(SHARED_KEYS)) as u8;
                let value = u64::from(client) * 1_000_000 + seq;
                let r = c.put(&format!("k{key}"), &value.to_string()).await;
                let ret_us = micros(start);
                let kind = OpKind::Put { value };
                match r {
                    Ok(_) => {
                        run.acked_after += usize::from(after_mark);
                        run.history.push(op(
                            client,
                            key,
                            kind,
                            call_us,
                            Some(ret_us),
                            Some(OpResult::Done),
                        ));
                    }
                    Err(e) if e.is_indeterminate() => {
                        run.history.push(op(client, key, kind, call_us, None, None));
                    }
                    // A definite failure: the write did not happen, so it is not in the history
                    // (a read that saw it would make the history fail).
                    Err(e) => run.refused.push(format!(
                        "client {client} put k{key}={value} at {call_us}..{ret_us} via {}: {e}",
                        c.addr()
                    )),
                }
            }
            1 => {
                let key = (rng.next() % u64::from(SHARED_KEYS)) as u8;
                let r = c.get(&format!("k{key}"), Consistency::Linearizable).await;
                let ret_us = micros(start);
                if let Ok(kv) = r {
                    let value = kv.map(|kv| {
                        kv.value
                            .parse::<u64>()
                            .unwrap_or_else(|e| panic!("k{key} holds {:?}: {e}", kv.value))
                    });
                    run.acked_after += usize::from(after_mark);
                    run.history.push(op(
                        client,
                        key,
                        OpKind::Get,
                        call_us,
                        Some(ret_us),
                        Some(OpResult::Value(value)),
                    ));
                }
            }
            _ => {
                let key = format!("u/{client}/{seq}");
                let value = format!("{client}-{seq}");
                if c.put(&key, &value).await.is_ok() {
                    run.acked_after += usize::from(after_mark);
                    run.acked.push((key, value));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    run
}

fn op(
    client: u32,
    key: u8,
    kind: OpKind,
    call_us: u64,
    ret_us: Option<u64>,
    result: Option<OpResult>,
) -> HistoryOp {
    HistoryOp {
        client,
        key,
        kind,
        call_us,
        ret_us,
        result,
        index: None,
    }
}

/// Final linearizable reads of every shared register, after every client stopped.
async fn final_reads(c: &TestCluster, via: u64, start: Instant, client: u32) -> Vec<HistoryOp> {
    let mut out = Vec::new();
    for key in 0..SHARED_KEYS {
        let call_us = micros(start);
        let value = support::read(c, via, &format!("k{key}"))
            .await
            .map(|v| v.parse::<u64>().expect("a number"));
        let ret_us = micros(start);
        out.push(op(
            client,
            key,
            OpKind::Get,
            call_us,
            Some(ret_us),
            Some(OpResult::Value(value)),
        ));
    }
    out
}

async fn check_history(history: Vec<HistoryOp>, refused: &[String], root: &std::path::Path) {
    let n = history.len();
    let mut dump = String::new();
    for r in refused {
        dump.push_str(&format!("# refused: {r}\n"));
    }
    for o in &history {
        dump.push_str(&format!("{o:?}\n"));
    }
    let _ = std::fs::write(root.join("history.txt"), dump);
    let indeterminate = history.iter().filter(|o| o.ret_us.is_none()).count();
    let checked = tokio::task::spawn_blocking(move || linearizability::check(&history))
        .await
        .expect("checker thread");
    if let Err(e) = checked {
        panic!(
            "history of {n} operations ({indeterminate} indeterminate) is not linearizable: {e}"
        );
    }
    eprintln!("history: {n} operations ({indeterminate} indeterminate), linearizable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_concurrent_writes_loses_no_acknowledged_write() {
    let _serial = serial().await;
    deadline(150, async {
        // 50 ms ticks here: the bound below is in election timeouts, and on a loaded 2-core
        // box 20 ms timers slip by more than a tick.
        let mut c = TestCluster::start_with(3, |o| o.tick_ms = Some(50)).await;
        let election_timeout = c.options().election_timeout();
        let load = Workload::start(&c);
        let start = load.start;

        tokio::time::sleep(Duration::from_millis(1500)).await;
        let old = c.leader_within(support::LEADER_WAIT).await;
        c.kill(old).expect("kill -9 the leader");
        let killed_at = Instant::now();
        let new = c.leader_within(Duration::from_secs(30)).await;
        let elapsed = killed_at.elapsed();
        assert_ne!(new, old);
        // The bound: a new leader within 5 election timeouts. A timeout is randomized
        // in [election, 2 x election) ticks, so 5 of the longest ones.
        let bound = election_timeout * 2 * 5;
        eprintln!(
            "leader {old} killed; member {new} leads after {} ms (bound {} ms)",
            elapsed.as_millis(),
            bound.as_millis()
        );
        assert!(
            elapsed <= bound,
            "new leader after {} ms, more than 5 election timeouts ({} ms)",
            elapsed.as_millis(),
            bound.as_millis()
        );
        load.mark_now();

        tokio::time::sleep(Duration::from_millis(1500)).await;
        let ClientRun {
            mut history,
            acked,
            acked_after,
            refused,
        } = load.finish().await;
        let acked: BTreeMap<_, _> = acked.into_iter().collect();
        assert!(
            acked_after > 0,
            "no operation succeeded after the new leader was elected"
        );
        assert!(!acked.is_empty(), "no unique write was acknowledged");

        // Restart every member (the killed one, then a crash of all of them).
        c.restart(old).expect("restart the old leader");
        c.kill_all();
        c.start_all().expect("restart every member");
        let leader = c.leader_within(support::LEADER_WAIT).await;
        for id in c.ids() {
            support::wait_has_all(&c, id, "u/", &acked, support::CATCH_UP_WAIT).await;
        }
        history.extend(final_reads(&c, leader, start, 99).await);
        let root = c.root().to_path_buf();
        check_history(history, &refused, &root).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_cut_to_the_last_fsync_loses_no_acknowledged_write() {
    let _serial = serial().await;
    deadline(120, async {
        let mut c = TestCluster::start(3).await;
        let load = Workload::start(&c);
        let start = load.start;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // Power loss while writes are in flight: every member dies at once.
        c.kill_all();
        let ClientRun {
            mut history,
            acked,
            refused,
            ..
        } = load.finish().await;
        let acked: BTreeMap<_, _> = acked.into_iter().collect();
        assert!(
            !acked.is_empty(),
            "no write was acknowledged before the power loss"
        );
        for id in c.ids() {
            let dropped = support::cut_to_synced(&c.data_dir(id));
            eprintln!("member {id}: {dropped} unsynced WAL bytes dropped");
        }
        c.start_all().expect("restart after the power loss");
        let leader = c.leader_within(support::LEADER_WAIT).await;
        for id in c.ids() {
            support::wait_has_all(&c, id, "u/", &acked, support::CATCH_UP_WAIT).await;
        }
        history.extend(final_reads(&c, leader, start, 99).await);
        let root = c.root().to_path_buf();
        check_history(history, &refused, &root).await;
    })
    .await;
}
