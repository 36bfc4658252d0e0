//! What the source database's catalog says of a table: its columns, with
//! the lake type of each (the type mapping of the data contract, section 3).

use anyhow::{Result, anyhow, bail};
use polars::prelude::*;

use crate::copy_connection::CopyConnection;
use crate::error::query_error;

/// One column of a source table.
#[derive(Debug, Clone, PartialEq)]
pub struct PgColumn {
    pub name: String,
    /// `pg_type.typname`, e.g. `int2`, `varchar`.
    pub pg_type: String,
    /// `pg_attribute.atttypmod` (precision and scale of a numeric).
    pub typmod: i32,
    pub dtype: DataType,
}

/// Precision and scale given to a `numeric` declared without them.
pub const UNCONSTRAINED_NUMERIC: (usize, usize) = (38, 9);

/// The lake type of a PostgreSQL type, `None` when the contract has none.
pub fn polars_type(pg_type: &str, typmod: i32) -> Option<DataType> {
    Some(match pg_type {
        "int2" => DataType::Int16,
        "int4" => DataType::Int32,
        "int8" => DataType::Int64,
        "float4" => DataType::Float32,
        "float8" => DataType::Float64,
        "numeric" => {
            let (precision, scale) = numeric_precision_scale(typmod);
            DataType::Decimal(precision, scale)
        }
        "varchar" | "text" | "bpchar" | "name" | "citext" => DataType::String,
        "date" => DataType::Date,
        "timestamp" => DataType::Datetime(TimeUnit::Microseconds, None),
        "timestamptz" => DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
        "bytea" => DataType::Binary,
        "bool" => DataType::Boolean,
        _ => return None,
    })
}

fn numeric_precision_scale(typmod: i32) -> (usize, usize) {
    if typmod < 4 {
        return UNCONSTRAINED_NUMERIC;
    }
    let packed = typmod - 4;
    let precision = ((packed >> 16) & 0xffff) as usize;
    // PostgreSQL 15 allows a negative scale (rounding left of the point):
    // such values are integers, scale 0 holds them.
    let scale = (packed & 0x7ff) as usize;
    let scale = if packed & 0x400 != 0 { 0 } else { scale };
    (precision.clamp(1, 38), scale.min(precision.clamp(1, 38)))
}

/// The columns of `schema.table`, in table order, with their lake types.
/// Fails naming the table when it does not exist, and the column when its
/// type has no mapping in the data contract.
pub fn table_columns(client: &CopyConnection, schema: &str, table: &str) -> Result<Vec<PgColumn>> {
    let rows = client
        .query(
            "SELECT a.attname, t.typname, a.atttypmod \
             FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_type t ON t.oid = a.atttypid \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') \
               AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&schema, &table],
        )
        .map_err(|err| query_error(err, &format!("reading the columns of {schema}.{table}")))?;
    if rows.is_empty() {
        bail!("table {schema}.{table} does not exist in the source database");
    }
    rows.iter()
        .map(|row| {
            let name: String = row.get(0);
            let pg_type: String = row.get(1);
            let typmod: i32 = row.get(2);
            let dtype = polars_type(&pg_type, typmod).ok_or_else(|| {
                anyhow!(
                    "{schema}.{table}.{name} has type {pg_type}, which the lake cannot map \
                     (supported: smallint, integer, bigint, real, double precision, numeric, \
                     varchar, text, char, date, timestamp, timestamptz, bytea, boolean)"
                )
            })?;
            Ok(PgColumn {
                name,
                pg_type,
                typmod,
                dtype,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_mapping_follows_the_contract() {
        assert_eq!(polars_type("int2", -1), Some(DataType::Int16));
        assert_eq!(polars_type("float4", -1), Some(DataType::Float32));
        assert_eq!(
            polars_type("numeric", (10 << 16 | 2) + 4),
            Some(DataType::Decimal(10, 2))
        );
        assert_eq!(
            polars_type("timestamptz", -1),
            Some(DataType::Datetime(
                TimeUnit::Microseconds,
                Some(TimeZone::UTC)
            ))
        );
        assert_eq!(polars_type("point", -1), None);
    }
}
