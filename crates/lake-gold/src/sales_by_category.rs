//! `gold/sales_by_category`: revenue and units per category, ranked.

use polars::prelude::*;

use crate::aggregate::{rank_rows, share_of_total, stable_sum};

/// category_id, category_name, revenue, units_sold, order_count,
/// revenue_share, rank (revenue descending, ties by category_name, then
/// category_id with nulls last).
pub fn sales_by_category(sales: LazyFrame) -> LazyFrame {
    let grouped = sales
        .group_by([col("category_id"), col("category_name")])
        .agg([
            stable_sum(col("line_total")).alias("revenue"),
            col("quantity")
                .sum()
                .cast(DataType::Int64)
                .alias("units_sold"),
            col("order_id")
                .n_unique()
                .cast(DataType::Int64)
                .alias("order_count"),
        ])
        .with_column(share_of_total("revenue").alias("revenue_share"));
    rank_rows(
        grouped,
        &[
            ("revenue", true),
            ("category_name", false),
            ("category_id", false),
        ],
        true,
    )
    .select([
        col("category_id"),
        col("category_name"),
        col("revenue"),
        col("units_sold"),
        col("order_count"),
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
    fn ranked_with_null_category_last_among_ties() {
        // Two Uncategorized groups of 15: id 99 before the null id.
        insta::assert_snapshot!(render(&sales_by_category(sales()).collect().unwrap()));
    }
}
