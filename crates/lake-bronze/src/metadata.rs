//! The technical columns bronze adds to every row.

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use polars::prelude::*;

pub const INGESTION_TIMESTAMP: &str = "_ingestion_timestamp";
pub const SOURCE: &str = "_source";

/// The time zone of `_ingestion_timestamp`, with a static lifetime for `AnyValue`.
static UTC: TimeZone = TimeZone::UTC;

/// Appends `_ingestion_timestamp` (one value for the whole table in one run)
/// and `_source` to a batch of source rows.
pub fn add_metadata(df: &mut DataFrame, ingested_at: DateTime<Utc>, source: &str) -> Result<()> {
    for name in [INGESTION_TIMESTAMP, SOURCE] {
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
    Ok(())
}
