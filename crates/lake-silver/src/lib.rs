//! Silver: `sales_master`, the order lines joined with their order, product,
//! category and customer, cleaned and typed; rejected lines with a reason.
//!
//! [`sales_master`] holds the pure transformation; [`build_sales_master`] is
//! the edge that reads bronze, runs it and commits the date of both tables.

pub mod sales_master;

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use chrono::{NaiveDate, Utc};
use lake_core::dag::{Step, StepOutput};
use lake_core::input::{Columns, read_input};
use lake_table::{DateWriter, Lake, Layer, TableRef};
use polars::prelude::*;

use crate::sales_master::REJECT_REASON;

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

/// Order lines classified per slice (see [`build_sales_master`]).
pub const LINES_PER_SLICE: u64 = 500_000;

/// The rows of `lf` whose order key falls in slice `slice` of `slices`.
fn in_slice(mut lf: LazyFrame, order_id: &str, slice: u32, slices: u32) -> Result<LazyFrame> {
    if slices == 1 {
        return Ok(lf);
    }
    let schema = lf.collect_schema().map_err(anyhow::Error::from)?;
    let bucket = sales_master::order_slice(&schema, order_id, slices);
    Ok(lf.filter(bucket.eq(lit(slice as i64))))
}

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

/// Reads bronze, builds sales_master and its rejects, checks the row
/// invariant and commits both tables' date.
pub fn build_sales_master(lake: &Lake, date: NaiveDate, run_id: &str) -> Result<StepOutput> {
    build_sales_master_in_slices(lake, date, run_id, LINES_PER_SLICE)
}

/// [`build_sales_master`] with an explicit slice size (tests use small ones).
pub fn build_sales_master_in_slices(
    lake: &Lake,
    date: NaiveDate,
    run_id: &str,
    lines_per_slice: u64,
) -> Result<StepOutput> {
    use sales_master::*;
    let details = read_input(
        lake,
        bronze("order_details"),
        date,
        ORDER_DETAILS_COLUMNS,
        Columns::All,
    )?;
    let orders = read_input(
        lake,
        bronze("orders"),
        date,
        ORDERS_COLUMNS,
        Columns::Needed,
    )?;
    let products = read_input(
        lake,
        bronze("products"),
        date,
        PRODUCTS_COLUMNS,
        Columns::Needed,
    )?;
    let categories = read_input(
        lake,
        bronze("categories"),
        date,
        CATEGORIES_COLUMNS,
        Columns::Needed,
    )?;
    let customers = read_input(
        lake,
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
    // classifying it in slices of orders bounds the peak. A slice holds
    // every line of its orders, so duplicate detection is unaffected.
    let slices = lines_in.div_ceil(lines_per_slice.max(1)).max(1) as u32;
    let now = Utc::now();
    let mut sales_writer = DateWriter::new(lake, sales_master_table(), date, run_id)?;
    let mut rejects_writer = DateWriter::new(lake, rejects_table(), date, run_id)?;
    let (mut sales_rows, mut reject_rows) = (0u64, 0u64);
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for slice in 0..slices {
        let details_slice = in_slice(details.frame.clone(), "order_id", slice, slices)?;
        let classified = classify(SalesInputs {
            order_details: details_slice.clone(),
            orders: in_slice(orders.frame.clone(), "order_id", slice, slices)?,
            products: products.frame.clone(),
            categories: categories.frame.clone(),
            customers: customers.frame.clone(),
        })?
        .collect()
        .map_err(anyhow::Error::from)
        .context("building silver/sales_master")?;
        let mut sales = sales_master(classified.clone().lazy(), now)
            .collect()
            .map_err(anyhow::Error::from)
            .context("selecting the valid sales lines")?;
        let mut rejected = rejects(details_slice, classified.lazy(), now)
            .collect()
            .map_err(anyhow::Error::from)
            .context("selecting the rejected lines")?;
        sales_rows += sales.height() as u64;
        reject_rows += rejected.height() as u64;
        for (reason, count) in reject_counts(&rejected)? {
            *reasons.entry(reason).or_insert(0) += count;
        }
        sales_writer.write_frame(&mut sales)?;
        rejects_writer.write_frame(&mut rejected)?;
    }
    if sales_rows + reject_rows != lines_in {
        bail!(
            "silver/sales_master invariant broken: {lines_in} order lines in, \
             {sales_rows} sales + {reject_rows} rejects out"
        );
    }

    // Rejects first: once sales_master's date is visible, its rejects are too.
    let rejects_commit = rejects_writer.replace()?;
    let sales_commit = sales_writer.replace()?;
    Ok(StepOutput {
        reads,
        writes: vec![(&sales_commit).into(), (&rejects_commit).into()],
        rows_in: lines_in,
        rows_out: sales_rows,
        rejects: reasons,
        ..Default::default()
    })
}

/// Rejected rows per reason.
pub fn reject_counts(rejected: &DataFrame) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for reason in rejected.column(REJECT_REASON)?.str()?.iter().flatten() {
        *counts.entry(reason.to_string()).or_insert(0u64) += 1;
    }
    Ok(counts)
}

/// The silver step of the DAG, after the bronze steps it reads.
pub fn steps(lake: &Lake, date: NaiveDate, run_id: &str, depends_on: Vec<String>) -> Vec<Step> {
    let lake = lake.clone();
    let run_id = run_id.to_string();
    vec![Step::new(STEP, depends_on, move |ctx| {
        let output = build_sales_master(&lake, date, &run_id)?;
        ctx.rows(output.rows_out);
        Ok(output)
    })]
}
