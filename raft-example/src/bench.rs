//! (in progress)

/// Arguments of `raft-example bench` (placeholder until the harness lands).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `raft-example bench`; returns the process exit code.
pub fn run(_args: Args) -> std::process::ExitCode {
    eprintln!("raft-example bench: not built yet");
    std::process::ExitCode::FAILURE
}
