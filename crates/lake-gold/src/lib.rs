//! Gold: the business figures computed from silver/sales_master (data
//! contract, section 5). One module per table, each a pure function from
//! lazy frames to a lazy frame; [`build_metric`] is the edge that reads
//! silver, runs one and commits its date.

mod aggregate;
pub mod customer_totals;
pub mod figures;
pub mod kpi_summary;
pub mod revenue_by_country;
pub mod rfm;
pub mod rfm_segments;
pub mod sales_by_category;
pub mod sliced;
pub mod unified_sales_by_country;

#[cfg(test)]
mod fixtures;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use chrono::NaiveDate;
use lake_core::dag::{Step, StepOutput};
use lake_core::input::{Columns, read_input};
use lake_core::pins::RunPins;
use lake_core::run::TableVersion;
use lake_silver::slices::{OrderKeySlices, order_key_bounds};
use lake_silver::tap::SalesTap;
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

/// Sales lines per slice gold aggregates at a time ([`sliced`]): the
/// in-memory aggregation of a slice needs a few hundred bytes per line.
pub const LINES_PER_SLICE: u64 = 1_000_000;

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

/// The gold tables computed from silver/sales_master (all but
/// rfm_segments, which reads gold/rfm), computed together and shared by the
/// gold steps of a run.
pub struct SalesFigures {
    pub read: TableVersion,
    /// Rows of silver/sales_master read.
    pub rows: u64,
    frames: BTreeMap<&'static str, DataFrame>,
}

impl SalesFigures {
    /// The table `metric`, as computed (before the storage casts).
    pub fn frame(&self, metric: &str) -> Result<DataFrame> {
        self.frames
            .get(metric)
            .cloned()
            .ok_or_else(|| anyhow!("gold/{metric} is not computed from silver/sales_master"))
    }
}

/// silver/sales_master's figures, computed once by the first gold step
/// that needs them: from the lines the silver step of the same run handed
/// over while writing them (as a [`SalesTap`]), else read from the lake.
pub struct SalesCache {
    lake: Lake,
    /// The versions the run reads (silver's, when it is read from the lake).
    pins: Arc<RunPins>,
    date: NaiveDate,
    as_of: Option<NaiveDate>,
    computed: Mutex<Option<Arc<SalesFigures>>>,
    handoff: Mutex<Handoff>,
}

/// What the silver step of this run handed over.
#[derive(Default)]
enum Handoff {
    /// Nothing usable: gold reads silver from the lake.
    #[default]
    None,
    /// Slices of an attempt that has not committed yet.
    Receiving(sliced::SliceMerger),
    /// Every line of `read`, committed.
    Committed {
        merger: sliced::SliceMerger,
        read: TableVersion,
        rows: u64,
    },
}

impl SalesTap for SalesCache {
    fn begin(&self) {
        if let Ok(mut computed) = self.computed.lock() {
            *computed = None;
        }
        if let Ok(mut handoff) = self.handoff.lock() {
            *handoff = Handoff::Receiving(sliced::SliceMerger::default());
        }
    }

    fn slice(&self, sales: &DataFrame) {
        let Ok(mut handoff) = self.handoff.lock() else {
            return;
        };
        let Handoff::Receiving(merger) = &mut *handoff else {
            return;
        };
        // The checks and types of a read of the table.
        let added = sales
            .select(SALES_COLUMNS.iter().map(|(name, _)| *name))
            .map_err(anyhow::Error::from)
            .and_then(|needed| lake_table::writer::as_stored(&needed))
            .and_then(|stored| {
                let table = lake_silver::sales_master_table().to_string();
                let columns = lake_table::schema::column_specs(stored.schema());
                lake_table::schema::require_columns(&table, &columns, SALES_COLUMNS)?;
                merger.add(stored.lazy())
            });
        if let Err(error) = added {
            // Not silver's failure: gold reads silver from the lake instead,
            // and reports there whatever is wrong with its lines.
            tracing::warn!(
                "gold will read {} from the lake: the lines handed over failed: {error:#}",
                lake_silver::sales_master_table()
            );
            *handoff = Handoff::None;
        }
    }

    fn committed(&self, read: TableVersion, rows: u64) {
        let Ok(mut handoff) = self.handoff.lock() else {
            return;
        };
        *handoff = match std::mem::take(&mut *handoff) {
            Handoff::Receiving(merger) => Handoff::Committed { merger, read, rows },
            _ => Handoff::None,
        };
    }
}

impl SalesCache {
    pub fn new(lake: &Lake, pins: Arc<RunPins>, date: NaiveDate, as_of: Option<NaiveDate>) -> Self {
        SalesCache {
            lake: lake.clone(),
            pins,
            date,
            as_of,
            computed: Mutex::new(None),
            handoff: Mutex::new(Handoff::None),
        }
    }

    pub fn get(&self) -> Result<Arc<SalesFigures>> {
        let mut computed = self
            .computed
            .lock()
            .map_err(|_| anyhow!("sales figures cache poisoned"))?;
        if let Some(figures) = computed.as_ref() {
            return Ok(figures.clone());
        }
        let handoff = self
            .handoff
            .lock()
            .map(|mut handoff| std::mem::take(&mut *handoff))
            .unwrap_or_default();
        if let Handoff::Committed { merger, read, rows } = handoff {
            let frames = merger
                .tables(self.as_of)
                .with_context(|| format!("computing gold from {read} (handed over by silver)"))?;
            let figures = Arc::new(SalesFigures { read, rows, frames });
            *computed = Some(figures.clone());
            return Ok(figures);
        }
        let input = read_input(
            &self.lake,
            &self.pins,
            lake_silver::sales_master_table(),
            self.date,
            SALES_COLUMNS,
            Columns::Needed,
        )?;
        let keys = order_key_bounds(input.frame.clone())
            .with_context(|| format!("reading the order keys of {}", input.table))?;
        let slices = OrderKeySlices::new(input.rows, keys, LINES_PER_SLICE);
        let frames = sliced::compute_sales_figures(&input.frame, &slices, self.as_of)
            .with_context(|| format!("computing gold from {}", input.table))?;
        let figures = Arc::new(SalesFigures {
            read: input.read(),
            rows: input.rows,
            frames,
        });
        *computed = Some(figures.clone());
        Ok(figures)
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
) -> Result<StepOutput> {
    let (input, mut df) = match metric {
        "rfm_segments" => {
            let rfm = read_input(
                lake,
                &sales.pins,
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
    sales.pins.record(&commit);
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
    sales: Arc<SalesCache>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{no_sales, sales};

    /// Each table's own plan over all of `sales`, the reference the slices
    /// must match.
    fn one_pass(sales: LazyFrame, engine: Engine) -> BTreeMap<&'static str, DataFrame> {
        let plans = [
            ("kpi_summary", kpi_summary::kpi_summary(sales.clone())),
            (
                "revenue_by_country",
                revenue_by_country::revenue_by_country(sales.clone()),
            ),
            (
                "sales_by_category",
                sales_by_category::sales_by_category(sales.clone()),
            ),
            ("rfm", rfm::rfm(sales, None)),
        ];
        plans
            .into_iter()
            .map(|(metric, plan)| {
                let frame = plan.collect_with_engine(engine).unwrap().unwrap_single();
                (metric, frame)
            })
            .collect()
    }

    /// The fixture's lines in three slices of order keys, as silver hands
    /// them over (every silver column; gold takes what it needs).
    fn handed_slices(sales: LazyFrame) -> Vec<DataFrame> {
        [(1, 3), (4, 8), (9, 11)]
            .into_iter()
            .map(|(from, to)| {
                sales
                    .clone()
                    .filter(
                        col("order_id")
                            .gt_eq(lit(from))
                            .and(col("order_id").lt_eq(lit(to))),
                    )
                    .with_column(lit("not read by gold").alias("product_name"))
                    .collect()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn figures_come_from_the_lines_silver_handed_over_once_it_committed_them() {
        // A lake without silver/sales_master: figures read from it fail, so
        // figures that come out were made from the lines handed over.
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let expected = one_pass(sales(), Engine::InMemory);
        let written = TableVersion {
            table: "silver/sales_master".into(),
            version: 7,
            date,
        };
        let cache = SalesCache::new(&lake, Default::default(), date, None);
        cache.begin();
        for slice in handed_slices(sales()) {
            assert!(slice.height() > 0);
            cache.slice(&slice);
        }
        cache.committed(written.clone(), 12);
        let figures = cache.get().unwrap();
        assert_eq!(figures.read, written);
        assert_eq!(figures.rows, 12);
        for (metric, frame) in &expected {
            assert!(
                figures.frame(metric).unwrap().equals_missing(frame),
                "gold/{metric}"
            );
        }
        // By hand, as above: 415.0 of revenue over the three slices.
        let kpi = figures.frame("kpi_summary").unwrap();
        let revenue = kpi.column("total_revenue").unwrap().get(0).unwrap();
        assert_eq!(revenue, AnyValue::Float64(415.0));

        // Lines of an attempt that never committed are not used; a new
        // attempt voids what the one before it handed over.
        let uncommitted = SalesCache::new(&lake, Default::default(), date, None);
        uncommitted.begin();
        uncommitted.slice(&handed_slices(sales())[0]);
        let error = format!("{:#}", uncommitted.get().err().unwrap());
        assert!(error.contains("silver/sales_master"), "{error}");
        let retried = SalesCache::new(&lake, Default::default(), date, None);
        retried.begin();
        retried.slice(&handed_slices(sales())[0]);
        retried.begin();
        for slice in handed_slices(sales()) {
            retried.slice(&slice);
        }
        retried.committed(written.clone(), 12);
        let kpi = retried.get().unwrap().frame("kpi_summary").unwrap();
        assert!(kpi.equals_missing(&expected["kpi_summary"]));

        // Lines without a column gold needs are refused (gold then reads
        // the lake, and says what is missing there).
        let broken = SalesCache::new(&lake, Default::default(), date, None);
        broken.begin();
        broken.slice(&handed_slices(sales())[0].drop("line_total").unwrap());
        broken.committed(written, 12);
        assert!(broken.get().is_err());
    }

    #[test]
    fn slices_give_each_table_the_result_of_its_own_plan_over_all_sales() {
        for (fixture, input) in [("sales", sales()), ("no sales", no_sales())] {
            let expected = one_pass(input.clone(), Engine::InMemory);
            // The streaming engine agrees bit for bit (exact sums).
            for (metric, frame) in one_pass(input.clone(), Engine::Streaming) {
                assert!(
                    frame.equals_missing(&expected[metric]),
                    "{fixture}: {metric}"
                );
            }
            let keys = order_key_bounds(input.clone()).unwrap();
            let lines = input.clone().collect().unwrap().height() as u64;
            // One slice; a few orders a slice; an order a slice (the
            // fixture's orders 1-11: ALFKI, BLONP and DRACD span slices).
            for (lines_per_slice, count) in [(u64::MAX, 1), (5, 3), (2, 6), (1, 11)] {
                let slices = OrderKeySlices::new(lines, keys, lines_per_slice);
                if fixture == "sales" {
                    assert_eq!(slices.count, count);
                }
                let tables = sliced::compute_sales_figures(&input, &slices, None).unwrap();
                assert_eq!(tables.len(), 4);
                for (metric, frame) in &tables {
                    assert!(
                        frame.equals_missing(&expected[metric]),
                        "{fixture}, {} slices: gold/{metric} differs:\n{frame}\nvs\n{}",
                        slices.count,
                        expected[metric]
                    );
                }
                if fixture == "sales" {
                    // By hand: 415.0 of revenue in 12 lines, 11 orders, 7
                    // customers, of which Germany has 2 (ALFKI, DRACD).
                    let kpi = &tables["kpi_summary"];
                    let number = |name: &str| kpi.column(name).unwrap().get(0).unwrap();
                    assert_eq!(number("total_revenue"), AnyValue::Float64(415.0));
                    assert_eq!(number("order_count"), AnyValue::Int64(11));
                    assert_eq!(number("customer_count"), AnyValue::Int64(7));
                    assert_eq!(tables["rfm"].height(), 7);
                    let countries = &tables["revenue_by_country"];
                    let germany = countries
                        .clone()
                        .lazy()
                        .filter(col("country").eq(lit("Germany")))
                        .collect()
                        .unwrap();
                    let count = germany.column("customer_count").unwrap().get(0).unwrap();
                    assert_eq!(count, AnyValue::Int64(2));
                }
            }
        }
    }
}
