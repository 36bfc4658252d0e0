//! `gold/sales_by_category`: revenue and units per category, ranked.

use polars::prelude::*;

use crate::aggregate::{money_merge, money_partial, money_value, rank_rows, share_of_total};

/// category_id, category_name, revenue, units_sold, order_count,
/// revenue_share, rank (revenue descending, ties by category_name, then
/// category_id with nulls last).
pub fn sales_by_category(sales: LazyFrame) -> LazyFrame {
    finish(partial(sales))
}

/// Per category of a slice of the sales: the exact revenue, the units and
/// the orders (an order lies in one slice, so they add up over slices).
pub fn partial(sales: LazyFrame) -> LazyFrame {
    sales
        .group_by([col("category_id"), col("category_name")])
        .agg([
            money_partial(col("line_total")).alias("revenue"),
            col("quantity")
                .sum()
                .cast(DataType::Int64)
                .alias("units_sold"),
            col("order_id")
                .n_unique()
                .cast(DataType::Int64)
                .alias("order_count"),
        ])
}

/// The [`partial`]s of several slices, stacked, as one row per category.
pub fn merge(partials: LazyFrame) -> LazyFrame {
    partials
        .group_by([col("category_id"), col("category_name")])
        .agg([
            money_merge(col("revenue")).alias("revenue"),
            col("units_sold").sum().alias("units_sold"),
            col("order_count").sum().alias("order_count"),
        ])
}

/// The table from the merged [`partial`].
pub fn finish(categories: LazyFrame) -> LazyFrame {
    let grouped = categories
        .with_column(money_value(col("revenue")).alias("revenue"))
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
        let df = sales_by_category(sales()).collect().unwrap();
        // By hand from the fixture lines, per (category_id, category_name):
        // 1 Beverages   = 100 + 25 + 75 + 5 + 40 = 245, units 2 + 1 + 4 + 1 + 2 = 10,
        //                 orders 1, 2, 6, 10, 11 = 5
        // 2 Condiments  = 50 + 60 + 10 + 10 + 10 = 140, units 1 + 1 + 1 + 1 + 1 = 5,
        //                 orders 1, 4, 7, 8, 9 = 5
        // 99 Uncategorized   = BLONP 15, units 1, order 5
        // null Uncategorized = BERGS 15, units 3, order 3
        // total 245 + 140 + 15 + 15 = 415. The two 15s tie on revenue and
        // name, so category_id decides with nulls last: 99 is rank 3, null 4.
        /// (category_id, name, revenue, units, orders, rank)
        type CategoryRow = (Option<i64>, &'static str, f64, i64, i64, i64);
        let expected: [CategoryRow; 4] = [
            (Some(1), "Beverages", 245.0, 10, 5, 1),
            (Some(2), "Condiments", 140.0, 5, 5, 2),
            (Some(99), "Uncategorized", 15.0, 1, 1, 3),
            (None, "Uncategorized", 15.0, 3, 1, 4),
        ];
        assert_eq!(df.height(), expected.len());
        let id = df.column("category_id").unwrap().i64().unwrap();
        let name = df.column("category_name").unwrap().str().unwrap();
        let revenue = df.column("revenue").unwrap().f64().unwrap();
        let units = df.column("units_sold").unwrap().i64().unwrap();
        let orders = df.column("order_count").unwrap().i64().unwrap();
        let share = df.column("revenue_share").unwrap().f64().unwrap();
        let rank = df.column("rank").unwrap().i64().unwrap();
        for (i, &(cat, cat_name, rev, n_units, n_orders, r)) in expected.iter().enumerate() {
            assert_eq!(
                (
                    id.get(i),
                    name.get(i),
                    revenue.get(i),
                    units.get(i),
                    orders.get(i),
                    rank.get(i),
                ),
                (
                    cat,
                    Some(cat_name),
                    Some(rev),
                    Some(n_units),
                    Some(n_orders),
                    Some(r),
                ),
                "row {i}"
            );
            // e.g. Beverages 245 / 415 = 0.5903...
            let s = share.get(i).unwrap();
            assert!((s - rev / 415.0).abs() < 1e-9, "{cat_name}: {s}");
        }
        insta::assert_snapshot!(render(&sales_by_category(sales()).collect().unwrap()));
    }
}
