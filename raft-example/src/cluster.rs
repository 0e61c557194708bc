//! `raft-example cluster`, and [`LocalCluster`]: N members as child processes on 127.0.0.1.
//!
//! [`LocalCluster`] drives the `raft-example node` binary as a black box, through its flags and
//! its HTTP API only: start, kill -9, stop (SIGINT), restart, pause/resume (SIGSTOP/SIGCONT),
//! find the leader. The `cluster` and `demo` subcommands and the process-level tests
//! (`tests/cluster_*.rs`) all use it, so spawning code exists once.
//!
//! Layout of the root directory: `n{id}/` is member `id`'s data directory, `n{id}.log` its
//! stderr (appended across restarts).
//!
//! Invariants:
//! 1. Every child process is killed (SIGKILL) and reaped when the [`LocalCluster`] is dropped,
//!    also when a test panics.
//! 2. A member keeps its id, addresses and data directory across restarts.
//! 3. Signals go to a child by its pid, never by name.

use crate::client::{Client, Status};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to start a [`LocalCluster`].
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The `raft-example` binary (`std::env::current_exe()` from the binary itself,
    /// `env!("CARGO_BIN_EXE_raft-example")` from an integration test).
    pub binary: PathBuf,
    /// Initial members, ids 1..=nodes.
    pub nodes: u64,
    /// Root directory: members' data directories and logs.
    pub root: PathBuf,
    /// Fixed ports (member `id`: HTTP on `base + id`, peer on `base + 100 + id`); `None` picks
    /// free ephemeral ports.
    pub base_port: Option<u16>,
    /// `--cluster-id`, if not the node's default.
    pub cluster_id: Option<String>,
    /// `--tick-ms`, if not the node's default.
    pub tick_ms: Option<u64>,
    /// `--election-ticks`, if not the node's default.
    pub election_ticks: Option<u64>,
    /// `--heartbeat-ticks`, if not the node's default.
    pub heartbeat_ticks: Option<u64>,
    /// `--snapshot-entries`, if not the node's default.
    pub snapshot_entries: Option<u64>,
    /// Pass `--test-hooks` (the node reports its last fsynced WAL offset).
    pub test_hooks: bool,
    /// `--log-level`, if not the node's default.
    pub log_level: Option<String>,
    /// Extra flags for every member.
    pub extra_args: Vec<String>,
    /// Extra flags for one member (added after `extra_args`).
    pub member_args: BTreeMap<u64, Vec<String>>,
}

impl ClusterOptions {
    /// `nodes` members of `binary` under `root`, node defaults for everything else.
    pub fn new(binary: impl Into<PathBuf>, nodes: u64, root: impl Into<PathBuf>) -> Self {
        ClusterOptions {
            binary: binary.into(),
            nodes,
            root: root.into(),
            base_port: None,
            cluster_id: None,
            tick_ms: None,
            election_ticks: None,
            heartbeat_ticks: None,
            snapshot_entries: None,
            test_hooks: false,
            log_level: None,
            extra_args: Vec::new(),
            member_args: BTreeMap::new(),
        }
    }

    /// The election timeout a member starts with (the node's defaults where unset: 100 ms
    /// ticks, 10 ticks).
    pub fn election_timeout(&self) -> Duration {
        Duration::from_millis(self.tick_ms.unwrap_or(100) * self.election_ticks.unwrap_or(10))
    }
}

/// One member: its identity and, while it runs, its process.
#[derive(Debug)]
struct Member {
    id: u64,
    peer_addr: SocketAddr,
    http_addr: SocketAddr,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// `--join URL` for members added at runtime.
    join: Option<String>,
    /// Extra flags, kept across restarts.
    args: Vec<String>,
    child: Option<Child>,
    paused: bool,
    /// How the last process ended, once reaped.
    last_exit: Option<ExitStatus>,
    client: Arc<Client>,
}

/// An error of [`LocalCluster`].
#[derive(Debug)]
pub enum ClusterError {
    /// Spawning, signalling or a file operation failed.
    Io(String, io::Error),
    /// No such member.
    UnknownMember(u64),
    /// The member is not running.
    NotRunning(u64),
    /// A wait ran out of time.
    Timeout(String),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Io(what, e) => write!(f, "{what}: {e}"),
            ClusterError::UnknownMember(id) => write!(f, "no member {id}"),
            ClusterError::NotRunning(id) => write!(f, "member {id} is not running"),
            ClusterError::Timeout(what) => write!(f, "timed out: {what}"),
        }
    }
}

impl std::error::Error for ClusterError {}

/// N `raft-example node` processes on 127.0.0.1.
pub struct LocalCluster {
    opts: ClusterOptions,
    members: BTreeMap<u64, Member>,
}

impl LocalCluster {
    /// Plans the members (ports, directories) without starting them, so a caller can prepare a
    /// data directory (e.g. mount a small tmpfs there) first; [`LocalCluster::start_all`] starts
    /// them.
    ///
    /// # Errors
    /// The root directory cannot be created, or no free ports.
    pub fn new(opts: ClusterOptions) -> Result<LocalCluster, ClusterError> {
        std::fs::create_dir_all(&opts.root)
            .map_err(|e| ClusterError::Io(format!("create {}", opts.root.display()), e))?;
        let ids: Vec<u64> = (1..=opts.nodes).collect();
        let addrs = plan_addrs(&ids, opts.base_port)?;
        let mut members = BTreeMap::new();
        for (id, (peer_addr, http_addr)) in ids.iter().copied().zip(addrs) {
            let args = opts.member_args.get(&id).cloned().unwrap_or_default();
            members.insert(
                id,
                new_member(&opts.root, id, peer_addr, http_addr, None, args),
            );
        }
        Ok(LocalCluster { opts, members })
    }

    /// Plans and starts `opts.nodes` members.
    ///
    /// # Errors
    /// As [`LocalCluster::new`] and [`LocalCluster::start_all`].
    pub fn start(opts: ClusterOptions) -> Result<LocalCluster, ClusterError> {
        let mut c = LocalCluster::new(opts)?;
        c.start_all()?;
        Ok(c)
    }

    /// Starts every member that is not running.
    ///
    /// # Errors
    /// A spawn failed.
    pub fn start_all(&mut self) -> Result<(), ClusterError> {
        let ids: Vec<u64> = self.members.keys().copied().collect();
        for id in ids {
            if !self.is_running(id) {
                self.spawn(id)?;
            }
        }
        Ok(())
    }

    /// The options the cluster was started with.
    pub fn options(&self) -> &ClusterOptions {
        &self.opts
    }

    /// Every member id (running or not), in order.
    pub fn ids(&self) -> Vec<u64> {
        self.members.keys().copied().collect()
    }

    /// Ids of the members whose process is running (paused ones included).
    pub fn running_ids(&mut self) -> Vec<u64> {
        let ids = self.ids();
        ids.into_iter().filter(|&id| self.is_running(id)).collect()
    }

    /// Member `id`'s HTTP address.
    ///
    /// # Panics
    /// No such member.
    pub fn http_addr(&self, id: u64) -> SocketAddr {
        self.member(id).http_addr
    }

    /// Member `id`'s peer address.
    ///
    /// # Panics
    /// No such member.
    pub fn peer_addr(&self, id: u64) -> SocketAddr {
        self.member(id).peer_addr
    }

    /// Member `id`'s data directory.
    ///
    /// # Panics
    /// No such member.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.member(id).data_dir.clone()
    }

    /// Member `id`'s log file (its stderr, appended across restarts).
    ///
    /// # Panics
    /// No such member.
    pub fn log_path(&self, id: u64) -> PathBuf {
        self.member(id).log_path.clone()
    }

    /// Member `id`'s log so far (empty if unreadable).
    pub fn log(&self, id: u64) -> String {
        std::fs::read(self.log_path(id))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// A client of member `id` (shared, keep-alive).
    ///
    /// # Panics
    /// No such member.
    pub fn client(&self, id: u64) -> Arc<Client> {
        Arc::clone(&self.member(id).client)
    }

    /// The `--peers` value of the initial members.
    pub fn peers_flag(&self) -> String {
        self.members
            .values()
            .filter(|m| m.join.is_none())
            .map(|m| format!("{}={}/{}", m.id, m.peer_addr, m.http_addr))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether member `id`'s process is alive (reaps it if it exited).
    pub fn is_running(&mut self, id: u64) -> bool {
        let Some(m) = self.members.get_mut(&id) else {
            return false;
        };
        let Some(child) = m.child.as_mut() else {
            return false;
        };
        match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                m.last_exit = Some(status);
                m.child = None;
                m.paused = false;
                false
            }
            Err(_) => true,
        }
    }

    /// How member `id`'s last process ended, if it has (reaps it if it just exited).
    pub fn exit_status(&mut self, id: u64) -> Option<ExitStatus> {
        if self.is_running(id) {
            return None;
        }
        self.members.get(&id).and_then(|m| m.last_exit)
    }

    /// Waits until member `id` exits by itself, up to `timeout`.
    ///
    /// # Errors
    /// It is still running after `timeout`.
    pub async fn wait_exit(
        &mut self,
        id: u64,
        timeout: Duration,
    ) -> Result<ExitStatus, ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exit_status(id) {
                return Ok(s);
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout(format!("member {id} to exit")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// kill -9 member `id` and reap it (a crash: no shutdown, page cache kept).
    ///
    /// # Errors
    /// Not running, or the signal failed.
    pub fn kill(&mut self, id: u64) -> Result<ExitStatus, ClusterError> {
        if !self.is_running(id) {
            return Err(ClusterError::NotRunning(id));
        }
        let m = self.member_mut(id)?;
        let mut child = m.child.take().ok_or(ClusterError::NotRunning(id))?;
        m.paused = false;
        child
            .kill()
            .map_err(|e| ClusterError::Io(format!("kill -9 member {id}"), e))?;
        let status = child
            .wait()
            .map_err(|e| ClusterError::Io(format!("wait for member {id}"), e))?;
        m.last_exit = Some(status);
        Ok(status)
    }

    /// SIGINT to member `id`, then waits up to 10 s for it to exit (SIGKILL after that).
    ///
    /// # Errors
    /// Not running, or signalling failed.
    pub async fn stop(&mut self, id: u64) -> Result<ExitStatus, ClusterError> {
        if !self.is_running(id) {
            return Err(ClusterError::NotRunning(id));
        }
        if self.member(id).paused {
            self.resume(id)?;
        }
        let pid = self.pid(id).ok_or(ClusterError::NotRunning(id))?;
        signal(pid, "INT")?;
        match self.wait_exit(id, Duration::from_secs(10)).await {
            Ok(s) => Ok(s),
            Err(_) => self.kill(id),
        }
    }

    /// Stops every running member (SIGINT to each, then waits for each).
    pub async fn stop_all(&mut self) {
        let ids = self.running_ids();
        for &id in &ids {
            if self.member(id).paused {
                let _ = self.resume(id);
            }
            if let Some(pid) = self.pid(id) {
                let _ = signal(pid, "INT");
            }
        }
        for id in ids {
            if self.wait_exit(id, Duration::from_secs(10)).await.is_err() {
                let _ = self.kill(id);
            }
        }
    }

    /// kill -9 every running member.
    pub fn kill_all(&mut self) {
        for id in self.running_ids() {
            let _ = self.kill(id);
        }
    }

    /// Starts member `id` again with the same flags and data directory.
    ///
    /// # Errors
    /// It is running, or the spawn failed.
    pub fn restart(&mut self, id: u64) -> Result<(), ClusterError> {
        if self.is_running(id) {
            return Err(ClusterError::Io(
                format!("restart member {id}"),
                io::Error::other("it is still running"),
            ));
        }
        self.spawn(id)
    }

    /// SIGSTOP member `id`.
    ///
    /// # Errors
    /// Not running, or signalling failed.
    pub fn pause(&mut self, id: u64) -> Result<(), ClusterError> {
        let pid = self.pid(id).ok_or(ClusterError::NotRunning(id))?;
        signal(pid, "STOP")?;
        self.member_mut(id)?.paused = true;
        Ok(())
    }

    /// SIGCONT member `id`.
    ///
    /// # Errors
    /// Not running, or signalling failed.
    pub fn resume(&mut self, id: u64) -> Result<(), ClusterError> {
        let pid = self.pid(id).ok_or(ClusterError::NotRunning(id))?;
        signal(pid, "CONT")?;
        self.member_mut(id)?.paused = false;
        Ok(())
    }

    /// Plans a new member (the next id) that joins through `via`'s HTTP API (`--join`), with
    /// `args` as extra flags, and starts it. Returns its id.
    ///
    /// # Errors
    /// No such member `via`, no free port, or the spawn failed.
    pub fn add_joining_member(&mut self, via: u64, args: Vec<String>) -> Result<u64, ClusterError> {
        let via_http = self
            .members
            .get(&via)
            .ok_or(ClusterError::UnknownMember(via))?
            .http_addr;
        let id = self.members.keys().next_back().copied().unwrap_or(0) + 1;
        let (peer_addr, http_addr) = plan_addrs(&[id], self.opts.base_port)?[0];
        let join = Some(format!("http://{via_http}"));
        let mut all_args = self.opts.member_args.get(&id).cloned().unwrap_or_default();
        all_args.extend(args);
        self.members.insert(
            id,
            new_member(&self.opts.root, id, peer_addr, http_addr, join, all_args),
        );
        self.spawn(id)?;
        Ok(id)
    }

    /// Member `id`'s `/status`, if it answers within 1 s.
    pub async fn status(&self, id: u64) -> Option<Status> {
        let c = self.members.get(&id)?.client.clone();
        tokio::time::timeout(Duration::from_secs(1), c.status())
            .await
            .ok()?
            .ok()
    }

    /// The leader: a running, unpaused member that says it leads, with the highest term among
    /// those, and that a majority of the running members name as their leader.
    pub async fn leader(&mut self) -> Option<u64> {
        let ids: Vec<u64> = self
            .running_ids()
            .into_iter()
            .filter(|id| !self.member(*id).paused)
            .collect();
        let statuses = futures_join(ids.iter().map(|&id| self.status(id))).await;
        let answered: Vec<Status> = statuses.into_iter().flatten().collect();
        let leader = answered
            .iter()
            .filter(|s| s.role == "leader")
            .max_by_key(|s| s.term)?;
        let naming = answered
            .iter()
            .filter(|s| s.leader == Some(leader.id) && s.term == leader.term)
            .count();
        let running = self.running_ids().len();
        (naming > running / 2).then_some(leader.id)
    }

    /// Polls [`LocalCluster::leader`] until there is one.
    ///
    /// # Errors
    /// None within `timeout`.
    pub async fn wait_for_leader(&mut self, timeout: Duration) -> Result<u64, ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(id) = self.leader().await {
                return Ok(id);
            }
            if self.running_ids().is_empty() {
                return Err(ClusterError::Timeout(
                    "a leader, but every member has exited (see their logs)".into(),
                ));
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout(format!(
                    "a leader within {} ms",
                    timeout.as_millis()
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn member(&self, id: u64) -> &Member {
        self.members
            .get(&id)
            .unwrap_or_else(|| panic!("no member {id}"))
    }

    fn member_mut(&mut self, id: u64) -> Result<&mut Member, ClusterError> {
        self.members
            .get_mut(&id)
            .ok_or(ClusterError::UnknownMember(id))
    }

    fn pid(&mut self, id: u64) -> Option<u32> {
        if !self.is_running(id) {
            return None;
        }
        self.members.get(&id)?.child.as_ref().map(Child::id)
    }

    fn node_args(&self, m: &Member) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "node".into(),
            "--id".into(),
            m.id.to_string(),
            "--data-dir".into(),
            m.data_dir.display().to_string(),
            "--peer".into(),
            m.peer_addr.to_string(),
            "--http".into(),
            m.http_addr.to_string(),
        ];
        match &m.join {
            Some(url) => a.extend(["--join".into(), url.clone()]),
            None => a.extend(["--peers".into(), self.peers_flag()]),
        }
        let o = &self.opts;
        let flags = [
            ("--cluster-id", o.cluster_id.clone()),
            ("--tick-ms", o.tick_ms.map(|v| v.to_string())),
            ("--election-ticks", o.election_ticks.map(|v| v.to_string())),
            (
                "--heartbeat-ticks",
                o.heartbeat_ticks.map(|v| v.to_string()),
            ),
            (
                "--snapshot-entries",
                o.snapshot_entries.map(|v| v.to_string()),
            ),
            ("--log-level", o.log_level.clone()),
        ];
        for (flag, value) in flags {
            if let Some(v) = value {
                a.extend([flag.to_owned(), v]);
            }
        }
        if o.test_hooks {
            a.push("--test-hooks".into());
        }
        a.extend(o.extra_args.iter().cloned());
        a.extend(m.args.iter().cloned());
        a
    }

    fn spawn(&mut self, id: u64) -> Result<(), ClusterError> {
        let m = self
            .members
            .get(&id)
            .ok_or(ClusterError::UnknownMember(id))?;
        let args = self.node_args(m);
        let log_path = m.log_path.clone();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| ClusterError::Io(format!("open {}", log_path.display()), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| ClusterError::Io(format!("dup {}", log_path.display()), e))?;
        let child = Command::new(&self.opts.binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| {
                ClusterError::Io(
                    format!("spawn {} {}", self.opts.binary.display(), args.join(" ")),
                    e,
                )
            })?;
        let m = self.member_mut(id)?;
        m.child = Some(child);
        m.paused = false;
        m.last_exit = None;
        // Old pooled connections point at the dead process.
        m.client = Arc::new(Client::new(m.http_addr));
        Ok(())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for m in self.members.values_mut() {
            if let Some(mut child) = m.child.take() {
                // SIGKILL works on stopped processes too.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn new_member(
    root: &Path,
    id: u64,
    peer_addr: SocketAddr,
    http_addr: SocketAddr,
    join: Option<String>,
    args: Vec<String>,
) -> Member {
    Member {
        id,
        peer_addr,
        http_addr,
        data_dir: root.join(format!("n{id}")),
        log_path: root.join(format!("n{id}.log")),
        join,
        args,
        child: None,
        paused: false,
        last_exit: None,
        client: Arc::new(Client::new(http_addr)),
    }
}

/// (peer, http) addresses for `ids`: fixed from `base`, or free ephemeral ports (all bound at
/// once so none repeats, then released for the node to bind).
fn plan_addrs(
    ids: &[u64],
    base: Option<u16>,
) -> Result<Vec<(SocketAddr, SocketAddr)>, ClusterError> {
    let localhost = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    if let Some(base) = base {
        return ids
            .iter()
            .map(|&id| {
                let port = |off: u64| {
                    u16::try_from(u64::from(base) + off + id).map_err(|_| {
                        ClusterError::Io(
                            format!("port for member {id}"),
                            io::Error::other("base port too high"),
                        )
                    })
                };
                Ok((localhost(port(100)?), localhost(port(0)?)))
            })
            .collect();
    }
    let mut listeners = Vec::new();
    for _ in 0..ids.len() * 2 {
        let l = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| ClusterError::Io("bind an ephemeral port".into(), e))?;
        listeners.push(l);
    }
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<io::Result<_>>()
        .map_err(|e| ClusterError::Io("local_addr".into(), e))?;
    Ok(addrs.chunks(2).map(|c| (c[0], c[1])).collect())
}

/// Sends `SIG{name}` to `pid` with kill(1).
fn signal(pid: u32, name: &str) -> Result<(), ClusterError> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| ClusterError::Io(format!("kill -{name} {pid}"), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(ClusterError::Io(
            format!("kill -{name} {pid}"),
            io::Error::other(format!("kill exited with {status}")),
        ))
    }
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Awaits all futures concurrently (tokio has no join_all; a JoinSet would need 'static).
async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in pinned.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

// ---------------------------------------------------------------------------------------------
// Reading a member's WAL from outside (for the demo and the tests' fault injection)

/// One WAL record as the format ([`crate::wal`]'s module docs) lays it out: an 8-byte header
/// whose first word is the payload length and whose fifth byte is the type, the payload, zero
/// padding, a CRC word; `8 + round_up_8(len + 4)` bytes from an 8-aligned offset.
#[derive(Clone, Copy, Debug)]
pub struct WalRecord {
    /// Where it starts in its segment.
    pub offset: u64,
    /// Its whole size in bytes.
    pub size: u64,
    /// Payload length.
    pub payload_len: u64,
    /// Record type byte.
    pub kind: u8,
}

/// The WAL segment files of a data directory (`wal/*.wal`), in log order.
///
/// # Panics
/// `wal/` cannot be read.
pub fn wal_segments(data_dir: &Path) -> Vec<PathBuf> {
    let dir = data_dir.join("wal");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

/// The records of a segment, walked by their length words (no CRC check) up to the end of
/// the file or the first header of zeros or of preallocation fill.
///
/// # Panics
/// The file cannot be read.
pub fn wal_records(segment: &Path) -> Vec<WalRecord> {
    let bytes =
        std::fs::read(segment).unwrap_or_else(|e| panic!("read {}: {e}", segment.display()));
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + 8 <= bytes.len() {
        let header = &bytes[off..off + 8];
        let fill = crate::wal::PREALLOC_FILL;
        if header.iter().all(|&b| b == 0) || header.iter().all(|&b| b == fill) {
            break;
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let size = 8 + (len + 4).div_ceil(8) * 8;
        if off + size > bytes.len() {
            break;
        }
        out.push(WalRecord {
            offset: off as u64,
            size: size as u64,
            payload_len: len as u64,
            kind: header[4],
        });
        off += size;
    }
    out
}

/// The snapshots a member's WAL records as installed from a leader (snapshot markers with
/// `installed`), as (index, term), in log order.
///
/// # Panics
/// The WAL cannot be read, or a marker does not decode.
pub fn installed_snapshots(data_dir: &Path) -> Vec<(u64, u64)> {
    use prost::Message as _;
    let mut out = Vec::new();
    for seg in wal_segments(data_dir) {
        let bytes = std::fs::read(&seg).unwrap_or_else(|e| panic!("read {}: {e}", seg.display()));
        for r in wal_records(&seg) {
            if r.kind != crate::wal::TYPE_SNAPSHOT_MARKER {
                continue;
            }
            let start = r.offset as usize + 8;
            let end = start + r.payload_len as usize;
            let m = crate::wal::SnapshotMarker::decode(&bytes[start..end])
                .unwrap_or_else(|e| panic!("{} at {}: {e}", seg.display(), r.offset));
            if m.installed {
                out.push((m.index, m.term));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// `raft-example cluster`

/// Arguments of `raft-example cluster`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many members.
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Root of the members' data directories and logs (kept between runs: restarting the
    /// command restarts the same cluster). Default: `<tmp>/raft-example-cluster`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Member N serves HTTP on BASE+N and peers on BASE+100+N.
    #[arg(long, default_value_t = 8000)]
    pub base_port: u16,
    /// `--snapshot-entries` for every member (node default if unset).
    #[arg(long)]
    pub snapshot_entries: Option<u64>,
}

/// Runs `raft-example cluster`; returns the process exit code.
pub fn run(args: Args) -> ExitCode {
    crate::block_on("cluster", run_cluster(args))
}

async fn run_cluster(args: Args) -> ExitCode {
    if args.nodes == 0 {
        eprintln!("raft-example cluster: --nodes must be at least 1");
        return ExitCode::FAILURE;
    }
    let binary = match std::env::current_exe() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("raft-example cluster: cannot find my own binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let root = args
        .data_dir
        .unwrap_or_else(|| std::env::temp_dir().join("raft-example-cluster"));
    let mut opts = ClusterOptions::new(binary, args.nodes, &root);
    opts.base_port = Some(args.base_port);
    opts.snapshot_entries = args.snapshot_entries;
    let timeout = opts.election_timeout() * 20;
    let mut cluster = match LocalCluster::start(opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("raft-example cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("data and logs under {}", root.display());
    for id in cluster.ids() {
        println!(
            "member {id}: http://{}  peer {}  log {}",
            cluster.http_addr(id),
            cluster.peer_addr(id),
            cluster.log_path(id).display()
        );
    }
    let leader = tokio::select! {
        l = cluster.wait_for_leader(timeout) => l,
        _ = stop_signal() => {
            println!("stopping");
            cluster.stop_all().await;
            return ExitCode::SUCCESS;
        }
    };
    match leader {
        Ok(id) => println!("leader: member {id}"),
        Err(e) => {
            eprintln!("raft-example cluster: {e}; see the logs above");
            cluster.stop_all().await;
            return ExitCode::FAILURE;
        }
    }
    let any = cluster.http_addr(1);
    println!();
    println!("try:");
    println!("  curl -X PUT -d world http://{any}/v1/kv/hello");
    println!("  curl http://{any}/v1/kv/hello");
    println!("  curl 'http://{any}/v1/kv?prefix=h'");
    println!("  curl http://{any}/status");
    println!();
    println!("Ctrl-C stops every member.");
    let mut exited = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = stop_signal() => break,
            _ = exited.tick() => {
                for id in cluster.ids() {
                    if cluster.member(id).child.is_some() && !cluster.is_running(id) {
                        let status = cluster.exit_status(id);
                        eprintln!(
                            "member {id} exited ({}); see {}",
                            status.map_or("unknown".to_owned(), |s| s.to_string()),
                            cluster.log_path(id).display()
                        );
                    }
                }
            }
        }
    }
    println!("stopping");
    cluster.stop_all().await;
    for id in cluster.ids() {
        if let Some(s) = cluster.exit_status(id) {
            println!("member {id}: {s}");
        }
    }
    ExitCode::SUCCESS
}
