//! `gold/kpi_summary`: the headline figures, one row.

use polars::prelude::*;

use crate::aggregate::{money_merge, money_partial, money_value};
use crate::customer_totals;

/// total_revenue, order_count, customer_count, line_count, units_sold,
/// avg_order_value (null when there is no order), first/last order date.
pub fn kpi_summary(sales: LazyFrame) -> LazyFrame {
    finish(partial(sales.clone()), customer_totals::partial(sales))
}

/// The figures of a slice of the sales that add up over slices: revenue
/// (exact), orders (an order lies in one slice), lines, units, and the
/// first and last order dates. Customers span slices: they come from
/// [`customer_totals`].
pub fn partial(sales: LazyFrame) -> LazyFrame {
    sales.select([
        money_partial(col("line_total")).alias("total_revenue"),
        col("order_id")
            .n_unique()
            .cast(DataType::Int64)
            .alias("order_count"),
        len().cast(DataType::Int64).alias("line_count"),
        col("quantity")
            .sum()
            .cast(DataType::Int64)
            .alias("units_sold"),
        col("order_date").min().alias("first_order_date"),
        col("order_date").max().alias("last_order_date"),
    ])
}

/// The [`partial`]s of several slices, stacked, as one.
pub fn merge(partials: LazyFrame) -> LazyFrame {
    partials.select([
        money_merge(col("total_revenue")).alias("total_revenue"),
        col("order_count").sum().alias("order_count"),
        col("line_count").sum().alias("line_count"),
        col("units_sold").sum().alias("units_sold"),
        col("first_order_date").min().alias("first_order_date"),
        col("last_order_date").max().alias("last_order_date"),
    ])
}

/// The table from the merged [`partial`] and the customers' totals.
pub fn finish(totals: LazyFrame, customers: LazyFrame) -> LazyFrame {
    let customer_count = customers.select([len().cast(DataType::Int64).alias("customer_count")]);
    totals
        .with_column(money_value(col("total_revenue")).alias("total_revenue"))
        .cross_join(customer_count, None)
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
    use chrono::NaiveDate;
    use lake_core::display::render;

    use super::*;
    use crate::fixtures::{no_sales, sales};

    fn f64_at(df: &DataFrame, name: &str) -> Option<f64> {
        df.column(name).unwrap().f64().unwrap().get(0)
    }

    fn i64_at(df: &DataFrame, name: &str) -> Option<i64> {
        df.column(name).unwrap().i64().unwrap().get(0)
    }

    /// A Date column's value, through its physical days since 1970-01-01.
    fn date_at(df: &DataFrame, name: &str) -> Option<NaiveDate> {
        let days = df.column(name).unwrap().cast(&DataType::Int32).unwrap();
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        days.i32()
            .unwrap()
            .get(0)
            .map(|d| epoch + chrono::Duration::days(d as i64))
    }

    #[test]
    fn headline_figures() {
        // 415 over 11 orders, 7 customers, 12 lines, 19 units.
        let df = kpi_summary(sales()).collect().unwrap();
        assert_eq!(df.height(), 1);
        // line_total of the 12 fixture lines:
        // 100 + 50 + 25 + 15 + 60 + 15 + 75 + 10 + 10 + 10 + 5 + 40 = 415
        assert_eq!(f64_at(&df, "total_revenue"), Some(415.0));
        // distinct order_id: 1 (two lines), 2, 3, ..., 11 = 11 orders
        assert_eq!(i64_at(&df, "order_count"), Some(11));
        // ALFKI, BERGS, BLONP, CHOPS, DRACD, EASTC and lowercase alfki = 7
        assert_eq!(i64_at(&df, "customer_count"), Some(7));
        assert_eq!(i64_at(&df, "line_count"), Some(12));
        // quantity: 2 + 1 + 1 + 3 + 1 + 1 + 4 + 1 + 1 + 1 + 1 + 2 = 19
        assert_eq!(i64_at(&df, "units_sold"), Some(19));
        // 415 / 11 = 37.7272... (not exact in binary)
        let avg = f64_at(&df, "avg_order_value").unwrap();
        assert!((avg - 415.0 / 11.0).abs() < 1e-9, "{avg}");
        // EASTC's 1996-07-04 is the earliest, alfki's 1998-05-06 the latest.
        assert_eq!(
            date_at(&df, "first_order_date"),
            NaiveDate::from_ymd_opt(1996, 7, 4)
        );
        assert_eq!(
            date_at(&df, "last_order_date"),
            NaiveDate::from_ymd_opt(1998, 5, 6)
        );
        // (The snapshot keeps its original expression.)
        insta::assert_snapshot!(render(&kpi_summary(sales()).collect().unwrap()));
    }

    #[test]
    fn no_sales_gives_zero_revenue_and_no_average() {
        let df = kpi_summary(no_sales()).collect().unwrap();
        // Still one row: revenue is an empty sum (0), every count 0, and
        // no order means no average and no dates.
        assert_eq!(df.height(), 1);
        assert_eq!(f64_at(&df, "total_revenue"), Some(0.0));
        for name in ["order_count", "customer_count", "line_count", "units_sold"] {
            assert_eq!(i64_at(&df, name), Some(0), "{name}");
        }
        assert_eq!(f64_at(&df, "avg_order_value"), None);
        assert_eq!(date_at(&df, "first_order_date"), None);
        assert_eq!(date_at(&df, "last_order_date"), None);
        insta::assert_snapshot!(render(&kpi_summary(no_sales()).collect().unwrap()));
    }
}
