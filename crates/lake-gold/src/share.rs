//! Pieces shared by the ranked breakdowns.

use polars::prelude::*;

/// `value / sum(value)`, null when the total is not positive.
pub fn share_of_total(value: &str) -> Expr {
    let total = col(value).sum();
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
