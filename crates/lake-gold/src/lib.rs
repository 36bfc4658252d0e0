//! Gold: the business figures computed from silver/sales_master (data
//! contract, section 5). One module per table, each a pure function from
//! lazy frames to a lazy frame; [`build_metric`] is the edge that reads
//! silver, runs one and commits its partition.

mod aggregate;
pub mod figures;
pub mod kpi_summary;
pub mod revenue_by_country;
pub mod rfm;
pub mod rfm_segments;
pub mod sales_by_category;
pub mod unified_sales_by_country;

#[cfg(test)]
mod fixtures;

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use chrono::NaiveDate;
use lake_core::dag::{Step, StepOutput};
use lake_core::input::{Columns, Input, read_input};
use lake_core::schema::Expect;
use lake_core::{Lake, Layer, PartitionRef, PartitionWriter};
use polars::prelude::*;

/// The gold tables built from sales_master, in build order.
pub const METRICS: [&str; 5] = [
    "kpi_summary",
    "revenue_by_country",
    "sales_by_category",
    "rfm",
    "rfm_segments",
];

/// Columns gold reads from silver/sales_master.
pub const SALES_COLUMNS: &[(&str, Expect)] = &[
    ("order_id", Expect::Integer),
    ("customer_id", Expect::Text),
    ("order_date", Expect::Date),
    ("category_id", Expect::Integer),
    ("category_name", Expect::Text),
    ("company_name", Expect::Text),
    ("country", Expect::Text),
    ("country_code", Expect::Text),
    ("quantity", Expect::Integer),
    ("line_total", Expect::Number),
];

/// The gold partition of `metric` for `date`.
pub fn partition(metric: &str, date: NaiveDate) -> PartitionRef {
    PartitionRef::new(Layer::Gold, metric, date)
}

/// Name of the DAG step building `metric`.
pub fn step_name(metric: &str) -> String {
    format!("gold/{metric}")
}

/// silver/sales_master, read once and shared by the gold steps of a run.
pub struct SalesCache {
    lake: Lake,
    date: NaiveDate,
    loaded: Mutex<Option<Arc<Input>>>,
}

impl SalesCache {
    pub fn new(lake: &Lake, date: NaiveDate) -> Self {
        SalesCache {
            lake: lake.clone(),
            date,
            loaded: Mutex::new(None),
        }
    }

    pub fn get(&self) -> Result<Arc<Input>> {
        let mut loaded = self
            .loaded
            .lock()
            .map_err(|_| anyhow!("sales cache poisoned"))?;
        if let Some(input) = loaded.as_ref() {
            return Ok(input.clone());
        }
        let input = Arc::new(read_input(
            &self.lake,
            Layer::Silver,
            lake_silver::SALES_MASTER,
            self.date,
            SALES_COLUMNS,
            Columns::Needed,
        )?);
        *loaded = Some(input.clone());
        Ok(input)
    }
}

/// Builds one gold table and commits it. `rfm_segments` reads the
/// committed `gold/rfm` of the same date; the others read silver.
pub fn build_metric(
    lake: &Lake,
    metric: &str,
    date: NaiveDate,
    run_id: &str,
    sales: &SalesCache,
    as_of: Option<NaiveDate>,
) -> Result<StepOutput> {
    let (input, plan) = match metric {
        "rfm_segments" => {
            let rfm = read_input(
                lake,
                Layer::Gold,
                "rfm",
                date,
                &[
                    ("segment", Expect::Text),
                    ("monetary", Expect::Number),
                    ("recency_days", Expect::Integer),
                    ("frequency", Expect::Integer),
                ],
                Columns::Needed,
            )?;
            let rows = rfm.frame.height() as u64;
            let plan = rfm_segments::rfm_segments(rfm.frame.lazy());
            ((rfm.partition.to_string(), rows), plan)
        }
        _ => {
            let input = sales.get()?;
            let lf = input.frame.clone().lazy();
            let plan = match metric {
                "kpi_summary" => kpi_summary::kpi_summary(lf),
                "revenue_by_country" => revenue_by_country::revenue_by_country(lf),
                "sales_by_category" => sales_by_category::sales_by_category(lf),
                "rfm" => rfm::rfm(lf, as_of),
                other => return Err(anyhow!("unknown gold table {other}")),
            };
            (
                (input.partition.to_string(), input.frame.height() as u64),
                plan,
            )
        }
    };
    let mut df = plan
        .collect()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("computing gold/{metric}"))?;
    let mut writer = PartitionWriter::new(lake, partition(metric, date), run_id);
    writer.write_frame(&mut df)?;
    let manifest = writer.commit()?;
    Ok(StepOutput {
        inputs: vec![input.0],
        outputs: vec![partition(metric, manifest.date).to_string()],
        rows_in: input.1,
        rows_out: manifest.row_count,
        ..Default::default()
    })
}

/// The gold steps of the DAG, after `silver_step` when given.
pub fn steps(
    lake: &Lake,
    date: NaiveDate,
    run_id: &str,
    as_of: Option<NaiveDate>,
    silver_step: Option<String>,
) -> Vec<Step> {
    let sales = Arc::new(SalesCache::new(lake, date));
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
                let output = build_metric(&lake, metric, date, &run_id, &sales, as_of)?;
                ctx.rows(output.rows_out);
                Ok(output)
            })
        })
        .collect()
}
