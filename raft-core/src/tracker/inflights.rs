//! The window of in-flight `MsgApp` messages to one peer, bounded by count and by bytes.
//!
//! While a peer is in the replicate state the leader streams appends without waiting for each
//! acknowledgement. Every `MsgApp` sent is recorded here as the index of its last entry and its
//! payload size; an acknowledgement up to index `i` frees every record with an index `<= i`. When
//! the window is [`Inflights::full`] the leader stops sending to that peer, which bounds both the
//! memory a slow follower can pin in its inbound queue and the work lost on a reject.
//!
//! The records live in a ring buffer that grows on demand up to `msgs_max` slots, so an idle or
//! probing peer costs no allocation.
//!
//! Invariants:
//! 1. `count <= msgs_max`, and `count <= buffer.len() <= msgs_max`.
//! 2. The indexes of the records, oldest first, are strictly increasing.
//! 3. `bytes` is the sum of the records' sizes.
//! 4. `start < buffer.len()` whenever the buffer is allocated.
//!
//! Reference: etcd's `tracker/inflights.go` (`MaxInflightMsgs`, `MaxInflightBytes`).

/// A bounded FIFO window of in-flight appends: `(last index, bytes)` per message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inflights {
    /// Ring storage; grows by doubling, never beyond `msgs_max` slots (invariant 1).
    buffer: Vec<Inflight>,
    /// Slot of the oldest record.
    start: usize,
    /// Number of records in the window.
    count: usize,
    /// Sum of the records' sizes (invariant 3).
    bytes: u64,
    /// The most records the window holds.
    msgs_max: usize,
    /// The byte budget; 0 means no byte limit.
    bytes_max: u64,
}

/// One in-flight append.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Inflight {
    /// The index of the last entry the message carried.
    index: u64,
    /// The payload bytes the message carried.
    bytes: u64,
}

impl Inflights {
    /// An empty window of at most `msgs_max` messages and `bytes_max` payload bytes
    /// (`bytes_max == 0` means no byte limit). Allocates nothing until the first
    /// [`add`](Inflights::add).
    ///
    /// # Panics
    ///
    /// If `msgs_max` is 0: such a window is always full and the peer could never be replicated to.
    pub fn new(msgs_max: usize, bytes_max: u64) -> Inflights {
        assert!(msgs_max > 0, "inflights: msgs_max must be at least 1");
        Inflights {
            buffer: Vec::new(),
            start: 0,
            count: 0,
            bytes: 0,
            msgs_max,
            bytes_max,
        }
    }

    /// Records a sent append whose last entry is `index` and whose payload is `bytes` bytes.
    ///
    /// A byte budget can be overshot by the last message added: the window only refuses new
    /// messages once it is at or over the budget, so a single large message still goes out.
    ///
    /// # Panics
    ///
    /// If the window is [`full`](Inflights::full) (the caller checks first), or if `index` is not
    /// greater than the newest record's index (appends are sent in log order).
    #[inline]
    pub fn add(&mut self, index: u64, bytes: u64) {
        assert!(
            !self.full(),
            "inflights: add to a full window (count {})",
            self.count
        );
        if let Some(last) = self.newest() {
            assert!(
                index > last,
                "inflights: index {index} not above the newest {last}"
            );
        }
        if self.count == self.buffer.len() {
            self.grow();
        }
        let slot = self.slot(self.count);
        self.buffer[slot] = Inflight { index, bytes };
        self.count += 1;
        self.bytes += bytes;
    }

    /// Frees every record with an index `<= index`: the peer acknowledged up to `index`.
    #[inline]
    pub fn free_le(&mut self, index: u64) {
        while self.count > 0 {
            let oldest = self.buffer[self.start];
            if oldest.index > index {
                break;
            }
            self.pop_oldest(oldest);
        }
        if self.count == 0 {
            // Restarting at slot 0 keeps a quiet window's records contiguous.
            self.start = 0;
        }
    }

    /// Frees the oldest record, if any.
    pub fn free_first_one(&mut self) {
        if let Some(oldest) = self.oldest() {
            self.free_le(oldest);
        }
    }

    /// Whether the window refuses more messages: `msgs_max` records, or at least `bytes_max`
    /// bytes when a byte limit is set.
    #[inline]
    pub fn full(&self) -> bool {
        self.count == self.msgs_max || (self.bytes_max > 0 && self.bytes >= self.bytes_max)
    }

    /// The number of in-flight messages.
    #[inline]
    pub fn count(&self) -> usize {
        self.count
    }

    /// The payload bytes of the in-flight messages.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The most messages the window holds.
    pub fn msgs_max(&self) -> usize {
        self.msgs_max
    }

    /// The byte budget (0 = none).
    pub fn bytes_max(&self) -> u64 {
        self.bytes_max
    }

    /// The last index of the oldest in-flight message.
    #[inline]
    pub fn oldest(&self) -> Option<u64> {
        (self.count > 0).then(|| self.buffer[self.start].index)
    }

    /// The last index of the newest in-flight message.
    #[inline]
    pub fn newest(&self) -> Option<u64> {
        (self.count > 0).then(|| self.buffer[self.slot(self.count - 1)].index)
    }

    /// The in-flight messages, oldest first, as `(last index, bytes)`.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        (0..self.count).map(|i| {
            let r = self.buffer[self.slot(i)];
            (r.index, r.bytes)
        })
    }

    /// Empties the window (keeping its allocation for the next replicate round).
    #[inline]
    pub fn reset(&mut self) {
        self.start = 0;
        self.count = 0;
        self.bytes = 0;
    }

    /// Asserts invariants 1 to 4; O(count).
    pub fn check_invariants(&self) {
        assert!(
            self.count <= self.msgs_max,
            "inflights: count {} over msgs_max",
            self.count
        );
        assert!(
            self.count <= self.buffer.len(),
            "inflights: count over the buffer"
        );
        assert!(
            self.buffer.len() <= self.msgs_max,
            "inflights: buffer over msgs_max"
        );
        assert!(
            self.buffer.is_empty() || self.start < self.buffer.len(),
            "inflights: start slot out of the buffer"
        );
        let mut sum = 0u64;
        let mut prev: Option<u64> = None;
        for (index, bytes) in self.iter() {
            if let Some(p) = prev {
                assert!(
                    index > p,
                    "inflights: indexes not increasing ({p} then {index})"
                );
            }
            prev = Some(index);
            sum += bytes;
        }
        assert_eq!(
            sum, self.bytes,
            "inflights: bytes is not the sum of the records"
        );
    }

    /// The buffer slot of the `i`-th oldest record.
    #[inline]
    fn slot(&self, i: usize) -> usize {
        let s = self.start + i;
        if s >= self.buffer.len() {
            s - self.buffer.len()
        } else {
            s
        }
    }

    #[inline]
    fn pop_oldest(&mut self, oldest: Inflight) {
        self.bytes -= oldest.bytes;
        self.count -= 1;
        self.start += 1;
        if self.start == self.buffer.len() {
            self.start = 0;
        }
    }

    /// Doubles the ring (up to `msgs_max`), laying the records out from slot 0.
    fn grow(&mut self) {
        assert!(
            self.buffer.len() < self.msgs_max,
            "inflights: grow past msgs_max"
        );
        let len = (self.buffer.len() * 2).clamp(1, self.msgs_max);
        let mut buffer = Vec::with_capacity(len);
        buffer.extend((0..self.count).map(|i| self.buffer[self.slot(i)]));
        buffer.resize(len, Inflight::default());
        self.buffer = buffer;
        self.start = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen, QuickCheck};
    use std::collections::VecDeque;

    #[derive(Clone, Debug)]
    enum Op {
        /// Add the next index, `gap` above the newest, of `bytes` bytes (if not full).
        Add {
            gap: u8,
            bytes: u8,
        },
        /// Free up to `back` below the newest index.
        FreeLe {
            back: u8,
        },
        FreeFirstOne,
        Reset,
    }

    impl Arbitrary for Op {
        fn arbitrary(g: &mut Gen) -> Op {
            match u8::arbitrary(g) % 10 {
                0..=4 => Op::Add {
                    gap: u8::arbitrary(g) % 4 + 1,
                    bytes: u8::arbitrary(g),
                },
                5..=7 => Op::FreeLe {
                    back: u8::arbitrary(g) % 16,
                },
                8 => Op::FreeFirstOne,
                _ => Op::Reset,
            }
        }
    }

    /// The model: a `VecDeque` of `(index, bytes)` with the same bounds.
    struct Model {
        q: VecDeque<(u64, u64)>,
        msgs_max: usize,
        bytes_max: u64,
    }

    impl Model {
        fn bytes(&self) -> u64 {
            self.q.iter().map(|&(_, b)| b).sum()
        }
        fn full(&self) -> bool {
            self.q.len() == self.msgs_max || (self.bytes_max > 0 && self.bytes() >= self.bytes_max)
        }
    }

    #[test]
    fn inflights_match_a_vecdeque_model() {
        fn prop(msgs_max: u8, bytes_max: u16, ops: Vec<Op>) -> bool {
            let msgs_max = usize::from(msgs_max % 10) + 1;
            // Half the runs without a byte limit.
            let bytes_max = if bytes_max.is_multiple_of(2) {
                0
            } else {
                u64::from(bytes_max % 1000)
            };
            let mut inf = Inflights::new(msgs_max, bytes_max);
            let mut model = Model {
                q: VecDeque::new(),
                msgs_max,
                bytes_max,
            };
            let mut next_index = 1u64;
            for op in ops {
                match op {
                    Op::Add { gap, bytes } => {
                        if !model.full() {
                            next_index += u64::from(gap);
                            inf.add(next_index, u64::from(bytes));
                            model.q.push_back((next_index, u64::from(bytes)));
                        }
                    }
                    Op::FreeLe { back } => {
                        let to = next_index.saturating_sub(u64::from(back));
                        inf.free_le(to);
                        while model.q.front().is_some_and(|&(i, _)| i <= to) {
                            model.q.pop_front();
                        }
                    }
                    Op::FreeFirstOne => {
                        inf.free_first_one();
                        model.q.pop_front();
                    }
                    Op::Reset => {
                        inf.reset();
                        model.q.clear();
                    }
                }
                inf.check_invariants();
                let same = inf.iter().eq(model.q.iter().copied())
                    && inf.count() == model.q.len()
                    && inf.bytes() == model.bytes()
                    && inf.full() == model.full()
                    && inf.oldest() == model.q.front().map(|r| r.0)
                    && inf.newest() == model.q.back().map(|r| r.0);
                if !same {
                    return false;
                }
            }
            true
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop as fn(u8, u16, Vec<Op>) -> bool);
    }

    #[test]
    fn window_fills_by_count_and_frees_by_ack() {
        let mut inf = Inflights::new(3, 0);
        assert_eq!(inf.buffer.len(), 0, "no allocation before the first add");
        inf.add(1, 10);
        inf.add(2, 10);
        assert!(!inf.full());
        inf.add(5, 10);
        assert!(inf.full());
        assert_eq!((inf.count(), inf.bytes()), (3, 30));
        inf.free_le(1);
        assert_eq!((inf.count(), inf.bytes()), (2, 20));
        assert!(!inf.full());
        // A stale ack frees nothing.
        inf.free_le(0);
        assert_eq!(inf.count(), 2);
        inf.free_le(4);
        assert_eq!(inf.iter().collect::<Vec<_>>(), vec![(5, 10)]);
        inf.free_first_one();
        assert_eq!((inf.count(), inf.bytes()), (0, 0));
        inf.free_first_one();
        assert_eq!(inf.count(), 0);
    }

    #[test]
    fn window_fills_by_bytes_and_may_overshoot_once() {
        let mut inf = Inflights::new(100, 100);
        inf.add(1, 60);
        assert!(!inf.full());
        inf.add(2, 60);
        assert!(inf.full(), "120 bytes is over the 100-byte budget");
        inf.free_le(1);
        assert!(!inf.full());
        inf.add(3, 40);
        assert!(inf.full(), "exactly at the budget is full");
    }

    #[test]
    fn ring_wraps_around_and_keeps_order() {
        let mut inf = Inflights::new(4, 0);
        for i in 1..=4 {
            inf.add(i, i);
        }
        for i in 5..=20 {
            inf.free_first_one();
            inf.add(i, i);
            inf.check_invariants();
            assert_eq!(
                inf.iter().map(|r| r.0).collect::<Vec<_>>(),
                (i - 3..=i).collect::<Vec<_>>()
            );
        }
        assert_eq!(inf.buffer.len(), 4);
    }

    #[test]
    fn ring_grows_lazily_up_to_msgs_max() {
        let mut inf = Inflights::new(5, 0);
        inf.add(1, 0);
        assert_eq!(inf.buffer.len(), 1);
        inf.add(2, 0);
        inf.add(3, 0);
        assert_eq!(inf.buffer.len(), 4);
        inf.add(4, 0);
        inf.add(5, 0);
        assert_eq!(inf.buffer.len(), 5);
        inf.reset();
        assert_eq!((inf.count(), inf.bytes(), inf.buffer.len()), (0, 0, 5));
    }

    #[test]
    #[should_panic(expected = "add to a full window")]
    fn add_to_a_full_window_panics() {
        let mut inf = Inflights::new(1, 0);
        inf.add(1, 0);
        inf.add(2, 0);
    }

    #[test]
    #[should_panic(expected = "not above the newest")]
    fn add_of_a_non_increasing_index_panics() {
        let mut inf = Inflights::new(4, 0);
        inf.add(3, 0);
        inf.add(3, 0);
    }
}
