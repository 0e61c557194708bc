//! The simulated network between nodes: one directed link per ordered pair.
//!
//! A send draws the fate of a message on its link: lost, delivered once or twice, possibly
//! with an old message of the same link replayed; its delivery time is the link's minimum
//! delay plus a random part (plus more on a slow link). Without reordering, a link delivers in
//! send order. A link holds at most `net_link_capacity_max` messages in flight; more are
//! dropped. Faults act on links:
//!
//! ```text
//!   blocked  ── messages sent or arriving on it are dropped   (partitions, one-way cuts)
//!   clogged  ── arriving messages are held ... unclog ──► all delivered at once
//! ```
//!
//! A delivery may carry a transport report: the original copy of a `MsgSnap` does, so that
//! the world can tell the sender how the snapshot transfer ended (`report_snapshot`). The
//! report travels with the message through clogs.
//!
//! Invariants:
//! 1. `in_flight` of a link counts the deliveries scheduled and not yet arrived or dropped.
//! 2. Held (clogged) messages are released in arrival order.
//! 3. A node never sends to itself (raft-core never does; asserted).

use crate::options::Options;
use crate::rng::SimRng;
use raft_core::Message;
use std::collections::VecDeque;

/// How many old messages a link remembers for replays.
const REPLAY_HISTORY_MAX: usize = 8;

/// A message scheduled for delivery.
#[derive(Debug)]
pub struct Delivery {
    /// When it arrives.
    pub at_us: u64,
    /// The message.
    pub msg: Message,
    /// Whether it is a duplicate or a replay (for the trace).
    pub copy: CopyKind,
}

/// Why a delivery exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyKind {
    /// The message as sent.
    Original,
    /// A second copy of it.
    Duplicate,
    /// An old message of the link, delivered again.
    Replay,
}

/// The transport report a delivery carries: for the original copy of a snapshot, the
/// incarnation of the sender that must hear how the transfer ended.
pub type Report = Option<u64>;

/// What became of a delivery when it arrived.
#[derive(Debug)]
pub enum Arrival {
    /// It goes through to the addressee (which may be down).
    Through(Message, Report),
    /// The link is blocked: dropped.
    Dropped(Message, Report),
    /// The link is clogged: held until it unclogs.
    Held,
}

/// What happened to a send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendOutcome {
    /// Dropped by a partition.
    pub blocked: bool,
    /// Lost at random.
    pub lost: bool,
    /// Dropped because the link was full.
    pub overflow: bool,
}

#[derive(Debug, Default)]
struct Link {
    blocked: bool,
    clogged: bool,
    slow_us: u64,
    in_flight: usize,
    last_delivery_us: u64,
    held: Vec<(Message, Report)>,
    history: VecDeque<Message>,
}

/// The network of one run.
#[derive(Debug)]
pub struct Net {
    nodes: usize,
    links: Vec<Link>,
    delay_min_us: u64,
    delay_jitter_us: u64,
    loss_ppm: u32,
    dup_ppm: u32,
    replay_ppm: u32,
    reorder: bool,
    capacity_max: usize,
    /// Counters for the report.
    pub stats: NetStats,
}

/// Message counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages delivered to a running node.
    pub delivered: u64,
    /// Dropped: lost, blocked, overflowing, or addressed to a node that was down.
    pub dropped: u64,
    /// Extra copies (duplicates and replays).
    pub copies: u64,
}

impl Net {
    /// A fully connected network of `nodes` node slots with the link behaviour of `opts`.
    pub fn new(nodes: usize, opts: &Options, rng: &mut SimRng) -> Net {
        let mut links: Vec<Link> = (0..nodes * nodes).map(|_| Link::default()).collect();
        for l in &mut links {
            // About one link in four is slow when slow links are on.
            if opts.net_slow_link_us > 0 && rng.ratio(1, 4) {
                l.slow_us = opts.net_slow_link_us;
            }
        }
        Net {
            nodes,
            links,
            delay_min_us: opts.net_delay_min_us,
            delay_jitter_us: opts.net_delay_jitter_us,
            loss_ppm: opts.net_loss_ppm,
            dup_ppm: opts.net_dup_ppm,
            replay_ppm: opts.net_replay_ppm,
            reorder: opts.net_reorder,
            capacity_max: opts.net_link_capacity_max,
            stats: NetStats::default(),
        }
    }

    fn link(&mut self, from: u64, to: u64) -> &mut Link {
        let i = self.index(from, to);
        &mut self.links[i]
    }

    fn index(&self, from: u64, to: u64) -> usize {
        assert!(from != to, "a node never sends to itself");
        let (f, t) = (from as usize - 1, to as usize - 1);
        assert!(f < self.nodes && t < self.nodes, "node ids are 1..=slots");
        f * self.nodes + t
    }

    /// Sends `msg` at `now_us`; pushes the deliveries it causes onto `out`.
    pub fn send(
        &mut self,
        now_us: u64,
        msg: Message,
        rng: &mut SimRng,
        out: &mut Vec<Delivery>,
    ) -> SendOutcome {
        self.stats.sent += 1;
        let (delay_min, jitter, reorder, cap) = (
            self.delay_min_us,
            self.delay_jitter_us,
            self.reorder,
            self.capacity_max,
        );
        let (loss, dup, replay) = (self.loss_ppm, self.dup_ppm, self.replay_ppm);
        let i = self.index(msg.from, msg.to);
        let link = &mut self.links[i];
        let mut outcome = SendOutcome::default();
        // Draw every fate even when the link is blocked, so a partition does not shift the
        // stream of later draws more than it must.
        let lost = rng.chance(loss);
        let duplicated = rng.chance(dup);
        let replayed = rng.chance(replay);
        if link.blocked {
            outcome.blocked = true;
        } else if lost {
            outcome.lost = true;
        } else if link.in_flight >= cap {
            outcome.overflow = true;
        }
        if outcome != SendOutcome::default() {
            self.stats.dropped += 1;
            return outcome;
        }
        let mut schedule = |link: &mut Link, msg: Message, copy: CopyKind, rng: &mut SimRng| {
            let extra = rng.range(0, jitter + link.slow_us);
            let mut at = now_us + delay_min + extra;
            if copy == CopyKind::Replay {
                // Replays come from the distant past: up to a second late.
                at += rng.range(0, 1_000_000);
            } else if !reorder {
                at = at.max(link.last_delivery_us);
                link.last_delivery_us = at;
            }
            link.in_flight += 1;
            out.push(Delivery {
                at_us: at,
                msg,
                copy,
            });
        };
        if replayed && !link.history.is_empty() {
            let k = rng.index(link.history.len());
            let old = link.history[k].clone();
            schedule(link, old, CopyKind::Replay, rng);
            self.stats.copies += 1;
        }
        if replay > 0 {
            if link.history.len() == REPLAY_HISTORY_MAX {
                link.history.pop_front();
            }
            link.history.push_back(msg.clone());
        }
        if duplicated {
            schedule(link, msg.clone(), CopyKind::Duplicate, rng);
            self.stats.copies += 1;
        }
        schedule(link, msg, CopyKind::Original, rng);
        outcome
    }

    /// A scheduled delivery of a message on link `from → to` arrives: it goes through, or is
    /// dropped (blocked link), or held (clogged link).
    pub fn arrive(&mut self, msg: Message, report: Report) -> Arrival {
        let link = self.link(msg.from, msg.to);
        assert!(link.in_flight > 0, "an arrival was scheduled");
        link.in_flight -= 1;
        if link.blocked {
            self.stats.dropped += 1;
            return Arrival::Dropped(msg, report);
        }
        if link.clogged {
            link.held.push((msg, report));
            return Arrival::Held;
        }
        Arrival::Through(msg, report)
    }

    /// Counts a message that arrived for a node that was down.
    pub fn count_dropped(&mut self) {
        self.stats.dropped += 1;
    }

    /// Counts a message delivered to a running node.
    pub fn count_delivered(&mut self) {
        self.stats.delivered += 1;
    }

    /// Blocks or unblocks the link `from → to`.
    pub fn set_blocked(&mut self, from: u64, to: u64, blocked: bool) {
        self.link(from, to).blocked = blocked;
    }

    /// Whether `from → to` is blocked.
    pub fn is_blocked(&self, from: u64, to: u64) -> bool {
        self.links[self.index(from, to)].blocked
    }

    /// Clogs the link `from → to`: arriving messages are held.
    pub fn clog(&mut self, from: u64, to: u64) {
        self.link(from, to).clogged = true;
    }

    /// Unclogs `from → to` and returns the held messages, to be delivered now.
    pub fn unclog(&mut self, from: u64, to: u64) -> Vec<(Message, Report)> {
        let link = self.link(from, to);
        link.clogged = false;
        let held = std::mem::take(&mut link.held);
        link.in_flight += held.len();
        held
    }

    /// Unblocks every link (clogs stay; see [`Net::unclog`]).
    pub fn heal(&mut self) {
        for l in &mut self.links {
            l.blocked = false;
        }
    }

    /// Turns the fault knobs off and caps delays for the liveness phase: no loss,
    /// duplicates, replays or slow links; jitter at most `jitter_max_us`.
    pub fn calm(&mut self, jitter_max_us: u64) {
        self.loss_ppm = 0;
        self.dup_ppm = 0;
        self.replay_ppm = 0;
        self.delay_jitter_us = self.delay_jitter_us.min(jitter_max_us);
        for l in &mut self.links {
            l.slow_us = 0;
            l.history.clear();
        }
    }

    /// Every clogged link, as `(from, to)`.
    pub fn clogged_links(&self) -> Vec<(u64, u64)> {
        let n = self.nodes;
        (0..n * n)
            .filter(|&i| self.links[i].clogged)
            .map(|i| ((i / n) as u64 + 1, (i % n) as u64 + 1))
            .collect()
    }
}
