//! `raft-example node`: the flags of one member (placeholder until the node lands).

/// Arguments of `raft-example node`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs one member until SIGINT/SIGTERM; returns the process exit code.
pub fn run(_args: Args) -> std::process::ExitCode {
    eprintln!("raft-example node: not built yet");
    std::process::ExitCode::FAILURE
}
