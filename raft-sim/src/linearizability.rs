//! A linearizability checker for the key-value history, one key at a time.
//!
//! Linearizability is compositional (Herlihy & Wing 1990, "locality"), so a history of a map is
//! linearizable iff the sub-history of every key is. Each key's history is checked with the
//! Wing & Gong search (1993) in Lowe's form ("Testing for linearizability", 2017): walk the
//! history's call and return events in time order; at a call, try to linearize that operation
//! now (the register model must accept its result) and restart from the first remaining event;
//! at a return whose operation is not yet linearized, undo the last choice. A cache of
//! (linearized set, register state) pairs prunes configurations seen before.
//!
//! Operations without a response (the client never heard back) may have taken effect at any
//! time after their call, or never: their return event sits after every other event, and the
//! search succeeds as soon as every completed operation is linearized. Reads without a
//! response have no effect and are dropped before the search.
//!
//! Invariants:
//! 1. An operation is linearized at most once, and only between its call and its return.
//! 2. The register starts empty (`None`).

use crate::kv::{OpKind, OpResult};
use std::collections::BTreeSet;
use std::fmt;

/// One operation of a client history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryOp {
    /// The client that issued it.
    pub client: u32,
    /// The key it acts on.
    pub key: u8,
    /// What it does.
    pub kind: OpKind,
    /// When the client issued it (first attempt).
    pub call_us: u64,
    /// When the client received the answer; `None` if it never did.
    pub ret_us: Option<u64>,
    /// The answer; `None` if it never came.
    pub result: Option<OpResult>,
    /// The log index of the state the answer reflects (not used by this checker; see
    /// [`crate::staleness`]).
    pub index: Option<u64>,
}

/// A key whose history has no linearization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotLinearizable {
    /// The key.
    pub key: u8,
    /// Operations on it (completed or not).
    pub ops: usize,
    /// The most operations any attempted linearization placed.
    pub longest_prefix: usize,
    /// The operation whose return the search could never get past, as a readable line.
    pub blocked_at: String,
}

impl fmt::Display for NotLinearizable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "key {}: no linearization of its {} operations (longest linearizable prefix: {}; \
             stuck at {})",
            self.key, self.ops, self.longest_prefix, self.blocked_at
        )
    }
}

/// Checks a whole history, key by key.
///
/// # Errors
/// The first key (in key order) whose history is not linearizable.
pub fn check(history: &[HistoryOp]) -> Result<(), NotLinearizable> {
    let mut keys: Vec<u8> = history.iter().map(|o| o.key).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        let ops: Vec<&HistoryOp> = history.iter().filter(|o| o.key == key).collect();
        check_key(key, &ops)?;
    }
    Ok(())
}

/// The register model: the state after `kind` with `result` applied to `state`, or `None` if
/// the result is impossible there. An unknown result accepts whatever the model produces.
fn step(state: Option<u64>, kind: OpKind, result: Option<OpResult>) -> Option<Option<u64>> {
    match (kind, result) {
        (OpKind::Put { value }, None | Some(OpResult::Done)) => Some(Some(value)),
        (OpKind::Get, None) => Some(state),
        (OpKind::Get, Some(OpResult::Value(v))) => (v == state).then_some(state),
        (OpKind::Cas { expected, new }, r) => {
            let ok = state == Some(expected);
            let after = if ok { Some(new) } else { state };
            match r {
                None => Some(after),
                Some(OpResult::Swapped(b)) if b == ok => Some(after),
                Some(_) => None,
            }
        }
        (OpKind::Put { .. } | OpKind::Get, Some(_)) => None,
    }
}

/// One event of the doubly linked list the search walks.
#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
    /// For a call: the list position of its return.
    partner: usize,
}

fn check_key(key: u8, all: &[&HistoryOp]) -> Result<(), NotLinearizable> {
    // Reads that never returned cannot constrain anything.
    let ops: Vec<&HistoryOp> = all
        .iter()
        .copied()
        .filter(|o| o.ret_us.is_some() || o.kind != OpKind::Get)
        .collect();
    for o in &ops {
        assert!(
            o.ret_us.is_none_or(|r| r >= o.call_us),
            "an operation returns after its call"
        );
        assert_eq!(
            o.ret_us.is_some(),
            o.result.is_some(),
            "a return has a result"
        );
    }
    let m = ops.len();
    // Sort events by time; at equal times calls come first (the more permissive order:
    // an operation is concurrent with one that returns at the instant it is called).
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * m);
    for (i, o) in ops.iter().enumerate() {
        order.push((o.call_us, false, i));
        order.push((o.ret_us.unwrap_or(u64::MAX), true, i));
    }
    order.sort_unstable();
    // List positions: 0 = head, 1..=2m events, 2m + 1 = tail.
    let (head, tail) = (0, 2 * m + 1);
    let mut events = vec![
        Event {
            op: usize::MAX,
            is_call: false,
            partner: 0,
        };
        2 * m + 2
    ];
    let mut call_pos = vec![0usize; m];
    let mut ret_pos = vec![0usize; m];
    for (k, &(_, is_ret, i)) in order.iter().enumerate() {
        let pos = k + 1;
        events[pos].op = i;
        events[pos].is_call = !is_ret;
        if is_ret {
            ret_pos[i] = pos;
        } else {
            call_pos[i] = pos;
        }
    }
    for i in 0..m {
        events[call_pos[i]].partner = ret_pos[i];
    }
    let mut next: Vec<usize> = (1..=tail + 1).collect();
    let mut prev: Vec<usize> = (0..=tail).map(|p| p.saturating_sub(1)).collect();
    next[tail] = tail;

    let lift = |p: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>, r: usize| {
        next[prev[p]] = next[p];
        prev[next[p]] = prev[p];
        next[prev[r]] = next[r];
        prev[next[r]] = prev[r];
    };
    let unlift = |p: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>, r: usize| {
        next[prev[r]] = r;
        prev[next[r]] = r;
        next[prev[p]] = p;
        prev[next[p]] = p;
    };

    let words = m.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: BTreeSet<(Vec<u64>, Option<u64>)> = BTreeSet::new();
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut state: Option<u64> = None;
    let mut longest = 0usize;
    let mut blocked_op = None;
    let mut p = next[head];
    loop {
        if p == tail {
            return Ok(());
        }
        let ev = events[p];
        let o = ops[ev.op];
        if ev.is_call {
            if let Some(after) = step(state, o.kind, o.result) {
                linearized[ev.op / 64] |= 1 << (ev.op % 64);
                if cache.insert((linearized.clone(), after)) {
                    stack.push((p, state));
                    longest = longest.max(stack.len());
                    state = after;
                    lift(p, &mut next, &mut prev, ev.partner);
                    p = next[head];
                    continue;
                }
                linearized[ev.op / 64] &= !(1 << (ev.op % 64));
            }
            p = next[p];
        } else {
            if o.ret_us.is_none() {
                // Every completed operation is linearized; the rest may never have happened.
                return Ok(());
            }
            if blocked_op.is_none() {
                blocked_op = Some(ev.op);
            }
            let Some((q, s)) = stack.pop() else {
                let b = ops[blocked_op.unwrap_or(ev.op)];
                return Err(NotLinearizable {
                    key,
                    ops: m,
                    longest_prefix: longest,
                    blocked_at: format!(
                        "client {} {:?} called at {}us returned {:?} at {:?}us",
                        b.client, b.kind, b.call_us, b.result, b.ret_us
                    ),
                });
            };
            let qe = events[q];
            state = s;
            linearized[qe.op / 64] &= !(1 << (qe.op % 64));
            unlift(q, &mut next, &mut prev, qe.partner);
            p = next[q];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        client: u32,
        kind: OpKind,
        call: u64,
        ret: Option<u64>,
        r: Option<OpResult>,
    ) -> HistoryOp {
        HistoryOp {
            client,
            key: 0,
            kind,
            call_us: call,
            ret_us: ret,
            result: r,
            index: None,
        }
    }
    fn put(c: u32, v: u64, call: u64, ret: u64) -> HistoryOp {
        op(
            c,
            OpKind::Put { value: v },
            call,
            Some(ret),
            Some(OpResult::Done),
        )
    }
    fn get(c: u32, v: Option<u64>, call: u64, ret: u64) -> HistoryOp {
        op(c, OpKind::Get, call, Some(ret), Some(OpResult::Value(v)))
    }
    fn cas(c: u32, e: u64, n: u64, ok: bool, call: u64, ret: u64) -> HistoryOp {
        op(
            c,
            OpKind::Cas {
                expected: e,
                new: n,
            },
            call,
            Some(ret),
            Some(OpResult::Swapped(ok)),
        )
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            put(1, 1, 0, 1),
            get(2, Some(1), 2, 3),
            cas(1, 1, 2, true, 4, 5),
            get(2, Some(2), 6, 7),
        ];
        assert_eq!(check(&h), Ok(()));
    }

    #[test]
    fn concurrent_read_may_see_either_value() {
        for seen in [None, Some(1)] {
            let h = [put(1, 1, 0, 10), get(2, seen, 5, 6)];
            assert_eq!(check(&h), Ok(()), "{seen:?}");
        }
    }

    #[test]
    fn read_after_completed_write_must_see_it() {
        let h = [put(1, 1, 0, 1), get(2, None, 2, 3)];
        assert!(check(&h).is_err());
    }

    #[test]
    fn stale_read_after_overwrite_is_caught() {
        let h = [put(1, 1, 0, 1), put(1, 2, 2, 3), get(2, Some(1), 4, 5)];
        let e = check(&h).unwrap_err();
        assert_eq!(e.key, 0);
        assert!(e.longest_prefix >= 2, "{e}");
    }

    #[test]
    fn reads_may_not_go_back_in_time() {
        // Two sequential reads by one client during a long write: new then old is impossible.
        let h = [
            put(1, 1, 0, 100),
            get(2, Some(1), 10, 20),
            get(2, None, 30, 40),
        ];
        assert!(check(&h).is_err());
        let h = [
            put(1, 1, 0, 100),
            get(2, None, 10, 20),
            get(2, Some(1), 30, 40),
        ];
        assert_eq!(check(&h), Ok(()));
    }

    #[test]
    fn two_successful_cas_from_the_same_value_are_caught() {
        let h = [
            put(1, 1, 0, 1),
            cas(2, 1, 2, true, 5, 20),
            cas(3, 1, 3, true, 6, 21),
        ];
        assert!(check(&h).is_err());
        let h = [
            put(1, 1, 0, 1),
            cas(2, 1, 2, true, 5, 20),
            cas(3, 1, 3, false, 6, 21),
        ];
        assert_eq!(check(&h), Ok(()));
    }

    #[test]
    fn unanswered_write_may_or_may_not_take_effect() {
        let pending = op(1, OpKind::Put { value: 9 }, 0, None, None);
        assert_eq!(check(&[pending.clone(), get(2, Some(9), 5, 6)]), Ok(()));
        assert_eq!(check(&[pending.clone(), get(2, None, 5, 6)]), Ok(()));
        // But it cannot take effect before it was called.
        assert!(
            check(&[
                get(2, Some(9), 0, 1),
                op(1, OpKind::Put { value: 9 }, 5, None, None)
            ])
            .is_err()
        );
    }

    #[test]
    fn lost_acknowledged_write_is_caught() {
        // A write acknowledged, then a later read that sees the value before it.
        let h = [
            put(1, 1, 0, 1),
            put(2, 2, 2, 3),
            get(3, Some(1), 10, 11),
            get(3, Some(2), 12, 13),
        ];
        assert!(check(&h).is_err());
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut a = put(1, 1, 0, 1);
        a.key = 1;
        let mut b = get(2, None, 2, 3);
        b.key = 2;
        assert_eq!(check(&[a.clone(), b]), Ok(()));
        let mut c = get(2, None, 2, 3);
        c.key = 1;
        assert_eq!(check(&[a, c]).unwrap_err().key, 1);
    }

    #[test]
    fn long_concurrent_history_finishes_quickly() {
        // 4 clients, 400 operations, overlapping in windows: the cache keeps this linear.
        let mut h = Vec::new();
        let mut t = 0;
        for round in 0..100u64 {
            for c in 0..4u32 {
                h.push(put(
                    c,
                    round * 4 + u64::from(c),
                    t + u64::from(c),
                    t + 10 + u64::from(c),
                ));
            }
            t += 20;
            h.push(get(9, Some(round * 4 + 3), t, t + 1));
            t += 2;
        }
        assert_eq!(check(&h), Ok(()));
    }
}
