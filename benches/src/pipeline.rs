//! The FIFO of a node's writes that are handed out but not yet reported durable (W5).
//!
//! Both libraries complete writes in the order they were handed out, so the queue only ever
//! completes from its front. Each write is tagged with the round it was handed out in, and
//! the driver completes, at the end of each round, every write old enough
//! ([`WriteQueue::complete_through`]): a disk with a fixed latency, counted in rounds.
//!
//! A write that needs an fsync ("synced": entries, a snapshot, a new term or vote) waits for
//! its turn; one that does not (a new commit index alone) is done as soon as it is written,
//! but still completes in order: at once when nothing is ahead of it, else right behind the
//! synced write before it.
//!
//! Invariants:
//! 1. The front of the queue, if any, is a synced write (an unsynced one at the front would
//!    be complete already).
//! 2. `synced` is the number of synced writes in the queue.

use std::collections::VecDeque;

/// Outstanding writes of one node, oldest first.
#[derive(Debug)]
pub(crate) struct WriteQueue<T> {
    items: VecDeque<Outstanding<T>>,
    synced: usize,
    synced_max: usize,
    writes: u64,
    writes_synced: u64,
}

#[derive(Debug)]
struct Outstanding<T> {
    item: T,
    synced: bool,
    round: u64,
}

impl<T> Default for WriteQueue<T> {
    fn default() -> Self {
        WriteQueue {
            items: VecDeque::new(),
            synced: 0,
            synced_max: 0,
            writes: 0,
            writes_synced: 0,
        }
    }
}

impl<T> WriteQueue<T> {
    /// Queues a write handed out (and written, not yet durable) in `round`. An unsynced
    /// write with nothing ahead of it completes at once: `complete` is called on it.
    pub(crate) fn push(&mut self, item: T, synced: bool, round: u64, complete: impl FnOnce(T)) {
        self.writes += 1;
        if !synced && self.items.is_empty() {
            complete(item);
            return;
        }
        if let Some(newest) = self.items.back() {
            assert!(newest.round <= round, "rounds only move forward");
        }
        self.items.push_back(Outstanding {
            item,
            synced,
            round,
        });
        if synced {
            self.writes_synced += 1;
            self.synced += 1;
            self.synced_max = self.synced_max.max(self.synced);
        }
    }

    /// Completes, oldest first, every synced write handed out in `round` or before, and the
    /// unsynced writes right behind each; returns how many synced writes completed.
    pub(crate) fn complete_through(&mut self, round: u64, mut complete: impl FnMut(T)) -> usize {
        let mut completed = 0;
        while let Some(front) = self.items.front() {
            assert!(front.synced, "the front is a synced write (invariant 1)");
            if front.round > round {
                break;
            }
            let front = self.items.pop_front().expect("checked above");
            self.synced -= 1;
            completed += 1;
            complete(front.item);
            while self.items.front().is_some_and(|w| !w.synced) {
                complete(self.items.pop_front().expect("checked above").item);
            }
        }
        completed
    }

    /// The newest outstanding write, if any.
    pub(crate) fn back_mut(&mut self) -> Option<&mut T> {
        self.items.back_mut().map(|w| &mut w.item)
    }

    /// Whether no write is outstanding.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Most synced writes that were outstanding at once.
    pub(crate) fn synced_max(&self) -> usize {
        self.synced_max
    }

    /// Writes queued so far, synced or not.
    pub(crate) fn writes(&self) -> u64 {
        self.writes
    }

    /// Synced writes queued so far.
    pub(crate) fn writes_synced(&self) -> u64 {
        self.writes_synced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_complete_in_order_when_their_round_is_due() {
        let mut q = WriteQueue::default();
        let mut done = Vec::new();
        q.push(1, false, 0, |i| done.push(i)); // nothing ahead: done at once
        assert_eq!(done, [1]);
        q.push(2, true, 0, |i| done.push(i));
        q.push(3, false, 0, |i| done.push(i)); // behind 2
        q.push(4, true, 1, |i| done.push(i));
        q.push(5, true, 2, |i| done.push(i));
        assert_eq!(q.synced_max(), 3);
        assert_eq!(q.complete_through(0, |i| done.push(i)), 1);
        assert_eq!(done, [1, 2, 3]);
        assert_eq!(q.complete_through(0, |i| done.push(i)), 0);
        assert_eq!(q.complete_through(5, |i| done.push(i)), 2);
        assert_eq!(done, [1, 2, 3, 4, 5]);
        assert!(q.is_empty());
        assert_eq!((q.writes(), q.writes_synced()), (5, 3));
    }

    #[test]
    fn a_model_run_completes_everything_in_order() {
        // A deterministic mix of synced and unsynced writes over rounds, each round
        // completing what is `latency` rounds old, against the rule "in order".
        for latency in 1..=4u64 {
            let mut q = WriteQueue::default();
            let mut done = Vec::new();
            let mut x = 7u64;
            let mut next = 0u64;
            for round in 0..200u64 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                for _ in 0..(x >> 62) {
                    q.push(next, (x >> 61) & 1 == 0 || (x >> 40) & 3 != 0, round, |i| {
                        done.push(i)
                    });
                    next += 1;
                }
                if round + 1 >= latency {
                    q.complete_through(round + 1 - latency, |i| done.push(i));
                }
            }
            q.complete_through(u64::MAX, |i| done.push(i));
            assert_eq!(done, (0..next).collect::<Vec<_>>(), "latency {latency}");
        }
    }
}
