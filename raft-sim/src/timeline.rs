//! A run's readable trace ([`crate::trace`]) read back as a timeline of typed items, for the
//! shrinker's script ([`script`]) and the HTML page ([`crate::html`]).
//!
//! Why parse the trace instead of a second, structured recording in the event loop: the trace
//! lines already name every step of every node, message, fault and client in a fixed notation,
//! and reading them back leaves the simulator untouched (nothing a sweep pays for, nothing that
//! could change a run). The notation is the contract: a line this module does not know is kept
//! as [`Kind::Other`], never dropped or a panic.
//!
//! Invariants:
//! 1. Every trace line becomes exactly one item, in trace order.
//! 2. A delivery is matched to the earliest unmatched send with the same sender, receiver and
//!    description (FIFO per link and kind; a duplicate without a send stays unmatched).

use crate::checker::Violation;
use std::collections::BTreeMap;

/// One line of the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Simulated microseconds.
    pub at_us: u64,
    /// What happened.
    pub kind: Kind,
    /// The line as traced (without its time).
    pub text: String,
}

/// What a trace line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `from` (in `term`) sends `desc` (`msg` is its type name) to `to`.
    Send {
        /// Sender.
        from: u64,
        /// Receiver.
        to: u64,
        /// Sender's term.
        term: u64,
        /// `MsgApp`, `MsgVote`, ...
        msg: String,
        /// The trace notation of the message.
        desc: String,
        /// When it was delivered (its matching [`Kind::Deliver`]), if it was.
        delivered_us: Option<u64>,
    },
    /// `to` receives `desc` from `from`.
    Deliver {
        /// Sender.
        from: u64,
        /// Receiver.
        to: u64,
        /// Message type name.
        msg: String,
        /// The trace notation of the message.
        desc: String,
    },
    /// `node` became `role` in `term`.
    Role {
        /// The node.
        node: u64,
        /// `follower`, `pre-candidate`, `candidate`, `leader`.
        role: String,
        /// Its term.
        term: u64,
    },
    /// A client calls an operation.
    Call {
        /// The client.
        client: u64,
        /// Its operation number.
        seq: u64,
        /// The operation.
        what: String,
    },
    /// A client receives an answer.
    Answer {
        /// The client.
        client: u64,
        /// The operation number.
        seq: u64,
        /// The answer.
        reply: String,
    },
    /// `node` applied entries `first..=last`.
    Apply {
        /// The node.
        node: u64,
        /// First index.
        first: u64,
        /// Last index.
        last: u64,
    },
    /// A nemesis action (crash, partition, heal, clog, pause, ...), with the nodes it names
    /// and how long it lasts, if said.
    Fault {
        /// Node ids named.
        nodes: Vec<u64>,
        /// `for N us`, if given.
        duration_us: Option<u64>,
    },
    /// Any other line about `node` (persist, fsync, a client request, a restart, ...).
    Node {
        /// The node.
        node: u64,
    },
    /// Anything else (agents, liveness).
    Other,
}

/// Reads a readable trace back (see the module docs).
pub fn parse(trace: &str) -> Vec<Item> {
    let mut items: Vec<Item> = trace.lines().filter_map(parse_line).collect();
    let mut pending: BTreeMap<(u64, u64, String), Vec<usize>> = BTreeMap::new();
    for i in 0..items.len() {
        let at = items[i].at_us;
        match &items[i].kind {
            Kind::Send { from, to, desc, .. } => {
                pending
                    .entry((*from, *to, desc.clone()))
                    .or_default()
                    .push(i);
            }
            Kind::Deliver { from, to, desc, .. } => {
                if let Some(q) = pending.get_mut(&(*from, *to, desc.clone()))
                    && !q.is_empty()
                {
                    let s = q.remove(0);
                    if let Kind::Send { delivered_us, .. } = &mut items[s].kind {
                        *delivered_us = Some(at);
                    }
                }
            }
            _ => {}
        }
    }
    items
}

fn parse_line(line: &str) -> Option<Item> {
    let line = line.trim_start();
    let (time, text) = line.split_once(' ')?;
    let (secs, micros) = time.split_once('.')?;
    let at_us = secs.parse::<u64>().ok()? * 1_000_000 + micros.parse::<u64>().ok()?;
    let text = text.to_string();
    let kind = classify(&text);
    Some(Item { at_us, kind, text })
}

/// `n12` → 12.
fn node_id(s: &str) -> Option<u64> {
    s.strip_prefix('n')?.parse().ok()
}

/// `n3@7` → (3, 7).
fn node_term(s: &str) -> Option<(u64, u64)> {
    let (n, t) = s.split_once('@')?;
    Some((node_id(n)?, t.parse().ok()?))
}

fn classify(text: &str) -> Kind {
    let words: Vec<&str> = text.split(' ').collect();
    if let Some(what) = text.strip_prefix("nemesis: ") {
        return Kind::Fault {
            nodes: node_ids(what),
            duration_us: what
                .rsplit_once(" for ")
                .and_then(|(_, d)| d.strip_suffix("us"))
                .and_then(|d| d.parse().ok()),
        };
    }
    if words.len() >= 4
        && let Some((node, term)) = node_term(words[0])
        && let Some(peer) = node_id(words[2])
    {
        let desc = words[3..].join(" ");
        let msg = words[3].to_string();
        match words[1] {
            "→" => {
                return Kind::Send {
                    from: node,
                    to: peer,
                    term,
                    msg,
                    desc,
                    delivered_us: None,
                };
            }
            "←" => {
                return Kind::Deliver {
                    from: peer,
                    to: node,
                    msg,
                    desc,
                };
            }
            _ => {}
        }
    }
    if words.len() == 6
        && words[1] == "is"
        && words[3] == "in"
        && words[4] == "term"
        && let (Some(node), Ok(term)) = (node_id(words[0]), words[5].parse())
    {
        return Kind::Role {
            node,
            role: words[2].to_string(),
            term,
        };
    }
    if words.len() >= 3
        && words[1] == "apply"
        && let Some(node) = node_id(words[0])
        && let Some((a, b)) = words[2].split_once("..=")
        && let (Ok(first), Ok(last)) = (a.parse(), b.parse())
    {
        return Kind::Apply { node, first, last };
    }
    if words.len() >= 5 && words[0] == "client" {
        if let (Ok(client), "calls", "op", Ok(seq)) =
            (words[1].parse(), words[2], words[3], words[4].parse())
        {
            return Kind::Call {
                client,
                seq,
                what: words[5..].join(" "),
            };
        }
        if let (Ok(client), "←", "op") = (words[1].parse(), words[2], words[3])
            && let Ok(seq) = words[4].parse()
        {
            let reply = text.split_once(": ").map_or("", |(_, r)| r).to_string();
            return Kind::Answer { client, seq, reply };
        }
    }
    if let Some(node) = words
        .first()
        .and_then(|w| node_id(w.split('@').next().unwrap_or(w)))
    {
        return Kind::Node { node };
    }
    Kind::Other
}

/// Every `nK` word in `s` (`n3:`, `[n1,`, ... included), deduplicated in order.
fn node_ids(s: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for w in s.split(|c: char| !c.is_ascii_alphanumeric()) {
        if let Some(id) = node_id(w)
            && !out.contains(&id)
        {
            out.push(id);
        }
    }
    out
}

/// The run as a short script in the vocabulary of raft-core's interaction scripts: who
/// campaigned and who won, which messages were delivered (`deliver 1->2 ...`) and which were
/// dropped or still in flight at the end (`drop`, `in flight`), faults, client operations and
/// their answers, persists, fsyncs and applies; then the property that broke and the steps
/// that witness it (the last ones about the nodes its detail names).
pub fn script(items: &[Item], violation: Option<&Violation>, witnesses_max: usize) -> Vec<String> {
    let end_us = items.last().map_or(0, |i| i.at_us);
    let mut out: Vec<(u64, String, Vec<u64>)> = Vec::new();
    for it in items {
        let t = it.at_us;
        let line = match &it.kind {
            Kind::Send {
                from,
                to,
                desc,
                delivered_us,
                ..
            } => match delivered_us {
                Some(_) => continue,
                None if end_us.saturating_sub(t) > 50_000 => {
                    (format!("drop {from}->{to} {desc}"), vec![*from, *to])
                }
                None => (format!("in flight {from}->{to} {desc}"), vec![*from, *to]),
            },
            Kind::Deliver { from, to, desc, .. } => {
                (format!("deliver {from}->{to} {desc}"), vec![*from, *to])
            }
            Kind::Role { node, role, term } => match role.as_str() {
                "candidate" | "pre-candidate" => (
                    format!("campaign {node}    ~ {role} term={term}"),
                    vec![*node],
                ),
                _ => (format!("~ {node} {role} term={term}"), vec![*node]),
            },
            Kind::Call { client, seq, what } => {
                (format!("client {client} calls op {seq}: {what}"), vec![])
            }
            Kind::Answer { client, seq, reply } => {
                (format!("client {client} gets op {seq}: {reply}"), vec![])
            }
            Kind::Apply { node, first, last } => {
                (format!("apply {node} {first}..={last}"), vec![*node])
            }
            Kind::Fault { nodes, .. } => (
                it.text.trim_start_matches("nemesis: ").to_string(),
                nodes.clone(),
            ),
            Kind::Node { node } => {
                // `n5 persist #1 hs 2/2/1 sync` → `persist 5 #1 hs 2/2/1 sync`;
                // `n2 ← client 0 op 1 ...` → `request 2 ← client 0 op 1 ...`.
                let rest = it.text.split_once(' ').map_or("", |(_, r)| r);
                if let Some(req) = rest.strip_prefix("← ") {
                    out.push((t, format!("request {node} ← {req}"), vec![*node]));
                    continue;
                }
                let (verb, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                (
                    format!("{verb} {node} {tail}").trim_end().to_string(),
                    vec![*node],
                )
            }
            Kind::Other => (it.text.clone(), vec![]),
        };
        out.push((t, line.0, line.1));
    }
    let mut lines: Vec<String> = out
        .iter()
        .map(|(t, l, _)| format!("{:>9}  {l}", crate::world::ms(*t)))
        .collect();
    if let Some(v) = violation {
        lines.push(format!(
            "{:>9}  BROKEN: {} — {}",
            crate::world::ms(v.at_us),
            v.property,
            v.detail
        ));
        let named = node_ids(&v.detail);
        let witnesses: Vec<String> = out
            .iter()
            .rev()
            .filter(|(_, _, nodes)| named.is_empty() || nodes.iter().any(|n| named.contains(n)))
            .take(witnesses_max)
            .map(|(t, l, _)| format!("{:>9}  {l}", crate::world::ms(*t)))
            .collect();
        let whose = if named.is_empty() {
            "the run".to_string()
        } else {
            named
                .iter()
                .map(|n| format!("n{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        lines.push(format!("witnessed by (the last steps of {whose}):"));
        lines.extend(witnesses.into_iter().rev().map(|l| format!("  {l}")));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_lines_become_typed_items_and_deliveries_match_sends() {
        let trace = "  0.096144 n2 is pre-candidate in term 1\n\
                     \x20 0.096144 n2@1 → n4 MsgPreVote last 1/1\n\
                     \x20 0.097617 n4@1 ← n2 MsgPreVote last 1/1\n\
                     \x20 0.100000 nemesis: crash n3: 0 cached records lost, 0 survived\n\
                     \x20 0.100001 nemesis: pause n1 for 5000us\n\
                     \x20 0.100002 client 0 calls op 1 Get key 2\n\
                     \x20 0.100003 client 0 ← op 1 attempt 1: Redirect(None)\n\
                     \x20 0.100004 n1 apply 3..=5\n\
                     \x20 0.100005 n1 persist #1 hs 2/2/1 sync\n\
                     \x20 0.100006 agent: whatever\n";
        let items = parse(trace);
        assert_eq!(items.len(), 10);
        assert_eq!(
            items[0].kind,
            Kind::Role {
                node: 2,
                role: "pre-candidate".into(),
                term: 1
            }
        );
        assert!(matches!(
            &items[1].kind,
            Kind::Send { from: 2, to: 4, term: 1, msg, delivered_us: Some(97_617), .. } if msg == "MsgPreVote"
        ));
        assert!(matches!(
            &items[2].kind,
            Kind::Deliver { from: 2, to: 4, .. }
        ));
        assert_eq!(
            items[3].kind,
            Kind::Fault {
                nodes: vec![3],
                duration_us: None
            }
        );
        assert_eq!(
            items[4].kind,
            Kind::Fault {
                nodes: vec![1],
                duration_us: Some(5000)
            }
        );
        assert!(matches!(
            &items[5].kind,
            Kind::Call {
                client: 0,
                seq: 1,
                ..
            }
        ));
        assert!(
            matches!(&items[6].kind, Kind::Answer { client: 0, seq: 1, reply } if reply == "Redirect(None)")
        );
        assert_eq!(
            items[7].kind,
            Kind::Apply {
                node: 1,
                first: 3,
                last: 5
            }
        );
        assert_eq!(items[8].kind, Kind::Node { node: 1 });
        assert_eq!(items[9].kind, Kind::Other);
        let s = script(&items, None, 3);
        assert!(
            s.iter()
                .any(|l| l.ends_with("campaign 2    ~ pre-candidate term=1")),
            "{s:#?}"
        );
        assert!(
            s.iter()
                .any(|l| l.ends_with("deliver 2->4 MsgPreVote last 1/1")),
            "{s:#?}"
        );
        assert!(
            s.iter().any(|l| l.ends_with("persist 1 #1 hs 2/2/1 sync")),
            "{s:#?}"
        );
    }
}
