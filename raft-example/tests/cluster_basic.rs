//! Three real members on 127.0.0.1: election, writes and reads with etcd's MVCC metadata, a
//! follower forwarding, `?redirect` answering 307 with the leader, and 503 without a leader.

mod support;

use hyper::{Method, StatusCode};
use raft_example::client::{Consistency, RangeQuery};
use std::time::Duration;
use support::{TestCluster, deadline, serial, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_is_elected_and_serves_writes_and_reads() {
    let _serial = serial().await;
    deadline(90, async {
        let mut c = TestCluster::start(3).await;
        let leader = c.leader_within(support::LEADER_WAIT).await;
        let lc = c.client(leader);

        let first = lc.put("greeting", "hello").await.expect("first put");
        let second = lc.put("greeting", "hello again").await.expect("second put");
        assert!(second.revision > first.revision, "revisions grow");
        assert!(second.index > first.index, "log indexes grow");

        let kv = lc
            .get("greeting", Consistency::Linearizable)
            .await
            .expect("get")
            .expect("the key exists");
        assert_eq!(kv.value, "hello again");
        assert_eq!(kv.version, 2, "two writes to the key");
        assert_eq!(kv.create_revision, first.revision);
        assert_eq!(kv.mod_revision, second.revision);

        // Keys may contain '/' and characters that need percent-encoding.
        lc.put("dir/a b", "1").await.expect("put dir/a b");
        lc.put("dir/c", "2").await.expect("put dir/c");
        lc.put("other", "3").await.expect("put other");
        let r = lc
            .range(&RangeQuery {
                prefix: Some("dir/".into()),
                ..RangeQuery::default()
            })
            .await
            .expect("prefix range");
        let keys: Vec<&str> = r.kvs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["dir/a b", "dir/c"]);
        assert!(!r.more);
        let r = lc
            .range(&RangeQuery {
                start: Some("dir/c".into()),
                end: Some("p".into()),
                ..RangeQuery::default()
            })
            .await
            .expect("start/end range");
        let keys: Vec<&str> = r.kvs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["dir/c", "greeting", "other"], "end is exclusive");
        let r = lc
            .range(&RangeQuery {
                prefix: Some("".into()),
                limit: Some(2),
                ..RangeQuery::default()
            })
            .await
            .expect("limited range");
        assert_eq!(r.kvs.len(), 2);
        assert!(r.more, "more keys than the limit");

        let d = lc.delete("other").await.expect("delete");
        assert_eq!(d.deleted, 1);
        let d = lc.delete("other").await.expect("delete again");
        assert_eq!(d.deleted, 0, "deleting a missing key deletes nothing");
        assert_eq!(
            lc.get("other", Consistency::Linearizable)
                .await
                .expect("get deleted"),
            None
        );

        // Every member applies the writes: serializable reads on each see them.
        for id in c.ids() {
            let client = c.client(id);
            let what = format!("member {id} serves greeting locally");
            wait_until(Duration::from_secs(10), &what, || async {
                matches!(
                    client.get("greeting", Consistency::Serializable).await,
                    Ok(Some(kv)) if kv.value == "hello again"
                )
            })
            .await;
        }

        let s = c.status(leader).await.expect("leader status");
        assert_eq!(s.role, "leader");
        assert_eq!(s.leader, Some(leader));
        assert_eq!(s.members.len(), 3);
        assert!(s.commit >= second.index && s.applied >= second.index);
        for id in c.ids().into_iter().filter(|&id| id != leader) {
            assert!(
                s.progress.iter().any(|p| p.id == id),
                "a leader reports every peer's progress: {:?}",
                s.progress
            );
        }
        let members = lc.members().await.expect("members");
        assert_eq!(members, s.members, "/v1/members lists /status's members");
        assert!(members.iter().all(|m| m.voter));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_forwards_writes_and_reads_to_the_leader() {
    let _serial = serial().await;
    deadline(90, async {
        let mut c = TestCluster::start(3).await;
        let leader = c.leader_within(support::LEADER_WAIT).await;
        let follower = c.other_than(&[leader]);
        let fc = c.client(follower);

        let put = fc
            .put("via-follower", "v1")
            .await
            .expect("put via follower");
        let leader_status = c.status(leader).await.expect("leader status");
        assert_eq!(put.term, leader_status.term, "the leader's term answered");

        // A linearizable read through the follower sees the write at once.
        let kv = fc
            .get("via-follower", Consistency::Linearizable)
            .await
            .expect("get via follower")
            .expect("exists");
        assert_eq!(kv.value, "v1");
        assert_eq!(kv.mod_revision, put.revision);
        let kv = c
            .client(leader)
            .get("via-follower", Consistency::Linearizable)
            .await
            .expect("get via leader")
            .expect("exists");
        assert_eq!(kv.value, "v1");

        let d = fc
            .delete("via-follower")
            .await
            .expect("delete via follower");
        assert_eq!(d.deleted, 1);
        let r = fc
            .range(&RangeQuery {
                prefix: Some("via-".into()),
                ..RangeQuery::default()
            })
            .await
            .expect("range via follower");
        assert!(
            r.kvs.is_empty(),
            "the delete is visible through the follower"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_answers_307_with_the_leader() {
    let _serial = serial().await;
    deadline(90, async {
        let mut c = TestCluster::start(3).await;
        let leader = c.leader_within(support::LEADER_WAIT).await;
        let follower = c.other_than(&[leader]);
        // The follower must know the leader (the first heartbeat told it).
        let fclient = c.client(follower);
        wait_until(
            Duration::from_secs(10),
            "the follower knows the leader",
            || async {
                fclient
                    .status()
                    .await
                    .is_ok_and(|s| s.leader == Some(leader))
            },
        )
        .await;

        let leader_http = c.http_addr(leader);
        for (method, path) in [
            (Method::PUT, "/v1/kv/redirected?redirect=1"),
            (Method::GET, "/v1/kv/redirected?redirect"),
            (Method::GET, "/v1/kv?prefix=red&redirect=yes"),
        ] {
            let r = fclient
                .request(method.clone(), path, bytes::Bytes::from_static(b"value"))
                .await
                .expect("request");
            assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT, "{method} {path}");
            let location = r
                .headers
                .get(hyper::header::LOCATION)
                .expect("Location header")
                .to_str()
                .expect("ascii Location");
            assert_eq!(location, format!("http://{leader_http}{path}"));
            let header = r
                .headers
                .get("x-raft-leader")
                .expect("X-Raft-Leader header")
                .to_str()
                .expect("ascii");
            assert_eq!(header, leader.to_string());
        }
        // The redirected PUT wrote nothing.
        assert_eq!(support::read(&c, leader, "redirected").await, None);

        // On the leader, ?redirect is served.
        let r = c
            .client(leader)
            .request(
                Method::PUT,
                "/v1/kv/redirected?redirect=1",
                bytes::Bytes::from_static(b"here"),
            )
            .await
            .expect("request");
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            support::read(&c, follower, "redirected").await.as_deref(),
            Some("here")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_leader_requests_get_503_naming_the_last_leader() {
    let _serial = serial().await;
    deadline(90, async {
        let mut c = TestCluster::start(3).await;
        let leader = c.leader_within(support::LEADER_WAIT).await;
        let survivor = c.other_than(&[leader]);
        let sc = c.client(survivor);
        support::put_retrying(&sc, "before", "1", Duration::from_secs(10)).await;
        wait_until(
            Duration::from_secs(10),
            "the survivor knows the leader",
            || async { sc.status().await.is_ok_and(|s| s.leader == Some(leader)) },
        )
        .await;
        let third = c.other_than(&[leader, survivor]);
        c.kill(leader).expect("kill the leader");
        c.kill(third).expect("kill a follower");

        // Once its election timeout passes, the survivor knows no leader.
        wait_until(
            Duration::from_secs(20),
            "the survivor forgets the leader",
            || async { sc.status().await.is_ok_and(|s| s.leader.is_none()) },
        )
        .await;

        for (method, path) in [
            (Method::GET, "/v1/kv/before"),
            (Method::PUT, "/v1/kv/after"),
            (Method::DELETE, "/v1/kv/before"),
            (Method::GET, "/v1/kv?prefix=b"),
        ] {
            let r = sc
                .request(method.clone(), path, bytes::Bytes::from_static(b"x"))
                .await
                .expect("the survivor answers");
            assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{method} {path}");
            let j = r.json().expect("a JSON error");
            assert_eq!(j["error"], "no leader", "{method} {path}: {j}");
            assert!(j["leader"].is_null(), "{j}");
            assert_eq!(j["last_leader"], leader, "the last known leader: {j}");
        }
        // Serializable reads are still served locally.
        let kv = sc
            .get("before", Consistency::Serializable)
            .await
            .expect("serializable read without a leader")
            .expect("exists");
        assert_eq!(kv.value, "1");
    })
    .await;
}
