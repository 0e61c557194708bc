//! The simulator's only source of randomness: one ChaCha8 stream per seed, read through
//! integer helpers written here.
//!
//! Every draw in a run (the swarm options, network delays, fsync latencies, fault choices,
//! client choices, the nodes' own election-timer seeds) comes from this stream in event
//! order, so a seed names one run bit for bit.
//!
//! Invariants:
//! 1. Only `next_u64` touches the generator; ranges, ratios, picks and shuffles are built on it
//!    here, with rejection sampling, so an upgrade of `rand_*` that changes their helper
//!    algorithms cannot change what a seed means. (A change of the ChaCha stream itself would;
//!    `golden_stream_for_seed_42` pins it.)
//! 2. No helper draws a variable number of words except `below`'s rejection loop, whose
//!    rejection probability is below 2^-32 for the bounds the simulator uses.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// A seeded random stream with integer helpers.
#[derive(Clone, Debug)]
pub struct SimRng {
    inner: ChaCha8Rng,
}

/// Parts per million: the unit of every probability in the options.
pub const PPM: u32 = 1_000_000;

impl SimRng {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> SimRng {
        SimRng {
            inner: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The next raw 64-bit word.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
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
    fn weighted_never_picks_a_zero_weight() {
        let mut r = SimRng::new(9);
        assert!((0..200).all(|_| r.weighted(&[0, 3, 0, 1]) % 2 == 1));
    }
}
