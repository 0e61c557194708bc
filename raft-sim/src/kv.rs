//! The replicated state machine: a small key-value map with client sessions.
//!
//! Every client operation, reads included, goes through the log (there is no ReadIndex yet).
//! Operations carry a unique id `(client, seq)`. A client runs one operation at a time and
//! starts `seq + 1` only after `seq` was acknowledged, so in the committed log a client's
//! first copies of its operations appear in `seq` order; later copies (retries) are
//! duplicates and return the result of the first.
//!
//! Invariants:
//! 1. An operation takes effect at most once: an entry whose `seq` is at or below the
//!    client's last applied `seq` changes nothing.
//! 2. A client's operations take effect in `seq` order without gaps: applying `seq > last + 1`
//!    means an acknowledged operation is missing from the log, and is reported as a lost
//!    write by the caller.
//!
//! Restart policy (documented choice): a restarted node starts with `Config.applied = 0` and an
//! empty state machine, and re-applies the committed log from index 1. The state machine is
//! therefore never persisted on its own and cannot disagree with the log.

use bytes::Bytes;

/// What an operation does to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Set the key to `value`.
    Put {
        /// The new value (unique per operation).
        value: u64,
    },
    /// Read the key.
    Get,
    /// Set the key to `new` if it holds `expected`.
    Cas {
        /// The value the key must hold.
        expected: u64,
        /// The value it gets if so.
        new: u64,
    },
}

/// One client operation as it travels in an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// The client that issued it.
    pub client: u32,
    /// Its number among the client's operations, from 1.
    pub seq: u32,
    /// The key.
    pub key: u8,
    /// What it does.
    pub kind: OpKind,
}

/// The answer to an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// A put took effect.
    Done,
    /// A get read this value (`None`: never written).
    Value(Option<u64>),
    /// Whether a compare-and-set took effect.
    Swapped(bool),
}

/// What applying one entry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// An empty entry (a new leader's first) or not a client operation.
    Nothing,
    /// The operation took effect now, with this result.
    Fresh(Op, OpResult),
    /// A retry of the client's last operation: the result is the first copy's.
    Duplicate(Op, OpResult),
    /// A copy of an operation older than the client's last one: nobody waits for it.
    Stale(Op),
    /// The client's operations skip `missing` (an acknowledged operation is not in the log).
    Gap {
        /// The operation applied.
        op: Op,
        /// The first `seq` that should have come before it.
        missing: u32,
    },
}

const OP_LEN: usize = 26;

impl Op {
    /// The entry payload: client, seq, kind, key, two operands, little-endian.
    pub fn encode(&self) -> Bytes {
        let mut b = [0u8; OP_LEN];
        b[0..4].copy_from_slice(&self.client.to_le_bytes());
        b[4..8].copy_from_slice(&self.seq.to_le_bytes());
        let (kind, a, c) = match self.kind {
            OpKind::Put { value } => (0u8, value, 0),
            OpKind::Get => (1, 0, 0),
            OpKind::Cas { expected, new } => (2, expected, new),
        };
        b[8] = kind;
        b[9] = self.key;
        b[10..18].copy_from_slice(&a.to_le_bytes());
        b[18..26].copy_from_slice(&c.to_le_bytes());
        Bytes::copy_from_slice(&b)
    }

    /// Parses an entry payload; `None` for anything that is not an operation (empty entries).
    pub fn decode(data: &[u8]) -> Option<Op> {
        if data.len() != OP_LEN {
            return None;
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&data[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let (a, c) = (u64_at(10), u64_at(18));
        let kind = match data[8] {
            0 => OpKind::Put { value: a },
            1 => OpKind::Get,
            2 => OpKind::Cas {
                expected: a,
                new: c,
            },
            _ => return None,
        };
        Some(Op {
            client: u32_at(0),
            seq: u32_at(4),
            key: data[9],
            kind,
        })
    }
}

/// The state machine of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    /// `values[key]`.
    values: Vec<Option<u64>>,
    /// `sessions[client] = (last applied seq, its result)`.
    sessions: Vec<(u32, OpResult)>,
    /// Number of entries applied (empty ones included).
    applied_entries: u64,
}

impl Kv {
    /// An empty map for `keys` keys and `clients` clients.
    pub fn new(keys: u8, clients: u32) -> Kv {
        Kv {
            values: vec![None; usize::from(keys)],
            sessions: vec![(0, OpResult::Done); clients as usize],
            applied_entries: 0,
        }
    }

    /// Applies one committed entry's payload.
    ///
    /// # Panics
    /// If an operation names a key or client this map was not built for (a simulator bug:
    /// only the simulator's own clients write entries).
    pub fn apply(&mut self, data: &[u8]) -> Applied {
        self.applied_entries += 1;
        let Some(op) = Op::decode(data) else {
            return Applied::Nothing;
        };
        let (last, last_result) = self.sessions[op.client as usize];
        if op.seq == last {
            return Applied::Duplicate(op, last_result);
        }
        if op.seq < last {
            return Applied::Stale(op);
        }
        let slot = &mut self.values[usize::from(op.key)];
        let result = match op.kind {
            OpKind::Put { value } => {
                *slot = Some(value);
                OpResult::Done
            }
            OpKind::Get => OpResult::Value(*slot),
            OpKind::Cas { expected, new } => {
                let ok = *slot == Some(expected);
                if ok {
                    *slot = Some(new);
                }
                OpResult::Swapped(ok)
            }
        };
        self.sessions[op.client as usize] = (op.seq, result);
        if op.seq > last + 1 {
            return Applied::Gap {
                op,
                missing: last + 1,
            };
        }
        Applied::Fresh(op, result)
    }

    /// The last applied `seq` of `client` and its result, if `client` applied anything.
    pub fn session(&self, client: u32) -> Option<(u32, OpResult)> {
        let s = self.sessions[client as usize];
        (s.0 > 0).then_some(s)
    }

    /// The value of `key`.
    pub fn value(&self, key: u8) -> Option<u64> {
        self.values[usize::from(key)]
    }

    /// Number of entries applied so far.
    pub fn applied_entries(&self) -> u64 {
        self.applied_entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u32, seq: u32, kind: OpKind) -> Op {
        Op {
            client,
            seq,
            key: 1,
            kind,
        }
    }

    #[test]
    fn ops_round_trip_through_entry_payloads() {
        for kind in [
            OpKind::Put { value: 7 },
            OpKind::Get,
            OpKind::Cas {
                expected: u64::MAX,
                new: 3,
            },
        ] {
            let o = op(5, 9, kind);
            assert_eq!(Op::decode(&o.encode()), Some(o));
        }
        assert_eq!(Op::decode(b""), None);
    }

    #[test]
    fn retries_are_idempotent_and_return_the_first_result() {
        let mut kv = Kv::new(2, 2);
        let put = op(0, 1, OpKind::Put { value: 10 });
        assert_eq!(kv.apply(&put.encode()), Applied::Fresh(put, OpResult::Done));
        let cas = op(
            1,
            1,
            OpKind::Cas {
                expected: 10,
                new: 11,
            },
        );
        assert_eq!(
            kv.apply(&cas.encode()),
            Applied::Fresh(cas, OpResult::Swapped(true))
        );
        // The retried CAS would now fail; the session answers with the first result.
        assert_eq!(
            kv.apply(&cas.encode()),
            Applied::Duplicate(cas, OpResult::Swapped(true))
        );
        assert_eq!(kv.value(1), Some(11));
        assert_eq!(
            kv.apply(&put.encode()),
            Applied::Duplicate(put, OpResult::Done)
        );
        assert_eq!(kv.value(1), Some(11));
    }

    #[test]
    fn a_skipped_seq_is_reported_as_a_gap() {
        let mut kv = Kv::new(2, 1);
        let get = op(0, 2, OpKind::Get);
        assert_eq!(
            kv.apply(&get.encode()),
            Applied::Gap {
                op: get,
                missing: 1
            }
        );
        assert_eq!(
            kv.apply(&op(0, 1, OpKind::Get).encode()),
            Applied::Stale(op(0, 1, OpKind::Get))
        );
    }
}
