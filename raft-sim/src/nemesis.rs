//! The nemesis: the faults of the safety phase, and the switch to the liveness phase.
//!
//! Every `nemesis_gap` the nemesis picks one action among the fault families the seed turned
//! on, and schedules its undoing after a drawn duration:
//!
//! | family | shapes | undone by |
//! | --- | --- | --- |
//! | partition | isolate one node; random halves; a minority cut from the majority; one-way (a node that cannot send, or cannot hear); a bridge (two sides that reach each other only through one node); isolate the current leader (weighted by `isolate_leader_weight`) | heal (only if no newer partition replaced it) |
//! | clog | one link, or every link out of a node, holds its traffic | unclog: the held messages arrive at once |
//! | crash | a running node stops; unsynced writes are lost (or partly survive, torn) | restart from the durable state |
//! | pause | a running node stops ticking and handling input | resume: with `pause_catch_up`, first the ticks it missed (its clock kept running), then what arrived meanwhile, in order |
//!
//! Faults act on the nodes clients know of (started and not retired); a spare slot not yet
//! started or a retired node is left alone.
//!
//! The liveness phase (at `safety_us`): every fault is undone and no new one starts, except
//! that `liveness_out` nodes (a minority) are left crashed or cut off; the others, the core,
//! must elect a leader, answer every client and converge (see [`crate::world`] for the bounds).
//! With membership changes, removed nodes are retired at once and the nodes left out are
//! chosen to keep a quorum of every configuration that may still come into force
//! (see [`crate::agents`]).
//! The network stays delayed but loses, duplicates and replays nothing, and fsyncs stop
//! stalling. Clients finish their current operation and start no new one.
//!
//! Invariants:
//! 1. At most one partition is in force; a newer one replaces it.
//! 2. Undo events of the safety phase do nothing in the liveness phase.

use crate::node::Life;
use crate::world::{Ev, Phase, World};

impl World {
    /// One nemesis action, and the next one scheduled.
    pub(crate) fn nemesis(&mut self) {
        if self.phase != Phase::Safety {
            return;
        }
        let o = &self.opts;
        let weights = [
            if o.partitions { 3 } else { 0 },
            if o.clogging { 2 } else { 0 },
            if o.crashes { 3 } else { 0 },
            if o.pauses { 2 } else { 0 },
        ];
        match self.rng.weighted(&weights) {
            0 => self.partition(),
            1 => self.clog(),
            2 => self.crash_one(),
            _ => self.pause_one(),
        }
        let gap = self
            .rng
            .range(self.opts.nemesis_gap_min_us, self.opts.nemesis_gap_max_us);
        self.schedule(gap, Ev::Nemesis);
    }

    pub(crate) fn fault_duration(&mut self) -> u64 {
        let max = self.opts.fault_duration_max_us;
        self.rng.range(max / 10 + 1, max)
    }

    fn note(&mut self, word: u64, what: impl FnOnce() -> String) {
        self.trace.mix(word);
        let now = self.now_us;
        self.trace.line(now, || format!("nemesis: {}", what()));
    }

    fn block_between(&mut self, a: &[u64], b: &[u64]) {
        for &x in a {
            for &y in b {
                self.net.set_blocked(x, y, true);
                self.net.set_blocked(y, x, true);
            }
        }
    }

    fn partition(&mut self) {
        self.net.heal();
        self.partition_generation += 1;
        self.faults.partitions += 1;
        let mut ids: Vec<u64> = self.contacts.clone();
        let n = ids.len() as u64;
        self.rng.shuffle(&mut ids);
        let mut weights = [1, 1, 1, 1, 1, self.opts.isolate_leader_weight];
        if n < 3 {
            // Too few nodes for halves or bridges.
            weights = [1, 0, 0, 1, 0, weights[5]];
        }
        let shape = self.rng.weighted(&weights) as u64;
        let what = match shape {
            5 => {
                let leader = self.current_leader().map_or(ids[0], |l| l as u64 + 1);
                let rest: Vec<u64> = ids.iter().copied().filter(|&x| x != leader).collect();
                self.block_between(&[leader], &rest);
                format!("isolate the leader n{leader}")
            }
            0 => {
                self.block_between(&ids[..1], &ids[1..]);
                format!("isolate n{}", ids[0])
            }
            1 | 2 => {
                let k = if shape == 1 {
                    self.rng.range(1, n - 1)
                } else {
                    self.rng.range(1, (n - 1) / 2)
                } as usize;
                let (a, b) = ids.split_at(k);
                let (a, b) = (a.to_vec(), b.to_vec());
                self.block_between(&a, &b);
                format!("split {a:?} | {b:?}")
            }
            3 => {
                let x = ids[0];
                let mute = self.rng.coin();
                for &y in &ids[1..] {
                    if mute {
                        self.net.set_blocked(x, y, true);
                    } else {
                        self.net.set_blocked(y, x, true);
                    }
                }
                format!(
                    "one-way: n{x} {}",
                    if mute { "cannot send" } else { "cannot hear" }
                )
            }
            _ => {
                let k = self.rng.range(1, n - 2) as usize;
                let (a, b) = (ids[1..1 + k].to_vec(), ids[1 + k..].to_vec());
                self.block_between(&a, &b);
                format!("bridge n{} between {a:?} and {b:?}", ids[0])
            }
        };
        let generation = self.partition_generation;
        let d = self.fault_duration();
        self.note(0x5041_5254 ^ shape, || format!("{what} for {d}us"));
        self.schedule(d, Ev::Heal { generation });
    }

    /// Undoes the partition of `generation` if it is still in force.
    pub(crate) fn heal(&mut self, generation: u64) {
        if self.phase != Phase::Safety || generation != self.partition_generation {
            return;
        }
        self.net.heal();
        self.note(0x4845_414c, || "heal".to_string());
    }

    fn clog(&mut self) {
        let ids = self.contacts.clone();
        let from = self.rng.pick(&ids);
        let others: Vec<u64> = ids.iter().copied().filter(|&t| t != from).collect();
        if others.is_empty() {
            return;
        }
        let links: Vec<(u64, u64)> = if self.rng.coin() {
            vec![(from, self.rng.pick(&others))]
        } else {
            others.iter().map(|&t| (from, t)).collect()
        };
        let d = self.fault_duration();
        for &(f, t) in &links {
            self.net.clog(f, t);
            self.faults.clogs += 1;
            self.schedule(d, Ev::Unclog { from: f, to: t });
        }
        self.note(0x434c_4f47 ^ from, || format!("clog {links:?} for {d}us"));
    }

    /// Releases what a clogged link held.
    pub(crate) fn unclog(&mut self, from: u64, to: u64) {
        if self.phase != Phase::Safety {
            return;
        }
        self.release(from, to);
    }

    fn release(&mut self, from: u64, to: u64) {
        let held = self.net.unclog(from, to);
        let count = held.len();
        for (msg, report) in held {
            let d = self.rng.range(0, 1_000);
            self.schedule(d, Ev::Deliver { msg, report });
        }
        self.note(0x554e_434c ^ from << 8 ^ to, || {
            format!("unclog n{from} → n{to}: {count} held messages arrive")
        });
    }

    fn crash_one(&mut self) {
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_up())
            .collect();
        if up.is_empty() {
            return;
        }
        let node = self.rng.pick(&up);
        self.crash(node);
        let d = self.fault_duration();
        self.schedule(d, Ev::Restart { node });
    }

    pub(crate) fn crash(&mut self, node: usize) {
        let torn_writes = self.opts.torn_writes;
        let mut loss = None;
        self.with_node(node, |n, cx| loss = Some(n.crash(torn_writes, cx)));
        self.deferred[node].clear();
        let loss = loss.expect("crash reports its loss");
        self.faults.crashes += 1;
        self.faults.records_lost += loss.lost as u64;
        self.note(0x4352_4153 ^ node as u64, || {
            format!(
                "crash n{}: {} cached records lost, {} survived{}",
                node + 1,
                loss.lost,
                loss.survived,
                if loss.torn { ", next one torn" } else { "" }
            )
        });
    }

    /// Restarts a crashed node (safety phase only).
    pub(crate) fn restart(&mut self, node: usize) {
        if self.phase != Phase::Safety
            || self.nodes[node].is_up()
            || self.nodes[node].life != Life::Started
        {
            return;
        }
        self.restart_now(node);
    }

    fn restart_now(&mut self, node: usize) {
        self.with_node(node, |n, cx| n.restart(cx));
        if self.nodes[node].is_up() {
            let epoch = self.nodes[node].epoch;
            let first = self.rng.range(1, self.nodes[node].tick_us);
            self.schedule(first, Ev::Tick { node, epoch });
        }
    }

    fn pause_one(&mut self) {
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_up() && !self.nodes[i].paused)
            .collect();
        if up.is_empty() {
            return;
        }
        let node = self.rng.pick(&up);
        self.nodes[node].paused = true;
        self.nodes[node].paused_at_us = self.now_us;
        self.faults.pauses += 1;
        let d = self.fault_duration();
        self.note(0x5041_5553 ^ node as u64, || {
            format!("pause n{} for {d}us", node + 1)
        });
        self.schedule(d, Ev::Resume { node });
    }

    /// Resumes a paused node (safety phase only).
    pub(crate) fn resume(&mut self, node: usize) {
        if self.phase != Phase::Safety {
            return;
        }
        self.resume_now(node);
    }

    fn resume_now(&mut self, node: usize) {
        let nd = &mut self.nodes[node];
        if !nd.paused || !nd.is_up() {
            return;
        }
        nd.paused = false;
        nd.epoch += 1;
        let (epoch, tick_us) = (nd.epoch, nd.tick_us);
        // The process was paused, not its clock: a driver that ticks by elapsed time catches
        // up on the ticks it missed before it handles what queued up (leases depend on it).
        let missed = if self.opts.pause_catch_up {
            (self.now_us - nd.paused_at_us) / tick_us
        } else {
            0
        };
        self.note(0x5245_5355 ^ node as u64, || {
            format!("resume n{} ({missed} missed ticks)", node + 1)
        });
        for _ in 0..missed {
            if !self.nodes[node].is_up() {
                break;
            }
            self.with_node(node, |n, cx| n.tick(cx));
        }
        let first = self.rng.range(1, tick_us);
        self.schedule(first, Ev::Tick { node, epoch });
        self.replay_deferred(node);
    }

    /// Ends the safety phase: undo every fault, leave a minority out, calm the network.
    pub(crate) fn start_liveness(&mut self) {
        for c in &mut self.clients {
            c.issuing = false;
        }
        self.disk_timing.stall_ppm = 0;
        self.net.heal();
        self.partition_generation += 1;
        for (f, t) in self.net.clogged_links() {
            self.release(f, t);
        }
        let n = self.nodes.len();
        let out = if self.opts.membership_gap_max_us > 0 {
            self.retire_removed();
            self.choose_out()
        } else {
            let mut order: Vec<usize> = (0..n).collect();
            self.rng.shuffle(&mut order);
            order.truncate(self.opts.liveness_out as usize);
            order
        };
        self.out = out.clone();
        for &o in &out {
            if self.nodes[o].is_up() {
                if self.rng.coin() {
                    self.crash(o);
                } else {
                    let all: Vec<u64> = (1..=n as u64).filter(|&x| x != o as u64 + 1).collect();
                    self.block_between(&[o as u64 + 1], &all);
                }
            }
        }
        // Every started node not left out runs: the core, and nodes that may still join it.
        for c in 0..n {
            if out.contains(&c) || self.nodes[c].life != Life::Started {
                continue;
            }
            if !self.nodes[c].is_up() {
                self.restart_now(c);
            } else if self.nodes[c].paused {
                self.resume_now(c);
            }
        }
        let core: Vec<usize> = (0..n)
            .filter(|&c| !out.contains(&c) && self.nodes[c].life == Life::Started)
            .collect();
        self.net.calm(5_000);
        let now = self.now_us;
        self.phase = Phase::Liveness {
            start_us: now,
            core: core.clone(),
            election_us: None,
        };
        self.note(0x4c49_5645, || {
            format!(
                "liveness phase: core {:?}, out {:?}",
                core.iter().map(|c| c + 1).collect::<Vec<_>>(),
                out.iter().map(|c| c + 1).collect::<Vec<_>>()
            )
        });
        self.schedule(crate::options::TICK_US, Ev::Probe);
    }
}
