//! Node configuration: identity, timers, flow-control bounds and protocol switches.
//!
//! Invariants (checked by [`Config::validate`]):
//! 1. `id != 0` (0 means "nobody" on the wire).
//! 2. `heartbeat_ticks >= 1` and `election_ticks > heartbeat_ticks`.
//! 3. `inflight_msgs_max >= 1` and `msg_bytes_max >= 1`.

use thiserror::Error;

/// How a node is set up. Build one with [`Config::new`] and change the fields you need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id; never 0.
    pub id: u64,
    /// Base election timeout in ticks. A follower's actual timeout is drawn uniformly from
    /// `[election_ticks, 2 × election_ticks)` at every timer reset.
    pub election_ticks: u32,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: u32,
    /// The last index the application had applied before a restart; entries up to it are
    /// not handed out for applying again. 0 on a fresh node.
    pub applied: u64,
    /// Most payload bytes in one append message (at least one entry is always sent).
    pub msg_bytes_max: u64,
    /// Most append messages in flight to one peer in replicate state.
    pub inflight_msgs_max: usize,
    /// Most payload bytes in flight to one peer; 0 means no byte bound.
    pub inflight_bytes_max: u64,
    /// Most payload bytes of uncommitted entries a leader accepts before it refuses
    /// proposals; 0 means no bound.
    pub uncommitted_bytes_max: u64,
    /// Most payload bytes of committed entries in one apply batch (at least one entry).
    pub apply_bytes_max: u64,
    /// A leader steps down when it has not heard from a quorum within an election timeout,
    /// and followers that heard from a live leader ignore higher-term vote requests.
    pub check_quorum: bool,
    /// Candidates first run a pre-vote that does not raise terms (thesis §9.6).
    pub pre_vote: bool,
    /// Followers forward proposals to the leader; when off they return `NotLeader`.
    pub proposal_forwarding: bool,
    /// A leader removed from the configuration (or demoted) steps down once the change is
    /// applied. On by default; off keeps it leading a cluster it is not part of.
    pub step_down_on_removal: bool,
    /// How a leader confirms read-index requests.
    pub read_only: ReadOnlyOption,
    /// Most read-index requests a leader keeps waiting for confirmation.
    pub reads_pending_max: usize,
    /// Seed of this node's election-timeout RNG; `None` derives it from `id`.
    pub seed: Option<u64>,
    /// Deliberate bugs, for showing that the simulator's checkers fire. Tests only.
    #[cfg(feature = "planted-bugs")]
    pub planted_bugs: PlantedBugs,
}

/// Deliberate protocol bugs, compiled only with the `planted-bugs` feature, so that tests
/// can show the simulator catches them. Never enable in production.
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    /// The leader commits by counting replicas of entries of any term (breaks Figure 8).
    pub commit_previous_term_entries: bool,
}

impl Config {
    /// A configuration for node `id` with the defaults: election 10 ticks, heartbeat 1 tick,
    /// 1 MiB per message, 256 inflight messages, pre-vote and check-quorum on.
    pub fn new(id: u64) -> Config {
        Config {
            id,
            election_ticks: 10,
            heartbeat_ticks: 1,
            applied: 0,
            msg_bytes_max: 1 << 20,
            inflight_msgs_max: 256,
            inflight_bytes_max: 0,
            uncommitted_bytes_max: 0,
            apply_bytes_max: 64 << 20,
            check_quorum: true,
            pre_vote: true,
            proposal_forwarding: true,
            step_down_on_removal: true,
            read_only: ReadOnlyOption::Safe,
            reads_pending_max: 4096,
            seed: None,
            #[cfg(feature = "planted-bugs")]
            planted_bugs: PlantedBugs::default(),
        }
    }

    /// Checks the invariants listed in the module docs.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first field that is out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::ZeroId);
        }
        if self.heartbeat_ticks == 0 {
            return Err(ConfigError::HeartbeatTicksZero);
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return Err(ConfigError::ElectionNotAboveHeartbeat {
                election_ticks: self.election_ticks,
                heartbeat_ticks: self.heartbeat_ticks,
            });
        }
        if self.inflight_msgs_max == 0 {
            return Err(ConfigError::InflightMsgsMaxZero);
        }
        if self.msg_bytes_max == 0 || self.apply_bytes_max == 0 {
            return Err(ConfigError::BytesMaxZero);
        }
        if self.read_only == ReadOnlyOption::LeaseBased && !self.check_quorum {
            return Err(ConfigError::LeaseWithoutCheckQuorum);
        }
        if self.reads_pending_max == 0 {
            return Err(ConfigError::ReadsPendingMaxZero);
        }
        Ok(())
    }

    /// The seed of the election-timeout RNG: `seed`, or one derived from `id` so that
    /// nodes of one cluster draw different timeouts by default.
    pub fn rng_seed(&self) -> u64 {
        self.seed
            .unwrap_or(self.id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5241_4654)
    }
}

/// How a leader confirms that it is still the leader before answering a read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadOnlyOption {
    /// A heartbeat round acknowledged by a quorum, started after the request arrived.
    #[default]
    Safe,
    /// The leader's lease: while a quorum acknowledged a heartbeat sent less than
    /// `election_ticks - 1` ticks ago, the leader answers from its commit index at once.
    /// Safe only if clocks drift less than one tick per election timeout between nodes;
    /// needs `check_quorum` (followers then refuse votes while they hear from the leader).
    LeaseBased,
}

/// A configuration value out of range.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `id` is 0, which means "nobody".
    #[error("node id must not be 0")]
    ZeroId,
    /// `heartbeat_ticks` is 0.
    #[error("heartbeat_ticks must be at least 1")]
    HeartbeatTicksZero,
    /// The election timeout must exceed the heartbeat interval.
    #[error("election_ticks ({election_ticks}) must exceed heartbeat_ticks ({heartbeat_ticks})")]
    ElectionNotAboveHeartbeat {
        /// The configured election ticks.
        election_ticks: u32,
        /// The configured heartbeat ticks.
        heartbeat_ticks: u32,
    },
    /// `inflight_msgs_max` is 0: no append could ever be sent.
    #[error("inflight_msgs_max must be at least 1")]
    InflightMsgsMaxZero,
    /// `msg_bytes_max` or `apply_bytes_max` is 0.
    #[error("msg_bytes_max and apply_bytes_max must be at least 1")]
    BytesMaxZero,
    /// Lease-based reads rely on check-quorum's stickiness.
    #[error("read_only = LeaseBased needs check_quorum")]
    LeaseWithoutCheckQuorum,
    /// `reads_pending_max` is 0: no read could ever be served.
    #[error("reads_pending_max must be at least 1")]
    ReadsPendingMaxZero,
}
