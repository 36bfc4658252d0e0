//! Re-running a date replaces it exactly, in one commit per table; a
//! failure between the data files and the log commit leaves every table at
//! its previous version. One test: faults are process-wide.

use std::collections::BTreeSet;
use std::time::Duration;

use lake_table::{Lake, Layer, Table, TableRef, fault};
use lake_tests::{read, run, snapshot, test_date};
use polars::prelude::DataFrame;

fn gold(lake: &Lake) -> Vec<DataFrame> {
    lake_gold::METRICS
        .iter()
        .map(|metric| read(lake, Layer::Gold, metric, test_date()))
        .collect()
}

/// Data files of the lake's tables that no commit ever added (left by a
/// writer that failed before its commit).
fn orphan_files(lake: &Lake) -> Vec<String> {
    let mut orphans = Vec::new();
    for layer in [Layer::Bronze, Layer::Silver, Layer::Gold] {
        for table in lake_table::tables(lake, layer).unwrap() {
            let mut added = BTreeSet::new();
            for object in lake.list(layer, &format!("{table}/_delta_log")).unwrap() {
                if !object.key.ends_with(".json") {
                    continue;
                }
                let bytes = lake.get(layer, &object.key).unwrap().unwrap();
                for line in std::str::from_utf8(&bytes).unwrap().lines() {
                    let action: serde_json::Value = serde_json::from_str(line).unwrap();
                    if let Some(path) = action["add"]["path"].as_str() {
                        added.insert(format!("{table}/{path}"));
                    }
                }
            }
            for object in lake.list(layer, &table).unwrap() {
                if object.key.ends_with(".parquet")
                    && !object.key.contains("/_delta_log/")
                    && !added.contains(&object.key)
                {
                    orphans.push(format!("{layer}/{}", object.key));
                }
            }
        }
    }
    orphans
}

fn version(lake: &Lake, layer: Layer, table: &str) -> i64 {
    snapshot(lake, layer, table).version()
}

#[test]
fn reruns_are_idempotent_and_failures_leave_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let date = test_date();

    // Two runs of the same date give identical gold data; each replaced
    // the date in one commit per table.
    let first = run(dir.path(), None, 2, date).unwrap();
    let lake = first.lake.clone();
    let gold_first = gold(&lake);
    let second = run(dir.path(), None, 2, date).unwrap();
    assert_ne!(first.manifest.run_id, second.manifest.run_id);
    for ((a, b), metric) in gold_first.iter().zip(gold(&lake)).zip(lake_gold::METRICS) {
        assert!(
            a.equals_missing(&b),
            "gold/{metric} differs between two runs of the same date:\n{}\n{}",
            lake_core::display::render(a),
            lake_core::display::render(&b)
        );
    }
    for metric in lake_gold::METRICS {
        let table = format!("gold/{metric}");
        let (a, b) = (
            first.manifest.written(&table).unwrap(),
            second.manifest.written(&table).unwrap(),
        );
        assert_eq!(b.version, a.version + 1, "{table}: one commit per run");
        let snapshot = snapshot(&lake, Layer::Gold, metric);
        assert_eq!(
            snapshot.files_of(date).count(),
            1,
            "{table}: the rerun replaced the date"
        );
    }
    assert_eq!(orphan_files(&lake), Vec::<String>::new());
    let sales_before = read(&lake, Layer::Silver, "sales_master", date);
    let rejects_before = read(&lake, Layer::Silver, "_rejects/sales_master", date);
    let rejects_files = |lake: &Lake| -> Vec<String> {
        snapshot(lake, Layer::Silver, "_rejects/sales_master")
            .files_of(date)
            .map(|f| f.path.clone())
            .collect()
    };
    let rejects_files_before = rejects_files(&lake);
    let silver_version = version(&lake, Layer::Silver, "sales_master");
    let rejects_version = version(&lake, Layer::Silver, "_rejects/sales_master");

    // A failure after the new data files, before the log commit: the
    // previous version stays the table's; the run fails naming the step.
    fault::inject(Some("before_commit@silver/sales_master"));
    let err = run(dir.path(), None, 3, date)
        .err()
        .expect("the injected fault must fail the run");
    fault::inject(None);
    let message = format!("{err:#}");
    assert!(
        message.contains("silver/sales_master") && message.contains("injected fault"),
        "{message}"
    );
    assert_eq!(
        version(&lake, Layer::Silver, "sales_master"),
        silver_version
    );
    assert!(read(&lake, Layer::Silver, "sales_master", date).equals_missing(&sales_before));
    // The rejects, committed first, were undone by a second commit that
    // restores the date as it was: silver's two tables never disagree.
    // Gold, after silver, did not run.
    assert!(
        message.contains("silver/_rejects/sales_master") && message.contains("undone"),
        "{message}"
    );
    assert_eq!(
        version(&lake, Layer::Silver, "_rejects/sales_master"),
        rejects_version + 2
    );
    assert_eq!(
        rejects_files(&lake),
        rejects_files_before,
        "the same files again"
    );
    assert!(
        read(&lake, Layer::Silver, "_rejects/sales_master", date).equals_missing(&rejects_before)
    );
    assert_eq!(
        version(&lake, Layer::Gold, "kpi_summary"),
        second.manifest.written("gold/kpi_summary").unwrap().version
    );
    let orphans = orphan_files(&lake);
    assert!(
        !orphans.is_empty()
            && orphans
                .iter()
                .all(|o| o.starts_with("silver/sales_master/")),
        "the failed commit leaves its data files, and only them, unreferenced: {orphans:?}"
    );

    // Back to normal: a rerun commits cleanly; vacuum removes the leftovers.
    let rerun = run(dir.path(), None, 3, date).unwrap();
    assert_eq!(
        rerun
            .manifest
            .written("silver/sales_master")
            .unwrap()
            .version,
        silver_version + 1
    );
    assert!(read(&lake, Layer::Silver, "sales_master", date).height() > sales_before.height());
    let report = lake_table::maintenance::vacuum(
        &lake,
        &TableRef::new(Layer::Silver, "sales_master"),
        Duration::ZERO,
        false,
        true,
    )
    .unwrap();
    assert!(report.files.len() >= orphans.len(), "{report:?}");
    assert_eq!(orphan_files(&lake), Vec::<String>::new());
    // Time travel still reads the first run's version of gold.
    let first_kpi = first.manifest.written("gold/kpi_summary").unwrap();
    let old = Table::open(&lake, TableRef::new(Layer::Gold, "kpi_summary"))
        .unwrap()
        .at(lake_table::At::Version(first_kpi.version))
        .unwrap()
        .scan(date)
        .unwrap()
        .collect()
        .unwrap();
    assert!(old.equals_missing(&gold_first[0]));
}
