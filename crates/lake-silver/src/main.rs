//! `lake-silver`: builds silver/sales_master and its rejects from bronze.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::Parser;
use lake_core::config::{LakeArgs, init_tracing};
use lake_core::dag::{RunOptions, run_steps};
use lake_core::error::exit_code;
use lake_core::pins::RunPins;
use lake_core::run::new_run_id;

/// Build silver/sales_master/{date}/ and silver/_rejects/sales_master/{date}/
/// from the bronze tables' rows of that date (or of the latest date before it).
#[derive(Parser)]
#[command(name = "lake-silver", version)]
struct Cli {
    #[command(flatten)]
    lake: LakeArgs,
}

fn run(cli: Cli) -> Result<()> {
    let lake = cli.lake.open()?;
    let date = cli.lake.run_date();
    let run_id = new_run_id();
    // Bronze as it is now, whatever another run commits meanwhile.
    let pins = Arc::new(RunPins::new());
    pins.pin_latest(&lake, &lake_silver::input_tables())?;
    let steps = lake_silver::steps(&lake, date, &run_id, vec![], None, pins);
    run_steps(
        &lake,
        &run_id,
        date,
        "bronze",
        steps,
        &RunOptions::default(),
    )?
    .into_result()?;
    Ok(())
}

fn main() -> ExitCode {
    init_tracing();
    exit_code("lake-silver: error: ", run(Cli::parse()))
}
