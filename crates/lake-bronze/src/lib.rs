//! Bronze: exact copies of the six Northwind tables (data contract,
//! section 3), each row kept with its source types plus
//! `_ingestion_timestamp`, `_source` and `_source_row`.
//!
//! Two sources give the same tables: a PostgreSQL database, streamed with
//! `COPY ... TO STDOUT (FORMAT binary)` in bounded batches, and the built-in
//! Northwind generator, so the lake runs with no service at all.
//!
//! A run's copies become visible together: each table is copied into data
//! files first, and one step commits them all once every copy read its
//! source to the end, so a failed read (the database gone mid-COPY, a
//! table missing) leaves every bronze table as it was.

pub mod metadata;
pub mod source;
pub mod tables;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use chrono::NaiveDate;
use lake_core::dag::{Step, StepOutput};
use lake_core::pins::RunPins;
use lake_table::Lake;

pub use source::{BatchSource, StagedCopy};
pub use tables::{COMMIT_STEP, TABLES, check_tables, step_name, table_ref};

/// The copies of a run waiting for their commit.
#[derive(Default)]
pub struct Copies {
    staged: Mutex<BTreeMap<String, StagedCopy>>,
}

impl Copies {
    fn stage(&self, table: &str, copy: StagedCopy) {
        // A retried copy takes the place of its failed attempt's.
        self.lock().insert(table.to_string(), copy);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StagedCopy>> {
        self.staged
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Commits the staged copies of `tables`, in that order, all or none
    /// (see [`lake_table::replace_all`]), and records the versions in
    /// `pins` for the run's later steps.
    fn commit(&self, tables: &[String], pins: &RunPins) -> Result<StepOutput> {
        let staged = self.lock();
        let mut writers = Vec::new();
        let mut rows = 0;
        for table in tables {
            let copy = staged.get(table).ok_or_else(|| {
                anyhow::anyhow!("{}: no complete copy to commit", step_name(table))
            })?;
            rows += copy.rows;
            // Cloned, not taken: an attempt that fails transiently (its
            // commits undone) leaves the copies for the runner's retry.
            writers.push(copy.writer.clone());
        }
        drop(staged);
        let commits = lake_table::replace_all(writers)?;
        for commit in &commits {
            pins.record(commit);
        }
        Ok(StepOutput {
            writes: commits.iter().map(Into::into).collect(),
            rows_in: rows,
            rows_out: rows,
            ..Default::default()
        })
    }
}

/// One DAG step per table, each copying it into data files that no
/// version references yet, then [`COMMIT_STEP`], after all of them, which
/// commits the copies together: a copy that fails (the server gone
/// mid-COPY, a table missing at the source) leaves every bronze table as
/// it was. The versions committed go to `pins`.
pub fn steps(
    lake: &Lake,
    source: Arc<BatchSource>,
    date: NaiveDate,
    run_id: &str,
    tables: &[String],
    pins: Arc<RunPins>,
) -> Vec<Step> {
    let copies = Arc::new(Copies::default());
    let mut steps: Vec<Step> = tables
        .iter()
        .map(|table| {
            let lake = lake.clone();
            let source = source.clone();
            let copies = copies.clone();
            let table = table.clone();
            let run_id = run_id.to_string();
            Step::new(step_name(&table), vec![], move |ctx| {
                let copy = source.copy(&lake, &table, date, &run_id, &|rows| ctx.rows(rows))?;
                let output = StepOutput {
                    sources: vec![copy.source.clone()],
                    rows_in: copy.rows,
                    rows_out: copy.rows,
                    ..Default::default()
                };
                copies.stage(&table, copy);
                Ok(output)
            })
        })
        .collect();
    let tables = tables.to_vec();
    steps.push(Step::new(
        COMMIT_STEP,
        tables.iter().map(|t| step_name(t)).collect(),
        move |_ctx| copies.commit(&tables, &pins),
    ));
    steps
}
