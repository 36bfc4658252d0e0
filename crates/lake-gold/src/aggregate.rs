//! Aggregations shared by the gold tables.
//!
//! Floating-point addition is not associative, and Polars adds a group's
//! values in an order that depends on how the work was split between
//! threads, so a plain `sum()` can differ in its last bits from one run to
//! the next (and the optimizer may drop a `sort()` placed before a sum, as
//! the sum "does not observe order"). Gold must be identical across reruns
//! of the same date, so money goes through [`stable_sum`]: the values are
//! sorted inside the aggregation itself, then added with Neumaier's
//! compensated summation, which depends only on the values.

use polars::prelude::*;

/// Neumaier's compensated sum of values already in a fixed order.
fn compensated_sum(values: &[f64]) -> f64 {
    let mut sum = 0.0f64;
    let mut compensation = 0.0f64;
    for &value in values {
        let total = sum + value;
        if sum.abs() >= value.abs() {
            compensation += (sum - total) + value;
        } else {
            compensation += (value - total) + sum;
        }
        sum = total;
    }
    sum + compensation
}

/// The non-null values of a column as f64, sorted.
fn sorted_values(column: &Column) -> PolarsResult<Vec<f64>> {
    let column = column.cast(&DataType::Float64)?;
    let mut values: Vec<f64> = column.f64()?.iter().flatten().collect();
    values.sort_unstable_by(f64::total_cmp);
    Ok(values)
}

fn float_field(_schema: &Schema, field: &Field) -> PolarsResult<Field> {
    Ok(Field::new(field.name().clone(), DataType::Float64))
}

/// Sum as Float64, identical whatever the row order (0.0 for no rows).
pub fn stable_sum(expr: Expr) -> Expr {
    expr.agg_with_fmt_str(
        |column: Column| {
            let sum = compensated_sum(&sorted_values(&column)?);
            Ok(Column::new(column.name().clone(), [sum]))
        },
        float_field,
        "stable_sum",
    )
}

/// Arithmetic mean as Float64, identical whatever the row order (null for
/// no rows).
pub fn stable_mean(expr: Expr) -> Expr {
    expr.agg_with_fmt_str(
        |column: Column| {
            let values = sorted_values(&column)?;
            let mean = (!values.is_empty()).then(|| compensated_sum(&values) / values.len() as f64);
            Ok(Column::new(column.name().clone(), [mean]))
        },
        float_field,
        "stable_mean",
    )
}

/// `value / sum(value)`, null when the total is not positive.
pub fn share_of_total(value: &str) -> Expr {
    let total = stable_sum(col(value));
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

    #[test]
    fn sums_do_not_depend_on_row_order() {
        // Values whose naive left-to-right sum depends on the order.
        let values = [1e16, 1.0, -1e16, 0.1, 0.2, 0.3, 1e-3, 123456.789];
        let mut reversed = values;
        reversed.reverse();
        let sum_of = |v: &[f64]| {
            df!("x" => v.to_vec())
                .unwrap()
                .lazy()
                .select([
                    stable_sum(col("x")).alias("s"),
                    stable_mean(col("x")).alias("m"),
                ])
                .collect()
                .unwrap()
        };
        let a = sum_of(&values);
        let b = sum_of(&reversed);
        assert!(a.equals(&b));
        let exact = 1.0 + 0.1 + 0.2 + 0.3 + 1e-3 + 123456.789;
        let s = a.column("s").unwrap().f64().unwrap().get(0).unwrap();
        assert!((s - exact).abs() < 1e-9, "{s} vs {exact}");
    }

    #[test]
    fn grouped_sums_and_empty_input() {
        let df = df!("g" => ["a", "b", "a"], "x" => [1.5, 2.0, 2.5]).unwrap();
        let out = df
            .lazy()
            .group_by([col("g")])
            .agg([
                stable_sum(col("x")).alias("s"),
                stable_mean(col("x")).alias("m"),
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
                stable_sum(col("x")).alias("s"),
                stable_mean(col("x")).alias("m"),
            ])
            .collect()
            .unwrap();
        assert_eq!(empty.column("s").unwrap().f64().unwrap().get(0), Some(0.0));
        assert_eq!(empty.column("m").unwrap().f64().unwrap().get(0), None);
    }
}
