//! `raft-example wal verify DIR` and `raft-example wal dump DIR` (placeholder until the WAL lands).

/// The `wal` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Check every record of a data directory's WAL and snapshot files; exit 1 on damage.
    Verify {
        /// The member's data directory.
        dir: std::path::PathBuf,
    },
    /// Print every record of a data directory's WAL, one line each.
    Dump {
        /// The member's data directory.
        dir: std::path::PathBuf,
    },
}

/// Runs a `wal` subcommand; returns the process exit code.
pub fn run(_args: Args) -> std::process::ExitCode {
    eprintln!("raft-example wal: not built yet");
    std::process::ExitCode::FAILURE
}
