//! The `replay` and `shrink` subcommands of `raft-sim` (schedules, issue 15), and `--html`.
//!
//! `shrink` is the second place besides the sweep runner (`raft_sim::sweep`) that reads the
//! wall clock, and for the same reason: only to decide when to stop trying candidates
//! (`--time-limit`) and to report the time taken. The shrinker itself (`raft_sim::shrink`)
//! has no clock; it asks a [`Budget`], which lives here.

use crate::{Bug, ProfileArg, planted};
use clap::Args;
use raft_sim::schedule::{self, Schedule};
use raft_sim::shrink::{self, Budget};
use raft_sim::{RunReport, Settings, html, timeline, world};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// `raft-sim replay FILE`.
#[derive(Args)]
pub(crate) struct ReplayArgs {
    /// The schedule file.
    file: PathBuf,
    /// Write a readable event trace to this file.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Write the run as one self-contained HTML page to this file.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Print the run as a short script (as `shrink` does).
    #[arg(long)]
    script: bool,
}

/// `raft-sim shrink --seed S`.
#[derive(Args)]
pub(crate) struct ShrinkArgs {
    /// The failing seed.
    #[arg(long)]
    seed: u64,
    /// Plant a bug.
    #[arg(long = "bug", value_enum)]
    pub(crate) bugs: Vec<Bug>,
    /// Override some drawn options.
    #[arg(long, value_enum, default_value_t = ProfileArg::Swarm)]
    profile: ProfileArg,
    /// Stop trying candidates after this many wall-clock seconds.
    #[arg(long, default_value_t = 110)]
    time_limit: u64,
    /// Write the shrunk schedule here (default: shrunk-<seed>.schedule).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the shrunk run as an HTML page.
    #[arg(long)]
    html: Option<PathBuf>,
}

/// Writes the HTML page of a traced run.
pub(crate) fn write_html(path: &Path, report: &RunReport, title: &str) -> Result<(), String> {
    std::fs::write(path, html::page(report, title))
        .map_err(|e| format!("cannot write HTML to {}: {e}", path.display()))?;
    println!("html: {}", path.display());
    Ok(())
}

fn outcome_line(r: &RunReport) -> String {
    format!(
        "events={} sim={} trace_hash={:016x} violation={}",
        r.events,
        world::ms(r.sim_us),
        r.trace_hash,
        r.violation
            .as_ref()
            .map_or("none".into(), |v| format!("{} ({})", v.property, v.detail))
    )
}

fn print_script(r: &RunReport) {
    let Some(trace) = &r.trace else { return };
    let items = timeline::parse(trace);
    println!("script ({} steps):", items.len());
    for line in timeline::script(&items, r.violation.as_ref(), 8) {
        println!("  {line}");
    }
}

pub(crate) fn replay(args: &ReplayArgs) -> ExitCode {
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    let s = match Schedule::parse(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    if s.options.bugs.commit_previous_term && !cfg!(feature = "planted-bugs") {
        eprintln!("this schedule plants commit-previous-term: build with --features planted-bugs");
        return ExitCode::from(2);
    }
    let traced = args.trace.is_some() || args.html.is_some() || args.script;
    let (r, _) = schedule::replay(&s, traced);
    println!(
        "schedule {} (seed {}, {} words)\noptions:\n{}",
        args.file.display(),
        s.seed,
        s.words.len(),
        s.options
    );
    println!("{}", outcome_line(&r));
    if let Some(e) = &s.expect {
        let same = e == &schedule::Expect::of(&r);
        println!(
            "matches the recorded run: {}",
            if same { "yes" } else { "NO" }
        );
        if !same {
            println!(
                "recorded: events={} trace_hash={:016x} violation={}",
                e.events,
                e.trace_hash,
                e.violation.as_deref().unwrap_or("none")
            );
            return ExitCode::from(3);
        }
    }
    if let (Some(path), Some(text)) = (&args.trace, &r.trace)
        && let Err(e) = std::fs::write(path, text)
    {
        eprintln!("cannot write trace to {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    if let Some(path) = &args.html
        && let Err(e) = write_html(
            path,
            &r,
            &format!("raft-sim schedule {}", args.file.display()),
        )
    {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    if args.script {
        print_script(&r);
    }
    if r.violation.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Stops at a wall-clock deadline and prints progress.
struct Deadline {
    started: Instant,
    limit: Duration,
}

// The wall clock only decides when to stop trying candidates (see the module docs).
#[allow(clippy::disallowed_methods)]
impl Budget for Deadline {
    fn more(&mut self) -> bool {
        self.started.elapsed() < self.limit
    }
    fn progress(&mut self, line: &str) {
        println!(
            "shrink [{:6.1}s] {line}",
            self.started.elapsed().as_secs_f64()
        );
    }
}

pub(crate) fn shrink(args: &ShrinkArgs) -> ExitCode {
    let settings = Settings {
        trace: false,
        bugs: planted(&args.bugs),
        profile: args.profile.into(),
    };
    shrink_seed(
        args.seed,
        &settings,
        args.time_limit,
        args.out.as_deref(),
        args.html.as_deref(),
    )
}

/// Shrinks seed `seed` under `settings` (also `sweep --shrink`, for its first failure).
#[allow(clippy::disallowed_methods)]
pub(crate) fn shrink_seed(
    seed: u64,
    settings: &Settings,
    time_limit: u64,
    out: Option<&Path>,
    html_out: Option<&Path>,
) -> ExitCode {
    let started = Instant::now();
    let (report, s) = schedule::record(seed, settings);
    let Some(v) = &report.violation else {
        println!("seed {} passes: nothing to shrink", seed);
        return ExitCode::from(2);
    };
    let property = v.property;
    println!(
        "seed {}: {} after {} events; shrinking (time limit {}s)",
        seed, property, report.events, time_limit
    );
    let mut budget = Deadline {
        started,
        limit: Duration::from_secs(time_limit),
    };
    let shrunk = shrink::shrink(s, property, &mut budget);
    let secs = started.elapsed().as_secs_f64();
    let out = out.map_or_else(
        || PathBuf::from(format!("shrunk-{seed}.schedule")),
        Path::to_path_buf,
    );
    if let Err(e) = std::fs::write(&out, shrunk.schedule.to_text()) {
        eprintln!("cannot write {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let (traced, _) = schedule::replay(&shrunk.schedule, true);
    println!(
        "shrunk: events {} -> {} in {secs:.1}s ({} runs); schedule {} ({} words); replay: raft-sim replay {}",
        shrunk.before.events,
        shrunk.after.events,
        shrunk.runs,
        out.display(),
        shrunk.schedule.words.len(),
        out.display()
    );
    println!("options:\n{}", shrunk.schedule.options);
    print_script(&traced);
    if let Some(path) = html_out
        && let Err(e) = write_html(path, &traced, &format!("raft-sim seed {} shrunk", seed))
    {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    ExitCode::FAILURE
}
