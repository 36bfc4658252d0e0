//! Aggregations shared by the gold tables.
//!
//! Floating-point addition is not associative, and Polars adds a group's
//! values in an order that depends on how the work was split between
//! threads (and on the engine), so a plain `sum()` of Float64 can differ in
//! its last bits from one run to the next. Gold must be identical across
//! reruns of the same date, so money goes through [`money_sum`]: each value
//! is rounded once to a fixed-point Decimal (an i128 counting units of
//! 10^-12), whose sum is integer addition, exact and so independent of the
//! order and of the split; the total is turned back into Float64 once.
//! This is a built-in aggregation: it runs in parallel and in the streaming
//! engine, where a custom per-group function would sort or gather each
//! group first.

use polars::prelude::*;

/// Digits after the point kept of each money value: the rounding of one
/// value is at most 5e-13, far below a cent however many lines are added.
const MONEY_SCALE: usize = 12;
/// Total digits of a scaled value: below 10^26 it leaves 14 digits before
/// the point, and 1.7e12 of them add up without overflowing the i128
/// (2^127 = 1.7e38). A line of 10^14 or more fails the cast with an error
/// naming the column rather than wrapping.
const MONEY_PRECISION: usize = 26;

/// The fixed-point type money is added in.
fn money_decimal() -> DataType {
    DataType::Decimal(MONEY_PRECISION, MONEY_SCALE)
}

/// The type exact partial sums travel in between slices: the widest
/// Decimal, so that the sum of partial sums has the same type as they do.
fn money_partial_decimal() -> DataType {
    DataType::Decimal(38, MONEY_SCALE)
}

/// Sum as Float64, identical whatever the row order and the engine (0.0
/// for no rows).
pub fn money_sum(expr: Expr) -> Expr {
    money_value(money_partial(expr))
}

/// The exact sum of a slice's values, kept as a Decimal: partial sums of
/// several slices add up ([`money_merge`]) to the sum of all their values,
/// bit for bit, which [`money_value`] turns into the Float64 that
/// [`money_sum`] gives in one pass.
pub fn money_partial(expr: Expr) -> Expr {
    expr.cast(money_decimal())
        .sum()
        .cast(money_partial_decimal())
}

/// The exact sum of [`money_partial`] sums.
pub fn money_merge(partial: Expr) -> Expr {
    partial.sum().cast(money_partial_decimal())
}

/// An exact sum as the Float64 the gold tables hold (0.0 for none).
pub fn money_value(partial: Expr) -> Expr {
    partial.cast(DataType::Float64).fill_null(lit(0.0))
}

/// Arithmetic mean as Float64, identical whatever the row order (null for
/// no rows).
pub fn money_mean(expr: Expr) -> Expr {
    let count = expr.clone().count();
    when(count.clone().gt(lit(0)))
        .then(money_sum(expr) / count.cast(DataType::Float64))
        .otherwise(lit(NULL).cast(DataType::Float64))
}

/// `value / sum(value)`, null when the total is not positive.
pub fn share_of_total(value: &str) -> Expr {
    let total = money_sum(col(value));
    when(total.clone().gt(lit(0.0)))
        .then(col(value) / total)
        .otherwise(lit(NULL).cast(DataType::Float64))
}

/// Sorts by `keys` (each with its direction) and numbers the rows from 1 in
/// a column `rank` (Int64): a row number, so ties get distinct ranks.
pub fn rank_rows(lf: LazyFrame, keys: &[(&str, bool)], nulls_last: bool) -> LazyFrame {
    let by: Vec<Expr> = keys.iter().map(|(name, _)| col(*name)).collect();
    let descending: Vec<bool> = keys.iter().map(|(_, desc)| *desc).collect();
    lf.sort_by_exprs(
        by,
        SortMultipleOptions::default()
            .with_order_descending_multi(descending)
            .with_nulls_last(nulls_last)
            .with_maintain_order(true),
    )
    .with_row_index("rank", Some(1))
    .with_column(col("rank").cast(DataType::Int64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(frame: LazyFrame, engine: Engine) -> DataFrame {
        frame
            .select([
                money_sum(col("x")).alias("s"),
                money_mean(col("x")).alias("m"),
            ])
            .collect_with_engine(engine)
            .unwrap()
            .unwrap_single()
    }

    #[test]
    fn sums_do_not_depend_on_row_order_chunks_or_engine() {
        // Values whose naive left-to-right sum depends on the order (1e13's
        // last bit is worth 2^-9, so 0.1 added to it first is rounded).
        let values = [1e13, 1.0, -1e13, 0.1, 0.2, 0.3, 1e-3, 123456.789];
        let naive = |v: &[f64]| v.iter().fold(0.0f64, |sum, x| sum + x);
        let mut reversed = values;
        reversed.reverse();
        assert_ne!(
            naive(&values),
            naive(&reversed),
            "the values must be order-sensitive"
        );

        let frame = |v: &[f64]| df!("x" => v.to_vec()).unwrap().lazy();
        let expected = sums(frame(&values), Engine::InMemory);
        // Reversed, split into chunks of 3 rows (as a scan of several files
        // would be), and run by the streaming engine: the same bits.
        let mut chunked = df!("x" => reversed[..3].to_vec()).unwrap();
        for chunk in reversed[3..].chunks(3) {
            chunked
                .vstack_mut(&df!("x" => chunk.to_vec()).unwrap())
                .unwrap();
        }
        assert!(chunked.first_col_n_chunks() > 1);
        for engine in [Engine::InMemory, Engine::Streaming] {
            assert!(sums(frame(&reversed), engine).equals(&expected));
            assert!(sums(chunked.clone().lazy(), engine).equals(&expected));
        }
        // The exact sum, worked out by hand: the two 1e13 cancel.
        let exact = 1.0 + 0.1 + 0.2 + 0.3 + 1e-3 + 123456.789;
        let s = expected.column("s").unwrap().f64().unwrap().get(0).unwrap();
        assert!((s - exact).abs() < 1e-9, "{s} vs {exact}");
        let m = expected.column("m").unwrap().f64().unwrap().get(0).unwrap();
        assert!((m - exact / 8.0).abs() < 1e-9, "{m} vs {}", exact / 8.0);
    }

    #[test]
    fn a_value_beyond_the_fixed_point_range_is_an_error_not_a_wrapped_sum() {
        let frame = df!("line_total" => [1.0, 99_999_999_999_999.0, 1e14])
            .unwrap()
            .lazy();
        let err = frame
            .clone()
            .select([money_sum(col("line_total"))])
            .collect()
            .unwrap_err();
        // The expression that failed, with its column, is in the error.
        let detail = format!("{err:?}");
        assert!(
            detail.contains("line_total") && detail.contains("Decimal"),
            "{detail}"
        );
        // Just below the bound, the sum is exact.
        let ok = frame
            .limit(2)
            .select([money_sum(col("line_total")).alias("s")])
            .collect()
            .unwrap();
        let s = ok.column("s").unwrap().f64().unwrap().get(0);
        assert_eq!(s, Some(100_000_000_000_000.0));
    }

    #[test]
    fn grouped_sums_and_empty_input() {
        let df = df!("g" => ["a", "b", "a"], "x" => [1.5, 2.0, 2.5]).unwrap();
        let out = df
            .lazy()
            .group_by([col("g")])
            .agg([
                money_sum(col("x")).alias("s"),
                money_mean(col("x")).alias("m"),
            ])
            .sort(["g"], SortMultipleOptions::default())
            .collect()
            .unwrap();
        let sums: Vec<f64> = out
            .column("s")
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        let means: Vec<f64> = out
            .column("m")
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!((sums, means), (vec![4.0, 2.0], vec![2.0, 2.0]));
        let empty = df!("x" => Vec::<f64>::new())
            .unwrap()
            .lazy()
            .select([
                money_sum(col("x")).alias("s"),
                money_mean(col("x")).alias("m"),
            ])
            .collect()
            .unwrap();
        assert_eq!(empty.column("s").unwrap().f64().unwrap().get(0), Some(0.0));
        assert_eq!(empty.column("m").unwrap().f64().unwrap().get(0), None);
    }
}
