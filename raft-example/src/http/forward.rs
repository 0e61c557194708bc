//! A small HTTP/1.1 client (hyper) with a per-address connection pool: forwards client
//! requests to the leader, and sends the join request.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpStream;

/// Idle connections kept per address.
const POOL_PER_ADDR: usize = 64;
/// Time to connect to the leader.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a forwarded request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Could not connect, or the request was not sent: it had no effect.
    #[error("cannot connect to {addr}: {err}")]
    Connect {
        /// The address.
        addr: String,
        /// Why.
        err: String,
    },
    /// The request was sent but no answer came back: it may have had an effect.
    #[error("request to {addr} failed: {err}")]
    Exchange {
        /// The address.
        addr: String,
        /// Why.
        err: String,
    },
    /// A malformed URL.
    #[error("bad URL {0:?}: expected http://HOST:PORT")]
    Url(String),
}

/// The answer of a forwarded request.
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its content type, if any.
    pub content_type: Option<header::HeaderValue>,
    /// Its location header, if any (a redirect passed through).
    pub location: Option<header::HeaderValue>,
    /// Its leader header, if any.
    pub leader: Option<header::HeaderValue>,
    /// Its body.
    pub body: Bytes,
}

/// The client, shared by every handler.
#[derive(Debug, Default)]
pub struct Forwarder {
    pool: Mutex<BTreeMap<String, Vec<SendRequest<Full<Bytes>>>>>,
}

/// `host:port` of an `http://host:port[/...]` URL.
///
/// # Errors
/// [`ForwardError::Url`] for anything else.
pub fn host_port(url: &str) -> Result<String, ForwardError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ForwardError::Url(url.into()))?;
    let hp = rest.split('/').next().unwrap_or_default();
    if hp.is_empty() || !hp.contains(':') {
        return Err(ForwardError::Url(url.into()));
    }
    Ok(hp.to_string())
}

impl ForwardError {
    /// Whether the request certainly had no effect (it never reached the other side).
    pub fn is_definite(&self) -> bool {
        matches!(self, ForwardError::Connect { .. } | ForwardError::Url(_))
    }
}

impl Forwarder {
    /// Sends `method path_and_query` with `body` to `addr` (`host:port`) and reads the whole
    /// answer. `forwarded_by` goes in `X-Raft-Forwarded` (the receiver will not forward again).
    ///
    /// # Errors
    /// [`ForwardError`] when no answer arrives.
    pub async fn send(
        &self,
        addr: &str,
        method: Method,
        path_and_query: &str,
        content_type: Option<&header::HeaderValue>,
        body: Bytes,
        forwarded_by: Option<u64>,
    ) -> Result<Answer, ForwardError> {
        let mut b = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(header::HOST, addr);
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        if let Some(id) = forwarded_by {
            b = b.header(super::FORWARDED_HEADER, id.to_string());
        }
        let req = b
            .body(Full::new(body))
            .map_err(|e| ForwardError::Exchange {
                addr: addr.into(),
                err: e.to_string(),
            })?;
        // A pooled connection may have been closed by the other side: a request it did not
        // send comes back and goes out again on a new connection, so "not sent" stays
        // distinguishable from "sent, answer lost" (indeterminate).
        let mut req = Some(req);
        let mut pooled = self.take(addr);
        let (resp, sender) = loop {
            let (mut sender, fresh) = match pooled.take() {
                Some(s) => (s, false),
                None => (connect(addr).await?, true),
            };
            let r = req.take().expect("a request to send");
            match sender.try_send_request(r).await {
                Ok(resp) => break (resp, sender),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !fresh => req = Some(unsent),
                    Some(_) => {
                        return Err(ForwardError::Connect {
                            addr: addr.into(),
                            err: e.into_error().to_string(),
                        });
                    }
                    None => {
                        return Err(ForwardError::Exchange {
                            addr: addr.into(),
                            err: e.into_error().to_string(),
                        });
                    }
                },
            }
        };
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| ForwardError::Exchange {
                addr: addr.into(),
                err: e.to_string(),
            })?
            .to_bytes();
        self.put_back(addr, sender);
        Ok(Answer {
            status: parts.status,
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
            location: parts.headers.get(header::LOCATION).cloned(),
            leader: parts.headers.get(super::LEADER_HEADER).cloned(),
            body,
        })
    }

    fn take(&self, addr: &str) -> Option<SendRequest<Full<Bytes>>> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let list = pool.get_mut(addr)?;
        while let Some(s) = list.pop() {
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    fn put_back(&self, addr: &str, s: SendRequest<Full<Bytes>>) {
        if !s.is_ready() {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let list = pool.entry(addr.to_string()).or_default();
        if list.len() < POOL_PER_ADDR {
            list.push(s);
        }
    }
}

async fn connect(addr: &str) -> Result<SendRequest<Full<Bytes>>, ForwardError> {
    let err = |e: String| ForwardError::Connect {
        addr: addr.into(),
        err: e,
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| err("timed out".into()))?
        .map_err(|e| err(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| err(e.to_string()))?;
    // The connection task ends when the sender is dropped or the peer closes.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_and_port() {
        assert_eq!(host_port("http://127.0.0.1:80").unwrap(), "127.0.0.1:80");
        assert_eq!(host_port("http://h:1/v1/x").unwrap(), "h:1");
        assert!(host_port("https://h:1").is_err());
        assert!(host_port("http://h").is_err());
        assert!(host_port("127.0.0.1:80").is_err());
    }
}
