//! TCP between peers.
//!
//! ```text
//!   node task ──send(m)──► per-peer bounded queue ──► writer task ──frames──► peer's listener
//!      ▲                          (full: dropped,      (connects, handshakes,      │
//!      │                           reported)            reconnects with backoff)   ▼
//!      └──── Report::{Unreachable, Snapshot} ◄──────────┘        connection task: handshake
//!      └──── inbound messages (bounded) ◄─────────────────────── check, frames → Message
//! ```
//!
//! Each node dials every peer it sends to; a connection carries messages one way only (the
//! dialer's), so there is one writer per peer and no contention on a socket. The dialer opens
//! with a [`frame::Hello`] naming the cluster, itself and the peer it means to reach; the
//! acceptor closes (and logs) a connection from another cluster, from an id not in its address
//! book, or meant for another id, and answers its own `Hello` otherwise. Any garbage,
//! truncated or oversized frame, or a message whose `from`/`to` contradict the handshake,
//! closes that connection only; the listener goes on.
//!
//! Outcomes reach the node as [`Report`]s: `Unreachable` when a message could not be written
//! (or was dropped because the peer's queue was full), and for every `MsgSnap`, `Finish` once
//! its frame was written and flushed to the socket, `Failure` otherwise.

pub mod frame;

use crate::kv::Member;
use crate::metrics::{self, Metrics};
use crate::shutdown::Shutdown;
use frame::{FrameError, Hello, PROTOCOL_VERSION};
use prost::Message as _;
use raft_core::{Message, MessageType, SnapshotStatus};
use slog::{Logger, debug, info, warn};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Messages queued per peer before new ones are dropped (and reported unreachable).
pub const PEER_QUEUE: usize = 4096;
/// How long a handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// First and largest reconnection delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Largest reconnection delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Why a connection was refused or closed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A frame could not be read or written.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The handshake did not arrive in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The peer spoke another protocol version.
    #[error("protocol version {0}, expected {PROTOCOL_VERSION}")]
    Version(u32),
    /// The peer belongs to another cluster.
    #[error("peer {from} belongs to cluster {theirs:?}, this is {ours:?}")]
    OtherCluster {
        /// The peer's id.
        from: u64,
        /// Its cluster id.
        theirs: String,
        /// Ours.
        ours: String,
    },
    /// The peer's id is not in the address book.
    #[error("unknown peer id {0}")]
    UnknownPeer(u64),
    /// The peer meant another node.
    #[error("connection meant for node {want}, this is node {me}")]
    WrongTarget {
        /// The id the dialer wanted.
        want: u64,
        /// This node.
        me: u64,
    },
    /// A message whose `from`/`to` contradict the handshake.
    #[error("message from {from} to {to} on the connection of peer {peer}")]
    Misaddressed {
        /// The message's sender.
        from: u64,
        /// The message's recipient.
        to: u64,
        /// The handshake's sender.
        peer: u64,
    },
    /// The peer closed the connection during the handshake.
    #[error("closed during the handshake")]
    ClosedInHandshake,
    /// No address is known for the peer.
    #[error("no address known for node {0}")]
    NoAddress(u64),
}

/// The address book: every member's addresses, shared by the node (which updates it as
/// configuration changes apply), the transport and the HTTP layer.
#[derive(Clone, Debug, Default)]
pub struct AddressBook {
    inner: Arc<RwLock<BTreeMap<u64, Member>>>,
}

impl AddressBook {
    /// A book holding `members`.
    pub fn new(members: impl IntoIterator<Item = Member>) -> AddressBook {
        let book = AddressBook::default();
        book.replace(members);
        book
    }

    /// Replaces the book's contents.
    pub fn replace(&self, members: impl IntoIterator<Item = Member>) {
        let map = members.into_iter().map(|m| (m.id, m)).collect();
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = map;
    }

    /// Adds (or updates) entries, keeping the others.
    pub fn merge(&self, members: impl IntoIterator<Item = Member>) {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for m in members {
            map.insert(m.id, m);
        }
    }

    /// The entry of `id`.
    pub fn get(&self, id: u64) -> Option<Member> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Whether `id` is in the book.
    pub fn contains(&self, id: u64) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id)
    }

    /// Every entry, by id.
    pub fn all(&self) -> Vec<Member> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// What the transport tells the node about its sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// A message to this peer could not be delivered.
    Unreachable(u64),
    /// How sending a snapshot to this peer ended.
    Snapshot(u64, SnapshotStatus),
}

/// Who this node is, for handshakes.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The cluster id.
    pub cluster_id: String,
    /// This node's id.
    pub id: u64,
    /// This node's HTTP address (sent in the handshake).
    pub http_addr: String,
    /// The largest frame sent or accepted.
    pub max_frame_bytes: usize,
}

/// The sending side, owned by the node task.
pub struct Transport {
    me: Arc<Identity>,
    book: AddressBook,
    peers: BTreeMap<u64, mpsc::Sender<Message>>,
    reports: mpsc::Sender<Report>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    logger: Logger,
}

impl Transport {
    /// A transport with no connections yet (writers start at the first message to a peer).
    pub fn new(
        me: Arc<Identity>,
        book: AddressBook,
        reports: mpsc::Sender<Report>,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
        logger: Logger,
    ) -> Transport {
        Transport {
            me,
            book,
            peers: BTreeMap::new(),
            reports,
            metrics,
            shutdown,
            logger,
        }
    }

    /// Queues `m` for its recipient. Never blocks: when the peer's queue is full the message
    /// is dropped (Raft tolerates loss) and the peer is reported unreachable; a dropped
    /// `MsgSnap` is reported as a failed snapshot.
    pub fn send(&mut self, m: Message) {
        let to = m.to;
        if to == self.me.id {
            return;
        }
        let is_snap = m.kind() == MessageType::MsgSnap;
        if !self.peers.contains_key(&to) && !self.book.contains(to) {
            debug!(self.logger, "no address for peer; message dropped"; "to" => to);
            self.fail(to, is_snap);
            return;
        }
        let tx = self.peers.entry(to).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            let writer = Writer {
                peer: to,
                me: self.me.clone(),
                book: self.book.clone(),
                rx,
                reports: self.reports.clone(),
                metrics: self.metrics.clone(),
                shutdown: self.shutdown.clone(),
                logger: self.logger.new(slog::o!("peer" => to)),
            };
            tokio::spawn(writer.run());
            tx
        });
        if is_snap {
            metrics::inc(&self.metrics.snapshots_sent_total);
        }
        match tx.try_send(m) {
            Ok(()) => {
                self.metrics.peer_queue_depth.fetch_add(1, Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => self.fail(to, is_snap),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.peers.remove(&to);
                self.fail(to, is_snap);
            }
        }
    }

    /// Stops the writer of a peer that left the configuration.
    pub fn remove_peer(&mut self, id: u64) {
        self.peers.remove(&id);
    }

    fn fail(&self, to: u64, is_snap: bool) {
        metrics::inc(&self.metrics.peer_send_failures_total);
        let _ = self.reports.try_send(Report::Unreachable(to));
        if is_snap {
            let _ = self
                .reports
                .try_send(Report::Snapshot(to, SnapshotStatus::Failure));
        }
    }
}

/// One peer's writer: connects, handshakes, writes queued messages, reconnects with backoff.
struct Writer {
    peer: u64,
    me: Arc<Identity>,
    book: AddressBook,
    rx: mpsc::Receiver<Message>,
    reports: mpsc::Sender<Report>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    logger: Logger,
}

impl Writer {
    async fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        let mut was_connected = true;
        let mut buf = Vec::with_capacity(4096);
        loop {
            // Wait for something to send before connecting (an idle peer costs nothing).
            let first = tokio::select! {
                m = self.rx.recv() => match m { Some(m) => m, None => return },
                () = self.shutdown.fired() => return,
            };
            self.metrics.peer_queue_depth.fetch_sub(1, Relaxed);
            let stream = tokio::select! {
                s = self.connect() => s,
                () = self.shutdown.fired() => return,
            };
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    if was_connected {
                        warn!(self.logger, "cannot reach peer"; "error" => %e);
                        was_connected = false;
                    }
                    self.failed(&first);
                    // Drop what queued meanwhile: it is stale by the time we reconnect.
                    while let Ok(m) = self.rx.try_recv() {
                        self.metrics.peer_queue_depth.fetch_sub(1, Relaxed);
                        self.failed(&m);
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.shutdown.fired() => return,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            if !was_connected {
                info!(self.logger, "connected to peer");
            }
            backoff = BACKOFF_MIN;
            let mut w = BufWriter::with_capacity(64 << 10, stream);
            let mut next = Some(first);
            let result: Result<(), FrameError> = async {
                loop {
                    let m = match next.take() {
                        Some(m) => m,
                        None => match self.rx.try_recv() {
                            Ok(m) => {
                                self.metrics.peer_queue_depth.fetch_sub(1, Relaxed);
                                m
                            }
                            Err(_) => {
                                // Queue empty: push what is buffered, then wait.
                                w.flush().await?;
                                tokio::select! {
                                    m = self.rx.recv() => match m {
                                        Some(m) => {
                                            self.metrics.peer_queue_depth.fetch_sub(1, Relaxed);
                                            m
                                        }
                                        None => return Ok(()),
                                    },
                                    () = self.shutdown.fired() => return Ok(()),
                                }
                            }
                        },
                    };
                    buf.clear();
                    m.encode(&mut buf).expect("a Vec grows as needed");
                    let is_snap = m.kind() == MessageType::MsgSnap;
                    if let Err(e) = frame::write_frame(&mut w, &buf, self.me.max_frame_bytes).await
                    {
                        self.failed(&m);
                        return Err(e);
                    }
                    if is_snap {
                        if let Err(e) = w.flush().await {
                            self.failed(&m);
                            return Err(e.into());
                        }
                        info!(self.logger, "snapshot sent"; "index" => m.snapshot.as_ref().map_or(0, |s| s.index()));
                        let _ = self
                            .reports
                            .send(Report::Snapshot(self.peer, SnapshotStatus::Finish))
                            .await;
                    }
                    metrics::inc(&self.metrics.peer_messages_sent_total);
                }
            }
            .await;
            match result {
                Ok(()) => return,
                Err(e) => {
                    warn!(self.logger, "connection to peer lost"; "error" => %e);
                    was_connected = false;
                    let _ = self.reports.try_send(Report::Unreachable(self.peer));
                }
            }
        }
    }

    fn failed(&self, m: &Message) {
        metrics::inc(&self.metrics.peer_send_failures_total);
        let _ = self.reports.try_send(Report::Unreachable(self.peer));
        if m.kind() == MessageType::MsgSnap {
            let reports = self.reports.clone();
            let peer = self.peer;
            // The snapshot outcome must arrive, or the leader waits in snapshot state.
            tokio::spawn(async move {
                let _ = reports
                    .send(Report::Snapshot(peer, SnapshotStatus::Failure))
                    .await;
            });
        }
    }

    async fn connect(&self) -> Result<TcpStream, TransportError> {
        let addr = self
            .book
            .get(self.peer)
            .ok_or(TransportError::NoAddress(self.peer))?
            .peer_addr;
        let hello = Hello {
            version: PROTOCOL_VERSION,
            cluster_id: self.me.cluster_id.clone(),
            from: self.me.id,
            to: self.peer,
            http_addr: self.me.http_addr.clone(),
        };
        let me = self.me.clone();
        let peer = self.peer;
        let handshake = async move {
            let mut s = TcpStream::connect(&addr).await.map_err(FrameError::from)?;
            s.set_nodelay(true).map_err(FrameError::from)?;
            frame::write_frame(&mut s, &hello.encode_to_vec(), me.max_frame_bytes).await?;
            let mut buf = Vec::new();
            if !frame::read_frame(&mut s, 4096, &mut buf).await? {
                return Err(TransportError::ClosedInHandshake);
            }
            let answer: Hello = frame::decode(&buf, "handshake")?;
            check_hello(&me, &answer, |id| id == peer, false)?;
            Ok(s)
        };
        tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
            .await
            .map_err(|_| TransportError::HandshakeTimeout)?
    }
}

/// Checks a peer's handshake against this node: version, cluster, a known sender and (for the
/// dialer's hello) that it means this node.
fn check_hello(
    me: &Identity,
    hello: &Hello,
    known: impl Fn(u64) -> bool,
    check_target: bool,
) -> Result<(), TransportError> {
    if hello.version != PROTOCOL_VERSION {
        return Err(TransportError::Version(hello.version));
    }
    if hello.cluster_id != me.cluster_id {
        return Err(TransportError::OtherCluster {
            from: hello.from,
            theirs: hello.cluster_id.clone(),
            ours: me.cluster_id.clone(),
        });
    }
    if check_target && hello.to != me.id {
        return Err(TransportError::WrongTarget {
            want: hello.to,
            me: me.id,
        });
    }
    if hello.from == 0 || hello.from == me.id || !known(hello.from) {
        return Err(TransportError::UnknownPeer(hello.from));
    }
    Ok(())
}

/// Accepts peer connections until shutdown, handing their messages to `inbound`.
pub async fn serve(
    listener: TcpListener,
    me: Arc<Identity>,
    book: AddressBook,
    inbound: mpsc::Sender<Message>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    logger: Logger,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.fired() => return,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, keep serving.
                warn!(logger, "accept failed"; "error" => %e);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let conn = Connection {
            me: me.clone(),
            book: book.clone(),
            inbound: inbound.clone(),
            metrics: metrics.clone(),
            logger: logger.new(slog::o!("remote" => addr.to_string())),
        };
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = conn.run(stream) => {}
                () = shutdown.fired() => {}
            }
        });
    }
}

struct Connection {
    me: Arc<Identity>,
    book: AddressBook,
    inbound: mpsc::Sender<Message>,
    metrics: Arc<Metrics>,
    logger: Logger,
}

impl Connection {
    async fn run(self, mut stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let peer = match self.handshake(&mut stream).await {
            Ok(peer) => peer,
            Err(e) => {
                metrics::inc(&self.metrics.peer_connections_rejected_total);
                warn!(self.logger, "peer connection refused"; "error" => %e);
                return;
            }
        };
        let logger = self.logger.new(slog::o!("peer" => peer));
        debug!(logger, "peer connected");
        let mut r = tokio::io::BufReader::with_capacity(64 << 10, stream);
        let mut buf = Vec::new();
        loop {
            let m = match frame::read_frame(&mut r, self.me.max_frame_bytes, &mut buf).await {
                Ok(true) => frame::decode::<Message>(&buf, "message"),
                Ok(false) => {
                    debug!(logger, "peer closed the connection");
                    return;
                }
                Err(e) => Err(e),
            };
            let m = match m {
                Ok(m) if m.from == peer && m.to == self.me.id => m,
                Ok(m) => {
                    self.reject(
                        &logger,
                        TransportError::Misaddressed {
                            from: m.from,
                            to: m.to,
                            peer,
                        },
                    );
                    return;
                }
                Err(e) => {
                    self.reject(&logger, e.into());
                    return;
                }
            };
            metrics::inc(&self.metrics.peer_messages_received_total);
            if self.inbound.send(m).await.is_err() {
                return;
            }
        }
    }

    fn reject(&self, logger: &Logger, e: TransportError) {
        metrics::inc(&self.metrics.peer_connections_rejected_total);
        warn!(logger, "peer connection closed on bad input"; "error" => %e);
    }

    async fn handshake(&self, stream: &mut TcpStream) -> Result<u64, TransportError> {
        let work = async {
            let mut buf = Vec::new();
            if !frame::read_frame(stream, 4096, &mut buf).await? {
                return Err(TransportError::ClosedInHandshake);
            }
            let hello: Hello = frame::decode(&buf, "handshake")?;
            check_hello(&self.me, &hello, |id| self.book.contains(id), true)?;
            let answer = Hello {
                version: PROTOCOL_VERSION,
                cluster_id: self.me.cluster_id.clone(),
                from: self.me.id,
                to: hello.from,
                http_addr: self.me.http_addr.clone(),
            };
            frame::write_frame(stream, &answer.encode_to_vec(), 4096).await?;
            stream.flush().await.map_err(FrameError::from)?;
            Ok(hello.from)
        };
        tokio::time::timeout(HANDSHAKE_TIMEOUT, work)
            .await
            .map_err(|_| TransportError::HandshakeTimeout)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown;
    use tokio::io::AsyncReadExt;

    fn member(id: u64, peer_addr: String) -> Member {
        Member {
            id,
            peer_addr,
            http_addr: format!("127.0.0.1:{}", 9000 + id),
        }
    }

    fn ident(id: u64, cluster: &str) -> Arc<Identity> {
        Arc::new(Identity {
            cluster_id: cluster.into(),
            id,
            http_addr: format!("127.0.0.1:{}", 9000 + id),
            max_frame_bytes: 1 << 16,
        })
    }

    struct Node {
        addr: String,
        inbound: mpsc::Receiver<Message>,
        metrics: Arc<Metrics>,
    }

    /// Node 1's listener, knowing nodes 1 and 2.
    async fn listener(shutdown: Shutdown) -> Node {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let book = AddressBook::new([member(1, addr.clone()), member(2, "127.0.0.1:1".into())]);
        let (tx, rx) = mpsc::channel(16);
        let metrics = Arc::new(Metrics::default());
        let logger = Logger::root(slog::Discard, slog::o!());
        tokio::spawn(serve(
            l,
            ident(1, "c"),
            book,
            tx,
            metrics.clone(),
            shutdown,
            logger,
        ));
        Node {
            addr,
            inbound: rx,
            metrics,
        }
    }

    fn heartbeat(from: u64, to: u64) -> Message {
        Message {
            msg_type: MessageType::MsgHeartbeat as i32,
            from,
            to,
            term: 3,
            ..Message::default()
        }
    }

    async fn dial(addr: &str, hello: Hello) -> (TcpStream, Option<Hello>) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        frame::write_frame(&mut s, &hello.encode_to_vec(), 4096)
            .await
            .unwrap();
        let mut buf = Vec::new();
        let answer = match frame::read_frame(&mut s, 4096, &mut buf).await {
            Ok(true) => Some(frame::decode::<Hello>(&buf, "hello").unwrap()),
            _ => None,
        };
        (s, answer)
    }

    fn hello(cluster: &str, from: u64, to: u64) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            cluster_id: cluster.into(),
            from,
            to,
            http_addr: String::new(),
        }
    }

    async fn closed(s: &mut TcpStream) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test]
    async fn a_transport_delivers_messages_through_the_handshake() {
        let (trigger, sd) = shutdown::channel();
        let mut node1 = listener(sd.clone()).await;
        let book = AddressBook::new([member(1, node1.addr.clone())]);
        let (rtx, _rrx) = mpsc::channel(16);
        let mut t = Transport::new(
            ident(2, "c"),
            book,
            rtx,
            Arc::new(Metrics::default()),
            sd,
            Logger::root(slog::Discard, slog::o!()),
        );
        for _ in 0..3 {
            t.send(heartbeat(2, 1));
        }
        for _ in 0..3 {
            let m = node1.inbound.recv().await.unwrap();
            assert_eq!(m, heartbeat(2, 1));
        }
        trigger.fire();
    }

    #[tokio::test]
    async fn bad_handshakes_are_refused_and_the_listener_goes_on() {
        let (trigger, sd) = shutdown::channel();
        let mut node1 = listener(sd).await;
        // Another cluster, an unknown id, a connection meant for another node: closed.
        for h in [hello("other", 2, 1), hello("c", 7, 1), hello("c", 2, 5)] {
            let (mut s, answer) = dial(&node1.addr, h).await;
            assert!(answer.is_none());
            assert!(closed(&mut s).await);
        }
        assert_eq!(
            node1.metrics.peer_connections_rejected_total.load(Relaxed),
            3
        );
        // A good one still works.
        let (mut s, answer) = dial(&node1.addr, hello("c", 2, 1)).await;
        assert_eq!(answer.unwrap().from, 1);
        frame::write_frame(&mut s, &heartbeat(2, 1).encode_to_vec(), 4096)
            .await
            .unwrap();
        assert_eq!(node1.inbound.recv().await.unwrap(), heartbeat(2, 1));
        trigger.fire();
    }

    #[tokio::test]
    async fn garbage_oversized_and_misaddressed_frames_close_that_connection_only() {
        let (trigger, sd) = shutdown::channel();
        let mut node1 = listener(sd).await;
        let (mut good, _) = dial(&node1.addr, hello("c", 2, 1)).await;

        // Garbage instead of a handshake.
        let mut s = TcpStream::connect(&node1.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(closed(&mut s).await);

        // A frame that is not a message, after a good handshake.
        let (mut s, _) = dial(&node1.addr, hello("c", 2, 1)).await;
        frame::write_frame(&mut s, &[0xff; 7], 4096).await.unwrap();
        assert!(closed(&mut s).await);

        // An oversized frame (the listener's maximum is 64 KiB).
        let (mut s, _) = dial(&node1.addr, hello("c", 2, 1)).await;
        s.write_all(&(1u32 << 20).to_be_bytes()).await.unwrap();
        assert!(closed(&mut s).await);

        // A message claiming another sender.
        let (mut s, _) = dial(&node1.addr, hello("c", 2, 1)).await;
        frame::write_frame(&mut s, &heartbeat(3, 1).encode_to_vec(), 4096)
            .await
            .unwrap();
        assert!(closed(&mut s).await);

        // None of it reached the node, and the first connection still delivers.
        frame::write_frame(&mut good, &heartbeat(2, 1).encode_to_vec(), 4096)
            .await
            .unwrap();
        assert_eq!(node1.inbound.recv().await.unwrap(), heartbeat(2, 1));
        assert!(node1.inbound.try_recv().is_err());
        trigger.fire();
    }

    #[tokio::test]
    async fn an_unreachable_peer_is_reported_and_a_snapshot_fails() {
        let (trigger, sd) = shutdown::channel();
        // A port with nothing listening.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let book = AddressBook::new([member(1, addr)]);
        let (rtx, mut rrx) = mpsc::channel(16);
        let mut t = Transport::new(
            ident(2, "c"),
            book,
            rtx,
            Arc::new(Metrics::default()),
            sd,
            Logger::root(slog::Discard, slog::o!()),
        );
        let mut snap = heartbeat(2, 1);
        snap.msg_type = MessageType::MsgSnap as i32;
        t.send(snap);
        let mut got = Vec::new();
        while got.len() < 2 {
            got.push(rrx.recv().await.unwrap());
        }
        assert!(got.contains(&Report::Unreachable(1)));
        assert!(got.contains(&Report::Snapshot(1, SnapshotStatus::Failure)));
        // A peer with no address at all is reported at once.
        t.send(heartbeat(2, 9));
        assert_eq!(rrx.recv().await.unwrap(), Report::Unreachable(9));
        trigger.fire();
    }
}
