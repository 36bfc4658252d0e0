//! `gold/rfm_segments`: customers and revenue per RFM segment.

use polars::prelude::*;

use crate::aggregate::{money_mean, money_sum};

/// One row per segment that has customers, sorted by segment name.
pub fn rfm_segments(rfm: LazyFrame) -> LazyFrame {
    rfm.group_by([col("segment")])
        .agg([
            len().cast(DataType::Int64).alias("customer_count"),
            money_sum(col("monetary")).alias("revenue"),
            col("recency_days")
                .cast(DataType::Float64)
                .mean()
                .alias("avg_recency_days"),
            col("frequency")
                .cast(DataType::Float64)
                .mean()
                .alias("avg_frequency"),
            money_mean(col("monetary")).alias("avg_monetary"),
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
        let df = rfm_segments(rfm.clone()).collect().unwrap();
        // By hand from the fixture's RFM rows (see rfm's
        // scores_with_ties_and_uneven_buckets), customer: recency/frequency/monetary:
        //   At Risk            BLONP 95/2/75, DRACD 17/3/30
        //     revenue 75 + 30 = 105, recency (95 + 17) / 2 = 56,
        //     frequency (2 + 3) / 2 = 2.5, monetary 105 / 2 = 52.5
        //   Hibernating        CHOPS 157/1/75, EASTC 672/1/5
        //     revenue 75 + 5 = 80, recency (157 + 672) / 2 = 414.5,
        //     frequency 1, monetary 80 / 2 = 40
        //   Need Attention     ALFKI 6/2/175
        //   New Customer       BERGS 6/1/15
        //   Potential Loyalist alfki 1/1/40
        // 2 + 2 + 1 + 1 + 1 = 7 customers, 105 + 80 + 175 + 15 + 40 = 415;
        // sorted by name ("Need" < "New"). Every mean is exact in binary.
        let expected: [(&str, i64, f64, f64, f64, f64); 5] = [
            ("At Risk", 2, 105.0, 56.0, 2.5, 52.5),
            ("Hibernating", 2, 80.0, 414.5, 1.0, 40.0),
            ("Need Attention", 1, 175.0, 6.0, 2.0, 175.0),
            ("New Customer", 1, 15.0, 6.0, 1.0, 15.0),
            ("Potential Loyalist", 1, 40.0, 1.0, 1.0, 40.0),
        ];
        assert_eq!(df.height(), expected.len());
        let segment = df.column("segment").unwrap().str().unwrap();
        let count = df.column("customer_count").unwrap().i64().unwrap();
        let float = |name: &str| df.column(name).unwrap().f64().unwrap().clone();
        let (revenue, recency) = (float("revenue"), float("avg_recency_days"));
        let (frequency, monetary) = (float("avg_frequency"), float("avg_monetary"));
        for (i, row) in expected.iter().enumerate() {
            let got = (
                segment.get(i).unwrap(),
                count.get(i).unwrap(),
                revenue.get(i).unwrap(),
                recency.get(i).unwrap(),
                frequency.get(i).unwrap(),
                monetary.get(i).unwrap(),
            );
            assert_eq!(&got, row, "row {i}");
        }
        insta::assert_snapshot!(render(&rfm_segments(rfm).collect().unwrap()));
    }
}
