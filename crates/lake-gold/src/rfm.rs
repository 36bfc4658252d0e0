//! `gold/rfm`: recency, frequency and monetary value per customer, scored
//! 1-5 with SQL `NTILE(5)` semantics, and the segment they imply.

use chrono::NaiveDate;
use polars::prelude::*;

use crate::aggregate::stable_sum;

/// Number of score buckets.
const BUCKETS: i64 = 5;

/// Days from 1970-01-01 of a date (Polars' Date representation).
fn epoch_days(date: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    (date - epoch).num_days() as i32
}

/// SQL `NTILE(5)` over rows already sorted, from their 0-based position:
/// with `n` rows, `q = n / 5`, `r = n % 5`, the first `r` buckets hold
/// `q + 1` rows and the others `q`.
fn ntile(position: Expr) -> Expr {
    let n = len().cast(DataType::Int64);
    let q = n.clone().floor_div(lit(BUCKETS));
    let r = n % lit(BUCKETS);
    let big = q.clone() + lit(1i64);
    let in_big_buckets = r.clone() * big.clone();
    let small = when(q.clone().eq(lit(0i64))).then(lit(1i64)).otherwise(q);
    when(position.clone().lt(in_big_buckets.clone()))
        .then(position.clone().floor_div(big) + lit(1i64))
        .otherwise(r + (position - in_big_buckets).floor_div(small) + lit(1i64))
}

/// Adds `score` = NTILE(5) over the rows sorted by `keys`
/// (name, descending); customer ids compare byte-wise.
fn with_ntile(lf: LazyFrame, score: &str, keys: &[(&str, bool)]) -> LazyFrame {
    let by: Vec<Expr> = keys.iter().map(|(name, _)| col(*name)).collect();
    let descending: Vec<bool> = keys.iter().map(|(_, desc)| *desc).collect();
    lf.sort_by_exprs(
        by,
        SortMultipleOptions::default()
            .with_order_descending_multi(descending)
            .with_maintain_order(true),
    )
    .with_row_index("__position", None)
    .with_column(
        ntile(col("__position").cast(DataType::Int64))
            .cast(DataType::Int32)
            .alias(score),
    )
    .drop(cols(["__position"]))
}

/// The segment of a customer from its scores (first match wins).
fn segment() -> Expr {
    let r = || col("r_score");
    let f = || col("f_score");
    let m = || col("m_score");
    when(
        r().gt_eq(lit(4))
            .and(f().gt_eq(lit(4)))
            .and(m().gt_eq(lit(4))),
    )
    .then(lit("Champions"))
    .when(f().gt_eq(lit(4)).and(r().gt_eq(lit(3))))
    .then(lit("Loyal"))
    .when(
        r().gt_eq(lit(4))
            .and(f().gt_eq(lit(2)))
            .and(f().lt_eq(lit(3))),
    )
    .then(lit("Potential Loyalist"))
    .when(r().gt_eq(lit(4)).and(f().eq(lit(1))))
    .then(lit("New Customer"))
    .when(r().lt_eq(lit(2)).and(f().gt_eq(lit(3))))
    .then(lit("At Risk"))
    .when(r().lt_eq(lit(2)).and(f().lt_eq(lit(2))))
    .then(lit("Hibernating"))
    .otherwise(lit("Need Attention"))
}

/// One row per customer with at least one sales line, sorted by
/// customer_id. `as_of` defaults to the day after the latest order date.
pub fn rfm(sales: LazyFrame, as_of: Option<NaiveDate>) -> LazyFrame {
    let per_customer = sales.group_by([col("customer_id")]).agg([
        col("company_name").first().alias("company_name"),
        col("country").first().alias("country"),
        col("order_date").max().alias("last_order_date"),
        col("order_id")
            .n_unique()
            .cast(DataType::Int64)
            .alias("frequency"),
        stable_sum(col("line_total")).alias("monetary"),
    ]);
    let last_day = col("last_order_date")
        .cast(DataType::Int32)
        .cast(DataType::Int64);
    let as_of_day = match as_of {
        Some(date) => lit(epoch_days(date) as i64),
        None => last_day.clone().max() + lit(1i64),
    };
    let with_recency = per_customer.with_column((as_of_day - last_day).alias("recency_days"));
    let scored = with_ntile(
        with_recency,
        "r_score",
        &[("recency_days", true), ("customer_id", false)],
    );
    let scored = with_ntile(
        scored,
        "f_score",
        &[("frequency", false), ("customer_id", false)],
    );
    let scored = with_ntile(
        scored,
        "m_score",
        &[("monetary", false), ("customer_id", false)],
    );
    scored
        .with_columns([
            (col("r_score") * lit(100) + col("f_score") * lit(10) + col("m_score"))
                .cast(DataType::String)
                .alias("rfm_score"),
            segment().alias("segment"),
        ])
        .sort(["customer_id"], SortMultipleOptions::default())
        .select([
            col("customer_id"),
            col("company_name"),
            col("country"),
            col("last_order_date"),
            col("recency_days"),
            col("frequency"),
            col("monetary"),
            col("r_score"),
            col("f_score"),
            col("m_score"),
            col("rfm_score"),
            col("segment"),
        ])
}

#[cfg(test)]
mod tests {
    use lake_core::display::render;

    use super::*;
    use crate::fixtures::sales;

    /// NTILE(5) as SQL defines it, by dealing rows into buckets.
    fn reference_ntile(n: usize) -> Vec<i32> {
        let (q, r) = (n / 5, n % 5);
        let mut out = Vec::with_capacity(n);
        for bucket in 0..5 {
            let size = q + usize::from(bucket < r);
            out.extend(std::iter::repeat_n(bucket as i32 + 1, size));
        }
        out
    }

    #[test]
    fn ntile_matches_sql_for_every_size_up_to_40() {
        for n in 0..=40usize {
            let keys: Vec<i64> = (0..n as i64).rev().collect();
            let df = df!("k" => keys).unwrap();
            let scored = with_ntile(df.lazy(), "score", &[("k", false)])
                .collect()
                .unwrap();
            let got: Vec<i32> = scored
                .column("score")
                .unwrap()
                .i32()
                .unwrap()
                .into_no_null_iter()
                .collect();
            assert_eq!(got, reference_ntile(n), "n = {n}");
        }
    }

    /// The segment rules written as plain Rust, first match wins.
    fn reference_segment(r: i32, f: i32, m: i32) -> &'static str {
        if r >= 4 && f >= 4 && m >= 4 {
            "Champions"
        } else if f >= 4 && r >= 3 {
            "Loyal"
        } else if r >= 4 && (2..=3).contains(&f) {
            "Potential Loyalist"
        } else if r >= 4 && f == 1 {
            "New Customer"
        } else if r <= 2 && f >= 3 {
            "At Risk"
        } else if r <= 2 && f <= 2 {
            "Hibernating"
        } else {
            "Need Attention"
        }
    }

    #[test]
    fn segment_rules_for_all_125_score_combinations() {
        let combos: Vec<(i32, i32, i32)> = (1..=5)
            .flat_map(|r| (1..=5).flat_map(move |f| (1..=5).map(move |m| (r, f, m))))
            .collect();
        let df = df!(
            "r_score" => combos.iter().map(|c| c.0).collect::<Vec<_>>(),
            "f_score" => combos.iter().map(|c| c.1).collect::<Vec<_>>(),
            "m_score" => combos.iter().map(|c| c.2).collect::<Vec<_>>(),
        )
        .unwrap();
        let out = df
            .lazy()
            .select([segment().alias("segment")])
            .collect()
            .unwrap();
        let got: Vec<&str> = out
            .column("segment")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .flatten()
            .collect();
        let expected: Vec<&str> = combos
            .iter()
            .map(|&(r, f, m)| reference_segment(r, f, m))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn scores_with_ties_and_uneven_buckets() {
        // as_of = 1998-05-07; 7 customers: buckets of 2, 2, 1, 1, 1.
        insta::assert_snapshot!(render(&rfm(sales(), None).collect().unwrap()));
    }

    #[test]
    fn explicit_as_of_shifts_recency_only() {
        let given = rfm(sales(), NaiveDate::from_ymd_opt(1998, 6, 1))
            .collect()
            .unwrap();
        let default = rfm(sales(), None).collect().unwrap();
        let shift: Vec<i64> = given
            .column("recency_days")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .zip(
                default
                    .column("recency_days")
                    .unwrap()
                    .i64()
                    .unwrap()
                    .into_no_null_iter(),
            )
            .map(|(a, b)| a - b)
            .collect();
        assert_eq!(shift, vec![25; 7]);
        assert!(
            given
                .column("segment")
                .unwrap()
                .equals(default.column("segment").unwrap())
        );
    }
}
