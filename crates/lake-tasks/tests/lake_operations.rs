//! The common lake operations, through the `lake-tasks` binary as `cargo
//! xtask` runs it, on the built-in data (no service):
//!
//! - `lake restore TABLE --version N`: one RESTORE commit, after which
//!   engines this project does not contain (delta-rs' Python package and
//!   DuckDB's delta extension, with the interop test's script
//!   `tests/interop/observe_delta.py`) read version N's rows; a version
//!   whose files a vacuum deleted is refused naming the file.
//! - `pipeline --from D1 --to D2`: one run per date, oldest first, with
//!   progress, a run manifest each, a failure naming the dates that failed,
//!   and the refusal of a range that ends before it starts or comes with
//!   `--date`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use chrono::NaiveDate;
use lake_core::run::{Outcome, RunManifest};
use lake_table::{At, Lake, Table, TableRef};
use polars::prelude::*;
use serde_json::{Value, json};

const D1: &str = "2026-11-24";
const D2: &str = "2026-11-25";
const D3: &str = "2026-11-26";

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// `lake-tasks ARGS --lake LAKE`, with the built-in sources whatever the
/// environment configures, and `env` set.
fn lake_tasks(lake: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lake-tasks"));
    command.args(args).arg("--lake").arg(lake);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LAKE_")) {
        command.env_remove(name);
    }
    command
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// Runs `lake-tasks ARGS` and returns its stdout; fails the test on failure.
fn succeed(lake: &Path, args: &[&str]) -> String {
    let output = lake_tasks(lake, args, &[]);
    assert!(
        output.status.success(),
        "{args:?}: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Runs `lake-tasks ARGS`, which must fail; returns its stderr.
fn fail(lake: &Path, args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let output = lake_tasks(lake, args, env);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{args:?}: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    (text(&output.stdout), text(&output.stderr))
}

fn snapshot(lake: &Lake, table: &str, at: At) -> lake_table::Snapshot {
    Table::open(lake, TableRef::parse(table).unwrap())
        .unwrap()
        .at(at)
        .unwrap()
}

/// Rows per date of a version, from its log.
fn counts(snapshot: &lake_table::Snapshot) -> BTreeMap<String, u64> {
    snapshot
        .date_summaries()
        .into_iter()
        .map(|(date, s)| (date.to_string(), s.rows))
        .collect()
}

fn counts_of(value: &Value) -> BTreeMap<String, u64> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not counts: {value}"))
        .iter()
        .map(|(d, n)| (d.clone(), n.as_u64().unwrap()))
        .collect()
}

/// `total_revenue` (its bits) and `order_count` of one date of a version.
fn kpi(snapshot: &lake_table::Snapshot, date: &str) -> (u64, i64) {
    let frame = snapshot.scan(day(date)).unwrap().collect().unwrap();
    assert_eq!(frame.height(), 1, "{frame}");
    let revenue = frame
        .column("total_revenue")
        .unwrap()
        .f64()
        .unwrap()
        .get(0)
        .unwrap();
    let orders = frame
        .column("order_count")
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .get(0)
        .unwrap();
    (revenue.to_bits(), orders)
}

#[test]
fn restore_brings_a_version_back_for_every_delta_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    // Three runs: D1, D2, and D2 again from other data (another seed).
    succeed(path, &["pipeline", "--events", "0", "--date", D1]);
    succeed(path, &["pipeline", "--events", "0", "--date", D2]);
    succeed(
        path,
        &["pipeline", "--events", "0", "--date", D2, "--seed", "99"],
    );
    let lake = Lake::open_existing(path.to_str().unwrap()).unwrap();
    let kpi_latest = snapshot(&lake, "gold/kpi_summary", At::Latest);
    assert_eq!(kpi_latest.version(), 2, "one commit per run");
    // What the versions to restore hold, read before any restore.
    let kpi_v1 = snapshot(&lake, "gold/kpi_summary", At::Version(1));
    let (expected_kpi, replaced_kpi) = (kpi(&kpi_v1, D2), kpi(&kpi_latest, D2));
    assert_ne!(
        expected_kpi, replaced_kpi,
        "the rerun of {D2} from another seed changed its figures"
    );
    let expected_kpi_counts = counts(&kpi_v1);
    let sales_latest = snapshot(&lake, "silver/sales_master", At::Latest);
    let sales_v0 = snapshot(&lake, "silver/sales_master", At::Version(0));
    let expected_sales_counts = counts(&sales_v0);
    assert_eq!(expected_sales_counts.keys().collect::<Vec<_>>(), [D1]);
    let sales_removed: u64 = sales_latest.rows_of(day(D2)).unwrap();

    let said = succeed(
        path,
        &["lake", "restore", "gold/kpi_summary", "--version", "1"],
    );
    assert_eq!(
        said.lines().next().unwrap_or_default(),
        format!(
            "gold/kpi_summary: v3 restores v1: 1 files added back (1 rows, {}), 1 removed (1 rows)",
            lake_tasks::lake::human_bytes(kpi_v1.files_of(day(D2)).map(|f| f.bytes).sum())
        )
    );
    let said = succeed(
        path,
        &["lake", "restore", "silver/sales_master", "--version", "0"],
    );
    assert!(
        said.starts_with(&format!(
            "silver/sales_master: v{} restores v0: 0 files added back (0 rows, 0 B), {} removed ({sales_removed} rows)",
            sales_latest.version() + 1,
            sales_latest.files_of(day(D2)).count(),
        )),
        "{said}"
    );

    // Engines this project does not contain read the restored versions.
    let spec = path.join("spec.json");
    std::fs::write(
        &spec,
        json!({
            "tables": ["gold/kpi_summary", "silver/sales_master"],
            "gold_date": D2,
            "old": {"table": "gold/kpi_summary", "version": 1},
        })
        .to_string(),
    )
    .unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/interop/observe_delta.py"
    );
    let output = Command::new(lake_testkit::python::interop_python())
        .arg(script)
        .arg(path)
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "observe_delta.py failed:\n{}",
        text(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    for engine in ["deltalake", "duckdb"] {
        assert_eq!(
            counts_of(&seen[engine]["gold/kpi_summary"]),
            expected_kpi_counts,
            "{engine}: gold/kpi_summary's rows per date"
        );
        assert_eq!(
            counts_of(&seen[engine]["silver/sales_master"]),
            expected_sales_counts,
            "{engine}: silver/sales_master's rows per date"
        );
        let restored = &seen["gold"][engine]["kpi"];
        assert_eq!(
            restored.as_array().map(Vec::len),
            Some(1),
            "{engine}: {restored}"
        );
        assert_eq!(
            (
                restored[0]["total_revenue_bits"].as_i64().unwrap() as u64,
                restored[0]["order_count"].as_i64().unwrap()
            ),
            expected_kpi,
            "{engine}: {D2}'s figures are v1's"
        );
    }
    for (table, version) in [
        ("gold/kpi_summary", 3),
        ("silver/sales_master", sales_latest.version() + 1),
    ] {
        assert_eq!(seen["versions"][table], version, "{table}");
        let newest = seen["history"][table]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["version"] == version)
            .unwrap_or_else(|| panic!("{table}: no v{version} in {}", seen["history"][table]));
        assert_eq!(newest["operation"], "RESTORE", "{table}: {newest}");
    }

    // Refused: the version the table is at, one it never had, and one
    // whose files a vacuum deleted (the rerun's, removed by the restore).
    let (_, stderr) = fail(
        path,
        &["lake", "restore", "gold/kpi_summary", "--version", "3"],
        &[],
    );
    assert_eq!(
        stderr.trim_end(),
        "error: gold/kpi_summary is at v3 already: nothing to restore"
    );
    let (_, stderr) = fail(
        path,
        &["lake", "restore", "gold/kpi_summary", "--version", "9"],
        &[],
    );
    assert_eq!(
        stderr.trim_end(),
        "error: gold/kpi_summary has no version 9: versions 0-3"
    );
    succeed(
        path,
        &[
            "lake",
            "vacuum",
            "gold/kpi_summary",
            "--retain",
            "0s",
            "--allow-short-retention",
        ],
    );
    let vacuumed: Vec<String> = kpi_latest
        .files_of(day(D2))
        .map(|f| f.path.clone())
        .collect();
    assert_eq!(vacuumed.len(), 1);
    // The vacuum's own commits (VACUUM START, VACUUM END) come after v3.
    let after_vacuum = snapshot(&lake, "gold/kpi_summary", At::Latest).version();
    let (_, stderr) = fail(
        path,
        &["lake", "restore", "gold/kpi_summary", "--version", "2"],
        &[],
    );
    assert!(
        stderr.starts_with("error: gold/kpi_summary cannot be restored to v2: ")
            && stderr.contains(&format!(
                "its data file {} was deleted by vacuum",
                vacuumed[0]
            )),
        "{stderr}"
    );
    // Nothing was committed by the refusal.
    assert_eq!(
        snapshot(&lake, "gold/kpi_summary", At::Latest).version(),
        after_vacuum
    );
}

/// The manifests of `_runs/`, oldest first.
fn runs(lake: &Lake) -> Vec<RunManifest> {
    let mut runs = RunManifest::recent(lake, 100).unwrap();
    runs.reverse();
    runs
}

#[test]
fn a_backfill_runs_each_date_oldest_first_and_names_the_failed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let output = lake_tasks(
        path,
        &["pipeline", "--events", "0", "--from", D1, "--to", D3],
        &[],
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}{stderr}");
    // Progress: which date of how many, then how it ended, in date order.
    let progress: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("backfill: "))
        .collect();
    assert_eq!(progress.len(), 6, "{stderr}");
    for (i, date) in [D1, D2, D3].iter().enumerate() {
        assert_eq!(
            progress[2 * i],
            format!("backfill: date {} of 3: {date}", i + 1)
        );
        assert!(
            progress[2 * i + 1].starts_with(&format!("backfill: {date} ok: run ")),
            "{stderr}"
        );
    }
    assert!(
        stdout.contains(&format!("Backfill {D1} to {D3}: 3 dates, 0 failed")),
        "{stdout}"
    );

    // One successful run per date, oldest first, each writing its date.
    let lake = Lake::open_existing(path.to_str().unwrap()).unwrap();
    let manifests = runs(&lake);
    let dates: Vec<String> = manifests.iter().map(|m| m.date.to_string()).collect();
    assert_eq!(dates, [D1, D2, D3]);
    for manifest in &manifests {
        assert_eq!(manifest.outcome, Outcome::Succeeded, "{}", manifest.run_id);
        let written = manifest.written("silver/sales_master").unwrap();
        assert_eq!(written.date, manifest.date);
        assert!(
            stdout.contains(&format!(
                "  {}  ok      run {} (",
                manifest.date, manifest.run_id
            )),
            "{stdout}"
        );
    }
    assert!(
        manifests
            .windows(2)
            .all(|w| w[0].finished_at <= w[1].started_at)
    );
    let sales = snapshot(&lake, "silver/sales_master", At::Latest);
    assert_eq!(
        sales.dates(),
        [D1, D2, D3].map(day),
        "every date of the range is in silver"
    );
    // The built-in data is the same each date: so are the dates' rows.
    let rows: Vec<u64> = sales.date_summaries().values().map(|s| s.rows).collect();
    assert!(
        rows[0] > 0 && rows.iter().all(|r| *r == rows[0]),
        "{rows:?}"
    );

    // A failing date does not stop the others; the failed ones are named
    // and the exit is non-zero.
    let (stdout, stderr) = fail(
        path,
        &["pipeline", "--events", "0", "--from", D1, "--to", D2],
        &[("LAKE_FAULT", "before_commit@gold/rfm")],
    );
    for (i, date) in [D1, D2].iter().enumerate() {
        assert!(
            stderr.contains(&format!("backfill: date {} of 2: {date}\n", i + 1)),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("backfill: {date} FAILED: ")),
            "{stderr}"
        );
        assert!(stdout.contains(&format!("  {date}  FAILED  ")), "{stdout}");
    }
    assert_eq!(
        stderr.lines().last(),
        Some(
            format!(
                "error: backfill: 2 of 2 dates failed: {D1}, {D2} (rerun each with pipeline --date)"
            )
            .as_str()
        ),
        "{stderr}"
    );
    let failed: Vec<String> = runs(&lake)
        .iter()
        .filter(|m| m.outcome == Outcome::Failed)
        .map(|m| m.date.to_string())
        .collect();
    assert_eq!(failed, [D1, D2], "a failed manifest per date");

    // Refused before running anything.
    let before = runs(&lake).len();
    let (_, stderr) = fail(
        path,
        &["pipeline", "--events", "0", "--from", D3, "--to", D1],
        &[],
    );
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: --from {D3} is after --to {D1}: a backfill runs from the older date to the newer"
        )
    );
    let (_, stderr) = fail(
        path,
        &[
            "pipeline", "--events", "0", "--from", D1, "--to", D2, "--date", D3,
        ],
        &[],
    );
    assert!(
        stderr.starts_with("error: --from/--to run a range of dates and --date (or LAKE_DATE) one date, here 2026-11-26"),
        "{stderr}"
    );
    let output = lake_tasks(path, &["pipeline", "--events", "0", "--from", D1], &[]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("--to <YYYY-MM-DD>"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(runs(&lake).len(), before, "no run started");
}
