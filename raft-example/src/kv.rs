//! The replicated state machine: an ordered key-value map with etcd's MVCC metadata, and the
//! membership address book.
//!
//! Data model (etcd v3's, so that an etcd API can sit on it later):
//! - a cluster-wide `revision`, 1 on an empty store, raised by one by every write that changes
//!   something (a put, or a delete that removed a key; deleting a missing key changes nothing);
//! - per key: `create_revision` (the revision that created this incarnation of the key),
//!   `mod_revision` (the revision of its last put) and `version` (puts since it was created,
//!   from 1; a delete ends the incarnation and the next put starts at version 1 again).
//!
//! Only the latest value of each key is kept (no history, no watch), as etcd after compaction.
//!
//! Applying is idempotent: the map remembers the index of the last entry it applied
//! (`applied`), which travels with its snapshots; an entry at or below it is skipped, so a
//! restart that replays the log from the snapshot's index never applies anything twice.
//!
//! # Entry payload (a log entry's `data`), version 1
//!
//! ```text
//!   byte 0     format version = 1
//!   byte 1     operation: 1 = put, 2 = delete
//!   bytes 2..6 key length K (u32, big-endian)
//!   K bytes    key
//!   rest       the value (put only; a delete has nothing after the key)
//! ```
//! An empty payload (a new leader's first entry) is a no-op. A payload that does not decode
//! is applied as a no-op on every member alike (the node logs it); only this crate writes
//! entries, so it never happens without a bug.
//!
//! Configuration-change entries carry a [`Member`] (encoded with [`Member::encode`]) in the
//! `ConfChangeV2` context: the address book follows them.
//!
//! # Snapshot data, version 1
//!
//! ```text
//!   "RXKV" 1 | applied u64 | revision u64 | members u32 | (id u64, peer str, http str)*
//!            | keys u64 | (key bytes, value bytes, create u64, mod u64, version u64)*
//! ```
//! where `str`/`bytes` are a u32 big-endian length and that many bytes; integers are
//! big-endian. Decoding checks every length and refuses trailing bytes. The snapshot file
//! around it (STORAGE's `snapfile`) adds the CRC. Empty data (the founding snapshot raft-core's
//! `MemStorage::new_with_conf_state` makes) decodes as an empty store.

use bytes::Bytes;
use raft_core::{ConfChangeType, ConfChangeV2};
use std::collections::BTreeMap;
use std::ops::Bound;

/// Why a payload or a snapshot could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KvError {
    /// The data ended before a field it announced.
    #[error("truncated {what}: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: usize,
        /// How many bytes were missing.
        needed: usize,
    },
    /// A version byte this build does not know.
    #[error("unknown {what} version {version}")]
    Version {
        /// What was being read.
        what: &'static str,
        /// The version found.
        version: u8,
    },
    /// An unknown operation code.
    #[error("unknown operation {0}")]
    Operation(u8),
    /// A snapshot that does not start with the magic bytes.
    #[error("not a key-value snapshot (bad magic)")]
    Magic,
    /// Bytes after the end of a snapshot.
    #[error("{0} trailing bytes after the snapshot")]
    Trailing(usize),
    /// A string field that is not UTF-8.
    #[error("{0} is not UTF-8")]
    Utf8(&'static str),
}

/// A client operation, as carried in a log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: Bytes,
    },
}

/// What an applied operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// A put; the store's revision after it.
    Put {
        /// The revision of the write.
        revision: u64,
    },
    /// A delete: how many keys it removed (0 or 1) and the store's revision after it.
    Delete {
        /// 0 or 1.
        deleted: u64,
        /// The store's revision after the delete.
        revision: u64,
    },
}

/// One key's value and metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The value.
    pub value: Bytes,
    /// The revision that created this incarnation of the key.
    pub create_revision: u64,
    /// The revision of the last put.
    pub mod_revision: u64,
    /// Puts since the key was created (from 1).
    pub version: u64,
}

/// A member of the cluster: its id and the addresses others reach it at.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// The node id.
    pub id: u64,
    /// Its peer (Raft transport) address, `host:port`.
    pub peer_addr: String,
    /// Its client (HTTP) address, `host:port`.
    pub http_addr: String,
}

const PAYLOAD_VERSION: u8 = 1;
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const SNAP_MAGIC: &[u8; 4] = b"RXKV";
const SNAP_VERSION: u8 = 1;
const MEMBER_VERSION: u8 = 1;

impl Op {
    /// The entry payload for this operation (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let (code, key, value) = match self {
            Op::Put { key, value } => (OP_PUT, key, Some(value)),
            Op::Delete { key } => (OP_DELETE, key, None),
        };
        let mut out = Vec::with_capacity(6 + key.len() + value.map_or(0, Bytes::len));
        out.push(PAYLOAD_VERSION);
        out.push(code);
        put_u32(&mut out, key.len());
        out.extend_from_slice(key);
        if let Some(v) = value {
            out.extend_from_slice(v);
        }
        out
    }

    /// Decodes an entry payload; `None` for the empty payload (a no-op entry). Slices of
    /// `data` are shared, not copied.
    ///
    /// # Errors
    /// [`KvError`] when the payload is not one [`Op::encode`] writes.
    pub fn decode(data: &Bytes) -> Result<Option<Op>, KvError> {
        if data.is_empty() {
            return Ok(None);
        }
        let mut r = Reader::new(data, "entry payload");
        let version = r.u8()?;
        if version != PAYLOAD_VERSION {
            return Err(KvError::Version {
                what: "entry payload",
                version,
            });
        }
        let code = r.u8()?;
        let key = r.bytes()?;
        let op = match code {
            OP_PUT => Op::Put {
                key,
                value: data.slice(r.pos..),
            },
            OP_DELETE => {
                if r.remaining() != 0 {
                    return Err(KvError::Trailing(r.remaining()));
                }
                Op::Delete { key }
            }
            other => return Err(KvError::Operation(other)),
        };
        Ok(Some(op))
    }
}

impl Member {
    /// The encoding carried in a configuration change's context.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![MEMBER_VERSION];
        put_u64(&mut out, self.id);
        put_str(&mut out, &self.peer_addr);
        put_str(&mut out, &self.http_addr);
        out
    }

    /// Decodes [`Member::encode`]'s output.
    ///
    /// # Errors
    /// [`KvError`] when `data` is not such an encoding.
    pub fn decode(data: &Bytes) -> Result<Member, KvError> {
        let mut r = Reader::new(data, "member");
        let version = r.u8()?;
        if version != MEMBER_VERSION {
            return Err(KvError::Version {
                what: "member",
                version,
            });
        }
        let m = read_member(&mut r)?;
        if r.remaining() != 0 {
            return Err(KvError::Trailing(r.remaining()));
        }
        Ok(m)
    }
}

fn read_member(r: &mut Reader<'_>) -> Result<Member, KvError> {
    Ok(Member {
        id: r.u64()?,
        peer_addr: r.string("peer address")?,
        http_addr: r.string("http address")?,
    })
}

/// The state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kv {
    map: BTreeMap<Bytes, Record>,
    revision: u64,
    applied: u64,
    members: BTreeMap<u64, Member>,
}

impl Default for Kv {
    fn default() -> Self {
        Kv::new()
    }
}

impl Kv {
    /// An empty store at revision 1 that has applied nothing.
    pub fn new() -> Kv {
        Kv {
            map: BTreeMap::new(),
            revision: 1,
            applied: 0,
            members: BTreeMap::new(),
        }
    }

    /// A founding store: empty, with the initial members, as of index `applied` (the founding
    /// snapshot's index).
    pub fn founding(members: impl IntoIterator<Item = Member>, applied: u64) -> Kv {
        let mut kv = Kv::new();
        kv.members = members.into_iter().map(|m| (m.id, m)).collect();
        kv.applied = applied;
        kv
    }

    /// The cluster-wide revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The index of the last entry applied.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The members' address book, by id.
    pub fn members(&self) -> &BTreeMap<u64, Member> {
        &self.members
    }

    /// Applies `op` as the entry at `index`. `None` when `index` was applied before (replay).
    pub fn apply(&mut self, index: u64, op: &Op) -> Option<OpResult> {
        if index <= self.applied {
            return None;
        }
        self.applied = index;
        Some(match op {
            Op::Put { key, value } => {
                self.revision += 1;
                let revision = self.revision;
                self.map
                    .entry(key.clone())
                    .and_modify(|r| {
                        r.value = value.clone();
                        r.mod_revision = revision;
                        r.version += 1;
                    })
                    .or_insert_with(|| Record {
                        value: value.clone(),
                        create_revision: revision,
                        mod_revision: revision,
                        version: 1,
                    });
                OpResult::Put { revision }
            }
            Op::Delete { key } => {
                let deleted = if self.map.remove(key).is_some() {
                    self.revision += 1;
                    1
                } else {
                    0
                };
                OpResult::Delete {
                    deleted,
                    revision: self.revision,
                }
            }
        })
    }

    /// Records that the entry at `index` changed nothing here (a no-op entry, or one that did
    /// not decode). Returns whether it was new.
    pub fn apply_noop(&mut self, index: u64) -> bool {
        if index <= self.applied {
            return false;
        }
        self.applied = index;
        true
    }

    /// Applies a configuration change entry at `index` to the address book: added members
    /// (with a [`Member`] in the context) are recorded, removed ones dropped. A promotion
    /// (no context) keeps the recorded addresses. Returns whether it was new.
    pub fn apply_conf_change(&mut self, index: u64, cc: &ConfChangeV2) -> bool {
        if index <= self.applied {
            return false;
        }
        self.applied = index;
        let member = Member::decode(&cc.context).ok();
        for c in &cc.changes {
            match ConfChangeType::try_from(c.change_type) {
                Ok(ConfChangeType::AddNode | ConfChangeType::AddLearnerNode) => {
                    if let Some(m) = member.as_ref().filter(|m| m.id == c.node_id) {
                        self.members.insert(m.id, m.clone());
                    }
                }
                Ok(ConfChangeType::RemoveNode) => {
                    self.members.remove(&c.node_id);
                }
                Ok(ConfChangeType::UpdateNode) | Err(_) => {}
            }
        }
        true
    }

    /// The record of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Record> {
        self.map.get(key)
    }

    /// Keys in `[start, end)` (`end` `None`: to the last key), at most `limit` (0: no limit).
    /// Returns the pairs and whether more keys were in range.
    pub fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> (Vec<(&Bytes, &Record)>, bool) {
        if end.is_some_and(|e| e <= start) {
            return (Vec::new(), false);
        }
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        let mut it = self.map.range::<[u8], _>((Bound::Included(start), upper));
        let mut out = Vec::new();
        for kv in it.by_ref() {
            if limit != 0 && out.len() == limit {
                return (out, true);
            }
            out.push(kv);
        }
        (out, false)
    }

    /// Keys starting with `prefix`, at most `limit` (0: no limit), and whether there were more.
    pub fn prefix(&self, prefix: &[u8], limit: usize) -> (Vec<(&Bytes, &Record)>, bool) {
        let end = prefix_end(prefix);
        self.range(prefix, end.as_deref(), limit)
    }

    /// The snapshot data of this store (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let size: usize = self
            .map
            .iter()
            .map(|(k, r)| 32 + k.len() + r.value.len())
            .sum();
        let mut out = Vec::with_capacity(64 + size);
        out.extend_from_slice(SNAP_MAGIC);
        out.push(SNAP_VERSION);
        put_u64(&mut out, self.applied);
        put_u64(&mut out, self.revision);
        put_u32(&mut out, self.members.len());
        for m in self.members.values() {
            put_u64(&mut out, m.id);
            put_str(&mut out, &m.peer_addr);
            put_str(&mut out, &m.http_addr);
        }
        put_u64(&mut out, self.map.len() as u64);
        for (k, r) in &self.map {
            put_u32(&mut out, k.len());
            out.extend_from_slice(k);
            put_u32(&mut out, r.value.len());
            out.extend_from_slice(&r.value);
            put_u64(&mut out, r.create_revision);
            put_u64(&mut out, r.mod_revision);
            put_u64(&mut out, r.version);
        }
        out
    }

    /// Decodes [`Kv::encode`]'s output; empty data is an empty store.
    ///
    /// # Errors
    /// [`KvError`] when `data` is not such an encoding.
    pub fn decode(data: &Bytes) -> Result<Kv, KvError> {
        if data.is_empty() {
            return Ok(Kv::new());
        }
        let mut r = Reader::new(data, "snapshot");
        if r.take(4)? != SNAP_MAGIC {
            return Err(KvError::Magic);
        }
        let version = r.u8()?;
        if version != SNAP_VERSION {
            return Err(KvError::Version {
                what: "snapshot",
                version,
            });
        }
        let applied = r.u64()?;
        let revision = r.u64()?;
        let n_members = r.u32()?;
        let mut members = BTreeMap::new();
        for _ in 0..n_members {
            let m = read_member(&mut r)?;
            members.insert(m.id, m);
        }
        let n_keys = r.u64()?;
        let mut map = BTreeMap::new();
        for _ in 0..n_keys {
            let key = r.bytes()?;
            let value = r.bytes()?;
            let record = Record {
                value,
                create_revision: r.u64()?,
                mod_revision: r.u64()?,
                version: r.u64()?,
            };
            map.insert(key, record);
        }
        if r.remaining() != 0 {
            return Err(KvError::Trailing(r.remaining()));
        }
        Ok(Kv {
            map,
            revision,
            applied,
            members,
        })
    }
}

/// The smallest key greater than every key with `prefix`, `None` if there is none (an empty
/// prefix, or one of 0xff bytes only).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).expect("lengths are bounded far below 4 GiB");
    out.extend_from_slice(&n.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// A bounds-checked reader over shared bytes.
struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(data: &'a Bytes, what: &'static str) -> Reader<'a> {
        Reader { data, pos: 0, what }
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], KvError> {
        if self.remaining() < n {
            return Err(KvError::Truncated {
                what: self.what,
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let data: &'a Bytes = self.data;
        let s = &data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, KvError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, KvError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, KvError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn bytes(&mut self) -> Result<Bytes, KvError> {
        let n = self.u32()? as usize;
        let start = self.pos;
        self.take(n)?;
        Ok(self.data.slice(start..start + n))
    }

    fn string(&mut self, what: &'static str) -> Result<String, KvError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| KvError::Utf8(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{ConfChange, ConfChangeSingle};

    fn put(k: &str, v: &str) -> Op {
        Op::Put {
            key: Bytes::copy_from_slice(k.as_bytes()),
            value: Bytes::copy_from_slice(v.as_bytes()),
        }
    }

    fn del(k: &str) -> Op {
        Op::Delete {
            key: Bytes::copy_from_slice(k.as_bytes()),
        }
    }

    fn member(id: u64) -> Member {
        Member {
            id,
            peer_addr: format!("127.0.0.1:{}", 7000 + id),
            http_addr: format!("127.0.0.1:{}", 8000 + id),
        }
    }

    #[test]
    fn mvcc_metadata_follows_etcd() {
        let mut kv = Kv::new();
        assert_eq!(kv.revision(), 1);
        assert_eq!(
            kv.apply(2, &put("a", "1")),
            Some(OpResult::Put { revision: 2 })
        );
        assert_eq!(
            kv.apply(3, &put("a", "2")),
            Some(OpResult::Put { revision: 3 })
        );
        let r = kv.get(b"a").unwrap();
        assert_eq!((r.create_revision, r.mod_revision, r.version), (2, 3, 2));
        assert_eq!(&r.value[..], b"2");
        // Deleting a missing key changes nothing, not even the revision.
        assert_eq!(
            kv.apply(4, &del("zz")),
            Some(OpResult::Delete {
                deleted: 0,
                revision: 3
            })
        );
        assert_eq!(
            kv.apply(5, &del("a")),
            Some(OpResult::Delete {
                deleted: 1,
                revision: 4
            })
        );
        assert!(kv.get(b"a").is_none());
        // A new incarnation starts at version 1 with a new create revision.
        kv.apply(6, &put("a", "3"));
        let r = kv.get(b"a").unwrap();
        assert_eq!((r.create_revision, r.mod_revision, r.version), (5, 5, 1));
        assert_eq!(kv.applied(), 6);
    }

    #[test]
    fn replayed_entries_are_not_applied_twice() {
        let mut kv = Kv::new();
        kv.apply(2, &put("a", "1"));
        kv.apply(3, &put("a", "2"));
        let before = kv.clone();
        // A restart replays from an earlier index: nothing changes.
        assert_eq!(kv.apply(2, &put("a", "1")), None);
        assert_eq!(kv.apply(3, &put("a", "2")), None);
        assert!(!kv.apply_noop(3));
        assert_eq!(kv, before);
        // The same holds for a store restored from its snapshot.
        let mut restored = Kv::decode(&Bytes::from(kv.encode())).unwrap();
        assert_eq!(restored.apply(3, &put("a", "2")), None);
        assert_eq!(restored, before);
        assert_eq!(
            restored.apply(4, &put("a", "3")),
            Some(OpResult::Put { revision: 4 })
        );
        assert_eq!(restored.get(b"a").unwrap().version, 3);
    }

    #[test]
    fn payloads_round_trip_and_bad_ones_are_refused() {
        for op in [put("k/with/slash", "v"), put("", ""), del("x")] {
            let data = Bytes::from(op.encode());
            assert_eq!(Op::decode(&data), Ok(Some(op)));
        }
        assert_eq!(Op::decode(&Bytes::new()), Ok(None));
        let mut bad = put("key", "v").encode();
        bad[0] = 9;
        assert_eq!(
            Op::decode(&Bytes::from(bad)),
            Err(KvError::Version {
                what: "entry payload",
                version: 9
            })
        );
        let good = put("key", "v").encode();
        assert!(matches!(
            Op::decode(&Bytes::copy_from_slice(&good[..4])),
            Err(KvError::Truncated { .. })
        ));
        let mut bad = del("key").encode();
        bad[1] = 7;
        assert_eq!(Op::decode(&Bytes::from(bad)), Err(KvError::Operation(7)));
        let mut bad = del("key").encode();
        bad.push(0);
        assert_eq!(Op::decode(&Bytes::from(bad)), Err(KvError::Trailing(1)));
    }

    #[test]
    fn snapshots_round_trip_and_damaged_ones_are_refused() {
        let mut kv = Kv::founding([member(1), member(2)], 1);
        for i in 0..50u64 {
            kv.apply(i + 2, &put(&format!("k{i:02}"), &"x".repeat(i as usize)));
        }
        kv.apply(60, &del("k07"));
        let data = Bytes::from(kv.encode());
        let back = Kv::decode(&data).unwrap();
        assert_eq!(back, kv);
        assert_eq!(back.members().len(), 2);
        assert_eq!(Kv::decode(&Bytes::new()).unwrap(), Kv::new());
        // Every truncation is refused, never a partial store.
        for cut in [1, 4, 5, 13, 30, data.len() / 2, data.len() - 1] {
            assert!(Kv::decode(&data.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut trailing = data.to_vec();
        trailing.push(1);
        assert_eq!(
            Kv::decode(&Bytes::from(trailing)),
            Err(KvError::Trailing(1))
        );
        let mut magic = data.to_vec();
        magic[0] = b'X';
        assert_eq!(Kv::decode(&Bytes::from(magic)), Err(KvError::Magic));
    }

    #[test]
    fn ranges_and_prefixes() {
        let mut kv = Kv::new();
        for (i, k) in ["a", "b/1", "b/2", "b/3", "c", "\u{ff}"].iter().enumerate() {
            kv.apply(i as u64 + 1, &put(k, "v"));
        }
        let keys = |v: Vec<(&Bytes, &Record)>| -> Vec<String> {
            v.into_iter()
                .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
                .collect()
        };
        let (got, more) = kv.prefix(b"b/", 0);
        assert_eq!(keys(got), ["b/1", "b/2", "b/3"]);
        assert!(!more);
        let (got, more) = kv.prefix(b"b/", 2);
        assert_eq!(keys(got), ["b/1", "b/2"]);
        assert!(more);
        let (got, more) = kv.range(b"a", Some(b"b/3"), 0);
        assert_eq!(keys(got), ["a", "b/1", "b/2"]);
        assert!(!more);
        assert_eq!(kv.range(b"c", Some(b"a"), 0).0.len(), 0);
        assert_eq!(kv.prefix(b"", 0).0.len(), 6);
        assert_eq!(prefix_end(&[0x61, 0xff]), Some(vec![0x62]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }

    #[test]
    fn the_address_book_follows_configuration_changes() {
        let mut kv = Kv::founding([member(1)], 1);
        let add = |id: u64, kind: ConfChangeType, with_ctx: bool| -> ConfChangeV2 {
            ConfChange {
                id: 0,
                change_type: kind as i32,
                node_id: id,
                context: if with_ctx {
                    Bytes::from(member(id).encode())
                } else {
                    Bytes::new()
                },
            }
            .into()
        };
        assert!(kv.apply_conf_change(2, &add(2, ConfChangeType::AddLearnerNode, true)));
        assert_eq!(kv.members().get(&2), Some(&member(2)));
        // Promotion without context keeps the addresses.
        assert!(kv.apply_conf_change(3, &add(2, ConfChangeType::AddNode, false)));
        assert_eq!(kv.members().get(&2), Some(&member(2)));
        // Replay is a no-op.
        assert!(!kv.apply_conf_change(3, &add(2, ConfChangeType::RemoveNode, false)));
        assert!(kv.members().contains_key(&2));
        let remove = ConfChangeV2 {
            transition: 0,
            changes: vec![ConfChangeSingle::new(ConfChangeType::RemoveNode, 1)],
            context: Bytes::new(),
        };
        assert!(kv.apply_conf_change(4, &remove));
        assert_eq!(kv.members().keys().copied().collect::<Vec<_>>(), [2]);
        assert!(Member::decode(&Bytes::from_static(b"\x01\x00")).is_err());
    }
}
