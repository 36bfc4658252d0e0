//! The S3 server stopped in the middle of a run: retries, then a clear
//! error naming the bucket and key; the committed partitions stay complete;
//! a rerun once the server is back gives the same gold figures.

use std::time::{Duration, Instant};

use lake_core::config::{DEFAULT_GENERATOR_SEED, LakeArgs, SourceArgs};
use lake_core::partition::{committed_dates, read_manifest};
use lake_core::{Lake, Layer, PartitionRef};
use lake_gold::figures::GoldFigures;
use lake_testkit::own_s3_server;
use lake_tests::test_date;
use xtask::pipeline::{PipelineOptions, run_pipeline};

fn options(lake: &str) -> PipelineOptions {
    let mut options = PipelineOptions::new(
        LakeArgs {
            lake: lake.into(),
            date: Some(test_date()),
        },
        SourceArgs {
            pg: None,
            scale: 40,
            seed: DEFAULT_GENERATOR_SEED,
        },
    );
    options.run.progress = false;
    options.run.first_backoff = Duration::from_millis(100);
    options
}

/// Every committed partition lists only files that exist.
fn assert_complete(lake: &Lake) {
    for layer in [Layer::Bronze, Layer::Silver, Layer::Gold] {
        for table in lake.list_dirs(layer, "").unwrap() {
            let tables = if table == "_rejects" {
                vec!["_rejects/sales_master".to_string()]
            } else {
                vec![table]
            };
            for table in tables {
                for date in committed_dates(lake, layer, &table).unwrap() {
                    let partition = PartitionRef::new(layer, &table, date);
                    let manifest = read_manifest(lake, &partition).unwrap().unwrap();
                    for file in &manifest.files {
                        let key = format!("{}/{}", partition.dir(), file.name);
                        let object = lake.head(layer, &key).unwrap();
                        assert_eq!(object.map(|o| o.size), Some(file.bytes), "{layer}/{key}");
                    }
                }
            }
        }
    }
}

#[test]
fn a_stopped_server_fails_the_run_cleanly_and_a_rerun_recovers() {
    let mut server = own_s3_server();
    // SAFETY: the only test of this binary sets the variables before any
    // other thread of its own reads the environment.
    for (name, value) in server.env() {
        unsafe { std::env::set_var(name, value) };
    }
    unsafe { std::env::set_var("LAKE_S3_RETRY_TIMEOUT", "4") };
    let url = server.lake_url("faults");

    let first = run_pipeline(&options(&url)).unwrap();
    let figures = GoldFigures::read(&first.lake, test_date()).unwrap();

    // Stop the server while a second run writes: as soon as it has
    // committed its first bronze table, with silver and gold still to come.
    let url_for_run = url.clone();
    let run = std::thread::spawn(move || run_pipeline(&options(&url_for_run)));
    let first_run = first.manifest.run_id.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    'watch: while Instant::now() < deadline {
        for table in lake_bronze::TABLES {
            let partition = PartitionRef::new(Layer::Bronze, table, test_date());
            if let Ok(Some(manifest)) = read_manifest(&first.lake, &partition)
                && manifest.run_id != first_run
            {
                break 'watch;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    server.stop();
    let started = Instant::now();
    let result = run.join().unwrap();
    let err = format!(
        "{:#}",
        result
            .err()
            .expect("the run must fail while the server is down")
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the failure took too long"
    );
    assert!(
        err.contains("s3://lake-tests/faults-"),
        "the error names the bucket and key: {err}"
    );
    assert!(!err.contains(&server.secret_key), "{err}");

    // Back up: what was committed is complete, and a rerun recovers.
    server.start().unwrap();
    let lake = Lake::open(&url).unwrap();
    assert_complete(&lake);
    let rerun = run_pipeline(&options(&url)).unwrap();
    assert_eq!(
        GoldFigures::read(&rerun.lake, test_date()).unwrap(),
        figures
    );
    assert_complete(&rerun.lake);
}
