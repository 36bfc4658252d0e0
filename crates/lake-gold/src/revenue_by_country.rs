//! `gold/revenue_by_country`: revenue per standardized country, ranked.

use polars::prelude::*;

use crate::aggregate::{rank_rows, share_of_total, stable_sum};

/// country, country_code, revenue, order_count, customer_count,
/// revenue_share, rank (1 = highest revenue, ties by country name).
pub fn revenue_by_country(sales: LazyFrame) -> LazyFrame {
    let grouped = sales
        .group_by([col("country")])
        .agg([
            col("country_code")
                .drop_nulls()
                .first()
                .alias("country_code"),
            stable_sum(col("line_total")).alias("revenue"),
            col("order_id")
                .n_unique()
                .cast(DataType::Int64)
                .alias("order_count"),
            col("customer_id")
                .n_unique()
                .cast(DataType::Int64)
                .alias("customer_count"),
        ])
        .with_column(share_of_total("revenue").alias("revenue_share"));
    rank_rows(grouped, &[("revenue", true), ("country", false)], false).select([
        col("country"),
        col("country_code"),
        col("revenue"),
        col("order_count"),
        col("customer_count"),
        col("revenue_share"),
        col("rank"),
    ])
}

#[cfg(test)]
mod tests {
    use lake_core::display::render;

    use super::*;
    use crate::fixtures::sales;

    #[test]
    fn ranked_with_ties_broken_by_name() {
        // France and Switzerland both make 75: France ranks first.
        insta::assert_snapshot!(render(&revenue_by_country(sales()).collect().unwrap()));
    }
}
