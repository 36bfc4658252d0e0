//! Engines this project does not contain read what it wrote: delta-rs'
//! Python package `deltalake` and DuckDB's delta extension open every
//! bronze, silver and gold table of a lake holding two dates and a rerun of
//! the second, and agree with each other and with the project's figures.

use std::collections::BTreeMap;
use std::process::Command;

use chrono::NaiveDate;
use lake_gold::figures::GoldFigures;
use lake_stream::step::StreamSource;
use lake_table::{Lake, Layer, Table, TableRef};
use lake_tasks::pipeline::{PipelineOptions, PipelineRun, run_pipeline};
use serde_json::{Value, json};

fn run(dir: &std::path::Path, date: NaiveDate) -> PipelineRun {
    let mut options = PipelineOptions::new(
        lake_core::config::LakeArgs {
            lake: lake_core::config::LakeLocation {
                url: dir.display().to_string(),
            },
            date: Some(date),
        },
        lake_core::config::SourceArgs {
            pg: None,
            generator: lake_core::config::GeneratorArgs {
                scale: 2,
                seed: lake_core::config::DEFAULT_GENERATOR_SEED,
            },
        },
    );
    options.run.progress = false;
    options.stream = Some(StreamSource::Embedded {
        events: 2_000,
        seed: 5,
    });
    run_pipeline(&options).unwrap()
}

/// Rows per date of every table, as the project's snapshots count them.
fn project_counts(lake: &Lake) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for layer in [Layer::Bronze, Layer::Silver, Layer::Gold] {
        for table in lake_table::tables(lake, layer).unwrap() {
            let table = TableRef::new(layer, table);
            let snapshot = Table::open(lake, table.clone())
                .unwrap()
                .latest()
                .unwrap()
                .unwrap();
            let counts = snapshot
                .date_summaries()
                .into_iter()
                .map(|(date, s)| (date.to_string(), s.rows))
                .collect();
            out.insert(table.to_string(), counts);
        }
    }
    out
}

fn counts_of(value: &Value) -> BTreeMap<String, u64> {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(d, n)| (d.clone(), n.as_u64().unwrap()))
        .collect()
}

#[test]
fn deltalake_and_duckdb_read_every_table_with_the_projects_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (d1, d2) = (
        NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
        NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
    );
    let first = run(dir.path(), d1);
    run(dir.path(), d2);
    let rerun = run(dir.path(), d2);
    let lake = &rerun.lake;
    let expected = project_counts(lake);
    assert!(
        expected.len() >= 13,
        "every table of the three layers: {expected:?}"
    );

    let spec = dir.path().join("spec.json");
    std::fs::write(
        &spec,
        json!({
            "tables": expected.keys().collect::<Vec<_>>(),
            "gold_date": d2.to_string(),
            "old": {"table": "silver/sales_master", "version": 0},
        })
        .to_string(),
    )
    .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/observe_delta.py");
    let output = Command::new(lake_testkit::python::interop_python())
        .arg(script)
        .arg(dir.path())
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "observe_delta.py failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();

    for (table, counts) in &expected {
        let by_deltalake = counts_of(&seen["deltalake"][table]);
        let by_duckdb = counts_of(&seen["duckdb"][table]);
        assert_eq!(&by_deltalake, counts, "{table}: deltalake's rows per date");
        assert_eq!(&by_duckdb, counts, "{table}: DuckDB's rows per date");
        let version = Table::open(lake, TableRef::parse(table).unwrap())
            .unwrap()
            .latest()
            .unwrap()
            .unwrap()
            .version();
        assert_eq!(seen["versions"][table], version, "{table}: version");
        let history = seen["history"][table].as_array().unwrap();
        assert_eq!(
            history.len() as i64,
            version + 1,
            "{table}: one commit per version"
        );
        assert!(
            history.iter().all(|h| h["runId"].is_string()),
            "{table}: every commit names its run: {history:?}"
        );
    }

    // The rerun of the second date replaced it: its rows are one run's.
    let sales = &expected["silver/sales_master"];
    assert_eq!(sales.len(), 2);
    assert_eq!(
        sales[&d2.to_string()],
        sales[&d1.to_string()],
        "the same source gives the same rows on both dates: the rerun added none"
    );
    assert!(first.manifest.written("silver/sales_master").is_some());
    // Time travel: version 0 holds the first date only.
    assert_eq!(
        counts_of(&seen["old"]),
        BTreeMap::from([(d1.to_string(), sales[&d1.to_string()])])
    );

    // The headline gold figures, as the project computes them.
    let figures = GoldFigures::read_run(lake, &rerun.manifest).unwrap();
    for engine in ["deltalake", "duckdb"] {
        let gold = &seen["gold"][engine];
        let kpi = &gold["kpi"][0];
        // Exact bits (the script sends them as integers: JSON floats may round).
        let total = f64::from_bits(kpi["total_revenue_bits"].as_i64().unwrap() as u64);
        assert_eq!(
            total.to_bits(),
            figures.total_revenue.to_bits(),
            "{engine}: total revenue"
        );
        assert_eq!(
            kpi["order_count"], figures.order_count,
            "{engine}: order count"
        );
        let top: Vec<(String, f64)> = gold["top3"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let revenue = f64::from_bits(r["revenue_bits"].as_i64().unwrap() as u64);
                (r["country"].as_str().unwrap().to_string(), revenue)
            })
            .collect();
        let ours: Vec<(String, f64)> = figures
            .countries
            .iter()
            .take(3)
            .map(|c| (c.country.clone(), c.revenue))
            .collect();
        assert_eq!(top, ours, "{engine}: top 3 countries");
    }
}
