//! `unified_sales_by_country` (data contract, section 7): the batch
//! revenue by country joined with the live sales of the stream.

use polars::prelude::*;

/// `unified_sales_by_country`: batch `revenue_by_country` full-outer-joined
/// with `live_sales_by_country` on the standardized country.
pub fn unified_sales_by_country(
    revenue_by_country: LazyFrame,
    live_by_country: LazyFrame,
) -> LazyFrame {
    let batch = revenue_by_country.select([
        col("country"),
        col("revenue").alias("revenue_batch"),
        col("order_count").alias("orders_batch"),
    ]);
    let live = live_by_country.select([
        col("pays"),
        col("total_ventes_live").alias("revenue_live"),
        col("nb_transactions").alias("transactions_live"),
    ]);
    let mut args = JoinArgs::new(JoinType::Full);
    args.coalesce = JoinCoalesce::CoalesceColumns;
    batch
        .join(live, [col("country")], [col("pays")], args)
        .select([
            col("country"),
            col("revenue_batch"),
            col("revenue_live"),
            (col("revenue_batch").fill_null(lit(0.0)) + col("revenue_live").fill_null(lit(0.0)))
                .alias("revenue_total"),
            col("orders_batch"),
            col("transactions_live"),
        ])
        .sort(["country"], SortMultipleOptions::default())
}

#[cfg(test)]
mod tests {
    use lake_core::display::render;

    use super::*;

    #[test]
    fn unified_view_keeps_countries_of_either_side() {
        let live = df!(
            "pays" => ["France", "United Kingdom", "United States"],
            "total_ventes_live" => [11.25, 4.0, 2.5],
            "nb_transactions" => [2i64, 1, 1],
        )
        .unwrap();
        let batch = df!(
            "country" => ["France", "Germany"],
            "revenue" => [100.0, 50.0],
            "order_count" => [3i64, 2],
        )
        .unwrap();
        let unified = unified_sales_by_country(batch.lazy(), live.lazy())
            .collect()
            .unwrap();
        insta::assert_snapshot!(render(&unified));
    }
}
