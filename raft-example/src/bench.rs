//! `raft-example bench`: a load generator. C concurrent clients each write values of a given
//! size through their own keep-alive connection to the leader, one request at a time, for a
//! fixed duration; the table gives throughput and p50/p99 latency per C.
//!
//! By default it starts a local cluster (child processes, fsync on: the node's default) in a
//! temp directory and stops it afterwards; `--endpoints` points it at a running cluster
//! instead. It is a benchmark, never a test: nothing here asserts a speed.
//!
//! Invariants:
//! 1. Only writes acknowledged with 200 are counted and timed; errors are counted apart.
//! 2. Latencies are measured after a warm-up, from the request to the whole answer.

use crate::client::Client;
use crate::cluster::{ClusterOptions, LocalCluster};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `raft-example bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent clients, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,16,100")]
    pub clients: Vec<usize>,
    /// Measured seconds per run (after the warm-up).
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Warm-up seconds per run (not measured).
    #[arg(long, default_value_t = 1)]
    pub warmup_secs: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 256)]
    pub value_bytes: usize,
    /// Distinct keys per client (writes cycle through them).
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// Members of the local cluster to start.
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// HTTP addresses (host:port, comma-separated) of a running cluster instead.
    #[arg(long, value_delimiter = ',')]
    pub endpoints: Vec<SocketAddr>,
    /// Extra flags for the started members (e.g. "--tick-ms=50"), repeatable.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
}

/// One run's result.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Concurrent clients.
    pub clients: usize,
    /// Acknowledged writes in the measured window.
    pub writes: u64,
    /// Failed writes in the measured window.
    pub errors: u64,
    /// The measured window.
    pub elapsed: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

impl RunResult {
    /// Acknowledged writes per second.
    pub fn throughput(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `raft-example bench`; returns the process exit code.
pub fn run(args: Args) -> ExitCode {
    crate::block_on("bench", async move {
        match bench(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("raft-example bench: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn bench(args: Args) -> Result<(), String> {
    if args.clients.is_empty() || args.clients.contains(&0) {
        return Err("--clients needs positive counts".into());
    }
    if args.duration_secs == 0 {
        return Err("--duration-secs must be at least 1".into());
    }
    let mut cluster = None;
    let root = std::env::temp_dir().join(format!("raft-example-bench-{}", std::process::id()));
    let leader_addr = if args.endpoints.is_empty() {
        let binary = std::env::current_exe().map_err(|e| format!("my own binary: {e}"))?;
        let mut opts = ClusterOptions::new(binary, args.nodes, &root);
        opts.extra_args = args.node_args.clone();
        let timeout = opts.election_timeout() * 30;
        let c = cluster.insert(LocalCluster::start(opts).map_err(|e| e.to_string())?);
        let leader = c
            .wait_for_leader(timeout)
            .await
            .map_err(|e| e.to_string())?;
        eprintln!(
            "started {} members under {} (fsync on); leader: member {leader}",
            args.nodes,
            root.display()
        );
        c.http_addr(leader)
    } else {
        find_leader(&args.endpoints).await?
    };
    let result = runs(&args, leader_addr).await;
    if let Some(c) = cluster.as_mut() {
        c.stop_all().await;
        drop(cluster);
        let _ = std::fs::remove_dir_all(&root);
    }
    let results = result?;
    println!();
    println!(
        "{} members, {}-byte values, {} s per run after {} s warm-up, writes to the leader",
        if args.endpoints.is_empty() {
            args.nodes.to_string()
        } else {
            format!("{} endpoints", args.endpoints.len())
        },
        args.value_bytes,
        args.duration_secs,
        args.warmup_secs
    );
    println!();
    println!("| clients | writes/s | p50 (ms) | p99 (ms) | errors |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for r in &results {
        println!(
            "| {} | {:.0} | {:.3} | {:.3} | {} |",
            r.clients,
            r.throughput(),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.errors
        );
    }
    Ok(())
}

async fn find_leader(endpoints: &[SocketAddr]) -> Result<SocketAddr, String> {
    for &e in endpoints {
        let Ok(s) = Client::with_timeout(e, Duration::from_secs(2))
            .status()
            .await
        else {
            continue;
        };
        if s.role == "leader" {
            return Ok(e);
        }
        if let Some(addr) = s.leader_http.and_then(|a| a.parse().ok()) {
            return Ok(addr);
        }
    }
    Err("no endpoint knows a leader".into())
}

async fn runs(args: &Args, leader: SocketAddr) -> Result<Vec<RunResult>, String> {
    let value: Arc<str> = Arc::from("v".repeat(args.value_bytes));
    let mut out = Vec::new();
    for &clients in &args.clients {
        let warmup = Duration::from_secs(args.warmup_secs);
        let measure = Duration::from_secs(args.duration_secs);
        let start = Instant::now();
        let (measure_from, until) = (start + warmup, start + warmup + measure);
        let mut tasks = Vec::new();
        for client in 0..clients {
            let value = Arc::clone(&value);
            let keys = args.keys.max(1);
            tasks.push(tokio::spawn(async move {
                let c = Client::new(leader);
                let mut latencies_us: Vec<u32> = Vec::new();
                let mut errors = 0u64;
                let mut i = 0u64;
                loop {
                    let t = Instant::now();
                    if t >= until {
                        break;
                    }
                    let key = format!("bench/{client}/{}", i % keys);
                    i += 1;
                    let r = c.put(&key, &value).await;
                    let done = Instant::now();
                    if t < measure_from || done > until {
                        continue;
                    }
                    match r {
                        Ok(_) => latencies_us
                            .push(u32::try_from((done - t).as_micros()).unwrap_or(u32::MAX)),
                        Err(_) => errors += 1,
                    }
                }
                (latencies_us, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.map_err(|e| format!("client task: {e}"))?;
            all.extend(l);
            errors += e;
        }
        all.sort_unstable();
        let pct = |p: f64| -> Duration {
            if all.is_empty() {
                return Duration::ZERO;
            }
            let i = ((all.len() as f64 - 1.0) * p).round() as usize;
            Duration::from_micros(u64::from(all[i]))
        };
        let r = RunResult {
            clients,
            writes: all.len() as u64,
            errors,
            elapsed: measure,
            p50: pct(0.50),
            p99: pct(0.99),
        };
        eprintln!(
            "clients={clients}: {:.0} writes/s, p50 {:.3} ms, p99 {:.3} ms, {} errors",
            r.throughput(),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.errors
        );
        out.push(r);
    }
    Ok(out)
}
