//! Replacing a date in several tables: every commit lands, or the ones
//! made are undone and each table holds the date as before. One test:
//! faults are process-wide.

use chrono::NaiveDate;
use lake_table::{At, DateWriter, Lake, Layer, Table, TableRef, replace_all};
use polars::prelude::*;

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
}

fn silver(name: &str) -> TableRef {
    TableRef::new(Layer::Silver, name)
}

fn writer(lake: &Lake, table: &TableRef, run: &str, x: &[i64]) -> DateWriter {
    let mut writer = DateWriter::new(lake, table.clone(), day(), run).unwrap();
    writer.write_frame(&mut df!("x" => x).unwrap()).unwrap();
    writer
}

fn version(lake: &Lake, table: &TableRef) -> i64 {
    Table::open(lake, table.clone())
        .unwrap()
        .latest()
        .unwrap()
        .unwrap()
        .version()
}

fn xs(lake: &Lake, table: &TableRef) -> Vec<i64> {
    let frame = Table::open(lake, table.clone())
        .unwrap()
        .at(At::Latest)
        .unwrap()
        .scan(day())
        .unwrap()
        .collect()
        .unwrap();
    let mut xs: Vec<i64> = frame
        .column("x")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    xs.sort();
    xs
}

#[test]
fn a_failed_commit_undoes_the_tables_committed_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let (first, second, third) = (silver("first"), silver("second"), silver("third"));

    // Run 1 lands in all three.
    let commits = replace_all(vec![
        writer(&lake, &first, "r1", &[1, 2]),
        writer(&lake, &second, "r1", &[10]),
        writer(&lake, &third, "r1", &[100]),
    ])
    .unwrap();
    assert_eq!(
        commits.iter().map(|c| c.version).collect::<Vec<_>>(),
        [0, 0, 0]
    );

    // Run 2 fails at the third table: the first two are undone, in one
    // commit each that brings back run 1's files (schema included: run 2
    // added a column to `first`).
    lake_table::fault::inject(Some("before_commit@silver/third"));
    let mut wider = DateWriter::new(&lake, first.clone(), day(), "r2").unwrap();
    wider
        .write_frame(&mut df!("x" => [3i64], "y" => ["new"]).unwrap())
        .unwrap();
    let err = replace_all(vec![
        wider,
        writer(&lake, &second, "r2", &[20]),
        writer(&lake, &third, "r2", &[300]),
    ])
    .unwrap_err();
    lake_table::fault::inject(None);
    let message = format!("{err:#}");
    assert!(
        message.contains("replacing silver/third 2026-03-01 failed"),
        "{message}"
    );
    assert!(
        message.contains("injected fault before_commit@silver/third"),
        "{message}"
    );
    assert!(
        message.contains("silver/second@v1 (2026-03-01) undone by v2"),
        "{message}"
    );
    assert!(
        message.contains("silver/first@v1 (2026-03-01) undone by v2"),
        "{message}"
    );
    assert_eq!(xs(&lake, &first), [1, 2]);
    assert_eq!(xs(&lake, &second), [10]);
    assert_eq!(xs(&lake, &third), [100]);
    assert_eq!(version(&lake, &third), 0, "the failed table never moved");
    let first_now = Table::open(&lake, first.clone())
        .unwrap()
        .latest()
        .unwrap()
        .unwrap();
    assert_eq!(
        first_now
            .columns()
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["x"],
        "run 1's schema is back"
    );
    let history =
        lake_table::history::history(&Table::open(&lake, first.clone()).unwrap(), 10).unwrap();
    assert!(
        history
            .iter()
            .any(|c| c.version == 2 && c.operation == "RESTORE"),
        "the undo is a RESTORE commit in the log: {history:?}"
    );

    // A table created by the failed run itself is left with an empty date.
    let fresh = silver("fresh");
    lake_table::fault::inject(Some("before_commit@silver/third"));
    let err = replace_all(vec![
        writer(&lake, &fresh, "r3", &[7]),
        writer(&lake, &third, "r3", &[700]),
    ])
    .unwrap_err();
    lake_table::fault::inject(None);
    assert!(format!("{err:#}").contains("silver/fresh@v0 (2026-03-01) undone by v1"));
    assert_eq!(xs(&lake, &fresh), Vec::<i64>::new());

    // An undo that fails too (an injected fault here) is said, with what
    // the table is left holding.
    lake_table::fault::inject(Some(
        "before_restore@silver/first,before_commit@silver/third",
    ));
    let err = replace_all(vec![
        writer(&lake, &first, "r4", &[4]),
        writer(&lake, &third, "r4", &[400]),
    ])
    .unwrap_err();
    lake_table::fault::inject(None);
    let message = format!("{err:#}");
    assert!(
        message.contains("silver/first@v3 (2026-03-01) could NOT be undone"),
        "{message}"
    );
    assert_eq!(xs(&lake, &first), [4]);

    // A broken log fails the change before any commit.
    let broken = dir
        .path()
        .join("silver/third/_delta_log/00000000000000000000.json");
    std::fs::write(&broken, b"{not json").unwrap();
    let err = replace_all(vec![
        writer(&lake, &second, "r5", &[50]),
        writer(&lake, &third, "r5", &[500]),
    ])
    .unwrap_err();
    assert!(
        format!("{err:#}")
            .contains("silver/third cannot be written, so no table of this change was committed"),
        "{err:#}"
    );
    assert_eq!(
        version(&lake, &second),
        2,
        "nothing committed to the first table"
    );
}
