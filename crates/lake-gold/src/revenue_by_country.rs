//! `gold/revenue_by_country`: revenue per standardized country, ranked.

use polars::prelude::*;

use crate::aggregate::{money_merge, money_partial, money_value, rank_rows, share_of_total};
use crate::customer_totals;

/// country, country_code, revenue, order_count, customer_count,
/// revenue_share, rank (1 = highest revenue, ties by country name).
pub fn revenue_by_country(sales: LazyFrame) -> LazyFrame {
    finish(partial(sales.clone()), customer_totals::partial(sales))
}

/// Per country of a slice of the sales: its code, the exact revenue and
/// the orders (an order lies in one slice, so they add up over slices).
pub fn partial(sales: LazyFrame) -> LazyFrame {
    sales.group_by([col("country")]).agg([
        col("country_code")
            .drop_nulls()
            .first()
            .alias("country_code"),
        money_partial(col("line_total")).alias("revenue"),
        col("order_id")
            .n_unique()
            .cast(DataType::Int64)
            .alias("order_count"),
    ])
}

/// The [`partial`]s of several slices, stacked, as one row per country.
pub fn merge(partials: LazyFrame) -> LazyFrame {
    partials.group_by([col("country")]).agg([
        col("country_code")
            .drop_nulls()
            .first()
            .alias("country_code"),
        money_merge(col("revenue")).alias("revenue"),
        col("order_count").sum().alias("order_count"),
    ])
}

/// The table from the merged [`partial`] and the customers' totals: a
/// customer has one country (see [`customer_totals`]), so a country's
/// distinct customers are the customers whose country it is.
pub fn finish(countries: LazyFrame, customers: LazyFrame) -> LazyFrame {
    let customer_counts = customers
        .group_by([col("country")])
        .agg([len().cast(DataType::Int64).alias("customer_count")]);
    let grouped = countries
        .with_column(money_value(col("revenue")).alias("revenue"))
        .join(
            customer_counts,
            [col("country")],
            [col("country")],
            JoinArgs {
                nulls_equal: true,
                ..JoinArgs::new(JoinType::Left)
            },
        )
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
        let df = revenue_by_country(sales()).collect().unwrap();
        // By hand from the fixture lines, per country:
        // Germany     = ALFKI 100 + 50 + 25 + DRACD 10 + 10 + 10 = 205,
        //               orders 1, 2, 7, 8, 9 = 5, customers ALFKI, DRACD = 2
        // France      = BLONP 60 + 15 = 75, orders 4, 5 = 2, 1 customer
        // Switzerland = CHOPS 75, order 6, 1 customer
        // Atlantis    = alfki 40 (no code), order 11, 1 customer
        // Sweden      = BERGS 15, order 3, 1 customer
        // Unknown     = EASTC 5 (no code), order 10, 1 customer
        // total 205 + 75 + 75 + 40 + 15 + 5 = 415; ranks by revenue
        // descending, France before Switzerland by name.
        /// (country, code, revenue, orders, customers, rank)
        type CountryRow = (&'static str, Option<&'static str>, f64, i64, i64, i64);
        let expected: [CountryRow; 6] = [
            ("Germany", Some("DE"), 205.0, 5, 2, 1),
            ("France", Some("FR"), 75.0, 2, 1, 2),
            ("Switzerland", Some("CH"), 75.0, 1, 1, 3),
            ("Atlantis", None, 40.0, 1, 1, 4),
            ("Sweden", Some("SE"), 15.0, 1, 1, 5),
            ("Unknown", None, 5.0, 1, 1, 6),
        ];
        assert_eq!(df.height(), expected.len());
        let country = df.column("country").unwrap().str().unwrap();
        let code = df.column("country_code").unwrap().str().unwrap();
        let revenue = df.column("revenue").unwrap().f64().unwrap();
        let orders = df.column("order_count").unwrap().i64().unwrap();
        let customers = df.column("customer_count").unwrap().i64().unwrap();
        let share = df.column("revenue_share").unwrap().f64().unwrap();
        let rank = df.column("rank").unwrap().i64().unwrap();
        for (i, &(name, cc, rev, n_orders, n_customers, r)) in expected.iter().enumerate() {
            assert_eq!(
                (
                    country.get(i),
                    code.get(i),
                    revenue.get(i),
                    orders.get(i),
                    customers.get(i),
                    rank.get(i),
                ),
                (
                    Some(name),
                    cc,
                    Some(rev),
                    Some(n_orders),
                    Some(n_customers),
                    Some(r),
                ),
                "row {i}"
            );
            // e.g. Germany 205 / 415 = 0.4939...
            let s = share.get(i).unwrap();
            assert!((s - rev / 415.0).abs() < 1e-9, "{name}: {s}");
        }
        // The shares make the whole: 205/415 + 75/415 + ... + 5/415 = 1.
        let total_share: f64 = share.into_no_null_iter().sum();
        assert!((total_share - 1.0).abs() < 1e-9, "{total_share}");
        insta::assert_snapshot!(render(&revenue_by_country(sales()).collect().unwrap()));
    }
}
