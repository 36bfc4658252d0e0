//! Per-file statistics in the log (`numRecords`, `minValues`, `maxValues`,
//! `nullCount`), so that other readers can skip files.
//!
//! Bounds must hold for every row, as readers skip a file on them: a
//! string longer than [`STRING_PREFIX`] characters gets a prefix as its
//! minimum and no maximum, timestamps are rounded outwards to the
//! milliseconds the format keeps, and floats with a NaN, booleans and
//! binary columns get null counts only.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, NaiveDate};
use polars::prelude::*;
use serde_json::{Map, Value, json};

/// Characters of a string kept in its bound (Spark keeps 32 too).
const STRING_PREFIX: usize = 32;

#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Bound {
    Int(i64),
    Float(f64),
    Text(String),
    /// Days since the epoch.
    Date(i32),
    /// Microseconds since the epoch.
    Micros(i64),
}

#[derive(Debug, Clone)]
struct ColumnStats {
    name: String,
    /// Time columns without a time zone print without `Z`.
    local_time: bool,
    nulls: u64,
    min: Option<Bound>,
    max: Option<Bound>,
    /// False once a value without a usable bound was seen (NaN).
    bounded: bool,
}

/// Statistics of one data file, accumulated over the batches written to it.
#[derive(Debug, Clone)]
pub(crate) struct FileStats {
    rows: u64,
    columns: Vec<ColumnStats>,
}

impl FileStats {
    pub(crate) fn new(schema: &Schema) -> Self {
        FileStats {
            rows: 0,
            columns: schema
                .iter()
                .map(|(name, dtype)| ColumnStats {
                    name: name.to_string(),
                    local_time: matches!(dtype, DataType::Datetime(_, None)),
                    nulls: 0,
                    min: None,
                    max: None,
                    bounded: !matches!(dtype, DataType::Boolean | DataType::Binary),
                })
                .collect(),
        }
    }

    /// Adds a batch (with the columns of the schema given to `new`).
    pub(crate) fn add(&mut self, df: &DataFrame) -> Result<()> {
        self.rows += df.height() as u64;
        for stats in &mut self.columns {
            let column = df.column(&stats.name)?;
            stats.nulls += column.null_count() as u64;
            if !stats.bounded || column.null_count() == column.len() {
                continue;
            }
            if column.dtype().is_float() && column.as_materialized_series().is_nan()?.any() {
                stats.bounded = false;
                continue;
            }
            let bounds = match column.dtype() {
                DataType::String => text_bounds(column.as_materialized_series().str()?)
                    .map(|(min, max)| (Bound::Text(min.into()), Bound::Text(max.into()))),
                _ => bound(column.min_reduce()?.value().clone())
                    .zip(bound(column.max_reduce()?.value().clone())),
            };
            let Some((min, max)) = bounds else {
                stats.bounded = false;
                continue;
            };
            if stats.min.as_ref().is_none_or(|m| min < *m) {
                stats.min = Some(min);
            }
            if stats.max.as_ref().is_none_or(|m| max > *m) {
                stats.max = Some(max);
            }
        }
        Ok(())
    }

    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// The `stats` string of the file's `add` action.
    pub(crate) fn to_json(&self) -> String {
        let mut min_values = Map::new();
        let mut max_values = Map::new();
        let mut null_count = BTreeMap::new();
        for stats in &self.columns {
            null_count.insert(stats.name.clone(), stats.nulls);
            if !stats.bounded {
                continue;
            }
            if let Some(min) = stats.min.as_ref().and_then(|b| lower(b, stats.local_time)) {
                min_values.insert(stats.name.clone(), min);
            }
            if let Some(max) = stats.max.as_ref().and_then(|b| upper(b, stats.local_time)) {
                max_values.insert(stats.name.clone(), max);
            }
        }
        json!({
            "numRecords": self.rows,
            "minValues": min_values,
            "maxValues": max_values,
            "nullCount": null_count,
        })
        .to_string()
    }
}

fn bound(value: AnyValue<'_>) -> Option<Bound> {
    Some(match value {
        AnyValue::Int8(v) => Bound::Int(v.into()),
        AnyValue::Int16(v) => Bound::Int(v.into()),
        AnyValue::Int32(v) => Bound::Int(v.into()),
        AnyValue::Int64(v) => Bound::Int(v),
        AnyValue::Float32(v) => Bound::Float(v.into()),
        AnyValue::Float64(v) => Bound::Float(v),
        AnyValue::String(v) => Bound::Text(v.to_string()),
        AnyValue::StringOwned(v) => Bound::Text(v.to_string()),
        AnyValue::Date(v) => Bound::Date(v),
        AnyValue::Datetime(v, unit, _) | AnyValue::DatetimeOwned(v, unit, _) => {
            Bound::Micros(match unit {
                TimeUnit::Microseconds => v,
                TimeUnit::Milliseconds => v.saturating_mul(1000),
                TimeUnit::Nanoseconds => v.div_euclid(1000),
            })
        }
        _ => return None,
    })
}

/// A string with its first 4 bytes as a big-endian integer.
type Prefixed<'a> = (u32, &'a str);

/// The least and greatest value of a text column, in one pass. Most
/// comparisons end on the first 4 bytes, which the view of each string
/// keeps inline: read big-endian (a shorter string padded with zeros) they
/// order as the strings do, so only equal prefixes compare the strings.
/// Polars' min and max compare every string in full, one pass each, which
/// took about 6 % of silver's CPU time at scale 1000.
fn text_bounds(column: &StringChunked) -> Option<(&str, &str)> {
    let mut bounds: Option<(Prefixed<'_>, Prefixed<'_>)> = None;
    for array in column.downcast_iter() {
        for (view, value) in array.views().iter().zip(array.iter()) {
            let Some(value) = value else {
                continue;
            };
            let prefix = u32::from_be_bytes(view.prefix.to_le_bytes());
            let Some(((min_prefix, min), (max_prefix, max))) = &mut bounds else {
                bounds = Some(((prefix, value), (prefix, value)));
                continue;
            };
            if prefix < *min_prefix || (prefix == *min_prefix && value < *min) {
                (*min_prefix, *min) = (prefix, value);
            }
            if prefix > *max_prefix || (prefix == *max_prefix && value > *max) {
                (*max_prefix, *max) = (prefix, value);
            }
        }
    }
    bounds.map(|((_, min), (_, max))| (min, max))
}

fn date_text(days: i32) -> Option<String> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(719_163)?)
        .map(|d| d.format("%Y-%m-%d").to_string())
}

fn millis_text(millis: i64, local_time: bool) -> Option<String> {
    let time = DateTime::from_timestamp_millis(millis)?;
    let text = time.format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
    Some(if local_time { text } else { format!("{text}Z") })
}

fn number(value: f64) -> Option<Value> {
    serde_json::Number::from_f64(value).map(Value::Number)
}

/// A bound no greater than any value of the file.
fn lower(bound: &Bound, local_time: bool) -> Option<Value> {
    match bound {
        Bound::Int(v) => Some(json!(v)),
        Bound::Float(v) => number(*v),
        Bound::Text(v) => Some(json!(v.chars().take(STRING_PREFIX).collect::<String>())),
        Bound::Date(v) => date_text(*v).map(Value::String),
        Bound::Micros(v) => millis_text(v.div_euclid(1000), local_time).map(Value::String),
    }
}

/// A bound no smaller than any value of the file.
fn upper(bound: &Bound, local_time: bool) -> Option<Value> {
    match bound {
        Bound::Text(v) if v.chars().count() > STRING_PREFIX => None,
        Bound::Micros(v) => {
            let millis = v.div_euclid(1000) + i64::from(v.rem_euclid(1000) != 0);
            millis_text(millis, local_time).map(Value::String)
        }
        other => lower(other, local_time),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bounds_order_as_bytes_do() {
        // Prefixes that tie (shorter than 4 bytes, a NUL byte, a shared
        // start), inline and out-of-line strings, multi-byte characters,
        // nulls, and several chunks.
        let values: Vec<Option<&str>> = vec![
            Some("ab"),
            None,
            Some("ab\0"),
            Some("abcd-long-enough-to-live-in-a-buffer"),
            Some("abcd"),
            Some("é"),
            Some(""),
            Some("abcc-another-long-string-out-of-line"),
            Some("zz"),
            Some("zz\u{1}"),
            None,
        ];
        let mut column = StringChunked::new("t".into(), &values[..6]);
        column
            .append(&StringChunked::new("t".into(), &values[6..]))
            .unwrap();
        assert_eq!(column.chunks().len(), 2);
        // Worked out independently: Rust orders &str by their bytes.
        let present = values.iter().flatten();
        let expected = (*present.clone().min().unwrap(), *present.max().unwrap());
        assert_eq!(expected, ("", "é"));
        assert_eq!(text_bounds(&column), Some(expected));
        let only_nulls = StringChunked::new("t".into(), &[None::<&str>, None]);
        assert_eq!(text_bounds(&only_nulls), None);
    }

    #[test]
    fn bounds_hold_for_every_row_of_every_batch() {
        let long = "x".repeat(40);
        let batch = |ids: &[Option<i64>], names: &[&str], micros: &[i64], prices: &[f64]| {
            DataFrame::new(
                ids.len(),
                vec![
                    Column::new("id".into(), ids),
                    Column::new("name".into(), names),
                    Series::new("at".into(), micros)
                        .cast(&DataType::Datetime(
                            TimeUnit::Microseconds,
                            Some(TimeZone::UTC),
                        ))
                        .unwrap()
                        .into_column(),
                    Column::new("price".into(), prices),
                    Column::new("day".into(), [20_000i32; 2])
                        .cast(&DataType::Date)
                        .unwrap(),
                ],
            )
            .unwrap()
        };
        let first = batch(
            &[Some(5), None],
            &["b", &long],
            &[1_500, 2_000],
            &[1.5, 2.0],
        );
        let second = batch(
            &[Some(-3), Some(9)],
            &["a", "c"],
            &[999, 4_001],
            &[f64::NAN, 0.0],
        );
        let mut stats = FileStats::new(first.schema());
        stats.add(&first).unwrap();
        stats.add(&second).unwrap();
        let value: Value = serde_json::from_str(&stats.to_json()).unwrap();
        assert_eq!(value["numRecords"], 4);
        assert_eq!(value["nullCount"]["id"], 1);
        assert_eq!(
            (
                value["minValues"]["id"].clone(),
                value["maxValues"]["id"].clone()
            ),
            (json!(-3), json!(9))
        );
        // The long string is the maximum: no bound can be written for it.
        assert_eq!(value["minValues"]["name"], "a");
        assert!(value["maxValues"].get("name").is_none());
        // 999 us floors to 0 ms, 4001 us ceils to 5 ms.
        assert_eq!(value["minValues"]["at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(value["maxValues"]["at"], "1970-01-01T00:00:00.005Z");
        // A NaN leaves the float column without bounds.
        assert!(value["minValues"].get("price").is_none());
        // Day 20,000 after 1970-01-01.
        assert_eq!(value["minValues"]["day"], "2024-10-04");
    }
}
