//! Two runs on one lake and date, from different sources, never mix: each
//! step reads the versions its own run wrote (or pinned at its start), so
//! each run's gold figures are those of its own source alone.

use std::sync::Arc;

use lake_core::config::{LakeArgs, SourceArgs};
use lake_core::dag::{RunOptions, run_steps};
use lake_core::pins::RunPins;
use lake_core::run::RunManifest;
use lake_table::{At, Lake, Layer, Table, TableRef};
use lake_tasks::pipeline::{PipelineOptions, run_pipeline};
use lake_tests::test_date;
use polars::prelude::*;

/// Two generated sources that differ in every table.
fn source(which: char) -> SourceArgs {
    match which {
        'a' => SourceArgs {
            pg: None,
            generator: lake_core::config::GeneratorArgs { scale: 2, seed: 11 },
        },
        _ => SourceArgs {
            pg: None,
            generator: lake_core::config::GeneratorArgs { scale: 3, seed: 22 },
        },
    }
}

fn options(lake: &std::path::Path, which: char) -> PipelineOptions {
    let mut options = PipelineOptions::new(
        LakeArgs {
            lake: lake_core::config::LakeLocation {
                url: lake.display().to_string(),
            },
            date: Some(test_date()),
        },
        source(which),
    );
    options.run = quiet();
    options
}

fn quiet() -> RunOptions {
    RunOptions {
        progress: false,
        ..RunOptions::default()
    }
}

/// A gold table as the run that wrote it left it (at the version its
/// manifest records), sorted so that two frames compare row by row.
fn gold_of(lake: &Lake, manifest: &RunManifest, metric: &str) -> DataFrame {
    let name = format!("gold/{metric}");
    let written = manifest
        .written(&name)
        .unwrap_or_else(|| panic!("{name} not written by {}", manifest.run_id));
    let table = Table::open(lake, TableRef::new(Layer::Gold, metric)).unwrap();
    let frame = table
        .at(At::Version(written.version))
        .unwrap()
        .scan(test_date())
        .unwrap()
        .collect()
        .unwrap();
    let first = frame.get_column_names()[0].clone();
    frame.sort([first], SortMultipleOptions::default()).unwrap()
}

/// Every table a step of `manifest` read was written by the same run.
fn assert_reads_its_own_writes(manifest: &RunManifest) {
    let mut checked = 0;
    for step in &manifest.steps {
        for read in &step.reads {
            let written = manifest.written(&read.table).unwrap_or_else(|| {
                panic!(
                    "{} read {} but the run did not write it",
                    step.name, read.table
                )
            });
            assert_eq!(
                read.version, written.version,
                "{} of run {} read {}@v{} while the run wrote v{}",
                step.name, manifest.run_id, read.table, read.version, written.version
            );
            checked += 1;
        }
    }
    // silver's five bronze tables, gold's four reads of silver, rfm_segments' of rfm.
    assert_eq!(checked, 10, "reads checked in run {}", manifest.run_id);
}

/// The figures each source gives alone, each on a lake of its own.
fn solo_figures(which: char) -> Vec<DataFrame> {
    let dir = tempfile::tempdir().unwrap();
    let run = run_pipeline(&options(dir.path(), which)).unwrap();
    lake_gold::METRICS
        .iter()
        .map(|metric| gold_of(&run.lake, &run.manifest, metric))
        .collect()
}

fn assert_figures(lake: &Lake, manifest: &RunManifest, expected: &[DataFrame], which: char) {
    for (metric, expected) in lake_gold::METRICS.iter().zip(expected) {
        let got = gold_of(lake, manifest, metric);
        assert!(
            got.equals_missing(expected),
            "gold/{metric} of run {which} differs from its source's figures alone:\n{got}\n{expected}"
        );
    }
}

#[test]
fn a_run_reads_what_it_wrote_when_another_run_replaces_the_date_in_between() {
    let (solo_a, solo_b) = (solo_figures('a'), solo_figures('b'));
    assert!(
        !solo_a[0].equals_missing(&solo_b[0]),
        "the two sources must give different KPIs, or the test proves nothing"
    );
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&dir.path().display().to_string()).unwrap();
    let date = test_date();

    // Run A copies its bronze tables...
    let pins = Arc::new(RunPins::new());
    let run_a = lake_core::run::new_run_id();
    let bronze_source = Arc::new(lake_bronze::BatchSource::from_args(&source('a')).unwrap());
    let tables = lake_bronze::TABLES.map(String::from);
    let bronze_a = run_steps(
        &lake,
        &run_a,
        date,
        "a",
        lake_bronze::steps(&lake, bronze_source, date, &run_a, &tables, pins.clone()),
        &quiet(),
    )
    .unwrap()
    .into_result()
    .unwrap();
    // ...then run B replaces the whole date, bronze to gold...
    let b = run_pipeline(&options(dir.path(), 'b')).unwrap();
    let orders = TableRef::new(Layer::Bronze, "orders").to_string();
    assert!(
        b.manifest.written(&orders).unwrap().version > bronze_a.written(&orders).unwrap().version,
        "B replaced A's bronze before A's silver ran"
    );
    // ...and only then do A's silver and gold run.
    let sales = Arc::new(lake_gold::SalesHandOver::new(
        &lake,
        pins.clone(),
        date,
        None,
    ));
    let mut steps = lake_silver::steps(&lake, date, &run_a, vec![], Some(sales.clone()), pins);
    steps.extend(lake_gold::steps(
        &lake,
        date,
        &run_a,
        Some(lake_silver::STEP.to_string()),
        sales,
    ));
    let later_a = run_steps(&lake, &run_a, date, "a", steps, &quiet())
        .unwrap()
        .into_result()
        .unwrap();

    let silver = later_a.step(lake_silver::STEP).unwrap();
    assert_eq!(silver.reads.len(), 5);
    for read in &silver.reads {
        assert_eq!(
            read.version,
            bronze_a.written(&read.table).unwrap().version,
            "A's silver read {} at the version A copied, not B's",
            read.table
        );
    }
    assert_figures(&lake, &later_a, &solo_a, 'a');
    assert_figures(&lake, &b.manifest, &solo_b, 'b');
}

#[test]
fn two_pipelines_at_once_each_publish_their_own_figures() {
    let (solo_a, solo_b) = (solo_figures('a'), solo_figures('b'));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    // Several rounds: the two runs' steps interleave differently each time.
    for round in 0..3 {
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| run_pipeline(&options(&path, 'a')));
            let b = scope.spawn(|| run_pipeline(&options(&path, 'b')));
            (a.join().unwrap(), b.join().unwrap())
        });
        let (a, b) = (
            a.unwrap_or_else(|err| panic!("round {round}, run a: {err:#}")),
            b.unwrap_or_else(|err| panic!("round {round}, run b: {err:#}")),
        );
        assert_reads_its_own_writes(&a.manifest);
        assert_reads_its_own_writes(&b.manifest);
        assert_figures(&a.lake, &a.manifest, &solo_a, 'a');
        assert_figures(&b.lake, &b.manifest, &solo_b, 'b');
    }
}
