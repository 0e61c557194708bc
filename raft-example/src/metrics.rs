//! The node's counters and gauges, rendered in the Prometheus text format for `GET /metrics`.
//!
//! Everything is an atomic updated where it happens (the node task, the storage thread, the
//! transport's writer tasks); rendering reads them without locks.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds (seconds) of the fsync latency histogram's buckets.
pub const FSYNC_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_2, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0,
];

/// A latency histogram with fixed buckets (cumulative counts are computed when rendering).
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; FSYNC_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let at = FSYNC_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(FSYNC_BUCKETS.len());
        self.counts[at].fetch_add(1, Relaxed);
        self.sum_nanos
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, le) in FSYNC_BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        cumulative += self.counts[FSYNC_BUCKETS.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {}", self.count.load(Relaxed));
    }
}

/// Every metric of one node.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Proposals accepted by this node as leader (client writes and membership changes).
    pub proposals_total: AtomicU64,
    /// Proposals refused (not leader, dropped).
    pub proposals_failed_total: AtomicU64,
    /// Entries applied (committed and applied here).
    pub commits_total: AtomicU64,
    /// The commit index.
    pub commit_index: AtomicU64,
    /// The applied index.
    pub applied_index: AtomicU64,
    /// The current term.
    pub term: AtomicU64,
    /// 1 on the leader.
    pub is_leader: AtomicU64,
    /// Times this node saw the leader change (including to none).
    pub leader_changes_total: AtomicU64,
    /// Messages the transport could not deliver (queue full, connection failed).
    pub peer_send_failures_total: AtomicU64,
    /// Messages sent to peers.
    pub peer_messages_sent_total: AtomicU64,
    /// Messages received from peers.
    pub peer_messages_received_total: AtomicU64,
    /// Connections refused at the handshake or closed on a bad frame.
    pub peer_connections_rejected_total: AtomicU64,
    /// Persist batches written.
    pub wal_batches_total: AtomicU64,
    /// fdatasyncs of the WAL.
    pub fsync_seconds: Histogram,
    /// Persist batches waiting for or in the storage thread.
    pub persist_queue_depth: AtomicU64,
    /// Messages queued in the transport's per-peer queues (all peers).
    pub peer_queue_depth: AtomicU64,
    /// Client requests waiting in the node task's queue.
    pub request_queue_depth: AtomicU64,
    /// Writes waiting for their entry to be applied.
    pub pending_writes: AtomicU64,
    /// Linearizable reads waiting for their read index.
    pub pending_reads: AtomicU64,
    /// Snapshots this node made of its state machine.
    pub snapshots_made_total: AtomicU64,
    /// Snapshots from a leader installed here.
    pub snapshots_installed_total: AtomicU64,
    /// Snapshots sent to peers (MsgSnap).
    pub snapshots_sent_total: AtomicU64,
    /// The index of the latest snapshot.
    pub snapshot_index: AtomicU64,
    /// HTTP requests answered, by class.
    pub http_requests_total: AtomicU64,
    /// HTTP requests forwarded to the leader.
    pub http_forwarded_total: AtomicU64,
    /// HTTP requests that timed out (504).
    pub http_timeouts_total: AtomicU64,
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counters: [(&str, &str, &AtomicU64); 16] = [
            (
                "raft_proposals_total",
                "Proposals accepted as leader.",
                &self.proposals_total,
            ),
            (
                "raft_proposals_failed_total",
                "Proposals refused.",
                &self.proposals_failed_total,
            ),
            (
                "raft_commits_total",
                "Entries committed and applied.",
                &self.commits_total,
            ),
            (
                "raft_leader_changes_total",
                "Leader changes seen.",
                &self.leader_changes_total,
            ),
            (
                "raft_peer_send_failures_total",
                "Messages the transport could not deliver.",
                &self.peer_send_failures_total,
            ),
            (
                "raft_peer_messages_sent_total",
                "Messages sent to peers.",
                &self.peer_messages_sent_total,
            ),
            (
                "raft_peer_messages_received_total",
                "Messages received from peers.",
                &self.peer_messages_received_total,
            ),
            (
                "raft_peer_connections_rejected_total",
                "Peer connections refused or closed on bad input.",
                &self.peer_connections_rejected_total,
            ),
            (
                "raft_wal_batches_total",
                "Persist batches written.",
                &self.wal_batches_total,
            ),
            (
                "raft_snapshots_made_total",
                "State-machine snapshots made.",
                &self.snapshots_made_total,
            ),
            (
                "raft_snapshots_installed_total",
                "Leader snapshots installed.",
                &self.snapshots_installed_total,
            ),
            (
                "raft_snapshots_sent_total",
                "Snapshots sent to peers.",
                &self.snapshots_sent_total,
            ),
            (
                "http_requests_total",
                "HTTP requests answered.",
                &self.http_requests_total,
            ),
            (
                "http_forwarded_total",
                "HTTP requests forwarded to the leader.",
                &self.http_forwarded_total,
            ),
            (
                "http_timeouts_total",
                "HTTP requests that timed out.",
                &self.http_timeouts_total,
            ),
            (
                "raft_peer_messages_dropped_total",
                "Alias of raft_peer_send_failures_total.",
                &self.peer_send_failures_total,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Relaxed));
        }
        let gauges: [(&str, &str, &AtomicU64); 11] = [
            ("raft_commit_index", "Commit index.", &self.commit_index),
            ("raft_applied_index", "Applied index.", &self.applied_index),
            ("raft_term", "Current term.", &self.term),
            ("raft_is_leader", "1 on the leader.", &self.is_leader),
            (
                "raft_snapshot_index",
                "Latest snapshot index.",
                &self.snapshot_index,
            ),
            (
                "raft_persist_queue_depth",
                "Persist batches waiting for the storage thread.",
                &self.persist_queue_depth,
            ),
            (
                "raft_peer_queue_depth",
                "Messages queued for peers.",
                &self.peer_queue_depth,
            ),
            (
                "raft_request_queue_depth",
                "Client requests queued for the node task.",
                &self.request_queue_depth,
            ),
            (
                "raft_pending_writes",
                "Writes waiting to be applied.",
                &self.pending_writes,
            ),
            (
                "raft_pending_reads",
                "Linearizable reads waiting.",
                &self.pending_reads,
            ),
            (
                "raft_fsyncs",
                "fdatasyncs so far (also raft_fsync_seconds_count).",
                &self.fsync_seconds.count,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {}", v.load(Relaxed));
        }
        self.fsync_seconds.render(
            &mut out,
            "raft_fsync_seconds",
            "Latency of one WAL fdatasync.",
        );
        out
    }
}

/// Adds one to a counter.
#[inline]
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// Sets a gauge.
#[inline]
pub fn set(g: &AtomicU64, v: u64) {
    g.store(v, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_histogram_is_cumulative_and_rendered_as_prometheus_text() {
        let m = Metrics::default();
        m.fsync_seconds.observe(Duration::from_micros(30));
        m.fsync_seconds.observe(Duration::from_micros(150));
        m.fsync_seconds.observe(Duration::from_secs(3));
        inc(&m.proposals_total);
        set(&m.applied_index, 42);
        let text = m.render();
        assert!(
            text.contains("raft_fsync_seconds_bucket{le=\"0.00005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("raft_fsync_seconds_bucket{le=\"0.0002\"} 2\n"));
        assert!(text.contains("raft_fsync_seconds_bucket{le=\"1\"} 2\n"));
        assert!(text.contains("raft_fsync_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("raft_fsync_seconds_count 3\n"));
        assert!(text.contains("raft_proposals_total 1\n"));
        assert!(text.contains("raft_applied_index 42\n"));
        assert!(text.contains("# TYPE raft_fsync_seconds histogram\n"));
    }
}
