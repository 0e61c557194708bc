//! raft-example: a replicated key-value node on raft-core.
//!
//! (Crate docs, with the Ready loop, are written as the modules land.)
//!
//! | module | what it is | owner while being built |
//! | --- | --- | --- |
//! | `wal` | segmented write-ahead log: format, writer, recovery, verify/dump | storage |
//! | `snapfile` | snapshot files: format, atomic save, load, purge | storage |
//! | `disk` | `Durable`: WAL + snapshot files, recovery into a `MemStorage` | storage |
//! | `kv` | the MVCC key-value state machine (etcd's data model) | node |
//! | `node` | the task that owns the `RawNode` and runs the Ready loop | node |
//! | `transport` | TCP between peers: frames, handshake, per-peer senders | node |
//! | `http` | the client API (axum) | node |
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
