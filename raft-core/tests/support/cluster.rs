//! The cluster the golden scripts drive: nodes with a "disk" each, a network queue, and the
//! commands of the script language.
//!
//! Each node is a `RawNode<MemStorage>`; the `MemStorage` inside it is the node's disk and
//! holds only what a `persist` command wrote. Ready output is queued, not carried out: its
//! messages go to the network queue, its persist and apply batches to per-node queues that
//! `persist` and `apply` complete in order. `stabilize` does all of that until nothing moves.
//!
//! Beyond printing, the harness checks the Ready contract on every Ready it takes and prints
//! a `CONTRACT:` or `SAFETY:` line (which no golden file should contain) when:
//! 1. an apply batch holds an entry (or a snapshot) that is not on the node's disk (DESIGN §2
//!    rule 4), or does not start right after what the state machine applied;
//! 2. an append acknowledgement or a vote grant is handed out before the write it vouches for
//!    is on disk (rule 2);
//! 3. two nodes apply different entries at one index, or two nodes lead one term (of one
//!    cluster: the nodes of one `add-nodes` and those that `join` them);
//! 4. `has_ready()` and `ready()` disagree;
//! 5. an apply batch's `conf_state` is not what its configuration changes (or snapshot) give
//!    when the state machine replays them with `raft_core::confchange` (rule 4: the new
//!    configuration is visible to the driver).
//!
//! After every command the harness runs `check_invariants()` on every live node and prints
//! an `INVARIANT:` line with the panic message if one fails.

use super::render;
use super::script::Command;
use super::state_machine::StateMachine;
use raft_core::{
    ApplyBatch, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
    Config, Entry, EntryId, HardState, MemStorage, Message, MessageType, PersistBatch, RawNode,
    ReadOnlyOption, Ready, Role, Snapshot, SnapshotStatus, Storage, StorageError,
};
use slog::Logger;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Most rounds `stabilize` runs before it gives up (a livelock is a finding, not a hang).
const STABILIZE_ROUNDS_MAX: usize = 100;
/// Most Readies one node hands out in one `stabilize` round.
const READIES_PER_ROUND_MAX: usize = 10;

/// Every node, the network between them, and what the scripts observed so far.
pub struct Cluster {
    logger: Logger,
    nodes: BTreeMap<u64, Node>,
    /// Messages sent and not yet delivered or dropped, in send order.
    net: VecDeque<Message>,
    /// Node id to partition group; `None` when every node can reach every other.
    partition: Option<BTreeMap<u64, usize>>,
    /// Links cut in both directions (`cut A B`), as `(min, max)`.
    cuts: BTreeSet<(u64, u64)>,
    /// The leader seen for each (cluster, term) (election safety). A cluster is named by
    /// its first node id: the nodes of one `add-nodes`.
    leaders: BTreeMap<(u64, u64), u64>,
    /// The entry applied at each (cluster, index) by any node (state machine safety).
    applied_ids: BTreeMap<(u64, u64), EntryId>,
    out: Vec<String>,
}

struct Node {
    cfg: Config,
    /// The cluster the node belongs to, named by the first id of its `add-nodes`.
    cluster: u64,
    /// The voters of the founding configuration on this node's disk; empty for a node that
    /// joined later with an empty disk.
    founders: Vec<u64>,
    state: NodeState,
    /// Persist batches handed out and not yet written, oldest first.
    persists: VecDeque<PersistBatch>,
    /// Apply batches handed out and not yet applied, oldest first.
    applies: VecDeque<ApplyBatch>,
    /// The application: applied index, data and configuration; it survives crashes.
    sm: StateMachine,
    /// How many Readies were taken from this node (0 = fresh, `set-log` allowed).
    readies: u64,
    /// Role, term and leader as last printed.
    seen: Option<(Role, u64, Option<u64>)>,
}

enum NodeState {
    Up(Box<RawNode<MemStorage>>),
    /// Crashed: only the disk is left.
    Down(Box<MemStorage>),
}

/// Which messages a `deliver` or `drop` applies to.
#[derive(Default)]
struct Filter {
    from: Option<u64>,
    to: Option<u64>,
    kind: Option<MessageType>,
}

impl Filter {
    fn from_command(cmd: &mut Command, to: Option<u64>) -> Result<Filter, String> {
        let from = cmd.take_u64("from")?;
        let to = match cmd.take_u64("to")? {
            Some(t) => Some(t),
            None => to,
        };
        let kind = cmd.take("type").map(|t| parse_kind(&t)).transpose()?;
        Ok(Filter { from, to, kind })
    }

    fn matches(&self, m: &Message) -> bool {
        self.from.is_none_or(|f| f == m.from)
            && self.to.is_none_or(|t| t == m.to)
            && self.kind.is_none_or(|k| k == m.kind())
    }
}

/// A message kind by its etcd name (`MsgApp`) or number.
fn parse_kind(name: &str) -> Result<MessageType, String> {
    if let Ok(n) = name.parse::<i32>() {
        return MessageType::try_from(n).map_err(|_| format!("unknown message type {n}"));
    }
    (0..=32)
        .filter_map(|n| MessageType::try_from(n).ok())
        .find(|k| format!("{k:?}") == name)
        .ok_or_else(|| format!("unknown message type `{name}`"))
}

fn node_up(nodes: &mut BTreeMap<u64, Node>, id: u64) -> Result<&mut RawNode<MemStorage>, String> {
    match nodes.get_mut(&id).map(|n| &mut n.state) {
        Some(NodeState::Up(raw)) => Ok(raw),
        Some(NodeState::Down(_)) => Err(format!("node {id} is down")),
        None => Err(format!("no node {id}")),
    }
}

/// The ids of a keyed argument `key=1,2,3`, if given.
fn id_set(cmd: &mut Command, key: &str) -> Result<Option<BTreeSet<u64>>, String> {
    cmd.take(key)
        .map(|list| {
            list.split(',')
                .map(|t| t.parse().map_err(|_| format!("{key}: bad id `{t}`")))
                .collect()
        })
        .transpose()
}

fn required_id(cmd: &Command) -> Result<u64, String> {
    cmd.positional_u64(0)?
        .ok_or_else(|| format!("{}: a node id is required", cmd.name))
}

/// Parses `t/i` or `t/i:data`.
fn parse_entry(s: &str) -> Result<Entry, String> {
    let (id, data) = s.split_once(':').unwrap_or((s, ""));
    let (t, i) = id
        .split_once('/')
        .ok_or_else(|| format!("entry `{s}`: expected term/index"))?;
    let term = t.parse().map_err(|_| format!("entry `{s}`: bad term"))?;
    let index = i.parse().map_err(|_| format!("entry `{s}`: bad index"))?;
    Ok(Entry::normal(index, term, data.as_bytes().to_vec()))
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster {
            logger: Logger::root(slog::Discard, slog::o!()),
            nodes: BTreeMap::new(),
            net: VecDeque::new(),
            partition: None,
            cuts: BTreeSet::new(),
            leaders: BTreeMap::new(),
            applied_ids: BTreeMap::new(),
            out: Vec::new(),
        }
    }

    /// Runs one command line and returns its output (`ok` when it printed nothing).
    ///
    /// # Errors
    /// A message when the command is malformed or cannot run (a script error).
    pub fn run(&mut self, line: &str) -> Result<Vec<String>, String> {
        let mut cmd = Command::parse(line);
        let result = self.dispatch(&mut cmd).and_then(|()| cmd.finish());
        for (id, node) in &self.nodes {
            if let NodeState::Up(raw) = &node.state {
                // `check_invariants` only reads, so a node that fails it is left intact and
                // the script can go on to show what happens next.
                let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    raw.check_invariants();
                }));
                if let Err(panic) = checked {
                    let msg = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                        .unwrap_or_default();
                    self.out.push(format!("INVARIANT: {id}: {msg}"));
                }
            }
        }
        let mut out = std::mem::take(&mut self.out);
        result?;
        if out.is_empty() {
            out.push("ok".to_string());
        }
        Ok(out)
    }

    fn dispatch(&mut self, cmd: &mut Command) -> Result<(), String> {
        match cmd.name.as_str() {
            "add-nodes" => self.add_nodes(cmd),
            "campaign" => {
                let id = required_id(cmd)?;
                if let Err(e) = node_up(&mut self.nodes, id)?.campaign() {
                    self.out.push(format!("error: {e:?}"));
                }
                self.observe(id);
                Ok(())
            }
            "propose" => {
                let id = required_id(cmd)?;
                let data = cmd
                    .positional
                    .get(1)
                    .ok_or("propose: data is required")?
                    .clone();
                let line = match node_up(&mut self.nodes, id)?.propose(data.into_bytes()) {
                    Ok(entry_id) => format!("{entry_id}"),
                    Err(e) => format!("error: {e:?}"),
                };
                self.out.push(line);
                self.observe(id);
                Ok(())
            }
            "tick" => {
                let id = required_id(cmd)?;
                let n = cmd.positional_u64(1)?.unwrap_or(1);
                for _ in 0..n {
                    node_up(&mut self.nodes, id)?.tick();
                    self.observe(id);
                }
                Ok(())
            }
            "tick-election" => self.tick_election(cmd),
            "ready" => match cmd.positional_u64(0)? {
                Some(id) => {
                    node_up(&mut self.nodes, id)?;
                    self.take_ready(id, "");
                    self.observe(id);
                    Ok(())
                }
                None => {
                    for id in self.up_ids() {
                        if self.has_ready(id) {
                            self.out.push(format!("> {id} ready"));
                            self.take_ready(id, "  ");
                            self.observe(id);
                        }
                    }
                    Ok(())
                }
            },
            "persist" => {
                let id = required_id(cmd)?;
                let n = cmd.positional_u64(1)?;
                self.persist(id, n, "", false)
            }
            "apply" => {
                let id = required_id(cmd)?;
                self.apply(id, "", false)
            }
            "deliver" => {
                let to = cmd.positional_u64(0)?;
                let filter = Filter::from_command(cmd, to)?;
                self.deliver(&filter, true);
                Ok(())
            }
            "drop" => {
                let filter = Filter::from_command(cmd, None)?;
                let (dropped, kept) = self.net.drain(..).partition(|m| filter.matches(m));
                self.net = kept;
                let dropped: Vec<Message> = dropped.into_iter().collect();
                for m in &dropped {
                    self.out.push(format!("dropped {}", render::message(m)));
                }
                Ok(())
            }
            "partition" => self.set_partition(cmd),
            "cut" => {
                let a = required_id(cmd)?;
                let b = cmd
                    .positional_u64(1)?
                    .ok_or("cut: two node ids are required")?;
                self.cuts.insert((a.min(b), a.max(b)));
                Ok(())
            }
            "heal" => {
                self.partition = None;
                self.cuts.clear();
                Ok(())
            }
            "crash" => self.crash(cmd),
            "restart" => self.restart(cmd),
            "set-log" => self.set_log(cmd),
            "stabilize" => {
                let slow = id_set(cmd, "no-persist")?.unwrap_or_default();
                let only = id_set(cmd, "only")?;
                self.stabilize(&slow, only.as_ref());
                Ok(())
            }
            "log" => self.log(cmd),
            "disk" => {
                let id = required_id(cmd)?;
                let node = self.nodes.get(&id).ok_or(format!("no node {id}"))?;
                let disk = match &node.state {
                    NodeState::Up(raw) => raw.storage(),
                    NodeState::Down(disk) => disk,
                };
                self.out.push(describe_disk(disk));
                Ok(())
            }
            "status" => self.status(cmd),
            "state" => {
                let id = required_id(cmd)?;
                let node = self.nodes.get(&id).ok_or(format!("no node {id}"))?;
                self.out.push(node.sm.describe());
                Ok(())
            }
            "conf" => {
                let id = required_id(cmd)?;
                let conf = node_up(&mut self.nodes, id)?.conf_state();
                self.out.push(render::conf_state(&conf));
                Ok(())
            }
            "raw-step" => self.raw_step(cmd),
            "join" => self.join(cmd),
            "conf-change" => self.conf_change(cmd),
            "leave-joint" => {
                let id = required_id(cmd)?;
                let r =
                    node_up(&mut self.nodes, id)?.propose_conf_change(ConfChangeV2::leave_joint());
                self.out.push(match r {
                    Ok(entry_id) => format!("{entry_id}"),
                    Err(e) => format!("error: {e:?}"),
                });
                self.observe(id);
                Ok(())
            }
            "compact" => self.compact(cmd),
            "transfer-leader" => {
                let id = required_id(cmd)?;
                let to = cmd
                    .positional_u64(1)?
                    .ok_or("transfer-leader: a target id is required")?;
                if let Err(e) = node_up(&mut self.nodes, id)?.transfer_leader(to) {
                    self.out.push(format!("error: {e:?}"));
                }
                self.observe(id);
                Ok(())
            }
            "read-index" => {
                let id = required_id(cmd)?;
                let ctx = cmd
                    .positional
                    .get(1)
                    .ok_or("read-index: a context is required")?
                    .clone();
                if let Err(e) = node_up(&mut self.nodes, id)?.read_index(ctx.into_bytes()) {
                    self.out.push(format!("error: {e:?}"));
                }
                self.observe(id);
                Ok(())
            }
            "report-snapshot" => {
                let id = required_id(cmd)?;
                let peer = cmd
                    .positional_u64(1)?
                    .ok_or("report-snapshot: a peer id is required")?;
                let status = match cmd.positional.get(2).map(String::as_str) {
                    Some("ok") => SnapshotStatus::Finish,
                    Some("fail") => SnapshotStatus::Failure,
                    _ => return Err("report-snapshot: ok or fail is required".to_string()),
                };
                node_up(&mut self.nodes, id)?.report_snapshot(peer, status);
                self.observe(id);
                Ok(())
            }
            "report-unreachable" => {
                let id = required_id(cmd)?;
                let peer = cmd
                    .positional_u64(1)?
                    .ok_or("report-unreachable: a peer id is required")?;
                node_up(&mut self.nodes, id)?.report_unreachable(peer);
                self.observe(id);
                Ok(())
            }
            "forget-leader" => {
                let id = required_id(cmd)?;
                if let Err(e) = node_up(&mut self.nodes, id)?.forget_leader() {
                    self.out.push(format!("error: {e:?}"));
                }
                self.observe(id);
                Ok(())
            }
            "check" => Ok(()),
            other => Err(format!("unknown command `{other}`")),
        }
    }

    // ------------------------------------------------------------ setup

    fn add_nodes(&mut self, cmd: &mut Command) -> Result<(), String> {
        let n = cmd
            .positional_u64(0)?
            .ok_or("add-nodes: a count is required")?;
        let first = self.nodes.keys().next_back().map_or(1, |last| last + 1);
        let voters: Vec<u64> = (first..first + n).collect();
        let mut template = Config::new(0);
        template.pre_vote = cmd.take_bool("pre-vote")?.unwrap_or(false);
        template.check_quorum = cmd.take_bool("check-quorum")?.unwrap_or(false);
        template.proposal_forwarding = cmd.take_bool("forwarding")?.unwrap_or(true);
        let num = |v: Option<u64>, key: &str| -> Result<Option<u32>, String> {
            v.map(|v| u32::try_from(v).map_err(|_| format!("{key}={v}: too large")))
                .transpose()
        };
        if let Some(v) = num(cmd.take_u64("election")?, "election")? {
            template.election_ticks = v;
        }
        if let Some(v) = num(cmd.take_u64("heartbeat")?, "heartbeat")? {
            template.heartbeat_ticks = v;
        }
        if let Some(v) = cmd.take_u64("inflight")? {
            template.inflight_msgs_max =
                usize::try_from(v).map_err(|_| format!("inflight={v}: too large"))?;
        }
        if let Some(v) = cmd.take_u64("inflight-bytes")? {
            template.inflight_bytes_max = v;
        }
        if let Some(v) = cmd.take_u64("msg-bytes")? {
            template.msg_bytes_max = v;
        }
        if let Some(v) = cmd.take_u64("uncommitted-bytes")? {
            template.uncommitted_bytes_max = v;
        }
        template.seed = cmd.take_u64("seed")?;
        template.read_only = match cmd.take("read-only").as_deref() {
            None | Some("safe") => ReadOnlyOption::Safe,
            Some("lease") => ReadOnlyOption::LeaseBased,
            Some(other) => return Err(format!("read-only={other}: expected safe or lease")),
        };
        template.step_down_on_removal = cmd.take_bool("step-down")?.unwrap_or(true);
        for &id in &voters {
            let mut cfg = template.clone();
            cfg.id = id;
            self.add_node(cfg, voters[0], &voters)?;
        }
        Ok(())
    }

    /// A new node joining the cluster of the lowest-numbered node, with that node's config
    /// and an empty disk: it knows no configuration until a leader sends it a snapshot.
    fn join(&mut self, cmd: &Command) -> Result<(), String> {
        let id = required_id(cmd)?;
        if self.nodes.contains_key(&id) {
            return Err(format!("join: node {id} exists"));
        }
        let first = self
            .nodes
            .values()
            .next()
            .ok_or("join: no cluster to join")?;
        let mut cfg = first.cfg.clone();
        cfg.id = id;
        cfg.applied = 0;
        let cluster = first.cluster;
        self.add_node(cfg, cluster, &[])
    }

    /// Starts node `cfg.id` on a founding disk of `founders`, or on an empty disk when there
    /// are none.
    fn add_node(&mut self, cfg: Config, cluster: u64, founders: &[u64]) -> Result<(), String> {
        let id = cfg.id;
        let disk = if founders.is_empty() {
            MemStorage::new()
        } else {
            founding_disk(founders)
        };
        let conf = disk.conf_state().clone();
        let raw = RawNode::new(&cfg, disk, &self.logger).map_err(|e| format!("node {id}: {e}"))?;
        let seen = Some((raw.role(), raw.term(), raw.leader()));
        let sm = StateMachine::new(raw.status().applied, conf);
        self.nodes.insert(
            id,
            Node {
                cfg,
                cluster,
                founders: founders.to_vec(),
                state: NodeState::Up(Box::new(raw)),
                persists: VecDeque::new(),
                applies: VecDeque::new(),
                sm,
                readies: 0,
                seen,
            },
        );
        Ok(())
    }

    fn set_partition(&mut self, cmd: &Command) -> Result<(), String> {
        let mut groups = BTreeMap::new();
        let mut group = 0;
        for token in &cmd.positional {
            if token == "/" {
                group += 1;
                continue;
            }
            let id: u64 = token
                .parse()
                .map_err(|_| format!("partition: bad node id `{token}`"))?;
            groups.insert(id, group);
        }
        self.partition = Some(groups);
        Ok(())
    }

    /// Whether a message from `a` reaches `b`. A node named in no group of a partition is
    /// cut off from everyone.
    fn connected(&self, a: u64, b: u64) -> bool {
        let grouped = match &self.partition {
            None => true,
            Some(groups) => groups.get(&a).is_some_and(|g| groups.get(&b) == Some(g)),
        };
        grouped && !self.cuts.contains(&(a.min(b), a.max(b)))
    }

    fn up_ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| matches!(n.state, NodeState::Up(_)))
            .map(|(&id, _)| id)
            .collect()
    }

    fn has_ready(&self, id: u64) -> bool {
        matches!(self.nodes.get(&id).map(|n| &n.state), Some(NodeState::Up(raw)) if raw.has_ready())
    }

    /// Prints a change of role, term or leader since the last print, and checks that no
    /// two nodes lead the same term.
    fn observe(&mut self, id: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let NodeState::Up(raw) = &node.state else {
            return;
        };
        let now = (raw.role(), raw.term(), raw.leader());
        if node.seen == Some(now) {
            return;
        }
        node.seen = Some(now);
        let (role, term, leader) = now;
        let mut line = format!("~ {id} {} term={term}", render::role(role));
        if role != Role::Leader
            && let Some(l) = leader
        {
            line.push_str(&format!(" leader={l}"));
        }
        self.out.push(line);
        if role == Role::Leader {
            let first = *self.leaders.entry((node.cluster, term)).or_insert(id);
            if first != id {
                self.out.push(format!(
                    "SAFETY: {id} leads term {term}, which {first} already led"
                ));
            }
        }
    }

    // ------------------------------------------------------------ Ready and completions

    /// Takes one Ready from `id`, prints it (each line prefixed by `indent`), queues its
    /// messages and batches, and checks the contract.
    fn take_ready(&mut self, id: u64, indent: &str) {
        let node = self.nodes.get_mut(&id).expect("caller checked the node");
        let NodeState::Up(raw) = &mut node.state else {
            panic!("caller checked node {id} is up");
        };
        let had_ready = raw.has_ready();
        let Ready {
            messages,
            persist,
            apply,
            read_states,
        } = raw.ready();
        node.readies += 1;
        let mut lines: Vec<String> = messages.iter().map(render::message).collect();
        lines.extend(persist.as_ref().map(render::persist_batch));
        lines.extend(apply.as_ref().map(render::apply_batch));
        lines.extend(read_states.iter().map(render::read_state));
        let empty = lines.is_empty();
        if empty && had_ready {
            // Not a contract breach, but a driver looping on has_ready() did a useless turn.
            lines.push("(empty, although has_ready() was true)".to_string());
        } else if empty {
            lines.push("(empty)".to_string());
        } else if !had_ready {
            lines.push("CONTRACT: has_ready() was false but ready() had work".to_string());
        }
        lines.extend(contract_violations(raw, &messages, apply.as_ref()));
        self.out
            .extend(lines.into_iter().map(|l| format!("{indent}{l}")));
        node.persists.extend(persist);
        node.applies.extend(apply);
        self.net.extend(messages);
    }

    /// Writes and reports the oldest `n` (default all) outstanding persist batches of `id`.
    /// With `quiet`, only failures print (the batches were just printed by their Ready).
    fn persist(
        &mut self,
        id: u64,
        n: Option<u64>,
        indent: &str,
        quiet: bool,
    ) -> Result<(), String> {
        node_up(&mut self.nodes, id)?;
        let node = self.nodes.get_mut(&id).expect("checked above");
        let count = n.map_or(node.persists.len(), |n| {
            usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(node.persists.len())
        });
        for _ in 0..count {
            let node = self.nodes.get_mut(&id).expect("checked above");
            let batch = node
                .persists
                .pop_front()
                .expect("count is within the queue");
            let NodeState::Up(raw) = &mut node.state else {
                unreachable!("checked above");
            };
            match raw.storage_mut().persist(&batch) {
                Ok(()) => {
                    raw.on_persisted(batch.durable());
                    if !quiet {
                        self.out
                            .push(format!("{indent}seq={} durable", batch.seq()));
                    }
                }
                Err(e) => self
                    .out
                    .push(format!("{indent}seq={} write failed: {e}", batch.seq())),
            }
            self.observe(id);
        }
        Ok(())
    }

    /// Applies every outstanding apply batch of `id` to its state machine, stores the new
    /// configuration the batch announces (as a driver must, for restarts), and reports it.
    /// With `quiet`, only contract and safety violations print.
    fn apply(&mut self, id: u64, indent: &str, quiet: bool) -> Result<(), String> {
        node_up(&mut self.nodes, id)?;
        loop {
            let node = self.nodes.get_mut(&id).expect("checked above");
            let Some(batch) = node.applies.pop_front() else {
                break;
            };
            let mut lines = Vec::new();
            // A snapshot replaces the state machine; entries continue right after it.
            let expected_first = match &batch.snapshot {
                Some(snap) => {
                    if snap.index() <= node.sm.applied {
                        lines.push(format!(
                            "CONTRACT: snapshot at {} does not move past applied {}",
                            snap.index(),
                            node.sm.applied
                        ));
                        // Restoring it would move the state machine backwards.
                        self.out
                            .extend(lines.iter().map(|l| format!("{indent}{l}")));
                        return Ok(());
                    }
                    snap.index() + 1
                }
                None => node.sm.applied + 1,
            };
            if let Some(first) = batch.entries.first()
                && first.index != expected_first
            {
                lines.push(format!(
                    "CONTRACT: apply batch entries start at {}, expected {expected_first}",
                    first.index
                ));
            }
            for e in &batch.entries {
                let eid = EntryId::new(e.index, e.term);
                let first = *self
                    .applied_ids
                    .entry((node.cluster, e.index))
                    .or_insert(eid);
                if first != eid {
                    lines.push(format!(
                        "SAFETY: {id} applied {eid} where {first} was applied"
                    ));
                }
            }
            if let Some(snap) = &batch.snapshot {
                node.sm.restore(snap);
            }
            let conf_before = node.sm.conf().clone();
            let changed = node.sm.apply_entries(&batch.entries) || batch.snapshot.is_some();
            // Rule 5's per-index form: what the batch says the configuration is at each of
            // its indexes (for a snapshot taken mid-batch) is what the replay gives.
            let lo = batch
                .snapshot
                .as_ref()
                .map_or(expected_first, Snapshot::index);
            let hi = batch.entries.last().map_or(lo, |e| e.index);
            for index in lo..=hi {
                let said = batch.conf_state_at(index).unwrap_or(&conf_before);
                if said != node.sm.conf_at(index) {
                    lines.push(format!(
                        "CONTRACT: apply batch says conf {} at {index}, the replay gives {}",
                        render::conf_state(said),
                        render::conf_state(node.sm.conf_at(index))
                    ));
                }
            }
            let expected_conf = changed.then(|| node.sm.conf().clone());
            if batch.conf_state != expected_conf {
                let show =
                    |c: &Option<ConfState>| c.as_ref().map_or("none".into(), render::conf_state);
                lines.push(format!(
                    "CONTRACT: apply batch announces conf {}, the applied changes give {}",
                    show(&batch.conf_state),
                    show(&expected_conf)
                ));
            }
            let NodeState::Up(raw) = &mut node.state else {
                unreachable!("checked above");
            };
            if let Some(cs) = &batch.conf_state {
                raw.storage_mut().set_conf_state(cs.clone());
            }
            raw.on_applied(batch.applied());
            if !quiet {
                lines.insert(
                    0,
                    render::apply_batch(&batch).replacen("apply", "applied", 1),
                );
            }
            self.out
                .extend(lines.iter().map(|l| format!("{indent}{l}")));
            self.observe(id);
        }
        Ok(())
    }

    /// Steps every queued message matching `filter` into its addressee, in queue order.
    /// `verbose` prints each delivered message; otherwise only drops and errors print.
    fn deliver(&mut self, filter: &Filter, verbose: bool) -> bool {
        let (due, kept): (VecDeque<Message>, VecDeque<Message>) =
            self.net.drain(..).partition(|m| filter.matches(m));
        self.net = kept;
        let any = !due.is_empty();
        for m in due {
            let line = render::message(&m);
            let up = matches!(
                self.nodes.get(&m.to).map(|n| &n.state),
                Some(NodeState::Up(_))
            );
            if !up {
                self.out.push(format!("dropped {line} (node down)"));
                continue;
            }
            if !self.connected(m.from, m.to) {
                self.out.push(format!("dropped {line} (partitioned)"));
                continue;
            }
            let to = m.to;
            if verbose {
                self.out.push(line.clone());
            }
            let raw = node_up(&mut self.nodes, to).expect("checked up above");
            if let Err(e) = raw.step(m) {
                if verbose {
                    self.out.push(format!("  error: {e:?}"));
                } else {
                    self.out.push(format!("error {line}: {e:?}"));
                }
            }
            self.observe(to);
        }
        any
    }

    /// Runs the cluster until nothing moves. Nodes in `slow` take Readies but write nothing:
    /// their persist batches stay queued (a stalled disk). With `only`, the other nodes are
    /// frozen: they take no Ready and the messages to them stay queued.
    fn stabilize(&mut self, slow: &BTreeSet<u64>, only: Option<&BTreeSet<u64>>) {
        for round in 0.. {
            if round == STABILIZE_ROUNDS_MAX {
                self.out.push(format!(
                    "stabilize: still moving after {STABILIZE_ROUNDS_MAX} rounds"
                ));
                return;
            }
            let mut moved = false;
            let ids = self
                .up_ids()
                .into_iter()
                .filter(|id| only.is_none_or(|o| o.contains(id)));
            for id in ids {
                let leftovers = {
                    let node = &self.nodes[&id];
                    !slow.contains(&id) && !node.persists.is_empty() || !node.applies.is_empty()
                };
                if leftovers {
                    // Batches handed out by an earlier `ready` are completed first, visibly.
                    self.out.push(format!("> {id} completes earlier batches"));
                    if !slow.contains(&id) {
                        self.persist(id, None, "  ", false).expect("node is up");
                    }
                    self.apply(id, "  ", false).expect("node is up");
                    moved = true;
                }
                for _ in 0..READIES_PER_ROUND_MAX {
                    if !self.has_ready(id) {
                        break;
                    }
                    self.out.push(format!("> {id} ready"));
                    self.take_ready(id, "  ");
                    if !slow.contains(&id) {
                        self.persist(id, None, "  ", true).expect("node is up");
                    }
                    self.apply(id, "  ", true).expect("node is up");
                    self.observe(id);
                    moved = true;
                }
            }
            moved |= match only {
                None => self.deliver(&Filter::default(), false),
                Some(only) => {
                    let mut any = false;
                    for &to in only {
                        let filter = Filter {
                            to: Some(to),
                            ..Filter::default()
                        };
                        any |= self.deliver(&filter, false);
                    }
                    any
                }
            };
            if !moved {
                return;
            }
        }
    }

    // ------------------------------------------------------------ faults

    fn crash(&mut self, cmd: &Command) -> Result<(), String> {
        let id = required_id(cmd)?;
        let raw = node_up(&mut self.nodes, id)?;
        let disk = raw.storage().clone();
        let node = self.nodes.get_mut(&id).expect("checked above");
        node.state = NodeState::Down(Box::new(disk));
        node.seen = None;
        for b in std::mem::take(&mut node.persists) {
            self.out.push(format!("lost {}", render::persist_batch(&b)));
        }
        for b in std::mem::take(&mut node.applies) {
            self.out.push(format!("lost {}", render::apply_batch(&b)));
        }
        let (dropped, kept) = self.net.drain(..).partition(|m| m.to == id);
        self.net = kept;
        let dropped: Vec<Message> = dropped.into_iter().collect();
        for m in &dropped {
            self.out.push(format!("dropped {}", render::message(m)));
        }
        Ok(())
    }

    fn restart(&mut self, cmd: &Command) -> Result<(), String> {
        let id = required_id(cmd)?;
        let node = self.nodes.get_mut(&id).ok_or(format!("no node {id}"))?;
        let NodeState::Down(disk) = &node.state else {
            return Err(format!("restart: node {id} is up; crash it first"));
        };
        let mut cfg = node.cfg.clone();
        cfg.applied = node.sm.applied;
        match RawNode::new(&cfg, (**disk).clone(), &self.logger) {
            Ok(raw) => {
                self.out.push(format!(
                    "restarted with applied={}: {}",
                    node.sm.applied,
                    describe_disk(disk)
                ));
                node.state = NodeState::Up(Box::new(raw));
                self.observe(id);
            }
            Err(e) => self.out.push(format!("error: {e:?}")),
        }
        Ok(())
    }

    /// Rewrites the disk of a crashed or fresh node; it stays down until `restart`.
    fn set_log(&mut self, cmd: &mut Command) -> Result<(), String> {
        let id = required_id(cmd)?;
        let terms = cmd.take("terms").unwrap_or_default();
        let term = cmd.take_u64("term")?.ok_or("set-log: term= is required")?;
        let vote = cmd.take_u64("vote")?.unwrap_or(0);
        let commit = cmd.take_u64("commit")?.unwrap_or(0);
        let node = self.nodes.get_mut(&id).ok_or(format!("no node {id}"))?;
        if matches!(node.state, NodeState::Up(_)) && node.readies > 0 {
            return Err(format!("set-log: node {id} is running; crash it first"));
        }
        // `terms` lists indexes 1, 2, ...; index 1 is the founding snapshot (term 1).
        let terms: Vec<u64> = terms
            .split(',')
            .filter(|t| !t.is_empty())
            .map(|t| t.parse().map_err(|_| format!("set-log: bad term `{t}`")))
            .collect::<Result<_, _>>()?;
        if terms.first().is_some_and(|t| *t != 1) {
            return Err("set-log: index 1 is the founding snapshot, of term 1".to_string());
        }
        if node.founders.is_empty() {
            return Err(format!(
                "set-log: node {id} joined later and has no founding disk"
            ));
        }
        let mut disk = founding_disk(&node.founders);
        let entries: Vec<Entry> = (2..)
            .zip(terms.iter().skip(1))
            .map(|(index, &t)| Entry::normal(index, t, Vec::new()))
            .collect();
        disk.append(&entries).map_err(|e| format!("set-log: {e}"))?;
        let commit = commit.max(1);
        disk.set_hard_state(HardState { term, vote, commit });
        self.out.push(describe_disk(&disk));
        node.sm = StateMachine::new(1, disk.conf_state().clone());
        node.state = NodeState::Down(Box::new(disk));
        node.seen = None;
        node.persists.clear();
        node.applies.clear();
        Ok(())
    }

    fn tick_election(&mut self, cmd: &Command) -> Result<(), String> {
        let id = required_id(cmd)?;
        let bound = 3 * self.nodes[&id].cfg.election_ticks;
        let raw = node_up(&mut self.nodes, id)?;
        let (role, term) = (raw.role(), raw.term());
        let mut ticks = 0;
        while ticks < bound && (raw.role(), raw.term()) == (role, term) {
            raw.tick();
            ticks += 1;
        }
        if (raw.role(), raw.term()) == (role, term) {
            self.out
                .push(format!("still {} after {ticks} ticks", render::role(role)));
        } else {
            self.out.push(format!("ticks={ticks}"));
        }
        self.observe(id);
        Ok(())
    }

    // ------------------------------------------------------------ inspection

    fn log(&mut self, cmd: &Command) -> Result<(), String> {
        let id = required_id(cmd)?;
        let node = self.nodes.get(&id).ok_or(format!("no node {id}"))?;
        match &node.state {
            NodeState::Up(raw) => {
                // The log's first index (a received snapshot may be ahead of the disk's):
                // asking for index 0 is answered with it.
                let first = match raw.log_entries(0, 0) {
                    Err(StorageError::Compacted { first_index, .. }) => first_index,
                    other => return Err(format!("log: unexpected answer {other:?}")),
                };
                let ents = raw
                    .log_entries(first, raw.last_index() + 1)
                    .map_err(|e| format!("log: {e}"))?;
                let st = raw.status();
                let base = first - 1;
                let snap = match raw.log_term(base) {
                    Some(term) if base > 1 => format!(" snap={term}/{base}"),
                    _ => String::new(),
                };
                self.out.push(format!(
                    "log={}{snap} commit={} applied={}",
                    render::entries(&ents),
                    st.commit,
                    st.applied
                ));
            }
            NodeState::Down(disk) => self.out.push(format!("down; {}", describe_disk(disk))),
        }
        Ok(())
    }

    fn status(&mut self, cmd: &Command) -> Result<(), String> {
        let id = required_id(cmd)?;
        let node = self.nodes.get(&id).ok_or(format!("no node {id}"))?;
        match &node.state {
            NodeState::Up(raw) => {
                self.out.extend(render::status(
                    &raw.status(),
                    raw.held_messages(),
                    node.cfg.check_quorum,
                ));
                if !node.persists.is_empty() || !node.applies.is_empty() {
                    let seqs: Vec<String> =
                        node.persists.iter().map(|b| b.seq().to_string()).collect();
                    self.out.push(format!(
                        "  outstanding: persist seq=[{}] apply batches={}",
                        seqs.join(" "),
                        node.applies.len()
                    ));
                }
            }
            NodeState::Down(_) => self.out.push("down".to_string()),
        }
        Ok(())
    }

    // ------------------------------------------------------------ membership and snapshots

    /// `conf-change ID [add=A,B] [learner=C] [remove=D] [transition=auto|implicit|explicit]`:
    /// proposes the changes in that order (adds, then learners, then removals).
    fn conf_change(&mut self, cmd: &mut Command) -> Result<(), String> {
        let id = required_id(cmd)?;
        let mut changes = Vec::new();
        for (key, kind) in [
            ("add", ConfChangeType::AddNode),
            ("learner", ConfChangeType::AddLearnerNode),
            ("remove", ConfChangeType::RemoveNode),
        ] {
            let Some(list) = cmd.take(key) else {
                continue;
            };
            for t in list.split(',') {
                let node_id = t.parse().map_err(|_| format!("{key}: bad node id `{t}`"))?;
                changes.push(ConfChangeSingle::new(kind, node_id));
            }
        }
        if changes.is_empty() {
            return Err("conf-change: no change given (leave-joint leaves)".to_string());
        }
        let transition = match cmd.take("transition").as_deref() {
            None | Some("auto") => ConfChangeTransition::Auto,
            Some("implicit") => ConfChangeTransition::JointImplicit,
            Some("explicit") => ConfChangeTransition::JointExplicit,
            Some(other) => {
                return Err(format!(
                    "transition={other}: expected auto, implicit or explicit"
                ));
            }
        };
        let cc = ConfChangeV2::new(transition, changes);
        let line = match node_up(&mut self.nodes, id)?.propose_conf_change(cc) {
            Ok(entry_id) => format!("{entry_id}"),
            Err(e) => format!("error: {e:?}"),
        };
        self.out.push(line);
        self.observe(id);
        Ok(())
    }

    /// `compact ID [INDEX]`: snapshots the state machine as of INDEX (default: all it
    /// applied) into the node's disk, then discards the log up to INDEX.
    fn compact(&mut self, cmd: &Command) -> Result<(), String> {
        let id = required_id(cmd)?;
        let node = self.nodes.get_mut(&id).ok_or(format!("no node {id}"))?;
        let index = cmd.positional_u64(1)?.unwrap_or(node.sm.applied);
        if index > node.sm.applied {
            return Err(format!(
                "compact: index {index} is not applied yet (applied {})",
                node.sm.applied
            ));
        }
        let data = node.sm.data_at(index);
        let conf = node.sm.conf_at(index).clone();
        let disk = match &mut node.state {
            NodeState::Up(raw) => raw.storage_mut(),
            NodeState::Down(disk) => disk,
        };
        match disk.create_snapshot(index, conf, data) {
            Ok(snap) => self
                .out
                .push(format!("snapshot={}", render::snapshot(&snap))),
            Err(e) => {
                self.out.push(format!("error: {e:?}"));
                return Ok(());
            }
        }
        if let Err(e) = disk.compact(index) {
            self.out.push(format!("error: {e:?}"));
        }
        self.out.push(describe_disk(disk));
        Ok(())
    }

    // ------------------------------------------------------------ hand-made input

    fn raw_step(&mut self, cmd: &mut Command) -> Result<(), String> {
        let id = required_id(cmd)?;
        let kind = cmd.take("type").ok_or("raw-step: type= is required")?;
        let msg_type = match kind.parse::<i32>() {
            Ok(n) => n,
            Err(_) => parse_kind(&kind)? as i32,
        };
        let entries = match cmd.take("entries") {
            Some(list) => list
                .split(',')
                .filter(|s| !s.is_empty())
                .map(parse_entry)
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        // `snap=t/i`: a snapshot at i/t carrying the node's current configuration.
        let snapshot = match cmd.take("snap") {
            Some(snap_id) => {
                let e = parse_entry(&snap_id)?;
                let conf = node_up(&mut self.nodes, id)?.conf_state();
                Some(Box::new(Snapshot {
                    data: Default::default(),
                    metadata: Some(raft_core::wire::SnapshotMetadata {
                        conf_state: Some(conf),
                        index: e.index,
                        term: e.term,
                    }),
                }))
            }
            None => None,
        };
        let m = Message {
            msg_type,
            to: cmd.take_u64("to")?.unwrap_or(id),
            from: cmd.take_u64("from")?.unwrap_or(0),
            term: cmd.take_u64("term")?.unwrap_or(0),
            log_term: cmd.take_u64("log-term")?.unwrap_or(0),
            index: cmd.take_u64("index")?.unwrap_or(0),
            entries,
            commit: cmd.take_u64("commit")?.unwrap_or(0),
            snapshot,
            reject: cmd.take_bool("reject")?.unwrap_or(false),
            reject_hint: cmd.take_u64("hint")?.unwrap_or(0),
            context: cmd.take("context").unwrap_or_default().into_bytes().into(),
            read_round: cmd.take_u64("read-round")?.unwrap_or(0),
            commit_term: cmd.take_u64("commit-term")?.unwrap_or(0),
            requester: cmd.take_u64("requester")?.unwrap_or(0),
        };
        if let Err(e) = node_up(&mut self.nodes, id)?.step(m) {
            self.out.push(format!("error: {e:?}"));
        }
        self.observe(id);
        Ok(())
    }
}

/// A founding member's disk, as the library bootstraps one: the configuration stands as a
/// snapshot at index 1 term 1, so the first election is term 2 and the first entry index 2.
fn founding_disk(voters: &[u64]) -> MemStorage {
    MemStorage::new_with_conf_state(ConfState::with_voters(voters.to_vec()))
}

/// `disk=[t/i ...] [snap=t/i] hs=(...)`; `snap` names the snapshot the log starts after,
/// shown when it is not the founding one at 1/1 (or the nothing of an empty disk).
fn describe_disk(disk: &MemStorage) -> String {
    let first = disk.first_index().expect("MemStorage never fails");
    let last = disk.last_index().expect("MemStorage never fails");
    let ents = disk
        .entries(first, last + 1, u64::MAX)
        .expect("the range is within the disk");
    let base = first - 1;
    let snap = if base > 1 {
        let term = disk.term(base).expect("the base term is known");
        format!(" snap={term}/{base}")
    } else {
        String::new()
    };
    format!(
        "disk={}{snap} hs={}",
        render::entries(&ents),
        render::hard_state(&disk.hard_state())
    )
}

/// What a Ready promises that the disk does not back (DESIGN §2 rules 2 and 4).
fn contract_violations(
    raw: &RawNode<MemStorage>,
    messages: &[Message],
    apply: Option<&ApplyBatch>,
) -> Vec<String> {
    let disk = raw.storage();
    let mut found = Vec::new();
    for m in messages {
        match m.kind() {
            MessageType::MsgAppResp if !m.reject && m.index > 0 => {
                // An ack in the node's current term says "my log matches up to `index`":
                // the disk must hold exactly those entries. (An ack from an older term was
                // true when it was made; a newer leader may since have overwritten them.)
                let backed =
                    m.term != raw.term() || disk.term(m.index).ok() == raw.log_term(m.index);
                if !backed {
                    found.push(format!(
                        "CONTRACT: {} acknowledges index {} before it is on disk",
                        render::message(m),
                        m.index
                    ));
                }
            }
            MessageType::MsgVoteResp if !m.reject => {
                let hs = disk.hard_state();
                let backed = hs.term > m.term || (hs.term == m.term && hs.vote == m.to);
                if !backed {
                    found.push(format!(
                        "CONTRACT: {} grants a vote that is not on disk",
                        render::message(m)
                    ));
                }
            }
            _ => {}
        }
    }
    if let Some(batch) = apply {
        if let Some(snap) = &batch.snapshot {
            let base = disk.first_index().expect("MemStorage never fails") - 1;
            if base < snap.index() {
                found.push(format!(
                    "CONTRACT: apply of snapshot {}/{} which is not on disk",
                    snap.term(),
                    snap.index()
                ));
            }
        }
        for e in &batch.entries {
            if disk.term(e.index).ok() != Some(e.term) {
                found.push(format!(
                    "CONTRACT: apply of {} which is not on disk",
                    render::entry(e)
                ));
            }
        }
    }
    found
}
