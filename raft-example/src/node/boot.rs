//! What a member starts from.
//!
//! ```text
//!   Durable::open(data-dir)
//!     ├─ state found ─────► restart: the recovered MemStorage; the state machine from the
//!     │                     newest snapshot's data; Config::applied = its index (the log
//!     │                     after it is applied again, idempotently). --join: asked again in
//!     │                     the background (harmless: the member answers 200 for a member).
//!     └─ no state
//!          ├─ --peers ────► founding member: a snapshot at index 1, term 1 holding the initial
//!          │                configuration and a state machine with the address book, saved
//!          │                with Durable::bootstrap (so a restart finds it) and installed in
//!          │                an empty MemStorage (as MemStorage::new_with_conf_state does, but
//!          │                with data: a joiner that receives it learns everyone's address)
//!          └─ --join URL ─► POST URL/v1/members until a member answers 200 with the members'
//!                           addresses; start from an empty MemStorage (the leader sends a
//!                           snapshot)
//! ```

use super::{NodeError, Start};
use crate::disk::{DiskOptions, Durable};
use crate::http::forward::{self, Forwarder};
use crate::kv::{Kv, Member};
use crate::shutdown::Shutdown;
use bytes::Bytes;
use raft_core::wire::SnapshotMetadata;
use raft_core::{ConfState, HardState, MemStorage, Snapshot};
use serde::Deserialize;
use slog::{Logger, info, warn};
use std::path::PathBuf;
use std::time::Duration;

/// How this member was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// From its data directory.
    Restarted,
    /// As a founding member of a new cluster.
    Founded,
    /// As a new member of a running cluster.
    Joined,
}

impl std::fmt::Display for How {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            How::Restarted => "restarted from its data directory",
            How::Founded => "founding member of a new cluster",
            How::Joined => "joined a running cluster",
        })
    }
}

/// The member's identity and where it starts from.
#[derive(Clone, Debug)]
pub struct BootOptions {
    /// This member.
    pub me: Member,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The initial members (founding), including this one.
    pub peers: Option<Vec<Member>>,
    /// A member's URL to join through.
    pub join: Option<String>,
    /// How the WAL writes.
    pub disk: DiskOptions,
}

/// A booted member.
pub struct Booted {
    /// The node's starting state.
    pub start: Start,
    /// The durable state, for the storage thread.
    pub durable: Durable,
    /// Everyone's addresses known at start.
    pub members: Vec<Member>,
    /// How it started.
    pub how: How,
    /// The recovery report (restart) or a note.
    pub report: String,
}

/// Opens the data directory and builds the starting state (see the module docs).
///
/// # Errors
/// [`NodeError::Boot`] naming what is wrong (damaged data directory, bad flags, a refused join).
pub async fn boot(
    opts: BootOptions,
    shutdown: &Shutdown,
    logger: &Logger,
) -> Result<Booted, NodeError> {
    let dir = opts.data_dir.clone();
    let disk_opts = opts.disk.clone();
    let (mut durable, recovered) =
        tokio::task::spawn_blocking(move || Durable::open(&dir, disk_opts))
            .await
            .map_err(|e| NodeError::Boot(format!("open task failed: {e}")))?
            .map_err(|e| {
                NodeError::Boot(format!(
                    "cannot open the data directory {}: {e}",
                    opts.data_dir.display()
                ))
            })?;
    if let Some(rec) = recovered {
        let (kv, applied) = match &rec.snapshot {
            Some(snap) => {
                let kv = Kv::decode(&snap.data).map_err(|e| {
                    NodeError::Boot(format!(
                        "the snapshot at index {} in {} does not decode: {e}",
                        snap.index(),
                        opts.data_dir.display()
                    ))
                })?;
                (kv, snap.index())
            }
            None => (Kv::new(), 0),
        };
        let mut members: Vec<Member> = kv.members().values().cloned().collect();
        if let Some(peers) = &opts.peers {
            merge(&mut members, peers.iter().cloned());
        }
        merge(&mut members, [opts.me.clone()]);
        if let Some(url) = opts.join.clone() {
            // Harmless on restart: refresh the addresses in the background, never block.
            let (me, shutdown, logger) = (opts.me.clone(), shutdown.clone(), logger.clone());
            tokio::spawn(async move {
                match join(&url, &me, &shutdown, &logger, Some(5)).await {
                    Ok(_) => info!(logger, "join request on restart acknowledged"; "url" => &url),
                    Err(e) => {
                        info!(logger, "join request on restart not answered (harmless)"; "url" => &url, "error" => %e)
                    }
                }
            });
        }
        return Ok(Booted {
            start: Start {
                storage: rec.storage,
                kv,
                applied,
            },
            durable,
            members,
            how: How::Restarted,
            report: rec.report.to_string(),
        });
    }
    if let Some(peers) = &opts.peers {
        if opts.join.is_some() {
            return Err(NodeError::Boot(
                "give either --peers or --join, not both".into(),
            ));
        }
        let Some(mine) = peers.iter().find(|m| m.id == opts.me.id) else {
            return Err(NodeError::Boot(format!(
                "--peers does not list this node's id {}",
                opts.me.id
            )));
        };
        if mine != &opts.me {
            return Err(NodeError::Boot(format!(
                "--peers gives node {} the addresses {}/{}, but --peer/--http say {}/{}",
                opts.me.id, mine.peer_addr, mine.http_addr, opts.me.peer_addr, opts.me.http_addr
            )));
        }
        let kv = Kv::founding(peers.iter().cloned(), 1);
        let snap = founding_snapshot(&kv);
        let s = snap.clone();
        let durable = tokio::task::spawn_blocking(move || durable.bootstrap(&s).map(|()| durable))
            .await
            .map_err(|e| NodeError::Boot(format!("bootstrap task failed: {e}")))?
            .map_err(|e| NodeError::Boot(format!("cannot found the member: {e}")))?;
        let mut storage = MemStorage::new();
        storage.apply_snapshot(snap)?;
        storage.set_hard_state(HardState {
            term: 1,
            vote: 0,
            commit: 1,
        });
        return Ok(Booted {
            start: Start {
                storage,
                kv,
                applied: 1,
            },
            durable,
            members: peers.clone(),
            how: How::Founded,
            report: "fresh data directory".into(),
        });
    }
    let Some(url) = &opts.join else {
        return Err(NodeError::Boot(format!(
            "{} holds no state: a new member needs --peers (founding a cluster) or --join URL",
            opts.data_dir.display()
        )));
    };
    let mut members = join(url, &opts.me, shutdown, logger, None).await?;
    merge(&mut members, [opts.me.clone()]);
    Ok(Booted {
        start: Start {
            storage: MemStorage::new(),
            kv: Kv::new(),
            applied: 0,
        },
        durable,
        members,
        how: How::Joined,
        report: format!("fresh data directory; added through {url}"),
    })
}

/// The founding snapshot: index 1, term 1, every initial member a voter.
pub fn founding_snapshot(kv: &Kv) -> Snapshot {
    let voters: Vec<u64> = kv.members().keys().copied().collect();
    Snapshot {
        data: Bytes::from(kv.encode()),
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState::with_voters(voters)),
            index: 1,
            term: 1,
        }),
    }
}

fn merge(into: &mut Vec<Member>, more: impl IntoIterator<Item = Member>) {
    for m in more {
        if let Some(old) = into.iter_mut().find(|o| o.id == m.id) {
            *old = m;
        } else {
            into.push(m);
        }
    }
}

#[derive(Deserialize)]
struct MembersAnswer {
    members: Vec<Member>,
}

/// Asks the member at `url` to add `me`, retrying with backoff until it answers 200 (or
/// `attempts` run out, or shutdown); returns the members it lists.
///
/// # Errors
/// [`NodeError::Boot`] on a definite refusal (4xx), shutdown, or no answer in `attempts`.
pub async fn join(
    url: &str,
    me: &Member,
    shutdown: &Shutdown,
    logger: &Logger,
    attempts: Option<u32>,
) -> Result<Vec<Member>, NodeError> {
    let addr = forward::host_port(url).map_err(|e| NodeError::Boot(format!("--join: {e}")))?;
    let body =
        serde_json::json!({"id": me.id, "peer_addr": me.peer_addr, "http_addr": me.http_addr});
    let body = Bytes::from(body.to_string());
    let client = Forwarder::default();
    let json = axum::http::HeaderValue::from_static("application/json");
    let mut delay = Duration::from_millis(200);
    let mut tried = 0;
    loop {
        tried += 1;
        let answer = client
            .send(
                &addr,
                axum::http::Method::POST,
                "/v1/members",
                Some(&json),
                body.clone(),
                None,
            )
            .await;
        match answer {
            Ok(a) if a.status.is_success() => {
                let parsed: MembersAnswer = serde_json::from_slice(&a.body).map_err(|e| {
                    NodeError::Boot(format!(
                        "join: {url} answered an unreadable member list: {e}"
                    ))
                })?;
                info!(logger, "joined the cluster"; "through" => url, "members" => parsed.members.len());
                return Ok(parsed.members);
            }
            Ok(a) if a.status.is_client_error() => {
                return Err(NodeError::Boot(format!(
                    "join refused by {url}: {} {}",
                    a.status,
                    String::from_utf8_lossy(&a.body)
                )));
            }
            Ok(a) => {
                warn!(logger, "join not answered yet; retrying"; "status" => a.status.as_u16(), "body" => String::from_utf8_lossy(&a.body).into_owned())
            }
            Err(e) => warn!(logger, "join request failed; retrying"; "error" => %e),
        }
        if attempts.is_some_and(|n| tried >= n) {
            return Err(NodeError::Boot(format!(
                "no answer from {url} after {tried} attempts"
            )));
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.fired() => return Err(NodeError::Boot("shut down while joining".into())),
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
