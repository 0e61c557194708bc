//! The event trace: a running hash of every event (always on, for determinism checks and
//! golden traces) and, when asked for, readable lines in a compact notation:
//!
//! ```text
//!   12.345678 n1@3 → n2 MsgApp 2/5 +3 c4        message from n1 (term 3) to n2 leaves
//!   12.346001 n2 ← n1 MsgApp ...                  delivered
//!   12.350000 n2 persist #7 hs 3/0/4 ents 6..8 sync
//!   12.351200 n2 fsync #7
//!   12.351200 n2 apply 5..6
//!   12.400000 nemesis crash n3 (lost 4 records, 1 survived, torn)
//! ```
//!
//! The hash is FNV-style over 64-bit words fed in event order; the lines are built only when
//! tracing is on, so a sweep pays for the hash alone.
//!
//! Invariants:
//! 1. The hash depends only on the words fed, in order; it never sees the readable lines.

use raft_core::{Message, MessageType};
use std::fmt::Write as _;

/// The trace of one run.
#[derive(Debug)]
pub struct Trace {
    hash: u64,
    lines: Option<String>,
}

impl Trace {
    /// A trace; `readable` keeps the lines as well as the hash.
    pub fn new(readable: bool) -> Trace {
        Trace {
            hash: 0xcbf2_9ce4_8422_2325,
            lines: readable.then(String::new),
        }
    }

    /// Feeds one word into the hash.
    pub fn mix(&mut self, x: u64) {
        self.hash = (self.hash ^ x)
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(29);
    }

    /// Feeds the identifying fields of a message.
    pub fn mix_msg(&mut self, m: &Message) {
        self.mix(m.msg_type as u64 | (m.from << 8) | (m.to << 16) | (u64::from(m.reject) << 24));
        self.mix(m.term);
        self.mix(m.index ^ (m.log_term << 32));
        self.mix(m.commit ^ ((m.entries.len() as u64) << 40));
    }

    /// Whether readable lines are kept.
    pub fn is_readable(&self) -> bool {
        self.lines.is_some()
    }

    /// Adds a readable line (built only when tracing is on).
    pub fn line(&mut self, now_us: u64, f: impl FnOnce() -> String) {
        if let Some(out) = &mut self.lines {
            let _ = writeln!(
                out,
                "{:>3}.{:06} {}",
                now_us / 1_000_000,
                now_us % 1_000_000,
                f()
            );
        }
    }

    /// The hash of everything fed so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The readable lines, if kept.
    pub fn into_text(self) -> Option<String> {
        self.lines
    }
}

/// A message in trace notation: `MsgApp 2/5 +3 c4`, `MsgVoteResp reject`, ...
pub fn describe(m: &Message) -> String {
    let kind = m.kind();
    let mut s = format!("{kind:?}");
    match kind {
        MessageType::MsgApp => {
            let _ = write!(
                s,
                " {}/{} +{} c{}",
                m.log_term,
                m.index,
                m.entries.len(),
                m.commit
            );
        }
        MessageType::MsgAppResp => {
            let _ = write!(s, " i{}", m.index);
            if m.reject {
                let _ = write!(s, " reject hint {}/{}", m.log_term, m.reject_hint);
            }
        }
        MessageType::MsgVote | MessageType::MsgPreVote => {
            let _ = write!(s, " last {}/{}", m.log_term, m.index);
        }
        MessageType::MsgVoteResp | MessageType::MsgPreVoteResp => {
            s.push_str(if m.reject { " reject" } else { " grant" });
        }
        MessageType::MsgHeartbeat => {
            let _ = write!(s, " c{}", m.commit);
        }
        MessageType::MsgProp => {
            let _ = write!(s, " +{}", m.entries.len());
        }
        _ => {}
    }
    s
}
