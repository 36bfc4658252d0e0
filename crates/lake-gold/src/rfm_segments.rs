//! `gold/rfm_segments`: customers and revenue per RFM segment.

use polars::prelude::*;

use crate::aggregate::{stable_mean, stable_sum};

/// One row per segment that has customers, sorted by segment name.
pub fn rfm_segments(rfm: LazyFrame) -> LazyFrame {
    rfm.group_by([col("segment")])
        .agg([
            len().cast(DataType::Int64).alias("customer_count"),
            stable_sum(col("monetary")).alias("revenue"),
            col("recency_days")
                .cast(DataType::Float64)
                .mean()
                .alias("avg_recency_days"),
            col("frequency")
                .cast(DataType::Float64)
                .mean()
                .alias("avg_frequency"),
            stable_mean(col("monetary")).alias("avg_monetary"),
        ])
        .sort(["segment"], SortMultipleOptions::default())
}

#[cfg(test)]
mod tests {
    use lake_core::display::render;

    use super::*;
    use crate::fixtures::sales;

    #[test]
    fn segments_of_the_fixture() {
        let rfm = crate::rfm::rfm(sales(), None);
        insta::assert_snapshot!(render(&rfm_segments(rfm).collect().unwrap()));
    }
}
