//! Bad input from the network: garbage and oversized frames on the peer port, a peer from
//! another cluster and one with an unknown id, malformed and oversized HTTP requests. Each gets
//! an error (or a closed connection), changes nothing, and the node keeps serving.
//!
//! The peer-port tests speak the transport's wire format (`transport/frame.rs`: a u32
//! big-endian length, then a prost payload; a `Hello` handshake first), with their own copy of
//! the `Hello` message so that they stay black-box. A positive control at the end shows the
//! crafted frames do take effect when the handshake is right, so the refusals are real.

mod support;

use bytes::Bytes;
use hyper::Method;
use prost::Message as _;
use raft_core::{Message, MessageType};
use std::net::SocketAddr;
use std::time::Duration;
use support::{TestCluster, deadline, serial, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The transport handshake (field numbers as in `transport/frame.rs`).
#[derive(Clone, PartialEq, prost::Message)]
struct Hello {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(string, tag = "2")]
    cluster_id: String,
    #[prost(uint64, tag = "3")]
    from: u64,
    #[prost(uint64, tag = "4")]
    to: u64,
    #[prost(string, tag = "5")]
    http_addr: String,
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = u32::try_from(payload.len())
        .expect("small")
        .to_be_bytes()
        .to_vec();
    v.extend_from_slice(payload);
    v
}

/// Whether the node closes `s` within 5 s (EOF or reset), discarding whatever it sends first.
async fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

fn heartbeat(from: u64, to: u64, term: u64) -> Vec<u8> {
    Message {
        msg_type: MessageType::MsgHeartbeat as i32,
        to,
        from,
        term,
        ..Message::default()
    }
    .encode_to_vec()
}

/// Dials `peer`, says `hello`, then sends a heartbeat at `term` from `hello.from`.
async fn hello_then_heartbeat(peer: SocketAddr, hello: &Hello, term: u64) -> TcpStream {
    let mut s = TcpStream::connect(peer)
        .await
        .expect("connect to the peer port");
    s.write_all(&frame(&hello.encode_to_vec()))
        .await
        .expect("send hello");
    // The node may already have closed the connection; a failed write is fine.
    let _ = s
        .write_all(&frame(&heartbeat(hello.from, hello.to, term)))
        .await;
    s
}

async fn assert_still_serving(c: &mut TestCluster, id: u64, key: &str) {
    let client = c.client(id);
    support::put_retrying(&client, key, "still-serving", Duration::from_secs(10)).await;
    assert_eq!(
        support::read(c, id, key).await.as_deref(),
        Some("still-serving")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_peer_port_closes_that_connection_only() {
    let _serial = serial().await;
    deadline(90, async {
        let mut c = TestCluster::start(3).await;
        let leader = c.leader_within(support::LEADER_WAIT).await;
        let target = c.other_than(&[leader]);
        let peer = c.peer_addr(target);
        let term = c.status(target).await.expect("status").term;

        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "random bytes",
                (0..2048u32).map(|i| (i * 7919 % 251) as u8).collect(),
            ),
            (
                "an oversized length word",
                vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
            ),
            ("a handshake that is not protobuf", frame(&[0xff; 64])),
            (
                "HTTP on the peer port",
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            ),
        ];
        for (what, bytes) in cases {
            let mut s = TcpStream::connect(peer).await.expect("connect");
            let _ = s.write_all(&bytes).await;
            assert!(
                closed_by_peer(&mut s).await,
                "{what}: the node closes the connection"
            );
        }
        // A frame cut short: the length promises more than ever comes, then we hang up.
        let mut s = TcpStream::connect(peer).await.expect("connect");
        let _ = s.write_all(&[0, 0, 1, 0, 1, 2, 3]).await;
        drop(s);

        assert!(c.is_running(target), "member {target} survives garbage");
        let s = c.status(target).await.expect("status after garbage");
        assert_eq!(s.leader, Some(leader), "the cluster did not notice");
        assert_eq!(s.term, term);
        assert_still_serving(&mut c, target, "garbage/after").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_from_another_cluster_or_with_an_unknown_id_is_refused() {
    let _serial = serial().await;
    deadline(90, async {
        let mut c = TestCluster::start(3).await;
        let leader = c.leader_within(support::LEADER_WAIT).await;
        let target = c.other_than(&[leader]);
        let impostor = c.other_than(&[leader, target]);
        let peer = c.peer_addr(target);
        let term = c.status(target).await.expect("status").term;
        let high = term + 100;

        let foreign = Hello {
            version: 1,
            cluster_id: "another-cluster".into(),
            from: impostor,
            to: target,
            http_addr: "127.0.0.1:1".into(),
        };
        let unknown = Hello {
            cluster_id: "raft-example".into(),
            from: 77,
            ..foreign.clone()
        };
        for (what, hello) in [("another cluster", &foreign), ("an unknown id", &unknown)] {
            let mut s = hello_then_heartbeat(peer, hello, high).await;
            assert!(
                closed_by_peer(&mut s).await,
                "{what}: the connection is closed"
            );
            // Its heartbeat at a much higher term was not stepped.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let s = c.status(target).await.expect("status");
            assert!(
                s.term < high,
                "{what}: the refused peer's term was adopted: {s:?}"
            );
            assert_eq!(s.leader, Some(leader), "{what}: {s:?}");
        }
        assert_still_serving(&mut c, target, "foreign/after").await;

        // Positive control: the same heartbeat with a right handshake is stepped, so the
        // refusals above came from the handshake check.
        let right = Hello {
            cluster_id: "raft-example".into(),
            ..foreign.clone()
        };
        let _s = hello_then_heartbeat(peer, &right, high).await;
        let tc = c.client(target);
        wait_until(
            Duration::from_secs(10),
            "the right handshake's heartbeat is stepped",
            || async { tc.status().await.is_ok_and(|s| s.term >= high) },
        )
        .await;
        drop(_s);
        // The cluster recovers from the disruption.
        c.leader_within(support::LEADER_WAIT).await;
        assert_still_serving(&mut c, target, "foreign/recovered").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_http_requests_get_errors_and_change_nothing() {
    let _serial = serial().await;
    deadline(90, async {
        let mut c = TestCluster::start(3).await;
        let leader = c.leader_within(support::LEADER_WAIT).await;
        let lc = c.client(leader);
        lc.put("http/kept", "1").await.expect("put");
        let before = c.status(leader).await.expect("status");
        let revision_before = lc
            .get("http/kept", raft_example::client::Consistency::Linearizable)
            .await
            .expect("get")
            .expect("exists")
            .revision;

        let big_value = Bytes::from(vec![b'v'; (1 << 20) + 1]);
        let big_key = format!("/v1/kv/{}", "k".repeat(1025));
        let cases: Vec<(&str, Method, String, Bytes, &[u16])> = vec![
            (
                "unknown route",
                Method::GET,
                "/no/such/route".into(),
                Bytes::new(),
                &[404],
            ),
            (
                "malformed member JSON",
                Method::POST,
                "/v1/members".into(),
                Bytes::from_static(b"{\"id\": oops"),
                &[400, 415, 422],
            ),
            (
                "member JSON of the wrong shape",
                Method::POST,
                "/v1/members".into(),
                Bytes::from_static(b"[1,2,3]"),
                &[400, 422],
            ),
            (
                "value over 1 MiB",
                Method::PUT,
                "/v1/kv/http/big".into(),
                big_value,
                &[413],
            ),
            (
                "key over 1 KiB",
                Method::PUT,
                big_key,
                Bytes::from_static(b"v"),
                &[400, 413, 414],
            ),
            (
                "value not UTF-8",
                Method::PUT,
                "/v1/kv/http/bin".into(),
                Bytes::from_static(&[0xff, 0xfe, 0x00]),
                &[400],
            ),
            (
                "bad range limit",
                Method::GET,
                "/v1/kv?prefix=h&limit=many".into(),
                Bytes::new(),
                &[400],
            ),
            (
                "bad member id",
                Method::DELETE,
                "/v1/members/not-a-number".into(),
                Bytes::new(),
                &[400, 404],
            ),
        ];
        for (what, method, path, body, statuses) in cases {
            let r = lc.request(method, &path, body).await.expect(what);
            assert!(
                statuses.contains(&r.status.as_u16()),
                "{what}: status {} not in {statuses:?}",
                r.status
            );
            let j = r.json().unwrap_or_else(|| {
                panic!(
                    "{what}: not a JSON error: {}",
                    String::from_utf8_lossy(&r.body)
                )
            });
            assert!(j["error"].is_string(), "{what}: {j}");
        }

        // Not HTTP at all, and a request line too long: the connection ends, nothing else.
        for raw in [
            b"\x00\x01\x02garbage\r\n\r\n".to_vec(),
            [
                b"GET /".to_vec(),
                vec![b'a'; 128 << 10],
                b" HTTP/1.1\r\n\r\n".to_vec(),
            ]
            .concat(),
        ] {
            let mut s = TcpStream::connect(c.http_addr(leader))
                .await
                .expect("connect");
            let _ = s.write_all(&raw).await;
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
            let text = String::from_utf8_lossy(&buf);
            assert!(
                buf.is_empty() || text.starts_with("HTTP/1.1 4"),
                "garbage gets a 4xx or a closed connection: {text}"
            );
        }

        // Nothing changed: no key written, revision and configuration as before.
        for key in ["http/big", "http/bin"] {
            assert_eq!(
                support::read(&c, leader, key).await,
                None,
                "{key} was written"
            );
        }
        let kv = lc
            .get("http/kept", raft_example::client::Consistency::Linearizable)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(kv.revision, revision_before, "the revision moved");
        let after = c.status(leader).await.expect("status");
        assert_eq!(after.members, before.members);
        assert_eq!(after.term, before.term);
        assert_still_serving(&mut c, leader, "http/after").await;
    })
    .await;
}
