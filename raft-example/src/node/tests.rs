//! Three node tasks in one process, over the real transport on 127.0.0.1, with in-memory
//! disks: elections, writes answered only once applied, linearizable reads, snapshots.

use super::api::{NodeHandle, Reject, Request, WriteDone};
use super::storage::MemDisk;
use super::*;
use crate::shutdown::Trigger;
use crate::transport;

struct NullSaver;

impl SnapshotSaver for NullSaver {
    fn save(&self, _snap: &Snapshot) -> Result<(), storage::DiskFailure> {
        Ok(())
    }
}

struct Cluster {
    handles: Vec<NodeHandle>,
    metrics: Vec<Arc<Metrics>>,
    trigger: Trigger,
}

async fn cluster(n: u64, snapshot_entries: u64) -> Cluster {
    let mut listeners = Vec::new();
    let mut members = Vec::new();
    for id in 1..=n {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        members.push(Member {
            id,
            peer_addr: l.local_addr().unwrap().to_string(),
            http_addr: format!("127.0.0.1:{}", 1000 + id),
        });
        listeners.push(l);
    }
    let (trigger, shutdown) = crate::shutdown::channel();
    let logger = Logger::root(slog::Discard, slog::o!());
    let mut handles = Vec::new();
    let mut all_metrics = Vec::new();
    for (l, me) in listeners.into_iter().zip(&members) {
        let kv = Kv::founding(members.iter().cloned(), 1);
        let snap = boot::founding_snapshot(&kv);
        let mut st = MemStorage::new();
        st.apply_snapshot(snap).unwrap();
        st.set_hard_state(raft_core::HardState {
            term: 1,
            vote: 0,
            commit: 1,
        });
        let cfg = NodeConfig {
            id: me.id,
            tick: Duration::from_millis(10),
            election_ticks: 10,
            heartbeat_ticks: 1,
            snapshot_entries,
        };
        let book = AddressBook::new(members.iter().cloned());
        let metrics = Arc::new(Metrics::default());
        let ident = Arc::new(transport::Identity {
            cluster_id: "test".into(),
            id: me.id,
            http_addr: me.http_addr.clone(),
            max_frame_bytes: 1 << 20,
        });
        let (i2, b2, m2, s2, l2) = (
            ident.clone(),
            book.clone(),
            metrics.clone(),
            shutdown.clone(),
            logger.clone(),
        );
        let (node, inputs, handle, wiring) = Node::new(
            cfg,
            Start {
                storage: st,
                kv,
                applied: 1,
            },
            MemDisk::default(),
            Arc::new(NullSaver),
            book.clone(),
            move |rep| Transport::new(i2, b2, rep, m2, s2, l2),
            metrics.clone(),
            logger.clone(),
        )
        .unwrap();
        tokio::spawn(transport::serve(
            l,
            ident,
            book,
            wiring.inbound,
            metrics.clone(),
            shutdown.clone(),
            logger.clone(),
        ));
        tokio::spawn(node.run(inputs, shutdown.clone()));
        handles.push(handle);
        all_metrics.push(metrics);
    }
    Cluster {
        handles,
        metrics: all_metrics,
        trigger,
    }
}

/// Waits (bounded) until some node leads; returns its index in `handles`.
async fn leader(c: &Cluster) -> usize {
    for _ in 0..1000 {
        if let Some(i) = c.handles.iter().position(|h| h.leader.borrow().is_leader) {
            return i;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no leader elected");
}

async fn put(h: &NodeHandle, k: &str, v: &str) -> Result<WriteDone, Reject> {
    let op = Op::Put {
        key: Bytes::copy_from_slice(k.as_bytes()),
        value: Bytes::copy_from_slice(v.as_bytes()),
    };
    h.ask(|reply| Request::Write { op, reply }).await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_replicate_and_snapshot() {
    let c = cluster(3, 20).await;
    let l = leader(&c).await;
    let mut last_rev = 0;
    for i in 0..60 {
        let done = put(&c.handles[l], &format!("k{i:02}"), &format!("v{i}"))
            .await
            .expect("the leader answers once applied");
        let crate::kv::OpResult::Put { revision } = done.result else {
            panic!("a put answers a put");
        };
        assert!(revision > last_rev, "revisions increase");
        last_rev = revision;
        // Answered only once applied: the leader's store already holds it.
        let kv = c.handles[l].kv.read().unwrap();
        assert_eq!(
            &kv.get(format!("k{i:02}").as_bytes()).unwrap().value[..],
            format!("v{i}").as_bytes()
        );
        assert!(kv.applied() >= done.index);
    }
    // A follower refuses writes with the leader's id (the HTTP layer forwards).
    let f = (l + 1) % 3;
    match put(&c.handles[f], "x", "y").await {
        Err(Reject::NotLeader { leader: Some(id) }) => assert_eq!(id, l as u64 + 1),
        other => panic!("a follower answered {other:?}"),
    }
    // A linearizable read on the leader confirms an applied index covering every write.
    let applied = c.handles[l]
        .ask(|reply| Request::Read { reply })
        .await
        .unwrap()
        .unwrap();
    assert!(applied >= 61, "read index {applied}");
    // Every member converges on the same store (bounded wait).
    for h in &c.handles {
        let mut ok = false;
        for _ in 0..500 {
            if h.kv.read().unwrap().len() == 60 {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(ok, "node {} has {} keys", h.id, h.kv.read().unwrap().len());
    }
    let reference = c.handles[l].kv.read().unwrap().encode();
    for h in &c.handles {
        let mut same = false;
        for _ in 0..500 {
            if h.kv.read().unwrap().encode() == reference {
                same = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(same, "node {} diverges", h.id);
    }
    // 60 applied entries with a snapshot every 20: each node made at least two.
    for (i, m) in c.metrics.iter().enumerate() {
        let mut made = 0;
        for _ in 0..500 {
            made = m.snapshots_made_total.load(Relaxed);
            if made >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(made >= 2, "node {} made {made} snapshots", i + 1);
    }
    let st = c.handles[l]
        .ask(|reply| Request::Status { reply })
        .await
        .unwrap();
    assert_eq!(st.role, "leader");
    assert_eq!(st.members.len(), 3);
    assert!(st.members.iter().all(|m| m.voter));
    assert_eq!(st.progress.len(), 3);
    c.trigger.fire();
}

// A current-thread runtime, so that "together" does not depend on the scheduler: the 200
// writers are spawned before the test yields, each sends its request as soon as it first runs,
// and the loop, woken by the first send, runs only after them. On two worker threads the loop
// could take each request as it came (it did once in CI: 200 batches), which tests the
// scheduler, not the drain.
#[tokio::test(flavor = "current_thread")]
async fn proposals_that_arrive_together_share_one_persist_batch() {
    let c = cluster(3, 0).await;
    let l = leader(&c).await;
    // Settle: the leader's first entry is applied.
    put(&c.handles[l], "warm", "up").await.unwrap();
    let before = c.metrics[l].wal_batches_total.load(Relaxed);
    let mut waits = Vec::new();
    for i in 0..200 {
        let h = c.handles[l].clone();
        waits.push(tokio::spawn(
            async move { put(&h, &format!("b{i}"), "v").await },
        ));
    }
    for w in waits {
        w.await.unwrap().expect("applied");
    }
    let batches = c.metrics[l].wal_batches_total.load(Relaxed) - before;
    // 200 concurrent proposals, each alone in a batch, would make 200 batches (plus
    // commit-only hard states, which ride along). Drained together, they make far fewer.
    assert!(
        batches < 200,
        "{batches} persist batches for 200 concurrent writes"
    );
    c.trigger.fire();
}
