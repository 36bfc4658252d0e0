//! `cargo xtask pipeline`: bronze -> silver -> gold as one DAG, then a
//! summary of what the run produced.

use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use lake_core::config::{LakeArgs, SourceArgs};
use lake_core::dag::{RunOptions, run_steps};
use lake_core::pins::RunPins;
use lake_core::run::{RunManifest, new_run_id};
use lake_silver::tap::SalesTap;
use lake_stream::step::StreamSource;
use lake_table::Lake;

/// A layer of the batch pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    Bronze,
    Silver,
    Gold,
}

/// Options of one pipeline run.
pub struct PipelineOptions {
    pub lake: LakeArgs,
    pub source: SourceArgs,
    pub rfm_as_of: Option<NaiveDate>,
    pub run: RunOptions,
    /// Layers to run (all three for the pipeline); a layer left out is read
    /// from what the lake already holds.
    pub stages: Vec<Stage>,
    /// Bronze tables to copy (all six when empty).
    pub tables: Vec<String>,
    /// The stream stage's source; no stream stage when `None`.
    pub stream: Option<StreamSource>,
}

impl PipelineOptions {
    /// The whole pipeline with default run options.
    pub fn new(lake: LakeArgs, source: SourceArgs) -> PipelineOptions {
        PipelineOptions {
            lake,
            source,
            rfm_as_of: None,
            run: RunOptions::default(),
            stages: vec![Stage::Bronze, Stage::Silver, Stage::Gold],
            tables: Vec::new(),
            stream: None,
        }
    }
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
    let runs = |stage| options.stages.contains(&stage);
    // Each step reads what this run wrote, and a table this run reads
    // without writing it as it was when the run started: another run
    // committing to the same date meanwhile never mixes into this one.
    let pins = Arc::new(RunPins::new());
    let mut steps = Vec::new();
    let mut source_name = "lake".to_string();
    let mut copied: Vec<String> = Vec::new();
    if runs(Stage::Bronze) {
        let source = Arc::new(lake_bronze::BatchSource::from_args(&options.source)?);
        source_name = source.describe();
        copied = if options.tables.is_empty() {
            lake_bronze::TABLES.iter().map(|t| t.to_string()).collect()
        } else {
            lake_bronze::check_tables(&options.tables)?;
            options.tables.clone()
        };
        steps.extend(lake_bronze::steps(
            &lake,
            source,
            date,
            &run_id,
            &copied,
            pins.clone(),
        ));
    }
    // Gold's figures of silver's lines, which a silver step of this run
    // hands over as it writes them (gold then does not read them back).
    let sales = Arc::new(lake_gold::SalesHandOver::new(
        &lake,
        pins.clone(),
        date,
        options.rfm_as_of,
    ));
    if runs(Stage::Silver) {
        let not_copied: Vec<_> = lake_silver::INPUT_TABLES
            .iter()
            .filter(|t| !copied.iter().any(|c| c == *t))
            .map(|t| lake_bronze::table_ref(t))
            .collect();
        pins.pin_latest(&lake, &not_copied)?;
        // Silver waits for the commit of this run's copies, when it made some.
        let silver_inputs = steps
            .iter()
            .map(|s| s.name.clone())
            .filter(|name| name == lake_bronze::COMMIT_STEP)
            .collect();
        let tap: Option<Arc<dyn SalesTap>> = runs(Stage::Gold).then(|| sales.clone() as _);
        steps.extend(lake_silver::steps(
            &lake,
            date,
            &run_id,
            silver_inputs,
            tap,
            pins.clone(),
        ));
    } else if runs(Stage::Gold) {
        pins.pin_latest(&lake, &[lake_silver::sales_master_table()])?;
    }
    if runs(Stage::Gold) {
        let silver_step = runs(Stage::Silver).then(|| lake_silver::STEP.to_string());
        steps.extend(lake_gold::steps(&lake, date, &run_id, silver_step, sales));
    }
    if let Some(source) = &options.stream {
        // After gold: the stream stage's summary joins live and batch figures.
        let after: Vec<String> = steps
            .iter()
            .map(|s| s.name.clone())
            .filter(|n| n.starts_with("gold/"))
            .collect();
        steps.push(lake_stream::step::pipeline_step(
            &lake,
            date,
            &run_id,
            source.clone(),
            after,
        ));
    }
    let manifest = run_steps(&lake, &run_id, date, &source_name, steps, &options.run)
        .context("running the pipeline")?
        .into_result()?;
    Ok(PipelineRun {
        lake,
        date,
        manifest,
    })
}
