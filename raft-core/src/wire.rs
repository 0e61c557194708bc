//! Wire types: the protobuf messages of `proto/raft.proto`, derived with prost by hand.
//!
//! Deriving instead of generating means a build needs no `protoc`; the test
//! `schema_matches_rust_types` keeps this file and the schema in step (names and numbers).
//!
//! Invariants:
//! 1. Field numbers never change; new fields take new numbers.
//! 2. Enumerations are stored as `i32` (prost's convention, so unknown values survive
//!    decoding); code that acts on a kind converts with `try_from` and treats an unknown
//!    value as bad input, never as a default.

use bytes::Bytes;
use prost::Message as _;

/// The kind of a log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum EntryType {
    /// Application data (or empty, as a new leader's first entry).
    EntryNormal = 0,
    /// A [`ConfChange`], encoded in `data`.
    EntryConfChange = 1,
    /// A [`ConfChangeV2`], encoded in `data`.
    EntryConfChangeV2 = 2,
}

/// One log entry.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Entry {
    /// The kind of entry, an [`EntryType`] as `i32`.
    #[prost(enumeration = "EntryType", tag = "1")]
    pub entry_type: i32,
    /// The term in which the entry was created by a leader.
    #[prost(uint64, tag = "2")]
    pub term: u64,
    /// The position of the entry in the log, from 1.
    #[prost(uint64, tag = "3")]
    pub index: u64,
    /// The payload.
    #[prost(bytes = "bytes", tag = "4")]
    pub data: Bytes,
}

/// The state a node must persist before it acts on it: current term, vote and commit index.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct HardState {
    /// The latest term this node has seen.
    #[prost(uint64, tag = "1")]
    pub term: u64,
    /// The candidate this node voted for in `term`, or 0.
    #[prost(uint64, tag = "2")]
    pub vote: u64,
    /// The highest index known to be committed.
    #[prost(uint64, tag = "3")]
    pub commit: u64,
}

/// A cluster configuration: who votes, who learns, and the outgoing half of a joint one.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct ConfState {
    /// Voters of the (incoming) configuration.
    #[prost(uint64, repeated, tag = "1")]
    pub voters: Vec<u64>,
    /// Learners: receive the log, never vote.
    #[prost(uint64, repeated, tag = "2")]
    pub learners: Vec<u64>,
    /// Voters of the outgoing configuration while joint; empty otherwise.
    #[prost(uint64, repeated, tag = "3")]
    pub voters_outgoing: Vec<u64>,
    /// Voters being demoted to learners once the joint configuration is left.
    #[prost(uint64, repeated, tag = "4")]
    pub learners_next: Vec<u64>,
    /// Whether the joint configuration is left automatically.
    #[prost(bool, tag = "5")]
    pub auto_leave: bool,
}

/// What a snapshot covers: the last included entry and the configuration at that point.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct SnapshotMetadata {
    /// The configuration as of `index`.
    #[prost(message, optional, tag = "1")]
    pub conf_state: Option<ConfState>,
    /// The last log index the snapshot includes.
    #[prost(uint64, tag = "2")]
    pub index: u64,
    /// The term of the entry at `index`.
    #[prost(uint64, tag = "3")]
    pub term: u64,
}

/// A state-machine snapshot and its metadata.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Snapshot {
    /// The application's serialized state.
    #[prost(bytes = "bytes", tag = "1")]
    pub data: Bytes,
    /// What the snapshot covers.
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<SnapshotMetadata>,
}

/// The kinds of message that travel between nodes. Numbers are etcd's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MessageType {
    /// Never valid on the wire; the protobuf zero value.
    MsgUnspecified = 0,
    /// A proposal forwarded from a follower to the leader.
    MsgProp = 2,
    /// Append entries (also the probe that carries none).
    MsgApp = 3,
    /// Response to [`MessageType::MsgApp`].
    MsgAppResp = 4,
    /// Request vote.
    MsgVote = 5,
    /// Response to [`MessageType::MsgVote`].
    MsgVoteResp = 6,
    /// Install snapshot.
    MsgSnap = 7,
    /// Leader heartbeat.
    MsgHeartbeat = 8,
    /// Response to [`MessageType::MsgHeartbeat`].
    MsgHeartbeatResp = 9,
    /// Ask the leader to transfer leadership to the sender.
    MsgTransferLeader = 13,
    /// Tell the transfer target to campaign at once.
    MsgTimeoutNow = 14,
    /// A read-index request forwarded to the leader.
    MsgReadIndex = 15,
    /// The leader's answer to a forwarded read-index request.
    MsgReadIndexResp = 16,
    /// Pre-vote request (the term in it is not adopted).
    MsgPreVote = 17,
    /// Response to [`MessageType::MsgPreVote`].
    MsgPreVoteResp = 18,
}

/// A message between two nodes.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Message {
    /// The kind, a [`MessageType`] as `i32`.
    #[prost(enumeration = "MessageType", tag = "1")]
    pub msg_type: i32,
    /// Recipient node id.
    #[prost(uint64, tag = "2")]
    pub to: u64,
    /// Sender node id.
    #[prost(uint64, tag = "3")]
    pub from: u64,
    /// The sender's term (0 only for a forwarded proposal or read request).
    #[prost(uint64, tag = "4")]
    pub term: u64,
    /// Append: term of the entry at `index`. Vote: term of the candidate's last entry.
    #[prost(uint64, tag = "5")]
    pub log_term: u64,
    /// Append: index preceding `entries`. Vote: the candidate's last index. Responses: the
    /// index acknowledged or rejected.
    #[prost(uint64, tag = "6")]
    pub index: u64,
    /// Entries to append, or proposals to forward.
    #[prost(message, repeated, tag = "7")]
    pub entries: Vec<Entry>,
    /// The commit index the sender vouches for.
    #[prost(uint64, tag = "8")]
    pub commit: u64,
    /// The snapshot of a [`MessageType::MsgSnap`].
    #[prost(message, optional, boxed, tag = "9")]
    pub snapshot: Option<Box<Snapshot>>,
    /// Whether a response refuses the request.
    #[prost(bool, tag = "10")]
    pub reject: bool,
    /// A rejected append: the follower's hint of where the logs may agree.
    #[prost(uint64, tag = "11")]
    pub reject_hint: u64,
    /// Opaque caller data (pre-vote/vote: campaign kind; read-index: the request context).
    #[prost(bytes = "bytes", tag = "12")]
    pub context: Bytes,
    /// A leader-generated id tying heartbeats and their responses to a read-index round; on
    /// a forwarded read request and its answer, the requester's id for the request.
    #[prost(uint64, tag = "15")]
    pub read_round: u64,
    /// Vote and pre-vote requests: the term of the entry at `commit` in the candidate's log,
    /// so that a voter holding that entry learns that everything up to it is committed.
    #[prost(uint64, tag = "16")]
    pub commit_term: u64,
    /// A forwarded read request or transfer request: the node that asked (0 when it is the
    /// sender). A read is answered to it, and leadership is transferred to it.
    #[prost(uint64, tag = "17")]
    pub requester: u64,
}

/// The kind of a single membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ConfChangeType {
    /// Add a voter, or promote a learner.
    AddNode = 0,
    /// Remove a voter or learner.
    RemoveNode = 1,
    /// Update a node's context (no change to the configuration).
    UpdateNode = 2,
    /// Add a learner, or demote a voter.
    AddLearnerNode = 3,
}

/// A single membership change (etcd's V1 form).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ConfChange {
    /// A caller-chosen id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The kind, a [`ConfChangeType`] as `i32`.
    #[prost(enumeration = "ConfChangeType", tag = "2")]
    pub change_type: i32,
    /// The node the change is about.
    #[prost(uint64, tag = "3")]
    pub node_id: u64,
    /// Opaque application data (for example the node's address).
    #[prost(bytes = "bytes", tag = "4")]
    pub context: Bytes,
}

/// One change within a [`ConfChangeV2`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ConfChangeSingle {
    /// The kind, a [`ConfChangeType`] as `i32`.
    #[prost(enumeration = "ConfChangeType", tag = "1")]
    pub change_type: i32,
    /// The node the change is about.
    #[prost(uint64, tag = "2")]
    pub node_id: u64,
}

/// How a [`ConfChangeV2`] moves between configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ConfChangeTransition {
    /// Single-step if possible, otherwise joint with automatic leave.
    Auto = 0,
    /// Joint consensus, left automatically.
    JointImplicit = 1,
    /// Joint consensus, left only by an explicit empty change.
    JointExplicit = 2,
}

/// Several membership changes applied together (etcd's V2 form).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ConfChangeV2 {
    /// The kind, a [`ConfChangeTransition`] as `i32`.
    #[prost(enumeration = "ConfChangeTransition", tag = "1")]
    pub transition: i32,
    /// The changes; empty means "leave the joint configuration".
    #[prost(message, repeated, tag = "2")]
    pub changes: Vec<ConfChangeSingle>,
    /// Opaque application data.
    #[prost(bytes = "bytes", tag = "3")]
    pub context: Bytes,
}

impl Entry {
    /// A normal entry with the given position and payload.
    pub fn normal(index: u64, term: u64, data: impl Into<Bytes>) -> Entry {
        Entry {
            entry_type: EntryType::EntryNormal as i32,
            term,
            index,
            data: data.into(),
        }
    }

    /// Bytes this entry counts for in flow control and size limits (its payload).
    #[inline]
    pub fn payload_bytes(&self) -> u64 {
        self.data.len() as u64
    }
}

impl Message {
    /// The message kind; [`MessageType::MsgUnspecified`] for a value this build does not know.
    #[inline]
    pub fn kind(&self) -> MessageType {
        MessageType::try_from(self.msg_type).unwrap_or(MessageType::MsgUnspecified)
    }

    /// Decodes a message from protobuf bytes.
    ///
    /// # Errors
    /// [`prost::DecodeError`] when the bytes are not a valid encoding.
    pub fn decode_from(buf: &[u8]) -> Result<Message, prost::DecodeError> {
        Message::decode(buf)
    }

    /// Encodes this message to protobuf bytes.
    pub fn encode_to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }
}

impl ConfState {
    /// A configuration of the given voters and no learners.
    pub fn with_voters(voters: impl Into<Vec<u64>>) -> ConfState {
        ConfState {
            voters: voters.into(),
            ..ConfState::default()
        }
    }
}

impl Snapshot {
    /// The snapshot's last included index (0 for an empty snapshot).
    #[inline]
    pub fn index(&self) -> u64 {
        self.metadata.as_ref().map_or(0, |m| m.index)
    }

    /// The term of the snapshot's last included entry.
    #[inline]
    pub fn term(&self) -> u64 {
        self.metadata.as_ref().map_or(0, |m| m.term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen, QuickCheck};

    #[derive(Clone, Debug)]
    struct ArbMessage(Message);

    fn arb_entry(g: &mut Gen) -> Entry {
        Entry {
            entry_type: i32::from(u8::arbitrary(g) % 3),
            term: u64::arbitrary(g),
            index: u64::arbitrary(g),
            data: Bytes::from(Vec::<u8>::arbitrary(g)),
        }
    }

    fn arb_conf_state(g: &mut Gen) -> ConfState {
        ConfState {
            voters: Vec::arbitrary(g),
            learners: Vec::arbitrary(g),
            voters_outgoing: Vec::arbitrary(g),
            learners_next: Vec::arbitrary(g),
            auto_leave: bool::arbitrary(g),
        }
    }

    impl Arbitrary for ArbMessage {
        fn arbitrary(g: &mut Gen) -> ArbMessage {
            let snapshot = bool::arbitrary(g).then(|| {
                Box::new(Snapshot {
                    data: Bytes::from(Vec::<u8>::arbitrary(g)),
                    metadata: Some(SnapshotMetadata {
                        conf_state: Some(arb_conf_state(g)),
                        index: u64::arbitrary(g),
                        term: u64::arbitrary(g),
                    }),
                })
            });
            ArbMessage(Message {
                msg_type: i32::arbitrary(g),
                to: u64::arbitrary(g),
                from: u64::arbitrary(g),
                term: u64::arbitrary(g),
                log_term: u64::arbitrary(g),
                index: u64::arbitrary(g),
                entries: (0..usize::arbitrary(g) % 5).map(|_| arb_entry(g)).collect(),
                commit: u64::arbitrary(g),
                snapshot,
                reject: bool::arbitrary(g),
                reject_hint: u64::arbitrary(g),
                context: Bytes::from(Vec::<u8>::arbitrary(g)),
                read_round: u64::arbitrary(g),
                commit_term: u64::arbitrary(g),
                requester: u64::arbitrary(g),
            })
        }
    }

    #[test]
    fn messages_survive_an_encode_decode_round_trip() {
        fn prop(m: ArbMessage) -> bool {
            Message::decode_from(&m.0.encode_to_bytes()).as_ref() == Ok(&m.0)
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop as fn(ArbMessage) -> bool);
    }

    #[test]
    fn conf_changes_survive_an_encode_decode_round_trip() {
        fn prop(ids: Vec<u64>, kinds: Vec<u8>, ctx: Vec<u8>) -> bool {
            let cc = ConfChangeV2 {
                transition: i32::from(kinds.first().copied().unwrap_or(0) % 3),
                changes: ids
                    .iter()
                    .zip(kinds.iter().cycle())
                    .map(|(id, k)| ConfChangeSingle {
                        change_type: i32::from(k % 4),
                        node_id: *id,
                    })
                    .collect(),
                context: Bytes::from(ctx),
            };
            ConfChangeV2::decode(cc.encode_to_vec().as_slice()).as_ref() == Ok(&cc)
        }
        QuickCheck::new()
            .tests(500)
            .quickcheck(prop as fn(Vec<u64>, Vec<u8>, Vec<u8>) -> bool);
    }

    #[test]
    fn truncated_or_garbage_bytes_fail_to_decode() {
        let m = Message {
            msg_type: MessageType::MsgApp as i32,
            entries: vec![Entry::normal(1, 1, vec![7u8; 40])],
            ..Message::default()
        };
        let bytes = m.encode_to_bytes();
        assert!(Message::decode_from(&bytes[..bytes.len() - 3]).is_err());
        assert!(Message::decode_from(&[0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(Message::decode_from(&[0x0a]).is_err());
    }

    /// Parses `proto/raft.proto` and checks every field name and number of every message
    /// against the encodings of the Rust types: a field that is set in Rust must come out
    /// under the number the schema gives its name.
    #[test]
    fn schema_matches_rust_types() {
        let schema = include_str!("../proto/raft.proto");
        let mut fields: Vec<(String, String, u32)> = Vec::new();
        let mut current: Option<String> = None;
        for line in schema.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("message ") {
                current = Some(rest.trim_end_matches(" {").trim().to_string());
            } else if line.starts_with("enum ") || line == "}" {
                current = None;
            } else if let (Some(msg), Some((lhs, num))) = (&current, line.split_once('=')) {
                let name = lhs
                    .split_whitespace()
                    .last()
                    .expect("field name")
                    .to_string();
                let num: u32 = num
                    .trim()
                    .trim_end_matches(';')
                    .parse()
                    .expect("field number");
                fields.push((msg.clone(), name, num));
            }
        }
        let tag_of = |bytes: Vec<u8>| -> u32 {
            // The first byte of a one-field encoding is the key: number << 3 | wire type.
            u32::from(bytes[0] >> 3)
        };
        let mut checked = 0;
        for (msg, name, num) in &fields {
            let encoded: Vec<u8> = match (msg.as_str(), name.as_str()) {
                ("Entry", "entry_type") => Entry {
                    entry_type: 1,
                    ..Entry::default()
                }
                .encode_to_vec(),
                ("Entry", "term") => Entry {
                    term: 1,
                    ..Entry::default()
                }
                .encode_to_vec(),
                ("Entry", "index") => Entry {
                    index: 1,
                    ..Entry::default()
                }
                .encode_to_vec(),
                ("Entry", "data") => Entry {
                    data: Bytes::from_static(b"x"),
                    ..Entry::default()
                }
                .encode_to_vec(),
                ("HardState", "term") => HardState {
                    term: 1,
                    ..HardState::default()
                }
                .encode_to_vec(),
                ("HardState", "vote") => HardState {
                    vote: 1,
                    ..HardState::default()
                }
                .encode_to_vec(),
                ("HardState", "commit") => HardState {
                    commit: 1,
                    ..HardState::default()
                }
                .encode_to_vec(),
                ("ConfState", "voters") => ConfState {
                    voters: vec![1],
                    ..ConfState::default()
                }
                .encode_to_vec(),
                ("ConfState", "learners") => ConfState {
                    learners: vec![1],
                    ..ConfState::default()
                }
                .encode_to_vec(),
                ("ConfState", "voters_outgoing") => ConfState {
                    voters_outgoing: vec![1],
                    ..ConfState::default()
                }
                .encode_to_vec(),
                ("ConfState", "learners_next") => ConfState {
                    learners_next: vec![1],
                    ..ConfState::default()
                }
                .encode_to_vec(),
                ("ConfState", "auto_leave") => ConfState {
                    auto_leave: true,
                    ..ConfState::default()
                }
                .encode_to_vec(),
                ("SnapshotMetadata", "conf_state") => SnapshotMetadata {
                    conf_state: Some(ConfState::default()),
                    ..SnapshotMetadata::default()
                }
                .encode_to_vec(),
                ("SnapshotMetadata", "index") => SnapshotMetadata {
                    index: 1,
                    ..SnapshotMetadata::default()
                }
                .encode_to_vec(),
                ("SnapshotMetadata", "term") => SnapshotMetadata {
                    term: 1,
                    ..SnapshotMetadata::default()
                }
                .encode_to_vec(),
                ("Snapshot", "data") => Snapshot {
                    data: Bytes::from_static(b"x"),
                    ..Snapshot::default()
                }
                .encode_to_vec(),
                ("Snapshot", "metadata") => Snapshot {
                    metadata: Some(SnapshotMetadata::default()),
                    ..Snapshot::default()
                }
                .encode_to_vec(),
                ("Message", "msg_type") => Message {
                    msg_type: 3,
                    ..Message::default()
                }
                .encode_to_vec(),
                ("Message", "to") => Message {
                    to: 1,
                    ..Message::default()
                }
                .encode_to_vec(),
                ("Message", "from") => Message {
                    from: 1,
                    ..Message::default()
                }
                .encode_to_vec(),
                ("Message", "term") => Message {
                    term: 1,
                    ..Message::default()
                }
                .encode_to_vec(),
                ("Message", "log_term") => Message {
                    log_term: 1,
                    ..Message::default()
                }
                .encode_to_vec(),
                ("Message", "index") => Message {
                    index: 1,
                    ..Message::default()
                }
                .encode_to_vec(),
                ("Message", "entries") => Message {
                    entries: vec![Entry::default()],
                    ..Message::default()
                }
                .encode_to_vec(),
                ("Message", "commit") => Message {
                    commit: 1,
                    ..Message::default()
                }
                .encode_to_vec(),
                ("Message", "snapshot") => Message {
                    snapshot: Some(Box::default()),
                    ..Message::default()
                }
                .encode_to_vec(),
                ("Message", "reject") => Message {
                    reject: true,
                    ..Message::default()
                }
                .encode_to_vec(),
                ("Message", "reject_hint") => Message {
                    reject_hint: 1,
                    ..Message::default()
                }
                .encode_to_vec(),
                ("Message", "context") => Message {
                    context: Bytes::from_static(b"x"),
                    ..Message::default()
                }
                .encode_to_vec(),
                ("Message", "read_round") => Message {
                    read_round: 1,
                    ..Message::default()
                }
                .encode_to_vec(),
                ("Message", "commit_term") => Message {
                    commit_term: 1,
                    ..Message::default()
                }
                .encode_to_vec(),
                ("Message", "requester") => Message {
                    requester: 1,
                    ..Message::default()
                }
                .encode_to_vec(),
                ("ConfChange", "id") => ConfChange {
                    id: 1,
                    ..ConfChange::default()
                }
                .encode_to_vec(),
                ("ConfChange", "change_type") => ConfChange {
                    change_type: 1,
                    ..ConfChange::default()
                }
                .encode_to_vec(),
                ("ConfChange", "node_id") => ConfChange {
                    node_id: 1,
                    ..ConfChange::default()
                }
                .encode_to_vec(),
                ("ConfChange", "context") => ConfChange {
                    context: Bytes::from_static(b"x"),
                    ..ConfChange::default()
                }
                .encode_to_vec(),
                ("ConfChangeSingle", "change_type") => ConfChangeSingle {
                    change_type: 1,
                    ..ConfChangeSingle::default()
                }
                .encode_to_vec(),
                ("ConfChangeSingle", "node_id") => ConfChangeSingle {
                    node_id: 1,
                    ..ConfChangeSingle::default()
                }
                .encode_to_vec(),
                ("ConfChangeV2", "transition") => ConfChangeV2 {
                    transition: 1,
                    ..ConfChangeV2::default()
                }
                .encode_to_vec(),
                ("ConfChangeV2", "changes") => ConfChangeV2 {
                    changes: vec![ConfChangeSingle::default()],
                    ..ConfChangeV2::default()
                }
                .encode_to_vec(),
                ("ConfChangeV2", "context") => ConfChangeV2 {
                    context: Bytes::from_static(b"x"),
                    ..ConfChangeV2::default()
                }
                .encode_to_vec(),
                other => panic!("schema field {other:?} has no Rust counterpart in this test"),
            };
            assert_eq!(
                tag_of(encoded),
                *num,
                "{msg}.{name}: schema and Rust disagree"
            );
            checked += 1;
        }
        assert_eq!(checked, 41, "every schema field is checked");
    }
}
