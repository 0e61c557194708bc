//! A small HTTP client for the node's API, used by `cluster`, `demo`, `bench` and the tests.
//!
//! One [`Client`] talks to one member's HTTP address over HTTP/1.1 keep-alive connections
//! (hyper's connection-level client; idle connections are kept in a small pool and reused).
//! Every call is bounded by the client's timeout. Answers are typed ([`KeyValue`],
//! [`Status`], ...); anything but the expected success is a [`ClientError`] that says whether
//! the operation may still have happened ([`ClientError::is_indeterminate`]), which is what a
//! Jepsen-style history needs.
//!
//! Invariants:
//! 1. A request is retried on a fresh connection only when hyper hands it back unsent (a pooled
//!    connection that closed before the request left), so a retry never duplicates a write.
//! 2. A pooled connection is reused only while hyper says it is open and ready.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpStream;

/// Idle connections kept per client.
const IDLE_CONNECTIONS_MAX: usize = 32;

/// Default bound on one call (connect, send, receive the whole answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one member's HTTP API.
pub struct Client {
    addr: SocketAddr,
    timeout: Duration,
    idle: Mutex<Vec<http1::SendRequest<Full<Bytes>>>>,
}

/// How a read is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// ReadIndex through the leader (the default of the API).
    Linearizable,
    /// The member's own state, possibly stale.
    Serializable,
}

/// `PUT /v1/kv/{key}` answer.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct PutResponse {
    /// Cluster revision after the write.
    pub revision: u64,
    /// Log index of the entry.
    pub index: u64,
    /// Term of the entry.
    pub term: u64,
}

/// One key with etcd's MVCC metadata.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// Revision of the write that created it.
    pub create_revision: u64,
    /// Revision of its last write.
    pub mod_revision: u64,
    /// Writes since creation (1 after the first).
    pub version: u64,
    /// Cluster revision the answer reflects (absent inside range listings).
    #[serde(default)]
    pub revision: u64,
}

/// `DELETE /v1/kv/{key}` answer.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct DeleteResponse {
    /// 1 if the key existed.
    pub deleted: u64,
    /// Cluster revision after the delete.
    pub revision: u64,
}

/// `GET /v1/kv?...` answer.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct RangeResponse {
    /// The keys, in key order.
    pub kvs: Vec<KeyValue>,
    /// More keys matched than the limit allowed.
    pub more: bool,
    /// Cluster revision the answer reflects.
    pub revision: u64,
}

/// A range query: a prefix, or `[start, end)`.
#[derive(Clone, Debug, Default)]
pub struct RangeQuery {
    /// Keys starting with this.
    pub prefix: Option<String>,
    /// First key (inclusive).
    pub start: Option<String>,
    /// Last key (exclusive).
    pub end: Option<String>,
    /// At most this many keys.
    pub limit: Option<u64>,
    /// Serve from the member's own state.
    pub serializable: bool,
}

/// One member as `/status` and `/v1/members` list it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Member {
    /// Node id.
    pub id: u64,
    /// Peer (Raft) address.
    pub peer_addr: String,
    /// Client (HTTP) address.
    pub http_addr: String,
    /// Voter, or learner.
    pub voter: bool,
}

/// A leader's view of one peer.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Progress {
    /// Peer id.
    pub id: u64,
    /// Highest index known replicated there.
    #[serde(rename = "match")]
    pub match_index: u64,
    /// Next index to send.
    pub next: u64,
    /// "probe", "replicate" or "snapshot".
    pub state: String,
}

/// `GET /status` answer.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Status {
    /// This member's id.
    pub id: u64,
    /// "leader", "follower", "candidate", "pre_candidate" or "learner".
    pub role: String,
    /// Current term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// That leader's HTTP address.
    pub leader_http: Option<String>,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Index of the newest snapshot it holds.
    pub snapshot_index: u64,
    /// The configuration.
    pub members: Vec<Member>,
    /// Per-peer progress (leaders only).
    #[serde(default)]
    pub progress: Vec<Progress>,
}

#[derive(Deserialize)]
struct MembersResponse {
    members: Vec<Member>,
}

/// A raw answer: status, headers and body.
#[derive(Clone, Debug)]
pub struct RawResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl RawResponse {
    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Why a call did not give the expected answer.
#[derive(Debug)]
pub enum ClientError {
    /// No connection could be made: the request never left.
    Connect(std::io::Error),
    /// The connection failed after the request may have left.
    Transport(String),
    /// No complete answer within the timeout.
    Timeout,
    /// The node answered with an error status.
    Status {
        /// The status.
        status: StatusCode,
        /// The body (`{"error": ...}` by the contract).
        body: Bytes,
    },
    /// A success status whose body is not what the API promises.
    Decode {
        /// The status.
        status: StatusCode,
        /// The body.
        body: Bytes,
        /// The parse error.
        error: String,
    },
}

impl ClientError {
    /// The operation may or may not have taken effect.
    ///
    /// Definite failures are: no connection, a 4xx (a request the node refused), 404 (the
    /// key is missing), and 503 with `"retryable": true` (the entry was replaced, so the write
    /// was lost). Anything else after the request left (a dropped connection, a timeout, 504,
    /// other 5xx, including "no leader", which a follower may answer after forwarding failed
    /// midway) is indeterminate.
    pub fn is_indeterminate(&self) -> bool {
        match self {
            ClientError::Connect(_) => false,
            ClientError::Transport(_) | ClientError::Timeout => true,
            ClientError::Status { status, .. } if status.is_client_error() => false,
            ClientError::Status { status, body } if *status == StatusCode::SERVICE_UNAVAILABLE => {
                let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
                let retryable = json
                    .as_ref()
                    .and_then(|j| j.get("retryable"))
                    .and_then(|r| r.as_bool())
                    .unwrap_or(false);
                !retryable
            }
            ClientError::Status { .. } => true,
            ClientError::Decode { .. } => true,
        }
    }

    /// The HTTP status, if the node answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Status { status, .. } | ClientError::Decode { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The error body as JSON, if the node answered with one.
    pub fn json(&self) -> Option<serde_json::Value> {
        match self {
            ClientError::Status { body, .. } | ClientError::Decode { body, .. } => {
                serde_json::from_slice(body).ok()
            }
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "connect: {e}"),
            ClientError::Transport(e) => write!(f, "connection failed: {e}"),
            ClientError::Timeout => write!(f, "no answer within the timeout"),
            ClientError::Status { status, body } => {
                write!(f, "{status}: {}", String::from_utf8_lossy(body))
            }
            ClientError::Decode {
                status,
                body,
                error,
            } => write!(
                f,
                "{status} with an unexpected body ({error}): {}",
                String::from_utf8_lossy(body)
            ),
        }
    }
}

impl std::error::Error for ClientError {}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the member whose HTTP API listens on `addr`, with [`DEFAULT_TIMEOUT`].
    pub fn new(addr: SocketAddr) -> Client {
        Client::with_timeout(addr, DEFAULT_TIMEOUT)
    }

    /// A client whose calls each end within `timeout`.
    pub fn with_timeout(addr: SocketAddr, timeout: Duration) -> Client {
        Client {
            addr,
            timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The member's HTTP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `PUT /v1/kv/{key}`.
    ///
    /// # Errors
    /// Anything but 200 with the promised body.
    pub async fn put(&self, key: &str, value: &str) -> Result<PutResponse, ClientError> {
        let path = format!("/v1/kv/{}", encode_key(key));
        let r = self
            .request(Method::PUT, &path, Bytes::copy_from_slice(value.as_bytes()))
            .await?;
        expect_json(r)
    }

    /// `GET /v1/kv/{key}`; `Ok(None)` when the key does not exist (404).
    ///
    /// # Errors
    /// Anything but 200 or the 404 "key not found".
    pub async fn get(
        &self,
        key: &str,
        consistency: Consistency,
    ) -> Result<Option<KeyValue>, ClientError> {
        let mut path = format!("/v1/kv/{}", encode_key(key));
        if consistency == Consistency::Serializable {
            path.push_str("?consistency=serializable");
        }
        let r = self.request(Method::GET, &path, Bytes::new()).await?;
        if r.status == StatusCode::NOT_FOUND {
            let missing = r
                .json()
                .and_then(|j| j.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .is_some_and(|e| e == "key not found");
            if missing {
                return Ok(None);
            }
        }
        expect_json(r).map(Some)
    }

    /// `DELETE /v1/kv/{key}`.
    ///
    /// # Errors
    /// Anything but 200 with the promised body.
    pub async fn delete(&self, key: &str) -> Result<DeleteResponse, ClientError> {
        let path = format!("/v1/kv/{}", encode_key(key));
        let r = self.request(Method::DELETE, &path, Bytes::new()).await?;
        expect_json(r)
    }

    /// `GET /v1/kv?prefix=...` or `?start=...&end=...`.
    ///
    /// # Errors
    /// Anything but 200 with the promised body.
    pub async fn range(&self, q: &RangeQuery) -> Result<RangeResponse, ClientError> {
        let mut params = Vec::new();
        if let Some(p) = &q.prefix {
            params.push(format!("prefix={}", encode_component(p)));
        }
        if let Some(s) = &q.start {
            params.push(format!("start={}", encode_component(s)));
        }
        if let Some(e) = &q.end {
            params.push(format!("end={}", encode_component(e)));
        }
        if let Some(l) = q.limit {
            params.push(format!("limit={l}"));
        }
        if q.serializable {
            params.push("consistency=serializable".to_owned());
        }
        let path = format!("/v1/kv?{}", params.join("&"));
        let r = self.request(Method::GET, &path, Bytes::new()).await?;
        expect_json(r)
    }

    /// `GET /status`.
    ///
    /// # Errors
    /// Anything but 200 with the promised body.
    pub async fn status(&self) -> Result<Status, ClientError> {
        let r = self.request(Method::GET, "/status", Bytes::new()).await?;
        expect_json(r)
    }

    /// `GET /v1/members`.
    ///
    /// # Errors
    /// Anything but 200 with the promised body.
    pub async fn members(&self) -> Result<Vec<Member>, ClientError> {
        let r = self
            .request(Method::GET, "/v1/members", Bytes::new())
            .await?;
        expect_json::<MembersResponse>(r).map(|m| m.members)
    }

    /// `POST /v1/members`: adds a node (as a learner, promoted once caught up).
    ///
    /// # Errors
    /// Anything but 200 with the promised body.
    pub async fn add_member(
        &self,
        id: u64,
        peer_addr: &str,
        http_addr: &str,
    ) -> Result<Vec<Member>, ClientError> {
        let body = serde_json::json!({"id": id, "peer_addr": peer_addr, "http_addr": http_addr});
        let r = self
            .request(Method::POST, "/v1/members", Bytes::from(body.to_string()))
            .await?;
        expect_json::<MembersResponse>(r).map(|m| m.members)
    }

    /// `DELETE /v1/members/{id}`.
    ///
    /// # Errors
    /// Anything but 200 with the promised body.
    pub async fn remove_member(&self, id: u64) -> Result<Vec<Member>, ClientError> {
        let r = self
            .request(Method::DELETE, &format!("/v1/members/{id}"), Bytes::new())
            .await?;
        expect_json::<MembersResponse>(r).map(|m| m.members)
    }

    /// Any request; the answer whatever its status.
    ///
    /// # Errors
    /// No connection, a failed connection, or the timeout.
    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<RawResponse, ClientError> {
        self.request_with_headers(method, path_and_query, &[], body)
            .await
    }

    /// [`Client::request`] with extra headers.
    ///
    /// # Errors
    /// No connection, a failed connection, or the timeout.
    pub async fn request_with_headers(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<RawResponse, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, self.addr.to_string());
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let req = builder
            .body(Full::new(body))
            .map_err(|e| ClientError::Transport(format!("bad request: {e}")))?;
        match tokio::time::timeout(self.timeout, self.send(req)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout),
        }
    }

    async fn send(&self, mut req: Request<Full<Bytes>>) -> Result<RawResponse, ClientError> {
        // A pooled connection first; if it hands the request back unsent, a fresh one.
        loop {
            let pooled = self.take_idle();
            let fresh = pooled.is_none();
            let mut sender = match pooled {
                Some(s) => s,
                None => self.connect().await?,
            };
            if sender.ready().await.is_err() {
                if fresh {
                    return Err(ClientError::Transport(
                        "new connection closed at once".to_owned(),
                    ));
                }
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let body = resp
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| ClientError::Transport(e.to_string()))?
                        .to_bytes();
                    self.put_idle(sender);
                    return Ok(RawResponse {
                        status,
                        headers,
                        body,
                    });
                }
                Err(mut e) => match e.take_message() {
                    Some(back) if !fresh => req = back,
                    _ => return Err(ClientError::Transport(e.into_error().to_string())),
                },
            }
        }
    }

    async fn connect(&self) -> Result<http1::SendRequest<Full<Bytes>>, ClientError> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(ClientError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        tokio::spawn(async move {
            // The connection ends when the server closes it or the sender is dropped.
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn take_idle(&self) -> Option<http1::SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn put_idle(&self, sender: http1::SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_CONNECTIONS_MAX {
            idle.push(sender);
        }
    }
}

fn expect_json<T: serde::de::DeserializeOwned>(r: RawResponse) -> Result<T, ClientError> {
    if r.status != StatusCode::OK {
        return Err(ClientError::Status {
            status: r.status,
            body: r.body,
        });
    }
    serde_json::from_slice(&r.body).map_err(|e| ClientError::Decode {
        status: r.status,
        body: r.body.clone(),
        error: e.to_string(),
    })
}

/// Percent-encodes a key for the URL path; `/` stays (keys may contain it).
pub fn encode_key(key: &str) -> String {
    encode(key, true)
}

/// Percent-encodes a query parameter value.
pub fn encode_component(s: &str) -> String {
    encode(s, false)
}

fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded_except_slashes() {
        assert_eq!(encode_key("a/b c?d"), "a/b%20c%3Fd");
        assert_eq!(encode_component("a/b&c"), "a%2Fb%26c");
        assert_eq!(encode_key("é"), "%C3%A9");
    }

    #[test]
    fn lost_writes_are_definite_and_timeouts_are_not() {
        let lost = ClientError::Status {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: Bytes::from_static(
                br#"{"error":"write lost: x; it may be retried","retryable":true}"#,
            ),
        };
        assert!(!lost.is_indeterminate());
        let timeout = ClientError::Status {
            status: StatusCode::GATEWAY_TIMEOUT,
            body: Bytes::from_static(br#"{"error":"timeout","indeterminate":true}"#),
        };
        assert!(timeout.is_indeterminate());
        assert!(ClientError::Timeout.is_indeterminate());
        let bad = ClientError::Status {
            status: StatusCode::BAD_REQUEST,
            body: Bytes::new(),
        };
        assert!(!bad.is_indeterminate());
    }
}
