//! `gold/rfm`: recency, frequency and monetary value per customer, scored
//! 1-5 with SQL `NTILE(5)` semantics, and the segment they imply.

use chrono::NaiveDate;
use polars::prelude::*;

use crate::aggregate::money_value;
use crate::customer_totals;

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
    finish(customer_totals::partial(sales), as_of)
}

/// The table from the merged [`customer_totals`]: the scores rank every
/// customer, so they are computed once all slices are in.
pub fn finish(customers: LazyFrame, as_of: Option<NaiveDate>) -> LazyFrame {
    let per_customer = customers.with_column(money_value(col("monetary")).alias("monetary"));
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
        let df = rfm(sales(), None).collect().unwrap();
        // By hand from the fixture, as_of = latest order 1998-05-06 + 1 day:
        //   customer last order  recency                      freq  monetary
        //   ALFKI    1998-05-01  6                            2     100 + 50 + 25 = 175
        //   BERGS    1998-05-01  6                            1     15
        //   BLONP    1998-02-01  28 (Feb) + 31 + 30 + 6 = 95  2     60 + 15 = 75
        //   CHOPS    1997-12-01  31 + 31 + 95 = 157           1     75
        //   DRACD    1998-04-20  11 + 6 = 17                  3     10 + 10 + 10 = 30
        //   EASTC    1996-07-04  365 + 304 + 3 = 672          1     5
        //   alfki    1998-05-06  1                            1     40
        // NTILE(5) over 7 rows: 7 = 5 * 1 + 2, so positions 0-1 -> 1, 2-3 -> 2,
        // 4 -> 3, 5 -> 4, 6 -> 5. Byte-wise, uppercase ids sort before "alfki".
        // r (recency DESC, id ASC): EASTC 1, CHOPS 1, BLONP 2, DRACD 2,
        //   ALFKI 3, BERGS 4 (tie at 6 days broken by id), alfki 5
        // f (frequency ASC, id ASC): BERGS 1, CHOPS 1, EASTC 2, alfki 2,
        //   ALFKI 3, BLONP 4, DRACD 5
        // m (monetary ASC, id ASC): EASTC 1, BERGS 1, DRACD 2, alfki 2,
        //   BLONP 3, CHOPS 4 (tie at 75 broken by id), ALFKI 5
        // Segments, first match wins:
        //   ALFKI 335: no rule with r >= 4, f >= 4 or r <= 2 -> Need Attention
        //   BERGS 411: r >= 4, f = 1 -> New Customer
        //   BLONP 243, DRACD 252: r <= 2, f >= 3 -> At Risk
        //   CHOPS 114, EASTC 121: r <= 2, f <= 2 -> Hibernating
        //   alfki 522: r >= 4, f = 2 -> Potential Loyalist
        #[allow(clippy::type_complexity)]
        let expected: [(&str, i64, i64, f64, i32, i32, i32, &str, &str); 7] = [
            ("ALFKI", 6, 2, 175.0, 3, 3, 5, "335", "Need Attention"),
            ("BERGS", 6, 1, 15.0, 4, 1, 1, "411", "New Customer"),
            ("BLONP", 95, 2, 75.0, 2, 4, 3, "243", "At Risk"),
            ("CHOPS", 157, 1, 75.0, 1, 1, 4, "114", "Hibernating"),
            ("DRACD", 17, 3, 30.0, 2, 5, 2, "252", "At Risk"),
            ("EASTC", 672, 1, 5.0, 1, 2, 1, "121", "Hibernating"),
            ("alfki", 1, 1, 40.0, 5, 2, 2, "522", "Potential Loyalist"),
        ];
        assert_eq!(df.height(), expected.len());
        let text = |name: &str| df.column(name).unwrap().str().unwrap().clone();
        let int = |name: &str| df.column(name).unwrap().i64().unwrap().clone();
        let score = |name: &str| df.column(name).unwrap().i32().unwrap().clone();
        let (id, rfm_score, segment) = (text("customer_id"), text("rfm_score"), text("segment"));
        let (recency, frequency) = (int("recency_days"), int("frequency"));
        let monetary = df.column("monetary").unwrap().f64().unwrap();
        let (r, f, m) = (score("r_score"), score("f_score"), score("m_score"));
        for (i, row) in expected.iter().enumerate() {
            let got = (
                id.get(i).unwrap(),
                recency.get(i).unwrap(),
                frequency.get(i).unwrap(),
                monetary.get(i).unwrap(),
                r.get(i).unwrap(),
                f.get(i).unwrap(),
                m.get(i).unwrap(),
                rfm_score.get(i).unwrap(),
                segment.get(i).unwrap(),
            );
            assert_eq!(&got, row, "row {i}");
        }
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
