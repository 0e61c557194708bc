//! `raft-example node`: flags, logging, the runtime, and the wiring of one member.
//!
//! ```text
//!   boot (data dir, --peers / --join) ─► bind the peer and HTTP listeners
//!     ─► node task (Ready loop) + storage thread + transport listener + HTTP server
//!     ─► wait for SIGINT/SIGTERM (exit 0 after a clean shutdown) or a fatal error
//!        ("fatal: ..." logged, exit 1)
//! ```

use super::boot::{self, BootOptions};
use super::{Node, NodeConfig, NodeError};
use crate::disk::DiskOptions;
use crate::kv::Member;
use crate::metrics::Metrics;
use crate::shutdown;
use crate::transport::{self, AddressBook, Identity, Transport};
use slog::{Drain, Logger, crit, info, o};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `raft-example node`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// This member's id (not 0).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub id: u64,
    /// Its data directory (WAL and snapshots).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The address peers reach it at (HOST:PORT); it listens there.
    #[arg(long)]
    pub peer: String,
    /// The client API's address (HOST:PORT).
    #[arg(long)]
    pub http: String,
    /// The initial members, this one included: `1=PEER_ADDR/HTTP_ADDR,2=...`.
    #[arg(long, value_parser = parse_peers, conflicts_with = "join")]
    pub peers: Option<Peers>,
    /// Ask the member at this URL (http://HOST:PORT) to add this node; harmless on restart.
    #[arg(long)]
    pub join: Option<String>,
    /// The cluster's name; peers of another cluster are refused.
    #[arg(long, default_value = "raft-example")]
    pub cluster_id: String,
    /// Milliseconds per tick.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub tick_ms: u64,
    /// Election timeout in ticks.
    #[arg(long, default_value_t = 10)]
    pub election_ticks: u32,
    /// Heartbeat interval in ticks.
    #[arg(long, default_value_t = 1)]
    pub heartbeat_ticks: u32,
    /// Snapshot the state machine after this many applied entries (0: never).
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_entries: u64,
    /// Test hooks: report each fsynced WAL offset to `<data-dir>/wal/SYNCED`.
    #[arg(long)]
    pub test_hooks: bool,
    /// Test hook: WAL writes fail (like a full disk) after this many bytes.
    #[arg(long)]
    pub test_wal_fail_after_bytes: Option<u64>,
    /// Log level: critical, error, warning, info, debug, trace.
    #[arg(long, default_value = "info", value_parser = parse_level)]
    pub log_level: slog::Level,
    /// Client request deadline in milliseconds (then 504).
    #[arg(long, default_value_t = 5000, hide = true)]
    pub request_timeout_ms: u64,
}

/// The `--peers` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers(pub Vec<Member>);

fn parse_peers(s: &str) -> Result<Peers, String> {
    let mut out: Vec<Member> = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (id, addrs) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected ID=PEER_ADDR/HTTP_ADDR"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: the id is not a number"))?;
        if id == 0 {
            return Err(format!("{part:?}: id 0 is not allowed"));
        }
        let (peer, http) = addrs
            .split_once('/')
            .ok_or_else(|| format!("{part:?}: expected ID=PEER_ADDR/HTTP_ADDR"))?;
        for a in [peer, http] {
            if !a.contains(':') {
                return Err(format!("{part:?}: {a:?} is not HOST:PORT"));
            }
        }
        if out.iter().any(|m| m.id == id) {
            return Err(format!("id {id} is listed twice"));
        }
        out.push(Member {
            id,
            peer_addr: peer.to_string(),
            http_addr: http.to_string(),
        });
    }
    if out.is_empty() {
        return Err("no members listed".into());
    }
    Ok(Peers(out))
}

fn parse_level(s: &str) -> Result<slog::Level, String> {
    s.parse::<slog::Level>()
        .map_err(|()| format!("unknown log level {s:?}"))
}

/// A logger to stderr (asynchronous; the guard flushes it when dropped).
pub fn logger(level: slog::Level) -> (Logger, slog_async::AsyncGuard) {
    let decorator = slog_term::PlainDecorator::new(std::io::stderr());
    let drain = slog_term::FullFormat::new(decorator).build().fuse();
    let drain = drain.filter_level(level).fuse();
    let (drain, guard) = slog_async::Async::new(drain)
        .chan_size(8192)
        .overflow_strategy(slog_async::OverflowStrategy::Block)
        .build_with_guard();
    (Logger::root(drain.fuse(), o!()), guard)
}

/// Runs one member until SIGINT/SIGTERM; returns the process exit code.
pub fn run(args: Args) -> ExitCode {
    let (logger, guard) = logger(args.log_level);
    let logger = logger.new(o!("node" => args.id));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("raft-example")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crit!(logger, "fatal: cannot start the runtime: {e}");
            drop(logger);
            drop(guard);
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(serve(args, logger.clone()));
    let code = match result {
        Ok(()) => {
            info!(logger, "stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            crit!(logger, "fatal: {e}");
            ExitCode::FAILURE
        }
    };
    // Background tasks (writers, idle connections) are dropped with the runtime.
    rt.shutdown_timeout(Duration::from_secs(1));
    drop(logger);
    drop(guard);
    code
}

/// Boots the member, starts every task, and waits for a signal or a fatal error.
///
/// # Errors
/// [`NodeError`] on a boot failure or fail-stop.
pub async fn serve(args: Args, logger: Logger) -> Result<(), NodeError> {
    let (trigger, shutdown) = shutdown::channel();
    let me = Member {
        id: args.id,
        peer_addr: args.peer.clone(),
        http_addr: args.http.clone(),
    };
    // Listeners first: a bad address fails before anything is written.
    let peer_listener = tokio::net::TcpListener::bind(&args.peer)
        .await
        .map_err(|e| NodeError::Boot(format!("cannot listen on --peer {}: {e}", args.peer)))?;
    let http_listener = tokio::net::TcpListener::bind(&args.http)
        .await
        .map_err(|e| NodeError::Boot(format!("cannot listen on --http {}: {e}", args.http)))?;
    let trigger = Arc::new(trigger);
    let (t, l) = (trigger.clone(), logger.clone());
    tokio::spawn(async move {
        wait_for_signal(l).await;
        t.fire();
    });
    let opts = BootOptions {
        me: me.clone(),
        data_dir: args.data_dir.clone(),
        peers: args.peers.clone().map(|p| p.0),
        join: args.join.clone(),
        disk: DiskOptions {
            report_synced: args.test_hooks,
            fail_after_bytes: args.test_wal_fail_after_bytes,
            ..DiskOptions::default()
        },
    };
    let booted = tokio::select! {
        b = boot::boot(opts, &shutdown, &logger) => b?,
        () = shutdown.fired() => return Ok(()),
    };
    info!(logger, "raft-example node starting";
        "id" => args.id, "peer" => &args.peer, "http" => &args.http,
        "cluster" => &args.cluster_id, "data_dir" => %args.data_dir.display(),
        "how" => %booted.how, "applied" => booted.start.applied,
        "recovery" => &booted.report);
    let metrics = Arc::new(Metrics::default());
    let book = AddressBook::new(booted.members.clone());
    let ident = Arc::new(Identity {
        cluster_id: args.cluster_id.clone(),
        id: args.id,
        http_addr: args.http.clone(),
        max_frame_bytes: transport::frame::DEFAULT_MAX_FRAME_BYTES,
    });
    let cfg = NodeConfig {
        id: args.id,
        tick: Duration::from_millis(args.tick_ms),
        election_ticks: args.election_ticks,
        heartbeat_ticks: args.heartbeat_ticks,
        snapshot_entries: args.snapshot_entries,
    };
    let saver = Arc::new(booted.durable.snapshot_dir());
    let t_logger = logger.new(o!("part" => "transport"));
    let (t_ident, t_book, t_metrics, t_shutdown) = (
        ident.clone(),
        book.clone(),
        metrics.clone(),
        shutdown.clone(),
    );
    let (node, inputs, handle, wiring) = Node::new(
        cfg,
        booted.start,
        booted.durable,
        saver,
        book.clone(),
        move |reports| Transport::new(t_ident, t_book, reports, t_metrics, t_shutdown, t_logger),
        metrics.clone(),
        logger.clone(),
    )?;
    tokio::spawn(transport::serve(
        peer_listener,
        ident,
        book,
        wiring.inbound,
        metrics,
        shutdown.clone(),
        logger.new(o!("part" => "peer-listener")),
    ));
    let router = crate::http::router(
        handle,
        Duration::from_millis(args.request_timeout_ms),
        logger.new(o!("part" => "http")),
    );
    let http_shutdown = shutdown.clone();
    let http = tokio::spawn(crate::http::serve(http_listener, router, http_shutdown));
    // The node task runs until the shutdown signal (a clean stop) or a fatal error.
    let result = tokio::spawn(node.run(inputs, shutdown.clone())).await;
    trigger.fire();
    // Give the HTTP server a moment to finish answering.
    let _ = tokio::time::timeout(Duration::from_secs(2), http).await;
    match result {
        Ok(r) => r,
        Err(e) => Err(NodeError::Boot(format!("the node task panicked: {e}"))),
    }
}

async fn wait_for_signal(logger: Logger) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            slog::warn!(logger, "cannot watch SIGTERM"; "error" => %e);
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!(logger, "SIGINT: shutting down"),
        _ = term.recv() => info!(logger, "SIGTERM: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peers_flag_parses_and_bad_lists_are_refused() {
        let p = parse_peers("1=127.0.0.1:7001/127.0.0.1:8001,2=h:7002/h:8002").unwrap();
        assert_eq!(p.0.len(), 2);
        assert_eq!(p.0[1].http_addr, "h:8002");
        for bad in [
            "",
            "1",
            "x=a:1/b:2",
            "0=a:1/b:2",
            "1=a:1",
            "1=a/b:2",
            "1=a:1/b:2,1=c:1/d:2",
        ] {
            assert!(parse_peers(bad).is_err(), "{bad:?} accepted");
        }
    }
}
