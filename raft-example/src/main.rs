//! The `raft-example` binary: one subcommand per job.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "raft-example",
    about = "A replicated key-value node on raft-core"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one member of a cluster.
    Node(raft_example::node::cli::Args),
    /// Read a data directory offline.
    #[command(subcommand)]
    Wal(raft_example::wal::cli::Args),
    /// Start three members on 127.0.0.1 and walk through elections, a crash and recovery.
    Demo(raft_example::demo::Args),
    /// Start N members as child processes on 127.0.0.1; Ctrl-C stops them.
    Cluster(raft_example::cluster::Args),
    /// Load generator: C clients writing to a running cluster.
    Bench(raft_example::bench::Args),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Node(args) => raft_example::node::cli::run(args),
        Command::Wal(args) => raft_example::wal::cli::run(args),
        Command::Demo(args) => raft_example::demo::run(args),
        Command::Cluster(args) => raft_example::cluster::run(args),
        Command::Bench(args) => raft_example::bench::run(args),
    }
}
