//! Body of the `simulation` fuzz target (`fuzz/fuzz_targets/simulation.rs`): the whole
//! simulation, with the fuzzer's bytes as its source of decisions. It lives here, in the
//! library, so the same code runs under `cargo fuzz` and as an ordinary test over the
//! committed corpus on stable (`tests/fuzz_corpus.rs`), like raft-core's targets
//! (`raft_core::fuzzing`).
//!
//! The bytes replace the seed: [`SimRng::from_bytes`] reads them as the run's first random
//! words, then falls back to a ChaCha stream seeded from their hash. The first words draw the
//! swarm options (the same [`crate::options::Options::draw`] a seed uses), the next ones the
//! clock drifts, the first client choices, network delays, losses and faults, so the fuzzer
//! steers what a run is made of and how it starts; coverage of raft-core and of the simulator
//! tells it which choices are new. The nodes' election-timer seeds are the exception: they
//! come from the fallback stream ([`SimRng::next_seed`]), since timers the input made equal
//! would split every vote forever without any bug.
//!
//! A run is short, so an input costs milliseconds rather than a seed's tens:
//! 1. the drawn safety phase (8–16 s) is divided by [`SAFETY_PHASE_DIVISOR`], and the liveness
//!    phase after it keeps its bounds (a leader within 50 election timeouts, convergence
//!    within 100, a hard end 10 timeouts later; see [`crate::world`]);
//! 2. at most [`EVENTS_MAX`] events run; a run cut there still gets the end-of-run checks,
//!    which hold at any instant (pending operations are open in the history).
//!
//! Every checker of a seeded run applies, so [`simulation`] panics, with the property, its
//! detail and the options, iff the run broke one (a raft-core panic included). It never hangs:
//! simulated time and events are both bounded, and the random words never become constant.
//! The liveness bounds are probabilistic (a false alarm about once in 10^4 runs of the worst
//! options, see [`crate::world::LIVENESS_ELECTION_TIMEOUTS_MAX`]), so a liveness failure in a
//! long campaign deserves a look at its trace ([`simulate`] with `Settings::trace`) before
//! it is called a bug.

use crate::options::Options;
use crate::rng::SimRng;
use crate::world::{self, World};
use crate::{Profile, RunReport, Settings};

/// The drawn safety phase is divided by this: 0.5–1 s of faults instead of 8–16 s.
pub const SAFETY_PHASE_DIVISOR: u64 = 16;

/// A run stops after this many events (a calm seed runs about 2,000 per simulated second).
pub const EVENTS_MAX: u64 = 50_000;

/// The fuzz target: runs the simulation `data` describes and panics if a property broke.
///
/// # Panics
/// With the failure text, if a checker reported a violation.
pub fn simulation(data: &[u8]) {
    let report = simulate(data, &Settings::default());
    if report.violation.is_some() {
        panic!("{}", failure_text(&report, data));
    }
}

/// Runs the simulation `data` describes, with the planted bugs, profile and tracing of
/// `settings`, and reports on it. The report's `seed` is the input's fallback seed
/// ([`SimRng::fallback_seed`]); it names the stream after the input, not the run.
pub fn simulate(data: &[u8], settings: &Settings) -> RunReport {
    let mut rng = SimRng::from_bytes(data);
    let mut options = crate::draw_options(&mut rng, settings);
    shorten(&mut options);
    let mut w = World::new(options.clone(), rng, settings.trace);
    w.events_max = EVENTS_MAX;
    crate::run_world(SimRng::fallback_seed(data), options, settings.profile, w)
}

/// A readable failure report for a byte-driven run: property, detail, options, and how to
/// replay the input (a seed's replay command does not apply).
pub fn failure_text(report: &RunReport, data: &[u8]) -> String {
    let Some(v) = &report.violation else {
        return format!("input of {} bytes passed", data.len());
    };
    let profile = match report.profile {
        Profile::Swarm => String::new(),
        p => format!(" (profile {})", p.flag().unwrap_or("?")),
    };
    format!(
        "FAILED: {} (fuzz input of {} bytes{profile}, at {}, after {} events)\n  {}\noptions:\n{}\n\
         replay: save the input as fuzz/corpus/simulation/regression-<name> and run \
         `cargo test -p raft-sim --test fuzz_corpus`, or `cargo fuzz run -s none simulation FILE` \
         in fuzz/",
        v.property,
        data.len(),
        world::ms(v.at_us),
        report.events,
        v.detail,
        report.options,
    )
}

/// The fuzz run's bounds on top of the drawn options (see the module docs).
fn shorten(options: &mut Options) {
    options.safety_us /= SAFETY_PHASE_DIVISOR;
    assert!(options.safety_us > 0, "a fuzz run has a safety phase");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(data: &[u8]) -> (u64, u64, u64, u64) {
        let r = simulate(data, &Settings::default());
        assert!(r.violation.is_none(), "{}", failure_text(&r, data));
        (r.trace_hash, r.events, r.sim_us, r.committed)
    }

    #[test]
    fn same_bytes_run_the_same_events() {
        for data in [
            &b""[..],
            b"\x00\x01\x02",
            b"a longer input that draws the options",
        ] {
            assert_eq!(summary(data), summary(data), "{data:?}");
        }
    }

    #[test]
    fn different_bytes_run_different_simulations() {
        assert_ne!(summary(b"one"), summary(b"two"));
    }

    /// Constant inputs (the fuzzer's first guesses) draw every choice at an extreme and must
    /// still end, within the bounds, without a violation.
    #[test]
    fn constant_inputs_end_within_the_bounds() {
        for byte in [0x00, 0xff, 0x80] {
            let data = vec![byte; 1024];
            let r = simulate(&data, &Settings::default());
            assert!(r.violation.is_none(), "{}", failure_text(&r, &data));
            assert!(r.events <= EVENTS_MAX, "{} events", r.events);
        }
    }

    #[test]
    fn the_safety_phase_is_short() {
        let r = simulate(b"short", &Settings::default());
        assert!(r.options.safety_us <= 16_000_000 / SAFETY_PHASE_DIVISOR);
    }
}
