//! The client API (axum): key-value, status, readiness, metrics and membership, in JSON.
//!
//! Routing of every key-value request:
//! ```text
//!   GET ?consistency=serializable ─────────────────────────► read the local store
//!   this node leads ──► write: propose, answer once its EntryId is applied
//!                       read:  ReadIndex, answer once applied >= the read index
//!   a leader is known ─► ?redirect: 307 Location + X-Raft-Leader
//!                        otherwise: forward to the leader, answer its answer
//!   no leader known ───► 503 {"error":"no leader","leader":null,"last_leader":..}
//! ```
//! A request that arrives forwarded (header `X-Raft-Forwarded`) is never forwarded again,
//! so two nodes that disagree about the leader cannot bounce a request between them.
//! Every request has a deadline (default 5 s): past it, 504 `{"error":"timeout",
//! "indeterminate":true}` (a write may or may not have happened).

pub mod forward;

use crate::kv::{Member, Op, OpResult, Record};
use crate::metrics;
use crate::node::api::{NodeHandle, Reject, Request as NodeRequest};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use forward::Forwarder;
use serde::Deserialize;
use serde_json::{Value, json};
use slog::{Logger, warn};
use std::sync::Arc;
use std::time::Duration;

/// Largest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest value (request body), in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Default request deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Set on a request a node forwards to the leader (its value: the forwarding node's id).
pub const FORWARDED_HEADER: &str = "x-raft-forwarded";
/// The leader's id, on a redirect.
pub const LEADER_HEADER: &str = "x-raft-leader";

/// What every handler shares.
pub struct Api {
    node: NodeHandle,
    fwd: Forwarder,
    timeout: Duration,
    logger: Logger,
}

/// The router of the API.
pub fn router(node: NodeHandle, timeout: Duration, logger: Logger) -> Router {
    let api = Arc::new(Api {
        node,
        fwd: Forwarder::default(),
        timeout,
        logger,
    });
    Router::new()
        .route("/v1/kv", get(range))
        .route(
            "/v1/kv/{*key}",
            get(get_key).put(put_key).delete(delete_key),
        )
        .route("/v1/members", get(list_members).post(add_member))
        .route("/v1/members/{id}", delete(remove_member))
        .route("/status", get(status))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_VALUE_BYTES))
        .with_state(api)
}

/// Serves `router` on `listener` until `shutdown` fires.
///
/// # Errors
/// The server failed (I/O on the listener).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: crate::shutdown::Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.fired().await })
        .await
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    json_response(status, json!({ "error": msg.to_string() }))
}

fn timeout_response(api: &Api) -> Response {
    metrics::inc(&api.node.metrics.http_timeouts_total);
    json_response(
        StatusCode::GATEWAY_TIMEOUT,
        json!({"error": "timeout", "indeterminate": true}),
    )
}

async fn not_found(uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no route for {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} not allowed on {}", uri.path()),
    )
}

fn path_error(e: PathRejection) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        format!("bad path: {}", e.body_text()),
    )
}

fn query_error(e: QueryRejection) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        format!("bad query: {}", e.body_text()),
    )
}

fn body_error(e: BytesRejection) -> Response {
    let status = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        StatusCode::BAD_REQUEST
    };
    error(status, format!("bad body: {}", e.body_text()))
}

/// Query parameters of the key-value routes.
#[derive(Debug, Default, Deserialize)]
struct KvQuery {
    consistency: Option<String>,
    redirect: Option<String>,
    prefix: Option<String>,
    start: Option<String>,
    end: Option<String>,
    limit: Option<String>,
}

impl KvQuery {
    #[allow(clippy::result_large_err)] // the error is the answer itself
    fn serializable(&self) -> Result<bool, Response> {
        match self.consistency.as_deref() {
            None | Some("linearizable") => Ok(false),
            Some("serializable") => Ok(true),
            Some(other) => Err(error(
                StatusCode::BAD_REQUEST,
                format!("consistency must be linearizable or serializable, not {other:?}"),
            )),
        }
    }
}

/// What `GET /v1/kv` lists.
enum RangeSpec {
    Prefix {
        prefix: String,
        limit: usize,
    },
    Range {
        start: String,
        end: Option<String>,
        limit: usize,
    },
}

#[allow(clippy::result_large_err)] // the error is the answer itself
fn range_spec(q: &KvQuery) -> Result<RangeSpec, Response> {
    let limit = match q.limit.as_deref() {
        None => 0,
        Some(s) => s.parse::<usize>().map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                format!("limit must be a number, not {s:?}"),
            )
        })?,
    };
    match (&q.prefix, &q.start, &q.end) {
        (Some(p), None, None) => Ok(RangeSpec::Prefix {
            prefix: p.clone(),
            limit,
        }),
        (None, Some(s), end) => Ok(RangeSpec::Range {
            start: s.clone(),
            end: end.clone(),
            limit,
        }),
        (None, None, None) => Ok(RangeSpec::Prefix {
            prefix: String::new(),
            limit,
        }),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "give either prefix, or start (and optionally end)",
        )),
    }
}

/// The pieces of a request needed to forward or redirect it.
struct Original {
    method: Method,
    uri: Uri,
    content_type: Option<HeaderValue>,
    forwarded: bool,
    redirect: bool,
    body: Bytes,
}

impl Original {
    fn new(method: Method, uri: Uri, headers: &HeaderMap, redirect: bool, body: Bytes) -> Self {
        Original {
            method,
            uri,
            content_type: headers.get(header::CONTENT_TYPE).cloned(),
            forwarded: headers.contains_key(FORWARDED_HEADER),
            redirect,
            body,
        }
    }
}

fn record_json(key: &[u8], r: &Record, revision: u64) -> Value {
    json!({
        "key": String::from_utf8_lossy(key),
        "value": String::from_utf8_lossy(&r.value),
        "create_revision": r.create_revision,
        "mod_revision": r.mod_revision,
        "version": r.version,
        "revision": revision,
    })
}

#[allow(clippy::result_large_err)] // the error is the answer itself
fn check_key(key: &str) -> Result<(), Response> {
    if key.is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, "empty key"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("key of {} bytes exceeds {MAX_KEY_BYTES}", key.len()),
        ));
    }
    Ok(())
}

impl Api {
    /// Runs `work` on the leader: here if this node leads, else forwarded or redirected.
    async fn on_leader<F, Fut>(&self, orig: Original, work: F) -> Response
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Response, Reject>>,
    {
        let view = self.node.leader.borrow().clone();
        let leader = if view.is_leader {
            match work().await {
                Ok(r) => return r,
                Err(Reject::NotLeader { leader }) => leader,
                Err(e) => return self.reject(e),
            }
        } else {
            view.leader
        };
        self.elsewhere(orig, leader, view.last_leader).await
    }

    /// The request belongs to `leader`: redirect, forward, or 503.
    async fn elsewhere(
        &self,
        orig: Original,
        leader: Option<u64>,
        last_leader: Option<u64>,
    ) -> Response {
        let target = leader
            .filter(|&l| l != self.node.id)
            .and_then(|l| self.node.book.get(l).map(|m| (l, m.http_addr)));
        let Some((leader, addr)) = target else {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "no leader", "leader": null, "last_leader": last_leader}),
            );
        };
        let pq = orig
            .uri
            .path_and_query()
            .map_or_else(|| orig.uri.path().to_string(), |pq| pq.as_str().to_string());
        if orig.redirect {
            let location = format!("http://{addr}{pq}");
            let mut r = json_response(
                StatusCode::TEMPORARY_REDIRECT,
                json!({"error": "not the leader", "leader": leader, "location": location}),
            );
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r.headers_mut()
                .insert(LEADER_HEADER, HeaderValue::from(leader));
            return r;
        }
        if orig.forwarded {
            // Forwarded here by a node that thinks this one leads: do not bounce it back.
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "not the leader (forwarded request)", "leader": leader,
                       "retryable": true}),
            );
        }
        metrics::inc(&self.node.metrics.http_forwarded_total);
        match self
            .fwd
            .send(
                &addr,
                orig.method,
                &pq,
                orig.content_type.as_ref(),
                orig.body,
                Some(self.node.id),
            )
            .await
        {
            Ok(a) => {
                let mut r = (a.status, a.body).into_response();
                let h = r.headers_mut();
                for (name, v) in [
                    (header::CONTENT_TYPE, a.content_type),
                    (header::LOCATION, a.location),
                    (header::HeaderName::from_static(LEADER_HEADER), a.leader),
                ] {
                    if let Some(v) = v {
                        h.insert(name, v);
                    }
                }
                r
            }
            Err(e) if e.is_definite() => {
                warn!(self.logger, "forwarding to the leader failed"; "leader" => leader, "error" => %e);
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": format!("leader {leader} unreachable: {e}"),
                           "leader": leader, "retryable": true}),
                )
            }
            Err(e) => {
                // Sent, but the answer was lost: the request may have taken effect.
                warn!(self.logger, "forwarded request got no answer"; "leader" => leader, "error" => %e);
                json_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    json!({"error": format!("no answer from leader {leader}: {e}"),
                           "leader": leader, "indeterminate": true}),
                )
            }
        }
    }

    fn reject(&self, e: Reject) -> Response {
        match e {
            Reject::NotLeader { leader } => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "no leader", "leader": leader,
                       "last_leader": self.node.leader.borrow().last_leader}),
            ),
            Reject::Lost { .. } | Reject::Busy(_) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": e.to_string(), "retryable": true}),
            ),
            Reject::Indeterminate(_) => json_response(
                StatusCode::GATEWAY_TIMEOUT,
                json!({"error": e.to_string(), "indeterminate": true}),
            ),
            Reject::Conflict(_) => error(StatusCode::CONFLICT, e),
            Reject::NoSuchMember(_) => error(StatusCode::NOT_FOUND, e),
            Reject::ShuttingDown => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "shutting down", "retryable": true}),
            ),
            Reject::Stopped => json_response(
                StatusCode::GATEWAY_TIMEOUT,
                json!({"error": e.to_string(), "indeterminate": true}),
            ),
        }
    }

    async fn write(&self, op: Op) -> Result<Response, Reject> {
        let done = self
            .node
            .ask(|reply| NodeRequest::Write { op, reply })
            .await??;
        Ok(match done.result {
            OpResult::Put { revision } => json_response(
                StatusCode::OK,
                json!({"revision": revision, "index": done.index, "term": done.term}),
            ),
            OpResult::Delete { deleted, revision } => json_response(
                StatusCode::OK,
                json!({"deleted": deleted, "revision": revision, "index": done.index,
                       "term": done.term}),
            ),
        })
    }

    /// A linearizable read barrier: returns once this leader has applied the read index.
    async fn read_barrier(&self) -> Result<(), Reject> {
        self.node.ask(|reply| NodeRequest::Read { reply }).await??;
        Ok(())
    }

    fn read_key(&self, key: &str) -> Response {
        let kv = self.node.kv.read().unwrap_or_else(|e| e.into_inner());
        match kv.get(key.as_bytes()) {
            Some(r) => json_response(
                StatusCode::OK,
                record_json(key.as_bytes(), r, kv.revision()),
            ),
            None => json_response(
                StatusCode::NOT_FOUND,
                json!({"error": "key not found", "revision": kv.revision()}),
            ),
        }
    }

    fn read_range(&self, spec: &RangeSpec) -> Response {
        let kv = self.node.kv.read().unwrap_or_else(|e| e.into_inner());
        let (items, more) = match spec {
            RangeSpec::Prefix { prefix, limit } => kv.prefix(prefix.as_bytes(), *limit),
            RangeSpec::Range { start, end, limit } => {
                kv.range(start.as_bytes(), end.as_deref().map(str::as_bytes), *limit)
            }
        };
        let kvs: Vec<Value> = items
            .iter()
            .map(|(k, r)| record_json(k, r, kv.revision()))
            .collect();
        json_response(
            StatusCode::OK,
            json!({"kvs": kvs, "more": more, "revision": kv.revision()}),
        )
    }

    async fn with_deadline(&self, f: impl std::future::Future<Output = Response>) -> Response {
        metrics::inc(&self.node.metrics.http_requests_total);
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r,
            Err(_) => timeout_response(self),
        }
    }
}

type Q = Result<Query<KvQuery>, QueryRejection>;
type P<T> = Result<Path<T>, PathRejection>;

async fn get_key(
    State(api): State<Arc<Api>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    key: P<String>,
    q: Q,
) -> Response {
    let (key, q) = match (key, q) {
        (Ok(Path(k)), Ok(Query(q))) => (k, q),
        (Err(e), _) => return path_error(e),
        (_, Err(e)) => return query_error(e),
    };
    if let Err(r) = check_key(&key) {
        return r;
    }
    let serializable = match q.serializable() {
        Ok(s) => s,
        Err(r) => return r,
    };
    if serializable {
        metrics::inc(&api.node.metrics.http_requests_total);
        return api.read_key(&key);
    }
    let orig = Original::new(method, uri, &headers, q.redirect.is_some(), Bytes::new());
    let a = api.clone();
    api.with_deadline(api.on_leader(orig, || async move {
        a.read_barrier().await?;
        Ok(a.read_key(&key))
    }))
    .await
}

async fn range(
    State(api): State<Arc<Api>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    q: Q,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return query_error(e),
    };
    let serializable = match q.serializable() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let spec = match range_spec(&q) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if serializable {
        metrics::inc(&api.node.metrics.http_requests_total);
        return api.read_range(&spec);
    }
    let orig = Original::new(method, uri, &headers, q.redirect.is_some(), Bytes::new());
    let a = api.clone();
    api.with_deadline(api.on_leader(orig, || async move {
        a.read_barrier().await?;
        Ok(a.read_range(&spec))
    }))
    .await
}

#[allow(clippy::too_many_arguments)]
async fn put_key(
    State(api): State<Arc<Api>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    key: P<String>,
    q: Q,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (key, q, body) = match (key, q, body) {
        (Ok(Path(k)), Ok(Query(q)), Ok(b)) => (k, q, b),
        (Err(e), _, _) => return path_error(e),
        (_, Err(e), _) => return query_error(e),
        (_, _, Err(e)) => return body_error(e),
    };
    if let Err(r) = check_key(&key) {
        return r;
    }
    if body.len() > MAX_VALUE_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("value of {} bytes exceeds {MAX_VALUE_BYTES}", body.len()),
        );
    }
    if std::str::from_utf8(&body).is_err() {
        return error(StatusCode::BAD_REQUEST, "the value is not UTF-8");
    }
    let orig = Original::new(method, uri, &headers, q.redirect.is_some(), body.clone());
    let a = api.clone();
    api.with_deadline(api.on_leader(orig, || async move {
        a.write(Op::Put {
            key: Bytes::from(key.into_bytes()),
            value: body,
        })
        .await
    }))
    .await
}

async fn delete_key(
    State(api): State<Arc<Api>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    key: P<String>,
    q: Q,
) -> Response {
    let (key, q) = match (key, q) {
        (Ok(Path(k)), Ok(Query(q))) => (k, q),
        (Err(e), _) => return path_error(e),
        (_, Err(e)) => return query_error(e),
    };
    if let Err(r) = check_key(&key) {
        return r;
    }
    let orig = Original::new(method, uri, &headers, q.redirect.is_some(), Bytes::new());
    let a = api.clone();
    api.with_deadline(api.on_leader(orig, || async move {
        a.write(Op::Delete {
            key: Bytes::from(key.into_bytes()),
        })
        .await
    }))
    .await
}

async fn status(State(api): State<Arc<Api>>) -> Response {
    let a = api.clone();
    api.with_deadline(async move {
        match a.node.ask(|reply| NodeRequest::Status { reply }).await {
            Ok(s) => (StatusCode::OK, axum::Json(s)).into_response(),
            Err(e) => a.reject(e),
        }
    })
    .await
}

async fn readyz(State(api): State<Arc<Api>>) -> Response {
    let view = api.node.leader.borrow().clone();
    let leader = match view.leader {
        Some(l) => format!("leader: ok ({l})"),
        None => "leader: none known".to_string(),
    };
    let applied = if view.caught_up {
        "applied: ok".to_string()
    } else {
        "applied: catching up".to_string()
    };
    let ok = view.leader.is_some() && view.caught_up;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, format!("{leader}\n{applied}\n")).into_response()
}

async fn metrics_text(State(api): State<Arc<Api>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        api.node.metrics.render(),
    )
        .into_response()
}

async fn list_members(State(api): State<Arc<Api>>) -> Response {
    let a = api.clone();
    api.with_deadline(async move {
        match a.node.ask(|reply| NodeRequest::Status { reply }).await {
            Ok(s) => json_response(StatusCode::OK, json!({ "members": s.members })),
            Err(e) => a.reject(e),
        }
    })
    .await
}

/// `POST /v1/members` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    id: u64,
    peer_addr: String,
    http_addr: String,
}

async fn add_member(
    State(api): State<Arc<Api>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    q: Q,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (q, body) = match (q, body) {
        (Ok(Query(q)), Ok(b)) => (q, b),
        (Err(e), _) => return query_error(e),
        (_, Err(e)) => return body_error(e),
    };
    let m: AddMember = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
    };
    if m.id == 0 {
        return error(StatusCode::BAD_REQUEST, "id must not be 0");
    }
    for (name, a) in [("peer_addr", &m.peer_addr), ("http_addr", &m.http_addr)] {
        if a.parse::<std::net::SocketAddr>().is_err() && !a.contains(':') {
            return error(
                StatusCode::BAD_REQUEST,
                format!("{name} must be HOST:PORT, not {a:?}"),
            );
        }
    }
    let member = Member {
        id: m.id,
        peer_addr: m.peer_addr,
        http_addr: m.http_addr,
    };
    let orig = Original::new(method, uri, &headers, q.redirect.is_some(), body);
    let a = api.clone();
    api.with_deadline(api.on_leader(orig, || async move {
        let members = a
            .node
            .ask(|reply| NodeRequest::AddMember { member, reply })
            .await??;
        Ok(json_response(StatusCode::OK, json!({ "members": members })))
    }))
    .await
}

async fn remove_member(
    State(api): State<Arc<Api>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    id: P<u64>,
    q: Q,
) -> Response {
    let (id, q) = match (id, q) {
        (Ok(Path(id)), Ok(Query(q))) => (id, q),
        (Err(e), _) => return path_error(e),
        (_, Err(e)) => return query_error(e),
    };
    let orig = Original::new(method, uri, &headers, q.redirect.is_some(), Bytes::new());
    let a = api.clone();
    api.with_deadline(api.on_leader(orig, || async move {
        let members = a
            .node
            .ask(|reply| NodeRequest::RemoveMember { id, reply })
            .await??;
        Ok(json_response(StatusCode::OK, json!({ "members": members })))
    }))
    .await
}
