//! The slices silver classifies order lines in, and gold aggregates sales
//! in: consecutive ranges of order keys. Every line of an order falls in
//! the same slice, so the duplicate rule, which compares the lines of one
//! order, sees them all, and so does the first-row-wins choice among
//! repeated orders; in gold, an order's distinct count adds up over slices.

use anyhow::Result;
use polars::prelude::*;

use crate::sales_master::{int_key, key_in_range};

/// Ranges of order keys of equal width, from the lowest order key of the
/// lines to the highest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKeySlices {
    first: i128,
    width: i128,
    last: i128,
    pub count: u32,
}

impl OrderKeySlices {
    /// Slices for `lines` lines whose order keys span `keys` (none when no
    /// line has a usable order key): about `lines_per_slice` lines each
    /// when the keys are spread evenly.
    pub fn new(lines: u64, keys: Option<(i64, i64)>, lines_per_slice: u64) -> OrderKeySlices {
        let Some((first, last)) = keys else {
            return OrderKeySlices {
                first: 0,
                width: 1,
                last: 0,
                count: 1,
            };
        };
        let (first, last) = (i128::from(first), i128::from(last));
        // At most 2^64 keys, so every figure below fits.
        let span = (last - first + 1) as u128;
        let wanted = u128::from(lines.div_ceil(lines_per_slice.max(1)).max(1));
        let width = span.div_ceil(wanted.min(span));
        let count = span.div_ceil(width);
        OrderKeySlices {
            first,
            width: width as i128,
            last,
            count: u32::try_from(count).unwrap_or(u32::MAX),
        }
    }

    /// The keys of slice `slice`, inclusive.
    fn bounds(&self, slice: u32) -> (i64, i64) {
        let from = self.first + i128::from(slice) * self.width;
        let to = (from + self.width - 1).min(self.last);
        // Both lie within first..=last, which came from i64 values.
        (from as i64, to as i64)
    }

    /// The rows of `lf` whose order key falls in slice `slice`; the first
    /// slice also takes the rows without a usable order key.
    pub fn rows_of(&self, mut lf: LazyFrame, slice: u32) -> Result<LazyFrame> {
        if self.count == 1 {
            return Ok(lf);
        }
        let schema = lf.collect_schema().map_err(anyhow::Error::from)?;
        let (from, to) = self.bounds(slice);
        Ok(lf.filter(key_in_range(&schema, "order_id", from, to, slice == 0)))
    }
}

/// The lowest and highest order key of the lines, if any line has one.
pub fn order_key_bounds(mut lines: LazyFrame) -> Result<Option<(i64, i64)>> {
    let schema = lines.collect_schema().map_err(anyhow::Error::from)?;
    let key = int_key(&schema, "order_id");
    let bounds = lines
        .select([key.clone().min().alias("first"), key.max().alias("last")])
        .collect()
        .map_err(anyhow::Error::from)?;
    let bound = |name: &str| -> Result<Option<i64>> { Ok(bounds.column(name)?.i64()?.get(0)) };
    Ok(bound("first")?.zip(bound("last")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slices_cover_every_key_once() {
        // 10 lines over keys 3..=12 in slices of 3 lines: 4 slices of width 3.
        let slices = OrderKeySlices::new(10, Some((3, 12)), 3);
        assert_eq!(slices.count, 4);
        let bounds: Vec<_> = (0..slices.count).map(|s| slices.bounds(s)).collect();
        assert_eq!(bounds, vec![(3, 5), (6, 8), (9, 11), (12, 12)]);

        // More slices wanted than keys: one key per slice.
        let slices = OrderKeySlices::new(1_000, Some((7, 8)), 1);
        assert_eq!(slices.count, 2);
        assert_eq!((slices.bounds(0), slices.bounds(1)), ((7, 7), (8, 8)));

        // The widest span there is still ends at the last key.
        let slices = OrderKeySlices::new(3, Some((i64::MIN, i64::MAX)), 1);
        assert_eq!(slices.count, 3);
        assert_eq!(slices.bounds(0).0, i64::MIN);
        assert_eq!(slices.bounds(2).1, i64::MAX);
        assert_eq!(slices.bounds(1).0, slices.bounds(0).1 + 1);
        assert_eq!(slices.bounds(2).0, slices.bounds(1).1 + 1);

        // No usable key: one slice, unfiltered.
        assert_eq!(OrderKeySlices::new(5, None, 1).count, 1);
    }

    #[test]
    fn rows_without_a_key_go_to_the_first_slice() {
        let lines = df!(
            "order_id" => [Some("1"), Some("x"), None, Some(" 4 "), Some("6")],
        )
        .unwrap()
        .lazy();
        let slices = OrderKeySlices::new(5, order_key_bounds(lines.clone()).unwrap(), 2);
        assert_eq!(slices.count, 3);
        let of = |slice| -> Vec<Option<String>> {
            let df = slices
                .rows_of(lines.clone(), slice)
                .unwrap()
                .collect()
                .unwrap();
            let column = df.column("order_id").unwrap().str().unwrap().clone();
            column.iter().map(|v| v.map(str::to_string)).collect()
        };
        let text = |v: &str| Some(v.to_string());
        assert_eq!(of(0), vec![text("1"), text("x"), None]);
        assert_eq!(of(1), vec![text(" 4 ")]);
        assert_eq!(of(2), vec![text("6")]);
    }
}
