//! A table some of whose dates another engine wrote in its own layout
//! (contract, section 2): Spark and Sail put a date's files under
//! `run_date=YYYY-MM-DD/` (Hive-style partition folders) and give the
//! date as the file's `partitionValues` in the log. Such a date reads,
//! replaces, compacts and vacuums exactly like one of ours
//! (`YYYY-MM-DD/`): the lake takes a file's date from the log, never from
//! its folder.
//!
//! The other engine's commit is written here by hand, as Spark writes it:
//! Parquet files from Polars without the partition column, and a log entry
//! adding them with their `partitionValues` and statistics.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use lake_table::maintenance::{compact, vacuum};
use lake_table::{At, DateAsked, DateWriter, Lake, Layer, Snapshot, Table, TableRef};
use polars::prelude::*;
use serde_json::{Value, json};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

fn lake() -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    (dir, lake)
}

fn replace(lake: &Lake, table: &TableRef, date: NaiveDate, x: &[i64]) -> i64 {
    let mut writer = DateWriter::new(lake, table.clone(), date, "ours").unwrap();
    writer.write_frame(&mut df!("x" => x).unwrap()).unwrap();
    writer.replace().unwrap().version
}

/// A data file the other engine wrote: its path relative to the table
/// root, and its values of `x`.
struct Written {
    path: String,
    x: Vec<i64>,
}

/// Writes `x` as a Parquet file at `path` under the table's folder, as the
/// other engine does: Snappy, without the partition column.
fn write_parquet(table_dir: &Path, path: &str, x: &[i64]) -> u64 {
    let file_path = table_dir.join(path);
    std::fs::create_dir_all(file_path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&file_path).unwrap();
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Snappy)
        .finish(&mut df!("x" => x).unwrap())
        .unwrap();
    std::fs::metadata(&file_path).unwrap().len()
}

/// Commits `files` as version `version` of the table, as Spark's Delta
/// writer would: `add` actions with the date in `partitionValues`, the
/// path under `run_date=YYYY-MM-DD/`, and statistics.
fn commit_as_other_engine(table_dir: &Path, version: i64, files: &[(NaiveDate, Written)]) {
    let now = chrono::Utc::now().timestamp_millis();
    let mut lines = vec![json!({"commitInfo": {
        "timestamp": now,
        "operation": "WRITE",
        "operationParameters": {"mode": "Append", "partitionBy": "[\"run_date\"]"},
        "isBlindAppend": true,
        "engineInfo": "Apache-Spark/4.0.0 Delta-Lake/4.0.0",
    }})];
    for (date, file) in files {
        let size = write_parquet(table_dir, &file.path, &file.x);
        let stats = json!({
            "numRecords": file.x.len(),
            "minValues": {"x": file.x.iter().min()},
            "maxValues": {"x": file.x.iter().max()},
            "nullCount": {"x": 0},
        });
        lines.push(json!({"add": {
            "path": file.path,
            "partitionValues": {"run_date": date.format("%Y-%m-%d").to_string()},
            "size": size,
            "modificationTime": now,
            "dataChange": true,
            "stats": stats.to_string(),
        }}));
    }
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    let entry = table_dir.join(format!("_delta_log/{version:020}.json"));
    std::fs::write(entry, text.join("\n") + "\n").unwrap();
}

fn latest(lake: &Lake, table: &TableRef) -> Snapshot {
    Table::open(lake, table.clone())
        .unwrap()
        .latest()
        .unwrap()
        .unwrap()
}

/// The values of `x` of one date, sorted.
fn xs(lake: &Lake, table: &TableRef, at: At, date: NaiveDate) -> Vec<i64> {
    let snapshot = Table::open(lake, table.clone()).unwrap().at(at).unwrap();
    let df = snapshot.scan(date).unwrap().collect().unwrap();
    let mut values: Vec<i64> = df
        .column("x")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    values.sort();
    values
}

/// The paths of the files of `date` in the latest snapshot.
fn paths_of(lake: &Lake, table: &TableRef, date: NaiveDate) -> Vec<String> {
    latest(lake, table)
        .files_of(date)
        .map(|f| f.path.clone())
        .collect()
}

/// Every data file under the table's folder (committed or not), relative
/// to the table root.
fn files_on_disk(lake: &Lake, table: &TableRef) -> BTreeSet<String> {
    let prefix = format!("{}/", table.name);
    lake.list(table.layer, &table.name)
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k.ends_with(".parquet") && !k.contains("_delta_log"))
        .map(|k| k.trim_start_matches(&prefix).to_string())
        .collect()
}

/// The `remove` and `add` paths of one log entry.
fn removed_and_added(table_dir: &Path, version: i64) -> (Vec<String>, Vec<String>) {
    let text =
        std::fs::read_to_string(table_dir.join(format!("_delta_log/{version:020}.json"))).unwrap();
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let action: Value = serde_json::from_str(line).unwrap();
        if let Some(path) = action["remove"]["path"].as_str() {
            removed.push(path.to_string());
        }
        if let Some(path) = action["add"]["path"].as_str() {
            added.push(path.to_string());
        }
    }
    removed.sort();
    (removed, added)
}

#[test]
fn dates_in_the_other_engines_layout_read_replace_compact_and_vacuum_like_ours() {
    let (dir, lake) = lake();
    let t = TableRef::new(Layer::Silver, "mixed");
    let table_dir = dir.path().join("silver/mixed");

    // v0: the 25th by this lake; v1: the 26th (one file) and the 27th (two
    // files) by the other engine, in its layout.
    assert_eq!(replace(&lake, &t, day(25), &[1, 2]), 0);
    let spark_26 = "run_date=2026-11-26/part-00000-6f1c-c000.snappy.parquet";
    let spark_27 = [
        "run_date=2026-11-27/part-00000-8a2d-c000.snappy.parquet",
        "run_date=2026-11-27/part-00001-8a2d-c000.snappy.parquet",
    ];
    commit_as_other_engine(
        &table_dir,
        1,
        &[
            (
                day(26),
                Written {
                    path: spark_26.into(),
                    x: vec![10, 11, 12],
                },
            ),
            (
                day(27),
                Written {
                    path: spark_27[0].into(),
                    x: vec![20],
                },
            ),
            (
                day(27),
                Written {
                    path: spark_27[1].into(),
                    x: vec![21, 22],
                },
            ),
        ],
    );

    // Read: the dates, files, rows and values come from the log.
    let v1 = latest(&lake, &t);
    assert_eq!(v1.version(), 1);
    assert_eq!(v1.dates(), vec![day(25), day(26), day(27)]);
    assert_eq!(paths_of(&lake, &t, day(26)), vec![spark_26.to_string()]);
    assert_eq!(
        paths_of(&lake, &t, day(27)),
        spark_27.map(String::from).to_vec()
    );
    assert!(paths_of(&lake, &t, day(25))[0].starts_with("2026-11-25/"));
    assert_eq!(
        (
            v1.rows_of(day(25)),
            v1.rows_of(day(26)),
            v1.rows_of(day(27))
        ),
        (Some(2), Some(3), Some(3))
    );
    assert_eq!(v1.date_seen(DateAsked::Latest), Some(day(27)));
    assert_eq!(v1.date_seen(DateAsked::Exactly(day(26))), Some(day(26)));
    assert_eq!(v1.date_seen(DateAsked::RunDate(day(28))), Some(day(27)));
    assert_eq!(v1.date_seen(DateAsked::Exactly(day(24))), None);
    assert_eq!(xs(&lake, &t, At::Latest, day(25)), vec![1, 2]);
    assert_eq!(xs(&lake, &t, At::Latest, day(26)), vec![10, 11, 12]);
    assert_eq!(xs(&lake, &t, At::Latest, day(27)), vec![20, 21, 22]);
    // Every row with its date, whatever folder its file sits in: the
    // partition column is never read from a folder name (Hive-style
    // discovery is off), so the 27th's 3 rows say 2026-11-27.
    let all = v1.scan_all().unwrap().collect().unwrap();
    let per_date = all
        .lazy()
        .group_by([col("run_date")])
        .agg([len().alias("rows")])
        .sort(["run_date"], Default::default())
        .collect()
        .unwrap();
    let rows: Vec<u32> = per_date
        .column("rows")
        .unwrap()
        .u32()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(rows, vec![2, 3, 3]);

    // Replace the 26th: our commit removes the other engine's file of that
    // date, adds ours in our layout, and leaves the other dates alone.
    assert_eq!(replace(&lake, &t, day(26), &[30]), 2);
    let (removed, added) = removed_and_added(&table_dir, 2);
    assert_eq!(removed, vec![spark_26.to_string()]);
    assert_eq!(added.len(), 1);
    assert!(added[0].starts_with("2026-11-26/"), "{added:?}");
    assert_eq!(xs(&lake, &t, At::Latest, day(26)), vec![30]);
    assert_eq!(xs(&lake, &t, At::Latest, day(25)), vec![1, 2]);
    assert_eq!(xs(&lake, &t, At::Latest, day(27)), vec![20, 21, 22]);
    // The version before still reads the other engine's file.
    assert_eq!(xs(&lake, &t, At::Version(1), day(26)), vec![10, 11, 12]);

    // Compact the 27th: its two files in the other layout become one of ours.
    let compacted = compact(&lake, &t, day(27), 1 << 30, "compact")
        .unwrap()
        .expect("two small files to compact");
    assert_eq!((compacted.version, compacted.removed_files), (3, 2));
    let (removed, added) = removed_and_added(&table_dir, 3);
    assert_eq!(removed, spark_27.map(String::from).to_vec());
    assert_eq!(added.len(), 1);
    assert!(added[0].starts_with("2026-11-27/"), "{added:?}");
    assert_eq!(xs(&lake, &t, At::Latest, day(27)), vec![20, 21, 22]);

    // Vacuum with no retention: the other engine's removed files go, and so
    // does a file it left uncommitted in its layout; the live files stay.
    let orphan = "run_date=2026-11-27/part-00002-dead-c000.snappy.parquet";
    write_parquet(&table_dir, orphan, &[99]);
    std::thread::sleep(Duration::from_millis(20));
    let report = vacuum(&lake, &t, Duration::ZERO, false, true).unwrap();
    let deleted: BTreeSet<String> = report
        .files
        .iter()
        // Relative to the table root, however delta-rs reports them.
        .map(|f| match f.split_once("silver/mixed/") {
            Some((_, relative)) => relative.to_string(),
            None => f.clone(),
        })
        .collect();
    let expected: BTreeSet<String> = [spark_26, spark_27[0], spark_27[1], orphan]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(deleted, expected, "{report:?}");
    let live: BTreeSet<String> = [day(25), day(26), day(27)]
        .into_iter()
        .flat_map(|d| paths_of(&lake, &t, d))
        .collect();
    assert_eq!(files_on_disk(&lake, &t), live);
    assert_eq!(xs(&lake, &t, At::Latest, day(25)), vec![1, 2]);
    assert_eq!(xs(&lake, &t, At::Latest, day(26)), vec![30]);
    assert_eq!(xs(&lake, &t, At::Latest, day(27)), vec![20, 21, 22]);
    // Version 1 names the other engine's vacuumed file.
    let v1 = Table::open(&lake, t.clone())
        .unwrap()
        .at(At::Version(1))
        .unwrap();
    let gone = v1
        .vacuumed_file(Some(day(26)))
        .unwrap()
        .expect("a vacuumed file");
    assert_eq!(gone.path, spark_26);
}

#[test]
fn a_date_first_written_by_the_other_engine_is_replaced_by_ours() {
    // The other engine created the date (the table is ours: v0 holds the
    // 25th); our rerun of that date replaces it, and a reader asking for
    // the run date sees our rows only.
    let (dir, lake) = lake();
    let t = TableRef::new(Layer::Gold, "rerun");
    let table_dir = dir.path().join("gold/rerun");
    assert_eq!(replace(&lake, &t, day(25), &[1]), 0);
    let spark = "run_date=2026-11-26/part-00000-0b7e-c000.snappy.parquet";
    commit_as_other_engine(
        &table_dir,
        1,
        &[(
            day(26),
            Written {
                path: spark.into(),
                x: vec![5, 6],
            },
        )],
    );
    assert_eq!(
        latest(&lake, &t).date_seen(DateAsked::RunDate(day(26))),
        Some(day(26))
    );
    assert_eq!(replace(&lake, &t, day(26), &[7]), 2);
    let snapshot = latest(&lake, &t);
    assert_eq!(snapshot.files_of(day(26)).count(), 1);
    assert_eq!(snapshot.rows_of(day(26)), Some(1));
    assert_eq!(xs(&lake, &t, At::Latest, day(26)), vec![7]);
    // Replacing it again (ours over ours) still removes exactly one file.
    assert_eq!(replace(&lake, &t, day(26), &[8, 9]), 3);
    let (removed, _) = removed_and_added(&table_dir, 3);
    assert_eq!(removed.len(), 1);
    assert!(removed[0].starts_with("2026-11-26/"), "{removed:?}");
    assert_eq!(xs(&lake, &t, At::Latest, day(26)), vec![8, 9]);
}
