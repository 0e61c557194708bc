//! The read-freshness check: no operation sees a state older than one acknowledged before it
//! began.
//!
//! Every answer a client gets names the log index of the state it reflects: a logged
//! operation the index of the entry where it took effect (for a retry, the first copy's), a
//! read served by ReadIndex or a lease the node's applied index when it served it. Raft makes
//! that index grow with real time: a ReadIndex read waits for the leader's commit index at the
//! time it arrives, which covers every entry committed anywhere before (thesis §6.4); a lease
//! read does the same if the lease is sound; a logged operation lands after every entry
//! committed before it was proposed. So:
//!
//! > if operation `a` returned before operation `b` was called, then `index(b) >= index(a)`.
//!
//! For a read `b` and an acknowledged write `a`, this is "every read returns a state at least as
//! new as every write acknowledged before the read began". It spans keys, so it also catches a
//! stale read whose key was not written recently (which the per-key linearizability checker
//! cannot see), and it names the two operations and indexes directly.
//!
//! The check sorts the answered operations by return time and keeps a running maximum of their
//! indexes; each operation looks up the maximum over those that returned strictly before its
//! call: O(n log n).
//!
//! Invariants:
//! 1. Only answered operations with a known index take part.
//! 2. "Before" is strict: an operation answered at the instant another is called does not
//!    constrain it.

use crate::kv::OpKind;
use crate::linearizability::HistoryOp;
use std::fmt;

/// An operation that saw an older state than one acknowledged before it began.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleRead {
    /// The operation that saw the old state, as a readable line.
    pub stale: String,
    /// The operation acknowledged before it with the newer state, as a readable line.
    pub newer: String,
}

impl fmt::Display for StaleRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} saw an older state than {}, which was acknowledged before it began",
            self.stale, self.newer
        )
    }
}

/// Checks a whole history.
///
/// # Errors
/// The first operation (in call order) that saw a state older than one acknowledged before it
/// was called.
pub fn check(history: &[HistoryOp]) -> Result<(), StaleRead> {
    // (return time, index, position in history) of every answered operation.
    let mut done: Vec<(u64, u64, usize)> = history
        .iter()
        .enumerate()
        .filter_map(|(i, o)| Some((o.ret_us?, o.index?, i)))
        .collect();
    done.sort_unstable();
    // best[k] = position of the largest index among done[..=k].
    let mut best: Vec<usize> = Vec::with_capacity(done.len());
    for (k, d) in done.iter().enumerate() {
        let keep = k > 0 && done[best[k - 1]].1 >= d.1;
        best.push(if keep { best[k - 1] } else { k });
    }
    let mut calls: Vec<usize> = (0..history.len())
        .filter(|&i| history[i].index.is_some() && history[i].ret_us.is_some())
        .collect();
    calls.sort_by_key(|&i| (history[i].call_us, i));
    for i in calls {
        let o = &history[i];
        let index = o.index.expect("filtered above");
        // Operations that returned strictly before this call.
        let before = done.partition_point(|d| d.0 < o.call_us);
        if before == 0 {
            continue;
        }
        let (_, newest, j) = done[best[before - 1]];
        if newest > index {
            return Err(StaleRead {
                stale: describe(o),
                newer: describe(&history[j]),
            });
        }
    }
    Ok(())
}

fn describe(o: &HistoryOp) -> String {
    let what = match o.kind {
        OpKind::Get => "get".to_string(),
        OpKind::Put { value } => format!("put {value:#x}"),
        OpKind::Cas { expected, new } => format!("cas {expected:#x}->{new:#x}"),
    };
    format!(
        "client {} {what} on key {} (called {}us, returned {:?}us, result {:?}, state index {:?})",
        o.client,
        o.key,
        o.call_us,
        o.ret_us.unwrap_or(0),
        o.result,
        o.index
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::OpResult;

    fn op(kind: OpKind, key: u8, call: u64, ret: u64, index: u64) -> HistoryOp {
        let result = match kind {
            OpKind::Get => OpResult::Value(None),
            OpKind::Put { .. } => OpResult::Done,
            OpKind::Cas { .. } => OpResult::Swapped(false),
        };
        HistoryOp {
            client: 0,
            key,
            kind,
            call_us: call,
            ret_us: Some(ret),
            result: Some(result),
            index: Some(index),
        }
    }

    #[test]
    fn a_read_after_an_acknowledged_write_must_see_its_index() {
        let w = op(OpKind::Put { value: 1 }, 0, 0, 10, 7);
        assert_eq!(check(&[w.clone(), op(OpKind::Get, 0, 11, 12, 7)]), Ok(()));
        assert!(check(&[w.clone(), op(OpKind::Get, 0, 11, 12, 6)]).is_err());
        // On another key too: the state as a whole must be as new.
        assert!(check(&[w, op(OpKind::Get, 3, 11, 12, 6)]).is_err());
    }

    #[test]
    fn concurrent_operations_do_not_constrain_each_other() {
        let w = op(OpKind::Put { value: 1 }, 0, 0, 10, 7);
        assert_eq!(check(&[w.clone(), op(OpKind::Get, 0, 5, 12, 3)]), Ok(()));
        // Returned at the instant the read was called: not before it.
        assert_eq!(check(&[w, op(OpKind::Get, 0, 10, 12, 3)]), Ok(()));
    }

    #[test]
    fn unanswered_operations_and_unknown_indexes_are_ignored() {
        let mut w = op(OpKind::Put { value: 1 }, 0, 0, 10, 9);
        w.ret_us = None;
        let mut r = op(OpKind::Get, 0, 11, 12, 1);
        assert_eq!(check(&[w, r.clone()]), Ok(()));
        r.index = None;
        assert_eq!(
            check(&[op(OpKind::Put { value: 1 }, 0, 0, 10, 9), r]),
            Ok(())
        );
    }

    #[test]
    fn the_newest_earlier_acknowledgement_counts_not_the_last_one() {
        let h = [
            op(OpKind::Put { value: 1 }, 0, 0, 10, 9),
            op(OpKind::Get, 1, 1, 11, 4),
            op(OpKind::Get, 2, 20, 21, 8),
        ];
        let e = check(&h).unwrap_err();
        assert!(e.stale.contains("key 2"), "{e}");
        assert!(e.newer.contains("put"), "{e}");
    }
}
