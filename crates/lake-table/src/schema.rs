//! Names of column types as the lake writes them in manifests and messages,
//! and the checks a layer makes on the columns it needs.

use anyhow::{Result, bail};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

/// One column of a partition's schema, as recorded in its `_SUCCESS` manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    pub name: String,
    /// Type name as in the data contract: `Int16`, `String`, `Datetime(us, UTC)`...
    pub dtype: String,
}

/// The contract's name of a Polars type.
pub fn dtype_name(dtype: &DataType) -> String {
    match dtype {
        DataType::Boolean => "Boolean".into(),
        DataType::Int8 => "Int8".into(),
        DataType::Int16 => "Int16".into(),
        DataType::Int32 => "Int32".into(),
        DataType::Int64 => "Int64".into(),
        DataType::UInt8 => "UInt8".into(),
        DataType::UInt16 => "UInt16".into(),
        DataType::UInt32 => "UInt32".into(),
        DataType::UInt64 => "UInt64".into(),
        DataType::Float32 => "Float32".into(),
        DataType::Float64 => "Float64".into(),
        DataType::String => "String".into(),
        DataType::Binary => "Binary".into(),
        DataType::Date => "Date".into(),
        DataType::Datetime(unit, tz) => {
            let unit = match unit {
                TimeUnit::Nanoseconds => "ns",
                TimeUnit::Microseconds => "us",
                TimeUnit::Milliseconds => "ms",
            };
            match tz {
                Some(tz) => format!("Datetime({unit}, {tz})"),
                None => format!("Datetime({unit})"),
            }
        }
        DataType::Decimal(precision, scale) => format!("Decimal({precision}, {scale})"),
        other => format!("{other:?}"),
    }
}

/// The schema of a frame as manifest columns.
pub fn column_specs(schema: &Schema) -> Vec<ColumnSpec> {
    schema
        .iter()
        .map(|(name, dtype)| ColumnSpec {
            name: name.to_string(),
            dtype: dtype_name(dtype),
        })
        .collect()
}

/// What a consumer accepts for a column it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Any integer width (ids widen from smallint to integer/bigint).
    Integer,
    /// Any integer or floating-point number.
    Number,
    /// Text.
    Text,
    /// A calendar date.
    Date,
    /// Text or integer (ids that some sources keep as text).
    Key,
}

impl Expect {
    fn accepts(self, dtype: &str) -> bool {
        let integer = matches!(
            dtype,
            "Int8" | "Int16" | "Int32" | "Int64" | "UInt8" | "UInt16" | "UInt32" | "UInt64"
        );
        match self {
            Expect::Integer => integer,
            Expect::Number => {
                integer || matches!(dtype, "Float32" | "Float64") || dtype.starts_with("Decimal")
            }
            Expect::Text => dtype == "String",
            Expect::Date => dtype == "Date",
            Expect::Key => integer || dtype == "String",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Expect::Integer => "an integer",
            Expect::Number => "a number",
            Expect::Text => "text",
            Expect::Date => "a date",
            Expect::Key => "an integer or text key",
        }
    }
}

/// Fails with a message naming the table and column when a needed column is
/// missing or has a type the consumer cannot use. Extra columns are fine:
/// sources may grow.
pub fn require_columns(
    table: &str,
    schema: &[ColumnSpec],
    needed: &[(&str, Expect)],
) -> Result<()> {
    for (name, expect) in needed {
        match schema.iter().find(|c| c.name == *name) {
            None => bail!(
                "{table}: required column {name} is missing (columns present: {})",
                schema
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(col) if !expect.accepts(&col.dtype) => bail!(
                "{table}.{name}: expected {}, found {}",
                expect.describe(),
                col.dtype
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, dtype: &str) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            dtype: dtype.into(),
        }
    }

    #[test]
    fn contract_type_names() {
        assert_eq!(dtype_name(&DataType::Int16), "Int16");
        assert_eq!(
            dtype_name(&DataType::Datetime(
                TimeUnit::Microseconds,
                Some(TimeZone::UTC)
            )),
            "Datetime(us, UTC)"
        );
        assert_eq!(dtype_name(&DataType::Decimal(12, 2)), "Decimal(12, 2)");
    }

    #[test]
    fn missing_and_mistyped_columns_are_named() {
        let schema = vec![spec("order_id", "Int16"), spec("quantity", "String")];
        let missing = require_columns(
            "bronze/order_details",
            &schema,
            &[("discount", Expect::Number)],
        )
        .unwrap_err()
        .to_string();
        assert!(
            missing.contains("bronze/order_details: required column discount is missing"),
            "{missing}"
        );
        let mistyped = require_columns(
            "bronze/order_details",
            &schema,
            &[("quantity", Expect::Integer)],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            mistyped,
            "bronze/order_details.quantity: expected an integer, found String"
        );
        require_columns(
            "t",
            &schema,
            &[("order_id", Expect::Integer), ("order_id", Expect::Key)],
        )
        .unwrap();
    }
}
