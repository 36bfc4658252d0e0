//! Storage and Delta tables against a real S3-protocol server (SeaweedFS,
//! see lake-testkit): objects, multipart uploads, conditional puts, and the
//! table commits, concurrency, time travel and scans that use them.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use chrono::NaiveDate;
use lake_table::s3::S3Settings;
use lake_table::{AppendOutcome, At, DateWriter, Lake, Layer, Table, TableRef, Txn, fault};
use lake_testkit::s3_server;
use polars::prelude::*;

fn lake(name: &str) -> Lake {
    let server = s3_server();
    Lake::open_s3_with(
        &server.lake_url(name),
        S3Settings::new(&server.endpoint, &server.access_key, &server.secret_key),
    )
    .unwrap()
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 5, 1).unwrap()
}

fn silver(name: &str) -> TableRef {
    TableRef::new(Layer::Silver, name)
}

fn values(lake: &Lake, table: &TableRef, at: At) -> Vec<i64> {
    let snapshot = Table::open(lake, table.clone()).unwrap().at(at).unwrap();
    let df = snapshot.scan(day()).unwrap().collect().unwrap();
    let mut v: Vec<i64> = df
        .column("x")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    v.sort();
    v
}

fn replace(lake: &Lake, table: &TableRef, run: &str, x: &[i64]) -> i64 {
    let mut writer = DateWriter::new(lake, table.clone(), day(), run).unwrap();
    writer.write_frame(&mut df!("x" => x).unwrap()).unwrap();
    writer.replace().unwrap().version
}

#[test]
fn objects_put_get_list_create_delete() {
    let lake = lake("objects");
    lake.put(
        Layer::Bronze,
        "t/2026-05-01/a.bin",
        Bytes::from_static(b"hello"),
    )
    .unwrap();
    lake.put(
        Layer::Bronze,
        "t/2026-05-02/b.bin",
        Bytes::from_static(b"world!"),
    )
    .unwrap();
    assert_eq!(
        lake.get(Layer::Bronze, "t/2026-05-01/a.bin")
            .unwrap()
            .unwrap(),
        Bytes::from_static(b"hello")
    );
    assert!(lake.get(Layer::Bronze, "t/none").unwrap().is_none());
    let keys: Vec<String> = lake
        .list(Layer::Bronze, "t")
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, ["t/2026-05-01/a.bin", "t/2026-05-02/b.bin"]);
    assert_eq!(
        lake.list_dirs(Layer::Bronze, "t").unwrap(),
        ["2026-05-01", "2026-05-02"]
    );
    assert_eq!(
        lake.head(Layer::Bronze, "t/2026-05-02/b.bin")
            .unwrap()
            .unwrap()
            .size,
        6
    );
    // Conditional put: what Delta's commits rely on.
    assert!(
        lake.create(Layer::Bronze, "t/once", Bytes::from_static(b"1"))
            .unwrap()
    );
    assert!(
        !lake
            .create(Layer::Bronze, "t/once", Bytes::from_static(b"2"))
            .unwrap()
    );
    assert_eq!(
        lake.get(Layer::Bronze, "t/once").unwrap().unwrap(),
        Bytes::from_static(b"1")
    );
    lake.delete(Layer::Bronze, "t/once").unwrap();
    lake.delete(Layer::Bronze, "t/once").unwrap();
    assert!(lake.head(Layer::Bronze, "t/once").unwrap().is_none());
    assert!(lake.url().starts_with("s3://lake-tests/objects-"));
    assert!(
        lake.describe(Layer::Bronze, "t/x")
            .starts_with("s3://lake-tests/objects-")
    );
}

#[test]
fn large_objects_go_up_in_parts() {
    let lake = lake("multipart");
    let chunk: Vec<u8> = (0..1_048_576u32).map(|i| (i % 253) as u8).collect();
    let mut writer = lake.writer(Layer::Gold, "big/part.bin").unwrap();
    for _ in 0..14 {
        writer.write_all(&chunk).unwrap();
    }
    assert!(
        lake.get(Layer::Gold, "big/part.bin").unwrap().is_none(),
        "visible before finish"
    );
    assert_eq!(writer.finish().unwrap(), 14 << 20);
    let bytes = lake.get(Layer::Gold, "big/part.bin").unwrap().unwrap();
    assert_eq!(bytes.len(), 14 << 20);
    assert!(bytes.chunks(1 << 20).all(|c| c == chunk.as_slice()));
}

#[test]
fn replaces_failures_time_travel_and_vacuum_on_s3() {
    let lake = lake("commit");
    let t = silver("crashy");
    assert_eq!(replace(&lake, &t, "r1", &[1, 2]), 0);
    assert_eq!(replace(&lake, &t, "r2", &[3, 4, 5]), 1);
    assert_eq!(values(&lake, &t, At::Latest), vec![3, 4, 5]);
    assert_eq!(values(&lake, &t, At::Version(0)), vec![1, 2]);

    // A failure between the data files and the log commit: version 1 stays.
    fault::inject(Some("before_commit@silver/crashy"));
    let mut writer = DateWriter::new(&lake, t.clone(), day(), "r3").unwrap();
    writer
        .write_frame(&mut df!("x" => [9i64]).unwrap())
        .unwrap();
    assert!(writer.replace().is_err());
    fault::inject(None);
    let snapshot = Table::open(&lake, t.clone())
        .unwrap()
        .latest()
        .unwrap()
        .unwrap();
    assert_eq!(snapshot.version(), 1);
    assert_eq!(values(&lake, &t, At::Latest), vec![3, 4, 5]);
    assert_eq!(replace(&lake, &t, "r4", &[6]), 2);

    // Vacuum with no retention: the two replaced files and the failed
    // write's go; version 2's file stays.
    let data_files = |lake: &Lake| {
        lake.list(Layer::Silver, "crashy/2026-05-01")
            .unwrap()
            .into_iter()
            .filter(|o| o.key.ends_with(".parquet"))
            .count()
    };
    assert_eq!(data_files(&lake), 4);
    let report = lake_table::maintenance::vacuum(&lake, &t, Duration::ZERO, false, true).unwrap();
    assert_eq!(report.files.len(), 3, "{report:?}");
    assert_eq!(data_files(&lake), 1);
    assert_eq!(values(&lake, &t, At::Latest), vec![6]);
}

#[test]
fn concurrent_appends_land_through_conditional_puts() {
    let lake = lake("appends");
    let t = silver("s");
    std::thread::scope(|scope| {
        for writer in 0..4i32 {
            let lake = lake.clone();
            let t = t.clone();
            scope.spawn(move || {
                for batch in 1..=3i64 {
                    let mut w = DateWriter::new(&lake, t.clone(), day(), "run").unwrap();
                    w.write_frame(&mut df!("x" => [writer as i64 * 10 + batch]).unwrap())
                        .unwrap();
                    let outcome = w
                        .append(vec![Txn {
                            app_id: format!("q/partition-{writer}"),
                            version: batch,
                        }])
                        .unwrap();
                    assert!(
                        matches!(outcome, AppendOutcome::Committed(_)),
                        "{outcome:?}"
                    );
                }
            });
        }
    });
    let mut expected: Vec<i64> = (0..4)
        .flat_map(|w| (1..=3).map(move |b| w * 10 + b))
        .collect();
    expected.sort();
    assert_eq!(values(&lake, &t, At::Latest), expected);
    let snapshot = Table::open(&lake, t).unwrap().latest().unwrap().unwrap();
    assert_eq!(
        snapshot.version(),
        11,
        "12 commits, versions 0 to 11, none lost"
    );
}

#[test]
fn a_scan_of_some_columns_reads_only_those() {
    let lake = lake("projection");
    let t = TableRef::new(Layer::Gold, "wide");
    let blobs: Vec<Vec<u8>> = (0..200u32).map(|i| vec![(i % 251) as u8; 1024]).collect();
    let blob_refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    let mut df = df!("x" => (0..200i64).collect::<Vec<_>>(), "blob" => blob_refs).unwrap();
    let mut writer = DateWriter::new(&lake, t.clone(), day(), "r1").unwrap();
    writer.write_frame(&mut df).unwrap();
    writer.replace().unwrap();

    let snapshot = Table::open(&lake, t).unwrap().latest().unwrap().unwrap();
    let only_x = snapshot.scan(day()).unwrap().select([col("x")]);
    let plan = only_x.clone().explain(true).unwrap();
    assert!(
        plan.contains("1/2 COLUMNS"),
        "the scan is projected: {plan}"
    );
    let got = only_x.collect().unwrap();
    assert_eq!(got.get_column_names(), ["x"]);
    assert_eq!(
        got.column("x").unwrap().i64().unwrap().sum(),
        Some((0..200i64).sum())
    );
    assert!(snapshot.scan(day()).unwrap().collect().unwrap().equals(&df));
}
