//! Bronze: exact copies of the six Northwind tables (data contract,
//! section 3), each row kept with its source types plus
//! `_ingestion_timestamp` and `_source`.
//!
//! Two sources give the same tables: a PostgreSQL database, streamed with
//! `COPY ... TO STDOUT (FORMAT binary)` in bounded batches, and the built-in
//! Northwind generator, so the lake runs with no service at all.

pub mod metadata;
pub mod source;

use std::sync::Arc;

use anyhow::Result;
use chrono::NaiveDate;
use lake_core::dag::{Step, StepOutput};
use lake_table::{Lake, Layer, TableRef};

pub use source::BatchSource;

/// The tables bronze copies, in the order they are ingested.
pub const TABLES: [&str; 6] = lake_northwind::TABLES;

/// Name of the bronze step ingesting `table`.
pub fn step_name(table: &str) -> String {
    format!("bronze/{table}")
}

/// The bronze table copying `table`.
pub fn table_ref(table: &str) -> TableRef {
    TableRef::new(Layer::Bronze, table)
}

/// One DAG step per table.
pub fn steps(
    lake: &Lake,
    source: Arc<BatchSource>,
    date: NaiveDate,
    run_id: &str,
    tables: &[String],
) -> Vec<Step> {
    tables
        .iter()
        .map(|table| {
            let lake = lake.clone();
            let source = source.clone();
            let table = table.clone();
            let run_id = run_id.to_string();
            Step::new(step_name(&table), vec![], move |ctx| {
                let report = source.ingest(&lake, &table, date, &run_id, &|rows| ctx.rows(rows))?;
                Ok(StepOutput {
                    sources: vec![report.source],
                    writes: vec![(&report.commit).into()],
                    rows_in: report.rows,
                    rows_out: report.rows,
                    ..Default::default()
                })
            })
        })
        .collect()
}

/// Checks a list of table names against [`TABLES`].
pub fn check_tables(tables: &[String]) -> Result<()> {
    for table in tables {
        if !TABLES.contains(&table.as_str()) {
            anyhow::bail!(
                "unknown table {table:?} (bronze copies {})",
                TABLES.join(", ")
            );
        }
    }
    Ok(())
}
