//! raft-example: a replicated key-value node on raft-core — a write-ahead log on files,
//! snapshots, TCP between peers and an HTTP/JSON API, in one binary (`raft-example node`).
//!
//! # The Ready loop (in [`node`])
//!
//! One tokio task owns the `RawNode<MemStorage>` and runs raft-core's driver loop; everything
//! else talks to it through bounded channels:
//!
//! ```text
//! loop {
//!     select! {                                 // one kind of input, then drive
//!         storage thread: batches durable => for mut b in batches {
//!                                                raw.storage_mut().persist_from(&mut b)?;
//!                                                raw.on_persisted(b.durable());   // in order
//!                                            }
//!         tick (--tick-ms)                 => raw.tick()
//!         peer messages                    => raw.step(m)          (all that wait)
//!         client requests                  => raw.propose / read_index (all that wait:
//!                                             proposals that arrive together share a Ready)
//!         transport reports                => report_unreachable / report_snapshot
//!         snapshot file saved              => create_snapshot + compact; Durable::compact_to
//!         shutdown (SIGINT/SIGTERM)        => break
//!     }
//!     while storage thread has room && raw.has_ready() {
//!         let Ready { messages, persist, apply, read_states } = raw.ready();
//!         messages    -> per-peer send queues: sent now, while the leader's own write
//!                        proceeds (Ready contract rule 2)
//!         persist     -> storage thread: writes every batch waiting, ONE fsync if any
//!                        needs it (group commit), hands them back in order
//!         apply       -> state machine; answer each write whose exact EntryId was applied
//!                        (another term's entry there: "write lost"); on_applied;
//!                        every --snapshot-entries: snapshot off the loop
//!         read_states -> linearizable reads answered once applied >= their index
//!     }
//! }
//! ```
//! A failed write or fsync stops the node (fail-stop): the storage thread hands nothing of
//! that group back, the loop returns the error, the process logs `fatal: ...` and exits 1.
//!
//! # Modules
//!
//! | module | what it is | owner while being built |
//! | --- | --- | --- |
//! | `wal` | segmented write-ahead log: format, writer, recovery, verify/dump | storage |
//! | `snapfile` | snapshot files: format, atomic save, load, purge | storage |
//! | `disk` | `Durable`: WAL + snapshot files, recovery into a `MemStorage` | storage |
//! | [`kv`] | the MVCC key-value state machine (etcd's data model), entry and snapshot encodings | node |
//! | [`node`] | the task that owns the `RawNode` and runs the Ready loop; [`node::storage`] the storage thread (group commit); [`node::boot`] founding / joining / restarting; [`node::api`] what the HTTP layer asks; [`node::cli`] the `node` subcommand | node |
//! | [`transport`] | TCP between peers: frames, handshake, per-peer bounded queues and writers | node |
//! | [`http`] | the client API (axum): KV, ReadIndex reads, forwarding/redirects, status, metrics, membership | node |
//! | [`metrics`] | counters, gauges and the fsync histogram, in Prometheus text | node |
//! | [`shutdown`] | the one shutdown signal every task honours | node |
//! | `client` | a small HTTP client for the API (cluster, demo, bench, tests) | harness |
//! | `cluster` | `raft-example cluster`: N members as child processes | harness |
//! | `demo` | `raft-example demo`: the narrated tour | harness |
//! | `bench` | `raft-example bench`: the load generator | harness |

pub mod bench;
pub mod client;
pub mod cluster;
pub mod demo;
pub mod disk;
pub mod http;
pub mod kv;
pub mod metrics;
pub mod node;
pub mod shutdown;
pub mod snapfile;
pub mod transport;
pub mod wal;

/// Runs `main` on a two-worker tokio runtime, for the subcommands that are clients of a
/// cluster (`cluster`, `demo`, `bench`); a runtime that cannot start is reported for
/// `command` and fails the process.
pub(crate) fn block_on(
    command: &str,
    main: impl std::future::Future<Output = std::process::ExitCode>,
) -> std::process::ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(main),
        Err(e) => {
            eprintln!("raft-example {command}: tokio runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
