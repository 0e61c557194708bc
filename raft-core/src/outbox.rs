//! Outgoing messages, split into those safe to send now and those waiting for a write.
//!
//! A message that vouches for local durable state (a vote grant, an append
//! acknowledgement) is held until the persist batch that makes that state durable is
//! reported with `on_persisted` (DESIGN §2, rule 2).
//!
//! Invariants:
//! 1. `seq_done <= seq_issued`: completions never run ahead of the batches handed out.
//! 2. Held messages are ordered by the batch sequence number they wait for.
//! 3. A held message waits for a batch that is outstanding or is the next one to be issued.
//! 4. `held` and `held_seq` have the same length: `held_seq[i]` is what `held[i]` waits for.

use crate::wire::Message;

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Messages safe to send, in generation order.
    pub ready: Vec<Message>,
    /// Messages waiting for a persist batch, oldest first. A plain list, so that when every
    /// held message is released into an empty `ready` (the usual case: a follower's
    /// acknowledgement of its last write) the two lists are swapped instead of copied.
    held: Vec<Message>,
    /// The sequence number of the persist batch each held message waits for.
    held_seq: Vec<u64>,
    /// Sequence number of the last persist batch handed out.
    pub seq_issued: u64,
    /// Sequence number of the last persist batch reported durable.
    pub seq_done: u64,
}

impl Outbox {
    /// Holds `m` until batch `seq` is durable.
    #[inline]
    pub fn hold(&mut self, seq: u64, m: Message) {
        debug_assert!(
            seq > self.seq_done && seq <= self.seq_issued + 1,
            "held for a live batch"
        );
        debug_assert!(
            self.held_seq.last().is_none_or(|s| *s <= seq),
            "held in batch order"
        );
        self.held.push(m);
        self.held_seq.push(seq);
    }

    /// Records batch `seq` durable and releases what waited for it.
    #[inline]
    pub fn on_durable(&mut self, seq: u64) {
        assert_eq!(
            seq,
            self.seq_done + 1,
            "persist completions arrive in batch order"
        );
        assert!(
            seq <= self.seq_issued,
            "a completion for a batch that was never issued"
        );
        self.seq_done = seq;
        self.release_up_to(seq);
    }

    /// Called when a Ready is built without a new batch: messages that waited for "the
    /// next batch" now wait for the last issued one, or go out if everything is durable.
    #[inline]
    pub fn retarget_unissued(&mut self) {
        let issued = self.seq_issued;
        for s in &mut self.held_seq {
            if *s > issued {
                *s = issued;
            }
        }
        self.release_up_to(self.seq_done);
    }

    /// Moves the held messages waiting for batch `seq` or earlier to `ready`, in order.
    #[inline]
    fn release_up_to(&mut self, seq: u64) {
        let n = self.held_seq.partition_point(|s| *s <= seq);
        if n == 0 {
            return;
        }
        if n == self.held.len() && self.ready.is_empty() {
            // All of them, and nothing else to send: the held list becomes the ready one.
            std::mem::swap(&mut self.ready, &mut self.held);
        } else {
            self.ready.extend(self.held.drain(..n));
        }
        self.held_seq.drain(..n);
    }

    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    pub fn check_invariants(&self) {
        assert!(
            self.seq_done <= self.seq_issued,
            "completions never run ahead of batches"
        );
        assert_eq!(
            self.held.len(),
            self.held_seq.len(),
            "every held message has a batch to wait for"
        );
        let mut prev = 0;
        for s in &self.held_seq {
            assert!(*s >= prev, "held messages are in batch order");
            assert!(
                *s > self.seq_done && *s <= self.seq_issued + 1,
                "held for a live batch"
            );
            prev = *s;
        }
    }
}
