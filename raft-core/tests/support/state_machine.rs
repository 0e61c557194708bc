//! The state machine each scripted node applies to: the data of its applied entries and the
//! configuration after each applied change. It plays the application of a real driver, so
//! it survives crashes (it is durable with its applied index), it is what `compact` puts
//! into a snapshot, and a snapshot received from a leader restores it.
//!
//! It also replays configuration changes itself (with the library's pure `confchange`
//! functions), so the harness can check the `conf_state` an apply batch announces against
//! an independent computation.
//!
//! Invariants:
//! 1. `applied` only grows; entries are applied in index order, each once.
//! 2. `confs` is never empty and its indexes ascend: `confs[0]` is the configuration the node
//!    started from (or the last restored snapshot's), each later one follows a change.
//! 3. `data` indexes ascend and are at most `applied`.
//!
//! Snapshot data is the applied data items joined by `,` (readable in traces; a data item
//! holding a comma would be split on restore, which only changes what traces print).

use bytes::Bytes;
use prost::Message as _;
use raft_core::confchange;
use raft_core::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType, Snapshot};

/// The application of one node.
pub struct StateMachine {
    /// The last index applied (a snapshot counts as applying up to its index).
    pub applied: u64,
    /// Data of the applied non-empty normal entries, with their index. Items restored
    /// from a snapshot carry the snapshot's index.
    data: Vec<(u64, String)>,
    /// The configuration after each applied change, with the change's index.
    confs: Vec<(u64, ConfState)>,
}

impl StateMachine {
    /// A state machine that has applied everything up to `applied`, in configuration `conf`.
    pub fn new(applied: u64, conf: ConfState) -> StateMachine {
        StateMachine {
            applied,
            data: Vec::new(),
            confs: vec![(applied, conf)],
        }
    }

    /// The configuration after everything applied.
    pub fn conf(&self) -> &ConfState {
        &self
            .confs
            .last()
            .expect("invariant 2: confs is never empty")
            .1
    }

    /// The configuration as of `index` (the last change at or below it).
    pub fn conf_at(&self, index: u64) -> &ConfState {
        let at = self
            .confs
            .iter()
            .rposition(|(i, _)| *i <= index)
            .unwrap_or(0);
        &self.confs[at].1
    }

    /// The snapshot data of the state as of `index`.
    pub fn data_at(&self, index: u64) -> Bytes {
        let items: Vec<&str> = self
            .data
            .iter()
            .filter(|(i, _)| *i <= index)
            .map(|(_, d)| d.as_str())
            .collect();
        Bytes::from(items.join(","))
    }

    /// Applies `ents` (which must follow `applied`); returns whether any configuration change
    /// took effect. An invalid change is skipped, as every node skips it.
    pub fn apply_entries(&mut self, ents: &[Entry]) -> bool {
        let mut changed = false;
        for e in ents {
            assert!(
                e.index > self.applied,
                "invariant 1: each entry is applied once"
            );
            self.applied = e.index;
            match decode_conf_change(e) {
                Some(Ok(cc)) => {
                    if let Ok(next) = confchange::apply(self.conf(), &cc) {
                        self.confs.push((e.index, next));
                        changed = true;
                    }
                }
                Some(Err(())) => {}
                None if e.data.is_empty() => {}
                None => self
                    .data
                    .push((e.index, String::from_utf8_lossy(&e.data).into_owned())),
            }
        }
        changed
    }

    /// Replaces the state with a snapshot's.
    pub fn restore(&mut self, snap: &Snapshot) {
        let index = snap.index();
        assert!(
            index > self.applied,
            "invariant 1: a snapshot moves forward"
        );
        self.applied = index;
        self.data = std::str::from_utf8(&snap.data)
            .unwrap_or_default()
            .split(',')
            .filter(|d| !d.is_empty())
            .map(|d| (index, d.to_string()))
            .collect();
        let conf = snap
            .metadata
            .as_ref()
            .and_then(|m| m.conf_state.clone())
            .unwrap_or_default();
        self.confs = vec![(index, conf)];
    }

    /// `applied=N data=[a b]`.
    pub fn describe(&self) -> String {
        let items: Vec<&str> = self.data.iter().map(|(_, d)| d.as_str()).collect();
        format!("applied={} data=[{}]", self.applied, items.join(" "))
    }
}

/// The change a configuration entry carries: `None` for another kind of entry, `Some(Err)`
/// when its data does not decode.
pub fn decode_conf_change(e: &Entry) -> Option<Result<ConfChangeV2, ()>> {
    match EntryType::try_from(e.entry_type) {
        Ok(EntryType::EntryConfChangeV2) => {
            Some(ConfChangeV2::decode(e.data.as_ref()).map_err(|_| ()))
        }
        Ok(EntryType::EntryConfChange) => Some(
            ConfChange::decode(e.data.as_ref())
                .map(ConfChangeV2::from)
                .map_err(|_| ()),
        ),
        _ => None,
    }
}
