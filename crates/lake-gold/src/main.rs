//! `lake-gold`: builds the gold tables from silver/sales_master.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use chrono::NaiveDate;
use clap::Parser;
use lake_core::config::{LakeArgs, init_tracing, parse_date};
use lake_core::dag::{RunOptions, run_steps};
use lake_core::error::exit_code;
use lake_core::run::new_run_id;

/// Build gold/{kpi_summary,revenue_by_country,sales_by_category,rfm,rfm_segments}/{date}/
/// from silver/sales_master of that date (or the latest before it).
#[derive(Parser)]
#[command(name = "lake-gold", version)]
struct Cli {
    #[command(flatten)]
    lake: LakeArgs,
    /// Reference date of RFM recency (default: the day after the latest order).
    #[arg(long, env = "LAKE_RFM_AS_OF", value_parser = parse_date, value_name = "YYYY-MM-DD")]
    as_of: Option<NaiveDate>,
}

fn run(cli: Cli) -> Result<()> {
    let lake = cli.lake.open()?;
    let date = cli.lake.run_date();
    let run_id = new_run_id();
    // Silver as it is now, whatever another run commits meanwhile.
    let pins = Arc::new(lake_core::pins::RunPins::new());
    pins.pin_latest(&lake, &[lake_silver::sales_master_table()])?;
    let sales = Arc::new(lake_gold::SalesHandOver::new(&lake, pins, date, cli.as_of));
    let steps = lake_gold::steps(&lake, date, &run_id, None, sales);
    run_steps(
        &lake,
        &run_id,
        date,
        "silver",
        steps,
        &RunOptions::default(),
    )?
    .into_result()?;
    Ok(())
}

fn main() -> ExitCode {
    init_tracing();
    exit_code("lake-gold: error: ", run(Cli::parse()))
}
