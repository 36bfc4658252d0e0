//! `cargo xtask bench ...`: the speed and memory targets, measured.
//!
//! `bench batch --scale N [--peers DIR]` seeds PostgreSQL once (the one at
//! `--pg`, or a private server started like the tests'), then runs rounds,
//! each back to back on that database: the floor (a binary `COPY ... TO
//! STDOUT` of the six tables drained into nothing), the whole pipeline in
//! one process, the layers one after another (bronze, silver, gold), and
//! each peer script of DIR. Every run but the floor is a child process, so
//! its wall time, CPU time (user + system) and peak RSS are its own. Each
//! round prints its table with the load average before each row, and the
//! ratios to the floor and to the faster peer.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use lake_core::dag::group_digits;
use lake_pg::url::PgUrl;

use crate::measure::{load_average, wait_with_usage};

#[derive(Subcommand)]
pub enum Bench {
    /// Batch path: PostgreSQL -> bronze -> silver -> gold.
    Batch(BatchArgs),
    /// Stream: events/s against a raw consumer, and live-view latency.
    Stream(crate::bench_stream::StreamArgs),
    /// Serving: requests/s and latency of the API under load while the
    /// stream runs.
    Serve(crate::bench_serve::ServeArgs),
    /// Table commits: the cost of a replace, a stream append, an open.
    Commit(crate::bench_commit::CommitArgs),
}

#[derive(Args)]
pub struct BatchArgs {
    /// Generator scale seeded into PostgreSQL (1000 = 830k orders, ~2.2M lines).
    #[arg(long, default_value_t = 1000)]
    scale: u32,
    /// PostgreSQL to seed and read (default: a private server started for the run).
    #[arg(long, env = "LAKE_BENCH_PG_URL", hide_env_values = true)]
    pg: Option<String>,
    /// Reuse the tables already in the database instead of seeding.
    #[arg(long)]
    no_seed: bool,
    /// Rounds: each runs every measurement once, back to back, and prints
    /// its table.
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    /// A folder of peer scripts (`peer_*.py`, e.g. ../shared/peers), each
    /// run on the same database in every round.
    #[arg(long, env = "LAKE_BENCH_PEERS")]
    peers: Option<std::path::PathBuf>,
    /// The Python that runs the peers (a virtualenv with their packages).
    #[arg(long, env = "LAKE_BENCH_PYTHON")]
    python: Option<std::path::PathBuf>,
    /// A folder holding another build's binaries (its `lake-tasks`): every
    /// round also runs that build's pipeline, right after this one's, on
    /// the same database, so two builds compare side by side in one run.
    #[arg(long, value_name = "DIR")]
    baseline: Option<std::path::PathBuf>,
}

pub fn run(bench: Bench) -> Result<()> {
    match bench {
        Bench::Batch(args) => batch(args),
        Bench::Stream(args) => crate::bench_stream::stream(args),
        Bench::Serve(args) => crate::bench_serve::serve(args),
        Bench::Commit(args) => crate::bench_commit::commit(args),
    }
}

/// Wall time, CPU time and peak resident memory of one child process.
#[derive(Clone, Copy)]
struct Measure {
    wall: Duration,
    /// User + system time of the child (and its waited-for children).
    cpu: Duration,
    max_rss_bytes: u64,
}

impl Measure {
    /// CPU time over wall time: 2.0 is both cores busy all along.
    fn cores(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs `command` to its end and measures it; fails naming `what`.
fn measure(what: &str, command: &mut Command) -> Result<Measure> {
    let started = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let usage = wait_with_usage(child.id())?;
    let wall = started.elapsed();
    if !usage.ok {
        bail!("{what} failed");
    }
    Ok(Measure {
        wall,
        cpu: usage.cpu,
        max_rss_bytes: usage.max_rss_bytes,
    })
}

/// Runs `lake-tasks stage ...` (the layer's library code, as its binary
/// runs it) in a child process and measures it.
fn measure_stage(stage: &str, lake: &Path, pg: &str) -> Result<Measure> {
    let exe = std::env::current_exe().context("locating the lake-tasks binary")?;
    let mut command = Command::new(exe);
    command
        .args(["stage", stage, "--lake"])
        .arg(lake)
        .args(["--date", BENCH_DATE])
        .env("LAKE_PG_URL", pg)
        .env_remove("LAKE_FAULT")
        .stdout(std::process::Stdio::null());
    measure(&format!("benchmark stage {stage}"), &mut command)
}

/// The run date every benchmark run writes.
const BENCH_DATE: &str = "2026-01-01";

/// The physical floor: a binary `COPY ... TO STDOUT` of the six tables, one
/// after another on one backend, drained into nothing. Its wall time, and
/// the order lines.
fn floor(url: &PgUrl) -> Result<(Duration, u64)> {
    let mut client = url.connect()?;
    let lines: i64 = client
        .query_one("SELECT count(*) FROM order_details", &[])
        .context("counting order_details")?
        .get(0);
    let mut buffer = vec![0u8; 1 << 20];
    let started = Instant::now();
    for table in lake_bronze::TABLES {
        let mut reader = client
            .copy_out(format!("COPY public.{table} TO STDOUT (FORMAT binary)").as_str())
            .with_context(|| format!("starting the raw COPY of {table}"))?;
        while reader
            .read(&mut buffer)
            .with_context(|| format!("reading the raw COPY of {table}"))?
            > 0
        {}
    }
    Ok((started.elapsed(), lines as u64))
}

fn rate(rows: u64, wall: Duration) -> String {
    group_digits((rows as f64 / wall.as_secs_f64()) as u64)
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The peer scripts of `dir`: `peer_*.py`, by name.
fn peer_scripts(dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>> {
    let mut scripts = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(peer) = name
            .strip_prefix("peer_")
            .and_then(|rest| rest.strip_suffix(".py"))
        {
            scripts.push((peer.to_string(), path));
        }
    }
    scripts.sort();
    if scripts.is_empty() {
        bail!("{} holds no peer_*.py script", dir.display());
    }
    Ok(scripts)
}

/// One round: every measurement once, back to back.
struct Round {
    load: Vec<(String, String)>,
    floor: Duration,
    pipeline: Measure,
    /// The other build's pipeline (`--baseline`).
    baseline: Option<Measure>,
    layers: Vec<(&'static str, Measure)>,
    peers: Vec<(String, Measure)>,
}

impl Round {
    fn layers_total(&self) -> Measure {
        self.layers.iter().fold(
            Measure {
                wall: Duration::ZERO,
                cpu: Duration::ZERO,
                max_rss_bytes: 0,
            },
            |sum, (_, m)| Measure {
                wall: sum.wall + m.wall,
                cpu: sum.cpu + m.cpu,
                max_rss_bytes: sum.max_rss_bytes.max(m.max_rss_bytes),
            },
        )
    }

    fn fastest_peer(&self) -> Option<&(String, Measure)> {
        self.peers.iter().min_by_key(|(_, m)| m.wall)
    }
}

fn batch(args: BatchArgs) -> Result<()> {
    let (url, _db) = match &args.pg {
        Some(url) => (url.clone(), None),
        None => {
            let db = lake_testkit::pg_server().create_db("lake_bench");
            (db.url.clone(), Some(db))
        }
    };
    let parsed: PgUrl = url.parse()?;
    let peers = match &args.peers {
        Some(dir) => peer_scripts(dir)?,
        None => Vec::new(),
    };
    let baseline = match &args.baseline {
        Some(dir) => {
            let exe = dir.join("lake-tasks");
            if !exe.is_file() {
                bail!("--baseline {}: no lake-tasks binary there", dir.display());
            }
            Some(exe)
        }
        None => None,
    };
    let python = args
        .python
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("python3"));
    if !args.no_seed {
        let started = Instant::now();
        seed_in_child(&url, args.scale)?;
        eprintln!(
            "seeded scale {} in {:.1} s",
            args.scale,
            started.elapsed().as_secs_f64()
        );
        let mut client = parsed.connect()?;
        client
            .batch_execute("VACUUM ANALYZE")
            .context("vacuuming after the seed")?;
    }
    let database = parsed
        .libpq_env()
        .into_iter()
        .find(|(name, _)| *name == "PGDATABASE")
        .map(|(_, db)| db)
        .context("the benchmark's PostgreSQL URL names no database")?;

    let mut rounds = Vec::new();
    for round in 1..=args.repeat.max(1) {
        eprintln!("round {round} of {}", args.repeat.max(1));
        let mut load = Vec::new();
        load.push(("floor".to_string(), load_average()));
        let (floor_wall, lines) = floor(&parsed)?;

        load.push(("pipeline".to_string(), load_average()));
        let this_build = std::env::current_exe().context("locating the lake-tasks binary")?;
        let pipeline = measure_pipeline(&this_build, &url)?;
        let baseline = match &baseline {
            Some(exe) => {
                load.push(("baseline".to_string(), load_average()));
                Some(measure_pipeline(exe, &url)?)
            }
            None => None,
        };

        let lake_dir = tempfile::Builder::new().prefix("lake-bench-").tempdir()?;
        let mut layers = Vec::new();
        for stage in ["bronze", "silver", "gold"] {
            load.push((stage.to_string(), load_average()));
            layers.push((stage, measure_stage(stage, lake_dir.path(), &url)?));
        }
        drop(lake_dir);

        let mut measured_peers = Vec::new();
        for (peer, script) in &peers {
            load.push((peer.clone(), load_average()));
            let out = tempfile::Builder::new()
                .prefix("lake-bench-peer-")
                .tempdir()?;
            let mut command = Command::new(&python);
            command
                .arg(script)
                .args(["--db", &database, "--lake"])
                .arg(out.path().join("lake"))
                .arg("--work")
                .arg(out.path().join("work"))
                .envs(parsed.libpq_env())
                .stdout(std::process::Stdio::null());
            measured_peers.push((
                peer.clone(),
                measure(&format!("the peer {}", script.display()), &mut command)?,
            ));
        }
        let round = Round {
            load,
            floor: floor_wall,
            pipeline,
            baseline,
            layers,
            peers: measured_peers,
        };
        print_round(&args, lines, rounds.len() + 1, &round);
        rounds.push(round);
    }
    print_targets(&rounds);
    Ok(())
}

/// Runs the whole batch pipeline of the build `exe` (a `lake-tasks`) in a
/// child process on a fresh lake, and measures it.
fn measure_pipeline(exe: &Path, url: &str) -> Result<Measure> {
    let fresh = tempfile::Builder::new()
        .prefix("lake-bench-full-")
        .tempdir()?;
    let mut command = Command::new(exe);
    command
        .args(["pipeline", "--lake"])
        .arg(fresh.path())
        .args(["--date", BENCH_DATE])
        // The batch layers only, as the peers do.
        .args(["--events", "0"])
        .env("LAKE_PG_URL", url)
        .env_remove("LAKE_FAULT")
        .env_remove("LAKE_KAFKA_BROKERS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let measured = measure(&format!("the pipeline of {}", exe.display()), &mut command)?;
    drop(fresh);
    Ok(measured)
}

/// Seeds the database in a child process (`lake-tasks seed`, which prints
/// the rows of each table; here to stderr, beside the bench's own log). Not
/// in this process: a child's peak RSS, as wait4 reports it, starts from
/// its parent's peak at the exec (Linux keeps the larger of the two), so a
/// parent that had held the generated tables would lift every later
/// child's figure to its own.
fn seed_in_child(url: &str, scale: u32) -> Result<()> {
    let status = Command::new(std::env::current_exe()?)
        // The bench seeds afresh (--no-seed reuses what is there).
        .args(["seed", "--replace", "--scale", &scale.to_string()])
        .env("LAKE_PG_URL", url)
        .stdout(std::io::stderr())
        .status()
        .context("starting lake-tasks seed")?;
    if !status.success() {
        bail!("seeding the benchmark's database failed ({status})");
    }
    Ok(())
}

fn print_round(args: &BatchArgs, lines: u64, number: usize, round: &Round) {
    // With --no-seed the database holds whatever was seeded before: only
    // its line count describes it.
    let scale = if args.no_seed {
        "database as found".to_string()
    } else {
        format!("scale {}", args.scale)
    };
    println!(
        "\nbatch benchmark, {scale} ({} order lines), round {number} of {}; load average before each row: {}",
        group_digits(lines),
        args.repeat.max(1),
        round
            .load
            .iter()
            .map(|(what, load)| format!("{what} {load}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "{:<32} {:>9} {:>9} {:>6} {:>10} {:>12} {:>8} {:>8}",
        "run", "wall", "cpu", "cores", "peak RSS", "lines/s", "/floor", "/peer"
    );
    let peer = round.fastest_peer().map(|(_, m)| m.wall);
    let row = |name: &str, wall: Duration, usage: Option<&Measure>| {
        let ratio = |base: Duration| format!("{:.2}x", wall.as_secs_f64() / base.as_secs_f64());
        println!(
            "{:<32} {:>7.2} s {:>9} {:>6} {:>10} {:>12} {:>8} {:>8}",
            name,
            wall.as_secs_f64(),
            usage.map_or(String::new(), |m| format!("{:.2} s", m.cpu.as_secs_f64())),
            usage.map_or(String::new(), |m| format!("{:.2}", m.cores())),
            usage.map_or(String::new(), |m| mib(m.max_rss_bytes)),
            rate(lines, wall),
            ratio(round.floor),
            peer.map(ratio).unwrap_or_default(),
        );
    };
    row("floor: binary COPY of 6 tables", round.floor, None);
    row(
        "pipeline (one process)",
        round.pipeline.wall,
        Some(&round.pipeline),
    );
    if let Some(baseline) = &round.baseline {
        row("pipeline, --baseline build", baseline.wall, Some(baseline));
    }
    let total = round.layers_total();
    row("layers, one after another", total.wall, Some(&total));
    for (stage, measure) in &round.layers {
        row(&format!("  {stage}"), measure.wall, Some(measure));
    }
    for (peer, measure) in &round.peers {
        row(&format!("peer {peer}"), measure.wall, Some(measure));
    }
}

/// The targets, on the best round of each figure.
fn print_targets(rounds: &[Round]) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let best = |f: &dyn Fn(&Round) -> f64| rounds.iter().map(f).fold(f64::INFINITY, f64::min);
    let to_floor = best(&|r| r.pipeline.wall.as_secs_f64() / r.floor.as_secs_f64());
    let rss = rounds
        .iter()
        .map(|r| r.pipeline.max_rss_bytes.max(r.layers_total().max_rss_bytes))
        .max()
        .unwrap_or(0);
    let cores = |stage: &str| {
        rounds
            .iter()
            .filter_map(|r| r.layers.iter().find(|(s, _)| *s == stage))
            .map(|(_, m)| m.cores())
            .fold(0.0, f64::max)
    };
    println!("\ntargets (best round of each)");
    if rounds.iter().all(|r| r.fastest_peer().is_some()) {
        let to_peer = best(&|r| {
            let (_, peer) = r.fastest_peer().expect("checked above");
            r.pipeline.wall.as_secs_f64() / peer.wall.as_secs_f64()
        });
        println!(
            "  pipeline <= 0.5x the faster peer:  {to_peer:>6.2}x   {}",
            verdict(to_peer <= 0.5)
        );
    } else {
        println!("  pipeline <= 0.5x the faster peer:  (no --peers given)");
    }
    if rounds.iter().all(|r| r.baseline.is_some()) {
        let ratios: Vec<String> = rounds
            .iter()
            .filter_map(|r| {
                let baseline = r.baseline.as_ref()?;
                Some(format!(
                    "{:.2}x",
                    r.pipeline.wall.as_secs_f64() / baseline.wall.as_secs_f64()
                ))
            })
            .collect();
        println!(
            "  pipeline / --baseline build, each round: {}",
            ratios.join(", ")
        );
    }
    println!(
        "  pipeline <= 1.6x the floor:        {to_floor:>6.2}x   {}",
        verdict(to_floor <= 1.6)
    );
    println!(
        "  peak RSS <= 1 GiB:                 {:>8}   {}",
        mib(rss),
        verdict(rss <= 1 << 30)
    );
    for stage in ["silver", "gold"] {
        let used = cores(stage);
        println!(
            "  cpu/wall >= 1.7 in {stage:<6}          {used:>6.2}   {}",
            verdict(used >= 1.7)
        );
    }
}
