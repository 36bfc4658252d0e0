//! Silver: `sales_master`, the order lines joined with their order, product,
//! category and customer, cleaned and typed; rejected lines with a reason.
//!
//! [`sales_master`] holds the pure transformation; [`build_sales_master`] is
//! the edge that reads bronze, runs it and commits the date of both tables.

pub mod sales_master;
pub mod slices;
pub mod tap;

use std::collections::BTreeMap;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, Utc};
use lake_core::dag::{Step, StepOutput};
use lake_core::input::{Columns, read_input};
use lake_core::pins::RunPins;
use lake_table::{DateWriter, Lake, Layer, TableRef};
use polars::prelude::*;

use crate::sales_master::{Dimensions, REJECT_REASON};
use crate::slices::{OrderKeySlices, order_key_bounds};
use crate::tap::SalesTap;

/// The silver table.
pub const SALES_MASTER: &str = "sales_master";
/// Where its rejects go, inside the silver root.
pub const SALES_MASTER_REJECTS: &str = "_rejects/sales_master";
/// Name of the DAG step.
pub const STEP: &str = "silver/sales_master";

/// Bronze tables sales_master reads.
pub const INPUT_TABLES: [&str; 5] = [
    "order_details",
    "orders",
    "products",
    "categories",
    "customers",
];

/// Order lines classified per slice (see [`build_sales_master`]). With one
/// classified slice waiting for the writer, silver peaked at 0.61-0.62 GiB
/// at scale 5000 and 0.67-0.75 GiB at scale 10000, against 0.98-1.02 GiB
/// with slices of 1M lines, for 2-9 % more time (each slice joins the whole
/// customer dimension).
pub const LINES_PER_SLICE: u64 = 600_000;

/// The silver table sales_master.
pub fn sales_master_table() -> TableRef {
    TableRef::new(Layer::Silver, SALES_MASTER)
}

/// The table of its rejects.
pub fn rejects_table() -> TableRef {
    TableRef::new(Layer::Silver, SALES_MASTER_REJECTS)
}

fn bronze(table: &str) -> TableRef {
    TableRef::new(Layer::Bronze, table)
}

/// The bronze tables sales_master reads.
pub fn input_tables() -> Vec<TableRef> {
    INPUT_TABLES.iter().map(|t| bronze(t)).collect()
}

/// Reads bronze at the versions `pins` gives, builds sales_master and its
/// rejects, checks the row invariant and commits both tables' date (both
/// or neither), handing the valid lines to `tap` as they are written.
pub fn build_sales_master(
    lake: &Lake,
    pins: &RunPins,
    date: NaiveDate,
    run_id: &str,
    tap: Option<&dyn SalesTap>,
) -> Result<StepOutput> {
    build_sales_master_in_slices(lake, pins, date, run_id, LINES_PER_SLICE, tap)
}

/// [`build_sales_master`] with an explicit slice size (tests use small
/// ones).
pub fn build_sales_master_in_slices(
    lake: &Lake,
    pins: &RunPins,
    date: NaiveDate,
    run_id: &str,
    lines_per_slice: u64,
    tap: Option<&dyn SalesTap>,
) -> Result<StepOutput> {
    use sales_master::*;
    if let Some(tap) = tap {
        tap.begin();
    }
    let details = read_input(
        lake,
        pins,
        bronze("order_details"),
        date,
        ORDER_DETAILS_COLUMNS,
        Columns::All,
    )?;
    let orders = read_input(
        lake,
        pins,
        bronze("orders"),
        date,
        ORDERS_COLUMNS,
        Columns::Needed,
    )?;
    let products = read_input(
        lake,
        pins,
        bronze("products"),
        date,
        PRODUCTS_COLUMNS,
        Columns::Needed,
    )?;
    let categories = read_input(
        lake,
        pins,
        bronze("categories"),
        date,
        CATEGORIES_COLUMNS,
        Columns::Needed,
    )?;
    let customers = read_input(
        lake,
        pins,
        bronze("customers"),
        date,
        CUSTOMERS_COLUMNS,
        Columns::Needed,
    )?;

    let reads = [&details, &orders, &products, &categories, &customers]
        .iter()
        .map(|input| input.read())
        .collect();
    let lines_in = details.rows;

    // The joins of a large table need several times its size in memory;
    // classifying it in slices of orders bounds the peak. The slices are
    // ranges of order keys, so where bronze keeps the source's order (the
    // lines of an order together, orders by id), a slice's reads skip the
    // row groups outside its range. The dimensions are small: prepared once.
    let slices = OrderKeySlices::new(
        lines_in,
        order_key_bounds(details.frame.clone())
            .with_context(|| format!("reading the order keys of {}", details.table))?,
        lines_per_slice,
    );
    let prepared = dimensions(
        products.frame.clone(),
        categories.frame.clone(),
        customers.frame.clone(),
    )
    .and_then(|d| {
        Ok(Dimensions {
            products: d.products.collect()?.lazy(),
            customers: d.customers.collect()?.lazy(),
        })
    })
    .map_err(anyhow::Error::from)
    .context("preparing the products and customers of silver/sales_master")?;
    let writers = (
        DateWriter::new(lake, sales_master_table(), date, run_id)?,
        DateWriter::new(lake, rejects_table(), date, run_id)?,
    );
    let slicing = Slicing {
        slices: &slices,
        details: &details.frame,
        orders: &orders.frame,
        dimensions: &prepared,
        now: Utc::now(),
        tap,
    };
    let ((sales_writer, rejects_writer), counts) = slicing.classify_and_write(writers)?;
    let (sales_rows, reject_rows) = (counts.sales, counts.reasons.values().sum::<u64>());
    if sales_rows + reject_rows != lines_in {
        bail!(
            "silver/sales_master invariant broken: {lines_in} order lines in, \
             {sales_rows} sales + {reject_rows} rejects out"
        );
    }

    // Rejects first: once sales_master's date is visible, its rejects are
    // too. When sales_master's commit fails, the rejects' is undone.
    let commits = lake_table::replace_all(vec![rejects_writer, sales_writer])?;
    let [rejects_commit, sales_commit] = <[_; 2]>::try_from(commits)
        .map_err(|commits| anyhow!("two tables committed, {} commits made", commits.len()))?;
    pins.record(&rejects_commit);
    pins.record(&sales_commit);
    if let Some(tap) = tap {
        tap.committed((&sales_commit).into(), sales_rows);
    }
    Ok(StepOutput {
        reads,
        writes: vec![(&sales_commit).into(), (&rejects_commit).into()],
        rows_in: lines_in,
        rows_out: sales_rows,
        rejects: counts.reasons,
        ..Default::default()
    })
}

/// The sales and the rejects per reason the slices produced.
#[derive(Default)]
struct Counts {
    sales: u64,
    reasons: BTreeMap<String, u64>,
}

/// The sales and the rejects of one slice.
struct SliceOutput {
    sales: DataFrame,
    rejected: DataFrame,
}

/// Classifying bronze's order lines slice by slice.
struct Slicing<'a> {
    slices: &'a OrderKeySlices,
    details: &'a LazyFrame,
    orders: &'a LazyFrame,
    dimensions: &'a Dimensions,
    now: DateTime<Utc>,
    tap: Option<&'a dyn SalesTap>,
}

impl Slicing<'_> {
    /// Classifies the slices one after another while a second thread writes
    /// the previous slice's frames (and hands its sales to the tap): Parquet
    /// encoding takes about as long as the joins, and each leaves a core
    /// idle part of the time. At most one classified slice waits for the
    /// writer, which bounds memory.
    fn classify_and_write(
        &self,
        writers: (DateWriter, DateWriter),
    ) -> Result<((DateWriter, DateWriter), Counts)> {
        let (sender, receiver) = mpsc::sync_channel::<SliceOutput>(1);
        let tap = self.tap;
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || -> Result<(DateWriter, DateWriter)> {
                let (mut sales_writer, mut rejects_writer) = writers;
                for mut output in receiver {
                    let started = Instant::now();
                    sales_writer.write_frame(&mut output.sales)?;
                    rejects_writer.write_frame(&mut output.rejected)?;
                    let written_at = Instant::now();
                    if let Some(tap) = tap {
                        tap.slice(&output.sales);
                    }
                    tracing::debug!(
                        lines = output.sales.height() + output.rejected.height(),
                        write_s = written_at.duration_since(started).as_secs_f64(),
                        tap_s = written_at.elapsed().as_secs_f64(),
                        "silver slice written"
                    );
                }
                Ok((sales_writer, rejects_writer))
            });
            let classified = (|| -> Result<Counts> {
                let mut counts = Counts::default();
                for slice in 0..self.slices.count {
                    let Some(output) = self.classify_slice(slice)? else {
                        continue;
                    };
                    counts.sales += output.sales.height() as u64;
                    for (reason, count) in reject_counts(&output.rejected)? {
                        *counts.reasons.entry(reason).or_insert(0) += count;
                    }
                    if sender.send(output).is_err() {
                        // The writer stopped: its error is the one to report.
                        break;
                    }
                }
                Ok(counts)
            })();
            drop(sender);
            let writers = writer
                .join()
                .map_err(|_| anyhow!("the thread writing silver/sales_master panicked"))??;
            Ok((writers, classified?))
        })
    }

    /// The sales and rejects of one slice; none for an empty slice after
    /// the first (the first always gives frames, so the tables get their
    /// schema even when no line is read).
    fn classify_slice(&self, slice: u32) -> Result<Option<SliceOutput>> {
        let started = Instant::now();
        // Read once: the rules and the reject rows both take it.
        let lines = self
            .slices
            .rows_of(self.details.clone(), slice)?
            .collect()
            .map_err(anyhow::Error::from)
            .context("reading bronze/order_details")?;
        let read_at = Instant::now();
        if lines.height() == 0 && slice > 0 {
            return Ok(None);
        }
        let classified = sales_master::classify_lines(
            lines.clone().lazy(),
            self.slices.rows_of(self.orders.clone(), slice)?,
            self.dimensions,
        )
        .and_then(|classified| classified.collect())
        .map_err(anyhow::Error::from)
        .context("building silver/sales_master")?;
        let classified_at = Instant::now();
        let sales = sales_master::sales_master(classified.clone().lazy(), self.now)
            .collect()
            .map_err(anyhow::Error::from)
            .context("selecting the valid sales lines")?;
        let rejected = sales_master::rejects(lines.clone().lazy(), classified.lazy(), self.now)
            .collect()
            .map_err(anyhow::Error::from)
            .context("selecting the rejected lines")?;
        tracing::debug!(
            slice,
            of = self.slices.count,
            lines = lines.height(),
            read_s = read_at.duration_since(started).as_secs_f64(),
            classify_s = classified_at.duration_since(read_at).as_secs_f64(),
            select_s = classified_at.elapsed().as_secs_f64(),
            "silver slice classified"
        );
        Ok(Some(SliceOutput { sales, rejected }))
    }
}

/// Rejected rows per reason.
pub fn reject_counts(rejected: &DataFrame) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for reason in rejected.column(REJECT_REASON)?.str()?.iter().flatten() {
        *counts.entry(reason.to_string()).or_insert(0u64) += 1;
    }
    Ok(counts)
}

/// The silver step of the DAG, after the bronze steps it reads (at the
/// versions in `pins`), handing its valid lines to `tap` when given.
pub fn steps(
    lake: &Lake,
    date: NaiveDate,
    run_id: &str,
    depends_on: Vec<String>,
    tap: Option<Arc<dyn SalesTap>>,
    pins: Arc<RunPins>,
) -> Vec<Step> {
    let lake = lake.clone();
    let run_id = run_id.to_string();
    vec![Step::new(STEP, depends_on, move |ctx| {
        let output = build_sales_master(&lake, &pins, date, &run_id, tap.as_deref())?;
        ctx.rows(output.rows_out);
        Ok(output)
    })]
}
