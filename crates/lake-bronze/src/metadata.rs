//! The technical columns bronze adds to every row.

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use polars::prelude::*;

pub const INGESTION_TIMESTAMP: &str = "_ingestion_timestamp";
pub const SOURCE: &str = "_source";
/// The row's 0-based position in the run's read of its source table
/// (contract, section 3): the order rows were read in, kept as data so
/// that a rule depending on it (silver's `duplicate_line`) gives the same
/// answer on an engine that reads files in parallel.
pub const SOURCE_ROW: &str = "_source_row";

/// The columns bronze reserves: a source column of the same name is refused.
pub const RESERVED: [&str; 3] = [INGESTION_TIMESTAMP, SOURCE, SOURCE_ROW];

/// The time zone of `_ingestion_timestamp`, with a static lifetime for `AnyValue`.
static UTC: TimeZone = TimeZone::UTC;

/// Appends `_ingestion_timestamp` (one value for the whole table in one run),
/// `_source`, and `_source_row` to a batch of source rows: the batch's rows
/// are numbered from `first_row`, the number of rows the run read from the
/// table before this batch, so the numbering continues across batches.
pub fn add_metadata(
    df: &mut DataFrame,
    ingested_at: DateTime<Utc>,
    source: &str,
    first_row: u64,
) -> Result<()> {
    for name in RESERVED {
        if df.schema().contains(name) {
            bail!("{source}: the source already has a column named {name}, which bronze reserves");
        }
    }
    let height = df.height();
    let timestamp = Scalar::new(
        DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
        AnyValue::Datetime(
            ingested_at.timestamp_micros(),
            TimeUnit::Microseconds,
            Some(&UTC),
        ),
    );
    df.with_column(Column::new_scalar(
        INGESTION_TIMESTAMP.into(),
        timestamp,
        height,
    ))?;
    df.with_column(Column::new_scalar(
        SOURCE.into(),
        Scalar::new(DataType::String, AnyValue::StringOwned(source.into())),
        height,
    ))?;
    let first = i64::try_from(first_row)
        .with_context(|| format!("{source}: row {first_row} is past what {SOURCE_ROW} holds"))?;
    let last = first.checked_add(height as i64).with_context(|| {
        format!("{source}: row {first_row} + {height} is past what {SOURCE_ROW} holds")
    })?;
    df.with_column(Column::new(
        SOURCE_ROW.into(),
        (first..last).collect::<Vec<i64>>(),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn rows(df: &DataFrame) -> Vec<i64> {
        let column = df.column(SOURCE_ROW).unwrap().i64().unwrap();
        column.into_no_null_iter().collect()
    }

    #[test]
    fn source_rows_continue_across_batches() {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        let mut first = df!("x" => ["a", "b", "c"]).unwrap();
        let mut second = df!("x" => ["d", "e"]).unwrap();
        add_metadata(&mut first, at, "test://t", 0).unwrap();
        // The second batch starts after the 3 rows of the first.
        add_metadata(&mut second, at, "test://t", 3).unwrap();
        assert_eq!(rows(&first), vec![0, 1, 2]);
        assert_eq!(rows(&second), vec![3, 4]);
        assert_eq!(
            second.get_column_names_owned(),
            ["x", INGESTION_TIMESTAMP, SOURCE, SOURCE_ROW].map(PlSmallStr::from)
        );
        assert_eq!(second.column(SOURCE_ROW).unwrap().dtype(), &DataType::Int64);

        // An empty batch gets the column too, with no value.
        let mut empty = df!("x" => Vec::<&str>::new()).unwrap();
        add_metadata(&mut empty, at, "test://t", 5).unwrap();
        assert_eq!(rows(&empty), Vec::<i64>::new());
        assert_eq!(empty.column(SOURCE_ROW).unwrap().dtype(), &DataType::Int64);
    }

    #[test]
    fn a_source_column_named_like_a_reserved_one_is_refused() {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        let mut df = df!("_source_row" => [1i64]).unwrap();
        let err = add_metadata(&mut df, at, "test://t", 0).unwrap_err();
        assert!(err.to_string().contains("_source_row"), "{err}");
    }
}
