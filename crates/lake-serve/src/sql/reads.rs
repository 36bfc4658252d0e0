//! The frames a checked query reads: each table at its version (the one
//! served, or the one its time travel clause names), with the latest date
//! of that version or, when the query names `run_date`, every date, and the
//! `run_date` column after the data columns (see [`crate::sql`]'s docs).
//!
//! Each date's frame comes from the catalog's cache, as the gold endpoints'
//! do. A version that does not exist, a time before a table's first
//! commit, or an older version whose files a vacuum deleted, is the
//! client's mistake: a 400 naming the table and what it has (or the file).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate};
use lake_table::{At, Layer, NotYetCreated, Snapshot, Table, TableRef};
use polars::prelude::*;

use crate::catalog::{Catalog, Resolved};
use crate::error::{ApiError, ApiResult};
use crate::sql::exec::{self, Stop};
use crate::sql::{AsOf, Prepared, RUN_DATE, TableRead};

/// The frame of every name the query's text uses, each behind a stop
/// point; `known` maps a lake table's SQL name to its layer and folder.
pub fn frames(
    catalog: &Catalog,
    prepared: &Prepared,
    known: &BTreeMap<String, (Layer, String)>,
    stop: &Stop,
) -> ApiResult<Vec<(String, LazyFrame)>> {
    let mut frames = Vec::new();
    for (name, read) in &prepared.reads {
        let Some((layer, table)) = known.get(&read.table) else {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "the SQL check named {}, which is not a lake table",
                    read.table
                ),
            ));
        };
        let version = version(catalog, *layer, table, read)?;
        let dates = if prepared.every_date {
            version.snapshot.dates()
        } else {
            version.date.into_iter().collect()
        };
        let frame = dated_frame(catalog, &version, &dates, &read.table)?;
        // A stop point over every table: every morsel read can stop it.
        frames.push((name.clone(), exec::stop_point(frame, stop)));
    }
    Ok(frames)
}

/// A table's version to read, and the date read when the query does not
/// name `run_date`.
struct Version {
    snapshot: Snapshot,
    date: Option<NaiveDate>,
    run_id: Option<String>,
}

fn version(catalog: &Catalog, layer: Layer, table: &str, read: &TableRead) -> ApiResult<Version> {
    let sql_name = &read.table;
    let no_version = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{sql_name} has no committed version yet"),
        )
    };
    if read.as_of == AsOf::Served {
        let resolved = catalog
            .resolve(layer, table, None)
            .map_err(|err| ApiError::internal(&err))?
            .ok_or_else(no_version)?;
        return Ok(Version {
            date: Some(resolved.date),
            run_id: resolved.run_id,
            snapshot: resolved.snapshot,
        });
    }
    let handle = Table::open(catalog.lake(), TableRef::new(layer, table))
        .map_err(|err| ApiError::internal(&err))?;
    let latest = handle
        .latest()
        .map_err(|err| ApiError::internal(&err))?
        .ok_or_else(no_version)?;
    let snapshot = match read.as_of {
        AsOf::Served => latest,
        AsOf::Version(asked) if asked > latest.version() => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "{sql_name} has no version {asked}: versions 0-{}",
                    latest.version()
                ),
            ));
        }
        AsOf::Version(asked) if asked == latest.version() => latest,
        AsOf::Version(asked) => handle
            .at(At::Version(asked))
            .map_err(|err| ApiError::internal(&err))?,
        AsOf::Time(asked) => handle.at(At::Timestamp(asked)).map_err(|err| match err
            .downcast_ref::<NotYetCreated>()
        {
            Some(not_yet) => ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "{sql_name} did not exist yet at {}: its first commit (version 0) was at {}",
                    not_yet
                        .asked
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    not_yet
                        .first_commit
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ),
            ),
            None => ApiError::internal(&err),
        })?,
    };
    Ok(Version {
        date: snapshot.latest_date(),
        snapshot,
        run_id: None,
    })
}

/// The rows of `dates` of a version with their `run_date`, one frame. A
/// date of an older version whose file a vacuum deleted is a 400 naming
/// the file.
fn dated_frame(
    catalog: &Catalog,
    version: &Version,
    dates: &[NaiveDate],
    sql_name: &str,
) -> ApiResult<LazyFrame> {
    if dates.is_empty() {
        let mut schema = (**version.snapshot.schema()).clone();
        schema.with_column(RUN_DATE.into(), DataType::Date);
        return Ok(DataFrame::empty_with_schema(&schema).lazy());
    }
    let mut frames = Vec::with_capacity(dates.len());
    for date in dates {
        let resolved = Resolved {
            snapshot: version.snapshot.clone(),
            date: *date,
            run_id: version.run_id.clone(),
        };
        let data = catalog.frame(&resolved).map_err(|err| {
            match version.snapshot.vacuumed_file(Some(*date)) {
                Ok(Some(file)) => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("{sql_name}: {}", version.snapshot.vacuumed_error(file)),
                ),
                _ => ApiError::internal(&err.context(format!("reading {sql_name} {date}"))),
            }
        })?;
        // Days since the epoch: Polars' literal of a NaiveDate is a datetime.
        let days = (*date - DateTime::UNIX_EPOCH.date_naive()).num_days() as i32;
        frames.push(
            data.frame
                .as_ref()
                .clone()
                .lazy()
                .with_column(lit(days).cast(DataType::Date).alias(RUN_DATE)),
        );
    }
    concat(frames, UnionArgs::default()).map_err(|err| {
        ApiError::internal(
            &anyhow::Error::from(err).context(format!("putting the dates of {sql_name} together")),
        )
    })
}
