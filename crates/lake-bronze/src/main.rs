//! `lake-bronze`: copies the Northwind tables into the bronze layer.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::Parser;
use lake_core::config::{LakeArgs, SourceArgs, init_tracing};
use lake_core::dag::{RunOptions, run_steps};
use lake_core::error::exit_code;
use lake_core::run::new_run_id;

/// Copy the six Northwind tables from PostgreSQL (or the built-in generator)
/// into bronze/{table}/{date}/.
#[derive(Parser)]
#[command(name = "lake-bronze", version)]
struct Cli {
    #[command(flatten)]
    lake: LakeArgs,
    #[command(flatten)]
    source: SourceArgs,
    /// Tables to copy (default: all six).
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
}

fn run(cli: Cli) -> Result<()> {
    let lake = cli.lake.open()?;
    let date = cli.lake.run_date();
    let tables = if cli.tables.is_empty() {
        lake_bronze::TABLES.iter().map(|t| t.to_string()).collect()
    } else {
        cli.tables
    };
    lake_bronze::check_tables(&tables)?;
    let source = Arc::new(lake_bronze::BatchSource::from_args(&cli.source)?);
    let run_id = new_run_id();
    let pins = Arc::new(lake_core::pins::RunPins::new());
    let steps = lake_bronze::steps(&lake, source.clone(), date, &run_id, &tables, pins);
    run_steps(
        &lake,
        &run_id,
        date,
        &source.describe(),
        steps,
        &RunOptions::default(),
    )?
    .into_result()?;
    Ok(())
}

fn main() -> ExitCode {
    init_tracing();
    exit_code("lake-bronze: error: ", run(Cli::parse()))
}
