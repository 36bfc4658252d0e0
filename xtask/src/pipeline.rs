//! `cargo xtask pipeline`: bronze -> silver -> gold as one DAG, then a
//! summary of what the run produced.

use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use lake_core::Lake;
use lake_core::config::{LakeArgs, SourceArgs};
use lake_core::dag::{RunOptions, run_steps};
use lake_core::run::{RunManifest, new_run_id};

/// Options of one pipeline run.
pub struct PipelineOptions {
    pub lake: LakeArgs,
    pub source: SourceArgs,
    pub rfm_as_of: Option<NaiveDate>,
    pub run: RunOptions,
}

/// What a successful run leaves behind.
pub struct PipelineRun {
    pub lake: Lake,
    pub date: NaiveDate,
    pub manifest: RunManifest,
}

/// Runs every batch step for the configured date; fails naming the first
/// failed step (its manifest is saved under `_runs/` either way).
pub fn run_pipeline(options: &PipelineOptions) -> Result<PipelineRun> {
    let lake = options.lake.open()?;
    let date = options.lake.run_date();
    let run_id = new_run_id();
    let source = Arc::new(lake_bronze::BatchSource::from_args(&options.source)?);
    let tables: Vec<String> = lake_bronze::TABLES.iter().map(|t| t.to_string()).collect();

    let mut steps = lake_bronze::steps(&lake, source.clone(), date, &run_id, &tables);
    let silver_inputs = lake_silver::INPUT_TABLES
        .iter()
        .map(|t| lake_bronze::step_name(t))
        .collect();
    steps.extend(lake_silver::steps(&lake, date, &run_id, silver_inputs));
    steps.extend(lake_gold::steps(
        &lake,
        date,
        &run_id,
        options.rfm_as_of,
        Some(lake_silver::STEP.to_string()),
    ));
    let manifest = run_steps(
        &lake,
        &run_id,
        date,
        &source.describe(),
        steps,
        &options.run,
    )
    .context("running the pipeline")?
    .into_result()?;
    Ok(PipelineRun {
        lake,
        date,
        manifest,
    })
}
