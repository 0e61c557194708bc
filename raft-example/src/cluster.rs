//! (in progress)

/// Arguments of `raft-example cluster` (placeholder until the harness lands).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `raft-example cluster`; returns the process exit code.
pub fn run(_args: Args) -> std::process::ExitCode {
    eprintln!("raft-example cluster: not built yet");
    std::process::ExitCode::FAILURE
}
