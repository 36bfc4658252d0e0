//! Silver: `sales_master`, the order lines joined with their order, product,
//! category and customer, cleaned and typed; rejected lines with a reason.
//!
//! [`sales_master`] holds the pure transformation; [`build_sales_master`] is
//! the edge that reads bronze, runs it and commits both partitions.

pub mod sales_master;

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use chrono::{NaiveDate, Utc};
use lake_core::dag::{Step, StepOutput};
use lake_core::input::{Columns, read_input};
use lake_core::{Lake, Layer, PartitionRef, PartitionWriter};
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

/// The silver partition of sales_master for `date`.
pub fn partition(date: NaiveDate) -> PartitionRef {
    PartitionRef::new(Layer::Silver, SALES_MASTER, date)
}

/// Reads bronze, builds sales_master and its rejects, checks the row
/// invariant and commits both partitions.
pub fn build_sales_master(lake: &Lake, date: NaiveDate, run_id: &str) -> Result<StepOutput> {
    use sales_master::*;
    let details = read_input(
        lake,
        Layer::Bronze,
        "order_details",
        date,
        ORDER_DETAILS_COLUMNS,
        Columns::All,
    )?;
    let orders = read_input(
        lake,
        Layer::Bronze,
        "orders",
        date,
        ORDERS_COLUMNS,
        Columns::Needed,
    )?;
    let products = read_input(
        lake,
        Layer::Bronze,
        "products",
        date,
        PRODUCTS_COLUMNS,
        Columns::Needed,
    )?;
    let categories = read_input(
        lake,
        Layer::Bronze,
        "categories",
        date,
        CATEGORIES_COLUMNS,
        Columns::Needed,
    )?;
    let customers = read_input(
        lake,
        Layer::Bronze,
        "customers",
        date,
        CUSTOMERS_COLUMNS,
        Columns::Needed,
    )?;

    let inputs: Vec<String> = [&details, &orders, &products, &categories, &customers]
        .iter()
        .map(|input| input.partition.to_string())
        .collect();
    let detail_columns: Vec<String> = details
        .frame
        .get_column_names()
        .iter()
        .map(|name| name.to_string())
        .collect();
    let lines_in = details.frame.height() as u64;

    let classified = classify(SalesInputs {
        order_details: details.frame.lazy(),
        orders: orders.frame.lazy(),
        products: products.frame.lazy(),
        categories: categories.frame.lazy(),
        customers: customers.frame.lazy(),
    })?
    .collect()
    .map_err(anyhow::Error::from)
    .context("building silver/sales_master")?;
    let now = Utc::now();
    let mut sales = sales_master(classified.clone().lazy(), now)
        .collect()
        .map_err(anyhow::Error::from)
        .context("selecting the valid sales lines")?;
    let mut rejected = rejects(classified.lazy(), &detail_columns, now)
        .collect()
        .map_err(anyhow::Error::from)
        .context("selecting the rejected lines")?;

    let (sales_rows, reject_rows) = (sales.height() as u64, rejected.height() as u64);
    if sales_rows + reject_rows != lines_in {
        bail!(
            "silver/sales_master invariant broken: {lines_in} order lines in, \
             {sales_rows} sales + {reject_rows} rejects out"
        );
    }
    let reasons = reject_counts(&rejected)?;

    let mut sales_writer = PartitionWriter::new(lake, partition(date), run_id);
    sales_writer.write_frame(&mut sales)?;
    let mut rejects_writer = PartitionWriter::new(
        lake,
        PartitionRef::new(Layer::Silver, SALES_MASTER_REJECTS, date),
        run_id,
    );
    rejects_writer.write_frame(&mut rejected)?;
    // Rejects first: once sales_master is visible, its rejects are too.
    let rejects_manifest = rejects_writer.commit()?;
    let sales_manifest = sales_writer.commit()?;
    Ok(StepOutput {
        inputs,
        outputs: vec![
            partition(sales_manifest.date).to_string(),
            PartitionRef::new(Layer::Silver, SALES_MASTER_REJECTS, rejects_manifest.date)
                .to_string(),
        ],
        rows_in: lines_in,
        rows_out: sales_rows,
        rejects: reasons,
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
