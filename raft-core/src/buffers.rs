//! Entry lists kept for reuse.
//!
//! Every `Ready` may hand out two `Vec<Entry>` (in the persist and the apply batch), a leader
//! sends one in every append with entries, and a follower receives one in every append.
//! Allocating each anew is most of the allocator traffic of a busy node. When the driver
//! passes a handled `Ready` back to `RawNode::ready_into` (its batches, and the messages it
//! sent by reference and left there), and when a follower has moved the entries of an append
//! into its log, the emptied lists are kept here and filled again for the next batch or
//! append.
//!
//! Invariants:
//! 1. Every kept list is empty.
//! 2. At most [`ENTRY_LISTS_MAX`] lists are kept, none with a capacity above
//!    [`ENTRIES_CAPACITY_MAX`]: one burst does not pin its memory.

use crate::wire::Entry;

/// The most entry lists kept: enough for the persist and apply batch of a `Ready` and one
/// append to each peer of a seven-voter group (lists of appends come back when a driver
/// leaves sent messages in the `Ready` it passes to `ready_into`).
pub(crate) const ENTRY_LISTS_MAX: usize = 8;

/// Lists with more capacity than this are released, not kept.
pub(crate) const ENTRIES_CAPACITY_MAX: usize = 1024;

/// Emptied entry lists waiting to be reused. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    entry_lists: Vec<Vec<Entry>>,
}

impl Buffers {
    /// An empty entry list, with capacity if one was kept.
    #[inline]
    pub(crate) fn entries(&mut self) -> Vec<Entry> {
        self.entry_lists.pop().unwrap_or_default()
    }

    /// Keeps `list` (emptied here) for reuse, unless enough are kept or it is too large.
    #[inline]
    pub(crate) fn keep_entries(&mut self, mut list: Vec<Entry>) {
        let capacity = list.capacity();
        if capacity == 0
            || capacity > ENTRIES_CAPACITY_MAX
            || self.entry_lists.len() >= ENTRY_LISTS_MAX
        {
            return;
        }
        list.clear();
        self.entry_lists.push(list);
    }

    /// Whether a kept list has its storage at `ptr`.
    #[cfg(test)]
    pub(crate) fn holds(&self, ptr: *const Entry) -> bool {
        self.entry_lists.iter().any(|l| l.as_ptr() == ptr)
    }

    /// Panics if an invariant from the module docs is broken.
    pub(crate) fn check_invariants(&self) {
        assert!(
            self.entry_lists.len() <= ENTRY_LISTS_MAX,
            "buffers: too many entry lists kept"
        );
        for list in &self.entry_lists {
            assert!(list.is_empty(), "buffers: a kept entry list is not empty");
            assert!(
                list.capacity() <= ENTRIES_CAPACITY_MAX,
                "buffers: a kept entry list is too large"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_come_back_empty_with_their_capacity() {
        let mut b = Buffers::default();
        assert_eq!(b.entries().capacity(), 0, "nothing kept yet");
        b.keep_entries(vec![Entry::default(); 3]);
        let list = b.entries();
        assert!(list.is_empty() && list.capacity() >= 3);
        assert_eq!(b.entries().capacity(), 0, "the list was handed out");
        b.check_invariants();
    }

    #[test]
    fn large_or_surplus_lists_are_released() {
        let mut b = Buffers::default();
        b.keep_entries(Vec::with_capacity(ENTRIES_CAPACITY_MAX + 1));
        assert_eq!(b.entries().capacity(), 0);
        for _ in 0..ENTRY_LISTS_MAX + 2 {
            b.keep_entries(Vec::with_capacity(1));
        }
        b.check_invariants();
        assert_eq!(b.entry_lists.len(), ENTRY_LISTS_MAX);
    }
}
