//! Counters a run reports about its agents: what the compaction, transfer, membership and
//! read paths did, so a run shows that its features were exercised.
//!
//! Both the nodes' drivers ([`crate::node`]: snapshots made and restored, reads served,
//! transfers and changes asked for) and the world ([`crate::world`] and its agents: snapshots
//! sent, nodes started and retired) add to them, so they live apart from both.
//!
//! Invariants:
//! 1. Counters only count: nothing in a run reads them to decide what happens next.

/// Agent counters for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Snapshots nodes made of their state machines.
    pub snapshots_made: u64,
    /// `MsgSnap` messages leaders sent.
    pub snapshots_sent: u64,
    /// Snapshots followers restored.
    pub snapshots_applied: u64,
    /// Restarts that started from a snapshot past the founding one.
    pub restarts_from_snapshot: u64,
    /// `report_snapshot(Finish)` calls.
    pub snapshot_reports_finish: u64,
    /// `report_snapshot(Failure)` calls.
    pub snapshot_reports_failure: u64,
    /// Leadership transfers asked for.
    pub transfers_asked: u64,
    /// ... and accepted by the leader.
    pub transfers_accepted: u64,
    /// Proposals and reads refused during a transfer (retried by clients).
    pub busy_refusals: u64,
    /// Membership changes a leader accepted.
    pub conf_changes_proposed: u64,
    /// Of those, joint ones (several changes at once).
    pub joint_changes_proposed: u64,
    /// Apply batches that changed a node's configuration.
    pub conf_changes_applied: u64,
    /// Spare nodes started.
    pub nodes_started: u64,
    /// Removed nodes stopped for good.
    pub nodes_retired: u64,
    /// Reads served by ReadIndex or lease.
    pub reads_served: u64,
    /// Leaders the promotion-crash agent crashed right after they committed a promotion.
    pub promotion_crashes: u64,
}
