//! Small value types shared by every module.

/// The position of a log entry: its index and the term in which it was created.
///
/// Two entries with the same `EntryId` hold the same data on every node (log matching).
/// `propose` returns one: a proposal is committed iff an entry with exactly this id is
/// applied; a different term at that index means the proposal was lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId {
    /// The entry's index in the log, from 1.
    pub index: u64,
    /// The term in which a leader created the entry.
    pub term: u64,
}

impl EntryId {
    /// The id of the entry at `index` created in `term`.
    pub const fn new(index: u64, term: u64) -> EntryId {
        EntryId { index, term }
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.term, self.index)
    }
}
