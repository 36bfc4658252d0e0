//! `cargo xtask lake show TABLE`: the rows of one date of a table, at its
//! latest version or another one (`--version N`, `--as-of TIME`).

use anyhow::{Context, Result, anyhow};
use chrono::NaiveDate;
use lake_table::{At, Lake, Table, TableRef};
use polars::prelude::*;

/// The first `limit` rows of `date` (the latest date when `None`) as text.
pub fn show(
    lake: &Lake,
    table: &TableRef,
    at: At,
    date: Option<NaiveDate>,
    limit: usize,
) -> Result<String> {
    let snapshot = Table::open(lake, table.clone())?.at(at)?;
    let date = match date {
        Some(date) => date,
        None => snapshot
            .latest_date()
            .ok_or_else(|| anyhow!("{table}@v{} holds no row", snapshot.version()))?,
    };
    // An older version whose files a vacuum deleted: say so, not Polars'
    // "No such file or directory".
    if at != At::Latest
        && let Some(file) = snapshot.vacuumed_file(Some(date))?
    {
        return Err(snapshot.vacuumed_error(file));
    }
    let frame = snapshot
        .scan(date)?
        .limit(limit as IdxSize)
        .collect()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("reading {table}"))?;
    Ok(format!(
        "{table}@v{} {date}: {} rows\n{}\n",
        snapshot.version(),
        snapshot.rows_of(date).map_or("?".into(), |n| n.to_string()),
        lake_core::display::render(&frame)
    ))
}
