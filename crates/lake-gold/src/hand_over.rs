//! Silver's hand-over to gold: [`SalesHandOver`] receives the lines the
//! silver step of the same run writes (it is that step's [`SalesTap`]) and
//! gives the gold steps [`SalesFigures`], computed once: from those lines
//! when silver committed them, else from silver/sales_master read from the
//! lake.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use chrono::NaiveDate;
use lake_core::input::{Columns, read_input};
use lake_core::pins::RunPins;
use lake_core::run::TableVersion;
use lake_silver::slices::{OrderKeySlices, order_key_bounds};
use lake_silver::tap::SalesTap;
use lake_table::Lake;
use lake_table::schema::Expect;
use polars::prelude::*;

use crate::sliced::{SliceMerger, compute_sales_figures};

/// Sales lines per slice gold aggregates at a time ([`crate::sliced`]): the
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
pub struct SalesHandOver {
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
    Receiving(SliceMerger),
    /// Every line of `read`, committed.
    Committed {
        merger: SliceMerger,
        read: TableVersion,
        rows: u64,
    },
}

impl SalesTap for SalesHandOver {
    fn begin(&self) {
        if let Ok(mut computed) = self.computed.lock() {
            *computed = None;
        }
        if let Ok(mut handoff) = self.handoff.lock() {
            *handoff = Handoff::Receiving(SliceMerger::default());
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

impl SalesHandOver {
    pub fn new(lake: &Lake, pins: Arc<RunPins>, date: NaiveDate, as_of: Option<NaiveDate>) -> Self {
        SalesHandOver {
            lake: lake.clone(),
            pins,
            date,
            as_of,
            computed: Mutex::new(None),
            handoff: Mutex::new(Handoff::None),
        }
    }

    /// The versions the run reads.
    pub(crate) fn pins(&self) -> &RunPins {
        &self.pins
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
        let frames = compute_sales_figures(&input.frame, &slices, self.as_of)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::sales;
    use crate::sliced::tests::one_pass;

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
        let hand_over = SalesHandOver::new(&lake, Default::default(), date, None);
        hand_over.begin();
        for slice in handed_slices(sales()) {
            assert!(slice.height() > 0);
            hand_over.slice(&slice);
        }
        hand_over.committed(written.clone(), 12);
        let figures = hand_over.get().unwrap();
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
        let uncommitted = SalesHandOver::new(&lake, Default::default(), date, None);
        uncommitted.begin();
        uncommitted.slice(&handed_slices(sales())[0]);
        let error = format!("{:#}", uncommitted.get().err().unwrap());
        assert!(error.contains("silver/sales_master"), "{error}");
        let retried = SalesHandOver::new(&lake, Default::default(), date, None);
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
        let broken = SalesHandOver::new(&lake, Default::default(), date, None);
        broken.begin();
        broken.slice(&handed_slices(sales())[0].drop("line_total").unwrap());
        broken.committed(written, 12);
        assert!(broken.get().is_err());
    }
}
