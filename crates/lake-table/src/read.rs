//! Shortcuts for readers that want one date of a table at its latest
//! version, and the tables a layer holds.

use anyhow::{Context, Result};
use chrono::NaiveDate;
use polars::prelude::*;

use crate::layer::Layer;
use crate::snapshot::DateAsked;
use crate::storage::Lake;
use crate::table::{Table, TableRef, valid_table_name};

/// The names of a layer's tables: its folders (one level down in
/// `_`-folders such as `_rejects/`), whether or not they hold a commit yet.
pub fn tables(lake: &Lake, layer: Layer) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for dir in lake.list_dirs(layer, "")? {
        if dir.starts_with('_') {
            for sub in lake.list_dirs(layer, &dir)? {
                out.push(format!("{dir}/{sub}"));
            }
        } else {
            out.push(dir);
        }
    }
    out.retain(|name| valid_table_name(name));
    out.sort();
    Ok(out)
}

/// One date of a table at its latest version; `None` when the table has
/// no commit or not that date.
pub fn read_date(lake: &Lake, table: &TableRef, date: NaiveDate) -> Result<Option<DataFrame>> {
    Ok(read_at_latest(lake, table, DateAsked::Exactly(date))?.map(|(_, frame)| frame))
}

/// The latest date of a table at its latest version, with its rows.
pub fn read_latest_date(lake: &Lake, table: &TableRef) -> Result<Option<(NaiveDate, DataFrame)>> {
    read_at_latest(lake, table, DateAsked::Latest)
}

/// The date `asked` of the latest snapshot, collected.
fn read_at_latest(
    lake: &Lake,
    table: &TableRef,
    asked: DateAsked,
) -> Result<Option<(NaiveDate, DataFrame)>> {
    let Some(snapshot) = Table::open(lake, table.clone())?.latest()? else {
        return Ok(None);
    };
    let Some(date) = snapshot.date_seen(asked) else {
        return Ok(None);
    };
    let frame = snapshot
        .scan(date)?
        .collect()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("reading {table} {date}"))?;
    Ok(Some((date, frame)))
}
