//! Frames as JSON: `{"columns": [{"name", "type"}], "rows": [{...}]}`.
//!
//! Values keep their meaning rather than Polars' internal form: dates as
//! `YYYY-MM-DD`, datetimes as RFC 3339 in UTC, money as unrounded numbers
//! (the dashboard rounds), non-finite floats as `null`, bytes as their
//! text when they are UTF-8 (a DLQ payload reads as the message it was),
//! else as PostgreSQL writes `bytea`, `\\x` and two hex digits a byte.

use chrono::{DateTime, NaiveDate};
use polars::prelude::*;
use serde_json::{Map, Number, Value};

/// Column names and types of a frame.
pub fn columns(df: &DataFrame) -> Value {
    Value::Array(
        df.columns()
            .iter()
            .map(|c| {
                let mut column = Map::new();
                column.insert("name".into(), Value::String(c.name().to_string()));
                column.insert("type".into(), Value::String(c.dtype().to_string()));
                Value::Object(column)
            })
            .collect(),
    )
}

/// Rows of a frame, one object per row (keys sorted by name: `columns`
/// gives the order).
pub fn rows(df: &DataFrame) -> Value {
    let mut df = df.clone();
    df.rechunk_mut();
    let mut rows: Vec<Map<String, Value>> = (0..df.height()).map(|_| Map::new()).collect();
    for column in df.columns() {
        let name = column.name().to_string();
        let series = column.as_materialized_series();
        for (i, row) in rows.iter_mut().enumerate() {
            let value = series.get(i).map(cell).unwrap_or(Value::Null);
            row.insert(name.clone(), value);
        }
    }
    Value::Array(rows.into_iter().map(Value::Object).collect())
}

/// `{"columns", "rows", "row_count"}` merged into `fields`.
pub fn frame(df: &DataFrame, mut fields: Map<String, Value>) -> Value {
    fields.insert("row_count".into(), Value::from(df.height()));
    fields.insert("columns".into(), columns(df));
    fields.insert("rows".into(), rows(df));
    Value::Object(fields)
}

fn float(value: f64) -> Value {
    Number::from_f64(value).map_or(Value::Null, Value::Number)
}

fn datetime(value: i64, unit: TimeUnit) -> Value {
    let time = match unit {
        TimeUnit::Nanoseconds => Some(DateTime::from_timestamp_nanos(value)),
        TimeUnit::Microseconds => DateTime::from_timestamp_micros(value),
        TimeUnit::Milliseconds => DateTime::from_timestamp_millis(value),
    };
    time.map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

fn cell(value: AnyValue) -> Value {
    match value {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(b),
        AnyValue::String(s) => Value::String(s.to_string()),
        AnyValue::StringOwned(s) => Value::String(s.to_string()),
        AnyValue::Int8(v) => Value::from(v),
        AnyValue::Int16(v) => Value::from(v),
        AnyValue::Int32(v) => Value::from(v),
        AnyValue::Int64(v) => Value::from(v),
        AnyValue::UInt8(v) => Value::from(v),
        AnyValue::UInt16(v) => Value::from(v),
        AnyValue::UInt32(v) => Value::from(v),
        AnyValue::UInt64(v) => Value::from(v),
        AnyValue::Float32(v) => float(f64::from(v)),
        AnyValue::Float64(v) => float(v),
        AnyValue::Date(days) => {
            NaiveDate::from_epoch_days(days).map_or(Value::Null, |d| Value::String(d.to_string()))
        }
        AnyValue::Datetime(v, unit, _) => datetime(v, unit),
        AnyValue::DatetimeOwned(v, unit, _) => datetime(v, unit),
        AnyValue::Binary(bytes) => binary(bytes),
        AnyValue::BinaryOwned(bytes) => binary(&bytes),
        // Decimals and the rest: their text form.
        other => Value::String(other.to_string()),
    }
}

/// Bytes as text when they are UTF-8, else in `bytea`'s hex form, whole
/// either way.
fn binary(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_string()),
        Err(_) => {
            let mut hex = String::with_capacity(2 + 2 * bytes.len());
            hex.push_str("\\x");
            for byte in bytes {
                hex.push_str(&format!("{byte:02x}"));
            }
            Value::String(hex)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_value_keeps_its_meaning() {
        let mut df = df!(
            "country" => [Some("France"), None],
            "revenue" => [1234.5678, f64::NAN],
            "orders" => [3i64, 0],
            "score" => [5i32, 1],
            "vip" => [true, false],
            "day" => [NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(), NaiveDate::from_ymd_opt(1996, 7, 4).unwrap()],
        )
        .unwrap();
        let stamps = Series::new("at".into(), [1_764_115_200_000_000i64, 0])
            .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
            .into_column();
        df.with_column(stamps).unwrap();
        let json = frame(&df, Map::new());
        insta::assert_snapshot!(serde_json::to_string_pretty(&json).unwrap());
    }

    #[test]
    fn bytes_read_as_their_text_or_as_hex() {
        let payload = r#"{"event_id":"e-1","montant":"douze euros, écrit en toutes lettres"}"#;
        let df = df!("payload" => [payload.as_bytes(), &[0xff, 0x00, 0x7b]]).unwrap();
        let json = frame(&df, Map::new());
        assert_eq!(json["rows"][0]["payload"], payload);
        assert_eq!(json["rows"][1]["payload"], "\\xff007b");
    }

    #[test]
    fn an_empty_frame_keeps_its_columns() {
        let df = DataFrame::empty_with_schema(&Schema::from_iter([Field::new(
            "pays".into(),
            DataType::String,
        )]));
        let json = frame(&df, Map::new());
        assert_eq!(json["row_count"], 0);
        assert_eq!(json["columns"][0]["name"], "pays");
        assert_eq!(json["rows"], Value::Array(vec![]));
    }
}
