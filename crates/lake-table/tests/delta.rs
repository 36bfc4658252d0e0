//! Delta tables on a local lake: replacing a date, appends with the
//! stream's transactions, time travel, concurrent writers, readers of an
//! old version, schema evolution, compaction, vacuum, checkpoints.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::NaiveDate;
use lake_table::maintenance::{compact, vacuum};
use lake_table::{AppendOutcome, At, DateWriter, Lake, Layer, Snapshot, Table, TableRef, Txn};
use polars::prelude::*;
use serde_json::Value;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

fn lake() -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    (dir, lake)
}

fn gold(name: &str) -> TableRef {
    TableRef::new(Layer::Gold, name)
}

fn replace(lake: &Lake, table: &TableRef, date: NaiveDate, run: &str, x: &[i64]) -> i64 {
    let mut writer = DateWriter::new(lake, table.clone(), date, run).unwrap();
    writer.write_frame(&mut df!("x" => x).unwrap()).unwrap();
    writer.replace().unwrap().version
}

/// Appends `x` to `date` as micro-batch `batch` of the stream partition
/// `app_id`.
fn append(
    lake: &Lake,
    table: &TableRef,
    date: NaiveDate,
    app_id: &str,
    batch: i64,
    x: &[i64],
) -> AppendOutcome {
    let mut writer = DateWriter::new(lake, table.clone(), date, "stream")
        .unwrap()
        .for_stream();
    writer.write_frame(&mut df!("x" => x).unwrap()).unwrap();
    writer
        .append(vec![Txn {
            app_id: app_id.into(),
            version: batch,
        }])
        .unwrap()
}

fn latest(lake: &Lake, table: &TableRef) -> Snapshot {
    Table::open(lake, table.clone())
        .unwrap()
        .latest()
        .unwrap()
        .unwrap()
}

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

/// Every data file under the table's folder (committed or not).
fn files_on_disk(lake: &Lake, table: &TableRef) -> BTreeSet<String> {
    lake.list(table.layer, &table.name)
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k.ends_with(".parquet") && !k.contains("_delta_log"))
        .collect()
}

/// The JSON actions of one log entry.
fn log_entry(lake: &Lake, table: &TableRef, version: i64) -> Vec<Value> {
    let key = format!("{}/_delta_log/{version:020}.json", table.name);
    let bytes = lake
        .get(table.layer, &key)
        .unwrap()
        .expect("no such log entry");
    std::str::from_utf8(&bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn writing_a_date_again_replaces_it_in_one_commit_and_deletes_no_file() {
    let (_dir, lake) = lake();
    let t = gold("t");
    assert_eq!(replace(&lake, &t, day(1), "r1", &[1, 2, 3]), 0);
    assert_eq!(replace(&lake, &t, day(2), "r1", &[20]), 1);
    let before = files_on_disk(&lake, &t);
    assert_eq!(replace(&lake, &t, day(1), "r2", &[4, 5]), 2);

    assert_eq!(xs(&lake, &t, At::Latest, day(1)), vec![4, 5]);
    assert_eq!(
        xs(&lake, &t, At::Latest, day(2)),
        vec![20],
        "the other date is untouched"
    );
    // Time travel: version 0 still reads the first write.
    assert_eq!(xs(&lake, &t, At::Version(0), day(1)), vec![1, 2, 3]);
    // No file was deleted: the replaced ones stay for older versions.
    assert!(files_on_disk(&lake, &t).is_superset(&before));

    // The commit: one remove of day 1's file, one add, the run id, stats.
    let actions = log_entry(&lake, &t, 2);
    let removes: Vec<&Value> = actions.iter().filter_map(|a| a.get("remove")).collect();
    let adds: Vec<&Value> = actions.iter().filter_map(|a| a.get("add")).collect();
    assert_eq!((removes.len(), adds.len()), (1, 1));
    assert!(
        removes[0]["path"]
            .as_str()
            .unwrap()
            .starts_with("2026-03-01/")
    );
    assert_eq!(adds[0]["partitionValues"]["run_date"], "2026-03-01");
    let stats: Value = serde_json::from_str(adds[0]["stats"].as_str().unwrap()).unwrap();
    assert_eq!(stats["numRecords"], 2);
    assert_eq!(
        (
            stats["minValues"]["x"].clone(),
            stats["maxValues"]["x"].clone()
        ),
        (4.into(), 5.into())
    );
    let info = actions.iter().find_map(|a| a.get("commitInfo")).unwrap();
    assert_eq!(info["runId"], "r2");
    assert_eq!(info["operation"], "WRITE");
    assert_eq!(
        info["operationParameters"]["predicate"],
        "run_date = '2026-03-01'"
    );
    // Protocol reader 1 / writer 2: what the lake's tables need.
    let protocol = log_entry(&lake, &t, 0)
        .into_iter()
        .find_map(|a| a.get("protocol").cloned())
        .unwrap();
    assert_eq!(
        (
            protocol["minReaderVersion"].clone(),
            protocol["minWriterVersion"].clone()
        ),
        (1.into(), 2.into())
    );
}

#[test]
fn a_replayed_stream_batch_is_recognized_by_its_transaction() {
    let (_dir, lake) = lake();
    let t = TableRef::new(Layer::Bronze, "events");
    let append = |batch: i64, x: &[i64]| append(&lake, &t, day(6), "q/partition-0", batch, x);
    assert!(matches!(append(1, &[1, 2]), AppendOutcome::Committed(_)));
    assert!(matches!(append(2, &[3]), AppendOutcome::Committed(_)));
    // Batch 2 again (a crash before its checkpoint): not applied twice.
    let replayed = append(2, &[3]);
    assert_eq!(
        replayed,
        AppendOutcome::AlreadyApplied(vec![Txn {
            app_id: "q/partition-0".into(),
            version: 2
        }])
    );
    assert_eq!(xs(&lake, &t, At::Latest, day(6)), vec![1, 2, 3]);
    let snapshot = latest(&lake, &t);
    assert_eq!(snapshot.txn_version("q/partition-0").unwrap(), Some(2));
    assert_eq!(snapshot.txn_version("q/partition-1").unwrap(), None);
    let found = lake_table::history::find_transaction(&snapshot, "q/partition-0", 1, 100)
        .unwrap()
        .unwrap();
    assert_eq!(found.0, 0, "batch 1 is version 0");
}

#[test]
fn concurrent_writers_all_land() {
    let (_dir, lake) = lake();
    let t = gold("busy");
    replace(&lake, &t, day(9), "seed", &[900]);
    // Six writers replacing six dates of one table at once: each commit
    // either lands first time or retries after a conflict.
    std::thread::scope(|scope| {
        for writer in 0..6u32 {
            let lake = lake.clone();
            let t = t.clone();
            scope.spawn(move || {
                for round in 0..3i64 {
                    replace(
                        &lake,
                        &t,
                        day(10 + writer),
                        "w",
                        &[writer as i64 * 100 + round],
                    );
                }
            });
        }
    });
    let snapshot = latest(&lake, &t);
    assert_eq!(snapshot.version(), 18, "1 + 6 x 3 commits");
    for writer in 0..6u32 {
        assert_eq!(
            xs(&lake, &t, At::Latest, day(10 + writer)),
            vec![writer as i64 * 100 + 2]
        );
    }
    assert_eq!(xs(&lake, &t, At::Latest, day(9)), vec![900]);
}

#[test]
fn a_reader_of_a_version_keeps_reading_it_while_writers_commit() {
    let (_dir, lake) = lake();
    let t = gold("read_while_writing");
    replace(&lake, &t, day(1), "r1", &[1, 2]);
    let held = latest(&lake, &t);
    let plan = held.scan(day(1)).unwrap();
    replace(&lake, &t, day(1), "r2", &[7]);
    replace(&lake, &t, day(1), "r3", &[8]);
    let df = plan.collect().unwrap();
    assert_eq!(
        df.column("x")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(held.version(), 0);
}

#[test]
fn a_column_added_at_the_source_evolves_the_table_schema() {
    let (_dir, lake) = lake();
    let t = TableRef::new(Layer::Bronze, "orders");
    replace(&lake, &t, day(1), "r1", &[1]);
    let mut writer = DateWriter::new(&lake, t.clone(), day(2), "r2").unwrap();
    writer
        .write_frame(&mut df!("x" => [2i64], "note" => ["new"]).unwrap())
        .unwrap();
    writer.replace().unwrap();
    let snapshot = latest(&lake, &t);
    let names: Vec<&str> = snapshot.columns().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["x", "note"]);
    // The old date reads the new column as nulls.
    let old = snapshot.scan(day(1)).unwrap().collect().unwrap();
    assert_eq!(old.column("note").unwrap().null_count(), 1);
    let all = snapshot.scan_all().unwrap().collect().unwrap();
    assert_eq!(all.height(), 2);
    assert_eq!(all.column("run_date").unwrap().dtype(), &DataType::Date);

    // A type change on a table with another date is refused, naming the column.
    let mut writer = DateWriter::new(&lake, t.clone(), day(2), "r3").unwrap();
    writer
        .write_frame(&mut df!("x" => ["text"]).unwrap())
        .unwrap();
    let err = format!("{:#}", writer.replace().unwrap_err());
    assert!(
        err.contains("bronze/orders.x: the table holds i64 and the new data str"),
        "{err}"
    );
}

#[test]
fn a_frame_cannot_hold_the_partition_column() {
    let (_dir, lake) = lake();
    let mut writer = DateWriter::new(&lake, gold("p"), day(1), "r").unwrap();
    let err = writer
        .write_frame(&mut df!("run_date" => [1i64]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("run_date is the partition column"), "{err}");
}

#[test]
fn a_failure_before_the_commit_leaves_the_previous_version() {
    let (_dir, lake) = lake();
    let t = gold("crashy");
    replace(&lake, &t, day(1), "r1", &[1]);
    lake_table::fault::inject(Some("before_commit@gold/crashy"));
    let mut writer = DateWriter::new(&lake, t.clone(), day(1), "r2").unwrap();
    writer
        .write_frame(&mut df!("x" => [2i64]).unwrap())
        .unwrap();
    let err = writer.replace().unwrap_err().to_string();
    lake_table::fault::inject(None);
    assert!(
        err.contains("injected fault before_commit@gold/crashy"),
        "{err}"
    );
    let snapshot = latest(&lake, &t);
    assert_eq!(snapshot.version(), 0);
    assert_eq!(xs(&lake, &t, At::Latest, day(1)), vec![1]);
    assert_eq!(
        files_on_disk(&lake, &t).len(),
        2,
        "the uncommitted file is there, unlisted"
    );
    assert_eq!(
        replace(&lake, &t, day(1), "r3", &[3]),
        1,
        "the next commit lands cleanly"
    );
}

#[test]
fn compaction_rewrites_small_files_without_changing_data_or_transactions() {
    let (_dir, lake) = lake();
    let t = TableRef::new(Layer::Bronze, "stream");
    for batch in 1..=5i64 {
        append(
            &lake,
            &t,
            day(3),
            "q/partition-0",
            batch,
            &[batch, batch * 10],
        );
    }
    let commit = compact(&lake, &t, day(3), 1 << 20, "compactor")
        .unwrap()
        .unwrap();
    assert_eq!((commit.removed_files, commit.files), (5, 1));
    assert_eq!(
        xs(&lake, &t, At::Latest, day(3)),
        vec![1, 2, 3, 4, 5, 10, 20, 30, 40, 50]
    );
    let snapshot = latest(&lake, &t);
    assert_eq!(snapshot.files().len(), 1);
    assert_eq!(snapshot.txn_version("q/partition-0").unwrap(), Some(5));
    let actions = log_entry(&lake, &t, snapshot.version());
    assert!(
        actions
            .iter()
            .filter_map(|a| a.get("add").or_else(|| a.get("remove")))
            .all(|f| f["dataChange"] == false),
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().find_map(|a| a.get("commitInfo")).unwrap()["operation"],
        "OPTIMIZE"
    );
    // Nothing left to compact.
    assert!(
        compact(&lake, &t, day(3), 1 << 20, "compactor")
            .unwrap()
            .is_none()
    );
}

#[test]
fn vacuum_keeps_what_the_retention_window_needs() {
    let (_dir, lake) = lake();
    let t = gold("vacuumed");
    replace(&lake, &t, day(1), "r1", &[1]);
    replace(&lake, &t, day(1), "r2", &[2]);
    // A writer that never committed leaves a file no version lists.
    let mut orphan = DateWriter::new(&lake, t.clone(), day(1), "r3").unwrap();
    orphan
        .write_frame(&mut df!("x" => [3i64]).unwrap())
        .unwrap();
    drop(orphan);
    assert_eq!(files_on_disk(&lake, &t).len(), 3);

    // Within the default week: nothing goes.
    let kept = vacuum(&lake, &t, Duration::from_secs(7 * 86_400), false, false).unwrap();
    assert!(kept.files.is_empty(), "{kept:?}");
    assert_eq!(xs(&lake, &t, At::Version(0), day(1)), vec![1]);

    // Shorter than the table's retention (7 days): refused unless asked.
    let refused = vacuum(&lake, &t, Duration::ZERO, true, false).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("retention of 0s shorter than the table's 7d"),
        "{refused:#}"
    );
    assert_eq!(files_on_disk(&lake, &t).len(), 3);

    // With no retention: the removed file and the orphan go, the live one stays.
    let dry = vacuum(&lake, &t, Duration::ZERO, true, true).unwrap();
    assert_eq!(dry.files.len(), 2, "{dry:?}");
    assert_eq!(
        files_on_disk(&lake, &t).len(),
        3,
        "a dry run deletes nothing"
    );
    let done = vacuum(&lake, &t, Duration::ZERO, false, true).unwrap();
    assert_eq!(done.files, dry.files);
    assert_eq!(files_on_disk(&lake, &t).len(), 1);
    assert_eq!(xs(&lake, &t, At::Latest, day(1)), vec![2]);
    // Version 0 names its vacuumed file; the latest has none missing.
    let table = Table::open(&lake, t.clone()).unwrap();
    let v0 = table.at(At::Version(0)).unwrap();
    let gone = v0.vacuumed_file(None).unwrap().expect("a vacuumed file");
    assert!(
        v0.vacuumed_error(gone)
            .to_string()
            .starts_with("gold/vacuumed@v0: its data file "),
        "{}",
        v0.vacuumed_error(gone)
    );
    assert!(
        table
            .latest()
            .unwrap()
            .unwrap()
            .vacuumed_file(None)
            .unwrap()
            .is_none()
    );
}

#[test]
fn checkpoints_every_hundred_commits_keep_opening_cheap() {
    let (_dir, lake) = lake();
    let t = TableRef::new(Layer::Bronze, "often");
    for batch in 1..=101i64 {
        append(&lake, &t, day(4), "q/partition-0", batch, &[batch]);
    }
    let log: Vec<String> = lake
        .list(Layer::Bronze, "often/_delta_log")
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert!(
        log.iter()
            .any(|k| k.ends_with("00000000000000000099.checkpoint.parquet")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|k| k.ends_with("_last_checkpoint")),
        "{log:?}"
    );
    let snapshot = latest(&lake, &t);
    assert_eq!(snapshot.version(), 100);
    assert_eq!(snapshot.files().len(), 101);
    assert_eq!(snapshot.txn_version("q/partition-0").unwrap(), Some(101));
    // Streamed tables keep their log for two days, not Delta's 30.
    let metadata = log_entry(&lake, &t, 0)
        .into_iter()
        .find_map(|a| a.get("metaData").cloned())
        .unwrap();
    assert_eq!(
        metadata["configuration"]["delta.logRetentionDuration"],
        lake_table::STREAM_LOG_RETENTION
    );
}

#[test]
fn a_cached_state_is_brought_up_to_date_with_other_writers_commits() {
    let (_dir, lake) = lake();
    let cached = lake.with_snapshot_cache();
    let t = TableRef::new(Layer::Bronze, "cached");
    let append =
        |lake: &Lake, app: &str, batch: i64, x: &[i64]| append(lake, &t, day(7), app, batch, x);
    assert!(matches!(
        append(&cached, "q/partition-0", 1, &[1]),
        AppendOutcome::Committed(_)
    ));
    assert!(matches!(
        append(&cached, "q/partition-0", 2, &[2]),
        AppendOutcome::Committed(_)
    ));
    // Another writer commits versions 2 and 3 behind the cache's back.
    assert!(matches!(
        append(&lake, "q/partition-1", 1, &[10]),
        AppendOutcome::Committed(_)
    ));
    assert_eq!(replace(&lake, &t, day(8), "other", &[20, 21]), 3);
    // The cache's state at version 1 is the one brought up to date: with
    // version 0's log entry gone, a load from the log's start fails.
    let first = format!("{}/_delta_log/{:020}.json", t.name, 0);
    let path = lake.local_path(t.layer, &first).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(Table::open(&lake, t.clone()).unwrap().latest().is_err());
    let snapshot = latest(&cached, &t);
    assert_eq!(snapshot.version(), 3);
    assert_eq!(snapshot.files().len(), 4);
    assert_eq!(snapshot.txn_version("q/partition-1").unwrap(), Some(1));
    assert_eq!(xs(&cached, &t, At::Latest, day(7)), vec![1, 2, 10]);
    assert_eq!(xs(&cached, &t, At::Latest, day(8)), vec![20, 21]);
    // The other writer's transaction is seen by the next append's check.
    assert_eq!(
        append(&cached, "q/partition-1", 1, &[10]),
        AppendOutcome::AlreadyApplied(vec![Txn {
            app_id: "q/partition-1".into(),
            version: 1
        }])
    );
}
