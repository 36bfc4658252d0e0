//! Helpers shared by the workspace tests.

pub mod live_stack;
pub mod oracle;

use chrono::NaiveDate;
use lake_core::config::{LakeArgs, SourceArgs};
use lake_core::dag::RunOptions;
use lake_table::Lake;
use lake_tasks::pipeline::{PipelineOptions, PipelineRun, run_pipeline};

/// The run date the tests write.
pub fn test_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
}

/// Runs the whole batch pipeline into `lake_dir`.
pub fn run(
    lake_dir: &std::path::Path,
    pg: Option<String>,
    scale: u32,
    date: NaiveDate,
) -> anyhow::Result<PipelineRun> {
    let mut options = PipelineOptions::new(
        LakeArgs {
            lake: lake_core::config::LakeLocation {
                url: lake_dir.display().to_string(),
            },
            date: Some(date),
        },
        SourceArgs {
            pg,
            generator: lake_core::config::GeneratorArgs {
                scale,
                seed: lake_core::config::DEFAULT_GENERATOR_SEED,
            },
        },
    );
    options.run = RunOptions {
        progress: false,
        first_backoff: std::time::Duration::from_millis(10),
        ..RunOptions::default()
    };
    run_pipeline(&options)
}

/// A database of the test server holding a generated Northwind of `scale`.
pub fn seeded(scale: u32) -> lake_testkit::TestDb {
    let db = lake_testkit::pg_server().create_db("lake_seed");
    let url: lake_pg::url::PgUrl = db.url.parse().unwrap();
    lake_tasks::seed::seed(
        &url,
        scale,
        lake_core::config::DEFAULT_GENERATOR_SEED,
        false,
    )
    .unwrap();
    db
}

/// A plain client of a test database.
pub fn connect(db: &lake_testkit::TestDb) -> postgres::Client {
    postgres::Client::connect(&db.url, postgres::NoTls).unwrap()
}

/// Reads one date of a table, whole, at its latest version.
pub fn read(
    lake: &Lake,
    layer: lake_table::Layer,
    table: &str,
    date: NaiveDate,
) -> polars::prelude::DataFrame {
    let table = lake_table::TableRef::new(layer, table);
    lake_table::read_date(lake, &table, date)
        .unwrap()
        .unwrap_or_else(|| panic!("{table} holds no {date}"))
}

/// The latest snapshot of a table.
pub fn snapshot(lake: &Lake, layer: lake_table::Layer, table: &str) -> lake_table::Snapshot {
    let table = lake_table::TableRef::new(layer, table);
    lake_table::Table::open(lake, table.clone())
        .unwrap()
        .latest()
        .unwrap()
        .unwrap_or_else(|| panic!("{table} has no commit"))
}

/// Sum of a Float64 column.
pub fn sum_f64(df: &polars::prelude::DataFrame, column: &str) -> f64 {
    df.column(column)
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .flatten()
        .sum()
}

/// |a - b| within `rel` of the larger magnitude.
pub fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
}
