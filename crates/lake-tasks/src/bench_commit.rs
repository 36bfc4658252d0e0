//! `cargo xtask bench commit`: what a Delta commit costs per table, on a
//! local lake: replacing a date (one small file), a stream append with its
//! transaction, each through a plain lake handle and through one that keeps
//! the table's state between commits, and opening the latest snapshot of a
//! table with that many commits (checkpoints every 100).

use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::NaiveDate;
use clap::Args;
use lake_table::{DateWriter, Lake, Layer, Table, TableRef, Txn};
use polars::prelude::*;

use crate::measure::percentile;

#[derive(Args)]
pub struct CommitArgs {
    /// Commits of each kind.
    #[arg(long, default_value_t = 300)]
    commits: u32,
}

fn summary(name: &str, times: Vec<Duration>) {
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    println!(
        "{name:<46} {:>8.2} ms {:>8.2} ms {:>8.2} ms",
        mean,
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
    );
}

pub fn commit(args: CommitArgs) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("lake-bench-commit-")
        .tempdir()?;
    let lake = Lake::open(dir.path().to_str().unwrap_or("."))?;
    let date = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
    let n = args.commits.max(1);
    let mut frame = df!("x" => (0..100i64).collect::<Vec<_>>(), "y" => vec!["abc"; 100])?;

    // Each kind twice, side by side: through a plain handle (every commit
    // loads the table from its last checkpoint) and through one that keeps
    // the latest state between commits (the stream processor's).
    let cached = lake.with_snapshot_cache();
    let mut rows: Vec<(String, Vec<Duration>)> = Vec::new();
    for (handle, suffix, label) in [(&lake, "", ""), (&cached, "_cached", ", state kept")] {
        let replaced = TableRef::new(Layer::Gold, format!("replaced{suffix}"));
        let mut times = Vec::new();
        for _ in 0..n {
            let started = Instant::now();
            let mut writer = DateWriter::new(handle, replaced.clone(), date, "bench")?;
            writer.write_frame(&mut frame)?;
            writer.replace()?;
            times.push(started.elapsed());
        }
        rows.push((format!("replace a date{label} (write + commit)"), times));

        let appended = TableRef::new(Layer::Bronze, format!("appended{suffix}"));
        let mut times = Vec::new();
        for batch in 1..=n {
            let started = Instant::now();
            let mut writer = DateWriter::new(handle, appended.clone(), date, "bench")?;
            writer.write_frame(&mut frame)?;
            writer.append(vec![Txn {
                app_id: "bench/partition-0".into(),
                version: batch as i64,
            }])?;
            times.push(started.elapsed());
        }
        rows.push((format!("stream append{label} (write + commit)"), times));
    }
    let appended = TableRef::new(Layer::Bronze, "appended");

    let mut open_times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        Table::open(&lake, appended.clone())?.latest()?;
        open_times.push(started.elapsed());
    }

    println!("\ncommit benchmark, local lake, {n} commits of each kind (1 file of 100 rows each)");
    println!(
        "{:<46} {:>11} {:>11} {:>11}",
        "measure", "mean", "p50", "p99"
    );
    for (name, times) in rows {
        summary(&name, times);
    }
    summary(&format!("open the latest of {n} versions"), open_times);
    Ok(())
}
