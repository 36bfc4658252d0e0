//! Re-running a date replaces its partitions exactly; a crash between the
//! data files and `_SUCCESS` (or before the old files are deleted) never
//! leaves a mix visible. One test: faults are process-wide.

use std::collections::BTreeSet;

use lake_core::partition::{SUCCESS, read_manifest};
use lake_core::{Lake, Layer, PartitionRef, fault};
use lake_tests::{read, run, test_date};
use polars::prelude::DataFrame;

fn gold(lake: &Lake) -> Vec<DataFrame> {
    lake_gold::METRICS
        .iter()
        .map(|metric| read(lake, Layer::Gold, metric, test_date()))
        .collect()
}

/// Every object of the lake's data layers is a `_SUCCESS` or a file the
/// `_SUCCESS` of its folder lists.
fn stray_files(lake: &Lake) -> Vec<String> {
    let mut strays = Vec::new();
    for layer in [Layer::Bronze, Layer::Silver, Layer::Gold] {
        let objects = lake.list(layer, "").unwrap();
        let folders: BTreeSet<String> = objects
            .iter()
            .filter_map(|o| o.key.rsplit_once('/').map(|(dir, _)| dir.to_string()))
            .collect();
        for folder in folders {
            let (table, date) = folder.rsplit_once('/').unwrap();
            let partition = PartitionRef::new(layer, table, date.parse().unwrap());
            let listed: BTreeSet<String> = read_manifest(lake, &partition)
                .unwrap()
                .map(|m| {
                    m.files
                        .into_iter()
                        .map(|f| format!("{folder}/{}", f.name))
                        .collect()
                })
                .unwrap_or_default();
            for object in objects
                .iter()
                .filter(|o| o.key.rsplit_once('/').map(|(d, _)| d) == Some(folder.as_str()))
            {
                if !object.key.ends_with(SUCCESS) && !listed.contains(&object.key) {
                    strays.push(format!("{layer}/{}", object.key));
                }
            }
        }
    }
    strays
}

#[test]
fn reruns_are_idempotent_and_crashes_leave_a_complete_partition() {
    let dir = tempfile::tempdir().unwrap();
    let date = test_date();

    // Two runs of the same date give identical gold data and no stray file.
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
    assert_eq!(stray_files(&lake), Vec::<String>::new());
    let sales_before = read(&lake, Layer::Silver, "sales_master", date);
    let silver = PartitionRef::new(Layer::Silver, "sales_master", date);
    let manifest_before = read_manifest(&lake, &silver).unwrap().unwrap();

    // A crash after the new data files, before _SUCCESS: the old partition
    // stays visible and complete; the run fails naming the step.
    fault::inject(Some("before_commit@silver/sales_master"));
    let err = run(dir.path(), None, 3, date)
        .err()
        .expect("the injected fault must fail the run");
    let message = format!("{err:#}");
    assert!(
        message.contains("silver/sales_master") && message.contains("injected fault"),
        "{message}"
    );
    assert_eq!(
        read_manifest(&lake, &silver).unwrap().unwrap(),
        manifest_before
    );
    assert!(read(&lake, Layer::Silver, "sales_master", date).equals_missing(&sales_before));
    assert!(
        !stray_files(&lake).is_empty(),
        "the crashed write should have left unlisted files"
    );

    // A crash after _SUCCESS, before the old files are deleted: the new
    // partition is visible and complete.
    fault::inject(Some("before_cleanup@silver/sales_master"));
    let err = run(dir.path(), None, 3, date)
        .err()
        .expect("the injected fault must fail the run");
    assert!(format!("{err:#}").contains("before_cleanup"));
    let sales_scale_3 = read(&lake, Layer::Silver, "sales_master", date);
    assert!(sales_scale_3.height() > sales_before.height());
    let manifest_after = read_manifest(&lake, &silver).unwrap().unwrap();
    assert_eq!(manifest_after.row_count as usize, sales_scale_3.height());

    // Back to normal: a rerun completes and sweeps every leftover.
    fault::inject(None);
    run(dir.path(), None, 3, date).unwrap();
    assert_eq!(stray_files(&lake), Vec::<String>::new());
    // Same data as the run that crashed before cleanup (only the processing time differs).
    let rerun = read(&lake, Layer::Silver, "sales_master", date);
    assert!(
        rerun
            .drop("_processed_at")
            .unwrap()
            .equals_missing(&sales_scale_3.drop("_processed_at").unwrap())
    );
}
