//! Per-customer totals of sales lines: the part of gold that spans slices
//! of silver, since one customer's orders fall in many slices. gold/rfm is
//! built from them, and so are the customer counts of gold/kpi_summary and
//! gold/revenue_by_country.
//!
//! A slice holds every line of its orders ([`crate::sliced`]), so a
//! customer's distinct orders over all slices are the sum of its distinct
//! orders per slice. silver/sales_master takes a line's company and
//! country from its customer's one row, so they are the same in every
//! slice and the first one seen is the customer's.

use polars::prelude::*;

use crate::aggregate::{money_merge, money_partial};

/// One row per customer of `sales`: company_name, country,
/// last_order_date, frequency (distinct orders) and monetary (the exact
/// [`money_partial`] sum of its line totals).
pub fn partial(sales: LazyFrame) -> LazyFrame {
    sales.group_by([col("customer_id")]).agg([
        col("company_name").first().alias("company_name"),
        col("country").first().alias("country"),
        col("order_date").max().alias("last_order_date"),
        col("order_id")
            .n_unique()
            .cast(DataType::Int64)
            .alias("frequency"),
        money_partial(col("line_total")).alias("monetary"),
    ])
}

/// The [`partial`]s of several slices, stacked, as one row per customer.
pub fn merge(partials: LazyFrame) -> LazyFrame {
    partials.group_by([col("customer_id")]).agg([
        col("company_name").first().alias("company_name"),
        col("country").first().alias("country"),
        col("last_order_date").max().alias("last_order_date"),
        col("frequency").sum().alias("frequency"),
        money_merge(col("monetary")).alias("monetary"),
    ])
}
