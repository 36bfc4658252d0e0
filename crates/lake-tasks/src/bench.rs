//! `cargo xtask bench ...`: the speed and memory targets, measured.
//!
//! `bench batch --scale N` seeds PostgreSQL once (the one at `--pg`, or a
//! private server started like the tests'), then times, each in a child
//! process so its peak RSS is its own: a raw binary `COPY order_details TO
//! STDOUT` drained into nothing (the floor), bronze of order_details alone,
//! bronze of the six tables, silver, gold, and the whole pipeline from
//! PostgreSQL to gold into a fresh lake.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use lake_core::dag::group_digits;
use lake_core::pg::PgUrl;

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
    /// Times each measurement is repeated (the best is kept).
    #[arg(long, default_value_t = 3)]
    repeat: u32,
}

pub fn run(bench: Bench) -> Result<()> {
    match bench {
        Bench::Batch(args) => batch(args),
        Bench::Stream(args) => crate::bench_stream::stream(args),
        Bench::Serve(args) => crate::bench_serve::serve(args),
        Bench::Commit(args) => crate::bench_commit::commit(args),
    }
}

/// Wall time and peak resident memory of one child process.
struct Measure {
    wall: Duration,
    max_rss_bytes: u64,
}

/// Runs `xtask stage ...` in a child process and measures it.
fn measure_stage(stage: &str, lake: &Path, pg: &str, tables: Option<&str>) -> Result<Measure> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let mut command = Command::new(exe);
    command
        .args(["stage", stage, "--lake"])
        .arg(lake)
        .args(["--date", "2026-01-01"])
        .env("LAKE_PG_URL", pg)
        .env_remove("LAKE_FAULT");
    if let Some(tables) = tables {
        command.args(["--tables", tables]);
    }
    let started = Instant::now();
    let child = command.spawn().context("starting a benchmark stage")?;
    let (status, max_rss_bytes) = wait_with_rusage(child.id())?;
    let wall = started.elapsed();
    if !status {
        bail!("benchmark stage {stage} failed");
    }
    Ok(Measure {
        wall,
        max_rss_bytes,
    })
}

/// Waits for a child and returns (success, peak RSS in bytes) from wait4.
pub(crate) fn wait_with_rusage(pid: u32) -> Result<(bool, u64)> {
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter for wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, status and usage are valid pointers.
    let waited = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if waited < 0 {
        bail!(
            "waiting for the benchmark stage: {}",
            std::io::Error::last_os_error()
        );
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    // ru_maxrss is in kilobytes on Linux.
    Ok((ok, usage.ru_maxrss as u64 * 1024))
}

fn best_of(repeat: u32, mut run: impl FnMut() -> Result<Measure>) -> Result<Measure> {
    let mut best: Option<Measure> = None;
    for _ in 0..repeat.max(1) {
        let measure = run()?;
        if best.as_ref().is_none_or(|b| measure.wall < b.wall) {
            best = Some(measure);
        }
    }
    best.context("no measurement")
}

/// Raw `COPY order_details TO STDOUT (FORMAT binary)` drained into nothing.
fn raw_copy(url: &PgUrl) -> Result<(Duration, u64)> {
    let mut client = url.connect()?;
    let rows: i64 = client
        .query_one("SELECT count(*) FROM order_details", &[])
        .context("counting order_details")?
        .get(0);
    let started = Instant::now();
    let mut reader = client
        .copy_out("COPY public.order_details TO STDOUT (FORMAT binary)")
        .context("starting the raw COPY")?;
    let mut buffer = vec![0u8; 1 << 20];
    while reader.read(&mut buffer).context("reading the raw COPY")? > 0 {}
    Ok((started.elapsed(), rows as u64))
}

fn rate(rows: u64, wall: Duration) -> String {
    group_digits((rows as f64 / wall.as_secs_f64()) as u64)
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
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
    if !args.no_seed {
        let started = Instant::now();
        let rows = crate::seed::seed(
            &parsed,
            args.scale,
            lake_core::config::DEFAULT_GENERATOR_SEED,
        )?;
        let lines = rows
            .iter()
            .find(|(t, _)| *t == "order_details")
            .map_or(0, |r| r.1);
        eprintln!(
            "seeded scale {} ({} order lines) in {:.1} s",
            args.scale,
            group_digits(lines),
            started.elapsed().as_secs_f64()
        );
        let mut client = parsed.connect()?;
        client
            .batch_execute("VACUUM ANALYZE")
            .context("vacuuming after the seed")?;
    }

    let mut raw = (Duration::MAX, 0u64);
    for _ in 0..args.repeat.max(1) {
        let measured = raw_copy(&parsed)?;
        if measured.0 < raw.0 {
            raw = measured;
        }
    }
    let lines = raw.1;
    let lake_dir = tempfile::Builder::new().prefix("lake-bench-").tempdir()?;
    let lake = lake_dir.path();
    let details = best_of(args.repeat, || {
        measure_stage("bronze", lake, &url, Some("order_details"))
    })?;
    let bronze = best_of(args.repeat, || measure_stage("bronze", lake, &url, None))?;
    let silver = best_of(args.repeat, || measure_stage("silver", lake, &url, None))?;
    let gold = best_of(args.repeat, || measure_stage("gold", lake, &url, None))?;
    let pipeline = best_of(args.repeat, || {
        let fresh = tempfile::Builder::new()
            .prefix("lake-bench-full-")
            .tempdir()?;
        let exe = std::env::current_exe()?;
        let started = Instant::now();
        let child = Command::new(exe)
            .args(["pipeline", "--lake"])
            .arg(fresh.path())
            .args(["--date", "2026-01-01"])
            .env("LAKE_PG_URL", &url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let (ok, max_rss_bytes) = wait_with_rusage(child.id())?;
        if !ok {
            bail!("the benchmark pipeline failed");
        }
        Ok(Measure {
            wall: started.elapsed(),
            max_rss_bytes,
        })
    })?;

    let ratio = raw.0.as_secs_f64() / details.wall.as_secs_f64() * 100.0;
    let silver_gold = silver.wall + gold.wall;
    println!(
        "\nbatch benchmark, scale {} ({} order lines), best of {}",
        args.scale,
        group_digits(lines),
        args.repeat
    );
    println!(
        "{:<34} {:>9} {:>14} {:>10}",
        "measure", "time", "rows/s", "peak RSS"
    );
    let row = |name: &str, wall: Duration, rows: Option<u64>, rss: Option<u64>| {
        println!(
            "{:<34} {:>7.2} s {:>14} {:>10}",
            name,
            wall.as_secs_f64(),
            rows.map(|r| rate(r, wall)).unwrap_or_default(),
            rss.map(mib).unwrap_or_default()
        );
    };
    row("raw COPY order_details (binary)", raw.0, Some(lines), None);
    row(
        "bronze order_details",
        details.wall,
        Some(lines),
        Some(details.max_rss_bytes),
    );
    row(
        "bronze, 6 tables",
        bronze.wall,
        None,
        Some(bronze.max_rss_bytes),
    );
    row(
        "silver",
        silver.wall,
        Some(lines),
        Some(silver.max_rss_bytes),
    );
    row("gold", gold.wall, None, Some(gold.max_rss_bytes));
    row(
        "pipeline PostgreSQL -> gold",
        pipeline.wall,
        Some(lines),
        Some(pipeline.max_rss_bytes),
    );
    let peak = [&details, &bronze, &silver, &gold, &pipeline]
        .iter()
        .map(|m| m.max_rss_bytes)
        .max()
        .unwrap_or(0);
    println!("\ntargets");
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "  bronze >= 80% of raw COPY:   {ratio:>6.1} %   {}",
        verdict(ratio >= 80.0)
    );
    println!(
        "  silver + gold < 3 s:         {:>6.2} s   {}",
        silver_gold.as_secs_f64(),
        verdict(silver_gold < Duration::from_secs(3))
    );
    println!(
        "  pipeline < 10 s:             {:>6.2} s   {}",
        pipeline.wall.as_secs_f64(),
        verdict(pipeline.wall < Duration::from_secs(10))
    );
    println!(
        "  peak RSS < 1 GiB:            {:>8}   {}",
        mib(peak),
        verdict(peak < 1 << 30)
    );
    Ok(())
}
