//! Compact trace notation for messages, entries, batches and status.
//!
//! `t/i` is term/index. A message prints as `from->to Kind` followed by the fields that kind
//! uses (always, even when zero) and then any other field that is set (so a stray field is
//! visible in the golden output rather than hidden):
//!
//! ```text
//! 1->2 MsgApp term=2 log=1/3 commit=3 entries=[2/4 2/5:foo]
//! 2->1 MsgAppResp term=2 index=3 reject hint=1/2
//! 1->2 MsgVote term=3 log=2/5
//! ```
//!
//! An entry's data is printed after a colon when it is short printable ASCII, otherwise as
//! its length (`2/5:<40B>`); a configuration change prints what it changes
//! (`2/5:cc(add=4 remove=3)`); another entry that is not a normal entry names its type. A
//! configuration prints as `voters=(1 2 3)`, joint as `voters=(1 2 4)&&(1 2 3)`; a snapshot
//! as `t/i{voters=(1 2 3) data=a,b}`.

use super::state_machine::decode_conf_change;
use raft_core::tracker::ProgressState;
use raft_core::{
    ApplyBatch, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType,
    HardState, Message, MessageType, PersistBatch, ReadState, Role, Snapshot, Status,
};

/// `t/i`, with the data or type when there is something to say. A configuration change
/// prints what it changes: `2/5:cc(add=4 remove=3)`, `cc(learner=5 explicit)`, `cc(leave)`.
pub fn entry(e: &Entry) -> String {
    let mut s = format!("{}/{}", e.term, e.index);
    if let Some(cc) = decode_conf_change(e) {
        match cc {
            Ok(cc) => s.push_str(&format!(":cc({})", conf_change(&cc))),
            Err(()) => s.push_str(&format!(":cc(<{}B undecodable>)", e.data.len())),
        }
        return s;
    }
    match EntryType::try_from(e.entry_type) {
        Ok(EntryType::EntryNormal) => {}
        Ok(kind) => s.push_str(&format!(":{kind:?}")),
        Err(_) => s.push_str(&format!(":type{}", e.entry_type)),
    }
    if !e.data.is_empty() {
        s.push(':');
        s.push_str(&data(&e.data, 16));
    }
    s
}

/// Bytes as text when they are short printable ASCII, otherwise as their length (`<40B>`).
fn data(bytes: &[u8], len_max: usize) -> String {
    let printable = bytes.len() <= len_max && bytes.iter().all(u8::is_ascii_graphic);
    if printable {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        format!("<{}B>", bytes.len())
    }
}

/// `add=4 remove=3` in the order of the changes, then the transition unless `auto`;
/// `leave` for the change that leaves a joint configuration.
pub fn conf_change(cc: &ConfChangeV2) -> String {
    if cc.changes.is_empty() {
        return "leave".to_string();
    }
    let mut parts: Vec<String> = cc
        .changes
        .iter()
        .map(|c| {
            let kind = match ConfChangeType::try_from(c.change_type) {
                Ok(ConfChangeType::AddNode) => "add".to_string(),
                Ok(ConfChangeType::AddLearnerNode) => "learner".to_string(),
                Ok(ConfChangeType::RemoveNode) => "remove".to_string(),
                Ok(ConfChangeType::UpdateNode) => "update".to_string(),
                Err(_) => format!("type{}", c.change_type),
            };
            format!("{kind}={}", c.node_id)
        })
        .collect();
    match ConfChangeTransition::try_from(cc.transition) {
        Ok(ConfChangeTransition::Auto) => {}
        Ok(ConfChangeTransition::JointImplicit) => parts.push("implicit".to_string()),
        Ok(ConfChangeTransition::JointExplicit) => parts.push("explicit".to_string()),
        Err(_) => parts.push(format!("transition{}", cc.transition)),
    }
    parts.join(" ")
}

/// `voters=(1 2 4)&&(1 2 3) learners=(5) learners-next=(3) auto-leave`: the incoming voters,
/// the outgoing ones while joint, then whatever else is set.
pub fn conf_state(cs: &ConfState) -> String {
    let ids = |v: &[u64]| {
        let parts: Vec<String> = v.iter().map(u64::to_string).collect();
        format!("({})", parts.join(" "))
    };
    let mut s = format!("voters={}", ids(&cs.voters));
    if !cs.voters_outgoing.is_empty() {
        s.push_str(&format!("&&{}", ids(&cs.voters_outgoing)));
    }
    if !cs.learners.is_empty() {
        s.push_str(&format!(" learners={}", ids(&cs.learners)));
    }
    if !cs.learners_next.is_empty() {
        s.push_str(&format!(" learners-next={}", ids(&cs.learners_next)));
    }
    if cs.auto_leave {
        s.push_str(" auto-leave");
    }
    s
}

/// `[t/i t/i ...]`.
pub fn entries(ents: &[Entry]) -> String {
    let parts: Vec<String> = ents.iter().map(entry).collect();
    format!("[{}]", parts.join(" "))
}

/// `(term=T vote=V commit=C)`.
pub fn hard_state(hs: &HardState) -> String {
    format!("(term={} vote={} commit={})", hs.term, hs.vote, hs.commit)
}

/// Which of a message's fields a kind prints unconditionally.
struct Shown {
    term: bool,
    log: bool,
    commit: bool,
    ack: bool,
}

/// One message in trace notation.
pub fn message(m: &Message) -> String {
    let kind = m.kind();
    let mut s = if kind == MessageType::MsgUnspecified {
        format!("{}->{} type{}", m.from, m.to, m.msg_type)
    } else {
        format!("{}->{} {kind:?}", m.from, m.to)
    };
    let none = Shown {
        term: true,
        log: false,
        commit: false,
        ack: false,
    };
    let shown = match kind {
        MessageType::MsgApp => Shown {
            log: true,
            commit: true,
            ..none
        },
        MessageType::MsgAppResp | MessageType::MsgReadIndexResp => Shown { ack: true, ..none },
        MessageType::MsgVote | MessageType::MsgPreVote => Shown { log: true, ..none },
        MessageType::MsgHeartbeat => Shown {
            commit: true,
            ..none
        },
        MessageType::MsgProp | MessageType::MsgReadIndex => Shown {
            term: m.term != 0,
            ..none
        },
        _ => none,
    };
    if shown.term || m.term != 0 {
        s.push_str(&format!(" term={}", m.term));
    }
    if shown.ack {
        // A response names the index it acknowledges or rejects; a rejection carries the
        // follower's hint as `term/index`.
        s.push_str(&format!(" index={}", m.index));
        if m.reject {
            s.push_str(&format!(" reject hint={}/{}", m.log_term, m.reject_hint));
        } else if m.log_term != 0 || m.reject_hint != 0 {
            s.push_str(&format!(" hint={}/{}", m.log_term, m.reject_hint));
        }
    } else {
        if shown.log || m.log_term != 0 || m.index != 0 {
            s.push_str(&format!(" log={}/{}", m.log_term, m.index));
        }
        if m.reject {
            s.push_str(" reject");
        }
        if m.reject_hint != 0 {
            s.push_str(&format!(" hint={}", m.reject_hint));
        }
    }
    if m.commit_term != 0 {
        // A vote request's commit index with the term of its entry, as `term/index`.
        s.push_str(&format!(" commit={}/{}", m.commit_term, m.commit));
    } else if shown.commit || m.commit != 0 {
        s.push_str(&format!(" commit={}", m.commit));
    }
    if !m.entries.is_empty() {
        s.push_str(&format!(" entries={}", entries(&m.entries)));
    }
    if !m.context.is_empty() {
        s.push_str(&format!(" context={}", String::from_utf8_lossy(&m.context)));
    }
    if m.read_round != 0 {
        s.push_str(&format!(" read-round={}", m.read_round));
    }
    if m.requester != 0 {
        s.push_str(&format!(" requester={}", m.requester));
    }
    if let Some(snap) = &m.snapshot {
        s.push_str(&format!(" snapshot={}", snapshot(snap)));
    }
    s
}

/// `persist seq=N hs=(...) snapshot=t/i entries=[...] sync=B`; absent parts are left out.
pub fn persist_batch(b: &PersistBatch) -> String {
    let mut s = format!("persist seq={}", b.seq());
    if let Some(hs) = &b.hard_state {
        s.push_str(&format!(" hs={}", hard_state(hs)));
    }
    if let Some(snap) = &b.snapshot {
        s.push_str(&format!(" snapshot={}", snapshot(snap)));
    }
    if !b.entries.is_empty() {
        s.push_str(&format!(" entries={}", entries(&b.entries)));
    }
    s.push_str(&format!(" sync={}", b.sync));
    s
}

/// `apply [snapshot=...] entries=[...] [-> conf]`; the configuration after the batch is
/// shown when the batch says it changed.
pub fn apply_batch(b: &ApplyBatch) -> String {
    let mut out = match &b.snapshot {
        Some(snap) => format!(
            "apply snapshot={} entries={}",
            snapshot(snap),
            entries(&b.entries)
        ),
        None => format!("apply entries={}", entries(&b.entries)),
    };
    if let Some(cs) = &b.conf_state {
        out.push_str(&format!(" -> {}", conf_state(cs)));
    }
    out
}

/// `t/i{voters=(1 2 3) data=a,b}`: a snapshot's id, configuration and (short) data.
pub fn snapshot(s: &Snapshot) -> String {
    let conf = s
        .metadata
        .as_ref()
        .and_then(|m| m.conf_state.as_ref())
        .map_or("no-conf".to_string(), conf_state);
    let mut out = format!("{}/{}{{{conf}", s.term(), s.index());
    if !s.data.is_empty() {
        out.push_str(&format!(" data={}", data(&s.data, 40)));
    }
    out.push('}');
    out
}

/// `read index=N ctx=C`: a confirmed linearizable read.
pub fn read_state(r: &ReadState) -> String {
    format!(
        "read index={} ctx={}",
        r.index,
        String::from_utf8_lossy(&r.request_ctx)
    )
}

/// A role in one word.
pub fn role(r: Role) -> &'static str {
    match r {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

fn state(s: ProgressState) -> &'static str {
    match s {
        ProgressState::Probe => "probe",
        ProgressState::Replicate => "replicate",
        ProgressState::Snapshot => "snapshot",
    }
}

/// The node line of `status`, then one line per peer on a leader.
pub fn status(st: &Status, held: usize, show_active: bool) -> Vec<String> {
    let leader = st.leader.map_or("none".to_string(), |l| l.to_string());
    let mut head = format!(
        "{} term={} vote={} leader={leader} commit={} applied={} last={}",
        role(st.role),
        st.term,
        st.vote,
        st.commit,
        st.applied,
        st.last_index
    );
    if held > 0 {
        head.push_str(&format!(" held-msgs={held}"));
    }
    let mut lines = vec![head];
    for pr in &st.progress {
        let mut line = format!(
            "  {}: match={} next={} {} inflight={}",
            pr.id,
            pr.matched,
            pr.next,
            state(pr.state),
            pr.inflight_msgs
        );
        if pr.paused {
            line.push_str(" paused");
        }
        if show_active && pr.recent_active {
            line.push_str(" active");
        }
        if pr.is_learner {
            line.push_str(" learner");
        }
        lines.push(line);
    }
    lines
}
