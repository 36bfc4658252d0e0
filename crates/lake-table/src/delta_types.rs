//! Column types between Polars and Delta Lake's schema (the protocol's
//! primitive types; the lake's tables hold no nested column).

use anyhow::{Context, Result, anyhow, bail};
use deltalake_core::kernel::StructType;
use polars::prelude::*;
use serde_json::{Value, json};

use crate::schema::{ColumnSpec, column_specs};
use crate::table::PARTITION_COLUMN;

/// The Delta type of a Polars column, and the Polars type its values are
/// written as (unsigned integers widen to the next signed type, times go
/// to microseconds in UTC, as Delta's `timestamp` is).
pub(crate) fn delta_type(column: &str, dtype: &DataType) -> Result<(String, DataType)> {
    use DataType::*;
    let (name, stored): (std::string::String, DataType) = match dtype {
        Boolean => ("boolean".into(), Boolean),
        Int8 => ("byte".into(), Int8),
        Int16 => ("short".into(), Int16),
        Int32 => ("integer".into(), Int32),
        Int64 => ("long".into(), Int64),
        UInt8 => ("short".into(), Int16),
        UInt16 => ("integer".into(), Int32),
        UInt32 => ("long".into(), Int64),
        Float32 => ("float".into(), Float32),
        Float64 => ("double".into(), Float64),
        String => ("string".into(), String),
        Binary => ("binary".into(), Binary),
        Date => ("date".into(), Date),
        Datetime(_, Some(_)) => (
            "timestamp".into(),
            Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
        ),
        Datetime(_, None) => (
            "timestamp_ntz".into(),
            Datetime(TimeUnit::Microseconds, None),
        ),
        Decimal(precision, scale) if *precision <= 38 => {
            (format!("decimal({precision},{scale})"), dtype.clone())
        }
        other => bail!("column {column}: type {other} has no Delta Lake type in this lake"),
    };
    Ok((name, stored))
}

/// The Polars type of a Delta primitive type.
pub(crate) fn polars_type(delta: &str) -> Result<DataType> {
    use DataType::*;
    Ok(match delta {
        "boolean" => Boolean,
        "byte" => Int8,
        "short" => Int16,
        "integer" => Int32,
        "long" => Int64,
        "float" => Float32,
        "double" => Float64,
        "string" => String,
        "binary" => Binary,
        "date" => Date,
        "timestamp" => Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
        "timestamp_ntz" => Datetime(TimeUnit::Microseconds, None),
        other => {
            let inner = other
                .strip_prefix("decimal(")
                .and_then(|rest| rest.strip_suffix(')'))
                .ok_or_else(|| anyhow!("Delta type {other} is not one this lake reads"))?;
            let (precision, scale) = inner
                .split_once(',')
                .ok_or_else(|| anyhow!("bad decimal type {other}"))?;
            let number = |text: &str| {
                text.trim()
                    .parse::<usize>()
                    .map_err(|_| anyhow!("bad decimal type {other}"))
            };
            Decimal(number(precision)?, number(scale)?)
        }
    })
}

/// The data columns of a Delta schema (the partition column aside), as
/// manifest columns and as a Polars schema.
pub(crate) fn polars_schema(schema: &StructType) -> Result<(Vec<ColumnSpec>, Schema)> {
    let value = serde_json::to_value(schema).context("encoding a Delta schema")?;
    let fields = value
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("a Delta schema without fields"))?;
    let mut out = Schema::default();
    for field in fields {
        let name = field
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("a Delta field without a name"))?;
        if name == PARTITION_COLUMN {
            continue;
        }
        let delta = field.get("type").and_then(Value::as_str).ok_or_else(|| {
            anyhow!("column {name}: nested Delta types are not read by this lake")
        })?;
        out.with_column(
            name.into(),
            polars_type(delta).with_context(|| format!("column {name}"))?,
        );
    }
    Ok((column_specs(&out), out))
}

/// The Delta schema of a table holding frames of `schema`: its columns,
/// all nullable, then the partition column.
pub(crate) fn delta_schema(schema: &Schema) -> Result<StructType> {
    let mut fields = Vec::with_capacity(schema.len() + 1);
    for (name, dtype) in schema.iter() {
        let (delta, _) = delta_type(name, dtype)?;
        fields
            .push(json!({"name": name.as_str(), "type": delta, "nullable": true, "metadata": {}}));
    }
    fields
        .push(json!({"name": PARTITION_COLUMN, "type": "date", "nullable": true, "metadata": {}}));
    serde_json::from_value(json!({"type": "struct", "fields": fields}))
        .context("building a Delta schema")
}

/// The schema frames are written with (see [`delta_type`]).
pub(crate) fn stored_schema(schema: &Schema) -> Result<Schema> {
    let mut out = Schema::default();
    for (name, dtype) in schema.iter() {
        out.with_column(name.clone(), delta_type(name, dtype)?.1);
    }
    Ok(out)
}

/// True when a schema needs the `timestampNtz` table feature.
pub(crate) fn needs_timestamp_ntz(schema: &Schema) -> bool {
    schema
        .iter()
        .any(|(_, dtype)| matches!(dtype, DataType::Datetime(_, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_through_delta() {
        let schema = Schema::from_iter([
            Field::new("id".into(), DataType::Int16),
            Field::new("n".into(), DataType::UInt32),
            Field::new(
                "at".into(),
                DataType::Datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC)),
            ),
            Field::new("price".into(), DataType::Decimal(12, 2)),
            Field::new("day".into(), DataType::Date),
        ]);
        let delta = delta_schema(&schema).unwrap();
        let text = serde_json::to_string(&delta).unwrap();
        assert!(text.contains(r#""name":"id","type":"short""#), "{text}");
        assert!(text.contains(r#""name":"n","type":"long""#), "{text}");
        assert!(
            text.contains(r#""name":"price","type":"decimal(12,2)""#),
            "{text}"
        );
        assert!(
            text.contains(r#""name":"run_date","type":"date""#),
            "{text}"
        );
        let (columns, back) = polars_schema(&delta).unwrap();
        assert_eq!(back, stored_schema(&schema).unwrap());
        assert_eq!(
            columns.len(),
            5,
            "the partition column is not a data column"
        );
        assert_eq!(columns[2].dtype, "Datetime(us, UTC)");
    }

    #[test]
    fn types_without_a_delta_equivalent_are_named() {
        let err = delta_type("tags", &DataType::List(Box::new(DataType::String)))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("column tags: type list[str]"), "{err}");
    }
}
