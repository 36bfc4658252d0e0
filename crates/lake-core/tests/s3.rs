//! lake-core's storage and commit protocol against a real S3-protocol
//! server (SeaweedFS, see lake-testkit), in both layouts.

use std::io::Write;

use bytes::Bytes;
use chrono::NaiveDate;
use lake_core::partition::{FileOrigin, read_manifest, read_partition};
use lake_core::s3::S3Settings;
use lake_core::{Lake, Layer, PartitionRef, PartitionWriter, fault};
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

fn values(lake: &Lake, table: &str) -> Vec<i64> {
    let partition = PartitionRef::new(Layer::Silver, table, day());
    let manifest = read_manifest(lake, &partition).unwrap().unwrap();
    let df = read_partition(lake, &partition, &manifest, None).unwrap();
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

fn write(lake: &Lake, table: &str, run: &str, x: &[i64]) -> lake_core::Manifest {
    let mut writer =
        PartitionWriter::new(lake, PartitionRef::new(Layer::Silver, table, day()), run);
    writer.write_frame(&mut df!("x" => x).unwrap()).unwrap();
    writer.commit().unwrap()
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
    assert!(
        lake.create(Layer::Bronze, "t/_LOCK", Bytes::from_static(b"1"))
            .unwrap()
    );
    assert!(
        !lake
            .create(Layer::Bronze, "t/_LOCK", Bytes::from_static(b"2"))
            .unwrap()
    );
    lake.delete(Layer::Bronze, "t/_LOCK").unwrap();
    lake.delete(Layer::Bronze, "t/_LOCK").unwrap();
    assert!(lake.head(Layer::Bronze, "t/_LOCK").unwrap().is_none());
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
fn commit_protocol_overwrite_and_crashes() {
    let lake = lake("commit");
    write(&lake, "crashy", "r1", &[1, 2]);
    let before = write(&lake, "crashy", "r2", &[3, 4, 5]);
    assert_eq!(values(&lake, "crashy"), vec![3, 4, 5]);
    let listed = lake.list(Layer::Silver, "crashy/2026-05-01").unwrap();
    assert_eq!(
        listed.len(),
        2,
        "the overwritten partition's old file is gone: {listed:?}"
    );

    // A crash between the data files and _SUCCESS: the old partition stays.
    fault::inject(Some("before_commit@silver/crashy"));
    let mut writer = PartitionWriter::new(
        &lake,
        PartitionRef::new(Layer::Silver, "crashy", day()),
        "r3",
    );
    writer
        .write_frame(&mut df!("x" => [9i64]).unwrap())
        .unwrap();
    assert!(writer.commit().is_err());
    fault::inject(None);
    let partition = PartitionRef::new(Layer::Silver, "crashy", day());
    assert_eq!(read_manifest(&lake, &partition).unwrap().unwrap(), before);
    assert_eq!(values(&lake, "crashy"), vec![3, 4, 5]);
    // The next commit sweeps the crashed write's file.
    write(&lake, "crashy", "r4", &[6]);
    assert_eq!(values(&lake, "crashy"), vec![6]);
    assert_eq!(
        lake.list(Layer::Silver, "crashy/2026-05-01").unwrap().len(),
        2
    );

    // A crash after _SUCCESS, before the old files go: the new partition
    // is visible and complete; the next commit sweeps the old file.
    fault::inject(Some("before_cleanup@silver/crashy"));
    let mut writer = PartitionWriter::new(
        &lake,
        PartitionRef::new(Layer::Silver, "crashy", day()),
        "r5",
    );
    writer
        .write_frame(&mut df!("x" => [7i64, 8]).unwrap())
        .unwrap();
    assert!(writer.commit().is_err());
    fault::inject(None);
    assert_eq!(values(&lake, "crashy"), vec![7, 8]);
    assert_eq!(
        lake.list(Layer::Silver, "crashy/2026-05-01").unwrap().len(),
        3
    );
    write(&lake, "crashy", "r6", &[9]);
    assert_eq!(values(&lake, "crashy"), vec![9]);
    assert_eq!(
        lake.list(Layer::Silver, "crashy/2026-05-01").unwrap().len(),
        2
    );
}

#[test]
fn concurrent_appends_through_the_lock() {
    let lake = lake("appends");
    std::thread::scope(|scope| {
        for writer in 0..4i32 {
            let lake = lake.clone();
            scope.spawn(move || {
                for batch in 1..=3u64 {
                    let mut w = PartitionWriter::new(
                        &lake,
                        PartitionRef::new(Layer::Silver, "s", day()),
                        "run",
                    )
                    .with_origin(FileOrigin {
                        partition: writer,
                        batch,
                    });
                    w.write_frame(&mut df!("x" => [writer as i64 * 10 + batch as i64]).unwrap())
                        .unwrap();
                    w.commit_append().unwrap();
                }
            });
        }
    });
    let mut expected: Vec<i64> = (0..4)
        .flat_map(|w| (1..=3).map(move |b| w * 10 + b))
        .collect();
    expected.sort();
    assert_eq!(values(&lake, "s"), expected);
}

#[test]
fn reading_some_columns_fetches_only_those() {
    let lake = lake("projection");
    // A small column beside a big one that does not compress.
    let mut seed = 7u64;
    let blobs: Vec<Vec<u8>> = (0..2000)
        .map(|_| {
            (0..1024)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect()
        })
        .collect();
    let blob_refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    let mut df = df!("x" => (0..2000i64).collect::<Vec<_>>(), "blob" => blob_refs).unwrap();
    let partition = PartitionRef::new(Layer::Gold, "wide", day());
    let mut writer = PartitionWriter::new(&lake, partition.clone(), "r1");
    writer.write_frame(&mut df).unwrap();
    let manifest = writer.commit().unwrap();
    let size = manifest.files[0].bytes;
    assert!(size > 2_000_000);

    let before = lake.bytes_read();
    let only_x = read_partition(&lake, &partition, &manifest, Some(&["x".to_string()])).unwrap();
    let fetched = lake.bytes_read() - before;
    assert_eq!(only_x.get_column_names(), ["x"]);
    assert_eq!(
        only_x.column("x").unwrap().i64().unwrap().sum(),
        Some((0..2000i64).sum())
    );
    assert!(
        fetched < size / 20,
        "fetched {fetched} of {size} bytes for one small column"
    );

    let before = lake.bytes_read();
    let all = read_partition(&lake, &partition, &manifest, None).unwrap();
    assert!(all.equals(&df));
    assert!(lake.bytes_read() - before >= size);
}
