//! Delta's RESTORE of a whole table: one commit whose files and schema are
//! the restored version's, every date at once, recorded as `RESTORE` with
//! the version restored.

use chrono::NaiveDate;
use lake_table::history::history;
use lake_table::restore::restore_version;
use lake_table::{At, DateWriter, Lake, Layer, Table, TableRef};
use polars::prelude::*;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

fn replace(lake: &Lake, table: &TableRef, date: NaiveDate, mut frame: DataFrame) -> i64 {
    let mut writer = DateWriter::new(lake, table.clone(), date, "run-test").unwrap();
    writer.write_frame(&mut frame).unwrap();
    writer.replace().unwrap().version
}

#[test]
fn a_restore_brings_back_the_files_and_the_schema_of_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let table = TableRef::new(Layer::Silver, "restored");
    // v0: day 1 with column a; v1: day 2 adds column b; v2: day 1 replaced.
    assert_eq!(
        replace(&lake, &table, day(1), df!("a" => [1i64, 2]).unwrap()),
        0
    );
    assert_eq!(
        replace(
            &lake,
            &table,
            day(2),
            df!("a" => [3i64], "b" => ["x"]).unwrap()
        ),
        1
    );
    assert_eq!(
        replace(
            &lake,
            &table,
            day(1),
            df!("a" => [9i64], "b" => ["y"]).unwrap()
        ),
        2
    );
    let handle = Table::open(&lake, table.clone()).unwrap();
    let v0 = handle.at(At::Version(0)).unwrap();

    let restored = restore_version(&handle, 0, "run-restore").unwrap();
    assert_eq!(restored.version, 3);
    assert_eq!(restored.restored, 0);
    assert_eq!((restored.added_files, restored.added_rows), (1, 2));
    assert_eq!((restored.removed_files, restored.removed_rows), (2, 2));
    assert!(restored.metadata_restored, "v0 had no column b");

    let latest = handle.latest().unwrap().unwrap();
    assert_eq!(latest.version(), 3);
    assert_eq!(latest.files(), v0.files(), "v0's very files");
    let columns: Vec<&str> = latest.columns().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(columns, ["a"]);
    let rows = latest.scan_all().unwrap().collect().unwrap();
    let expected = df!("a" => [1i64, 2]).unwrap();
    assert!(rows.select(["a"]).unwrap().equals(&expected), "{rows}");
    let newest = &history(&handle, 1).unwrap()[0];
    assert_eq!(newest.operation, "RESTORE");
    assert_eq!(newest.change.as_deref(), Some("restore"));
    assert_eq!(newest.run_id.as_deref(), Some("run-restore"));
    // The commit names the version restored, as Delta's RESTORE does (its
    // parameters are strings in the log).
    let entry = std::fs::read_to_string(
        dir.path()
            .join("silver/restored/_delta_log/00000000000000000003.json"),
    )
    .unwrap();
    let info: serde_json::Value = entry
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|action| action.get("commitInfo").is_some())
        .unwrap();
    assert_eq!(
        info["commitInfo"]["operationParameters"]["version"], "0",
        "{info}"
    );

    // Refused: the version it is at, and one it never had.
    let err = restore_version(&handle, 3, "run-x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "silver/restored is at v3 already: nothing to restore"
    );
    let err = restore_version(&handle, 7, "run-x").unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "silver/restored has no version 7: versions 0-3"
    );
    assert_eq!(handle.latest().unwrap().unwrap().version(), 3);
}
