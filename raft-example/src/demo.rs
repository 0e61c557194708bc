//! (in progress)

/// Arguments of `raft-example demo` (placeholder until the harness lands).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `raft-example demo`; returns the process exit code.
pub fn run(_args: Args) -> std::process::ExitCode {
    eprintln!("raft-example demo: not built yet");
    std::process::ExitCode::FAILURE
}
