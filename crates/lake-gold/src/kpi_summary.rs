//! `gold/kpi_summary`: the headline figures, one row.

use polars::prelude::*;

use crate::aggregate::stable_sum;

/// total_revenue, order_count, customer_count, line_count, units_sold,
/// avg_order_value (null when there is no order), first/last order date.
pub fn kpi_summary(sales: LazyFrame) -> LazyFrame {
    sales
        .select([
            stable_sum(col("line_total")).alias("total_revenue"),
            col("order_id")
                .n_unique()
                .cast(DataType::Int64)
                .alias("order_count"),
            col("customer_id")
                .n_unique()
                .cast(DataType::Int64)
                .alias("customer_count"),
            len().cast(DataType::Int64).alias("line_count"),
            col("quantity")
                .sum()
                .cast(DataType::Int64)
                .alias("units_sold"),
            col("order_date").min().alias("first_order_date"),
            col("order_date").max().alias("last_order_date"),
        ])
        .select([
            col("total_revenue"),
            col("order_count"),
            col("customer_count"),
            col("line_count"),
            col("units_sold"),
            when(col("order_count").gt(lit(0)))
                .then(col("total_revenue") / col("order_count").cast(DataType::Float64))
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias("avg_order_value"),
            col("first_order_date"),
            col("last_order_date"),
        ])
}

#[cfg(test)]
mod tests {
    use lake_core::display::render;

    use super::*;
    use crate::fixtures::{no_sales, sales};

    #[test]
    fn headline_figures() {
        // 415 over 11 orders, 7 customers, 12 lines, 19 units.
        insta::assert_snapshot!(render(&kpi_summary(sales()).collect().unwrap()));
    }

    #[test]
    fn no_sales_gives_zero_revenue_and_no_average() {
        insta::assert_snapshot!(render(&kpi_summary(no_sales()).collect().unwrap()));
    }
}
