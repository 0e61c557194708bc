//! The simulator's only source of randomness: one ChaCha8 stream per seed, read through
//! integer helpers written here.
//!
//! Every draw in a run (the swarm options, network delays, fsync latencies, fault choices,
//! client choices, the nodes' own election-timer seeds) comes from this stream in event
//! order, so a seed names one run bit for bit.
//!
//! Byte mode ([`SimRng::from_bytes`], for the `simulation` fuzz target, see
//! [`crate::fuzzing`]): the words are read from the fuzzer's input first, eight bytes each,
//! big-endian (so the first byte of a word decides a small choice, and a short last chunk is
//! padded with low zero bytes); once the input is used up, the words come from a ChaCha8
//! stream seeded with a hash of the input. The fuzzer then steers the options and the first
//! events of a run, and the rest of the run still sees varied, never constant, words.
//!
//! Tape mode ([`SimRng::start_tape`], [`SimRng::from_tape`], for schedules, see
//! [`crate::schedule`]): every word drawn (by `next_u64` and `next_seed` alike) is logged, and
//! the words may come from a list first: a recorded list replays the run that drew it, and
//! an edited one (the shrinker's) runs a neighbouring run. Once the list is used up, the
//! words come from the ChaCha stream the tape was started on. Unlike byte mode, seeds of
//! other generators are words of the list too, since a recorded run must replay bit for bit.
//!
//! Invariants:
//! 1. Only `next_u64` and `next_seed` touch the generator; ranges, ratios, picks and shuffles
//!    are built on `next_u64` here, with rejection sampling, so an upgrade of `rand_*` that
//!    changes their helper algorithms cannot change what a seed means. (A change of the ChaCha stream itself would;
//!    `golden_stream_for_seed_42` pins it.)
//! 2. No helper draws a variable number of words except `below`'s rejection loop, whose
//!    rejection probability is below 2^-32 for the bounds the simulator uses. In byte mode the
//!    input may force rejections, but each consumes input, and the stream after it is a ChaCha
//!    stream, not a constant one that could reject forever.
//! 3. Seeded mode reads nothing but its ChaCha stream: byte mode is a separate constructor,
//!    and a seed's words are the same as before byte mode existed (`next_seed` included).
//! 4. In byte mode, seeds of other generators (`next_seed`) come from the fallback stream
//!    only, so two nodes never share an election-timer seed however the input is chosen.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// A seeded random stream with integer helpers.
#[derive(Clone, Debug)]
pub struct SimRng {
    inner: ChaCha8Rng,
    /// Byte mode: the part of the input not read yet. `Some` only while bytes remain, so the
    /// seeded mode and an exhausted input pay one untaken branch per word. Tape mode: the
    /// tape, for the whole run.
    script: Option<Script>,
}

/// The unread input of byte mode, or the tape of tape mode.
#[derive(Clone, Debug)]
enum Script {
    Bytes { data: Box<[u8]>, pos: usize },
    Tape(Box<Tape>),
}

/// Tape mode's words: the list to read first, and the log of every word drawn.
#[derive(Clone, Debug, Default)]
struct Tape {
    words: Vec<u64>,
    pos: usize,
    log: Vec<u64>,
}

/// Parts per million: the unit of every probability in the options.
pub const PPM: u32 = 1_000_000;

impl SimRng {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> SimRng {
        SimRng {
            inner: ChaCha8Rng::seed_from_u64(seed),
            script: None,
        }
    }

    /// Byte mode: the words of `data` (eight bytes each, big-endian, the last chunk padded
    /// with zeros), then the ChaCha8 stream of [`SimRng::fallback_seed`]`(data)`.
    pub fn from_bytes(data: &[u8]) -> SimRng {
        SimRng {
            inner: ChaCha8Rng::seed_from_u64(SimRng::fallback_seed(data)),
            script: (!data.is_empty()).then(|| Script::Bytes {
                data: data.into(),
                pos: 0,
            }),
        }
    }

    /// The seed of the stream byte mode falls back to once `data` is used up: FNV-1a of the
    /// bytes, so inputs that differ anywhere (trailing zeros included) go on differently.
    pub fn fallback_seed(data: &[u8]) -> u64 {
        data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    /// Input bytes byte mode has not read yet (0 in seeded mode).
    pub fn bytes_left(&self) -> usize {
        match &self.script {
            Some(Script::Bytes { data, pos }) => data.len() - pos,
            _ => 0,
        }
    }

    /// Tape mode from here on: every later word is logged; the stream goes on as before (a
    /// seeded stream started on a tape draws the same words as without it).
    pub fn start_tape(&mut self) {
        assert!(self.script.is_none(), "a tape starts on a plain stream");
        self.script = Some(Script::Tape(Box::default()));
    }

    /// Tape mode reading `words` first, then the ChaCha8 stream of `fallback_seed`.
    pub fn from_tape(words: Vec<u64>, fallback_seed: u64) -> SimRng {
        SimRng {
            inner: ChaCha8Rng::seed_from_u64(fallback_seed),
            script: Some(Script::Tape(Box::new(Tape {
                words,
                pos: 0,
                log: Vec::new(),
            }))),
        }
    }

    /// Tape mode: the words drawn so far (the list's and the fallback's), taken out of the log.
    /// Empty in the other modes.
    pub fn take_tape_log(&mut self) -> Vec<u64> {
        match &mut self.script {
            Some(Script::Tape(t)) => std::mem::take(&mut t.log),
            _ => Vec::new(),
        }
    }

    /// The next raw 64-bit word.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        if self.script.is_some() {
            return self.next_scripted();
        }
        self.inner.next_u64()
    }

    /// The next word of tape mode: from the list while it lasts, then the stream; logged.
    fn next_taped(inner: &mut ChaCha8Rng, t: &mut Tape) -> u64 {
        let w = match t.words.get(t.pos) {
            Some(&w) => {
                t.pos += 1;
                w
            }
            None => inner.next_u64(),
        };
        t.log.push(w);
        w
    }

    /// A seed for another generator (a node's election timer). In seeded mode this is the next
    /// word, as `next_u64` would give. In byte mode it comes from the fallback stream, never
    /// from the input: Raft's liveness rests on the nodes' timeouts being independent, and an
    /// input that gives two nodes one seed makes them time out together and split every vote
    /// forever, which is no bug (the fuzz regression `regression-equal-timer-seeds`).
    pub fn next_seed(&mut self) -> u64 {
        if let Some(Script::Tape(t)) = &mut self.script {
            return SimRng::next_taped(&mut self.inner, t);
        }
        self.inner.next_u64()
    }

    /// The next word of byte mode's input (dropping the script once it is used up), or of
    /// tape mode.
    fn next_scripted(&mut self) -> u64 {
        let (data, pos) = match self.script.as_mut() {
            Some(Script::Bytes { data, pos }) => (data, pos),
            Some(Script::Tape(t)) => return SimRng::next_taped(&mut self.inner, t),
            None => unreachable!("next_scripted is called in byte or tape mode only"),
        };
        let rest = &data[*pos..];
        assert!(!rest.is_empty(), "a script is dropped once it is used up");
        let n = rest.len().min(8);
        let mut word = [0u8; 8];
        word[..n].copy_from_slice(&rest[..n]);
        *pos += n;
        if *pos == data.len() {
            self.script = None;
        }
        u64::from_be_bytes(word)
    }

    /// Uniform in `[0, n)`.
    ///
    /// # Panics
    /// If `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no value");
        // Lemire's multiply-and-shift with rejection ("Fast random integer generation in an
        // interval", 2019): the high word of x·n is uniform in [0, n) once the low word's
        // biased zone (below 2^64 mod n) is rejected. One division only on a rare path.
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// Uniform in `[lo, hi]` (both inclusive).
    ///
    /// # Panics
    /// If `lo > hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "range({lo}, {hi}) is empty");
        if lo == 0 && hi == u64::MAX {
            return self.next_u64();
        }
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den`.
    ///
    /// # Panics
    /// If `den == 0`.
    pub fn ratio(&mut self, num: u64, den: u64) -> bool {
        assert!(den > 0, "ratio with a zero denominator");
        if num == 0 {
            // Draw anyway: whether a fault is off must not shift the stream of later draws.
            self.next_u64();
            return false;
        }
        self.below(den) < num
    }

    /// True with probability `ppm` parts per million.
    pub fn chance(&mut self, ppm: u32) -> bool {
        self.ratio(u64::from(ppm), u64::from(PPM))
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    /// A uniformly chosen index into a slice of `len` elements.
    ///
    /// # Panics
    /// If `len == 0`.
    pub fn index(&mut self, len: usize) -> usize {
        // A slice length fits in u64 and the result is below it.
        usize::try_from(self.below(len as u64)).expect("index below a usize length")
    }

    /// A uniformly chosen element.
    ///
    /// # Panics
    /// If `xs` is empty.
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.index(xs.len())]
    }

    /// Shuffles `xs` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.index(i + 1);
            xs.swap(i, j);
        }
    }

    /// Picks an index with probability proportional to its weight.
    ///
    /// # Panics
    /// If all weights are zero.
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        assert!(total > 0, "weighted choice among zero weights");
        let mut x = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        unreachable!("x < total = sum of weights")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the ChaCha8 stream: if this changes, every seed means something else and every
    /// golden trace changes with it.
    #[test]
    fn golden_stream_for_seed_42() {
        let mut r = SimRng::new(42);
        assert_eq!(r.next_u64(), GOLDEN_FIRST_WORD_SEED_42);
        let mut r = SimRng::new(42);
        let drawn: Vec<u64> = (0..8).map(|_| r.range(1, 6)).collect();
        assert_eq!(drawn, GOLDEN_DICE_SEED_42);
    }

    const GOLDEN_FIRST_WORD_SEED_42: u64 = 12_578_764_544_318_200_737;
    const GOLDEN_DICE_SEED_42: [u64; 8] = [5, 6, 3, 4, 2, 1, 2, 5];

    #[test]
    fn below_stays_in_range_and_hits_every_value() {
        let mut r = SimRng::new(7);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            let x = r.below(7);
            seen[x as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
    }

    #[test]
    fn ratio_extremes_are_exact() {
        let mut r = SimRng::new(1);
        assert!((0..100).all(|_| !r.ratio(0, 10)));
        assert!((0..100).all(|_| r.ratio(10, 10)));
        assert!(r.range(5, 5) == 5);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut r = SimRng::new(3);
        let mut xs: Vec<u32> = (0..20).collect();
        r.shuffle(&mut xs);
        let mut sorted = xs.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn byte_mode_reads_the_input_big_endian_then_falls_back() {
        let mut r = SimRng::from_bytes(&[1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xee]);
        assert_eq!(r.next_u64(), 0x0102_0304_0506_0708);
        assert_eq!(r.bytes_left(), 2);
        assert_eq!(
            r.next_u64(),
            0xffee_0000_0000_0000,
            "a short chunk is padded low"
        );
        assert_eq!(r.bytes_left(), 0);
        let mut fallback =
            SimRng::new(SimRng::fallback_seed(&[1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xee]));
        let after: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        let want: Vec<u64> = (0..4).map(|_| fallback.next_u64()).collect();
        assert_eq!(after, want);
    }

    #[test]
    fn byte_mode_is_deterministic_and_depends_on_every_byte() {
        let draw = |data: &[u8]| {
            let mut r = SimRng::from_bytes(data);
            (0..40).map(|_| r.range(0, 1000)).collect::<Vec<_>>()
        };
        assert_eq!(draw(b"raft"), draw(b"raft"));
        assert_ne!(
            draw(b"raft"),
            draw(b"raft\0"),
            "trailing zeros change the fallback"
        );
        assert_ne!(draw(b""), draw(b"\0"));
    }

    /// A constant input must not make `below`'s rejection loop spin: zeros are rejected by
    /// every bound that is not a power of two, and the fallback stream ends the run of them.
    #[test]
    fn exhausted_or_constant_input_never_spins() {
        let mut r = SimRng::from_bytes(&[0; 64]);
        for _ in 0..1000 {
            assert!(r.below(1_000_000) < 1_000_000);
            assert!(r.below(3) < 3);
        }
        let mut r = SimRng::from_bytes(&[]);
        assert_eq!(r.bytes_left(), 0);
        let words: Vec<u64> = (0..8).map(|_| r.next_u64()).collect();
        assert!(words.windows(2).any(|w| w[0] != w[1]), "{words:?}");
    }

    #[test]
    fn seeded_mode_reads_no_script_and_seeds_are_words() {
        let r = SimRng::new(42);
        assert_eq!(r.bytes_left(), 0);
        assert!(r.script.is_none());
        let (mut a, mut b) = (SimRng::new(42), SimRng::new(42));
        assert_eq!(a.next_seed(), b.next_u64());
        assert_eq!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn byte_mode_seeds_come_from_the_fallback_stream() {
        let data = [0xc8; 64];
        let mut r = SimRng::from_bytes(&data);
        let mut fallback = SimRng::new(SimRng::fallback_seed(&data));
        let seeds = [r.next_seed(), r.next_seed()];
        assert_eq!(seeds, [fallback.next_u64(), fallback.next_u64()]);
        assert_ne!(seeds[0], seeds[1]);
        assert_eq!(r.bytes_left(), 64, "a seed reads no input");
        assert_eq!(r.next_u64(), 0xc8c8_c8c8_c8c8_c8c8);
    }

    #[test]
    fn a_tape_logs_the_seeded_stream_and_replays_it() {
        let mut plain = SimRng::new(5);
        let mut taped = SimRng::new(5);
        taped.start_tape();
        let a: Vec<u64> = (0..50)
            .map(|i| {
                if i % 7 == 0 {
                    plain.next_seed()
                } else {
                    plain.range(0, 99)
                }
            })
            .collect();
        let b: Vec<u64> = (0..50)
            .map(|i| {
                if i % 7 == 0 {
                    taped.next_seed()
                } else {
                    taped.range(0, 99)
                }
            })
            .collect();
        assert_eq!(a, b, "a tape does not change the stream");
        let log = taped.take_tape_log();
        assert!(log.len() >= 50);
        let mut replay = SimRng::from_tape(log.clone(), 99);
        let c: Vec<u64> = (0..50)
            .map(|i| {
                if i % 7 == 0 {
                    replay.next_seed()
                } else {
                    replay.range(0, 99)
                }
            })
            .collect();
        assert_eq!(a, c, "the log replays the draws");
        assert_eq!(replay.take_tape_log(), log);
        let mut fallback = SimRng::new(99);
        assert_eq!(
            replay.next_u64(),
            fallback.next_u64(),
            "then the fallback stream"
        );
    }

    #[test]
    fn weighted_never_picks_a_zero_weight() {
        let mut r = SimRng::new(9);
        assert!((0..200).all(|_| r.weighted(&[0, 3, 0, 1]) % 2 == 1));
    }
}
