//! Gold: the business figures computed from silver/sales_master (data
//! contract, section 5). One module per table, each a pure function from
//! lazy frames to a lazy frame; [`build_metric`] is the edge that reads
//! silver, runs one and commits its date.

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
use lake_core::input::{Columns, read_input};
use lake_core::run::TableVersion;
use lake_table::schema::Expect;
use lake_table::{DateWriter, Lake, Layer, TableRef};
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

/// The gold table of `metric`.
pub fn table_ref(metric: &str) -> TableRef {
    TableRef::new(Layer::Gold, metric)
}

/// Name of the DAG step building `metric`.
pub fn step_name(metric: &str) -> String {
    format!("gold/{metric}")
}

/// The columns of silver/sales_master gold reads, read once and shared by
/// the gold steps of a run.
pub struct Sales {
    pub read: TableVersion,
    pub frame: DataFrame,
}

/// silver/sales_master, read once and shared by the gold steps of a run.
pub struct SalesCache {
    lake: Lake,
    date: NaiveDate,
    loaded: Mutex<Option<Arc<Sales>>>,
}

impl SalesCache {
    pub fn new(lake: &Lake, date: NaiveDate) -> Self {
        SalesCache {
            lake: lake.clone(),
            date,
            loaded: Mutex::new(None),
        }
    }

    pub fn get(&self) -> Result<Arc<Sales>> {
        let mut loaded = self
            .loaded
            .lock()
            .map_err(|_| anyhow!("sales cache poisoned"))?;
        if let Some(input) = loaded.as_ref() {
            return Ok(input.clone());
        }
        let input = read_input(
            &self.lake,
            lake_silver::sales_master_table(),
            self.date,
            SALES_COLUMNS,
            Columns::Needed,
        )?;
        let sales = Arc::new(Sales {
            read: input.read(),
            frame: input
                .frame
                .collect()
                .map_err(anyhow::Error::from)
                .with_context(|| format!("reading {}", input.table))?,
        });
        *loaded = Some(sales.clone());
        Ok(sales)
    }
}

/// Builds one gold table and commits its date. `rfm_segments` reads the
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
            ((read, rfm.rows), rfm_segments::rfm_segments(rfm.frame))
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
            ((input.read.clone(), input.frame.height() as u64), plan)
        }
    };
    let mut df = plan
        .collect()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("computing gold/{metric}"))?;
    let mut writer = DateWriter::new(lake, table_ref(metric), date, run_id)?;
    writer.write_frame(&mut df)?;
    let commit = writer.replace()?;
    Ok(StepOutput {
        reads: vec![input.0],
        writes: vec![(&commit).into()],
        rows_in: input.1,
        rows_out: commit.rows,
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
