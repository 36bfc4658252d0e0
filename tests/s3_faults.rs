//! The S3 server stopped in the middle of a run: retries, then a clear
//! error naming the bucket and key; every table's latest version lists only
//! files that exist; a rerun once the server is back gives the same gold
//! figures.

use std::time::{Duration, Instant};

use lake_core::config::{DEFAULT_GENERATOR_SEED, LakeArgs, SourceArgs};
use lake_gold::figures::GoldFigures;
use lake_table::{Lake, Layer, Table, TableRef};
use lake_tasks::pipeline::{PipelineOptions, run_pipeline};
use lake_testkit::own_s3_server;
use lake_tests::test_date;

fn options(lake: &str) -> PipelineOptions {
    let mut options = PipelineOptions::new(
        LakeArgs {
            lake: lake_core::config::LakeLocation { url: lake.into() },
            date: Some(test_date()),
        },
        SourceArgs {
            pg: None,
            generator: lake_core::config::GeneratorArgs {
                scale: 40,
                seed: DEFAULT_GENERATOR_SEED,
            },
        },
    );
    options.run.progress = false;
    options.run.first_backoff = Duration::from_millis(100);
    options
}

/// Every table's latest version lists only files that exist, with their size.
fn assert_complete(lake: &Lake) {
    for layer in [Layer::Bronze, Layer::Silver, Layer::Gold] {
        for table in lake_table::tables(lake, layer).unwrap() {
            let Some(snapshot) = Table::open(lake, TableRef::new(layer, &table))
                .unwrap()
                .latest()
                .unwrap()
            else {
                continue;
            };
            for file in snapshot.files() {
                let key = format!("{table}/{}", file.path);
                let object = lake.head(layer, &key).unwrap();
                assert_eq!(object.map(|o| o.size), Some(file.bytes), "{layer}/{key}");
            }
        }
    }
}

/// The latest version of each bronze table.
fn bronze_versions(lake: &Lake) -> Vec<Option<i64>> {
    lake_bronze::TABLES
        .iter()
        .map(|table| {
            Table::open(lake, TableRef::new(Layer::Bronze, *table))
                .ok()?
                .latest()
                .ok()?
                .map(|s| s.version())
        })
        .collect()
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
    let before = bronze_versions(&first.lake);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = bronze_versions(&first.lake);
        if now.iter().zip(&before).any(|(now, before)| now > before) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second run committed no bronze table within 60 s"
        );
        assert!(
            !run.is_finished(),
            "the second run ended before the server was stopped"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The kill lands mid-run: silver and gold are not written yet.
    let silver_before = Table::open(&first.lake, TableRef::new(Layer::Silver, "sales_master"))
        .unwrap()
        .latest()
        .unwrap()
        .map(|s| s.version());
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
    // The failed step is the error, not the run manifest's write (which
    // fails too while the server is down, and is only warned about).
    assert!(err.starts_with("step "), "{err}");
    // It names the bucket and key: as s3://... for the lake's own calls,
    // in the endpoint's URL for delta-rs'.
    assert!(
        err.contains("lake-tests/faults-"),
        "the error names the bucket and key: {err}"
    );
    assert!(!err.contains(&server.secret_key), "{err}");
    // The run stopped before it could commit silver.
    server.start().unwrap();
    // SeaweedFS answers some reads with 500 "please try again" for a moment
    // after a restart, past the client's retries: poll for the first read.
    let deadline = Instant::now() + Duration::from_secs(60);
    let silver_after = loop {
        match Table::open(&first.lake, TableRef::new(Layer::Silver, "sales_master"))
            .unwrap()
            .latest()
        {
            Ok(snapshot) => break snapshot.map(|s| s.version()),
            Err(err) if Instant::now() < deadline => {
                eprintln!("the restarted server is not serving reads yet: {err:#}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(err) => panic!("the restarted server never served silver's log: {err:#}"),
        }
    };
    assert_eq!(
        silver_after, silver_before,
        "silver was committed: the server stopped too late to test a failure mid-run"
    );

    // Back up: what was committed is complete, and a rerun recovers.
    let lake = Lake::open(&url).unwrap();
    assert_complete(&lake);
    let rerun = run_pipeline(&options(&url)).unwrap();
    assert_eq!(
        GoldFigures::read(&rerun.lake, test_date()).unwrap(),
        figures
    );
    assert_complete(&rerun.lake);
}
