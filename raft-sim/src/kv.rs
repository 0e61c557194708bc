//! The replicated state machine: a small key-value map with client sessions.
//!
//! Operations carry a unique id `(client, seq)`. Those that go through the log (writes, and
//! reads when the seed reads through the log) also carry `log_seq`, their number among the
//! client's logged operations; reads served by ReadIndex or a lease never enter the log and
//! have `log_seq == 0`. A client runs one operation at a time and starts the next only after
//! the previous one was acknowledged, so in the committed log a client's first copies of its
//! logged operations appear in `log_seq` order; later copies (retries) are duplicates and
//! return the result of the first.
//!
//! Invariants:
//! 1. An operation takes effect at most once: an entry whose `log_seq` is at or below the
//!    client's last applied `log_seq` changes nothing.
//! 2. A client's logged operations take effect in `log_seq` order without gaps: applying
//!    `log_seq > last + 1` means an acknowledged operation is missing from the log, and is
//!    reported as a lost write by the caller.
//! 3. A session remembers the index at which its last operation took effect, so a retry is
//!    answered with the state index of the first copy (the read-freshness check relies on it).
//!
//! Restart policy (documented choice): the state machine is durable only through snapshots
//! ([`Kv::encode`], stored as the snapshot data). A restarted node restores the state machine
//! from its durable snapshot, starts with `Config.applied` = the snapshot index, and re-applies
//! the committed log after it. The driver snapshots at every configuration change it applies
//! (see [`crate::node`]), so the durable configuration always belongs to the snapshot index
//! and no change is ever re-applied on top of its own result.

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

/// One client operation, as it travels to a node and (if logged) in an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// The client that issued it.
    pub client: u32,
    /// Its number among the client's operations, from 1.
    pub seq: u32,
    /// Its number among the client's logged operations, from 1; 0 for a read that is served
    /// by ReadIndex or a lease and never enters the log.
    pub log_seq: u32,
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
    /// An empty entry (a new leader's first), a configuration change, or not an operation.
    Nothing,
    /// The operation took effect now, with this result.
    Fresh(Op, OpResult),
    /// A retry of the client's last operation: the result and state index are the first
    /// copy's.
    Duplicate(Op, OpResult, u64),
    /// A copy of an operation older than the client's last one: nobody waits for it.
    Stale(Op),
    /// The client's operations skip `missing` (an acknowledged operation is not in the log).
    Gap {
        /// The operation applied.
        op: Op,
        /// The first `log_seq` that should have come before it.
        missing: u32,
    },
}

/// A client's session: its last logged operation, that operation's result, and the log index
/// at which it took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// The last applied `log_seq` (0: none yet).
    pub log_seq: u32,
    /// Its operation's `seq`.
    pub seq: u32,
    /// Its result.
    pub result: OpResult,
    /// The log index at which it took effect.
    pub index: u64,
}

const OP_LEN: usize = 34;

impl Op {
    /// The entry payload: client, seq, log_seq, kind, key, two operands, little-endian.
    pub fn encode(&self) -> Bytes {
        let mut b = [0u8; OP_LEN];
        b[0..4].copy_from_slice(&self.client.to_le_bytes());
        b[4..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..12].copy_from_slice(&self.log_seq.to_le_bytes());
        let (kind, a, c) = match self.kind {
            OpKind::Put { value } => (0u8, value, 0),
            OpKind::Get => (1, 0, 0),
            OpKind::Cas { expected, new } => (2, expected, new),
        };
        b[12] = kind;
        b[13] = self.key;
        b[14..22].copy_from_slice(&a.to_le_bytes());
        b[22..30].copy_from_slice(&c.to_le_bytes());
        // Bytes 30..34 are reserved (zero), so an operation is never mistaken for the
        // 4-byte read context of crate::node.
        Bytes::copy_from_slice(&b)
    }

    /// Parses an entry payload; `None` for anything that is not an operation (empty entries,
    /// configuration changes).
    pub fn decode(data: &[u8]) -> Option<Op> {
        if data.len() != OP_LEN {
            return None;
        }
        let mut r = Reader { data, at: 0 };
        let (client, seq, log_seq) = (r.u32()?, r.u32()?, r.u32()?);
        let (kind, key) = (r.u8()?, r.u8()?);
        let (a, c) = (r.u64()?, r.u64()?);
        let kind = match kind {
            0 => OpKind::Put { value: a },
            1 => OpKind::Get,
            2 => OpKind::Cas {
                expected: a,
                new: c,
            },
            _ => return None,
        };
        Some(Op {
            client,
            seq,
            log_seq,
            key,
            kind,
        })
    }
}

/// The state machine of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    /// `values[key]`.
    values: Vec<Option<u64>>,
    /// `sessions[client]`.
    sessions: Vec<Session>,
    /// Number of entries applied (empty ones included).
    applied_entries: u64,
}

impl Kv {
    /// An empty map for `keys` keys and `clients` clients.
    pub fn new(keys: u8, clients: u32) -> Kv {
        let none = Session {
            log_seq: 0,
            seq: 0,
            result: OpResult::Done,
            index: 0,
        };
        Kv {
            values: vec![None; usize::from(keys)],
            sessions: vec![none; clients as usize],
            applied_entries: 0,
        }
    }

    /// Applies one committed entry's payload, found at log index `index`.
    ///
    /// # Panics
    /// If an operation names a key or client this map was not built for (a simulator bug:
    /// only the simulator's own clients write entries).
    pub fn apply(&mut self, data: &[u8], index: u64) -> Applied {
        self.applied_entries += 1;
        let Some(op) = Op::decode(data) else {
            return Applied::Nothing;
        };
        let s = self.sessions[op.client as usize];
        if op.log_seq == s.log_seq {
            return Applied::Duplicate(op, s.result, s.index);
        }
        if op.log_seq < s.log_seq {
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
        self.sessions[op.client as usize] = Session {
            log_seq: op.log_seq,
            seq: op.seq,
            result,
            index,
        };
        if op.log_seq > s.log_seq + 1 {
            return Applied::Gap {
                op,
                missing: s.log_seq + 1,
            };
        }
        Applied::Fresh(op, result)
    }

    /// The session of `client`, if `client` applied anything.
    pub fn session(&self, client: u32) -> Option<Session> {
        let s = self.sessions[client as usize];
        (s.log_seq > 0).then_some(s)
    }

    /// The value of `key`.
    pub fn value(&self, key: u8) -> Option<u64> {
        self.values[usize::from(key)]
    }

    /// Number of entries applied so far.
    pub fn applied_entries(&self) -> u64 {
        self.applied_entries
    }

    /// The whole state as snapshot data: a version byte, the shape, the entry count, every
    /// value, every session; little-endian, fixed width, so equal states encode equally.
    pub fn encode(&self) -> Bytes {
        let mut b = Vec::with_capacity(16 + self.values.len() * 9 + self.sessions.len() * 25);
        b.push(SNAPSHOT_VERSION);
        b.push(u8::try_from(self.values.len()).expect("keys fit in u8"));
        b.extend_from_slice(
            &u32::try_from(self.sessions.len())
                .expect("clients fit in u32")
                .to_le_bytes(),
        );
        b.extend_from_slice(&self.applied_entries.to_le_bytes());
        for v in &self.values {
            b.push(u8::from(v.is_some()));
            b.extend_from_slice(&v.unwrap_or(0).to_le_bytes());
        }
        for s in &self.sessions {
            b.extend_from_slice(&s.log_seq.to_le_bytes());
            b.extend_from_slice(&s.seq.to_le_bytes());
            let (tag, x) = match s.result {
                OpResult::Done => (0u8, 0),
                OpResult::Value(None) => (1, 0),
                OpResult::Value(Some(v)) => (2, v),
                OpResult::Swapped(ok) => (3, u64::from(ok)),
            };
            b.push(tag);
            b.extend_from_slice(&x.to_le_bytes());
            b.extend_from_slice(&s.index.to_le_bytes());
        }
        Bytes::from(b)
    }

    /// Parses snapshot data written by [`Kv::encode`]. Empty data (the founding snapshot, or
    /// a node that never received one) is the empty map for `keys` and `clients`.
    ///
    /// # Errors
    /// A description of what is malformed (a simulator bug: only this module writes it).
    pub fn decode(data: &[u8], keys: u8, clients: u32) -> Result<Kv, String> {
        if data.is_empty() {
            return Ok(Kv::new(keys, clients));
        }
        let bad = || format!("malformed snapshot data ({} bytes)", data.len());
        let mut r = Reader { data, at: 0 };
        if r.u8().ok_or_else(bad)? != SNAPSHOT_VERSION {
            return Err(bad());
        }
        let (k, c) = (r.u8().ok_or_else(bad)?, r.u32().ok_or_else(bad)?);
        if (k, c) != (keys, clients) {
            return Err(format!(
                "snapshot of {k} keys and {c} clients, expected {keys} and {clients}"
            ));
        }
        let mut kv = Kv::new(keys, clients);
        kv.applied_entries = r.u64().ok_or_else(bad)?;
        for v in &mut kv.values {
            let (some, x) = (r.u8().ok_or_else(bad)?, r.u64().ok_or_else(bad)?);
            *v = (some == 1).then_some(x);
        }
        for s in &mut kv.sessions {
            let (log_seq, seq) = (r.u32().ok_or_else(bad)?, r.u32().ok_or_else(bad)?);
            let (tag, x) = (r.u8().ok_or_else(bad)?, r.u64().ok_or_else(bad)?);
            let result = match tag {
                0 => OpResult::Done,
                1 => OpResult::Value(None),
                2 => OpResult::Value(Some(x)),
                3 => OpResult::Swapped(x == 1),
                _ => return Err(bad()),
            };
            let index = r.u64().ok_or_else(bad)?;
            *s = Session {
                log_seq,
                seq,
                result,
                index,
            };
        }
        if r.at != data.len() {
            return Err(bad());
        }
        Ok(kv)
    }
}

const SNAPSHOT_VERSION: u8 = 1;

/// A little-endian cursor.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.data.get(self.at..self.at + N)?;
        self.at += N;
        b.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u32, log_seq: u32, kind: OpKind) -> Op {
        Op {
            client,
            seq: log_seq + 100,
            log_seq,
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
    fn retries_are_idempotent_and_return_the_first_result_and_index() {
        let mut kv = Kv::new(2, 2);
        let put = op(0, 1, OpKind::Put { value: 10 });
        assert_eq!(
            kv.apply(&put.encode(), 5),
            Applied::Fresh(put, OpResult::Done)
        );
        let cas = op(
            1,
            1,
            OpKind::Cas {
                expected: 10,
                new: 11,
            },
        );
        assert_eq!(
            kv.apply(&cas.encode(), 6),
            Applied::Fresh(cas, OpResult::Swapped(true))
        );
        // The retried CAS would now fail; the session answers with the first result.
        assert_eq!(
            kv.apply(&cas.encode(), 9),
            Applied::Duplicate(cas, OpResult::Swapped(true), 6)
        );
        assert_eq!(kv.value(1), Some(11));
        assert_eq!(
            kv.apply(&put.encode(), 10),
            Applied::Duplicate(put, OpResult::Done, 5)
        );
        assert_eq!(kv.value(1), Some(11));
    }

    #[test]
    fn a_skipped_log_seq_is_reported_as_a_gap() {
        let mut kv = Kv::new(2, 1);
        let get = op(0, 2, OpKind::Get);
        assert_eq!(
            kv.apply(&get.encode(), 3),
            Applied::Gap {
                op: get,
                missing: 1
            }
        );
        assert_eq!(
            kv.apply(&op(0, 1, OpKind::Get).encode(), 4),
            Applied::Stale(op(0, 1, OpKind::Get))
        );
    }

    #[test]
    fn snapshot_data_restores_the_same_state() {
        let mut kv = Kv::new(3, 2);
        kv.apply(&op(0, 1, OpKind::Put { value: 4 }).encode(), 2);
        kv.apply(b"", 3);
        kv.apply(
            &op(
                1,
                1,
                OpKind::Cas {
                    expected: 4,
                    new: 5,
                },
            )
            .encode(),
            4,
        );
        let back = Kv::decode(&kv.encode(), 3, 2).expect("decodes");
        assert_eq!(back, kv);
        assert_eq!(Kv::decode(b"", 3, 2), Ok(Kv::new(3, 2)));
        assert!(Kv::decode(&kv.encode(), 2, 2).is_err(), "shape is checked");
        assert!(Kv::decode(&kv.encode()[..10], 3, 2).is_err());
    }
}
