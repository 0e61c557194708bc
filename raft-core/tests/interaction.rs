//! Golden interaction tests: every `tests/interaction/*.txt` script drives an in-memory
//! cluster through the Ready contract, and its output must match the script's expected
//! output line for line.
//!
//! Run `REWRITE=1 cargo test -p raft-core --test interaction` to rewrite the expected outputs
//! instead, then review the change as a git diff. `INTERACTION=name` runs only the scripts
//! whose file name contains `name`.
//!
//! # The command language
//!
//! A script is blocks of `command args` / `----` / expected output / blank line, with `#`
//! comment lines between blocks (see `support/script.rs`). Node ids are numbers; `t/i` is
//! term/index.
//!
//! | command | what it does |
//! | --- | --- |
//! | `add-nodes N [pre-vote=B] [check-quorum=B] [forwarding=B] [election=N] [heartbeat=N] [inflight=N] [inflight-bytes=N] [msg-bytes=N] [uncommitted-bytes=N] [seed=N] [read-only=safe\|lease] [step-down=B]` | N nodes with the next ids, voters = exactly these N, each with the library's bootstrap disk (`MemStorage::new_with_conf_state`: the configuration as a snapshot at 1/1, term 1), so the first election is term 2 and the first entry index 2; pre-vote and check-quorum default to false, forwarding and step-down (on removal) to true, read-only to safe; `seed` is given to every node of the command |
//! | `join ID` | a new node ID with an empty disk (`MemStorage::new()`, no configuration) and the config of the lowest-numbered node, in that node's cluster; it learns the configuration from a leader's snapshot once a `conf-change` adds it |
//! | `campaign ID` | `campaign()` |
//! | `propose ID DATA` | `propose(DATA)`, prints the `t/i` it got or the error |
//! | `tick ID [N]` | N ticks (default 1) |
//! | `tick-election ID` | ticks until the role or term changes (at most 3 × election ticks), prints how many |
//! | `ready [ID]` | takes one Ready (of every live node with one, if no ID) and prints it; its messages go to the network, its batches are queued, nothing is written |
//! | `persist ID [N]` | writes the oldest N (default all) queued persist batches to the node's disk (a snapshot replaces the log), then `on_persisted` |
//! | `apply ID` | applies the queued apply batches to the node's state machine (a snapshot restores it), stores the `conf_state` a batch announces on the disk (so a restart keeps it), then `on_applied` |
//! | `deliver [ID] [from=X] [type=T]` | steps the queued messages to ID (or all) in queue order; drops those to a down node or across a partition |
//! | `drop [from=X] [to=Y] [type=T]` | removes matching queued messages |
//! | `partition 1 2 / 3 4 5`, `cut A B`, `heal` | cuts the network into groups (a node in no group is alone) / cuts one link both ways / undoes all cuts |
//! | `crash ID` | loses the node's memory, its queued batches and the messages queued to it; its disk keeps what was persisted |
//! | `restart ID` | a new node from the disk, with `Config::applied` = what its state machine applied |
//! | `set-log ID terms=1,1,2 term=T [vote=V] [commit=C]` | replaces the disk of a down or fresh founding node (left down: `restart` it); `terms` are those of indexes 1, 2, ..., where index 1 is the founding snapshot (so the first term is 1) |
//! | `conf-change ID [add=A,B] [learner=C] [remove=D] [transition=auto\|implicit\|explicit]` | `propose_conf_change` of those changes (adds, then learners, then removals); prints the `t/i` or the error. One change with `auto` is a simple change, anything else enters a joint configuration, left automatically unless `explicit` |
//! | `leave-joint ID` | proposes leaving the joint configuration; prints the `t/i` or the error |
//! | `transfer-leader ID TO`, `read-index ID CTX`, `forget-leader ID` | the input of that name; prints the error, if any (confirmed reads show up in a Ready as `read index=N ctx=C`) |
//! | `report-snapshot ID PEER ok\|fail`, `report-unreachable ID PEER` | the leader's report of a snapshot sent to PEER / of a failed send |
//! | `compact ID [INDEX]` | `create_snapshot` at INDEX (default: the node's applied index) with the state machine as of INDEX as data, then `compact`; prints the snapshot and the disk |
//! | `stabilize [no-persist=ID,ID] [only=ID,ID]` | until nothing moves: every live node's Ready is taken, written and applied, then every message is delivered; the disks of `no-persist` nodes are stalled (their batches stay queued); with `only`, the other nodes are frozen (no Ready, messages to them stay queued) |
//! | `log ID`, `disk ID`, `status ID` | the node's log, its disk, its status and (on a leader) its peers' progress; `snap=t/i` names the snapshot a log starts after when it is not the founding 1/1 |
//! | `conf ID`, `state ID` | the configuration in effect on the node (`voters=(1 2 4)&&(1 2 3) learners=(5)`, joint with the outgoing half after `&&`) / its state machine (applied index and data) |
//! | `raw-step ID type=T from=X [to=Y] [term=] [log-term=] [index=] [commit=] [entries=t/i,t/i:data] [reject=B] [hint=] [context=] [read-round=] [commit-term=] [requester=] [snap=t/i]` | steps a hand-made message; `snap=t/i` gives it a snapshot at i/t with the node's configuration |
//! | `check` | `check_invariants()` on every live node (also run after every command) |
//!
//! Entries print as `t/i[:data]`, configuration changes as `t/i:cc(add=4 remove=3)`; an apply
//! batch that changes the configuration ends with `-> voters=(...)`, and a snapshot prints as
//! `t/i{voters=(1 2 3) data=a,b}` (the data is the applied items, comma-separated).
//!
//! Output lines: `~ 2 follower term=3 leader=1` when a node's role, term or leader changed;
//! `> 2 ready` heads a node's Ready inside `stabilize` and `ready` without an id. A line
//! starting with `CONTRACT:` or `SAFETY:` is the harness catching the node breaking the
//! Ready contract or a Raft safety property, and `INVARIANT:` a node failing its own
//! `check_invariants()` after the command; see `support/cluster.rs`. Lines starting with
//! `# ` inside an expected output are notes, kept on rewrite and not compared: `# BUG: ...`
//! marks output that records a known core bug, saying what the right output is.

mod support;

use std::path::{Path, PathBuf};
use support::cluster::Cluster;
use support::script::{self, Item};

#[test]
fn interaction_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interaction");
    let rewrite = std::env::var("REWRITE").is_ok_and(|v| v == "1");
    let only = std::env::var("INTERACTION").ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .filter(|p| {
            only.as_deref().is_none_or(|o| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(o))
            })
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts in {}", dir.display());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| run_script(f, rewrite).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} scripts failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// Runs one script; on a mismatch, returns the diff of its first differing command (or, when
/// rewriting, writes the actual outputs back to the file).
fn run_script(path: &Path, rewrite: bool) -> Result<(), String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    if !text.starts_with('#') {
        return Err(format!(
            "{name}: a script opens with a `#` paragraph saying what it proves"
        ));
    }
    let items = script::parse(&text).map_err(|e| format!("{name}: {e}"))?;
    let mut cluster = Cluster::new();
    let mut outputs = Vec::new();
    let mut first_mismatch = None;
    for item in &items {
        let Item::Block(block) = item else {
            continue;
        };
        let run =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cluster.run(&block.command)));
        let actual = match run {
            Ok(Ok(lines)) => lines,
            Ok(Err(e)) => {
                return Err(format!(
                    "{name}:{}: `{}`: script error: {e}",
                    block.line_no, block.command
                ));
            }
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                    .unwrap_or_default();
                return Err(format!(
                    "{name}:{}: `{}` panicked: {msg}",
                    block.line_no, block.command
                ));
            }
        };
        if first_mismatch.is_none() && actual != block.expected {
            first_mismatch = Some(format!(
                "{name}:{}: output of `{}` differs (- expected, + actual):\n{}",
                block.line_no,
                block.command,
                script::diff(&block.expected, &actual)
            ));
        }
        outputs.push(actual);
    }
    if rewrite {
        let new_text = script::render(&items, &outputs);
        if new_text != text {
            std::fs::write(path, new_text).map_err(|e| format!("{name}: {e}"))?;
        }
        return Ok(());
    }
    first_mismatch.map_or(Ok(()), Err)
}
