//! Gold: the business figures computed from silver/sales_master (data
//! contract, section 5). One module per table, each a pure function from
//! lazy frames to a lazy frame; [`build_metric`] is the edge that reads
//! silver, runs one and commits its date. [`SalesHandOver`] receives the
//! lines silver hands over and computes the figures the steps share.

mod aggregate;
pub mod customer_totals;
pub mod figures;
mod hand_over;
pub mod kpi_summary;
pub mod revenue_by_country;
pub mod rfm;
pub mod rfm_segments;
pub mod sales_by_category;
pub mod sliced;
pub mod unified_sales_by_country;

#[cfg(test)]
mod fixtures;

use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use lake_core::dag::{Step, StepOutput};
use lake_core::input::{Columns, read_input};
use lake_table::schema::Expect;
use lake_table::{DateWriter, Lake, Layer, TableRef};

pub use hand_over::{LINES_PER_SLICE, SALES_COLUMNS, SalesFigures, SalesHandOver};

/// The gold tables built from sales_master, in build order.
pub const METRICS: [&str; 5] = [
    "kpi_summary",
    "revenue_by_country",
    "sales_by_category",
    "rfm",
    "rfm_segments",
];

/// The gold table of `metric`.
pub fn table_ref(metric: &str) -> TableRef {
    TableRef::new(Layer::Gold, metric)
}

/// Name of the DAG step building `metric`.
pub fn step_name(metric: &str) -> String {
    format!("gold/{metric}")
}

/// Builds one gold table and commits its date. `rfm_segments` reads the
/// committed `gold/rfm` of the same date; the others read silver.
pub fn build_metric(
    lake: &Lake,
    metric: &str,
    date: NaiveDate,
    run_id: &str,
    sales: &SalesHandOver,
) -> Result<StepOutput> {
    let (input, mut df) = match metric {
        "rfm_segments" => {
            let rfm = read_input(
                lake,
                sales.pins(),
                table_ref("rfm"),
                date,
                &[
                    ("segment", Expect::Text),
                    ("monetary", Expect::Number),
                    ("recency_days", Expect::Integer),
                    ("frequency", Expect::Integer),
                ],
                Columns::Needed,
            )?;
            let read = rfm.read();
            let df = rfm_segments::rfm_segments(rfm.frame)
                .collect()
                .map_err(anyhow::Error::from)
                .with_context(|| format!("computing gold/{metric}"))?;
            ((read, rfm.rows), df)
        }
        _ => {
            let figures = sales.get()?;
            ((figures.read.clone(), figures.rows), figures.frame(metric)?)
        }
    };
    let mut writer = DateWriter::new(lake, table_ref(metric), date, run_id)?;
    writer.write_frame(&mut df)?;
    let commit = writer.replace()?;
    sales.pins().record(&commit);
    Ok(StepOutput {
        reads: vec![input.0],
        writes: vec![(&commit).into()],
        rows_in: input.1,
        rows_out: commit.rows,
        ..Default::default()
    })
}

/// The gold steps of the DAG, after `silver_step` when given, sharing
/// `sales` (given to that silver step as its tap, when one runs).
pub fn steps(
    lake: &Lake,
    date: NaiveDate,
    run_id: &str,
    silver_step: Option<String>,
    sales: Arc<SalesHandOver>,
) -> Vec<Step> {
    METRICS
        .iter()
        .map(|metric| {
            let depends_on = match *metric {
                "rfm_segments" => vec![step_name("rfm")],
                _ => silver_step.iter().cloned().collect(),
            };
            let lake = lake.clone();
            let run_id = run_id.to_string();
            let sales = sales.clone();
            Step::new(step_name(metric), depends_on, move |ctx| {
                let output = build_metric(&lake, metric, date, &run_id, &sales)?;
                ctx.rows(output.rows_out);
                Ok(output)
            })
        })
        .collect()
}
