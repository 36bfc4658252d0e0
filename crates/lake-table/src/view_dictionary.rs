//! A text column's Parquet dictionary, found through its string views.
//!
//! A string view is 16 bytes: a string of up to 12 bytes is held in the
//! view itself, a longer one is named by its buffer and offset. Rows
//! gathered from the same row of a small table (a join) share that row's
//! view, so equal views mean equal strings, and a column of a few thousand
//! distinct views over a million rows costs a million fixed-size hashes,
//! then a few thousand string hashes to merge views that hold equal
//! strings (copies made apart). Polars' writer hashes every string twice
//! instead: a cardinality estimate, then the dictionary.

use polars::prelude::PlHashMap;
use polars_arrow::array::{
    Array, DictionaryArray, MutableBinaryViewArray, PrimitiveArray, Utf8ViewArray,
};
use polars_arrow::datatypes::{ArrowDataType, IntegerType};

/// Rows looked at before deciding whether views repeat at all: a column
/// read from a source (each row's long strings stored apart) has as many
/// views as rows, and goes to Polars' own encoder after this many.
const PROBE_ROWS: usize = 4096;

/// Dictionary encoding is worth it while distinct values are at most this
/// share of the rows (Polars' own threshold, on its estimate).
const MAX_DISTINCT_SHARE: f64 = 0.75;

/// `array` as a dictionary of its distinct strings, in the order they
/// first occur, with keys for its rows (nulls kept); `None` when the rows
/// hold too many distinct views for a dictionary to pay, or no value.
pub fn view_dictionary(array: &Utf8ViewArray) -> Option<DictionaryArray<u32>> {
    let rows = array.len();
    // Keys are u32: a longer array (never a row group of the lake's) is
    // left to Polars.
    if rows > u32::MAX as usize {
        return None;
    }
    let too_many = |distinct: usize, seen: usize| {
        seen > 128 && distinct as f64 > MAX_DISTINCT_SHARE * seen as f64
    };
    let views = array.views();
    // View -> its slot; the first row holding each slot's view.
    let mut slots: PlHashMap<u128, u32> = PlHashMap::default();
    let mut first_rows: Vec<usize> = Vec::new();
    let mut keys: Vec<u32> = Vec::with_capacity(rows);
    let validity = array.validity();
    // Runs of one value are common (the lines of an order share its
    // customer): a row with the view of the row before takes its slot.
    let mut last: Option<(u128, u32)> = None;
    for (row, view) in views.iter().enumerate() {
        if row == PROBE_ROWS && too_many(first_rows.len(), row) {
            return None;
        }
        if validity.is_some_and(|valid| !valid.get_bit(row)) {
            keys.push(0);
            continue;
        }
        let view = view.as_u128();
        let slot = match last {
            Some((last_view, slot)) if last_view == view => slot,
            _ => {
                let next = first_rows.len() as u32;
                *slots.entry(view).or_insert_with(|| {
                    first_rows.push(row);
                    next
                })
            }
        };
        last = Some((view, slot));
        keys.push(slot);
    }
    if first_rows.is_empty() || too_many(first_rows.len(), rows) {
        return None;
    }

    // Slots whose views hold equal strings become one value.
    let mut values: PlHashMap<&str, u32> =
        PlHashMap::with_capacity_and_hasher(first_rows.len(), Default::default());
    let mut dictionary = MutableBinaryViewArray::<str>::with_capacity(first_rows.len());
    let value_of_slot: Vec<u32> = first_rows
        .iter()
        .map(|&row| {
            let text = array.value(row);
            let next = values.len() as u32;
            *values.entry(text).or_insert_with(|| {
                dictionary.push_value(text);
                next
            })
        })
        .collect();
    for key in &mut keys {
        *key = value_of_slot[*key as usize];
    }

    let keys = PrimitiveArray::new(ArrowDataType::UInt32, keys.into(), validity.cloned());
    let dtype = ArrowDataType::Dictionary(
        IntegerType::UInt32,
        Box::new(ArrowDataType::Utf8View),
        false,
    );
    let values: Utf8ViewArray = dictionary.into();
    DictionaryArray::try_new(dtype, keys, Box::new(values)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The strings of a dictionary array, row by row.
    fn decoded(array: &DictionaryArray<u32>) -> Vec<Option<String>> {
        let values = array
            .values()
            .as_any()
            .downcast_ref::<Utf8ViewArray>()
            .unwrap();
        (0..array.len())
            .map(|row| {
                array
                    .is_valid(row)
                    .then(|| values.value(array.keys().value(row) as usize).to_string())
            })
            .collect()
    }

    fn dictionary_values(array: &DictionaryArray<u32>) -> Vec<String> {
        let values = array
            .values()
            .as_any()
            .downcast_ref::<Utf8ViewArray>()
            .unwrap();
        values.values_iter().map(str::to_string).collect()
    }

    #[test]
    fn equal_strings_share_one_value_whatever_their_views() {
        // Long strings (> 12 bytes) pushed twice are stored twice: two
        // views for one string. Short ones are held in their views.
        let long = "a company name longer than twelve bytes";
        let rows = [
            Some(long),
            Some("Berlin"),
            None,
            Some("Berlin"),
            Some(long),
            Some("Buenos Aires, Argentina"),
            Some(""),
            Some(long),
        ];
        let mut builder = MutableBinaryViewArray::<str>::new();
        for row in rows {
            builder.push(row);
        }
        let array: Utf8ViewArray = builder.into();
        let distinct_views: std::collections::HashSet<u128> =
            array.views().iter().map(|v| v.as_u128()).collect();
        assert!(
            distinct_views.len() > 5,
            "the long string is stored apart each time"
        );

        let dictionary = view_dictionary(&array).expect("8 rows, 5 distinct values");
        // Values in the order they first occur, each once.
        assert_eq!(
            dictionary_values(&dictionary),
            vec![long, "Berlin", "Buenos Aires, Argentina", ""]
        );
        let expected: Vec<Option<String>> = rows.iter().map(|r| r.map(str::to_string)).collect();
        assert_eq!(decoded(&dictionary), expected);
        assert_eq!(dictionary.null_count(), 1);
    }

    #[test]
    fn columns_of_mostly_distinct_or_no_values_are_left_to_polars() {
        // 5000 rows, each its own value: the probe gives up.
        let distinct: Utf8ViewArray = MutableBinaryViewArray::<str>::from_values_iter(
            (0..5000).map(|i| format!("value {i}")),
        )
        .into();
        assert!(view_dictionary(&distinct).is_none());
        // 200 rows, 160 distinct (80 % > 75 %): no dictionary either.
        let mostly: Utf8ViewArray = MutableBinaryViewArray::<str>::from_values_iter(
            (0..200).map(|i| format!("v{}", i % 160)),
        )
        .into();
        assert!(view_dictionary(&mostly).is_none());
        // 200 rows, 150 distinct (75 %): a dictionary of 150 values.
        let enough: Utf8ViewArray = MutableBinaryViewArray::<str>::from_values_iter(
            (0..200).map(|i| format!("v{}", i % 150)),
        )
        .into();
        assert_eq!(
            view_dictionary(&enough).map(|d| d.values().len()),
            Some(150)
        );
        // Only nulls.
        let nulls: Utf8ViewArray =
            MutableBinaryViewArray::<str>::from_iter([None::<&str>, None]).into();
        assert!(view_dictionary(&nulls).is_none());
    }
}
