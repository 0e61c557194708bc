//! A run as data: its schedule, the decisions it took from its random stream.
//!
//! A seed's run is a function of its options and of the words it draws from [`SimRng`] in
//! event order (delays, losses, fault choices, client choices, election-timer seeds). A
//! [`Schedule`] is exactly that: the options, written out field by field, and the list of
//! words the run drew, recorded by the stream's tape mode ([`SimRng::start_tape`]). Replaying
//! a schedule ([`replay`]) feeds the words back in the same order, so the run is the recorded
//! one bit for bit: same events, same trace hash, same violation.
//!
//! Why the random words, not a higher-level list of events (deliveries, drops, crashes,
//! ticks): the simulator makes every decision through the stream, so recording it needs no
//! change to the event loop, the nodes or the checkers (a recording run is the seed's run,
//! golden traces unchanged), and every edit of the list is still a legal run: a word means
//! "whatever the next decision is", so a shrinker may delete, truncate or overwrite words
//! freely and the simulator stays consistent (no delivery of a message that was never sent,
//! no restart of a node that is up). An event list would have to be re-validated against the
//! state after each edit and would need the event loop to take its decisions from the list.
//! The price is that an edit also changes the meaning of the words after it; the shrinker
//! ([`crate::shrink`]) accepts an edit only if the run still breaks the same property, so it
//! pays for that in runs, not in correctness. Once the list is used up, words come from a
//! ChaCha stream seeded with the schedule's `fallback` seed, so any list is a complete run.
//!
//! The file is text, one item per line (`#` starts a comment):
//!
//! ```text
//! raft-sim schedule 1
//! seed 7
//! profile swarm
//! option nodes 3
//! option safety_us 9000000
//! ...                                     every field of Options, once
//! fallback 7
//! events_max 40                           optional: the run stops after 40 events
//! expect events 111
//! expect trace_hash 599fb7c465249863
//! expect violation durable before send
//! words 153
//! w 9f3a0c1e00000000 ...                  the words in hex, up to 8 per line
//! ```
//!
//! Invariants:
//! 1. Recording does not change a run: a recorded seed has the trace hash of the seed run
//!    without a tape (`recording_does_not_change_the_run`).
//! 2. `replay(record(s))` is the recorded run (`a_recorded_run_replays_bit_for_bit`).
//! 3. Parsing never panics: a bad file is a [`ParseError`] naming the line.

use crate::options::{Options, PlantedBugs, ReadMode};
use crate::rng::SimRng;
use crate::world::World;
use crate::{Profile, RunReport, Settings};
use std::fmt::{self, Write as _};

/// A run as data: options, and the words of its random stream after the options draw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The seed it came from (reported; the words decide the run).
    pub seed: u64,
    /// The profile the options were drawn with (reported).
    pub profile: Profile,
    /// The run's options, planted bugs included.
    pub options: Options,
    /// The words the run draws, in order.
    pub words: Vec<u64>,
    /// Seed of the stream that follows the words once they are used up.
    pub fallback: u64,
    /// The run stops after this many events, if set (the shrinker's "shorter run"); the
    /// end-of-run checks still run, and hold at any instant (pending operations are open).
    pub events_max: Option<u64>,
    /// What the recorded run did, if known: checked by `replay`.
    pub expect: Option<Expect>,
}

/// What a recorded run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    /// Events processed.
    pub events: u64,
    /// Trace hash.
    pub trace_hash: u64,
    /// The property broken (its display name), if any.
    pub violation: Option<String>,
}

impl Expect {
    /// What `report` says a run did.
    pub fn of(report: &RunReport) -> Expect {
        Expect {
            events: report.events,
            trace_hash: report.trace_hash,
            violation: report.violation.as_ref().map(|v| v.property.to_string()),
        }
    }
}

/// Runs seed `seed` with `settings`, recording its schedule. The run is the seed's run
/// ([`crate::run`]) bit for bit.
pub fn record(seed: u64, settings: &Settings) -> (RunReport, Schedule) {
    let mut rng = SimRng::new(seed);
    let options = crate::draw_options(&mut rng, settings);
    rng.start_tape();
    let (report, words) = run_tape(seed, settings.profile, &options, rng, settings.trace, None);
    let schedule = Schedule {
        seed,
        profile: settings.profile,
        options,
        words,
        fallback: seed,
        events_max: None,
        expect: Some(Expect::of(&report)),
    };
    (report, schedule)
}

/// Runs `options` on the plain stream of `stream_seed` (no options draw), stopping after
/// `events_max` events if given, recording the schedule: how the shrinker tries simpler
/// options on fresh streams.
pub fn record_with(
    seed: u64,
    profile: Profile,
    options: &Options,
    stream_seed: u64,
    events_max: Option<u64>,
) -> (RunReport, Schedule) {
    let mut rng = SimRng::new(stream_seed);
    rng.start_tape();
    let (report, words) = run_tape(seed, profile, options, rng, false, events_max);
    let schedule = Schedule {
        seed,
        profile,
        options: options.clone(),
        words,
        fallback: stream_seed,
        events_max,
        expect: Some(Expect::of(&report)),
    };
    (report, schedule)
}

/// Replays `schedule`; returns the report and the words the run drew (the schedule's words
/// it used, then any it drew from the fallback stream).
///
/// # Panics
/// If the options are invalid ([`validate`] them first; [`Schedule::parse`] does).
pub fn replay(schedule: &Schedule, trace: bool) -> (RunReport, Vec<u64>) {
    let rng = SimRng::from_tape(schedule.words.clone(), schedule.fallback);
    run_tape(
        schedule.seed,
        schedule.profile,
        &schedule.options,
        rng,
        trace,
        schedule.events_max,
    )
}

fn run_tape(
    seed: u64,
    profile: Profile,
    options: &Options,
    rng: SimRng,
    trace: bool,
    events_max: Option<u64>,
) -> (RunReport, Vec<u64>) {
    let mut w = World::new(options.clone(), rng, trace);
    if let Some(m) = events_max {
        w.events_max = m;
    }
    let report = crate::run_world_in_place(seed, options.clone(), profile, &mut w);
    let words = w.rng.take_tape_log();
    (report, words)
}

/// Why options cannot run (the conditions of `Options::check`, as an error instead of a
/// panic, plus bounds that keep a run from a file finite).
pub fn validate(o: &Options) -> Result<(), String> {
    let fail = |what: &str| Err(what.to_string());
    if !((3..=7).contains(&o.nodes) && o.nodes % 2 == 1) {
        return fail("nodes must be odd, 3..=7");
    }
    if o.liveness_out > (o.nodes - 1) / 2 {
        return fail("liveness_out must leave a quorum: at most (nodes - 1) / 2");
    }
    if o.nemesis_gap_min_us > o.nemesis_gap_max_us || o.think_min_us > o.think_max_us {
        return fail("a _min option exceeds its _max");
    }
    if o.clients < 1 || o.keys < 1 || o.net_link_capacity_max < 1 {
        return fail("clients, keys and net_link_capacity_max must be at least 1");
    }
    if o.reads == ReadMode::Lease
        && (!o.check_quorum
            || !o.pause_catch_up
            || (o.clock_drift_ppm > crate::options::LEASE_DRIFT_PPM_MAX
                && o.leader_clock_slowdown == 1))
    {
        return fail(
            "lease reads need check_quorum, pause_catch_up and drift within the lease bound",
        );
    }
    if o.spare_nodes > 3 || o.leader_clock_slowdown < 1 {
        return fail("spare_nodes must be at most 3 and leader_clock_slowdown at least 1");
    }
    if o.spare_nodes > 0 && o.membership_gap_max_us == 0 {
        return fail("spare_nodes need the membership agent");
    }
    if o.promotion_crash && o.membership_gap_max_us == 0 {
        return fail("promotion_crash needs the membership agent");
    }
    // A run from a file must end: the liveness phase bounds it after the safety phase.
    if o.safety_us == 0 || o.safety_us > 3_600_000_000 {
        return fail("safety_us must be in 1..=3600000000 (an hour)");
    }
    if o.clients > 64 || o.inflight_msgs_max == 0 || o.net_link_capacity_max > 1 << 20 {
        return fail(
            "clients at most 64, inflight_msgs_max at least 1, link capacity at most 2^20",
        );
    }
    // Zero gaps would let events repeat at one instant for ever (a client retrying with a
    // zero timeout, a tick of zero length), and time would never reach the run's end.
    if o.client_timeout_us < 1_000
        || o.nemesis_gap_min_us < 1_000
        || o.fault_duration_max_us < 1_000
    {
        return fail(
            "client_timeout_us, nemesis_gap_min_us and fault_duration_max_us must be at least 1000",
        );
    }
    if o.clock_drift_ppm > 500_000 {
        return fail("clock_drift_ppm must be at most 500000 (a tick must take time)");
    }
    let ppms = [
        o.net_loss_ppm,
        o.net_dup_ppm,
        o.net_replay_ppm,
        o.net_wire_roundtrip_ppm,
        o.fsync_stall_ppm,
        o.client_loss_ppm,
    ];
    if ppms.iter().any(|&p| p > crate::rng::PPM) {
        return fail("a _ppm option exceeds 1000000");
    }
    if o.net_loss_ppm == crate::rng::PPM || o.client_loss_ppm == crate::rng::PPM {
        return fail("a loss of 1000000 ppm loses everything, for ever");
    }
    Ok(())
}

/// A schedule file that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number (0: the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "schedule: {}", self.what)
        } else {
            write!(f, "schedule line {}: {}", self.line, self.what)
        }
    }
}

impl std::error::Error for ParseError {}

const MAGIC: &str = "raft-sim schedule 1";
/// A file may hold at most this many words (a seed's whole run draws a few hundred thousand).
const WORDS_MAX: usize = 50_000_000;

impl Schedule {
    /// The file text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{MAGIC}");
        let _ = writeln!(s, "# replay: raft-sim replay FILE [--trace T] [--html H]");
        let _ = writeln!(s, "seed {}", self.seed);
        let _ = writeln!(s, "profile {}", self.profile.flag().unwrap_or("swarm"));
        write_options(&self.options, &mut s);
        let _ = writeln!(s, "fallback {}", self.fallback);
        if let Some(m) = self.events_max {
            let _ = writeln!(s, "events_max {m}");
        }
        if let Some(e) = &self.expect {
            let _ = writeln!(s, "expect events {}", e.events);
            let _ = writeln!(s, "expect trace_hash {:016x}", e.trace_hash);
            let _ = writeln!(
                s,
                "expect violation {}",
                e.violation.as_deref().unwrap_or("none")
            );
        }
        let _ = writeln!(s, "words {}", self.words.len());
        for chunk in self.words.chunks(8) {
            s.push('w');
            for w in chunk {
                let _ = write!(s, " {w:016x}");
            }
            s.push('\n');
        }
        s
    }

    /// Parses a schedule file.
    ///
    /// # Errors
    /// A [`ParseError`] naming the first bad line: unknown keys or options, bad numbers, a
    /// missing option, a word count that does not match, options that cannot run.
    pub fn parse(text: &str) -> Result<Schedule, ParseError> {
        let err = |line: usize, what: String| ParseError { line, what };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
        match lines.find(|(_, l)| !l.is_empty() && !l.starts_with('#')) {
            Some((_, l)) if l == MAGIC => {}
            _ => {
                return Err(err(
                    1,
                    format!("not a schedule (first line must be `{MAGIC}`)"),
                ));
            }
        }
        let mut options = Options::draw(&mut SimRng::new(0));
        let mut seen: Vec<&'static str> = Vec::new();
        let (mut seed, mut profile, mut fallback, mut count) = (None, None, None, None);
        let mut events_max = None;
        let (mut events, mut hash, mut violation) = (None, None, None);
        let mut words = Vec::new();
        for (n, line) in lines {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            let rest = rest.trim();
            match key {
                "seed" => seed = Some(num(rest).map_err(|e| err(n, e))?),
                "fallback" => fallback = Some(num(rest).map_err(|e| err(n, e))?),
                "events_max" => {
                    let m = num(rest).map_err(|e| err(n, e))?;
                    if m == 0 {
                        return Err(err(n, "events_max must be at least 1".into()));
                    }
                    events_max = Some(m);
                }
                "profile" => profile = Some(parse_profile(rest).map_err(|e| err(n, e))?),
                "option" => {
                    let (name, value) = rest
                        .split_once(' ')
                        .ok_or_else(|| err(n, "option needs a name and a value".into()))?;
                    let name =
                        set_option(&mut options, name, value.trim()).map_err(|e| err(n, e))?;
                    if seen.contains(&name) {
                        return Err(err(n, format!("option {name} given twice")));
                    }
                    seen.push(name);
                }
                "expect" => {
                    let (what, value) = rest.split_once(' ').unwrap_or((rest, ""));
                    match what {
                        "events" => events = Some(num(value).map_err(|e| err(n, e))?),
                        "trace_hash" => {
                            hash = Some(
                                u64::from_str_radix(value, 16)
                                    .map_err(|e| err(n, format!("trace_hash {value:?}: {e}")))?,
                            );
                        }
                        "violation" => {
                            violation = Some((value != "none").then(|| value.to_string()));
                        }
                        _ => return Err(err(n, format!("unknown expectation {what:?}"))),
                    }
                }
                "words" => {
                    let c: u64 = num(rest).map_err(|e| err(n, e))?;
                    if c > WORDS_MAX as u64 {
                        return Err(err(n, format!("more than {WORDS_MAX} words")));
                    }
                    count = Some(c as usize);
                }
                "w" => {
                    for x in rest.split_whitespace() {
                        let w = u64::from_str_radix(x, 16)
                            .map_err(|e| err(n, format!("word {x:?}: {e}")))?;
                        if words.len() >= WORDS_MAX {
                            return Err(err(n, format!("more than {WORDS_MAX} words")));
                        }
                        words.push(w);
                    }
                }
                _ => return Err(err(n, format!("unknown key {key:?}"))),
            }
        }
        let missing = |what: &str| err(0, format!("missing `{what}`"));
        let all = option_names();
        if let Some(name) = all.iter().find(|f| !seen.contains(f)) {
            return Err(missing(&format!("option {name}")));
        }
        let count = count.ok_or_else(|| missing("words"))?;
        if count != words.len() {
            return Err(err(
                0,
                format!("`words {count}` but {} words follow", words.len()),
            ));
        }
        validate(&options).map_err(|e| err(0, format!("options cannot run: {e}")))?;
        let expect = match (events, hash, violation) {
            (None, None, None) => None,
            (Some(events), Some(trace_hash), Some(violation)) => Some(Expect {
                events,
                trace_hash,
                violation,
            }),
            _ => {
                return Err(err(
                    0,
                    "`expect` needs events, trace_hash and violation".into(),
                ));
            }
        };
        Ok(Schedule {
            seed: seed.ok_or_else(|| missing("seed"))?,
            profile: profile.ok_or_else(|| missing("profile"))?,
            options,
            words,
            fallback: fallback.ok_or_else(|| missing("fallback"))?,
            events_max,
            expect,
        })
    }
}

fn num(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|e| format!("{s:?} is not a number: {e}"))
}

fn parse_profile(s: &str) -> Result<Profile, String> {
    [
        Profile::Swarm,
        Profile::Churn,
        Profile::Lease,
        Profile::LeaseSkew,
        Profile::Agents,
    ]
    .into_iter()
    .find(|p| p.flag().unwrap_or("swarm") == s)
    .ok_or_else(|| format!("unknown profile {s:?}"))
}

/// An option's value in a schedule file.
trait Field: Sized {
    fn put(&self) -> String;
    fn get(s: &str) -> Result<Self, String>;
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            fn put(&self) -> String {
                self.to_string()
            }
            fn get(s: &str) -> Result<Self, String> {
                s.parse::<$t>().map_err(|e| format!("{s:?}: {e}"))
            }
        }
    )*};
}
int_field!(u64, u32, u8, usize);

impl Field for bool {
    fn put(&self) -> String {
        self.to_string()
    }
    fn get(s: &str) -> Result<Self, String> {
        match s {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("{s:?} is not true or false")),
        }
    }
}

impl Field for ReadMode {
    fn put(&self) -> String {
        match self {
            ReadMode::Log => "log",
            ReadMode::ReadIndex => "read-index",
            ReadMode::Lease => "lease",
        }
        .into()
    }
    fn get(s: &str) -> Result<Self, String> {
        match s {
            "log" => Ok(ReadMode::Log),
            "read-index" => Ok(ReadMode::ReadIndex),
            "lease" => Ok(ReadMode::Lease),
            _ => Err(format!("{s:?} is not log, read-index or lease")),
        }
    }
}

impl Field for PlantedBugs {
    fn put(&self) -> String {
        let flags = Options {
            bugs: *self,
            ..Options::draw(&mut SimRng::new(0))
        }
        .bug_flags()
        .replace(" --bug ", ",");
        match flags.strip_prefix(',') {
            Some(list) => list.to_string(),
            None => "none".into(),
        }
    }
    fn get(s: &str) -> Result<Self, String> {
        let mut b = PlantedBugs::default();
        if s == "none" {
            return Ok(b);
        }
        for name in s.split(',') {
            match name {
                "ack-before-durable" => b.ack_before_durable = true,
                "commit-previous-term" => b.commit_previous_term = true,
                "skip-durable-before-send-check" => b.skip_durable_before_send_check = true,
                "read-before-apply" => b.read_before_apply = true,
                "conf-state-ahead-of-snapshot" => b.conf_state_ahead_of_snapshot = true,
                _ => return Err(format!("unknown planted bug {name:?}")),
            }
        }
        Ok(b)
    }
}

/// Writes and reads every field of `Options`; the destructuring without `..` makes a new
/// field a compile error here until it is listed.
macro_rules! option_fields {
    ($($f:ident),* $(,)?) => {
        fn write_options(o: &Options, out: &mut String) {
            let Options { $($f),* } = o;
            $( let _ = writeln!(out, "option {} {}", stringify!($f), Field::put($f)); )*
        }

        /// Sets option `name` from `value`; returns the option's name.
        fn set_option(o: &mut Options, name: &str, value: &str) -> Result<&'static str, String> {
            match name {
                $( stringify!($f) => {
                    o.$f = Field::get(value).map_err(|e| format!("option {name}: {e}"))?;
                    Ok(stringify!($f))
                } )*
                _ => Err(format!("unknown option {name:?}")),
            }
        }

        fn option_names() -> &'static [&'static str] {
            &[$(stringify!($f)),*]
        }
    };
}

option_fields!(
    nodes,
    safety_us,
    pre_vote,
    check_quorum,
    proposal_forwarding,
    msg_bytes_max,
    inflight_msgs_max,
    uncommitted_bytes_max,
    step_down_on_removal,
    net_delay_min_us,
    net_delay_jitter_us,
    net_slow_link_us,
    net_loss_ppm,
    net_dup_ppm,
    net_replay_ppm,
    net_reorder,
    net_link_capacity_max,
    net_wire_roundtrip_ppm,
    report_unreachable,
    partitions,
    clogging,
    crashes,
    pauses,
    pause_catch_up,
    nemesis_gap_min_us,
    nemesis_gap_max_us,
    fault_duration_max_us,
    fsync_min_us,
    fsync_jitter_us,
    fsync_stall_ppm,
    fsync_stall_max_us,
    torn_writes,
    clock_drift_ppm,
    clients,
    keys,
    think_min_us,
    think_max_us,
    client_timeout_us,
    client_loss_ppm,
    liveness_out,
    compact_every_entries,
    compact_keep_entries,
    transfer_gap_max_us,
    membership_gap_max_us,
    promotion_crash,
    spare_nodes,
    reads,
    isolate_leader_weight,
    leader_clock_slowdown,
    bugs,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_does_not_change_the_run() {
        for seed in 0..4 {
            let plain = crate::run(seed, &Settings::default());
            let (taped, schedule) = record(seed, &Settings::default());
            assert_eq!(plain.trace_hash, taped.trace_hash, "seed {seed}");
            assert_eq!(plain.events, taped.events, "seed {seed}");
            assert!(!schedule.words.is_empty());
        }
    }

    #[test]
    fn a_schedule_file_round_trips() {
        let (_, s) = record(3, &Settings::default());
        let text = s.to_text();
        assert_eq!(Schedule::parse(&text), Ok(s));
    }

    #[test]
    fn bad_files_are_errors_naming_the_line() {
        let (_, s) = record(3, &Settings::default());
        let text = s.to_text();
        assert!(Schedule::parse("hello").is_err());
        let bad = text
            .replace("option nodes 5", "option nodes 4")
            .replace("option nodes 3", "option nodes 4")
            .replace("option nodes 7", "option nodes 4");
        let e = Schedule::parse(&bad).expect_err("4 nodes cannot run");
        assert!(e.what.contains("nodes"), "{e}");
        let bad = text.replacen(
            "option client_timeout_us ",
            "option client_timeout_us 0\n# ",
            1,
        );
        let e = Schedule::parse(&bad).expect_err("a zero client timeout would never end");
        assert!(e.what.contains("client_timeout_us"), "{e}");
        let bad = text.replacen("\nw ", "\nw zz ", 1);
        let e = Schedule::parse(&bad).expect_err("a bad word");
        assert!(e.line > 0 && e.what.contains("zz"), "{e}");
        let bad: String = text
            .lines()
            .filter(|l| !l.starts_with("option keys"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = Schedule::parse(&bad).expect_err("a missing option");
        assert!(e.what.contains("keys"), "{e}");
        let bad = text.replacen("words ", "words 1", 1);
        assert!(
            Schedule::parse(&bad).is_err(),
            "a word count that does not match"
        );
    }
}
